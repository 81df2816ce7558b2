//! The one generic REST handler: every resource in the registry is served by this code, driven by its registry
//! entry (scope, verbs, subresources) and its strategy rules in `objects`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use apimachinery::patch::{self, PatchSchema};
use apimachinery::registry::Resource;
use apimachinery::selector::{FieldSelector, LabelSelector};
use apimachinery::status::StatusDetails;
use apimachinery::status::{Status, StatusCause, Target};
use apimachinery::{apply, defaults, validation};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};
use storage::{EventKind, KeyValue, RangeRequest, StoreError, WatchMessage};
use tokio::sync::mpsc;

use crate::cache::{CacheEvent, Change, Delivery, Start, Subscription};
use crate::certificates;
use crate::http::{self, Body, ChannelBody, Query, Wanted};
use crate::objects::{self, meta_str};
use crate::revision_slot::{encode_with_slot, RevisionSlot};
use crate::table::{self, IncludeObject};
use crate::State;
use crate::{reviews, scale, services};

/// Request bodies over this size are refused with 413, as upstream does.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// How long a watch stays open when the client names no timeout.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// A request for one resource, parsed from its path.
pub struct RestRequest {
    pub method: Method,
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub query: Query,
    pub content_type: Option<String>,
    /// The User-Agent header: the default field manager is its first token.
    pub user_agent: Option<String>,
    pub wanted: Wanted,
    pub identity: crate::Identity,
}

type Result<T> = std::result::Result<T, Status>;

/// The Kubernetes verb of a request with this method, on one object (`named`) or a collection.
pub fn verb(method: &Method, named: bool, watch: bool) -> Option<&'static str> {
    Some(match (method, named) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return None,
    })
}

impl RestRequest {
    /// The Kubernetes verb of the request (as authorization and metrics name it).
    pub fn verb(&self) -> &'static str {
        verb(&self.method, self.name.is_some(), self.query.flag("watch")).unwrap_or("unknown")
    }

    fn target<'a>(&'a self, name: &'a str) -> Target<'a> {
        Target { group: self.resource.group, resource: self.resource.name, name }
    }

    fn key(&self, name: &str) -> String {
        objects::key(self.resource, self.namespace.as_deref(), name)
    }

    pub fn dry_run(&self) -> bool {
        self.query.get("dryRun") == Some("All")
    }

    /// Whether this is a server-side apply (`application/apply-patch+yaml`).
    pub fn is_apply(&self) -> bool {
        self.method == Method::PATCH && media_type(self.content_type.as_deref()) == APPLY_PATCH
    }

    /// The field manager: `fieldManager`, else (as upstream) the User-Agent up to its first `/`.
    fn field_manager(&self) -> String {
        if let Some(manager) = self.query.get("fieldManager") {
            return manager.to_string();
        }
        let agent = self.user_agent.as_deref().unwrap_or_default();
        let prefix: String = agent.split('/').next().unwrap_or_default().chars().take(128).collect();
        if prefix.is_empty() {
            "unknown".into()
        } else {
            prefix
        }
    }

    /// The schema that gives server-side apply its list types (none for custom resources).
    fn apply_schema(&self) -> PatchSchema {
        let resource = self.resource;
        patch::schema_for_kind(resource.group, resource.version, resource.kind).unwrap_or_else(PatchSchema::unknown)
    }
}

const APPLY_PATCH: &str = "application/apply-patch+yaml";

fn media_type(content_type: Option<&str>) -> &str {
    content_type.unwrap_or_default().split(';').next().unwrap_or("").trim()
}

/// Records an ordinary write in managedFields (server-side apply records its own).
fn track_update(request: &RestRequest, old: Option<&Value>, object: &mut Value) {
    if request.is_apply() {
        return;
    }
    let subresource = request.subresource.as_deref().unwrap_or_default();
    let manager = request.field_manager();
    apply::record_update_subresource(old, object, &manager, subresource, &request.apply_schema());
}

/// The 409 of an apply that would change fields other managers own, worded as upstream.
fn apply_error(error: apply::ApplyError) -> Status {
    match &error {
        apply::ApplyError::Conflicts(conflicts) => {
            let causes = conflicts
                .iter()
                .map(|c| {
                    StatusCause::new(
                        "FieldManagerConflict",
                        c.path.clone(),
                        format!("conflict with {:?}: {}", c.manager, c.path),
                    )
                })
                .collect();
            Status::failure(409, "Conflict", error.to_string())
                .with_details(StatusDetails { causes, ..Default::default() })
        }
        apply::ApplyError::Invalid(message) => Status::bad_request(message.clone()),
    }
}

/// The configuration of a server-side apply: YAML, or JSON (which is YAML).
fn decode_applied(body: &[u8]) -> Result<Value> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => {
            let text = std::str::from_utf8(body).map_err(|_| Status::bad_request("the YAML body is not UTF-8"))?;
            serde_saphyr::from_str(text)
                .map_err(|e| Status::bad_request(format!("error decoding the apply patch: {e}")))?
        }
    };
    if !value.is_object() {
        return Err(Status::bad_request("the apply patch must be an object"));
    }
    Ok(value)
}

pub fn store_error(error: StoreError) -> Status {
    match error {
        StoreError::Compacted { requested, compacted } => {
            Status::expired(format!("too old resource version: {requested} ({compacted})"))
        }
        StoreError::FutureRevision { requested, current } => too_large(requested, current),
        StoreError::ValueTooLarge { size, limit, .. } => {
            Status::request_entity_too_large(format!("object is {size} bytes, over the limit of {limit} bytes"))
        }
        StoreError::Unavailable { .. } | StoreError::Closed => Status::service_unavailable(error.to_string()),
        other => Status::internal(other.to_string()),
    }
}

/// Reads the request body, refusing it past `MAX_BODY_BYTES`.
pub async fn read_body(body: hyper::body::Incoming) -> Result<Bytes> {
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Status::request_entity_too_large(format!("the request body is larger than {MAX_BODY_BYTES} bytes")))
        }
        Err(e) => Err(Status::bad_request(format!("cannot read the request body: {e}"))),
    }
}

/// Decodes a JSON, YAML or protobuf request body (a missing Content-Type means JSON).
pub(crate) fn decode(content_type: Option<&str>, body: &[u8]) -> Result<Value> {
    let media = content_type.unwrap_or("application/json").split(';').next().unwrap_or("").trim();
    let value: Value = match media {
        "application/json" | "" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| Status::bad_request(format!("error decoding the JSON body: {e}")))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(body).map_err(|_| Status::bad_request("the YAML body is not UTF-8"))?;
            serde_saphyr::from_str(text)
                .map_err(|e| Status::bad_request(format!("error decoding the YAML body: {e}")))?
        }
        apimachinery::protobuf::CONTENT_TYPE => apimachinery::protobuf::decode(body).map_err(|e| match e {
            apimachinery::protobuf::DecodeError::Unsupported(_) => Status::unsupported_media_type(media),
            other => Status::bad_request(format!("error decoding the protobuf body: {other}")),
        })?,
        other => return Err(Status::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(Status::bad_request("the request body must be a JSON object"));
    }
    Ok(value)
}

/// An object as stored, with its resourceVersion (the revision of its last write) filled in.
fn from_store(kv: &KeyValue) -> Result<Value> {
    let mut object: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| Status::internal(format!("stored object {} is not valid JSON: {e}", kv.key)))?;
    objects::metadata(&mut object).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
    Ok(object)
}

/// The apiVersion objects of the request's resource are stored in, when it is not the request's.
fn converts(request: &RestRequest) -> Option<&'static str> {
    let resource = request.resource;
    apimachinery::conversion::storage_api_version(resource.group, resource.name)
        .filter(|stored| *stored != resource.group_version())
}

/// A stored object as the request's version shows it.
fn to_request_version<'a>(request: &RestRequest, object: &'a Value) -> std::borrow::Cow<'a, Value> {
    match converts(request) {
        Some(_) => {
            std::borrow::Cow::Owned(apimachinery::conversion::convert(object, &request.resource.group_version()))
        }
        None => std::borrow::Cow::Borrowed(object),
    }
}

/// An object of the request's version as it is stored.
fn to_storage_version<'a>(request: &RestRequest, object: &'a Value) -> std::borrow::Cow<'a, Value> {
    match converts(request) {
        Some(storage) => std::borrow::Cow::Owned(apimachinery::conversion::convert(object, storage)),
        None => std::borrow::Cow::Borrowed(object),
    }
}

/// The bytes to store, in the storage version: resourceVersion is never stored, it is the revision of the write.
fn to_store(request: &RestRequest, object: &Value) -> Vec<u8> {
    let object = to_storage_version(request, object);
    let object = object.as_ref();
    if object["metadata"].get("resourceVersion").is_none() {
        return serde_json::to_vec(object).expect("JSON values serialize");
    }
    let mut object = object.clone();
    objects::metadata(&mut object).remove("resourceVersion");
    serde_json::to_vec(&object).expect("JSON values serialize")
}

/// `to_store`, and the place of resourceVersion in the bytes when they are the request's object less it.
fn to_store_with_slot(request: &RestRequest, object: &Value) -> (Vec<u8>, Option<RevisionSlot>) {
    let plain = converts(request).is_none() && object["metadata"].get("resourceVersion").is_none();
    match object {
        Value::Object(map) if plain => {
            let mut out = Vec::with_capacity(4096);
            let slot = encode_with_slot(map, &mut out);
            (out, slot)
        }
        _ => (to_store(request, object), None),
    }
}

