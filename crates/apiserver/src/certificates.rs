//! CertificateSigningRequests' strategy, as upstream's: a request names who made it, its spec never changes, and
//! it is approved or denied through `/approval` (`kubectl certificate approve|deny`), which writes nothing but its
//! conditions. Signing the approved requests is a signer's job, not the API server's.

use apimachinery::status::StatusCause;
use apimachinery::validation;
use serde_json::{json, Value};

use crate::objects;

/// Conditions a request keeps once it has them, and never has both of.
const DECISIONS: [&str; 2] = ["Approved", "Denied"];
/// Upstream prints the conditions as a Go value; abbreviated here.
const BOTH_DECISIONS: &str = "Invalid value: []certificates.CertificateSigningRequestCondition{...}: \
    Approved and Denied conditions are mutually exclusive";

pub fn is_requests(resource: &apimachinery::registry::Resource) -> bool {
    (resource.group, resource.name) == ("certificates.k8s.io", "certificatesigningrequests")
}

/// A new request names its requestor (any username, uid, groups or extra the client sent are replaced).
pub fn fill_requestor(request: &mut Value, identity: &crate::Identity) {
    let Some(spec) = request.get_mut("spec").and_then(Value::as_object_mut) else { return };
    for field in ["username", "uid", "groups", "extra"] {
        spec.remove(field);
    }
    spec.insert("username".into(), json!(identity.user));
    if !identity.uid.is_empty() {
        spec.insert("uid".into(), json!(identity.uid));
    }
    if !identity.groups.is_empty() {
        spec.insert("groups".into(), json!(identity.groups));
    }
    if !identity.extra.is_empty() {
        spec.insert("extra".into(), json!(identity.extra));
    }
}

/// What a write to `/approval` stores: the old request with the new conditions, each stamped when it is new.
pub fn approval_update(old: &Value, new: &Value) -> Value {
    let mut merged = old.clone();
    let now = objects::timestamp(std::time::SystemTime::now());
    let mut conditions = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
    for condition in conditions.iter_mut().filter_map(Value::as_object_mut) {
        for stamp in ["lastUpdateTime", "lastTransitionTime"] {
            if condition.get(stamp).is_none_or(Value::is_null) {
                condition.insert(stamp.into(), json!(now));
            }
        }
    }
    merged["status"]["conditions"] = Value::Array(conditions);
    merged
}

/// Upstream's rules for the conditions of an approval: typed, a decision at most once and only with status
/// True, never both decisions, and none taken back.
pub fn validate_approval(request: &Value, old: &Value) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let conditions = request["status"]["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut decided = Vec::new();
    for (i, condition) in conditions.iter().enumerate() {
        let at = format!("status.conditions[{i}]");
        let kind = condition["type"].as_str().unwrap_or_default();
        if kind.is_empty() {
            causes.push(StatusCause::required(format!("{at}.type")));
            continue;
        }
        if !DECISIONS.contains(&kind) && kind != "Failed" {
            continue;
        }
        if decided.contains(&kind) {
            causes.push(validation::duplicate(format!("{at}.type"), kind));
        }
        decided.push(kind);
        let status = condition["status"].as_str().unwrap_or_default();
        if status != "True" {
            causes.push(validation::not_supported(format!("{at}.status"), status, &["True"]));
        }
    }
    if DECISIONS.iter().all(|d| decided.contains(d)) {
        causes.push(StatusCause::invalid("status.conditions", BOTH_DECISIONS));
    }
    let had = |kind: &str| old["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == kind);
    for kind in DECISIONS.iter().filter(|kind| had(kind) && !decided.contains(kind)) {
        let why = format!("updates may not remove a condition of type {kind:?}");
        causes.push(validation::forbidden("status.conditions", &why));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_conditions(conditions: Value) -> Value {
        json!({"spec": {"request": "x"}, "status": {"conditions": conditions}})
    }

    fn messages(request: &Value, old: &Value) -> Vec<String> {
        validate_approval(request, old).iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn a_request_names_its_requestor_whatever_the_client_sent() {
        let mut request = json!({"spec": {"request": "x", "username": "mallory", "groups": ["system:masters"]}});
        let identity = crate::Identity {
            user: "alice".into(),
            uid: String::new(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            extra: Default::default(),
        };
        fill_requestor(&mut request, &identity);
        assert_eq!(
            request["spec"],
            json!({"request": "x", "username": "alice", "groups": ["dev", "system:authenticated"]})
        );
    }

    #[test]
    fn approval_writes_stamped_conditions_only() {
        let old = json!({"metadata": {"name": "csr"}, "spec": {"request": "x"}, "status": {}});
        let mut new = with_conditions(json!([{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]));
        new["spec"]["request"] = json!("changed");
        let merged = approval_update(&old, &new);
        assert_eq!(merged["spec"]["request"], "x");
        let condition = &merged["status"]["conditions"][0];
        assert_eq!(condition["reason"], "KubectlApprove");
        assert!(condition["lastUpdateTime"].is_string() && condition["lastTransitionTime"].is_string(), "{merged}");
    }

    #[test]
    fn decisions_are_true_exclusive_unique_and_kept() {
        let none = with_conditions(json!([]));
        let approved = with_conditions(json!([{"type": "Approved", "status": "True"}]));
        assert!(messages(&approved, &none).is_empty());
        let both =
            with_conditions(json!([{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]));
        assert_eq!(messages(&both, &none), [format!("status.conditions: {BOTH_DECISIONS}")]);
        let odd = with_conditions(
            json!([{"type": "Approved", "status": "False"}, {"type": "Approved", "status": "True"}, {"status": "True"}]),
        );
        assert_eq!(
            messages(&odd, &none),
            [
                "status.conditions[0].status: Unsupported value: \"False\": supported values: \"True\"",
                "status.conditions[1].type: Duplicate value: \"Approved\"",
                "status.conditions[2].type: Required value",
            ]
        );
        assert_eq!(
            messages(&none, &approved),
            ["status.conditions: Forbidden: updates may not remove a condition of type \"Approved\""]
        );
    }
}
