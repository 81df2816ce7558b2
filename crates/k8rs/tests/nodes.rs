//! Nodes end to end: `k8rs local-cluster` clusters (every node in its own network namespace) running pods from
//! imported archives and from a registry as real runc containers, checked through the real kubectl — statuses,
//! restarts, OOM kills, logs, pod-to-pod traffic, graceful deletion, a kubelet restart — and torn down leaving
//! nothing behind.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::LocalCluster;

const BINARY: &str = env!("CARGO_BIN_EXE_k8rs");
const DEADLINE: Duration = Duration::from_secs(120);

/// The test images, built once per run by the repository's script from Debian's busybox-static.
fn images() -> &'static PathBuf {
    static IMAGES: OnceLock<PathBuf> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("images");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-images.sh");
        let output = std::process::Command::new("bash").arg(script).arg(&dir).output().expect("run build-images.sh");
        assert!(output.status.success(), "build-images.sh failed: {}", String::from_utf8_lossy(&output.stderr));
        dir
    })
}

fn busybox_archive() -> String {
    images().join("busybox.oci.tar").display().to_string()
}

fn pod_json(cluster: &LocalCluster, name: &str) -> Value {
    serde_json::from_str(&cluster.kubectl_ok(&["get", "pod", name, "-o", "json"])).expect("pod JSON")
}

/// Waits until the pod's JSON satisfies `done`.
fn wait_pod(cluster: &LocalCluster, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let out = cluster.wait_for(&["get", "pod", name, "-o", "json"], DEADLINE, |text| {
        serde_json::from_str::<Value>(text).is_ok_and(|pod| done(&pod))
    });
    serde_json::from_str(&out).expect("pod JSON")
}

fn container_status(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

fn pod(name: &str, node: &str, restart: &str, script: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  restartPolicy: {restart}\n  \
         terminationGracePeriodSeconds: 30\n  containers:\n  - name: main\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    \
         command: [sh, -c, {script:?}]\n"
    )
}

