//! OCI images: registry pulls (mirrors, credentials, digest checks), archive import (OCI layout and `docker save`
//! tars), a content-addressed store of blobs and unpacked layers, and overlay root filesystems for containers.

mod archive;
mod config;
mod error;
mod manifest;
mod mount;
mod pull;
mod reference;
mod store;
mod unpack;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use config::{
    credentials_from_docker_config, Mirror, RegistriesConfig, RegistryAuthConfig, RegistryConfig, RegistryCredential,
    RegistryTlsConfig,
};
pub use error::ImageError;
pub use reference::Reference;

use error::join_error;
use store::Store;

/// An image in the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `sha256:<config digest>`.
    pub id: String,
    /// Full references, `docker.io/library/busybox:latest`.
    pub repo_tags: Vec<String>,
    /// `docker.io/library/busybox@sha256:<manifest or index digest>`.
    pub repo_digests: Vec<String>,
    /// Sum of the uncompressed layer sizes.
    pub size: u64,
    pub config: ImageConfig,
    /// The layers' diff_ids, bottom first.
    pub diff_ids: Vec<String>,
}

/// What the image config says about running it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value`.
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// `80/tcp`.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

/// The node's images. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registries: RegistriesConfig,
    /// Pulls and imports hold it shared while they add content; remove holds it exclusively while it deletes, so it
    /// never deletes a layer that an unfinished pull is about to reference.
    gc: tokio::sync::RwLock<()>,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `root`. Blocking: call it at startup.
    pub fn open(root: PathBuf, registries: RegistriesConfig) -> Result<Self, ImageError> {
        let store = Store::open(root)?;
        Ok(ImageStore { inner: Arc::new(Inner { store, registries, gc: tokio::sync::RwLock::new(()) }) })
    }

    /// Pulls an image, trying the registry's mirrors first. `credentials` (from the pod's imagePullSecrets) win
    /// over registries.yaml. Every manifest, config and layer is checked against its digest.
    pub async fn pull(&self, reference: &str, credentials: &[RegistryCredential]) -> Result<Image, ImageError> {
        let reference = Reference::parse(reference)?;
        let _adding = self.inner.gc.read().await;
        pull::pull(self, &reference, credentials).await
    }

    /// Imports every image of an OCI layout tar or `docker save` tar (optionally gzip-compressed).
    pub async fn import(&self, archive: &Path) -> Result<Vec<Image>, ImageError> {
        let _adding = self.inner.gc.read().await;
        let this = self.clone();
        let archive = archive.to_path_buf();
        tokio::task::spawn_blocking(move || archive::import(&this.inner.store, &archive)).await.map_err(join_error)?
    }

    /// Finds a local image by reference (`busybox` means `docker.io/library/busybox:latest`), by repo digest
    /// (`name@sha256:…`), or by id or unique id prefix.
    pub async fn resolve(&self, reference: &str) -> Result<Option<Image>, ImageError> {
        Ok(self.find(reference)?.map(|(record, _)| record.to_image()))
    }

    pub async fn list(&self) -> Result<Vec<Image>, ImageError> {
        Ok(self.inner.store.records().iter().map(|r| r.to_image()).collect())
    }

    /// Removes a reference (tag or repo digest), or the whole image when given its id. The image's blobs and
    /// layers no other image uses go with its last tag; refused with `InUse` while a rootfs still uses them.
    pub async fn remove(&self, reference: &str) -> Result<(), ImageError> {
        let Some((record, name)) = self.find(reference)? else {
            return Err(ImageError::NoSuchImage { reference: reference.into() });
        };
        let _deleting = self.inner.gc.write().await;
        let this = self.clone();
        let reference = reference.to_string();
        tokio::task::spawn_blocking(move || {
            this.inner.store.remove(&reference, &record.id, name.as_deref(), mount::check_unused)
        })
        .await
        .map_err(join_error)?
    }

    /// Mounts the image's overlay root filesystem at `dir/rootfs` (upper `dir/upper`, work `dir/work`) and returns
    /// its path. Does nothing if it is already mounted there.
    pub async fn mount_rootfs(&self, image: &Image, dir: &Path) -> Result<PathBuf, ImageError> {
        let lower: Vec<PathBuf> = image.diff_ids.iter().rev().map(|d| self.inner.store.layer_path(d)).collect();
        let empty = self.inner.store.layer_path("sha256:empty");
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || mount::mount_overlay(&lower, &empty, &dir)).await.map_err(join_error)?
    }

    /// Unmounts `dir/rootfs` (lazily if busy) and deletes `dir`. Fine if not mounted or absent.
    pub async fn unmount_rootfs(&self, dir: &Path) -> Result<(), ImageError> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || mount::unmount_overlay(&dir)).await.map_err(join_error)?
    }

    /// The record and the name (tag or repo digest) that `reference` matched; no name when it matched the id.
    fn find(&self, reference: &str) -> Result<Option<(store::ImageRecord, Option<String>)>, ImageError> {
        let records = self.inner.store.records();
        if let Some(record) = records.iter().find(|r| r.id == reference) {
            return Ok(Some((record.clone(), None)));
        }
        if let Ok(parsed) = Reference::parse(reference) {
            let name = match (&parsed.digest, &parsed.tag) {
                (Some(digest), _) => parsed.with_digest(digest),
                (None, _) => parsed.to_string(),
            };
            if let Some(record) = records.iter().find(|r| r.repo_tags.contains(&name) || r.repo_digests.contains(&name))
            {
                return Ok(Some((record.clone(), Some(name))));
            }
        }
        // An id prefix, with or without `sha256:`, that names exactly one image.
        let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
        if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut matches = records.iter().filter(|r| store::hex(&r.id).starts_with(prefix));
            if let (Some(record), None) = (matches.next(), matches.next()) {
                return Ok(Some((record.clone(), None)));
            }
        }
        Ok(None)
    }
}
