//! Registry pulls with oci-client: resolve on the first endpoint that has the manifest (mirrors, then the
//! registry), then fetch config and layers from that endpoint, checking every digest before anything is stored.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use tokio::io::AsyncWriteExt;

use super::config::{normalize_registry_host, Endpoint};
use super::error::join_error;
use super::manifest::{parse_config, select_platform, Descriptor, Manifest, Parsed, Problem, MANIFEST_ACCEPT};
use super::store::{sha256, ImageRecord, LayerRecord, Sha256Writer};
use super::unpack::UnpackError;
use super::{Image, ImageError, ImageStore, Reference, RegistryCredential};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Layers downloaded and unpacked at the same time.
const PARALLEL_LAYERS: usize = 3;

/// One endpoint's client, with the credentials chosen for it.
struct Source {
    client: Client,
    auth: RegistryAuth,
    /// oci-client's reference: the image's own registry, redirected to the endpoint host for mirrors.
    reference: oci_client::Reference,
    host: String,
}

/// What one endpoint said: "not here" lets the next endpoint try; anything else is remembered.
enum Attempt {
    NotFound,
    Failed(ImageError),
}

pub(super) async fn pull(
    images: &ImageStore,
    reference: &Reference,
    credentials: &[RegistryCredential],
) -> Result<Image, ImageError> {
    let started = Instant::now();
    let name = reference.to_string();
    let (source, manifest_bytes, manifest_digest) = resolve(images, reference, credentials).await?;
    let invalid = |detail: String| ImageError::InvalidImage { reference: name.clone(), detail };
    let problem = |p: Problem| match p {
        Problem::MediaType(media_type) => ImageError::UnsupportedMediaType { reference: name.clone(), media_type },
        Problem::Invalid(detail) => invalid(detail),
    };

    // An index (manifest list) leads to this node's platform's manifest; the repo digest stays the index's.
    let mut blobs = vec![(manifest_digest.clone(), manifest_bytes.clone())];
    let (config_desc, layers) = match Manifest::parse(&manifest_bytes, None).map_err(problem)? {
        Parsed::Image { config, layers } => (config, layers),
        Parsed::Index(manifests) => {
            let entry = select_platform(&manifests).map_err(|e| invalid(format!("{e} {manifest_digest}")))?;
            let by_digest = source.reference.clone_with_digest(entry.digest.clone());
            let (bytes, digest) = source
                .client
                .pull_manifest_raw(&by_digest, &source.auth, MANIFEST_ACCEPT)
                .await
                .map_err(|e| stage_error(e, &name, &source.host, &format!("manifest {}", entry.digest)))?;
            check_digest(&name, &format!("manifest {}", entry.digest), &entry.digest, &digest)?;
            let parsed = Manifest::parse(&bytes, Some(&entry.media_type)).map_err(problem)?;
            blobs.push((digest, bytes.to_vec()));
            match parsed {
                Parsed::Image { config, layers } => (config, layers),
                Parsed::Index(_) => return Err(invalid(format!("index {} names another index", entry.digest))),
            }
        }
    };

    let mut config_bytes = Vec::new();
    source
        .client
        .pull_blob(&source.reference, &oci_descriptor(&config_desc), &mut config_bytes)
        .await
        .map_err(|e| stage_error(e, &name, &source.host, &format!("config {}", config_desc.digest)))?;
    check_digest(&name, "config", &config_desc.digest, &sha256(&config_bytes))?;
    let (config, diff_ids) = parse_config(&config_bytes).map_err(invalid)?;
    if diff_ids.len() != layers.len() {
        return Err(invalid(format!(
            "manifest has {} layers but the config names {} diff_ids",
            layers.len(),
            diff_ids.len()
        )));
    }
    blobs.push((config_desc.digest.clone(), config_bytes));

    // Futures made up front: a closure inside the stream would make the pull future not Send.
    let fetches: Vec<_> = layers
        .iter()
        .zip(&diff_ids)
        .map(|(layer, diff_id)| fetch_layer(images, &source, &name, layer, diff_id))
        .collect();
    let sizes: Vec<u64> = futures::stream::iter(fetches).buffered(PARALLEL_LAYERS).try_collect().await?;

    let store_images = images.clone();
    let layer_digests: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
    let mut record = ImageRecord {
        id: config_desc.digest.clone(),
        repo_tags: reference.tag.iter().map(|tag| format!("{}:{tag}", reference.name())).collect(),
        repo_digests: vec![reference.with_digest(&manifest_digest)],
        config,
        layers: diff_ids.iter().zip(sizes).map(|(d, size)| LayerRecord { diff_id: d.clone(), size }).collect(),
        blobs: blobs.iter().map(|(d, _)| d.clone()).collect(),
    };
    let image = tokio::task::spawn_blocking(move || {
        let store = &store_images.inner.store;
        for (digest, bytes) in &blobs {
            store.put_blob(digest, bytes).map_err(ImageError::io(format!("cannot store blob {digest}")))?;
        }
        // Layers found already unpacked were not downloaded: only blobs that are here belong to the image.
        record.blobs.extend(layer_digests.into_iter().filter(|d| store.has_blob(d)));
        store.commit(record)
    })
    .await
    .map_err(join_error)??;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(reference = %name, id = %image.id, size = image.size, elapsed_ms, "pulled image");
    Ok(image)
}