#[test]
fn pods_run_as_containers_with_upstream_statuses_and_logs() {
    let cluster = LocalCluster::up(BINARY.as_ref(), 1, &["--images", &busybox_archive()]);
    let node = cluster.node_name(0);
    let nodes = cluster.kubectl_ok(&["get", "nodes", "-o", "wide"]);
    assert!(nodes.contains(&node) && nodes.contains(" Ready ") && nodes.contains("runc://"), "{nodes}");
    let node_json: Value = serde_json::from_str(&cluster.kubectl_ok(&["get", "node", &node, "-o", "json"])).unwrap();
    assert_eq!(node_json["spec"]["podCIDR"], "10.42.0.0/24");
    assert_eq!(node_json["status"]["allocatable"]["pods"], "110");
    for resource in ["cpu", "memory", "ephemeral-storage"] {
        assert!(node_json["status"]["capacity"][resource].is_string(), "no {resource} capacity: {node_json}");
    }
    let conditions: Vec<&str> =
        node_json["status"]["conditions"].as_array().unwrap().iter().filter_map(|c| c["type"].as_str()).collect();
    assert_eq!(conditions, ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]);
    let lease =
        cluster.kubectl_ok(&["get", "lease", "-n", "kube-node-lease", &node, "-o", "jsonpath={.spec.holderIdentity}"]);
    assert_eq!(lease, node);

    let manifests = [
        pod("web", &node, "Always", "mkdir -p /w && echo hello-from-web > /w/index.html && exec httpd -f -p 8080 -h /w"),
        pod("done", &node, "Never", "echo finished"),
        pod("crash", &node, "Always", "echo crash-run; exit 3"),
        pod("retry", &node, "OnFailure", "echo failing; exit 1"),
        pod("counter", &node, "Always", "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.2; done"),
        pod("term", &node, "Always", "trap 'echo got-term; exit 0' TERM; while true; do sleep 0.2; done"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: oom}}\nspec:\n  nodeName: {node}\n  restartPolicy: Never\n  \
             containers:\n  - name: main\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [dd, if=/dev/zero, of=/dev/null, bs=96M, count=1]\n    \
             resources: {{limits: {{memory: 32Mi}}}}\n"
        ),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: nocmd}}\nspec:\n  nodeName: {node}\n  restartPolicy: Never\n  \
             containers:\n  - name: main\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [no-such-command]\n"
        ),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: init}}\nspec:\n  nodeName: {node}\n  restartPolicy: Never\n  \
             volumes: [{{name: shared, emptyDir: {{}}}}]\n  initContainers:\n  - name: prepare\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    \
             command: [sh, -c, 'echo from-init > /shared/greeting']\n    volumeMounts: [{{name: shared, mountPath: /shared}}]\n  \
             containers:\n  - name: main\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [cat, /shared/greeting]\n    \
             volumeMounts: [{{name: shared, mountPath: /shared}}]\n"
        ),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: hostnet}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
             restartPolicy: Never\n  containers:\n  - name: main\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [\"true\"]\n"
        ),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: noimage}}\nspec:\n  nodeName: {node}\n  containers:\n  \
             - name: main\n    image: 10.99.0.251:5000/library/nothing:1.0\n"
        ),
    ];
    cluster.apply(&manifests.join("---\n"));

    // A long-running pod: Running, Ready, an IP from the node's podCIDR, Pulled from the imported archive.
    let web = wait_pod(&cluster, "web", |p| p["status"]["phase"] == "Running" && container_status(p)["ready"] == true);
    let web_ip = web["status"]["podIP"].as_str().expect("podIP").to_string();
    assert!(web_ip.starts_with("10.42.0."), "pod IP {web_ip} is not in the node's podCIDR");
    assert_eq!(web["status"]["hostIP"], "10.99.0.1");
    assert!(container_status(&web)["containerID"].as_str().is_some_and(|id| id.starts_with("k8rs://")));
    let conditions: Vec<(String, String)> = web["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
        .collect();
    for wanted in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(conditions.contains(&(wanted.to_string(), "True".to_string())), "{wanted} not True: {conditions:?}");
    }
    // Events are recorded in the background, so they may trail the status a little.
    cluster.wait_for(&["get", "events", "--field-selector", "involvedObject.name=web"], DEADLINE, |events| {
        ["Pulled", "Created", "Started", "already present on machine"].iter().all(|text| events.contains(text))
    });

    // Pod to pod by IP on one node.
    cluster.apply(&pod("client", &node, "Never", &format!("wget -q -O- http://{web_ip}:8080/")));
    wait_pod(&cluster, "client", |p| p["status"]["phase"] == "Succeeded");
    assert_eq!(cluster.kubectl_ok(&["logs", "client"]), "hello-from-web\n");

    // Completed, with its output.
    let done = wait_pod(&cluster, "done", |p| p["status"]["phase"] == "Succeeded");
    assert_eq!(container_status(&done)["state"]["terminated"]["reason"], "Completed");
    assert_eq!(cluster.kubectl_ok(&["logs", "done"]), "finished\n");

    // A crash loop: restarts with back-off, the last exit in lastState, --previous shows the last run's output.
    let crash = wait_pod(&cluster, "crash", |p| {
        container_status(p)["restartCount"].as_i64().unwrap_or(0) >= 1
            && container_status(p)["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let last = &container_status(&crash)["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 3, "{crash}");
    assert_eq!(last["reason"], "Error");
    assert_eq!(cluster.kubectl_ok(&["logs", "crash", "--previous"]), "crash-run\n");
    let table = cluster.kubectl_ok(&["get", "pod", "crash"]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    cluster.wait_for(&["get", "events", "--field-selector", "involvedObject.name=crash"], DEADLINE, |events| {
        events.contains("BackOff")
    });

    // OnFailure: a failed run is restarted.
    let retry = wait_pod(&cluster, "retry", |p| container_status(p)["restartCount"].as_i64().unwrap_or(0) >= 1);
    assert_eq!(container_status(&retry)["lastState"]["terminated"]["exitCode"], 1, "{retry}");
    assert_eq!(retry["status"]["phase"], "Running", "an OnFailure pod that will restart is Running");

    // OOM kill at the memory limit.
    let oom = wait_pod(&cluster, "oom", |p| p["status"]["phase"] == "Failed");
    assert_eq!(container_status(&oom)["state"]["terminated"]["reason"], "OOMKilled", "{oom}");
    assert_eq!(container_status(&oom)["state"]["terminated"]["exitCode"], 137);

    // A command that is not in the image: the runtime's own words.
    let nocmd = wait_pod(&cluster, "nocmd", |p| p["status"]["phase"] == "Failed");
    let terminated = &container_status(&nocmd)["state"]["terminated"];
    assert_eq!(terminated["reason"], "StartError", "{nocmd}");
    assert!(terminated["message"].as_str().is_some_and(|m| m.contains("executable file not found")), "{terminated}");

    // Init containers run first and share volumes with the containers.
    wait_pod(&cluster, "init", |p| p["status"]["phase"] == "Succeeded");
    assert_eq!(cluster.kubectl_ok(&["logs", "init"]), "from-init\n");
    assert_eq!(cluster.kubectl_ok(&["logs", "init", "-c", "prepare"]), "");

    // Host network: the node's address.
    let hostnet = wait_pod(&cluster, "hostnet", |p| p["status"]["phase"] == "Succeeded");
    assert_eq!(hostnet["status"]["podIP"], "10.99.0.1");

    // An unreachable registry: ErrImagePull, then ImagePullBackOff, naming the registry.
    let noimage = wait_pod(&cluster, "noimage", |p| {
        container_status(p)["state"]["waiting"]["reason"]
            .as_str()
            .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
    });
    let message = container_status(&noimage)["state"]["waiting"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("10.99.0.251:5000"), "{message}");

    // Logs: tail, timestamps, since, follow.
    wait_pod(&cluster, "counter", |p| p["status"]["phase"] == "Running");
    cluster.wait_for(&["logs", "counter"], DEADLINE, |text| text.lines().count() >= 5);
    let tail = cluster.kubectl_ok(&["logs", "counter", "--tail=2"]);
    assert_eq!(tail.lines().count(), 2, "{tail}");
    let numbers: Vec<u64> = tail.lines().map(|l| l.trim_start_matches("line-").parse().expect("line-N")).collect();
    assert_eq!(numbers[1], numbers[0] + 1);
    let stamped = cluster.kubectl_ok(&["logs", "counter", "--tail=1", "--timestamps"]);
    assert!(stamped.starts_with("20") && stamped.contains("Z line-"), "{stamped}");
    let recent = cluster.kubectl_ok(&["logs", "counter", "--since=1s"]);
    let all = cluster.kubectl_ok(&["logs", "counter"]);
    assert!(recent.lines().count() < all.lines().count(), "--since=1s returned everything");
    let follow = std::process::Command::new(testkit::kubectl_path(None))
        .args(["logs", "-f", "counter", "--tail=1"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    std::thread::sleep(Duration::from_secs(2));
    let mut follow = follow;
    let _ = follow.kill();
    let followed = String::from_utf8_lossy(&follow.wait_with_output().expect("output").stdout).into_owned();
    assert!(followed.lines().count() >= 4, "logs -f delivered only {followed:?} in 2 s");

    // Graceful deletion: SIGTERM reaches the container, which exits long before the grace period ends.
    wait_pod(&cluster, "term", |p| p["status"]["phase"] == "Running");
    let started = Instant::now();
    cluster.kubectl_ok(&["delete", "pod", "term", "--wait=true", "--timeout=60s"]);
    assert!(started.elapsed() < Duration::from_secs(20), "deletion took {:?}", started.elapsed());
    let gone = cluster.kubectl(&["get", "pod", "term"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));

    // A preStop hook runs in the container before it is stopped.
    let hook_dir = tempfile::Builder::new().prefix("k8rs-hook-").tempdir().unwrap();
    cluster.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: hooked}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 3\n  \
         volumes: [{{name: out, hostPath: {{path: {}}}}}]\n  containers:\n  - name: main\n    image: busybox\n    \
         imagePullPolicy: IfNotPresent\n    command: [sleep, '3600']\n    volumeMounts: [{{name: out, mountPath: /out}}]\n    \
         lifecycle: {{preStop: {{exec: {{command: [sh, -c, 'echo stopping > /out/prestop']}}}}}}\n",
        hook_dir.path().display()
    ));
    wait_pod(&cluster, "hooked", |p| p["status"]["phase"] == "Running");
    cluster.kubectl_ok(&["delete", "pod", "hooked", "--wait=true", "--timeout=60s"]);
    assert_eq!(std::fs::read_to_string(hook_dir.path().join("prestop")).unwrap_or_default(), "stopping\n");

    // Everything goes with `down`: processes (shims too), namespaces, mounts, cgroups, files.
    let state = cluster.state();
    let shims = shim_pids(&cluster.cluster_dir());
    assert!(!shims.is_empty(), "no shim processes found for the running pods");
    let output = cluster.down();
    assert!(output.status.success(), "down failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_nothing_left(&cluster, &state, &shims);
}

/// Pids of processes whose command line mentions the cluster's directory (the shims do).
fn shim_pids(dir: &std::path::Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c).contains(&needle) && String::from_utf8_lossy(&c).contains("shim")
            })
        })
        .collect()
}

