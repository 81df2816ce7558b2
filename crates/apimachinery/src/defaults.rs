//! Upstream's defaulting of built-in objects (the `SetDefaults_*` functions and `+default` markers), as pure
//! functions on JSON objects. Services are defaulted by the API server's Service strategy instead.
//!
//! Every default fills a field only when it is absent (or empty), so running `apply` twice changes nothing.

use serde_json::{json, Map, Value};

/// `stringData` is write-only: upstream's decoding moves it into `data` (base64), its keys winning.
fn merge_string_data(secret: &mut Value) {
    use base64::Engine as _;
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|s| s.remove("stringData")) else { return };
    let data = entry(secret, "data");
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        data[key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// Applies the defaults kube-apiserver applies when it decodes an object of this kind.
pub fn apply(group: &str, version: &str, kind: &str, object: &mut Value) {
    match (group, kind) {
        ("", "Pod") => {
            if let Some(spec) = object.get_mut("spec") {
                pod_spec(spec);
                pod_only(spec);
            }
        }
        ("", "PodTemplate") => template(object.get_mut("template")),
        ("", "ReplicationController") => replication_controller(object),
        ("", "Namespace") => namespace(object),
        ("", "Node") => {
            let status = object.get_mut("status");
            if let Some(status) = status.and_then(Value::as_object_mut) {
                if let (None | Some(Value::Null), Some(capacity)) = (status.get("allocatable"), status.get("capacity"))
                {
                    let capacity = capacity.clone();
                    status.insert("allocatable".into(), capacity);
                }
            }
        }
        ("", "PersistentVolume") => {
            if let Some(spec) = object.get_mut("spec") {
                default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
                default_value(spec, "volumeMode", json!("Filesystem"));
            }
            default_str(entry(object, "status"), "phase", "Pending");
        }
        ("", "PersistentVolumeClaim") => persistent_volume_claim(object),
        ("", "Secret") => {
            default_str(object, "type", "Opaque");
            merge_string_data(object);
        }
        ("", "Endpoints") => {
            for subset in items(object.get_mut("subsets")) {
                for port in items(subset.get_mut("ports")) {
                    default_str(port, "protocol", "TCP");
                }
            }
        }
        ("", "LimitRange") => limit_range(object),
        ("apps", "Deployment") => deployment(object),
        ("apps", "ReplicaSet") => {
            if let Some(spec) = object.get_mut("spec") {
                default_value(spec, "replicas", json!(1));
                template(spec.get_mut("template"));
            }
        }
        ("apps", "StatefulSet") => stateful_set(object),
        ("apps", "DaemonSet") => daemon_set(object),
        ("batch", "Job") => job(object),
        ("batch", "CronJob") => cron_job(object),
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in items(object.get_mut("ports")) {
                default_value(port, "name", json!(""));
                default_str(port, "protocol", "TCP");
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => network_policy(object),
        ("networking.k8s.io", "IngressClass") => {
            if let Some(parameters) = object.get_mut("spec").and_then(|s| s.get_mut("parameters")) {
                default_str(parameters, "scope", "Cluster");
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => horizontal_pod_autoscaler(version, object),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            if let Some(role_ref) = object.get_mut("roleRef") {
                default_str(role_ref, "apiGroup", "rbac.authorization.k8s.io");
            }
            for subject in items(object.get_mut("subjects")) {
                let group = match subject["kind"].as_str() {
                    Some("User" | "Group") => "rbac.authorization.k8s.io",
                    _ => "",
                };
                default_value(subject, "apiGroup", json!(group));
            }
        }
        ("scheduling.k8s.io", "PriorityClass") => default_str(object, "preemptionPolicy", "PreemptLowerPriority"),
        ("storage.k8s.io", "StorageClass") => {
            default_str(object, "reclaimPolicy", "Delete");
            default_str(object, "volumeBindingMode", "Immediate");
        }
        ("storage.k8s.io", "CSIDriver") => {
            if let Some(spec) = object.get_mut("spec") {
                default_value(spec, "attachRequired", json!(true));
                for flag in ["podInfoOnMount", "storageCapacity", "requiresRepublish"] {
                    default_value(spec, flag, json!(false));
                }
                default_str(spec, "fsGroupPolicy", "ReadWriteOnceWithFSType");
                if spec.get("volumeLifecycleModes").and_then(Value::as_array).is_none_or(Vec::is_empty) {
                    spec["volumeLifecycleModes"] = json!(["Persistent"]);
                }
            }
        }
        _ => {}
    }
}

/// What admission and the Pod strategy add to a new Pod: the default NoExecute tolerations
/// (DefaultTolerationSeconds), `status.phase: Pending` and the QoS class. Run after `apply`.
pub fn admit_pod_create(pod: &mut Value) {
    if let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) {
        if !spec["tolerations"].is_array() {
            spec["tolerations"] = json!([]);
        }
        let list = spec["tolerations"].as_array_mut().expect("tolerations is an array");
        for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
            let tolerated = list.iter().any(|t| {
                let t_key = t["key"].as_str().unwrap_or_default();
                let effect = t["effect"].as_str().unwrap_or_default();
                (t_key == key || t_key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
            });
            if !tolerated {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    let qos_class = qos_class(&pod["spec"]);
    let status = entry(pod, "status");
    default_str(status, "phase", "Pending");
    default_str(status, "qosClass", qos_class);
}

/// Upstream's `GetPodQOS`: from the cpu and memory requests and limits of all containers.
fn qos_class(spec: &Value) -> &'static str {
    let mut requests: Map<String, Value> = Map::new();
    let mut limits: Map<String, Value> = Map::new();
    let mut guaranteed = true;
    let sum = |totals: &mut Map<String, Value>, name: &str, amount: f64| {
        let total = totals.get(name).and_then(Value::as_f64).unwrap_or(0.0);
        totals.insert(name.to_string(), json!(total + amount));
    };
    for container in containers(spec, &["initContainers", "containers"]) {
        let resources = &container["resources"];
        let mut limited = Vec::new();
        for (which, totals) in [("requests", &mut requests), ("limits", &mut limits)] {
            for name in ["cpu", "memory"] {
                let amount = resources[which][name].as_str().map(quantity).or_else(|| resources[which][name].as_f64());
                if let Some(amount) = amount.filter(|a| *a > 0.0) {
                    sum(totals, name, amount);
                    if which == "limits" {
                        limited.push(name);
                    }
                }
            }
        }
        if limited.len() < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    let limits_match = requests.iter().all(|(name, request)| limits.get(name) == Some(request));
    if guaranteed && limits_match && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A resource quantity as a number, for comparing amounts (an unparsable one counts as zero).
fn quantity(text: &str) -> f64 {
    crate::quantity::parse(text).unwrap_or(0.0)
}

/// `SetDefaults_PodSpec` and the per-type defaults below it: runs on Pods and in every pod template.
fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_value(spec, "securityContext", json!({}));
    default_value(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    for field in ["initContainers", "containers", "ephemeralContainers"] {
        for c in items(spec.get_mut(field)) {
            container(c);
        }
    }
    for v in items(spec.get_mut("volumes")) {
        volume(v);
    }
}

/// `SetDefaults_Pod`: only on Pod objects, never in templates.
fn pod_only(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_value(spec, "enableServiceLinks", json!(true));
    let host_network = spec["hostNetwork"].as_bool() == Some(true);
    for field in ["initContainers", "containers"] {
        for c in items(spec.get_mut(field)) {
            if let Some(limits) = c.pointer("/resources/limits").and_then(Value::as_object).cloned() {
                let requests = entry(entry(c, "resources"), "requests").as_object_mut().expect("requests is an object");
                for (name, amount) in limits {
                    requests.entry(name).or_insert(amount);
                }
            }
            if host_network {
                for port in items(c.get_mut("ports")) {
                    if port["hostPort"].as_i64().unwrap_or(0) == 0 && port.get("containerPort").is_some() {
                        port["hostPort"] = port["containerPort"].clone();
                    }
                }
            }
        }
    }
}

fn container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    let policy = image_pull_policy(c["image"].as_str().unwrap_or_default());
    default_str(c, "imagePullPolicy", policy);
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    default_value(c, "resources", json!({}));
    for port in items(c.get_mut("ports")) {
        default_str(port, "protocol", "TCP");
    }
    for probe_field in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe_field).filter(|p| p.is_object()) {
            probe(p);
        }
    }
    if let Some(lifecycle) = c.get_mut("lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(get) = lifecycle.get_mut(hook).and_then(|h| h.get_mut("httpGet")) {
                http_get(get);
            }
        }
    }
    for env in items(c.get_mut("env")) {
        if let Some(field_ref) = env.get_mut("valueFrom").and_then(|v| v.get_mut("fieldRef")) {
            default_str(field_ref, "apiVersion", "v1");
        }
    }
}

/// Always for `latest` (or no tag and no digest), IfNotPresent otherwise.
fn image_pull_policy(image: &str) -> &'static str {
    if image.is_empty() {
        return "IfNotPresent";
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A colon after the last slash starts the tag; one before it belongs to a registry's port.
    let last_part = name.rsplit('/').next().unwrap_or(name);
    let tag = last_part.split_once(':').map(|(_, tag)| tag);
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

fn probe(p: &mut Value) {
    for (field, value) in
        [("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)]
    {
        if p[field].as_i64().unwrap_or(0) == 0 {
            p[field] = json!(value);
        }
    }
    if let Some(get) = p.get_mut("httpGet") {
        http_get(get);
    }
    if let Some(grpc) = p.get_mut("grpc").filter(|g| g.is_object()) {
        default_value(grpc, "service", json!(""));
    }
}

fn http_get(get: &mut Value) {
    default_str(get, "path", "/");
    default_str(get, "scheme", "HTTP");
}

const VOLUME_SOURCE_MODE: i64 = 0o644;

fn volume(v: &mut Value) {
    let Some(map) = v.as_object_mut() else { return };
    if map.iter().all(|(key, value)| key == "name" || value.is_null()) {
        map.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = map.get_mut(source).filter(|s| s.is_object()) {
            default_value(s, "defaultMode", json!(VOLUME_SOURCE_MODE));
        }
    }
    for item in items(map.get_mut("downwardAPI").and_then(|d| d.get_mut("items"))) {
        downward_api_item(item);
    }
    for source in items(map.get_mut("projected").and_then(|p| p.get_mut("sources"))) {
        if let Some(token) = source.get_mut("serviceAccountToken").filter(|t| t.is_object()) {
            default_value(token, "expirationSeconds", json!(3600));
        }
        for item in items(source.get_mut("downwardAPI").and_then(|d| d.get_mut("items"))) {
            downward_api_item(item);
        }
    }
    if let Some(host_path) = map.get_mut("hostPath").filter(|h| h.is_object()) {
        default_value(host_path, "type", json!(""));
    }
    if let Some(spec) =
        map.get_mut("ephemeral").and_then(|e| e.get_mut("volumeClaimTemplate")).and_then(|t| t.get_mut("spec"))
    {
        default_value(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(iscsi) = map.get_mut("iscsi").filter(|s| s.is_object()) {
        default_str(iscsi, "iscsiInterface", "default");
    }
    if let Some(rbd) = map.get_mut("rbd").filter(|s| s.is_object()) {
        default_str(rbd, "pool", "rbd");
        default_str(rbd, "user", "admin");
        default_str(rbd, "keyring", "/etc/ceph/keyring");
    }
    if let Some(disk) = map.get_mut("azureDisk").filter(|s| s.is_object()) {
        default_str(disk, "cachingMode", "ReadWrite");
        default_str(disk, "fsType", "ext4");
        default_value(disk, "readOnly", json!(false));
        default_str(disk, "kind", "Shared");
    }
    if let Some(scale_io) = map.get_mut("scaleIO").filter(|s| s.is_object()) {
        default_str(scale_io, "storageMode", "ThinProvisioned");
        default_str(scale_io, "fsType", "xfs");
    }
}

fn downward_api_item(item: &mut Value) {
    if let Some(field_ref) = item.get_mut("fieldRef").filter(|f| f.is_object()) {
        default_str(field_ref, "apiVersion", "v1");
    }
}

/// A `PodTemplateSpec`: only the per-type pod spec defaults apply inside it.
fn template(template: Option<&mut Value>) {
    if let Some(spec) = template.and_then(|t| t.get_mut("spec")) {
        pod_spec(spec);
    }
}

fn template_labels(object: &Value) -> Option<Value> {
    object.pointer("/spec/template/metadata/labels").filter(|l| l.as_object().is_some_and(|l| !l.is_empty())).cloned()
}

/// Copies the template labels to `metadata.labels` when the object has none.
fn labels_from_template(object: &mut Value) {
    let Some(labels) = template_labels(object) else { return };
    let metadata = entry(object, "metadata");
    if metadata.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty) {
        metadata["labels"] = labels;
    }
}

fn replication_controller(object: &mut Value) {
    let labels = template_labels(object);
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else { return };
    if let Some(labels) = labels {
        if spec.get("selector").and_then(Value::as_object).is_none_or(Map::is_empty) {
            spec["selector"] = labels;
        }
    }
    default_value(spec, "replicas", json!(1));
    template(spec.get_mut("template"));
    labels_from_template(object);
}

fn deployment(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else { return };
    default_value(spec, "replicas", json!(1));
    let strategy = entry(spec, "strategy");
    default_str(strategy, "type", "RollingUpdate");
    if strategy["type"] == "RollingUpdate" {
        let rolling = entry(strategy, "rollingUpdate");
        default_value(rolling, "maxUnavailable", json!("25%"));
        default_value(rolling, "maxSurge", json!("25%"));
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    default_value(spec, "progressDeadlineSeconds", json!(600));
    template(spec.get_mut("template"));
}

fn daemon_set(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else { return };
    let strategy = entry(spec, "updateStrategy");
    default_str(strategy, "type", "RollingUpdate");
    if strategy["type"] == "RollingUpdate" {
        let rolling = entry(strategy, "rollingUpdate");
        default_value(rolling, "maxUnavailable", json!(1));
        default_value(rolling, "maxSurge", json!(0));
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    template(spec.get_mut("template"));
}

fn stateful_set(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else { return };
    default_str(spec, "podManagementPolicy", "OrderedReady");
    let strategy = entry(spec, "updateStrategy");
    if strategy["type"].as_str().unwrap_or_default().is_empty() {
        strategy["type"] = json!("RollingUpdate");
        // Only an unset type gets an empty rollingUpdate block; an explicit RollingUpdate gets none.
        default_value(strategy, "rollingUpdate", json!({}));
    }
    if strategy["type"] == "RollingUpdate" {
        if let Some(rolling) = strategy.get_mut("rollingUpdate").filter(|r| r.is_object()) {
            default_value(rolling, "partition", json!(0));
        }
    }
    let retention = entry(spec, "persistentVolumeClaimRetentionPolicy");
    default_str(retention, "whenDeleted", "Retain");
    default_str(retention, "whenScaled", "Retain");
    default_value(spec, "replicas", json!(1));
    default_value(spec, "revisionHistoryLimit", json!(10));
    for claim in items(spec.get_mut("volumeClaimTemplates")) {
        persistent_volume_claim(claim);
    }
    template(spec.get_mut("template"));
}

fn persistent_volume_claim(claim: &mut Value) {
    if !claim.is_object() {
        return;
    }
    default_value(entry(claim, "spec"), "volumeMode", json!("Filesystem"));
    default_str(entry(claim, "status"), "phase", "Pending");
}

fn job(object: &mut Value) {
    labels_from_template(object);
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else { return };
    if is_unset(spec.get("completions")) && is_unset(spec.get("parallelism")) {
        spec["completions"] = json!(1);
    }
    default_value(spec, "parallelism", json!(1));
    let backoff = if is_unset(spec.get("backoffLimitPerIndex")) { 6 } else { i32::MAX };
    default_value(spec, "backoffLimit", json!(backoff));
    default_value(spec, "completionMode", json!("NonIndexed"));
    default_value(spec, "suspend", json!(false));
    let replacement = if is_unset(spec.get("podFailurePolicy")) { "TerminatingOrFailed" } else { "Failed" };
    default_value(spec, "podReplacementPolicy", json!(replacement));
    for rule in items(spec.get_mut("podFailurePolicy").and_then(|p| p.get_mut("rules"))) {
        for condition in items(rule.get_mut("onPodConditions")) {
            default_str(condition, "status", "True");
        }
    }
    template(spec.get_mut("template"));
}

fn cron_job(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else { return };
    default_str(spec, "concurrencyPolicy", "Allow");
    default_value(spec, "suspend", json!(false));
    default_value(spec, "successfulJobsHistoryLimit", json!(3));
    default_value(spec, "failedJobsHistoryLimit", json!(1));
    template(spec.get_mut("jobTemplate").and_then(|j| j.get_mut("spec")).and_then(|s| s.get_mut("template")));
}

fn namespace(object: &mut Value) {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    if !name.is_empty() {
        entry(entry(object, "metadata"), "labels")["kubernetes.io/metadata.name"] = json!(name);
    }
    default_str(entry(object, "status"), "phase", "Active");
}

fn network_policy(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else { return };
    for direction in ["ingress", "egress"] {
        for rule in items(spec.get_mut(direction)) {
            for port in items(rule.get_mut("ports")) {
                default_str(port, "protocol", "TCP");
            }
        }
    }
    if spec.get("policyTypes").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        let has_egress = spec.get("egress").and_then(Value::as_array).is_some_and(|e| !e.is_empty());
        spec["policyTypes"] = if has_egress { json!(["Ingress", "Egress"]) } else { json!(["Ingress"]) };
    }
}

fn horizontal_pod_autoscaler(version: &str, object: &mut Value) {
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else { return };
    default_value(spec, "minReplicas", json!(1));
    if version != "v2" {
        return;
    }
    if spec.get("metrics").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    }
    let Some(behavior) = spec.get_mut("behavior").filter(|b| b.is_object()) else { return };
    let scale_up = entry(behavior, "scaleUp");
    default_value(scale_up, "stabilizationWindowSeconds", json!(0));
    default_str(scale_up, "selectPolicy", "Max");
    default_value(
        scale_up,
        "policies",
        json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
    );
    let scale_down = entry(behavior, "scaleDown");
    default_str(scale_down, "selectPolicy", "Max");
    default_value(scale_down, "policies", json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]));
}

fn limit_range(object: &mut Value) {
    for limit in items(object.get_mut("spec").and_then(|s| s.get_mut("limits"))) {
        if limit["type"] != "Container" {
            continue;
        }
        // default = max, then defaultRequest = default, then = min, each only for keys still missing.
        for (target, sources) in [("default", &["max"][..]), ("defaultRequest", &["default", "min"][..])] {
            for source in sources {
                let Some(values) = limit.get(*source).and_then(Value::as_object).cloned() else { continue };
                let target = entry(limit, target).as_object_mut().expect("target is an object");
                for (name, amount) in values {
                    target.entry(name).or_insert(amount);
                }
            }
        }
    }
}

/// The containers of the given lists in a pod spec.
fn containers<'a>(spec: &'a Value, fields: &'a [&str]) -> impl Iterator<Item = &'a Value> {
    fields.iter().flat_map(move |field| spec[*field].as_array().into_iter().flatten())
}

fn items(list: Option<&mut Value>) -> impl Iterator<Item = &mut Value> {
    list.and_then(Value::as_array_mut).into_iter().flatten()
}

fn is_unset(value: Option<&Value>) -> bool {
    value.is_none_or(Value::is_null)
}

/// The object at `key` of `object` (an object), made an empty object if absent or not an object.
fn entry<'a>(object: &'a mut Value, key: &str) -> &'a mut Value {
    let field = &mut object[key];
    if !field.is_object() {
        *field = json!({});
    }
    field
}

/// Sets `key` when it is absent or null.
fn default_value(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        if is_unset(map.get(key)) {
            map.insert(key.into(), value);
        }
    }
}

