//! Prometheus metrics at `/metrics`: requests by verb, API group, version, resource, subresource, scope, dry run and
//! code (upstream's labels and verbs, and its `component="apiserver"`) with their latency, open watches,
//! and the latency of every store operation (the store is wrapped, so every caller is measured).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use storage::{DynStore, KeyValue, RangeRequest, RangeResponse, Revision, Store, Watcher};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    #[prometheus(flatten)]
    pub series: LatencyLabels,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub scope: String,
    /// Always `apiserver`, as upstream's API server labels its requests.
    pub component: String,
    /// `All` for a `dryRun=All` request, empty otherwise.
    pub dry_run: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

/// What a request's series are told apart by, besides its code.
#[derive(Clone, Copy, Hash, PartialEq, Eq)]
pub struct RequestKey {
    /// Upstream's: `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE` (a collection's too).
    pub verb: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    /// `resource` (one named object), `namespace` or `cluster`.
    pub scope: &'static str,
    /// A `dryRun=All` request.
    pub dry_run: bool,
}

impl RequestKey {
    /// `verb` is the Kubernetes verb (`get`, `list`, `create`, …), as authorization names it.
    pub fn reported_verb(verb: &str, apply: bool) -> &'static str {
        match verb {
            "get" => "GET",
            "list" => "LIST",
            "watch" => "WATCH",
            "create" => "POST",
            "update" => "PUT",
            "patch" if apply => "APPLY",
            "patch" => "PATCH",
            "delete" | "deletecollection" => "DELETE",
            _ => "other",
        }
    }

    pub fn scope(named: bool, namespaced: bool) -> &'static str {
        match (named, namespaced) {
            (true, _) => "resource",
            (false, true) => "namespace",
            (false, false) => "cluster",
        }
    }
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs to ~50 s.
    Histogram::new(exponential_buckets(0.0001, 2.5, 15))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_latency: Histograms<LatencyLabels>,
    /// The series of each request key once made: finding them in the families takes owned labels.
    request_series: std::sync::RwLock<HashMap<(RequestKey, u16), (Histogram, Counter)>>,
    watches: Family<ResourceLabels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    store_latency: Histograms<OperationLabels>,
    store_errors: Family<OperationLabels, Counter<u64, AtomicU64>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_latency: Histograms<LatencyLabels> = Family::new_with_constructor(latency_histogram);
        let watches = Family::<ResourceLabels, Gauge<i64, std::sync::atomic::AtomicI64>>::default();
        let store_latency: Histograms<OperationLabels> = Family::new_with_constructor(latency_histogram);
        let store_errors = Family::<OperationLabels, Counter<u64, AtomicU64>>::default();
        registry.register(
            "apiserver_request",
            "Requests by verb, API group, version, resource, subresource, scope, dry run and HTTP code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Time to answer a request (to the start of the stream for watches)",
            request_latency.clone(),
        );
        registry.register("apiserver_registered_watchers", "Open watches by resource", watches.clone());
        registry.register(
            "k8rs_storage_operation_duration_seconds",
            "Time of each datastore operation",
            store_latency.clone(),
        );
        registry.register("k8rs_storage_operation_errors", "Datastore operations that failed", store_errors.clone());
        let request_series = Default::default();
        Metrics { registry, requests, request_latency, request_series, watches, store_latency, store_errors }
    }

    pub fn observe_request(&self, key: RequestKey, code: u16, started: Instant) {
        let elapsed = started.elapsed().as_secs_f64();
        if let Some((latency, count)) = self.request_series.read().unwrap().get(&(key, code)) {
            latency.observe(elapsed);
            count.inc();
            return;
        }
        let RequestKey { verb, group, version, resource, subresource, scope, dry_run } = key;
        let labels = LatencyLabels {
            verb: verb.to_string(),
            group: group.to_string(),
            version: version.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            scope: scope.to_string(),
            component: "apiserver".to_string(),
            dry_run: if dry_run { "All" } else { "" }.to_string(),
        };
        let latency = self.request_latency.get_or_create(&labels).clone();
        let labels = RequestLabels { series: labels, code: code.to_string() };
        let count = self.requests.get_or_create(&labels).clone();
        latency.observe(elapsed);
        count.inc();
        self.request_series.write().unwrap().insert((key, code), (latency, count));
    }

    /// Counts a watch as open until the returned guard is dropped.
    pub fn watch_opened(self: &std::sync::Arc<Self>, resource: &str) -> WatchGuard {
        let labels = ResourceLabels { resource: resource.to_string() };
        self.watches.get_or_create(&labels).inc();
        WatchGuard { metrics: self.clone(), labels }
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

pub struct WatchGuard {
    metrics: std::sync::Arc<Metrics>,
    labels: ResourceLabels,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.metrics.watches.get_or_create(&self.labels).dec();
    }
}

