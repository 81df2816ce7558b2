//! The node agent (kubelet): joins the cluster with the join token, registers its Node and keeps its Lease and
//! status fresh, runs the pods bound to it through the container runtime and the CNI network, reports their status
//! and events, and serves their logs and resource usage to the API server. It talks to the control plane only
//! through the API.

mod atomic_writer;
mod events;
#[cfg(test)]
mod fake_api;
mod hooks;
mod join;
mod logs;
mod node;
mod pods;
mod projection;
mod server;
mod spec;
mod stats;
mod status;
mod tokens;
mod volumes;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use join::{join, JoinError, NodeCredentials};

/// Everything the kubelet needs to run on one node.
pub struct Config {
    pub node_name: String,
    pub node_ip: IpAddr,
    /// `DATA_DIR/agent`: pods, logs, images, runtime state, CNI configuration.
    pub dir: PathBuf,
    pub credentials: NodeCredentials,
    /// Port of the kubelet's HTTPS server (logs, resource metrics).
    pub port: u16,
    pub images: runtime::image::ImageStore,
    pub containers: runtime::container::ContainerRuntime,
    pub cni: network::Cni,
    /// Where the CNI configuration lives; the default k8rs network is written there once the Node has a podCIDR.
    pub cni_conf_dir: PathBuf,
    pub cluster_cidr: String,
    /// Node labels added at registration (e.g. the control-plane role).
    pub labels: Vec<(String, String)>,
    /// Name of the OCI runtime and its version, for the Node's nodeInfo.
    pub runtime_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("kubelet server: {0}")]
    Server(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What an API error says: the Status message for an error the server answered, else the error itself.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        error => error.to_string(),
    }
}

/// Runs the kubelet until the process ends.
pub async fn run(config: Config) -> Result<(), KubeletError> {
    let client = config.credentials.client().await.map_err(|e| KubeletError::Server(e.to_string()))?;
    let config = Arc::new(config);
    let pods = pods::PodManager::new(client.clone(), config.clone());
    let listener = server::bind(&config).await?;
    tokio::spawn(server::serve(listener, config.clone(), pods.clone()));
    let node = node::NodeAgent::new(client.clone(), config.clone());
    // Registration is retried: the API server may be restarting, or another writer raced us.
    while let Err(error) = node.register().await {
        tracing::warn!(%error, "cannot register the node yet; retrying");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    tokio::spawn(node.clone().run());
    pods.run().await;
    Ok(())
}
