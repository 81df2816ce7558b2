//! The plugin's nftables table in the node namespace: masquerade for pod traffic leaving the cluster CIDR, and
//! hostPort DNAT (prerouting for remote clients, output for the node itself, masquerade for hairpin).
//!
//! Each pod's hostPorts are kept in a state file; the table is rendered from all of them and replaced atomically
//! in one `nft -f` under a lock, so DEL removes exactly that pod's entries and a lost table heals on the next change.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};

use super::ipam::Ipv4Net;
use super::{code, PluginError};

/// The one nftables table this plugin owns.
pub(crate) const TABLE: &str = "k8rs-cni";

/// One hostPort → pod port mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HostPort {
    /// None = every local address of the node.
    pub host_ip: Option<Ipv4Addr>,
    pub protocol: String,
    pub host_port: u16,
    pub pod_ip: Ipv4Addr,
    pub container_port: u16,
}

impl HostPort {
    fn key(&self) -> (Option<Ipv4Addr>, &str, u16) {
        (self.host_ip, &self.protocol, self.host_port)
    }
}

pub(crate) struct NatTable {
    dir: PathBuf,
    cluster: Ipv4Net,
    masquerade: bool,
}

impl NatTable {
    /// `dir` is the network's data directory.
    pub(crate) fn new(dir: &Path, cluster: Ipv4Net, masquerade: bool) -> Self {
        NatTable { dir: dir.join("hostports"), cluster, masquerade }
    }

    fn state_path(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join(format!("{container_id}-{ifname}.json"))
    }

