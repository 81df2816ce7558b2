//! The SQLite files stay bounded under a steady stream of updates: automatic compaction keeps only the
//! history window, and the space it frees is reused or given back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use storage::sqlite::{SqliteOptions, SqliteStore};
use storage::{spawn_compactor, Store};

const KEYS: usize = 1000;
const UPDATES: usize = 200_000;
const VALUE_BYTES: usize = 1024;
const WRITERS: usize = 16;
const WINDOW: Duration = Duration::from_secs(2);

fn files_size(db: &std::path::Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            std::fs::metadata(path).map_or(0, |m| m.len())
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_stay_within_three_times_live_data_plus_window() {
    let dir = tempfile::Builder::new().prefix("k8rs-compaction-").tempdir().unwrap();
    let db = dir.path().join("state.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).unwrap());
    let _compactor = spawn_compactor(store.clone(), WINDOW);

    let mut revisions = Vec::with_capacity(KEYS);
    for key in 0..KEYS {
        revisions.push(store.create(&format!("/size/{key:04}"), vec![0; VALUE_BYTES]).await.unwrap());
    }

    // Sample the files and the revision while the writers run.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (store, db, done) = (store.clone(), db.clone(), done.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new(); // (when, revision, bytes on disk)
            while !done.load(Ordering::SeqCst) {
                samples.push((Instant::now(), store.current_revision().await.unwrap(), files_size(&db)));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        })
    };
    let per_writer = UPDATES / WRITERS;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        // Each writer owns its own keys, so every update lands at the first try.
        let mut mine: Vec<(String, i64)> =
            (writer..KEYS).step_by(WRITERS).map(|key| (format!("/size/{key:04}"), revisions[key])).collect();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let slot = i % mine.len();
                let (key, revision) = &mut mine[slot];
                *revision = store.update(key, vec![(i % 251) as u8; VALUE_BYTES], *revision).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let written = store.current_revision().await.unwrap();
    // Let the compactor pass the last write: then the window holds no history.
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.compacted_revision().await.unwrap() < written {
        assert!(Instant::now() < deadline, "compaction never caught up with revision {written}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A compaction gives the space back right after its last chunk; one more compaction (after one more write)
    // is queued behind it, so once that is done the first one's space is back.
    let last = store
        .update("/size/0000", vec![1; VALUE_BYTES], store.get("/size/0000", 0).await.unwrap().unwrap().mod_revision)
        .await
        .unwrap();
    while store.compacted_revision().await.unwrap() < last {
        assert!(Instant::now() < deadline, "compaction never caught up with revision {last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.store(true, Ordering::SeqCst);
    let samples = sampler.await.unwrap();

    // The most updates that ever fell within one window, measured from the samples.
    let mut window_updates = 0;
    for (i, &(at, revision, _)) in samples.iter().enumerate() {
        let earliest = samples[..i].iter().find(|(then, _, _)| at.duration_since(*then) <= WINDOW);
        if let Some(&(_, then, _)) = earliest {
            window_updates = window_updates.max(revision - then);
        }
    }
    let live = (KEYS * VALUE_BYTES) as u64;
    let window = window_updates as u64 * VALUE_BYTES as u64;
    let bound = 3 * (live + window);
    let peak = samples.iter().map(|s| s.2).max().unwrap();
    let end = files_size(&db);
    let written_bytes = (UPDATES * VALUE_BYTES) as u64;
    eprintln!(
        "{UPDATES} updates ({} MB): live {} KB, window {} KB ({window_updates} updates), bound {} KB, \
         peak {} KB, end {} KB",
        written_bytes >> 20,
        live >> 10,
        window >> 10,
        bound >> 10,
        peak >> 10,
        end >> 10
    );
    assert!(peak <= bound, "files reached {peak} bytes, over 3 x (live + window) = {bound}");
    // Once the writes stop and the window passes, the space history took is given back.
    assert!(end <= 3 * live, "files ended at {end} bytes, over 3 x live = {}", 3 * live);
    // Nothing was lost on the way: every key holds its last value.
    let all = store.range(storage::RangeRequest { prefix: "/size/".into(), ..Default::default() }).await.unwrap();
    assert_eq!(all.kvs.len(), KEYS);
}
