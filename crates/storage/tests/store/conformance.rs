//! The storage contract, as tests that every backend must pass unchanged.

use std::sync::Arc;
use std::time::Duration;

use storage::etcd::{EtcdOptions, EtcdStore};
use storage::memory::MemoryStore;
use storage::sqlite::{SqliteOptions, SqliteStore};
use storage::{Event, EventKind, RangeRequest, Store, StoreError, WatchMessage, Watcher};

const DEADLINE: Duration = Duration::from_secs(30);

/// A store under test and whatever must live as long as it (temporary directory, etcd process).
pub struct Harness {
    pub store: Arc<dyn Store>,
    _keep: Box<dyn std::any::Any + Send>,
}

/// Small value limit and watch queue, so the limits are cheap to reach in tests.
const TEST_MAX_VALUE: usize = 64 * 1024;
const TEST_WATCH_CAPACITY: usize = 16;

pub async fn memory() -> Harness {
    Harness { store: Arc::new(MemoryStore::with_limits(TEST_MAX_VALUE, TEST_WATCH_CAPACITY)), _keep: Box::new(()) }
}

pub async fn sqlite() -> Harness {
    let dir = tempfile::Builder::new().prefix("k8rs-store-").tempdir().unwrap();
    let options = SqliteOptions { max_value_bytes: TEST_MAX_VALUE, watch_capacity: TEST_WATCH_CAPACITY };
    let store = SqliteStore::open(dir.path().join("state.db"), options).unwrap();
    Harness { store: Arc::new(store), _keep: Box::new(dir) }
}

pub async fn etcd() -> Harness {
    let etcd = testkit::Etcd::start();
    let options =
        EtcdOptions { max_value_bytes: TEST_MAX_VALUE, watch_capacity: TEST_WATCH_CAPACITY, ..EtcdOptions::default() };
    let store = EtcdStore::connect(&[etcd.endpoint()], options).await.unwrap();
    Harness { store: Arc::new(store), _keep: Box::new(etcd) }
}

/// The next watch message, or a failure after the deadline.
async fn next(watcher: &mut Watcher) -> Result<WatchMessage, StoreError> {
    tokio::time::timeout(DEADLINE, watcher.next())
        .await
        .expect("no watch message within the deadline")
        .expect("watch ended")
}

/// The next `n` events, skipping progress notifications.
async fn events(watcher: &mut Watcher, n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    while out.len() < n {
        if let WatchMessage::Events(events) = next(watcher).await.unwrap() {
            out.extend(events);
        }
    }
    assert_eq!(out.len(), n, "more events than expected: {out:?}");
    out
}

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub async fn create_then_get(store: &dyn Store) {
    let rev = store.create("/t/a", v("one")).await.unwrap();
    let kv = store.get("/t/a", 0).await.unwrap().expect("created key");
    assert_eq!((kv.key.as_str(), kv.value.as_slice()), ("/t/a", b"one".as_slice()));
    assert_eq!((kv.create_revision, kv.mod_revision), (rev, rev));
    assert_eq!(store.current_revision().await.unwrap(), rev);
    assert!(matches!(store.create("/t/a", v("two")).await, Err(StoreError::AlreadyExists { .. })));
    assert_eq!(store.get("/t/a", 0).await.unwrap().unwrap().value, b"one");
    assert_eq!(store.get("/t/missing", 0).await.unwrap(), None);
}

pub async fn revisions_strictly_increase(store: &dyn Store) {
    let mut last = store.current_revision().await.unwrap();
    for i in 0..20 {
        let key = format!("/t/k{}", i % 3);
        let rev = match store.get(&key, 0).await.unwrap() {
            Some(kv) => store.update(&key, v("x"), kv.mod_revision).await.unwrap(),
            None => store.create(&key, v("x")).await.unwrap(),
        };
        assert!(rev > last, "revision {rev} after {last}");
        last = rev;
    }
    assert_eq!(store.current_revision().await.unwrap(), last);
}