    fn lock(&self) -> Result<File, PluginError> {
        let io_err = |e| PluginError::new(code::IO, "cannot lock the hostPort state", e);
        fs::create_dir_all(&self.dir).map_err(io_err)?;
        let file = File::create(self.dir.join(".lock")).map_err(io_err)?;
        // SAFETY: flock on an open descriptor; the lock is released when `file` is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err(io::Error::last_os_error()));
        }
        Ok(file)
    }

    fn load_all(&self) -> Result<Vec<HostPort>, PluginError> {
        let io_err = |e| PluginError::new(code::IO, "cannot read the hostPort state", e);
        let mut all = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err)? {
            let path = entry.map_err(io_err)?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let entries: Vec<HostPort> = serde_json::from_slice(&fs::read(&path).map_err(io_err)?)
                    .map_err(|e| PluginError::new(code::DECODE, format!("corrupt hostPort state {path:?}"), e))?;
                all.extend(entries);
            }
        }
        Ok(all)
    }

    /// Records the pod's hostPorts and adds them to the table; fails without change if a port is already taken.
    pub(crate) fn add_pod(&self, container_id: &str, ifname: &str, ports: &[HostPort]) -> Result<(), PluginError> {
        let _lock = self.lock()?;
        let mut all = self.load_all()?;
        for port in ports {
            if all.iter().any(|p| p.key() == port.key()) {
                let host = port.host_ip.map_or("*".to_string(), |ip| ip.to_string());
                return Err(PluginError::new(
                    code::HOST_PORT_TAKEN,
                    format!("hostPort {host}:{}/{} is already in use", port.host_port, port.protocol),
                    "",
                ));
            }
        }
        let path = self.state_path(container_id, ifname);
        let body = serde_json::to_vec(ports).expect("hostPort state serializes");
        // Written aside and renamed: a torn file would make every later load fail.
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, body)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| PluginError::new(code::IO, "cannot write the hostPort state", e))?;
        all.extend_from_slice(ports);
        self.update("add", ports, &all).inspect_err(|_| {
            let _ = fs::remove_file(&path);
        })
    }

    /// Forgets the pod's hostPorts and starts removing them from the table; `None` if it had none. The `nft` run
    /// proceeds while the caller tears the veth down (both wait on the kernel); [`PendingRemoval::finish`] ends it.
    pub(crate) fn remove_pod(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<PendingRemoval<'_>>, PluginError> {
        let path = self.state_path(container_id, ifname);
        if !path.exists() {
            return Ok(None);
        }
        let lock = self.lock()?;
        let ports: Vec<HostPort> = match fs::read(&path) {
            Ok(body) => serde_json::from_slice(&body).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(PluginError::new(code::IO, "cannot read the hostPort state", e)),
        };
        fs::remove_file(&path).map_err(|e| PluginError::new(code::IO, "cannot remove the hostPort state", e))?;
        let exists = table_exists(TABLE).map_err(|e| PluginError::new(code::NFTABLES, "cannot query nftables", e))?;
        // Without the table (or the entries) a full reload in finish() rebuilds it from the remaining state.
        let child = if exists && !ports.is_empty() { spawn_nft(&elements_update("delete", &ports)).ok() } else { None };
        Ok(Some(PendingRemoval { table: self, _lock: lock, child }))
    }

    /// Adds or deletes one pod's elements: far cheaper than reloading the table, whose base chains (netfilter
    /// hooks) would be re-registered. Falls back to a full reload from `all` if the table is missing or out of step.
    fn update(&self, verb: &str, ports: &[HostPort], all: &[HostPort]) -> Result<(), PluginError> {
        let exists = table_exists(TABLE).map_err(|e| PluginError::new(code::NFTABLES, "cannot query nftables", e))?;
        if exists && !ports.is_empty() && apply(&elements_update(verb, ports)).is_ok() {
            return Ok(());
        }
        apply(&self.render(all))
    }

    /// Loads the table if the node namespace does not have it (first pod, or the namespace was reset).
    pub(crate) fn ensure(&self) -> Result<(), PluginError> {
        if table_exists(TABLE).map_err(|e| PluginError::new(code::NFTABLES, "cannot query nftables", e))? {
            return Ok(());
        }
        let _lock = self.lock()?;
        apply(&self.render(&self.load_all()?))
    }

    fn render(&self, ports: &[HostPort]) -> String {
        let mut any = Vec::new();
        let mut by_ip = Vec::new();
        let mut hairpin = BTreeSet::new();
        for p in ports {
            let target = format!("{} . {} : {} . {}", p.protocol, p.host_port, p.pod_ip, p.container_port);
            match p.host_ip {
                None => any.push(target),
                Some(ip) => by_ip.push(format!("{ip} . {target}")),
            }
            hairpin.insert(format!("{0} . {0}", p.pod_ip));
        }
        let elements = |items: Vec<String>| {
            if items.is_empty() {
                String::new()
            } else {
                format!(" elements = {{ {} }}", items.join(", "))
            }
        };
        let mut out = String::new();
        // The empty declaration makes the delete succeed when the table is absent: a full, atomic replace.
        let _ = writeln!(out, "table ip {TABLE} {{}}\ndelete table ip {TABLE}\ntable ip {TABLE} {{");
        let _ = writeln!(
            out,
            "  map hostport_any {{ type inet_proto . inet_service : ipv4_addr . inet_service;{} }}",
            elements(any)
        );
        let _ = writeln!(
            out,
            "  map hostport_ip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;{} }}",
            elements(by_ip)
        );
        let _ =
            writeln!(out, "  set hairpin {{ type ipv4_addr . ipv4_addr;{} }}", elements(hairpin.into_iter().collect()));
        out.push_str(
            "  chain hostports {\n    dnat ip to ip daddr . meta l4proto . th dport map @hostport_ip\n    \
             fib daddr type local dnat ip to meta l4proto . th dport map @hostport_any\n  }\n  \
             chain prerouting { type nat hook prerouting priority dstnat; policy accept; jump hostports; }\n  \
             chain output { type nat hook output priority -100; policy accept; jump hostports; }\n  \
             chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    \
             ct status dnat ip saddr . ip daddr @hairpin masquerade\n",
        );
        if self.masquerade {
            let _ = writeln!(out, "    ip saddr {0} ip daddr != {0} masquerade", self.cluster);
        }
        out.push_str("  }\n}\n");
        out
    }
}

/// One `nft` transaction adding or deleting the given entries (maps and the hairpin set).
fn elements_update(verb: &str, ports: &[HostPort]) -> String {
    let mut out = String::new();
    let mut hairpin = BTreeSet::new();
    for p in ports {
        let target = format!("{} . {} : {} . {}", p.protocol, p.host_port, p.pod_ip, p.container_port);
        let _ = match p.host_ip {
            None => writeln!(out, "{verb} element ip {TABLE} hostport_any {{ {target} }}"),
            Some(ip) => writeln!(out, "{verb} element ip {TABLE} hostport_ip {{ {ip} . {target} }}"),
        };
        hairpin.insert(p.pod_ip);
    }
    for ip in hairpin {
        let _ = writeln!(out, "{verb} element ip {TABLE} hairpin {{ {ip} . {ip} }}");
    }
    out
}

/// A pod's hostPort removal in flight; holds the state lock until done.
pub(crate) struct PendingRemoval<'a> {
    table: &'a NatTable,
    _lock: File,
    child: Option<Child>,
}

