//! HTTP plumbing shared by every handler: the response body type, JSON and Status responses, query strings and
//! content negotiation.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use apimachinery::status::Status;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

pub type Body = BoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub fn respond(code: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = code;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_str(content_type).expect("content type is ASCII"));
    response
}

pub fn json(code: StatusCode, value: &serde_json::Value) -> Response<Body> {
    respond(code, "application/json", serde_json::to_vec(value).expect("JSON values serialize"))
}

pub fn text(code: StatusCode, body: &'static str) -> Response<Body> {
    respond(code, "text/plain; charset=utf-8", body)
}

pub fn status(status: &Status) -> Response<Body> {
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(code, "application/json", status.to_body())
}

/// A streamed body fed by a channel: one chunk per message, ended when the sender goes away.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// The query string, decoded. Repeated keys keep the last value (none of the parameters read here repeat).
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let mut map = HashMap::new();
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(percent_decode(key), percent_decode(value));
        }
        Query(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.0.get(key).map(String::as_str), Some("true" | "1"))
    }

    /// A non-negative integer parameter; a malformed one is a 400.
    pub fn number(&self, key: &str) -> Result<Option<i64>, Status> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).map(Some).ok_or_else(|| {
                Status::bad_request(format!("invalid value for {key}: {v:?} is not a non-negative integer"))
            }),
        }
    }
}

pub fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

/// What the client asked to receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    Json,
    Yaml,
    /// `application/json;as=Table;v=v1;g=meta.k8s.io`
    Table,
}

/// The first acceptable representation in the Accept header (protobuf is answered with JSON, which clients accept).
pub fn negotiate(accept: Option<&str>) -> Wanted {
    let Some(accept) = accept else {
        return Wanted::Json;
    };
    for option in accept.split(',') {
        let option = option.trim();
        let media = option.split(';').next().unwrap_or("").trim();
        let params: Vec<&str> = option.split(';').skip(1).map(str::trim).collect();
        if media == "application/json" && params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io") {
            if params.contains(&"v=v1") || params.contains(&"v=v1beta1") {
                return Wanted::Table;
            }
            continue;
        }
        if params.iter().any(|p| p.starts_with("as=")) {
            continue; // some other conversion (PartialObjectMetadata…): offer the plain object instead
        }
        match media {
            "application/yaml" => return Wanted::Yaml,
            "application/json" | "application/vnd.kubernetes.protobuf" | "*/*" | "application/*" => {
                return Wanted::Json
            }
            _ => {}
        }
    }
    Wanted::Json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let query = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&limit=500&x="));
        assert_eq!(query.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(query.flag("watch"));
        assert_eq!(query.number("limit").unwrap(), Some(500));
        assert_eq!(query.get("x"), None);
        assert!(Query::parse(Some("limit=-1")).number("limit").is_err());
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn kubectl_accept_headers_negotiate() {
        let get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(get)), Wanted::Table);
        assert_eq!(negotiate(Some("application/json")), Wanted::Json);
        assert_eq!(negotiate(Some("application/vnd.kubernetes.protobuf,application/json")), Wanted::Json);
        assert_eq!(negotiate(Some("application/yaml")), Wanted::Yaml);
        assert_eq!(negotiate(None), Wanted::Json);
    }
}
