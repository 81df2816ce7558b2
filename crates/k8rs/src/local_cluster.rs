//! `k8rs local-cluster up|down`: a whole cluster on this machine, like kind without Docker. Each node is a network
//! namespace `k8rs-NAME-I` on a private underlay (`k8rs-NAME-lan`, a bridge, 10.99.0.0/24); node 0 runs
//! `k8rs server` (with its agent), the others `k8rs agent`. kubectl on the host reaches the server through a
//! loopback socket made here and handed to the server. Pods' cgroups go beneath the caller's own cgroup. `down`
//! removes every process, container, mount, cgroup, namespace and file that `up` made.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Node;
use serde::{Deserialize, Serialize};

use crate::agent::OciRuntime;

const READY_TIMEOUT: Duration = Duration::from_secs(240);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Subcommand)]
pub enum LocalClusterCommand {
    /// Create the cluster and return once every node is Ready.
    Up(UpArgs),
    /// Remove everything `up` made.
    Down(DownArgs),
}

#[derive(Args)]
pub struct UpArgs {
    /// Number of nodes (node 0 also runs the control plane).
    #[arg(long, default_value_t = 1)]
    nodes: u8,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Where to write the kubeconfig (default: DIR/kubeconfig.yaml).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Image archives imported into every node before it reports Ready.
    #[arg(long, num_args = 1..)]
    images: Vec<PathBuf>,
    /// Registry mirrors and credentials for every node (k3s's registries.yaml format).
    #[arg(long)]
    registries: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "runc")]
    container_runtime: OciRuntime,
}

#[derive(Args)]
pub struct DownArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Args)]
pub struct ClusterArgs {
    /// The cluster's name: namespaces are k8rs-NAME-*, nodes NAME-node-I.
    #[arg(long, default_value = "local")]
    name: String,
    /// Holds the nodes' data (default: /var/lib/k8rs/local-clusters/NAME).
    #[arg(long, env = "K8RS_LOCAL_CLUSTER_DIR")]
    dir: Option<PathBuf>,
}

impl ClusterArgs {
    /// Absolute, as it appears in the nodes' command lines (which is how `down` recognises their processes).
    fn dir(&self) -> PathBuf {
        let dir = self.dir.clone().unwrap_or_else(|| PathBuf::from("/var/lib/k8rs/local-clusters").join(&self.name));
        std::path::absolute(&dir).unwrap_or(dir)
    }
}

/// Everything `up` made, kept in DIR/cluster.json as it goes so that `down` can undo a half-made cluster too.
#[derive(Default, Serialize, Deserialize)]
struct State {
    name: String,
    namespaces: Vec<String>,
    processes: Vec<u32>,
    nodes: Vec<NodeState>,
    /// The cluster's own cgroup directory in every hierarchy (removed with everything below).
    cgroups: Vec<PathBuf>,
    /// Directories above them that did not exist before; shared with whatever else runs there, so each is only
    /// removed once empty.
    cgroup_ancestors: Vec<PathBuf>,
    kubeconfig: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct NodeState {
    data_dir: PathBuf,
    cgroup_root: String,
    runtime: String,
}

impl State {
    fn path(dir: &Path) -> PathBuf {
        dir.join("cluster.json")
    }
    fn load(dir: &Path) -> Option<State> {
        serde_json::from_slice(&std::fs::read(Self::path(dir)).ok()?).ok()
    }
    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let tmp = dir.join("cluster.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, Self::path(dir))?;
        Ok(())
    }
}

pub async fn run(command: LocalClusterCommand) -> anyhow::Result<()> {
    match command {
        LocalClusterCommand::Up(args) => {
            let dir = args.cluster.dir();
            match up(&args, &dir).await {
                Ok(kubeconfig) => {
                    println!(
                        "cluster {:?} is up with {} node(s); kubeconfig: {}",
                        args.cluster.name,
                        args.nodes,
                        kubeconfig.display()
                    );
                    Ok(())
                }
                Err(error) => {
                    eprintln!("k8rs local-cluster up failed; removing what was made");
                    if let Err(cleanup) = down(&dir).await {
                        eprintln!("cleanup: {cleanup:#}");
                    }
                    Err(error)
                }
            }
        }
        LocalClusterCommand::Down(args) => down(&args.cluster.dir()).await,
    }
}

fn node_ip(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, index + 1)
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output().context("cannot run `ip` (install iproute2)")?;
    if !output.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// The cgroup this process is in (the memory hierarchy's path, which is where the machine accounts for us).
fn own_cgroup() -> String {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers.split(',').any(|c| c == "memory").then(|| path.trim_matches('/').to_string())
        })
        .unwrap_or_default()
}

