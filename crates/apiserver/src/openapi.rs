//! `/openapi/v3`: the index of group-version documents and, per group version, the paths of every resource
//! with their operations, tagged with `x-kubernetes-group-version-kind`. kubectl reads the `patch` operation's
//! `fieldValidation` parameter to decide that the server validates fields (its default `--validate=strict`).
//! `components.schemas` holds the schemas of the group version's kinds and what they reference, tagged with
//! `x-kubernetes-group-version-kind`, which `kubectl explain` looks up.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use apimachinery::openapi::schemas_for;
use apimachinery::registry::{self, Resource, GROUPS};
use serde_json::{json, Map, Value};

/// The `/openapi/v3` path of a group version: `api/v1` or `apis/apps/v1`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A short content hash, so clients can cache documents by URL.
fn hash(value: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in value.to_string().bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// Every group version's document and its hash by its path, built once: they are static and large (the core
/// one holds hundreds of schemas), and kubectl fetches the index before each write. `/openapi/v2` is made from them.
pub(crate) fn documents() -> &'static BTreeMap<String, (Value, String)> {
    static DOCUMENTS: OnceLock<BTreeMap<String, (Value, String)>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        GROUPS
            .iter()
            .flat_map(|group| group.versions.iter().map(move |version| (group.name, *version)))
            .map(|(group, version)| {
                let document = document(group, version);
                let hash = hash(&document);
                (gv_path(group, version), (document, hash))
            })
            .collect()
    })
}

/// `GET /openapi/v3`.
pub fn index() -> Value {
    let paths: Map<String, Value> = documents()
        .iter()
        .map(|(path, (_, hash))| {
            let url = format!("/openapi/v3/{path}?hash={hash}");
            (path.clone(), json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
pub fn document_for(path: &str) -> Option<Value> {
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return None,
    };
    documents().get(&gv_path(group, version)).map(|(document, _)| document.clone())
}

fn query_parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string"}, "uniqueItems": true})
}

/// The response schema of an operation on `resource`, whose kind's schema is `definition`: a list of them for
/// `list` (there is no `<Kind>List` schema), the object otherwise.
fn response_schema(action: &str, definition: &str) -> Value {
    let object = json!({"$ref": format!("#/components/schemas/{definition}")});
    if action != "list" {
        return object;
    }
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "items": {"type": "array", "items": object},
        },
    })
}

fn operation(resource: &Resource, action: &str, kind: &str, definition: Option<&str>) -> Value {
    let mut parameters = vec![];
    if matches!(action, "post" | "put" | "patch") {
        parameters
            .push(query_parameter("dryRun", "When present, indicates that modifications should not be persisted."));
        parameters.push(query_parameter(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ));
        parameters.push(query_parameter(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields.",
        ));
    }
    if action == "patch" {
        parameters.push(query_parameter("force", "Force is going to \"force\" Apply requests."));
    }
    json!({
        "operationId": format!("{action}{}", resource.kind),
        "parameters": parameters,
        "responses": {"200": match definition {
            Some(definition) => json!({
                "description": "OK",
                "content": {"application/json": {"schema": response_schema(action, definition)}},
            }),
            None => json!({"description": "OK"}),
        }},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version, "kind": kind},
    })
}

fn document(group: &str, version: &str) -> Value {
    let schemas = schemas_for(group, version);
    // Match the whole GVK: a schema may be another group version's kind (PersistentVolumeClaim in apps/v1).
    let definition_of = |kind: &str| {
        schemas.iter().find_map(|(name, schema)| {
            let gvks = schema["x-kubernetes-group-version-kind"].as_array()?;
            gvks.contains(&json!({"group": group, "kind": kind, "version": version})).then_some(name.as_str())
        })
    };
    let mut paths = Map::new();
    for resource in registry::resources_in(group, version) {
        let definition = definition_of(resource.kind);
        let operation = |action: &str| operation(resource, action, resource.kind, definition);
        let base = format!("/{}", gv_path(group, version));
        let collection = if resource.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", resource.name)
        } else {
            format!("{base}/{}", resource.name)
        };
        let mut collection_ops = Map::new();
        if resource.has_verb("create") {
            collection_ops.insert("post".into(), operation("post"));
        }
        if resource.has_verb("list") {
            collection_ops.insert("get".into(), operation("list"));
        }
        paths.insert(collection.clone(), Value::Object(collection_ops));
        let mut item_ops = Map::new();
        for (verb, method, action) in [
            ("get", "get", "get"),
            ("update", "put", "put"),
            ("patch", "patch", "patch"),
            ("delete", "delete", "delete"),
        ] {
            if resource.has_verb(verb) {
                item_ops.insert(method.into(), operation(action));
            }
        }
        if !item_ops.is_empty() {
            paths.insert(format!("{collection}/{{name}}"), Value::Object(item_ops));
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::discovery::KUBERNETES_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_patch_declares_field_validation() {
        let document = document_for("apis/apps/v1").unwrap();
        let patch = &document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        let index = index();
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        assert!(document_for("apis/nope/v1").is_none());
    }

    #[test]
    fn documents_carry_the_schemas_operations_respond_with() {
        let document = document_for("apis/apps/v1").unwrap();
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert!(schemas.get("io.k8s.api.core.v1.PodSpec").is_some());
        let deployments = "/apis/apps/v1/namespaces/{namespace}/deployments";
        let schema = |path: &str, method: &str| {
            document["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"].clone()
        };
        let reference = json!({"$ref": "#/components/schemas/io.k8s.api.apps.v1.Deployment"});
        assert_eq!(schema(&format!("{deployments}/{{name}}"), "patch"), reference);
        assert_eq!(schema(deployments, "post"), reference);
        assert_eq!(schema(deployments, "get")["properties"]["items"]["items"], reference);
        // Every operation of every document refers to a schema of its own document.
        for (path, (document, _)) in documents() {
            let schemas = document["components"]["schemas"].as_object().unwrap();
            for operations in document["paths"].as_object().unwrap().values() {
                for operation in operations.as_object().unwrap().values() {
                    let response = &operation["responses"]["200"]["content"]["application/json"]["schema"];
                    let reference =
                        response["$ref"].as_str().or(response["properties"]["items"]["items"]["$ref"].as_str());
                    let name = reference.and_then(|r| r.strip_prefix("#/components/schemas/"));
                    assert!(name.is_some_and(|name| schemas.contains_key(name)), "{path}: {operation}");
                }
            }
        }
    }
}
