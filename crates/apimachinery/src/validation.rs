//! Upstream's validation of built-in workload objects: the common, well-known rules, with upstream's field
//! paths and messages. Run on defaulted objects; `old` is the stored object on updates.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::status::StatusCause;

/// Why `object` (of this group, version and kind) is invalid; empty when it is valid.
pub fn validate(group: &str, _version: &str, kind: &str, object: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    object_meta(&object["metadata"], "metadata", &mut causes);
    owners_and_finalizers(&object["metadata"], &mut causes);
    for path in template_metadata(group, kind) {
        let meta = path.split('.').fold(object, |value, field| &value[field]);
        object_meta(meta, path, &mut causes);
    }
    let spec = &object["spec"];
    match (group, kind) {
        ("", "Pod") => {
            pod_spec(spec, "spec", &mut causes);
            match old {
                Some(old) => pod_update(spec, &old["spec"], &mut causes),
                // Ephemeral containers are added to running pods, through their subresource.
                None if spec["ephemeralContainers"].as_array().is_some_and(|c| !c.is_empty()) => {
                    causes.push(forbidden("spec.ephemeralContainers", "cannot be set on create"))
                }
                None => {}
            }
        }
        ("", "PodTemplate") => pod_spec(&object["template"]["spec"], "template.spec", &mut causes),
        ("", "ReplicationController") => {
            non_negative(spec, "replicas", "spec", &mut causes);
            let selector = spec["selector"].as_object().filter(|s| !s.is_empty());
            match selector {
                None => causes.push(StatusCause::required("spec.selector")),
                Some(selector) => {
                    let labels = labels(&spec["template"]["metadata"]["labels"]);
                    if !selector.iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str()) {
                        causes.push(labels_mismatch(&spec["template"]["metadata"]["labels"]));
                    }
                }
            }
            pod_spec(&spec["template"]["spec"], "spec.template.spec", &mut causes);
            restart_policy_in(spec, "spec.template.spec", &["Always"], &mut causes);
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            if kind != "DaemonSet" {
                non_negative(spec, "replicas", "spec", &mut causes);
            }
            let selector_noun = match kind {
                "StatefulSet" => "statefulset",
                "DaemonSet" => "daemonset",
                _ => "deployment",
            };
            match spec.get("selector").filter(|s| !s.is_null()) {
                None => causes.push(StatusCause::required("spec.selector")),
                Some(selector) if is_empty_selector(selector) => causes.push(StatusCause::invalid(
                    "spec.selector",
                    format!("Invalid value: {}: empty selector is invalid for {selector_noun}", go_selector(selector)),
                )),
                Some(selector) => {
                    label_selector(selector, "spec.selector", &mut causes);
                    selector_matches_template(selector, spec, &mut causes);
                }
            }
            pod_spec(&spec["template"]["spec"], "spec.template.spec", &mut causes);
            restart_policy_in(spec, "spec.template.spec", &["Always"], &mut causes);
            if let Some(old) = old {
                immutable_selector(spec, &old["spec"], &mut causes);
            }
        }
        ("batch", "Job") => job(spec, old.map(|o| &o["spec"]), &mut causes),
        ("scheduling.k8s.io", "PriorityClass") => priority_class(object, old, &mut causes),
        ("batch", "CronJob") => {
            if spec["schedule"].as_str().unwrap_or_default().is_empty() {
                causes.push(StatusCause::required("spec.schedule"));
            }
            let job_spec = &spec["jobTemplate"]["spec"];
            pod_spec(&job_spec["template"]["spec"], "spec.jobTemplate.spec.template.spec", &mut causes);
            restart_policy_in(job_spec, "spec.jobTemplate.spec.template.spec", &["OnFailure", "Never"], &mut causes);
        }
        _ => {}
    }
    causes
}

/// The classes every cluster has (upstream's `SystemPriorityClasses`): name and value; neither is a default.
pub const SYSTEM_PRIORITY_CLASSES: [(&str, i64); 2] =
    [("system-node-critical", 2_000_001_000), ("system-cluster-critical", 2_000_000_000)];
/// Upstream's `HighestUserDefinablePriority`.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

fn priority_class(class: &Value, old: Option<&Value>, causes: &mut Vec<StatusCause>) {
    let name = class["metadata"]["name"].as_str().unwrap_or_default();
    let value = class["value"].as_i64().unwrap_or(0);
    let global_default = class["globalDefault"].as_bool().unwrap_or(false);
    if name.starts_with("system-") {
        let why = match SYSTEM_PRIORITY_CLASSES.iter().find(|(known, _)| *known == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, known)) if *known != value => Some(format!("value of {name} PriorityClass must be {known}")),
            Some(_) if global_default => Some(format!("globalDefault of {name} PriorityClass must be false")),
            Some(_) => None,
        };
        if let Some(why) = why {
            let why =
                format!("priority class names with 'system-' prefix are reserved for system use only. error: {why}");
            causes.push(forbidden("metadata.name", &why));
        }
    } else if value > HIGHEST_USER_PRIORITY {
        let why = format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}");
        causes.push(forbidden("value", &why));
    }
    if let Some(policy) = class["preemptionPolicy"].as_str() {
        if !matches!(policy, "Never" | "PreemptLowerPriority") {
            causes.push(not_supported("preemptionPolicy".into(), policy, &["Never", "PreemptLowerPriority"]));
        }
    }
    if let Some(old) = old {
        if old["value"] != class["value"] {
            causes.push(forbidden("value", "may not be changed in an update."));
        }
        if old["preemptionPolicy"] != class["preemptionPolicy"] {
            let policy = go_quote(class["preemptionPolicy"].as_str().unwrap_or_default());
            causes
                .push(StatusCause::invalid("preemptionPolicy", format!("Invalid value: {policy}: field is immutable")));
        }
    }
}

