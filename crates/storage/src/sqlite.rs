//! The default backend: a revision log in one SQLite file (WAL mode), in the manner of kine.
//!
//! Every write appends a row whose id is its revision. One writer thread owns the write connection and commits
//! whatever requests are waiting as one transaction (group commit: one fsync for many writes), then fans the
//! events out to watchers. Reads run on a small pool of read connections, each in one snapshot.
//!
//! Compaction deletes rows superseded at or before the compaction revision (each row names the row it replaced,
//! so that is a primary-key delete) and tombstones, in chunks that interleave with writes; afterwards the WAL is
//! checkpointed and truncated and free pages beyond an eighth of the file are given back, so the files stay
//! bounded by the live data and the history window.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use crate::hub::{History, Hub};
use crate::{
    check_value_size, prefix_end, Event, EventKind, KeyValue, RangeRequest, RangeResponse, Result, Revision, Store,
    StoreError, Watcher, DEFAULT_MAX_VALUE_BYTES,
};

const SCHEMA_VERSION: i64 = 1;
/// Writes committed together at most; bounds the latency one batch adds to the last write in it.
const MAX_BATCH: usize = 512;
/// How long a batch much smaller than recent ones waits for more writers (once): about two syncs of the WAL. A
/// commit costs a sync and a few hundred microseconds of CPU whatever its size; while many writers are active
/// (the API server's request handlers), committing them in fewer, larger batches leaves that CPU to the
/// handlers. A lone writer never waits: its batches are all of one.
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_micros(200);
/// Revisions compacted per writer transaction, so compaction never holds writers up for long.
const COMPACT_CHUNK: Revision = 2000;
/// Idle read connections kept open.
const READ_POOL: usize = 8;

const SCHEMA: &str = "
    CREATE TABLE kv (
        id INTEGER PRIMARY KEY,
        name BLOB NOT NULL,
        create_revision INTEGER NOT NULL,
        prev_revision INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        value BLOB NOT NULL
    );
    CREATE INDEX kv_name_id ON kv (name, id);
    CREATE TABLE k8rs_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

#[derive(Clone, Debug)]
pub struct SqliteOptions {
    pub max_value_bytes: usize,
    /// Messages a watcher may have queued before it is ended as too slow.
    pub watch_capacity: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { max_value_bytes: DEFAULT_MAX_VALUE_BYTES, watch_capacity: 1000 }
    }
}

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<mpsc::Sender<WriteRequest>>,
    readers: Mutex<Vec<Connection>>,
    hub: Arc<Hub>,
    current: Arc<AtomicI64>,
    compacted: Arc<AtomicI64>,
    options: SqliteOptions,
}

enum Op {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    /// Compacts the next chunk of history up to this revision.
    CompactChunk {
        upto: Revision,
    },
    /// After a compaction: checkpoint and truncate the WAL, give back free pages.
    Maintenance,
}

enum Outcome {
    Written(Event),
    Compacted(Revision),
    Done,
}

