//! `k8rs shim <container-dir>`: one process per container, containerd-shim style. It detaches (fork + setsid, so
//! the caller returns and a kubelet restart leaves it alone), becomes the child subreaper, runs `RT create` with
//! pipes as the container's stdout and stderr, reports to the caller, copies the pipes into the CRI log, reaps the
//! container init, records the exit status (and whether the OOM killer struck) and finally runs `RT delete`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::cri_log::{rfc3339_nano, LineSplitter, LogFile};
use super::records::{self, ExitRecord, ShimConfig};
use super::rt;
use super::RuntimeError;

/// How long to wait for the output pipes to drain once the container is gone (a straggler, e.g. an exec'd process
/// holding them open, must not delay the exit status forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The shim's one-line answer to `create_container`, on the stdout it inherited.
pub(super) enum Report {
    Created,
    Failed(String),
}

impl Report {
    pub fn parse(line: &str) -> Option<Report> {
        let line = line.trim_end_matches('\n');
        if line == "OK" {
            return Some(Report::Created);
        }
        let message = line.strip_prefix("ERR ")?;
        Some(Report::Failed(serde_json::from_str(message).unwrap_or_else(|_| message.to_string())))
    }

    fn line(&self) -> String {
        match self {
            Report::Created => "OK\n".to_string(),
            Report::Failed(m) => format!("ERR {}\n", serde_json::Value::String(m.clone())),
        }
    }
}

/// Entry point of `k8rs shim …` (the arguments after "shim"); returns the process exit code. Call it before any
/// thread exists: it forks.
pub fn shim_main(args: Vec<OsString>) -> i32 {
    let Ok([dir]) = <[OsString; 1]>::try_from(args) else {
        eprintln!("usage: shim <container-state-dir>");
        return 2;
    };
    // SAFETY: the process is single-threaded here (see above).
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("shim: fork: {}", io::Error::last_os_error());
            return 1;
        }
        0 => {}
        // The caller reaps this process at once; the child carries on, re-parented away from the caller.
        _ => return 0,
    }
    // SAFETY: plain syscall; a new session detaches from the caller's terminal and process group.
    unsafe { libc::setsid() };
    // Hold no directory of the caller's busy (it may be unmounted later).
    let _ = std::env::set_current_dir("/");
    let mut reporter = Reporter { sent: false };
    match run(Path::new(&dir), &mut reporter) {
        Ok(code) => code,
        Err(e) => {
            log(&format!("error: {e}"));
            reporter.send(Report::Failed(format!("shim: {e}")));
            1
        }
    }
}

struct Reporter {
    sent: bool,
}

impl Reporter {
    fn send(&mut self, report: Report) {
        if self.sent {
            return;
        }
        self.sent = true;
        // The caller may be gone (EPIPE): the container carries on regardless.
        let mut out = io::stdout();
        let _ = out.write_all(report.line().as_bytes()).and_then(|_| out.flush());
        // Let go of the caller's pipe so that its read ends.
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            // SAFETY: dup2 onto our own stdout.
            unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) };
        }
    }
}

