//! A pod's volumes on the node (emptyDir, hostPath, configMap, secret, downwardAPI labels/annotations) and the
//! files every container gets (/etc/hosts, /etc/hostname, /etc/resolv.conf), all under the pod's directory.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret};
use kube::api::Api;
use runtime::container::Mount;

/// Prepares every volume of the pod; returns volume name → directory or file on the node.
pub async fn prepare(client: &kube::Client, pod: &Pod, pod_dir: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut paths = BTreeMap::new();
    for volume in pod.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default() {
        let dir = pod_dir.join("volumes").join(&volume.name);
        let io = |e: std::io::Error| format!("volume {:?}: {e}", volume.name);
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
            paths.insert(volume.name.clone(), path);
            continue;
        }
        std::fs::create_dir_all(&dir).map_err(io)?;
        if let Some(config_map) = &volume.config_map {
            let name = config_map.name.clone();
            match Api::<ConfigMap>::namespaced(client.clone(), namespace).get(&name).await {
                Ok(object) => {
                    let mut data: BTreeMap<String, Vec<u8>> =
                        object.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                    data.extend(object.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
                    write_keys(&dir, &data, config_map.items.as_deref(), config_map.default_mode).map_err(io)?;
                }
                Err(kube::Error::Api(e)) if e.code == 404 && config_map.optional == Some(true) => {}
                Err(e) => return Err(format!("configmap \"{name}\" not found: {e}")),
            }
        } else if let Some(secret) = &volume.secret {
            let name = secret.secret_name.clone().unwrap_or_default();
            match Api::<Secret>::namespaced(client.clone(), namespace).get(&name).await {
                Ok(object) => {
                    let data: BTreeMap<String, Vec<u8>> =
                        object.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
                    write_keys(&dir, &data, secret.items.as_deref(), secret.default_mode.or(Some(0o644)))
                        .map_err(io)?;
                }
                Err(kube::Error::Api(e)) if e.code == 404 && secret.optional == Some(true) => {}
                Err(e) => return Err(format!("secret \"{name}\" not found: {e}")),
            }
        } else if let Some(downward) = &volume.downward_api {
            for item in downward.items.as_deref().unwrap_or_default() {
                let value = match item.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                    Some("metadata.name") => pod.metadata.name.clone().unwrap_or_default(),
                    Some("metadata.namespace") => namespace.to_string(),
                    Some("metadata.uid") => pod.metadata.uid.clone().unwrap_or_default(),
                    Some("metadata.labels") => key_values(pod.metadata.labels.as_ref()),
                    Some("metadata.annotations") => key_values(pod.metadata.annotations.as_ref()),
                    _ => continue,
                };
                let path = dir.join(&item.path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                std::fs::write(&path, value).map_err(io)?;
            }
        } else if let Some(empty_dir) = &volume.empty_dir {
            if empty_dir.medium.as_deref() == Some("Memory") {
                mount_tmpfs(&dir).map_err(io)?;
            }
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        } else {
            return Err(format!("volume {:?}: this kind of volume is not supported on k8rs nodes yet", volume.name));
        }
        paths.insert(volume.name.clone(), dir);
    }
    Ok(paths)
}

fn key_values(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter().flatten().map(|(k, v)| format!("{k}={v:?}\n")).collect()
}

fn write_keys(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
) -> std::io::Result<()> {
    let write = |relative: &str, bytes: &[u8], mode: Option<i32>| -> std::io::Result<()> {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode.or(default_mode).unwrap_or(0o644) as u32))
    };
    match items {
        Some(items) => {
            for item in items {
                if let Some(bytes) = data.get(&item.key) {
                    write(&item.path, bytes, item.mode)?;
                }
            }
        }
        None => {
            for (key, bytes) in data {
                write(key, bytes, None)?;
            }
        }
    }
    Ok(())
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
