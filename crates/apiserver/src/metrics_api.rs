//! The resource metrics API, `metrics.k8s.io/v1beta1` (`kubectl top`, autoscalers, the Python client's metrics
//! calls), served by the API server itself where upstream runs metrics-server behind an APIService.
//!
//! A background task scrapes every Node's kubelet `/metrics/resource` (Prometheus text) once per resolution
//! (15 s by default, as metrics-server) and keeps, per node and per container, the last two points, with
//! metrics-server's rules for which points pair up. Requests are answered from what is held and never wait for a
//! scrape: CPU is the cumulative counter's increase over the two points' interval (nanocores), memory the newer
//! working set, `timestamp` the newer point's time and `window` the interval. A node without two points, or a pod
//! with any container without two, is left out.
//!
//! `nodes` and `pods` here are not stored objects: they stay out of the static registry (so no store, watch cache,
//! namespace cleanup or OpenAPI assumes them); discovery lists them from [`RESOURCES`] and `lib.rs` routes the
//! group here. Names and labels come from the watch caches of Nodes and Pods.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apimachinery::registry::{self, Group, Resource};
use apimachinery::selector::{FieldSelector, LabelSelector};
use apimachinery::status::{Status, Target};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::http::{self, Body, Query, Wanted};
use crate::table::IncludeObject;
use crate::{objects, State};

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";

/// The group as discovery lists it (after the registry's groups, as upstream orders an APIService's group).
pub static API_GROUP: Group = Group { name: GROUP, versions: &[VERSION] };

const VERBS: &[&str] = &["get", "list"];
const FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// `nodes` and `pods` as metrics-server registers them: get and list, no singular name, no short names.
pub static RESOURCES: [Resource; 2] = [
    Resource {
        group: GROUP,
        version: VERSION,
        name: "nodes",
        singular: "",
        kind: "NodeMetrics",
        namespaced: false,
        verbs: VERBS,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage_version_hash: None,
        field_selectors: FIELDS,
        deprecation: None,
    },
    Resource {
        group: GROUP,
        version: VERSION,
        name: "pods",
        singular: "",
        kind: "PodMetrics",
        namespaced: true,
        verbs: VERBS,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage_version_hash: None,
        field_selectors: FIELDS,
        deprecation: None,
    },
];

/// The metrics resources of a group version (none outside `metrics.k8s.io/v1beta1`), sorted by name.
pub fn resources_in(group: &str, version: &str) -> impl Iterator<Item = &'static Resource> {
    let served = group == GROUP && version == VERSION;
    RESOURCES.iter().filter(move |_| served)
}

/// The kubelet endpoint scraped.
const PATH: &str = "/metrics/resource";
/// A scrape gives up after this long (or 90% of the resolution, if that is shorter).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a kubelet's answer may hold.
const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// metrics-server's `freshContainerMinMetricsResolution`: a container this old but younger than the resolution
/// is paired with its own start (zero CPU) so that new pods show up one scrape sooner.
const FRESH_CONTAINER_MIN_AGE: i64 = 10_000_000_000;

// ---------------------------------------------------------------------------------------------------------------
// Points and what is kept.

/// One measurement of a node or a container. Times are nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Point {
    /// When the container started (0 if unknown, and for nodes): its CPU counter was zero then.
    start: i64,
    timestamp: i64,
    /// Cumulative CPU time, nanoseconds.
    cpu: u64,
    /// Working set, bytes.
    memory: u64,
}

/// `(namespace, name)`.
type PodRef = (String, String);

/// What one scrape round (all nodes) brought back.
#[derive(Debug, Default)]
struct Batch {
    nodes: HashMap<String, Point>,
    pods: HashMap<PodRef, BTreeMap<String, Point>>,
}

/// The usage computed from two points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Usage {
    /// Nanocores.
    cpu: u64,
    memory: u64,
    timestamp: i64,
    /// Nanoseconds between the two points.
    window: i64,
}

/// A pod's containers' usages, with the earliest container timestamp and its window (as metrics-server reports).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PodUsage {
    timestamp: i64,
    window: i64,
    containers: Vec<(String, Usage)>,
}

impl PodUsage {
    /// The containers' summed CPU (nanocores) and memory.
    fn total(&self) -> (u64, u64) {
        self.containers.iter().fold((0, 0), |(cpu, memory), (_, u)| (cpu + u.cpu, memory + u.memory))
    }
}

/// metrics-server's `resourceUsage`: none if the counter went back or the start time moved backwards.
fn usage(last: &Point, prev: &Point) -> Option<Usage> {
    if last.start < prev.start || last.cpu < prev.cpu {
        return None;
    }
    let window = last.timestamp - prev.timestamp;
    if window <= 0 {
        return None;
    }
    let rate = (last.cpu - prev.cpu) as f64 / (window as f64 / 1e9);
    Some(Usage { cpu: rate as u64, memory: last.memory, timestamp: last.timestamp, window })
}

/// The last two points of every node and container, as metrics-server's storage keeps them.
#[derive(Debug, Default)]
struct Held {
    nodes_last: HashMap<String, Point>,
    nodes_prev: HashMap<String, Point>,
    pods_last: HashMap<PodRef, BTreeMap<String, Point>>,
    pods_prev: HashMap<PodRef, BTreeMap<String, Point>>,
}

