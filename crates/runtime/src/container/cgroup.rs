//! cgroup v1 hierarchies: pod cgroups with pod-level limits, and their removal from every hierarchy (runc also
//! creates the path in `name=systemd` and the unified one).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::debug;

use super::{IoContext, RuntimeError, SandboxSpec};

/// Where a pod cgroup is made: the hierarchies whose limits and accounting cover the pod.
const POD_CONTROLLERS: [&str; 4] = ["cpu", "cpuacct", "memory", "pids"];
/// A cgroup whose last task just exited stays busy for a moment.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct CgroupMount {
    dir: PathBuf,
    /// v1 controllers (or `name=…`) from the mount options; empty for cgroup2.
    controllers: Vec<String>,
}

#[derive(Debug)]
pub(super) struct Hierarchies {
    mounts: Vec<CgroupMount>,
}

impl Hierarchies {
    pub fn discover() -> io::Result<Self> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mut mounts: Vec<CgroupMount> = Vec::new();
        for line in info.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let mut right = right.split(' ');
            let fstype = right.next().unwrap_or_default();
            let options = right.nth(1).unwrap_or_default();
            let Some(mount_point) = left.split(' ').nth(4) else { continue };
            let controllers = match fstype {
                "cgroup" => options.split(',').filter(|o| !matches!(*o, "rw" | "ro")).map(String::from).collect(),
                "cgroup2" => Vec::new(),
                _ => continue,
            };
            let dir = PathBuf::from(unescape(mount_point));
            // The same hierarchy may be mounted twice; once is enough.
            if !mounts.iter().any(|m| m.dir == dir) {
                mounts.push(CgroupMount { dir, controllers });
            }
        }
        Ok(Hierarchies { mounts })
    }

    /// Where the hierarchy holding `controller` is mounted: its root cgroup.
    pub fn mount(&self, controller: &str) -> Option<&Path> {
        self.mounts.iter().find(|m| m.controllers.iter().any(|c| c == controller)).map(|m| m.dir.as_path())
    }

    /// `rel` in the hierarchy holding `controller`.
    pub fn controller_dir(&self, controller: &str, rel: &str) -> Option<PathBuf> {
        self.mount(controller).map(|dir| dir.join(rel))
    }

    fn pod_dirs(&self, rel: &str) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = POD_CONTROLLERS.iter().filter_map(|c| self.controller_dir(c, rel)).collect();
        dirs.dedup();
        dirs
    }

    /// Creates `rel` in the pod hierarchies and applies the pod-level limits.
    pub fn create_pod(&self, rel: &str, spec: &SandboxSpec) -> Result<(), RuntimeError> {
        for dir in self.pod_dirs(rel) {
            std::fs::create_dir_all(&dir).ctx(|| format!("create cgroup {}", dir.display()))?;
        }
        if let Some(cpu) = self.controller_dir("cpu", rel) {
            if let Some(shares) = spec.cpu_shares {
                write(&cpu, "cpu.shares", shares)?;
            }
            // The period first: a quota is checked against the current period.
            if let Some(period) = spec.cpu_period {
                write(&cpu, "cpu.cfs_period_us", period)?;
            }
            if let Some(quota) = spec.cpu_quota {
                write(&cpu, "cpu.cfs_quota_us", quota)?;
            }
        }
        if let (Some(memory), Some(limit)) = (self.controller_dir("memory", rel), spec.memory_limit) {
            write(&memory, "memory.limit_in_bytes", limit)?;
            // memory+swap must not be below memory; without swap accounting the file does not exist.
            if memory.join("memory.memsw.limit_in_bytes").exists() {
                write(&memory, "memory.memsw.limit_in_bytes", limit)?;
            }
        }
        Ok(())
    }

    /// Removes `rel` and everything below it from every hierarchy, deepest first. Missing directories are fine.
    pub fn remove(&self, rel: &str) -> Result<(), RuntimeError> {
        for m in &self.mounts {
            remove_tree(&m.dir.join(rel))?;
        }
        Ok(())
    }
}

fn write(dir: &Path, file: &str, value: impl ToString) -> Result<(), RuntimeError> {
    let path = dir.join(file);
    std::fs::write(&path, value.to_string()).ctx(|| format!("write {}", path.display()))
}

fn remove_tree(dir: &Path) -> Result<(), RuntimeError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(RuntimeError::io(format!("read cgroup {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.ctx(|| format!("read cgroup {}", dir.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => {
                debug!(cgroup = %dir.display(), "removed");
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(RuntimeError::io(format!("remove cgroup {}", dir.display()), e)),
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn unescapes_mountinfo_octal() {
        assert_eq!(unescape(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape(r"/plain\04"), r"/plain\04");
    }
}