fn with_revision(mut object: Value, revision: i64) -> Value {
    objects::metadata(&mut object).insert("resourceVersion".into(), json!(revision.to_string()));
    object
}

fn object_response(request: &RestRequest, code: StatusCode, object: &Value) -> Response<Body> {
    match request.wanted {
        Wanted::Table => {
            let include = IncludeObject::parse(request.query.get("includeObject")).unwrap_or(IncludeObject::Metadata);
            let rv = meta_str(object, "resourceVersion").unwrap_or_default();
            let metadata = json!({"resourceVersion": rv});
            http::respond(code, "application/json", table::table_json(request.resource, &[object], &metadata, include))
        }
        Wanted::Yaml => match serde_saphyr::to_string(object) {
            Ok(yaml) => http::respond(code, "application/yaml", yaml),
            Err(e) => http::status(&Status::internal(format!("cannot encode YAML: {e}"))),
        },
        Wanted::Json => http::json(code, object),
    }
}

/// Serves one request for a resource.
pub async fn serve(state: &State, request: RestRequest, body: Bytes) -> Response<Body> {
    let method = request.method.clone();
    let mut warnings = Vec::new();
    let result = match (&method, request.name.is_some(), request.subresource.as_deref()) {
        (&Method::GET, false, None) if request.query.flag("watch") => return watch(state, &request).await,
        (&Method::GET, false, None) => list(state, &request).await,
        (&Method::GET, true, None | Some("status") | Some("ephemeralcontainers") | Some("approval")) => {
            get(state, &request).await
        }
        (&Method::GET, true, Some("scale")) => get_scale(state, &request).await,
        (&Method::GET, true, Some("log")) => pod_log(state, &request).await,
        (&Method::POST, false, None) if request.resource.name == "tokenreviews" => {
            token_review(state, &request, &body).await
        }
        (&Method::POST, false, None) if reviews::is_review(request.resource) => review(&request, &body),
        (&Method::POST, false, None) if request.resource.name == "bindings" => bind(state, &request, &body).await,
        (&Method::POST, false, None) => create(state, &request, &body, &mut warnings).await,
        (
            &Method::PUT,
            true,
            None | Some("status") | Some("finalize") | Some("ephemeralcontainers") | Some("approval"),
        ) => update(state, &request, &body, &mut warnings).await,
        (&Method::PATCH, true, None | Some("status") | Some("ephemeralcontainers") | Some("approval")) => {
            patch(state, &request, &body, &mut warnings).await
        }
        (&Method::PUT | &Method::PATCH, true, Some("scale")) => update_scale(state, &request, &body).await,
        (&Method::DELETE, true, None) => delete(state, &request, &body).await,
        (&Method::DELETE, false, None) => delete_collection(state, &request).await,
        (&Method::POST, true, Some("binding")) => bind(state, &request, &body).await,
        (&Method::POST, true, Some("eviction")) => evict(state, &request, &body).await,
        (&Method::POST, true, Some("token")) => {
            crate::serviceaccounts::create_token(state, &request, &body, &mut warnings).await
        }
        _ => Err(Status::method_not_allowed(request.method.as_str(), request.resource.group, request.resource.name)),
    };
    let mut response = result.unwrap_or_else(|status| http::status(&status));
    for warning in warnings {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&format!("299 - {warning:?}")) {
            response.headers_mut().append("Warning", value);
        }
    }
    response
}

/// `fieldValidation`: unknown fields are never stored (upstream's typed decoding drops them); `Strict` refuses
/// them, `Warn` (the default) names them in Warning headers, `Ignore` says nothing.
fn field_validation(request: &RestRequest, object: &mut Value) -> Result<Vec<String>> {
    let mode = request.query.get("fieldValidation").unwrap_or("Warn");
    if !matches!(mode, "Strict" | "Warn" | "Ignore") {
        return Err(Status::bad_request(format!(
            "fieldValidation must be one of Ignore, Warn or Strict, not {mode:?}"
        )));
    }
    let resource = request.resource;
    let findings = apimachinery::openapi::check(resource.group, resource.version, resource.kind, object);
    if !findings.wrong_types.is_empty() {
        // Upstream cannot even decode such a body into its types, whatever fieldValidation says.
        return Err(Status::bad_request(format!(
            "the {} is not valid: {}",
            resource.kind,
            findings.wrong_types.join("; ")
        )));
    }
    let unknown = findings.unknown;
    let messages: Vec<String> = unknown.iter().map(|path| format!("unknown field {path:?}")).collect();
    if mode == "Strict" && !messages.is_empty() {
        return Err(Status::bad_request(format!("strict decoding error: {}", messages.join(", "))));
    }
    for path in &unknown {
        remove_path(object, path);
    }
    Ok(if mode == "Warn" { messages } else { Vec::new() })
}

/// Removes the field at a path such as `spec.containers[1].imagePullPolicyy`.
fn remove_path(object: &mut Value, path: &str) {
    let mut steps: Vec<&str> = Vec::new();
    for part in path.split('.') {
        let (field, indexes) = part.split_once('[').map_or((part, ""), |(f, rest)| (f, rest));
        steps.push(field);
        for index in indexes.split('[') {
            if let Some(index) = index.strip_suffix(']') {
                steps.push(index);
            }
        }
    }
    let Some((last, parents)) = steps.split_last() else { return };
    let mut node = object;
    for step in parents {
        node = match node {
            Value::Array(items) => match step.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(item) => item,
                None => return,
            },
            Value::Object(map) => match map.get_mut(*step) {
                Some(value) => value,
                None => return,
            },
            _ => return,
        };
    }
    if let Value::Object(map) = node {
        map.remove(*last);
    }
}

fn verb_allowed(request: &RestRequest, verb: &str) -> Result<()> {
    let allowed = match &request.subresource {
        None => request.resource.has_verb(verb),
        Some(sub) => request.resource.subresource(sub).is_some_and(|s| s.verbs.contains(&verb)),
    };
    if allowed {
        Ok(())
    } else {
        Err(Status::method_not_allowed(verb, request.resource.group, request.resource.name))
    }
}

async fn read_current(state: &State, request: &RestRequest, name: &str) -> Result<(KeyValue, Value)> {
    let kv = state
        .store
        .get(&request.key(name), 0)
        .await
        .map_err(store_error)?
        .ok_or_else(|| Status::not_found(request.target(name)))?;
    let object = from_store(&kv)?;
    Ok((kv, to_request_version(request, &object).into_owned()))
}

async fn get(state: &State, request: &RestRequest) -> Result<Response<Body>> {
    verb_allowed(request, "get")?;
    let name = request.name.as_deref().unwrap_or_default();
    let at_least = requested_revision(request)?;
    if at_least > 0 {
        // The store's current object is new enough for any revision the server has reached; for one it has not,
        // upstream's watch cache waits a little and answers 504.
        match state.caches.get(request.resource) {
            Some(cache) => {
                cache.wait_for(at_least, FRESHNESS_WAIT).await.map_err(|current| too_large(at_least, current))?
            }
            None => {
                let current = state.store.current_revision().await.map_err(store_error)?;
                if at_least > current {
                    return Err(too_large(at_least, current));
                }
            }
        }
    }
    let (_, object) = read_current(state, request, name).await?;
    Ok(object_response(request, StatusCode::OK, &object))
}

/// The `resourceVersion` parameter of a read; 0 when unset.
fn requested_revision(request: &RestRequest) -> Result<i64> {
    match request.query.get("resourceVersion").filter(|rv| !rv.is_empty()) {
        None => Ok(0),
        Some(rv) => {
            rv.parse().map_err(|_| Status::bad_request(format!("invalid resourceVersion {rv:?}: not an integer")))
        }
    }
}

async fn pod_log(state: &State, request: &RestRequest) -> Result<Response<Body>> {
    verb_allowed(request, "get")?;
    let (_, pod) = read_current(state, request, request.name.as_deref().unwrap_or_default()).await?;
    crate::kubelet::pod_log(state, request, &pod).await
}

/// The `continue` token: the revision the first page was read at and the last key returned.
fn encode_continue(revision: i64, last_key: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": last_key});
    base64::engine::general_purpose::STANDARD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(i64, String)> {
    let invalid = || Status::bad_request(format!("invalid continue token {token:?}"));
    let bytes = base64::engine::general_purpose::STANDARD.decode(token).map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    Ok((value["rv"].as_i64().ok_or_else(invalid)?, value["start"].as_str().ok_or_else(invalid)?.to_string()))
}

/// The selectors of a list or watch.
struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn parse(request: &RestRequest) -> Result<Filter> {
        let labels = LabelSelector::parse(request.query.get("labelSelector").unwrap_or_default())
            .map_err(Status::bad_request)?;
        let fields = FieldSelector::parse(request.query.get("fieldSelector").unwrap_or_default())
            .map_err(|e| Status::bad_request(e.to_string()))?;
        let known = request.resource.field_selectors;
        for term in &fields.terms {
            if !known.contains(&term.field.as_str()) {
                let listed = known.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(", ");
                return Err(Status::bad_request(format!(
                    "{:?} is not a known field selector: only {listed}",
                    term.field
                )));
            }
        }
        Ok(Filter { labels, fields })
    }

    fn is_empty(&self) -> bool {
        self.labels.requirements.is_empty() && self.fields.terms.is_empty()
    }

    fn matches(&self, object: &Value) -> bool {
        let labels: BTreeMap<String, String> = object["metadata"]["labels"]
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        self.labels.matches(&labels) && self.fields.matches(|field| field_value(object, field))
    }
}

