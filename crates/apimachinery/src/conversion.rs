//! Conversion between the versions of a resource served side by side. Objects are stored in one version (the
//! storage version); a request in another version sees them converted, and its writes are converted back.
//! Among the built-in kinds: HorizontalPodAutoscaler (autoscaling/v1 and v2, stored as v2) and Event (core v1 and
//! events.k8s.io/v1, one set of objects stored as core v1, as upstream).

use serde_json::{json, Map, Value};

/// The apiVersion a resource's objects are stored in, for the resources served in more than one version.
pub fn storage_api_version(group: &str, resource: &str) -> Option<&'static str> {
    match (group, resource) {
        ("autoscaling", "horizontalpodautoscalers") => Some("autoscaling/v2"),
        ("", "events") | ("events.k8s.io", "events") => Some("v1"),
        _ => None,
    }
}

/// The (group, resource) whose storage holds a resource's objects: events.k8s.io Events are core Events.
pub fn storage_resource<'a>(group: &'a str, resource: &'a str) -> (&'a str, &'a str) {
    match (group, resource) {
        ("events.k8s.io", "events") => ("", "events"),
        other => other,
    }
}

/// `object` as `to_api_version` shows it.
pub fn convert(object: &Value, to_api_version: &str) -> Value {
    match (object["apiVersion"].as_str().unwrap_or_default(), to_api_version) {
        ("autoscaling/v2", "autoscaling/v1") => hpa_v2_to_v1(object),
        ("autoscaling/v1", "autoscaling/v2") => hpa_v1_to_v2(object),
        ("v1", "events.k8s.io/v1") => rename_event(object, to_api_version, EVENT_FIELDS),
        ("events.k8s.io/v1", "v1") => {
            rename_event(object, to_api_version, EVENT_FIELDS.map(|(core, events)| (events, core)))
        }
        _ => object.clone(),
    }
}

/// Fields that core/v1 and events.k8s.io/v1 Events name differently (the others are the same in both).
const EVENT_FIELDS: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename_event(object: &Value, api_version: &str, renames: [(&str, &str); 7]) -> Value {
    let mut converted = object.clone();
    if let Some(map) = converted.as_object_mut() {
        for (from, to) in renames {
            if let Some(value) = map.remove(from) {
                map.insert(to.to_string(), value);
            }
        }
        map.insert("apiVersion".into(), json!(api_version));
    }
    converted
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
        let v2 = convert(&v1, "autoscaling/v2");
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"],
            json!({"type": "Utilization", "averageUtilization": 70})
        );
        assert_eq!(v2["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"], 90);
        assert_eq!(convert(&v2, "autoscaling/v1"), v1);
        assert_eq!(storage_api_version("autoscaling", "horizontalpodautoscalers"), Some("autoscaling/v2"));
        assert_eq!(storage_api_version("apps", "deployments"), None);
    }

    #[test]
    fn events_are_one_set_of_objects_in_two_shapes() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "web"}, "reason": "Started", "message": "Started container",
            "source": {"component": "kubelet"}, "count": 2, "type": "Normal", "reportingComponent": "kubelet",
            "reportingInstance": "node-0", "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": "2026-01-01T00:00:01Z",
        });
        let events = convert(&core, "events.k8s.io/v1");
        assert_eq!(events["apiVersion"], "events.k8s.io/v1");
        assert_eq!(events["regarding"]["name"], "web");
        assert_eq!(events["note"], "Started container");
        assert_eq!(events["deprecatedCount"], 2);
        assert_eq!(events["reportingController"], "kubelet");
        assert!(events.get("involvedObject").is_none() && events.get("message").is_none());
        assert_eq!(convert(&events, "v1"), core);
        assert_eq!(storage_resource("events.k8s.io", "events"), ("", "events"));
        assert_eq!(storage_api_version("events.k8s.io", "events"), Some("v1"));
    }
}
