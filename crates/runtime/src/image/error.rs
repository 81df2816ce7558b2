use std::path::PathBuf;

/// Everything that can go wrong with images. Pull errors read like containerd's, because the kubelet shows them to
/// users as the pod's ErrImagePull message.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("failed to parse image reference \"{reference}\": {reason}")]
    InvalidReference { reference: String, reason: String },

    /// Every registry endpoint said the manifest or repository is unknown.
    #[error(
        "failed to pull and unpack image \"{reference}\": failed to resolve reference \"{reference}\": \
         {reference}: not found"
    )]
    NotFound { reference: String },

    #[error(
        "failed to pull and unpack image \"{reference}\": failed to resolve reference \"{reference}\": pull access \
         denied, repository does not exist or may require authorization: {registry}: {detail}"
    )]
    Unauthorized { reference: String, registry: String, detail: String },

    /// Connection refused, DNS failure, timeout: `detail` names the URL and the cause.
    #[error("failed to pull and unpack image \"{reference}\": {detail}")]
    RegistryUnavailable { reference: String, registry: String, detail: String },

    /// The registry answered with something else (a 5xx, a malformed answer).
    #[error("failed to pull and unpack image \"{reference}\": {registry}: {detail}")]
    Registry { reference: String, registry: String, detail: String },

    /// Content did not hash to the digest that names it; nothing of it was stored.
    #[error(
        "failed to pull and unpack image \"{reference}\": {object}: unexpected digest {actual}, expected {expected}"
    )]
    DigestMismatch { reference: String, object: String, expected: String, actual: String },

    #[error("failed to pull and unpack image \"{reference}\": unsupported media type {media_type}")]
    UnsupportedMediaType { reference: String, media_type: String },

    /// A manifest, config or layer from a registry that cannot be used (bad JSON, no matching platform, bad tar).
    #[error("failed to pull and unpack image \"{reference}\": {detail}")]
    InvalidImage { reference: String, detail: String },

    #[error("failed to import \"{}\": {detail}", path.display())]
    InvalidArchive { path: PathBuf, detail: String },

    /// No local image has this reference, digest or id.
    #[error("no such image: {reference}")]
    NoSuchImage { reference: String },

    #[error("image \"{reference}\" is in use: {detail}")]
    InUse { reference: String, detail: String },

    /// registries.yaml or a dockerconfigjson secret that cannot be read.
    #[error("invalid registry configuration {source_name}: {detail}")]
    Config { source_name: String, detail: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }
}

/// A blocking task that panicked or was cancelled: only possible at runtime shutdown.
pub(crate) fn join_error(e: tokio::task::JoinError) -> ImageError {
    ImageError::Io { context: "image store task failed".into(), source: std::io::Error::other(e) }
}