impl PendingRemoval<'_> {
    /// Waits for the element removal; if it failed, reloads the whole table from the remaining state.
    pub(crate) fn finish(self) -> Result<(), PluginError> {
        if let Some(child) = self.child {
            if wait_nft(child).is_ok() {
                return Ok(());
            }
        }
        apply(&self.table.render(&self.table.load_all()?))
    }
}

/// Starts `nft -f -` on a ruleset (atomic: all or nothing). The child inherits the calling thread's namespace.
fn spawn_nft(ruleset: &str) -> Result<Child, PluginError> {
    let spawn_err = |e| PluginError::new(code::NFTABLES, "cannot run nft", e);
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    // Rulesets are far below the pipe buffer, so this cannot block on nft.
    if let Err(e) = child.stdin.take().expect("piped stdin").write_all(ruleset.as_bytes()) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(spawn_err(e));
    }
    Ok(child)
}

fn wait_nft(child: Child) -> Result<(), PluginError> {
    let out = child.wait_with_output().map_err(|e| PluginError::new(code::NFTABLES, "cannot run nft", e))?;
    if !out.status.success() {
        return Err(PluginError::new(
            code::NFTABLES,
            "nft rejected the ruleset",
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok(())
}

fn apply(ruleset: &str) -> Result<(), PluginError> {
    wait_nft(spawn_nft(ruleset)?)
}

/// Asks nf_tables over netlink whether `ip <name>` exists: far cheaper than running `nft list`.
fn table_exists(name: &str) -> io::Result<bool> {
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_NEWTABLE: u16 = 0;
    const NFT_MSG_GETTABLE: u16 = 1;
    const NFTA_TABLE_NAME: u16 = 1;
    const NLMSG_ERROR: u16 = 2;

    // SAFETY: creating a socket has no memory effects; the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_NETFILTER) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };

    let mut attr = Vec::new();
    let payload_len = name.len() + 1;
    attr.extend_from_slice(&((4 + payload_len) as u16).to_ne_bytes());
    attr.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
    attr.extend_from_slice(name.as_bytes());
    attr.push(0);
    attr.resize(attr.len().next_multiple_of(4), 0);
    let mut msg = Vec::with_capacity(20 + attr.len());
    msg.extend_from_slice(&((16 + 4 + attr.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE).to_ne_bytes());
    msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: let the kernel pick
    msg.extend_from_slice(&[libc::NFPROTO_IPV4 as u8, 0, 0, 0]); // nfgenmsg: family, version 0, resource id 0
    msg.extend_from_slice(&attr);

    // SAFETY: sockaddr_nl is plain data; zeroed = the kernel as destination.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: the buffer and address are valid for the stated lengths.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut file = File::from(sock);
    let mut found = false;
    let mut buf = vec![0u8; 16384];
    loop {
        let n = file.read(&mut buf)?;
        let mut at = 0;
        while at + 16 <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
            if len < 16 || at + len > n {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated netlink reply"));
            }
            if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE {
                found = true;
            } else if kind == NLMSG_ERROR {
                let errno = i32::from_ne_bytes(buf[at + 16..at + 20].try_into().expect("4 bytes"));
                return match -errno {
                    0 => Ok(found),
                    libc::ENOENT => Ok(false),
                    e => Err(io::Error::from_raw_os_error(e)),
                };
            }
            at += len.next_multiple_of(4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_maps_hairpin_and_masquerade() {
        let dir = tempfile::tempdir().unwrap();
        let table = NatTable::new(dir.path(), "10.42.0.0/16".parse().unwrap(), true);
        let pod_ip = Ipv4Addr::new(10, 42, 0, 5);
        let ports = [
            HostPort { host_ip: None, protocol: "tcp".into(), host_port: 8080, pod_ip, container_port: 80 },
            HostPort {
                host_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
                protocol: "udp".into(),
                host_port: 53,
                pod_ip,
                container_port: 5353,
            },
        ];
        let text = table.render(&ports);
        assert!(text.contains("elements = { tcp . 8080 : 10.42.0.5 . 80 }"), "{text}");
        assert!(text.contains("elements = { 192.0.2.1 . udp . 53 : 10.42.0.5 . 5353 }"), "{text}");
        assert!(text.contains("elements = { 10.42.0.5 . 10.42.0.5 }"), "{text}");
        assert!(text.contains("ip saddr 10.42.0.0/16 ip daddr != 10.42.0.0/16 masquerade"), "{text}");
        let bare = NatTable::new(dir.path(), "10.42.0.0/16".parse().unwrap(), false).render(&[]);
        assert!(!bare.contains("elements") && !bare.contains("daddr != 10.42"), "{bare}");
    }
}