struct WriteRequest {
    op: Op,
    reply: oneshot::Sender<Result<Outcome>>,
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl SqliteStore {
    /// Opens the store in `path`, creating it if the file does not exist (or is empty).
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        crate::sqlite_memory::use_global_allocator();
        let path = path.as_ref().to_path_buf();
        let corrupt = |reason: String| StoreError::Corrupt { path: path.clone(), reason };
        let writer = open_connection(&path).map_err(|e| corrupt(e.to_string()))?;
        let (current, compacted) = prepare(&writer).map_err(|e| match e {
            PrepareError::Sqlite(e) => corrupt(e.to_string()),
            PrepareError::Foreign(reason) => corrupt(reason),
        })?;
        let current = Arc::new(AtomicI64::new(current));
        let compacted = Arc::new(AtomicI64::new(compacted));
        let hub = Hub::new(current.load(Ordering::SeqCst), options.watch_capacity);
        let (tx, rx) = mpsc::channel();
        let mut state =
            WriterState { conn: writer, current: current.clone(), compacted: compacted.clone(), hub: hub.clone() };
        std::thread::Builder::new()
            .name("k8rs-sqlite-writer".into())
            .spawn(move || state.run(rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(tx),
                readers: Mutex::new(Vec::new()),
                hub,
                current,
                compacted,
                options,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write(&self, op: Op) -> Result<Outcome> {
        let (reply, rx) = oneshot::channel();
        self.inner.writer.lock().unwrap().send(WriteRequest { op, reply }).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn write_event(&self, op: Op) -> Result<Event> {
        match self.write(op).await? {
            Outcome::Written(event) => Ok(event),
            _ => Err(StoreError::Backend("writer answered a write with no event".into())),
        }
    }
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

enum PrepareError {
    Sqlite(rusqlite::Error),
    Foreign(String),
}

impl From<rusqlite::Error> for PrepareError {
    fn from(e: rusqlite::Error) -> Self {
        PrepareError::Sqlite(e)
    }
}

/// Checks (or lays out) the schema and returns the current and compacted revisions.
fn prepare(conn: &Connection) -> std::result::Result<(Revision, Revision), PrepareError> {
    // Reading the schema is the first access: a file that is not SQLite fails here with "not a database".
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if tables.is_empty() {
        // auto_vacuum must be chosen before the first table exists.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
    }
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(PrepareError::Foreign(format!("cannot switch to WAL mode (got {mode})")));
    }
    // FULL: a commit is on disk (WAL fsynced) before it is acknowledged.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 67108864;")?;
    if tables.is_empty() {
        conn.execute_batch(SCHEMA)?;
        conn.execute(
            "INSERT INTO k8rs_meta (name, value) VALUES ('schema', ?1), ('current', 0), ('compacted', 0)",
            [SCHEMA_VERSION],
        )?;
    } else if !tables.iter().any(|t| t == "k8rs_meta") {
        return Err(PrepareError::Foreign(format!(
            "it is a SQLite database of something else (tables: {})",
            tables.join(", ")
        )));
    }
    let check: String = conn.query_row("PRAGMA quick_check(1)", [], |row| row.get(0))?;
    if check != "ok" {
        return Err(PrepareError::Foreign(format!("integrity check failed: {check}")));
    }
    let meta = |name: &str| -> std::result::Result<i64, PrepareError> {
        conn.query_row("SELECT value FROM k8rs_meta WHERE name = ?1", [name], |row| row.get(0))
            .optional()?
            .ok_or_else(|| PrepareError::Foreign(format!("k8rs_meta has no {name:?} entry")))
    };
    let schema = meta("schema")?;
    if schema != SCHEMA_VERSION {
        return Err(PrepareError::Foreign(format!(
            "schema version {schema}, this k8rs reads version {SCHEMA_VERSION}"
        )));
    }
    Ok((meta("current")?, meta("compacted")?))
}

/// The sizes of the last commits' batches.
struct RecentBatches {
    sizes: [usize; 64],
    next: usize,
}

impl Default for RecentBatches {
    fn default() -> Self {
        RecentBatches { sizes: [0; 64], next: 0 }
    }
}

impl RecentBatches {
    fn record(&mut self, size: usize) {
        self.sizes[self.next] = size;
        self.next = (self.next + 1) % self.sizes.len();
    }

    fn largest(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0)
    }
}

/// The writer thread's state: it alone writes, so it alone advances revisions.
struct WriterState {
    conn: Connection,
    current: Arc<AtomicI64>,
    compacted: Arc<AtomicI64>,
    hub: Arc<Hub>,
}

/// The newest row of a key.
struct Latest {
    revision: Revision,
    create_revision: Revision,
    deleted: bool,
    value: Vec<u8>,
}

impl WriterState {
    fn run(&mut self, rx: mpsc::Receiver<WriteRequest>) {
        let drain = |batch: &mut Vec<WriteRequest>| {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
        };
        let mut recent = RecentBatches::default();
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            drain(&mut batch);
            if batch.len() * 2 <= recent.largest() {
                std::thread::sleep(GATHER_WAIT);
                drain(&mut batch);
            }
            recent.record(batch.len());
            self.commit_batch(batch);
        }
    }

    fn commit_batch(&mut self, batch: Vec<WriteRequest>) {
        let start_current = self.current.load(Ordering::SeqCst);
        let start_compacted = self.compacted.load(Ordering::SeqCst);
        let mut current = start_current;
        let mut compacted = start_compacted;
        let mut maintenance = false;
        if let Err(e) = self.run_cached("BEGIN IMMEDIATE", []) {
            for request in batch {
                let _ = request.reply.send(Err(StoreError::Backend(format!("cannot begin a write: {e}"))));
            }
            return;
        }
        let mut results = Vec::with_capacity(batch.len());
        for request in &batch {
            let result = match &request.op {
                Op::Create { key, value } => self.apply_write(&mut current, key, Some(value), None, true),
                Op::Update { key, value, expected } => {
                    self.apply_write(&mut current, key, Some(value), Some(*expected), false)
                }
                Op::Delete { key, expected } => self.apply_write(&mut current, key, None, *expected, false),
                Op::CompactChunk { upto } => self.compact_chunk(&mut compacted, *upto),
                Op::Maintenance => {
                    maintenance = true;
                    Ok(Outcome::Done)
                }
            };
            results.push(result);
        }
        let committed = self
            .run_cached(
                "UPDATE k8rs_meta SET value = CASE name WHEN 'current' THEN ?1 ELSE ?2 END
                 WHERE name IN ('current', 'compacted')",
                params![current, compacted],
            )
            .and_then(|_| self.run_cached("COMMIT", []));
        if let Err(e) = committed {
            let _ = self.conn.execute_batch("ROLLBACK");
            for request in batch {
                let _ = request.reply.send(Err(StoreError::Backend(format!("commit failed: {e}"))));
            }
            return;
        }
        self.current.store(current, Ordering::SeqCst);
        self.compacted.store(compacted, Ordering::SeqCst);
        let events: Vec<Event> = results
            .iter()
            .filter_map(|r| match r {
                Ok(Outcome::Written(event)) => Some(event.clone()),
                _ => None,
            })
            .collect();
        // Published before writers are answered: a watcher's progress must cover every acknowledged write.
        self.hub.publish(&events);
        if maintenance {
            self.maintenance();
        }
        for (request, result) in batch.into_iter().zip(results) {
            let _ = request.reply.send(result);
        }
    }

    fn latest(&self, key: &str) -> rusqlite::Result<Option<Latest>> {
        // The key's revisions come from the index (name, id); the newest is picked here because SQLite re-prepares
        // `ORDER BY id DESC LIMIT 1` and `max(id)` on every run, which costs more than reading the few revisions
        // kept until compaction.
        let newest = self
            .conn
            .prepare_cached("SELECT id FROM kv WHERE name = ?1")?
            .query_map([key.as_bytes()], |row| row.get::<_, Revision>(0))?
            .try_fold(None, |newest: Option<Revision>, id| id.map(|id| newest.max(Some(id))))?;
        let Some(revision) = newest else {
            return Ok(None);
        };
        self.conn
            .prepare_cached("SELECT create_revision, deleted, value FROM kv WHERE id = ?1")?
            .query_row([revision], |row| {
                Ok(Latest { revision, create_revision: row.get(0)?, deleted: row.get(1)?, value: row.get(2)? })
            })
            .optional()
    }

    /// Runs one of the writer's fixed statements, prepared once.
    fn run_cached(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.conn.prepare_cached(sql)?.execute(params)
    }

    /// One create, update (`value` with `expected`) or delete (`value` None), checked against the key's newest row.
    fn apply_write(
        &self,
        current: &mut Revision,
        key: &str,
        value: Option<&Vec<u8>>,
        expected: Option<Revision>,
        create: bool,
    ) -> Result<Outcome> {
        let latest = self.latest(key).map_err(backend)?.filter(|l| !l.deleted);
        let prev = latest.as_ref().map(|l| KeyValue {
            key: key.to_string(),
            value: l.value.clone(),
            create_revision: l.create_revision,
            mod_revision: l.revision,
        });
        match (&prev, create) {
            (Some(_), true) => return Err(StoreError::AlreadyExists { key: key.to_string() }),
            (None, false) => return Err(StoreError::NotFound { key: key.to_string() }),
            (Some(p), false) if expected.is_some_and(|e| e != p.mod_revision) => {
                return Err(StoreError::Conflict {
                    key: key.to_string(),
                    expected: expected.unwrap_or_default(),
                    current: prev.map(Box::new),
                })
            }
            _ => {}
        }
        let revision = *current + 1;
        let deleted = value.is_none();
        let create_revision = match (&prev, deleted) {
            (_, true) => 0,
            (Some(p), false) => p.create_revision,
            (None, false) => revision,
        };
        let empty = Vec::new();
        let value = value.unwrap_or(&empty);
        self.conn
            .prepare_cached(
                "INSERT INTO kv (id, name, create_revision, prev_revision, deleted, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    revision,
                    key.as_bytes(),
                    create_revision,
                    prev.as_ref().map_or(0, |p| p.mod_revision),
                    deleted,
                    value
                ])
            })
            .map_err(backend)?;
        *current = revision;
        Ok(Outcome::Written(Event {
            kind: if deleted { EventKind::Delete } else { EventKind::Put },
            kv: KeyValue { key: key.to_string(), value: value.clone(), create_revision, mod_revision: revision },
            prev,
        }))
    }

    /// Deletes, for revisions in (compacted, upto] (at most one chunk), the rows those revisions superseded
    /// and the tombstones among them.
    fn compact_chunk(&self, compacted: &mut Revision, upto: Revision) -> Result<Outcome> {
        let from = *compacted;
        let to = upto.min(from + COMPACT_CHUNK);
        if to > from {
            self.conn
                .execute(
                    "DELETE FROM kv WHERE id IN
                       (SELECT prev_revision FROM kv WHERE id > ?1 AND id <= ?2 AND prev_revision > 0)",
                    params![from, to],
                )
                .and_then(|_| {
                    self.conn.execute("DELETE FROM kv WHERE id > ?1 AND id <= ?2 AND deleted = 1", params![from, to])
                })
                .map_err(backend)?;
            *compacted = to;
        }
        Ok(Outcome::Compacted(*compacted))
    }

    fn maintenance(&self) {
        let result = (|| -> rusqlite::Result<()> {
            let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let free: i64 = self.conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            // Keep an eighth of the file free for the writes to come; give the rest back.
            let excess = free - pages / 8;
            if excess > 0 {
                // The pragma frees pages as it is stepped, one row per page.
                let mut vacuum = self.conn.prepare(&format!("PRAGMA incremental_vacuum({excess})"))?;
                let mut rows = vacuum.query([])?;
                while rows.next()?.is_some() {}
            }
            self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "sqlite maintenance after compaction failed");
        }
    }
}

