//! `/openapi/v2`: the Swagger 2.0 document kubectl ≤1.28 reads for `explain` (and for client-side validation when
//! `/openapi/v3` cannot tell it that the server validates). kubectl asks for it only as protobuf, the gnostic
//! `openapi.v2.Document` message (github.com/google/gnostic-models, `openapiv2/OpenAPIv2.proto`); JSON is served
//! too, as upstream does.
//!
//! The document is made from the `/openapi/v3` ones: their paths with Swagger 2.0 parameters and responses, and
//! their schemas as `definitions`, in the forms upstream publishes and kubectl's parser accepts (a described
//! reference is `{$ref, description}`, references point into `#/definitions/`). The protobuf encoding follows
//! what gnostic makes of the JSON: JSON keys map to message fields, maps (`definitions`, `properties`, `paths`,
//! `responses`) to repeated `Named…{name, value}` entries, `x-…` keys to `NamedAny` whose `Any.yaml` holds the
//! value as YAML, and the JSON unions (`type`, `items`, `additionalProperties`, parameters) to `oneof` messages.

use std::sync::OnceLock;

use hyper::header::{HeaderMap, HeaderValue, ACCEPT, ETAG, IF_NONE_MATCH, VARY};
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::http::{self, Body};

const V3_REF_PREFIX: &str = "#/components/schemas/";
const V2_REF_PREFIX: &str = "#/definitions/";

const JSON: &str = "application/json";
/// What upstream answers protobuf requests with, whichever of its two spellings was asked for.
const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
/// The spelling kubectl asks for.
const PROTOBUF_DEPRECATED: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The document in both encodings and its entity tag, built on first use: it holds every schema and path.
struct Spec {
    json: Vec<u8>,
    protobuf: Vec<u8>,
    /// Quoted, as upstream: the SHA-512 of the JSON, shared by both encodings (responses vary by Accept).
    etag: String,
}

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let document = document();
        let json = serde_json::to_vec(&document).expect("JSON values serialize");
        // The document is made from the embedded schemas, which the tests encode in full.
        let protobuf = encode(&document).expect("the OpenAPI v2 document encodes as protobuf");
        let digest = ring::digest::digest(&ring::digest::SHA512, &json);
        let hex: String = digest.as_ref().iter().map(|byte| format!("{byte:02X}")).collect();
        Spec { json, protobuf, etag: format!("\"{hex}\"") }
    })
}

/// `GET /openapi/v2`: JSON or protobuf as the Accept header asks (406 for anything else), 304 when the client
/// already holds this version.
pub fn serve(headers: &HeaderMap) -> Response<Body> {
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("*/*");
    let Some(content_type) = negotiate(accept) else {
        return http::respond(StatusCode::NOT_ACCEPTABLE, "text/plain; charset=utf-8", "");
    };
    let spec = spec();
    let cached = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|tags| {
        tags.split(',').map(|tag| tag.trim()).any(|tag| tag == "*" || tag.trim_start_matches("W/") == spec.etag)
    });
    let mut response = if cached {
        let mut response = Response::new(http::full(bytes::Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let body: &'static [u8] = if content_type == JSON { &spec.json } else { &spec.protobuf };
        http::respond(StatusCode::OK, content_type, bytes::Bytes::from_static(body))
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, HeaderValue::from_str(&spec.etag).expect("the entity tag is ASCII"));
    headers.insert(VARY, HeaderValue::from_static("Accept"));
    response
}

/// The content type of the first acceptable encoding, taking the clauses by decreasing quality as upstream.
fn negotiate(accept: &str) -> Option<&'static str> {
    let mut clauses: Vec<(&str, f32)> = accept
        .split(',')
        .map(|clause| {
            let mut parts = clause.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let quality = parts.find_map(|p| p.strip_prefix("q=")).and_then(|q| q.parse().ok()).unwrap_or(1.0);
            (media, quality)
        })
        .filter(|(_, quality)| *quality > 0.0)
        .collect();
    clauses.sort_by(|a, b| b.1.total_cmp(&a.1));
    let offered = [(JSON, JSON), (PROTOBUF_DEPRECATED, PROTOBUF), (PROTOBUF, PROTOBUF)];
    clauses.iter().find_map(|(media, _)| {
        let (kind, sub) = media.split_once('/')?;
        offered.iter().find_map(|(offer, answer)| {
            let (offer_kind, offer_sub) = offer.split_once('/').expect("offers are media types");
            ((kind == "*" || kind == offer_kind) && (sub == "*" || sub == offer_sub)).then_some(*answer)
        })
    })
}

