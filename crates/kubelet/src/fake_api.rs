//! A fake API server for unit tests: plain HTTP on loopback, a canned JSON answer per (method, path), every
//! request recorded. Paths with no answer get upstream's 404 Status.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
struct State {
    answers: HashMap<(String, String), (u16, Value)>,
    requests: Vec<Recorded>,
}

pub struct FakeApi {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake API");
        let address = listener.local_addr().expect("local address");
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                let service = hyper::service::service_fn(move |request| answer(state.clone(), request));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        FakeApi { address, state }
    }

    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(format!("http://{}", self.address).parse().expect("URL"));
        kube::Client::try_from(config).expect("client of the fake API")
    }

    /// From now on, `method path` is answered with `code` and `body`.
    pub fn respond(&self, method: &str, path: &str, code: u16, body: Value) {
        self.state.lock().unwrap().answers.insert((method.into(), path.into()), (code, body));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
}

/// A TokenRequest response: `token`, granted for `lifetime` seconds and expiring `expires_in` seconds from now.
pub fn granted(token: &str, expires_in: u64, lifetime: i64) -> Value {
    let expires = SystemTime::now() + Duration::from_secs(expires_in);
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": lifetime},
        "status": {"token": token, "expirationTimestamp": apimachinery::time::rfc3339(expires)},
    })
}

async fn answer(
    state: Arc<Mutex<State>>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (method, path) = (request.method().to_string(), request.uri().path().to_string());
    let bytes = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut state = state.lock().unwrap();
    state.requests.push(Recorded { method: method.clone(), path: path.clone(), body });
    let (code, body) = state.answers.get(&(method, path)).cloned().unwrap_or_else(|| {
        let message = "the server could not find the requested resource";
        (404, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": "NotFound", "code": 404}))
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(code).expect("status code");
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/json".parse().expect("ASCII"));
    Ok(response)
}
