//! The on-disk store, all blocking: `blobs/sha256/<hex>` (manifests, configs, layer blobs), `layers/sha256/<diff_id
//! hex>/` (unpacked once, shared by images), `images.json` (the image records, rewritten atomically under a mutex)
//! and `tmp/` (downloads and unpacks in progress, emptied on open).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::unpack::{unpack_layer, UnpackError};
use super::{Image, ImageConfig, ImageError};

/// What the store keeps about one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub config: ImageConfig,
    /// Bottom layer first.
    pub layers: Vec<LayerRecord>,
    /// Every blob stored for this image (index, manifest, config, layer blobs).
    pub blobs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    pub diff_id: String,
    /// Uncompressed tar size.
    pub size: u64,
}

impl ImageRecord {
    pub fn to_image(&self) -> Image {
        Image {
            id: self.id.clone(),
            repo_tags: self.repo_tags.clone(),
            repo_digests: self.repo_digests.clone(),
            size: self.layers.iter().map(|l| l.size).sum(),
            config: self.config.clone(),
            diff_ids: self.layers.iter().map(|l| l.diff_id.clone()).collect(),
        }
    }

    fn has_name(&self, name: &str) -> bool {
        self.repo_tags.iter().chain(&self.repo_digests).any(|n| n == name)
    }
}

pub(crate) struct Store {
    root: PathBuf,
    records: Mutex<Vec<ImageRecord>>,
    counter: AtomicU64,
}

