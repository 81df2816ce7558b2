//! The node IPAM controller: gives every Node without one a `spec.podCIDR` (and `podCIDRs`), a /24 out of the
//! cluster CIDR that no other Node holds, as upstream's range allocator does. The kubelet builds its pod network on it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{reflector, watcher};
use kube::Client;

const RETRY: Duration = Duration::from_secs(2);
/// Each node's share of the cluster CIDR (upstream's default `--node-cidr-mask-size`).
const NODE_MASK: u8 = 24;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("the cluster CIDR {0} has no free /24 left")]
    Exhausted(String),
}

/// An IPv4 range such as 10.42.0.0/16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterCidr {
    base: u32,
    prefix: u8,
}

impl ClusterCidr {
    pub fn parse(text: &str) -> Result<ClusterCidr, String> {
        let (address, prefix) =
            text.split_once('/').ok_or_else(|| format!("{text:?} is not a CIDR such as 10.42.0.0/16"))?;
        let address: Ipv4Addr = address.parse().map_err(|_| format!("{text:?} is not an IPv4 CIDR"))?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= NODE_MASK).ok_or_else(|| {
            format!("{text:?}: the prefix must be a number from 0 to {NODE_MASK} (each node takes a /{NODE_MASK})")
        })?;
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Ok(ClusterCidr { base: u32::from(address) & mask, prefix })
    }

    fn subnets(&self) -> impl Iterator<Item = String> + '_ {
        let count = 1u32 << (NODE_MASK - self.prefix);
        (0..count).map(move |i| format!("{}/{NODE_MASK}", Ipv4Addr::from(self.base + (i << (32 - NODE_MASK)))))
    }
}

impl std::fmt::Display for ClusterCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

struct Context {
    client: Client,
    cidr: ClusterCidr,
    nodes: reflector::Store<Node>,
    /// Subnets handed out by this controller: the store may not have seen those writes come back yet.
    allocated: std::sync::Mutex<BTreeSet<String>>,
}

pub async fn run(client: Client, cidr: ClusterCidr) {
    let api: Api<Node> = Api::all(client.clone());
    let controller = Controller::new(api, watcher::Config::default());
    let nodes = controller.store();
    controller
        .run(reconcile, error_policy, Arc::new(Context { client, cidr, nodes, allocated: Default::default() }))
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "node IPAM reconcile failed");
            }
        })
        .await;
}

fn error_policy(_: Arc<Node>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "node IPAM controller will retry");
    Action::requeue(RETRY)
}

async fn reconcile(node: Arc<Node>, context: Arc<Context>) -> Result<Action, Error> {
    if node.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some() {
        return Ok(Action::await_change());
    }
    let mut taken: BTreeSet<String> =
        context.nodes.state().iter().filter_map(|n| n.spec.as_ref()?.pod_cidr.clone()).collect();
    {
        let mut allocated = context.allocated.lock().expect("allocations lock");
        // Once the store shows an allocation it is the record (and a deleted node's subnet becomes free).
        allocated.retain(|subnet| !taken.contains(subnet));
        taken.extend(allocated.iter().cloned());
    }
    let subnet = context
        .cidr
        .subnets()
        .find(|subnet| !taken.contains(subnet))
        .ok_or_else(|| Error::Exhausted(context.cidr.to_string()))?;
    let name = node.metadata.name.clone().unwrap_or_default();
    // The resourceVersion precondition makes two allocations racing for one node fail instead of both landing.
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"podCIDR": subnet, "podCIDRs": [subnet]},
    });
    context.allocated.lock().expect("allocations lock").insert(subnet.clone());
    if let Err(error) =
        Api::<Node>::all(context.client.clone()).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await
    {
        context.allocated.lock().expect("allocations lock").remove(&subnet);
        return Err(error.into());
    }
    tracing::info!(node = %name, %subnet, "allocated pod CIDR");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_the_24s_of_the_cluster_cidr_in_order() {
        let cidr = ClusterCidr::parse("10.42.0.0/16").unwrap();
        let subnets: Vec<String> = cidr.subnets().take(3).collect();
        assert_eq!(subnets, ["10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24"]);
        assert_eq!(cidr.subnets().count(), 256);
        assert_eq!(
            ClusterCidr::parse("10.42.7.9/23").unwrap().subnets().collect::<Vec<_>>(),
            ["10.42.6.0/24", "10.42.7.0/24"]
        );
        assert!(ClusterCidr::parse("10.42.0.0/25").is_err());
        assert!(ClusterCidr::parse("10.42.0.0").is_err());
        assert!(ClusterCidr::parse("fd00::/64").is_err());
    }
}
