//! The files of a container's state directory, shared by the runtime and the shim.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::rt::OciRuntime;
use super::{ContainerState, IoContext, RuntimeError};

/// What the runtime knows about the container (written once, before the shim starts).
pub(super) const CONTAINER: &str = "container.json";
/// What the shim needs to run ([`ShimConfig`]).
pub(super) const SHIM_CONFIG: &str = "shim.json";
/// The shim's own pid.
pub(super) const SHIM_PID: &str = "shim.pid";
/// The shim's stderr, for diagnosis.
pub(super) const SHIM_LOG: &str = "shim.log";
/// The container init's pid, written by the OCI runtime.
pub(super) const INIT_PID: &str = "init.pid";
/// When `start` was called.
pub(super) const STARTED: &str = "started.json";
/// The exit status ([`ExitRecord`]), written by the shim once the container is gone.
pub(super) const EXIT: &str = "exit.json";
/// The OCI runtime's `--log` (JSON lines).
pub(super) const RUNTIME_LOG: &str = "runtime.log";

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    pub labels: BTreeMap<String, String>,
    pub log_path: PathBuf,
    pub stop_signal: Option<i32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ShimConfig {
    pub id: String,
    pub runtime: OciRuntime,
    pub bundle: PathBuf,
    pub log_path: PathBuf,
    pub log_max_size: u64,
    pub log_max_files: usize,
    /// The container's memory cgroup, whose `memory.oom_control` tells whether the OOM killer struck.
    pub memory_cgroup: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ExitRecord {
    pub exit_code: i32,
    pub oom_killed: bool,
    pub started_at: Option<SystemTime>,
    pub finished_at: SystemTime,
}

impl From<ExitRecord> for ContainerState {
    fn from(e: ExitRecord) -> Self {
        ContainerState::Exited {
            exit_code: e.exit_code,
            oom_killed: e.oom_killed,
            started_at: e.started_at,
            finished_at: e.finished_at,
        }
    }
}

/// Readers never see a half-written file: write a temporary file, then rename it over the target.
pub(super) fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), RuntimeError> {
    let data = serde_json::to_vec(value).expect("state records serialize");
    write_bytes_atomic(path, &data).ctx(|| format!("write {}", path.display()))
}

/// No fsync: these files matter only while the node's containers live, which a machine crash ends anyway, and a
/// sync per call would sit on the pod start path.
pub(super) fn write_bytes_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::File::create(&tmp)?.write_all(data)?;
    std::fs::rename(&tmp, path)
}

pub(super) fn read<T: DeserializeOwned>(path: &Path) -> Result<T, RuntimeError> {
    read_optional(path)?
        .ok_or_else(|| RuntimeError::io(format!("read {}", path.display()), io::Error::from(io::ErrorKind::NotFound)))
}

pub(super) fn read_optional<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, RuntimeError> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|source| RuntimeError::State { path: path.to_path_buf(), source }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::io(format!("read {}", path.display()), e)),
    }
}

pub(super) fn read_pid(path: &Path) -> Result<u32, RuntimeError> {
    let text = std::fs::read_to_string(path).ctx(|| format!("read {}", path.display()))?;
    text.trim().parse().map_err(|_| {
        RuntimeError::io(
            format!("read {}", path.display()),
            io::Error::new(io::ErrorKind::InvalidData, format!("not a pid: {text:?}")),
        )
    })
}
