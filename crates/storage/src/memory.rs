//! An in-memory revision log with the full store semantics, for the tests of other crates.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::hub::{History, Hub};
use crate::{
    check_value_size, Event, EventKind, KeyValue, RangeRequest, RangeResponse, Result, Revision, Store, StoreError,
    Watcher, DEFAULT_MAX_VALUE_BYTES,
};

const WATCH_CAPACITY: usize = 1000;

pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    hub: Arc<Hub>,
    max_value_bytes: usize,
}

#[derive(Default)]
struct State {
    rows: BTreeMap<Revision, Row>,
    /// Per key, the revisions of its rows, oldest first.
    versions: BTreeMap<String, Vec<Revision>>,
    current: Revision,
    compacted: Revision,
}

struct Row {
    key: String,
    value: Vec<u8>,
    create_revision: Revision,
    prev_revision: Revision,
    deleted: bool,
}

impl Row {
    fn kv(&self, revision: Revision) -> KeyValue {
        KeyValue {
            key: self.key.clone(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: revision,
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_MAX_VALUE_BYTES, WATCH_CAPACITY)
    }

    /// A store refusing values over `max_value_bytes`, ending watchers with more than `watch_capacity` queued.
    pub fn with_limits(max_value_bytes: usize, watch_capacity: usize) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                hub: Hub::new(0, watch_capacity),
                max_value_bytes,
            }),
        }
    }
}

impl State {
    fn check_read_revision(&self, revision: Revision) -> Result<Revision> {
        if revision == 0 {
            return Ok(self.current);
        }
        if revision < self.compacted {
            return Err(StoreError::Compacted { requested: revision, compacted: self.compacted });
        }
        if revision > self.current {
            return Err(StoreError::FutureRevision { requested: revision, current: self.current });
        }
        Ok(revision)
    }

    /// The live value of `key` at `revision`, with its revision.
    fn at(&self, key: &str, revision: Revision) -> Option<(Revision, &Row)> {
        let versions = self.versions.get(key)?;
        let idx = versions.partition_point(|&r| r <= revision);
        let rev = *versions.get(idx.checked_sub(1)?)?;
        let row = &self.rows[&rev];
        (!row.deleted).then_some((rev, row))
    }

    fn latest(&self, key: &str) -> Option<(Revision, &Row)> {
        self.at(key, self.current)
    }

    /// Appends a row and returns the event it makes.
    fn append(&mut self, key: &str, value: Vec<u8>, deleted: bool) -> Event {
        let prev = self.latest(key).map(|(rev, row)| row.kv(rev));
        let revision = self.current + 1;
        self.current = revision;
        let create_revision = match (&prev, deleted) {
            (Some(p), _) => p.create_revision,
            (None, _) => revision,
        };
        let row = Row {
            key: key.to_string(),
            value: value.clone(),
            create_revision: if deleted { 0 } else { create_revision },
            prev_revision: prev.as_ref().map_or(0, |p| p.mod_revision),
            deleted,
        };
        self.rows.insert(revision, row);
        self.versions.entry(key.to_string()).or_default().push(revision);
        Event {
            kind: if deleted { EventKind::Delete } else { EventKind::Put },
            kv: KeyValue {
                key: key.to_string(),
                value: if deleted { Vec::new() } else { value },
                create_revision: if deleted { 0 } else { create_revision },
                mod_revision: revision,
            },
            prev,
        }
    }
}

impl Inner {
    fn commit(&self, state: &mut State, key: &str, value: Vec<u8>, deleted: bool) -> Event {
        let event = state.append(key, value, deleted);
        // Published under the state lock, so watchers see writes in revision order.
        self.hub.publish(std::slice::from_ref(&event));
        event
    }
}