/// The value a field selector reads from an object: a dotted path, with upstream's few renamings.
fn field_value(object: &Value, field: &str) -> Option<String> {
    let path = match field {
        "source" => "source.component",
        "reportingComponent" => "reportingComponent",
        "status.successful" => "status.succeeded",
        other => other,
    };
    let mut value = object;
    for part in path.split('.') {
        value = value.get(part)?;
    }
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Whether a list may be answered from the watch cache: `resourceVersion=0` (any) or a NotOlderThan revision.
fn cacheable_list(request: &RestRequest) -> Result<Option<i64>> {
    if request.query.get("continue").is_some() || request.query.get("resourceVersionMatch") == Some("Exact") {
        return Ok(None);
    }
    match request.query.get("resourceVersion") {
        None => Ok(None),
        Some(rv) => rv
            .parse::<i64>()
            .map(Some)
            .map_err(|_| Status::bad_request(format!("invalid resourceVersion {rv:?}: not an integer"))),
    }
}

fn list_response<V: std::borrow::Borrow<Value>>(
    request: &RestRequest,
    items: &[V],
    metadata: Value,
) -> Result<Response<Body>> {
    let kind = format!("{}List", request.resource.kind);
    match request.wanted {
        Wanted::Table => {
            let include = IncludeObject::parse(request.query.get("includeObject")).map_err(Status::bad_request)?;
            let table = table::table_json(request.resource, items, &metadata, include);
            Ok(http::respond(StatusCode::OK, "application/json", table))
        }
        Wanted::Yaml => {
            let items: Vec<&Value> = items.iter().map(|i| i.borrow()).collect();
            let list = json!({"kind": kind, "apiVersion": request.resource.group_version(), "metadata": metadata, "items": items});
            Ok(object_response(request, StatusCode::OK, &list))
        }
        Wanted::Json => Ok(json_list(request, metadata, items, |body, item| {
            serde_json::to_writer(body, item.borrow()).expect("JSON values serialize")
        })),
    }
}

/// A JSON list written piece by piece: the items are written where they are, never copied into one big value.
fn json_list<T>(
    request: &RestRequest,
    metadata: Value,
    items: &[T],
    mut write: impl FnMut(&mut Vec<u8>, &T),
) -> Response<Body> {
    let kind = format!("{}List", request.resource.kind);
    let mut body = serde_json::to_vec(
        &json!({"kind": kind, "apiVersion": request.resource.group_version(), "metadata": metadata}),
    )
    .expect("JSON values serialize");
    body.pop(); // the closing brace
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let before = body.len();
        write(&mut body, item);
        if i == 0 {
            // Sized once from the first item: growing a body of tens of MiB by doubling copies it each time.
            body.reserve((body.len() - before + 1) * (items.len() - 1) * 9 / 8 + 2);
        }
    }
    body.extend_from_slice(b"]}");
    http::respond(StatusCode::OK, "application/json", body)
}

async fn list(state: &State, request: &RestRequest) -> Result<Response<Body>> {
    verb_allowed(request, "list")?;
    let filter = Filter::parse(request)?;
    if let (Some(at_least), Some(cache)) = (cacheable_list(request)?, state.caches.get(request.resource)) {
        cache.wait_for(at_least, FRESHNESS_WAIT).await.map_err(|current| too_large(at_least, current))?;
        let prefix = objects::prefix(request.resource, request.namespace.as_deref());
        let (cached, revision) = cache.snapshot(&prefix);
        let metadata = json!({"resourceVersion": revision.to_string()});
        if filter.is_empty() && request.wanted == Wanted::Json && converts(request).is_none() {
            return Ok(json_list(request, metadata, &cached, |body, object| body.extend_from_slice(object.served())));
        }
        let objects: Vec<Arc<Value>> = cached.iter().filter_map(|o| o.transient_value()).collect();
        drop(cached);
        if converts(request).is_some() {
            let converted: Vec<Value> = objects.iter().map(|o| to_request_version(request, o).into_owned()).collect();
            let items: Vec<&Value> = converted.iter().filter(|o| filter.matches(o)).collect();
            return list_response(request, &items, metadata);
        }
        let items: Vec<&Value> = objects.iter().map(|o| &**o).filter(|o| filter.matches(o)).collect();
        return list_response(request, &items, metadata);
    }
    let limit = request.query.number("limit")?.unwrap_or(0) as usize;
    let prefix = objects::prefix(request.resource, request.namespace.as_deref());
    let (revision, start_after) = match request.query.get("continue") {
        Some(token) => {
            let (revision, start) = decode_continue(token)?;
            (revision, Some(start))
        }
        None => (list_revision(state, request).await?, None),
    };
    let expired = |e: StoreError| {
        match e {
        StoreError::Compacted { .. } if request.query.get("continue").is_some() => Status::expired(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        ),
        other => store_error(other),
    }
    };
    // With a selector, pages are read on until `limit` objects match (as upstream fills them), all at one
    // revision; the continue key is the last object looked at.
    // A plain JSON list answers with the stored bytes, the revision put in.
    let raw = filter.is_empty() && request.wanted == Wanted::Json && converts(request).is_none();
    let mut items = Vec::new();
    let (mut start_after, mut revision) = (start_after, revision);
    let (page_revision, more, last_key, remaining) = 'pages: loop {
        let page = state
            .store
            .range(RangeRequest { prefix: prefix.clone(), start_after: start_after.take(), limit, revision })
            .await
            .map_err(expired)?;
        let (read, last_key) = (page.kvs.len(), page.kvs.last().map(|kv| kv.key.clone()));
        for (index, kv) in page.kvs.into_iter().enumerate() {
            match RevisionSlot::find(&kv.value).filter(|_| raw) {
                Some(slot) => items.push(Listed::Stored { slot, revision: kv.mod_revision, bytes: kv.value }),
                None => {
                    let object = from_store(&kv)?;
                    let object = to_request_version(request, &object).into_owned();
                    if filter.matches(&object) {
                        items.push(Listed::Decoded(object));
                    }
                }
            }
            if limit > 0 && items.len() == limit {
                let more = index + 1 < read || page.more;
                break 'pages (page.revision, more, Some(kv.key), page.count - index as u64 - 1);
            }
        }
        if !page.more || limit == 0 {
            break (page.revision, page.more, last_key, page.count - read as u64);
        }
        revision = page.revision;
        start_after = last_key;
    };
    let mut metadata = json!({"resourceVersion": page_revision.to_string()});
    if more {
        if let Some(last) = last_key {
            metadata["continue"] = json!(encode_continue(page_revision, &last));
            // Upstream counts what is left only when nothing is filtered out.
            if filter.is_empty() {
                metadata["remainingItemCount"] = json!(remaining);
            }
        }
    }
    if raw {
        return Ok(json_list(request, metadata, &items, |body, item| match item {
            Listed::Stored { bytes, slot, revision } => slot.fill_into(bytes, *revision, body),
            Listed::Decoded(object) => serde_json::to_writer(body, object).expect("JSON values serialize"),
        }));
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|item| match item {
            Listed::Decoded(object) => object,
            Listed::Stored { .. } => unreachable!("stored bytes are kept only for plain JSON lists"),
        })
        .collect();
    list_response(request, &items, metadata)
}

/// An object of a list read from the store: its stored bytes and where the revision goes, or decoded.
enum Listed {
    Stored { bytes: Vec<u8>, slot: RevisionSlot, revision: i64 },
    Decoded(Value),
}

/// The revision a list reads at, from `resourceVersion` and `resourceVersionMatch`.
async fn list_revision(state: &State, request: &RestRequest) -> Result<i64> {
    let requested = requested_revision(request)?;
    if requested == 0 {
        return Ok(0);
    }
    match request.query.get("resourceVersionMatch") {
        Some("Exact") => Ok(requested),
        None | Some("NotOlderThan") => {
            let current = state.store.current_revision().await.map_err(store_error)?;
            if requested > current {
                return Err(too_large(requested, current));
            }
            Ok(0)
        }
        Some(other) => {
            Err(Status::bad_request(format!("invalid resourceVersionMatch {other:?}: must be Exact or NotOlderThan")))
        }
    }
}

/// Checks apiVersion and kind, and makes the object's namespace agree with the request's.
fn check_type_and_namespace(request: &RestRequest, object: &mut Value) -> Result<()> {
    let resource = request.resource;
    let gv = resource.group_version();
    match object.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != gv => {
            return Err(Status::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({gv})"
            )))
        }
        _ => object["apiVersion"] = json!(gv),
    }
    match object.get("kind").and_then(Value::as_str) {
        Some(k) if k != resource.kind => {
            return Err(Status::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )))
        }
        _ => object["kind"] = json!(resource.kind),
    }
    let metadata = objects::metadata(object);
    if resource.namespaced {
        let namespace = request.namespace.clone().unwrap_or_default();
        match metadata.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(Status::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {
                metadata.insert("namespace".into(), json!(namespace));
            }
        }
    } else {
        metadata.remove("namespace");
    }
    Ok(())
}

