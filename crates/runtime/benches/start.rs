//! Start latency of a container: `create_container` + `start_container` (shim, `runc create`, `runc start`) against
//! a bare `runc run` of the same bundle, side by side in one run, `/bin/true` in a pod sandbox.
//!
//! `cargo bench -p runtime --bench start [-- crun]`. The binary doubles as the shim. Without `--bench` (as under
//! `cargo test`) it does nothing.

#[path = "../tests/containers_support/mod.rs"]
mod containers_support;

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use containers_support::{unique, wait_exited, Fixture};

const WARMUP: usize = 2;
const ITERATIONS: usize = 20;

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "shim") {
        std::process::exit(runtime::container::shim_main(args[2..].to_vec()));
    }
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let oci = if args.iter().any(|a| a == "crun") { "crun" } else { "runc" };
    let f = Fixture::new(oci);
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    tokio.block_on(bench(&f, oci));
}

async fn bench(f: &Fixture, oci: &str) {
    let rt = f.runtime();
    let sb = rt.create_sandbox(&f.sandbox_spec("bench")).await.expect("sandbox");
    let spec = f.container_spec("bench", &["/bin/true"]);
    let bare_bundle = f.dir.path().join("bare");
    std::fs::create_dir(&bare_bundle).unwrap();
    let (mut started, mut exited, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..WARMUP + ITERATIONS {
        let t0 = Instant::now();
        let id = rt.create_container(&sb, &spec).await.expect("create");
        rt.start_container(&id).await.expect("start");
        let t_started = t0.elapsed();
        let (code, _) = wait_exited(&rt, &id, Duration::from_secs(20)).await.expect("exit");
        let t_exited = t0.elapsed();
        assert_eq!(code, 0);
        if i == 0 {
            bare_config(&f.config.state_dir.join("containers").join(&id).join("bundle/config.json"), &bare_bundle);
        }
        rt.remove_container(&id).await.expect("remove");

        let t_bare = bare_run(f, oci, &bare_bundle);
        if i >= WARMUP {
            started.push(t_started);
            exited.push(t_exited);
            bare.push(t_bare);
        }
    }
    rt.remove_sandbox(&sb.id).await.expect("remove sandbox");

    let (s, e, b) = (stats(&mut started), stats(&mut exited), stats(&mut bare));
    println!("{oci}, /bin/true in a pod sandbox, {ITERATIONS} runs after {WARMUP} warm-ups (median / p90, ms):");
    println!("  create_container + start_container returned: {:7.1} / {:7.1}", s.0, s.1);
    println!("  ... until the exit was seen by status():     {:7.1} / {:7.1}", e.0, e.1);
    println!("  bare `{oci} run` (same bundle, to exit):     {:7.1} / {:7.1}", b.0, b.1);
    println!("  ratio create+start / bare run (medians):     {:7.2}", s.0 / b.0);
}

/// The created container's config.json with a cgroup of its own, for `runc run`.
fn bare_config(config: &Path, bundle: &Path) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    let path = v["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    let parent = path.rsplit_once('/').unwrap().0;
    v["linux"]["cgroupsPath"] = format!("{parent}/bare").into();
    std::fs::write(bundle.join("config.json"), serde_json::to_vec(&v).unwrap()).unwrap();
}

fn bare_run(f: &Fixture, oci: &str, bundle: &Path) -> Duration {
    let t0 = Instant::now();
    let mut cmd = Command::new(oci);
    cmd.arg("--root").arg(&f.config.runtime_root);
    if oci == "crun" {
        // crun on this hybrid-cgroup host only runs with the v2 controllers hidden (node-recipes, blocker).
        cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind /dev/null /sys/fs/cgroup/unified/cgroup.controllers && exec crun --root \"$0\" run -b \"$1\" \"$2\"")
            .arg(&f.config.runtime_root);
    } else {
        cmd.arg("run").arg("-b");
    }
    let status = cmd.arg(bundle).arg(unique("bare")).stdin(Stdio::null()).stdout(Stdio::null()).status().unwrap();
    assert!(status.success(), "bare run: {status}");
    t0.elapsed()
}

fn stats(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(samples[samples.len() / 2]), ms(samples[samples.len() * 9 / 10]))
}