#[async_trait::async_trait]
impl History for Inner {
    async fn events(&self, prefix: &str, from: Revision, to: Revision, limit: usize) -> Result<Vec<Event>> {
        let state = self.state.lock().unwrap();
        if from <= state.compacted {
            return Err(StoreError::Compacted { requested: from, compacted: state.compacted });
        }
        let events = state
            .rows
            .range(from..=to)
            .filter(|(_, row)| row.key.starts_with(prefix))
            .take(limit)
            .map(|(&rev, row)| {
                let prev = (row.prev_revision > 0).then(|| state.rows[&row.prev_revision].kv(row.prev_revision));
                let mut kv = row.kv(rev);
                if row.deleted {
                    kv.value.clear();
                }
                Event { kind: if row.deleted { EventKind::Delete } else { EventKind::Put }, kv, prev }
            })
            .collect();
        Ok(events)
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str, revision: Revision) -> Result<Option<KeyValue>> {
        let state = self.inner.state.lock().unwrap();
        let revision = state.check_read_revision(revision)?;
        Ok(state.at(key, revision).map(|(rev, row)| row.kv(rev)))
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let state = self.inner.state.lock().unwrap();
        let revision = state.check_read_revision(request.revision)?;
        let start = match request.start_after.as_deref() {
            Some(after) if after > request.prefix.as_str() => after,
            _ => request.prefix.as_str(),
        };
        let mut kvs = Vec::new();
        let mut count = 0u64;
        let from = (std::ops::Bound::Included(start), std::ops::Bound::Unbounded);
        for key in state.versions.range::<str, _>(from).map(|(k, _)| k) {
            if !key.starts_with(&request.prefix) {
                break;
            }
            if request.start_after.as_deref() == Some(key.as_str()) {
                continue;
            }
            if let Some((rev, row)) = state.at(key, revision) {
                count += 1;
                if request.limit == 0 || kvs.len() < request.limit {
                    kvs.push(row.kv(rev));
                }
            }
        }
        Ok(RangeResponse { more: (kvs.len() as u64) < count, kvs, count, revision })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        check_value_size(key, &value, self.inner.max_value_bytes)?;
        let mut state = self.inner.state.lock().unwrap();
        if state.latest(key).is_some() {
            return Err(StoreError::AlreadyExists { key: key.to_string() });
        }
        Ok(self.inner.commit(&mut state, key, value, false).revision())
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        check_value_size(key, &value, self.inner.max_value_bytes)?;
        let mut state = self.inner.state.lock().unwrap();
        match state.latest(key) {
            None => return Err(StoreError::NotFound { key: key.to_string() }),
            Some((rev, row)) if rev != expected => {
                return Err(StoreError::Conflict {
                    key: key.to_string(),
                    expected,
                    current: Some(Box::new(row.kv(rev))),
                })
            }
            Some(_) => {}
        }
        Ok(self.inner.commit(&mut state, key, value, false).revision())
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let mut state = self.inner.state.lock().unwrap();
        match (state.latest(key), expected) {
            (None, _) => return Err(StoreError::NotFound { key: key.to_string() }),
            (Some((rev, row)), Some(expected)) if rev != expected => {
                return Err(StoreError::Conflict {
                    key: key.to_string(),
                    expected,
                    current: Some(Box::new(row.kv(rev))),
                })
            }
            _ => {}
        }
        let event = self.inner.commit(&mut state, key, Vec::new(), true);
        Ok((event.revision(), event.prev.expect("a deleted key had a value")))
    }

    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<Watcher> {
        {
            let state = self.inner.state.lock().unwrap();
            if start_revision > 0 && start_revision <= state.compacted {
                return Err(StoreError::Compacted { requested: start_revision, compacted: state.compacted });
            }
        }
        let history: Arc<dyn History> = self.inner.clone();
        Ok(self.inner.hub.watch(prefix, start_revision, history))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut state = self.inner.state.lock().unwrap();
        if revision <= state.compacted {
            return Err(StoreError::Compacted { requested: revision, compacted: state.compacted });
        }
        if revision > state.current {
            return Err(StoreError::FutureRevision { requested: revision, current: state.current });
        }
        let State { rows, versions, .. } = &mut *state;
        versions.retain(|_, revs| {
            let keep_from = revs.partition_point(|&r| r <= revision).saturating_sub(1);
            let latest_is_tombstone = revs.get(keep_from).is_some_and(|r| *r <= revision && rows[r].deleted);
            let drop = if latest_is_tombstone { keep_from + 1 } else { keep_from };
            for r in revs.drain(..drop) {
                rows.remove(&r);
            }
            !revs.is_empty()
        });
        state.compacted = revision;
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.state.lock().unwrap().current)
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.inner.state.lock().unwrap().compacted)
    }
}
