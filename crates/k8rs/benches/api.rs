//! API server benchmark, side by side in one run: pod creates through the API against raw creates on the same
//! store backend, lists of 10,000 pods (JSON and Table), one event delivered to 1,000 watchers, and the server's
//! memory idle and holding 10,000 pods.
//!
//! `cargo bench -p k8rs --bench api`. It starts the release `k8rs server` itself on a free loopback port. The creates
//! are driven twice: by h2load (Debian's `nghttp2-client`), a lean load generator, and by a Rust client (hyper and
//! rustls); both share the machine's cores with the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use storage::Store;
use tokio::net::TcpStream;

/// The server's allocator, so that the raw store (whose SQLite allocates through it) runs as the server's does.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CLIENTS: usize = 16;
const CREATES_PER_CLIENT: usize = 500;
/// Rounds of (API JSON, API protobuf, raw store) creates, taking turns so that the machine's noise hits all three.
const CREATE_ROUNDS: usize = 3;
const LIST_PODS: usize = 10_000;
const FILL_PER_CLIENT: usize = 400;
const LIST_ROUNDS: usize = 15;
const WATCHERS: usize = 1_000;
const WATCH_CONNECTIONS: usize = 10;

fn pod(name: &str) -> String {
    pod_named("name", name)
}

/// The benchmark's pod with `metadata.<field>` (`name` or `generateName`) set to `value`.
fn pod_named(field: &str, value: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"{field}":"{value}","labels":{{"app":"bench","tier":"web"}}}},"spec":{{"containers":[{{"name":"app","image":"registry.local/app:1.2.3","ports":[{{"containerPort":8080,"protocol":"TCP"}}],"resources":{{"requests":{{"cpu":"100m","memory":"64Mi"}},"limits":{{"memory":"128Mi"}}}},"env":[{{"name":"MODE","value":"production"}}]}}],"restartPolicy":"Always","terminationGracePeriodSeconds":30}}}}"#
    )
}

/// The same pod as [`pod`] in Kubernetes protobuf, as kubectl 1.32+ sends typed creates: the `k8s\0` magic and a
/// `runtime.Unknown` envelope around the `generated.proto` encoding of the Pod.
fn pod_protobuf(name: &str) -> Vec<u8> {
    pod_protobuf_named(1, name)
}

/// [`pod_protobuf`] with ObjectMeta field `field` (1 name, 2 generateName) set to `value`.
fn pod_protobuf_named(field: u64, value: &str) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn bytes(out: &mut Vec<u8>, field: u64, value: &[u8]) {
        varint(out, field << 3 | 2);
        varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }
    fn number(out: &mut Vec<u8>, field: u64, value: u64) {
        varint(out, field << 3);
        varint(out, value);
    }
    fn message(build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        build(&mut out);
        out
    }
    fn entry(out: &mut Vec<u8>, field: u64, key: &str, value: &[u8]) {
        bytes(
            out,
            field,
            &message(|e| {
                bytes(e, 1, key.as_bytes());
                bytes(e, 2, value);
            }),
        );
    }
    let quantity = |q: &str| message(|m| bytes(m, 1, q.as_bytes()));
    let metadata = message(|m| {
        bytes(m, field, value.as_bytes());
        entry(m, 11, "app", b"bench");
        entry(m, 11, "tier", b"web");
    });
    let container = message(|c| {
        bytes(c, 1, b"app");
        bytes(c, 2, b"registry.local/app:1.2.3");
        bytes(
            c,
            6,
            &message(|p| {
                number(p, 3, 8080);
                bytes(p, 4, b"TCP");
            }),
        );
        bytes(
            c,
            7,
            &message(|e| {
                bytes(e, 1, b"MODE");
                bytes(e, 2, b"production");
            }),
        );
        bytes(
            c,
            8,
            &message(|r| {
                entry(r, 1, "memory", &quantity("128Mi"));
                entry(r, 2, "cpu", &quantity("100m"));
                entry(r, 2, "memory", &quantity("64Mi"));
            }),
        );
    });
    let spec = message(|s| {
        bytes(s, 2, &container);
        bytes(s, 3, b"Always");
        number(s, 4, 30);
    });
    let pod = message(|p| {
        bytes(p, 1, &metadata);
        bytes(p, 2, &spec);
    });
    let mut body = b"k8s\0".to_vec();
    body.extend(message(|u| {
        bytes(
            u,
            1,
            &message(|t| {
                bytes(t, 1, b"v1");
                bytes(t, 2, b"Pod");
            }),
        );
        bytes(u, 2, &pod);
    }));
    body
}