fn assert_nothing_left(cluster: &LocalCluster, state: &testkit::ClusterState, shims: &[u32]) {
    for pid in state.processes.iter().chain(shims) {
        assert!(!std::path::Path::new(&format!("/proc/{pid}/exe")).exists(), "process {pid} is still running");
    }
    for namespace in &state.namespaces {
        assert!(!std::path::Path::new("/var/run/netns").join(namespace).exists(), "{namespace} is still there");
    }
    for cgroup in &state.cgroups {
        assert!(!cgroup.exists(), "{} is still there", cgroup.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = cluster.cluster_dir().display().to_string();
    assert!(!mounts.contains(&dir), "mounts left under {dir}");
    assert!(!cluster.cluster_dir().exists(), "{dir} is still there");
}

#[test]
fn images_come_from_a_registry_and_bad_references_say_why() {
    let registries = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        registries.path(),
        "mirrors:\n  \"10.99.0.250:5000\":\n    endpoint: [\"http://10.99.0.250:5000\"]\n",
    )
    .unwrap();
    // This cluster runs its containers with crun instead of runc.
    let cluster = LocalCluster::up(
        BINARY.as_ref(),
        1,
        &["--registries", &registries.path().display().to_string(), "--container-runtime", "crun"],
    );
    let registry = cluster.start_registry();
    registry.push_oci_archive(&images().join("busybox.oci.tar"), "library/busybox:1.0");
    let node = cluster.node_name(0);
    let image = format!("{}/library/busybox:1.0", testkit::UnderlayRegistry::HOST);
    let manifest = |name: &str, image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  restartPolicy: Never\n  \
             containers:\n  - name: main\n    image: {image}\n    imagePullPolicy: Always\n    command: [echo, pulled]\n"
        )
    };
    cluster.apply(&manifest("pulled", &image));
    let pulled = wait_pod(&cluster, "pulled", |p| p["status"]["phase"] == "Succeeded");
    assert!(container_status(&pulled)["imageID"].as_str().is_some_and(|id| id.contains("@sha256:")), "{pulled}");
    assert_eq!(cluster.kubectl_ok(&["logs", "pulled"]), "pulled\n");
    let nodes = cluster.kubectl_ok(&["get", "nodes", "-o", "wide"]);
    assert!(nodes.contains("crun://"), "{nodes}");
    cluster.wait_for(&["get", "events", "--field-selector", "involvedObject.name=pulled"], DEADLINE, |events| {
        events.contains("Pulling") && events.contains("Successfully pulled image")
    });

    cluster.apply(&manifest("missing", &format!("{}/library/missing:1.0", testkit::UnderlayRegistry::HOST)));
    let missing = wait_pod(&cluster, "missing", |p| {
        container_status(p)["state"]["waiting"]["reason"]
            .as_str()
            .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
    });
    let message = container_status(&missing)["state"]["waiting"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("not found"), "{message}");
    cluster.wait_for(&["get", "events", "--field-selector", "involvedObject.name=missing"], DEADLINE, |events| {
        events.contains("Failed to pull image")
    });
}