fn run(dir: &Path, reporter: &mut Reporter) -> Result<i32, RuntimeError> {
    let cfg: ShimConfig = records::read(&dir.join(records::SHIM_CONFIG))?;
    let pid = std::process::id().to_string();
    records::write_bytes_atomic(&dir.join(records::SHIM_PID), pid.as_bytes())
        .map_err(|e| RuntimeError::io("write shim pid", e))?;
    // The container init is the runtime's grandchild; as subreaper we inherit it when `create` exits.
    // SAFETY: plain prctl.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(RuntimeError::io("PR_SET_CHILD_SUBREAPER", io::Error::last_os_error()));
    }

    let log_file = LogFile::open(&cfg.log_path, cfg.log_max_size, cfg.log_max_files)
        .map_err(|e| RuntimeError::io(format!("open log {}", cfg.log_path.display()), e))?;
    let log_file = Arc::new(Mutex::new(log_file));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (done_tx, done_rx) = mpsc::channel();
    for (stream, fd) in [("stdout", out_r), ("stderr", err_r)] {
        let (log_file, done_tx) = (log_file.clone(), done_tx.clone());
        std::thread::Builder::new()
            .name(stream.into())
            .spawn(move || {
                copy(stream, fd, &log_file);
                let _ = done_tx.send(());
            })
            .map_err(|e| RuntimeError::io("spawn copier", e))?;
    }

    let runtime_log = dir.join(records::RUNTIME_LOG);
    let init_pid_file = dir.join(records::INIT_PID);
    // With terminal=false the runtime hands its own stdio to the container.
    let status = cfg
        .runtime
        .command(Some(&runtime_log))
        .arg("create")
        .arg("--bundle")
        .arg(&cfg.bundle)
        .arg("--pid-file")
        .arg(&init_pid_file)
        .arg(&cfg.id)
        .stdin(Stdio::null())
        .stdout(out_w)
        .stderr(err_w)
        .status()
        .map_err(|e| RuntimeError::io("run the OCI runtime", e))?;
    if !status.success() {
        drain(&done_rx);
        let message = rt::last_error(&runtime_log).unwrap_or_else(|| format!("create failed: {status}"));
        log(&format!("create failed: {message}"));
        delete(&cfg, &runtime_log);
        reporter.send(Report::Failed(message));
        return Ok(1);
    }
    let init_pid = match records::read_pid(&init_pid_file) {
        Ok(pid) => pid,
        Err(e) => {
            delete(&cfg, &runtime_log);
            return Err(e);
        }
    };
    reporter.send(Report::Created);
    log(&format!("created {} with init pid {init_pid}", cfg.id));

    let exit_code = reap(init_pid as libc::pid_t);
    let finished_at = SystemTime::now();
    drain(&done_rx);
    // The cgroup (and its OOM count) goes with `delete`.
    let oom_killed = cfg.memory_cgroup.as_deref().is_some_and(oom_killed);
    let started_at = records::read_optional::<SystemTime>(&dir.join(records::STARTED)).unwrap_or(None);
    let exit = ExitRecord { exit_code, oom_killed, started_at, finished_at };
    records::write_atomic(&dir.join(records::EXIT), &exit)?;
    log(&format!("container exited: {exit:?}"));
    delete(&cfg, &runtime_log);
    Ok(0)
}

/// Copies one output stream into the log, entry by entry; keeps reading even if the log cannot be written, so the
/// container never blocks on a full pipe.
fn copy(stream: &'static str, fd: OwnedFd, log_file: &Mutex<LogFile>) {
    let mut pipe = File::from(fd);
    let mut buf = vec![0u8; 64 * 1024];
    let mut splitter = LineSplitter::new(stream);
    let mut entries = Vec::new();
    let write = |entries: &mut Vec<u8>| {
        let mut f = log_file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.write(entries) {
            log(&format!("write {stream} to the log: {e}"));
        }
        entries.clear();
    };
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                splitter.push(&buf[..n], &rfc3339_nano(SystemTime::now()), &mut entries);
                write(&mut entries);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log(&format!("read {stream}: {e}"));
                break;
            }
        }
    }
    splitter.finish(&rfc3339_nano(SystemTime::now()), &mut entries);
    write(&mut entries);
}

fn drain(done: &mpsc::Receiver<()>) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    for _ in 0..2 {
        if done.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_err() {
            log("output still open after the container exited; not waiting for it");
            return;
        }
    }
}

/// Waits for the container init and returns its exit code (128 + signal when killed). Other orphans that land
/// here are reaped on the way.
fn reap(init: libc::pid_t) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == init {
            if libc::WIFEXITED(status) {
                return libc::WEXITSTATUS(status);
            }
            if libc::WIFSIGNALED(status) {
                return 128 + libc::WTERMSIG(status);
            }
            continue;
        }
        if pid < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Not our child after all (no subreaper support): wait for it to vanish, its status is lost.
            log(&format!("waitpid: {err}; polling pid {init}"));
            while Path::new(&format!("/proc/{init}")).exists() {
                std::thread::sleep(Duration::from_millis(100));
            }
            return 255;
        }
    }
}

/// The container cgroup counts OOM kills even when the pod's limit was the one hit.
fn oom_killed(cgroup: &Path) -> bool {
    std::fs::read_to_string(cgroup.join("memory.oom_control")).is_ok_and(|text| {
        text.lines().filter_map(|l| l.strip_prefix("oom_kill ")).any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
    })
}

fn delete(cfg: &ShimConfig, runtime_log: &Path) {
    let result = cfg
        .runtime
        .command(Some(runtime_log))
        .args(["delete", "--force"])
        .arg(&cfg.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    match result {
        Ok(s) if s.success() => {}
        Ok(s) => log(&format!("delete {}: {s}", cfg.id)),
        Err(e) => log(&format!("delete {}: {e}", cfg.id)),
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both descriptors, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(RuntimeError::io("pipe", io::Error::last_os_error()));
    }
    // SAFETY: fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The shim's stderr is `shim.log` in the container's directory.
fn log(message: &str) {
    eprintln!("{} {message}", rfc3339_nano(SystemTime::now()));
}
