//! Containers: pod sandboxes (network, IPC and UTS namespaces kept alive by bind-mounted namespace files, plus a pod
//! cgroup in every v1 hierarchy) and containers, each driven by its own `k8rs shim` process that runs the OCI runtime
//! CLI (runc by default, crun supported), copies the container's output into a CRI log file and records the exit
//! status. Everything lives in files under `state_dir`, so a new [`ContainerRuntime`] (after a kubelet restart) finds
//! running containers again.

mod cgroup;
mod cri_log;
mod oci;
mod records;
mod rt;
mod sandbox;
mod shim;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tracing::{debug, info, warn};

use cgroup::Hierarchies;
use records::{ContainerRecord, ExitRecord, ShimConfig};
use rt::OciRuntime;

pub use shim::shim_main;

/// How long `runc create` (started by the shim) may take before `create_container` gives up.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for a container to die after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// Polling interval while waiting for the shim to record an exit.
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The OCI runtime refused to create the container (e.g. the command is not in the image); `message` is the
    /// runtime's own error text, meant for the user.
    #[error("{message}")]
    Create { message: String },
    #[error("{runtime} {op} {id}: {message}")]
    Runtime { runtime: String, op: String, id: String, message: String },
    #[error("shim for container {id}: {message}")]
    Shim { id: String, message: String },
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("container {id} did not exit within {timeout:?} after SIGKILL")]
    StopTimeout { id: String, timeout: Duration },
    #[error("OCI spec: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    #[error("corrupt state file {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("background task failed: {0}")]
    Task(String),
}

impl RuntimeError {
    fn io(context: impl Into<String>, source: io::Error) -> Self {
        RuntimeError::Io { context: context.into(), source }
    }
}

/// Extension for attaching context to io errors.
trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, RuntimeError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, RuntimeError> {
        self.map_err(|e| RuntimeError::io(context(), e))
    }
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// runc (the default) or crun binary.
    pub oci_runtime: PathBuf,
    /// Per-container and per-sandbox directories: bundle/config.json, shim pid, exit status, namespace files, …
    pub state_dir: PathBuf,
    /// `--root` for runc/crun (private, not /run/runc).
    pub runtime_root: PathBuf,
    /// Program and leading arguments that start a shim, e.g. `[current_exe, "shim"]`.
    pub shim: Vec<OsString>,
    /// Path below every cgroup hierarchy under which pod cgroups go, e.g. "k8rs".
    pub cgroup_root: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    pub id: String,
    pub hostname: String,
    pub host_network: bool,
    /// Below `cgroup_root`, e.g. "burstable/pod<uid>".
    pub cgroup_parent: String,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: String,
    /// None for host network.
    pub netns: Option<PathBuf>,
    pub ipc_ns: PathBuf,
    pub uts_ns: PathBuf,
    pub cgroup_parent: String,
    pub labels: BTreeMap<String, String>,
    pub created_at: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub attempt: u32,
    pub labels: BTreeMap<String, String>,
    /// Already mounted (overlay) by the image module.
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub mounts: Vec<Mount>,
    pub memory_limit: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub log_path: PathBuf,
    /// Rotate the log file when it would grow beyond this many bytes (0: never).
    pub log_max_size: u64,
    /// How many log files to keep, the current one included.
    pub log_max_files: usize,
    /// The image's StopSignal; SIGTERM when None.
    pub stop_signal: Option<i32>,
}

/// A bind mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running { pid: u32, started_at: SystemTime },
    Exited { exit_code: i32, oom_killed: bool, started_at: Option<SystemTime>, finished_at: SystemTime },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: String,
    pub state: ContainerState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    pub labels: BTreeMap<String, String>,
    pub log_path: PathBuf,
    pub status: ContainerStatus,
}

#[derive(Clone)]
pub struct ContainerRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    rt: OciRuntime,
    shim: Vec<OsString>,
    sandboxes_dir: PathBuf,
    containers_dir: PathBuf,
    cgroup_root: String,
    hierarchies: Hierarchies,
}