impl Held {
    /// Replaces what is kept by a new round. A point becomes "previous" only if the new one is newer, and a
    /// container's only if it did not restart in between; whatever the round did not bring back is dropped.
    fn store(&mut self, batch: Batch, resolution: Duration) {
        let resolution = resolution.as_nanos() as i64;
        let mut nodes_prev = HashMap::new();
        for (name, new) in &batch.nodes {
            if let Some(last) = self.nodes_last.get(name) {
                if new.timestamp > last.timestamp {
                    nodes_prev.insert(name.clone(), *last);
                } else if let Some(prev) = self.nodes_prev.get(name).filter(|p| p.timestamp < new.timestamp) {
                    nodes_prev.insert(name.clone(), *prev);
                }
            }
        }
        let mut pods_prev = HashMap::new();
        for (pod, containers) in &batch.pods {
            let mut prev_containers = BTreeMap::new();
            for (container, new) in containers {
                let age = new.timestamp - new.start;
                if new.start > 0 && age > 0 && age < resolution && age >= FRESH_CONTAINER_MIN_AGE {
                    prev_containers.insert(container.clone(), Point { timestamp: new.start, cpu: 0, ..*new });
                    continue;
                }
                let Some(last) = self.pods_last.get(pod).and_then(|c| c.get(container)) else { continue };
                if new.start >= last.timestamp {
                    continue; // restarted since the last point
                }
                if new.timestamp > last.timestamp {
                    prev_containers.insert(container.clone(), *last);
                } else if let Some(prev) =
                    self.pods_prev.get(pod).and_then(|c| c.get(container)).filter(|p| p.timestamp < new.timestamp)
                {
                    prev_containers.insert(container.clone(), *prev);
                }
            }
            if !prev_containers.is_empty() {
                pods_prev.insert(pod.clone(), prev_containers);
            }
        }
        *self = Held { nodes_last: batch.nodes, nodes_prev, pods_last: batch.pods, pods_prev };
    }

    fn node(&self, name: &str) -> Option<Usage> {
        usage(self.nodes_last.get(name)?, self.nodes_prev.get(name)?)
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        let key = (namespace.to_string(), name.to_string());
        let (last, prev) = (self.pods_last.get(&key)?, self.pods_prev.get(&key)?);
        let mut containers = Vec::with_capacity(last.len());
        let mut earliest: Option<(i64, i64)> = None;
        for (container, point) in last {
            // A container without a previous point leaves the whole pod out.
            let previous = prev.get(container)?;
            // One whose counters went backwards is skipped, as metrics-server does.
            let Some(usage) = usage(point, previous) else { continue };
            if earliest.is_none_or(|(timestamp, _)| usage.timestamp < timestamp) {
                earliest = Some((usage.timestamp, usage.window));
            }
            containers.push((container.clone(), usage));
        }
        // Every container's counters went backwards: nothing to report (metrics-server would list it empty).
        let (timestamp, window) = earliest?;
        Some(PodUsage { timestamp, window, containers })
    }
}

/// The scraped metrics the API answers from.
pub struct Store {
    held: Mutex<Held>,
    resolution: Duration,
}

impl Store {
    pub fn new(resolution: Duration) -> Store {
        Store { held: Mutex::new(Held::default()), resolution: resolution.max(Duration::from_millis(100)) }
    }

    fn scrape_timeout(&self) -> Duration {
        SCRAPE_TIMEOUT.min(self.resolution.mul_f64(0.9))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The kubelet's Prometheus text.

/// One sample line: `name{label="value",…} value [timestamp-ms]`.
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

impl Sample<'_> {
    fn label(&self, name: &str) -> &str {
        self.labels.iter().find(|(k, _)| *k == name).map_or("", |(_, v)| v.as_str())
    }
}

fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

/// Splits off the longest prefix that is a metric or label name.
fn take_name(text: &str) -> Option<(&str, &str)> {
    let end = text.char_indices().find(|&(i, c)| !is_name_char(c, i == 0)).map_or(text.len(), |(i, _)| i);
    (end > 0).then(|| text.split_at(end))
}

/// Parses one sample line of the text exposition format (0.0.4). Label values unescape `\\`, `\"` and `\n`;
/// any other escape is kept as written, as Prometheus does.
fn parse_sample(line: &str) -> Result<Sample<'_>, String> {
    let (name, mut rest) = take_name(line).ok_or("expected a metric name")?;
    let mut labels = Vec::new();
    rest = rest.trim_start_matches([' ', '\t']);
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = take_name(rest).ok_or("expected a label name")?;
            rest = after.trim_start_matches([' ', '\t']).strip_prefix('=').ok_or("expected '=' after a label name")?;
            rest = rest.trim_start_matches([' ', '\t']).strip_prefix('"').ok_or("expected a quoted label value")?;
            let mut value = String::new();
            loop {
                let at = rest.find(['"', '\\']).ok_or("unterminated label value")?;
                value.push_str(&rest[..at]);
                if rest.as_bytes()[at] == b'"' {
                    rest = &rest[at + 1..];
                    break;
                }
                let escaped = rest[at + 1..].chars().next().ok_or("unterminated label value")?;
                match escaped {
                    'n' => value.push('\n'),
                    '\\' | '"' => value.push(escaped),
                    other => {
                        value.push('\\');
                        value.push(other);
                    }
                }
                rest = &rest[at + 1 + escaped.len_utf8()..];
            }
            labels.push((label, value));
            rest = rest.trim_start_matches([' ', '\t']);
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err("expected ',' or '}' after a label".into());
            }
        }
    }
    let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
    let value = fields.next().ok_or("expected a value")?;
    let value: f64 = value.parse().map_err(|_| format!("{value:?} is not a number"))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(ts) => Some(ts.parse::<i64>().map_err(|_| format!("{ts:?} is not a timestamp in milliseconds"))?),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the timestamp"));
    }
    Ok(Sample { name, labels, value, timestamp_ms })
}

