//! A pod's volumes on the node (emptyDir, hostPath, and the volumes whose files the kubelet writes: configMap,
//! secret, downwardAPI, projected) and the files every container gets (/etc/hosts, /etc/hostname,
//! /etc/resolv.conf), all under the pod's directory.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Secret, Volume};
use kube::api::Api;
use runtime::container::Mount;

use crate::atomic_writer;
use crate::projection::{self, Source};
use crate::tokens::TokenManager;

/// Prepares every volume of the pod; returns volume name → directory or file on the node.
pub async fn prepare(
    client: &kube::Client,
    tokens: &mut TokenManager,
    pod: &Pod,
    pod_dir: &Path,
) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut paths = BTreeMap::new();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let path = set_up(client, tokens, pod, pod_dir, volume).await.map_err(|e| failed(volume, e))?;
        paths.insert(volume.name.clone(), path);
    }
    Ok(paths)
}

/// Writes again the projected volumes that hold service account tokens (the tokens due for renewal are renewed).
pub async fn renew_tokens(
    client: &kube::Client,
    tokens: &mut TokenManager,
    pod: &Pod,
    pod_dir: &Path,
) -> Result<(), String> {
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    for volume in volumes.filter(|v| v.projected.as_ref().is_some_and(projection::holds_token)) {
        set_up(client, tokens, pod, pod_dir, volume).await.map_err(|e| failed(volume, e))?;
    }
    Ok(())
}

fn failed(volume: &Volume, error: String) -> String {
    format!("MountVolume.SetUp failed for volume {:?} : {error}", volume.name)
}

async fn set_up(
    client: &kube::Client,
    tokens: &mut TokenManager,
    pod: &Pod,
    pod_dir: &Path,
    volume: &Volume,
) -> Result<PathBuf, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let io = |e: std::io::Error| e.to_string();
    if let Some(host_path) = &volume.host_path {
        let path = PathBuf::from(&host_path.path);
        match host_path.type_.as_deref().unwrap_or("") {
            "DirectoryOrCreate" => std::fs::create_dir_all(&path).map_err(io)?,
            "FileOrCreate" if !path.exists() => {
                std::fs::File::create(&path).map_err(io)?;
            }
            "Directory" if !path.is_dir() => {
                return Err(format!("hostPath type check failed: {} is not a directory", host_path.path))
            }
            "File" if !path.is_file() => {
                return Err(format!("hostPath type check failed: {} is not a file", host_path.path))
            }
            _ => {}
        }
        return Ok(path);
    }
    let dir = pod_dir.join("volumes").join(&volume.name);
    std::fs::create_dir_all(&dir).map_err(io)?;
    let files = if let Some(c) = &volume.config_map {
        let (optional, mode) = (c.optional == Some(true), projection::default_mode(c.default_mode));
        projection::keys(client, namespace, Source::ConfigMap, &c.name, c.items.as_deref(), optional, mode).await?
    } else if let Some(s) = &volume.secret {
        let (optional, mode) = (s.optional == Some(true), projection::default_mode(s.default_mode));
        let name = s.secret_name.as_deref().unwrap_or_default();
        projection::keys(client, namespace, Source::Secret, name, s.items.as_deref(), optional, mode).await?
    } else if let Some(d) = &volume.downward_api {
        projection::downward(pod, d.items.as_deref().unwrap_or_default(), projection::default_mode(d.default_mode))?
    } else if let Some(projected) = &volume.projected {
        projection::projected(client, tokens, pod, projected).await?
    } else if let Some(empty_dir) = &volume.empty_dir {
        if empty_dir.medium.as_deref() == Some("Memory") {
            mount_tmpfs(&dir).map_err(io)?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        return Ok(dir);
    } else {
        return Err("this kind of volume is not supported on k8rs nodes yet".into());
    };
    atomic_writer::write(&dir, &files).map_err(io)?;
    Ok(dir)
}

fn mount_tmpfs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if is_mount_point(dir) {
        return Ok(());
    }
    let target = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: plain mount(2) with valid C strings.
    let rc = unsafe { libc::mount(c"tmpfs".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn is_mount_point(dir: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let wanted = dir.to_string_lossy();
    text.lines().any(|l| l.split(' ').nth(4) == Some(&wanted))
}

/// Unmounts what `prepare` mounted (memory-backed emptyDirs) below the pod directory, then removes it.
pub fn cleanup(pod_dir: &Path) {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", pod_dir.display());
    let mut mounts: Vec<&str> =
        text.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&prefix)).collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in mounts {
        if let Ok(target) = std::ffi::CString::new(mount) {
            // SAFETY: umount2 with a valid C string; MNT_DETACH so a busy mount still goes.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
    if let Err(error) = std::fs::remove_dir_all(pod_dir) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %pod_dir.display(), %error, "cannot remove the pod directory");
        }
    }
}

