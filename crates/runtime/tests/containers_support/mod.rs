//! Shared by the container tests and the start-latency bench: a busybox root filesystem, a private state directory
//! and a cgroup root beneath this process's own cgroups, all removed on drop (containers killed, mounts undone,
//! cgroups deleted) even when a scenario fails half-way.

#![allow(dead_code)] // each target uses its own part

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runtime::container::{ContainerRuntime, ContainerSpec, ContainerState, RuntimeConfig, SandboxSpec};

pub const CGROUP_FS: &str = "/sys/fs/cgroup";

pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub rootfs: PathBuf,
    pub config: RuntimeConfig,
    cgroups: CgroupGuard,
}

impl Fixture {
    pub fn new(oci_runtime: &str) -> Fixture {
        let dir = tempfile::Builder::new().prefix("k8rs-containers-").tempdir().expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        build_rootfs(&rootfs);
        let cgroups = CgroupGuard::new(&unique("k8rs-test"));
        let config = RuntimeConfig {
            oci_runtime: PathBuf::from(oci_runtime),
            state_dir: dir.path().join("state"),
            runtime_root: dir.path().join("rt-root"),
            shim: vec![std::env::current_exe().unwrap().into_os_string(), OsString::from("shim")],
            cgroup_root: cgroups.root.clone(),
        };
        Fixture { dir, rootfs, config, cgroups }
    }

    pub fn runtime(&self) -> ContainerRuntime {
        ContainerRuntime::new(self.config.clone()).expect("runtime")
    }

    pub fn cgroup_root(&self) -> &str {
        &self.cgroups.root
    }

    pub fn sandbox_spec(&self, name: &str) -> SandboxSpec {
        SandboxSpec {
            id: unique(&format!("k8rs-{name}")),
            hostname: format!("{name}-host"),
            host_network: false,
            cgroup_parent: format!("burstable/pod-{name}"),
            cpu_shares: None,
            cpu_quota: None,
            cpu_period: None,
            memory_limit: None,
            labels: BTreeMap::from([("test".to_string(), name.to_string())]),
        }
    }

    pub fn container_spec(&self, name: &str, args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            name: name.to_string(),
            attempt: 0,
            labels: BTreeMap::new(),
            rootfs: self.rootfs.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".to_string()],
            cwd: "/".to_string(),
            uid: 0,
            gid: 0,
            mounts: Vec::new(),
            memory_limit: None,
            cpu_shares: None,
            cpu_quota: None,
            cpu_period: None,
            log_path: self.dir.path().join("logs").join(format!("{name}.log")),
            log_max_size: 10 << 20,
            log_max_files: 3,
            stop_signal: None,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Containers first (they hold the cgroups and the namespace files), then mounts; cgroups in CgroupGuard.
        let containers = self.config.state_dir.join("containers");
        for entry in std::fs::read_dir(&containers).into_iter().flatten().flatten() {
            let id = entry.file_name();
            let _ = std::process::Command::new(&self.config.oci_runtime)
                .arg("--root")
                .arg(&self.config.runtime_root)
                .args(["delete", "--force"])
                .arg(&id)
                .stderr(std::process::Stdio::null())
                .status();
            kill_shim(&entry.path());
        }
        unmount_below(self.dir.path());
    }
}

/// Kills the shim of a container directory, only if it really is that shim (its command line names the directory).
fn kill_shim(container_dir: &Path) {
    let Ok(pid) = std::fs::read_to_string(container_dir.join("shim.pid")) else { return };
    let Ok(pid) = pid.trim().parse::<i32>() else { return };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return };
    let dir = container_dir.as_os_str().as_encoded_bytes();
    if cmdline.split(|b| *b == 0).any(|a| a == dir) {
        // SAFETY: plain kill of our own shim.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

pub fn mounts_below(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().to_string();
    info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&prefix)).map(String::from).collect()
}

fn unmount_below(dir: &Path) {
    for m in mounts_below(dir).into_iter().rev() {
        let c = std::ffi::CString::new(m).unwrap();
        // SAFETY: valid C string; detaching our own test mount.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// The cgroup root for a test: below this process's own cgroup in every hierarchy. Hierarchies differ (memory may
/// be at /some/parent while the others are at /), so the root is the deepest own path, which lies below the others.
struct CgroupGuard {
    root: String,
}

impl CgroupGuard {
    fn new(leaf: &str) -> CgroupGuard {
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
        let paths: Vec<&str> = own.lines().filter_map(|l| l.splitn(3, ':').nth(2)).collect();
        let deepest = paths.iter().max_by_key(|p| p.len()).copied().unwrap_or("/");
        for p in &paths {
            let p = p.trim_end_matches('/');
            assert!(
                deepest.starts_with(p) || p.is_empty(),
                "own cgroups are not nested ({p} vs {deepest}): no common place for test cgroups"
            );
        }
        let root = format!("{}/{leaf}", deepest.trim_matches('/')).trim_start_matches('/').to_string();
        CgroupGuard { root }
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for h in hierarchies() {
            remove_tree(&h.join(&self.root));
            // The path above the root exists beforehand only where it is our own cgroup; elsewhere the runtime
            // made it. rmdir removes only empty ones: never a cgroup holding processes (ours) or another test's.
            for parent in Path::new(&self.root).ancestors().skip(1).filter(|p| !p.as_os_str().is_empty()) {
                let _ = std::fs::remove_dir(h.join(parent));
            }
        }
    }
}

pub fn hierarchies() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(CGROUP_FS)
        .expect("read /sys/fs/cgroup")
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn remove_tree(dir: &Path) {
    if !dir.exists() {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while std::fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn build_rootfs(root: &Path) {
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy /bin/busybox");
    for applet in
        ["sh", "echo", "sleep", "cat", "dd", "true", "nc", "hostname", "printf", "seq", "ls", "test", "readlink"]
    {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
}

/// Polls the status until the container has exited; returns (exit code, OOM killed).
pub async fn wait_exited(rt: &ContainerRuntime, id: &str, timeout: Duration) -> Result<(i32, bool), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = rt.status(id).await.map_err(|e| e.to_string())?;
        if let ContainerState::Exited { exit_code, oom_killed, .. } = status.state {
            return Ok((exit_code, oom_killed));
        }
        if Instant::now() > deadline {
            return Err(format!("container {id} still {:?} after {timeout:?}", status.state));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