/// Namespaced objects may only be made in a namespace that exists and is not being deleted.
async fn check_namespace(state: &State, request: &RestRequest) -> Result<()> {
    let Some(namespace) = request.namespace.as_deref().filter(|_| request.resource.namespaced) else {
        return Ok(());
    };
    let namespaces = apimachinery::registry::find("", "v1", "namespaces").expect("namespaces are registered");
    let key = objects::key(namespaces, None, namespace);
    // The cache answers almost always; a namespace made a moment ago may not have reached it yet.
    let cached = state.caches.get(namespaces).and_then(|cache| cache.get(&key));
    let object =
        match cached {
            Some(object) => object,
            None => {
                let kv =
                    state.store.get(&key, 0).await.map_err(store_error)?.ok_or_else(|| {
                        Status::not_found(Target { group: "", resource: "namespaces", name: namespace })
                    })?;
                Arc::new(from_store(&kv)?)
            }
        };
    if object["metadata"].get("deletionTimestamp").is_some_and(|t| !t.is_null()) {
        return Err(Status::forbidden(format!(
            "unable to create new content in namespace {namespace} because it is being terminated"
        )));
    }
    Ok(())
}

/// What the resource's strategy does to a new object: reset status, set generation, namespace defaults.
fn prepare_for_create(resource: &Resource, object: &mut Value) {
    // A Node keeps the status it is registered with (the kubelet's); other kinds start without one.
    let keeps_status = resource.group.is_empty() && resource.name == "nodes";
    if resource.subresource("status").is_some() && !keeps_status {
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
    }
    if resource.subresource("status").is_some() && object.get("spec").is_some() {
        objects::metadata(object).insert("generation".into(), json!(1));
    }
    if resource.group.is_empty() && resource.name == "namespaces" {
        let name = meta_str(object, "name").unwrap_or_default().to_string();
        let labels = objects::metadata(object).entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
        object["spec"] = json!({"finalizers": ["kubernetes"]});
        object["status"] = json!({"phase": "Active"});
    }
    objects::drop_empty_metadata(object);
}

async fn create(
    state: &State,
    request: &RestRequest,
    body: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Response<Body>> {
    verb_allowed(request, "create")?;
    let object = decode(request.content_type.as_deref(), body)?;
    create_object(state, request, object, warnings).await
}

/// Creates a decoded object (a POST body, or the configuration of an apply to a missing object).
async fn create_object(
    state: &State,
    request: &RestRequest,
    mut object: Value,
    warnings: &mut Vec<String>,
) -> Result<Response<Body>> {
    check_type_and_namespace(request, &mut object)?;
    warnings.extend(field_validation(request, &mut object)?);
    let resource = request.resource;
    let metadata = objects::metadata(&mut object);
    let named = |field: &str| metadata.get(field).and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
    let given = named("name");
    let generate_name = if given.is_some() { None } else { named("generateName") };
    let mut name = match (given, generate_name.as_deref()) {
        (Some(name), _) => name,
        (None, Some(base)) => format!("{base}{}", objects::random_suffix()),
        (None, None) => {
            return Err(Status::invalid(
                resource.kind,
                resource.group,
                "",
                vec![StatusCause::required("metadata.name")],
            ))
        }
    };
    metadata.insert("name".into(), json!(name));
    metadata.insert("uid".into(), json!(objects::new_uid()));
    metadata.insert("creationTimestamp".into(), json!(objects::timestamp(SystemTime::now())));
    for field in ["deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "generation", "selfLink"] {
        metadata.remove(field);
    }
    let mut causes =
        generate_name.as_deref().map(|base| objects::validate_generate_name(resource, base)).unwrap_or_default();
    causes.extend(objects::validate_name(resource, &name));
    if !causes.is_empty() {
        return Err(Status::invalid(resource.kind, resource.group, &name, causes));
    }
    prepare_for_create(resource, &mut object);
    if certificates::is_requests(resource) {
        certificates::fill_requestor(&mut object, &request.identity);
    }
    defaults::apply(resource.group, resource.version, resource.kind, &mut object);
    // As upstream: the client's (defaulted) fields are its managed fields; what admission adds next (a pod's
    // tolerations, its ServiceAccount token volume and mounts) belongs to no manager.
    track_update(request, None, &mut object);
    if resource.group.is_empty() && resource.kind == "Pod" {
        defaults::admit_pod_create(&mut object);
        crate::serviceaccounts::admit_pod(state, request.namespace.as_deref().unwrap_or_default(), &mut object).await?;
        crate::priority::admit_pod(state, &mut object).await?;
    }
    if resource.group.is_empty() && resource.kind == "Secret" {
        let namespace = request.namespace.as_deref().unwrap_or_default();
        crate::serviceaccounts::fill_token_secret(state, namespace, &mut object).await?;
    }
    let causes = validation::validate(resource.group, resource.version, resource.kind, &object, None);
    if !causes.is_empty() {
        return Err(Status::invalid(resource.kind, resource.group, &name, causes));
    }
    let is_service = is_services(resource);
    if is_service {
        services::default(&mut object);
        let causes = services::validate(&object);
        if !causes.is_empty() {
            return Err(Status::invalid(resource.kind, resource.group, &name, causes));
        }
    }
    crate::priority::admit_class(state, resource, &object)?;
    check_namespace(state, request).await?;
    if request.dry_run() {
        if state.store.get(&request.key(&name), 0).await.map_err(store_error)?.is_some() {
            return Err(Status::already_exists(request.target(&name)));
        }
        return Ok(object_response(request, StatusCode::CREATED, &object));
    }
    let mut attempt = 0;
    loop {
        let key = request.key(&name);
        let allocation = if is_service { Some(services::allocate(state, &mut object, &key).await?) } else { None };
        let (stored, slot) = to_store_with_slot(request, &object);
        // A JSON answer is the stored bytes with the revision put in; the decoded object is then freed, while still
        // hot, as the store writes (the write is handed over when the join first polls it). A generated name may
        // be taken already, and the object is then written again under another.
        let slot = slot.filter(|_| request.wanted == Wanted::Json);
        let (kept, spent) =
            if slot.is_some() && generate_name.is_none() { (None, Some(object)) } else { (Some(object), None) };
        let (created, ()) = tokio::join!(state.store.create(&key, stored.clone()), async { drop(spent) });
        if created.is_err() {
            if let Some(allocation) = allocation {
                allocation.release(state).await;
            }
        }
        let (revision, kept) = match (created, kept, &generate_name) {
            (Err(StoreError::AlreadyExists { .. }), Some(again), Some(base)) if attempt < GENERATE_NAME_RETRIES => {
                attempt += 1;
                name = format!("{base}{}", objects::random_suffix());
                object = again;
                objects::metadata(&mut object).insert("name".into(), json!(name));
                continue;
            }
            (Err(StoreError::AlreadyExists { .. }), ..) => return Err(Status::already_exists(request.target(&name))),
            (Err(other), ..) => return Err(store_error(other)),
            (Ok(revision), kept, _) => (revision, kept),
        };
        return match (slot, kept) {
            (Some(slot), _) => Ok(http::respond(StatusCode::CREATED, "application/json", slot.fill(&stored, revision))),
            (None, Some(object)) => Ok(object_response(request, StatusCode::CREATED, &with_revision(object, revision))),
            (None, None) => unreachable!("the object is kept whenever there is no slot"),
        };
    }
}

/// Names generated for one create before it answers 409 (upstream's RetryGenerateName: seven more tries).
const GENERATE_NAME_RETRIES: usize = 7;

fn is_services(resource: &Resource) -> bool {
    resource.group.is_empty() && resource.name == "services"
}

/// What goes away with a deleted object besides its key: a Service's cluster IP and node ports.
async fn after_delete(state: &State, resource: &Resource, object: &Value) {
    if is_services(resource) {
        services::held(object).release(state).await;
    }
}

/// The object an update writes: `merge_update`, then the resource's own rules for updates.
fn updated_object(request: &RestRequest, current: &Value, mut new: Value) -> Result<Value> {
    let resource = request.resource;
    if request.subresource.is_none() {
        // Defaulted before merging, so that fields only the defaults fill in do not count as a spec change.
        defaults::apply(resource.group, resource.version, resource.kind, &mut new);
    }
    let mut updated = merge_update(request, current, new);
    let causes = match request.subresource.as_deref() {
        None => validation::validate(resource.group, resource.version, resource.kind, &updated, Some(current)),
        Some("ephemeralcontainers") => {
            defaults::apply(resource.group, resource.version, resource.kind, &mut updated);
            validation::ephemeral_containers_update(&updated, current)
        }
        Some("approval") => certificates::validate_approval(&updated, current),
        Some(_) => Vec::new(),
    };
    if !causes.is_empty() {
        let name = meta_str(&updated, "name").unwrap_or_default().to_string();
        return Err(Status::invalid(resource.kind, resource.group, &name, causes));
    }
    if is_services(request.resource) && request.subresource.is_none() {
        services::keep_allocations(current, &mut updated)?;
        services::default(&mut updated);
        let causes = services::validate(&updated);
        if !causes.is_empty() {
            let name = meta_str(&updated, "name").unwrap_or_default().to_string();
            return Err(Status::invalid("Service", "", &name, causes));
        }
    }
    track_update(request, Some(current), &mut updated);
    Ok(updated)
}

/// Everything but metadata and status: what a change of bumps `generation`.
fn spec_part(object: &Value) -> Value {
    let mut rest = object.clone();
    if let Some(map) = rest.as_object_mut() {
        for field in ["metadata", "status", "apiVersion", "kind"] {
            map.remove(field);
        }
    }
    rest
}

/// The object that replaces `old` when a client writes `new`: system metadata kept, the status/spec split
/// honoured, generation bumped on spec changes.
fn merge_update(request: &RestRequest, old: &Value, mut new: Value) -> Value {
    // The client's resourceVersion was a precondition, checked already; the write's revision replaces it.
    objects::metadata(&mut new).remove("resourceVersion");
    let resource = request.resource;
    let has_status = resource.subresource("status").is_some();
    let writing_status = request.subresource.as_deref() == Some("status");
    if writing_status {
        // /status changes status only.
        let mut merged = old.clone();
        merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        return merged;
    }
    if request.subresource.as_deref() == Some("ephemeralcontainers") {
        // A pod's /ephemeralcontainers changes its spec.ephemeralContainers only.
        let mut merged = old.clone();
        match new["spec"].get("ephemeralContainers") {
            Some(containers) => merged["spec"]["ephemeralContainers"] = containers.clone(),
            None => {
                if let Some(spec) = merged.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("ephemeralContainers");
                }
            }
        }
        return merged;
    }
    if request.subresource.as_deref() == Some("approval") {
        return certificates::approval_update(old, &new);
    }
    if request.subresource.as_deref() == Some("finalize") {
        // A namespace's /finalize changes its spec.finalizers only.
        let mut merged = old.clone();
        merged["spec"]["finalizers"] = new["spec"].get("finalizers").cloned().unwrap_or_else(|| json!([]));
        return merged;
    }
    if certificates::is_requests(resource) {
        // A request's spec is what was asked for and by whom: it never changes.
        new["spec"] = old["spec"].clone();
    }
    if has_status {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    let old_meta = old.get("metadata").cloned().unwrap_or_default();
    let metadata = objects::metadata(&mut new);
    for field in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
        match old_meta.get(field) {
            Some(value) => metadata.insert(field.into(), value.clone()),
            None => metadata.remove(field),
        };
    }
    if let Some(generation) = old_meta.get("generation").and_then(Value::as_i64) {
        if spec_part(old) != spec_part(&new) {
            objects::metadata(&mut new).insert("generation".into(), json!(generation + 1));
        }
    }
    objects::drop_empty_metadata(&mut new);
    new
}

