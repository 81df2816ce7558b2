//! Streaming subresources served by the kubelet of the pod's node (`pods/log` today), proxied over TLS with the
//! API server's own kubelet-client certificate, and the plain GETs of the resource-metrics scrapes
//! (`metrics_api`). The kubelet's serving certificate must chain to the cluster CA.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use apimachinery::status::Status;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

use crate::http::{Body, ChannelBody};
use crate::rest::RestRequest;
use crate::State;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The parameters of `pods/log` the kubelet understands, passed through unchanged.
const LOG_PARAMETERS: [&str; 7] =
    ["follow", "previous", "sinceSeconds", "sinceTime", "timestamps", "tailLines", "limitBytes"];

pub fn client_tls(pki: &crate::Pki) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca.cert_pem.as_bytes()) {
        roots.add(cert.map_err(|e| format!("CA certificate: {e}"))?).map_err(|e| format!("CA certificate: {e}"))?;
    }
    let chain = CertificateDer::pem_slice_iter(pki.kubelet_client.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("kubelet client certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(pki.kubelet_client.key_pem.as_bytes())
        .map_err(|e| format!("kubelet client key: {e}"))?;
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("kubelet client certificate: {e}"))
}

/// `GET pods/{name}/log`: checks the pod and container here (so the errors read as upstream's), then streams the
/// kubelet's answer.
pub async fn pod_log(state: &State, request: &RestRequest, pod: &Value) -> Result<Response<Body>, Status> {
    let name = request.name.as_deref().unwrap_or_default();
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(pod["spec"]["initContainers"].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match request.query.get("container") {
        Some(container) if containers.contains(&container) => container.to_string(),
        Some(container) => {
            return Err(Status::bad_request(format!("container {container} is not valid for pod {name}")));
        }
        None => {
            let regular: Vec<&str> =
                pod["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
            match regular.as_slice() {
                [only] => only.to_string(),
                _ => {
                    return Err(Status::bad_request(format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        regular.join(" ")
                    )))
                }
            }
        }
    };
    let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(Status::bad_request(format!("pod {name} does not have a host assigned")));
    };
    let address = kubelet_address(state, node).await?;
    let mut query: Vec<String> = LOG_PARAMETERS
        .iter()
        .filter_map(|key| request.query.get(key).map(|value| format!("{key}={}", encode(value))))
        .collect();
    query.sort();
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let path = format!("/containerLogs/{namespace}/{name}/{container}?{}", query.join("&"));
    proxy_get(state, address, &path).await
}

/// The kubelet's HTTPS address from the Node's status, as upstream: InternalIP and the reported kubelet port.
async fn kubelet_address(state: &State, node: &str) -> Result<SocketAddr, Status> {
    let nodes = apimachinery::registry::find("", "v1", "nodes").expect("nodes are registered");
    let key = crate::objects::key(nodes, None, node);
    let kv =
        state.store.get(&key, 0).await.map_err(|e| Status::service_unavailable(e.to_string()))?.ok_or_else(|| {
            Status::not_found(apimachinery::status::Target { group: "", resource: "nodes", name: node })
        })?;
    let object: Value = serde_json::from_slice(&kv.value).map_err(|e| Status::internal(e.to_string()))?;
    node_kubelet_address(&object)
}

/// Where a Node's kubelet serves HTTPS: its InternalIP (else ExternalIP) and `daemonEndpoints.kubeletEndpoint.Port`.
pub(crate) fn node_kubelet_address(object: &Value) -> Result<SocketAddr, Status> {
    let node = object["metadata"]["name"].as_str().unwrap_or_default();
    let addresses = object["status"]["addresses"].as_array().cloned().unwrap_or_default();
    let ip = ["InternalIP", "ExternalIP"]
        .iter()
        .find_map(|kind| {
            addresses.iter().find(|a| a["type"] == *kind).and_then(|a| a["address"].as_str()?.parse::<IpAddr>().ok())
        })
        .ok_or_else(|| Status::service_unavailable(format!("node {node:?} reports no address for its kubelet")))?;
    let port = object["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64().unwrap_or(10250);
    Ok(SocketAddr::new(ip, port as u16))
}

/// `GET path` on the kubelet at `address` over TLS with the API server's kubelet-client certificate; the kubelet's
/// serving certificate must chain to the cluster CA and name `address`.
async fn kubelet_get(
    tls: &Arc<rustls::ClientConfig>,
    address: SocketAddr,
    path: &str,
) -> Result<Response<hyper::body::Incoming>, String> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address))
        .await
        .map_err(|_| "connection timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(tls));
    let tls = connector.connect(ServerName::IpAddress(address.ip().into()), tcp).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, address.to_string())
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    sender.send_request(request).await.map_err(|e| e.to_string())
}

/// The whole body of a successful `GET path` on a kubelet, at most `limit` bytes (for scrapes, not streams).
pub(crate) async fn kubelet_fetch(
    tls: &Arc<rustls::ClientConfig>,
    address: SocketAddr,
    path: &str,
    limit: usize,
) -> Result<Bytes, String> {
    let response = kubelet_get(tls, address, path).await?;
    if !response.status().is_success() {
        return Err(format!("the kubelet answered {}", response.status()));
    }
    let body = http_body_util::Limited::new(response.into_body(), limit);
    body.collect().await.map(|collected| collected.to_bytes()).map_err(|e| e.to_string())
}

async fn proxy_get(state: &State, address: SocketAddr, path: &str) -> Result<Response<Body>, Status> {
    let response = kubelet_get(&state.kubelet_tls, address, path).await.map_err(|e| {
        Status::service_unavailable(format!("cannot reach the kubelet at https://{address}{path}: {e}"))
    })?;
    let (parts, mut incoming) = response.into_parts();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(Ok(frame)) = incoming.frame().await {
            if let Ok(data) = frame.into_data() {
                if tx.send(data).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut response = Response::new(ChannelBody(rx).boxed());
    *response.status_mut() = if parts.status.is_success() || parts.status.is_client_error() {
        parts.status
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if let Some(content_type) = parts.headers.get(hyper::header::CONTENT_TYPE) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, content_type.clone());
    }
    Ok(response)
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