#[test]
fn a_restarted_kubelet_finds_its_containers_again() {
    let cluster = LocalCluster::up(BINARY.as_ref(), 2, &["--images", &busybox_archive()]);
    let node = cluster.node_name(1);
    cluster.apply(&pod("steady", &node, "Always", "i=0; while true; do echo n-$i; i=$((i+1)); sleep 0.1; done"));
    let before = wait_pod(&cluster, "steady", |p| p["status"]["phase"] == "Running");
    // Each node has its own pod subnet (which one is first-come, first-served).
    let cidrs = cluster.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"]);
    let cidrs: Vec<&str> = cidrs.split_whitespace().collect();
    assert!(cidrs.len() == 2 && cidrs[0] != cidrs[1], "{cidrs:?}");
    let node_cidr = cluster.kubectl_ok(&["get", "node", &node, "-o", "jsonpath={.spec.podCIDR}"]);
    let prefix = node_cidr.trim_end_matches("0/24");
    assert!(before["status"]["podIP"].as_str().is_some_and(|ip| ip.starts_with(prefix)), "{before} not in {node_cidr}");
    cluster.wait_for(&["logs", "steady"], DEADLINE, |text| text.lines().count() >= 10);

    cluster.restart_node(1);
    // The restarted kubelet serves logs again and reports the same container, not a new one.
    std::thread::sleep(Duration::from_secs(2));
    cluster.wait_for(&["logs", "steady", "--tail=1"], DEADLINE, |text| text.starts_with("n-"));
    let after = pod_json(&cluster, "steady");
    assert_eq!(container_status(&after)["restartCount"], 0, "{after}");
    assert_eq!(container_status(&after)["containerID"], container_status(&before)["containerID"]);
    let logs = cluster.kubectl_ok(&["logs", "steady"]);
    let numbers: Vec<u64> = logs.lines().map(|l| l.trim_start_matches("n-").parse().expect("n-N")).collect();
    assert!(numbers.len() > 20, "{logs}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "a log line was lost: {numbers:?}");

    // Joining takes the cluster's token: a wrong secret is refused, a token for another CA is caught.
    let kubeconfig = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    let server = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap().to_string();
    let join = |token: &str| {
        let dir = tempfile::Builder::new().prefix("k8rs-agent-").tempdir().unwrap();
        let output = std::process::Command::new(BINARY)
            .args(["agent", "--server", &server, "--token", token, "--node-name", "intruder", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let refused = join("not-the-token");
    assert!(refused.contains("the server refused the join token") && refused.contains("401"), "{refused}");
    let other_ca = join(&format!("K10{}::server:whatever", "0".repeat(64)));
    assert!(other_ca.contains("does not match the join token"), "{other_ca}");
    let nodes = cluster.kubectl_ok(&["get", "nodes", "-o", "name"]);
    assert!(!nodes.contains("intruder"), "{nodes}");

    let state = cluster.state();
    let shims = shim_pids(&cluster.cluster_dir());
    let output = cluster.down();
    assert!(output.status.success(), "down failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_nothing_left(&cluster, &state, &shims);
}

#[test]
fn images_command_imports_lists_and_removes() {
    let dir = tempfile::Builder::new().prefix("k8rs-images-").tempdir().unwrap();
    let k8rs = |args: &[&str]| {
        let output = std::process::Command::new(BINARY).args(args).arg("--data-dir").arg(dir.path()).output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let (ok, out) = k8rs(&["images", "import", &images().join("busybox.docker.tar").display().to_string()]);
    assert!(ok && out.contains("imported docker.io/library/busybox:latest"), "{out}");
    let (ok, out) = k8rs(&["images", "list"]);
    assert!(ok && out.contains("docker.io/library/busybox") && out.contains("latest"), "{out}");
    let (ok, out) = k8rs(&["images", "import", "/nonexistent.tar"]);
    assert!(!ok && out.contains("/nonexistent.tar: no such file"), "{out}");
    let (ok, out) = k8rs(&["images", "rm", "busybox"]);
    assert!(ok, "{out}");
    let (ok, out) = k8rs(&["images", "list"]);
    assert!(ok && !out.contains("busybox"), "{out}");
    let (ok, out) = k8rs(&["images", "rm", "busybox"]);
    assert!(!ok && out.contains("busybox"), "removing a missing image must fail: {out}");
}

/// Every pod gets the ServiceAccount admission plugin's projected volume and the kubelet fills it: a token of the
/// pod's service account bound to the pod (TokenRequest), the cluster CA and the namespace, reached through
/// `..data`. The API server accepts the token while the pod exists, and refuses it once the pod is gone.
#[test]
fn pods_get_a_service_account_token_bound_to_them() {
    let cluster = LocalCluster::up(BINARY.as_ref(), 1, &["--images", &busybox_archive()]);
    let node = cluster.node_name(0);
    // Admission needs the namespace's default ServiceAccount, which a controller makes.
    cluster.wait_for(&["get", "serviceaccount", "default", "-o", "name"], DEADLINE, |out| !out.is_empty());
    let script = [
        "cd /var/run/secrets/kubernetes.io/serviceaccount",
        "echo files=$(ls -A)",
        "echo data=$(readlink ..data)",
        "echo link=$(readlink token)",
        "echo mode=$(stat -L -c %a token)",
        "echo namespace=$(cat namespace)",
        "echo ca=$(head -n 1 ca.crt)",
        "echo token=$(cat token)",
        "exec sleep 3600",
    ]
    .join("; ");
    cluster.apply(&pod("sa", &node, "Always", &script));
    let sa = wait_pod(&cluster, "sa", |p| p["status"]["phase"] == "Running");
    let volumes = sa["spec"]["volumes"].as_array().unwrap_or_else(|| panic!("no volumes: {sa}"));
    let volume = volumes
        .iter()
        .find(|v| v["name"].as_str().is_some_and(|n| n.starts_with("kube-api-access-")))
        .unwrap_or_else(|| panic!("no kube-api-access volume: {sa}"));
    assert_eq!(volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3607);

    let logs = cluster.wait_for(&["logs", "sa"], DEADLINE, |text| text.contains("token="));
    let field = |name: &str| -> String {
        let prefix = format!("{name}=");
        logs.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {name} in {logs}")).to_string()
    };
    let data = field("data");
    assert!(data.starts_with("..20"), "..data points at {data}");
    assert_eq!(field("files"), format!("{data} ..data ca.crt namespace token"));
    assert_eq!(field("link"), "..data/token");
    assert_eq!(field("mode"), "644");
    assert_eq!(field("namespace"), "default");
    assert_eq!(field("ca"), "-----BEGIN CERTIFICATE-----");
    let token = field("token");
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");

    // The token authenticates as the pod's service account.
    let kubeconfig = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    let value = |key: &str| -> String {
        kubeconfig.lines().find_map(|l| l.trim().strip_prefix(key)).unwrap_or_else(|| panic!("no {key}")).to_string()
    };
    let token_kubeconfig = cluster.cluster_dir().join("sa-token.kubeconfig");
    std::fs::write(
        &token_kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    \
             certificate-authority-data: {}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: c\n  \
             context: {{cluster: c, user: sa}}\ncurrent-context: c\n",
            value("server: "),
            value("certificate-authority-data: ")
        ),
    )
    .unwrap();
    let as_pod = ["--kubeconfig", token_kubeconfig.to_str().unwrap(), "auth", "whoami", "-o", "json"];
    let whoami: Value = serde_json::from_str(&cluster.kubectl_ok(&as_pod)).expect("SelfSubjectReview JSON");
    assert_eq!(whoami["status"]["userInfo"]["username"], "system:serviceaccount:default:default", "{whoami}");

    // Bound to the pod: refused once the pod is gone.
    cluster.kubectl_ok(&["delete", "pod", "sa", "--grace-period=1"]);
    let refused = cluster.kubectl(&as_pod);
    assert!(!refused.status.success(), "the token of a deleted pod still authenticates");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Unauthorized"), "{refused:?}");
}

/// `kubectl top` end to end: the API server scrapes the node's kubelet (`/metrics/resource`, read from the pod's
/// cgroups) and serves metrics.k8s.io; a container spinning on a CPU shows its usage.
#[test]
fn kubectl_top_shows_the_usage_of_running_pods_and_nodes() {
    let cluster = LocalCluster::up(BINARY.as_ref(), 1, &["--images", &busybox_archive()]);
    let node = cluster.node_name(0);
    cluster.apply(&pod("spin", &node, "Never", "while :; do :; done"));
    cluster.apply(&pod("idle", &node, "Never", "exec sleep 3600"));
    wait_pod(&cluster, "spin", |p| p["status"]["phase"] == "Running");
    wait_pod(&cluster, "idle", |p| p["status"]["phase"] == "Running");
    // Two scrapes (15 s apart) make a rate; kubectl prints e.g. `spin   812m   1Mi`.
    let millicores = |line: &str| -> Option<u64> { line.split_whitespace().nth(1)?.strip_suffix('m')?.parse().ok() };
    let top = cluster.wait_for(&["top", "pod", "--no-headers"], DEADLINE, |text| {
        let spin = text.lines().find(|l| l.starts_with("spin "));
        text.lines().any(|l| l.starts_with("idle ")) && spin.and_then(millicores).is_some_and(|m| m >= 50)
    });
    let idle = top.lines().find(|l| l.starts_with("idle ")).unwrap();
    assert!(millicores(idle).is_some_and(|m| m < 50) || idle.split_whitespace().nth(1) == Some("0"), "{top}");
    let containers = cluster.kubectl_ok(&["top", "pod", "spin", "--containers", "--no-headers"]);
    assert!(containers.starts_with("spin ") && containers.contains(" main "), "{containers}");
    let nodes =
        cluster.wait_for(&["top", "node", "--no-headers"], DEADLINE, |text| text.starts_with(&format!("{node} ")));
    let columns: Vec<&str> = nodes.split_whitespace().collect();
    assert!(columns[1].ends_with('m') && columns[2].ends_with('%') && columns[3].ends_with("Mi"), "{nodes}");
    cluster.kubectl_ok(&["delete", "pod", "spin", "idle", "--grace-period=1"]);
}
