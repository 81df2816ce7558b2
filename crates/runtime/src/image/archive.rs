//! Importing image archives (blocking): OCI image layout tars (index.json + blobs/) and `docker save` tars
//! (manifest.json with RepoTags), either optionally gzip-compressed.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;

use super::manifest::{parse_config, select_platform, Manifest, Parsed, Problem, OCI_INDEX};
use super::reference::validate_digest;
use super::store::{hex, sha256, ImageRecord, LayerRecord, Sha256Writer, Store};
use super::unpack::UnpackError;
use super::{Image, ImageError, Reference};

/// containerd's (and docker's) annotation with the full image name.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation: a tag alone in the spec, a full name as skopeo writes it.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

pub(crate) fn import(store: &Store, archive: &Path) -> Result<Vec<Image>, ImageError> {
    let started = Instant::now();
    let work = store.tmp_path("import");
    let result = extract(archive, &work).and_then(|()| {
        let importer = Importer { store, archive, work: &work };
        let records = if work.join("index.json").is_file() {
            importer.oci()?
        } else if work.join("manifest.json").is_file() {
            importer.docker()?
        } else {
            return Err(importer.invalid(
                "neither index.json (OCI image layout) nor manifest.json (docker save) in the archive".into(),
            ));
        };
        records.into_iter().map(|record| store.commit(record)).collect::<Result<Vec<Image>, ImageError>>()
    });
    let _ = fs::remove_dir_all(&work);
    let images = result?;
    tracing::info!(
        archive = %archive.display(),
        images = images.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "imported image archive"
    );
    Ok(images)
}

/// Unpacks the archive's files (gzip or not) into `work`; only files, directories and links, all kept inside.
fn extract(archive: &Path, work: &Path) -> Result<(), ImageError> {
    let invalid = |detail: String| ImageError::InvalidArchive { path: archive.to_path_buf(), detail };
    let file = fs::File::open(archive).map_err(|e| invalid(e.to_string()))?;
    let mut input = BufReader::new(file);
    let gzip = input.fill_buf().map_err(|e| invalid(e.to_string()))?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip { Box::new(flate2::read::MultiGzDecoder::new(input)) } else { Box::new(input) };
    fs::create_dir(work).map_err(ImageError::io(format!("cannot create {}", work.display())))?;
    let mut tar = tar::Archive::new(reader);
    let entries = tar.entries().map_err(|e| invalid(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("not a tar archive: {e}")))?;
        use tar::EntryType::*;
        if matches!(entry.header().entry_type(), Regular | Directory | Symlink | Link | Continuous) {
            entry.unpack_in(work).map_err(|e| invalid(e.to_string()))?;
        }
    }
    Ok(())
}