/// The pod's /etc/hosts, /etc/hostname and /etc/resolv.conf (the node's own for host-network pods).
pub fn etc_files(pod: &Pod, pod_dir: &Path, pod_ip: Option<&str>) -> std::io::Result<Vec<Mount>> {
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.host_network == Some(true) {
        return Ok(["/etc/hosts", "/etc/resolv.conf"]
            .iter()
            .filter(|p| Path::new(p).exists())
            .map(|p| Mount { source: PathBuf::from(p), destination: p.to_string(), read_only: false })
            .collect());
    }
    let hostname = spec.hostname.clone().unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let mut hosts = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    if let Some(ip) = pod_ip {
        let fqdn = spec.subdomain.as_ref().map(|sub| {
            format!("{hostname}.{sub}.{}.svc.cluster.local\t", pod.metadata.namespace.as_deref().unwrap_or("default"))
        });
        hosts.push_str(&format!("{ip}\t{}{hostname}\n", fqdn.unwrap_or_default()));
    }
    for alias in spec.host_aliases.unwrap_or_default() {
        hosts.push_str(&format!(
            "\n# Entries added by HostAliases.\n{}\t{}\n",
            alias.ip,
            alias.hostnames.unwrap_or_default().join("\t")
        ));
    }
    let etc = pod_dir.join("etc");
    std::fs::create_dir_all(&etc)?;
    std::fs::write(etc.join("hosts"), hosts)?;
    std::fs::write(etc.join("hostname"), format!("{hostname}\n"))?;
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    std::fs::write(etc.join("resolv.conf"), resolv)?;
    Ok(["hosts", "hostname", "resolv.conf"]
        .iter()
        .map(|f| Mount { source: etc.join(f), destination: format!("/etc/{f}"), read_only: false })
        .collect())
}

/// A container's volume mounts, resolved to node paths (`subPath` inside the volume).
pub fn container_mounts(container: &Container, volumes: &BTreeMap<String, PathBuf>) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.as_deref().unwrap_or_default() {
        let source = volumes
            .get(&mount.name)
            .ok_or_else(|| format!("volume {:?} in volumeMounts is not a volume of the pod", mount.name))?;
        let source = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if sub.split('/').any(|part| part == "..") || sub.starts_with('/') => {
                return Err(format!("subPath {sub:?} must be a relative path inside the volume"));
            }
            Some(sub) => {
                let path = source.join(sub);
                if !path.exists() {
                    std::fs::create_dir_all(&path).map_err(|e| format!("subPath {sub:?}: {e}"))?;
                }
                path
            }
            None => source.clone(),
        };
        mounts.push(Mount { source, destination: mount.mount_path.clone(), read_only: mount.read_only == Some(true) });
    }
    Ok(mounts)
}