pub async fn update_is_guarded_by_mod_revision(store: &dyn Store) {
    let created = store.create("/t/u", v("1")).await.unwrap();
    let updated = store.update("/t/u", v("2"), created).await.unwrap();
    let kv = store.get("/t/u", 0).await.unwrap().unwrap();
    assert_eq!((kv.value, kv.create_revision, kv.mod_revision), (v("2"), created, updated));
    match store.update("/t/u", v("3"), created).await {
        Err(StoreError::Conflict { current, expected, .. }) => {
            assert_eq!(expected, created);
            let current = current.expect("conflict carries the current value");
            assert_eq!((current.value, current.mod_revision), (v("2"), updated));
        }
        other => panic!("stale update gave {other:?}"),
    }
    assert!(matches!(store.update("/t/none", v("1"), created).await, Err(StoreError::NotFound { .. })));
    assert_eq!(store.current_revision().await.unwrap(), updated, "failed writes take no revision");
}

pub async fn delete_returns_previous_value(store: &dyn Store) {
    let created = store.create("/t/d", v("1")).await.unwrap();
    let updated = store.update("/t/d", v("2"), created).await.unwrap();
    assert!(matches!(store.delete("/t/d", Some(created)).await, Err(StoreError::Conflict { .. })));
    let (deleted, prev) = store.delete("/t/d", Some(updated)).await.unwrap();
    assert!(deleted > updated);
    assert_eq!((prev.value, prev.mod_revision, prev.create_revision), (v("2"), updated, created));
    assert_eq!(store.get("/t/d", 0).await.unwrap(), None);
    assert!(matches!(store.delete("/t/d", None).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.update("/t/d", v("3"), updated).await, Err(StoreError::NotFound { .. })));
    // A key created again starts a new life.
    let recreated = store.create("/t/d", v("new")).await.unwrap();
    let kv = store.get("/t/d", 0).await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (recreated, recreated));
    let (_, prev) = store.delete("/t/d", None).await.unwrap();
    assert_eq!(prev.value, v("new"));
}

pub async fn get_at_past_revisions(store: &dyn Store) {
    let before = store.create("/t/other", v("x")).await.unwrap();
    let r1 = store.create("/t/g", v("1")).await.unwrap();
    let r2 = store.update("/t/g", v("2"), r1).await.unwrap();
    let (r3, _) = store.delete("/t/g", None).await.unwrap();
    assert_eq!(store.get("/t/g", before).await.unwrap(), None);
    assert_eq!(store.get("/t/g", r1).await.unwrap().unwrap().value, v("1"));
    assert_eq!(store.get("/t/g", r2).await.unwrap().unwrap().value, v("2"));
    assert_eq!(store.get("/t/g", r3).await.unwrap(), None);
    assert!(matches!(store.get("/t/g", r3 + 100).await, Err(StoreError::FutureRevision { .. })));
}

pub async fn range_pages_through_a_prefix(store: &dyn Store) {
    for key in ["/r/", "/r0", "/q/z", "/s/a"] {
        store.create(key, v("outside")).await.unwrap();
    }
    let mut names: Vec<String> = (0..25).map(|i| format!("/r/x/{i:02}")).collect();
    names.reverse();
    for name in &names {
        store.create(name, v(name)).await.unwrap();
    }
    names.sort();
    let whole = store.range(RangeRequest { prefix: "/r/x/".into(), ..Default::default() }).await.unwrap();
    let keys: Vec<&str> = whole.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, names.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!((whole.count, whole.more), (25, false));
    assert_eq!(whole.revision, store.current_revision().await.unwrap());

    // Pages of 10, pinned to the first page's revision, while writes go on.
    let mut seen = Vec::new();
    let mut start_after = None;
    let mut revision = 0;
    let mut counts = Vec::new();
    loop {
        let page = store
            .range(RangeRequest { prefix: "/r/x/".into(), start_after: start_after.clone(), limit: 10, revision })
            .await
            .unwrap();
        revision = page.revision;
        counts.push((page.kvs.len(), page.count, page.more));
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        store.create(&format!("/r/x/{}", seen.len() + 100), v("later")).await.unwrap();
        if !page.more {
            break;
        }
        start_after = page.kvs.last().map(|kv| kv.key.clone());
    }
    assert_eq!(seen, names);
    assert_eq!(counts, vec![(10, 25, true), (10, 15, true), (5, 5, false)]);
    let all = store.range(RangeRequest::default()).await.unwrap();
    assert!(all.kvs.iter().any(|kv| kv.key == "/s/a") && all.kvs.iter().any(|kv| kv.key == "/r/"));
}

