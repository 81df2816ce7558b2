//! k8rs's own plugin: a veth pair from the pod to the node bridge, an address from the node's podCIDR, a default
//! route via the bridge, hairpin, and masquerade plus hostPorts in nftables.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{json, Value};

use super::hostport::{HostPort, NatTable};
use super::ipam::{Ipam, Ipv4Net};
use super::link::{is_errno, mac_for, Netlink};
use super::{code, Command, PluginError, Request, SUPPORTED_VERSIONS};
use crate::netns;

/// The `type` under which the plugin appears in a network config (and the binary name for other runtimes).
pub(crate) const PLUGIN_TYPE: &str = "k8rs";

fn yes() -> bool {
    true
}

fn default_mtu() -> u32 {
    1500
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetConf {
    cni_version: String,
    name: String,
    bridge: String,
    subnet: String,
    #[serde(rename = "clusterCIDR")]
    cluster_cidr: String,
    #[serde(default = "default_mtu")]
    mtu: u32,
    #[serde(default = "yes")]
    hairpin_mode: bool,
    #[serde(default = "yes")]
    ip_masq: bool,
    data_dir: PathBuf,
    #[serde(default)]
    runtime_config: RuntimeConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    #[serde(default)]
    port_mappings: Vec<PortMappingConf>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PortMappingConf {
    host_port: u16,
    container_port: u16,
    #[serde(default)]
    protocol: String,
    #[serde(rename = "hostIP", default)]
    host_ip: String,
}

/// Everything one invocation works with, parsed and checked.
struct Network {
    conf: NetConf,
    subnet: Ipv4Net,
    cluster: Ipv4Net,
    dir: PathBuf,
}

impl Network {
    fn parse(config: &[u8]) -> Result<Self, PluginError> {
        let conf: NetConf = serde_json::from_slice(config)
            .map_err(|e| PluginError::new(code::DECODE, "cannot decode the network config", e))?;
        if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(PluginError::new(
                code::INCOMPATIBLE_VERSION,
                format!("unsupported cniVersion {:?}", conf.cni_version),
                format!("supported: {SUPPORTED_VERSIONS:?}"),
            ));
        }
        let invalid = |e| PluginError::new(code::INVALID_CONFIG, "invalid network config", e);
        let subnet: Ipv4Net = conf.subnet.parse().map_err(invalid)?;
        let cluster: Ipv4Net = conf.cluster_cidr.parse().map_err(invalid)?;
        if conf.bridge.is_empty() || conf.bridge.len() > 15 || conf.name.is_empty() || conf.name.contains('/') {
            return Err(invalid("bridge must be 1-15 characters and name a plain, non-empty word".into()));
        }
        let dir = conf.data_dir.join(&conf.name);
        Ok(Network { conf, subnet, cluster, dir })
    }

    fn ipam(&self) -> Ipam {
        Ipam::new(&self.dir, self.subnet)
    }

    fn nat(&self) -> NatTable {
        NatTable::new(&self.dir, self.cluster, self.conf.ip_masq)
    }

    fn host_ports(&self, pod_ip: Ipv4Addr) -> Result<Vec<HostPort>, PluginError> {
        let invalid = |m: String| PluginError::new(code::INVALID_CONFIG, m, "");
        let mut out = Vec::new();
        for m in &self.conf.runtime_config.port_mappings {
            let protocol = if m.protocol.is_empty() { "tcp".to_string() } else { m.protocol.to_ascii_lowercase() };
            if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
                return Err(invalid(format!("unsupported hostPort protocol {:?}", m.protocol)));
            }
            let host_ip = match m.host_ip.as_str() {
                "" | "0.0.0.0" => None,
                ip => match ip.parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V4(ip)) => Some(ip),
                    // This plugin is IPv4-only: an IPv6 host address cannot reach the pod.
                    Ok(std::net::IpAddr::V6(_)) => continue,
                    Err(_) => return Err(invalid(format!("invalid hostIP {ip:?}"))),
                },
            };
            out.push(HostPort { host_ip, protocol, host_port: m.host_port, pod_ip, container_port: m.container_port });
        }
        Ok(out)
    }
}

/// The host end's name, derived from the attachment so DEL finds it without any state.
fn host_veth_name(container_id: &str, ifname: &str) -> String {
    // FNV-1a: stable across releases, unlike std's hasher.
    let hash = container_id
        .bytes()
        .chain([0])
        .chain(ifname.bytes())
        .fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("veth{hash:08x}")
}

