//! The Node object and its Lease: registration with capacity, addresses and nodeInfo; the Lease renewed every
//! 10 s (what the node lifecycle controller watches); status (conditions, podCIDR readiness) every 10 s.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use apimachinery::time::rfc3339;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::{Config, KubeletError};

const RENEW_INTERVAL: Duration = Duration::from_secs(10);
const LEASE_DURATION_SECONDS: i32 = 40;
/// Upstream's default hard eviction thresholds, used here for the pressure conditions.
const MEMORY_AVAILABLE_MIN: u64 = 100 << 20;
const DISK_AVAILABLE_MIN_PERCENT: u64 = 10;
pub const MAX_PODS: u32 = 110;

#[derive(Clone)]
pub struct NodeAgent {
    client: kube::Client,
    config: Arc<Config>,
}

impl NodeAgent {
    pub fn new(client: kube::Client, config: Arc<Config>) -> NodeAgent {
        NodeAgent { client, config }
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// Creates the Node, or takes over the existing one (a restarted or re-joined agent).
    pub async fn register(&self) -> Result<(), KubeletError> {
        let arch = std::env::consts::ARCH.replace("x86_64", "amd64");
        let mut labels = serde_json::Map::new();
        for (key, value) in [
            ("kubernetes.io/hostname", self.config.node_name.as_str()),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", arch.as_str()),
            ("beta.kubernetes.io/os", "linux"),
            ("beta.kubernetes.io/arch", arch.as_str()),
        ] {
            labels.insert(key.into(), value.into());
        }
        for (key, value) in &self.config.labels {
            labels.insert(key.clone(), value.clone().into());
        }
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.config.node_name, "labels": labels},
            "spec": {},
        }))
        .expect("a valid Node");
        match self.nodes().create(&PostParams::default(), &node).await {
            Ok(_) => tracing::info!(node = %self.config.node_name, "registered the node"),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let patch = json!({"metadata": {"labels": labels}});
                self.nodes().patch(&self.config.node_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                tracing::info!(node = %self.config.node_name, "the node was registered before; taking it over");
            }
            Err(e) => return Err(e.into()),
        }
        self.update_status().await?;
        Ok(())
    }

    pub async fn run(self) {
        let mut tick = tokio::time::interval(RENEW_INTERVAL);
        loop {
            tick.tick().await;
            if let Err(error) = self.renew_lease().await {
                tracing::warn!(%error, "cannot renew the node lease");
            }
            if let Err(error) = self.update_status().await {
                tracing::warn!(%error, "cannot update the node status");
            }
        }
    }

    async fn renew_lease(&self) -> Result<(), kube::Error> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let now = micro_time(SystemTime::now());
        let name = &self.config.node_name;
        let patch =
            json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": now}});
        match leases.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Err(kube::Error::Api(e)) if e.code == 404 => {
                let node = self.nodes().get(name).await?;
                let lease: Lease = serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "kube-node-lease", "ownerReferences": [{
                        "apiVersion": "v1", "kind": "Node", "name": name, "uid": node.metadata.uid,
                    }]},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": now},
                }))
                .expect("a valid Lease");
                leases.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    /// Writes the node's status; Ready once the pod network is configured (the Node has a podCIDR).
    pub async fn update_status(&self) -> Result<(), KubeletError> {
        let node = self.nodes().get(&self.config.node_name).await?;
        let pod_cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.clone());
        let network_ready = match &pod_cidr {
            Some(cidr) => self.ensure_network_config(cidr).is_ok(),
            None => false,
        };
        let old_conditions: Vec<Value> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|c| c.iter().filter_map(|c| serde_json::to_value(c).ok()).collect())
            .unwrap_or_default();
        let (memory_total, memory_available) = memory();
        let (disk_total, disk_available) = disk(&self.config.dir);
        let memory_pressure = memory_available < MEMORY_AVAILABLE_MIN;
        let disk_pressure = disk_total > 0 && disk_available * 100 / disk_total < DISK_AVAILABLE_MIN_PERCENT;
        let now = rfc3339(SystemTime::now());
        let condition = |kind: &str, status: bool, reason: &str, message: &str| {
            let status = if status { "True" } else { "False" };
            // lastTransitionTime moves only when the status changes.
            let transition = old_conditions
                .iter()
                .find(|c| c["type"] == kind && c["status"] == status)
                .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
                .unwrap_or_else(|| now.clone());
            json!({"type": kind, "status": status, "reason": reason, "message": message,
                   "lastHeartbeatTime": now, "lastTransitionTime": transition})
        };
        let conditions = vec![
            if memory_pressure {
                condition(
                    "MemoryPressure",
                    true,
                    "KubeletHasInsufficientMemory",
                    "kubelet has insufficient memory available",
                )
            } else {
                condition(
                    "MemoryPressure",
                    false,
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                )
            },
            if disk_pressure {
                condition("DiskPressure", true, "KubeletHasDiskPressure", "kubelet has disk pressure")
            } else {
                condition("DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure")
            },
            condition("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            if network_ready {
                condition("Ready", true, "KubeletReady", "kubelet is posting ready status")
            } else {
                condition(
                    "Ready",
                    false,
                    "KubeletNotReady",
                    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady \
                     message:Network plugin returns error: the node has no podCIDR yet",
                )
            },
        ];
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let capacity = json!({
            "cpu": cpus.to_string(),
            "memory": format!("{}Ki", memory_total / 1024),
            "ephemeral-storage": format!("{}Ki", disk_total / 1024),
            "pods": MAX_PODS.to_string(),
            "hugepages-2Mi": "0",
        });
        let status = json!({"status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": self.config.node_ip.to_string()},
                {"type": "Hostname", "address": self.config.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.config.port}},
            "nodeInfo": node_info(&self.config.runtime_version),
        }});
        self.nodes().patch_status(&self.config.node_name, &PatchParams::default(), &Patch::Merge(&status)).await?;
        Ok(())
    }

    /// Writes the default k8rs network for this node's podCIDR unless a CNI configuration is already there.
    fn ensure_network_config(&self, pod_cidr: &str) -> Result<(), network::CniError> {
        let present = std::fs::read_dir(&self.config.cni_conf_dir)
            .map(|entries| entries.flatten().any(|e| is_cni_config(&e.path())))
            .unwrap_or(false);
        if present {
            return Ok(());
        }
        network::write_default_config(
            &self.config.cni_conf_dir,
            &network::DefaultNetwork {
                pod_cidr: pod_cidr.to_string(),
                cluster_cidr: self.config.cluster_cidr.clone(),
                bridge: "k8rs0".into(),
                mtu: 1450,
                data_dir: self.config.dir.join("cni/ipam"),
            },
        )
        .map(|path| tracing::info!(path = %path.display(), %pod_cidr, "wrote the default pod network"))
    }
}

