//! k8rs's plugin exec'd as a CNI binary (what other runtimes do), through `plugin_main`: VERSION, the spec's error
//! object, and a full ADD/DEL driven by `Cni` as an external plugin.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use network::{Cni, CniConfig};
use serde_json::{json, Value};

fn plugin_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_k8rs-cni"))
}

fn run_plugin(command: &str, stdin: &[u8]) -> (i32, Value) {
    let mut child = Command::new(plugin_binary())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "ctr-bin")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_NETNS", "/nonexistent")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap(), serde_json::from_slice(&out.stdout).expect("JSON on stdout"))
}

#[test]
fn version_and_error_object() {
    let (rc, out) = run_plugin("VERSION", br#"{"cniVersion":"1.0.0"}"#);
    assert_eq!(rc, 0);
    assert_eq!(out["supportedVersions"], json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0"]));

    let bad = br#"{"cniVersion":"1.0.0","name":"n","type":"k8rs","bridge":"b","subnet":"nope",
        "clusterCIDR":"10.42.0.0/16","dataDir":"/tmp"}"#;
    let (rc, out) = run_plugin("ADD", bad);
    assert_eq!(rc, 1);
    assert_eq!(out["code"], 7, "{out}");
    assert!(out["msg"].as_str().unwrap().contains("invalid"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_as_external_plugin() {
    let node = Node::new(Plugins::K8rs);
    let pod_a = Netns::new("-a");
    let pod_b = Netns::new("-b");
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    // Any type other than "k8rs" is exec'd rather than called in-process.
    std::fs::copy(plugin_binary(), bin_dir.join("k8rs-exec")).unwrap();
    write_conflist(
        &dir.path().join("net.d"),
        &json!({"cniVersion": "0.4.0", "name": "exec", "plugins": [
            {"type": "k8rs-exec", "bridge": node.bridge, "subnet": "10.42.9.0/24", "clusterCIDR": "10.42.0.0/16",
             "dataDir": dir.path().join("data"), "capabilities": {"portMappings": true}}]}),
    );
    let cni = Cni::new(CniConfig {
        conf_dir: dir.path().join("net.d"),
        bin_dirs: vec![bin_dir],
        cache_dir: dir.path().join("cache"),
        node_netns: Some(node.node.path()),
    });
    let att_a = attachment(&pod_a, "ctr-a", vec![]);
    let att_b = attachment(&pod_b, "ctr-b", vec![host_port(18081, 8081)]);
    let ip_a = cni.add(&att_a).await.expect("ADD a").ips[0];
    let ip_b = cni.add(&att_b).await.expect("ADD b").ips[0];
    assert!(ip_a.to_string().starts_with("10.42.9.") && ip_b.to_string().starts_with("10.42.9."));
    assert!(pod_a.ping(&ip_b.to_string()));
    let server = PeerServer::start(&pod_b.path(), 8081);
    let seen = tcp_peer(&node.node.path(), std::net::SocketAddr::from((NODE_IP, 18081))).expect("node -> hostPort");
    assert!(!seen.is_empty());
    drop(server);
    cni.del(&att_b).await.expect("DEL b");
    cni.del(&att_a).await.expect("DEL a");
    cni.del(&att_a).await.expect("DEL a again");
    assert!(!pod_a.has_link("eth0") && !pod_b.has_link("eth0"));
    assert_eq!(node.node.veth_count(), 1);
}
