//! runtime::image against real archives (scripts/build-images.sh), a real registry (testkit::Registry) and real
//! overlay mounts (needs root).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use runtime::image::{
    ImageError, ImageStore, Mirror, Reference, RegistriesConfig, RegistryAuthConfig, RegistryConfig, RegistryCredential,
};
use testkit::registry::{Registry, REGISTRY_PASSWORD, REGISTRY_USER};

const BUSYBOX: &str = "docker.io/library/busybox:latest";

/// The test images, built once per test run; with their expected id, size and manifest digest read straight from
/// the archives rather than through the code under test.
struct TestImages {
    oci: PathBuf,
    docker: PathBuf,
    id: String,
    size: u64,
    manifest_digest: String,
}

fn images() -> &'static TestImages {
    static IMAGES: OnceLock<TestImages> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("k8rs-test-images");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-images.sh");
        let status = Command::new(&script).arg(&out).status().expect("cannot run scripts/build-images.sh");
        assert!(status.success(), "scripts/build-images.sh failed");
        let docker = out.join("busybox.docker.tar");
        let files = tar_files(&docker);
        let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        let config_file = manifest[0]["Config"].as_str().unwrap();
        let layer_file = manifest[0]["Layers"][0].as_str().unwrap();
        let oci = out.join("busybox.oci.tar");
        let index: serde_json::Value = serde_json::from_slice(&tar_files(&oci)["index.json"]).unwrap();
        TestImages {
            id: format!("sha256:{}", config_file.trim_end_matches(".json")),
            size: files[layer_file].len() as u64,
            manifest_digest: index["manifests"][0]["digest"].as_str().unwrap().to_string(),
            oci,
            docker,
        }
    })
}

fn tar_files(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().trim_start_matches("./").to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(name, bytes);
    }
    files
}

fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn open_store(dir: &Path, registries: RegistriesConfig) -> ImageStore {
    ImageStore::open(dir.join("images"), registries).expect("open image store")
}

fn mirror_config(registry: &str, endpoint: String) -> RegistriesConfig {
    let mut config = RegistriesConfig::default();
    config.mirrors.insert(registry.into(), Mirror { endpoint: vec![endpoint] });
    config
}

fn registry_with_busybox() -> Registry {
    let registry = Registry::start();
    registry.push_oci_archive(&images().oci, "library/busybox:latest");
    registry
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

#[test]
fn references_normalise_as_docker_does() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let cases = [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("foo/bar", "docker.io/foo/bar:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/foo/bar:v1", "docker.io/foo/bar:v1"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("localhost/x:y", "localhost/x:y"),
        ("127.0.0.1:5000/library/busybox:latest", "127.0.0.1:5000/library/busybox:latest"),
        ("quay.io/a/b/c:1.0-rc_1", "quay.io/a/b/c:1.0-rc_1"),
    ];
    for (input, full) in cases {
        assert_eq!(Reference::parse(input).unwrap().to_string(), full, "{input}");
    }
    let by_digest = Reference::parse(&format!("busybox@{digest}")).unwrap();
    assert_eq!(by_digest.to_string(), format!("docker.io/library/busybox@{digest}"));
    assert_eq!((by_digest.tag, by_digest.digest), (None, Some(digest.clone())));
    let r = Reference::parse("localhost:5000/a/b:t").unwrap();
    assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("localhost:5000", "a/b", Some("t")));

    for (input, problem) in [
        ("", "empty"),
        ("Busybox", "lowercase"),
        ("busybox:", "invalid tag"),
        ("busybox@sha256:abc", "64 lowercase hex"),
        ("busybox@md5:abc", "unsupported digest algorithm"),
        ("foo//bar", "invalid repository name component"),
        ("host:99999/x", "invalid registry port"),
        ("bad name", "whitespace"),
    ] {
        match Reference::parse(input) {
            Err(e @ ImageError::InvalidReference { .. }) => {
                assert!(e.to_string().contains(problem), "{input:?}: {e}")
            }
            other => panic!("{input:?}: expected InvalidReference, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn import_oci_and_docker_archives() {
    let expected = images();
    for archive in [&expected.oci, &expected.docker] {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path(), RegistriesConfig::default());
        let started = Instant::now();
        let imported = store.import(archive).await.unwrap();
        eprintln!("import {} took {:?}", archive.display(), started.elapsed());
        assert_eq!(imported.len(), 1);
        let list = store.list().await.unwrap();
        assert_eq!(list.len(), 1);
        let image = &list[0];
        assert_eq!(image.repo_tags, [BUSYBOX]);
        assert_eq!(image.id, expected.id);
        assert_eq!(image.size, expected.size);
        assert_eq!(image.config.cmd, ["sh"]);
        assert_eq!(image.config.env, ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"]);
        assert_eq!(store.resolve("busybox").await.unwrap().as_ref(), Some(image));
        assert_eq!(store.resolve(&expected.id[7..19]).await.unwrap().as_ref(), Some(image));
        assert_eq!(store.resolve("busybox:other").await.unwrap(), None);
    }
}

#[tokio::test]
async fn gzip_archive_and_bad_archives() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("busybox.oci.tar.gz");
    let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut std::fs::File::open(&images().oci).unwrap(), &mut encoder).unwrap();
    encoder.finish().unwrap();
    let store = open_store(dir.path(), RegistriesConfig::default());
    let imported = store.import(&gz).await.unwrap();
    assert_eq!(imported[0].repo_digests, [format!("docker.io/library/busybox@{}", images().manifest_digest)]);

    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, b"not a tar at all").unwrap();
    let err = store.import(&junk).await.unwrap_err();
    assert!(matches!(err, ImageError::InvalidArchive { .. }), "{err}");
}