/// One node's `/metrics/resource` as points, metrics-server's way: samples without a timestamp are taken at
/// `default_ms`; a node point lacking CPU or memory is dropped, and so is a pod with any such container.
fn decode(text: &str, default_ms: i64, node: &str) -> Result<Batch, String> {
    let mut node_point = Point::default();
    let mut pods: HashMap<PodRef, BTreeMap<String, Point>> = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = parse_sample(line).map_err(|e| format!("line {}: {e}: {line}", number + 1))?;
        let timestamp = sample.timestamp_ms.unwrap_or(default_ms).saturating_mul(1_000_000);
        // Rounded (metrics-server truncates): a counter written as 1.234567 must not read as 1234566999 ns.
        let cpu_nanos = (sample.value * 1e9).round() as u64;
        match sample.name {
            "node_cpu_usage_seconds_total" => {
                node_point.cpu = cpu_nanos;
                node_point.timestamp = timestamp;
            }
            "node_memory_working_set_bytes" => {
                node_point.memory = sample.value as u64;
                node_point.timestamp = timestamp;
            }
            "container_cpu_usage_seconds_total"
            | "container_memory_working_set_bytes"
            | "container_start_time_seconds" => {
                let (namespace, pod, container) =
                    (sample.label("namespace"), sample.label("pod"), sample.label("container"));
                if namespace.is_empty() || pod.is_empty() || container.is_empty() {
                    continue;
                }
                let point = pods
                    .entry((namespace.to_string(), pod.to_string()))
                    .or_default()
                    .entry(container.to_string())
                    .or_default();
                match sample.name {
                    "container_cpu_usage_seconds_total" => {
                        point.cpu = cpu_nanos;
                        point.timestamp = timestamp;
                    }
                    "container_memory_working_set_bytes" => {
                        point.memory = sample.value as u64;
                        point.timestamp = timestamp;
                    }
                    _ => point.start = (sample.value * 1e9).round() as i64,
                }
            }
            _ => {}
        }
    }
    let mut batch = Batch::default();
    if node_point.timestamp != 0 && node_point.cpu != 0 && node_point.memory != 0 {
        batch.nodes.insert(node.to_string(), node_point);
    } else {
        tracing::debug!(node, "the kubelet reported no complete node metrics");
    }
    for (pod, containers) in pods {
        let complete = containers.values().all(|p| *p == Point::default() || (p.cpu != 0 && p.memory != 0));
        if !complete {
            tracing::debug!(namespace = %pod.0, pod = %pod.1, "the kubelet reported incomplete container metrics");
            continue;
        }
        let containers: BTreeMap<String, Point> =
            containers.into_iter().filter(|(_, p)| *p != Point::default()).collect();
        if !containers.is_empty() {
            batch.pods.insert(pod, containers);
        }
    }
    Ok(batch)
}

// ---------------------------------------------------------------------------------------------------------------
// Scraping.

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Scrapes every node once per resolution, forever; each round replaces what is held.
pub fn spawn_scraper(state: Arc<State>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(state.resource_metrics.resolution);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let batch = scrape_round(&state).await;
            let resolution = state.resource_metrics.resolution;
            state.resource_metrics.held.lock().unwrap().store(batch, resolution);
        }
    });
}

/// Every node of the watch cache, scraped concurrently, each within the scrape timeout.
async fn scrape_round(state: &Arc<State>) -> Batch {
    let nodes_resource = registry::find("", "v1", "nodes").expect("nodes are registered");
    let nodes = match state.caches.get(nodes_resource) {
        Some(cache) => {
            cache.snapshot(&objects::prefix(nodes_resource, None)).0.iter().filter_map(|n| n.value()).collect()
        }
        None => Vec::new(),
    };
    let timeout = state.resource_metrics.scrape_timeout();
    let mut scrapes = tokio::task::JoinSet::new();
    for node in nodes {
        let Some(name) = node["metadata"]["name"].as_str().map(str::to_string) else { continue };
        let address = match crate::kubelet::node_kubelet_address(&node) {
            Ok(address) => address,
            Err(status) => {
                tracing::debug!(node = %name, error = %status.message, "not scraping the node's kubelet");
                continue;
            }
        };
        let tls = state.kubelet_tls.clone();
        scrapes.spawn(async move {
            let scrape = async {
                let default_ms = now_ms();
                let body = crate::kubelet::kubelet_fetch(&tls, address, PATH, BODY_LIMIT).await?;
                let text = std::str::from_utf8(&body).map_err(|e| format!("the answer is not UTF-8: {e}"))?;
                decode(text, default_ms, &name)
            };
            let result = match tokio::time::timeout(timeout, scrape).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            (name, address, result)
        });
    }
    let mut round = Batch::default();
    while let Some(joined) = scrapes.join_next().await {
        let Ok((name, address, result)) = joined else { continue };
        match result {
            Ok(batch) => {
                for (node, point) in batch.nodes {
                    round.nodes.entry(node).or_insert(point);
                }
                for (pod, containers) in batch.pods {
                    round.pods.entry(pod).or_insert(containers);
                }
            }
            Err(error) => {
                // Loud only when a node that was answering stops; an unreachable node stays at debug.
                let was_answering = state.resource_metrics.held.lock().unwrap().nodes_last.contains_key(&name);
                if was_answering {
                    tracing::warn!(node = %name, %address, %error, "cannot scrape the kubelet's resource metrics");
                } else {
                    tracing::debug!(node = %name, %address, %error, "cannot scrape the kubelet's resource metrics");
                }
            }
        }
    }
    round
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting, as Kubernetes writes quantities and durations.

/// The canonical text of a DecimalSI quantity `amount × 10^exponent` (Go's `Quantity.String`).
fn decimal_si(mut amount: u64, mut exponent: i32) -> String {
    if amount == 0 {
        return "0".into();
    }
    while amount >= 10 && amount % 10 == 0 {
        amount /= 10;
        exponent += 1;
    }
    match exponent % 3 {
        1 | -2 => {
            amount = amount.saturating_mul(10);
            exponent -= 1;
        }
        2 | -1 => {
            amount = amount.saturating_mul(100);
            exponent -= 2;
        }
        _ => {}
    }
    let suffix = match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return format!("{amount}e{exponent}"),
    };
    format!("{amount}{suffix}")
}

