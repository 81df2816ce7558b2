//! Container runtime scenarios against the real runc (and crun), with a busybox root filesystem.
//!
//! `harness = false`: the binary doubles as the shim (`containers shim <dir>`), as `k8rs shim` does, and as a
//! short-lived "kubelet" (`containers child-create …`) that the restart scenario SIGKILLs. Run a subset by naming
//! scenarios: `cargo test -p runtime --test containers -- echo exit_code`.

mod containers_support;

use std::ffi::OsString;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use containers_support::{hierarchies, mounts_below, wait_exited, Fixture};
use runtime::container::{ContainerRuntime, ContainerState, Mount, RuntimeConfig, RuntimeError};

type Outcome = Result<(), String>;
type Scenario = fn(Fixture) -> Pin<Box<dyn Future<Output = Outcome> + Send>>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{}:{}: {}", file!(), line!(), format!($($fmt)+)));
        }
    };
}

/// `?` for the runtime's errors.
trait OrFail<T> {
    fn or_fail(self, what: &str) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

const SCENARIOS: &[(&str, &str, Scenario)] = &[
    ("echo", "runc", |f| Box::pin(echo(f))),
    ("exit_code", "runc", |f| Box::pin(exit_code(f))),
    ("stop_trap", "runc", |f| Box::pin(stop_trap(f))),
    ("stop_kill", "runc", |f| Box::pin(stop_kill(f))),
    ("stop_signal", "runc", |f| Box::pin(stop_signal(f))),
    ("stop_created", "runc", |f| Box::pin(stop_created(f))),
    ("remove_running", "runc", |f| Box::pin(remove_running(f))),
    ("oom", "runc", |f| Box::pin(oom(f))),
    ("oom_pod", "runc", |f| Box::pin(oom_pod(f))),
    ("not_found", "runc", |f| Box::pin(not_found(f))),
    ("shared_netns", "runc", |f| Box::pin(shared_netns(f))),
    ("cpu_quota", "runc", |f| Box::pin(cpu_quota(f))),
    ("restart_survival", "runc", |f| Box::pin(restart_survival(f))),
    ("log_rotation", "runc", |f| Box::pin(log_rotation(f))),
    ("remove_sandbox", "runc", |f| Box::pin(remove_sandbox(f))),
    ("host_network", "runc", |f| Box::pin(host_network(f))),
    ("crun_echo", "crun", |f| Box::pin(echo(f))),
    ("crun_exit_code", "crun", |f| Box::pin(exit_code(f))),
    ("crun_oom", "crun", |f| Box::pin(oom(f))),
    ("crun_stop_trap", "crun", |f| Box::pin(stop_trap(f))),
    ("crun_not_found", "crun", |f| Box::pin(not_found(f))),
    ("crun_shared_netns", "crun", |f| Box::pin(shared_netns(f))),
];

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some("shim") => std::process::exit(runtime::container::shim_main(args[2..].to_vec())),
        Some("child-create") => std::process::exit(child_create(&args[2..])),
        _ => {}
    }
    let filters: Vec<String> =
        args[1..].iter().filter_map(|a| a.to_str()).filter(|a| !a.starts_with('-')).map(String::from).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, oci, scenario) in SCENARIOS {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        let start = Instant::now();
        let fixture = Fixture::new(oci);
        // A panic fails the scenario; the fixture (moved into it) still cleans up while unwinding.
        let result = rt.block_on(rt.spawn(scenario(fixture))).unwrap_or_else(|e| Err(format!("panicked: {e}")));
        match result {
            Ok(()) => println!("test {name} ... ok ({:.2?})", start.elapsed()),
            Err(e) => {
                println!("test {name} ... FAILED ({:.2?})\n    {e}", start.elapsed());
                failed.push(*name);
            }
        }
    }
    println!("\n{} scenarios, {} failed {:?}", ran, failed.len(), failed);
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Creates, starts and waits for a container; returns (id, exit code, OOM killed).
async fn run_to_exit(
    rt: &ContainerRuntime,
    sandbox: &runtime::container::Sandbox,
    spec: &runtime::container::ContainerSpec,
) -> Result<(String, i32, bool), String> {
    let id = rt.create_container(sandbox, spec).await.or_fail("create")?;
    rt.start_container(&id).await.or_fail("start")?;
    let (code, oom) = wait_exited(rt, &id, EXIT_TIMEOUT).await?;
    Ok((id, code, oom))
}