pub async fn range_at_a_past_revision(store: &dyn Store) {
    let a = store.create("/p/a", v("a1")).await.unwrap();
    store.create("/p/b", v("b1")).await.unwrap();
    let then = store.current_revision().await.unwrap();
    store.update("/p/a", v("a2"), a).await.unwrap();
    store.delete("/p/b", None).await.unwrap();
    store.create("/p/c", v("c1")).await.unwrap();
    let old = store.range(RangeRequest { prefix: "/p/".into(), revision: then, ..Default::default() }).await.unwrap();
    let old: Vec<(String, Vec<u8>)> = old.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(old, vec![("/p/a".into(), v("a1")), ("/p/b".into(), v("b1"))]);
    let now = store.range(RangeRequest { prefix: "/p/".into(), ..Default::default() }).await.unwrap();
    let now: Vec<(String, Vec<u8>)> = now.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(now, vec![("/p/a".into(), v("a2")), ("/p/c".into(), v("c1"))]);
}

pub async fn watch_sees_changes_in_order_with_previous_values(store: &dyn Store) {
    let mut watcher = store.watch("/w/", 0).await.unwrap();
    let r1 = store.create("/w/a", v("1")).await.unwrap();
    store.create("/x/outside", v("1")).await.unwrap();
    let r2 = store.update("/w/a", v("2"), r1).await.unwrap();
    let (r3, _) = store.delete("/w/a", None).await.unwrap();
    let got = events(&mut watcher, 3).await;
    assert_eq!(got[0].kind, EventKind::Put);
    assert_eq!((got[0].kv.mod_revision, got[0].kv.create_revision, &got[0].kv.value), (r1, r1, &v("1")));
    assert_eq!(got[0].prev, None);
    assert_eq!(got[1].kind, EventKind::Put);
    assert_eq!((got[1].kv.mod_revision, got[1].kv.create_revision), (r2, r1));
    assert_eq!(got[1].prev.as_ref().map(|p| (p.mod_revision, p.value.clone())), Some((r1, v("1"))));
    assert_eq!(got[2].kind, EventKind::Delete);
    assert_eq!((got[2].kv.key.as_str(), got[2].kv.mod_revision), ("/w/a", r3));
    assert!(got[2].kv.value.is_empty());
    assert_eq!(got[2].prev.as_ref().map(|p| (p.mod_revision, p.value.clone())), Some((r2, v("2"))));
}

pub async fn watch_replays_history_from_a_revision(store: &dyn Store) {
    let r1 = store.create("/h/a", v("1")).await.unwrap();
    let r2 = store.update("/h/a", v("2"), r1).await.unwrap();
    store.create("/h/b", v("b")).await.unwrap();
    let mut watcher = store.watch("/h/", r2).await.unwrap();
    let live = store.delete("/h/b", None).await.unwrap().0;
    let got = events(&mut watcher, 3).await;
    let revisions: Vec<i64> = got.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revisions, vec![r2, r2 + 1, live]);
    assert_eq!(got[0].prev.as_ref().map(|p| p.value.clone()), Some(v("1")));
    assert_eq!(got[2].kind, EventKind::Delete);
    assert_eq!(got[2].prev.as_ref().map(|p| p.value.clone()), Some(v("b")));
}

/// A watcher that starts in the past while writers keep going sees every change exactly once, in order.
pub async fn watch_hands_over_from_history_to_live_without_gaps(store: &dyn Store, capacity: usize) {
    let start = store.current_revision().await.unwrap() + 1;
    let total = 200;
    let mut written = 0;
    let mut watcher = None;
    let mut seen = Vec::new();
    while written < total {
        store.create(&format!("/g/{written:04}"), v("x")).await.unwrap();
        written += 1;
        if written == total / 2 {
            watcher = Some(store.watch("/g/", start).await.unwrap());
        }
        // Keep up with the writer, as a real watcher would (the queue holds only `capacity` messages).
        if let Some(w) = watcher.as_mut() {
            if written % (capacity / 2).max(1) == 0 {
                while seen.len() < written {
                    if let WatchMessage::Events(events) = next(w).await.unwrap() {
                        seen.extend(events.into_iter().map(|e| e.kv.key));
                    }
                }
            }
        }
    }
    let watcher = watcher.as_mut().unwrap();
    while seen.len() < total {
        if let WatchMessage::Events(events) = next(watcher).await.unwrap() {
            seen.extend(events.into_iter().map(|e| e.kv.key));
        }
    }
    let expected: Vec<String> = (0..total).map(|i| format!("/g/{i:04}")).collect();
    assert_eq!(seen, expected);
}

