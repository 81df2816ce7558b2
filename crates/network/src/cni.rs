//! The runtime side of CNI (what libcni does for the kubelet): load the node's network config, run its plugins in
//! order with the spec's environment, chain results, cache the final result for DEL.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

use crate::plugin::{self, Command, PluginError, PLUGIN_TYPE};
use crate::{netns, CniError};

/// Where the runtime finds network configs and plugins.
#[derive(Debug, Clone)]
pub struct CniConfig {
    /// Network configs; the first `*.conflist`, `*.conf` or `*.json` by name is used.
    pub conf_dir: PathBuf,
    /// Plugin binaries, searched in order (also passed to plugins as `CNI_PATH`).
    pub bin_dirs: Vec<PathBuf>,
    /// Results of ADD, kept for DEL.
    pub cache_dir: PathBuf,
    /// Run every plugin inside this network namespace (the node's); `None` = the caller's own.
    pub node_netns: Option<PathBuf>,
}

impl CniConfig {
    /// The usual locations of plugin binaries: Debian's package, then upstream's.
    pub fn default_bin_dirs() -> Vec<PathBuf> {
        vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")]
    }
}

/// One pod sandbox's attachment to the network.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub container_id: String,
    /// The pod's network namespace file, e.g. /var/run/netns/NAME.
    pub netns: PathBuf,
    /// Interface name inside the pod, normally eth0.
    pub ifname: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub port_mappings: Vec<PortMapping>,
}

/// A hostPort, passed to plugins that declare the `portMappings` capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// "tcp" or "udp".
    pub protocol: String,
    /// "" = every address of the node.
    #[serde(rename = "hostIP")]
    pub host_ip: String,
}

/// What ADD gives the kubelet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachResult {
    /// The pod's addresses; the first is the primary (status.podIP).
    pub ips: Vec<IpAddr>,
}

/// A loaded network config list.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NetworkList {
    #[serde(rename = "cniVersion")]
    cni_version: String,
    name: String,
    plugins: Vec<Value>,
}

/// The cache entry of one attachment: the final result and the config that produced it, so DEL undoes exactly
/// what ADD did even if the config on disk changed since.
#[derive(Debug, Serialize, Deserialize)]
struct CacheEntry {
    kind: String,
    #[serde(rename = "containerId")]
    container_id: String,
    #[serde(rename = "ifName")]
    if_name: String,
    config: NetworkList,
    result: Value,
}

/// Runs CNI plugins for pod sandboxes. Cheap to clone; safe to use from many tasks at once.
#[derive(Debug, Clone)]
pub struct Cni {
    config: Arc<CniConfig>,
}

impl Cni {
    pub fn new(config: CniConfig) -> Self {
        Cni { config: Arc::new(config) }
    }