/// Where a kind keeps the metadata of the objects it makes (validated as theirs would be).
fn template_metadata(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "PodTemplate") => &["template.metadata"],
        ("", "ReplicationController") | ("apps", _) | ("batch", "Job") => &["spec.template.metadata"],
        ("batch", "CronJob") => &["spec.jobTemplate.metadata", "spec.jobTemplate.spec.template.metadata"],
        _ => &[],
    }
}

/// Upstream's total size limit of an object's annotations, keys and values.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// Upstream's `ValidateLabels` and `ValidateAnnotations` of the metadata at `path`.
fn object_meta(meta: &Value, path: &str, causes: &mut Vec<StatusCause>) {
    if let Some(labels) = meta["labels"].as_object() {
        label_map(labels, &format!("{path}.labels"), causes);
    }
    if let Some(annotations) = meta["annotations"].as_object() {
        let field = format!("{path}.annotations");
        // Keys are qualified names in which case does not matter.
        for key in annotations.keys() {
            invalid_each(&field, key, qualified_name_errors(&key.to_ascii_lowercase()), causes);
        }
        let size: usize = annotations.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
        if size > ANNOTATIONS_MAX_BYTES {
            let why = format!("Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes");
            causes.push(StatusCause::new("FieldValueTooLong", field, why));
        }
    }
}

/// Upstream's `ValidateOwnerReferences` and `ValidateFinalizers` of an object's own metadata.
fn owners_and_finalizers(meta: &Value, causes: &mut Vec<StatusCause>) {
    let field = "metadata.ownerReferences";
    let mut controller: Option<String> = None;
    let owners = meta["ownerReferences"].as_array().map(Vec::as_slice).unwrap_or_default();
    for owner in owners {
        let text = |key: &str| owner[key].as_str().unwrap_or_default();
        let version = text("apiVersion").rsplit('/').next().unwrap_or_default();
        for (key, value, what) in [
            ("apiVersion", version, "version"),
            ("kind", text("kind"), "kind"),
            ("name", text("name"), "name"),
            ("uid", text("uid"), "uid"),
        ] {
            if value.is_empty() {
                let message = format!("Invalid value: {}: {what} must not be empty", go_quote(text(key)));
                causes.push(StatusCause::invalid(format!("{field}.{key}"), message));
            }
        }
        if text("apiVersion") == "v1" && text("kind") == "Event" {
            causes.push(StatusCause::invalid(
                field,
                "Invalid value: v1.OwnerReference{...}: /v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if owner["controller"].as_bool() == Some(true) {
            let this = format!("{}/{}", text("kind"), text("name"));
            match &controller {
                Some(first) => causes.push(StatusCause::invalid(
                    field,
                    format!(
                        "Invalid value: []v1.OwnerReference{{...}}: Only one reference can have Controller set to true. \
                         Found \"true\" in references for {first} and {this}"
                    ),
                )),
                None => controller = Some(this),
            }
        }
    }
    let finalizers: Vec<&str> =
        meta["finalizers"].as_array().into_iter().flatten().map(|f| f.as_str().unwrap_or_default()).collect();
    for finalizer in &finalizers {
        invalid_each("metadata.finalizers", finalizer, qualified_name_errors(finalizer), causes);
    }
    if finalizers.contains(&"orphan") && finalizers.contains(&"foregroundDeletion") {
        let listed = finalizers.iter().map(|f| go_quote(f)).collect::<Vec<_>>().join(", ");
        causes.push(StatusCause::invalid(
            "metadata.finalizers",
            format!("Invalid value: []string{{{listed}}}: finalizer orphan and foregroundDeletion cannot be both set"),
        ));
    }
}

/// Upstream's `ValidateLabels`: keys are qualified names, values label values.
fn label_map(labels: &serde_json::Map<String, Value>, field: &str, causes: &mut Vec<StatusCause>) {
    for (key, value) in labels {
        invalid_each(field, key, qualified_name_errors(key), causes);
        let value = value.as_str().unwrap_or_default();
        invalid_each(field, value, label_value_errors(value), causes);
    }
}

fn invalid_each(field: &str, value: &str, whys: Vec<String>, causes: &mut Vec<StatusCause>) {
    for why in whys {
        causes.push(StatusCause::invalid(field, format!("Invalid value: {}: {why}", go_quote(value))));
    }
}

/// Upstream's `ValidateLabelSelector` of the selector at `path`.
fn label_selector(selector: &Value, path: &str, causes: &mut Vec<StatusCause>) {
    if let Some(labels) = selector["matchLabels"].as_object() {
        label_map(labels, &format!("{path}.matchLabels"), causes);
    }
    for (i, requirement) in selector["matchExpressions"].as_array().into_iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        let values = requirement["values"].as_array().map(Vec::as_slice).unwrap_or_default();
        match requirement["operator"].as_str().unwrap_or_default() {
            "In" | "NotIn" if values.is_empty() => causes.push(StatusCause::new(
                "FieldValueRequired",
                format!("{at}.values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => causes.push(forbidden(
                &format!("{at}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(StatusCause::invalid(
                format!("{at}.operator"),
                format!("Invalid value: {}: not a valid selector operator", go_quote(other)),
            )),
        }
        let key = requirement["key"].as_str().unwrap_or_default();
        invalid_each(&format!("{at}.key"), key, qualified_name_errors(key), causes);
        for (j, value) in values.iter().enumerate() {
            let value = value.as_str().unwrap_or_default();
            invalid_each(&format!("{at}.values[{j}]"), value, label_value_errors(value), causes);
        }
    }
}

const QUALIFIED_NAME_MESSAGE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MESSAGE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
pub const SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_part(name: &str) -> bool {
    name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Upstream's `IsQualifiedName` messages: label keys and annotation keys, `[prefix/]name`.
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let name = match value.split('/').collect::<Vec<_>>()[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_string());
            }
            errors.extend(subdomain_errors(prefix).into_iter().map(|why| format!("prefix part {why}")));
            name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MESSAGE} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )]
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errors.push("name part must be no more than 63 characters".to_string());
    }
    if !is_qualified_part(name) {
        errors.push(format!("name part {QUALIFIED_NAME_MESSAGE}"));
    }
    errors
}