fn netlink_err(what: &'static str) -> impl Fn(rtnetlink::Error) -> PluginError {
    move |e| PluginError::new(code::NETLINK, what, e)
}

pub(crate) async fn run(req: &Request) -> Result<Vec<u8>, PluginError> {
    let net = Network::parse(&req.config)?;
    let result = match req.command {
        Command::Add => add(req, &net).await?,
        Command::Del => {
            del(req, &net).await?;
            return Ok(Vec::new());
        }
        Command::Check => {
            check(req, &net).await?;
            return Ok(Vec::new());
        }
        Command::Version => return Ok(super::version_json(&net.conf.cni_version)),
    };
    Ok(result.to_string().into_bytes())
}

async fn add(req: &Request, net: &Network) -> Result<Value, PluginError> {
    let netns_path =
        req.netns.as_deref().ok_or_else(|| PluginError::new(code::INVALID_ENV, "CNI_NETNS is required for ADD", ""))?;
    let pod_ns = netns::open(netns_path)
        .map_err(|e| PluginError::new(code::UNKNOWN_CONTAINER, format!("cannot open netns {netns_path:?}"), e))?;
    let node = Netlink::connect().map_err(|e| PluginError::new(code::NETLINK, "cannot open netlink", e))?;
    let gateway = net.subnet.gateway();
    let bridge = node
        .ensure_bridge(&net.conf.bridge, gateway, net.subnet.prefix)
        .await
        .map_err(netlink_err("cannot set up the bridge"))?;
    // Pods are routed through the node; /proc/sys/net follows the writing thread's namespace.
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| PluginError::new(code::IO, "cannot enable ip_forward", e))?;

    let ip = net
        .ipam()
        .allocate(&req.container_id, &req.ifname)
        .map_err(|e| PluginError::new(code::IO, "cannot reserve an address", e))?
        .ok_or_else(|| PluginError::new(code::IP_EXHAUSTED, format!("no free address in {}", net.subnet), ""))?;
    match attach(req, net, &node, &pod_ns, bridge.index, ip).await {
        Ok((host, pod)) => {
            let v = &net.conf.cni_version;
            let address = format!("{ip}/{}", net.subnet.prefix);
            let mut ip_entry = json!({"address": address, "gateway": gateway.to_string(), "interface": 2});
            if v.starts_with("0.") {
                ip_entry["version"] = json!("4");
            }
            Ok(json!({
                "cniVersion": v,
                "interfaces": [
                    {"name": net.conf.bridge, "mac": bridge.mac},
                    {"name": host_veth_name(&req.container_id, &req.ifname), "mac": host.mac},
                    {"name": req.ifname, "mac": pod.mac, "sandbox": netns_path},
                ],
                "ips": [ip_entry],
                "routes": [{"dst": "0.0.0.0/0", "gw": gateway.to_string()}],
                "dns": {},
            }))
        }
        Err(e) => {
            // Leave nothing behind, so a retried ADD starts clean even if the runtime skips DEL.
            if let Err(undo) = del(req, net).await {
                tracing::warn!(container = %req.container_id, error = %undo.msg, "cleanup after a failed ADD failed");
            }
            Err(e)
        }
    }
}

