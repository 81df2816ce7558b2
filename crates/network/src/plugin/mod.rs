//! The CNI plugin protocol (spec 1.0) around k8rs's own plugin: the same code runs in-process (called by [`Cni`])
//! and as an exec'd binary through [`plugin_main`].
//!
//! [`Cni`]: crate::Cni

mod hostport;
mod ipam;
mod k8rs;
mod link;

use std::io::{Read, Write};
use std::path::PathBuf;

use serde_json::json;

pub(crate) use k8rs::PLUGIN_TYPE;

/// Versions of the spec whose configs and results this plugin understands.
pub(crate) const SUPPORTED_VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// Error codes from the CNI spec; 100 and above are this plugin's own.
pub(crate) mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const NETLINK: u32 = 100;
    pub const NFTABLES: u32 = 101;
    pub const IP_EXHAUSTED: u32 = 102;
    pub const HOST_PORT_TAKEN: u32 = 103;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Add,
    Del,
    Check,
    Version,
}

impl Command {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }
}

/// One plugin invocation: what CNI passes in the environment plus the config from stdin.
pub(crate) struct Request {
    pub command: Command,
    pub container_id: String,
    /// Empty for DEL when the runtime no longer has the namespace.
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub config: Vec<u8>,
}

/// A plugin failure as the spec's error object.
#[derive(Debug)]
pub(crate) struct PluginError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl PluginError {
    pub(crate) fn new(code: u32, msg: impl Into<String>, details: impl ToString) -> Self {
        PluginError { code, msg: msg.into(), details: details.to_string() }
    }
}

/// Runs one invocation on the calling thread, which must be in the node's network namespace and must not be an
/// async worker: it switches namespaces temporarily. Returns the JSON to print on success.
pub(crate) fn run(req: &Request) -> Result<Vec<u8>, PluginError> {
    if req.command == Command::Version {
        return Ok(version_json("1.0.0"));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| PluginError::new(code::IO, "cannot start the plugin runtime", e))?;
    rt.block_on(k8rs::run(req))
}

fn version_json(cni_version: &str) -> Vec<u8> {
    json!({"cniVersion": cni_version, "supportedVersions": SUPPORTED_VERSIONS}).to_string().into_bytes()
}

/// Entry point when the `k8rs` binary is exec'd as a CNI plugin: reads `CNI_*` from the environment and the network
/// config from stdin, prints the result (or the spec's error object) on stdout, and returns the exit code.
pub fn plugin_main() -> i32 {
    let (out, rc) = match request_from_env().and_then(|req| run(&req)) {
        Ok(out) => (out, 0),
        Err(e) => {
            let body = json!({"cniVersion": "1.0.0", "code": e.code, "msg": e.msg, "details": e.details});
            (body.to_string().into_bytes(), 1)
        }
    };
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(&out).and_then(|()| stdout.flush()).is_err() {
        return 1;
    }
    rc
}

fn request_from_env() -> Result<Request, PluginError> {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let command = Command::parse(&var("CNI_COMMAND"))
        .ok_or_else(|| PluginError::new(code::INVALID_ENV, "CNI_COMMAND must be ADD, DEL, CHECK or VERSION", ""))?;
    // VERSION gets a config too (just its cniVersion); reading it keeps the caller's write from failing.
    let mut config = Vec::new();
    std::io::stdin()
        .read_to_end(&mut config)
        .map_err(|e| PluginError::new(code::IO, "cannot read the network config from stdin", e))?;
    let container_id = var("CNI_CONTAINERID");
    let ifname = var("CNI_IFNAME");
    if command != Command::Version && (container_id.is_empty() || ifname.is_empty()) {
        return Err(PluginError::new(code::INVALID_ENV, "CNI_CONTAINERID and CNI_IFNAME are required", ""));
    }
    let netns = Some(var("CNI_NETNS")).filter(|s| !s.is_empty()).map(PathBuf::from);
    Ok(Request { command, container_id, netns, ifname, config })
}
