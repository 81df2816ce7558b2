//! Bad input at open: a corrupt or foreign file is refused with an error naming it; an unreachable etcd gives
//! a clear error after retrying.

use std::time::{Duration, Instant};

use storage::etcd::{EtcdOptions, EtcdStore};
use storage::sqlite::{SqliteOptions, SqliteStore};
use storage::{Store, StoreError};

fn open_error(path: &std::path::Path) -> StoreError {
    match SqliteStore::open(path, SqliteOptions::default()) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
    let dir = tempfile::Builder::new().prefix("k8rs-bad-").tempdir().unwrap();
    let path = dir.path().join("state.db");
    let garbage: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let error = open_error(&path);
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains(&path.display().to_string()), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "the file was changed");
}

#[test]
fn a_foreign_sqlite_database_is_refused() {
    let dir = tempfile::Builder::new().prefix("k8rs-bad-").tempdir().unwrap();
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE customers (id INTEGER, name TEXT); INSERT INTO customers VALUES (1, 'x');")
        .unwrap();
    drop(conn);
    let error = open_error(&path);
    let message = error.to_string();
    assert!(message.contains("other.db") && message.contains("customers"), "{message}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM customers", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 1, "the foreign database was changed");
}

#[test]
fn a_damaged_store_is_refused() {
    let dir = tempfile::Builder::new().prefix("k8rs-bad-").tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        runtime.block_on(async {
            for i in 0..300 {
                store.create(&format!("/k/{i}"), vec![1; 2000]).await.unwrap();
            }
            store.compact(store.current_revision().await.unwrap()).await.unwrap();
        });
    }
    // Overwrite the middle of the file (past the header) with garbage.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 64 * 1024, "store file unexpectedly small: {}", bytes.len());
    let middle = bytes.len() / 2;
    bytes[middle..middle + 16 * 1024].fill(0xA5);
    std::fs::write(&path, &bytes).unwrap();
    let error = open_error(&path);
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("state.db"), "{error}");
}

#[test]
fn an_empty_file_becomes_a_new_store() {
    let dir = tempfile::Builder::new().prefix("k8rs-bad-").tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, b"").unwrap();
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(runtime.block_on(store.current_revision()).unwrap(), 0);
}

#[tokio::test]
async fn an_unreachable_etcd_is_retried_then_reported() {
    let port = testkit::free_port(); // nothing listens there
    let endpoint = format!("http://127.0.0.1:{port}");
    let options = EtcdOptions { connect_timeout: Duration::from_secs(2), ..EtcdOptions::default() };
    let started = Instant::now();
    let error = match EtcdStore::connect(std::slice::from_ref(&endpoint), options).await {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e,
    };
    let waited = started.elapsed();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error}");
    assert!(error.is_transient());
    assert!(error.to_string().contains(&endpoint), "{error}");
    assert!(waited >= Duration::from_millis(1500), "gave up after {waited:?} without retrying");
}

#[tokio::test]
async fn etcd_going_away_gives_an_unavailable_error() {
    let mut etcd = testkit::Etcd::start();
    let options = EtcdOptions { request_timeout: Duration::from_secs(2), ..EtcdOptions::default() };
    let store = EtcdStore::connect(&[etcd.endpoint()], options).await.unwrap();
    store.create("/a", b"1".to_vec()).await.unwrap();
    etcd.kill();
    let error = store.get("/a", 0).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error}");
    assert!(error.to_string().contains(&etcd.endpoint()), "{error}");
}
