//! Service accounts as upstream has them: the ServiceAccount admission plugin for new Pods, the `token`
//! subresource (TokenRequest) that issues ES256 JWTs, the long-lived tokens of token Secrets, the authenticator
//! that accepts both, and the OIDC discovery documents that publish the issuer's public key.
//!
//! Objects are read from the watch cache (the store when the cache does not have them yet); nothing here writes
//! to the store. The `default` ServiceAccounts and the `kube-root-ca.crt` ConfigMaps the mounted volume reads
//! are made by controllers, as upstream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apimachinery::registry;
use apimachinery::status::{Status, StatusCause, StatusDetails, Target};
use base64::Engine as _;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::{self, Body};
use crate::jwt::{self, SigningKey};
use crate::objects::{self, meta_str};
use crate::rest::RestRequest;
use crate::{Identity, State};

/// The issuer of service-account tokens (`--service-account-issuer`), and the audience the API server accepts
/// (`--api-audiences` defaults to the issuer).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
pub const API_AUDIENCE: &str = ISSUER;
/// The prefix of the `extra` keys a ServiceAccount token's identity carries.
const EXTRA_PREFIX: &str = "authentication.kubernetes.io/";
/// Where the admission plugin mounts the token, the CA and the namespace in every container.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The projected volume's name is this and five random characters.
const VOLUME_PREFIX: &str = "kube-api-access-";
/// What the mounted token volume asks the kubelet for (upstream's WarnOnlyBoundTokenExpirationSeconds).
const VOLUME_TOKEN_SECONDS: i64 = 3607;
/// The annotation that marks the API copy of a kubelet's static pod.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const DEFAULT_ACCOUNT: &str = "default";
/// How often, and how far apart, admission looks for the `default` account before refusing a pod: the
/// serviceaccount controller makes it moments after its namespace (upstream: 10 tries, 100–200 ms apart).
const DEFAULT_ACCOUNT_TRIES: usize = 10;
const DEFAULT_ACCOUNT_RETRY: Duration = Duration::from_millis(200);
/// TokenRequest's `expirationSeconds`: the default, the least upstream validation allows, the most it allows,
/// and what k8rs shortens longer requests to (as upstream does with `--service-account-max-token-expiration`).
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 600;
const VALID_MAX_EXPIRATION: i64 = 1 << 32;
pub const MAX_EXPIRATION: i64 = 48 * 3600;
/// Verified tokens remembered (their signature is not checked again; their objects always are).
const VERIFIED_CACHE_ENTRIES: usize = 4096;
/// The issuer of the long-lived tokens kept in Secrets of type `kubernetes.io/service-account-token`, and the
/// prefix of their claims, as upstream's legacy tokens.
const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
const LEGACY_CLAIM_PREFIX: &str = "kubernetes.io/serviceaccount/";
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
const ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
const ACCOUNT_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// The token issuer: its key, and the tokens it has verified.
pub struct Issuer {
    key: SigningKey,
    verified: Mutex<HashMap<String, Arc<TokenClaims>>>,
}

impl Issuer {
    pub fn new(key: SigningKey) -> Issuer {
        Issuer { key, verified: Mutex::new(HashMap::new()) }
    }
}

/// `name` and `uid` of an object a token names.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ObjectRef {
    name: String,
    uid: String,
}

impl ObjectRef {
    fn of(object: &Value) -> ObjectRef {
        ObjectRef {
            name: meta_str(object, "name").unwrap_or_default().to_string(),
            uid: meta_str(object, "uid").unwrap_or_default().to_string(),
        }
    }

    fn claim(&self) -> Value {
        json!({"name": self.name, "uid": self.uid})
    }

    fn from_claim(claim: &Value) -> Option<ObjectRef> {
        let name = claim["name"].as_str().filter(|n| !n.is_empty())?.to_string();
        Some(ObjectRef { name, uid: claim["uid"].as_str().unwrap_or_default().to_string() })
    }
}

/// What a verified token says, from its `kubernetes.io` claim.
#[derive(Debug)]
struct TokenClaims {
    namespace: String,
    account: ObjectRef,
    pod: Option<ObjectRef>,
    secret: Option<ObjectRef>,
    node: Option<ObjectRef>,
    /// The registered claims, for the time checks every use makes.
    registered: Value,
    /// A long-lived token of a token Secret: no audience or expiry; good while its Secret holds it.
    legacy: bool,
}