/// A store that times every operation.
pub struct MeteredStore {
    inner: DynStore,
    metrics: std::sync::Arc<Metrics>,
}

impl MeteredStore {
    pub fn wrap(inner: DynStore, metrics: std::sync::Arc<Metrics>) -> DynStore {
        std::sync::Arc::new(MeteredStore { inner, metrics })
    }

    fn record<T>(&self, operation: &str, started: Instant, result: &storage::Result<T>) {
        let labels = OperationLabels { operation: operation.to_string() };
        self.metrics.store_latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        // Refused writes (conflicts, existing keys) are answers, not failures of the store.
        if matches!(result, Err(e) if !matches!(e, storage::StoreError::AlreadyExists { .. } | storage::StoreError::Conflict { .. } | storage::StoreError::NotFound { .. }))
        {
            self.metrics.store_errors.get_or_create(&labels).inc();
        }
    }
}

#[async_trait::async_trait]
impl Store for MeteredStore {
    async fn get(&self, key: &str, revision: Revision) -> storage::Result<Option<KeyValue>> {
        let started = Instant::now();
        let result = self.inner.get(key, revision).await;
        self.record("get", started, &result);
        result
    }

    async fn range(&self, request: RangeRequest) -> storage::Result<RangeResponse> {
        let started = Instant::now();
        let result = self.inner.range(request).await;
        self.record("range", started, &result);
        result
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> storage::Result<Revision> {
        let started = Instant::now();
        let result = self.inner.create(key, value).await;
        self.record("create", started, &result);
        result
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> storage::Result<Revision> {
        let started = Instant::now();
        let result = self.inner.update(key, value, expected).await;
        self.record("update", started, &result);
        result
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> storage::Result<(Revision, KeyValue)> {
        let started = Instant::now();
        let result = self.inner.delete(key, expected).await;
        self.record("delete", started, &result);
        result
    }

    async fn watch(&self, prefix: &str, start_revision: Revision) -> storage::Result<Watcher> {
        let started = Instant::now();
        let result = self.inner.watch(prefix, start_revision).await;
        self.record("watch", started, &result);
        result
    }

    async fn compact(&self, revision: Revision) -> storage::Result<()> {
        let started = Instant::now();
        let result = self.inner.compact(revision).await;
        self.record("compact", started, &result);
        result
    }

    async fn current_revision(&self) -> storage::Result<Revision> {
        self.inner.current_revision().await
    }

    async fn compacted_revision(&self) -> storage::Result<Revision> {
        self.inner.compacted_revision().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_labelled_as_upstream_labels_them() {
        let metrics = Metrics::new();
        let apply = RequestKey {
            verb: RequestKey::reported_verb("patch", true),
            group: "apps",
            version: "v1",
            resource: "deployments",
            subresource: "scale",
            scope: RequestKey::scope(true, true),
            dry_run: false,
        };
        metrics.observe_request(apply, 200, Instant::now());
        metrics.observe_request(apply, 200, Instant::now());
        let collection = RequestKey {
            verb: RequestKey::reported_verb("deletecollection", false),
            resource: "pods",
            group: "",
            version: "v1",
            subresource: "",
            scope: RequestKey::scope(false, true),
            dry_run: true,
        };
        metrics.observe_request(collection, 200, Instant::now());
        let text = metrics.encode();
        let has = |series: &str| text.lines().any(|l| l == series);
        assert!(
            has(
                r#"apiserver_request_total{verb="APPLY",group="apps",version="v1",resource="deployments",subresource="scale",scope="resource",component="apiserver",dry_run="",code="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            has(
                r#"apiserver_request_total{verb="DELETE",group="",version="v1",resource="pods",subresource="",scope="namespace",component="apiserver",dry_run="All",code="200"} 1"#
            ),
            "{text}"
        );
        assert_eq!(RequestKey::reported_verb("list", false), "LIST");
        assert_eq!(RequestKey::scope(false, false), "cluster");
    }
}
