//! Pod startup latency as upstream defines it (creation to all containers running, seen through a watch, image
//! present), side by side in one run with a bare `runc run` of the same image (the physical limit): p50/p99 for
//! one pod at a time and for 30 pods created at once on one node; the agent's memory idle and with 30 pods.
//!
//! `cargo bench -p k8rs --bench pods` (root; it makes a two-node `k8rs local-cluster` and removes it). The pods
//! run on node 1, whose process is an agent alone (node 0 also runs the control plane).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;

const SINGLE_RUNS: usize = 20;
const BURST: usize = 30;
const BARE_RUNS: usize = 20;

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

fn pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "startup"}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]},
    }))
    .unwrap()
}

fn all_running(pod: &Pod) -> bool {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    !statuses.is_empty() && statuses.iter().all(|s| s.state.as_ref().is_some_and(|st| st.running.is_some()))
}

/// Creates `names` at once and returns each pod's latency (ms) from its create call to running in the watch.
async fn start_pods(api: &Api<Pod>, node: &str, names: &[String]) -> Vec<f64> {
    let mut events = watcher(api.clone(), watcher::Config::default().labels("bench=startup")).boxed();
    // The watch is established once its initial list is through.
    while let Some(Ok(event)) = events.next().await {
        if matches!(event, watcher::Event::InitDone) {
            break;
        }
    }
    let mut started = std::collections::HashMap::new();
    let creates = names.iter().map(|name| {
        let (api, pod) = (api.clone(), pod(name, node));
        async move {
            let at = Instant::now();
            api.create(&PostParams::default(), &pod).await.expect("create pod");
            (pod.metadata.name.clone().unwrap(), at)
        }
    });
    for (name, at) in futures::future::join_all(creates).await {
        started.insert(name, at);
    }
    let mut latencies = std::collections::HashMap::new();
    while latencies.len() < names.len() {
        let event = tokio::time::timeout(Duration::from_secs(120), events.next()).await.expect("pods start").unwrap();
        if let Ok(watcher::Event::Apply(pod)) = event {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if all_running(&pod) && !latencies.contains_key(&name) {
                if let Some(at) = started.get(&name) {
                    latencies.insert(name, at.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
    }
    latencies.into_values().collect()
}

async fn delete_all(api: &Api<Pod>) {
    let params = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
    let _ = api.delete_collection(&params, &kube::api::ListParams::default().labels("bench=startup")).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let left = api.list(&kube::api::ListParams::default().labels("bench=startup")).await.map(|l| l.items.len());
        if left.is_ok_and(|n| n == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the bench pods were not removed");
}

/// `runc run` of busybox's `true` from the node's own unpacked layer, in new namespaces (as a pod sandbox has).
fn bare_runc(layers: &Path) -> Vec<f64> {
    let layer = std::fs::read_dir(layers)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("bin/busybox").exists())
        .expect("busybox layer");
    let dir = tempfile::Builder::new().prefix("k8rs-bench-runc-").tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    assert!(std::process::Command::new("runc").args(["spec", "--bundle"]).arg(&bundle).status().unwrap().success());
    let spec_path = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&spec_path).unwrap()).unwrap();
    spec["root"] = serde_json::json!({"path": layer, "readonly": true});
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let root = dir.path().join("state");
    let mut samples = Vec::new();
    for i in 0..BARE_RUNS + 2 {
        let at = Instant::now();
        let status = std::process::Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(format!("k8rs-bench-{}-{i}", std::process::id()))
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        if i >= 2 {
            samples.push(at.elapsed().as_secs_f64() * 1000.0);
        }
    }
    samples
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let images = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("images");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-images.sh");
    assert!(std::process::Command::new("bash").arg(script).arg(&images).status().unwrap().success());
    let archive = images.join("busybox.oci.tar").display().to_string();
    let cluster = testkit::LocalCluster::up(env!("CARGO_BIN_EXE_k8rs").as_ref(), 2, &["--images", &archive]);
    let node = cluster.node_name(1);
    let agent_pid = cluster.state().processes[1];
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let api: Api<Pod> = Api::namespaced(client, "default");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss = rss_kib(agent_pid);

    // Warm-up: the first pod on a node also sets up its bridge.
    start_pods(&api, &node, &["warmup".to_string()]).await;
    delete_all(&api).await;

    let mut single = Vec::new();
    for i in 0..SINGLE_RUNS {
        single.extend(start_pods(&api, &node, &[format!("single-{i}")]).await);
        delete_all(&api).await;
    }
    let names: Vec<String> = (0..BURST).map(|i| format!("burst-{i}")).collect();
    let mut burst = start_pods(&api, &node, &names).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let busy_rss = rss_kib(agent_pid);
    let shims: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("shim") && c.contains(&cluster.node_dir(1).display().to_string())
            })
        })
        .collect();
    let shim_rss: u64 = shims.iter().map(|pid| rss_kib(*pid)).sum();
    delete_all(&api).await;
    let mut bare = bare_runc(&cluster.node_dir(1).join("agent/image-store/layers/sha256"));

    let (bare50, bare99) = (percentile(&mut bare, 0.5), percentile(&mut bare, 0.99));
    let (s50, s99) = (percentile(&mut single, 0.5), percentile(&mut single, 0.99));
    let (b50, b99) = (percentile(&mut burst, 0.5), percentile(&mut burst, 0.99));
    println!(
        "pod startup latency (ms), image present, one node ({} CPUs)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{:<36} {:>8} {:>8}", "", "p50", "p99");
    println!("{:<36} {:>8.1} {:>8.1}", format!("bare `runc run` of busybox true ({BARE_RUNS})"), bare50, bare99);
    println!("{:<36} {:>8.1} {:>8.1}", format!("1 pod at a time ({SINGLE_RUNS})"), s50, s99);
    println!("{:<36} {:>8.1} {:>8.1}", format!("{BURST} pods created at once"), b50, b99);
    println!("ratio 1-pod p50 / bare p50: {:.2} (target < 2)", s50 / bare50);
    println!("30-pod burst p99: {b99:.0} ms (target < 1000)");
    println!(
        "agent RSS: idle {} MiB, with {BURST} pods {} MiB; {} shims {} MiB in all ({} KiB each)",
        idle_rss / 1024,
        busy_rss / 1024,
        shims.len(),
        shim_rss / 1024,
        shim_rss / shims.len().max(1) as u64
    );
}
