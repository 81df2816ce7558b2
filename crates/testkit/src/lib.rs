//! Test harness: the real services that k8rs tests run against, started by the tests themselves on free
//! loopback ports with private temporary directories, and always stopped and removed afterwards.
//!
//! Nothing here is used by k8rs itself; it must never touch anything a test did not create.

mod cluster;
mod etcd;
pub mod registry;
mod server;

pub use cluster::{ClusterState, LocalCluster, UnderlayRegistry};
pub use etcd::Etcd;
pub use server::{kubectl_path, Server};

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("cannot bind a loopback port")
}

/// Makes a child process die with the thread that started it, so a killed test run leaves nothing behind.
///
/// The kernel ties this to the *thread*: start long-lived children from the thread that owns them (a test's
/// own thread), not from a short-lived helper thread.
pub fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Waits until a just-spawned service is `ready`, or fails with its log tail if it exits or the deadline passes
/// (then it is killed). `child` is emptied when the process is gone.
pub(crate) fn wait_started(
    child: &mut Option<std::process::Child>,
    name: &str,
    deadline: std::time::Duration,
    ready: impl Fn() -> bool,
    log_tail: impl Fn() -> String,
) -> Result<(), String> {
    let until = std::time::Instant::now() + deadline;
    while std::time::Instant::now() < until {
        if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            *child = None;
            return Err(format!("{name} exited with {status}: {}", log_tail()));
        }
        if ready() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if let Some(mut process) = child.take() {
        let _ = process.kill();
        let _ = process.wait();
    }
    Err(format!("{name} not ready within {deadline:?}: {}", log_tail()))
}