async fn attach(
    req: &Request,
    net: &Network,
    node: &Netlink,
    pod_ns: &std::fs::File,
    bridge: u32,
    ip: Ipv4Addr,
) -> Result<(super::link::LinkInfo, super::link::LinkInfo), PluginError> {
    let host_name = host_veth_name(&req.container_id, &req.ifname);
    let mtu = net.conf.mtu;
    if let Err(e) = node.add_veth(&host_name, bridge, mtu, &req.ifname, mac_for(ip), pod_ns).await {
        if !is_errno(&e, libc::EEXIST) {
            return Err(netlink_err("cannot create the veth pair")(e));
        }
        // A leftover from an ADD that was never deleted: replace it.
        node.delete(&host_name).await.map_err(netlink_err("cannot remove a stale veth"))?;
        node.add_veth(&host_name, bridge, mtu, &req.ifname, mac_for(ip), pod_ns)
            .await
            .map_err(netlink_err("cannot create the veth pair"))?;
    }
    let host = node
        .link(&host_name)
        .await
        .map_err(netlink_err("cannot read the host veth"))?
        .ok_or_else(|| PluginError::new(code::NETLINK, "the host veth vanished", &host_name))?;
    if net.conf.hairpin_mode {
        node.set_hairpin(host.index).await.map_err(netlink_err("cannot enable hairpin mode"))?;
    }

    let pod = netns::within(pod_ns, Netlink::connect)
        .and_then(|conn| conn)
        .map_err(|e| PluginError::new(code::NETLINK, "cannot open netlink in the pod netns", e))?;
    let pod_link = pod
        .link(&req.ifname)
        .await
        .map_err(netlink_err("cannot read the pod interface"))?
        .ok_or_else(|| PluginError::new(code::NETLINK, "the pod interface vanished", &req.ifname))?;
    // Every namespace's loopback has index 1.
    pod.set_up(1).await.map_err(netlink_err("cannot bring up lo"))?;
    pod.add_address(pod_link.index, ip, net.subnet.prefix).await.map_err(netlink_err("cannot add the pod address"))?;
    pod.set_up(pod_link.index).await.map_err(netlink_err("cannot bring up the pod interface"))?;
    pod.add_default_route(pod_link.index, net.subnet.gateway())
        .await
        .map_err(netlink_err("cannot add the default route"))?;

    let ports = net.host_ports(ip)?;
    if ports.is_empty() {
        net.nat().ensure()?;
    } else {
        net.nat().add_pod(&req.container_id, &req.ifname, &ports)?;
    }
    Ok((host, pod_link))
}

/// Idempotent, and needs neither the pod namespace nor a cached result.
async fn del(req: &Request, net: &Network) -> Result<(), PluginError> {
    let node = Netlink::connect().map_err(|e| PluginError::new(code::NETLINK, "cannot open netlink", e))?;
    let nat = net.nat();
    let hostports = nat.remove_pod(&req.container_id, &req.ifname)?;
    // Deleting the host end removes its peer in the pod namespace too.
    let deleted = node.delete(&host_veth_name(&req.container_id, &req.ifname)).await;
    let released = net.ipam().release(&req.container_id, &req.ifname);
    if let Some(pending) = hostports {
        pending.finish()?;
    }
    deleted.map_err(netlink_err("cannot delete the veth pair"))?;
    released.map_err(|e| PluginError::new(code::IO, "cannot release the address", e))?;
    Ok(())
}

async fn check(req: &Request, net: &Network) -> Result<(), PluginError> {
    let ips = net
        .ipam()
        .find(&req.container_id, &req.ifname)
        .map_err(|e| PluginError::new(code::IO, "cannot read the address reservations", e))?;
    if ips.is_empty() {
        return Err(PluginError::new(code::UNKNOWN_CONTAINER, "no address is allocated to the container", ""));
    }
    let node = Netlink::connect().map_err(|e| PluginError::new(code::NETLINK, "cannot open netlink", e))?;
    let host = host_veth_name(&req.container_id, &req.ifname);
    if node.link(&host).await.map_err(netlink_err("cannot read the host veth"))?.is_none() {
        return Err(PluginError::new(code::UNKNOWN_CONTAINER, format!("host interface {host} is missing"), ""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn veth_names_are_stable_short_and_distinct() {
        let a = host_veth_name("abc", "eth0");
        assert_eq!(a, host_veth_name("abc", "eth0"));
        assert_ne!(a, host_veth_name("abc", "eth1"));
        assert!(a.len() <= 15);
    }

    #[test]
    fn config_defaults_and_version_check() {
        let conf = br#"{"cniVersion":"1.0.0","name":"n","type":"k8rs","bridge":"k8rs0","subnet":"10.42.0.0/24",
            "clusterCIDR":"10.42.0.0/16","dataDir":"/x"}"#;
        let net = Network::parse(conf).unwrap();
        assert!(net.conf.hairpin_mode && net.conf.ip_masq);
        assert_eq!(net.conf.mtu, 1500);
        assert_eq!(net.dir, Path::new("/x/n"));
        let old = br#"{"cniVersion":"0.2.0","name":"n","bridge":"b","subnet":"10.42.0.0/24",
            "clusterCIDR":"10.42.0.0/16","dataDir":"/x"}"#;
        assert_eq!(Network::parse(old).err().unwrap().code, code::INCOMPATIBLE_VERSION);
    }
}