/// Finds the manifest on the first endpoint that has it. As containerd does, the error reported when all fail is
/// "not found" only if every endpoint said so.
async fn resolve(
    images: &ImageStore,
    reference: &Reference,
    credentials: &[RegistryCredential],
) -> Result<(Source, Vec<u8>, String), ImageError> {
    let name = reference.to_string();
    let mut last_error = None;
    for endpoint in images.inner.registries.endpoints(&reference.registry) {
        let source = source(images, reference, credentials, &endpoint).await?;
        let result = source.client.pull_manifest_raw(&source.reference, &source.auth, MANIFEST_ACCEPT).await;
        match result.map_err(|e| classify(e, &name, &endpoint.host)) {
            Ok((bytes, digest)) => {
                if let Some(wanted) = &reference.digest {
                    check_digest(&name, "manifest", wanted, &digest)?;
                }
                check_digest(&name, "manifest", &digest, &sha256(&bytes))?;
                tracing::debug!(reference = %name, endpoint = %endpoint.host, %digest, "resolved");
                return Ok((source, bytes.to_vec(), digest));
            }
            Err(Attempt::NotFound) => tracing::debug!(reference = %name, endpoint = %endpoint.host, "not found"),
            Err(Attempt::Failed(e)) => {
                let e = match e {
                    ImageError::RegistryUnavailable { reference, registry, detail } => {
                        let detail = format!("failed to resolve reference \"{reference}\": {detail}");
                        ImageError::RegistryUnavailable { reference, registry, detail }
                    }
                    other => other,
                };
                tracing::warn!(reference = %name, endpoint = %endpoint.host, error = %e, "endpoint failed");
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or(ImageError::NotFound { reference: name }))
}

async fn source(
    images: &ImageStore,
    reference: &Reference,
    credentials: &[RegistryCredential],
    endpoint: &Endpoint,
) -> Result<Source, ImageError> {
    let registries = &images.inner.registries;
    let tls = registries.tls(&endpoint.host);
    let mut config = ClientConfig {
        protocol: if endpoint.plain_http { ClientProtocol::Http } else { ClientProtocol::Https },
        accept_invalid_certificates: tls.is_some_and(|t| t.insecure_skip_verify),
        // Index entries are chosen here, not by the client.
        platform_resolver: None,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        ..ClientConfig::default()
    };
    if let Some(ca_file) = tls.and_then(|t| t.ca_file.as_ref()) {
        let data = tokio::fs::read(ca_file).await.map_err(ImageError::io(format!("cannot read ca_file {ca_file}")))?;
        config.extra_root_certificates.push(Certificate { encoding: CertificateEncoding::Pem, data });
    }
    // Pod credentials for this endpoint, then for the image's registry (containerd also sends those to mirrors),
    // then registries.yaml.
    let credential = credentials
        .iter()
        .find(|c| normalize_registry_host(&c.registry) == endpoint.host)
        .or_else(|| credentials.iter().find(|c| normalize_registry_host(&c.registry) == reference.registry))
        .cloned()
        .or_else(|| registries.credential(&endpoint.host));
    let auth = match credential {
        Some(c) => RegistryAuth::Basic(c.username, c.password),
        None => RegistryAuth::Anonymous,
    };
    let mut oci_reference = match &reference.digest {
        Some(digest) => {
            oci_client::Reference::with_digest(reference.registry.clone(), reference.repository.clone(), digest.clone())
        }
        None => oci_client::Reference::with_tag(
            reference.registry.clone(),
            reference.repository.clone(),
            reference.tag.clone().unwrap_or_else(|| "latest".into()),
        ),
    };
    if endpoint.host != reference.registry {
        oci_reference.set_mirror_registry(endpoint.host.clone());
    }
    Ok(Source { client: Client::new(config), auth, reference: oci_reference, host: endpoint.host.clone() })
}

/// Makes layer `diff_id` present: nothing to do if unpacked already; otherwise download (unless the blob is
/// stored), verify, and unpack. Returns the uncompressed size.
async fn fetch_layer(
    images: &ImageStore,
    source: &Source,
    name: &str,
    layer: &Descriptor,
    diff_id: &str,
) -> Result<u64, ImageError> {
    let store_images = images.clone();
    let (digest, diff) = (layer.digest.clone(), diff_id.to_string());
    let (unpacked, have_blob) = tokio::task::spawn_blocking(move || {
        let store = &store_images.inner.store;
        (store.known_layer(&diff), store.has_blob(&digest))
    })
    .await
    .map_err(join_error)?;
    if let Some(size) = unpacked {
        return Ok(size);
    }
    if !have_blob {
        download(images, source, name, layer).await?;
    }
    let store_images = images.clone();
    let (digest, diff) = (layer.digest.clone(), diff_id.to_string());
    let unpacked = tokio::task::spawn_blocking(move || store_images.inner.store.ensure_layer(&digest, &diff))
        .await
        .map_err(join_error)?;
    unpacked.map_err(|e| match e {
        UnpackError::DiffIdMismatch { actual } => ImageError::DigestMismatch {
            reference: name.into(),
            object: format!("layer {} uncompressed", layer.digest),
            expected: diff_id.into(),
            actual,
        },
        UnpackError::Broken(detail) => {
            ImageError::InvalidImage { reference: name.into(), detail: format!("layer {}: {detail}", layer.digest) }
        }
    })
}

/// Streams a blob into `tmp/`, hashing as it goes, and moves it into the store only if the digest matches.
async fn download(images: &ImageStore, source: &Source, name: &str, layer: &Descriptor) -> Result<(), ImageError> {
    let object = format!("layer {}", layer.digest);
    let tmp: PathBuf = images.inner.store.tmp_path("download");
    let result = async {
        let mut stream = source
            .client
            .pull_blob_stream(&source.reference, &oci_descriptor(layer))
            .await
            .map_err(|e| stage_error(e, name, &source.host, &object))?;
        let mut file =
            tokio::fs::File::create(&tmp).await.map_err(ImageError::io(format!("cannot create {}", tmp.display())))?;
        let mut hash = Sha256Writer::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| stream_error(e, name, &source.host, &object))?;
            hash.update(&chunk);
            file.write_all(&chunk).await.map_err(ImageError::io(format!("cannot write {}", tmp.display())))?;
        }
        file.sync_all().await.map_err(ImageError::io(format!("cannot write {}", tmp.display())))?;
        check_digest(name, &object, &layer.digest, &hash.finish().0)
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    let store_images = images.clone();
    let digest = layer.digest.clone();
    tokio::task::spawn_blocking(move || store_images.inner.store.adopt_blob(&tmp, &digest))
        .await
        .map_err(join_error)?
        .map_err(ImageError::io(format!("cannot store {object}")))
}

fn oci_descriptor(d: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size as i64,
        ..OciDescriptor::default()
    }
}