#[tokio::test]
async fn pull_through_docker_io_mirror_and_directly() {
    tls();
    let registry = registry_with_busybox();
    let expected = images();

    // The first mirror is down: the next one serves the image.
    let mut down = Registry::start();
    down.kill();
    let mut config = RegistriesConfig::default();
    config.mirrors.insert("docker.io".into(), Mirror { endpoint: vec![down.endpoint(), registry.endpoint()] });
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), config);
    let started = Instant::now();
    let image = store.pull("busybox", &[]).await.unwrap();
    eprintln!("pull of busybox through the mirror took {:?}", started.elapsed());
    assert_eq!(image.id, expected.id);
    assert_eq!(image.size, expected.size);
    assert_eq!(image.repo_tags, [BUSYBOX]);
    assert_eq!(image.repo_digests, [format!("docker.io/library/busybox@{}", expected.manifest_digest)]);
    assert_eq!(store.resolve(&image.repo_digests[0]).await.unwrap(), Some(image.clone()));

    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), RegistriesConfig::default());
    let direct = format!("{}/library/busybox:latest", registry.host());
    let started = Instant::now();
    let image = store.pull(&direct, &[]).await.unwrap();
    eprintln!("direct pull of busybox took {:?}", started.elapsed());
    assert_eq!(image.repo_tags, [direct.as_str()]);
    assert_eq!(image.id, expected.id);
    // Again: the layer is already unpacked, so only the manifest and config travel.
    let started = Instant::now();
    let again = store.pull(&direct, &[]).await.unwrap();
    eprintln!("repeated pull of busybox took {:?}", started.elapsed());
    assert_eq!(again, image);
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn pull_by_digest() {
    tls();
    let registry = registry_with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), RegistriesConfig::default());
    let by_digest = format!("{}/library/busybox@{}", registry.host(), images().manifest_digest);
    let image = store.pull(&by_digest, &[]).await.unwrap();
    assert!(image.repo_tags.is_empty());
    assert_eq!(image.repo_digests, [by_digest.as_str()]);
    assert_eq!(store.resolve(&by_digest).await.unwrap().map(|i| i.id), Some(images().id.clone()));
    // Tag and digest: the digest decides, the tag is recorded.
    let both = format!("{}/library/busybox:pinned@{}", registry.host(), images().manifest_digest);
    let image = store.pull(&both, &[]).await.unwrap();
    assert_eq!(image.repo_tags, [format!("{}/library/busybox:pinned", registry.host())]);
    assert!(store.resolve(&both).await.unwrap().is_some());

    // A digest the registry does not have.
    let missing = format!("{}/library/busybox@sha256:{}", registry.host(), "0".repeat(64));
    let err = store.pull(&missing, &[]).await.unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn concurrent_pulls_of_one_image() {
    tls();
    let registry = registry_with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), RegistriesConfig::default());
    let reference = format!("{}/library/busybox:latest", registry.host());
    let pulls: Vec<_> = (0..4)
        .map(|_| {
            let (store, reference) = (store.clone(), reference.clone());
            tokio::spawn(async move { store.pull(&reference, &[]).await })
        })
        .collect();
    for pull in pulls {
        assert_eq!(pull.await.unwrap().unwrap().id, images().id);
    }
    assert_eq!(store.list().await.unwrap().len(), 1);
    assert_eq!(files_under(&dir.path().join("images/layers/sha256")).len(), 1);
    assert!(files_under(&dir.path().join("images/tmp")).is_empty());
}