pub async fn watch_progress_follows_delivered_events(store: &dyn Store) {
    let mut watcher = store.watch("/pr/", 0).await.unwrap();
    store.create("/other/a", v("1")).await.unwrap();
    let rev = store.create("/pr/a", v("1")).await.unwrap();
    let unrelated = store.create("/other/b", v("1")).await.unwrap();
    assert_eq!(events(&mut watcher, 1).await[0].kv.mod_revision, rev);
    watcher.request_progress();
    match next(&mut watcher).await.unwrap() {
        WatchMessage::Progress(progress) => {
            assert!(progress >= unrelated, "progress {progress} behind the store at {unrelated}")
        }
        WatchMessage::Events(events) => panic!("unexpected events {events:?}"),
    }
}

pub async fn compaction_forgets_history_but_keeps_current_state(store: &dyn Store) {
    let a = store.create("/c/a", v("1")).await.unwrap();
    let a2 = store.update("/c/a", v("2"), a).await.unwrap();
    store.create("/c/b", v("b")).await.unwrap();
    store.delete("/c/b", None).await.unwrap();
    store.create("/c/c", v("c")).await.unwrap();
    let target = store.current_revision().await.unwrap();
    let after = store.update("/c/a", v("3"), a2).await.unwrap();
    store.compact(target).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), target);
    assert!(matches!(store.get("/c/a", a).await, Err(StoreError::Compacted { .. })));
    assert!(matches!(
        store.range(RangeRequest { prefix: "/c/".into(), revision: a2, ..Default::default() }).await,
        Err(StoreError::Compacted { .. })
    ));
    match store.watch("/c/", a2).await {
        Err(StoreError::Compacted { requested, compacted }) => {
            assert_eq!((requested, compacted), (a2, target))
        }
        Err(other) => panic!("watch from compacted history gave {other}"),
        Ok(_) => panic!("watch from compacted history was accepted"),
    }
    // The compaction revision itself is still readable, and so is everything after it.
    let at_target =
        store.range(RangeRequest { prefix: "/c/".into(), revision: target, ..Default::default() }).await.unwrap();
    let keys: Vec<(String, Vec<u8>)> = at_target.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(keys, vec![("/c/a".into(), v("2")), ("/c/c".into(), v("c"))]);
    let mut watcher = store.watch("/c/", target + 1).await.unwrap();
    let got = events(&mut watcher, 1).await;
    assert_eq!((got[0].kv.mod_revision, got[0].prev.as_ref().map(|p| p.value.clone())), (after, Some(v("2"))));
    assert!(matches!(store.compact(target).await, Err(StoreError::Compacted { .. })));
    let current = store.current_revision().await.unwrap();
    assert!(matches!(store.compact(current + 10).await, Err(StoreError::FutureRevision { .. })));
}