/// Upstream's `IsValidLabelValue` messages.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_qualified_part(value) {
        errors.push(LABEL_VALUE_MESSAGE.to_string());
    }
    errors
}

/// Upstream's `IsDNS1123Subdomain` messages (an empty value is reported by the caller).
fn subdomain_errors(value: &str) -> Vec<String> {
    if value.is_empty() {
        return Vec::new();
    }
    let mut errors = Vec::new();
    if value.len() > 253 {
        errors.push("must be no more than 253 characters".to_string());
    }
    let label_ok = |l: &str| {
        l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    if !value.split('.').all(label_ok) {
        errors.push(SUBDOMAIN_MESSAGE.to_string());
    }
    errors
}

fn job(spec: &Value, old: Option<&Value>, causes: &mut Vec<StatusCause>) {
    for field in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"] {
        non_negative(spec, field, "spec", causes);
    }
    // The selector is generated at creation unless manualSelector is set; one given must match.
    if let Some(selector) = spec.get("selector").filter(|s| !s.is_null()) {
        label_selector(selector, "spec.selector", causes);
        selector_matches_template(selector, spec, causes);
    }
    pod_spec(&spec["template"]["spec"], "spec.template.spec", causes);
    restart_policy_in(spec, "spec.template.spec", &["OnFailure", "Never"], causes);
    if let Some(old) = old {
        immutable_selector(spec, old, causes);
        if spec["template"] != old["template"] {
            causes.push(StatusCause::invalid(
                "spec.template",
                "Invalid value: core.PodTemplateSpec{...}: field is immutable",
            ));
        }
    }
}

/// A workload's template must run its pods with one of `allowed` restart policies.
fn restart_policy_in(spec: &Value, path: &str, allowed: &[&str], causes: &mut Vec<StatusCause>) {
    let policy = spec["template"]["spec"]["restartPolicy"].as_str().unwrap_or_default();
    if !policy.is_empty() && !allowed.contains(&policy) && ["Always", "OnFailure", "Never"].contains(&policy) {
        causes.push(not_supported(format!("{path}.restartPolicy"), policy, allowed));
    }
}

fn non_negative(object: &Value, field: &str, path: &str, causes: &mut Vec<StatusCause>) {
    if let Some(value) = object[field].as_i64().filter(|v| *v < 0) {
        causes.push(StatusCause::invalid(
            format!("{path}.{field}"),
            format!("Invalid value: {value}: must be greater than or equal to 0"),
        ));
    }
}

fn immutable_selector(spec: &Value, old: &Value, causes: &mut Vec<StatusCause>) {
    if spec["selector"] != old["selector"] {
        causes.push(StatusCause::invalid(
            "spec.selector",
            format!("Invalid value: {}: field is immutable", go_selector(&spec["selector"])),
        ));
    }
}

fn is_empty_selector(selector: &Value) -> bool {
    let empty = |field: &str| match &selector[field] {
        Value::Object(map) => map.is_empty(),
        Value::Array(list) => list.is_empty(),
        _ => true,
    };
    empty("matchLabels") && empty("matchExpressions")
}

fn selector_matches_template(selector: &Value, spec: &Value, causes: &mut Vec<StatusCause>) {
    let template_labels = &spec["template"]["metadata"]["labels"];
    if !selector_matches(selector, &labels(template_labels)) {
        causes.push(labels_mismatch(template_labels));
    }
}

