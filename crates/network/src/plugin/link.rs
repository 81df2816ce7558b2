//! Links, addresses and routes over rtnetlink. A connection works in the network namespace of the thread that
//! opened it, so one connection per namespace.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoBridgePort, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

/// A link's identity as the CNI result reports it.
pub(crate) struct LinkInfo {
    pub index: u32,
    pub mac: String,
}

impl LinkInfo {
    fn from_message(msg: &LinkMessage) -> Self {
        let mac = msg
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(bytes) => {
                    Some(bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
                }
                _ => None,
            })
            .unwrap_or_default();
        LinkInfo { index: msg.header.index, mac }
    }
}

/// The MAC an interface holding `ip` gets: 0a:58 plus the address (as kubenet and the bridge plugin did), so a
/// pod reusing an address keeps its MAC and neighbours' ARP entries stay valid.
pub(crate) fn mac_for(ip: Ipv4Addr) -> Vec<u8> {
    let [a, b, c, d] = ip.octets();
    vec![0x0a, 0x58, a, b, c, d]
}

/// True if the netlink request failed with this errno.
pub(crate) fn is_errno(err: &rtnetlink::Error, errno: i32) -> bool {
    matches!(err, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -errno)
}

pub(crate) struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a connection in the calling thread's current network namespace; needs a tokio runtime context.
    pub(crate) fn connect() -> io::Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    async fn get(&self, name: &str) -> Result<Option<LinkMessage>, rtnetlink::Error> {
        match self.handle.link().get().match_name(name.to_string()).execute().try_next().await {
            Ok(msg) => Ok(msg),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn link(&self, name: &str) -> Result<Option<LinkInfo>, rtnetlink::Error> {
        Ok(self.get(name).await?.as_ref().map(LinkInfo::from_message))
    }

    /// Makes sure the bridge exists, holds `gateway/prefix` and is up. Safe against concurrent callers.
    pub(crate) async fn ensure_bridge(
        &self,
        name: &str,
        gateway: Ipv4Addr,
        prefix: u8,
    ) -> Result<LinkInfo, rtnetlink::Error> {
        let msg = match self.get(name).await? {
            Some(msg) => msg,
            None => {
                // A fixed MAC: otherwise the bridge takes its lowest port's, which changes as pods come and go.
                let bridge = LinkBridge::new(name).address(mac_for(gateway)).build();
                match self.handle.link().add(bridge).execute().await {
                    Err(e) if !is_errno(&e, libc::EEXIST) => return Err(e),
                    _ => {}
                }
                self.get(name).await?.ok_or(rtnetlink::Error::RequestFailed)?
            }
        };
        let bridge = LinkInfo::from_message(&msg);
        match self.handle.address().add(bridge.index, gateway.into(), prefix).execute().await {
            Err(e) if !is_errno(&e, libc::EEXIST) => return Err(e),
            _ => {}
        }
        if !msg.header.flags.contains(LinkFlags::Up) {
            self.set_up(bridge.index).await?;
        }
        Ok(bridge)
    }

    /// Creates a veth pair: `host` here, enslaved to `bridge` and up; `peer` directly inside the namespace `peer_ns`
    /// (down: the kernel refuses to bring a peer up in the same request) with MAC `peer_mac`. Both get `mtu`.
    pub(crate) async fn add_veth(
        &self,
        host: &str,
        bridge: u32,
        mtu: u32,
        peer: &str,
        peer_mac: Vec<u8>,
        peer_ns: &File,
    ) -> Result<(), rtnetlink::Error> {
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer)
            .mtu(mtu)
            .address(peer_mac)
            .setns_by_fd(peer_ns.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(host)
            .mtu(mtu)
            .controller(bridge)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.handle.link().add(msg).execute().await
    }

    /// Lets a pod reach itself through the bridge (a hostPort or Service that lands on the same pod).
    pub(crate) async fn set_hairpin(&self, index: u32) -> Result<(), rtnetlink::Error> {
        let msg = LinkBridgePort::new(index).append_info_data(InfoBridgePort::HairpinMode(true)).build();
        self.handle.link().set_port(msg).execute().await
    }

    /// Deletes a link by name; `false` if there was none.
    pub(crate) async fn delete(&self, name: &str) -> Result<bool, rtnetlink::Error> {
        let Some(link) = self.get(name).await? else { return Ok(false) };
        match self.handle.link().del(link.header.index).execute().await {
            Ok(()) => Ok(true),
            // Deleted concurrently (e.g. its namespace went away): the outcome is the same.
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn set_up(&self, index: u32) -> Result<(), rtnetlink::Error> {
        self.handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await
    }

    pub(crate) async fn add_address(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), rtnetlink::Error> {
        self.handle.address().add(index, ip.into(), prefix).execute().await
    }

    pub(crate) async fn add_default_route(&self, index: u32, gateway: Ipv4Addr) -> Result<(), rtnetlink::Error> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).output_interface(index).build();
        self.handle.route().add(route).execute().await
    }
}