impl Inner {
    /// Runs `read` on a pooled read connection, inside one read transaction (one snapshot), off the async threads.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection, Snapshot) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match inner.readers.lock().unwrap().pop() {
                Some(conn) => conn,
                None => open_connection(&inner.path)
                    .and_then(|c| c.execute_batch("PRAGMA query_only = ON").map(|_| c))
                    .map_err(backend)?,
            };
            let result = (|| {
                conn.execute_batch("BEGIN").map_err(backend)?;
                let snapshot = conn
                    .query_row(
                        "SELECT (SELECT value FROM k8rs_meta WHERE name = 'current'),
                                (SELECT value FROM k8rs_meta WHERE name = 'compacted')",
                        [],
                        |row| Ok(Snapshot { current: row.get(0)?, compacted: row.get(1)? }),
                    )
                    .map_err(backend)?;
                let result = read(&conn, snapshot);
                conn.execute_batch("COMMIT").map_err(backend)?;
                result
            })();
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            let mut readers = inner.readers.lock().unwrap();
            if readers.len() < READ_POOL && conn.is_autocommit() {
                readers.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

/// The revisions a read transaction sees.
#[derive(Clone, Copy)]
struct Snapshot {
    current: Revision,
    compacted: Revision,
}

impl Snapshot {
    fn read_revision(self, revision: Revision) -> Result<Revision> {
        if revision == 0 {
            Ok(self.current)
        } else if revision < self.compacted {
            Err(StoreError::Compacted { requested: revision, compacted: self.compacted })
        } else if revision > self.current {
            Err(StoreError::FutureRevision { requested: revision, current: self.current })
        } else {
            Ok(revision)
        }
    }
}

fn utf8_key(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, e.into()))
}

