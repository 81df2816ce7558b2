//! The resource metrics API (`metrics.k8s.io/v1beta1`) through the real `kubectl top`, with no containers: the
//! server scrapes a fake kubelet that this test runs (HTTPS with a serving certificate signed by the cluster's CA,
//! requiring a CA-signed client certificate, as the kubelet does) and whose counters advance by fixed amounts per
//! scrape, 10 s of its own clock apart, so every usage is exact.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use testkit::Server;

mod support;

use support::{fails, ok};

const DEADLINE: Duration = Duration::from_secs(60);
const MI: u64 = 1 << 20;

/// The fake kubelet's series: `(namespace, pod, container, CPU seconds added per scrape, working set)`.
const CONTAINERS: [(&str, &str, &str, f64, u64); 6] = [
    ("metrics", "web-1", "app", 2.5, 64 * MI),
    ("metrics", "web-1", "sidecar", 0.5, 16 * MI),
    // 1/64 s per 10 s: 1562500 nanocores, below a millicore's resolution.
    ("metrics", "web-2", "app", 0.015625, 10 * MI),
    ("other", "db-0", "db", 1.0, 256 * MI),
    ("other", "cache", "redis", 0.25, 2 * MI),
    // Reported, but no such Pod exists: never listed. Its label needs escaping in the text.
    ("metrics", "ghost", "say \"hi\"\\now", 1.0, MI),
];

/// `/metrics/resource` at the `n`th scrape: every counter has grown `n` times, the clock is `n` × 10 s on.
fn exposition(n: u64, base_ms: u64) -> String {
    let at = base_ms + n * 10_000;
    let mut text = String::from("# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter\n");
    let labels = |namespace: &str, pod: &str, container: &str| {
        let container = container.replace('\\', r"\\").replace('"', r#"\""#);
        format!("{{container=\"{container}\",namespace=\"{namespace}\",pod=\"{pod}\"}}")
    };
    for (namespace, pod, container, per_scrape, _) in CONTAINERS {
        let cpu = 3.0 + per_scrape * n as f64;
        text += &format!("container_cpu_usage_seconds_total{} {cpu} {at}\n", labels(namespace, pod, container));
    }
    text += "# TYPE container_memory_working_set_bytes gauge\n";
    for (namespace, pod, container, _, memory) in CONTAINERS {
        text += &format!("container_memory_working_set_bytes{} {memory} {at}\n", labels(namespace, pod, container));
    }
    text += "# TYPE container_start_time_seconds gauge\n";
    for (namespace, pod, container, _, _) in CONTAINERS {
        let started = base_ms as f64 / 1000.0 - 3600.0;
        text += &format!("container_start_time_seconds{} {started:e}\n", labels(namespace, pod, container));
    }
    // The node: 2 s of CPU per scrape (200m), a working set of 1 GiB and a few pages more each time.
    text += &format!("node_cpu_usage_seconds_total {} {at}\n", 100.0 + 2.0 * n as f64);
    text += &format!("node_memory_working_set_bytes {} {at}\n", (1u64 << 30) + 4096 * n);
    text += "resource_scrape_error 0\n";
    text
}

/// A kubelet that serves only `/metrics/resource`, over TLS with a certificate for 127.0.0.1 signed by the
/// server's CA, to clients with a certificate of that CA. Returns its port and the count of scrapes served.
fn fake_kubelet(server: &Server) -> (u16, Arc<AtomicU64>) {
    let tls_dir = server.data_dir().join("server/tls");
    let ca_pem = std::fs::read_to_string(tls_dir.join("ca.crt")).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(tls_dir.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "fake-kubelet");
    params.subject_alt_names.push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    let config = Arc::new(config);

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let scrapes = Arc::new(AtomicU64::new(0));
    let counter = scrapes.clone();
    let base_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let Ok(connection) = rustls::ServerConnection::new(config.clone()) else { continue };
            let mut tls = rustls::StreamOwned::new(connection, tcp);
            let mut head = Vec::new();
            let mut buffer = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buffer[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let (status, body) = if head.starts_with("GET /metrics/resource ") {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                ("200 OK", exposition(n, base_ms))
            } else {
                ("404 Not Found", String::from("404 page not found\n"))
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(response.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (port, scrapes)
}

fn apply(server: &Server, manifest: &str) {
    ok(server.kubectl_stdin(None, &["apply", "-f", "-"], manifest));
}

/// A Node whose status points at a kubelet on 127.0.0.1:`port`.
fn node(server: &Server, name: &str, selected: &str, port: u16) {
    apply(
        server,
        &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {{metrics-test: {selected:?}}}}}\n"),
    );
    let status = serde_json::json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
    }});
    ok(server
        .kubectl(None, &["patch", "node", name, "--subresource=status", "--type=merge", "-p", &status.to_string()]));
}

/// A Pod no scheduler takes (it stays unbound: nothing here runs it).
fn pod(namespace: &str, name: &str, app: &str, containers: &[&str]) -> String {
    let containers: String = containers.iter().map(|c| format!("  - name: {c:?}\n    image: busybox\n")).collect();
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}, labels: {{app: {app}}}}}\n\
         spec:\n  schedulerName: nobody\n  containers:\n{containers}"
    )
}

