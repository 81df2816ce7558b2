//! The kubelet's HTTPS server (port 10250 by default): what the API server proxies to it. Only clients with a
//! certificate of the cluster CA in group `system:masters` (the API server's kubelet-client identity) get in.

use std::convert::Infallible;
use std::sync::Arc;

use apimachinery::status::Status;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::logs;
use crate::pods::PodManager;
use crate::{Config, KubeletError};

type Body = BoxBody<Bytes, Infallible>;

pub async fn bind(config: &Config) -> Result<TcpListener, KubeletError> {
    let address = std::net::SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), config.port);
    TcpListener::bind(address).await.map_err(|e| KubeletError::Server(format!("cannot listen on {address}: {e}")))
}

fn tls(config: &Config) -> Result<rustls::ServerConfig, String> {
    let credentials = &config.credentials;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(credentials.ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().map_err(|e| e.to_string())?;
    let chain = CertificateDer::pem_slice_iter(credentials.serving_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(credentials.serving_key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut server = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(server)
}

pub async fn serve(listener: TcpListener, config: Arc<Config>, pods: PodManager) {
    let tls = match tls(&config) {
        Ok(tls) => Arc::new(tls),
        Err(error) => return tracing::error!(%error, "the kubelet server cannot start"),
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let (acceptor, pods) = (acceptor.clone(), pods.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return tracing::debug!(%peer, "kubelet TLS handshake failed");
            };
            let admitted = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .is_some_and(|cert| is_master(cert));
            let service = hyper::service::service_fn(move |request| {
                let pods = pods.clone();
                async move { Ok::<_, Infallible>(handle(&pods, admitted, request).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn is_master(cert: &CertificateDer<'_>) -> bool {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else { return false };
    let groups = parsed.subject().iter_organization().filter_map(|o| o.as_str().ok()).collect::<Vec<_>>();
    groups.contains(&"system:masters")
}

fn status(status: &Status) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(status.to_body())).boxed());
    *response.status_mut() = StatusCode::from_u16(status.code).unwrap_or(StatusCode::BAD_REQUEST);
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/json".parse().expect("ASCII"));
    response
}

async fn handle(pods: &PodManager, admitted: bool, request: Request<hyper::body::Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    if path == "/healthz" {
        return Response::new(Full::new(Bytes::from_static(b"ok")).boxed());
    }
    if !admitted {
        return status(&Status::forbidden(format!("forbidden: {path} needs a client certificate of the API server")));
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["containerLogs", namespace, pod, container] => {
            container_logs(pods, namespace, pod, container, request.uri().query())
        }
        _ => status(&Status::no_route(&path)),
    }
}

fn container_logs(
    pods: &PodManager,
    namespace: &str,
    pod: &str,
    container: &str,
    query: Option<&str>,
) -> Response<Body> {
    let query: Vec<(String, String)> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('=').map(|(k, v)| (k.to_string(), decode(v))))
        .collect();
    let get = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let flag = |key: &str| get(key).is_some_and(|v| v == "true" || v == "1");
    let number = |key: &str| get(key).and_then(|v| v.parse::<i64>().ok());
    let Some(view) = pods.view(namespace, pod) else {
        return status(&Status::not_found(apimachinery::status::Target { group: "", resource: "pods", name: pod }));
    };
    let Some(container_view) = view.containers.get(container).cloned() else {
        return status(&Status::bad_request(format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
        )));
    };
    let previous = flag("previous");
    let attempt = if previous {
        match container_view.previous_attempt {
            Some(attempt) => attempt,
            None => {
                return status(&Status::bad_request(format!(
                    "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                )))
            }
        }
    } else {
        match (container_view.attempt, &container_view.waiting) {
            (Some(_), Some((reason, _))) if reason != "CrashLoopBackOff" => {
                return status(&Status::bad_request(format!(
                    "container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}"
                )));
            }
            (Some(attempt), _) => attempt,
            (None, waiting) => {
                let reason = waiting.as_ref().map_or("ContainerCreating", |w| w.0.as_str());
                return status(&Status::bad_request(format!(
                    "container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}"
                )));
            }
        }
    };
    let since = number("sinceSeconds")
        .map(|s| {
            apimachinery::time::rfc3339(std::time::SystemTime::now() - std::time::Duration::from_secs(s.max(0) as u64))
        })
        .or_else(|| get("sinceTime").map(str::to_string));
    let options = logs::Options {
        follow: flag("follow") && !previous,
        tail_lines: number("tailLines").filter(|n| *n >= 0).map(|n| n as usize),
        since,
        timestamps: flag("timestamps"),
        limit_bytes: number("limitBytes").filter(|n| *n > 0).map(|n| n as usize),
    };
    let path = pods.log_dir(namespace, pod, &view.uid, container).join(format!("{attempt}.log"));
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let (watcher, namespace, pod, container) =
        (pods.clone(), namespace.to_string(), pod.to_string(), container.to_string());
    let running = move || {
        watcher
            .view(&namespace, &pod)
            .and_then(|v| v.containers.get(&container).cloned())
            .is_some_and(|c| c.running && c.attempt == Some(attempt))
    };
    logs::stream(path, options, running, tx);
    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    }));
    let mut response = Response::new(BodyExt::boxed(body));
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, "text/plain".parse().expect("ASCII"));
    response
}

fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