async fn update(
    state: &State,
    request: &RestRequest,
    body: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Response<Body>> {
    verb_allowed(request, "update")?;
    let name = request.name.clone().unwrap_or_default();
    let mut object = decode(request.content_type.as_deref(), body)?;
    check_type_and_namespace(request, &mut object)?;
    warnings.extend(field_validation(request, &mut object)?);
    match meta_str(&object, "name") {
        Some(n) if n == name => {}
        Some(n) => {
            return Err(Status::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        None => {
            objects::metadata(&mut object).insert("name".into(), json!(name));
        }
    }
    let (kv, current) = read_current(state, request, &name).await?;
    if let Some(rv) = meta_str(&object, "resourceVersion").filter(|rv| !rv.is_empty()) {
        if rv != kv.mod_revision.to_string() {
            return Err(Status::modified(request.target(&name)));
        }
    }
    let mut updated = updated_object(request, &current, object)?;
    crate::priority::admit_class(state, request.resource, &updated)?;
    if request.dry_run() {
        return Ok(object_response(request, StatusCode::OK, &with_revision(updated, kv.mod_revision)));
    }
    let revision = write_service_aware(state, request, &kv, &current, &mut updated).await.map_err(|e| match e {
        WriteError::Store(StoreError::Conflict { .. }) => Status::modified(request.target(&name)),
        WriteError::Store(StoreError::NotFound { .. }) => Status::not_found(request.target(&name)),
        WriteError::Store(other) => store_error(other),
        WriteError::Refused(status) => status,
    })?;
    Ok(object_response(request, StatusCode::OK, &with_revision(updated, revision)))
}

/// Why an update was not written: the store refused it, or a Service's node ports could not be claimed.
enum WriteError {
    Store(StoreError),
    Refused(Status),
}

/// `write_update`, with a Service's node ports following its ports and type: new ones claimed before the write,
/// dropped ones released after it (and the new claims released if the write fails).
async fn write_service_aware(
    state: &State,
    request: &RestRequest,
    kv: &KeyValue,
    current: &Value,
    updated: &mut Value,
) -> std::result::Result<i64, WriteError> {
    if !is_services(request.resource) || request.subresource.is_some() {
        return write_update(state, request, kv, updated).await.map_err(WriteError::Store);
    }
    let claimed = services::claim_node_ports(state, current, updated, &kv.key).await.map_err(WriteError::Refused)?;
    match write_update(state, request, kv, updated).await {
        Ok(revision) => {
            services::release_dropped(state, current, updated).await;
            Ok(revision)
        }
        Err(error) => {
            claimed.release(state).await;
            Err(WriteError::Store(error))
        }
    }
}

/// Whether a deleted object has nothing left holding it: no finalizers (for a namespace, none in its spec
/// either) and no grace period still running.
fn deletion_finished(object: &Value) -> bool {
    let metadata = &object["metadata"];
    meta_str(object, "deletionTimestamp").is_some()
        && metadata["finalizers"].as_array().is_none_or(Vec::is_empty)
        && object["spec"]["finalizers"].as_array().is_none_or(Vec::is_empty)
        && metadata["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) == 0
}

/// Writes an updated object; one whose deletion nothing holds any more (its last finalizer was just removed)
/// is deleted instead, as upstream does. Returns the revision of the write.
async fn write_update(
    state: &State,
    request: &RestRequest,
    current: &KeyValue,
    updated: &Value,
) -> std::result::Result<i64, StoreError> {
    if deletion_finished(updated) {
        let (revision, _) = state.store.delete(&current.key, Some(current.mod_revision)).await?;
        after_delete(state, request.resource, updated).await;
        return Ok(revision);
    }
    state.store.update(&current.key, to_store(request, updated), current.mod_revision).await
}

/// How many times a patch is re-applied when the object changes under it.
const PATCH_RETRIES: usize = 5;

/// A JSON patch applied to a copy of `current`. Without rollback (`patch_unsafe`): the copy is dropped when the patch
/// fails, and json-patch 4's rollback panics when it cannot undo (a `move` to an invalid path has already removed
/// its source, so undoing an earlier operation under it fails).
fn apply_json_patch(current: &Value, patch: &json_patch::Patch) -> std::result::Result<Value, json_patch::PatchError> {
    let mut patched = current.clone();
    json_patch::patch_unsafe(&mut patched, patch)?;
    Ok(patched)
}

fn apply_patch(request: &RestRequest, current: &Value, body: &[u8]) -> Result<Value> {
    let content_type = request.content_type.as_deref();
    let media = content_type.unwrap_or_default().split(';').next().unwrap_or("").trim();
    let invalid =
        |e: &dyn std::fmt::Display| Status::failure(422, "Invalid", format!("the patch could not be applied: {e}"));
    let decode_patch = |what: &str| -> Result<Value> {
        serde_json::from_slice(body).map_err(|e| Status::bad_request(format!("error decoding the {what}: {e}")))
    };
    match media {
        "application/merge-patch+json" => {
            let patch = decode_patch("merge patch")?;
            let mut patched = current.clone();
            json_patch::merge(&mut patched, &patch);
            Ok(patched)
        }
        "application/json-patch+json" => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| Status::bad_request(format!("error decoding the JSON patch: {e}")))?;
            apply_json_patch(current, &patch).map_err(|e| invalid(&e))
        }
        "application/strategic-merge-patch+json" => {
            // Scale is the object being patched on /scale, whatever the parent resource.
            let (group, version, kind) = match request.subresource.as_deref() {
                Some("scale") => ("autoscaling", "v1", "Scale"),
                _ => (request.resource.group, request.resource.version, request.resource.kind),
            };
            let schema =
                patch::schema_for_kind(group, version, kind).ok_or_else(|| Status::unsupported_media_type(media))?;
            let patch = decode_patch("strategic merge patch")?;
            patch::strategic_merge(current, &patch, &schema).map_err(|e| {
                let reason = if e.code() == 400 { "BadRequest" } else { "Invalid" };
                Status::failure(e.code(), reason, format!("the patch could not be applied: {e}"))
            })
        }
        APPLY_PATCH => {
            let applied = decode_applied(body)?;
            let manager = request.field_manager();
            apply::apply(Some(current), &applied, &manager, request.query.flag("force"), &request.apply_schema())
                .map_err(apply_error)
        }
        other => Err(Status::unsupported_media_type(other)),
    }
}

async fn patch(
    state: &State,
    request: &RestRequest,
    body: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Response<Body>> {
    verb_allowed(request, "patch")?;
    let name = request.name.clone().unwrap_or_default();
    if request.is_apply() && request.query.get("fieldManager").is_none() {
        return Err(Status::bad_request("PATCH requests with apply patch type require fieldManager"));
    }
    for _ in 0..PATCH_RETRIES {
        let (kv, current) = match read_current(state, request, &name).await {
            // Applying to a missing object creates it.
            Err(status) if status.code == 404 && request.is_apply() && request.subresource.is_none() => {
                let applied = decode_applied(body)?;
                let manager = request.field_manager();
                let force = request.query.flag("force");
                let mut object =
                    apply::apply(None, &applied, &manager, force, &request.apply_schema()).map_err(apply_error)?;
                if meta_str(&object, "name").is_none() {
                    objects::metadata(&mut object).insert("name".into(), json!(name));
                }
                if meta_str(&object, "name") != Some(name.as_str()) {
                    return Err(Status::bad_request(format!(
                        "the name of the object ({}) does not match the name on the URL ({name})",
                        meta_str(&object, "name").unwrap_or_default()
                    )));
                }
                verb_allowed(request, "create")?;
                return create_object(state, request, object, warnings).await;
            }
            other => other?,
        };
        // Patched without its resourceVersion: one in the result came from the patch, and is a precondition.
        let mut unversioned = current.clone();
        objects::metadata(&mut unversioned).remove("resourceVersion");
        let mut patched = apply_patch(request, &unversioned, body)?;
        if !patched.is_object() {
            return Err(Status::bad_request("the patched object is not a JSON object"));
        }
        *warnings = field_validation(request, &mut patched)?;
        check_type_and_namespace(request, &mut patched)?;
        if meta_str(&patched, "name") != Some(name.as_str()) {
            return Err(Status::bad_request("the patch may not change metadata.name"));
        }
        // Otherwise the patch applies to whatever is current, retried when another write got there first.
        let precondition = meta_str(&patched, "resourceVersion").map(str::to_string);
        if precondition.as_deref().is_some_and(|rv| rv != kv.mod_revision.to_string()) {
            return Err(Status::modified(request.target(&name)));
        }
        let mut updated = updated_object(request, &current, patched)?;
        crate::priority::admit_class(state, request.resource, &updated)?;
        if request.dry_run() {
            return Ok(object_response(request, StatusCode::OK, &with_revision(updated, kv.mod_revision)));
        }
        match write_service_aware(state, request, &kv, &current, &mut updated).await {
            Ok(revision) => return Ok(object_response(request, StatusCode::OK, &with_revision(updated, revision))),
            Err(WriteError::Store(StoreError::Conflict { .. })) if precondition.is_none() => continue,
            Err(WriteError::Store(StoreError::Conflict { .. })) => return Err(Status::modified(request.target(&name))),
            Err(WriteError::Store(StoreError::NotFound { .. })) => {
                return Err(Status::not_found(request.target(&name)))
            }
            Err(WriteError::Store(other)) => return Err(store_error(other)),
            Err(WriteError::Refused(status)) => return Err(status),
        }
    }
    Err(Status::modified(request.target(&name)))
}

async fn delete(state: &State, request: &RestRequest, body: &[u8]) -> Result<Response<Body>> {
    verb_allowed(request, "delete")?;
    let name = request.name.clone().unwrap_or_default();
    let options = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode(request.content_type.as_deref(), body)?
    };
    let (kv, current) = read_current(state, request, &name).await?;
    let preconditions = &options["preconditions"];
    if let Some(uid) = preconditions["uid"].as_str() {
        if meta_str(&current, "uid") != Some(uid) {
            return Err(Status::conflict(
                request.target(&name),
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&current, "uid").unwrap_or_default()
                ),
            ));
        }
    }
    if let Some(rv) = preconditions["resourceVersion"].as_str() {
        if rv != kv.mod_revision.to_string() {
            return Err(Status::conflict(
                request.target(&name),
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    kv.mod_revision
                ),
            ));
        }
    }
    let mut marked = current.clone();
    let mut finalizers: Vec<Value> = current["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
    // The garbage collector acts on these; recording the policy is the API server's part.
    let policy = match (options["propagationPolicy"].as_str(), options["orphanDependents"].as_bool()) {
        (Some(policy), _) => policy,
        (None, Some(true)) => "Orphan",
        _ => "Background",
    };
    let gc_finalizer = match policy {
        "Foreground" => Some("foregroundDeletion"),
        "Orphan" => Some("orphan"),
        "Background" => None,
        other => {
            return Err(Status::bad_request(format!(
                "invalid propagationPolicy {other:?}: must be Orphan, Background or Foreground"
            )))
        }
    };
    if let Some(finalizer) = gc_finalizer {
        if !finalizers.iter().any(|f| f == finalizer) {
            finalizers.push(json!(finalizer));
        }
    }
    let grace = grace_period(request.resource, &current, &options)?;
    let deleting_since = meta_str(&current, "deletionTimestamp").is_some();
    let namespace_finalizers = current["spec"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
    if grace > 0 || !finalizers.is_empty() || namespace_finalizers {
        // The object stays, marked: its node stops it (graceful pods) or its finalizers' owners remove them.
        let current_grace = current["metadata"]["deletionGracePeriodSeconds"].as_i64();
        let unchanged = finalizers.len() == current["metadata"]["finalizers"].as_array().map_or(0, Vec::len);
        if deleting_since && unchanged && current_grace.is_some_and(|g| g <= grace) {
            return Ok(object_response(request, StatusCode::OK, &current));
        }
        let at = SystemTime::now() + Duration::from_secs(grace as u64);
        let metadata = objects::metadata(&mut marked);
        metadata.insert("deletionTimestamp".into(), json!(objects::timestamp(at)));
        metadata.insert("deletionGracePeriodSeconds".into(), json!(grace));
        if !finalizers.is_empty() {
            metadata.insert("finalizers".into(), json!(finalizers));
        }
        if namespace_finalizers {
            // The namespace controller empties it, then removes its finalizer through /finalize.
            marked["status"]["phase"] = json!("Terminating");
        }
        if request.dry_run() {
            return Ok(object_response(request, StatusCode::OK, &marked));
        }
        let revision =
            state.store.update(&kv.key, to_store(request, &marked), kv.mod_revision).await.map_err(|e| match e {
                StoreError::Conflict { .. } => Status::modified(request.target(&name)),
                other => store_error(other),
            })?;
        return Ok(object_response(request, StatusCode::OK, &with_revision(marked, revision)));
    }
    if request.dry_run() {
        return Ok(object_response(request, StatusCode::OK, &current));
    }
    state.store.delete(&kv.key, Some(kv.mod_revision)).await.map_err(|e| match e {
        StoreError::Conflict { .. } => Status::modified(request.target(&name)),
        StoreError::NotFound { .. } => Status::not_found(request.target(&name)),
        other => store_error(other),
    })?;
    after_delete(state, request.resource, &current).await;
    if returns_deleted_object(request.resource) {
        return Ok(object_response(request, StatusCode::OK, &current));
    }
    let status = Status::deleted(request.target(&name), meta_str(&current, "uid").unwrap_or_default());
    Ok(http::json(StatusCode::OK, &serde_json::to_value(&status).unwrap_or_default()))
}

/// The resources whose delete answers with the deleted object, as upstream's registries that set
/// `ReturnDeletedObject`; the others answer with a Success Status once the object is gone.
fn returns_deleted_object(resource: &Resource) -> bool {
    matches!(
        (resource.group, resource.name),
        ("", "pods" | "services" | "serviceaccounts" | "namespaces" | "persistentvolumes" | "persistentvolumeclaims")
            | ("storage.k8s.io", "storageclasses" | "volumeattachments")
    )
}

/// How long a deleted object lingers for its owner to stop it: only Pods bound to a node and still running get
/// a grace period (the request's, else the pod's terminationGracePeriodSeconds, else 30 s).
fn grace_period(resource: &Resource, object: &Value, options: &Value) -> Result<i64> {
    let requested = match options.get("gracePeriodSeconds") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_i64().filter(|g| *g >= 0).ok_or_else(|| {
            Status::bad_request(format!("invalid gracePeriodSeconds {value}: must be a non-negative integer"))
        })?),
    };
    let is_pod = resource.group.is_empty() && resource.name == "pods";
    let bound = object["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
    let terminal = matches!(object["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    if !is_pod || !bound || terminal {
        return Ok(0);
    }
    Ok(requested.or_else(|| object["spec"]["terminationGracePeriodSeconds"].as_i64()).unwrap_or(30))
}

/// `pods/{name}/binding` (and the `bindings` resource): assigns a pod to a node, once.
async fn bind(state: &State, request: &RestRequest, body: &[u8]) -> Result<Response<Body>> {
    let binding = decode(request.content_type.as_deref(), body)?;
    let pods = apimachinery::registry::find("", "v1", "pods").expect("pods are registered");
    let pod_name = match &request.name {
        Some(name) => name.clone(),
        None => meta_str(&binding, "name").unwrap_or_default().to_string(),
    };
    let node = binding["target"]["name"].as_str().unwrap_or_default().to_string();
    if node.is_empty() {
        return Err(Status::invalid("Binding", "", &pod_name, vec![StatusCause::required("target.name")]));
    }
    let key = objects::key(pods, request.namespace.as_deref(), &pod_name);
    let target = Target { group: "", resource: "pods", name: &pod_name };
    for _ in 0..PATCH_RETRIES {
        let kv = state.store.get(&key, 0).await.map_err(store_error)?.ok_or_else(|| Status::not_found(target))?;
        let mut pod = from_store(&kv)?;
        if meta_str(&pod, "deletionTimestamp").is_some() {
            return Err(Status::conflict(
                target,
                &format!("pod {pod_name} is being deleted, cannot be assigned to a host"),
            ));
        }
        if let Some(bound) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(Status::conflict(target, &format!("pod {pod_name} is already assigned to node {bound:?}")));
        }
        pod["spec"]["nodeName"] = json!(node);
        let condition = json!({
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": null,
            "lastTransitionTime": objects::timestamp(SystemTime::now()),
        });
        let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
        conditions.push(condition);
        pod["status"]["conditions"] = json!(conditions);
        if request.dry_run() {
            break;
        }
        match state.store.update(&key, to_store(request, &pod), kv.mod_revision).await {
            Ok(_) => break,
            Err(StoreError::Conflict { .. }) => continue,
            Err(other) => return Err(store_error(other)),
        }
    }
    let mut status = Status::success(target);
    status.code = 201;
    Ok(http::json(StatusCode::CREATED, &serde_json::to_value(&status).unwrap_or_default()))
}