/// The cgroup v1 hierarchies' mount points.
fn hierarchies() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.is_symlink())
        .collect()
}

async fn up(args: &UpArgs, dir: &Path) -> anyhow::Result<PathBuf> {
    let name = &args.cluster.name;
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= 20
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "--name {name:?}: use up to 20 lower-case letters, digits and '-'"
    );
    anyhow::ensure!((1..=200).contains(&args.nodes), "--nodes must be from 1 to 200");
    if let Some(state) = State::load(dir) {
        if state.processes.iter().any(|pid| is_ours(*pid, dir)) {
            bail!(
                "cluster {name:?} is already up (state in {}); run `k8rs local-cluster down --name {name}` first",
                dir.display()
            );
        }
        down(dir).await?;
    }
    for image in &args.images {
        anyhow::ensure!(image.is_file(), "--images {}: no such file", image.display());
    }
    if let Some(registries) = &args.registries {
        anyhow::ensure!(registries.is_file(), "--registries {}: no such file", registries.display());
    }
    let runtime = crate::agent::oci_runtime_path(args.container_runtime);
    anyhow::ensure!(runtime.is_file(), "{} is not installed (apt-get install runc)", runtime.display());
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut state = State { name: name.clone(), ..Default::default() };
    state.save(dir)?;

    // The underlay: a bridge in its own namespace, one veth per node.
    let lan = format!("k8rs-{name}-lan");
    ip(&["netns", "add", &lan])?;
    state.namespaces.push(lan.clone());
    state.save(dir)?;
    ip(&["-n", &lan, "link", "set", "lo", "up"])?;
    ip(&["-n", &lan, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", &lan, "link", "set", "br0", "up"])?;

    // Pods' cgroups: beneath ours, per node.
    let cgroup_root = format!("{}/k8rs-{name}", own_cgroup()).trim_start_matches('/').to_string();
    for hierarchy in hierarchies() {
        let own = hierarchy.join(&cgroup_root);
        let mut ancestors: Vec<PathBuf> =
            own.ancestors().skip(1).take_while(|a| *a != hierarchy).map(Path::to_path_buf).collect();
        ancestors.retain(|a| !a.exists());
        state.cgroup_ancestors.extend(ancestors);
        state.cgroups.push(own);
    }
    for index in 0..args.nodes {
        let namespace = format!("k8rs-{name}-{index}");
        ip(&["netns", "add", &namespace])?;
        state.namespaces.push(namespace.clone());
        let node_dir = dir.join(format!("node-{index}"));
        state.nodes.push(NodeState {
            data_dir: node_dir.clone(),
            cgroup_root: format!("{cgroup_root}/node-{index}"),
            runtime: format!("{:?}", args.container_runtime).to_lowercase(),
        });
        state.save(dir)?;
        let port = format!("n{index}");
        ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        ip(&["-n", &lan, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &namespace])?;
        ip(&["-n", &lan, "link", "set", &port, "master", "br0", "up"])?;
        ip(&["-n", &namespace, "addr", "add", &format!("{}/24", node_ip(index)), "dev", "eth0"])?;
        ip(&["-n", &namespace, "link", "set", "eth0", "up"])?;
        if let Some(registries) = &args.registries {
            std::fs::create_dir_all(node_dir.join("agent"))?;
            std::fs::copy(registries, node_dir.join("agent/registries.yaml"))
                .with_context(|| format!("cannot copy {}", registries.display()))?;
        }
        let images_dir = node_dir.join("agent/images");
        std::fs::create_dir_all(&images_dir)?;
        for image in &args.images {
            let target = images_dir.join(image.file_name().unwrap_or_default());
            if std::fs::hard_link(image, &target).is_err() {
                std::fs::copy(image, &target).with_context(|| format!("cannot copy {}", image.display()))?;
            }
        }
    }

    // Node 0: the server (and its agent), reachable from the host's loopback through an inherited socket.
    let host_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot listen on loopback")?;
    let host_port = host_listener.local_addr()?.port();
    let exe = std::env::current_exe()?;
    let node0 = dir.join("node-0");
    let mut server = Command::new(&exe);
    server.args(["server", "--https-listen-port", "6443", "--listen-fd"]).arg(host_listener.as_raw_fd().to_string());
    server.arg("--data-dir").arg(&node0);
    server.args(["--node-name", &format!("{name}-node-0"), "--node-ip", &node_ip(0).to_string()]);
    server.args(["--cgroup-root", &state.nodes[0].cgroup_root, "--container-runtime", &state.nodes[0].runtime]);
    let pid = spawn_in(&mut server, &format!("k8rs-{name}-0"), &node0, Some(host_listener.as_raw_fd()))?;
    state.processes.push(pid);
    state.save(dir)?;
    drop(host_listener);

    let deadline = Instant::now() + READY_TIMEOUT;
    let server_kubeconfig = node0.join("kubeconfig.yaml");
    let token_file = node0.join("server/token");
    while !(server_kubeconfig.exists() && token_file.exists()) {
        check_alive(&state, dir)?;
        anyhow::ensure!(Instant::now() < deadline, "the server did not start within {READY_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kubeconfig_text = std::fs::read_to_string(&server_kubeconfig)?;
    let kubeconfig_text =
        kubeconfig_text.replace("server: https://127.0.0.1:6443", &format!("server: https://127.0.0.1:{host_port}"));
    let kubeconfig_path = args.kubeconfig.clone().unwrap_or_else(|| dir.join("kubeconfig.yaml"));
    apiserver::pki::write_private(&kubeconfig_path, &kubeconfig_text)?;
    state.kubeconfig = Some(kubeconfig_path.clone());
    state.save(dir)?;
    let token = std::fs::read_to_string(&token_file)?.trim().to_string();

    for index in 1..args.nodes {
        let node_dir = dir.join(format!("node-{index}"));
        let mut agent = Command::new(&exe);
        agent.args(["agent", "--server", &format!("https://{}:6443", node_ip(0)), "--token", &token]);
        agent.arg("--data-dir").arg(&node_dir);
        agent.args(["--node-name", &format!("{name}-node-{index}"), "--node-ip", &node_ip(index).to_string()]);
        let node = &state.nodes[index as usize];
        agent.args(["--cgroup-root", &node.cgroup_root, "--container-runtime", &node.runtime]);
        let pid = spawn_in(&mut agent, &format!("k8rs-{name}-{index}"), &node_dir, None)?;
        state.processes.push(pid);
        state.save(dir)?;
    }

    // Ready when every node says so.
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig_text)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    let nodes: kube::Api<Node> = kube::Api::all(client);
    loop {
        check_alive(&state, dir)?;
        if let Ok(list) = nodes.list(&Default::default()).await {
            let ready = list
                .items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            if ready == args.nodes as usize {
                return Ok(kubeconfig_path);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the nodes were not Ready within {READY_TIMEOUT:?}; logs in {}/node-*/k8rs.log",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts a k8rs process inside a node's network namespace, in a session of its own so that it outlives `up`;
/// its output goes to NODE_DIR/k8rs.log. `keep_fd` is inherited (the loopback listener).
fn spawn_in(command: &mut Command, namespace: &str, node_dir: &Path, keep_fd: Option<i32>) -> anyhow::Result<u32> {
    std::fs::create_dir_all(node_dir)?;
    let log = std::fs::File::create(node_dir.join("k8rs.log"))?;
    let netns = std::fs::File::open(format!("/var/run/netns/{namespace}"))
        .with_context(|| format!("network namespace {namespace}"))?;
    let netns_fd = netns.as_raw_fd();
    command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(netns_fd, libc::CLONE_NEWNET) != 0 || libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = keep_fd {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
            Ok(())
        });
    }
    let child = command.spawn().with_context(|| format!("cannot start {command:?}"))?;
    drop(netns);
    Ok(child.id())
}

/// Whether `pid` is still a k8rs process of the cluster in `dir` (and not a recycled pid). Its command line names the
/// cluster's directory; its executable may have been replaced since (an upgraded k8rs), so that is not compared.
fn is_ours(pid: u32, dir: &Path) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = status.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'));
    cmdline.contains(&dir.display().to_string()) && !zombie
}

fn check_alive(state: &State, dir: &Path) -> anyhow::Result<()> {
    for (index, pid) in state.processes.iter().enumerate() {
        if !is_ours(*pid, dir) {
            let log = std::fs::read_to_string(dir.join(format!("node-{index}/k8rs.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            bail!("the k8rs process of node {index} exited:\n{}", tail.join("\n"));
        }
    }
    Ok(())
}

async fn down(dir: &Path) -> anyhow::Result<()> {
    let Some(state) = State::load(dir) else {
        bail!("no local cluster in {} (nothing to remove)", dir.display());
    };
    // Processes first, so nothing restarts what is being removed.
    for pid in &state.processes {
        if is_ours(*pid, dir) {
            // SAFETY: kill(2) on a pid we started and just checked.
            unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while state.processes.iter().any(|pid| is_ours(*pid, dir)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in &state.processes {
        if is_ours(*pid, dir) {
            // SAFETY: as above.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
    }
    let mut problems = Vec::new();
    for node in &state.nodes {
        let runtime = if node.runtime == "crun" { OciRuntime::Crun } else { OciRuntime::Runc };
        let config = crate::agent::runtime_config(&node.data_dir, runtime, &node.cgroup_root)?;
        if !config.state_dir.exists() {
            continue;
        }
        match runtime::container::ContainerRuntime::new(config) {
            Ok(containers) => {
                for container in containers.list_containers().await.unwrap_or_default() {
                    let _ = containers.stop_container(&container.id, Duration::ZERO).await;
                    if let Err(e) = containers.remove_container(&container.id).await {
                        problems.push(format!("container {}: {e}", container.id));
                    }
                }
                for sandbox in containers.list_sandboxes().await.unwrap_or_default() {
                    if let Err(e) = containers.remove_sandbox(&sandbox.id).await {
                        problems.push(format!("sandbox {}: {e}", sandbox.id));
                    }
                }
            }
            Err(e) => problems.push(format!("runtime of {}: {e}", node.data_dir.display())),
        }
    }
    unmount_below(dir);
    for hierarchy in hierarchies() {
        for node in &state.nodes {
            remove_cgroup_tree(&hierarchy.join(&node.cgroup_root));
        }
    }
    for own in &state.cgroups {
        remove_cgroup_tree(own);
    }
    // Deepest first; a directory something else still uses stays.
    for ancestor in &state.cgroup_ancestors {
        let _ = std::fs::remove_dir(ancestor);
    }
    for namespace in state.namespaces.iter().rev() {
        if Path::new("/var/run/netns").join(namespace).exists() {
            if let Err(e) = ip(&["netns", "delete", namespace]) {
                problems.push(e.to_string());
            }
        }
    }
    if let Some(kubeconfig) = &state.kubeconfig {
        if !kubeconfig.starts_with(dir) {
            let _ = std::fs::remove_file(kubeconfig);
        }
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        problems.push(format!("{}: {e}", dir.display()));
    }
    if problems.is_empty() {
        println!("cluster {:?} removed", state.name);
        Ok(())
    } else {
        bail!("some things could not be removed:\n{}", problems.join("\n"))
    }
}

fn unmount_below(dir: &Path) {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", dir.display());
    let mut mounts: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in mounts {
        if let Ok(target) = std::ffi::CString::new(mount) {
            // SAFETY: umount2 with a valid path; detach so that a busy mount goes too.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Removes a cgroup directory and its children, deepest first (cgroupfs only removes empty groups with rmdir).
fn remove_cgroup_tree(path: &Path) {
    if !path.is_dir() {
        return;
    }
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(path);
}