/// Decodes a `kubernetes.io/dockerconfigjson` secret into registry credentials.
pub async fn pull_credentials(client: &kube::Client, pod: &Pod) -> Vec<runtime::image::RegistryCredential> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut credentials = Vec::new();
    for reference in pod.spec.as_ref().and_then(|s| s.image_pull_secrets.clone()).unwrap_or_default() {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let Ok(secret) = secrets.get(&reference.name).await else {
            tracing::warn!(secret = %reference.name, "image pull secret not found");
            continue;
        };
        let data = secret.data.unwrap_or_default();
        let payload = data.get(".dockerconfigjson").or_else(|| data.get(".dockercfg"));
        if let Some(payload) = payload {
            match runtime::image::credentials_from_docker_config(&payload.0) {
                Ok(found) => credentials.extend(found),
                Err(error) => tracing::warn!(secret = %reference.name, %error, "unusable image pull secret"),
            }
        }
    }
    credentials
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_api::{granted, FakeApi};
    use serde_json::{json, Value};
    use std::time::SystemTime;

    const TOKEN: &str = "/api/v1/namespaces/shop/serviceaccounts/builder/token";
    const CA: &str = "/api/v1/namespaces/shop/configmaps/kube-root-ca.crt";

    fn pod(sources: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
            "spec": {
                "serviceAccountName": "builder",
                "containers": [{"name": "main", "image": "busybox"}],
                "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 0o440, "sources": sources}}],
            },
        }))
        .unwrap()
    }

    /// The sources the ServiceAccount admission plugin adds, and two more.
    fn api_access_sources() -> Value {
        json!([
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            {"secret": {"name": "extra", "optional": true}},
            {"configMap": {"name": "settings", "items": [{"key": "a", "path": "conf/a", "mode": 0o600}]}},
        ])
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        names
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    async fn api_with_config_maps() -> FakeApi {
        let api = FakeApi::start().await;
        api.respond("GET", CA, 200, json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"ca.crt": "CA"}}));
        let settings = json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "1", "b": "2"}});
        api.respond("GET", "/api/v1/namespaces/shop/configmaps/settings", 200, settings);
        api
    }

    #[tokio::test]
    async fn projected_volumes_hold_every_source() {
        let api = api_with_config_maps().await;
        api.respond("POST", TOKEN, 201, granted("t1", 3607, 3607));
        let (client, dir) = (api.client(), tempfile::tempdir().unwrap());
        let mut tokens = TokenManager::new(client.clone());
        let pod = pod(api_access_sources());
        let paths = prepare(&client, &mut tokens, &pod, dir.path()).await.unwrap();
        let volume = dir.path().join("volumes/kube-api-access");
        assert_eq!(paths["kube-api-access"], volume);

        let generation = std::fs::read_link(volume.join("..data")).unwrap().to_string_lossy().to_string();
        assert!(generation.starts_with("..2"), "{generation}");
        assert_eq!(names(&volume), [generation.as_str(), "..data", "ca.crt", "conf", "namespace", "token"]);
        assert_eq!(std::fs::read_link(volume.join("token")).unwrap(), Path::new("..data/token"));
        let read = |path: &str| std::fs::read_to_string(volume.join(path)).unwrap();
        assert_eq!(read("token"), "t1");
        assert_eq!(read("ca.crt"), "CA");
        assert_eq!(read("namespace"), "shop");
        assert_eq!(read("conf/a"), "1");
        assert_eq!(names(&volume.join("conf")), ["a"], "only the items");
        assert_eq!(mode(&volume.join("token")), 0o440, "defaultMode");
        assert_eq!(mode(&volume.join("namespace")), 0o440);
        assert_eq!(mode(&volume.join("conf/a")), 0o600, "the item's mode");

        let requests = api.requests();
        let token = requests.iter().find(|r| r.path == TOKEN).unwrap();
        assert_eq!(token.method, "POST");
        assert_eq!(
            token.body["spec"],
            json!({"audiences": [], "expirationSeconds": 3607,
                   "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u-1"}})
        );
        assert!(
            requests.iter().any(|r| r.path == "/api/v1/namespaces/shop/secrets/extra"),
            "the optional secret was asked for"
        );
        assert!(!tokens.renewal_due(SystemTime::now()));
    }

    #[tokio::test]
    async fn a_missing_required_source_a_failed_token_request_or_a_collision_fails_the_volume() {
        let api = FakeApi::start().await;
        let (client, dir) = (api.client(), tempfile::tempdir().unwrap());
        let mut tokens = TokenManager::new(client.clone());
        let error = prepare(&client, &mut tokens, &pod(api_access_sources()), dir.path()).await.unwrap_err();
        assert!(
            error.starts_with("MountVolume.SetUp failed for volume \"kube-api-access\" : failed to fetch token"),
            "{error}"
        );

        let api = api_with_config_maps().await;
        let client = api.client();
        let mut tokens = TokenManager::new(client.clone());
        let missing = json!([{"configMap": {"name": "absent", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]);
        let error = prepare(&client, &mut tokens, &pod(missing), dir.path()).await.unwrap_err();
        assert_eq!(error, "MountVolume.SetUp failed for volume \"kube-api-access\" : configmap \"absent\" not found");
        let missing_key = json!([{"configMap": {"name": "settings", "items": [{"key": "nope", "path": "x"}]}}]);
        let error = prepare(&client, &mut tokens, &pod(missing_key), dir.path()).await.unwrap_err();
        assert!(error.ends_with(": configmap references non-existent config key: nope"), "{error}");

        api.respond("POST", TOKEN, 201, granted("t1", 3600, 3600));
        let collision = json!([
            {"serviceAccountToken": {"path": "ca.crt"}},
            {"configMap": {"name": "kube-root-ca.crt"}},
        ]);
        let error = prepare(&client, &mut tokens, &pod(collision), dir.path()).await.unwrap_err();
        assert!(error.ends_with(": conflicting duplicate paths: more than one file at \"ca.crt\""), "{error}");
    }

    #[tokio::test]
    async fn renewal_writes_the_new_token_atomically() {
        let api = api_with_config_maps().await;
        // Granted for an hour, of which 50 minutes have gone: due for renewal.
        api.respond("POST", TOKEN, 201, granted("t1", 600, 3600));
        let (client, dir) = (api.client(), tempfile::tempdir().unwrap());
        let mut tokens = TokenManager::new(client.clone());
        let pod = pod(api_access_sources());
        prepare(&client, &mut tokens, &pod, dir.path()).await.unwrap();
        let volume = dir.path().join("volumes/kube-api-access");
        let first = std::fs::read_link(volume.join("..data")).unwrap();
        assert!(tokens.renewal_due(SystemTime::now()));

        api.respond("POST", TOKEN, 201, granted("t2", 3600, 3600));
        renew_tokens(&client, &mut tokens, &pod, dir.path()).await.unwrap();
        assert_eq!(std::fs::read_to_string(volume.join("token")).unwrap(), "t2");
        assert_eq!(std::fs::read_to_string(volume.join("ca.crt")).unwrap(), "CA");
        let second = std::fs::read_link(volume.join("..data")).unwrap();
        assert_ne!(first, second);
        assert!(!volume.join(&first).exists());
        assert!(!tokens.renewal_due(SystemTime::now()));
        assert_eq!(api.requests().iter().filter(|r| r.path == TOKEN).count(), 2);
    }
}