#[tokio::test]
async fn missing_image_is_not_found_in_containerd_words() {
    tls();
    let registry = registry_with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), RegistriesConfig::default());
    for repository in ["library/nope", "library/busybox:nope"] {
        let reference = format!("{}/{repository}", registry.host());
        let full = Reference::parse(&reference).unwrap().to_string();
        let err = store.pull(&reference, &[]).await.unwrap_err();
        assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "failed to pull and unpack image \"{full}\": failed to resolve reference \"{full}\": {full}: not found"
            )
        );
    }
}

#[tokio::test]
async fn registry_down_names_the_address() {
    tls();
    let mut registry = Registry::start();
    let host = registry.host();
    registry.kill();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), mirror_config("docker.io", registry.endpoint()));
    let err = store.pull(&format!("{host}/library/busybox:latest"), &[]).await.unwrap_err();
    match &err {
        ImageError::RegistryUnavailable { registry, .. } => assert_eq!(registry, &host),
        other => panic!("expected RegistryUnavailable, got {other:?}"),
    }
    let message = err.to_string();
    eprintln!("{message}");
    assert!(message.contains(&host) && message.contains("connection refused"), "{message}");
}

#[tokio::test]
async fn corrupted_layer_is_refused_and_nothing_is_stored() {
    tls();
    let registry = registry_with_busybox();
    let files = tar_files(&images().oci);
    let manifest: serde_json::Value =
        serde_json::from_slice(&files[&format!("blobs/sha256/{}", &images().manifest_digest[7..])]).unwrap();
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    // Same size, one byte changed, in the registry's own storage.
    let blob = registry.blob_path(layer_digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), RegistriesConfig::default());
    let err = store.pull(&format!("{}/library/busybox:latest", registry.host()), &[]).await.unwrap_err();
    eprintln!("{err}");
    match &err {
        ImageError::DigestMismatch { expected, .. } => assert_eq!(expected, layer_digest),
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert!(store.list().await.unwrap().is_empty());
    for sub in ["blobs/sha256", "layers/sha256", "tmp"] {
        assert!(files_under(&dir.path().join("images").join(sub)).is_empty(), "{sub} is not empty");
    }
}

#[tokio::test]
async fn credentials_from_pod_secrets_and_registries_yaml() {
    tls();
    let registry = Registry::start_with_auth();
    registry.push_oci_archive(&images().oci, "library/busybox:latest");
    let reference = format!("{}/library/busybox:latest", registry.host());

    let dir = tempfile::tempdir().unwrap();
    let anonymous = open_store(dir.path(), RegistriesConfig::default());
    let err = anonymous.pull(&reference, &[]).await.unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("pull access denied"), "{err}");

    let secret = format!(
        r#"{{"auths":{{"{}":{{"username":"{REGISTRY_USER}","password":"{REGISTRY_PASSWORD}"}}}}}}"#,
        registry.host()
    );
    let credentials = runtime::image::credentials_from_docker_config(secret.as_bytes()).unwrap();
    assert_eq!(anonymous.pull(&reference, &credentials).await.unwrap().id, images().id);

    let wrong =
        [RegistryCredential { registry: registry.host(), username: REGISTRY_USER.into(), password: "wrong".into() }];
    let err = anonymous.pull(&reference, &wrong).await.unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");

    let mut config = RegistriesConfig::default();
    let auth = RegistryAuthConfig {
        username: Some(REGISTRY_USER.into()),
        password: Some(REGISTRY_PASSWORD.into()),
        auth: None,
    };
    config.configs.insert(registry.host(), RegistryConfig { auth: Some(auth), tls: None });
    let dir = tempfile::tempdir().unwrap();
    let configured = open_store(dir.path(), config);
    assert_eq!(configured.pull(&reference, &[]).await.unwrap().id, images().id);
}

