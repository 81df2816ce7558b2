//! The OpenAPI v3 schemas of the built-in kinds: what `/openapi/v3` serves (`kubectl explain` reads it) and what
//! tells which fields of an object are unknown (`fieldValidation=Strict`).
//!
//! `data/openapi-schemas.json` holds, by definition name, the schema of every kind of the registry and of
//! everything they reference, in OpenAPI 3 form (`$ref: "#/components/schemas/<name>"`, wrapped in `allOf` when
//! the property adds a description, as upstream does); each kind's schema carries `x-kubernetes-group-version-kind`.
//! It is generated from k8s-openapi's schemas by the test `openapi_schemas_match_k8s_openapi` (run it with
//! `UPDATE_OPENAPI_SCHEMAS=1` to rewrite the file).

use std::sync::OnceLock;

use serde_json::{Map, Value};

const SCHEMAS: &str = include_str!("../data/openapi-schemas.json");

const REF_PREFIX: &str = "#/components/schemas/";

fn schemas() -> &'static Map<String, Value> {
    static SCHEMAS_MAP: OnceLock<Map<String, Value>> = OnceLock::new();
    // The file is embedded and checked by this module's tests, so a malformed one is a build defect.
    SCHEMAS_MAP.get_or_init(|| serde_json::from_str(SCHEMAS).expect("openapi-schemas.json is a JSON object"))
}

/// The (group, version, kind) tags of a schema.
fn gvks(schema: &Value) -> impl Iterator<Item = (&str, &str, &str)> {
    schema["x-kubernetes-group-version-kind"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|gvk| Some((gvk["group"].as_str()?, gvk["version"].as_str()?, gvk["kind"].as_str()?)))
}

/// The schemas of the kinds of one group version and of everything they reference, by definition name: the
/// `components.schemas` of its `/openapi/v3` document. Empty for a group version without built-in kinds.
pub fn schemas_for(group: &str, version: &str) -> Map<String, Value> {
    let all = schemas();
    let mut pending: Vec<&str> = all
        .iter()
        .filter(|(_, schema)| gvks(schema).any(|(g, v, _)| g == group && v == version))
        .map(|(name, _)| name.as_str())
        .collect();
    let mut closure = Map::new();
    while let Some(name) = pending.pop() {
        if closure.contains_key(name) {
            continue;
        }
        if let Some(schema) = all.get(name) {
            references(schema, &mut pending);
            closure.insert(name.to_owned(), schema.clone());
        }
    }
    closure
}

/// Appends the definition names `value` refers to.
fn references<'a>(value: &'a Value, names: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                // A property may be named `$ref` (JSONSchemaProps): only a string value is a reference.
                match value.as_str().and_then(|r| r.strip_prefix(REF_PREFIX)) {
                    Some(name) if key == "$ref" => names.push(name),
                    _ => references(value, names),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, names)),
        _ => {}
    }
}

/// The fields of `object` that the schema of its kind does not know, as paths worded like upstream's strict
/// decoding errors (`spec.containers[0].imagePullPolicyy`, for `unknown field "…"`). Maps (`additionalProperties`)
/// accept any key, and free-form objects (no `properties`: RawExtension, FieldsV1, JSON) and
/// `x-kubernetes-preserve-unknown-fields` subtrees any content. Empty for a kind without a built-in schema
/// (custom resources), since nothing is known about it.
pub fn unknown_fields(group: &str, version: &str, kind: &str, object: &Value) -> Vec<String> {
    check(group, version, kind, object).unknown
}

/// What the schema of an object's kind finds wrong with it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Fields the schema does not know (see [`unknown_fields`]).
    pub unknown: Vec<String>,
    /// Values of the wrong JSON type, as `metadata.labels.app: expected string, got number` (upstream's decoding
    /// refuses these outright).
    pub wrong_types: Vec<String>,
}

