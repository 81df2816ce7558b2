//! The `/scale` subresource: an `autoscaling/v1` Scale view of a workload's replicas.

use apimachinery::status::Status;
use serde_json::{json, Value};

/// The label selector of a workload as a string, as Scale's `status.selector` carries it.
pub fn selector_string(selector: &Value) -> String {
    let mut terms = Vec::new();
    // A ReplicationController's selector is a plain map; the apps kinds use matchLabels/matchExpressions.
    let labels = selector.get("matchLabels").unwrap_or(selector);
    if let Some(labels) = labels.as_object() {
        for (key, value) in labels {
            if let Some(value) = value.as_str() {
                terms.push(format!("{key}={value}"));
            }
        }
    }
    for expression in selector["matchExpressions"].as_array().into_iter().flatten() {
        let key = expression["key"].as_str().unwrap_or_default();
        let values: Vec<&str> =
            expression["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        match expression["operator"].as_str() {
            Some("In") => terms.push(format!("{key} in ({})", values.join(","))),
            Some("NotIn") => terms.push(format!("{key} notin ({})", values.join(","))),
            Some("Exists") => terms.push(key.to_string()),
            Some("DoesNotExist") => terms.push(format!("!{key}")),
            _ => {}
        }
    }
    terms.join(",")
}

/// The Scale of a workload object.
pub fn scale_of(object: &Value) -> Value {
    let metadata = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"],
            "creationTimestamp": metadata["creationTimestamp"],
        },
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {
            "replicas": object["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(&object["spec"]["selector"]),
        },
    })
}

/// The workload with the replicas a new Scale asks for.
pub fn apply_scale(object: &Value, scale: &Value) -> Result<Value, Status> {
    let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
    if replicas < 0 {
        let kind = object["kind"].as_str().unwrap_or("Scale");
        return Err(Status::invalid(
            "Scale",
            "autoscaling",
            object["metadata"]["name"].as_str().unwrap_or_default(),
            vec![apimachinery::status::StatusCause::invalid(
                "spec.replicas",
                format!("Invalid value: {replicas}: must be greater than or equal to 0 ({kind})"),
            )],
        ));
    }
    let mut updated = object.clone();
    updated["spec"]["replicas"] = json!(replicas);
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_render_as_label_selector_strings() {
        let apps = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]});
        assert_eq!(selector_string(&apps), "app=web,tier in (a,b)");
        assert_eq!(selector_string(&json!({"app": "web"})), "app=web");
    }

    #[test]
    fn scale_reads_and_writes_replicas() {
        let deployment = json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let scale = scale_of(&deployment);
        assert_eq!(
            (scale["spec"]["replicas"].as_i64(), scale["status"]["selector"].as_str()),
            (Some(2), Some("app=web"))
        );
        let scaled = apply_scale(&deployment, &json!({"spec": {"replicas": 5}})).unwrap();
        assert_eq!(scaled["spec"]["replicas"], 5);
        assert_eq!(apply_scale(&deployment, &json!({"spec": {"replicas": -1}})).unwrap_err().code, 422);
    }
}