impl TokenClaims {
    fn parse(claims: Value) -> Option<TokenClaims> {
        if claims["iss"] == LEGACY_ISSUER {
            return Self::parse_legacy(claims);
        }
        let private = &claims["kubernetes.io"];
        let namespace = private["namespace"].as_str().filter(|n| !n.is_empty())?.to_string();
        let account = ObjectRef::from_claim(&private["serviceaccount"])?;
        if claims["sub"].as_str() != Some(&subject(&namespace, &account.name)) {
            return None;
        }
        Some(TokenClaims {
            pod: ObjectRef::from_claim(&private["pod"]),
            secret: ObjectRef::from_claim(&private["secret"]),
            node: ObjectRef::from_claim(&private["node"]),
            namespace,
            account,
            registered: claims,
            legacy: false,
        })
    }

    fn parse_legacy(claims: Value) -> Option<TokenClaims> {
        let claim = |name: &str| {
            claims[format!("{LEGACY_CLAIM_PREFIX}{name}")].as_str().filter(|v| !v.is_empty()).map(str::to_string)
        };
        let namespace = claim("namespace")?;
        let account = ObjectRef { name: claim("service-account.name")?, uid: claim("service-account.uid")? };
        let secret = ObjectRef { name: claim("secret.name")?, uid: String::new() };
        if claims["sub"].as_str() != Some(&subject(&namespace, &account.name)) {
            return None;
        }
        Some(TokenClaims {
            namespace,
            account,
            pod: None,
            secret: Some(secret),
            node: None,
            registered: claims,
            legacy: true,
        })
    }
}

fn subject(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn resource(name: &str) -> &'static registry::Resource {
    registry::find("", "v1", name).expect("core resources are registered")
}

/// A core object by name, from the watch cache, or from the store when the cache does not have it (yet).
async fn lookup(
    state: &State,
    resource_name: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Arc<Value>>, Status> {
    lookup_object(state, resource(resource_name), namespace, name).await
}

/// An object by name, from the watch cache, or from the store when the cache does not have it (yet).
pub(crate) async fn lookup_object(
    state: &State,
    resource: &registry::Resource,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Arc<Value>>, Status> {
    let key = objects::key(resource, namespace, name);
    if let Some(object) = state.caches.get(resource).and_then(|cache| cache.get(&key)) {
        return Ok(Some(object));
    }
    match state.store.get(&key, 0).await.map_err(crate::rest::store_error)? {
        Some(kv) => serde_json::from_slice(&kv.value)
            .map(|object| Some(Arc::new(object)))
            .map_err(|e| Status::internal(format!("stored object {key} is not valid JSON: {e}"))),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Admission

/// `pods "NAME" is forbidden: WHY`, as upstream's admission errors read.
pub(crate) fn forbidden(pod: &str, why: &str) -> Status {
    Status::forbidden(format!("pods {pod:?} is forbidden: {why}")).with_details(StatusDetails {
        name: pod.to_string(),
        kind: "pods".into(),
        ..Default::default()
    })
}

/// The ServiceAccount admission plugin on a Pod create (see docs api-defaults.md §1b): the account defaults to
/// `default` and must exist, its imagePullSecrets are copied to a pod that has none, and unless automount is off
/// every container mounts the `kube-api-access-…` projected volume. Mirror pods are left alone, but may not
/// reference accounts, secrets or token projections.
pub async fn admit_pod(state: &State, namespace: &str, pod: &mut Value) -> Result<(), Status> {
    if !pod.get("spec").is_some_and(Value::is_object) {
        return Ok(()); // validation refuses it
    }
    let pod_name = meta_str(pod, "name").unwrap_or_default().to_string();
    if pod["metadata"]["annotations"].get(MIRROR_ANNOTATION).is_some() {
        return match mirror_pod_refusal(pod) {
            Some(why) => Err(forbidden(&pod_name, why)),
            None => Ok(()),
        };
    }
    // A missing or terminating namespace is refused later, as upstream's NamespaceLifecycle refuses it first.
    let usable = lookup(state, "namespaces", None, namespace)
        .await?
        .is_some_and(|ns| ns["metadata"].get("deletionTimestamp").is_none_or(Value::is_null));
    if !usable {
        return Ok(());
    }
    let name = account_name(pod);
    let tries = if name == DEFAULT_ACCOUNT { DEFAULT_ACCOUNT_TRIES } else { 1 };
    let mut account = None;
    for attempt in 0..tries {
        if attempt > 0 {
            tokio::time::sleep(DEFAULT_ACCOUNT_RETRY).await;
        }
        account = lookup(state, "serviceaccounts", Some(namespace), &name).await?;
        if account.is_some() {
            break;
        }
    }
    let Some(account) = account else {
        let why = format!("error looking up service account {namespace}/{name}: serviceaccount {name:?} not found");
        return Err(forbidden(&pod_name, &why));
    };
    apply_service_account(pod, &name, &account, &objects::random_suffix());
    Ok(())
}

/// `spec.serviceAccountName`, else the deprecated `spec.serviceAccount` (v1 conversion), else `default`.
fn account_name(pod: &Value) -> String {
    let spec = &pod["spec"];
    [&spec["serviceAccountName"], &spec["serviceAccount"]]
        .into_iter()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
        .unwrap_or(DEFAULT_ACCOUNT)
        .to_string()
}

/// What admission changes in a pod whose account `name` is `account`; `suffix` names a new token volume.
fn apply_service_account(pod: &mut Value, name: &str, account: &Value, suffix: &str) {
    let spec = pod["spec"].as_object_mut().expect("admission runs on pods with a spec");
    spec.insert("serviceAccountName".into(), json!(name));
    // Upstream's v1 output always carries the deprecated field, equal to serviceAccountName.
    spec.insert("serviceAccount".into(), json!(name));
    // The pod's preference wins, then the account's; mounting is the default.
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    if automount {
        mount_token_volume(spec, suffix);
    }
    let has_pull_secrets = spec.get("imagePullSecrets").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
    let from_account: Vec<Value> = account["imagePullSecrets"]
        .as_array()
        .map(|list| list.iter().map(|s| json!({"name": s["name"].as_str().unwrap_or_default()})).collect())
        .unwrap_or_default();
    if !has_pull_secrets && !from_account.is_empty() {
        spec.insert("imagePullSecrets".into(), json!(from_account));
    }
}

/// The `kube-api-access-…` volume upstream's plugin adds: a bound token, the cluster CA and the namespace.
fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": VOLUME_TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [
                    {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                ]}},
            ],
        },
    })
}

