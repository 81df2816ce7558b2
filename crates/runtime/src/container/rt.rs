//! Invoking the OCI runtime CLI (runc or crun).

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{IoContext, RuntimeError};

/// On a hybrid cgroup host whose v2 mount still offers controllers, crun refuses to run ("cgroups in hybrid mode not
/// supported"); it is fine once it sees an empty `cgroup.controllers`, which a bind mount of /dev/null in a private
/// mount namespace of its own provides without touching the host.
const UNIFIED_CONTROLLERS: &str = "/sys/fs/cgroup/unified/cgroup.controllers";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct OciRuntime {
    binary: PathBuf,
    root: PathBuf,
    hide_unified_controllers: bool,
}

impl OciRuntime {
    pub fn new(binary: PathBuf, root: PathBuf) -> Self {
        let is_crun = binary.file_name().is_some_and(|n| n.to_string_lossy().contains("crun"));
        let hybrid = std::fs::read_to_string(UNIFIED_CONTROLLERS).is_ok_and(|c| !c.trim().is_empty());
        OciRuntime { binary, root, hide_unified_controllers: is_crun && hybrid }
    }

    /// `RT --root R [--log L --log-format json]`, ready for a subcommand.
    pub fn command(&self, log: Option<&Path>) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root);
        if let Some(log) = log {
            cmd.arg("--log").arg(log).args(["--log-format", "json"]);
        }
        if self.hide_unified_controllers {
            // SAFETY: only async-signal-safe syscalls between fork and exec.
            unsafe {
                cmd.pre_exec(hide_unified_controllers);
            }
        }
        cmd
    }

    /// Runs a short subcommand (start, kill, delete) to completion; its stderr becomes the error message.
    pub async fn run(&self, args: &[&str]) -> Result<(), RuntimeError> {
        let mut cmd = tokio::process::Command::from(self.command(None));
        cmd.args(args).stdin(std::process::Stdio::null()).kill_on_drop(true);
        let out = cmd.output().await.ctx(|| format!("run {}", self.binary.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = match stderr.trim() {
            "" => out.status.to_string(),
            s => s.to_string(),
        };
        Err(self.error(args[0], args.last().copied().unwrap_or_default(), message))
    }

    pub fn error(&self, op: &str, id: &str, message: String) -> RuntimeError {
        RuntimeError::Runtime {
            runtime: self.binary.display().to_string(),
            op: op.to_string(),
            id: id.to_string(),
            message,
        }
    }
}

fn hide_unified_controllers() -> io::Result<()> {
    fn check(rc: libc::c_int) -> io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    // SAFETY: plain syscalls on static C strings.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            c"/dev/null".as_ptr(),
            c"/sys/fs/cgroup/unified/cgroup.controllers".as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ))
    }
}

/// The last error message in a runtime's JSON `--log` (runc and crun both write `{"level":"error","msg":…}`).
pub(super) fn last_error(log: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Line {
        level: String,
        msg: String,
    }
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .find(|l| l.level == "error" || l.level == "fatal")
        .map(|l| l.msg)
}