fn check_digest(reference: &str, object: &str, expected: &str, actual: &str) -> Result<(), ImageError> {
    if expected == actual {
        return Ok(());
    }
    Err(ImageError::DigestMismatch {
        reference: reference.into(),
        object: object.into(),
        expected: expected.into(),
        actual: actual.into(),
    })
}

/// An error after resolution: "not found" now means a registry that lost content it listed.
fn stage_error(e: OciDistributionError, reference: &str, host: &str, object: &str) -> ImageError {
    match classify(e, reference, host) {
        Attempt::NotFound => ImageError::Registry {
            reference: reference.into(),
            registry: host.into(),
            detail: format!("{object}: not found"),
        },
        Attempt::Failed(ImageError::Registry { reference, registry, detail }) => {
            ImageError::Registry { reference, registry, detail: format!("{object}: {detail}") }
        }
        Attempt::Failed(ImageError::RegistryUnavailable { reference, registry, detail }) => {
            ImageError::RegistryUnavailable {
                reference,
                registry,
                detail: format!("failed to fetch {object}: {detail}"),
            }
        }
        Attempt::Failed(e) => e,
    }
}

fn stream_error(e: std::io::Error, reference: &str, host: &str, object: &str) -> ImageError {
    if let Some(DigestError::VerificationError { expected, actual }) =
        e.get_ref().and_then(|inner| inner.downcast_ref::<DigestError>())
    {
        return ImageError::DigestMismatch {
            reference: reference.into(),
            object: object.into(),
            expected: expected.clone(),
            actual: actual.clone(),
        };
    }
    ImageError::RegistryUnavailable {
        reference: reference.into(),
        registry: host.into(),
        detail: format!("failed to copy {object} from {host}: {}", error_chain(&e)),
    }
}

