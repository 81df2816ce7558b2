//! Joining a cluster: the agent checks the CA against the hash in the join token, then has it sign two key pairs
//! made here (client and kubelet serving certificates) through `POST /v1-k8rs/node-certificates`, authenticated by
//! the token. The credentials are kept in the agent's directory and reused while they chain to the same CA.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{CertificateParams, KeyPair};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("cannot reach the server {server}: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("the server's CA does not match the join token (the token was made for another cluster, or someone is in between)")]
    CaMismatch,
    #[error("the server refused the join token: {0}")]
    Refused(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A node's identity in the cluster: its own client and serving certificates, and the CA.
#[derive(Clone)]
pub struct NodeCredentials {
    pub server: String,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
}

impl NodeCredentials {
    /// A client of the API server as this node.
    pub async fn client(&self) -> Result<kube::Client, kube::Error> {
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k8rs\n  cluster:\n    server: {}\n    \
             certificate-authority-data: {}\nusers:\n- name: node\n  user:\n    client-certificate-data: {}\n    \
             client-key-data: {}\ncontexts:\n- name: k8rs\n  context: {{cluster: k8rs, user: node}}\ncurrent-context: k8rs\n",
            self.server,
            b64(&self.ca_pem),
            b64(&self.client_cert_pem),
            b64(&self.client_key_pem)
        );
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig).map_err(kube::Error::InferKubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(kube::Error::InferKubeconfig)?;
        kube::Client::try_from(config)
    }
}

/// Obtains (or reloads from `dir`) this node's credentials.
pub async fn join(
    server: &str,
    token: &str,
    node_name: &str,
    addresses: &[IpAddr],
    dir: &Path,
) -> Result<NodeCredentials, JoinError> {
    let files = ["ca.crt", "client.crt", "client.key", "serving.crt", "serving.key"].map(|f| dir.join(f));
    let ca_pem = fetch_ca(server, token).await?;
    if let [Ok(ca), Ok(client_cert), Ok(client_key), Ok(serving_cert), Ok(serving_key)] =
        files.clone().map(std::fs::read_to_string)
    {
        if ca == ca_pem {
            return Ok(NodeCredentials {
                server: server.into(),
                ca_pem: ca,
                client_cert_pem: client_cert,
                client_key_pem: client_key,
                serving_cert_pem: serving_cert,
                serving_key_pem: serving_key,
            });
        }
    }
    let invalid = |e: rcgen::Error| JoinError::Invalid(format!("cannot make a key pair: {e}"));
    let client_key = KeyPair::generate().map_err(invalid)?;
    let serving_key = KeyPair::generate().map_err(invalid)?;
    let request = |key: &KeyPair| -> Result<String, JoinError> {
        let params = CertificateParams::new(Vec::<String>::new()).map_err(invalid)?;
        params.serialize_request(key).map_err(invalid)?.pem().map_err(invalid)
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
    let hostnames: Vec<&str> = [node_name, hostname.as_str()].into_iter().filter(|h| !h.is_empty()).collect();
    let body = json!({
        "nodeName": node_name,
        "clientRequest": request(&client_key)?,
        "servingRequest": request(&serving_key)?,
        "addresses": addresses,
        "hostnames": hostnames,
    });
    let answer =
        https(server, &ca_pem, "POST", "/v1-k8rs/node-certificates", Some(token), Some(body.to_string())).await?;
    let answer: Value = serde_json::from_slice(&answer)
        .map_err(|e| JoinError::Invalid(format!("the server's answer is not JSON: {e}")))?;
    let field = |name: &str| {
        answer[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| JoinError::Invalid(format!("the server's answer has no {name}")))
    };
    let credentials = NodeCredentials {
        server: server.into(),
        ca_pem,
        client_cert_pem: field("clientCertificate")?,
        client_key_pem: client_key.serialize_pem(),
        serving_cert_pem: field("servingCertificate")?,
        serving_key_pem: serving_key.serialize_pem(),
    };
    std::fs::create_dir_all(dir).map_err(|source| JoinError::Io { path: dir.into(), source })?;
    for (path, text) in files.iter().zip([
        &credentials.ca_pem,
        &credentials.client_cert_pem,
        &credentials.client_key_pem,
        &credentials.serving_cert_pem,
        &credentials.serving_key_pem,
    ]) {
        write_private(path, text)?;
    }
    Ok(credentials)
}

fn write_private(path: &Path, text: &str) -> Result<(), JoinError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| JoinError::Io { path: path.into(), source };
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

/// The cluster CA, checked against a k3s-style token (`K10<sha256 of the CA>::…`); a token without a hash is
/// trusted on first use.
async fn fetch_ca(server: &str, token: &str) -> Result<String, JoinError> {
    let pem = https(server, "", "GET", "/cacerts", None, None).await?;
    let pem = String::from_utf8(pem).map_err(|_| JoinError::Invalid("the server's CA is not text".into()))?;
    if let Some(hash) = token.strip_prefix("K10").and_then(|rest| rest.split_once("::")).map(|(hash, _)| hash) {
        let actual: String = ring::digest::digest(&ring::digest::SHA256, pem.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !hash.eq_ignore_ascii_case(&actual) {
            return Err(JoinError::CaMismatch);
        }
    } else {
        tracing::warn!("the join token carries no CA hash: trusting the server's CA on first use");
    }
    Ok(pem)
}

/// One HTTPS request. With an empty `ca_pem` the server's certificate is not checked (only to fetch the CA, which
/// is then checked against the token).
async fn https(
    server: &str,
    ca_pem: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<Vec<u8>, JoinError> {
    use http_body_util::BodyExt;
    use rustls::pki_types::pem::PemObject;
    let unreachable = |detail: String| JoinError::Unreachable { server: server.into(), detail };
    let url: hyper::Uri = server.parse().map_err(|e| JoinError::Invalid(format!("--server {server:?}: {e}")))?;
    let host = url.host().ok_or_else(|| JoinError::Invalid(format!("--server {server:?} names no host")))?.to_string();
    let port = url.port_u16().unwrap_or(443);
    let tls = if ca_pem.is_empty() {
        rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()).flatten() {
            let _ = roots.add(cert);
        }
        rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()
    };
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|e| JoinError::Invalid(format!("--server host {host:?}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder().method(method).uri(path).header("host", &host);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body.unwrap_or_default())))
        .map_err(|e| JoinError::Invalid(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| unreachable(e.to_string()))?.to_bytes().to_vec();
    if !status.is_success() {
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(JoinError::Refused(format!("{status}: {message}")));
    }
    Ok(body)
}

/// Only for fetching the CA, which is verified against the token's hash afterwards.
#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}
