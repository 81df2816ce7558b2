//! `meta.k8s.io/v1` Table output for `kubectl get`: per-resource columns (see table-columns.md) with a
//! Name/Age fallback, and each row's object as PartialObjectMetadata (or the full object, or nothing).

use std::time::SystemTime;

use apimachinery::registry::Resource;
use serde_json::{json, Value};

use crate::objects::{age, meta_str};

/// What `includeObject` asked to embed in each row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(value: Option<&str>) -> Result<IncludeObject, String> {
        match value {
            None | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("Object") => Ok(IncludeObject::Object),
            Some("None") => Ok(IncludeObject::None),
            Some(other) => Err(format!("includeObject must be one of None, Metadata, Object, not {other:?}")),
        }
    }
}

struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
};
const AGE: Column = Column {
    name: "Age",
    kind: "string",
    format: "",
    priority: 0,
    description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
};

fn columns(resource: &Resource) -> Vec<Column> {
    let column = |name, kind, description| Column { name, kind, format: "", priority: 0, description };
    match (resource.group, resource.name) {
        ("", "namespaces") => vec![NAME, column("Status", "string", "The status of the namespace"), AGE],
        ("", "configmaps") => vec![NAME, column("Data", "string", "Data contains the configuration data."), AGE],
        ("", "secrets") => vec![
            NAME,
            column("Type", "string", "Used to facilitate programmatic handling of secret data."),
            column("Data", "string", "Data contains the secret data."),
            AGE,
        ],
        ("", "serviceaccounts") => vec![NAME, column("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."), AGE],
        _ => vec![NAME, AGE],
    }
}

fn cells(resource: &Resource, object: &Value, now: SystemTime) -> Vec<Value> {
    let name = json!(meta_str(object, "name").unwrap_or_default());
    let age = json!(age(meta_str(object, "creationTimestamp"), now));
    let count = |field: &str| {
        let size = |f: &str| object.get(f).and_then(Value::as_object).map_or(0, |m| m.len());
        json!(size(field) + if field == "data" { size("binaryData") } else { 0 })
    };
    match (resource.group, resource.name) {
        ("", "namespaces") => vec![name, json!(object["status"]["phase"].as_str().unwrap_or_default()), age],
        ("", "configmaps") => vec![name, count("data"), age],
        ("", "secrets") => vec![name, json!(object["type"].as_str().unwrap_or_default()), count("data"), age],
        ("", "serviceaccounts") => vec![name, json!(object["secrets"].as_array().map_or(0, Vec::len)), age],
        _ => vec![name, age],
    }
}

fn row_object(object: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => object.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

/// A Table of `objects`, with the list's metadata (resourceVersion, continue, remainingItemCount).
pub fn table(resource: &Resource, objects: &[Value], list_metadata: Value, include: IncludeObject) -> Value {
    let now = SystemTime::now();
    let definitions: Vec<Value> = columns(resource)
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut row = json!({"cells": cells(resource, object, now)});
            let embedded = row_object(object, include);
            if !embedded.is_null() {
                row["object"] = embedded;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::registry;

    #[test]
    fn configmap_rows_count_data_and_carry_metadata() {
        let configmaps = registry::find("", "v1", "configmaps").unwrap();
        let object = json!({
            "metadata": {"name": "cfg", "namespace": "default", "labels": {"app": "x"}, "creationTimestamp": "2020-01-01T00:00:00Z"},
            "data": {"a": "1", "b": "2"},
            "binaryData": {"c": "AA=="},
        });
        let table = table(configmaps, &[object], json!({"resourceVersion": "7"}), IncludeObject::Metadata);
        let names: Vec<&str> =
            table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Name", "Data", "Age"]);
        assert_eq!(table["rows"][0]["cells"][0], "cfg");
        assert_eq!(table["rows"][0]["cells"][1], 3);
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(table["rows"][0]["object"]["metadata"]["labels"]["app"], "x");
    }
}
