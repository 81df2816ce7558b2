//! The pod network as a user sees it, for k8rs's own plugin and, to prove the CNI side is plugin-agnostic, for the
//! reference plugins (bridge + host-local + portmap + loopback): addresses, pod-to-pod, gateway, hostPort from the
//! node and hairpin, masquerade to the outside, DEL, concurrency and plugin errors.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use common::*;
use network::{Attachment, Cni, CniConfig, CniError};

const HOST_PORT: u16 = 18080;
const POD_PORT: u16 = 8080;
const OUTSIDE_PORT: u16 = 9000;

async fn pod_network_suite(plugins: Plugins) {
    let node = Node::new(plugins);
    let pod_a = Netns::new("-a");
    let pod_b = Netns::new("-b");
    let att_a = attachment(&pod_a, "ctr-a", vec![]);
    let att_b = attachment(&pod_b, "ctr-b", vec![host_port(HOST_PORT, POD_PORT)]);

    let ip_a = node.cni.add(&att_a).await.expect("ADD a").ips[0];
    let ip_b = node.cni.add(&att_b).await.expect("ADD b").ips[0];
    assert_ne!(ip_a, ip_b);
    for ip in [ip_a, ip_b] {
        assert!(ip.to_string().starts_with(node.subnet_prefix), "{ip} outside the node subnet");
        assert!(node.ipam_dir.join(ip.to_string()).exists(), "{ip} not recorded by IPAM");
    }

    // Pod to pod, and pod to its gateway (the bridge).
    assert!(pod_a.ping(&ip_b.to_string()), "pod A cannot reach pod B");
    assert!(pod_b.ping(&format!("{}1", node.subnet_prefix)), "pod B cannot reach the gateway");

    // hostPort from the node itself, and hairpin: pod B reaching itself through the node's hostPort.
    let server = PeerServer::start(&pod_b.path(), POD_PORT);
    let host_port_addr = SocketAddr::from((NODE_IP, HOST_PORT));
    let seen = tcp_peer(&node.node.path(), host_port_addr).expect("node -> hostPort");
    assert!(!seen.is_empty(), "no answer through the hostPort");
    let seen = tcp_peer(&pod_b.path(), host_port_addr).expect("hairpin: pod B -> hostPort -> pod B");
    assert!(!seen.is_empty());
    // From outside the node too.
    let seen = tcp_peer(&node.outside.path(), host_port_addr).expect("outside -> hostPort");
    assert_eq!(seen, OUTSIDE_IP.to_string(), "an outside client keeps its address");

    // Masquerade: leaving the cluster CIDR, a pod appears as the node.
    let outside = PeerServer::start(&node.outside.path(), OUTSIDE_PORT);
    let seen = tcp_peer(&pod_a.path(), SocketAddr::from((OUTSIDE_IP, OUTSIDE_PORT))).expect("pod A -> outside");
    assert_eq!(seen, NODE_IP.to_string(), "pod traffic leaving the cluster is not masqueraded");
    drop(outside);

    // DEL: interface gone, address freed, hostPort gone (refused by the node, not DNAT'd into a void).
    node.cni.del(&att_b).await.expect("DEL b");
    assert!(!pod_b.has_link("eth0"), "pod B still has eth0");
    assert!(!node.ipam_dir.join(ip_b.to_string()).exists(), "{ip_b} still allocated");
    let err = tcp_peer(&node.node.path(), host_port_addr).expect_err("hostPort still open after DEL");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    drop(server);
    node.cni.del(&att_b).await.expect("second DEL");

    // A new pod can take the freed address again, in the same namespace.
    let att_c = attachment(&pod_b, "ctr-c", vec![]);
    let ip_c = node.cni.add(&att_c).await.expect("ADD c").ips[0];
    assert!(pod_a.ping(&ip_c.to_string()), "pod A cannot reach pod C");
    node.cni.del(&att_c).await.expect("DEL c");
    node.cni.del(&att_a).await.expect("DEL a");
    assert_eq!(node.node.veth_count(), 1, "only the uplink veth should be left on the node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8rs_plugin_pod_network() {
    pod_network_suite(Plugins::K8rs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_plugins_pod_network() {
    pod_network_suite(Plugins::Reference).await;
}

async fn concurrent_adds(plugins: Plugins) {
    let node = Node::new(plugins);
    let pods: Vec<Netns> = (0..10).map(|_| Netns::new("-p")).collect();
    let atts: Vec<_> = pods.iter().enumerate().map(|(i, p)| attachment(p, &format!("ctr-{i}"), vec![])).collect();
    let results = futures::future::join_all(atts.iter().map(|a| node.cni.add(a))).await;
    let ips: Vec<IpAddr> = results.into_iter().map(|r| r.expect("ADD").ips[0]).collect();
    assert_eq!(ips.iter().collect::<HashSet<_>>().len(), ips.len(), "duplicate addresses: {ips:?}");
    assert!(pods[0].ping(&ips[9].to_string()));
    for r in futures::future::join_all(atts.iter().map(|a| node.cni.del(a))).await {
        r.expect("DEL");
    }
    assert_eq!(node.node.veth_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8rs_plugin_concurrent_adds_get_unique_ips() {
    concurrent_adds(Plugins::K8rs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_plugins_concurrent_adds_get_unique_ips() {
    concurrent_adds(Plugins::Reference).await;
}

#[tokio::test]
async fn missing_plugin_is_named_and_partial_add_is_undone() {
    let node = Node::new(Plugins::K8rs);
    let pod = Netns::new("-a");
    let conf_dir = tempfile::tempdir().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    write_conflist(
        conf_dir.path(),
        &serde_json::json!({"cniVersion": "1.0.0", "name": "k8rs", "plugins": [
            {"type": "k8rs", "bridge": node.bridge, "subnet": "10.42.7.0/24", "clusterCIDR": "10.42.0.0/16",
             "dataDir": data_dir.path()},
            {"type": "k8rs-no-such-plugin"}]}),
    );
    let cni = Cni::new(CniConfig {
        conf_dir: conf_dir.path().into(),
        bin_dirs: vec!["/usr/lib/cni".into()],
        cache_dir: data_dir.path().join("cache"),
        node_netns: Some(node.node.path()),
    });
    let att = attachment(&pod, "ctr-x", vec![]);
    let err = cni.add(&att).await.expect_err("ADD with a missing plugin");
    assert!(matches!(&err, CniError::PluginNotFound { plugin, .. } if plugin == "k8rs-no-such-plugin"), "{err}");
    assert!(err.to_string().contains("k8rs-no-such-plugin"));
    // The first plugin's work was rolled back: no interface, no address held.
    assert!(!pod.has_link("eth0"));
    assert_eq!(
        std::fs::read_dir(data_dir.path().join("k8rs"))
            .unwrap()
            .filter(|e| { e.as_ref().unwrap().file_name().to_string_lossy().parse::<IpAddr>().is_ok() })
            .count(),
        0
    );
}

#[tokio::test]
async fn plugin_error_object_is_reported_with_the_plugin_name() {
    let node = Node::new(Plugins::Reference);
    let pod = Netns::new("-a");
    // The reference bridge plugin fails: its IPAM plugin does not exist.
    let conf_dir = tempfile::tempdir().unwrap();
    write_conflist(
        conf_dir.path(),
        &serde_json::json!({"cniVersion": "1.0.0", "name": "bad", "plugins": [
            {"type": "bridge", "bridge": node.bridge, "ipam": {"type": "no-such-ipam"}}]}),
    );
    let cni = Cni::new(CniConfig {
        conf_dir: conf_dir.path().into(),
        bin_dirs: vec!["/usr/lib/cni".into()],
        cache_dir: conf_dir.path().join("cache"),
        node_netns: Some(node.node.path()),
    });
    let err = cni.add(&attachment(&pod, "ctr-y", vec![])).await.expect_err("ADD must fail");
    match &err {
        CniError::Plugin { plugin, msg, .. } => {
            assert_eq!(plugin, "bridge");
            assert!(msg.contains("no-such-ipam"), "{msg}");
        }
        other => panic!("unexpected error {other}"),
    }

    // k8rs's own plugin reports through the same error path.
    write_conflist(
        conf_dir.path(),
        &serde_json::json!({"cniVersion": "1.0.0", "name": "bad", "plugins": [
            {"type": "k8rs", "bridge": node.bridge, "subnet": "not-a-cidr", "clusterCIDR": "10.42.0.0/16",
             "dataDir": conf_dir.path()}]}),
    );
    let err = cni.add(&attachment(&pod, "ctr-z", vec![])).await.expect_err("ADD must fail");
    assert!(matches!(&err, CniError::Plugin { plugin, code: 7, .. } if plugin == "k8rs"), "{err}");
}

#[tokio::test]
async fn k8rs_plugin_del_after_netns_is_gone_and_host_port_conflict() {
    let node = Node::new(Plugins::K8rs);
    let pod = Netns::new("-a");
    let att = attachment(&pod, "ctr-gone", vec![host_port(HOST_PORT, POD_PORT)]);
    let ip = node.cni.add(&att).await.expect("ADD").ips[0];

    // A second pod asking for the same hostPort is refused by k8rs's plugin, which is named, and leaves nothing.
    let other = Netns::new("-b");
    let clash = attachment(&other, "ctr-clash", vec![host_port(HOST_PORT, POD_PORT)]);
    let err = node.cni.add(&clash).await.expect_err("duplicate hostPort");
    assert!(matches!(&err, CniError::Plugin { plugin, code: 103, .. } if plugin == "k8rs"), "{err}");
    assert!(!other.has_link("eth0"));

    // The runtime removed the pod's namespace before DEL: DEL still frees the address and the hostPort.
    drop(pod);
    node.cni.del(&att).await.expect("DEL without the netns");
    assert!(!node.ipam_dir.join(ip.to_string()).exists());
    let err = tcp_peer(&node.node.path(), SocketAddr::from((NODE_IP, HOST_PORT))).expect_err("hostPort still open");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert_eq!(node.node.veth_count(), 1);
}

#[test]
fn cni_is_shareable_across_tasks() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<Cni>();
    let cni = Cni::new(CniConfig {
        conf_dir: "/nonexistent".into(),
        bin_dirs: CniConfig::default_bin_dirs(),
        cache_dir: "/nonexistent".into(),
        node_netns: None,
    });
    let att = Attachment {
        container_id: "x".into(),
        netns: "/nonexistent".into(),
        ifname: "eth0".into(),
        pod_namespace: "default".into(),
        pod_name: "p".into(),
        pod_uid: "u".into(),
        port_mappings: vec![],
    };
    // The kubelet spawns these futures on a multi-threaded runtime.
    assert_send(&cni.add(&att));
    assert_send(&cni.del(&att));
}