/// (stream, tag, content) of each CRI log entry; checks the timestamp's shape on the way.
fn read_log(path: &Path) -> Result<Vec<(String, String, String)>, String> {
    let text = std::fs::read_to_string(path).or_fail(&format!("read {}", path.display()))?;
    text.lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let (time, stream, tag) = (parts.next().unwrap(), parts.next(), parts.next());
            let ok = time.len() == 30 && time.ends_with('Z') && time.as_bytes()[10] == b'T';
            match (ok, stream, tag) {
                (true, Some(s), Some(t)) => Ok((s.into(), t.into(), parts.next().unwrap_or("").into())),
                _ => Err(format!("bad log line {line:?}")),
            }
        })
        .collect()
}

/// Waits until some log entry's content satisfies `pred`.
async fn wait_log(path: &Path, pred: impl Fn(&str) -> bool) -> Outcome {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        if let Ok(entries) = read_log(path) {
            if entries.iter().any(|(_, _, c)| pred(c)) {
                return Ok(());
            }
        }
        ensure!(Instant::now() < deadline, "log {} never matched", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn echo(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let sb = rt.create_sandbox(&f.sandbox_spec("echo")).await.or_fail("sandbox")?;
    let data = f.dir.path().join("data");
    std::fs::create_dir(&data).or_fail("mkdir")?;
    std::fs::write(data.join("msg"), "mounted\n").or_fail("write")?;
    let mut spec = f.container_spec("echo", &["sh", "-c", "echo out1; echo err1 >&2; cat /data/msg; printf tail"]);
    spec.mounts.push(Mount { source: data, destination: "/data".into(), read_only: true });
    let (id, code, oom) = run_to_exit(&rt, &sb, &spec).await?;
    ensure!(code == 0 && !oom, "exit {code} oom {oom}");
    let log = read_log(&spec.log_path)?;
    let has = |s: &str, t: &str, c: &str| log.iter().any(|e| e.0 == s && e.1 == t && e.2 == c);
    ensure!(has("stdout", "F", "out1") && has("stdout", "F", "mounted"), "stdout lines missing: {log:?}");
    ensure!(has("stderr", "F", "err1"), "stderr line missing: {log:?}");
    ensure!(has("stdout", "P", "tail"), "unterminated last line should be partial: {log:?}");
    let stdout: Vec<&str> = log.iter().filter(|e| e.0 == "stdout").map(|e| e.2.as_str()).collect();
    ensure!(stdout == ["out1", "mounted", "tail"], "stdout order {stdout:?}");
    let status = rt.status(&id).await.or_fail("status")?;
    match status.state {
        ContainerState::Exited { started_at: Some(s), finished_at, .. } => {
            ensure!(finished_at >= s, "finished before started")
        }
        other => return Err(format!("state {other:?}")),
    }
    rt.remove_container(&id).await.or_fail("remove")?;
    ensure!(rt.list_containers().await.or_fail("list")?.is_empty(), "container still listed");
    ensure!(spec.log_path.exists(), "log removed with the container");
    rt.remove_container(&id).await.or_fail("remove twice")?;
    rt.remove_sandbox(&sb.id).await.or_fail("remove sandbox")
}

async fn exit_code(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let sb = rt.create_sandbox(&f.sandbox_spec("exit")).await.or_fail("sandbox")?;
    let mut spec = f.container_spec("exit", &["sh", "-c", "exit 7"]);
    spec.attempt = 3;
    let (id, code, _) = run_to_exit(&rt, &sb, &spec).await?;
    ensure!(code == 7, "exit code {code}");
    let list = rt.list_containers().await.or_fail("list")?;
    ensure!(list.len() == 1, "listed {list:?}");
    let info = &list[0];
    ensure!(info.id == id && info.sandbox_id == sb.id && info.name == "exit" && info.attempt == 3, "info {info:?}");
    ensure!(matches!(info.status.state, ContainerState::Exited { exit_code: 7, .. }), "listed state {info:?}");
    Ok(())
}

struct Stop {
    script: &'static str,
    signal: Option<i32>,
    grace: Duration,
    want: i32,
    min: Duration,
    max: Duration,
}

async fn stop_with(f: Fixture, stop: Stop) -> Outcome {
    let Stop { script, signal, grace, want, min, max } = stop;
    let rt = f.runtime();
    let sb = rt.create_sandbox(&f.sandbox_spec("stop")).await.or_fail("sandbox")?;
    let mut spec = f.container_spec("stop", &["sh", "-c", script]);
    spec.stop_signal = signal;
    let id = rt.create_container(&sb, &spec).await.or_fail("create")?;
    rt.start_container(&id).await.or_fail("start")?;
    let state = rt.status(&id).await.or_fail("status")?.state;
    ensure!(matches!(state, ContainerState::Running { .. }), "after start: {state:?}");
    wait_log(&spec.log_path, |c| c == "ready").await?;
    let start = Instant::now();
    rt.stop_container(&id, grace).await.or_fail("stop")?;
    let took = start.elapsed();
    let (code, _) = wait_exited(&rt, &id, Duration::ZERO).await?;
    ensure!(code == want, "exit code {code}, want {want}");
    ensure!(took >= min && took < max, "stop took {took:?}");
    rt.stop_container(&id, grace).await.or_fail("stop twice")
}

async fn stop_trap(f: Fixture) -> Outcome {
    let script = "trap 'exit 42' TERM; echo ready; while true; do sleep 1; done";
    let (grace, min, max) = (Duration::from_secs(10), Duration::ZERO, Duration::from_secs(5));
    stop_with(f, Stop { script, signal: None, grace, want: 42, min, max }).await
}

async fn stop_kill(f: Fixture) -> Outcome {
    let script = "trap '' TERM; echo ready; while true; do sleep 1; done";
    let (grace, min, max) = (Duration::from_secs(1), Duration::from_secs(1), Duration::from_secs(5));
    stop_with(f, Stop { script, signal: None, grace, want: 137, min, max }).await
}

/// The image's StopSignal replaces SIGTERM.
async fn stop_signal(f: Fixture) -> Outcome {
    let script = "trap 'exit 43' USR1; trap 'exit 42' TERM; echo ready; while true; do sleep 1; done";
    let (grace, min, max) = (Duration::from_secs(10), Duration::ZERO, Duration::from_secs(5));
    stop_with(f, Stop { script, signal: Some(libc::SIGUSR1), grace, want: 43, min, max }).await
}

/// A container that was created but never started can be stopped and removed.
async fn stop_created(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let sb = rt.create_sandbox(&f.sandbox_spec("created")).await.or_fail("sandbox")?;
    let spec = f.container_spec("created", &["sleep", "30"]);
    let id = rt.create_container(&sb, &spec).await.or_fail("create")?;
    let state = rt.status(&id).await.or_fail("status")?.state;
    ensure!(state == ContainerState::Created, "state {state:?}");
    rt.stop_container(&id, Duration::from_millis(200)).await.or_fail("stop")?;
    match rt.status(&id).await.or_fail("status")?.state {
        ContainerState::Exited { started_at: None, .. } => {}
        other => return Err(format!("state after stop {other:?}")),
    }
    rt.remove_container(&id).await.or_fail("remove")?;
    rt.remove_sandbox(&sb.id).await.or_fail("remove sandbox")
}

async fn oom(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let sb = rt.create_sandbox(&f.sandbox_spec("oom")).await.or_fail("sandbox")?;
    let mut spec = f.container_spec("oom", &["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]);
    spec.memory_limit = Some(32 << 20);
    let (_, code, oom) = run_to_exit(&rt, &sb, &spec).await?;
    ensure!(code == 137 && oom, "exit {code} oom_killed {oom}");
    Ok(())
}

/// Removing a running container kills it and its shim.
async fn remove_running(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let sb = rt.create_sandbox(&f.sandbox_spec("rmrun")).await.or_fail("sandbox")?;
    let spec = f.container_spec("rmrun", &["sleep", "30"]);
    let id = rt.create_container(&sb, &spec).await.or_fail("create")?;
    rt.start_container(&id).await.or_fail("start")?;
    let ContainerState::Running { pid, .. } = rt.status(&id).await.or_fail("status")?.state else {
        return Err("not running".into());
    };
    let shim_pid = std::fs::read_to_string(f.config.state_dir.join("containers").join(&id).join("shim.pid"))
        .or_fail("shim pid")?;
    rt.remove_container(&id).await.or_fail("remove")?;
    ensure!(!f.config.state_dir.join("containers").join(&id).exists(), "state dir left");
    for p in [pid.to_string(), shim_pid] {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        ensure!(stat.is_empty() || stat.contains(") Z"), "process {p} still alive: {stat}");
    }
    ensure!(matches!(rt.status(&id).await, Err(RuntimeError::NotFound { .. })), "status after remove");
    rt.remove_sandbox(&sb.id).await.or_fail("remove sandbox")
}

/// The pod's limit is hit (the container has none): still reported as OOM killed.
async fn oom_pod(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let mut sspec = f.sandbox_spec("oompod");
    sspec.memory_limit = Some(32 << 20);
    let sb = rt.create_sandbox(&sspec).await.or_fail("sandbox")?;
    let spec = f.container_spec("oompod", &["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]);
    let (_, code, oom) = run_to_exit(&rt, &sb, &spec).await?;
    ensure!(code == 137 && oom, "exit {code} oom_killed {oom}");
    Ok(())
}

async fn not_found(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let sb = rt.create_sandbox(&f.sandbox_spec("nf")).await.or_fail("sandbox")?;
    let spec = f.container_spec("nf", &["nope"]);
    match rt.create_container(&sb, &spec).await {
        Err(RuntimeError::Create { message }) => {
            println!("    create error: {message}");
            // runc: `exec: "nope": executable file not found in $PATH`; crun words it differently.
            let want = if f.config.oci_runtime == Path::new("runc") { "executable file not found" } else { "nope" };
            ensure!(message.contains(want), "message {message:?}")
        }
        other => return Err(format!("expected a Create error, got {other:?}")),
    }
    ensure!(rt.list_containers().await.or_fail("list")?.is_empty(), "failed container left behind");
    Ok(())
}

async fn shared_netns(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let sb = rt.create_sandbox(&f.sandbox_spec("netns")).await.or_fail("sandbox")?;
    // nc's stdin stays open (an empty one could end the server before the data arrives).
    let server = f.container_spec("server", &["sh", "-c", "sleep 30 | nc -l -p 8080"]);
    let client = f.container_spec(
        "client",
        &[
            "sh",
            "-c",
            "hostname; for i in $(seq 100); do echo hello | nc -w 1 127.0.0.1 8080 && exit 0; sleep 0.1; done; exit 1",
        ],
    );
    let sid = rt.create_container(&sb, &server).await.or_fail("create server")?;
    rt.start_container(&sid).await.or_fail("start server")?;
    let (_, code, _) = run_to_exit(&rt, &sb, &client).await?;
    ensure!(code == 0, "client exit {code}: {:?}", read_log(&client.log_path));
    wait_log(&server.log_path, |c| c == "hello").await?;
    wait_log(&client.log_path, |c| c == "netns-host").await?;
    rt.stop_container(&sid, Duration::from_secs(1)).await.or_fail("stop server")
}

fn cgroup_file(f: &Fixture, controller: &str, rel: &str, file: &str) -> Result<String, String> {
    let path = Path::new(containers_support::CGROUP_FS).join(controller).join(f.cgroup_root()).join(rel).join(file);
    Ok(std::fs::read_to_string(&path).or_fail(&path.display().to_string())?.trim().to_string())
}

async fn cpu_quota(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let mut sspec = f.sandbox_spec("cpu");
    sspec.cpu_quota = Some(50_000);
    sspec.cpu_period = Some(100_000);
    sspec.cpu_shares = Some(512);
    sspec.memory_limit = Some(256 << 20);
    let sb = rt.create_sandbox(&sspec).await.or_fail("sandbox")?;
    let pod = "burstable/pod-cpu";
    ensure!(cgroup_file(&f, "cpu", pod, "cpu.cfs_quota_us")? == "50000", "pod quota");
    ensure!(cgroup_file(&f, "cpu", pod, "cpu.shares")? == "512", "pod shares");
    ensure!(cgroup_file(&f, "memory", pod, "memory.limit_in_bytes")? == (256u64 << 20).to_string(), "pod memory");
    let mut spec = f.container_spec("cpu", &["sleep", "30"]);
    spec.cpu_quota = Some(20_000);
    spec.cpu_period = Some(100_000);
    spec.cpu_shares = Some(256);
    spec.memory_limit = Some(64 << 20);
    let id = rt.create_container(&sb, &spec).await.or_fail("create")?;
    let rel = format!("{pod}/{id}");
    ensure!(cgroup_file(&f, "cpu", &rel, "cpu.cfs_quota_us")? == "20000", "container quota");
    ensure!(cgroup_file(&f, "cpu", &rel, "cpu.shares")? == "256", "container shares");
    ensure!(cgroup_file(&f, "memory", &rel, "memory.limit_in_bytes")? == (64u64 << 20).to_string(), "memory");
    // What the kubelet's resource metrics read: the same cgroups, through the runtime's accessors.
    let cpuacct = rt.cgroup_hierarchy("cpuacct").ok_or("no cpuacct hierarchy")?;
    let memory = rt.cgroup_hierarchy("memory").ok_or("no memory hierarchy")?;
    ensure!(cpuacct.join(rt.sandbox_cgroup(&sb)).join("cpuacct.usage").is_file(), "pod cpuacct.usage");
    ensure!(cpuacct.join(rt.container_cgroup(&sb, &id)).join("cpuacct.usage").is_file(), "container cpuacct.usage");
    ensure!(memory.join(rt.container_cgroup(&sb, &id)).join("memory.stat").is_file(), "container memory.stat");
    rt.start_container(&id).await.or_fail("start")?;
    rt.stop_container(&id, Duration::ZERO).await.or_fail("stop")?;
    let (code, _) = wait_exited(&rt, &id, Duration::ZERO).await?;
    ensure!(code == 137, "exit {code}");
    Ok(())
}

/// Log lines of the counting container, in order, across rotated files too.
fn sequence(path: &Path) -> Result<Vec<u64>, String> {
    read_log(path)?.iter().map(|e| e.2.parse::<u64>().or_fail(&format!("entry {e:?}"))).collect()
}

fn contiguous(seq: &[u64]) -> bool {
    seq.iter().enumerate().all(|(i, n)| *n == i as u64)
}

async fn restart_survival(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let sb = rt.create_sandbox(&f.sandbox_spec("restart")).await.or_fail("sandbox")?;
    drop(rt);
    let log_path = f.dir.path().join("logs/counter.log");
    // A "kubelet" process creates and starts the container, then is SIGKILLed.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("child-create")
        .args([&f.config.state_dir, &f.config.runtime_root, Path::new(f.cgroup_root()), &f.rootfs, &log_path])
        .arg(&sb.id)
        .stdout(Stdio::piped())
        .spawn()
        .or_fail("spawn child")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).or_fail("read child")?;
    child.kill().or_fail("kill child")?;
    child.wait().or_fail("wait child")?;
    let (id, pid) = line.trim().split_once(' ').ok_or_else(|| format!("child said {line:?}"))?;
    let pid: u32 = pid.parse().or_fail("pid")?;

    let rt = f.runtime();
    let list = rt.list_containers().await.or_fail("list")?;
    ensure!(list.len() == 1 && list[0].id == id, "listed {list:?}");
    match list[0].status.state {
        ContainerState::Running { pid: p, .. } => ensure!(p == pid, "pid {p}, was {pid}"),
        ref other => return Err(format!("state after restart {other:?}")),
    }
    ensure!(rt.sandbox(&sb.id).await.or_fail("sandbox")?.as_ref() == Some(&sb), "sandbox not found again");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = sequence(&log_path)?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let after = sequence(&log_path)?;
    ensure!(after.len() > before.len() + 3, "log not growing: {} then {}", before.len(), after.len());
    ensure!(contiguous(&after), "gap in {after:?}");
    rt.stop_container(id, Duration::from_millis(500)).await.or_fail("stop")?;
    let (code, _) = wait_exited(&rt, id, Duration::ZERO).await?;
    ensure!(code == 137, "exit {code}");
    let all = sequence(&log_path)?;
    ensure!(contiguous(&all) && all.len() >= after.len(), "final log {all:?}");
    Ok(())
}

/// `child-create <state> <runtime-root> <cgroup-root> <rootfs> <log> <sandbox>`: prints "<id> <pid>", then waits
/// to be killed.
fn child_create(args: &[OsString]) -> i32 {
    let [state, root, cgroup_root, rootfs, log, sandbox] = args else { return 2 };
    let config = RuntimeConfig {
        oci_runtime: PathBuf::from("runc"),
        state_dir: state.into(),
        runtime_root: root.into(),
        shim: vec![std::env::current_exe().unwrap().into_os_string(), OsString::from("shim")],
        cgroup_root: cgroup_root.to_string_lossy().into_owned(),
    };
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let result: Result<String, String> = tokio.block_on(async {
        let rt = ContainerRuntime::new(config).or_fail("runtime")?;
        let sb = rt.sandbox(&sandbox.to_string_lossy()).await.or_fail("sandbox")?.ok_or("no sandbox")?;
        let spec = runtime::container::ContainerSpec {
            name: "counter".into(),
            attempt: 0,
            labels: Default::default(),
            rootfs: rootfs.into(),
            args: ["sh", "-c", "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"].map(String::from).into(),
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            mounts: Vec::new(),
            memory_limit: None,
            cpu_shares: None,
            cpu_quota: None,
            cpu_period: None,
            log_path: log.into(),
            log_max_size: 1 << 20,
            log_max_files: 2,
            stop_signal: None,
        };
        let id = rt.create_container(&sb, &spec).await.or_fail("create")?;
        rt.start_container(&id).await.or_fail("start")?;
        match rt.status(&id).await.or_fail("status")?.state {
            ContainerState::Running { pid, .. } => Ok(format!("{id} {pid}")),
            other => Err(format!("state {other:?}")),
        }
    });
    match result {
        Ok(line) => {
            println!("{line}");
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        Err(e) => {
            println!("error {e}");
            1
        }
    }
}

async fn log_rotation(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let sb = rt.create_sandbox(&f.sandbox_spec("rotate")).await.or_fail("sandbox")?;
    let mut spec =
        f.container_spec("rotate", &["sh", "-c", "i=0; while test $i -lt 400; do echo $i; i=$((i+1)); done"]);
    spec.log_max_size = 4096;
    spec.log_max_files = 3;
    let (_, code, _) = run_to_exit(&rt, &sb, &spec).await?;
    ensure!(code == 0, "exit {code}");
    let rotated = |n: usize| PathBuf::from(format!("{}.{n}", spec.log_path.display()));
    ensure!(rotated(1).exists() && rotated(2).exists() && !rotated(3).exists(), "rotated files");
    let mut all = Vec::new();
    for p in [rotated(2), rotated(1), spec.log_path.clone()] {
        let size = std::fs::metadata(&p).or_fail("stat")?.len();
        ensure!(size <= 4096, "{} is {size} bytes", p.display());
        all.extend(sequence(&p)?);
    }
    ensure!(all.last() == Some(&399), "last entry {:?}", all.last());
    let first = all[0];
    ensure!(all.iter().enumerate().all(|(i, n)| *n == first + i as u64), "not contiguous: {all:?}");
    Ok(())
}

async fn remove_sandbox(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let mut sspec = f.sandbox_spec("rm");
    sspec.memory_limit = Some(128 << 20);
    sspec.cpu_shares = Some(100);
    let sb = rt.create_sandbox(&sspec).await.or_fail("sandbox")?;
    ensure!(rt.list_sandboxes().await.or_fail("list")? == [sb.clone()], "sandbox not listed");
    let spec = f.container_spec("rm", &["true"]);
    let (id, code, _) = run_to_exit(&rt, &sb, &spec).await?;
    ensure!(code == 0, "exit {code}");
    rt.remove_container(&id).await.or_fail("remove container")?;
    ensure!(!mounts_below(f.dir.path()).is_empty(), "no namespace mounts while the sandbox exists");
    rt.remove_sandbox(&sb.id).await.or_fail("remove sandbox")?;
    let left = mounts_below(f.dir.path());
    ensure!(left.is_empty(), "mounts left: {left:?}");
    for h in hierarchies() {
        let pod = h.join(f.cgroup_root()).join("burstable/pod-rm");
        ensure!(!pod.exists(), "cgroup left: {}", pod.display());
    }
    ensure!(rt.sandbox(&sb.id).await.or_fail("get")?.is_none(), "sandbox still found");
    ensure!(rt.list_sandboxes().await.or_fail("list")?.is_empty(), "sandbox still listed");
    rt.remove_sandbox(&sb.id).await.or_fail("remove twice")
}

async fn host_network(f: Fixture) -> Outcome {
    let rt = f.runtime();
    let mut sspec = f.sandbox_spec("hostnet");
    sspec.host_network = true;
    let sb = rt.create_sandbox(&sspec).await.or_fail("sandbox")?;
    ensure!(sb.netns.is_none(), "netns {:?}", sb.netns);
    let spec = f.container_spec("hostnet", &["sh", "-c", "readlink /proc/self/ns/net; hostname"]);
    let (_, code, _) = run_to_exit(&rt, &sb, &spec).await?;
    ensure!(code == 0, "exit {code}: {:?}", read_log(&spec.log_path));
    let host_ns = std::fs::read_link("/proc/self/ns/net").or_fail("own netns")?;
    let log = read_log(&spec.log_path)?;
    let lines: Vec<&str> = log.iter().map(|e| e.2.as_str()).collect();
    ensure!(lines == [host_ns.to_str().unwrap(), "hostnet-host"], "{lines:?} vs {host_ns:?}");
    rt.remove_sandbox(&sb.id).await.or_fail("remove sandbox")
}