/// The Swagger 2.0 document: every group version's paths and schemas.
fn document() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for (v3, _) in crate::openapi::documents().values() {
        for (path, operations) in v3["paths"].as_object().into_iter().flatten() {
            let operations = operations.as_object().into_iter().flatten();
            let mut item: Map<String, Value> = operations.map(|(method, v3)| (method.clone(), operation(v3))).collect();
            let kind =
                item.values().find_map(|operation| operation["x-kubernetes-group-version-kind"]["kind"].as_str());
            let parameters = path_parameters(path, kind.unwrap_or("object"));
            item.insert("parameters".into(), Value::Array(parameters));
            paths.insert(path.clone(), Value::Object(item));
        }
        for (name, v3) in v3["components"]["schemas"].as_object().into_iter().flatten() {
            definitions.entry(name.as_str()).or_insert_with(|| schema(v3));
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::discovery::KUBERNETES_MINOR)},
        "paths": paths,
        "definitions": definitions,
    })
}

/// The `{namespace}` and `{name}` of a path, described as upstream does.
fn path_parameters(path: &str, kind: &str) -> Vec<Value> {
    let names = path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'));
    let parameter = |name: &str| {
        let description = match name {
            "namespace" => "object name and auth scope, such as for teams and projects".to_string(),
            _ => format!("{name} of the {kind}"),
        };
        json!({
            "name": name,
            "in": "path",
            "description": description,
            "required": true,
            "type": "string",
            "uniqueItems": true,
        })
    };
    names.map(parameter).collect()
}

/// An operation in Swagger 2.0 form: a parameter's type sits on the parameter, a response's schema on the
/// response.
fn operation(v3: &Value) -> Value {
    let mut operation = v3.clone();
    for parameter in operation["parameters"].as_array_mut().into_iter().flatten() {
        if let Some(Value::Object(type_)) = parameter.as_object_mut().and_then(|p| p.remove("schema")) {
            parameter.as_object_mut().expect("a parameter is an object").extend(type_);
        }
    }
    for response in operation["responses"].as_object_mut().into_iter().flat_map(|r| r.values_mut()) {
        if let Some(content) = response.as_object_mut().and_then(|r| r.remove("content")) {
            response["schema"] = schema(&content["application/json"]["schema"]);
        }
    }
    operation
}

