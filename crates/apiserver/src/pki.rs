//! The cluster's certificates: a CA, the API server's serving certificate and the admin's client certificate,
//! and the key that signs service-account tokens, made on first start and reused from the data directory on
//! every start after.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a usable certificate or key: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Everything TLS needs, as files in `DIR/server/tls`.
#[derive(Clone, Debug)]
pub struct Pki {
    pub ca: CertKey,
    pub serving: CertKey,
    pub admin: CertKey,
    /// The controllers' own credentials: they never use the admin's.
    pub controllers: CertKey,
    /// What the API server presents to kubelets when it proxies logs and streams to them.
    pub kubelet_client: CertKey,
    /// The ECDSA P-256 key (PKCS#8 PEM) that signs service-account tokens; made once, like the CA, so that tokens
    /// stay valid across restarts.
    pub service_account_key: String,
}

/// Who a client certificate names: CN is the user, each O a group.
pub struct ClientIdentity<'a> {
    pub user: &'a str,
    pub groups: &'a [&'a str],
}

fn read(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io { path: path.into(), source }),
    }
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io { path: path.into(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(if private { 0o600 } else { 0o644 });
    let mut file = options.open(path).map_err(io)?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io)
}

fn key_pair(path: &Path, pem: &str) -> Result<KeyPair, PkiError> {
    KeyPair::from_pem(pem).map_err(|e| PkiError::Invalid { path: path.into(), reason: e.to_string() })
}

impl Pki {
    /// Loads the certificates from `dir`, making any that are missing. The CA is made once and never replaced:
    /// every certificate ever issued by this cluster chains to it.
    pub fn load_or_create(dir: &Path, serving_names: &[String], serving_ips: &[IpAddr]) -> Result<Pki, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io { path: dir.into(), source })?;
        let (ca_cert, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
        let ca = match (read(&ca_cert)?, read(&ca_key)?) {
            (Some(cert_pem), Some(key_pem)) => CertKey { cert_pem, key_pem },
            (None, None) => {
                let ca = make_ca()?;
                write(&ca_key, &ca.key_pem, true)?;
                write(&ca_cert, &ca.cert_pem, false)?;
                ca
            }
            _ => {
                return Err(PkiError::Invalid {
                    path: dir.into(),
                    reason: "one of ca.crt and ca.key is missing; restore it or remove both to make a new CA".into(),
                })
            }
        };
        let ca_signing_key = key_pair(&ca_key, &ca.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_signing_key)
            .map_err(|e| PkiError::Invalid { path: ca_cert.clone(), reason: e.to_string() })?;
        // A serving certificate that no longer names every address of this machine (moved, new interfaces) is
        // made again; clients would refuse it otherwise.
        let serving_path = dir.join("serving.crt");
        if read(&serving_path)?.is_some_and(|pem| !covers(&pem, serving_names, serving_ips)) {
            tracing::info!(path = %serving_path.display(), "the serving certificate misses an address; making a new one");
            std::fs::remove_file(&serving_path)
                .map_err(|source| PkiError::Io { path: serving_path.clone(), source })?;
        }
        let serving = load_or_issue(dir, "serving", &issuer, |params| {
            params.distinguished_name.push(DnType::CommonName, "k8rs-apiserver");
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            for name in serving_names {
                params.subject_alt_names.push(SanType::DnsName(name.as_str().try_into()?));
            }
            for ip in serving_ips {
                params.subject_alt_names.push(SanType::IpAddress(*ip));
            }
            Ok(())
        })?;
        let admin =
            issue_client(dir, "admin", &issuer, ClientIdentity { user: "system:admin", groups: &["system:masters"] })?;
        let controllers = issue_client(
            dir,
            "controller-manager",
            &issuer,
            ClientIdentity { user: "system:kube-controller-manager", groups: &[] },
        )?;
        let kubelet_client = issue_client(
            dir,
            "apiserver-kubelet-client",
            &issuer,
            ClientIdentity { user: "kube-apiserver-kubelet-client", groups: &["system:masters"] },
        )?;
        let key_path = dir.join("service-account.key");
        let service_account_key = match read(&key_path)? {
            Some(pem) => pem,
            None => {
                let pem = crate::jwt::generate_pkcs8_pem();
                write(&key_path, &pem, true)?;
                pem
            }
        };
        crate::jwt::SigningKey::from_pkcs8_pem(&service_account_key)
            .map_err(|reason| PkiError::Invalid { path: key_path, reason })?;
        Ok(Pki { ca, serving, admin, controllers, kubelet_client, service_account_key })
    }

    /// The CA as a certificate issuer (for node certificates signed on request).
    pub fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let invalid = |reason: String| PkiError::Invalid { path: "ca.crt".into(), reason };
        let key = KeyPair::from_pem(&self.ca.key_pem).map_err(|e| invalid(e.to_string()))?;
        Issuer::from_ca_cert_pem(&self.ca.cert_pem, key).map_err(|e| invalid(e.to_string()))
    }
}

/// Whether a PEM certificate's subject alternative names include every name and address given.
fn covers(pem: &str, names: &[String], ips: &[IpAddr]) -> bool {
    use rustls::pki_types::pem::PemObject;
    let Ok(der) = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()) else { return false };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else { return false };
    let Ok(Some(san)) = cert.subject_alternative_name() else { return false };
    let mut dns = Vec::new();
    let mut addresses = Vec::new();
    for name in &san.value.general_names {
        match name {
            x509_parser::extensions::GeneralName::DNSName(name) => dns.push(name.to_string()),
            x509_parser::extensions::GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => addresses.push(IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes"))),
                16 => addresses.push(IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes"))),
                _ => {}
            },
            _ => {}
        }
    }
    names.iter().all(|n| dns.contains(n)) && ips.iter().all(|ip| addresses.contains(ip))
}

