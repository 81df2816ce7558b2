//! The watch cache: per resource, the current objects and a window of recent events, kept in memory by one
//! store watch. Watches and `resourceVersion=0` lists are served from it, so a thousand watchers cost one
//! store watch; writes and consistent reads still go to the store.
//!
//! A watch that resumes from before the cache's window falls back to a store watch of its own, so the only
//! 410 a client sees is for history the store itself has compacted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use apimachinery::registry::Resource;
use serde_json::{json, Value};
use storage::{DynStore, EventKind, RangeRequest, WatchMessage};
use tokio::sync::{mpsc, watch};

use crate::objects;
use crate::revision_slot::RevisionSlot;

/// Events kept per resource for watches to resume from (older resumes are served by the store).
const HISTORY: usize = 1_000;
/// Messages a cache watcher may have queued before it is ended (the client then watches again).
const WATCHER_QUEUE: usize = 1_000;
/// How often the cache asks the store how far it has got, so it knows the revision even with no events.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
/// How often the cache drops history the store has compacted.
const TRIM_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

/// One change of one object, with the object as it was before (for selectors that stop matching).
#[derive(Debug)]
pub struct CacheEvent {
    pub change: Change,
    pub key: String,
    pub object: Arc<CachedObject>,
    pub previous: Option<Arc<CachedObject>>,
    pub revision: i64,
}

/// An object as the cache keeps it: its JSON as served (with its resourceVersion), a few KiB where a decoded
/// value takes ten times as much, decoded when a reader needs the value. Most readers do not: plain watches and
/// lists copy the JSON, so a create's decoded object is freed by the request that made it, while it is still hot.
#[derive(Debug)]
pub struct CachedObject {
    served: Vec<u8>,
    decoded: OnceLock<Option<Arc<Value>>>,
}

impl CachedObject {
    fn new(served: Vec<u8>) -> CachedObject {
        CachedObject { served, decoded: OnceLock::new() }
    }

    /// The object's JSON, resourceVersion included.
    pub fn served(&self) -> &[u8] {
        &self.served
    }

    /// The decoded object, kept for the next reader: for the few objects read by key over and over (a create's
    /// namespace and ServiceAccount) and for events that watchers with selectors look into.
    pub fn value(&self) -> Option<Arc<Value>> {
        self.decoded.get_or_init(|| self.parse()).clone()
    }

    /// The decoded object for one reader, not kept: a list with a selector decodes every object once.
    pub fn transient_value(&self) -> Option<Arc<Value>> {
        match self.decoded.get() {
            Some(kept) => kept.clone(),
            None => self.parse(),
        }
    }

    fn parse(&self) -> Option<Arc<Value>> {
        serde_json::from_slice(&self.served).ok().map(Arc::new)
    }
}

/// The stored bytes of an object as served: the revision put in where an encoding would have it (decoded and
/// encoded again only if they are not in the shape k8rs writes).
fn served(kv: &storage::KeyValue, revision: i64) -> Option<Vec<u8>> {
    if let Some(slot) = RevisionSlot::find(&kv.value) {
        return Some(slot.fill(&kv.value, revision));
    }
    let mut object: Value = serde_json::from_slice(&kv.value).ok()?;
    objects::metadata(&mut object).insert("resourceVersion".into(), json!(revision.to_string()));
    serde_json::to_vec(&object).ok()
}

/// What a cache watcher receives.
#[derive(Clone, Debug)]
pub enum Delivery {
    Event(Arc<CacheEvent>),
    /// Everything up to this revision has been delivered.
    Progress(i64),
}

struct Subscriber {
    prefix: String,
    tx: mpsc::Sender<Delivery>,
}

struct State {
    objects: Objects,
    history: VecDeque<Arc<CacheEvent>>,
    /// Every event after this revision is in `history`.
    history_start: i64,
    /// The store revision the cache reflects.
    revision: i64,
    subscribers: Vec<Subscriber>,
}

/// The cache of one resource.
pub struct ResourceCache {
    state: Mutex<State>,
    /// The revision the cache has reached, for readers waiting on a newer one.
    reached: watch::Sender<i64>,
}

/// A watch served by the cache: the events it starts with, then the live ones.
pub struct Subscription {
    pub initial: Vec<Arc<CacheEvent>>,
    /// The revision the initial events bring the client to.
    pub revision: i64,
    pub live: mpsc::Receiver<Delivery>,
}

/// Where a cache watch starts.
pub enum Start {
    /// The current objects as ADDED, then changes.
    Now,
    /// Every change after this revision.
    After(i64),
}