/// The newest live row of every key in `[start, end)` at `revision`, in key order. Scanning the (name, id)
/// index yields rows already in key order, so LIMIT stops early and nothing is sorted.
const RANGE_SQL: &str = "
    SELECT k.id, k.name, k.create_revision, k.value FROM kv AS k
    WHERE k.name >= ?1 AND k.name < ?2 AND k.id <= ?3 AND k.deleted = 0
      AND k.id = (SELECT MAX(id) FROM kv WHERE name = k.name AND id <= ?3)
    ORDER BY k.name LIMIT ?4";
const COUNT_SQL: &str = "
    SELECT COUNT(*) FROM kv AS k
    WHERE k.name >= ?1 AND k.name < ?2 AND k.id <= ?3 AND k.deleted = 0
      AND k.id = (SELECT MAX(id) FROM kv WHERE name = k.name AND id <= ?3)";

/// `[start, end)` bounds for a range: keys under `prefix`, after `start_after` if given.
fn range_bounds(prefix: &str, start_after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let mut start = prefix.as_bytes().to_vec();
    if let Some(after) = start_after {
        // The smallest key greater than `after` is `after` followed by a NUL byte.
        let mut next = after.as_bytes().to_vec();
        next.push(0);
        start = start.max(next);
    }
    // Keys are UTF-8, in which no byte is 0xff: a lone 0xff sorts after every key.
    let end = prefix_end(prefix).unwrap_or_else(|| vec![0xff]);
    (start, end)
}