pub async fn values_over_the_limit_are_refused(store: &dyn Store) {
    let before = store.current_revision().await.unwrap();
    match store.create("/big/a", vec![7; TEST_MAX_VALUE + 1]).await {
        Err(StoreError::ValueTooLarge { size, limit, .. }) => {
            assert_eq!((size, limit), (TEST_MAX_VALUE + 1, TEST_MAX_VALUE))
        }
        other => panic!("oversized create gave {other:?}"),
    }
    assert_eq!(store.current_revision().await.unwrap(), before);
    let rev = store.create("/big/a", vec![7; TEST_MAX_VALUE]).await.unwrap();
    assert!(matches!(
        store.update("/big/a", vec![7; TEST_MAX_VALUE + 1], rev).await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    assert_eq!(store.get("/big/a", 0).await.unwrap().unwrap().value.len(), TEST_MAX_VALUE);
}

/// Guarded updates from many writers at once lose nothing: every increment lands exactly once.
pub async fn concurrent_guarded_updates_lose_nothing(store: Arc<dyn Store>) {
    store.create("/n/counter", v("0")).await.unwrap();
    let writers = 8;
    let increments = 15;
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..increments {
                loop {
                    let kv = store.get("/n/counter", 0).await.unwrap().unwrap();
                    let n: u64 = String::from_utf8(kv.value).unwrap().parse().unwrap();
                    match store.update("/n/counter", v(&(n + 1).to_string()), kv.mod_revision).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let value = store.get("/n/counter", 0).await.unwrap().unwrap().value;
    assert_eq!(String::from_utf8(value).unwrap(), (writers * increments).to_string());
}

/// A watcher that stops reading is ended with an error once its queue is full; writers are not held up.
pub async fn slow_watcher_is_ended_and_never_stalls_writers(store: &dyn Store) {
    let mut slow = store.watch("/slow/", 0).await.unwrap();
    let writes = TEST_WATCH_CAPACITY * 20;
    let started = std::time::Instant::now();
    for i in 0..writes {
        store.create(&format!("/slow/{i:04}"), v("x")).await.unwrap();
    }
    let writing = started.elapsed();
    assert!(writing < DEADLINE, "writes took {writing:?} with a stalled watcher");
    let mut delivered = 0;
    let ended = loop {
        match tokio::time::timeout(DEADLINE, slow.next()).await.expect("watcher neither delivers nor ends") {
            Some(Ok(WatchMessage::Events(events))) => delivered += events.len(),
            Some(Ok(WatchMessage::Progress(_))) => {}
            Some(Err(e)) => break e,
            None => panic!("watcher ended without an error after {delivered} events"),
        }
    };
    assert!(matches!(ended, StoreError::WatcherTooSlow), "ended with {ended}");
    assert!(delivered < writes, "all {delivered} events were queued: the queue is unbounded");
}

macro_rules! conformance_suite {
    ($backend:ident, $capacity:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn create_then_get() {
                super::create_then_get(&*super::$backend().await.store).await
            }
            #[tokio::test]
            async fn revisions_strictly_increase() {
                super::revisions_strictly_increase(&*super::$backend().await.store).await
            }
            #[tokio::test]
            async fn update_is_guarded_by_mod_revision() {
                super::update_is_guarded_by_mod_revision(&*super::$backend().await.store).await
            }
            #[tokio::test]
            async fn delete_returns_previous_value() {
                super::delete_returns_previous_value(&*super::$backend().await.store).await
            }
            #[tokio::test]
            async fn get_at_past_revisions() {
                super::get_at_past_revisions(&*super::$backend().await.store).await
            }
            #[tokio::test]
            async fn range_pages_through_a_prefix() {
                super::range_pages_through_a_prefix(&*super::$backend().await.store).await
            }
            #[tokio::test]
            async fn range_at_a_past_revision() {
                super::range_at_a_past_revision(&*super::$backend().await.store).await
            }
            #[tokio::test]
            async fn watch_sees_changes_in_order_with_previous_values() {
                super::watch_sees_changes_in_order_with_previous_values(&*super::$backend().await.store).await
            }
            #[tokio::test]
            async fn watch_replays_history_from_a_revision() {
                super::watch_replays_history_from_a_revision(&*super::$backend().await.store).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn watch_hands_over_from_history_to_live_without_gaps() {
                let harness = super::$backend().await;
                super::watch_hands_over_from_history_to_live_without_gaps(&*harness.store, $capacity).await
            }
            #[tokio::test]
            async fn watch_progress_follows_delivered_events() {
                super::watch_progress_follows_delivered_events(&*super::$backend().await.store).await
            }
            #[tokio::test]
            async fn compaction_forgets_history_but_keeps_current_state() {
                super::compaction_forgets_history_but_keeps_current_state(&*super::$backend().await.store).await
            }
            #[tokio::test]
            async fn values_over_the_limit_are_refused() {
                super::values_over_the_limit_are_refused(&*super::$backend().await.store).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_guarded_updates_lose_nothing() {
                super::concurrent_guarded_updates_lose_nothing(super::$backend().await.store).await
            }
            #[tokio::test]
            async fn slow_watcher_is_ended_and_never_stalls_writers() {
                super::slow_watcher_is_ended_and_never_stalls_writers(&*super::$backend().await.store).await
            }
        }
    };
}

conformance_suite!(memory, TEST_WATCH_CAPACITY);
conformance_suite!(sqlite, TEST_WATCH_CAPACITY);
conformance_suite!(etcd, TEST_WATCH_CAPACITY);
