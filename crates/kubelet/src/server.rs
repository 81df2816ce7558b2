//! The kubelet's HTTPS server (port 10250 by default): container logs the API server proxies, and the resource
//! metrics it scrapes. Only clients with a certificate of the cluster CA in group `system:masters` (the API server's
//! kubelet-client identity) get in.

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

use crate::pods::PodManager;
use crate::{logs, stats, Config, KubeletError};

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
        let (acceptor, pods, config) = (acceptor.clone(), pods.clone(), config.clone());
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
                let (pods, config) = (pods.clone(), config.clone());
                async move { Ok::<_, Infallible>(handle(&pods, &config, admitted, request).await) }
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

async fn handle(
    pods: &PodManager,
    config: &Config,
    admitted: bool,
    request: Request<hyper::body::Incoming>,
) -> Response<Body> {
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
        ["metrics", "resource"] => resource_metrics(config).await,
        _ => status(&Status::no_route(&path)),
    }
}

/// Upstream's `/metrics/resource`, always in the text format.
async fn resource_metrics(config: &Config) -> Response<Body> {
    let text = stats::exposition(&stats::collect(&config.containers).await);
    let mut response = Response::new(Full::new(Bytes::from(text)).boxed());
    let content_type = hyper::header::HeaderValue::from_static(stats::CONTENT_TYPE);
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, content_type);
    response
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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::ServerName;

    use super::*;
    use crate::join::NodeCredentials;

    /// A certificate and key signed by `issuer`, for `groups` (the subject's organisations).
    fn issue(issuer: &Issuer<'_, KeyPair>, groups: &[&str], ip: Option<IpAddr>) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "test");
        for group in groups {
            params.distinguished_name.push(DnType::OrganizationName, *group);
        }
        params.subject_alt_names.extend(ip.map(rcgen::SanType::IpAddress));
        (params.signed_by(&key, issuer).unwrap().pem(), key.serialize_pem())
    }

    /// GET `path` from the kubelet at `address` with a client certificate: (status, content type, body).
    async fn get(address: SocketAddr, ca_pem: &str, client: &(String, String), path: &str) -> (u16, String, String) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
        let chain = vec![CertificateDer::from_pem_slice(client.0.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(client.1.as_bytes()).unwrap();
        let tls =
            rustls::ClientConfig::builder().with_root_certificates(roots).with_client_auth_cert(chain, key).unwrap();
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(ServerName::IpAddress(address.ip().into()), tcp)
            .await
            .unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let request = Request::get(path).header(hyper::header::HOST, "kubelet").body(Full::new(Bytes::new())).unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()[hyper::header::CONTENT_TYPE].to_str().unwrap().to_string();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn resource_metrics_need_a_masters_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca_params, ca_key);
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (serving_cert_pem, serving_key_pem) = issue(&issuer, &[], Some(localhost));
        let config = Config {
            node_name: "node".into(),
            node_ip: localhost,
            dir: dir.path().to_path_buf(),
            credentials: NodeCredentials {
                server: "https://127.0.0.1:1".into(),
                ca_pem: ca_pem.clone(),
                client_cert_pem: String::new(),
                client_key_pem: String::new(),
                serving_cert_pem,
                serving_key_pem,
            },
            port: 0,
            images: runtime::image::ImageStore::open(dir.path().join("images"), Default::default()).unwrap(),
            containers: runtime::container::ContainerRuntime::new(runtime::container::RuntimeConfig {
                oci_runtime: "runc".into(),
                state_dir: dir.path().join("state"),
                runtime_root: dir.path().join("runc"),
                shim: vec!["true".into()],
                cgroup_root: "k8rs-unused".into(),
            })
            .unwrap(),
            cni: network::Cni::new(network::CniConfig {
                conf_dir: dir.path().join("cni"),
                bin_dirs: vec![],
                cache_dir: dir.path().join("cni-cache"),
                node_netns: None,
            }),
            cni_conf_dir: dir.path().join("cni"),
            cluster_cidr: "10.42.0.0/16".into(),
            labels: vec![],
            runtime_version: "runc 1".into(),
        };
        let config = Arc::new(config);
        let api = crate::fake_api::FakeApi::start().await;
        let listener = TcpListener::bind((localhost, 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, config.clone(), PodManager::new(api.client(), config)));

        let node = issue(&issuer, &["system:nodes"], None);
        let (code, _, body) = get(address, &ca_pem, &node, "/metrics/resource").await;
        assert_eq!(code, 403, "{body}");

        let master = issue(&issuer, &["system:masters"], None);
        let (code, content_type, body) = get(address, &ca_pem, &master, "/metrics/resource").await;
        assert_eq!((code, content_type.as_str()), (200, stats::CONTENT_TYPE), "{body}");
        // The host's own root cgroup: this machine's (cgroup v1) totals.
        assert!(body.contains("\nnode_cpu_usage_seconds_total "), "{body}");
        assert!(body.ends_with("# TYPE resource_scrape_error gauge\nresource_scrape_error 0\n"), "{body}");
    }
}
