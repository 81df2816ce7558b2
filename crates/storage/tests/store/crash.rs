//! Durability: every write the SQLite store acknowledged survives `kill -9` of the process that made it.
//!
//! The test runs this test binary again as a child (the ignored `child_writer` test), which writes as fast as
//! it can from many tasks and prints each acknowledged write; the parent kills it mid-stream, reopens the file
//! and checks every acknowledged write.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use storage::sqlite::{SqliteOptions, SqliteStore};
use storage::Store;

const CHILD_ENV: &str = "K8RS_CRASH_TEST_DB";
const KILL_AFTER_ACKS: usize = 3000;

fn value_for(key: &str) -> Vec<u8> {
    key.as_bytes().iter().cycle().take(300).copied().collect()
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::Builder::new().prefix("k8rs-crash-").tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["crash::child_writer", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // If this test fails before it kills the child, the child dies with the test's thread.
    testkit::die_with_parent(&mut command);
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked: HashMap<String, i64> = HashMap::new();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut killed = false;
    // Every line the child printed before it died is an acknowledged write, so read to the end of the pipe.
    while let Some(Ok(line)) = lines.next() {
        if let Some(ack) = line.strip_prefix("ACK ") {
            let (key, revision) = ack.split_once(' ').unwrap();
            acked.insert(key.to_string(), revision.parse().unwrap());
        }
        if !killed && (acked.len() >= KILL_AFTER_ACKS || Instant::now() > deadline) {
            child.kill().unwrap(); // SIGKILL
            killed = true;
        }
    }
    child.wait().unwrap();
    assert!(killed, "the child stopped on its own after {} writes", acked.len());
    assert!(acked.len() >= KILL_AFTER_ACKS, "only {} writes acknowledged", acked.len());

    let store = SqliteStore::open(&db, SqliteOptions::default()).expect("the store reopens after kill -9");
    let max_acked = acked.values().copied().max().unwrap();
    assert!(store.current_revision().await.unwrap() >= max_acked);
    for (key, revision) in &acked {
        let kv = store.get(key, 0).await.unwrap().unwrap_or_else(|| panic!("acknowledged {key} is lost"));
        assert_eq!(kv.mod_revision, *revision, "{key}");
        assert_eq!(kv.value, value_for(key), "{key} is damaged");
    }
}

/// Runs only as the child of `acknowledged_writes_survive_kill_9`, which kills it.
#[test]
#[ignore = "child process of acknowledged_writes_survive_kill_9"]
fn child_writer() {
    let Some(db) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Arc::new(SqliteStore::open(db, SqliteOptions::default()).unwrap());
        let mut tasks = Vec::new();
        for writer in 0..32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/crash/{writer}/{i}");
                    let revision = store.create(&key, value_for(&key)).await.unwrap();
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {key} {revision}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}
