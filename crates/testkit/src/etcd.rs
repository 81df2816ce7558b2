use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{die_with_parent, free_port};

/// A single-member etcd (Debian's `etcd-server`) on loopback, with its data in a temporary directory.
/// Dropping it kills the process and removes the directory.
pub struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
}

const START_ATTEMPTS: usize = 3;
const START_DEADLINE: Duration = Duration::from_secs(60);

impl Etcd {
    /// Starts etcd and waits until it reports itself healthy. Panics with the reason if it cannot.
    pub fn start() -> Etcd {
        let binary = std::env::var("K8RS_TEST_ETCD").unwrap_or_else(|_| "etcd".into());
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir =
                tempfile::Builder::new().prefix("k8rs-etcd-").tempdir().expect("cannot make a temporary directory");
            // Another process may take a port between our probe and etcd's bind: then etcd exits, and we retry.
            let (client_port, peer_port) = (free_port(), free_port());
            let mut etcd = Etcd { child: None, dir, client_port };
            match etcd.spawn(&binary, peer_port) {
                Ok(()) => return etcd,
                Err(e) => last_error = e,
            }
        }
        panic!("cannot start etcd ({binary}): {last_error}. Is Debian's etcd-server installed?");
    }

    fn spawn(&mut self, binary: &str, peer_port: u16) -> Result<(), String> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).map_err(|e| e.to_string())?;
        let mut command = Command::new(binary);
        command
            .arg("--name=k8rs-test")
            .arg(format!("--data-dir={}", self.dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=k8rs-test={peer}"))
            // Room for k8rs's largest value (1.5 MiB) plus the request around it.
            .arg("--max-request-bytes=2097152")
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        die_with_parent(&mut command);
        let mut child = Some(command.spawn().map_err(|e| e.to_string())?);
        let started = crate::wait_started(&mut child, "etcd", START_DEADLINE, || self.healthy(), || self.log_tail());
        self.child = child;
        started
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills etcd now (the directory stays until drop).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        let mut response = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut response).is_ok()
            && response.contains("\"health\":\"true\"")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