/// Sets the string `key` when it is absent, null or empty.
fn default_str(object: &mut Value, key: &str, value: &str) {
    if let Some(map) = object.as_object_mut() {
        if map.get(key).is_none_or(|v| v.is_null() || v == "") {
            map.insert(key.into(), json!(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(group: &str, version: &str, kind: &str, mut object: Value) -> Value {
        apply(group, version, kind, &mut object);
        let mut again = object.clone();
        apply(group, version, kind, &mut again);
        assert_eq!(again, object, "defaulting twice changed the {kind}");
        object
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": spec})
    }

    #[test]
    fn a_pod_gets_the_pod_spec_and_container_defaults() {
        let pod = defaulted(
            "",
            "v1",
            "Pod",
            pod(json!({"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]})),
        );
        let expected = json!({
            "containers": [{
                "name": "web",
                "image": "nginx",
                "imagePullPolicy": "Always",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": true,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
        });
        assert_eq!(pod["spec"], expected);
    }

    #[test]
    fn image_pull_policy_is_always_only_for_latest() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:latest@sha256:abcd", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("nginx@sha256:abcd", "IfNotPresent"),
            ("localhost:5000/team/app", "Always"),
            ("localhost:5000/team/app:v2", "IfNotPresent"),
            ("", "IfNotPresent"),
        ] {
            assert_eq!(image_pull_policy(image), policy, "{image}");
        }
    }

    #[test]
    fn probes_lifecycle_hooks_and_env_field_refs_are_defaulted() {
        let pod = defaulted(
            "",
            "v1",
            "Pod",
            pod(json!({"containers": [{
                "name": "app",
                "image": "app:1",
                "livenessProbe": {"httpGet": {"port": 8080}, "initialDelaySeconds": 5},
                "readinessProbe": {"grpc": {"port": 9090}, "periodSeconds": 3},
                "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/quit"}}},
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            }]})),
        );
        let container = &pod["spec"]["containers"][0];
        assert_eq!(
            container["livenessProbe"],
            json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "initialDelaySeconds": 5,
                   "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(
            container["readinessProbe"],
            json!({"grpc": {"port": 9090, "service": ""}, "periodSeconds": 3,
                   "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(
            container["lifecycle"]["preStop"]["httpGet"],
            json!({"port": 80, "path": "/quit", "scheme": "HTTP"})
        );
        assert_eq!(container["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    }

    #[test]
    fn requests_come_from_limits_and_host_ports_from_container_ports_on_pods() {
        let pod = defaulted(
            "",
            "v1",
            "Pod",
            pod(json!({"hostNetwork": true, "containers": [{
                "name": "app",
                "image": "app:1",
                "ports": [{"containerPort": 53, "protocol": "UDP"}],
                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
            }]})),
        );
        let container = &pod["spec"]["containers"][0];
        assert_eq!(container["resources"]["requests"], json!({"cpu": "100m", "memory": "128Mi"}));
        assert_eq!(container["ports"][0], json!({"containerPort": 53, "hostPort": 53, "protocol": "UDP"}));
    }

    #[test]
    fn volumes_get_their_source_defaults() {
        let pod = defaulted(
            "",
            "v1",
            "Pod",
            pod(json!({"containers": [{"name": "app", "image": "app:1"}], "volumes": [
                {"name": "scratch"},
                {"name": "creds", "secret": {"secretName": "creds"}},
                {"name": "conf", "configMap": {"name": "conf"}},
                {"name": "host", "hostPath": {"path": "/var/log"}},
                {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
                {"name": "info", "downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ]})),
        );
        let volumes = &pod["spec"]["volumes"];
        assert_eq!(volumes[0], json!({"name": "scratch", "emptyDir": {}}));
        assert_eq!(volumes[1]["secret"]["defaultMode"], 420);
        assert_eq!(volumes[2]["configMap"]["defaultMode"], 420);
        assert_eq!(volumes[3]["hostPath"], json!({"path": "/var/log", "type": ""}));
        assert_eq!(
            volumes[4]["projected"],
            json!({"defaultMode": 420, "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]})
        );
        assert_eq!(volumes[5]["downwardAPI"]["defaultMode"], 420);
        assert_eq!(volumes[5]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"], "v1");
    }

    #[test]
    fn a_new_pod_gets_tolerations_phase_and_qos_class() {
        let mut pod = defaulted("", "v1", "Pod", pod(json!({"containers": [{"name": "app", "image": "app:1"}]})));
        admit_pod_create(&mut pod);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        assert_eq!(pod["status"], json!({"phase": "Pending", "qosClass": "BestEffort"}));
        let mut again = pod.clone();
        admit_pod_create(&mut again);
        assert_eq!(again, pod);
    }

    #[test]
    fn a_toleration_of_every_no_execute_taint_keeps_the_defaults_out() {
        let mut pod = pod(json!({"containers": [], "tolerations": [{"operator": "Exists", "effect": "NoExecute"}]}));
        admit_pod_create(&mut pod);
        assert_eq!(pod["spec"]["tolerations"], json!([{"operator": "Exists", "effect": "NoExecute"}]));
    }

    #[test]
    fn qos_class_follows_requests_and_limits() {
        let qos = |resources: Value| {
            let mut pod = defaulted(
                "",
                "v1",
                "Pod",
                pod(json!({"containers": [{"name": "app", "image": "app:1", "resources": resources}]})),
            );
            admit_pod_create(&mut pod);
            pod["status"]["qosClass"].as_str().unwrap().to_string()
        };
        assert_eq!(qos(json!({})), "BestEffort");
        assert_eq!(qos(json!({"requests": {"cpu": "100m"}})), "Burstable");
        assert_eq!(qos(json!({"limits": {"cpu": "1", "memory": "1Gi"}})), "Guaranteed");
        assert_eq!(qos(json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m"}})), "Guaranteed");
        assert_eq!(qos(json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})), "Burstable");
        assert_eq!(qos(json!({"limits": {"cpu": "1"}})), "Burstable");
    }

    fn pod_template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}})
    }

    #[test]
    fn a_deployment_gets_its_strategy_limits_and_template_defaults() {
        let deployment = defaulted(
            "apps",
            "v1",
            "Deployment",
            json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": pod_template()}}),
        );
        let spec = &deployment["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let template_spec = &spec["template"]["spec"];
        assert_eq!(template_spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(template_spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert!(template_spec.get("enableServiceLinks").is_none(), "Pod-only defaults stay out of templates");
    }

    #[test]
    fn a_recreate_deployment_gets_no_rolling_update_block() {
        let deployment = defaulted(
            "apps",
            "v1",
            "Deployment",
            json!({"spec": {"strategy": {"type": "Recreate"}, "template": pod_template()}}),
        );
        assert_eq!(deployment["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn daemon_sets_stateful_sets_and_replica_sets_get_their_defaults() {
        let ds = defaulted("apps", "v1", "DaemonSet", json!({"spec": {"template": pod_template()}}));
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);

        let sts = defaulted(
            "apps",
            "v1",
            "StatefulSet",
            json!({"spec": {"template": pod_template(), "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}}),
        );
        let spec = &sts["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(spec["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!((spec["replicas"].clone(), spec["revisionHistoryLimit"].clone()), (json!(1), json!(10)));
        assert_eq!(
            spec["volumeClaimTemplates"][0],
            json!({"metadata": {"name": "data"}, "spec": {"volumeMode": "Filesystem"}, "status": {"phase": "Pending"}})
        );

        let explicit =
            defaulted("apps", "v1", "StatefulSet", json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}}}));
        assert_eq!(explicit["spec"]["updateStrategy"], json!({"type": "RollingUpdate"}));

        let rs = defaulted("apps", "v1", "ReplicaSet", json!({"spec": {"template": pod_template()}}));
        assert_eq!(rs["spec"]["replicas"], 1);
        assert!(rs["spec"].get("selector").is_none());
    }

    #[test]
    fn a_replication_controller_takes_selector_and_labels_from_its_template() {
        let rc = defaulted(
            "",
            "v1",
            "ReplicationController",
            json!({"metadata": {"name": "rc"}, "spec": {"template": pod_template()}}),
        );
        assert_eq!(rc["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(rc["spec"]["replicas"], 1);
    }

    #[test]
    fn jobs_and_cron_jobs_get_their_defaults() {
        let job = defaulted(
            "batch",
            "v1",
            "Job",
            json!({"metadata": {"name": "once"}, "spec": {"template": pod_template()}}),
        );
        let spec = &job["spec"];
        assert_eq!((spec["completions"].clone(), spec["parallelism"].clone()), (json!(1), json!(1)));
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(job["metadata"]["labels"], json!({"app": "web"}));

        let indexed = defaulted("batch", "v1", "Job", json!({"spec": {"completions": 5, "backoffLimitPerIndex": 1}}));
        assert_eq!(indexed["spec"]["parallelism"], 1);
        assert_eq!(indexed["spec"]["completions"], 5);
        assert_eq!(indexed["spec"]["backoffLimit"], 2147483647);

        let cron = defaulted(
            "batch",
            "v1",
            "CronJob",
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": pod_template()}}}}),
        );
        let spec = &cron["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Allow");
        assert_eq!(spec["suspend"], false);
        assert_eq!(
            (spec["successfulJobsHistoryLimit"].clone(), spec["failedJobsHistoryLimit"].clone()),
            (json!(3), json!(1))
        );
        assert_eq!(spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert!(spec["jobTemplate"]["spec"].get("backoffLimit").is_none(), "Job defaults do not reach job templates");
    }

    #[test]
    fn cluster_objects_get_their_defaults() {
        let ns = defaulted("", "v1", "Namespace", json!({"metadata": {"name": "team"}}));
        assert_eq!(ns["metadata"]["labels"], json!({"kubernetes.io/metadata.name": "team"}));
        assert_eq!(ns["status"], json!({"phase": "Active"}));

        let pvc = defaulted("", "v1", "PersistentVolumeClaim", json!({"spec": {"accessModes": ["ReadWriteOnce"]}}));
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pvc["status"], json!({"phase": "Pending"}));

        let merged =
            defaulted("", "v1", "Secret", json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "z"}}));
        assert_eq!(merged, json!({"type": "Opaque", "data": {"a": "eA==", "b": "eg=="}}));
        let only_strings = defaulted("", "v1", "Secret", json!({"stringData": {"user": "admin"}}));
        assert_eq!(only_strings["data"], json!({"user": "YWRtaW4="}));
        let secret = defaulted("", "v1", "Secret", json!({"data": {}}));
        assert_eq!(secret["type"], "Opaque");

        let policy = defaulted(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}}),
        );
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(policy["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");

        let binding = defaulted(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "sa"}]}),
        );
        assert_eq!(binding["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(binding["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(binding["subjects"][1]["apiGroup"], "");

        let class = defaulted("storage.k8s.io", "v1", "StorageClass", json!({"provisioner": "x"}));
        assert_eq!(
            (class["reclaimPolicy"].clone(), class["volumeBindingMode"].clone()),
            (json!("Delete"), json!("Immediate"))
        );

        let priority = defaulted("scheduling.k8s.io", "v1", "PriorityClass", json!({"value": 10}));
        assert_eq!(priority["preemptionPolicy"], "PreemptLowerPriority");
    }

    #[test]
    fn an_hpa_gets_min_replicas_metrics_and_behavior_policies() {
        let hpa = defaulted(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            json!({"spec": {"maxReplicas": 5, "behavior": {}}}),
        );
        let spec = &hpa["spec"];
        assert_eq!(spec["minReplicas"], 1);
        assert_eq!(
            spec["metrics"][0]["resource"],
            json!({"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}})
        );
        assert_eq!(
            spec["behavior"]["scaleUp"]["policies"][0],
            json!({"type": "Pods", "value": 4, "periodSeconds": 15})
        );
        assert_eq!(spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"], 0);
        assert!(spec["behavior"]["scaleDown"].get("stabilizationWindowSeconds").is_none());

        let plain = defaulted("autoscaling", "v2", "HorizontalPodAutoscaler", json!({"spec": {"maxReplicas": 5}}));
        assert!(plain["spec"].get("behavior").is_none());
    }

    #[test]
    fn limit_range_defaults_come_from_max_then_min() {
        let range = defaulted(
            "",
            "v1",
            "LimitRange",
            json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]}}),
        );
        let limit = &range["spec"]["limits"][0];
        assert_eq!(limit["default"], json!({"cpu": "2"}));
        assert_eq!(limit["defaultRequest"], json!({"cpu": "2", "memory": "64Mi"}));
    }

    #[test]
    fn unknown_kinds_and_services_are_left_alone() {
        let service = json!({"spec": {"ports": [{"port": 80}]}});
        assert_eq!(defaulted("", "v1", "Service", service.clone()), service);
        let config = json!({"data": {"a": "1"}});
        assert_eq!(defaulted("", "v1", "ConfigMap", config.clone()), config);
    }
}