/// Unmounts (lazily) on drop, so a failing test leaves no mount behind.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let path = std::ffi::CString::new(self.0.join("rootfs").to_string_lossy().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; failure (not mounted) is fine.
        unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
    }
}

#[tokio::test]
async fn rootfs_overlay_reads_lower_and_writes_upper() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), RegistriesConfig::default());
    let image = store.import(&images().oci).await.unwrap().remove(0);
    let container = dir.path().join("containers/c1");
    let _guard = MountGuard(container.clone());
    let started = Instant::now();
    let rootfs = store.mount_rootfs(&image, &container).await.unwrap();
    eprintln!("mount_rootfs took {:?}", started.elapsed());
    assert_eq!(rootfs, container.join("rootfs").canonicalize().unwrap());
    assert_eq!(std::fs::read(rootfs.join("bin/busybox")).unwrap(), std::fs::read("/bin/busybox").unwrap());
    assert_eq!(std::fs::read_link(rootfs.join("bin/sh")).unwrap(), Path::new("busybox"));
    std::fs::write(rootfs.join("hello"), "hi").unwrap();
    assert_eq!(std::fs::read_to_string(container.join("upper/hello")).unwrap(), "hi");
    let layer = dir.path().join("images/layers/sha256").join(&image.diff_ids[0][7..]);
    assert!(layer.join("bin/busybox").is_file() && !layer.join("hello").exists());
    // A restarted kubelet mounts again: same answer, no second mount.
    assert_eq!(store.mount_rootfs(&image, &container).await.unwrap(), rootfs);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(mounts.lines().filter(|l| l.contains(&*rootfs.to_string_lossy())).count(), 1);

    let err = store.remove(BUSYBOX).await.unwrap_err();
    assert!(matches!(err, ImageError::InUse { .. }), "{err}");
    assert!(store.resolve(BUSYBOX).await.unwrap().is_some());

    store.unmount_rootfs(&container).await.unwrap();
    assert!(!container.exists());
    store.unmount_rootfs(&container).await.unwrap();
    store.remove(BUSYBOX).await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
    assert!(!layer.exists());
    assert!(files_under(&dir.path().join("images/blobs/sha256")).is_empty());
    let err = store.remove(BUSYBOX).await.unwrap_err();
    assert!(matches!(err, ImageError::NoSuchImage { .. }), "{err}");
}

#[tokio::test]
async fn remove_untags_until_the_last_tag() {
    tls();
    let registry = registry_with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), mirror_config("docker.io", registry.endpoint()));
    store.import(&images().docker).await.unwrap();
    let direct = format!("{}/library/busybox:latest", registry.host());
    let image = store.pull(&direct, &[]).await.unwrap();
    assert_eq!(image.repo_tags, [BUSYBOX.to_string(), direct.clone()]);
    store.remove("busybox").await.unwrap();
    let left = store.resolve(&direct).await.unwrap().unwrap();
    assert_eq!(left.repo_tags, [direct.as_str()]);
    assert!(store.resolve("busybox").await.unwrap().is_none());
    store.remove(&direct).await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
    assert!(files_under(&dir.path().join("images/layers/sha256")).is_empty());
}

// A two-layer image built here: the upper layer deletes a/gone with a whiteout and makes op/ opaque.
fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match content {
            Some(content) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, path, content.as_bytes()).unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    format!("sha256:{}", digest.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Blobs of a one-platform image with uncompressed `layers` (bottom first): returns the manifest's descriptor
/// fields (digest, size) and appends layers, config and manifest to `blobs`.
fn image_blobs(layers: &[Vec<u8>], architecture: &str, blobs: &mut Vec<Vec<u8>>) -> (String, usize) {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let config = serde_json::json!({"architecture": architecture, "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let config = serde_json::to_vec(&config).unwrap();
    let layer_descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(l),
                "size": l.len()})
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config),
            "size": config.len()},
        "layers": layer_descriptors}))
    .unwrap();
    let descriptor = (sha256(&manifest), manifest.len());
    blobs.extend(layers.iter().cloned());
    blobs.push(config);
    blobs.push(manifest);
    descriptor
}

