//! Test fixtures: a simulated node (its own network namespace, an "outside" namespace behind a veth, pod
//! namespaces), all under unique `k8rs-<pid>-<n>` names and removed on drop. Nothing runs in the host's namespace.

#![allow(dead_code)] // each test binary uses a different part of the fixtures

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use network::{Attachment, Cni, CniConfig, DefaultNetwork, PortMapping};
use serde_json::json;

/// A name unique on this machine: pid plus a per-process counter.
pub fn unique(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("k8rs-{}-{}{tag}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub fn must(args: &[&str]) {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = unique(tag);
        must(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// `ip -n <this> ...`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        must(&full);
    }

    /// `ip netns exec <this> ...`; true if it exited 0.
    pub fn exec_ok(&self, args: &[&str]) -> bool {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full).status.success()
    }

    pub fn ping(&self, ip: &str) -> bool {
        self.exec_ok(&["busybox", "ping", "-c1", "-W2", ip])
    }

    pub fn has_link(&self, name: &str) -> bool {
        run(&["ip", "-n", &self.name, "link", "show", name]).status.success()
    }

    /// Number of veth interfaces in the namespace.
    pub fn veth_count(&self) -> usize {
        let out = run(&["ip", "-n", &self.name, "-o", "link", "show", "type", "veth"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// Runs `f` on a thread inside the namespace at `ns` (the thread ends, so nothing needs switching back).
pub fn in_netns<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(ns).expect("open netns");
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on an open namespace file, affecting only this short-lived thread.
            assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
            f()
        })
        .join()
        .expect("netns thread panicked")
    })
}

/// Connects to `addr` from inside `ns` and returns what the server wrote (its view of our address).
pub fn tcp_peer(ns: &Path, addr: SocketAddr) -> std::io::Result<String> {
    in_netns(ns, || {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut out = String::new();
        stream.read_to_string(&mut out)?;
        Ok(out)
    })
}

/// A TCP server inside a namespace that writes each client's address back and closes; stopped on drop.
pub struct PeerServer {
    fd: std::os::fd::RawFd,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PeerServer {
    pub fn start(ns: &Path, port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let listener = in_netns(ns, || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).expect("bind"));
        let flag = stop.clone();
        let fd = listener.as_raw_fd();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(mut conn) = conn {
                    let peer = conn.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
                    let _ = conn.write_all(peer.as_bytes());
                }
            }
        });
        PeerServer { fd, stop, thread: Some(thread) }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept (with EINVAL) without needing any route into the namespace; the listener
        // thread still owns, and closes, the socket.
        // SAFETY: the descriptor stays open until the thread, joined below, drops the listener.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Node netns "uplink" address, and the outside host behind it.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

/// Which plugins the node's network config uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugins {
    K8rs,
    Reference,
}

/// A simulated node: its namespace, an outside namespace on a veth, a CNI config and state directories.
pub struct Node {
    pub node: Netns,
    pub outside: Netns,
    pub cni: Cni,
    pub subnet_prefix: &'static str,
    pub ipam_dir: PathBuf,
    pub bridge: String,
    _dir: tempfile::TempDir,
}

impl Node {
    pub fn new(plugins: Plugins) -> Self {
        let node = Netns::new("-node");
        let outside = Netns::new("-out");
        node.ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", &outside.name]);
        node.ip(&["addr", "add", &format!("{NODE_IP}/24"), "dev", "up0"]);
        node.ip(&["link", "set", "up0", "up"]);
        outside.ip(&["addr", "add", &format!("{OUTSIDE_IP}/24"), "dev", "up1"]);
        outside.ip(&["link", "set", "up1", "up"]);

        let dir = tempfile::tempdir().expect("tempdir");
        let conf_dir = dir.path().join("net.d");
        let data_dir = dir.path().join("data");
        // Bridge names are per node namespace, but unique ones keep any leak attributable.
        let bridge = format!("k8rs{}-{}", std::process::id() % 100000, unique("").rsplit('-').next().unwrap());
        let subnet = "10.42.7.0/24";
        let ipam_dir = match plugins {
            Plugins::K8rs => {
                let network = DefaultNetwork {
                    pod_cidr: subnet.into(),
                    cluster_cidr: "10.42.0.0/16".into(),
                    bridge: bridge.clone(),
                    mtu: 1500,
                    data_dir: data_dir.clone(),
                };
                network::write_default_config(&conf_dir, &network).expect("write default config");
                data_dir.join("k8rs")
            }
            Plugins::Reference => {
                write_conflist(&conf_dir, &reference_conflist(&bridge, subnet, &data_dir.join("ipam")));
                data_dir.join("ipam").join("k8rs-ref")
            }
        };
        let cni = Cni::new(CniConfig {
            conf_dir,
            bin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            cache_dir: dir.path().join("cache"),
            node_netns: Some(node.path()),
        });
        Node { node, outside, cni, subnet_prefix: "10.42.7.", ipam_dir, bridge, _dir: dir }
    }
}

/// The reference plugins' conflist of node-recipes.md §8.
pub fn reference_conflist(bridge: &str, subnet: &str, ipam_dir: &Path) -> serde_json::Value {
    let gateway = subnet.replace(".0/24", ".1");
    json!({"cniVersion": "1.0.0", "name": "k8rs-ref", "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true, "hairpinMode": true,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet, "gateway": gateway}]],
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ipam_dir}},
        {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
        {"type": "loopback"}]})
}

pub fn write_conflist(conf_dir: &Path, conf: &serde_json::Value) {
    std::fs::create_dir_all(conf_dir).unwrap();
    std::fs::write(conf_dir.join("10-test.conflist"), serde_json::to_vec_pretty(conf).unwrap()).unwrap();
}

pub fn attachment(pod: &Netns, id: &str, ports: Vec<PortMapping>) -> Attachment {
    Attachment {
        container_id: id.to_string(),
        netns: pod.path(),
        ifname: "eth0".into(),
        pod_namespace: "default".into(),
        pod_name: format!("pod-{id}"),
        pod_uid: format!("uid-{id}"),
        port_mappings: ports,
    }
}

pub fn host_port(host_port: u16, container_port: u16) -> PortMapping {
    PortMapping { host_port, container_port, protocol: "tcp".into(), host_ip: String::new() }
}
