//! Side-by-side benchmark of the storage backends, in one run on one machine:
//! the SQLite backend, the etcd backend, and raw etcd-client calls against the same etcd.
//!
//! `cargo bench -p storage --bench store` (needs Debian's etcd-server). Prints a Markdown table and the ratios
//! the targets are stated in. `K8RS_BENCH_SECONDS` sets the time per write scenario (default 5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, WatchOptions};
use storage::etcd::{EtcdOptions, EtcdStore};
use storage::sqlite::{SqliteOptions, SqliteStore};
use storage::{RangeRequest, Store, WatchMessage};

const VALUE_BYTES: usize = 1024;
const RANGE_KEYS: usize = 10_000;
const RANGE_ROUNDS: usize = 60;
const WATCH_EVENTS: usize = 500;
const WRITERS: [usize; 3] = [1, 16, 64];

/// The operations measured, as each target does them.
#[async_trait::async_trait]
trait Target: Send + Sync + 'static {
    /// Creates `key` only if absent (the API server's create).
    async fn create(&self, key: String, value: Vec<u8>);
    /// Reads every key under `prefix`; returns how many.
    async fn range(&self, prefix: &str) -> usize;
    /// Starts watching `prefix`; the returned receiver yields once per event.
    async fn watch(&self, prefix: &str) -> tokio::sync::mpsc::UnboundedReceiver<()>;
}

struct StoreTarget(Arc<dyn Store>);

#[async_trait::async_trait]
impl Target for StoreTarget {
    async fn create(&self, key: String, value: Vec<u8>) {
        self.0.create(&key, value).await.expect("create");
    }

    async fn range(&self, prefix: &str) -> usize {
        let request = RangeRequest { prefix: prefix.into(), ..Default::default() };
        self.0.range(request).await.expect("range").kvs.len()
    }

    async fn watch(&self, prefix: &str) -> tokio::sync::mpsc::UnboundedReceiver<()> {
        let mut watcher = self.0.watch(prefix, 0).await.expect("watch");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) = watcher.next().await {
                if let WatchMessage::Events(events) = message {
                    for _ in events {
                        let _ = tx.send(());
                    }
                }
            }
        });
        rx
    }
}

/// etcd-client used directly, doing what the etcd backend does with no layer in between.
struct RawEtcd {
    client: Client,
    kv: etcd_client::KvClient,
}

#[async_trait::async_trait]
impl Target for RawEtcd {
    async fn create(&self, key: String, value: Vec<u8>) {
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let response = self.kv.clone().txn(txn).await.expect("txn");
        assert!(response.succeeded());
    }

    async fn range(&self, prefix: &str) -> usize {
        self.kv.clone().get(prefix, Some(GetOptions::new().with_prefix())).await.expect("get").kvs().len()
    }

    async fn watch(&self, prefix: &str) -> tokio::sync::mpsc::UnboundedReceiver<()> {
        let options = WatchOptions::new().with_prefix().with_prev_key();
        let mut stream = self.client.watch_client().watch(prefix, Some(options)).await.expect("watch");
        stream.message().await.expect("watch created");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(response)) = stream.message().await {
                for _ in response.events() {
                    let _ = tx.send(());
                }
            }
        });
        rx
    }
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn percentile(&mut self, p: f64) -> Duration {
        self.0.sort();
        let index = ((self.0.len() as f64 * p).ceil() as usize).clamp(1, self.0.len()) - 1;
        self.0[index]
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct WriteResult {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn writes(target: Arc<dyn Target>, name: &str, writers: usize, duration: Duration) -> WriteResult {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let target = target.clone();
        let prefix = format!("/bench/{name}/w{writers}/{writer}/");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let start = Instant::now();
                target.create(format!("{prefix}{i}"), vec![b'x'; VALUE_BYTES]).await;
                latencies.push(start.elapsed());
                i += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("writer"));
    }
    let elapsed = started.elapsed();
    let count = all.len();
    let mut latencies = Latencies(all);
    WriteResult {
        per_second: count as f64 / elapsed.as_secs_f64(),
        p50: latencies.percentile(0.50),
        p99: latencies.percentile(0.99),
    }
}