impl ResourceCache {
    /// Starts caching everything under `prefix`; returns once the cache holds the current state.
    pub async fn start(store: DynStore, prefix: String) -> Result<Arc<ResourceCache>, storage::StoreError> {
        let (objects, revision) = list(&store, &prefix).await?;
        let cache = Arc::new(ResourceCache {
            state: Mutex::new(State {
                objects,
                history: VecDeque::new(),
                history_start: revision,
                revision,
                subscribers: Vec::new(),
            }),
            reached: watch::channel(revision).0,
        });
        tokio::spawn(follow(Arc::downgrade(&cache), store, prefix, revision));
        Ok(cache)
    }

    /// One object by its store key, decoded (and kept decoded: objects read by key are read again).
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        let cached = self.state.lock().unwrap().objects.get(key).cloned()?;
        cached.value()
    }

    /// The objects under `prefix` (a namespace's, or all) and the revision they are current at.
    pub fn snapshot(&self, prefix: &str) -> (Vec<Arc<CachedObject>>, i64) {
        let state = self.state.lock().unwrap();
        let objects = state.objects.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix));
        (objects.map(|(_, v)| v.clone()).collect(), state.revision)
    }

    /// Waits until the cache has reached `revision`; the revision it is at if it does not within `timeout`.
    pub async fn wait_for(&self, revision: i64, timeout: Duration) -> Result<(), i64> {
        let mut reached = self.reached.subscribe();
        let reached =
            tokio::time::timeout(timeout, reached.wait_for(|r| *r >= revision)).await.is_ok_and(|r| r.is_ok());
        if reached {
            Ok(())
        } else {
            Err(*self.reached.borrow())
        }
    }

    /// A watch of everything under `prefix`, or None if `start` is before the cache's history.
    pub fn subscribe(&self, prefix: &str, start: Start) -> Option<Subscription> {
        let mut state = self.state.lock().unwrap();
        let initial: Vec<Arc<CacheEvent>> = match start {
            Start::After(revision) if revision < state.history_start => return None,
            Start::After(revision) => {
                state.history.iter().filter(|e| e.revision > revision && e.key.starts_with(prefix)).cloned().collect()
            }
            Start::Now => state
                .objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(key, object)| {
                    Arc::new(CacheEvent {
                        change: Change::Added,
                        key: key.clone(),
                        object: object.clone(),
                        previous: None,
                        revision: state.revision,
                    })
                })
                .collect(),
        };
        let (tx, live) = mpsc::channel(WATCHER_QUEUE);
        state.subscribers.push(Subscriber { prefix: prefix.to_string(), tx });
        Some(Subscription { initial, revision: state.revision, live })
    }

    fn apply(&self, events: Vec<storage::Event>) {
        let mut state = self.state.lock().unwrap();
        for event in events {
            let revision = event.kv.mod_revision;
            let cached = match event.kind {
                EventKind::Put => {
                    let Some(served) = served(&event.kv, revision) else { continue };
                    let object = Arc::new(CachedObject::new(served));
                    let previous = state.objects.insert(event.kv.key.clone(), object.clone());
                    let change = if previous.is_some() { Change::Modified } else { Change::Added };
                    CacheEvent { change, key: event.kv.key, object, previous, revision }
                }
                EventKind::Delete => {
                    let Some(previous) = state.objects.remove(&event.kv.key) else { continue };
                    // As upstream: the object as it was last, at the revision of its deletion.
                    let gone = match &event.prev {
                        Some(prev) => served(prev, revision),
                        None => previous.transient_value().and_then(|object| {
                            let mut object = (*object).clone();
                            objects::metadata(&mut object)
                                .insert("resourceVersion".into(), json!(revision.to_string()));
                            serde_json::to_vec(&object).ok()
                        }),
                    };
                    let Some(gone) = gone else { continue };
                    CacheEvent {
                        change: Change::Deleted,
                        key: event.kv.key,
                        object: Arc::new(CachedObject::new(gone)),
                        previous: Some(previous),
                        revision,
                    }
                }
            };
            let cached = Arc::new(cached);
            state.history.push_back(cached.clone());
            if state.history.len() > HISTORY {
                if let Some(evicted) = state.history.pop_front() {
                    state.history_start = evicted.revision;
                }
            }
            state.revision = revision;
            state.subscribers.retain(|s| {
                !cached.key.starts_with(&s.prefix) || s.tx.try_send(Delivery::Event(cached.clone())).is_ok()
            });
        }
        let revision = state.revision;
        drop(state);
        self.reached.send_replace(revision);
    }

    fn progress(&self, revision: i64) {
        let mut state = self.state.lock().unwrap();
        if revision <= state.revision {
            return;
        }
        state.revision = revision;
        // A full queue already holds messages that move the watcher on; a closed one is gone.
        state.subscribers.retain(|s| {
            !matches!(s.tx.try_send(Delivery::Progress(revision)), Err(mpsc::error::TrySendError::Closed(_)))
        });
        drop(state);
        self.reached.send_replace(revision);
    }

    /// Forgets events the store has compacted away, so the cache never serves history the store no longer has
    /// (the history window is the store's compaction window).
    fn trim(&self, compacted: i64) {
        let mut state = self.state.lock().unwrap();
        while state.history.front().is_some_and(|e| e.revision <= compacted) {
            state.history.pop_front();
        }
        state.history_start = state.history_start.max(compacted);
    }

    /// After the store watch broke: the current state again, and every watcher ended (clients watch again).
    fn reset(&self, objects: Objects, revision: i64) {
        let mut state = self.state.lock().unwrap();
        state.objects = objects;
        state.history.clear();
        state.history_start = revision;
        state.revision = revision;
        state.subscribers.clear();
        drop(state);
        self.reached.send_replace(revision);
    }
}

