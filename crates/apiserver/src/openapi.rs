//! `/openapi/v3`: the index of group-version documents and, per group version, the paths of every resource
//! with their operations, tagged with `x-kubernetes-group-version-kind`. kubectl reads the `patch` operation's
//! `fieldValidation` parameter to decide that the server validates fields (its default `--validate=strict`).

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

/// `GET /openapi/v3`.
pub fn index() -> Value {
    let mut paths = Map::new();
    for group in GROUPS {
        for version in group.versions {
            let path = gv_path(group.name, version);
            let url = format!("/openapi/v3/{path}?hash={}", hash(&document(group.name, version)));
            paths.insert(path, json!({"serverRelativeURL": url}));
        }
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
pub fn document_for(path: &str) -> Option<Value> {
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return None,
    };
    GROUPS.iter().any(|g| g.name == group && g.versions.contains(&version)).then(|| document(group, version))
}

fn query_parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string"}, "uniqueItems": true})
}

fn operation(resource: &Resource, action: &str, kind: &str) -> Value {
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
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version, "kind": kind},
    })
}

fn document(group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    for resource in registry::resources_in(group, version) {
        let base = format!("/{}", gv_path(group, version));
        let collection = if resource.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", resource.name)
        } else {
            format!("{base}/{}", resource.name)
        };
        let mut collection_ops = Map::new();
        if resource.has_verb("create") {
            collection_ops.insert("post".into(), operation(resource, "post", resource.kind));
        }
        if resource.has_verb("list") {
            collection_ops.insert("get".into(), operation(resource, "list", resource.kind));
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
                item_ops.insert(method.into(), operation(resource, action, resource.kind));
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
        "components": {"schemas": {}},
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
}