/// Replays history for watchers, from the read pool.
struct SqliteHistory(Arc<Inner>);

#[async_trait::async_trait]
impl History for SqliteHistory {
    async fn events(&self, prefix: &str, from: Revision, to: Revision, limit: usize) -> Result<Vec<Event>> {
        let prefix = prefix.to_string();
        self.0
            .read(move |conn, snapshot| {
                if from <= snapshot.compacted {
                    return Err(StoreError::Compacted { requested: from, compacted: snapshot.compacted });
                }
                let (start, end) = range_bounds(&prefix, None);
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT k.id, k.name, k.create_revision, k.deleted, k.value,
                                p.id, p.create_revision, p.value
                         FROM kv k LEFT JOIN kv p ON p.id = k.prev_revision AND k.prev_revision > 0
                         WHERE k.id >= ?1 AND k.id <= ?2 AND k.name >= ?3 AND k.name < ?4
                         ORDER BY k.id LIMIT ?5",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![from, to, start, end, limit as i64], |row| {
                        let key = utf8_key(row.get(1)?)?;
                        let deleted: bool = row.get(3)?;
                        let prev_id: Option<Revision> = row.get(5)?;
                        let prev = match prev_id {
                            Some(id) => Some(KeyValue {
                                key: key.clone(),
                                value: row.get(7)?,
                                create_revision: row.get(6)?,
                                mod_revision: id,
                            }),
                            None => None,
                        };
                        Ok(Event {
                            kind: if deleted { EventKind::Delete } else { EventKind::Put },
                            kv: KeyValue {
                                key,
                                value: row.get(4)?,
                                create_revision: row.get(2)?,
                                mod_revision: row.get(0)?,
                            },
                            prev,
                        })
                    })
                    .map_err(backend)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
            })
            .await
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str, revision: Revision) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        self.inner
            .read(move |conn, snapshot| {
                let revision = snapshot.read_revision(revision)?;
                conn.prepare_cached(
                    "SELECT id, create_revision, deleted, value FROM kv
                     WHERE name = ?1 AND id <= ?2 ORDER BY id DESC LIMIT 1",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![key.as_bytes(), revision], |row| {
                        let deleted: bool = row.get(2)?;
                        Ok((!deleted).then(|| -> rusqlite::Result<KeyValue> {
                            Ok(KeyValue {
                                key: key.clone(),
                                value: row.get(3)?,
                                create_revision: row.get(1)?,
                                mod_revision: row.get(0)?,
                            })
                        }))
                    })
                    .optional()
                })
                .map_err(backend)?
                .flatten()
                .transpose()
                .map_err(backend)
            })
            .await
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.inner
            .read(move |conn, snapshot| {
                let revision = snapshot.read_revision(request.revision)?;
                let (start, end) = range_bounds(&request.prefix, request.start_after.as_deref());
                let fetch = if request.limit == 0 { -1 } else { request.limit as i64 + 1 };
                let mut kvs = conn
                    .prepare_cached(RANGE_SQL)
                    .and_then(|mut stmt| {
                        stmt.query_map(params![start, end, revision, fetch], |row| {
                            Ok(KeyValue {
                                mod_revision: row.get(0)?,
                                key: utf8_key(row.get(1)?)?,
                                create_revision: row.get(2)?,
                                value: row.get(3)?,
                            })
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .map_err(backend)?;
                let more = request.limit > 0 && kvs.len() > request.limit;
                let count = if more {
                    kvs.truncate(request.limit);
                    conn.prepare_cached(COUNT_SQL)
                        .and_then(|mut stmt| stmt.query_row(params![start, end, revision], |row| row.get::<_, i64>(0)))
                        .map_err(backend)? as u64
                } else {
                    kvs.len() as u64
                };
                Ok(RangeResponse { kvs, more, count, revision })
            })
            .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        check_value_size(key, &value, self.inner.options.max_value_bytes)?;
        let key = key.to_string();
        Ok(self.write_event(Op::Create { key, value }).await?.revision())
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        check_value_size(key, &value, self.inner.options.max_value_bytes)?;
        let key = key.to_string();
        Ok(self.write_event(Op::Update { key, value, expected }).await?.revision())
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let key = key.to_string();
        let event = self.write_event(Op::Delete { key, expected }).await?;
        let revision = event.revision();
        let prev = event.prev.ok_or_else(|| StoreError::Backend("a deleted key had no previous value".into()))?;
        Ok((revision, prev))
    }

    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<Watcher> {
        let compacted = self.inner.compacted.load(Ordering::SeqCst);
        if start_revision > 0 && start_revision <= compacted {
            return Err(StoreError::Compacted { requested: start_revision, compacted });
        }
        let history = Arc::new(SqliteHistory(self.inner.clone()));
        Ok(self.inner.hub.watch(prefix, start_revision, history))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let compacted = self.inner.compacted.load(Ordering::SeqCst);
        let current = self.inner.current.load(Ordering::SeqCst);
        if revision <= compacted {
            return Err(StoreError::Compacted { requested: revision, compacted });
        }
        if revision > current {
            return Err(StoreError::FutureRevision { requested: revision, current });
        }
        loop {
            match self.write(Op::CompactChunk { upto: revision }).await? {
                Outcome::Compacted(done) if done >= revision => break,
                Outcome::Compacted(_) => {}
                _ => return Err(StoreError::Backend("writer answered a compaction with no revision".into())),
            }
        }
        self.write(Op::Maintenance).await.map(|_| ())
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.current.load(Ordering::SeqCst))
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.inner.compacted.load(Ordering::SeqCst))
    }
}
