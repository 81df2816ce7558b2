//! Resources that are answered, not stored: SelfSubjectReview (`kubectl auth whoami`) and the access reviews
//! (`kubectl auth can-i`).

use apimachinery::registry::Resource;
use apimachinery::status::Status;
use serde_json::{json, Value};

use crate::Identity;

/// Whether `resource` is a review: created, answered, never stored.
pub fn is_review(resource: &Resource) -> bool {
    matches!(resource.group, "authentication.k8s.io" | "authorization.k8s.io") && resource.name.ends_with("reviews")
}

/// The answered review for the request's user.
pub fn answer(resource: &Resource, identity: &Identity, mut review: Value) -> Result<Value, Status> {
    match resource.name {
        "selfsubjectreviews" => {
            review["status"] =
                json!({"userInfo": {"username": identity.user, "uid": identity.uid, "groups": identity.groups}});
        }
        "selfsubjectaccessreviews" | "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let spec = &review["spec"];
            if spec.get("resourceAttributes").is_none() && spec.get("nonResourceAttributes").is_none() {
                return Err(Status::invalid(
                    resource.kind,
                    resource.group,
                    "",
                    vec![apimachinery::status::StatusCause::required("spec.resourceAttributes")],
                ));
            }
            // Every authenticated user may do everything until authorization (RBAC) exists.
            review["status"] = json!({"allowed": true, "reason": "k8rs authorizes every authenticated user"});
        }
        "selfsubjectrulesreviews" => {
            review["status"] = json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            });
        }
        "tokenreviews" => {
            review["status"] = json!({"authenticated": false, "error": "token reviews are not served yet"});
        }
        _ => return Err(Status::method_not_allowed("create", resource.group, resource.name)),
    }
    review["apiVersion"] = json!(resource.group_version());
    review["kind"] = json!(resource.kind);
    if let Some(metadata) = review.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("creationTimestamp".into(), Value::Null);
    }
    Ok(review)
}