/// Mounts the token volume read-only at `TOKEN_MOUNT_PATH` in every init container, then every container, that
/// does not mount something there already; adds the volume if one of them needed it and the pod has no
/// `kube-api-access-` volume of its own (whose name the mounts then use).
fn mount_token_volume(spec: &mut serde_json::Map<String, Value>, suffix: &str) {
    let volumes_ok = spec.get("volumes").is_none_or(|v| v.is_array() || v.is_null());
    if !volumes_ok {
        return; // validation refuses it
    }
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .and_then(|volumes| volumes.iter().find_map(|v| v["name"].as_str().filter(|n| n.starts_with(VOLUME_PREFIX))))
        .map(str::to_string);
    let volume_name = existing.clone().unwrap_or_else(|| format!("{VOLUME_PREFIX}{suffix}"));
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else { continue };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
            if mounts.is_null() {
                *mounts = json!([]);
            }
            let Some(mounts) = mounts.as_array_mut() else { continue };
            if mounts.iter().any(|m| m["mountPath"].as_str() == Some(TOKEN_MOUNT_PATH)) {
                continue;
            }
            mounts.push(mount.clone());
            needed = true;
        }
    }
    if needed && existing.is_none() {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if volumes.is_null() {
            *volumes = json!([]);
        }
        volumes.as_array_mut().expect("volumes is an array").push(token_volume(&volume_name));
    }
}

/// Why upstream refuses a mirror pod: it may not reference service accounts, secrets or token projections.
fn mirror_pod_refusal(pod: &Value) -> Option<&'static str> {
    let spec = &pod["spec"];
    if ["serviceAccountName", "serviceAccount"].iter().any(|f| spec[f].as_str().is_some_and(|s| !s.is_empty())) {
        return Some("a mirror pod may not reference service accounts");
    }
    if references_secrets(spec) {
        return Some("a mirror pod may not reference secrets");
    }
    let projections = spec["volumes"].as_array().into_iter().flatten().flat_map(|v| {
        v["projected"]["sources"].as_array().into_iter().flatten().filter(|s| !s["serviceAccountToken"].is_null())
    });
    if projections.count() > 0 {
        return Some("a mirror pod may not use ServiceAccountToken volume projections");
    }
    None
}