type Objects = BTreeMap<String, Arc<CachedObject>>;

async fn list(store: &DynStore, prefix: &str) -> Result<(Objects, i64), storage::StoreError> {
    let page = store.range(RangeRequest { prefix: prefix.to_string(), ..Default::default() }).await?;
    let objects = page
        .kvs
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), Arc::new(CachedObject::new(served(kv, kv.mod_revision)?)))))
        .collect();
    Ok((objects, page.revision))
}

/// Keeps a cache current until it is dropped.
async fn follow(cache: std::sync::Weak<ResourceCache>, store: DynStore, prefix: String, mut revision: i64) {
    loop {
        let mut watcher = match store.watch(&prefix, revision + 1).await {
            Ok(watcher) => watcher,
            Err(error) => {
                tracing::warn!(%prefix, %error, "watch cache cannot watch the store; listing again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                match relist(&cache, &store, &prefix).await {
                    Some(r) => revision = r,
                    None => return,
                }
                continue;
            }
        };
        let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
        let mut trimmer = tokio::time::interval(TRIM_INTERVAL);
        loop {
            tokio::select! {
                _ = ticker.tick() => watcher.request_progress(),
                _ = trimmer.tick() => {
                    let Some(cache) = cache.upgrade() else { return };
                    match store.compacted_revision().await {
                        Ok(compacted) => cache.trim(compacted),
                        Err(error) => tracing::warn!(%prefix, %error, "watch cache cannot read the compacted revision"),
                    }
                }
                message = watcher.next() => {
                    let Some(cache) = cache.upgrade() else { return };
                    match message {
                        Some(Ok(WatchMessage::Events(events))) => {
                            revision = events.last().map_or(revision, |e| e.kv.mod_revision);
                            cache.apply(events);
                        }
                        Some(Ok(WatchMessage::Progress(r))) => {
                            revision = revision.max(r);
                            cache.progress(r);
                        }
                        Some(Err(error)) => {
                            tracing::warn!(%prefix, %error, "watch cache lost its store watch; listing again");
                            break;
                        }
                        None => return,
                    }
                }
            }
        }
        match relist(&cache, &store, &prefix).await {
            Some(r) => revision = r,
            None => return,
        }
    }
}

async fn relist(cache: &std::sync::Weak<ResourceCache>, store: &DynStore, prefix: &str) -> Option<i64> {
    loop {
        let cache = cache.upgrade()?;
        match list(store, prefix).await {
            Ok((objects, revision)) => {
                cache.reset(objects, revision);
                return Some(revision);
            }
            Err(error) => {
                tracing::warn!(%prefix, %error, "watch cache cannot list the store");
                drop(cache);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Every resource's cache, made at start.
pub struct Caches {
    by_prefix: HashMap<String, Arc<ResourceCache>>,
}

impl Caches {
    pub async fn start(store: &DynStore) -> Result<Caches, storage::StoreError> {
        let mut by_prefix = HashMap::new();
        for resource in apimachinery::registry::RESOURCES.iter().filter(|r| r.has_verb("watch")) {
            let prefix = objects::prefix(resource, None);
            if !by_prefix.contains_key(&prefix) {
                by_prefix.insert(prefix.clone(), ResourceCache::start(store.clone(), prefix).await?);
            }
        }
        Ok(Caches { by_prefix })
    }

    pub fn get(&self, resource: &Resource) -> Option<&Arc<ResourceCache>> {
        self.by_prefix.get(&objects::prefix(resource, None))
    }
}