/// Checks an object against the schema of its kind: unknown fields and values of the wrong type. Nothing is
/// found for a kind without a built-in schema.
pub fn check(group: &str, version: &str, kind: &str, object: &Value) -> Findings {
    let mut findings = Findings::default();
    let graph = graph();
    if let Some(&node) = graph.kinds.get(&(group, version, kind)) {
        graph.collect_unknown(node, object, &mut Vec::new(), &mut findings);
    }
    findings
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One schema as `check` reads it, its `$ref`s resolved: checks run on every write, so the schemas are walked
/// once into this graph rather than looked up by name at every field.
struct Node {
    preserve_unknown: bool,
    int_or_string: bool,
    type_name: Option<&'static str>,
    /// Sorted by name; None when the schema lists no properties (a free-form object).
    properties: Option<Vec<(&'static str, usize)>>,
    /// The schema of a map's values (`additionalProperties`).
    values: Option<usize>,
    items: Option<usize>,
}

struct Graph {
    nodes: Vec<Node>,
    kinds: std::collections::HashMap<(&'static str, &'static str, &'static str), usize>,
}

fn graph() -> &'static Graph {
    static GRAPH: OnceLock<Graph> = OnceLock::new();
    GRAPH.get_or_init(|| {
        let mut graph = Graph { nodes: Vec::new(), kinds: Default::default() };
        let mut compiled = std::collections::HashMap::new();
        for schema in schemas().values() {
            for gvk in gvks(schema) {
                if !graph.kinds.contains_key(&gvk) {
                    let node = graph.compile(schema, &mut compiled);
                    graph.kinds.insert(gvk, node);
                }
            }
        }
        graph
    })
}

impl Graph {
    /// The node of a schema (by the address of the schema its references lead to: references may be cyclic).
    fn compile(
        &mut self,
        schema: &'static Value,
        compiled: &mut std::collections::HashMap<*const Value, usize>,
    ) -> usize {
        let schema = resolve(schemas(), schema);
        if let Some(&node) = compiled.get(&(schema as *const Value)) {
            return node;
        }
        let id = self.nodes.len();
        compiled.insert(schema, id);
        self.nodes.push(Node {
            preserve_unknown: schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true),
            int_or_string: schema["x-kubernetes-int-or-string"] == Value::Bool(true),
            type_name: schema["type"].as_str(),
            properties: None,
            values: None,
            items: None,
        });
        let properties = schema["properties"].as_object().map(|known| {
            known.iter().map(|(name, property)| (name.as_str(), self.compile(property, compiled))).collect()
        });
        let values = schema.get("additionalProperties").filter(|v| v.is_object()).map(|v| self.compile(v, compiled));
        let items = schema.get("items").map(|items| self.compile(items, compiled));
        let node = &mut self.nodes[id];
        (node.properties, node.values, node.items) = (properties, values, items);
        id
    }

    /// Whether `value` has the JSON type the schema asks for (null stands for an unset field, as Go decodes it).
    fn type_matches(node: &Node, value: &Value) -> bool {
        let actual = json_type(value);
        if actual == "null" {
            return true;
        }
        if node.int_or_string {
            return matches!(actual, "integer" | "string");
        }
        match node.type_name {
            None => true,
            Some("number") => matches!(actual, "integer" | "number"),
            Some(expected) => expected == actual,
        }
    }

    fn collect_unknown<'a>(&self, node: usize, value: &'a Value, path: &mut Vec<Step<'a>>, findings: &mut Findings) {
        let node = &self.nodes[node];
        if node.preserve_unknown {
            return;
        }
        if !Self::type_matches(node, value) {
            let expected = if node.int_or_string { "integer or string" } else { node.type_name.unwrap_or("object") };
            findings.wrong_types.push(format!("{}: expected {expected}, got {}", path_text(path), json_type(value)));
            return;
        }
        match value {
            Value::Object(fields) => {
                let known = node.properties.as_deref();
                for (key, field) in fields {
                    path.push(Step::Key(key));
                    let property = known
                        .and_then(|known| known.binary_search_by(|(name, _)| (*name).cmp(key.as_str())).ok())
                        .map(|i| known.unwrap_or_default()[i].1);
                    match (property, node.values) {
                        (Some(property), _) | (None, Some(property)) => {
                            self.collect_unknown(property, field, path, findings)
                        }
                        (None, None) if known.is_some() => findings.unknown.push(path_text(path)),
                        (None, None) => {}
                    }
                    path.pop();
                }
            }
            Value::Array(items) => {
                if let Some(item_node) = node.items {
                    for (index, item) in items.iter().enumerate() {
                        path.push(Step::Index(index));
                        self.collect_unknown(item_node, item, path, findings);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
    }
}

/// One step of the path to a field: a key, or an index in a list.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `spec.containers[0].image`, made only for the rare field that is unknown.
fn path_text(steps: &[Step<'_>]) -> String {
    let mut text = String::new();
    for step in steps {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

/// The schema a property's `$ref` (or upstream-style `allOf: [{$ref}]`) points to, or the property itself.
fn resolve<'a>(all: &'a Map<String, Value>, schema: &'a Value) -> &'a Value {
    let reference = schema.get("$ref").or_else(|| schema.get("allOf")?.get(0)?.get("$ref"));
    match reference.and_then(Value::as_str).and_then(|r| all.get(r.strip_prefix(REF_PREFIX)?)) {
        Some(target) => resolve(all, target),
        None => schema,
    }
}

#[cfg(test)]
mod type_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_of_the_wrong_type_are_found() {
        let pod = json!({
            "metadata": {"name": "p", "labels": {"app": 1}},
            "spec": {"containers": [{"name": "a", "image": "b", "ports": [7], "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}],
                     "terminationGracePeriodSeconds": "30", "nodeName": null},
        });
        let findings = check("", "v1", "Pod", &pod);
        assert_eq!(
            findings.wrong_types,
            [
                "metadata.labels.app: expected string, got integer",
                "spec.containers[0].ports[0]: expected object, got integer",
                "spec.terminationGracePeriodSeconds: expected integer, got string",
            ]
        );
        // Quantities and int-or-string fields take either form; null is an unset field.
        let service =
            json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8081}]}});
        assert_eq!(check("", "v1", "Service", &service), Findings::default());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::RESOURCES;

    use crate::k8s_kinds::openapi_kinds;

    /// A schemars schema in OpenAPI 3 form: `#/$defs/` references become `#/components/schemas/`, and a reference
    /// with sibling keywords (a description) becomes `allOf: [{$ref}]`, since OpenAPI 3.0 ignores `$ref` siblings.
    fn to_openapi3(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let reference = map.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/"));
                let mut converted: Map<String, Value> = map
                    .iter()
                    .filter(|(key, _)| reference.is_none() || *key != "$ref")
                    .map(|(key, value)| (key.clone(), to_openapi3(value)))
                    .collect();
                if let Some(name) = reference {
                    let reference = json!({"$ref": format!("{REF_PREFIX}{name}")});
                    if converted.is_empty() {
                        return reference;
                    }
                    converted.insert("allOf".into(), json!([reference]));
                }
                Value::Object(converted)
            }
            Value::Array(items) => Value::Array(items.iter().map(to_openapi3).collect()),
            other => other.clone(),
        }
    }

    fn generated_schemas() -> Map<String, Value> {
        let (kinds, definitions) = openapi_kinds();
        let mut schemas: Map<String, Value> =
            definitions.iter().map(|(name, schema)| (name.clone(), to_openapi3(schema))).collect();
        for (group, version, kind, definition) in kinds {
            let schema = schemas[&definition].as_object_mut().unwrap();
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": group, "kind": kind, "version": version}]),
            );
            // k8s-openapi requires `metadata` because its Rust field is not an Option; upstream's Go field is
            // `omitempty` and its schemas never require it (kubectl's client-side validation would otherwise
            // refuse a TokenReview or SubjectAccessReview written without metadata).
            if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
                required.retain(|field| field != "metadata");
                if required.is_empty() {
                    schema.remove("required");
                }
            }
        }
        schemas
    }

    #[test]
    fn openapi_schemas_match_k8s_openapi() {
        let generated = Value::Object(generated_schemas());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/openapi-schemas.json");
        if std::env::var_os("UPDATE_OPENAPI_SCHEMAS").is_some() {
            std::fs::write(path, serde_json::to_string_pretty(&generated).unwrap() + "\n").unwrap();
        }
        let embedded: Value = serde_json::from_str(SCHEMAS).unwrap();
        assert!(
            embedded == generated,
            "data/openapi-schemas.json is stale: rerun this test with UPDATE_OPENAPI_SCHEMAS=1"
        );
    }

    #[test]
    fn openapi_schemas_cover_every_registry_kind() {
        let all = schemas();
        let tagged = |group: &str, version: &str, kind: &str| {
            all.values().any(|schema| gvks(schema).any(|gvk| gvk == (group, version, kind)))
        };
        for resource in RESOURCES {
            assert!(tagged(resource.group, resource.version, resource.kind), "{resource:?}");
            for sub in resource.subresources {
                // The connect options (exec, attach, proxy, ...) are query parameters, not bodies.
                assert!(sub.kind.ends_with("Options") || tagged(sub.group, sub.version, sub.kind), "{sub:?}");
            }
        }
        let dangling: Vec<&str> = {
            let mut names = Vec::new();
            all.values().for_each(|schema| references(schema, &mut names));
            names.into_iter().filter(|name| !all.contains_key(*name)).collect()
        };
        assert!(dangling.is_empty(), "{dangling:?}");
    }

    #[test]
    fn openapi_schemas_for_apps_v1_hold_deployment_and_what_it_references() {
        let schemas = schemas_for("apps", "v1");
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        let strategy = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(strategy["allOf"], json!([{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}]));
        assert!(strategy["description"].as_str().unwrap().starts_with("The deployment strategy"));
        assert!(schemas["io.k8s.api.apps.v1.DeploymentStrategy"]["properties"].get("rollingUpdate").is_some());
        for name in ["io.k8s.api.core.v1.Container", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"] {
            assert!(schemas.contains_key(name), "{name}");
        }
        // Kinds referenced from apps/v1 come along tagged, as upstream (StatefulSet's volumeClaimTemplates).
        let tagged: Vec<(&str, &str, &str)> = schemas.values().flat_map(gvks).collect();
        assert!(tagged.contains(&("", "v1", "PersistentVolumeClaim")));
        for kind in ["ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"] {
            assert!(tagged.contains(&("apps", "v1", kind)), "{kind}");
        }
        assert!(!schemas.contains_key("io.k8s.api.batch.v1.Job"));
        assert!(schemas_for("nope", "v1").is_empty());
    }

    #[test]
    fn unknown_fields_finds_typos_at_any_depth() {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"any.key/at-all": "x"}, "annotations": {"a": "b"}},
            "spec": {
                "containers": [
                    {"name": "a", "image": "nginx"},
                    {"name": "b", "image": "nginx", "imagePullPolicyy": "Always", "ports": [{"containerPort": 80, "hostPortt": 1}]},
                ],
                "nodeSelector": {"disk": "ssd"},
                "replicas": 3,
            },
        });
        assert_eq!(
            unknown_fields("", "v1", "Pod", &pod),
            ["spec.containers[1].imagePullPolicyy", "spec.containers[1].ports[0].hostPortt", "spec.replicas"]
        );
        assert_eq!(
            unknown_fields("", "v1", "Pod", &json!({"spex": {}, "metadata": {"nam": "x"}})),
            ["metadata.nam", "spex"]
        );
    }

    #[test]
    fn unknown_fields_accepts_maps_free_form_objects_and_unknown_kinds() {
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"app": "web"}, "managedFields": [{"fieldsV1": {"f:spec": {}}}]},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {"limits": {"cpu": "1"}}}]},
                },
            },
        });
        assert!(unknown_fields("apps", "v1", "Deployment", &deployment).is_empty());
        let revision = json!({"data": {"anything": {"goes": [1]}}, "revision": 1, "extra": true});
        assert_eq!(unknown_fields("apps", "v1", "ControllerRevision", &revision), ["extra"]);
        assert!(unknown_fields("example.com", "v1", "Widget", &json!({"spec": {"x": 1}})).is_empty());
    }
}
