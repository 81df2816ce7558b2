use std::path::PathBuf;

/// Why a CNI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("no CNI network configuration (*.conflist, *.conf, *.json) in {0}")]
    NoConfig(PathBuf),
    #[error("invalid CNI network configuration {path}: {reason}")]
    InvalidConfig { path: PathBuf, reason: String },
    #[error("CNI plugin {plugin:?} not found in {dirs:?}")]
    PluginNotFound { plugin: String, dirs: Vec<PathBuf> },
    #[error("CNI plugin {plugin} failed (code {code}): {msg}{}", details_suffix(details))]
    Plugin { plugin: String, code: u32, msg: String, details: String },
    #[error("CNI plugin {plugin} returned an unusable result: {reason}")]
    BadResult { plugin: String, reason: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl CniError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CniError::Io { context: context.into(), source }
    }
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}