impl Store {
    pub fn open(root: PathBuf) -> Result<Store, ImageError> {
        for dir in ["blobs/sha256", "layers/sha256", "tmp"] {
            fs::create_dir_all(root.join(dir)).map_err(ImageError::io(format!("cannot create {}", root.display())))?;
        }
        // Absolute paths: they go into overlay mount options and are compared with the mount table.
        let root = root.canonicalize().map_err(ImageError::io(format!("cannot resolve {}", root.display())))?;
        // Leftovers of downloads and unpacks that a crash interrupted.
        let tmp = root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(ImageError::io(format!("cannot read {}", tmp.display())))?.flatten() {
            let _ = remove_any(&entry.path());
        }
        let index = root.join("images.json");
        let records = match fs::read(&index) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ImageError::Io {
                context: format!("cannot parse {}", index.display()),
                source: io::Error::other(e),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(ImageError::io(format!("cannot read {}", index.display()))(e)),
        };
        Ok(Store { root, records: Mutex::new(records), counter: AtomicU64::new(0) })
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex(digest))
    }

    pub fn layer_path(&self, diff_id: &str) -> PathBuf {
        self.root.join("layers/sha256").join(hex(diff_id))
    }

    /// A fresh path under `tmp/`, unique within and across processes.
    pub fn tmp_path(&self, what: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!("{what}-{}-{n}", std::process::id()))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Stores verified content under its digest (write to tmp, then rename: readers never see a partial blob).
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> io::Result<()> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let tmp = self.tmp_path("blob");
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, self.blob_path(digest))
    }

    /// Moves a file whose content was verified to hash to `digest` into the store.
    pub fn adopt_blob(&self, file: &Path, digest: &str) -> io::Result<()> {
        fs::rename(file, self.blob_path(digest))
    }

    /// The unpacked size of a layer if it is already unpacked and recorded.
    pub fn known_layer(&self, diff_id: &str) -> Option<u64> {
        if !self.layer_path(diff_id).is_dir() {
            return None;
        }
        let records = self.records.lock().expect("image index lock");
        records.iter().flat_map(|r| &r.layers).find(|l| l.diff_id == diff_id).map(|l| l.size)
    }

    /// Unpacks stored blob `blob_digest` as layer `diff_id`, unless it is already there.
    pub fn ensure_layer(&self, blob_digest: &str, diff_id: &str) -> Result<u64, UnpackError> {
        if let Some(size) = self.known_layer(diff_id) {
            return Ok(size);
        }
        let started = std::time::Instant::now();
        let size =
            unpack_layer(&self.blob_path(blob_digest), diff_id, &self.tmp_path("layer"), &self.layer_path(diff_id))?;
        tracing::info!(%diff_id, size, elapsed_ms = started.elapsed().as_millis() as u64, "unpacked layer");
        Ok(size)
    }

    pub fn records(&self) -> Vec<ImageRecord> {
        self.records.lock().expect("image index lock").clone()
    }

    /// Adds an image, or merges its names into the existing record of the same id. Tags move: a tag names one image.
    pub fn commit(&self, new: ImageRecord) -> Result<Image, ImageError> {
        let mut records = self.records.lock().expect("image index lock");
        let mut updated = records.clone();
        for record in updated.iter_mut().filter(|r| r.id != new.id) {
            record.repo_tags.retain(|t| !new.repo_tags.contains(t));
        }
        let image = match updated.iter_mut().find(|r| r.id == new.id) {
            Some(record) => {
                merge(&mut record.repo_tags, &new.repo_tags);
                merge(&mut record.repo_digests, &new.repo_digests);
                merge(&mut record.blobs, &new.blobs);
                record.to_image()
            }
            None => {
                let image = new.to_image();
                updated.push(new);
                image
            }
        };
        self.write_index(&updated)?;
        *records = updated;
        Ok(image)
    }

    /// Removes `name` (a tag or repo digest) from its image, or the whole image when `name` is its id; deletes what
    /// no image needs any more. `in_use` is told the layer directories about to go and may veto.
    pub fn remove(
        &self,
        reference: &str,
        id: &str,
        name: Option<&str>,
        in_use: impl Fn(&[PathBuf]) -> Result<(), String>,
    ) -> Result<(), ImageError> {
        let mut records = self.records.lock().expect("image index lock");
        let mut updated = records.clone();
        let Some(position) = updated.iter().position(|r| r.id == id) else {
            return Err(ImageError::NoSuchImage { reference: reference.into() });
        };
        let record = &mut updated[position];
        if let Some(name) = name.filter(|n| record.has_name(n)) {
            record.repo_tags.retain(|t| t != name);
            record.repo_digests.retain(|d| d != name);
            // As with `docker rmi`, the last tag takes the image with it; digests alone keep a digest-only image.
            let digest_only = name.contains('@') && !record.repo_digests.is_empty();
            if !record.repo_tags.is_empty() || digest_only {
                self.write_index(&updated)?;
                *records = updated;
                return Ok(());
            }
        }
        let removed = updated.remove(position);
        let kept_blobs: BTreeSet<&String> = updated.iter().flat_map(|r| &r.blobs).collect();
        let kept_layers: BTreeSet<&String> = updated.iter().flat_map(|r| &r.layers).map(|l| &l.diff_id).collect();
        let layers: Vec<PathBuf> = removed
            .layers
            .iter()
            .filter(|l| !kept_layers.contains(&l.diff_id))
            .map(|l| self.layer_path(&l.diff_id))
            .collect();
        in_use(&layers).map_err(|detail| ImageError::InUse { reference: reference.into(), detail })?;
        self.write_index(&updated)?;
        for blob in removed.blobs.iter().filter(|b| !kept_blobs.contains(b)) {
            let _ = fs::remove_file(self.blob_path(blob));
        }
        for layer in &layers {
            // Rename first so a half-deleted directory never looks like a complete layer.
            let doomed = self.tmp_path("removed");
            if fs::rename(layer, &doomed).is_ok() {
                let _ = fs::remove_dir_all(&doomed);
            }
        }
        *records = updated;
        tracing::info!(reference, id, "removed image");
        Ok(())
    }

    fn write_index(&self, records: &[ImageRecord]) -> Result<(), ImageError> {
        let path = self.root.join("images.json");
        let write = || -> io::Result<()> {
            let tmp = self.tmp_path("images.json");
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&serde_json::to_vec_pretty(records).map_err(io::Error::other)?)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(ImageError::io(format!("cannot write {}", path.display())))
    }
}

fn merge(into: &mut Vec<String>, from: &[String]) {
    for item in from {
        if !into.contains(item) {
            into.push(item.clone());
        }
    }
}

pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The hex part of a (validated) `sha256:<hex>` digest.
pub(crate) fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    let mut hash = Sha256Writer::new();
    hash.update(bytes);
    hash.finish().0
}

/// SHA-256 over a stream, counting its bytes.
pub(crate) struct Sha256Writer {
    context: ring::digest::Context,
    size: u64,
}

impl Sha256Writer {
    pub fn new() -> Self {
        Sha256Writer { context: ring::digest::Context::new(&ring::digest::SHA256), size: 0 }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.context.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// `("sha256:<hex>", size)`.
    pub fn finish(self) -> (String, u64) {
        let digest = self.context.finish();
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        (format!("sha256:{hex}"), self.size)
    }
}

impl Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
