//! The JSON documents of an image: index / manifest list, manifest, config. Parsed leniently (only the fields we
//! use), because registries and tools disagree on the optional ones.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::reference::validate_digest;
use super::ImageConfig;

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Sent on every manifest request: without the OCI types, distribution answers 404 for OCI manifests.
pub(crate) const MANIFEST_ACCEPT: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

const CONFIG_TYPES: &[&str] =
    &["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Platform {
    pub architecture: String,
    pub os: String,
}

/// An image manifest or an index (manifest list): which one is told by the media type or the fields present.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub schema_version: u32,
    pub media_type: Option<String>,
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    pub manifests: Option<Vec<Descriptor>>,
}

pub(crate) enum Parsed {
    Index(Vec<Descriptor>),
    Image { config: Descriptor, layers: Vec<Descriptor> },
}

/// Why a document cannot be used: `UnsupportedMediaType` or anything else.
pub(crate) enum Problem {
    MediaType(String),
    Invalid(String),
}

impl Manifest {
    /// Parses and checks a manifest or index; `media_type` is what the registry or parent descriptor called it.
    pub fn parse(bytes: &[u8], media_type: Option<&str>) -> Result<Parsed, Problem> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| Problem::Invalid(format!("invalid manifest: {e}")))?;
        let media_type = manifest.media_type.as_deref().or(media_type.filter(|m| !m.is_empty()));
        if manifest.schema_version != 2 {
            let media_type = media_type.unwrap_or("application/vnd.docker.distribution.manifest.v1+json");
            return Err(Problem::MediaType(format!("{media_type} (schema version {})", manifest.schema_version)));
        }
        let is_index = match media_type {
            Some(OCI_INDEX | DOCKER_LIST) => true,
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
            Some(other) => return Err(Problem::MediaType(other.to_string())),
            None => manifest.manifests.is_some(),
        };
        if is_index {
            let manifests = manifest.manifests.unwrap_or_default();
            for m in &manifests {
                validate_digest(&m.digest).map_err(Problem::Invalid)?;
            }
            return Ok(Parsed::Index(manifests));
        }
        let config = manifest.config.ok_or_else(|| Problem::Invalid("manifest has no config".into()))?;
        validate_digest(&config.digest).map_err(Problem::Invalid)?;
        if !config.media_type.is_empty() && !CONFIG_TYPES.contains(&config.media_type.as_str()) {
            return Err(Problem::MediaType(config.media_type));
        }
        for layer in &manifest.layers {
            validate_digest(&layer.digest).map_err(Problem::Invalid)?;
            if !layer.media_type.is_empty() && !LAYER_TYPES.contains(&layer.media_type.as_str()) {
                return Err(Problem::MediaType(layer.media_type.clone()));
            }
        }
        Ok(Parsed::Image { config, layers: manifest.layers })
    }
}

/// The node's platform in OCI terms.
pub(crate) fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}

/// The index entry for this node's platform.
pub(crate) fn select_platform(manifests: &[Descriptor]) -> Result<&Descriptor, String> {
    let (os, arch) = host_platform();
    manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| p.os == os && p.architecture == arch))
        .ok_or_else(|| format!("no match for platform {os}/{arch} in manifest"))
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: Option<ContainerConfig>,
    rootfs: RootFs,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ContainerConfig {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    labels: Option<BTreeMap<String, String>>,
    stop_signal: Option<String>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// The runtime config and the layers' diff_ids (bottom first) from an image config blob.
pub(crate) fn parse_config(bytes: &[u8]) -> Result<(ImageConfig, Vec<String>), String> {
    let file: ConfigFile = serde_json::from_slice(bytes).map_err(|e| format!("invalid image config: {e}"))?;
    for diff_id in &file.rootfs.diff_ids {
        validate_digest(diff_id)?;
    }
    let c = file.config.unwrap_or_default();
    let config = ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
        exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
        labels: c.labels.unwrap_or_default(),
        stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
    };
    Ok((config, file.rootfs.diff_ids))
}