fn is_cni_config(path: &std::path::Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("conflist" | "conf" | "json"))
}

/// `metav1.MicroTime`: RFC 3339 with microseconds.
pub fn micro_time(at: SystemTime) -> String {
    let text = rfc3339(at);
    let micros = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_micros();
    format!("{}.{micros:06}Z", text.trim_end_matches('Z'))
}

/// Total and available memory in bytes, from /proc/meminfo.
fn memory() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// Size and free space in bytes of the filesystem holding `dir`.
fn disk(dir: &std::path::Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return (0, 0) };
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return (0, 0);
    }
    let block = stat.f_frsize as u64;
    (stat.f_blocks as u64 * block, stat.f_bavail as u64 * block)
}

fn node_info(runtime_version: &str) -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default().trim().to_string();
    let os_image = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
        .unwrap_or_else(|| "Linux".into());
    let version = format!("v1.33.0-k8rs.{}", env!("CARGO_PKG_VERSION"));
    json!({
        "machineID": read("/etc/machine-id"),
        "systemUUID": read("/sys/class/dmi/id/product_uuid"),
        "bootID": read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": read("/proc/sys/kernel/osrelease"),
        "osImage": os_image,
        "containerRuntimeVersion": runtime_version,
        "kubeletVersion": version,
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64"),
    })
}
