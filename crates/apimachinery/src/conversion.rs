//! Conversion between the versions of a resource that a group serves side by side. Objects are stored in one
//! version (the storage version); a request in another version sees them converted, and its writes are
//! converted back. Only HorizontalPodAutoscaler has two versions among the built-in kinds (autoscaling/v1 and
//! v2, stored as v2).

use serde_json::{json, Map, Value};

/// The version a resource's objects are stored in, for the resources served in more than one version.
pub fn storage_version(group: &str, resource: &str) -> Option<&'static str> {
    match (group, resource) {
        ("autoscaling", "horizontalpodautoscalers") => Some("v2"),
        _ => None,
    }
}

/// `object` (of `group`) as `to_version` shows it.
pub fn convert(group: &str, object: &Value, to_version: &str) -> Value {
    let from_version = object["apiVersion"].as_str().and_then(|v| v.rsplit('/').next()).unwrap_or_default();
    match (group, from_version, to_version) {
        ("autoscaling", "v2", "v1") => hpa_v2_to_v1(object),
        ("autoscaling", "v1", "v2") => hpa_v1_to_v2(object),
        _ => object.clone(),
    }
}

/// The CPU utilization a list of v2 metrics asks for (or reports).
fn cpu_utilization(metrics: &Value, side: &str) -> Option<Value> {
    metrics.as_array()?.iter().find_map(|metric| {
        let resource = &metric["resource"];
        (metric["type"] == "Resource" && resource["name"] == "cpu")
            .then(|| resource[side]["averageUtilization"].clone())
            .filter(|value| !value.is_null())
    })
}

fn copy(from: &Value, to: &mut Map<String, Value>, fields: &[&str]) {
    for field in fields {
        if let Some(value) = from.get(*field).filter(|v| !v.is_null()) {
            to.insert(field.to_string(), value.clone());
        }
    }
}

fn hpa_v2_to_v1(object: &Value) -> Value {
    let target =
        cpu_utilization(&object["spec"]["metrics"], "target").map(|target| ("targetCPUUtilizationPercentage", target));
    let current = cpu_utilization(&object["status"]["currentMetrics"], "current")
        .map(|current| ("currentCPUUtilizationPercentage", current));
    convert_hpa(object, "autoscaling/v1", target, current)
}

fn hpa_v1_to_v2(object: &Value) -> Value {
    let field = |part: &str, name: &str| object[part].get(name).filter(|v| !v.is_null()).cloned();
    let target = field("spec", "targetCPUUtilizationPercentage").map(|target| {
        let metric = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}});
        ("metrics", json!([metric]))
    });
    let current = field("status", "currentCPUUtilizationPercentage").map(|current| {
        let metric =
            json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}});
        ("currentMetrics", json!([metric]))
    });
    convert_hpa(object, "autoscaling/v2", target, current)
}

/// An HPA in another version: the fields both versions share, plus the CPU target and current utilization as
/// the target version spells them.
fn convert_hpa(
    object: &Value,
    api_version: &str,
    cpu_target: Option<(&str, Value)>,
    cpu_current: Option<(&str, Value)>,
) -> Value {
    let mut converted = object.clone();
    converted["apiVersion"] = json!(api_version);
    let mut spec = Map::new();
    copy(&object["spec"], &mut spec, &["scaleTargetRef", "minReplicas", "maxReplicas"]);
    spec.extend(cpu_target.map(|(name, value)| (name.to_string(), value)));
    converted["spec"] = Value::Object(spec);
    if object.get("status").is_some_and(Value::is_object) {
        let mut status = Map::new();
        copy(
            &object["status"],
            &mut status,
            &["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"],
        );
        status.extend(cpu_current.map(|(name, value)| (name.to_string(), value)));
        converted["status"] = Value::Object(status);
    }
    converted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpas_convert_both_ways_through_the_cpu_metric() {
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70},
            "status": {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 90},
        });
        let v2 = convert("autoscaling", &v1, "v2");
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"],
            json!({"type": "Utilization", "averageUtilization": 70})
        );
        assert_eq!(v2["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"], 90);
        assert_eq!(convert("autoscaling", &v2, "v1"), v1);
        assert_eq!(storage_version("autoscaling", "horizontalpodautoscalers"), Some("v2"));
        assert_eq!(storage_version("apps", "deployments"), None);
    }
}
