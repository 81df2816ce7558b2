//! The controllers of the k8rs control plane. Each is a reconcile function over watched objects, and a client of
//! the API server like any other: it must not reach into the API server's or another controller's state.

pub mod namespace;
pub mod nodeipam;

use kube::Client;

pub use nodeipam::ClusterCidr;

/// Runs every controller until the process ends.
pub async fn run(client: Client, cluster_cidr: ClusterCidr) {
    tokio::join!(namespace::run(client.clone()), nodeipam::run(client, cluster_cidr));
}