/// An OCI layout tar whose index.json lists one entry named `name` (`org.opencontainers.image.ref.name`).
fn write_layout(path: &Path, name: &str, media_type: &str, (digest, size): (String, usize), blobs: &[Vec<u8>]) {
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": media_type, "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": name}}]}))
    .unwrap();
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        builder.append_data(&mut header, name, bytes).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for blob in blobs {
        add(&format!("blobs/sha256/{}", &sha256(blob)[7..]), blob);
    }
    builder.finish().unwrap();
}

/// An OCI layout tar of one linux/amd64 image with uncompressed `layers` (bottom first), named `name`.
fn oci_archive(path: &Path, name: &str, layers: &[Vec<u8>]) {
    let mut blobs = Vec::new();
    let manifest = image_blobs(layers, "amd64", &mut blobs);
    write_layout(path, name, "application/vnd.oci.image.manifest.v1+json", manifest, &blobs);
}

/// An index with arm64 listed before amd64: import and pull both take the amd64 image, and the repo digest is the
/// index's.
#[tokio::test]
async fn multi_platform_index_picks_this_nodes_platform() {
    tls();
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Vec::new();
    let arm = image_blobs(&[layer(&[("arch", Some("arm64"))])], "arm64", &mut blobs);
    let amd_layer = layer(&[("arch", Some("amd64"))]);
    let amd = image_blobs(std::slice::from_ref(&amd_layer), "amd64", &mut blobs);
    let entry = |(digest, size): &(String, usize), arch: &str| {
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
            "size": size, "platform": {"architecture": arch, "os": "linux"}})
    };
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&arm, "arm64"), entry(&amd, "amd64")]}))
    .unwrap();
    let index_digest = sha256(&index);
    let index_size = index.len();
    blobs.push(index);
    let archive = dir.path().join("multi.tar");
    write_layout(
        &archive,
        "multi:v1",
        "application/vnd.oci.image.index.v1+json",
        (index_digest.clone(), index_size),
        &blobs,
    );

    let store = open_store(&dir.path().join("imported"), RegistriesConfig::default());
    let imported = store.import(&archive).await.unwrap().remove(0);
    assert_eq!(imported.diff_ids, [sha256(&amd_layer)]);
    assert_eq!(imported.repo_digests, [format!("docker.io/library/multi@{index_digest}")]);

    let registry = Registry::start();
    registry.push_oci_archive(&archive, "library/multi:v1");
    let store = open_store(&dir.path().join("pulled"), mirror_config("docker.io", registry.endpoint()));
    let pulled = store.pull("multi:v1", &[]).await.unwrap();
    assert_eq!(pulled.id, imported.id);
    assert_eq!(pulled.repo_digests, [format!("docker.io/library/multi@{index_digest}")]);
    let container = dir.path().join("c");
    let _guard = MountGuard(container.clone());
    let rootfs = store.mount_rootfs(&pulled, &container).await.unwrap();
    assert_eq!(std::fs::read_to_string(rootfs.join("arch")).unwrap(), "amd64");
    store.unmount_rootfs(&container).await.unwrap();
}