fn make_ca() -> Result<CertKey, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "k8rs-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key)?;
    Ok(CertKey { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// A client certificate for `identity`, reused from `dir/NAME.crt` if it exists.
pub fn issue_client(
    dir: &Path,
    name: &str,
    issuer: &Issuer<'_, KeyPair>,
    identity: ClientIdentity<'_>,
) -> Result<CertKey, PkiError> {
    load_or_issue(dir, name, issuer, |params| {
        params.distinguished_name.push(DnType::CommonName, identity.user);
        for group in identity.groups {
            params.distinguished_name.push(DnType::OrganizationName, *group);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Ok(())
    })
}

fn load_or_issue(
    dir: &Path,
    name: &str,
    issuer: &Issuer<'_, KeyPair>,
    fill: impl FnOnce(&mut CertificateParams) -> Result<(), rcgen::Error>,
) -> Result<CertKey, PkiError> {
    let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    if let (Some(cert_pem), Some(key_pem)) = (read(&cert_path)?, read(&key_path)?) {
        return Ok(CertKey { cert_pem, key_pem });
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.use_authority_key_identifier_extension = true;
    fill(&mut params)?;
    let cert = params.signed_by(&key, issuer)?;
    let pair = CertKey { cert_pem: cert.pem(), key_pem: key.serialize_pem() };
    write(&key_path, &pair.key_pem, true)?;
    write(&cert_path, &pair.cert_pem, false)?;
    Ok(pair)
}

/// Signs the public key of a PEM certificate request for a node, ignoring what the request asks for: the
/// subject is always `system:node:NAME` in group `system:nodes`, and a serving certificate names only the
/// addresses and host names given here.
pub fn sign_node_request(
    issuer: &Issuer<'_, KeyPair>,
    csr_pem: &str,
    node: &str,
    serving: Option<(&[String], &[IpAddr])>,
) -> Result<String, String> {
    let request = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| format!("not a valid PEM certificate request: {e}"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name.push(DnType::CommonName, format!("system:node:{node}"));
    params.distinguished_name.push(DnType::OrganizationName, "system:nodes");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.use_authority_key_identifier_extension = true;
    match serving {
        Some((names, ips)) => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            for name in names {
                let name = name.as_str().try_into().map_err(|e| format!("host name {name:?}: {e}"))?;
                params.subject_alt_names.push(SanType::DnsName(name));
            }
            params.subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        }
        None => params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
    }
    let signable = rcgen::CertificateSigningRequestParams { params, public_key: request.public_key };
    signable.signed_by(issuer).map(|cert| cert.pem()).map_err(|e| e.to_string())
}

/// The addresses of this machine's interfaces (to put in the serving certificate).
pub fn local_addresses() -> Vec<IpAddr> {
    let mut addresses = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that we only read, then free exactly once.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return addresses;
        }
        let mut entry = list;
        while !entry.is_null() {
            let address = (*entry).ifa_addr;
            if !address.is_null() {
                match i32::from((*address).sa_family) {
                    libc::AF_INET => {
                        let v4 = &*(address as *const libc::sockaddr_in);
                        addresses.push(IpAddr::from(u32::from_be(v4.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let v6 = &*(address as *const libc::sockaddr_in6);
                        addresses.push(IpAddr::from(v6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            entry = (*entry).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    addresses.sort();
    addresses.dedup();
    addresses
}

/// A kubeconfig with context `k8rs` that reaches `server` as the holder of `client`.
pub fn kubeconfig(server: &str, ca: &CertKey, client: &CertKey) -> String {
    use base64::Engine as _;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: k8rs\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {}\nusers:\n- name: k8rs-admin\n  user:\n    client-certificate-data: {}\n    \
         client-key-data: {}\ncontexts:\n- name: k8rs\n  context:\n    cluster: k8rs\n    user: k8rs-admin\n\
         current-context: k8rs\npreferences: {{}}\n",
        b64(&ca.cert_pem),
        b64(&client.cert_pem),
        b64(&client.key_pem)
    )
}

/// Writes a file only its owner can read (it holds credentials), making its directory if needed.
pub fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io { path: dir.into(), source })?;
    }
    write(path, text, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_address_gets_a_new_serving_certificate_from_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string()];
        let first = Pki::load_or_create(dir.path(), &names, &["10.0.0.1".parse().unwrap()]).unwrap();
        let again = Pki::load_or_create(dir.path(), &names, &["10.0.0.1".parse().unwrap()]).unwrap();
        assert_eq!(first.serving.cert_pem, again.serving.cert_pem, "an unchanged machine keeps its certificate");
        let ips: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.99.0.1".parse().unwrap()];
        let moved = Pki::load_or_create(dir.path(), &names, &ips).unwrap();
        assert_ne!(first.serving.cert_pem, moved.serving.cert_pem);
        assert!(covers(&moved.serving.cert_pem, &names, &ips));
        assert!(!covers(&first.serving.cert_pem, &names, &ips));
        assert_eq!(first.ca.cert_pem, moved.ca.cert_pem);
        assert_eq!(first.admin.cert_pem, moved.admin.cert_pem);
        assert_eq!(first.service_account_key, moved.service_account_key, "the token signing key is kept");
        assert!(first.service_account_key.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
}
