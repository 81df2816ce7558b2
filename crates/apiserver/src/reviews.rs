//! Resources that are answered, not stored: SelfSubjectReview (`kubectl auth whoami`), the access reviews
//! (`kubectl auth can-i`) and TokenReview.

use apimachinery::registry::Resource;
use apimachinery::status::{Status, StatusCause};
use serde_json::{json, Value};

use crate::serviceaccounts::{self, API_AUDIENCE};
use crate::{Identity, State};

/// Whether `resource` is a review: created, answered, never stored.
pub fn is_review(resource: &Resource) -> bool {
    matches!(resource.group, "authentication.k8s.io" | "authorization.k8s.io") && resource.name.ends_with("reviews")
}

/// The answered review for the request's user.
pub fn answer(resource: &Resource, identity: &Identity, mut review: Value) -> Result<Value, Status> {
    match resource.name {
        "selfsubjectreviews" => {
            review["status"] = json!({"userInfo": user_info(identity)});
        }
        "selfsubjectaccessreviews" | "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let spec = &review["spec"];
            if spec.get("resourceAttributes").is_none() && spec.get("nonResourceAttributes").is_none() {
                return Err(Status::invalid(
                    resource.kind,
                    resource.group,
                    "",
                    vec![StatusCause::required("spec.resourceAttributes")],
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
        _ => return Err(Status::method_not_allowed("create", resource.group, resource.name)),
    }
    Ok(answered(resource, review))
}

/// TokenReview: whether a bearer token authenticates, as whom, and for which of the requested audiences (the
/// API server's own when none are requested). Token-file tokens know no audiences: they are good for the API
/// server's alone, as upstream treats authenticators that are not audience-aware.
pub async fn token_review(state: &State, resource: &Resource, mut review: Value) -> Result<Value, Status> {
    let token = review["spec"]["token"].as_str().unwrap_or_default().to_string();
    if token.is_empty() {
        return Err(Status::invalid(resource.kind, resource.group, "", vec![StatusCause::required("spec.token")]));
    }
    let requested: Vec<String> = review["spec"]["audiences"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let wanted: Vec<&str> =
        if requested.is_empty() { vec![API_AUDIENCE] } else { requested.iter().map(String::as_str).collect() };
    let result = match state.tokens.authenticate(&token) {
        Some(identity) => {
            let good: Vec<&str> = wanted.iter().copied().filter(|a| *a == API_AUDIENCE).collect();
            (!good.is_empty()).then(|| (identity.clone(), good))
        }
        None => serviceaccounts::authenticate_for(state, &token, &wanted).await,
    };
    review["status"] = match result {
        Some((identity, audiences)) => {
            json!({"authenticated": true, "user": user_info(&identity), "audiences": audiences})
        }
        None => json!({"user": {}, "error": "invalid bearer token"}),
    };
    Ok(answered(resource, review))
}

/// `UserInfo` as reviews show it; empty fields are left out, as upstream's encoder does.
fn user_info(identity: &Identity) -> Value {
    let mut user = json!({"username": identity.user, "groups": identity.groups});
    if !identity.uid.is_empty() {
        user["uid"] = json!(identity.uid);
    }
    if !identity.extra.is_empty() {
        user["extra"] = json!(identity.extra);
    }
    user
}

/// A review as the API server answers it: typed, with the null creationTimestamp upstream's encoder writes.
fn answered(resource: &Resource, mut review: Value) -> Value {
    review["apiVersion"] = json!(resource.group_version());
    review["kind"] = json!(resource.kind);
    if let Some(metadata) = review.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("creationTimestamp".into(), Value::Null);
    }
    review
}
