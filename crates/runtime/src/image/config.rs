use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde::Deserialize;

use super::reference::DOCKER_HUB;
use super::ImageError;

/// Registry mirrors, credentials and TLS settings in k3s's `registries.yaml` format:
/// ```yaml
/// mirrors:
///   docker.io:
///     endpoint: ["http://127.0.0.1:5000"]     # tried in order, then the registry itself
/// configs:
///   "127.0.0.1:5000":
///     auth: {username: u, password: p}       # or {auth: base64("u:p")}
///     tls: {insecure_skip_verify: true}      # or {ca_file: /path/ca.pem}
/// ```
/// Mirror endpoints with `http://` are plain HTTP. A mirror named `"*"` applies to every registry without its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConfig {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Keyed by registry or endpoint host (`host:port`).
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub auth: Option<RegistryAuthConfig>,
    pub tls: Option<RegistryTlsConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuthConfig {
    pub username: Option<String>,
    pub password: Option<String>,
    /// base64 of `username:password`.
    pub auth: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryTlsConfig {
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// PEM CA bundle trusted in addition to the system roots.
    pub ca_file: Option<String>,
}

/// User and password for one registry host, from registries.yaml or a pod's imagePullSecrets.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredential")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .finish()
    }
}

impl RegistriesConfig {
    /// Reads a registries.yaml; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<RegistriesConfig, ImageError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistriesConfig::default()),
            Err(e) => return Err(ImageError::io(format!("cannot read {}", path.display()))(e)),
        };
        Self::parse(&text).map_err(|detail| ImageError::Config { source_name: path.display().to_string(), detail })
    }

    fn parse(text: &str) -> Result<RegistriesConfig, String> {
        if text.trim().is_empty() {
            return Ok(RegistriesConfig::default());
        }
        let config: RegistriesConfig = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        for (host, registry) in &config.configs {
            if let Some(auth) = &registry.auth {
                auth.credential(host)?;
            }
        }
        Ok(config)
    }

    /// Where to look for `registry`'s content, in order: its mirrors, then the registry itself.
    pub(crate) fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mirrors = self.mirrors.get(registry).or_else(|| self.mirrors.get("*"));
        let mut endpoints: Vec<Endpoint> =
            mirrors.into_iter().flat_map(|m| &m.endpoint).map(|e| Endpoint::parse(e)).collect();
        if !endpoints.iter().any(|e| e.host == registry) {
            // As containerd does, a loopback registry without TLS settings is plain HTTP.
            let loopback = ["localhost", "127.", "[::1]"].iter().any(|p| registry.starts_with(p));
            let plain_http = loopback && self.configs.get(registry).is_none_or(|c| c.tls.is_none());
            endpoints.push(Endpoint { host: registry.to_string(), plain_http });
        }
        endpoints
    }

    pub(crate) fn credential(&self, host: &str) -> Option<RegistryCredential> {
        let auth = self.configs.get(host)?.auth.as_ref()?;
        auth.credential(host).ok()
    }

    pub(crate) fn tls(&self, host: &str) -> Option<&RegistryTlsConfig> {
        self.configs.get(host)?.tls.as_ref()
    }
}

impl RegistryAuthConfig {
    fn credential(&self, host: &str) -> Result<RegistryCredential, String> {
        let (username, password) = match (&self.auth, &self.username, &self.password) {
            (Some(auth), _, _) => decode_auth(auth).map_err(|e| format!("configs.\"{host}\".auth.auth: {e}"))?,
            (None, Some(user), password) => (user.clone(), password.clone().unwrap_or_default()),
            (None, None, _) => return Err(format!("configs.\"{host}\".auth needs username or auth")),
        };
        Ok(RegistryCredential { registry: host.to_string(), username, password })
    }
}

/// One place to fetch from: a mirror or the registry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub host: String,
    pub plain_http: bool,
}

impl Endpoint {
    fn parse(endpoint: &str) -> Endpoint {
        let (rest, plain_http) = match endpoint.strip_prefix("http://") {
            Some(rest) => (rest, true),
            None => (endpoint.strip_prefix("https://").unwrap_or(endpoint), false),
        };
        // Only the host counts: the registry API lives at /v2/ on it.
        let host = rest.split('/').next().unwrap_or_default().to_string();
        Endpoint { host, plain_http }
    }
}

/// The registry host a docker config key or credential names: `https://index.docker.io/v1/` is `docker.io`.
pub(crate) fn normalize_registry_host(key: &str) -> String {
    let rest = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let host = rest.split('/').next().unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        host => host.to_string(),
    }
}

fn decode_auth(auth: &str) -> Result<(String, String), String> {
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|e| format!("not base64 ({e})"))?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 after base64 decoding".to_string())?;
    let (user, password) = text.split_once(':').ok_or("expected base64 of \"username:password\"")?;
    Ok((user.to_string(), password.to_string()))
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Credentials from a `kubernetes.io/dockerconfigjson` secret's `.dockerconfigjson`
/// (`{"auths": {"host": {"auth": base64("user:pass")} | {"username": .., "password": ..}}}`).
pub fn credentials_from_docker_config(json: &[u8]) -> Result<Vec<RegistryCredential>, ImageError> {
    let invalid = |detail: String| ImageError::Config { source_name: ".dockerconfigjson".into(), detail };
    let config: DockerConfig = serde_json::from_slice(json).map_err(|e| invalid(e.to_string()))?;
    let mut credentials = Vec::new();
    for (key, entry) in config.auths {
        let (username, password) = match (entry.auth, entry.username) {
            (Some(auth), _) if !auth.is_empty() => {
                decode_auth(&auth).map_err(|e| invalid(format!("auths.\"{key}\": {e}")))?
            }
            (_, Some(username)) => (username, entry.password.unwrap_or_default()),
            _ => continue,
        };
        credentials.push(RegistryCredential { registry: normalize_registry_host(&key), username, password });
    }
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_yaml() {
        let config = RegistriesConfig::parse(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:5000\", \"https://m.example/v2\"]\n\
             configs:\n  \"127.0.0.1:5000\":\n    auth: {auth: dTpw}\n    tls: {insecure_skip_verify: true}\n",
        )
        .unwrap();
        let endpoints = config.endpoints("docker.io");
        assert_eq!(
            endpoints,
            [
                Endpoint { host: "127.0.0.1:5000".into(), plain_http: true },
                Endpoint { host: "m.example".into(), plain_http: false },
                Endpoint { host: "docker.io".into(), plain_http: false },
            ]
        );
        let credential = config.credential("127.0.0.1:5000").unwrap();
        assert_eq!((credential.username.as_str(), credential.password.as_str()), ("u", "p"));
        assert!(config.tls("127.0.0.1:5000").unwrap().insecure_skip_verify);
        assert!(RegistriesConfig::parse("mirrors: {x: {endpoints: []}}").is_err());
        let missing = RegistriesConfig::load(Path::new("/nonexistent/registries.yaml")).unwrap();
        assert!(missing.mirrors.is_empty() && missing.configs.is_empty());
    }

    #[test]
    fn docker_config_json() {
        let json = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},
            "r.example:5000":{"username":"a","password":"b"}}}"#;
        let credentials = credentials_from_docker_config(json).unwrap();
        assert_eq!(credentials[0].registry, "docker.io");
        assert_eq!((credentials[0].username.as_str(), credentials[0].password.as_str()), ("u", "p"));
        assert_eq!(credentials[1].registry, "r.example:5000");
        assert!(credentials_from_docker_config(br#"{"auths":{"x":{"auth":"!!"}}}"#).is_err());
    }
}