/// HTTPS with the admin's client certificate, as kubectl connects.
struct Client {
    tls: tokio_rustls::TlsConnector,
    port: u16,
}

type Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

impl Client {
    fn new(data_dir: &std::path::Path, port: u16) -> Client {
        let pem = |file: &str| std::fs::read(data_dir.join("server/tls").join(file)).expect("certificate file");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem("ca.crt")) {
            roots.add(cert.unwrap()).unwrap();
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&pem("admin.crt")).collect::<Result<_, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(&pem("admin.key")).unwrap();
        let mut config =
            rustls::ClientConfig::builder().with_root_certificates(roots).with_client_auth_cert(chain, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Client { tls: tokio_rustls::TlsConnector::from(Arc::new(config)), port }
    }

    async fn connect(&self) -> Sender {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let tls = self.tls.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
        let (sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        sender
    }
}

async fn send(sender: &mut Sender, method: Method, path: &str, accept: &str, body: Option<String>) -> (u16, Bytes) {
    let body = body.map(|b| ("application/json", b.into_bytes()));
    send_typed(sender, method, path, accept, body).await
}

async fn send_typed(
    sender: &mut Sender,
    method: Method,
    path: &str,
    accept: &str,
    body: Option<(&str, Vec<u8>)>,
) -> (u16, Bytes) {
    let mut request =
        Request::builder().method(method).uri(format!("https://localhost{path}")).header("accept", accept);
    let body = match body {
        Some((content_type, body)) => {
            request = request.header("content-type", content_type);
            body
        }
        None => Vec::new(),
    };
    let request = request.body(Full::new(Bytes::from(body))).unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    let code = response.status().as_u16();
    (code, response.into_body().collect().await.unwrap().to_bytes())
}

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are the
    // 12th and 13th of them, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum());
    Duration::from_millis(ticks * 10)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Json,
    Protobuf,
}