/// `pods/{name}/eviction`: deletes the pod unless a PodDisruptionBudget covering it allows no disruption.
async fn evict(state: &State, request: &RestRequest, body: &[u8]) -> Result<Response<Body>> {
    let eviction = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode(request.content_type.as_deref(), body)?
    };
    let name = request.name.clone().unwrap_or_default();
    let (_, pod) = read_current(state, request, &name).await?;
    let budgets = apimachinery::registry::find("policy", "v1", "poddisruptionbudgets").expect("PDBs are registered");
    let prefix = objects::prefix(budgets, request.namespace.as_deref());
    let page = state.store.range(RangeRequest { prefix, ..Default::default() }).await.map_err(store_error)?;
    let labels: BTreeMap<String, String> = pod["metadata"]["labels"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    for kv in &page.kvs {
        let budget = from_store(kv)?;
        let selector = LabelSelector::parse(&scale::selector_string(&budget["spec"]["selector"])).unwrap_or_default();
        let selects_nothing = budget["spec"]["selector"].is_null();
        if !selects_nothing
            && selector.matches(&labels)
            && budget["status"]["disruptionsAllowed"].as_i64().unwrap_or(0) < 1
        {
            let budget_name = meta_str(&budget, "name").unwrap_or_default();
            let mut status = Status::failure(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            );
            status.details = Some(Box::new(apimachinery::status::StatusDetails {
                causes: vec![StatusCause::new(
                    "DisruptionBudget",
                    "",
                    format!(
                        "The disruption budget {budget_name} needs {} healthy pods and has {} currently",
                        budget["status"]["desiredHealthy"].as_i64().unwrap_or(0),
                        budget["status"]["currentHealthy"].as_i64().unwrap_or(0)
                    ),
                )],
                ..Default::default()
            }));
            return Err(status);
        }
    }
    let options = serde_json::to_vec(&eviction["deleteOptions"]).unwrap_or_default();
    let options: &[u8] = if eviction["deleteOptions"].is_null() { b"" } else { &options };
    let delete_request = RestRequest {
        method: Method::DELETE,
        resource: request.resource,
        namespace: request.namespace.clone(),
        name: Some(name.clone()),
        subresource: None,
        query: Query::parse(request.query.get("dryRun").map(|_| "dryRun=All")),
        content_type: Some("application/json".into()),
        user_agent: request.user_agent.clone(),
        wanted: Wanted::Json,
        identity: request.identity.clone(),
    };
    delete(state, &delete_request, options).await?;
    let mut status = Status::success(Target { group: "", resource: "pods", name: &name });
    status.code = 201;
    Ok(http::json(StatusCode::CREATED, &serde_json::to_value(&status).unwrap_or_default()))
}

