//! The network config a node writes when the operator has provided none: k8rs's own plugin alone.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::plugin::PLUGIN_TYPE;
use crate::CniError;

/// File name of the default config; sorts before most third-party configs, as upstream's `10-*` do.
const DEFAULT_CONFIG_FILE: &str = "10-k8rs.conflist";
/// Network name in the default config (also the IPAM state directory under `data_dir`).
const DEFAULT_NETWORK_NAME: &str = "k8rs";

/// The node's pod network as k8rs's own plugin sets it up.
#[derive(Debug, Clone)]
pub struct DefaultNetwork {
    /// The node's `spec.podCIDR`, e.g. 10.42.0.0/24; its first address is the bridge (the pods' gateway).
    pub pod_cidr: String,
    /// The whole cluster's pod range, e.g. 10.42.0.0/16: traffic leaving it is masqueraded.
    pub cluster_cidr: String,
    /// Bridge name, e.g. k8rs0.
    pub bridge: String,
    pub mtu: u32,
    /// Where the plugin keeps IPAM and hostPort state.
    pub data_dir: PathBuf,
}

/// Writes the default conflist into `conf_dir` (atomically, so a concurrent reader never sees half a file) and
/// returns its path.
pub fn write_default_config(conf_dir: &Path, network: &DefaultNetwork) -> Result<PathBuf, CniError> {
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": DEFAULT_NETWORK_NAME,
        "plugins": [{
            "type": PLUGIN_TYPE,
            "bridge": network.bridge,
            "subnet": network.pod_cidr,
            "clusterCIDR": network.cluster_cidr,
            "mtu": network.mtu,
            "hairpinMode": true,
            "ipMasq": true,
            "dataDir": network.data_dir,
            "capabilities": {"portMappings": true},
        }],
    });
    fs::create_dir_all(conf_dir).map_err(|e| CniError::io(format!("cannot create {conf_dir:?}"), e))?;
    let path = conf_dir.join(DEFAULT_CONFIG_FILE);
    let tmp = conf_dir.join(format!(".{DEFAULT_CONFIG_FILE}.tmp"));
    let body = serde_json::to_vec_pretty(&conf).expect("config serializes");
    fs::write(&tmp, body).map_err(|e| CniError::io(format!("cannot write {tmp:?}"), e))?;
    fs::rename(&tmp, &path).map_err(|e| CniError::io(format!("cannot write {path:?}"), e))?;
    Ok(path)
}