/// The rows of a kubectl table, each split at whitespace, without the header.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines().skip(1).map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

fn raw(server: &Server, path: &str) -> Value {
    serde_json::from_str(&ok(server.kubectl(None, &["get", "--raw", path]))).unwrap()
}

#[test]
fn kubectl_top_reads_usage_scraped_from_kubelets() {
    let server = support::server(&["--metrics-resolution", "1s"]);
    let (port, scrapes) = fake_kubelet(&server);
    // A node whose kubelet does not answer: a port nothing listens on any more.
    let dead_port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    node(&server, "n1", "yes", port);
    node(&server, "n2", "no", dead_port);
    ok(server.kubectl(None, &["create", "namespace", "metrics"]));
    ok(server.kubectl(None, &["create", "namespace", "other"]));
    let manifests = [
        pod("metrics", "web-1", "web", &["app", "sidecar"]),
        pod("metrics", "web-2", "web", &["app"]),
        // Exists, but the kubelet reports nothing for it.
        pod("metrics", "idle", "idle", &["main"]),
        pod("other", "db-0", "db", &["db"]),
        pod("other", "cache", "cache", &["redis"]),
    ];
    apply(&server, &manifests.concat());

    // Discovery: what `kubectl api-resources` shows, for kubectl 1.33 (aggregated v2) and 1.27 (v2beta1).
    for version in [None, Some("1.27")] {
        let resources = ok(server.kubectl(version, &["api-resources", "--api-group=metrics.k8s.io", "--no-headers"]));
        let listed: Vec<Vec<&str>> = resources.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            listed,
            [
                vec!["nodes", "metrics.k8s.io/v1beta1", "false", "NodeMetrics"],
                vec!["pods", "metrics.k8s.io/v1beta1", "true", "PodMetrics"]
            ],
            "{version:?}"
        );
    }

    // The first answers need two scrapes of each series; clients are answered meanwhile, never kept waiting.
    let until = Instant::now() + DEADLINE;
    let all_pods = loop {
        let out = server.kubectl(None, &["top", "pod", "-A"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && text.contains("db-0") && text.contains("web-2") && text.contains("cache") {
            break text;
        }
        assert!(Instant::now() < until, "no pod metrics after {DEADLINE:?}: {text}{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(scrapes.load(Ordering::SeqCst) >= 2);
    // kubectl shows CPU in millicores rounded up and memory in whole MiB.
    assert_eq!(
        rows(&all_pods),
        [
            ["metrics", "web-1", "300m", "80Mi"],
            ["metrics", "web-2", "2m", "10Mi"],
            ["other", "cache", "25m", "2Mi"],
            ["other", "db-0", "100m", "256Mi"],
        ]
    );
    let in_namespace = ok(server.kubectl(None, &["top", "pod", "-n", "metrics"]));
    assert_eq!(rows(&in_namespace), [["web-1", "300m", "80Mi"], ["web-2", "2m", "10Mi"]]);
    let containers = ok(server.kubectl(None, &["top", "pod", "-n", "metrics", "--containers"]));
    assert_eq!(
        rows(&containers),
        [["web-1", "app", "250m", "64Mi"], ["web-1", "sidecar", "50m", "16Mi"], ["web-2", "app", "2m", "10Mi"]]
    );
    let selected = ok(server.kubectl(None, &["top", "pod", "-n", "metrics", "-l", "app=web", "--no-headers"]));
    assert_eq!(selected.lines().count(), 2, "{selected}");
    let by_field =
        ok(server
            .kubectl(None, &["top", "pod", "-A", "--field-selector", "metadata.namespace=other,metadata.name!=db-0"]));
    assert_eq!(rows(&by_field), [["other", "cache", "25m", "2Mi"]]);
    let one = ok(server.kubectl(None, &["top", "pod", "web-2", "-n", "metrics", "--containers"]));
    assert_eq!(rows(&one), [["web-2", "app", "2m", "10Mi"]]);
    // kubectl 1.27 reads the same API.
    let old = ok(server.kubectl(Some("1.27"), &["top", "pod", "-n", "other", "--no-headers"]));
    assert!(old.contains("db-0 ") && old.contains("100m") && old.contains("256Mi"), "{old}");

    // A pod without metrics and a pod that does not exist: upstream's two messages.
    let idle = fails(server.kubectl(None, &["top", "pod", "idle", "-n", "metrics"]));
    assert!(idle.contains(r#"podmetrics.metrics.k8s.io "metrics/idle" not found"#), "{idle}");
    let missing = fails(server.kubectl(None, &["top", "pod", "nosuch", "-n", "metrics"]));
    assert!(missing.contains(r#"pods "nosuch" not found"#), "{missing}");

    // Nodes: n1 has usage, n2 (unreachable kubelet) is left out of the list, which kubectl shows as unknown.
    let until = Instant::now() + DEADLINE;
    let nodes = loop {
        let out = server.kubectl(None, &["top", "node"]);
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(Instant::now() < until, "no node metrics: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    };
    let nodes = rows(&nodes);
    // 200m of 4 cores; 1 GiB and a few pages of 8 GiB.
    assert_eq!(nodes[0][..5], ["n1", "200m", "5%", "1024Mi", "12%"], "{nodes:?}");
    assert_eq!(nodes[1][..2], ["n2", "<unknown>"], "{nodes:?}");
    let n1 = ok(server.kubectl(None, &["top", "node", "n1", "--no-headers"]));
    assert!(n1.starts_with("n1 ") && n1.contains(" 200m ") && n1.contains(" 5% "), "{n1}");
    let labelled = ok(server.kubectl(None, &["top", "node", "-l", "metrics-test=yes", "--no-headers"]));
    assert_eq!(labelled.lines().count(), 1, "{labelled}");
    let dead = fails(server.kubectl(None, &["top", "node", "n2"]));
    assert!(dead.contains(r#"nodemetrics.metrics.k8s.io "n2" not found"#), "{dead}");
    let missing = fails(server.kubectl(None, &["top", "node", "nosuch"]));
    assert!(missing.contains(r#"node "nosuch" not found"#), "{missing}");

    // The objects as clients decode them.
    let web = raw(&server, "/apis/metrics.k8s.io/v1beta1/namespaces/metrics/pods/web-1");
    assert_eq!(
        (web["kind"].as_str(), web["apiVersion"].as_str()),
        (Some("PodMetrics"), Some("metrics.k8s.io/v1beta1"))
    );
    assert_eq!(web["metadata"]["namespace"], "metrics");
    assert_eq!(web["metadata"]["labels"], serde_json::json!({"app": "web"}));
    assert!(web["metadata"]["creationTimestamp"].is_string() && web["timestamp"].is_string(), "{web}");
    assert_eq!(web["window"], "10s");
    assert_eq!(
        web["containers"],
        serde_json::json!([
            {"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}},
            {"name": "sidecar", "usage": {"cpu": "50m", "memory": "16Mi"}},
        ])
    );
    let pods = raw(&server, "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dweb");
    assert_eq!((pods["kind"].as_str(), &pods["metadata"]), (Some("PodMetricsList"), &serde_json::json!({})));
    let names: Vec<&str> =
        pods["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web-1", "web-2"]);
    assert_eq!(pods["items"][1]["containers"][0]["usage"]["cpu"], "1562500n");
    let node_list = raw(&server, "/apis/metrics.k8s.io/v1beta1/nodes");
    assert_eq!(node_list["kind"], "NodeMetricsList");
    assert_eq!(node_list["items"].as_array().unwrap().len(), 1, "{node_list}");
    let n1 = &node_list["items"][0];
    assert_eq!((n1["metadata"]["name"].as_str(), n1["window"].as_str()), (Some("n1"), Some("10s")));
    assert_eq!(n1["usage"]["cpu"], "200m");
    let memory = n1["usage"]["memory"].as_str().unwrap();
    let kib: u64 = memory.strip_suffix("Ki").and_then(|k| k.parse().ok()).unwrap_or_else(|| panic!("{memory}"));
    assert!(kib > 1 << 20 && kib % 4 == 0, "{memory}");
    let named = raw(&server, "/apis/metrics.k8s.io/v1beta1/nodes?fieldSelector=metadata.name%3Dn2");
    assert_eq!(named["items"], serde_json::json!([]));

    // `kubectl get` prints metrics-server's table.
    let table = ok(server.kubectl(None, &["get", "pods.metrics.k8s.io", "-n", "metrics"]));
    let mut lines = table.lines();
    assert_eq!(lines.next().unwrap().split_whitespace().collect::<Vec<_>>(), ["NAME", "CPU", "MEMORY", "WINDOW"]);
    assert_eq!(lines.next().unwrap().split_whitespace().collect::<Vec<_>>(), ["web-1", "300m", "80Mi", "10s"]);

    // Nothing but get and list.
    let refused = fails(server.kubectl(None, &["delete", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes/n1"]));
    assert!(refused.contains("MethodNotAllowed") || refused.contains("not supported"), "{refused}");
    let watch = fails(server.kubectl(None, &["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes?watch=true"]));
    assert!(watch.contains("not supported") || watch.contains("MethodNotAllowed"), "{watch}");

    // `/metrics` counts these requests under their own group, apart from the core pods and nodes.
    let metrics = ok(server.kubectl(None, &["get", "--raw", "/metrics"]));
    let counted = |verb: &str, resource: &str, scope: &str, code: u16| {
        let series = format!(
            r#"apiserver_request_total{{verb="{verb}",group="metrics.k8s.io",version="v1beta1",resource="{resource}",subresource="",scope="{scope}",component="apiserver",dry_run="",code="{code}"}}"#
        );
        assert!(metrics.lines().any(|l| l.starts_with(&series)), "no {series} in {metrics}");
    };
    counted("GET", "pods", "resource", 200);
    counted("LIST", "pods", "namespace", 200);
    counted("LIST", "nodes", "cluster", 200);
    counted("WATCH", "nodes", "cluster", 405);
}
