//! The pod network on a node: the CNI interface (spec 1.0) through which the kubelet wires every pod, so any CNI
//! plugin works, and k8rs's own plugin (veth pair to the node bridge, IPAM over the node's podCIDR, hairpin,
//! masquerade and hostPorts in nftables). It never touches the Kubernetes API.

mod cni;
mod config;
mod error;
mod netns;
mod plugin;

pub use cni::{AttachResult, Attachment, Cni, CniConfig, PortMapping};
pub use config::{write_default_config, DefaultNetwork};
pub use error::CniError;
pub use plugin::plugin_main;
