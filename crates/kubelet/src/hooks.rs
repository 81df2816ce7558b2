//! Container lifecycle hooks (`preStop` today): exec in the container, an HTTP GET to the pod, or a sleep, all
//! within the grace period. A failed hook is reported and the container is stopped anyway, as upstream.

use std::time::Duration;

use k8s_openapi::api::core::v1::LifecycleHandler;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use runtime::container::ContainerRuntime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn run(
    runtime: &ContainerRuntime,
    container_id: &str,
    hook: &LifecycleHandler,
    pod_ip: Option<&str>,
    limit: Duration,
) -> Result<(), String> {
    if let Some(exec) = &hook.exec {
        let command = exec.command.clone().unwrap_or_default();
        let (code, output) =
            runtime.exec_sync(container_id, &command, limit).await.map_err(|e| format!("PreStopHook failed: {e}"))?;
        if code != 0 {
            return Err(format!(
                "PreStopHook {command:?} failed: command exited with {code}, message: {:?}",
                String::from_utf8_lossy(&output)
            ));
        }
    } else if let Some(http) = &hook.http_get {
        let port = match &http.port {
            IntOrString::Int(port) => *port as u16,
            IntOrString::String(name) => {
                name.parse().map_err(|_| format!("PreStopHook: named port {name:?} is not supported"))?
            }
        };
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .or(pod_ip.map(str::to_string))
            .ok_or("PreStopHook: the pod has no IP")?;
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        tokio::time::timeout(limit, http_get(&host, port, &path))
            .await
            .map_err(|_| format!("PreStopHook: GET http://{host}:{port}{path} timed out"))?
            .map_err(|e| format!("PreStopHook: GET http://{host}:{port}{path}: {e}"))?;
    } else if let Some(sleep) = &hook.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64).min(limit)).await;
    }
    Ok(())
}

/// A plain HTTP/1.1 GET; any 2xx or 3xx answer counts as success, as for upstream's hooks and probes.
async fn http_get(host: &str, port: u16, path: &str) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-lifecycle/1.33\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 64];
    let read = stream.read(&mut head).await.map_err(|e| e.to_string())?;
    let status = String::from_utf8_lossy(&head[..read])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or("not an HTTP answer")?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP status {status}"))
    }
}