/// Whether a pod spec names a Secret anywhere upstream's VisitPodSecretNames looks.
fn references_secrets(spec: &Value) -> bool {
    let named = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    if list(&spec["imagePullSecrets"]).iter().any(|s| named(&s["name"])) {
        return true;
    }
    for volume in list(&spec["volumes"]) {
        let projected = list(&volume["projected"]["sources"]).iter().any(|s| named(&s["secret"]["name"]));
        let sourced =
            ["cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos", "csi"].iter().any(|source| {
                let source = &volume[*source];
                ["secretRef", "nodePublishSecretRef"].iter().any(|r| named(&source[*r]["name"]))
            });
        if named(&volume["secret"]["secretName"]) || projected || sourced || named(&volume["azureFile"]["secretName"]) {
            return true;
        }
    }
    for group in ["initContainers", "containers", "ephemeralContainers"] {
        for container in list(&spec[group]) {
            if list(&container["envFrom"]).iter().any(|e| named(&e["secretRef"]["name"]))
                || list(&container["env"]).iter().any(|e| named(&e["valueFrom"]["secretKeyRef"]["name"]))
            {
                return true;
            }
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------------------------
// TokenRequest

/// `POST …/serviceaccounts/{name}/token`: a TokenRequest answered with a signed token, as upstream's
/// `pkg/registry/core/serviceaccount/storage/token.go`.
pub async fn create_token(
    state: &State,
    request: &RestRequest,
    body: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Response<Body>, Status> {
    let sub = request.resource.subresource("token").filter(|s| s.verbs.contains(&"create"));
    let Some(sub) = sub else {
        return Err(Status::method_not_allowed("create", request.resource.group, request.resource.name));
    };
    let (kind, group) = (sub.kind, sub.group);
    let gv = format!("{group}/{}", sub.version);
    let namespace = request.namespace.clone().unwrap_or_default();
    let name = request.name.clone().unwrap_or_default();
    let mut token_request = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        crate::rest::decode(request.content_type.as_deref(), body)?
    };
    match token_request.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != gv => {
            return Err(Status::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({gv})"
            )))
        }
        _ => {}
    }
    match token_request.get("kind").and_then(Value::as_str) {
        Some(k) if k != kind => {
            return Err(Status::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({kind})"
            )))
        }
        _ => {}
    }
    for (field, expected, why) in [
        ("name", &name, "must match the service account name if specified"),
        ("namespace", &namespace, "must match the service account namespace if specified"),
    ] {
        if let Some(given) = meta_str(&token_request, field).filter(|g| !g.is_empty() && g != expected) {
            let cause = StatusCause::invalid(format!("metadata.{field}"), format!("Invalid value: {given:?}: {why}"));
            return Err(Status::invalid(kind, group, &name, vec![cause]));
        }
    }
    let account = lookup(state, "serviceaccounts", Some(&namespace), &name)
        .await?
        .ok_or_else(|| Status::not_found(Target { group: "", resource: "serviceaccounts", name: &name }))?;

    let spec = &token_request["spec"];
    let audiences: Vec<String> = match &spec["audiences"] {
        Value::Null => Vec::new(),
        Value::Array(list) => list
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| Status::bad_request("spec.audiences must be a list of strings"))?,
        _ => return Err(Status::bad_request("spec.audiences must be a list of strings")),
    };
    let audiences = if audiences.is_empty() { vec![API_AUDIENCE.to_string()] } else { audiences };
    let mut expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION,
        value => value.as_i64().ok_or_else(|| Status::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    let bound = match &spec["boundObjectRef"] {
        Value::Null => None,
        reference if reference.is_object() => Some(reference.clone()),
        _ => return Err(Status::bad_request("spec.boundObjectRef must be an object")),
    };
    let mut causes = Vec::new();
    if expiration < MIN_EXPIRATION {
        causes.push(format!("Invalid value: {expiration}: may not specify a duration less than 10 minutes"));
    }
    if expiration > VALID_MAX_EXPIRATION {
        causes.push(format!("Invalid value: {expiration}: may not specify a duration larger than 2^32 seconds"));
    }
    if !causes.is_empty() {
        let causes = causes.into_iter().map(|c| StatusCause::invalid("spec.expirationSeconds", c)).collect();
        return Err(Status::invalid(kind, group, "", causes));
    }
    if expiration > MAX_EXPIRATION {
        warnings.push(format!("requested expiration of {expiration} seconds shortened to {MAX_EXPIRATION} seconds"));
        expiration = MAX_EXPIRATION;
    }

    let mut private = json!({
        "namespace": namespace,
        "serviceaccount": ObjectRef::of(&account).claim(),
    });
    if let Some(reference) = &bound {
        for (field, claim) in bind(state, &namespace, &name, reference).await? {
            private[field] = claim;
        }
    }

    let now = unix_now();
    let created = UNIX_EPOCH + Duration::from_secs(now as u64);
    let metadata = objects::metadata(&mut token_request);
    metadata.insert("name".into(), json!(name));
    metadata.insert("namespace".into(), json!(namespace));
    metadata.insert("creationTimestamp".into(), json!(objects::timestamp(created)));
    token_request["apiVersion"] = json!(gv);
    token_request["kind"] = json!(kind);
    token_request["spec"] = json!({
        "audiences": audiences,
        "expirationSeconds": expiration,
        "boundObjectRef": bound,
    });
    if request.query.get("dryRun") == Some("All") {
        token_request["status"] = json!({"token": "", "expirationTimestamp": null});
        return Ok(http::json(StatusCode::CREATED, &token_request));
    }
    let claims = json!({
        "aud": audiences,
        "exp": now + expiration,
        "iat": now,
        "iss": ISSUER,
        "jti": objects::new_uid(),
        "kubernetes.io": private,
        "nbf": now,
        "sub": subject(&namespace, &name),
    });
    let token = state.issuer.key.sign(&claims);
    token_request["status"] = json!({
        "token": token,
        "expirationTimestamp": objects::timestamp(created + Duration::from_secs(expiration as u64)),
    });
    tracing::debug!(%namespace, account = %name, user = %request.identity.user, "issued a service account token");
    Ok(http::json(StatusCode::CREATED, &token_request))
}