fn review(request: &RestRequest, body: &[u8]) -> Result<Response<Body>> {
    verb_allowed(request, "create")?;
    let review = decode(request.content_type.as_deref(), body)?;
    let answered = reviews::answer(request.resource, &request.identity, review)?;
    Ok(http::json(StatusCode::CREATED, &answered))
}

async fn token_review(state: &State, request: &RestRequest, body: &[u8]) -> Result<Response<Body>> {
    verb_allowed(request, "create")?;
    let review = decode(request.content_type.as_deref(), body)?;
    let answered = reviews::token_review(state, request.resource, review).await?;
    Ok(http::json(StatusCode::CREATED, &answered))
}

async fn get_scale(state: &State, request: &RestRequest) -> Result<Response<Body>> {
    verb_allowed(request, "get")?;
    let name = request.name.as_deref().unwrap_or_default();
    let (_, object) = read_current(state, request, name).await?;
    Ok(http::json(StatusCode::OK, &scale::scale_of(&object)))
}

async fn update_scale(state: &State, request: &RestRequest, body: &[u8]) -> Result<Response<Body>> {
    let verb = if request.method == Method::PUT { "update" } else { "patch" };
    verb_allowed(request, verb)?;
    let name = request.name.clone().unwrap_or_default();
    for _ in 0..PATCH_RETRIES {
        let (kv, current) = read_current(state, request, &name).await?;
        let wanted = if request.method == Method::PUT {
            decode(request.content_type.as_deref(), body)?
        } else {
            apply_patch(request, &scale::scale_of(&current), body)?
        };
        let precondition = meta_str(&wanted, "resourceVersion").map(str::to_string);
        if precondition.as_deref().is_some_and(|rv| rv != kv.mod_revision.to_string()) {
            return Err(Status::modified(request.target(&name)));
        }
        let mut updated = merge_update(request, &current, scale::apply_scale(&current, &wanted)?);
        track_update(request, Some(&current), &mut updated);
        if request.dry_run() {
            return Ok(http::json(StatusCode::OK, &scale::scale_of(&with_revision(updated, kv.mod_revision))));
        }
        match write_update(state, request, &kv, &updated).await {
            Ok(revision) => return Ok(http::json(StatusCode::OK, &scale::scale_of(&with_revision(updated, revision)))),
            Err(StoreError::Conflict { .. }) if precondition.is_none() => continue,
            Err(StoreError::Conflict { .. }) => return Err(Status::modified(request.target(&name))),
            Err(StoreError::NotFound { .. }) => return Err(Status::not_found(request.target(&name))),
            Err(other) => return Err(store_error(other)),
        }
    }
    Err(Status::modified(request.target(&name)))
}

/// Deletes every object the selectors match; answers with the list of what was deleted.
async fn delete_collection(state: &State, request: &RestRequest) -> Result<Response<Body>> {
    verb_allowed(request, "deletecollection")?;
    let filter = Filter::parse(request)?;
    let prefix = objects::prefix(request.resource, request.namespace.as_deref());
    let page = state.store.range(RangeRequest { prefix, ..Default::default() }).await.map_err(store_error)?;
    let mut deleted = Vec::new();
    for kv in &page.kvs {
        let object = to_request_version(request, &from_store(kv)?).into_owned();
        if !filter.matches(&object) {
            continue;
        }
        if request.dry_run() {
            deleted.push(object);
            continue;
        }
        let finalizers = object["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        let result = if finalizers {
            let mut marked = object.clone();
            objects::metadata(&mut marked)
                .entry("deletionTimestamp")
                .or_insert_with(|| json!(objects::timestamp(SystemTime::now())));
            state.store.update(&kv.key, to_store(request, &marked), kv.mod_revision).await.map(|_| marked)
        } else {
            match state.store.delete(&kv.key, Some(kv.mod_revision)).await {
                Ok(_) => {
                    after_delete(state, request.resource, &object).await;
                    Ok(object)
                }
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(object) => deleted.push(object),
            // Changed or gone since the list: someone else got there; leave it to them.
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
            Err(other) => return Err(store_error(other)),
        }
    }
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", request.resource.kind),
            "apiVersion": request.resource.group_version(),
            "metadata": {"resourceVersion": page.revision.to_string()},
            "items": deleted,
        }),
    ))
}

/// One watch event as a line of the stream (a one-row Table when the client asked for Tables).
fn event_line(request: &RestRequest, kind: &str, object: &Value) -> Bytes {
    if request.wanted == Wanted::Table {
        let include = IncludeObject::parse(request.query.get("includeObject")).unwrap_or(IncludeObject::Metadata);
        let metadata = json!({"resourceVersion": meta_str(object, "resourceVersion").unwrap_or_default()});
        return served_event_line(kind, &table::table_json(request.resource, &[object], &metadata, include));
    }
    // `{"object":…,"type":…}` written around the object where it is: every watcher of an event writes it.
    let mut line = Vec::with_capacity(4096);
    line.extend_from_slice(b"{\"object\":");
    serde_json::to_writer(&mut line, object).expect("JSON values serialize");
    line.extend_from_slice(b",\"type\":");
    serde_json::to_writer(&mut line, kind).expect("JSON values serialize");
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// [`event_line`] around an object's JSON as served.
fn served_event_line(kind: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b",\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\"}\n");
    Bytes::from(line)
}

fn bookmark(request: &RestRequest, revision: i64, initial_events_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": request.resource.kind, "apiVersion": request.resource.group_version(), "metadata": metadata})
}

async fn watch(state: &State, request: &RestRequest) -> Response<Body> {
    match start_watch(state, request).await {
        Ok(response) => response,
        Err(status) => http::status(&status),
    }
}

