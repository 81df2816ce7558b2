//! The revisioned key-value store that everything in k8rs sits on: etcd v3 semantics behind one `Store`
//! trait, with three backends (embedded SQLite, a real etcd cluster, and memory for tests of other crates).
//!
//! This crate knows nothing about Kubernetes objects: keys are strings, values are opaque bytes. It must not
//! grow API-server logic (encoding, defaulting, watch caches); those live in `apiserver`.

mod compactor;
mod error;
pub mod etcd;
mod hub;
pub mod memory;
pub mod sqlite;
mod sqlite_memory;

use std::sync::Arc;
use std::time::Duration;

pub use compactor::{spawn_compactor, CompactorHandle};
pub use error::StoreError;
pub use hub::Watcher;

/// A global, strictly increasing 64-bit revision, as etcd's. Every successful write gets the next one.
pub type Revision = i64;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Values larger than this are refused unless a backend is configured otherwise (etcd's default request limit).
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1536 * 1024;

/// History older than this is compacted away by default.
pub const DEFAULT_COMPACTION_WINDOW: Duration = Duration::from_secs(5 * 60);

/// One key at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision at which the key was (last) created.
    pub create_revision: Revision,
    /// Revision of the write that produced this value; an object's resourceVersion.
    pub mod_revision: Revision,
}

/// Which part of the keyspace, at which revision, how much of it.
#[derive(Clone, Debug, Default)]
pub struct RangeRequest {
    /// Every key that starts with this prefix.
    pub prefix: String,
    /// Continue after this key (exclusive): the last key of the previous page.
    pub start_after: Option<String>,
    /// At most this many keys; 0 means all.
    pub limit: usize,
    /// Read the keyspace as it was at this revision; 0 means the current revision.
    pub revision: Revision,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// True when keys beyond `limit` remain in the range.
    pub more: bool,
    /// How many keys the whole range holds after `start_after`, this page included.
    pub count: u64,
    /// The revision the range was read at (the store's current one when the request said 0).
    pub revision: Revision,
}

/// One change seen by a watcher. For a delete, `kv` carries the key, empty value and the delete's revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    /// The value the key held before this change, if it existed.
    pub prev: Option<KeyValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// What a watcher yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMessage {
    /// Changes in revision order; all events of one revision arrive in one message.
    Events(Vec<Event>),
    /// Every change up to this revision has been delivered (the API server's watch BOOKMARKs).
    Progress(Revision),
}

/// The storage contract (etcd v3 semantics). See ARCHITECTURE.md, "The storage contract".
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The key as of `revision` (0 = current). `Compacted` if that revision is gone.
    async fn get(&self, key: &str, revision: Revision) -> Result<Option<KeyValue>>;

    /// Keys under a prefix in key order, at one revision, a page at a time.
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse>;

    /// Writes `key` only if it does not exist; `AlreadyExists` otherwise. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision>;

    /// Writes `key` only if its current mod revision is `expected`: `Conflict` (with the current value) if it
    /// changed, `NotFound` if it is gone. Returns the new revision.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision>;

    /// Deletes `key`, if `expected` is given only at that mod revision. Returns the delete's revision and the
    /// value that was deleted.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)>;

    /// Every change under `prefix` from `start_revision` (inclusive; 0 = from now on), in order, with the
    /// previous values. `Compacted` if that history is gone.
    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<Watcher>;

    /// Forgets history before `revision`: reads below it, and watches that start at or below it, then fail with
    /// `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The revision of the latest write.
    async fn current_revision(&self) -> Result<Revision>;

    /// The revision history has been compacted to (0 if never).
    async fn compacted_revision(&self) -> Result<Revision>;
}

pub type DynStore = Arc<dyn Store>;

/// The key just past every key that starts with `prefix`: the exclusive end of a prefix range, or `None` when
/// the range runs to the end of the keyspace (an empty prefix).
pub(crate) fn prefix_end(prefix: &str) -> Option<Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

pub(crate) fn check_value_size(key: &str, value: &[u8], limit: usize) -> Result<()> {
    if value.len() > limit {
        return Err(StoreError::ValueTooLarge { key: key.to_string(), size: value.len(), limit });
    }
    Ok(())
}

/// Where the data lives, as `--datastore-endpoint` spells it: empty for SQLite in the data directory,
/// `sqlite:///path/to/file.db`, or etcd endpoints `http://host:2379,http://host2:2379`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datastore {
    Sqlite(std::path::PathBuf),
    Etcd(Vec<String>),
}

impl Datastore {
    /// Parses an endpoint; `default_sqlite` is the file used when it is empty.
    pub fn parse(endpoint: &str, default_sqlite: &std::path::Path) -> Result<Datastore, String> {
        let endpoint = endpoint.trim();
        if endpoint.is_empty() {
            return Ok(Datastore::Sqlite(default_sqlite.to_path_buf()));
        }
        if let Some(path) = endpoint.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(format!("datastore endpoint {endpoint:?} names no file"));
            }
            return Ok(Datastore::Sqlite(path.into()));
        }
        let endpoints: Vec<String> = endpoint.split(',').map(|e| e.trim().to_string()).collect();
        for e in &endpoints {
            let rest = e
                .strip_prefix("http://")
                .ok_or_else(|| format!("datastore endpoint {e:?} is neither sqlite://FILE nor http://HOST:PORT"))?;
            let port = rest.rsplit_once(':').map(|(_, port)| port);
            if rest.is_empty() || port.is_none_or(|p| p.parse::<u16>().is_err()) {
                return Err(format!("datastore endpoint {e:?} needs a host and a port, as http://HOST:2379"));
            }
        }
        Ok(Datastore::Etcd(endpoints))
    }

    /// Opens the store, creating the SQLite file (and its directory) if needed.
    pub async fn open(&self) -> Result<DynStore> {
        match self {
            Datastore::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| StoreError::Corrupt {
                        path: dir.to_path_buf(),
                        reason: format!("cannot create the directory: {e}"),
                    })?;
                }
                let path = path.clone();
                let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(path, Default::default()))
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))??;
                Ok(Arc::new(store))
            }
            Datastore::Etcd(endpoints) => Ok(Arc::new(etcd::EtcdStore::connect(endpoints, Default::default()).await?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn datastore_endpoints_parse() {
        let default = Path::new("/var/lib/k8rs/server/db/state.db");
        assert_eq!(Datastore::parse("", default), Ok(Datastore::Sqlite(default.into())));
        assert_eq!(Datastore::parse("sqlite:///tmp/x.db", default), Ok(Datastore::Sqlite("/tmp/x.db".into())));
        assert_eq!(
            Datastore::parse("http://10.0.0.1:2379, http://10.0.0.2:2379", default),
            Ok(Datastore::Etcd(vec!["http://10.0.0.1:2379".into(), "http://10.0.0.2:2379".into()]))
        );
        for bad in ["mysql://x", "http://", "http://host", "http://host:port", "sqlite://"] {
            let error = Datastore::parse(bad, default).unwrap_err();
            assert!(error.contains(bad.split(',').next().unwrap()), "{error}");
        }
    }

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(prefix_end("/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(""), None);
    }
}
