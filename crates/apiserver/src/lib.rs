//! The k8rs API server: TLS with client-certificate and bearer-token authentication, discovery, and one generic
//! REST handler that serves every resource in the registry from the store.
//!
//! It is the only component that touches the store; everything else in k8rs is its client. It must not call
//! into controllers, the scheduler or the kubelet: those talk to it through the API like any client.

pub mod auth;
mod cache;
mod certificates;
mod discovery;
mod http;
mod join;
mod jwt;
mod kubelet;
mod metrics;
mod metrics_api;
mod objects;
mod openapi;
mod openapi_v2;
pub mod pki;
mod priority;
mod rest;
mod reviews;
mod revision_slot;
mod scale;
mod serviceaccounts;
mod services;
mod table;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use apimachinery::registry;
use apimachinery::status::Status;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use storage::DynStore;
use tokio::net::TcpListener;

pub use auth::{Identity, TokenFile};
pub use objects::random_bytes;
pub use pki::Pki;
pub use services::Cidr;

use crate::http::{Body, Query};

/// The namespaces every cluster has.
pub const DEFAULT_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Config {
    pub store: DynStore,
    pub pki: Pki,
    pub tokens: TokenFile,
    /// The address clients use, reported in `/api`'s serverAddressByClientCIDRs.
    pub advertise_address: String,
    /// Where Service cluster IPs come from; the first address is the `kubernetes` Service's.
    pub service_cidr: Cidr,
    /// How often the resource metrics API scrapes every kubelet (metrics-server's `--metric-resolution`).
    pub metrics_resolution: Duration,
}

/// Shared by every request.
pub struct State {
    store: DynStore,
    pki: Pki,
    /// TLS to kubelets, with the API server's kubelet-client certificate.
    kubelet_tls: Arc<rustls::ClientConfig>,
    tokens: TokenFile,
    advertise_address: String,
    service_cidr: Cidr,
    caches: cache::Caches,
    metrics: Arc<metrics::Metrics>,
    /// What the last scrapes of the kubelets' resource metrics brought (`metrics.k8s.io`).
    resource_metrics: metrics_api::Store,
    /// Signs and verifies service-account tokens.
    issuer: serviceaccounts::Issuer,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("TLS material: {0}")]
    Tls(String),
    #[error("cannot prepare the datastore: {0}")]
    Store(String),
}

/// A running API server; dropping it does not stop it (the process ends it).
pub struct ApiServer {
    pub address: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
}

impl ApiServer {
    /// Creates what every cluster has, then serves HTTPS on `listener` in the background.
    pub async fn start(listener: TcpListener, config: Config) -> Result<ApiServer, ServerError> {
        let tls = Arc::new(tls_config(&config.pki)?);
        let kubelet_tls = Arc::new(kubelet::client_tls(&config.pki).map_err(ServerError::Tls)?);
        let signing_key = jwt::SigningKey::from_pkcs8_pem(&config.pki.service_account_key)
            .map_err(|e| ServerError::Tls(format!("service account signing key: {e}")))?;
        let metrics = Arc::new(metrics::Metrics::new());
        let store = metrics::MeteredStore::wrap(config.store, metrics.clone());
        let caches = cache::Caches::start(&store).await.map_err(|e| ServerError::Store(e.to_string()))?;
        let state = Arc::new(State {
            caches,
            metrics,
            issuer: serviceaccounts::Issuer::new(signing_key),
            store,
            pki: config.pki,
            kubelet_tls,
            tokens: config.tokens,
            advertise_address: config.advertise_address,
            service_cidr: config.service_cidr,
            resource_metrics: metrics_api::Store::new(config.metrics_resolution),
        });
        bootstrap(&state).await?;
        metrics_api::spawn_scraper(state.clone());
        let address = listener.local_addr().map_err(|e| ServerError::Tls(e.to_string()))?;
        tokio::spawn(accept_loop(listener, tls.clone(), state.clone()));
        Ok(ApiServer { address, tls, state })
    }

    /// Serves on one more listener, e.g. a socket in another network namespace (see `k8rs local-cluster`).
    pub fn serve(&self, listener: TcpListener) {
        tokio::spawn(accept_loop(listener, self.tls.clone(), self.state.clone()));
    }
}

