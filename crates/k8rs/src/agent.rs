//! `k8rs agent`: joins a cluster as a node and runs its kubelet, wiring the image store, the container runtime and
//! the CNI network together. `k8rs server` runs the same for its own machine unless `--disable-agent`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use runtime::container::{ContainerRuntime, RuntimeConfig};
use runtime::image::{ImageStore, RegistriesConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OciRuntime {
    Runc,
    Crun,
}

/// What a node needs whether it runs alone (`k8rs agent`) or inside `k8rs server`.
#[derive(Args, Clone, Debug)]
pub struct NodeOptions {
    /// The node's name (default: the machine's host name).
    #[arg(long, env = "K8RS_NODE_NAME")]
    pub node_name: Option<String>,
    /// The address other nodes and the API server reach this node at (default: the first non-loopback IPv4).
    #[arg(long, env = "K8RS_NODE_IP")]
    pub node_ip: Option<IpAddr>,
    /// The OCI runtime that runs containers.
    #[arg(long, env = "K8RS_CONTAINER_RUNTIME", value_enum, default_value = "runc")]
    pub container_runtime: OciRuntime,
    /// HTTPS port of the kubelet (logs are proxied to it by the API server).
    #[arg(long, env = "K8RS_KUBELET_PORT", default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Cgroup (in every v1 hierarchy) under which pods go.
    #[arg(long, env = "K8RS_CGROUP_ROOT", default_value = "k8rs")]
    pub cgroup_root: String,
    /// Registry mirrors, plain-HTTP registries and credentials, in k3s's registries.yaml format
    /// (default: DATA_DIR/agent/registries.yaml if present).
    #[arg(long, env = "K8RS_REGISTRIES_CONFIG")]
    pub registries_config: Option<PathBuf>,
    /// Directories searched for CNI plugins.
    #[arg(long, env = "K8RS_CNI_BIN_DIR", value_delimiter = ':', default_values = ["/usr/lib/cni", "/opt/cni/bin"])]
    pub cni_bin_dir: Vec<PathBuf>,
    /// Where the CNI network configuration is read (default: DATA_DIR/agent/cni/net.d; the default k8rs network is
    /// written there when it holds none).
    #[arg(long, env = "K8RS_CNI_CONF_DIR")]
    pub cni_conf_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct AgentArgs {
    /// The API server, e.g. https://10.0.0.1:6443.
    #[arg(long, env = "K8RS_URL")]
    server: String,
    /// The cluster's join token (DATA_DIR/server/token on the server).
    #[arg(long, env = "K8RS_TOKEN", hide_env_values = true)]
    token: String,
    /// Holds the node's credentials, images, containers, pod volumes and logs.
    #[arg(long, env = "K8RS_DATA_DIR", default_value = "/var/lib/k8rs")]
    data_dir: PathBuf,
    /// The cluster's pod range (traffic leaving it is masqueraded).
    #[arg(long, env = "K8RS_CLUSTER_CIDR", default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    #[command(flatten)]
    node: NodeOptions,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    run_node(&args.server, &args.token, &args.data_dir, &args.cluster_cidr, &args.node, Vec::new()).await
}

pub fn oci_runtime_path(runtime: OciRuntime) -> PathBuf {
    let name = match runtime {
        OciRuntime::Runc => "runc",
        OciRuntime::Crun => "crun",
    };
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()))
        .unwrap_or_else(|| PathBuf::from(format!("/usr/sbin/{name}")))
}

/// The container runtime's configuration for a node's data directory (also used by `local-cluster down`).
pub fn runtime_config(data_dir: &Path, runtime: OciRuntime, cgroup_root: &str) -> anyhow::Result<RuntimeConfig> {
    let agent = data_dir.join("agent");
    let exe = std::env::current_exe().context("cannot find the k8rs binary for the shims")?;
    Ok(RuntimeConfig {
        oci_runtime: oci_runtime_path(runtime),
        state_dir: agent.join("containers"),
        runtime_root: agent.join("runtime"),
        shim: vec![exe.into_os_string(), "shim".into()],
        cgroup_root: cgroup_root.trim_matches('/').to_string(),
    })
}