/// The claims a `boundObjectRef` adds (`pod` and, when it runs on a known node, `node`; or `secret`; or `node`),
/// after checking the object exists with the given uid.
async fn bind(
    state: &State,
    namespace: &str,
    account: &str,
    reference: &Value,
) -> Result<Vec<(&'static str, Value)>, Status> {
    let kind = reference["kind"].as_str().unwrap_or_default();
    let api_version = reference["apiVersion"].as_str().unwrap_or_default();
    let name = reference["name"].as_str().unwrap_or_default();
    let uid = reference["uid"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (resource_name, field, namespaced) = match (group, kind) {
        ("", "Pod") => ("pods", "pod", true),
        ("", "Secret") => ("secrets", "secret", true),
        ("", "Node") => ("nodes", "node", false),
        _ => {
            return Err(Status::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={kind}"
            )))
        }
    };
    let object = lookup(state, resource_name, namespaced.then_some(namespace), name)
        .await?
        .ok_or_else(|| Status::not_found(Target { group: "", resource: resource_name, name }))?;
    if kind == "Pod" && object["spec"]["serviceAccountName"].as_str().unwrap_or_default() != account {
        return Err(Status::bad_request(format!(
            "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
        )));
    }
    let found = ObjectRef::of(&object);
    if !uid.is_empty() && uid != found.uid {
        return Err(Status::conflict(
            Target { group, resource: kind, name },
            &format!(
                "the UID in the bound object reference ({uid}) does not match the UID in record. The object might \
                 have been deleted and then recreated"
            ),
        ));
    }
    let mut claims = vec![(field, found.claim())];
    if let Some(node_name) = object["spec"]["nodeName"].as_str().filter(|n| kind == "Pod" && !n.is_empty()) {
        if let Some(node) = lookup(state, "nodes", None, node_name).await? {
            claims.push(("node", ObjectRef::of(&node).claim()));
        }
    }
    Ok(claims)
}

// ---------------------------------------------------------------------------------------------------------------
// Authentication

/// The identity of a bearer token this server issued, if it is still good: the signature, issuer, audience and
/// times check out, and the ServiceAccount (and the object the token is bound to) still exist with the uids the
/// token names and are not being deleted for more than a minute.
pub async fn authenticate(state: &State, token: &str) -> Option<Identity> {
    authenticate_for(state, token, &[API_AUDIENCE]).await.map(|(identity, _)| identity)
}

/// [`authenticate`] for any of `audiences` (a TokenReview's): the identity and the audiences the token is good for.
pub async fn authenticate_for<'a>(
    state: &State,
    token: &str,
    audiences: &[&'a str],
) -> Option<(Identity, Vec<&'a str>)> {
    let claims = verified(&state.issuer, token)?;
    let now = unix_now();
    let good: Vec<&str> = audiences
        .iter()
        .copied()
        .filter(|audience| {
            if claims.legacy {
                // Without an audience of its own, it is good for the API server's.
                return *audience == API_AUDIENCE;
            }
            match jwt::check_claims(&claims.registered, ISSUER, audience, now) {
                Ok(()) => true,
                Err(error) => {
                    tracing::debug!(%error, "service account token refused");
                    false
                }
            }
        })
        .collect();
    if good.is_empty() {
        return None;
    }
    let namespace = claims.namespace.as_str();
    let live = |object: Option<Arc<Value>>, expected: &ObjectRef| {
        let object = object?;
        let deleted_long_ago = meta_str(&object, "deletionTimestamp")
            .and_then(objects::parse_timestamp)
            .is_some_and(|at| at < now - jwt::LEEWAY_SECONDS);
        (meta_str(&object, "uid") == Some(expected.uid.as_str()) && !deleted_long_ago).then_some(())
    };
    let account = lookup(state, "serviceaccounts", Some(namespace), &claims.account.name).await.ok()?;
    live(account, &claims.account)?;
    if let Some(pod) = &claims.pod {
        live(lookup(state, "pods", Some(namespace), &pod.name).await.ok()?, pod)?;
    } else if let Some(secret) = &claims.secret {
        let object = lookup(state, "secrets", Some(namespace), &secret.name).await.ok()?;
        if claims.legacy {
            holds_token(object.as_deref()?, token)?;
        } else {
            live(object, secret)?;
        }
    } else if let Some(node) = &claims.node {
        live(lookup(state, "nodes", None, &node.name).await.ok()?, node)?;
    }
    // As upstream: the token's id, and the pod and node it was bound to, for audit and authorization.
    let mut extra = std::collections::BTreeMap::new();
    if let Some(jti) = claims.registered["jti"].as_str() {
        extra.insert(format!("{EXTRA_PREFIX}credential-id"), vec![format!("JTI={jti}")]);
    }
    for (what, bound) in [("pod", &claims.pod), ("node", &claims.node)] {
        if let Some(bound) = bound {
            extra.insert(format!("{EXTRA_PREFIX}{what}-name"), vec![bound.name.clone()]);
            extra.insert(format!("{EXTRA_PREFIX}{what}-uid"), vec![bound.uid.clone()]);
        }
    }
    let identity = Identity {
        user: subject(namespace, &claims.account.name),
        uid: claims.account.uid.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".into(),
        ],
        extra,
    };
    Some((identity, good))
}