fn labels_mismatch(template_labels: &Value) -> StatusCause {
    StatusCause::invalid(
        "spec.template.metadata.labels",
        format!("Invalid value: {}: `selector` does not match template `labels`", go_string_map(template_labels)),
    )
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// Whether a `metav1.LabelSelector` (matchLabels and matchExpressions) selects these labels.
fn selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = selector["matchLabels"].as_object().into_iter().flatten();
    let labels_ok = match_labels.into_iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let expressions = selector["matchExpressions"].as_array().into_iter().flatten();
    labels_ok
        && expressions.into_iter().all(|requirement| {
            let key = requirement["key"].as_str().unwrap_or_default();
            let values: Vec<&str> =
                requirement["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let value = labels.get(key).map(String::as_str);
            match requirement["operator"].as_str().unwrap_or_default() {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// Go's `%#v` of a `map[string]string`: keys sorted, `map[string]string(nil)` when absent.
fn go_string_map(value: &Value) -> String {
    match value.as_object() {
        None => "map[string]string(nil)".into(),
        Some(_) => {
            let entries =
                labels(value).iter().map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v))).collect::<Vec<_>>();
            format!("map[string]string{{{}}}", entries.join(", "))
        }
    }
}

/// Go's `%#v` of a `metav1.LabelSelector`, as upstream prints it in selector errors.
fn go_selector(selector: &Value) -> String {
    if selector.is_null() {
        return "null".into();
    }
    let expressions = match selector["matchExpressions"].as_array() {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items = list
                .iter()
                .map(|r| {
                    let values = match r["values"].as_array() {
                        None => "[]string(nil)".to_string(),
                        Some(values) => format!(
                            "[]string{{{}}}",
                            values
                                .iter()
                                .map(|v| go_quote(v.as_str().unwrap_or_default()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        go_quote(r["key"].as_str().unwrap_or_default()),
                        go_quote(r["operator"].as_str().unwrap_or_default())
                    )
                })
                .collect::<Vec<_>>();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{expressions}}}",
        go_string_map(&selector["matchLabels"])
    )
}

/// A Go-quoted string; JSON's escaping agrees with Go's for the label text that occurs in practice.
fn go_quote(text: &str) -> String {
    Value::from(text).to_string()
}

/// `FieldValueNotSupported`, listing the supported values.
pub fn not_supported(field: String, value: &str, supported: &[&str]) -> StatusCause {
    let supported = supported.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", ");
    StatusCause::new(
        "FieldValueNotSupported",
        field,
        format!("Unsupported value: {}: supported values: {supported}", go_quote(value)),
    )
}

pub fn duplicate(field: String, value: &str) -> StatusCause {
    StatusCause::new("FieldValueDuplicate", field, format!("Duplicate value: {}", go_quote(value)))
}

pub const DNS_LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Upstream's `IsDNS1123Label` messages for `name`.
fn dns_label_errors(name: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if name.len() > 63 {
        errors.push("must be no more than 63 characters".to_string());
    }
    let well_formed = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !well_formed {
        errors.push(DNS_LABEL_MESSAGE.to_string());
    }
    errors
}

/// A required DNS-label name, unique among `seen`.
fn unique_label_name(name: &str, field: String, seen: &mut BTreeSet<String>, causes: &mut Vec<StatusCause>) {
    if name.is_empty() {
        causes.push(StatusCause::required(field));
        return;
    }
    for error in dns_label_errors(name) {
        causes.push(StatusCause::invalid(field.clone(), format!("Invalid value: {}: {error}", go_quote(name))));
    }
    if !seen.insert(name.to_string()) {
        causes.push(duplicate(field, name));
    }
}

fn port_number_error(port: i64) -> Option<String> {
    (!(1..=65535).contains(&port)).then(|| format!("Invalid value: {port}: must be between 1 and 65535, inclusive"))
}

/// The rules of `ValidatePodSpec` that users meet most: containers, ports, volumes and the enums.
fn pod_spec(spec: &Value, path: &str, causes: &mut Vec<StatusCause>) {
    let mut volumes = BTreeSet::new();
    for (i, volume) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let name = volume["name"].as_str().unwrap_or_default();
        unique_label_name(name, format!("{path}.volumes[{i}].name"), &mut volumes, causes);
    }
    if spec["containers"].as_array().is_none_or(Vec::is_empty) {
        causes.push(StatusCause::required(format!("{path}.containers")));
    }
    let mut names = BTreeSet::new();
    for list in ["initContainers", "containers"] {
        for (i, container) in spec[list].as_array().into_iter().flatten().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            unique_label_name(container["name"].as_str().unwrap_or_default(), format!("{at}.name"), &mut names, causes);
            container_common(container, &at, &volumes, causes);
        }
    }
    match spec["restartPolicy"].as_str().unwrap_or_default() {
        "Always" | "OnFailure" | "Never" => {}
        "" => causes.push(StatusCause::required(format!("{path}.restartPolicy"))),
        other => causes.push(not_supported(format!("{path}.restartPolicy"), other, &["Always", "OnFailure", "Never"])),
    }
    let dns_policies = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
    match spec["dnsPolicy"].as_str().unwrap_or_default() {
        "" => {}
        policy if dns_policies.contains(&policy) => {}
        other => causes.push(not_supported(format!("{path}.dnsPolicy"), other, &dns_policies)),
    }
}

/// The rules every kind of container shares: an image, a known pull policy, valid ports, mounts of the pod's
/// volumes.
fn container_common(container: &Value, at: &str, volumes: &BTreeSet<String>, causes: &mut Vec<StatusCause>) {
    if container["image"].as_str().unwrap_or_default().is_empty() {
        causes.push(StatusCause::required(format!("{at}.image")));
    }
    if let Some(policy) = container["imagePullPolicy"].as_str().filter(|p| !p.is_empty()) {
        if !["Always", "IfNotPresent", "Never"].contains(&policy) {
            causes.push(not_supported(format!("{at}.imagePullPolicy"), policy, &["Always", "IfNotPresent", "Never"]));
        }
    }
    container_ports(container, at, causes);
    for (j, mount) in container["volumeMounts"].as_array().into_iter().flatten().enumerate() {
        let name = mount["name"].as_str().unwrap_or_default();
        if !volumes.contains(name) {
            causes.push(StatusCause::new(
                "FieldValueNotFound",
                format!("{at}.volumeMounts[{j}].name"),
                format!("Not found: {}", go_quote(name)),
            ));
        }
    }
}