struct Importer<'a> {
    store: &'a Store,
    archive: &'a Path,
    work: &'a Path,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl Importer<'_> {
    fn invalid(&self, detail: String) -> ImageError {
        ImageError::InvalidArchive { path: self.archive.to_path_buf(), detail }
    }

    /// A file of the archive, refusing paths (or symlinks) that lead outside it.
    fn file(&self, relative: &str) -> Result<PathBuf, ImageError> {
        let path = self.work.join(relative);
        let resolved = path.canonicalize().map_err(|e| self.invalid(format!("{relative}: {e}")))?;
        let root = self.work.canonicalize().map_err(ImageError::io("cannot resolve import directory"))?;
        if !resolved.starts_with(&root) || !resolved.is_file() {
            return Err(self.invalid(format!("{relative} is not a file inside the archive")));
        }
        Ok(resolved)
    }

    fn read(&self, relative: &str) -> Result<Vec<u8>, ImageError> {
        fs::read(self.file(relative)?).map_err(|e| self.invalid(format!("{relative}: {e}")))
    }

    /// A blob of the OCI layout, checked against its digest.
    fn blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        validate_digest(digest).map_err(|e| self.invalid(e))?;
        let bytes = self.read(&format!("blobs/sha256/{}", hex(digest)))?;
        let actual = sha256(&bytes);
        if actual != digest {
            return Err(self.invalid(format!("blob {digest} has digest {actual}")));
        }
        Ok(bytes)
    }

    fn oci(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let problem = |p: Problem| match p {
            Problem::MediaType(m) => self.invalid(format!("unsupported media type {m}")),
            Problem::Invalid(detail) => self.invalid(detail),
        };
        let index = self.read("index.json")?;
        let Parsed::Index(manifests) = Manifest::parse(&index, Some(OCI_INDEX)).map_err(problem)? else {
            return Err(self.invalid("index.json is not an image index".into()));
        };
        let mut records = Vec::new();
        for top in &manifests {
            let names = self.oci_names(&top.annotations)?;
            let bytes = self.blob(&top.digest)?;
            let mut blobs = vec![(top.digest.clone(), bytes.clone())];
            let (config, layers) = match Manifest::parse(&bytes, Some(&top.media_type)).map_err(problem)? {
                Parsed::Image { config, layers } => (config, layers),
                Parsed::Index(entries) => {
                    let entry = select_platform(&entries).map_err(|e| self.invalid(format!("{e} {}", top.digest)))?;
                    let bytes = self.blob(&entry.digest)?;
                    let parsed = Manifest::parse(&bytes, Some(&entry.media_type)).map_err(problem)?;
                    blobs.push((entry.digest.clone(), bytes));
                    match parsed {
                        Parsed::Image { config, layers } => (config, layers),
                        Parsed::Index(_) => return Err(self.invalid(format!("nested index in {}", entry.digest))),
                    }
                }
            };
            let config_bytes = self.blob(&config.digest)?;
            let layer_files: Vec<(String, String)> =
                layers.iter().map(|l| (format!("blobs/sha256/{}", hex(&l.digest)), l.digest.clone())).collect();
            let repo_digests = names
                .iter()
                .map(|n| Reference::parse(n).map(|r| r.with_digest(&top.digest)))
                .collect::<Result<Vec<_>, _>>()?;
            blobs.push((config.digest.clone(), config_bytes));
            records.push(self.record(names, repo_digests, blobs, &layer_files)?);
        }
        Ok(records)
    }

    /// Full references from a manifest's annotations; a bare OCI tag (`latest`) names no repository, so none.
    fn oci_names(&self, annotations: &BTreeMap<String, String>) -> Result<Vec<String>, ImageError> {
        let name = annotations
            .get(CONTAINERD_NAME)
            .or_else(|| annotations.get(OCI_REF_NAME).filter(|n| n.contains(['/', ':', '@'])));
        match name {
            Some(name) => Ok(vec![Reference::parse(name)?.to_string()]),
            None => {
                let archive = self.archive.display();
                tracing::warn!(%archive, ?annotations, "image without a name; it can be used by id");
                Ok(Vec::new())
            }
        }
    }

    fn docker(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let manifest: Vec<DockerManifest> = serde_json::from_slice(&self.read("manifest.json")?)
            .map_err(|e| self.invalid(format!("manifest.json: {e}")))?;
        let mut records = Vec::new();
        for entry in manifest {
            let config_bytes = self.read(&entry.config)?;
            let names = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse(t).map(|r| r.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            let mut layer_files = Vec::new();
            for path in &entry.layers {
                let digest = hash_file(&self.file(path)?).map_err(|e| self.invalid(format!("{path}: {e}")))?;
                layer_files.push((path.clone(), digest));
            }
            let blobs = vec![(sha256(&config_bytes), config_bytes)];
            records.push(self.record(names, Vec::new(), blobs, &layer_files)?);
        }
        Ok(records)
    }

    /// Stores the blobs and layers of one image and builds its record. `blobs` ends with the config;
    /// `layer_files` are (path in the archive, blob digest), bottom first.
    fn record(
        &self,
        repo_tags: Vec<String>,
        repo_digests: Vec<String>,
        blobs: Vec<(String, Vec<u8>)>,
        layer_files: &[(String, String)],
    ) -> Result<ImageRecord, ImageError> {
        let (config_digest, config_bytes) = blobs.last().expect("config blob");
        let (config, diff_ids) = parse_config(config_bytes).map_err(|e| self.invalid(e))?;
        if diff_ids.len() != layer_files.len() {
            return Err(self.invalid(format!(
                "image {config_digest} has {} layers but its config names {} diff_ids",
                layer_files.len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for ((path, digest), diff_id) in layer_files.iter().zip(&diff_ids) {
            if !self.store.has_blob(digest) {
                let file = self.file(path)?;
                let actual = hash_file(&file).map_err(|e| self.invalid(format!("{path}: {e}")))?;
                if &actual != digest {
                    return Err(self.invalid(format!("layer {digest} has digest {actual}")));
                }
                self.store.adopt_blob(&file, digest).map_err(ImageError::io(format!("cannot store layer {digest}")))?;
            }
            let size = self.store.ensure_layer(digest, diff_id).map_err(|e| match e {
                UnpackError::DiffIdMismatch { actual } => {
                    self.invalid(format!("layer {path} unpacks to {actual}, but the config says {diff_id}"))
                }
                UnpackError::Broken(detail) => self.invalid(format!("layer {path}: {detail}")),
            })?;
            layers.push(LayerRecord { diff_id: diff_id.clone(), size });
        }
        for (digest, bytes) in &blobs {
            self.store.put_blob(digest, bytes).map_err(ImageError::io(format!("cannot store blob {digest}")))?;
        }
        let mut blob_digests: Vec<String> = blobs.iter().map(|(d, _)| d.clone()).collect();
        blob_digests.extend(layer_files.iter().map(|(_, d)| d.clone()));
        Ok(ImageRecord { id: config_digest.clone(), repo_tags, repo_digests, config, layers, blobs: blob_digests })
    }
}

fn hash_file(path: &Path) -> io::Result<String> {
    let mut hash = Sha256Writer::new();
    io::copy(&mut fs::File::open(path)?, &mut hash)?;
    Ok(hash.finish().0)
}
