//! A private OCI registry (Debian's `docker-registry`, CNCF distribution 2.8) on loopback over plain HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{die_with_parent, free_port};

/// The user and password a registry started with [`Registry::start_with_auth`] accepts.
pub const REGISTRY_USER: &str = "k8rs";
pub const REGISTRY_PASSWORD: &str = "k8rs-secret";
// bcrypt of REGISTRY_PASSWORD (distribution reads only bcrypt htpasswd lines; Debian has no htpasswd tool here).
const HTPASSWD_LINE: &str = "k8rs:$2b$05$8ziBxwfe8sqo807vz52gTufr9PYm6NfP6TqsWpSirxdamzc0Pdfgy\n";

const START_ATTEMPTS: usize = 3;
const START_DEADLINE: Duration = Duration::from_secs(30);

/// `docker-registry serve` with its storage in a temporary directory. Dropping it kills the process and removes
/// the directory.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    auth: bool,
}

impl Registry {
    /// Starts an anonymous registry and waits until `/v2/` answers. Panics with the reason if it cannot.
    pub fn start() -> Registry {
        Self::start_inner(false)
    }

    /// Starts a registry that requires HTTP basic auth with [`REGISTRY_USER`] / [`REGISTRY_PASSWORD`].
    pub fn start_with_auth() -> Registry {
        Self::start_inner(true)
    }

    fn start_inner(auth: bool) -> Registry {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir =
                tempfile::Builder::new().prefix("k8rs-registry-").tempdir().expect("cannot make a temporary directory");
            // Another process may take the port between our probe and the registry's bind: then it exits, we retry.
            let mut registry = Registry { child: None, dir, port: free_port(), auth };
            match registry.spawn() {
                Ok(()) => return registry,
                Err(e) => last_error = e,
            }
        }
        panic!("cannot start docker-registry: {last_error}. Is Debian's docker-registry installed?");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\n\
             storage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\n\
             http: {{addr: 127.0.0.1:{}}}\n",
            dir.join("data").display(),
            self.port
        );
        if self.auth {
            std::fs::write(dir.join("htpasswd"), HTPASSWD_LINE).map_err(|e| e.to_string())?;
            config.push_str(&format!(
                "auth: {{htpasswd: {{realm: k8rs-test, path: {}}}}}\n",
                dir.join("htpasswd").display()
            ));
        }
        std::fs::write(dir.join("config.yml"), config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("registry.log")).map_err(|e| e.to_string())?;
        let mut command = Command::new("docker-registry");
        command
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        die_with_parent(&mut command);
        let mut child = Some(command.spawn().map_err(|e| e.to_string())?);
        let started =
            crate::wait_started(&mut child, "docker-registry", START_DEADLINE, || self.answers(), || self.log_tail());
        self.child = child;
        started
    }

    /// `127.0.0.1:PORT`, the registry's host as it appears in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`, for mirror endpoints.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The registry's storage root (`docker/registry/v2/blobs/sha256/<xx>/<hex>/data` holds the blobs).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file holding blob `sha256:<hex>` in the registry's storage.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage_dir().join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    /// Pushes the single image (or index) of an OCI layout tar as `REPOSITORY:TAG` (e.g. `library/busybox:latest`)
    /// with skopeo.
    /// Panics with skopeo's output if that fails.
    pub fn push_oci_archive(&self, archive: &Path, repository_and_tag: &str) {
        let mut command = Command::new("skopeo");
        // The archive goes up as it is: an index with every platform, layers not recompressed, same digests.
        command.args(["copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false"]);
        if self.auth {
            command.arg(format!("--dest-creds={REGISTRY_USER}:{REGISTRY_PASSWORD}"));
        }
        // Without a `:ref` suffix skopeo takes the archive's only image.
        let output = command
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{}/{repository_and_tag}", self.host()))
            .stdin(Stdio::null())
            .output()
            .expect("cannot run skopeo; is Debian's skopeo installed?");
        assert!(
            output.status.success(),
            "skopeo copy of {} failed: {}",
            archive.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Kills the registry now (its storage stays until drop), e.g. to test a registry that is down.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        let mut response = String::new();
        // 401 counts: an auth registry answers /v2/ with a challenge.
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut response).is_ok()
            && response.split(' ').nth(1).is_some_and(|status| status == "200" || status == "401")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}
