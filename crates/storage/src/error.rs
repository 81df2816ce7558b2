use std::path::PathBuf;

use crate::{KeyValue, Revision};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },

    #[error("key {key:?} not found")]
    NotFound { key: String },

    /// The guarded write lost a race: `current` is what the key holds now.
    #[error("key {key:?} was modified: expected revision {expected}, found {}", current.as_ref().map_or(0, |kv| kv.mod_revision))]
    Conflict { key: String, expected: Revision, current: Option<Box<KeyValue>> },

    /// The requested revision has been compacted away (the API server answers 410 Expired).
    #[error("revision {requested} has been compacted (history starts after {compacted})")]
    Compacted { requested: Revision, compacted: Revision },

    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision { requested: Revision, current: Revision },

    #[error("value for key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    ValueTooLarge { key: String, size: usize, limit: usize },

    /// The watcher fell too far behind the writers and was ended; the client must re-list.
    #[error("watcher fell too far behind and was ended; re-list and watch again")]
    WatcherTooSlow,

    #[error("database file {path} is not a usable k8rs store: {reason}")]
    Corrupt { path: PathBuf, reason: String },

    #[error("datastore {endpoints} is unreachable: {reason}")]
    Unavailable { endpoints: String, reason: String },

    #[error("the store has been closed")]
    Closed,

    #[error("storage backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Errors a caller may retry as they are, after a pause.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}