    /// ADD for a pod sandbox: runs the network's plugins in order and caches the final result. On failure, the
    /// plugins are DEL'd so a retry starts clean (ADD is not idempotent).
    pub async fn add(&self, attachment: &Attachment) -> Result<AttachResult, CniError> {
        let started = Instant::now();
        let list = self.load_config().await?;
        let mut prev: Option<Value> = None;
        let mut ran = 0;
        let mut outcome = Ok(());
        for plugin in &list.plugins {
            ran += 1;
            match self.invoke(Command::Add, &list, plugin, attachment, prev.as_ref()).await {
                Ok(result) => prev = Some(result),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        let outcome = match outcome {
            Ok(()) => self.record(&list, attachment, prev.clone()).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(ips) => {
                tracing::debug!(container = %attachment.container_id, ?ips, elapsed = ?started.elapsed(), "CNI ADD done");
                Ok(AttachResult { ips })
            }
            Err(e) => {
                // Undo every plugin that may have done something, the failed one included, best effort.
                for plugin in list.plugins[..ran].iter().rev() {
                    if let Err(undo) = self.invoke(Command::Del, &list, plugin, attachment, prev.as_ref()).await {
                        let container = &attachment.container_id;
                        tracing::warn!(%container, error = %undo, "DEL after a failed ADD failed");
                    }
                }
                Err(e)
            }
        }
    }

    /// Checks the final result of ADD and caches it for DEL; returns the pod's addresses.
    async fn record(
        &self,
        list: &NetworkList,
        attachment: &Attachment,
        result: Option<Value>,
    ) -> Result<Vec<IpAddr>, CniError> {
        let result = result.unwrap_or(Value::Null);
        let bad = |reason: String| CniError::BadResult { plugin: list.name.clone(), reason };
        let ips = result_ips(&result).map_err(bad)?;
        if ips.is_empty() {
            return Err(bad("no IP address for the pod".into()));
        }
        let entry = CacheEntry {
            kind: "cniCacheV1".into(),
            container_id: attachment.container_id.clone(),
            if_name: attachment.ifname.clone(),
            config: list.clone(),
            result,
        };
        self.write_cache(attachment, &entry).await?;
        Ok(ips)
    }

    /// DEL for a pod sandbox, in reverse plugin order with the cached result. Succeeds if nothing is attached.
    pub async fn del(&self, attachment: &Attachment) -> Result<(), CniError> {
        let cache = self.cache_path(attachment);
        let (list, prev) = match tokio::fs::read(&cache).await {
            Ok(bytes) => {
                let entry: CacheEntry = serde_json::from_slice(&bytes).map_err(|e| CniError::InvalidConfig {
                    path: cache.clone(),
                    reason: format!("corrupt result cache: {e}"),
                })?;
                (entry.config, Some(entry.result))
            }
            // Never ADDed here (or the cache was lost): DEL with the current config, as the spec allows.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (self.load_config().await?, None),
            Err(e) => return Err(CniError::io(format!("cannot read {cache:?}"), e)),
        };
        for plugin in list.plugins.iter().rev() {
            self.invoke(Command::Del, &list, plugin, attachment, prev.as_ref()).await?;
        }
        match tokio::fs::remove_file(&cache).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CniError::io(format!("cannot remove {cache:?}"), e))
            }
            _ => Ok(()),
        }
    }

    /// libcni's file selection: the first config by name; a single-plugin `.conf`/`.json` becomes a list of one.
    async fn load_config(&self) -> Result<NetworkList, CniError> {
        let dir = &self.config.conf_dir;
        let mut names = Vec::new();
        let mut entries = match tokio::fs::read_dir(dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CniError::NoConfig(dir.clone())),
            Err(e) => return Err(CniError::io(format!("cannot read {dir:?}"), e)),
        };
        while let Some(entry) =
            entries.next_entry().await.map_err(|e| CniError::io(format!("cannot read {dir:?}"), e))?
        {
            let path = entry.path();
            if matches!(path.extension().and_then(|e| e.to_str()), Some("conflist" | "conf" | "json")) {
                names.push(path);
            }
        }
        names.sort();
        let path = names.into_iter().next().ok_or_else(|| CniError::NoConfig(dir.clone()))?;
        let bytes = tokio::fs::read(&path).await.map_err(|e| CniError::io(format!("cannot read {path:?}"), e))?;
        let invalid = |reason: String| CniError::InvalidConfig { path: path.clone(), reason };
        let mut value: Value = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if path.extension().is_some_and(|e| e != "conflist") {
            let obj = value.as_object().ok_or_else(|| invalid("not a JSON object".into()))?;
            value = json!({"cniVersion": obj.get("cniVersion"), "name": obj.get("name"), "plugins": [value]});
        }
        let list: NetworkList = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        if list.plugins.is_empty() {
            return Err(invalid("no plugins".into()));
        }
        if let Some(bad) = list.plugins.iter().find(|p| p.get("type").and_then(Value::as_str).is_none()) {
            return Err(invalid(format!("plugin without a type: {bad}")));
        }
        Ok(list)
    }

    /// The config one plugin sees (libcni's rules): its own object plus the list's cniVersion and name, the
    /// runtimeConfig of the capabilities it declares, and the previous plugin's result.
    fn plugin_config(list: &NetworkList, plugin: &Value, attachment: &Attachment, prev: Option<&Value>) -> Value {
        let mut conf: Map<String, Value> = plugin.as_object().cloned().unwrap_or_default();
        conf.insert("cniVersion".into(), json!(list.cni_version));
        conf.insert("name".into(), json!(list.name));
        let wants_ports = plugin.pointer("/capabilities/portMappings").and_then(Value::as_bool) == Some(true);
        if wants_ports && !attachment.port_mappings.is_empty() {
            conf.insert("runtimeConfig".into(), json!({"portMappings": attachment.port_mappings}));
        }
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.clone());
        }
        Value::Object(conf)
    }

    async fn invoke(
        &self,
        command: Command,
        list: &NetworkList,
        plugin: &Value,
        attachment: &Attachment,
        prev: Option<&Value>,
    ) -> Result<Value, CniError> {
        let kind = plugin["type"].as_str().unwrap_or_default().to_string();
        let config = serde_json::to_vec(&Self::plugin_config(list, plugin, attachment, prev)).expect("JSON serializes");
        let started = Instant::now();
        let output = if kind == PLUGIN_TYPE {
            self.run_in_process(command, attachment, config).await
        } else {
            self.exec(&kind, command, attachment, config).await?
        };
        tracing::debug!(plugin = %kind, command = command.as_str(), elapsed = ?started.elapsed(), "CNI plugin ran");
        let out = output.map_err(|e| CniError::Plugin {
            plugin: kind.clone(),
            code: e.code,
            msg: e.msg,
            details: e.details,
        })?;
        if command != Command::Add {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out).map_err(|e| CniError::BadResult { plugin: kind, reason: format!("not JSON: {e}") })
    }

    /// k8rs's own plugin, on a dedicated thread because it switches network namespaces.
    async fn run_in_process(
        &self,
        command: Command,
        attachment: &Attachment,
        config: Vec<u8>,
    ) -> Result<Vec<u8>, PluginError> {
        let req = plugin::Request {
            command,
            container_id: attachment.container_id.clone(),
            netns: Some(attachment.netns.clone()),
            ifname: attachment.ifname.clone(),
            config,
        };
        let node_netns = self.config.node_netns.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new().name("k8rs-cni".into()).spawn(move || {
            let result = match &node_netns {
                // The thread ends afterwards, so it never needs to switch back.
                Some(ns) => netns::open(ns)
                    .and_then(|f| netns::set(&f))
                    .map_err(|e| PluginError::new(plugin::code::IO, format!("cannot enter the node netns {ns:?}"), e)),
                None => Ok(()),
            }
            .and_then(|()| plugin::run(&req));
            let _ = tx.send(result);
        });
        if let Err(e) = spawned {
            return Err(PluginError::new(plugin::code::IO, "cannot start the plugin thread", e));
        }
        rx.await.unwrap_or_else(|_| Err(PluginError::new(plugin::code::IO, "the plugin thread panicked", "")))
    }

    /// An external plugin as the spec runs it: environment, config on stdin, result or error object on stdout.
    async fn exec(
        &self,
        kind: &str,
        command: Command,
        attachment: &Attachment,
        config: Vec<u8>,
    ) -> Result<Result<Vec<u8>, PluginError>, CniError> {
        let binary = self
            .config
            .bin_dirs
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.is_file())
            .filter(|_| !kind.contains('/'))
            .ok_or_else(|| CniError::PluginNotFound { plugin: kind.to_string(), dirs: self.config.bin_dirs.clone() })?;
        let cni_path = std::env::join_paths(&self.config.bin_dirs)
            .map_err(|e| CniError::io("invalid bin dir", std::io::Error::other(e)))?;
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            attachment.pod_namespace, attachment.pod_name, attachment.container_id, attachment.pod_uid
        );
        let mut cmd = tokio::process::Command::new(&binary);
        cmd.env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", &attachment.container_id)
            .env("CNI_NETNS", &attachment.netns)
            .env("CNI_IFNAME", &attachment.ifname)
            .env("CNI_PATH", cni_path)
            .env("CNI_ARGS", args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(ns) = &self.config.node_netns {
            let ns_file = netns::open(ns).map_err(|e| CniError::io(format!("cannot open the node netns {ns:?}"), e))?;
            // SAFETY: the closure only calls setns(2), which is async-signal-safe; the file is CLOEXEC, so the
            // plugin does not inherit it.
            unsafe {
                cmd.pre_exec(move || netns::set(&ns_file));
            }
        }
        let mut child = cmd.spawn().map_err(|e| CniError::io(format!("cannot run {binary:?}"), e))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(&config).await.map_err(|e| CniError::io(format!("cannot feed {binary:?}"), e))?;
        drop(stdin);
        let out = child.wait_with_output().await.map_err(|e| CniError::io(format!("cannot run {binary:?}"), e))?;
        if out.status.success() {
            return Ok(Ok(out.stdout));
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        #[derive(Deserialize)]
        struct ErrorObject {
            #[serde(default)]
            code: u32,
            #[serde(default)]
            msg: String,
            #[serde(default)]
            details: String,
        }
        Ok(Err(match serde_json::from_slice::<ErrorObject>(&out.stdout) {
            Ok(e) => PluginError { code: e.code, msg: e.msg, details: e.details },
            Err(_) => PluginError::new(999, format!("exited with {}", out.status), stderr),
        }))
    }

    fn cache_path(&self, attachment: &Attachment) -> PathBuf {
        // libcni's layout; the network name is left out so DEL finds the entry even if the config changed.
        self.config.cache_dir.join("results").join(format!("{}-{}", attachment.container_id, attachment.ifname))
    }

    async fn write_cache(&self, attachment: &Attachment, entry: &CacheEntry) -> Result<(), CniError> {
        let path = self.cache_path(attachment);
        let dir = path.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(dir).await.map_err(|e| CniError::io(format!("cannot create {dir:?}"), e))?;
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec(entry).expect("cache entry serializes");
        tokio::fs::write(&tmp, body).await.map_err(|e| CniError::io(format!("cannot write {tmp:?}"), e))?;
        tokio::fs::rename(&tmp, &path).await.map_err(|e| CniError::io(format!("cannot write {path:?}"), e))
    }
}

