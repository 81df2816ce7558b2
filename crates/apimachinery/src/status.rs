//! `metav1.Status`: the one shape every API error takes, byte for byte as kube-apiserver writes it
//! (field order, compact JSON), so that clients that compare error bodies exactly keep working.

use serde::Serialize;

/// An API error: the HTTP code, the Status reason and the message clients print.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: EmptyMeta,
    status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<StatusDetails>>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
}

fn is_zero(code: &u16) -> bool {
    *code == 0
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
struct EmptyMeta {}

/// Which object the error is about; `kind` is the resource name (as upstream fills it for most errors).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusDetails {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
}

/// One reason a request was refused, pointing at a field when it can.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusCause {
    pub reason: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl StatusCause {
    pub fn new(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        StatusCause { reason, message: message.into(), field: field.into() }
    }

    /// `FieldValueInvalid`: the value at `field` breaks a rule.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueInvalid", field, message)
    }

    /// `FieldValueRequired`: `field` must be set.
    pub fn required(field: impl Into<String>) -> Self {
        Self::new("FieldValueRequired", field, "Required value")
    }
}

/// What an error is about: a resource (plural name) in a group, and the object's name.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub name: &'a str,
}

impl Target<'_> {
    /// `configmaps "x"` or `deployments.apps "web"`, as upstream's messages name objects.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            format!("{} {:?}", self.resource, self.name)
        } else {
            format!("{}.{} {:?}", self.resource, self.group, self.name)
        }
    }

    fn details(&self) -> StatusDetails {
        StatusDetails {
            name: self.name.to_string(),
            group: self.group.to_string(),
            kind: self.resource.to_string(),
            ..Default::default()
        }
    }
}

impl Status {
    pub fn failure(code: u16, reason: &'static str, message: impl Into<String>) -> Status {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: EmptyMeta {},
            status: "Failure",
            message: message.into(),
            reason,
            details: None,
            code,
        }
    }

    /// What a delete that removed the object answers for most resources: no code, and the object's uid.
    pub fn deleted(target: Target<'_>, uid: &str) -> Status {
        let details = StatusDetails { uid: uid.to_string(), ..target.details() };
        Status { code: 0, ..Status::success(target) }.with_details(details)
    }

    /// A Status saying an action on an object succeeded.
    pub fn success(target: Target<'_>) -> Status {
        Status {
            status: "Success",
            message: String::new(),
            reason: "",
            details: Some(Box::new(target.details())),
            code: 200,
            ..Status::failure(200, "", "")
        }
    }

    pub fn with_details(mut self, details: StatusDetails) -> Status {
        self.details = Some(Box::new(details));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Status {
        Status::failure(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Status {
        Status::failure(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Status {
        Status::failure(403, "Forbidden", message)
    }

    pub fn not_found(target: Target<'_>) -> Status {
        Status::failure(404, "NotFound", format!("{} not found", target.qualified())).with_details(target.details())
    }

    /// 404 for a path that names no resource at all.
    pub fn no_route(path: &str) -> Status {
        Status::failure(404, "NotFound", format!("the server could not find the requested resource ({path})"))
            .with_details(StatusDetails::default())
    }

    /// 405: the resource does not take this verb; upstream names the resource in the message and in `details`.
    pub fn method_not_allowed(verb: &str, group: &str, resource: &str) -> Status {
        let qualified = if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") };
        Status::failure(405, "MethodNotAllowed", format!("{verb} is not supported on resources of kind {qualified:?}"))
            .with_details(StatusDetails { group: group.to_string(), kind: resource.to_string(), ..Default::default() })
    }

    pub fn already_exists(target: Target<'_>) -> Status {
        Status::failure(409, "AlreadyExists", format!("{} already exists", target.qualified()))
            .with_details(target.details())
    }

    pub fn conflict(target: Target<'_>, why: &str) -> Status {
        Status::failure(409, "Conflict", format!("Operation cannot be fulfilled on {}: {why}", target.qualified()))
            .with_details(target.details())
    }

    /// The object changed since the client read it.
    pub fn modified(target: Target<'_>) -> Status {
        Status::conflict(
            target,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 410: the requested history is gone; the client must list again.
    pub fn expired(message: impl Into<String>) -> Status {
        Status::failure(410, "Expired", message)
    }

    pub fn gone(message: impl Into<String>) -> Status {
        Status::failure(410, "Gone", message)
    }

    /// 422 with the causes, worded as upstream: `Kind "name" is invalid: field: message, …`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<StatusCause>) -> Status {
        let list = causes
            .iter()
            .map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) })
            .collect::<Vec<_>>();
        let listed = if list.len() == 1 { list[0].clone() } else { format!("[{}]", list.join(", ")) };
        let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        Status::failure(422, "Invalid", format!("{qualified} {name:?} is invalid: {listed}")).with_details(
            StatusDetails {
                name: name.to_string(),
                group: group.to_string(),
                kind: kind.to_string(),
                causes,
                ..Default::default()
            },
        )
    }

    pub fn request_entity_too_large(message: impl Into<String>) -> Status {
        Status::failure(413, "RequestEntityTooLarge", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Status {
        Status::failure(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"))
    }

    pub fn not_acceptable(accept: &str) -> Status {
        Status::failure(406, "NotAcceptable", format!("only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io (got {accept:?})"))
    }

    pub fn internal(message: impl Into<String>) -> Status {
        Status::failure(500, "InternalError", message)
    }

    /// 503: a dependency (the datastore) is unavailable right now; the client may retry.
    pub fn service_unavailable(message: impl Into<String>) -> Status {
        Status::failure(503, "ServiceUnavailable", message)
    }

    pub fn timeout(message: impl Into<String>) -> Status {
        Status::failure(504, "Timeout", message)
    }

    /// The exact bytes kube-apiserver sends: compact JSON and a trailing newline.
    pub fn to_body(&self) -> Vec<u8> {
        let mut body = serde_json::to_vec(self).expect("Status serializes");
        body.push(b'\n');
        body
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_exists_is_byte_for_byte_upstream() {
        let target =
            Target { group: "apiregistration.k8s.io", resource: "apiservices", name: "v1alpha1.wardle.k8s.io" };
        let expected = concat!(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"apiservices.apiregistration.k8s.io \"v1alpha1.wardle.k8s.io\" already exists","reason":"AlreadyExists","details":{"name":"v1alpha1.wardle.k8s.io","group":"apiregistration.k8s.io","kind":"apiservices"},"code":409}"#,
            "\n"
        );
        assert_eq!(String::from_utf8(Status::already_exists(target).to_body()).unwrap(), expected);
    }

    #[test]
    fn a_delete_success_is_byte_for_byte_upstream() {
        let target = Target { group: "", resource: "configmaps", name: "x" };
        let expected = concat!(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":"x","kind":"configmaps","uid":"4b3a"}}"#,
            "\n"
        );
        assert_eq!(String::from_utf8(Status::deleted(target, "4b3a").to_body()).unwrap(), expected);
    }

    #[test]
    fn not_found_and_invalid_read_as_kubectl_prints_them() {
        let target = Target { group: "", resource: "configmaps", name: "x" };
        assert_eq!(Status::not_found(target).message, "configmaps \"x\" not found");
        let invalid = Status::invalid(
            "ConfigMap",
            "",
            "bad1",
            vec![StatusCause::invalid("metadata.name", "Invalid value: \"Bad\": a lowercase RFC 1123 subdomain")],
        );
        assert_eq!(invalid.code, 422);
        assert!(invalid.message.starts_with("ConfigMap \"bad1\" is invalid: metadata.name: Invalid value"));
    }
}