/// What a watch needs after the request is gone.
struct WatchContext {
    request: RestRequest,
    filter: Filter,
    bookmarks: bool,
    deadline: tokio::time::Instant,
}

impl WatchContext {
    fn bookmark(&self, revision: i64, initial_events_end: bool) -> Bytes {
        event_line(&self.request, "BOOKMARK", &bookmark(&self.request, revision, initial_events_end))
    }

    /// A change as a watch event, seen through the selectors: objects entering them are ADDED, leaving them DELETED.
    fn line(&self, change: Change, object: &Value, previous: Option<&Value>) -> Option<Bytes> {
        let object = to_request_version(&self.request, object);
        let object = object.as_ref();
        let previous = previous.map(|p| to_request_version(&self.request, p));
        let previous = previous.as_deref();
        let was = previous.is_some_and(|o| self.filter.matches(o));
        let kind = match change {
            Change::Deleted => was.then_some("DELETED")?,
            Change::Added | Change::Modified => match (was, self.filter.matches(object)) {
                (false, true) => "ADDED",
                (true, true) => "MODIFIED",
                (true, false) => {
                    // As upstream: the object as it was, at the revision of the change that took it out.
                    let mut gone = previous?.clone();
                    if let Some(revision) = object["metadata"].get("resourceVersion") {
                        objects::metadata(&mut gone).insert("resourceVersion".into(), revision.clone());
                    }
                    return Some(event_line(&self.request, "DELETED", &gone));
                }
                (false, false) => return None,
            },
        };
        Some(event_line(&self.request, kind, object))
    }

    /// [`Self::line`] of a cache event: a plain JSON watch copies the cached JSON, others look into the object.
    fn cached_line(&self, event: &CacheEvent) -> Option<Bytes> {
        if self.filter.is_empty() && self.request.wanted == Wanted::Json && converts(&self.request).is_none() {
            let kind = match event.change {
                Change::Added => "ADDED",
                Change::Modified => "MODIFIED",
                Change::Deleted => "DELETED",
            };
            return Some(served_event_line(kind, event.object.served()));
        }
        let object = event.object.value()?;
        let previous = event.previous.as_ref().and_then(|p| p.value());
        self.line(event.change, &object, previous.as_deref())
    }

    fn error(&self, status: &Status) -> Bytes {
        event_line(&self.request, "ERROR", &serde_json::to_value(status).unwrap_or_default())
    }
}

/// How long a watch or list waits for the cache to reach a revision the client has seen.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// Upstream's 504 for a resourceVersion the server has not reached (the client retries after a second).
fn too_large(requested: i64, current: i64) -> Status {
    Status::timeout(format!("Too large resource version: {requested}, current: {current}")).with_details(
        apimachinery::status::StatusDetails {
            causes: vec![StatusCause::new("ResourceVersionTooLarge", "", "Too large resource version")],
            retry_after_seconds: Some(1),
            ..Default::default()
        },
    )
}

async fn start_watch(state: &State, request: &RestRequest) -> Result<Response<Body>> {
    verb_allowed(request, "watch")?;
    let timeout =
        request.query.number("timeoutSeconds")?.map_or(DEFAULT_WATCH_TIMEOUT, |s| Duration::from_secs(s as u64));
    let send_initial = request.query.flag("sendInitialEvents");
    let rv = match request.query.get("resourceVersion") {
        None | Some("0") => None,
        Some(rv) => {
            Some(rv.parse::<i64>().map_err(|_| Status::bad_request(format!("invalid resourceVersion {rv:?}")))?)
        }
    };
    let context = WatchContext {
        request: RestRequest {
            method: request.method.clone(),
            resource: request.resource,
            namespace: request.namespace.clone(),
            name: None,
            subresource: None,
            query: Query::parse(None),
            content_type: None,
            user_agent: None,
            wanted: request.wanted,
            identity: request.identity.clone(),
        },
        filter: Filter::parse(request)?,
        bookmarks: request.query.flag("allowWatchBookmarks"),
        deadline: tokio::time::Instant::now() + timeout,
    };
    let prefix = objects::prefix(request.resource, request.namespace.as_deref());
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let cached = match state.caches.get(request.resource) {
        Some(cache) => {
            let start = match (rv, send_initial) {
                (Some(rv), false) => {
                    cache.wait_for(rv, FRESHNESS_WAIT).await.map_err(|current| too_large(rv, current))?;
                    Start::After(rv)
                }
                _ => Start::Now,
            };
            cache.subscribe(&prefix, start)
        }
        None => None,
    };
    let open = state.metrics.watch_opened(request.resource.name);
    match cached {
        Some(subscription) => {
            tokio::spawn(async move {
                stream_from_cache(context, subscription, send_initial, tx).await;
                drop(open);
            });
        }
        // Resuming from before the cache's window: the store may still hold that history.
        None => {
            let start = match (rv, send_initial) {
                (Some(rv), false) => rv + 1,
                _ => return Err(Status::internal("the watch cache refused a watch from now")),
            };
            let watcher = state.store.watch(&prefix, start).await;
            tokio::spawn(async move {
                stream_from_store(context, watcher, tx).await;
                drop(open);
            });
        }
    }
    let mut response = Response::new(http_body_util::BodyExt::boxed(ChannelBody(rx)));
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    Ok(response)
}

async fn stream_from_cache(
    context: WatchContext,
    subscription: Subscription,
    send_initial: bool,
    tx: mpsc::Sender<Bytes>,
) {
    let Subscription { initial, revision, mut live } = subscription;
    for event in &initial {
        if let Some(line) = context.cached_line(event) {
            if tx.send(line).await.is_err() {
                return;
            }
        }
    }
    if send_initial && context.bookmarks && tx.send(context.bookmark(revision, true)).await.is_err() {
        return;
    }
    let mut last_bookmark = tokio::time::Instant::now();
    loop {
        let delivery = tokio::select! {
            _ = tokio::time::sleep_until(context.deadline) => return,
            _ = tx.closed() => return,
            delivery = live.recv() => delivery,
        };
        let line = match delivery {
            // The cache ended this watcher (it fell behind, or the cache re-listed): the client watches again.
            None => return,
            Some(Delivery::Event(event)) => context.cached_line(&event),
            Some(Delivery::Progress(revision)) => (context.bookmarks && last_bookmark.elapsed() >= BOOKMARK_INTERVAL)
                .then(|| {
                    last_bookmark = tokio::time::Instant::now();
                    context.bookmark(revision, false)
                }),
        };
        if let Some(line) = line {
            if tx.send(line).await.is_err() {
                return;
            }
        }
    }
}

async fn stream_from_store(
    context: WatchContext,
    watcher: std::result::Result<storage::Watcher, StoreError>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(error) => {
            let _ = tx.send(context.error(&store_error(error))).await;
            return;
        }
    };
    let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(context.deadline) => return,
            _ = tx.closed() => return,
            _ = ticker.tick(), if context.bookmarks => watcher.request_progress(),
            message = watcher.next() => {
                let lines = match message {
                    None => return,
                    Some(Err(error)) => vec![context.error(&store_error(error))],
                    Some(Ok(WatchMessage::Progress(revision))) if context.bookmarks => vec![context.bookmark(revision, false)],
                    Some(Ok(WatchMessage::Progress(_))) => Vec::new(),
                    Some(Ok(WatchMessage::Events(events))) => events.iter().filter_map(|event| store_event_line(&context, event)).collect(),
                };
                for line in lines {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn store_event_line(context: &WatchContext, event: &storage::Event) -> Option<Bytes> {
    let previous = event.prev.as_ref().and_then(|kv| from_store(kv).ok());
    match event.kind {
        EventKind::Delete => {
            let object = with_revision(previous.clone()?, event.kv.mod_revision);
            context.line(Change::Deleted, &object, previous.as_ref())
        }
        EventKind::Put => {
            let object = from_store(&event.kv).ok()?;
            let change = if previous.is_some() { Change::Modified } else { Change::Added };
            context.line(change, &object, previous.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_patch_whose_move_fails_after_other_operations_is_refused() {
        // Found by fuzzing: json_patch::patch panicked undoing the `add` under the subtree the failed `move` removed.
        let current = json!({"spec": {"x": [1, 2]}});
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "add", "path": "/spec/x/0", "value": 0},
            {"op": "move", "from": "/spec", "path": "/missing/y"}
        ]))
        .unwrap();
        assert!(apply_json_patch(&current, &patch).is_err());
        let patch: json_patch::Patch =
            serde_json::from_value(json!([{"op": "move", "from": "/spec/x", "path": "/spec/y"}])).unwrap();
        assert_eq!(apply_json_patch(&current, &patch).unwrap(), json!({"spec": {"y": [1, 2]}}));
    }

    #[test]
    fn watch_event_lines_encode_as_their_json_value() {
        let request = RestRequest {
            method: Method::GET,
            resource: apimachinery::registry::find("", "v1", "pods").unwrap(),
            namespace: None,
            name: None,
            subresource: None,
            query: Query::default(),
            content_type: None,
            user_agent: None,
            wanted: Wanted::Json,
            identity: crate::Identity::anonymous(),
        };
        let object = json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"a": "\"b\""}}});
        let expected = serde_json::to_vec(&json!({"type": "ADDED", "object": object})).unwrap();
        assert_eq!(event_line(&request, "ADDED", &object), [&expected[..], b"\n"].concat());
    }
}