/// A schema in the Swagger 2.0 form upstream publishes: references point into `definitions` and take their
/// description beside them (no `allOf` wrapping), unions (`oneOf`, which Swagger 2.0 lacks) are left untyped, and
/// an int-or-string is a string of format `int-or-string`.
fn schema(v3: &Value) -> Value {
    let Value::Object(v3) = v3 else {
        return v3.clone();
    };
    let mut v2 = Map::new();
    for (key, value) in v3 {
        match (key.as_str(), value) {
            ("properties", Value::Object(properties)) => {
                let properties = properties.iter().map(|(name, property)| (name.clone(), schema(property)));
                v2.insert(key.clone(), Value::Object(properties.collect()));
            }
            ("items" | "additionalProperties", _) => {
                v2.insert(key.clone(), schema(value));
            }
            ("$ref", Value::String(reference)) => {
                let name = reference.strip_prefix(V3_REF_PREFIX).unwrap_or(reference);
                v2.insert(key.clone(), json!(format!("{V2_REF_PREFIX}{name}")));
            }
            ("allOf", Value::Array(members)) => match members.as_slice() {
                [member] => v2.extend(schema(member).as_object().cloned().unwrap_or_default()),
                _ => {
                    v2.insert(key.clone(), Value::Array(members.iter().map(schema).collect()));
                }
            },
            ("oneOf", _) => {}
            ("x-kubernetes-int-or-string", Value::Bool(true)) => {
                v2.insert("type".into(), json!("string"));
                v2.insert("format".into(), json!("int-or-string"));
            }
            _ => {
                v2.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(v2)
}

/// How a JSON value becomes a protobuf field.
#[derive(Clone, Copy)]
enum Kind {
    String,
    Bool,
    Int64,
    Double,
    /// gnostic's `Any`: the value as YAML text (field 2).
    Any,
    Message(&'static Message),
    /// A repeated field: each element of a JSON array, or a lone value.
    Many(&'static Kind),
    /// A message holding one field, chosen by the value: gnostic's unions (`oneof`, `TypeItem`, `ItemsItem`).
    OneOf(fn(&Value) -> Option<(u32, Kind)>),
}

/// A message made from a JSON object.
struct Message {
    name: &'static str,
    fields: &'static [(&'static str, u32, Kind)],
    /// Where `x-…` keys go, as repeated `NamedAny`.
    extensions: Option<u32>,
    /// Where the other keys go, as repeated `Named…{1 name, 2 value}` (the message stands for a JSON map).
    entries: Option<(u32, Kind)>,
}

const STRINGS: Kind = Kind::Many(&Kind::String);
static SCHEMA_KIND: Kind = Kind::Message(&SCHEMA);
/// `ParametersItem` holds a `Parameter` (1) (no `JsonReference`), which holds a `NonBodyParameter` (2) (k8rs
/// declares no body parameters).
static PARAMETERS_ITEM: Kind = Kind::OneOf(|_| Some((1, Kind::OneOf(|_| Some((2, Kind::OneOf(non_body_parameter)))))));

static DOCUMENT: Message = Message {
    name: "Document",
    fields: &[
        ("swagger", 1, Kind::String),
        ("info", 2, Kind::Message(&INFO)),
        ("paths", 8, Kind::Message(&PATHS)),
        ("definitions", 9, Kind::Message(&DEFINITIONS)),
    ],
    extensions: Some(16),
    entries: None,
};

static INFO: Message = Message {
    name: "Info",
    fields: &[("title", 1, Kind::String), ("version", 2, Kind::String)],
    extensions: Some(7),
    entries: None,
};

static PATHS: Message =
    Message { name: "Paths", fields: &[], extensions: Some(1), entries: Some((2, Kind::Message(&PATH_ITEM))) };

static PATH_ITEM: Message = Message {
    name: "PathItem",
    fields: &[
        ("get", 2, Kind::Message(&OPERATION)),
        ("put", 3, Kind::Message(&OPERATION)),
        ("post", 4, Kind::Message(&OPERATION)),
        ("delete", 5, Kind::Message(&OPERATION)),
        ("patch", 8, Kind::Message(&OPERATION)),
        ("parameters", 9, Kind::Many(&PARAMETERS_ITEM)),
    ],
    extensions: Some(10),
    entries: None,
};

static OPERATION: Message = Message {
    name: "Operation",
    fields: &[
        ("operationId", 5, Kind::String),
        ("parameters", 8, Kind::Many(&PARAMETERS_ITEM)),
        ("responses", 9, Kind::Message(&RESPONSES)),
    ],
    extensions: Some(13),
    entries: None,
};

/// `NonBodyParameter`: a query (3) or path (4) parameter (nor header (1) nor form data (2) ones).
fn non_body_parameter(parameter: &Value) -> Option<(u32, Kind)> {
    match parameter["in"].as_str()? {
        "query" => Some((3, Kind::Message(&QUERY_PARAMETER))),
        "path" => Some((4, Kind::Message(&PATH_PARAMETER))),
        _ => None,
    }
}

static QUERY_PARAMETER: Message = Message {
    name: "QueryParameterSubSchema",
    fields: &[
        ("required", 1, Kind::Bool),
        ("in", 2, Kind::String),
        ("description", 3, Kind::String),
        ("name", 4, Kind::String),
        ("type", 6, Kind::String),
        ("uniqueItems", 20, Kind::Bool),
    ],
    extensions: Some(23),
    entries: None,
};

static PATH_PARAMETER: Message = Message {
    name: "PathParameterSubSchema",
    fields: &[
        ("required", 1, Kind::Bool),
        ("in", 2, Kind::String),
        ("description", 3, Kind::String),
        ("name", 4, Kind::String),
        ("type", 5, Kind::String),
        ("uniqueItems", 19, Kind::Bool),
    ],
    extensions: Some(22),
    entries: None,
};

/// `Responses`: by status code, a `ResponseValue` holding a `Response` (1) (no `JsonReference`).
static RESPONSES: Message = Message {
    name: "Responses",
    fields: &[],
    extensions: Some(2),
    entries: Some((1, Kind::OneOf(|_| Some((1, Kind::Message(&RESPONSE)))))),
};

static RESPONSE: Message = Message {
    name: "Response",
    // `SchemaItem`: a `Schema` (1), not a `FileSchema` (2).
    fields: &[("description", 1, Kind::String), ("schema", 2, Kind::OneOf(|_| Some((1, SCHEMA_KIND))))],
    extensions: Some(5),
    entries: None,
};

static DEFINITIONS: Message =
    Message { name: "Definitions", fields: &[], extensions: None, entries: Some((1, SCHEMA_KIND)) };

static PROPERTIES: Message =
    Message { name: "Properties", fields: &[], extensions: None, entries: Some((1, SCHEMA_KIND)) };

static SCHEMA: Message = Message {
    name: "Schema",
    fields: &[
        ("$ref", 1, Kind::String),
        ("format", 2, Kind::String),
        ("title", 3, Kind::String),
        ("description", 4, Kind::String),
        ("default", 5, Kind::Any),
        ("multipleOf", 6, Kind::Double),
        ("maximum", 7, Kind::Double),
        ("exclusiveMaximum", 8, Kind::Bool),
        ("minimum", 9, Kind::Double),
        ("exclusiveMinimum", 10, Kind::Bool),
        ("maxLength", 11, Kind::Int64),
        ("minLength", 12, Kind::Int64),
        ("pattern", 13, Kind::String),
        ("maxItems", 14, Kind::Int64),
        ("minItems", 15, Kind::Int64),
        ("uniqueItems", 16, Kind::Bool),
        ("maxProperties", 17, Kind::Int64),
        ("minProperties", 18, Kind::Int64),
        ("required", 19, STRINGS),
        ("enum", 20, Kind::Many(&Kind::Any)),
        // `AdditionalPropertiesItem`: a `Schema` (1) or a boolean (2).
        (
            "additionalProperties",
            21,
            Kind::OneOf(|value| match value {
                Value::Bool(_) => Some((2, Kind::Bool)),
                _ => Some((1, SCHEMA_KIND)),
            }),
        ),
        // `TypeItem` and `ItemsItem`: one or several.
        ("type", 22, Kind::OneOf(|_| Some((1, STRINGS)))),
        ("items", 23, Kind::OneOf(|_| Some((1, Kind::Many(&SCHEMA_KIND))))),
        ("allOf", 24, Kind::Many(&SCHEMA_KIND)),
        ("properties", 25, Kind::Message(&PROPERTIES)),
        ("discriminator", 26, Kind::String),
        ("readOnly", 27, Kind::Bool),
        ("example", 30, Kind::Any),
    ],
    extensions: Some(31),
    entries: None,
};

/// The document as an `openapi.v2.Document` message. A key the message has no field for is an error (gnostic
/// refuses such documents too), so nothing is silently dropped.
fn encode(document: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    message(&mut out, &DOCUMENT, document)?;
    Ok(out)
}

/// Writes the fields in number order, as protobuf serializers do (JSON keys are in alphabetical order).
fn message(out: &mut Vec<u8>, spec: &Message, value: &Value) -> Result<(), String> {
    let object = value.as_object().ok_or_else(|| format!("a {} is not an object", spec.name))?;
    let mut fields = Vec::with_capacity(object.len());
    for (key, value) in object {
        let known = spec.fields.iter().find(|(name, ..)| name == key);
        let mut bytes = Vec::new();
        let number = match (known, spec.extensions, spec.entries) {
            (_, Some(number), _) if key.starts_with("x-") => named(&mut bytes, number, key, Kind::Any, value),
            (Some((_, number, kind)), ..) => field(&mut bytes, *number, *kind, value).map(|()| *number),
            (None, _, Some((number, kind))) => named(&mut bytes, number, key, kind, value),
            (None, ..) => Err(format!("a {} has no field {key:?}", spec.name)),
        }
        .map_err(|e| format!("{key}: {e}"))?;
        fields.push((number, bytes));
    }
    fields.sort_by_key(|(number, _)| *number);
    fields.into_iter().for_each(|(_, bytes)| out.extend(bytes));
    Ok(())
}

/// A `Named…` entry: the key (1) and the value (2).
fn named(out: &mut Vec<u8>, number: u32, name: &str, kind: Kind, value: &Value) -> Result<u32, String> {
    let mut entry = Vec::new();
    length_delimited(&mut entry, 1, name.as_bytes());
    field(&mut entry, 2, kind, value)?;
    length_delimited(out, number, &entry);
    Ok(number)
}

fn field(out: &mut Vec<u8>, number: u32, kind: Kind, value: &Value) -> Result<(), String> {
    let wrong = |expected: &str| format!("{value} is not {expected}");
    match kind {
        Kind::String => length_delimited(out, number, value.as_str().ok_or_else(|| wrong("a string"))?.as_bytes()),
        Kind::Bool => {
            tag(out, number, 0);
            varint(out, u64::from(value.as_bool().ok_or_else(|| wrong("a boolean"))?));
        }
        Kind::Int64 => {
            tag(out, number, 0);
            // Negative numbers are ten-byte two's complement varints, as protobuf's int64.
            varint(out, value.as_i64().ok_or_else(|| wrong("an integer"))? as u64);
        }
        Kind::Double => {
            tag(out, number, 1);
            out.extend(value.as_f64().ok_or_else(|| wrong("a number"))?.to_le_bytes());
        }
        Kind::Any => {
            let yaml = serde_saphyr::to_string(value).map_err(|e| e.to_string())?;
            let mut any = Vec::new();
            length_delimited(&mut any, 2, yaml.as_bytes());
            length_delimited(out, number, &any);
        }
        Kind::Message(inner) => {
            let mut bytes = Vec::new();
            message(&mut bytes, inner, value)?;
            length_delimited(out, number, &bytes);
        }
        Kind::Many(kind) => match value {
            Value::Array(items) => items.iter().try_for_each(|item| field(out, number, *kind, item))?,
            _ => field(out, number, *kind, value)?,
        },
        Kind::OneOf(choose) => {
            let (choice, kind) = choose(value).ok_or_else(|| wrong("any alternative of the union"))?;
            let mut bytes = Vec::new();
            field(&mut bytes, choice, kind, value)?;
            length_delimited(out, number, &bytes);
        }
    }
    Ok(())
}

fn tag(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    varint(out, u64::from(number) << 3 | u64::from(wire_type));
}

fn length_delimited(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    tag(out, number, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One field of an encoded message.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Wire<'a> {
        Varint(u64),
        Fixed64(u64),
        Bytes(&'a [u8]),
    }

    fn read_varint(bytes: &mut &[u8]) -> u64 {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let (byte, rest) = bytes.split_first().expect("a varint ends");
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        value
    }

    /// A message's fields, decoded from the wire format alone.
    fn decode(mut bytes: &[u8]) -> Vec<(u32, Wire<'_>)> {
        let mut fields = Vec::new();
        while !bytes.is_empty() {
            let key = read_varint(&mut bytes);
            let value = match key & 7 {
                0 => Wire::Varint(read_varint(&mut bytes)),
                1 => {
                    let (value, rest) = bytes.split_at(8);
                    bytes = rest;
                    Wire::Fixed64(u64::from_le_bytes(value.try_into().unwrap()))
                }
                2 => {
                    let length = read_varint(&mut bytes) as usize;
                    let (value, rest) = bytes.split_at(length);
                    bytes = rest;
                    Wire::Bytes(value)
                }
                other => panic!("wire type {other}"),
            };
            fields.push(((key >> 3) as u32, value));
        }
        fields
    }

    fn bytes_of(message: &[u8], number: u32) -> Vec<&[u8]> {
        decode(message)
            .into_iter()
            .filter(|(n, _)| *n == number)
            .map(|(_, value)| match value {
                Wire::Bytes(bytes) => bytes,
                other => panic!("field {number} is {other:?}"),
            })
            .collect()
    }

    fn only(message: &[u8], number: u32) -> &[u8] {
        let fields = bytes_of(message, number);
        assert_eq!(fields.len(), 1, "field {number}");
        fields[0]
    }

    fn text(message: &[u8], number: u32) -> &str {
        std::str::from_utf8(only(message, number)).unwrap()
    }

    /// The value of the `Named…` entry called `name` among the fields `number` of `message`.
    fn entry<'a>(message: &'a [u8], number: u32, name: &str) -> &'a [u8] {
        let entries = bytes_of(message, number);
        let found = entries.into_iter().find(|entry| text(entry, 1) == name);
        only(found.unwrap_or_else(|| panic!("no entry {name}")), 2)
    }

    /// An `x-…` extension of a message, parsed from its `Any.yaml` as kubectl does.
    fn extension(message: &[u8], number: u32, name: &str) -> Value {
        serde_saphyr::from_str(text(entry(message, number, name), 2)).unwrap()
    }

    #[test]
    fn protobuf_holds_what_kubectl_explain_reads() {
        let document = &spec().protobuf;
        assert_eq!(text(document, 1), "2.0");
        assert_eq!(text(only(document, 2), 2), format!("v1.{}.0", crate::discovery::KUBERNETES_MINOR));
        let definitions = only(document, 9);
        let pod = entry(definitions, 1, "io.k8s.api.core.v1.Pod");
        assert_eq!(
            extension(pod, 31, "x-kubernetes-group-version-kind"),
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        assert!(text(pod, 4).starts_with("Pod is a collection of containers"));
        // A described reference: `$ref` (1) beside the description (4), no type.
        let metadata = entry(only(pod, 25), 1, "metadata");
        assert_eq!(text(metadata, 1), "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        assert!(text(metadata, 4).starts_with("Standard object's metadata"));
        assert!(bytes_of(metadata, 22).is_empty());
        let pod_spec = only(entry(definitions, 1, "io.k8s.api.core.v1.PodSpec"), 25);
        // `type` is a `TypeItem`, `items` an `ItemsItem`, `additionalProperties` an `AdditionalPropertiesItem`.
        assert_eq!(text(only(entry(pod_spec, 1, "restartPolicy"), 22), 1), "string");
        let containers = entry(pod_spec, 1, "containers");
        assert_eq!(text(only(containers, 22), 1), "array");
        assert_eq!(text(only(only(containers, 23), 1), 1), "#/definitions/io.k8s.api.core.v1.Container");
        let node_selector = only(entry(pod_spec, 1, "nodeSelector"), 21);
        assert_eq!(text(only(only(node_selector, 1), 22), 1), "string");
        let int_or_string = entry(definitions, 1, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
        assert_eq!((text(int_or_string, 2), text(only(int_or_string, 22), 1)), ("int-or-string", "string"));
        let deployment = entry(definitions, 1, "io.k8s.api.apps.v1.Deployment");
        assert_eq!(bytes_of(only(deployment, 25), 1).len(), 5);
    }

    #[test]
    fn protobuf_paths_declare_field_validation() {
        let paths = only(&spec().protobuf, 8);
        let item = entry(paths, 2, "/apis/apps/v1/namespaces/{namespace}/deployments/{name}");
        // PathItem.parameters → ParametersItem → Parameter → NonBodyParameter → PathParameterSubSchema.
        let path_parameters: Vec<&[u8]> = bytes_of(item, 9).into_iter().map(|p| only(only(only(p, 1), 2), 4)).collect();
        let names: Vec<&str> = path_parameters.iter().map(|p| text(p, 4)).collect();
        assert_eq!(names, ["namespace", "name"]);
        assert_eq!(text(path_parameters[1], 3), "name of the Deployment");
        assert!(decode(path_parameters[1]).contains(&(1, Wire::Varint(1))));
        let patch = only(item, 8);
        assert_eq!(
            extension(patch, 13, "x-kubernetes-group-version-kind"),
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        assert_eq!(extension(patch, 13, "x-kubernetes-action"), json!("patch"));
        // ParametersItem → Parameter → NonBodyParameter → QueryParameterSubSchema.
        let parameters: Vec<&[u8]> = bytes_of(patch, 8).into_iter().map(|p| only(only(only(p, 1), 2), 3)).collect();
        assert!(parameters.iter().any(|p| text(p, 4) == "fieldValidation" && text(p, 2) == "query"));
        assert!(decode(parameters[0]).contains(&(20, Wire::Varint(1))));
        // Responses → ResponseValue → Response → SchemaItem → Schema.
        let ok = only(entry(only(patch, 9), 1, "200"), 1);
        assert_eq!(text(ok, 1), "OK");
        assert_eq!(text(only(only(ok, 2), 1), 1), "#/definitions/io.k8s.api.apps.v1.Deployment");
    }

    #[test]
    fn scalars_take_their_wire_types() {
        let schema =
            json!({"maximum": 1.5, "minLength": -1, "uniqueItems": false, "enum": ["a", 1], "type": ["string"]});
        let mut bytes = Vec::new();
        message(&mut bytes, &SCHEMA, &schema).unwrap();
        let fields = decode(&bytes);
        assert!(fields.windows(2).all(|pair| pair[0].0 <= pair[1].0), "{fields:?}");
        assert!(fields.contains(&(7, Wire::Fixed64(1.5f64.to_bits()))));
        assert!(fields.contains(&(12, Wire::Varint(u64::MAX))));
        assert!(fields.contains(&(16, Wire::Varint(0))));
        let enums: Vec<Value> =
            bytes_of(&bytes, 20).iter().map(|any| serde_saphyr::from_str(text(any, 2)).unwrap()).collect();
        assert_eq!(enums, [json!("a"), json!(1)]);
        assert_eq!(text(only(&bytes, 22), 1), "string");
        let unknown = message(&mut Vec::new(), &SCHEMA, &json!({"properties": {"a": {"nullable": true}}}));
        assert_eq!(unknown.unwrap_err(), "properties: a: nullable: a Schema has no field \"nullable\"");
    }

    /// The constraints kubectl's parser of the document (kube-openapi `proto.NewOpenAPIData`) puts on every schema,
    /// any breach of which fails `explain` for every resource.
    fn check_schema(definitions: &Map<String, Value>, schema: &Value, at: &str) {
        let schema = schema.as_object().unwrap_or_else(|| panic!("{at}"));
        for key in ["allOf", "oneOf", "anyOf", "nullable", "x-kubernetes-int-or-string"] {
            assert!(!schema.contains_key(key), "{at}: {key}");
        }
        if let Some(reference) = schema.get("$ref") {
            let name = reference.as_str().and_then(|r| r.strip_prefix(V2_REF_PREFIX));
            assert!(name.is_some_and(|name| definitions.contains_key(name)), "{at}: {reference}");
            assert!(!schema.contains_key("type") && !schema.contains_key("properties"), "{at}");
        }
        if schema.get("type") == Some(&json!("array")) {
            check_schema(definitions, &schema["items"], &format!("{at}[]"));
        }
        if let Some(values @ Value::Object(_)) = schema.get("additionalProperties") {
            check_schema(definitions, values, &format!("{at}{{}}"));
        }
        for (name, property) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
            check_schema(definitions, property, &format!("{at}.{name}"));
        }
    }

    #[test]
    fn json_document_is_swagger_2_that_kubectl_parses() {
        let document: Value = serde_json::from_slice(&spec().json).unwrap();
        assert_eq!(document["swagger"], "2.0");
        let definitions = document["definitions"].as_object().unwrap();
        assert!(definitions.len() > 400);
        for (name, schema) in definitions {
            check_schema(definitions, schema, name);
        }
        let pods = &document["paths"]["/api/v1/namespaces/{namespace}/pods"];
        assert_eq!(
            pods["get"]["responses"]["200"]["schema"]["properties"]["items"]["items"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Pod"
        );
        let parameter = &pods["post"]["parameters"][0];
        assert_eq!(
            (&parameter["in"], &parameter["type"], parameter.get("schema")),
            (&json!("query"), &json!("string"), None)
        );
        assert_eq!(spec().etag.len(), 130);
    }

    fn get(headers: &[(&'static str, &str)]) -> Response<Body> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        serve(&map)
    }

    #[test]
    fn negotiates_like_upstream_and_honours_if_none_match() {
        let content_type = |response: &Response<Body>| response.headers()["content-type"].to_str().unwrap().to_string();
        let kubectl = get(&[("accept", PROTOBUF_DEPRECATED)]);
        assert_eq!((kubectl.status(), content_type(&kubectl)), (StatusCode::OK, PROTOBUF.to_string()));
        assert_eq!(kubectl.headers()["etag"], spec().etag.as_str());
        assert_eq!(kubectl.headers()["vary"], "Accept");
        assert_eq!(content_type(&get(&[])), JSON);
        assert_eq!(content_type(&get(&[("accept", "application/json, */*")])), JSON);
        let preferred =
            get(&[("accept", "application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf")]);
        assert_eq!(content_type(&preferred), PROTOBUF);
        assert_eq!(get(&[("accept", "text/html")]).status(), StatusCode::NOT_ACCEPTABLE);
        let etag = spec().etag.as_str();
        for tags in [etag.to_string(), format!("\"other\", W/{etag}"), "*".into()] {
            let cached = get(&[("accept", PROTOBUF_DEPRECATED), ("if-none-match", &tags)]);
            assert_eq!(cached.status(), StatusCode::NOT_MODIFIED, "{tags}");
            assert_eq!(cached.headers()["etag"], etag);
        }
        assert_eq!(get(&[("if-none-match", "\"other\"")]).status(), StatusCode::OK);
    }
}