/// CPU usage as metrics-server writes it: nanocores as a DecimalSI quantity (`"123456n"`, `"250m"`, `"2"`).
fn cpu_quantity(nanocores: u64) -> String {
    // Upstream fits the value into an int64 by dropping a digit.
    if nanocores > i64::MAX as u64 {
        return decimal_si(nanocores / 10, -8);
    }
    decimal_si(nanocores, -9)
}

/// Memory as metrics-server writes it: bytes as a BinarySI quantity (`"1234Ki"`, `"100Mi"`); under 1024 bytes
/// Kubernetes writes decimal (`"512"`, `"1k"`).
fn memory_quantity(bytes: u64) -> String {
    if bytes < 1024 {
        return decimal_si(bytes, 0);
    }
    let (mut amount, mut power) = (bytes, 0);
    while amount >= 1024 && amount % 1024 == 0 && power < 6 {
        amount /= 1024;
        power += 1;
    }
    format!("{amount}{}", ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power])
}

/// `v / 10^precision` with the fraction's trailing zeros (and a bare point) left out, as Go's `fmtFrac`/`fmtInt`.
fn with_fraction(v: u64, precision: u32) -> String {
    let scale = 10u64.pow(precision);
    let (whole, fraction) = (v / scale, v % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A duration as Go's `time.Duration.String` writes it (metav1.Duration's JSON): `"15.012s"`, `"1m0.5s"`, `"500ms"`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    let text = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", with_fraction(u, 3))
    } else if u < 1_000_000_000 {
        format!("{}ms", with_fraction(u, 6))
    } else {
        let seconds = with_fraction(u % 60_000_000_000, 9);
        let minutes = u / 60_000_000_000;
        match (minutes / 60, minutes % 60) {
            (0, 0) => format!("{seconds}s"),
            (0, m) => format!("{m}m{seconds}s"),
            (h, m) => format!("{h}h{m}m{seconds}s"),
        }
    };
    format!("{sign}{text}")
}

fn timestamp(nanos: i64) -> String {
    objects::timestamp(UNIX_EPOCH + Duration::from_nanos(nanos.max(0) as u64))
}

// ---------------------------------------------------------------------------------------------------------------
// Items.

/// The metadata metrics-server gives an item: the object's name, namespace and labels, created now.
fn item_metadata(object: &Value, now: &str) -> Value {
    let mut metadata = json!({"name": object["metadata"]["name"], "creationTimestamp": now});
    if let Some(namespace) = object["metadata"]["namespace"].as_str() {
        metadata["namespace"] = json!(namespace);
    }
    if let Some(labels) = object["metadata"]["labels"].as_object().filter(|l| !l.is_empty()) {
        metadata["labels"] = Value::Object(labels.clone());
    }
    metadata
}

fn usage_json(cpu: u64, memory: u64) -> Value {
    json!({"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)})
}

/// A NodeMetrics (without kind and apiVersion, as list items are written).
fn node_item(node: &Value, usage: &Usage, now: &str) -> Value {
    json!({
        "metadata": item_metadata(node, now),
        "timestamp": timestamp(usage.timestamp),
        "window": go_duration(usage.window),
        "usage": usage_json(usage.cpu, usage.memory),
    })
}

/// A PodMetrics (without kind and apiVersion), its containers in the pod's spec order.
fn pod_item(pod: &Value, usage: &PodUsage, now: &str) -> Value {
    let spec_order: Vec<&str> =
        pod["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
    let mut containers: Vec<&(String, Usage)> = usage.containers.iter().collect();
    containers.sort_by_key(|(name, _)| (spec_order.iter().position(|n| n == name).unwrap_or(usize::MAX), name.clone()));
    let containers: Vec<Value> =
        containers.into_iter().map(|(name, u)| json!({"name": name, "usage": usage_json(u.cpu, u.memory)})).collect();
    json!({
        "metadata": item_metadata(pod, now),
        "timestamp": timestamp(usage.timestamp),
        "window": go_duration(usage.window),
        "containers": containers,
    })
}

fn with_type(mut item: Value, kind: &str) -> Value {
    item["kind"] = json!(kind);
    item["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
    item
}

// ---------------------------------------------------------------------------------------------------------------
// Requests.

type ApiResult<T> = std::result::Result<T, Status>;

/// What a request asks for, from its path under `/apis/metrics.k8s.io/v1beta1/`.
struct Asked<'a> {
    resource: &'static Resource,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

/// `GET /apis/metrics.k8s.io/v1beta1/…`: `nodes[/NAME]`, `pods`, `namespaces/NS/pods[/NAME]`.
pub async fn serve(state: &State, request: Request<Incoming>, segments: &[&str], path: &str) -> Response<Body> {
    let (nodes, pods) = (&RESOURCES[0], &RESOURCES[1]);
    let target = match segments {
        ["nodes"] => Asked { resource: nodes, namespace: None, name: None },
        ["nodes", name] => Asked { resource: nodes, namespace: None, name: Some(*name) },
        ["pods"] => Asked { resource: pods, namespace: None, name: None },
        ["namespaces", namespace, "pods"] => Asked { resource: pods, namespace: Some(*namespace), name: None },
        ["namespaces", namespace, "pods", name] => {
            Asked { resource: pods, namespace: Some(*namespace), name: Some(*name) }
        }
        _ => return http::status(&Status::no_route(path)),
    };
    let query = Query::parse(request.uri().query());
    let accept = request.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok());
    let wanted = http::negotiate(accept);
    let Some(verb) = crate::rest::verb(request.method(), target.name.is_some(), query.flag("watch")) else {
        let method = request.method().as_str();
        return http::status(&Status::method_not_allowed(method, GROUP, target.resource.name));
    };
    let started = std::time::Instant::now();
    let result = match verb {
        "get" => get(state, &target, &query, wanted),
        "list" => list(state, &target, &query, wanted),
        other => Err(Status::method_not_allowed(other, GROUP, target.resource.name)),
    };
    let response = result.unwrap_or_else(|status| http::status(&status));
    let series = crate::metrics::RequestKey {
        verb: crate::metrics::RequestKey::reported_verb(verb, false),
        group: GROUP,
        version: VERSION,
        resource: target.resource.name,
        subresource: "",
        scope: crate::metrics::RequestKey::scope(target.name.is_some(), target.namespace.is_some()),
        dry_run: false,
    };
    state.metrics.observe_request(series, response.status().as_u16(), started);
    response
}

fn cached(state: &State, resource: &str) -> ApiResult<Arc<crate::cache::ResourceCache>> {
    let resource = registry::find("", "v1", resource).expect("core resources are registered");
    state
        .caches
        .get(resource)
        .cloned()
        .ok_or_else(|| Status::service_unavailable(format!("no cache of {}", resource.name)))
}

fn get(state: &State, target: &Asked<'_>, query: &Query, wanted: Wanted) -> ApiResult<Response<Body>> {
    let name = target.name.unwrap_or_default();
    let now = objects::timestamp(SystemTime::now());
    let held = &state.resource_metrics.held;
    let item = if target.resource.name == "nodes" {
        let nodes = registry::find("", "v1", "nodes").expect("nodes are registered");
        let node = cached(state, "nodes")?
            .get(&objects::key(nodes, None, name))
            // What metrics-server's node lister answers.
            .ok_or_else(|| Status::not_found(Target { group: "", resource: "node", name }))?;
        let usage = held.lock().unwrap().node(name);
        let usage = usage.ok_or_else(|| Status::not_found(Target { group: GROUP, resource: "nodemetrics", name }))?;
        (with_type(node_item(&node, &usage, &now), "NodeMetrics"), (usage.cpu, usage.memory))
    } else {
        let namespace = target.namespace.unwrap_or_default();
        let pods = registry::find("", "v1", "pods").expect("pods are registered");
        let pod = cached(state, "pods")?
            .get(&objects::key(pods, Some(namespace), name))
            .ok_or_else(|| Status::not_found(Target { group: "", resource: "pods", name }))?;
        let usage = held.lock().unwrap().pod(namespace, name);
        let qualified = format!("{namespace}/{name}");
        let usage = usage
            .ok_or_else(|| Status::not_found(Target { group: GROUP, resource: "podmetrics", name: &qualified }))?;
        (with_type(pod_item(&pod, &usage, &now), "PodMetrics"), usage.total())
    };
    respond(target.resource, query, wanted, std::slice::from_ref(&item), None)
}

/// Label and field selectors of a list; fields are `metadata.name` and `metadata.namespace` only.
fn selectors(query: &Query) -> ApiResult<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default()).map_err(Status::bad_request)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or_default()).map_err(Status::bad_request)?;
    if let Some(term) = fields.terms.iter().find(|t| !FIELDS.contains(&t.field.as_str())) {
        return Err(Status::bad_request(format!(
            "{:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            term.field
        )));
    }
    Ok((labels, fields))
}

fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

fn list(state: &State, target: &Asked<'_>, query: &Query, wanted: Wanted) -> ApiResult<Response<Body>> {
    let (labels, fields) = selectors(query)?;
    let namespaced = target.resource.namespaced;
    let selected = |object: &Value| {
        let name = object["metadata"]["name"].as_str().map(str::to_string);
        // A Node's fields hold no namespace (metrics-server builds them without one).
        let namespace = object["metadata"]["namespace"].as_str().filter(|_| namespaced).map(str::to_string);
        labels.matches(&labels_of(object))
            && fields.matches(|field| match field {
                "metadata.name" => name.clone(),
                "metadata.namespace" => namespace.clone(),
                _ => None,
            })
    };
    let core = registry::find("", "v1", if namespaced { "pods" } else { "nodes" }).expect("registered");
    let (objects, _) = cached(state, core.name)?.snapshot(&objects::prefix(core, target.namespace));
    let objects: Vec<_> = objects.iter().filter_map(|o| o.transient_value()).collect();
    let mut objects: Vec<&Value> = objects.iter().map(|o| &**o).filter(|o| selected(o)).collect();
    let name = |o: &Value, field: &str| o["metadata"][field].as_str().unwrap_or_default().to_string();
    objects.sort_by_key(|o| (name(o, "namespace"), name(o, "name")));
    let now = objects::timestamp(SystemTime::now());
    let held = state.resource_metrics.held.lock().unwrap();
    let items: Vec<(Value, (u64, u64))> = objects
        .into_iter()
        .filter_map(|object| {
            let name = object["metadata"]["name"].as_str()?;
            if namespaced {
                let namespace = object["metadata"]["namespace"].as_str()?;
                let usage = held.pod(namespace, name)?;
                Some((pod_item(object, &usage, &now), usage.total()))
            } else {
                let usage = held.node(name)?;
                Some((node_item(object, &usage, &now), (usage.cpu, usage.memory)))
            }
        })
        .collect();
    drop(held);
    respond(target.resource, query, wanted, &items, Some(format!("{}List", target.resource.kind)))
}

/// The item (`list_kind` None) or the list, as JSON, YAML or a Table; each item comes with its total usage
/// (nanocores, bytes) for the Table.
fn respond(
    resource: &Resource,
    query: &Query,
    wanted: Wanted,
    items: &[(Value, (u64, u64))],
    list_kind: Option<String>,
) -> ApiResult<Response<Body>> {
    let body = match (&list_kind, wanted) {
        (_, Wanted::Table) => {
            let include = IncludeObject::parse(query.get("includeObject")).map_err(Status::bad_request)?;
            table(resource, items, include)
        }
        (None, _) => items[0].0.clone(),
        (Some(kind), _) => {
            let items: Vec<&Value> = items.iter().map(|(item, _)| item).collect();
            json!({"kind": kind, "apiVersion": format!("{GROUP}/{VERSION}"), "metadata": {}, "items": items})
        }
    };
    Ok(match wanted {
        Wanted::Yaml => match serde_saphyr::to_string(&body) {
            Ok(yaml) => http::respond(StatusCode::OK, "application/yaml", yaml),
            Err(e) => http::status(&Status::internal(format!("cannot encode YAML: {e}"))),
        },
        Wanted::Table => http::respond(
            StatusCode::OK,
            "application/json;as=Table;v=v1;g=meta.k8s.io",
            serde_json::to_vec(&body).expect("JSON serializes"),
        ),
        Wanted::Json => http::json(StatusCode::OK, &body),
    })
}