fn tls_config(pki: &Pki) -> Result<rustls::ServerConfig, ServerError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| ServerError::Tls(format!("{what}: {e}"));
    let mut chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pki.serving.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad("serving certificate", &e))?;
    let ca: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pki.ca.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad("CA certificate", &e))?;
    chain.extend(ca.iter().cloned());
    let key = PrivateKeyDer::from_pem_slice(pki.serving.key_pem.as_bytes()).map_err(|e| bad("serving key", &e))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca {
        roots.add(cert).map_err(|e| bad("CA certificate", &e))?;
    }
    // Client certificates are optional: token and anonymous requests are authenticated (or refused) later.
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad("client verifier", &e))?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| bad("serving certificate", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Creates an object unless it exists: a restart finds what the first start made.
async fn create_if_absent(state: &State, key: &str, object: serde_json::Value) -> Result<(), ServerError> {
    match state.store.create(key, serde_json::to_vec(&object).expect("JSON serializes")).await {
        Ok(_) | Err(storage::StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(ServerError::Store(e.to_string())),
    }
}

fn new_metadata(name: &str, namespace: Option<&str>) -> serde_json::Value {
    let mut metadata = json!({
        "name": name,
        "uid": objects::new_uid(),
        "creationTimestamp": objects::timestamp(SystemTime::now()),
    });
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    metadata
}

/// Makes what every cluster has: the default namespaces, the system PriorityClasses, and the `kubernetes` Service
/// (the first Service IP) with the Endpoints that point at this server.
async fn bootstrap(state: &State) -> Result<(), ServerError> {
    let find = |name| registry::find("", "v1", name).expect("core resources are registered");
    for name in DEFAULT_NAMESPACES {
        let mut metadata = new_metadata(name, None);
        metadata["labels"] = json!({"kubernetes.io/metadata.name": name});
        let namespace = json!({
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": metadata,
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        create_if_absent(state, &objects::key(find("namespaces"), None, name), namespace).await?;
    }
    for (name, value) in apimachinery::validation::SYSTEM_PRIORITY_CLASSES {
        let class = priority::system_class(name, value, new_metadata(name, None));
        create_if_absent(state, &objects::key(priority::priority_classes(), None, name), class).await?;
    }
    let address: SocketAddr = state
        .advertise_address
        .parse()
        .map_err(|e| ServerError::Store(format!("advertise address {}: {e}", state.advertise_address)))?;
    let ip = state.service_cidr.nth(0).to_string();
    let service_key = objects::key(find("services"), Some("default"), "kubernetes");
    create_if_absent(state, &format!("/registry/k8rs/serviceips/{ip}"), json!(service_key)).await?;
    let mut metadata = new_metadata("kubernetes", Some("default"));
    metadata["labels"] = json!({"component": "apiserver", "provider": "kubernetes"});
    let service = json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": address.port()}],
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    });
    create_if_absent(state, &service_key, service).await?;
    let endpoints = json!({
        "kind": "Endpoints",
        "apiVersion": "v1",
        "metadata": new_metadata("kubernetes", Some("default")),
        "subsets": [{
            "addresses": [{"ip": address.ip().to_string()}],
            "ports": [{"name": "https", "port": address.port(), "protocol": "TCP"}],
        }],
    });
    create_if_absent(state, &objects::key(find("endpoints"), Some("default"), "kubernetes"), endpoints).await
}

async fn accept_loop(listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: Arc<State>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small request and response frames must not wait for delayed ACKs (Nagle would add ~40 ms to each).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => return tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let certificate_identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| Identity::from_certificate(cert));
            let service = hyper::service::service_fn(move |request| {
                let (state, identity) = (state.clone(), certificate_identity.clone());
                async move { Ok::<_, Infallible>(handle(&state, identity, request).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

/// Paths anonymous clients may read.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version" | "/version/" | "/cacerts")
}

async fn handle(state: &State, certificate: Option<Identity>, request: Request<Incoming>) -> Response<Body> {
    let identity = match request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(header) => {
            let identity = match header.strip_prefix("Bearer ").map(str::trim) {
                Some(token) => match state.tokens.authenticate(token) {
                    Some(identity) => Some(identity.clone()),
                    None => serviceaccounts::authenticate(state, token).await,
                },
                None => None,
            };
            match identity {
                Some(identity) => Some(identity),
                None => return http::status(&Status::unauthorized()),
            }
        }
        None => certificate,
    };
    let path = request.uri().path().to_string();
    if identity.is_none() && !is_public(&path) {
        return http::status(&Status::unauthorized());
    }
    let identity = identity.unwrap_or_else(Identity::anonymous);
    let response = route(state, &identity, request, &path).await;
    tracing::debug!(%path, code = response.status().as_u16(), user = %identity.user, "request");
    response
}

async fn route(state: &State, identity: &Identity, request: Request<Incoming>, path: &str) -> Response<Body> {
    let accept = request.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match (request.method(), segments.as_slice()) {
        (&Method::GET, ["healthz" | "livez" | "readyz"]) => http::text(StatusCode::OK, "ok"),
        (&Method::GET, ["version"]) => http::json(StatusCode::OK, &discovery::version()),
        (&Method::GET, ["cacerts"]) => join::ca_certificate(state),
        (&Method::GET, [".well-known", "openid-configuration"]) => serviceaccounts::openid_configuration(state),
        (&Method::GET, ["openid", "v1", "jwks"]) => serviceaccounts::jwks(state),
        (&Method::POST, ["v1-k8rs", "node-certificates"]) => match rest::read_body(request.into_body()).await {
            Ok(body) => join::node_certificates(state, identity, &body),
            Err(status) => http::status(&status),
        },
        (&Method::GET, ["metrics"]) => {
            http::respond(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", state.metrics.encode())
        }
        (&Method::GET, ["api"]) => match discovery::aggregated_version(accept.as_deref()) {
            Some(version) => aggregated(true, version),
            None => http::json(StatusCode::OK, &discovery::api_versions(&state.advertise_address)),
        },
        (&Method::GET, ["apis"]) => match discovery::aggregated_version(accept.as_deref()) {
            Some(version) => aggregated(false, version),
            None => http::json(StatusCode::OK, &discovery::api_group_list()),
        },
        (&Method::GET, ["api", "v1"]) => resource_list("", "v1", path),
        (&Method::GET, ["openapi", "v2"]) => openapi_v2::serve(request.headers()),
        (&Method::GET, ["openapi", "v3"]) => http::json(StatusCode::OK, &openapi::index()),
        (&Method::GET, ["openapi", "v3", rest @ ..]) => match openapi::document_for(&rest.join("/")) {
            Some(document) => http::json(StatusCode::OK, &document),
            None => http::status(&Status::no_route(path)),
        },
        (&Method::GET, ["apis", group]) => match discovery::api_group(group) {
            Some(document) => http::json(StatusCode::OK, &document),
            None => http::status(&Status::no_route(path)),
        },
        (&Method::GET, ["apis", group, version]) => resource_list(group, version, path),
        (_, ["api", "v1", rest @ ..]) => resource_request(state, identity, request, ("", "v1"), rest, path).await,
        // Answered from scraped kubelet metrics, not from the store.
        (_, ["apis", metrics_api::GROUP, metrics_api::VERSION, rest @ ..]) => {
            metrics_api::serve(state, request, rest, path).await
        }
        (_, ["apis", group, version, rest @ ..]) => {
            let (group, version, rest) = (group.to_string(), version.to_string(), rest.to_vec());
            resource_request(state, identity, request, (&group, &version), &rest, path).await
        }
        _ => http::status(&Status::no_route(path)),
    }
}

fn aggregated(core: bool, version: &str) -> Response<Body> {
    let body = serde_json::to_vec(&discovery::aggregated(core, version)).expect("JSON serializes");
    http::respond(StatusCode::OK, &discovery::aggregated_content_type(version), body)
}

fn resource_list(group: &str, version: &str, path: &str) -> Response<Body> {
    match discovery::api_resource_list(group, version) {
        Some(document) => http::json(StatusCode::OK, &document),
        None => http::status(&Status::no_route(path)),
    }
}

/// `…/[namespaces/{ns}/]{resource}[/{name}[/{subresource}]]` under a group version.
async fn resource_request(
    state: &State,
    identity: &Identity,
    request: Request<Incoming>,
    (group, version): (&str, &str),
    segments: &[&str],
    path: &str,
) -> Response<Body> {
    let lookup = |name: &str| registry::find(group, version, name);
    let (namespace, rest) = match segments {
        // namespaces/{ns}/{resource}/… unless it is a subresource of a namespace (namespaces/{ns}/status).
        ["namespaces", ns, resource, rest @ ..] if lookup(resource).is_some_and(|r| r.namespaced) => {
            (Some(ns.to_string()), std::iter::once(*resource).chain(rest.iter().copied()).collect::<Vec<_>>())
        }
        _ => (None, segments.to_vec()),
    };
    let Some((resource, name, subresource)) = (match rest.as_slice() {
        [resource] => lookup(resource).map(|r| (r, None, None)),
        [resource, name] => lookup(resource).map(|r| (r, Some(name.to_string()), None)),
        [resource, name, sub] => lookup(resource)
            .filter(|r| r.subresource(sub).is_some())
            .map(|r| (r, Some(name.to_string()), Some(sub.to_string()))),
        _ => None,
    }) else {
        return http::status(&Status::no_route(path));
    };
    if resource.namespaced && namespace.is_none() && name.is_some() {
        return http::status(&Status::no_route(path));
    }
    let query = Query::parse(request.uri().query());
    let method = request.method().clone();
    let accept = request.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let content_type =
        request.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let user_agent = request.headers().get(hyper::header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = match rest::read_body(request.into_body()).await {
        Ok(body) => body,
        Err(status) => return http::status(&status),
    };
    let rest_request = rest::RestRequest {
        method,
        resource,
        namespace,
        name,
        subresource,
        query,
        content_type,
        user_agent,
        wanted: http::negotiate(accept.as_deref()),
        identity: identity.clone(),
    };
    let series = metrics::RequestKey {
        verb: metrics::RequestKey::reported_verb(rest_request.verb(), rest_request.is_apply()),
        group: resource.group,
        version: resource.version,
        resource: resource.name,
        subresource: rest_request.subresource.as_deref().and_then(|s| resource.subresource(s)).map_or("", |s| s.name),
        scope: metrics::RequestKey::scope(rest_request.name.is_some(), rest_request.namespace.is_some()),
        dry_run: rest_request.dry_run(),
    };
    let started = std::time::Instant::now();
    let mut response = rest::serve(state, rest_request, body).await;
    state.metrics.observe_request(series, response.status().as_u16(), started);
    if let Some(warning) = resource.deprecation {
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{warning}\"")) {
            response.headers_mut().insert("Warning", value);
        }
    }
    response
}