fn classify(e: OciDistributionError, reference: &str, host: &str) -> Attempt {
    let failed = |detail: String| {
        Attempt::Failed(ImageError::Registry { reference: reference.into(), registry: host.into(), detail })
    };
    let unauthorized = |detail: String| {
        Attempt::Failed(ImageError::Unauthorized { reference: reference.into(), registry: host.into(), detail })
    };
    match e {
        OciDistributionError::RegistryError { envelope, url } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let message = envelope.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ");
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                Attempt::NotFound
            } else if codes.iter().any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                unauthorized(format!("server message: {message}"))
            } else {
                failed(format!("{url}: {message}"))
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => Attempt::NotFound,
        OciDistributionError::ServerError { code: 401 | 403, url, .. }
        | OciDistributionError::UnauthorizedError { url } => {
            unauthorized(format!("unexpected status from GET request to {url}: 401 Unauthorized"))
        }
        OciDistributionError::AuthenticationFailure(message) => unauthorized(message),
        OciDistributionError::ServerError { code, url, message } => {
            failed(format!("unexpected status from GET request to {url}: {code} {}", message.trim()))
        }
        OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
            Attempt::Failed(ImageError::DigestMismatch {
                reference: reference.into(),
                object: "manifest".into(),
                expected,
                actual,
            })
        }
        OciDistributionError::UnsupportedMediaTypeError(media_type) => {
            Attempt::Failed(ImageError::UnsupportedMediaType { reference: reference.into(), media_type })
        }
        OciDistributionError::RequestError(e) => {
            let url = e.url().map(|u| u.to_string()).unwrap_or_else(|| format!("https://{host}/v2/"));
            let cause = if e.is_timeout() {
                format!("dial tcp {host}: i/o timeout")
            } else {
                match io_cause(&e) {
                    Some(std::io::ErrorKind::ConnectionRefused) => {
                        format!("dial tcp {host}: connect: connection refused")
                    }
                    _ => error_chain(&e),
                }
            };
            Attempt::Failed(ImageError::RegistryUnavailable {
                reference: reference.into(),
                registry: host.into(),
                detail: format!("failed to do request: Get \"{url}\": {cause}"),
            })
        }
        other => failed(other.to_string()),
    }
}

fn io_cause(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut current = Some(e);
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = error.source();
    }
    None
}

/// "a: b: c" from an error and its sources, skipping repeats (reqwest and hyper often repeat their cause).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut current = e.source();
    while let Some(error) = current {
        let text = error.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}