/// A token Secret still holds `token` and is not being deleted (upstream's legacy token checks).
fn holds_token(secret: &Value, token: &str) -> Option<()> {
    let stored = secret["data"]["token"].as_str()?;
    let stored = base64::engine::general_purpose::STANDARD.decode(stored).ok()?;
    (stored == token.as_bytes() && meta_str(secret, "deletionTimestamp").is_none()).then_some(())
}

/// A new Secret of type `kubernetes.io/service-account-token` gets what upstream's token controller gives it: a
/// long-lived token of the ServiceAccount its annotation names, the cluster CA and the namespace, and the
/// account's uid as an annotation. A Secret that already has a token keeps it; one whose account does not exist
/// gets none.
pub async fn fill_token_secret(state: &State, namespace: &str, secret: &mut Value) -> Result<(), Status> {
    if secret["type"] != TOKEN_SECRET_TYPE {
        return Ok(());
    }
    let name = meta_str(secret, "name").unwrap_or_default().to_string();
    let account_name = secret["metadata"]["annotations"][ACCOUNT_NAME_ANNOTATION].as_str().unwrap_or_default();
    if account_name.is_empty() {
        let field = format!("metadata.annotations[{ACCOUNT_NAME_ANNOTATION}]");
        return Err(Status::invalid("Secret", "", &name, vec![StatusCause::required(field)]));
    }
    let has = |key: &str| secret["data"][key].as_str().is_some_and(|v| !v.is_empty());
    if has("token") {
        return Ok(());
    }
    let Some(account) = lookup(state, "serviceaccounts", Some(namespace), account_name).await? else {
        return Ok(());
    };
    let account = ObjectRef::of(&account);
    let claims = json!({
        "iss": LEGACY_ISSUER,
        format!("{LEGACY_CLAIM_PREFIX}namespace"): namespace,
        format!("{LEGACY_CLAIM_PREFIX}secret.name"): name,
        format!("{LEGACY_CLAIM_PREFIX}service-account.name"): account.name,
        format!("{LEGACY_CLAIM_PREFIX}service-account.uid"): account.uid,
        "sub": subject(namespace, &account.name),
    });
    let token = state.issuer.key.sign(&claims);
    let encode = |text: &str| json!(base64::engine::general_purpose::STANDARD.encode(text));
    let data = secret.as_object_mut().map(|s| s.entry("data").or_insert_with(|| json!({})));
    let Some(Value::Object(data)) = data else {
        return Err(Status::bad_request("data must be a map"));
    };
    data.insert("token".into(), encode(&token));
    data.insert("ca.crt".into(), encode(&state.pki.ca.cert_pem));
    data.insert("namespace".into(), encode(namespace));
    let annotations = objects::metadata(secret).entry("annotations").or_insert_with(|| json!({}));
    if let Some(annotations) = annotations.as_object_mut() {
        annotations.insert(ACCOUNT_UID_ANNOTATION.into(), json!(account.uid));
    }
    tracing::debug!(%namespace, secret = %name, account = %account.name, "filled a service account token secret");
    Ok(())
}