impl ContainerRuntime {
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        if config.shim.is_empty() {
            return Err(RuntimeError::InvalidArgument("shim command is empty".into()));
        }
        let cgroup_root = config.cgroup_root.trim_matches('/').to_string();
        if cgroup_root.split('/').any(|c| c == "..") {
            return Err(RuntimeError::InvalidArgument(format!("cgroup root {:?}", config.cgroup_root)));
        }
        for dir in [&config.state_dir, &config.runtime_root] {
            std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        }
        // Absolute paths: the shim runs in / and finds its container directory by its command line.
        let state_dir = std::fs::canonicalize(&config.state_dir).ctx(|| "resolve state dir".into())?;
        let runtime_root = std::fs::canonicalize(&config.runtime_root).ctx(|| "resolve runtime root".into())?;
        let sandboxes_dir = state_dir.join("sandboxes");
        let containers_dir = state_dir.join("containers");
        for dir in [&sandboxes_dir, &containers_dir] {
            std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        }
        let hierarchies = Hierarchies::discover().ctx(|| "read cgroup mounts".into())?;
        let rt = OciRuntime::new(config.oci_runtime, runtime_root);
        Ok(ContainerRuntime {
            inner: Arc::new(Inner { rt, shim: config.shim, sandboxes_dir, containers_dir, cgroup_root, hierarchies }),
        })
    }

    pub async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<Sandbox, RuntimeError> {
        check_name("sandbox id", &spec.id)?;
        check_cgroup_parent(&spec.cgroup_parent)?;
        let inner = self.inner.clone();
        let spec = spec.clone();
        // A fresh thread, never a pooled one: it unshares namespaces, which would otherwise leak into later tasks.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("sandbox-{}", spec.id))
            .spawn(move || {
                let _ = tx.send(sandbox::create(&inner.sandboxes_dir, &inner.hierarchies, &inner.cgroup_root, &spec));
            })
            .ctx(|| "spawn sandbox thread".into())?;
        let sandbox = rx.await.map_err(|_| RuntimeError::Task("sandbox thread panicked".into()))??;
        info!(sandbox = %sandbox.id, netns = ?sandbox.netns, "sandbox created");
        Ok(sandbox)
    }

    /// Unmounts and deletes the namespace files and removes the pod cgroup in every hierarchy. Idempotent.
    pub async fn remove_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        check_name("sandbox id", id)?;
        let inner = self.inner.clone();
        let id = id.to_string();
        blocking(move || sandbox::remove(&inner.sandboxes_dir, &inner.hierarchies, &inner.cgroup_root, &id)).await
    }

    pub async fn sandbox(&self, id: &str) -> Result<Option<Sandbox>, RuntimeError> {
        check_name("sandbox id", id)?;
        let path = self.inner.sandboxes_dir.join(id).join(sandbox::RECORD);
        blocking(move || records::read_optional(&path)).await
    }

    pub async fn list_sandboxes(&self) -> Result<Vec<Sandbox>, RuntimeError> {
        let dir = self.inner.sandboxes_dir.clone();
        blocking(move || {
            let mut out = Vec::new();
            for name in list_dir(&dir)? {
                // A sandbox without its record is half-made (or half-removed): not listed.
                if let Some(sb) = records::read_optional::<Sandbox>(&dir.join(name).join(sandbox::RECORD))? {
                    out.push(sb);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Writes the bundle and starts the shim, which runs `RT create` and stays to supervise the container; returns
    /// once the container is created.
    pub async fn create_container(&self, sandbox: &Sandbox, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        check_name("container name", &spec.name)?;
        let id = random_id()?;
        let dir = self.inner.containers_dir.join(&id);
        let inner = self.inner.clone();
        let (sandbox, spec2, id2, dir2) = (sandbox.clone(), spec.clone(), id.clone(), dir.clone());
        let shim_log = blocking(move || inner.write_bundle(&sandbox, &spec2, &id2, &dir2)).await.inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
        })?;
        match self.spawn_shim(&id, &dir, shim_log).await {
            Ok(()) => {
                info!(container = %id, name = %spec.name, "container created");
                Ok(id)
            }
            Err(e) => {
                if matches!(e, RuntimeError::Shim { .. }) {
                    // The shim may have got as far as creating it.
                    let _ = self.inner.rt.run(&["delete", "--force", &id]).await;
                }
                let _ = tokio::fs::remove_dir_all(&dir).await;
                Err(e)
            }
        }
    }

    async fn spawn_shim(&self, id: &str, dir: &Path, shim_log: std::fs::File) -> Result<(), RuntimeError> {
        let mut child = tokio::process::Command::new(&self.inner.shim[0])
            .args(&self.inner.shim[1..])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(shim_log)
            .spawn()
            .ctx(|| format!("spawn shim {:?}", self.inner.shim[0]))?;
        let stdout = child.stdout.take().expect("piped stdout");
        // The first process forks the real shim and exits at once; the shim reports on the inherited stdout.
        let mut line = String::new();
        let read = tokio::time::timeout(CREATE_TIMEOUT, BufReader::new(stdout).read_line(&mut line)).await;
        let _ = child.wait().await;
        let shim_err = |message: String| RuntimeError::Shim { id: id.to_string(), message };
        match read {
            Err(_) => Err(shim_err(format!("no report within {CREATE_TIMEOUT:?}"))),
            Ok(Err(e)) => Err(shim_err(format!("read report: {e}"))),
            Ok(Ok(_)) => match shim::Report::parse(&line) {
                Some(shim::Report::Created) => Ok(()),
                Some(shim::Report::Failed(message)) => Err(RuntimeError::Create { message }),
                None => {
                    let log = tokio::fs::read_to_string(dir.join(records::SHIM_LOG)).await.unwrap_or_default();
                    Err(shim_err(format!("exited without report: {}", log.trim())))
                }
            },
        }
    }

    /// `RT start`; returns once the container process runs.
    pub async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let dir = self.container_dir(id)?;
        if dir.join(records::EXIT).exists() {
            return Err(self.inner.rt.error("start", id, "container has already exited".into()));
        }
        // Recorded before `start` so that an exit racing with our return still carries its start time.
        let started = dir.join(records::STARTED);
        let now = SystemTime::now();
        blocking({
            let started = started.clone();
            move || records::write_atomic(&started, &now)
        })
        .await?;
        if let Err(e) = self.inner.rt.run(&["start", id]).await {
            // A container that exits at once can be reaped and deleted by its shim before `runc start` has removed
            // its exec fifo, which `start` then reports as an error: it did start.
            if dir.join(records::EXIT).exists() {
                debug!(container = %id, error = %e, "start reported an error after the container had run");
                return Ok(());
            }
            let _ = tokio::fs::remove_file(&started).await;
            return Err(e);
        }
        debug!(container = %id, "container started");
        Ok(())
    }

    /// Sends the stop signal (the image's StopSignal or SIGTERM), waits up to `grace`, then SIGKILL; returns once
    /// the container has exited.
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let dir = self.container_dir(id)?;
        let record: ContainerRecord = read_record(dir.join(records::CONTAINER)).await?;
        if dir.join(records::EXIT).exists() {
            return Ok(());
        }
        if !shim_alive(&dir) {
            // Nobody is left to record an exit (status reports it as unknown, 255): just make sure it is dead.
            warn!(container = %id, "shim is gone; killing the container");
            if let Err(e) = self.inner.rt.run(&["kill", id, "9"]).await {
                debug!(container = %id, error = %e, "SIGKILL not delivered");
            }
            return Ok(());
        }
        let signal = record.stop_signal.unwrap_or(libc::SIGTERM);
        if let Err(e) = self.inner.rt.run(&["kill", id, &signal.to_string()]).await {
            // Fails when the container exited meanwhile; anything else shows up as a timeout below.
            debug!(container = %id, error = %e, "stop signal not delivered");
        }
        if wait_exit(&dir, grace).await {
            return Ok(());
        }
        info!(container = %id, ?grace, "grace period over, sending SIGKILL");
        if let Err(e) = self.inner.rt.run(&["kill", id, "9"]).await {
            debug!(container = %id, error = %e, "SIGKILL not delivered");
        }
        if wait_exit(&dir, KILL_TIMEOUT).await {
            Ok(())
        } else {
            Err(RuntimeError::StopTimeout { id: id.to_string(), timeout: KILL_TIMEOUT })
        }
    }

    /// Runs `args` inside a running container (`RT exec`, joining all its namespaces and cgroups), for at most
    /// `timeout`; returns the command's exit code and its output (stdout, then stderr).
    pub async fn exec_sync(
        &self,
        id: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>), RuntimeError> {
        self.container_dir(id)?;
        let mut cmd = tokio::process::Command::from(self.inner.rt.command(None));
        cmd.arg("exec").arg(id).args(args);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.kill_on_drop(true);
        match tokio::time::timeout(timeout, cmd.output()).await {
            Ok(Ok(out)) => {
                let mut output = out.stdout;
                output.extend_from_slice(&out.stderr);
                Ok((out.status.code().unwrap_or(128 + out.status.signal().unwrap_or(0)), output))
            }
            Ok(Err(e)) => Err(self.inner.rt.error("exec", id, e.to_string())),
            Err(_) => Err(self.inner.rt.error("exec", id, format!("command timed out after {timeout:?}"))),
        }
    }

    /// Reads the files the shim writes; no runtime call.
    pub async fn status(&self, id: &str) -> Result<ContainerStatus, RuntimeError> {
        let dir = self.container_dir(id)?;
        let id = id.to_string();
        blocking(move || read_status(&dir, id)).await
    }

    /// `RT delete --force`, waits for the shim to go, removes the state directory (the log file stays).
    pub async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        check_name("container id", id)?;
        let dir = self.inner.containers_dir.join(id);
        if !dir.exists() {
            return Ok(());
        }
        if let Err(e) = self.inner.rt.run(&["delete", "--force", id]).await {
            // Normal when the shim already deleted it after the exit.
            debug!(container = %id, error = %e, "delete");
        }
        let deadline = Instant::now() + KILL_TIMEOUT;
        while shim_alive(&dir) {
            if Instant::now() > deadline {
                return Err(RuntimeError::Shim { id: id.to_string(), message: "still running after delete".into() });
            }
            tokio::time::sleep(POLL).await;
        }
        tokio::fs::remove_dir_all(&dir).await.ctx(|| format!("remove {}", dir.display()))?;
        debug!(container = %id, "container removed");
        Ok(())
    }

    /// Every container in the state directory (e.g. after a kubelet restart).
    pub async fn list_containers(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let dir = self.inner.containers_dir.clone();
        blocking(move || {
            let mut out = Vec::new();
            for id in list_dir(&dir)? {
                let cdir = dir.join(&id);
                // Not yet (or no longer) complete: being created or removed concurrently.
                let Some(record) = records::read_optional::<ContainerRecord>(&cdir.join(records::CONTAINER))? else {
                    continue;
                };
                let status = match read_status(&cdir, id.clone()) {
                    Ok(s) => s,
                    Err(e) if !cdir.exists() => {
                        debug!(container = %id, error = %e, "removed while listing");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                out.push(ContainerInfo {
                    id,
                    sandbox_id: record.sandbox_id,
                    name: record.name,
                    attempt: record.attempt,
                    labels: record.labels,
                    log_path: record.log_path,
                    status,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Where the cgroup v1 hierarchy holding `controller` is mounted (its root cgroup), if it is.
    pub fn cgroup_hierarchy(&self, controller: &str) -> Option<PathBuf> {
        self.inner.hierarchies.mount(controller).map(Path::to_path_buf)
    }

    /// A sandbox's cgroup, relative to the root of every hierarchy.
    pub fn sandbox_cgroup(&self, sandbox: &Sandbox) -> String {
        sandbox::cgroup_rel(&self.inner.cgroup_root, &sandbox.cgroup_parent)
    }

    /// The cgroup of the container `id` of `sandbox`, relative to the root of every hierarchy.
    pub fn container_cgroup(&self, sandbox: &Sandbox, id: &str) -> String {
        self.inner.container_cgroup(sandbox, id)
    }

    fn container_dir(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        check_name("container id", id)?;
        let dir = self.inner.containers_dir.join(id);
        if !dir.exists() {
            return Err(RuntimeError::NotFound { kind: "container", id: id.to_string() });
        }
        Ok(dir)
    }
}

impl Inner {
    fn container_cgroup(&self, sandbox: &Sandbox, id: &str) -> String {
        format!("{}/{id}", sandbox::cgroup_rel(&self.cgroup_root, &sandbox.cgroup_parent))
    }

    /// Writes the container's state directory; returns the shim's log file, opened for its stderr.
    fn write_bundle(
        &self,
        sandbox: &Sandbox,
        spec: &ContainerSpec,
        id: &str,
        dir: &Path,
    ) -> Result<std::fs::File, RuntimeError> {
        let bundle = dir.join("bundle");
        // The shim and the runtime do not run in the caller's working directory.
        let absolute = |p: &Path| std::path::absolute(p).ctx(|| format!("resolve {}", p.display()));
        let spec = &ContainerSpec {
            rootfs: absolute(&spec.rootfs)?,
            log_path: absolute(&spec.log_path)?,
            mounts: spec
                .mounts
                .iter()
                .map(|m| Ok(Mount { source: absolute(&m.source)?, ..m.clone() }))
                .collect::<Result<_, RuntimeError>>()?,
            ..spec.clone()
        };
        std::fs::create_dir_all(&bundle).ctx(|| format!("create {}", bundle.display()))?;
        let cgroup_rel = self.container_cgroup(sandbox, id);
        let config = oci::build(sandbox, spec, format!("/{cgroup_rel}"))?;
        config.save(bundle.join("config.json"))?;
        if let Some(parent) = spec.log_path.parent() {
            std::fs::create_dir_all(parent).ctx(|| format!("create log dir {}", parent.display()))?;
        }
        records::write_atomic(
            &dir.join(records::SHIM_CONFIG),
            &ShimConfig {
                id: id.to_string(),
                runtime: self.rt.clone(),
                bundle,
                log_path: spec.log_path.clone(),
                log_max_size: spec.log_max_size,
                log_max_files: spec.log_max_files,
                memory_cgroup: self.hierarchies.controller_dir("memory", &cgroup_rel),
            },
        )?;
        records::write_atomic(
            &dir.join(records::CONTAINER),
            &ContainerRecord {
                id: id.to_string(),
                sandbox_id: sandbox.id.clone(),
                name: spec.name.clone(),
                attempt: spec.attempt,
                labels: spec.labels.clone(),
                log_path: spec.log_path.clone(),
                stop_signal: spec.stop_signal,
            },
        )?;
        let shim_log = dir.join(records::SHIM_LOG);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&shim_log)
            .ctx(|| format!("open {}", shim_log.display()))
    }
}

fn read_status(dir: &Path, id: String) -> Result<ContainerStatus, RuntimeError> {
    let exit_file = dir.join(records::EXIT);
    if let Some(exit) = records::read_optional::<ExitRecord>(&exit_file)? {
        return Ok(ContainerStatus { id, state: exit.into() });
    }
    let started_at = records::read_optional::<SystemTime>(&dir.join(records::STARTED))?;
    if !shim_alive(dir) {
        // The shim may have written the exit just now; otherwise it died without recording one.
        if let Some(exit) = records::read_optional::<ExitRecord>(&exit_file)? {
            return Ok(ContainerStatus { id, state: exit.into() });
        }
        warn!(container = %id, "shim is gone without an exit status");
        let state =
            ContainerState::Exited { exit_code: 255, oom_killed: false, started_at, finished_at: SystemTime::now() };
        return Ok(ContainerStatus { id, state });
    }
    let state = match started_at {
        Some(started_at) => {
            let pid = records::read_pid(&dir.join(records::INIT_PID))?;
            ContainerState::Running { pid, started_at }
        }
        None => ContainerState::Created,
    };
    Ok(ContainerStatus { id, state })
}

/// Whether the shim of the container in `dir` still runs (its command line names the directory, so a reused pid
/// does not count).
fn shim_alive(dir: &Path) -> bool {
    let Ok(pid) = records::read_pid(&dir.join(records::SHIM_PID)) else {
        return false;
    };
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // The state follows the last ')' (the command name may contain anything).
    if stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    let dir = dir.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == dir)
}

/// Waits until the shim has recorded the exit, or is gone without one (then the status says so); false on timeout.
async fn wait_exit(dir: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if dir.join(records::EXIT).exists() || !shim_alive(dir) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn read_record<T: serde::de::DeserializeOwned + Send + 'static>(path: PathBuf) -> Result<T, RuntimeError> {
    blocking(move || records::read(&path)).await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| RuntimeError::Task(e.to_string()))?
}

fn list_dir(dir: &Path) -> Result<Vec<String>, RuntimeError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).ctx(|| format!("read {}", dir.display()))? {
        let entry = entry.ctx(|| format!("read {}", dir.display()))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Names become file and cgroup path components.
fn check_name(what: &str, name: &str) -> Result<(), RuntimeError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidArgument(format!("{what} {name:?}")))
    }
}

fn check_cgroup_parent(parent: &str) -> Result<(), RuntimeError> {
    let parts: Vec<&str> = parent.trim_matches('/').split('/').collect();
    if parts.iter().any(|p| check_name("cgroup parent", p).is_err()) {
        return Err(RuntimeError::InvalidArgument(format!("cgroup parent {parent:?}")));
    }
    Ok(())
}

/// 128 random bits in hex, like containerd's ids (shorter, still collision-free in practice).
fn random_id() -> Result<String, RuntimeError> {
    let mut buf = [0u8; 16];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: writes at most the remaining length into our buffer.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(RuntimeError::io("getrandom", err));
            }
            continue;
        }
        filled += n as usize;
    }
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