/// metrics-server's Table: Name, then each usage (summed over a pod's containers), then Window.
fn table(resource: &Resource, items: &[(Value, (u64, u64))], include: IncludeObject) -> Value {
    let quantity =
        |name: &str| json!({"name": name, "type": "string", "format": "quantity", "description": "", "priority": 0});
    let columns = json!([
        {"name": "Name", "type": "string", "format": "name", "description": "Name of the resource", "priority": 0},
        quantity("cpu"),
        quantity("memory"),
        {"name": "Window", "type": "string", "format": "duration", "description": "", "priority": 0},
    ]);
    let rows: Vec<Value> = items
        .iter()
        .map(|(item, (cpu, memory))| {
            let cells = json!([item["metadata"]["name"], cpu_quantity(*cpu), memory_quantity(*memory), item["window"]]);
            let mut row = json!({"cells": cells});
            let object = match include {
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item["metadata"],
                }),
                IncludeObject::Object => with_type(item.clone(), resource.kind),
            };
            if !object.is_null() {
                row["object"] = object;
            }
            row
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": columns, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    /// What the kubelet writes (crates/kubelet `stats::exposition`), label values escaped.
    const KUBELET_TEXT: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="default",pod="web-1"} 1.234567 1764300000123
container_cpu_usage_seconds_total{container="z",namespace="a",pod="odd\"\\\nname"} 0.005 1764300000456
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="default",pod="web-1"} 1.4e+06 1764300000123
container_memory_working_set_bytes{container="z",namespace="a",pod="odd\"\\\nname"} 4096 1764300000456
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="app",namespace="default",pod="web-1"} 1.7643e+09
container_start_time_seconds{container="z",namespace="a",pod="odd\"\\\nname"} 1.7642999995e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 12345.6 1764300000123
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.2e+09 1764300000123
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="a",pod="odd\"\\\nname"} 0.005 1764300000456
pod_cpu_usage_seconds_total{namespace="default",pod="web-1"} 1.3 1764300000123
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
"#;

    fn pod_ref(namespace: &str, name: &str) -> PodRef {
        (namespace.to_string(), name.to_string())
    }

    #[test]
    fn samples_parse_with_escapes_timestamps_and_odd_spacing() {
        let sample = parse_sample(
            r#"container_cpu_usage_seconds_total{container="a\"b",namespace="x\\y",pod="p\nq"} 1.5 1700000000123"#,
        )
        .unwrap();
        assert_eq!(sample.name, "container_cpu_usage_seconds_total");
        assert_eq!(sample.label("container"), "a\"b");
        assert_eq!(sample.label("namespace"), "x\\y");
        assert_eq!(sample.label("pod"), "p\nq");
        assert_eq!((sample.value, sample.timestamp_ms), (1.5, Some(1_700_000_000_123)));

        let bare = parse_sample("node_memory_working_set_bytes 1.2e+09").unwrap();
        assert_eq!(
            (bare.name, bare.labels.len(), bare.value, bare.timestamp_ms),
            ("node_memory_working_set_bytes", 0, 1.2e9, None)
        );
        // Spaces inside the braces, a trailing comma, tabs, an unknown escape kept as written, UTF-8 values.
        let spaced = parse_sample("m { a = \"é,}\" , b=\"\\t\", }\t+Inf\t-5").unwrap();
        assert_eq!(spaced.labels, vec![("a", "é,}".to_string()), ("b", "\\t".to_string())]);
        assert_eq!((spaced.value, spaced.timestamp_ms), (f64::INFINITY, Some(-5)));
        assert!(parse_sample("m NaN").unwrap().value.is_nan());

        for bad in ["{a=\"b\"} 1", "m{a=\"b} 1", "m{a=b} 1", "m{a=\"b\" c=\"d\"} 1", "m", "m one", "m 1 2.5", "m 1 2 3"]
        {
            assert!(parse_sample(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn the_kubelet_text_decodes_into_points() {
        let batch = decode(KUBELET_TEXT, 42, "node-a").unwrap();
        let node = batch.nodes["node-a"];
        assert_eq!(
            node,
            Point {
                start: 0,
                timestamp: 1_764_300_000_123 * 1_000_000,
                cpu: 12_345_600_000_000,
                memory: 1_200_000_000
            }
        );
        let web = &batch.pods[&pod_ref("default", "web-1")];
        assert_eq!(
            web["app"],
            Point {
                start: 1_764_300_000 * SECOND,
                timestamp: 1_764_300_000_123 * 1_000_000,
                cpu: 1_234_567_000,
                memory: 1_400_000
            }
        );
        let odd = &batch.pods[&pod_ref("a", "odd\"\\\nname")];
        assert_eq!((odd["z"].cpu, odd["z"].memory, odd["z"].start), (5_000_000, 4096, 1_764_299_999_500_000_000));
        assert_eq!(batch.pods.len(), 2);

        // Samples without a timestamp are taken at the scrape's time.
        let batch = decode("node_cpu_usage_seconds_total 2\nnode_memory_working_set_bytes 4096\n", 1_000, "n").unwrap();
        assert_eq!(batch.nodes["n"].timestamp, 1_000_000_000);
        // A node without memory is no point; a pod with a container lacking CPU is dropped whole.
        let text = "node_cpu_usage_seconds_total 2 1000\n\
                    container_cpu_usage_seconds_total{container=\"a\",namespace=\"n\",pod=\"p\"} 1 1000\n\
                    container_memory_working_set_bytes{container=\"a\",namespace=\"n\",pod=\"p\"} 10 1000\n\
                    container_memory_working_set_bytes{container=\"b\",namespace=\"n\",pod=\"p\"} 10 1000\n\
                    container_cpu_usage_seconds_total{container=\"a\",namespace=\"n\",pod=\"q\"} 1 1000\n\
                    container_memory_working_set_bytes{container=\"a\",namespace=\"n\",pod=\"q\"} 10 1000\n";
        let batch = decode(text, 0, "n").unwrap();
        assert!(batch.nodes.is_empty());
        assert_eq!(batch.pods.keys().collect::<Vec<_>>(), [&pod_ref("n", "q")]);
        // A line that is not a sample fails the scrape, as metrics-server's parser does.
        let error = decode("node_cpu_usage_seconds_total 1\nnot a sample\n", 0, "n").unwrap_err();
        assert!(error.starts_with("line 2: "), "{error}");
    }

    /// A batch with one node point and one pod with containers `(name, cpu seconds, memory)`, all at `at` seconds.
    fn batch(at: i64, node_cpu: f64, containers: &[(&str, f64, u64)]) -> Batch {
        let point = |cpu: f64, memory| Point { start: SECOND, timestamp: at * SECOND, cpu: (cpu * 1e9) as u64, memory };
        let mut batch = Batch::default();
        batch.nodes.insert("n".into(), point(node_cpu, 1 << 30));
        let containers =
            containers.iter().map(|(name, cpu, memory)| (name.to_string(), point(*cpu, *memory))).collect();
        batch.pods.insert(pod_ref("ns", "p"), containers);
        batch
    }

    #[test]
    fn usage_is_the_counter_increase_over_the_interval() {
        let resolution = Duration::from_secs(15);
        let mut held = Held::default();
        held.store(batch(100, 10.0, &[("a", 1.0, 100), ("b", 2.0, 200)]), resolution);
        // One point is not enough.
        assert_eq!((held.node("n"), held.pod("ns", "p")), (None, None));

        held.store(batch(115, 13.0, &[("a", 2.5, 150), ("b", 2.0, 300)]), resolution);
        let node = held.node("n").unwrap();
        assert_eq!(node, Usage { cpu: 200_000_000, memory: 1 << 30, timestamp: 115 * SECOND, window: 15 * SECOND });
        let pod = held.pod("ns", "p").unwrap();
        assert_eq!((pod.timestamp, pod.window), (115 * SECOND, 15 * SECOND));
        let containers: Vec<(&str, u64, u64)> =
            pod.containers.iter().map(|(name, u)| (name.as_str(), u.cpu, u.memory)).collect();
        assert_eq!(containers, [("a", 100_000_000, 150), ("b", 0, 300)]);
        assert_eq!(pod.total(), (100_000_000, 450));

        // A round that brings the same timestamps back keeps the older pair.
        held.store(batch(115, 13.0, &[("a", 2.5, 150), ("b", 2.0, 300)]), resolution);
        assert_eq!(held.node("n").unwrap().window, 15 * SECOND);
        assert_eq!(held.pod("ns", "p").unwrap().window, 15 * SECOND);

        // A new container has no rate yet: the pod is left out until the next round.
        held.store(batch(130, 16.0, &[("a", 4.0, 150), ("b", 2.0, 300), ("c", 1.0, 10)]), resolution);
        assert!(held.pod("ns", "p").is_none());
        assert_eq!(held.node("n").unwrap().cpu, 200_000_000);
        held.store(batch(145, 19.0, &[("a", 5.5, 150), ("b", 2.0, 300), ("c", 1.75, 10)]), resolution);
        assert_eq!(held.pod("ns", "p").unwrap().containers.len(), 3);

        // A node (and its pods) missing from a round is gone.
        held.store(Batch::default(), resolution);
        assert_eq!((held.node("n"), held.pod("ns", "p")), (None, None));
    }

    #[test]
    fn a_restarted_container_waits_for_two_new_points() {
        let resolution = Duration::from_secs(15);
        let mut held = Held::default();
        held.store(batch(100, 1.0, &[("a", 5.0, 1)]), resolution);
        held.store(batch(115, 2.0, &[("a", 6.0, 1)]), resolution);
        assert!(held.pod("ns", "p").is_some());
        // Restarted at 125 s: its counter started again from zero, and the point before is no partner.
        let restarted = |at: i64, cpu: f64| {
            let mut round = batch(at, 3.0, &[("a", cpu, 1)]);
            round.pods.get_mut(&pod_ref("ns", "p")).unwrap().get_mut("a").unwrap().start = 125 * SECOND;
            round
        };
        held.store(restarted(130, 0.5), resolution);
        assert!(held.pod("ns", "p").is_none());
        held.store(restarted(145, 2.0), resolution);
        assert_eq!(held.pod("ns", "p").unwrap().containers[0].1.cpu, 100_000_000);
        // A counter that went backwards without a new start time gives the container no usage.
        let (last, prev) =
            (Point { cpu: 1, timestamp: 2, ..Point::default() }, Point { cpu: 5, timestamp: 1, ..Point::default() });
        assert_eq!(usage(&last, &prev), None);
        // A container younger than the resolution (but at least 10 s old) pairs with its own start.
        let mut fresh = Held::default();
        let young = Point { start: 100 * SECOND, timestamp: 112 * SECOND, cpu: 3 * SECOND as u64, memory: 7 };
        let mut first = Batch::default();
        first.pods.insert(pod_ref("ns", "young"), [("c".to_string(), young)].into());
        fresh.store(first, resolution);
        let pod = fresh.pod("ns", "young").unwrap();
        assert_eq!((pod.window, pod.containers[0].1.cpu), (12 * SECOND, 250_000_000));
    }

    #[test]
    fn quantities_are_written_as_kubernetes_canonicalizes_them() {
        let cpu: Vec<String> =
            [0, 1, 123_456, 1_000, 1_000_000, 1_562_500, 250_000_000, 1_500_000_000, 2_000_000_000, 10_000_000_000]
                .into_iter()
                .map(cpu_quantity)
                .collect();
        assert_eq!(cpu, ["0", "1n", "123456n", "1u", "1m", "1562500n", "250m", "1500m", "2", "10"]);
        let memory: Vec<String> =
            [0, 512, 1_000, 1_023, 1_024, 1_025, 16_621_568, 100 << 20, 1 << 30, 3 << 40, 1_400_000]
                .into_iter()
                .map(memory_quantity)
                .collect();
        assert_eq!(memory, ["0", "512", "1k", "1023", "1Ki", "1025", "16232Ki", "100Mi", "1Gi", "3Ti", "1400000"]);
    }

    #[test]
    fn windows_are_written_as_go_durations() {
        let cases = [
            (0, "0s"),
            (999, "999ns"),
            (1_500, "1.5µs"),
            (1_500_000, "1.5ms"),
            (500_000_000, "500ms"),
            (10 * SECOND, "10s"),
            (15_012_000_000, "15.012s"),
            (60_500_000_000, "1m0.5s"),
            (3_661 * SECOND, "1h1m1s"),
            (-2 * SECOND, "-2s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(go_duration(nanos), text, "{nanos}");
        }
    }

    #[test]
    fn items_have_metrics_servers_shape() {
        let usage = |cpu, memory| Usage { cpu, memory, timestamp: 1_700_000_015 * SECOND, window: 15_012_000_000 };
        let node = json!({"metadata": {"name": "n1", "uid": "u", "resourceVersion": "5", "labels": {"zone": "a"}}});
        let item = with_type(node_item(&node, &usage(250_000_000, 1 << 30), "2023-11-14T22:13:00Z"), "NodeMetrics");
        assert_eq!(
            item,
            json!({
                "kind": "NodeMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": "n1", "creationTimestamp": "2023-11-14T22:13:00Z", "labels": {"zone": "a"}},
                "timestamp": "2023-11-14T22:13:35Z",
                "window": "15.012s",
                "usage": {"cpu": "250m", "memory": "1Gi"},
            })
        );
        let pod = json!({
            "metadata": {"name": "web", "namespace": "prod", "labels": {}},
            "spec": {"containers": [{"name": "main"}, {"name": "aux"}]},
        });
        let usage = PodUsage {
            timestamp: 1_700_000_015 * SECOND,
            window: 10 * SECOND,
            containers: vec![("aux".into(), usage(123_456, 4096)), ("main".into(), usage(1_000_000, 100 << 20))],
        };
        assert_eq!(
            pod_item(&pod, &usage, "2023-11-14T22:13:00Z"),
            json!({
                "metadata": {"name": "web", "namespace": "prod", "creationTimestamp": "2023-11-14T22:13:00Z"},
                "timestamp": "2023-11-14T22:13:35Z",
                "window": "10s",
                "containers": [
                    {"name": "main", "usage": {"cpu": "1m", "memory": "100Mi"}},
                    {"name": "aux", "usage": {"cpu": "123456n", "memory": "4Ki"}},
                ],
            })
        );
        let item = pod_item(&pod, &usage, "2023-11-14T22:13:00Z");
        let table = table(&RESOURCES[1], &[(item, usage.total())], IncludeObject::Metadata);
        let names: Vec<&str> =
            table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Name", "cpu", "memory", "Window"]);
        assert_eq!(table["rows"][0]["cells"], json!(["web", "1123456n", "102404Ki", "10s"]));
        assert_eq!(table["rows"][0]["object"]["metadata"]["namespace"], "prod");
    }

    #[test]
    fn discovery_lists_the_metrics_group_as_metrics_server_does() {
        use crate::discovery;
        for version in ["v2", "v2beta1"] {
            let named = discovery::aggregated(false, version);
            let group = named["items"].as_array().unwrap().last().unwrap().clone();
            assert_eq!(group["metadata"]["name"], GROUP);
            assert_eq!(group["versions"][0]["version"], VERSION);
            assert_eq!(
                group["versions"][0]["resources"],
                json!([
                    {"resource": "nodes", "responseKind": {"group": "", "version": "", "kind": "NodeMetrics"},
                     "scope": "Cluster", "singularResource": "", "verbs": ["get", "list"]},
                    {"resource": "pods", "responseKind": {"group": "", "version": "", "kind": "PodMetrics"},
                     "scope": "Namespaced", "singularResource": "", "verbs": ["get", "list"]},
                ])
            );
        }
        let core = discovery::aggregated(true, "v2");
        assert!(core["items"].as_array().unwrap().iter().all(|g| g["metadata"]["name"] == ""));
        let groups = discovery::api_group_list();
        let entry = groups["groups"].as_array().unwrap().iter().find(|g| g["name"] == GROUP).unwrap().clone();
        let preferred = json!({"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"});
        assert_eq!(entry, json!({"name": GROUP, "versions": [preferred], "preferredVersion": preferred}));
        assert_eq!(discovery::api_group(GROUP).unwrap()["kind"], "APIGroup");
        assert_eq!(
            discovery::api_resource_list(GROUP, VERSION).unwrap(),
            json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "metrics.k8s.io/v1beta1",
                "resources": [
                    {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
                    {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
                ],
            })
        );
        assert!(discovery::api_resource_list(GROUP, "v1").is_none());
        // Not a stored resource: the registry (store, watch cache, namespace cleanup) does not know it.
        assert!(registry::find(GROUP, VERSION, "pods").is_none());
    }
}