fn container_ports(container: &Value, at: &str, causes: &mut Vec<StatusCause>) {
    for (j, port) in container["ports"].as_array().into_iter().flatten().enumerate() {
        let field = |name: &str| format!("{at}.ports[{j}].{name}");
        match port["containerPort"].as_i64().unwrap_or(0) {
            0 => causes.push(StatusCause::required(field("containerPort"))),
            number => causes.extend(port_number_error(number).map(|e| StatusCause::invalid(field("containerPort"), e))),
        }
        let host_port = port["hostPort"].as_i64().unwrap_or(0);
        if host_port != 0 {
            causes.extend(port_number_error(host_port).map(|e| StatusCause::invalid(field("hostPort"), e)));
        }
        match port["protocol"].as_str().unwrap_or_default() {
            "TCP" | "UDP" | "SCTP" => {}
            "" => causes.push(StatusCause::required(field("protocol"))),
            other => causes.push(not_supported(field("protocol"), other, &["SCTP", "TCP", "UDP"])),
        }
    }
}

/// What an ephemeral container may set (upstream's allow list): the fields that make a container part of the
/// workload (ports, probes, lifecycle, resources, restart policy) are for the pod's own containers.
const EPHEMERAL_CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "env",
    "envFrom",
    "volumeMounts",
    "volumeDevices",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
    "targetContainerName",
];

/// `ValidatePodEphemeralContainersUpdate`, for a write to `pods/ephemeralcontainers`: ephemeral containers are
/// only ever added, each a valid container with a name unique in the pod, a target among the pod's containers and
/// nothing but the allowed fields.
pub fn ephemeral_containers_update(pod: &Value, old: &Value) -> Vec<StatusCause> {
    const PATH: &str = "spec.ephemeralContainers";
    const NOT_ALLOWED: &str = "cannot be set for an Ephemeral Container";
    let mut causes = Vec::new();
    let spec = &pod["spec"];
    let named = |list: &str| -> Vec<String> {
        spec[list].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str().map(String::from)).collect()
    };
    let targets: BTreeSet<String> = named("containers").into_iter().chain(named("initContainers")).collect();
    let volumes: BTreeSet<String> = named("volumes").into_iter().collect();
    let mut names = targets.clone();
    let containers = spec["ephemeralContainers"].as_array().map(Vec::as_slice).unwrap_or_default();
    for (i, container) in containers.iter().enumerate() {
        let at = format!("{PATH}[{i}]");
        unique_label_name(
            container["name"].as_str().unwrap_or_default(),
            format!("{at}.name"),
            &mut names,
            &mut causes,
        );
        container_common(container, &at, &volumes, &mut causes);
        if let Some(target) = container["targetContainerName"].as_str().filter(|t| !t.is_empty()) {
            if !targets.contains(target) {
                causes.push(StatusCause::new(
                    "FieldValueNotFound",
                    format!("{at}.targetContainerName"),
                    format!("Not found: {}", go_quote(target)),
                ));
            }
        }
        for (field, value) in container.as_object().into_iter().flatten() {
            if !EPHEMERAL_CONTAINER_FIELDS.contains(&field.as_str()) && !is_zero(value) {
                causes.push(forbidden(&format!("{at}.{field}"), NOT_ALLOWED));
            }
        }
        for (j, mount) in container["volumeMounts"].as_array().into_iter().flatten().enumerate() {
            for field in ["subPath", "subPathExpr"] {
                if mount[field].as_str().is_some_and(|p| !p.is_empty()) {
                    causes.push(forbidden(&format!("{at}.volumeMounts[{j}].{field}"), NOT_ALLOWED));
                }
            }
        }
    }
    // Order is not kept by patches: existing ones are found by name.
    for before in old["spec"]["ephemeralContainers"].as_array().into_iter().flatten() {
        let name = before["name"].as_str().unwrap_or_default();
        match containers.iter().find(|c| c["name"].as_str() == Some(name)) {
            None => causes.push(forbidden(
                PATH,
                &format!("existing ephemeral containers {} may not be removed\n", go_quote(name)),
            )),
            Some(now) if now != before => causes.push(forbidden(
                &format!("{PATH}[{name}]"),
                &format!("existing ephemeral containers {} may not be changed\n", go_quote(name)),
            )),
            Some(_) => {}
        }
    }
    causes
}

pub fn forbidden(field: &str, why: &str) -> StatusCause {
    StatusCause::new("FieldValueForbidden", field, format!("Forbidden: {why}"))
}

/// Whether a field holds its type's zero value (as unset as Go sees it).
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.values().all(is_zero),
    }
}

