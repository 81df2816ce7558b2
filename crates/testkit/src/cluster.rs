use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::server::run_kubectl;

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// A `k8rs local-cluster` made for one test: unique name and directory, removed (`down`) on drop.
pub struct LocalCluster {
    binary: PathBuf,
    dir: tempfile::TempDir,
    pub name: String,
}

/// What `cluster.json` records (the part tests read).
#[derive(Debug)]
pub struct ClusterState {
    pub processes: Vec<u32>,
    pub namespaces: Vec<String>,
    pub cgroups: Vec<PathBuf>,
}

impl LocalCluster {
    /// `k8rs local-cluster up` with `nodes` nodes and `extra` arguments (e.g. `--images FILE`); panics with the
    /// command's output if it fails.
    pub fn up(binary: &Path, nodes: u8, extra: &[&str]) -> LocalCluster {
        let dir = tempfile::Builder::new().prefix("k8rs-cluster-").tempdir().expect("temporary directory");
        // Short (namespace and interface names are limited) and unique across concurrent test processes.
        let name = format!("t{}-{}", std::process::id(), CLUSTERS.fetch_add(1, Ordering::Relaxed));
        let cluster = LocalCluster { binary: binary.into(), dir, name };
        let output = Command::new(binary)
            .args(["local-cluster", "up", "--nodes", &nodes.to_string(), "--name", &cluster.name, "--dir"])
            .arg(cluster.cluster_dir())
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .output()
            .expect("run k8rs local-cluster up");
        assert!(
            output.status.success(),
            "k8rs local-cluster up failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster
    }

    /// Where the cluster keeps its nodes' data (inside the test's temporary directory).
    pub fn cluster_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    pub fn node_dir(&self, index: u8) -> PathBuf {
        self.cluster_dir().join(format!("node-{index}"))
    }

    pub fn node_name(&self, index: u8) -> String {
        format!("{}-node-{index}", self.name)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.cluster_dir().join("kubeconfig.yaml")
    }

    /// The node's k8rs log (server and/or agent).
    pub fn log(&self, index: u8) -> String {
        std::fs::read_to_string(self.node_dir(index).join("k8rs.log")).unwrap_or_default()
    }

    pub fn state(&self) -> ClusterState {
        let text = std::fs::read(self.cluster_dir().join("cluster.json")).expect("cluster.json");
        let state: serde_json::Value = serde_json::from_slice(&text).expect("cluster.json is JSON");
        let list = |key: &str| -> Vec<serde_json::Value> { state[key].as_array().cloned().unwrap_or_default() };
        ClusterState {
            processes: list("processes").iter().filter_map(|p| p.as_u64()).map(|p| p as u32).collect(),
            namespaces: list("namespaces").iter().filter_map(|n| n.as_str().map(str::to_string)).collect(),
            cgroups: list("cgroups").iter().filter_map(|c| c.as_str().map(PathBuf::from)).collect(),
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        run_kubectl(None, &self.kubeconfig(), self.dir.path(), args, None)
    }

    /// kubectl's stdout; panics with its stderr if it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(output.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        run_kubectl(None, &self.kubeconfig(), self.dir.path(), args, Some(stdin))
    }

    /// Applies a manifest; panics with kubectl's error if that fails.
    pub fn apply(&self, manifest: &str) {
        let output = self.kubectl_stdin(&["apply", "-f", "-"], manifest);
        assert!(output.status.success(), "kubectl apply failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Polls `kubectl args` until `done` accepts its stdout; panics with the last output after `deadline`.
    pub fn wait_for(&self, args: &[&str], deadline: Duration, done: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + deadline;
        let mut last = String::new();
        while Instant::now() < until {
            let output = self.kubectl(args);
            last = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            if output.status.success() && done(&String::from_utf8_lossy(&output.stdout)) {
                return String::from_utf8_lossy(&output.stdout).into_owned();
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("kubectl {args:?} did not reach the expected state within {deadline:?}; last output:\n{last}\nnode log:\n{}", tail(&self.log(0), 40));
    }

    /// Runs `k8rs local-cluster down`, returning its output (drop does it too, ignoring failures).
    pub fn down(&self) -> Output {
        Command::new(&self.binary)
            .args(["local-cluster", "down", "--name", &self.name, "--dir"])
            .arg(self.cluster_dir())
            .stdin(Stdio::null())
            .output()
            .expect("run k8rs local-cluster down")
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.cluster_dir().join("cluster.json").exists() {
            let output = self.down();
            if !output.status.success() {
                eprintln!("k8rs local-cluster down: {}", String::from_utf8_lossy(&output.stderr));
            }
        }
    }
}

impl LocalCluster {
    /// Kills node `index`'s k8rs process (SIGKILL: no chance to clean up) and starts it again with the same
    /// command line in the node's network namespace, as a crashed kubelet restarted by its service manager.
    pub fn restart_node(&self, index: u8) {
        use std::os::unix::process::CommandExt;
        let path = self.cluster_dir().join("cluster.json");
        let mut state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("cluster.json")).expect("JSON");
        let pid = state["processes"][index as usize].as_u64().expect("the node's process") as i32;
        let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
            .expect("the node's process is running")
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        // SAFETY: kill(2) on the pid the cluster recorded for this node, which we just read the command line of.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}/exe")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let log =
            std::fs::OpenOptions::new().append(true).open(self.node_dir(index).join("k8rs.log")).expect("node log");
        let netns = std::fs::File::open(format!("/var/run/netns/k8rs-{}-{index}", self.name)).expect("node netns");
        let netns_fd = std::os::fd::AsRawFd::as_raw_fd(&netns);
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // SAFETY: setns and setsid are async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(netns_fd, libc::CLONE_NEWNET) != 0 || libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("restart the node");
        state["processes"][index as usize] = serde_json::json!(child.id());
        // It runs until `down`; reap it then so it does not linger as a zombie of the test process.
        std::thread::spawn(move || child.wait());
        std::fs::write(&path, serde_json::to_vec(&state).expect("JSON")).expect("write cluster.json");
    }

    /// A plain-HTTP registry on the cluster's underlay (10.99.0.250:5000, on the `k8rs-NAME-lan` bridge), where
    /// every node reaches it; stopped on drop.
    pub fn start_registry(&self) -> UnderlayRegistry {
        use std::os::unix::process::CommandExt;
        let lan = format!("k8rs-{}-lan", self.name);
        let ip = |args: &[&str]| {
            let output = Command::new("ip").args(args).output().expect("run ip");
            assert!(output.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        ip(&["-n", &lan, "addr", "add", "10.99.0.250/24", "dev", "br0"]);
        let dir = tempfile::Builder::new().prefix("k8rs-registry-").tempdir().expect("temporary directory");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\nstorage: {{filesystem: \
                 {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 10.99.0.250:5000}}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("registry config");
        let netns = std::fs::File::open(format!("/var/run/netns/{lan}")).expect("lan netns");
        let netns_fd = std::os::fd::AsRawFd::as_raw_fd(&netns);
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let mut command = Command::new("docker-registry");
        command.arg("serve").arg(&config).stdin(Stdio::null()).stdout(log.try_clone().expect("log")).stderr(log);
        crate::die_with_parent(&mut command);
        // SAFETY: setns is async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(netns_fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start docker-registry (is Debian's docker-registry installed?)");
        let registry = UnderlayRegistry { child, dir, lan };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !registry
            .run_in_lan(&["busybox", "wget", "-q", "-O", "/dev/null", "http://10.99.0.250:5000/v2/"])
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "the registry did not answer within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }
}

/// A registry started by [`LocalCluster::start_registry`].
pub struct UnderlayRegistry {
    child: std::process::Child,
    dir: tempfile::TempDir,
    lan: String,
}

impl UnderlayRegistry {
    pub const HOST: &'static str = "10.99.0.250:5000";

    fn run_in_lan(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.lan])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run in the lan namespace")
    }

    /// Pushes an OCI layout tar as `REPOSITORY:TAG` with skopeo (run on the underlay).
    pub fn push_oci_archive(&self, archive: &Path, repository_and_tag: &str) {
        let output = self.run_in_lan(&[
            "skopeo",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci-archive:{}", archive.display()),
            &format!("docker://{}/{repository_and_tag}", Self::HOST),
        ]);
        assert!(output.status.success(), "skopeo copy failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for UnderlayRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
