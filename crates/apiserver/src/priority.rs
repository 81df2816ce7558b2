//! Upstream's Priority admission: a new pod's `priority` and `preemptionPolicy` come from its PriorityClass (the
//! one it names, else the cluster's globalDefault one, else 0 and PreemptLowerPriority). Also the two
//! PriorityClasses every cluster has, made at start.

use serde_json::{json, Value};

use crate::serviceaccounts::forbidden;
use crate::{objects, State};
use apimachinery::registry;
use apimachinery::status::{Status, StatusDetails};

/// What a pod gets when no PriorityClass applies.
const DEFAULT_PREEMPTION: &str = "PreemptLowerPriority";

/// The description upstream gives a built-in class.
fn system_class_description(name: &str) -> &'static str {
    if name == "system-node-critical" {
        "Used for system critical pods that must not be moved from their current node."
    } else {
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."
    }
}

pub fn priority_classes() -> &'static registry::Resource {
    registry::find("scheduling.k8s.io", "v1", "priorityclasses").expect("priorityclasses are registered")
}

/// A built-in class (`validation::SYSTEM_PRIORITY_CLASSES`) as upstream's API server makes it.
pub fn system_class(name: &str, value: i64, metadata: Value) -> Value {
    let mut class = json!({
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "value": value,
        "description": system_class_description(name),
        "preemptionPolicy": DEFAULT_PREEMPTION,
    });
    class["metadata"] = metadata;
    class["metadata"]["name"] = json!(name);
    class
}

/// Sets a new pod's priority class name, priority and preemption policy; Forbidden for a class that does not
/// exist, or a priority or policy in the pod that differs from its class's.
pub async fn admit_pod(state: &State, pod: &mut Value) -> Result<(), Status> {
    let Some(spec) = pod.get("spec").filter(|s| s.is_object()) else {
        return Ok(()); // validation refuses it
    };
    let pod_name = objects::meta_str(pod, "name").unwrap_or_default().to_string();
    let named = spec["priorityClassName"].as_str().filter(|n| !n.is_empty()).map(str::to_string);
    let (class_name, priority, policy) = match named {
        Some(name) => {
            let Some(class) = crate::serviceaccounts::lookup_object(state, priority_classes(), None, &name).await?
            else {
                return Err(forbidden(&pod_name, &format!("no PriorityClass with name {name} was found")));
            };
            (name, class["value"].as_i64().unwrap_or(0), policy_of(&class))
        }
        None => match global_default(state) {
            Some(class) => (
                objects::meta_str(&class, "name").unwrap_or_default().to_string(),
                class["value"].as_i64().unwrap_or(0),
                policy_of(&class),
            ),
            None => (String::new(), 0, DEFAULT_PREEMPTION.to_string()),
        },
    };
    if let Some(given) = spec["priority"].as_i64().filter(|given| *given != priority) {
        return Err(forbidden(
            &pod_name,
            &format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission \
                 controller computed {priority} from the given PriorityClass name"
            ),
        ));
    }
    if let Some(given) = spec["preemptionPolicy"].as_str().filter(|given| *given != policy) {
        return Err(forbidden(
            &pod_name,
            &format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority \
                 admission controller computed {policy} from the given PriorityClass name"
            ),
        ));
    }
    let spec = &mut pod["spec"];
    if !class_name.is_empty() {
        spec["priorityClassName"] = json!(class_name);
    }
    spec["priority"] = json!(priority);
    spec["preemptionPolicy"] = json!(policy);
    Ok(())
}

fn policy_of(class: &Value) -> String {
    class["preemptionPolicy"].as_str().unwrap_or(DEFAULT_PREEMPTION).to_string()
}

/// Upstream's Priority admission of a PriorityClass write: a second globalDefault class is Forbidden.
pub fn admit_class(state: &State, resource: &registry::Resource, class: &Value) -> Result<(), Status> {
    let is_class = resource.group == "scheduling.k8s.io" && resource.name == "priorityclasses";
    if !is_class || class["globalDefault"].as_bool() != Some(true) {
        return Ok(());
    }
    let name = objects::meta_str(class, "name").unwrap_or_default();
    match global_default(state) {
        Some(existing) if objects::meta_str(&existing, "name") != Some(name) => Err(Status::forbidden(format!(
            "priorityclasses.scheduling.k8s.io {name:?} is forbidden: PriorityClass {} is already marked as default. \
             Only one default can exist",
            objects::meta_str(&existing, "name").unwrap_or_default()
        ))
        .with_details(StatusDetails {
            name: name.to_string(),
            group: "scheduling.k8s.io".into(),
            kind: "priorityclasses".into(),
            ..Default::default()
        })),
        _ => Ok(()),
    }
}

/// The globalDefault class; of several, the lowest value (as upstream picks).
fn global_default(state: &State) -> Option<std::sync::Arc<Value>> {
    let cache = state.caches.get(priority_classes())?;
    let (classes, _) = cache.snapshot(&objects::prefix(priority_classes(), None));
    classes
        .iter()
        .filter_map(|cached| cached.value())
        .filter(|class| class["globalDefault"].as_bool() == Some(true))
        .min_by_key(|class| class["value"].as_i64().unwrap_or(0))
}