/// The addresses in a result: `ips` (0.3.0 and later) or `ip4`/`ip6` (0.2.0), in order.
fn result_ips(result: &Value) -> Result<Vec<IpAddr>, String> {
    let cidrs: Vec<&str> = match result.get("ips").and_then(Value::as_array) {
        Some(ips) => ips.iter().filter_map(|ip| ip.get("address").and_then(Value::as_str)).collect(),
        None => {
            ["ip4", "ip6"].iter().filter_map(|k| result.pointer(&format!("/{k}/ip")).and_then(Value::as_str)).collect()
        }
    };
    cidrs
        .into_iter()
        .map(|c| c.split('/').next().unwrap_or(c).parse().map_err(|_| format!("invalid address {c:?}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(ports: Vec<PortMapping>) -> Attachment {
        Attachment {
            container_id: "c1".into(),
            netns: "/var/run/netns/x".into(),
            ifname: "eth0".into(),
            pod_namespace: "default".into(),
            pod_name: "p".into(),
            pod_uid: "u".into(),
            port_mappings: ports,
        }
    }

    #[test]
    fn plugin_config_follows_libcni() {
        let list = NetworkList {
            cni_version: "1.0.0".into(),
            name: "net".into(),
            plugins: vec![
                json!({"type": "bridge"}),
                json!({"type": "portmap", "capabilities": {"portMappings": true}}),
            ],
        };
        let ports =
            vec![PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: "".into() }];
        let att = attachment(ports);
        let first = Cni::plugin_config(&list, &list.plugins[0], &att, None);
        assert_eq!(first, json!({"type": "bridge", "cniVersion": "1.0.0", "name": "net"}));
        let prev = json!({"ips": []});
        let second = Cni::plugin_config(&list, &list.plugins[1], &att, Some(&prev));
        assert_eq!(second["prevResult"], prev);
        assert_eq!(
            second["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]})
        );
        assert!(Cni::plugin_config(&list, &list.plugins[1], &attachment(vec![]), None).get("runtimeConfig").is_none());
    }

    #[test]
    fn result_ips_in_order_all_versions() {
        let v1 = json!({"ips": [{"address": "10.1.0.5/24"}, {"address": "fd00::5/64"}]});
        assert_eq!(result_ips(&v1).unwrap(), vec!["10.1.0.5".parse::<IpAddr>().unwrap(), "fd00::5".parse().unwrap()]);
        assert_eq!(
            result_ips(&json!({"ip4": {"ip": "10.1.0.6/24"}})).unwrap(),
            vec!["10.1.0.6".parse::<IpAddr>().unwrap()]
        );
        assert!(result_ips(&json!({"ips": [{"address": "bogus"}]})).is_err());
    }
}