async fn fill_range(target: &Arc<dyn Target>, prefix: &str) {
    let mut tasks = Vec::new();
    for chunk in 0..16 {
        let (target, prefix) = (target.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            for i in (chunk..RANGE_KEYS).step_by(16) {
                target.create(format!("{prefix}{i:05}"), vec![b'r'; VALUE_BYTES]).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("fill");
    }
}

/// p50 of full reads of RANGE_KEYS keys, the targets taking turns round by round so drift hits all alike.
async fn ranges(targets: &[(&str, Arc<dyn Target>)]) -> Vec<Duration> {
    let prefix = |name: &str| format!("/bench/{}/range/", name.replace(' ', "-"));
    for (name, target) in targets {
        fill_range(target, &prefix(name)).await;
    }
    let mut latencies: Vec<Latencies> = targets.iter().map(|_| Latencies(Vec::new())).collect();
    for _ in 0..RANGE_ROUNDS {
        for ((name, target), latencies) in targets.iter().zip(&mut latencies) {
            let start = Instant::now();
            assert_eq!(target.range(&prefix(name)).await, RANGE_KEYS);
            latencies.0.push(start.elapsed());
        }
    }
    latencies.iter_mut().map(|l| l.percentile(0.5)).collect()
}

/// From the start of a write to its event reaching a watcher, one write at a time.
async fn watch_latency(target: &Arc<dyn Target>, name: &str) -> (Duration, Duration) {
    let prefix = format!("/bench/{name}/watch/");
    let mut events = target.watch(&prefix).await;
    let mut latencies = Latencies(Vec::new());
    for i in 0..WATCH_EVENTS {
        let start = Instant::now();
        target.create(format!("{prefix}{i}"), vec![b'w'; VALUE_BYTES]).await;
        events.recv().await.expect("event");
        latencies.0.push(start.elapsed());
    }
    (latencies.percentile(0.5), latencies.percentile(0.99))
}

#[tokio::main]
async fn main() {
    let seconds = std::env::var("K8RS_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    let etcd = testkit::Etcd::start();
    let dir = tempfile::Builder::new().prefix("k8rs-bench-").tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(dir.path().join("state.db"), SqliteOptions::default()).expect("sqlite");
    let etcd_store = EtcdStore::connect(&[etcd.endpoint()], EtcdOptions::default()).await.expect("etcd");
    let raw = Client::connect([etcd.endpoint()], None).await.expect("etcd-client");
    let targets: Vec<(&str, Arc<dyn Target>)> = vec![
        ("sqlite backend", Arc::new(StoreTarget(Arc::new(sqlite)))),
        ("etcd backend", Arc::new(StoreTarget(Arc::new(etcd_store)))),
        (
            "raw etcd-client",
            Arc::new(RawEtcd { kv: raw.kv_client().max_decoding_message_size(usize::MAX), client: raw }),
        ),
    ];

    println!("{seconds} s per write scenario, {VALUE_BYTES} B values, create-if-absent transactions\n");
    println!("| target | writers | writes/s | p50 ms | p99 ms |\n|---|---|---|---|---|");
    let mut throughput = std::collections::HashMap::new();
    for &writers in &WRITERS {
        for (name, target) in &targets {
            let slug = name.replace(' ', "-");
            let result = writes(target.clone(), &slug, writers, duration).await;
            println!("| {name} | {writers} | {:.0} | {} | {} |", result.per_second, ms(result.p50), ms(result.p99));
            throughput.insert((*name, writers), result.per_second);
        }
    }
    println!("\n| target | range of {RANGE_KEYS} keys, p50 ms | watch delivery p50 ms | watch delivery p99 ms |");
    println!("|---|---|---|---|");
    let range_p50 = ranges(&targets).await;
    let mut ranges = std::collections::HashMap::new();
    for ((name, target), range) in targets.iter().zip(range_p50) {
        let slug = name.replace(' ', "-");
        let (p50, p99) = watch_latency(target, &slug).await;
        println!("| {name} | {} | {} | {} |", ms(range), ms(p50), ms(p99));
        ranges.insert(*name, range);
    }
    println!("\nRatios:");
    for &writers in &WRITERS {
        let sqlite = throughput[&("sqlite backend", writers)];
        let backend = throughput[&("etcd backend", writers)];
        let raw = throughput[&("raw etcd-client", writers)];
        println!(
            "- {writers} writers: sqlite backend / raw etcd = {:.2}; etcd backend / raw etcd = {:.2}",
            sqlite / raw,
            backend / raw
        );
    }
    println!(
        "- range: etcd backend time / raw etcd time = {:.2}",
        ranges["etcd backend"].as_secs_f64() / ranges["raw etcd-client"].as_secs_f64()
    );
}
