use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{die_with_parent, free_port};

/// A `k8rs server` process on a free loopback port with its own data directory; killed on drop.
pub struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    binary: PathBuf,
    extra: Vec<String>,
}

const READY_DEADLINE: Duration = Duration::from_secs(90);

/// Where the versioned kubectl binaries (`kubectl.1.27` … `kubectl.1.33`) live: beside the real `kubectl`.
pub fn kubectl_path(version: Option<&str>) -> PathBuf {
    let dispatcher = std::fs::canonicalize("/usr/bin/kubectl").unwrap_or_else(|_| PathBuf::from("kubectl"));
    match version {
        None => dispatcher,
        Some(version) => dispatcher.with_file_name(format!("kubectl.{version}")),
    }
}

/// Runs kubectl with a kubeconfig and a private HOME (its caches), feeding it `stdin` if given.
pub(crate) fn run_kubectl(
    version: Option<&str>,
    kubeconfig: &Path,
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    use std::io::Write;
    let mut child = Command::new(kubectl_path(version))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

impl Server {
    /// Starts `binary server` (the k8rs binary under test) with `extra` arguments and waits until it is ready.
    pub fn start(binary: &Path, extra: &[&str]) -> Server {
        let dir = tempfile::Builder::new().prefix("k8rs-server-").tempdir().expect("temporary directory");
        let mut server = Server {
            child: None,
            dir,
            port: free_port(),
            binary: binary.into(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    /// Stops the server and starts it again on the same data directory and port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let (dir, port) = (&self.dir, self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("server.log"))
            .expect("log file");
        let mut command = Command::new(&self.binary);
        command
            .arg("server")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--bind-address", "127.0.0.1", "--https-listen-port", &port.to_string()])
            // The control-plane tests run no node; the node tests use `LocalCluster`.
            .arg("--disable-agent")
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        die_with_parent(&mut command);
        self.child = Some(command.spawn().expect("start k8rs server"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("k8rs server exited with {status}:\n{}", self.log());
            }
            if self.kubeconfig().exists() {
                let out = self.kubectl(None, &["get", "--raw", "/readyz"]);
                if out.status.success() && out.stdout == b"ok" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("k8rs server not ready within {READY_DEADLINE:?}:\n{}", self.log());
    }

    /// The server's process id (for its memory figures).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs kubectl (the dispatcher, or `kubectl.<version>`) against this server.
    pub fn kubectl(&self, version: Option<&str>, args: &[&str]) -> Output {
        run_kubectl(version, &self.kubeconfig(), self.dir.path(), args, None)
    }

    /// Runs kubectl with `stdin` as its input.
    pub fn kubectl_stdin(&self, version: Option<&str>, args: &[&str], stdin: &str) -> Output {
        run_kubectl(version, &self.kubeconfig(), self.dir.path(), args, Some(stdin))
    }

    /// Kills the server (the data directory stays until drop).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