pub fn image_store(data_dir: &Path, registries: Option<&Path>) -> anyhow::Result<ImageStore> {
    let agent = data_dir.join("agent");
    let registries_path = registries.map(Path::to_path_buf).unwrap_or_else(|| agent.join("registries.yaml"));
    let registries = RegistriesConfig::load(&registries_path)
        .with_context(|| format!("registries configuration {}", registries_path.display()))?;
    Ok(ImageStore::open(agent.join("image-store"), registries)?)
}

/// Imports the archives dropped in DATA_DIR/agent/images (air-gapped nodes), each once per content change.
async fn import_dropped_images(images: &ImageStore, dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let mut archives: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    archives.sort();
    for archive in archives {
        match images.import(&archive).await {
            Ok(imported) => {
                let names: Vec<String> = imported.iter().flat_map(|i| i.repo_tags.clone()).collect();
                tracing::info!(archive = %archive.display(), images = ?names, "imported images");
            }
            Err(error) => tracing::warn!(archive = %archive.display(), %error, "cannot import an image archive"),
        }
    }
    Ok(())
}

fn default_node_ip() -> IpAddr {
    apiserver::pki::local_addresses()
        .into_iter()
        .find(|ip| matches!(ip, IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

pub fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_lowercase()
}

/// Joins and runs a node until the process ends.
pub async fn run_node(
    server: &str,
    token: &str,
    data_dir: &Path,
    cluster_cidr: &str,
    options: &NodeOptions,
    labels: Vec<(String, String)>,
) -> anyhow::Result<()> {
    let node_name = options.node_name.clone().unwrap_or_else(default_node_name);
    anyhow::ensure!(!node_name.is_empty(), "the node has no name: pass --node-name");
    let node_ip = options.node_ip.unwrap_or_else(default_node_ip);
    let agent_dir = data_dir.join("agent");
    std::fs::create_dir_all(&agent_dir).with_context(|| format!("cannot create {}", agent_dir.display()))?;
    let credentials = kubelet::join(server, token, &node_name, &[node_ip], &agent_dir.join("pki"))
        .await
        .context("cannot join the cluster")?;
    let images = image_store(data_dir, options.registries_config.as_deref())?;
    import_dropped_images(&images, &agent_dir.join("images")).await?;
    let runtime_config = runtime_config(data_dir, options.container_runtime, &options.cgroup_root)?;
    let runtime_version = runtime_version(&runtime_config.oci_runtime);
    let containers = ContainerRuntime::new(runtime_config)?;
    let cni_conf_dir = options.cni_conf_dir.clone().unwrap_or_else(|| agent_dir.join("cni/net.d"));
    std::fs::create_dir_all(&cni_conf_dir).with_context(|| format!("cannot create {}", cni_conf_dir.display()))?;
    let cni = network::Cni::new(network::CniConfig {
        conf_dir: cni_conf_dir.clone(),
        bin_dirs: options.cni_bin_dir.clone(),
        cache_dir: agent_dir.join("cni/cache"),
        node_netns: None,
    });
    tracing::info!(node = %node_name, %node_ip, "the node joined; starting the kubelet");
    kubelet::run(kubelet::Config {
        node_name,
        node_ip,
        dir: agent_dir,
        credentials,
        port: options.kubelet_port,
        images,
        containers,
        cni,
        cni_conf_dir,
        cluster_cidr: cluster_cidr.to_string(),
        labels,
        runtime_version,
    })
    .await?;
    Ok(())
}

/// `runc://1.1.5`, from the runtime's own `--version`.
fn runtime_version(binary: &Path) -> String {
    let name = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let output = std::process::Command::new(binary).arg("--version").output().ok();
    let version = output
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|text| text.lines().next().and_then(|l| l.split_whitespace().last()).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    format!("{name}://{version}")
}