#[tokio::test]
async fn whiteouts_hide_lower_files_and_opaque_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("whiteout.tar");
    let lower = layer(&[
        ("a", None),
        ("a/keep", Some("kept")),
        ("a/gone", Some("deleted above")),
        ("op", None),
        ("op/old", Some("hidden by opaque")),
    ]);
    let upper =
        layer(&[("a/.wh.gone", Some("")), ("op", None), ("op/.wh..wh..opq", Some("")), ("op/new", Some("new"))]);
    oci_archive(&archive, "whiteout:v1", &[lower, upper]);

    let store = open_store(dir.path(), RegistriesConfig::default());
    let image = store.import(&archive).await.unwrap().remove(0);
    assert_eq!(image.repo_tags, ["docker.io/library/whiteout:v1"]);
    let container = dir.path().join("c");
    let _guard = MountGuard(container.clone());
    let rootfs = store.mount_rootfs(&image, &container).await.unwrap();
    assert_eq!(std::fs::read_to_string(rootfs.join("a/keep")).unwrap(), "kept");
    assert!(!rootfs.join("a/gone").exists(), "whiteout did not hide a/gone");
    assert!(!rootfs.join("op/old").exists(), "opaque directory shows lower content");
    assert_eq!(std::fs::read_to_string(rootfs.join("op/new")).unwrap(), "new");

    // In the unpacked upper layer: a 0/0 character device and the opaque xattr, as overlayfs expects.
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let upper_dir = dir.path().join("images/layers/sha256").join(&image.diff_ids[1][7..]);
    let whiteout = std::fs::symlink_metadata(upper_dir.join("a/gone")).unwrap();
    assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
    assert!(!upper_dir.join("a/.wh.gone").exists());
    let mut value = [0u8; 4];
    let path = std::ffi::CString::new(upper_dir.join("op").to_string_lossy().as_bytes()).unwrap();
    // SAFETY: valid path and name, value buffer with its length.
    let n = unsafe {
        libc::lgetxattr(path.as_ptr(), c"trusted.overlay.opaque".as_ptr(), value.as_mut_ptr().cast(), value.len())
    };
    assert_eq!(&value[..n.max(0) as usize], b"y");
    store.unmount_rootfs(&container).await.unwrap();
}

#[tokio::test]
async fn hostile_layers_cannot_write_outside() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    // A symlink to a directory outside, then a file through it.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    builder.append_link(&mut header, "escape", &outside).unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_mode(0o644);
    header.set_size(4);
    builder.append_data(&mut header, "escape/pwned", &b"evil"[..]).unwrap();
    let hostile = builder.into_inner().unwrap();
    let archive = dir.path().join("hostile.tar");
    oci_archive(&archive, "hostile:v1", &[hostile]);

    let store = open_store(dir.path(), RegistriesConfig::default());
    let err = store.import(&archive).await.unwrap_err();
    assert!(matches!(err, ImageError::InvalidArchive { .. }), "{err}");
    assert!(!outside.join("pwned").exists());
    assert!(store.list().await.unwrap().is_empty());
    assert!(files_under(&dir.path().join("images/layers/sha256")).is_empty());
}

#[test]
fn build_images_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-images.sh");
    let status = Command::new(&script).arg(dir.path()).status().unwrap();
    assert!(status.success());
    for name in ["busybox.oci.tar", "busybox.docker.tar"] {
        assert_eq!(
            std::fs::read(dir.path().join(name)).unwrap(),
            std::fs::read(images().oci.with_file_name(name)).unwrap(),
            "{name}"
        );
    }
}

/// Archives written by another tool: skopeo's `docker-archive` (docker save layout) and its `oci-archive`, whose
/// ref.name annotation is a short name (`busybox:1.36`) that must normalise.
#[tokio::test]
async fn imports_what_skopeo_writes() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("oci-archive:{}:latest", images().oci.display());
    let cases = [
        ("docker-archive", "busybox:1.36", "docker.io/library/busybox:1.36"),
        ("oci-archive", "busybox:1.36", "docker.io/library/busybox:1.36"),
        ("oci-archive", "example.com/tools/busybox:v1", "example.com/tools/busybox:v1"),
    ];
    for (i, (transport, name, full)) in cases.iter().enumerate() {
        let archive = dir.path().join(format!("{i}.tar"));
        let output = Command::new("skopeo")
            .args(["copy", "--quiet", &source, &format!("{transport}:{}:{name}", archive.display())])
            .output()
            .expect("cannot run skopeo");
        assert!(output.status.success(), "skopeo: {}", String::from_utf8_lossy(&output.stderr));
        let store = open_store(&dir.path().join(i.to_string()), RegistriesConfig::default());
        let imported = store.import(&archive).await.unwrap();
        assert_eq!(imported.len(), 1);
        assert_eq!(imported[0].repo_tags, [*full], "{transport}");
        assert_eq!(imported[0].id, images().id, "{transport}");
        assert_eq!(imported[0].size, images().size, "{transport}");
    }
}
