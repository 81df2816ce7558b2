//! The controllers of the k8rs control plane. Each is a reconcile function over watched objects, and a client of
//! the API server like any other: it must not reach into the API server's or another controller's state.

pub mod namespace;
pub mod nodeipam;
pub mod root_ca_publisher;
pub mod serviceaccount;

use kube::Client;

pub use nodeipam::ClusterCidr;

/// Runs every controller until the process ends. `root_ca` is the cluster CA (PEM) that every namespace's
/// `kube-root-ca.crt` ConfigMap publishes.
pub async fn run(client: Client, cluster_cidr: ClusterCidr, root_ca: String) {
    tokio::join!(
        namespace::run(client.clone()),
        nodeipam::run(client.clone(), cluster_cidr),
        serviceaccount::run(client.clone()),
        root_ca_publisher::run(client, root_ca),
    );
}