/// The claims of a token signed by this server's key, from the cache of verified tokens when it is there.
fn verified(issuer: &Issuer, token: &str) -> Option<Arc<TokenClaims>> {
    if token.len() > 16 * 1024 || token.split('.').count() != 3 {
        return None;
    }
    if let Some(claims) = issuer.verified.lock().unwrap().get(token) {
        return Some(claims.clone());
    }
    let claims = match issuer.key.verify(token) {
        Ok(claims) => claims,
        Err(error) => {
            tracing::debug!(%error, "bearer token is not a service account token of this server");
            return None;
        }
    };
    let claims = Arc::new(TokenClaims::parse(claims)?);
    let mut cache = issuer.verified.lock().unwrap();
    if cache.len() >= VERIFIED_CACHE_ENTRIES {
        let now = unix_now();
        cache.retain(|_, c| c.registered["exp"].as_i64().is_some_and(|exp| exp + jwt::LEEWAY_SECONDS >= now));
        if cache.len() >= VERIFIED_CACHE_ENTRIES {
            cache.clear();
        }
    }
    cache.insert(token.to_string(), claims.clone());
    Some(claims)
}

// ---------------------------------------------------------------------------------------------------------------
// OIDC discovery

/// Upstream's `openIDMetadata`, fields in its order.
#[derive(Serialize)]
struct OpenIdConfiguration<'a> {
    issuer: &'a str,
    jwks_uri: String,
    response_types_supported: [&'a str; 1],
    subject_types_supported: [&'a str; 1],
    id_token_signing_alg_values_supported: [&'a str; 1],
}

fn cacheable(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

/// `GET /.well-known/openid-configuration`.
pub fn openid_configuration(state: &State) -> Response<Body> {
    let document = OpenIdConfiguration {
        issuer: ISSUER,
        jwks_uri: format!("https://{}/openid/v1/jwks", state.advertise_address),
        response_types_supported: ["id_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["ES256"],
    };
    let body = serde_json::to_vec(&document).expect("JSON serializes");
    cacheable(http::respond(StatusCode::OK, "application/json", body))
}

/// `GET /openid/v1/jwks`: the issuer's public key.
pub fn jwks(state: &State) -> Response<Body> {
    let body = serde_json::to_vec(&json!({"keys": [state.issuer.key.jwk()]})).expect("JSON serializes");
    cacheable(http::respond(StatusCode::OK, "application/jwk-set+json", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    }

    fn admitted(spec: Value, account: Value) -> Value {
        let mut pod = pod(spec);
        let name = account_name(&pod);
        apply_service_account(&mut pod, &name, &account, "x7k2q");
        pod
    }

    const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

    #[test]
    fn a_pod_gets_the_default_account_and_the_projected_token_volume_exactly() {
        let pod = admitted(
            json!({"initContainers": [{"name": "init", "image": "i"}], "containers": [{"name": "app", "image": "a"}]}),
            json!({"metadata": {"name": "default"}}),
        );
        let spec = &pod["spec"];
        assert_eq!(
            (spec["serviceAccountName"].as_str(), spec["serviceAccount"].as_str()),
            (Some("default"), Some("default"))
        );
        assert_eq!(
            spec["volumes"],
            json!([{
                "name": "kube-api-access-x7k2q",
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                    ]
                }
            }])
        );
        let mount = json!([{"name": "kube-api-access-x7k2q", "readOnly": true, "mountPath": MOUNT}]);
        assert_eq!(spec["initContainers"][0]["volumeMounts"], mount);
        assert_eq!(spec["containers"][0]["volumeMounts"], mount);
        assert!(spec.get("imagePullSecrets").is_none(), "an account without pull secrets adds none");
    }

    #[test]
    fn the_volume_suffix_comes_from_the_generate_name_alphabet() {
        let suffix = objects::random_suffix();
        assert_eq!(suffix.len(), 5);
        assert!(suffix.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{suffix}");
    }

    #[test]
    fn automount_follows_the_pod_then_the_account() {
        let containers = json!([{"name": "app", "image": "a"}]);
        let off = admitted(
            json!({"containers": containers, "automountServiceAccountToken": false}),
            json!({"metadata": {"name": "default"}}),
        );
        assert!(off["spec"].get("volumes").is_none() && off["spec"]["containers"][0].get("volumeMounts").is_none());
        assert_eq!(off["spec"]["serviceAccountName"], "default");
        let account_off = json!({"metadata": {"name": "default"}, "automountServiceAccountToken": false});
        let off = admitted(json!({"containers": containers}), account_off.clone());
        assert!(off["spec"].get("volumes").is_none(), "the account's false applies when the pod says nothing");
        let on = admitted(json!({"containers": containers, "automountServiceAccountToken": true}), account_off);
        assert_eq!(on["spec"]["volumes"].as_array().unwrap().len(), 1, "the pod's preference wins");
    }

    #[test]
    fn a_container_that_mounts_the_path_already_is_skipped() {
        let own = json!({"name": "mine", "mountPath": MOUNT});
        let pod = admitted(
            json!({
                "volumes": [{"name": "mine", "emptyDir": {}}],
                "containers": [{"name": "a", "image": "a", "volumeMounts": [own]}, {"name": "b", "image": "b"}],
            }),
            json!({"metadata": {"name": "default"}}),
        );
        let spec = &pod["spec"];
        assert_eq!(spec["containers"][0]["volumeMounts"], json!([own]));
        assert_eq!(spec["containers"][1]["volumeMounts"][0]["name"], "kube-api-access-x7k2q");
        assert_eq!(spec["volumes"].as_array().unwrap().len(), 2);
        // When every container mounts the path itself, no volume is added.
        let pod = admitted(
            json!({"volumes": [{"name": "mine", "emptyDir": {}}], "containers": [{"name": "a", "image": "a", "volumeMounts": [own]}]}),
            json!({"metadata": {"name": "default"}}),
        );
        assert_eq!(pod["spec"]["volumes"], json!([{"name": "mine", "emptyDir": {}}]));
        // A pod that has a kube-api-access- volume of its own keeps it, and the mounts use its name.
        let pod = admitted(
            json!({"volumes": [{"name": "kube-api-access-own", "emptyDir": {}}], "containers": [{"name": "a", "image": "a"}]}),
            json!({"metadata": {"name": "default"}}),
        );
        assert_eq!(pod["spec"]["volumes"], json!([{"name": "kube-api-access-own", "emptyDir": {}}]));
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"][0]["name"], "kube-api-access-own");
        // Ephemeral containers are not given the mount.
        let pod = admitted(
            json!({"containers": [{"name": "a", "image": "a"}], "ephemeralContainers": [{"name": "e", "image": "e"}]}),
            json!({"metadata": {"name": "default"}}),
        );
        assert!(pod["spec"]["ephemeralContainers"][0].get("volumeMounts").is_none());
    }

    #[test]
    fn pull_secrets_come_from_the_account_unless_the_pod_has_some() {
        let account = json!({"metadata": {"name": "builder"}, "imagePullSecrets": [{"name": "regcred"}]});
        let pod = admitted(json!({"serviceAccountName": "builder", "containers": []}), account.clone());
        assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));
        assert_eq!(pod["spec"]["serviceAccount"], "builder");
        let own = admitted(json!({"serviceAccountName": "builder", "imagePullSecrets": [{"name": "mine"}]}), account);
        assert_eq!(own["spec"]["imagePullSecrets"], json!([{"name": "mine"}]));
        // The deprecated field names the account when serviceAccountName does not.
        assert_eq!(account_name(&self::pod(json!({"serviceAccount": "legacy"}))), "legacy");
        assert_eq!(account_name(&self::pod(json!({}))), "default");
    }

    #[test]
    fn mirror_pods_may_not_reference_accounts_secrets_or_tokens() {
        assert_eq!(mirror_pod_refusal(&pod(json!({"containers": [{"name": "a", "image": "a"}]}))), None);
        let refusal = |spec: Value| mirror_pod_refusal(&pod(spec)).unwrap_or_default();
        assert!(refusal(json!({"serviceAccountName": "x"})).contains("service accounts"));
        assert!(refusal(json!({"volumes": [{"name": "s", "secret": {"secretName": "s"}}]})).contains("secrets"));
        let env = json!([{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]);
        assert!(refusal(json!({"containers": [{"name": "a", "env": env}]})).contains("secrets"));
        let projected = json!([{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]);
        assert!(refusal(json!({"volumes": projected})).contains("ServiceAccountToken"));
    }

    #[test]
    fn token_claims_need_a_namespace_an_account_and_a_matching_subject() {
        let claims = json!({
            "sub": "system:serviceaccount:ns:sa",
            "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "sa", "uid": "u1"}, "pod": {"name": "p", "uid": "u2"}},
        });
        let parsed = TokenClaims::parse(claims.clone()).unwrap();
        assert_eq!(parsed.account, ObjectRef { name: "sa".into(), uid: "u1".into() });
        assert_eq!(parsed.pod, Some(ObjectRef { name: "p".into(), uid: "u2".into() }));
        assert_eq!(parsed.node, None);
        let mut other = claims.clone();
        other["sub"] = json!("system:serviceaccount:kube-system:sa");
        assert!(TokenClaims::parse(other).is_none());
        let mut no_account = claims;
        no_account["kubernetes.io"]["serviceaccount"] = Value::Null;
        assert!(TokenClaims::parse(no_account).is_none());
    }
}