/// Creates `CLIENTS * CREATES_PER_CLIENT` pods named `PREFIX-c-i` through the API; the time it took.
async fn api_creates(client: &Client, namespace: &str, prefix: &str, encoding: Encoding) -> Duration {
    let mut senders = Vec::new();
    for _ in 0..CLIENTS {
        senders.push(client.connect().await);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, mut sender) in senders.into_iter().enumerate() {
        let path = format!("/api/v1/namespaces/{namespace}/pods");
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            for i in 0..CREATES_PER_CLIENT {
                let name = format!("{prefix}-{c}-{i}");
                let body = match encoding {
                    Encoding::Json => ("application/json", pod(&name).into_bytes()),
                    Encoding::Protobuf => ("application/vnd.kubernetes.protobuf", pod_protobuf(&name)),
                };
                let (code, body) = send_typed(&mut sender, Method::POST, &path, "application/json", Some(body)).await;
                assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

/// Creates `CLIENTS * CREATES_PER_CLIENT` pods with h2load (nghttp2's HTTP/2 load generator, C): `CLIENTS`
/// connections with one request in flight on each, every request the same body, which names its pod with
/// `generateName`; the time it took (h2load's, from its first connection to its last answer).
fn h2load_creates(port: u16, token: &str, body: &std::path::Path, content_type: &str) -> Duration {
    let creates = CLIENTS * CREATES_PER_CLIENT;
    let output = std::process::Command::new("h2load")
        .args(["-n", &creates.to_string(), "-c", &CLIENTS.to_string(), "-m", "1", "-t", "1"])
        .args(["-H", &format!("authorization: Bearer {token}"), "-H", &format!("content-type: {content_type}")])
        .args(["-H", "accept: application/json", "-d"])
        .arg(body)
        .arg(format!("https://127.0.0.1:{port}/api/v1/namespaces/bench/pods"))
        .output()
        .expect("h2load runs (Debian's nghttp2-client)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains(&format!("status codes: {creates} 2xx")), "not every create succeeded:\n{report}");
    // "finished in 804.53ms, 9943.67 req/s, ..."
    let finished = report.split("finished in ").nth(1).and_then(|rest| rest.split(',').next()).expect("h2load's time");
    let number = |suffix: &str| finished.strip_suffix(suffix).and_then(|n| n.parse::<f64>().ok());
    match (number("us"), number("ms"), number("s")) {
        (Some(us), _, _) => Duration::from_secs_f64(us / 1e6),
        (_, Some(ms), _) => Duration::from_secs_f64(ms / 1e3),
        (_, _, Some(s)) => Duration::from_secs_f64(s),
        _ => panic!("h2load's time: {finished}"),
    }
}

/// CPU time (user + system) of the children this process has waited for, h2load's.
fn children_cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The same creates straight into a store: each writes the pod as the API server stored it (defaulted, admitted,
/// with managedFields), so that both sides write the same bytes; the time it took.
async fn raw_creates(store: Arc<dyn Store>, stored_pod: &str, prefix: &str) -> Duration {
    let writes: Vec<Vec<(String, Vec<u8>)>> = (0..CLIENTS)
        .map(|c| {
            (0..CREATES_PER_CLIENT)
                .map(|i| {
                    let name = format!("{prefix}-{c}-{i}");
                    let value = stored_pod.replacen(r#""name":"stored""#, &format!(r#""name":"{name}""#), 1);
                    (format!("/registry/pods/raw/{name}"), value.into_bytes())
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writes in writes {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for (key, value) in writes {
                store.create(&key, value).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

/// The pod as the API server stores it: the created object without its resourceVersion (which the store keeps
/// outside the value).
async fn stored_pod(sender: &mut Sender) -> String {
    let path = "/api/v1/namespaces/bench/pods";
    let (code, body) = send(sender, Method::POST, path, "application/json", Some(pod("stored"))).await;
    assert_eq!(code, 201);
    let mut pod: serde_json::Value = serde_json::from_slice(&body).unwrap();
    pod["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    pod.to_string()
}

async fn create_namespace(sender: &mut Sender, name: &str) {
    let body = format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{name}"}}}}"#);
    let (code, _) = send(sender, Method::POST, "/api/v1/namespaces", "application/json", Some(body)).await;
    assert_eq!(code, 201);
}

/// The protobuf body must make the same pod as the JSON one, or the two create figures would not compare.
async fn check_protobuf_pod(sender: &mut Sender) {
    let path = "/api/v1/namespaces/bench/pods?dryRun=All";
    let body = ("application/vnd.kubernetes.protobuf", pod_protobuf("same"));
    let (code, from_protobuf) = send_typed(sender, Method::POST, path, "application/json", Some(body)).await;
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&from_protobuf));
    let (code, from_json) = send(sender, Method::POST, path, "application/json", Some(pod("same"))).await;
    assert_eq!(code, 201);
    let parts = |body: &Bytes| {
        let mut pod: serde_json::Value = serde_json::from_slice(body).unwrap();
        // The service-account volume's name has a random suffix.
        pod["spec"]["containers"][0].as_object_mut().unwrap().remove("volumeMounts");
        pod["spec"].as_object_mut().unwrap().remove("volumes");
        (pod["metadata"]["labels"].clone(), pod["spec"].clone())
    };
    assert_eq!(parts(&from_protobuf), parts(&from_json));
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A bearer token for h2load (which has no client certificates); the Rust clients use the admin's certificate.
    let dir = tempfile::Builder::new().prefix("k8rs-bench-").tempdir().unwrap();
    let token = "k8rs-bench-token";
    let token_file = dir.path().join("tokens.csv");
    std::fs::write(&token_file, format!("{token},bench,bench-uid,system:masters\n")).unwrap();
    let server = testkit::Server::start(
        env!("CARGO_BIN_EXE_k8rs").as_ref(),
        &["--token-auth-file", token_file.to_str().unwrap()],
    );
    let pid = server.pid();
    let client = Client::new(server.data_dir(), server.port);
    let mut admin = client.connect().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kib(pid);

    println!("k8rs API server (release build, SQLite store), {CLIENTS} concurrent clients\n");
    create_namespace(&mut admin, "bench").await;
    check_protobuf_pod(&mut admin).await;
    let stored_pod = stored_pod(&mut admin).await;
    let raw_store: Arc<dyn Store> =
        Arc::new(storage::sqlite::SqliteStore::open(dir.path().join("state.db"), Default::default()).unwrap());
    // Each round takes turns: h2load and the Rust client, each in JSON and in protobuf, then the raw creates.
    let drivers = [
        ("h2load", Encoding::Json),
        ("h2load", Encoding::Protobuf),
        ("hyper", Encoding::Json),
        ("hyper", Encoding::Protobuf),
    ];
    let mut time = [Duration::ZERO; 4];
    let mut server_cpu = [Duration::ZERO; 4];
    let mut client_cpu = [Duration::ZERO; 4];
    let (mut raw_time, mut raw_cpu) = (Duration::ZERO, Duration::ZERO);
    let me = std::process::id();
    for round in 0..CREATE_ROUNDS {
        for (i, (driver, encoding)) in drivers.iter().enumerate() {
            let prefix = format!("{}{}{round}", &driver[..1], if *encoding == Encoding::Json { "j" } else { "p" });
            let (server_before, me_before, children_before) = (cpu_time(pid), cpu_time(me), children_cpu_time());
            time[i] += match *driver {
                "h2load" => {
                    let (content_type, body) = match encoding {
                        Encoding::Json => {
                            ("application/json", pod_named("generateName", &format!("{prefix}-")).into_bytes())
                        }
                        Encoding::Protobuf => {
                            ("application/vnd.kubernetes.protobuf", pod_protobuf_named(2, &format!("{prefix}-")))
                        }
                    };
                    let path = dir.path().join("body");
                    std::fs::write(&path, body).unwrap();
                    h2load_creates(server.port, token, &path, content_type)
                }
                _ => api_creates(&client, "bench", &prefix, *encoding).await,
            };
            server_cpu[i] += cpu_time(pid) - server_before;
            client_cpu[i] += (cpu_time(me) - me_before) + (children_cpu_time() - children_before);
        }
        let raw_before = cpu_time(me);
        raw_time += raw_creates(raw_store.clone(), &stored_pod, &format!("r{round}")).await;
        raw_cpu += cpu_time(me) - raw_before;
    }
    let creates = (CREATE_ROUNDS * CLIENTS * CREATES_PER_CLIENT) as f64;
    let per_second = |time: Duration| creates / time.as_secs_f64();
    let raw = per_second(raw_time);
    println!("| pod creates/s, {CLIENTS} connections | through the API, JSON | through the API, protobuf | raw store creates | ratio JSON | ratio protobuf |");
    println!("|---|---|---|---|---|---|");
    for (row, name) in [(0, "h2load (nghttp2)"), (2, "Rust client (hyper, rustls)")] {
        let (json, protobuf) = (per_second(time[row]), per_second(time[row + 1]));
        println!("| {name} | {json:.0} | {protobuf:.0} | {raw:.0} | {:.2} | {:.2} |", json / raw, protobuf / raw);
    }
    let micros = |cpu: Duration| cpu.as_secs_f64() * 1e6 / creates;
    println!(
        "\nCPU per create (user + system), JSON / protobuf: the server's {:.0} / {:.0} µs with h2load, {:.0} / {:.0} µs \
         with the Rust client; h2load's own {:.0} / {:.0} µs, the Rust client's {:.0} / {:.0} µs; a raw create's {:.0} µs.\n",
        micros(server_cpu[0]),
        micros(server_cpu[1]),
        micros(server_cpu[2]),
        micros(server_cpu[3]),
        micros(client_cpu[0]),
        micros(client_cpu[1]),
        micros(client_cpu[2]),
        micros(client_cpu[3]),
        micros(raw_cpu)
    );
    if std::env::args().any(|a| a == "creates") {
        return;
    }

    // Fill to 10,000 pods in one namespace for the list and memory figures.
    create_namespace(&mut admin, "big").await;
    let mut filled = 0;
    while filled < LIST_PODS {
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let mut sender = client.connect().await;
            let names: Vec<String> =
                (filled + c..LIST_PODS).step_by(CLIENTS).take(FILL_PER_CLIENT).map(|i| format!("big-{i}")).collect();
            tasks.push(tokio::spawn(async move {
                for name in names {
                    let (code, _) = send(
                        &mut sender,
                        Method::POST,
                        "/api/v1/namespaces/big/pods",
                        "application/json",
                        Some(pod(&name)),
                    )
                    .await;
                    assert_eq!(code, 201);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        filled += CLIENTS * FILL_PER_CLIENT;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let full_rss = rss_kib(pid);
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let mut json_times = Vec::new();
    let mut table_times = Vec::new();
    let mut cached_times = Vec::new();
    for _ in 0..LIST_ROUNDS {
        for (accept, path, times) in [
            ("application/json", "/api/v1/namespaces/big/pods", &mut json_times),
            (table, "/api/v1/namespaces/big/pods", &mut table_times),
            ("application/json", "/api/v1/namespaces/big/pods?resourceVersion=0", &mut cached_times),
        ] {
            let started = Instant::now();
            let (code, body) = send(&mut admin, Method::GET, path, accept, None).await;
            assert_eq!(code, 200);
            assert!(body.len() > LIST_PODS * 100);
            times.push(started.elapsed());
        }
    }
    println!("| list of {LIST_PODS} pods, p50 ms | JSON (consistent, from the store) | Table | JSON, resourceVersion=0 (watch cache) |");
    println!("|---|---|---|---|");
    println!(
        "| | {} | {} | {} |\n",
        ms(percentile(&mut json_times, 0.5)),
        ms(percentile(&mut table_times, 0.5)),
        ms(percentile(&mut cached_times, 0.5))
    );
    let after_lists_rss = rss_kib(pid);

    // 1,000 watchers on one namespace, multiplexed over a few HTTP/2 connections; then one write.
    create_namespace(&mut admin, "watched").await;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(WATCHERS);
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::channel::<Instant>(WATCHERS);
    for c in 0..WATCH_CONNECTIONS {
        let sender = client.connect().await;
        for _ in 0..WATCHERS / WATCH_CONNECTIONS {
            let (mut sender, ready_tx, seen_tx) = (sender.clone(), ready_tx.clone(), seen_tx.clone());
            tokio::spawn(async move {
                let request = Request::builder()
                    .uri("https://localhost/api/v1/namespaces/watched/pods?watch=true&timeoutSeconds=120")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                sender.ready().await.unwrap();
                let mut body = sender.send_request(request).await.unwrap().into_body();
                ready_tx.send(()).await.unwrap();
                while let Some(frame) = body.frame().await {
                    if frame.ok().and_then(|f| f.into_data().ok()).is_some_and(|d| !d.is_empty()) {
                        let _ = seen_tx.send(Instant::now()).await;
                        return;
                    }
                }
            });
        }
        let _ = c;
    }
    for _ in 0..WATCHERS {
        ready_rx.recv().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let written = Instant::now();
    let (code, _) =
        send(&mut admin, Method::POST, "/api/v1/namespaces/watched/pods", "application/json", Some(pod("the-event")))
            .await;
    assert_eq!(code, 201);
    let mut delivery = Vec::with_capacity(WATCHERS);
    for _ in 0..WATCHERS {
        delivery.push(seen_rx.recv().await.unwrap().duration_since(written));
    }
    println!("| {WATCHERS} watchers, one event | p50 ms | p99 ms | last ms |\n|---|---|---|---|");
    println!(
        "| from the write's start to each watcher | {} | {} | {} |\n",
        ms(percentile(&mut delivery, 0.5)),
        ms(percentile(&mut delivery, 0.99)),
        ms(percentile(&mut delivery, 1.0))
    );
    // The list's pods, and those of the create rounds: four ways of driving them per round.
    let pods = LIST_PODS + drivers.len() * CREATE_ROUNDS * CLIENTS * CREATES_PER_CLIENT;
    println!("| server RSS, MiB | idle | holding {pods} pods | after the lists | with {WATCHERS} watchers open |");
    println!("|---|---|---|---|---|");
    let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
    println!("| | {} | {} | {} | {} |", mib(idle_rss), mib(full_rss), mib(after_lists_rss), mib(rss_kib(pid)));
}