const POD_UPDATABLE_FIELDS: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// A Pod's spec is immutable but for images, activeDeadlineSeconds and added tolerations.
fn pod_update(spec: &Value, old: &Value, causes: &mut Vec<StatusCause>) {
    let mut munged = spec.clone();
    for list in ["containers", "initContainers"] {
        let old_list = old[list].as_array();
        let new_list = munged.get_mut(list).and_then(Value::as_array_mut);
        if let Some((old_list, new_list)) = old_list.zip(new_list).filter(|(o, n)| o.len() == n.len()) {
            for (new, old) in new_list.iter_mut().zip(old_list) {
                if new.is_object() {
                    new["image"] = old["image"].clone();
                }
            }
        }
    }
    let old_tolerations = old["tolerations"].as_array().cloned().unwrap_or_default();
    let new_tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    if let Some(map) = munged.as_object_mut() {
        if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
            match old.get("tolerations") {
                Some(t) => map.insert("tolerations".into(), t.clone()),
                None => map.remove("tolerations"),
            };
        }
        match old.get("activeDeadlineSeconds") {
            Some(t) => map.insert("activeDeadlineSeconds".into(), t.clone()),
            None => map.remove("activeDeadlineSeconds"),
        };
    }
    if &munged != old {
        causes.push(forbidden("spec", POD_UPDATABLE_FIELDS));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::defaults;

    #[test]
    fn ephemeral_containers_are_only_added_with_the_allowed_fields() {
        let old = json!({"spec": {
            "containers": [{"name": "app", "image": "nginx"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "ephemeralContainers": [{"name": "first", "image": "busybox"}]
        }});
        let with = |added: Value| {
            let mut pod = old.clone();
            pod["spec"]["ephemeralContainers"].as_array_mut().unwrap().push(added);
            pod
        };
        let messages = |pod: &Value| -> Vec<String> {
            ephemeral_containers_update(pod, &old).iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
        };
        // Fields at their zero value count as unset, as in upstream's allow-list check.
        let fine = with(json!({"name": "debugger", "image": "busybox", "targetContainerName": "app", "stdin": true,
                               "resources": {}, "ports": [], "volumeMounts": [{"name": "data", "mountPath": "/d"}]}));
        assert_eq!(messages(&fine), Vec::<String>::new());

        let bad =
            with(json!({"name": "app", "targetContainerName": "nope", "livenessProbe": {"exec": {"command": ["x"]}},
                              "resources": {"limits": {"cpu": "1"}},
                              "volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "x"}]}));
        assert_eq!(
            messages(&bad),
            [
                "spec.ephemeralContainers[1].name: Duplicate value: \"app\"",
                "spec.ephemeralContainers[1].image: Required value",
                "spec.ephemeralContainers[1].targetContainerName: Not found: \"nope\"",
                "spec.ephemeralContainers[1].livenessProbe: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[1].resources: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[1].volumeMounts[0].subPath: Forbidden: cannot be set for an Ephemeral Container",
            ]
        );

        let mut changed = old.clone();
        changed["spec"]["ephemeralContainers"][0]["image"] = json!("alpine");
        assert_eq!(
            messages(&changed),
            ["spec.ephemeralContainers[first]: Forbidden: existing ephemeral containers \"first\" may not be changed\n"]
        );
        let mut removed = old.clone();
        removed["spec"]["ephemeralContainers"] = json!([]);
        assert_eq!(
            messages(&removed),
            ["spec.ephemeralContainers: Forbidden: existing ephemeral containers \"first\" may not be removed\n"]
        );
    }

    #[test]
    fn label_and_annotation_keys_are_qualified_names_and_values_are_label_values() {
        assert!(qualified_name_errors("app.kubernetes.io/name").is_empty());
        assert!(qualified_name_errors("Tier_2").is_empty());
        assert_eq!(
            qualified_name_errors("bad label"),
            ["name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]
        );
        assert_eq!(qualified_name_errors("/x"), ["prefix part must be non-empty"]);
        assert!(qualified_name_errors("Example.com/x")[0].starts_with("prefix part a lowercase RFC 1123 subdomain"));
        assert!(qualified_name_errors("a/b/c")[0].starts_with("a qualified name must consist"));
        assert_eq!(qualified_name_errors(&"k".repeat(64)), ["name part must be no more than 63 characters"]);
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("v1.2_x-y").is_empty());
        assert_eq!(label_value_errors("-x").len(), 1);

        let pod = |metadata: Value| {
            let mut pod = json!({"metadata": metadata, "spec": {"containers": [{"name": "c", "image": "i"}]}});
            defaults::apply("", "v1", "Pod", &mut pod);
            pod
        };
        let fields = |object: &Value| -> Vec<(String, String)> {
            validate("", "v1", "Pod", object, None).into_iter().map(|c| (c.field, c.message)).collect()
        };
        let valid =
            pod(json!({"labels": {"app": "web", "empty": ""}, "annotations": {"Example.COM/Note": "any text"}}));
        assert!(fields(&valid).is_empty(), "{:?}", fields(&valid));
        let invalid = pod(json!({"labels": {"bad key": "x", "ok": "bad value!"}, "annotations": {"a b": "x"}}));
        let found = fields(&invalid);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].0 == "metadata.labels" && found[0].1.starts_with("Invalid value: \"bad key\": name part"));
        assert!(
            found[1].0 == "metadata.labels" && found[1].1.starts_with("Invalid value: \"bad value!\": a valid label")
        );
        assert!(found[2].0 == "metadata.annotations" && found[2].1.starts_with("Invalid value: \"a b\": name part"));
        let huge = pod(json!({"annotations": {"big": "x".repeat(ANNOTATIONS_MAX_BYTES)}}));
        assert_eq!(
            fields(&huge),
            [("metadata.annotations".to_string(), "Too long: may not be more than 262144 bytes".to_string())]
        );
        // Owner references and finalizers.
        let owned = pod(json!({
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
                {"apiVersion": "apps/v1", "kind": "", "name": "b", "uid": "", "controller": true}
            ],
            "finalizers": ["example.com/keep", "bad finalizer", "orphan", "foregroundDeletion"]
        }));
        let found: Vec<String> = fields(&owned).into_iter().map(|(f, m)| format!("{f}: {m}")).collect();
        assert_eq!(found.len(), 5, "{found:?}");
        assert_eq!(found[0], "metadata.ownerReferences.kind: Invalid value: \"\": kind must not be empty");
        assert_eq!(found[1], "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty");
        assert!(found[2].ends_with("Found \"true\" in references for ReplicaSet/a and /b"), "{found:?}");
        assert!(found[3].starts_with("metadata.finalizers: Invalid value: \"bad finalizer\": name part"));
        assert!(found[4].ends_with("finalizer orphan and foregroundDeletion cannot be both set"));
        // Selectors' keys, values and operators too.
        let mut selected = deployment(json!({"app": "web"}), json!([{"name": "c", "image": "i"}]));
        selected["spec"]["selector"]["matchExpressions"] = json!([
            {"key": "tier", "operator": "In", "values": []},
            {"key": "bad key", "operator": "Exists"},
            {"key": "zone", "operator": "Near", "values": ["x"]}
        ]);
        let found: Vec<String> = validate("apps", "v1", "Deployment", &selected, None)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert!(found[0].starts_with("spec.selector.matchExpressions[0].values: Required value: must be specified"));
        assert!(found[1].starts_with("spec.selector.matchExpressions[1].key: Invalid value: \"bad key\""));
        assert_eq!(
            found[2],
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Near\": not a valid selector operator"
        );
        // A template's metadata is checked as the pods it makes would be.
        let mut templated = deployment(json!({"app": "web"}), json!([{"name": "c", "image": "i"}]));
        templated["spec"]["template"]["metadata"]["annotations"] = json!({"x//y": "z"});
        let found = validate("apps", "v1", "Deployment", &templated, None);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "spec.template.metadata.annotations");
    }

    fn deployment(labels: Value, containers: Value) -> Value {
        let mut object = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
            },
        });
        defaults::apply("apps", "v1", "Deployment", &mut object);
        object
    }

    fn pod(spec: Value) -> Value {
        let mut object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec});
        defaults::apply("", "v1", "Pod", &mut object);
        object
    }

    /// Each cause as kubectl prints it: `field: message`.
    fn printed(causes: &[StatusCause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    fn check(group: &str, kind: &str, object: &Value, old: Option<&Value>) -> Vec<String> {
        printed(&validate(group, "v1", kind, object, old))
    }

    #[test]
    fn a_valid_deployment_and_pod_pass() {
        let valid = deployment(json!({"app": "web", "tier": "front"}), json!([{"name": "web", "image": "nginx"}]));
        assert_eq!(check("apps", "Deployment", &valid, None), Vec::<String>::new());
        let valid_pod =
            pod(json!({"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}));
        assert_eq!(check("", "Pod", &valid_pod, None), Vec::<String>::new());
    }

    #[test]
    fn a_selector_that_misses_the_template_labels_is_invalid() {
        let object = deployment(json!({"app": "other", "tier": "x"}), json!([{"name": "web", "image": "nginx"}]));
        assert_eq!(
            check("apps", "Deployment", &object, None),
            [
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"other", "tier":"x"}: `selector` does not match template `labels`"#
            ]
        );
        let causes = validate("apps", "v1", "Deployment", &object, None);
        assert_eq!(causes[0].reason, "FieldValueInvalid");
    }

    #[test]
    fn match_expressions_are_honoured() {
        let mut object =
            deployment(json!({"app": "web", "track": "canary"}), json!([{"name": "web", "image": "nginx"}]));
        object["spec"]["selector"] =
            json!({"matchExpressions": [{"key": "track", "operator": "In", "values": ["canary"]}]});
        assert_eq!(check("apps", "Deployment", &object, None), Vec::<String>::new());
        object["spec"]["selector"] =
            json!({"matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]}]});
        assert_eq!(check("apps", "Deployment", &object, None).len(), 1);
    }

    #[test]
    fn a_missing_or_empty_selector_and_negative_replicas_are_invalid() {
        let mut object = deployment(json!({"app": "web"}), json!([{"name": "web", "image": "nginx"}]));
        object["spec"]["replicas"] = json!(-1);
        object["spec"].as_object_mut().unwrap().remove("selector");
        assert_eq!(
            check("apps", "Deployment", &object, None),
            ["spec.replicas: Invalid value: -1: must be greater than or equal to 0", "spec.selector: Required value"]
        );
        object["spec"]["replicas"] = json!(1);
        object["spec"]["selector"] = json!({});
        assert_eq!(
            check("apps", "Deployment", &object, None),
            ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]
        );
    }

    #[test]
    fn containers_need_an_image_and_unique_dns_label_names() {
        let object = deployment(
            json!({"app": "web"}),
            json!([{"name": "web"}, {"name": "web", "image": "nginx"}, {"name": "Side_Car", "image": "busybox"}]),
        );
        assert_eq!(
            check("apps", "Deployment", &object, None),
            [
                "spec.template.spec.containers[0].image: Required value",
                "spec.template.spec.containers[1].name: Duplicate value: \"web\"",
                "spec.template.spec.containers[2].name: Invalid value: \"Side_Car\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ]
        );
        let none = pod(json!({"containers": []}));
        assert_eq!(check("", "Pod", &none, None), ["spec.containers: Required value"]);
    }

    #[test]
    fn ports_must_be_in_range_with_a_known_protocol() {
        let object = pod(json!({"containers": [{"name": "web", "image": "nginx", "ports": [
            {"containerPort": 0},
            {"containerPort": 70000},
            {"containerPort": 80, "hostPort": -1, "protocol": "ICMP"},
        ]}]}));
        assert_eq!(
            check("", "Pod", &object, None),
            [
                "spec.containers[0].ports[0].containerPort: Required value",
                "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[2].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[2].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ]
        );
    }

    #[test]
    fn restart_and_dns_policies_are_enums() {
        let object = pod(
            json!({"restartPolicy": "Sometimes", "dnsPolicy": "Google", "containers": [{"name": "web", "image": "nginx", "imagePullPolicy": "Maybe"}]}),
        );
        let causes = validate("", "v1", "Pod", &object, None);
        assert_eq!(
            printed(&causes),
            [
                "spec.containers[0].imagePullPolicy: Unsupported value: \"Maybe\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
            ]
        );
        assert!(causes.iter().all(|c| c.reason == "FieldValueNotSupported"));
    }

    #[test]
    fn volumes_are_named_uniquely_and_mounts_must_name_one() {
        let object = pod(json!({
            "containers": [{"name": "web", "image": "nginx", "volumeMounts": [{"name": "missing", "mountPath": "/x"}]}],
            "volumes": [{"name": "data"}, {"name": "data"}],
        }));
        assert_eq!(
            check("", "Pod", &object, None),
            [
                "spec.volumes[1].name: Duplicate value: \"data\"",
                "spec.containers[0].volumeMounts[0].name: Not found: \"missing\""
            ]
        );
    }

    #[test]
    fn workload_templates_must_restart_always_and_jobs_never_always() {
        let mut object = deployment(json!({"app": "web"}), json!([{"name": "web", "image": "nginx"}]));
        object["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            check("apps", "Deployment", &object, None),
            ["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
        );
        let mut job = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        defaults::apply("batch", "v1", "Job", &mut job);
        assert_eq!(
            check("batch", "Job", &job, None),
            ["spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""]
        );
        job["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        job["spec"]["parallelism"] = json!(-2);
        assert_eq!(
            check("batch", "Job", &job, None),
            ["spec.parallelism: Invalid value: -2: must be greater than or equal to 0"]
        );
    }

    #[test]
    fn selectors_are_immutable_on_update() {
        let old = deployment(json!({"app": "web", "v": "2"}), json!([{"name": "web", "image": "nginx"}]));
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "v": "2"}});
        assert_eq!(
            check("apps", "Deployment", &new, Some(&old)),
            ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
        );
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(5);
        scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        assert_eq!(check("apps", "Deployment", &scaled, Some(&old)), Vec::<String>::new());
    }

    #[test]
    fn a_job_template_is_immutable() {
        let mut old = json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}});
        defaults::apply("batch", "v1", "Job", &mut old);
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:1.36");
        assert_eq!(
            check("batch", "Job", &new, Some(&old)),
            ["spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable"]
        );
    }

    #[test]
    fn a_pod_update_may_change_images_deadline_and_add_tolerations_only() {
        let old = pod(
            json!({"containers": [{"name": "web", "image": "nginx"}], "tolerations": [{"key": "a", "operator": "Exists"}]}),
        );
        let mut allowed = old.clone();
        allowed["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        allowed["spec"]["activeDeadlineSeconds"] = json!(60);
        allowed["spec"]["tolerations"].as_array_mut().unwrap().push(json!({"key": "b", "operator": "Exists"}));
        assert_eq!(check("", "Pod", &allowed, Some(&old)), Vec::<String>::new());

        let mut forbidden = old.clone();
        forbidden["spec"]["restartPolicy"] = json!("Never");
        let causes = validate("", "v1", "Pod", &forbidden, Some(&old));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].reason, "FieldValueForbidden");
        assert_eq!(causes[0].field, "spec");
        assert!(causes[0]
            .message
            .starts_with("Forbidden: pod updates may not change fields other than `spec.containers[*].image`"));

        let mut removed = old.clone();
        removed["spec"]["tolerations"] = json!([]);
        assert_eq!(validate("", "v1", "Pod", &removed, Some(&old)).len(), 1);
    }

    #[test]
    fn replication_controllers_and_cron_jobs_are_checked() {
        let mut rc = json!({"metadata": {"name": "rc"}, "spec": {"selector": {"app": "db"}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        defaults::apply("", "v1", "ReplicationController", &mut rc);
        assert_eq!(
            check("", "ReplicationController", &rc, None),
            ["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"]
        );
        let mut cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c"}]}}}}}});
        defaults::apply("batch", "v1", "CronJob", &mut cron);
        assert_eq!(
            check("batch", "CronJob", &cron, None),
            [
                "spec.schedule: Required value",
                "spec.jobTemplate.spec.template.spec.containers[0].image: Required value"
            ]
        );
    }
}
