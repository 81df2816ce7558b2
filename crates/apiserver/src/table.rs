//! `meta.k8s.io/v1` Table output for `kubectl get`: per-resource columns and cells as upstream's printers compute
//! them (see table-columns.md), the default Name/Created At convertor for resources without a printer, and each
//! row's object as PartialObjectMetadata (or the full object, or nothing).
//!
//! The server always produces the "wide" row: every column, priority 1 included; kubectl hides those without
//! `-o wide`. Each resource has a column table (`*_COLUMNS`) and one function computing an object's cells in the
//! same order.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apimachinery::registry::Resource;
use apimachinery::selector::{validate_key, validate_value};
use serde_json::{json, Value};

use crate::objects::{age, human_duration, meta_str, parse_timestamp, timestamp};

/// What `includeObject` asked to embed in each row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(value: Option<&str>) -> Result<IncludeObject, String> {
        match value {
            None | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("Object") => Ok(IncludeObject::Object),
            Some("None") => Ok(IncludeObject::None),
            Some(other) => Err(format!("includeObject must be one of None, Metadata, Object, not {other:?}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Columns.

#[derive(Clone, Copy)]
struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

const fn column(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column { name, kind, format: "", priority: 0, description }
}

const fn string(name: &'static str, description: &'static str) -> Column {
    column(name, "string", description)
}

const fn integer(name: &'static str, description: &'static str) -> Column {
    column(name, "integer", description)
}

const fn boolean(name: &'static str, description: &'static str) -> Column {
    column(name, "boolean", description)
}

impl Column {
    /// Shown only with `-o wide`.
    const fn wide(self) -> Column {
        Column { priority: 1, ..self }
    }
}

const NAME: Column = Column {
    format: "name",
    ..string(
        "Name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    )
};
const CREATION_TIMESTAMP_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const AGE: Column = string("Age", CREATION_TIMESTAMP_DOC);
const CONTAINERS: Column = string("Containers", "Names of each container in the template.").wide();
const IMAGES: Column = string("Images", "Images referenced by each container in the template.").wide();
const SELECTOR: Column = string("Selector", "A label query over the pods this object manages.").wide();
const READY_OF_DESIRED: Column = string("Ready", "Number of the pod with ready state");

/// The default convertor of resources without a printer.
const DEFAULT_COLUMNS: &[Column] = &[NAME, column("Created At", "date", CREATION_TIMESTAMP_DOC)];

const POD_COLUMNS: &[Column] = &[
    NAME,
    string("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    string("Status", "The aggregate status of the containers in this pod."),
    string("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    string("IP", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.").wide(),
    string("Node", "NodeName indicates in which node this pod is scheduled.").wide(),
    string("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.").wide(),
    string("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness.").wide(),
];

/// ReplicationControllers and ReplicaSets.
const REPLICA_COLUMNS: &[Column] = &[
    NAME,
    integer("Desired", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"),
    integer("Current", "Replicas is the most recently observed number of replicas."),
    integer("Ready", "The number of ready replicas."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    READY_OF_DESIRED,
    string(
        "Up-to-date",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    string(
        "Available",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const STATEFUL_SET_COLUMNS: &[Column] = &[NAME, READY_OF_DESIRED, AGE, CONTAINERS, IMAGES];

const DAEMON_SET_COLUMNS: &[Column] = &[
    NAME,
    integer("Desired", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
    integer("Current", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
    integer("Ready", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
    integer("Up-to-date", "The total number of nodes that are running updated daemon pod."),
    integer("Available", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
    string("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on a node."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const JOB_COLUMNS: &[Column] = &[
    NAME,
    string("Status", "Status of the job."),
    string("Completions", "The number of pods which reached phase Succeeded, out of the desired completions."),
    string("Duration", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const CRON_JOB_COLUMNS: &[Column] = &[
    NAME,
    string("Schedule", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    string("Timezone", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
    boolean("Suspend", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions."),
    integer("Active", "A list of pointers to currently running jobs."),
    string("Last Schedule", "Information when was the last time the job was successfully scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    string("Type", "type determines how the Service is exposed. Defaults to ClusterIP."),
    string("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
    string("External-IP", "The external addresses of the service: its externalIPs and load-balancer ingress points."),
    string("Port(s)", "The list of ports that are exposed by this service."),
    AGE,
    string("Selector", "Route service traffic to pods with label keys and values matching this selector.").wide(),
];

const ENDPOINTS_COLUMNS: &[Column] =
    &[NAME, string("Endpoints", "The set of all endpoints is the union of all subsets."), AGE];

const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    string("AddressType", "addressType specifies the type of address carried by this EndpointSlice."),
    string("Ports", "ports specifies the list of network ports exposed by each endpoint in this slice."),
    string("Endpoints", "endpoints is a list of unique endpoints in this slice."),
    AGE,
];

const INGRESS_COLUMNS: &[Column] = &[
    NAME,
    string("Class", "The name of the IngressClass cluster resource."),
    string("Hosts", "Hosts that incoming requests are matched against before the Ingress rules are applied."),
    string("Address", "Address is a list containing ingress points for the load-balancer."),
    string("Ports", "Ports of TLS configurations that open."),
    AGE,
];

const NODE_COLUMNS: &[Column] = &[
    NAME,
    string("Status", "The status of the node."),
    string("Roles", "The roles of the node."),
    AGE,
    string("Version", "Kubelet Version reported by the node."),
    string("Internal-IP", "The node's first address of type InternalIP.").wide(),
    string("External-IP", "The node's first address of type ExternalIP.").wide(),
    string("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).").wide(),
    string("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).").wide(),
    string(
        "Container-Runtime",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
    )
    .wide(),
];

const NAMESPACE_COLUMNS: &[Column] = &[NAME, string("Status", "The status of the namespace"), AGE];

const CONFIG_MAP_COLUMNS: &[Column] = &[NAME, string("Data", "Data contains the configuration data."), AGE];

const SECRET_COLUMNS: &[Column] = &[
    NAME,
    string("Type", "Used to facilitate programmatic handling of secret data."),
    string("Data", "Data contains the secret data."),
    AGE,
];

const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    string("Secrets", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

const EVENT_COLUMNS: &[Column] = &[
    string("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    string("Type", "Type of this event (Normal, Warning), new types could be added in the future."),
    string("Reason", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    string("Object", "The object that this event is about."),
    string("Subobject", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].").wide(),
    string("Source", "The component reporting this event.").wide(),
    string("Message", "A human-readable description of the status of this operation."),
    string("First Seen", "The time at which the event was first recorded.").wide(),
    string("Count", "The number of times this event has occurred.").wide(),
    NAME.wide(),
];

const STORAGE_CLASS_NAME_DOC: &str = "The name of the StorageClass this volume or claim belongs to.";
const VOLUME_ATTRIBUTES_CLASS_DOC: &str = "The name of the VolumeAttributesClass this volume or claim uses.";

const PERSISTENT_VOLUME_COLUMNS: &[Column] = &[
    NAME,
    string("Capacity", "capacity is the description of the persistent volume's resources and capacity."),
    string("Access Modes", "accessModes contains all ways the volume can be mounted."),
    string("Reclaim Policy", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
    string("Status", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
    string("Claim", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
    string("StorageClass", STORAGE_CLASS_NAME_DOC),
    string("VolumeAttributesClass", VOLUME_ATTRIBUTES_CLASS_DOC),
    string("Reason", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
    AGE,
    string("VolumeMode", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.").wide(),
];

const PERSISTENT_VOLUME_CLAIM_COLUMNS: &[Column] = &[
    NAME,
    string("Status", "phase represents the current phase of PersistentVolumeClaim."),
    string("Volume", "volumeName is the binding reference to the PersistentVolume backing this claim."),
    string("Capacity", "capacity represents the actual resources of the underlying volume."),
    string("Access Modes", "accessModes contains the actual access modes the volume backing the PVC has."),
    string("StorageClass", STORAGE_CLASS_NAME_DOC),
    string("VolumeAttributesClass", VOLUME_ATTRIBUTES_CLASS_DOC),
    AGE,
    string("VolumeMode", "volumeMode defines what type of volume is required by the claim.").wide(),
];

const STORAGE_CLASS_COLUMNS: &[Column] = &[
    NAME,
    string("Provisioner", "provisioner indicates the type of the provisioner."),
    string(
        "ReclaimPolicy",
        "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class.",
    ),
    string(
        "VolumeBindingMode",
        "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.",
    ),
    string("AllowVolumeExpansion", "allowVolumeExpansion shows whether the storage class allow volume expand."),
    AGE,
];

const LEASE_COLUMNS: &[Column] =
    &[NAME, string("Holder", "holderIdentity contains the identity of the holder of a current lease."), AGE];

const PRIORITY_CLASS_COLUMNS: &[Column] = &[
    NAME,
    integer("Value", "value represents the integer value of this priority class."),
    boolean("Global-Default", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class."),
    AGE,
    string("PreemptionPolicy", "preemptionPolicy is the Policy for preempting pods with lower priority."),
];

const ROLE_BINDING_COLUMNS: &[Column] = &[
    NAME,
    string("Role", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
    AGE,
    string("Users", "Users in the roleBinding").wide(),
    string("Groups", "Groups in the roleBinding").wide(),
    string("ServiceAccounts", "ServiceAccounts in the roleBinding").wide(),
];

const HORIZONTAL_POD_AUTOSCALER_COLUMNS: &[Column] = &[
    NAME,
    string("Reference", "scaleTargetRef points to the target resource to scale."),
    string("Targets", "metrics contains the specifications for which to use to calculate the desired replica count."),
    string("MinPods", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
    string("MaxPods", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
    string("Replicas", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
    AGE,
];

const POD_DISRUPTION_BUDGET_COLUMNS: &[Column] = &[
    NAME,
    string("Min Available", "The minimum number of pods that must still be available after an eviction."),
    string("Max Unavailable", "The maximum number of pods that may be unavailable after an eviction."),
    integer("Allowed Disruptions", "Number of pod disruptions that are currently allowed."),
    AGE,
];

const NETWORK_POLICY_COLUMNS: &[Column] =
    &[NAME, string("Pod-Selector", "Selects the pods to which this NetworkPolicy object applies."), AGE];

const CERTIFICATE_SIGNING_REQUEST_COLUMNS: &[Column] = &[
    NAME,
    AGE,
    string("SignerName", "Requested signer for the request."),
    string("Requestor", "Name of the user that created the request."),
    string("RequestedDuration", "Requested duration of the issued certificate."),
    string("Condition", "The approval state of the request, and whether it failed or was issued."),
];

const RESOURCE_QUOTA_COLUMNS: &[Column] = &[
    NAME,
    AGE,
    string("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
    string(
        "Limit",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
];

const POD_TEMPLATE_COLUMNS: &[Column] = &[
    NAME,
    string("Containers", "Names of each container in the template."),
    string("Images", "Images referenced by each container in the template."),
    string("Pod Labels", "The labels for the pod template."),
];

const CONTROLLER_REVISION_COLUMNS: &[Column] = &[
    NAME,
    string("Controller", "Controller of the object"),
    string("Revision", "Revision indicates the revision of the state represented by Data."),
    AGE,
];

const INGRESS_CLASS_COLUMNS: &[Column] = &[
    NAME,
    string("Controller", "Controller that is responsible for handling this class"),
    string("Parameters", "A reference to a resource with additional parameters"),
    AGE,
];

/// Computes one object's cells, in the order of its columns.
type Cells = fn(&Value, SystemTime) -> Vec<Value>;

fn printer(resource: &Resource) -> (&'static [Column], Cells) {
    match (resource.group, resource.name) {
        ("", "pods") => (POD_COLUMNS, pod_cells),
        ("", "replicationcontrollers") => (REPLICA_COLUMNS, replication_controller_cells),
        ("apps", "replicasets") => (REPLICA_COLUMNS, replica_set_cells),
        ("apps", "deployments") => (DEPLOYMENT_COLUMNS, deployment_cells),
        ("apps", "statefulsets") => (STATEFUL_SET_COLUMNS, stateful_set_cells),
        ("apps", "daemonsets") => (DAEMON_SET_COLUMNS, daemon_set_cells),
        ("batch", "jobs") => (JOB_COLUMNS, job_cells),
        ("batch", "cronjobs") => (CRON_JOB_COLUMNS, cron_job_cells),
        ("", "services") => (SERVICE_COLUMNS, service_cells),
        ("", "endpoints") => (ENDPOINTS_COLUMNS, endpoints_cells),
        ("discovery.k8s.io", "endpointslices") => (ENDPOINT_SLICE_COLUMNS, endpoint_slice_cells),
        ("networking.k8s.io", "ingresses") => (INGRESS_COLUMNS, ingress_cells),
        ("", "nodes") => (NODE_COLUMNS, node_cells),
        ("", "namespaces") => (NAMESPACE_COLUMNS, namespace_cells),
        ("", "configmaps") => (CONFIG_MAP_COLUMNS, config_map_cells),
        ("", "secrets") => (SECRET_COLUMNS, secret_cells),
        ("", "serviceaccounts") => (SERVICE_ACCOUNT_COLUMNS, service_account_cells),
        ("", "events") => (EVENT_COLUMNS, event_cells),
        ("events.k8s.io", "events") => {
            (EVENT_COLUMNS, |event, now| event_cells(&apimachinery::conversion::convert(event, "v1"), now))
        }
        ("", "persistentvolumes") => (PERSISTENT_VOLUME_COLUMNS, persistent_volume_cells),
        ("", "persistentvolumeclaims") => (PERSISTENT_VOLUME_CLAIM_COLUMNS, persistent_volume_claim_cells),
        ("storage.k8s.io", "storageclasses") => (STORAGE_CLASS_COLUMNS, storage_class_cells),
        ("coordination.k8s.io", "leases") => (LEASE_COLUMNS, lease_cells),
        ("scheduling.k8s.io", "priorityclasses") => (PRIORITY_CLASS_COLUMNS, priority_class_cells),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            (ROLE_BINDING_COLUMNS, role_binding_cells)
        }
        ("autoscaling", "horizontalpodautoscalers") => {
            (HORIZONTAL_POD_AUTOSCALER_COLUMNS, horizontal_pod_autoscaler_cells)
        }
        ("policy", "poddisruptionbudgets") => (POD_DISRUPTION_BUDGET_COLUMNS, pod_disruption_budget_cells),
        ("networking.k8s.io", "networkpolicies") => (NETWORK_POLICY_COLUMNS, network_policy_cells),
        ("certificates.k8s.io", "certificatesigningrequests") => {
            (CERTIFICATE_SIGNING_REQUEST_COLUMNS, certificate_signing_request_cells)
        }
        ("", "resourcequotas") => (RESOURCE_QUOTA_COLUMNS, resource_quota_cells),
        ("", "podtemplates") => (POD_TEMPLATE_COLUMNS, pod_template_cells),
        ("apps", "controllerrevisions") => (CONTROLLER_REVISION_COLUMNS, controller_revision_cells),
        ("networking.k8s.io", "ingressclasses") => (INGRESS_CLASS_COLUMNS, ingress_class_cells),
        // Roles, ClusterRoles and everything else without a printer.
        _ => (DEFAULT_COLUMNS, default_cells),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Reading objects.

/// The value at a JSON pointer; absent when missing or null.
fn field<'a>(object: &'a Value, pointer: &str) -> Option<&'a Value> {
    object.pointer(pointer).filter(|value| !value.is_null())
}

/// The string at a JSON pointer.
fn str_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    field(object, pointer).and_then(Value::as_str)
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    str_at(object, pointer).unwrap_or_default()
}

fn int(object: &Value, pointer: &str) -> i64 {
    field(object, pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn flag(object: &Value, pointer: &str) -> bool {
    field(object, pointer).and_then(Value::as_bool).unwrap_or(false)
}

fn items<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    field(object, pointer).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn map_len(object: &Value, pointer: &str) -> usize {
    field(object, pointer).and_then(Value::as_object).map_or(0, serde_json::Map::len)
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// `value`, or `fallback` when it is empty.
fn or_str<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.is_empty() {
        fallback
    } else {
        value
    }
}

/// `value`, or `placeholder` when it is empty.
fn or(value: &str, placeholder: &str) -> String {
    or_str(value, placeholder).to_string()
}

fn deleting(object: &Value) -> bool {
    field(object, "/metadata/deletionTimestamp").is_some()
}

/// The first condition of `kind` has status True.
fn condition_true(conditions: &[Value], kind: &str) -> bool {
    conditions.iter().find(|c| c["type"] == kind).is_some_and(|c| c["status"] == "True")
}

/// The humanized time since the timestamp at `pointer` (`<unknown>` when there is none).
fn since(object: &Value, pointer: &str, now: SystemTime) -> String {
    age(str_at(object, pointer), now)
}

fn name(object: &Value) -> Value {
    json!(meta_str(object, "name").unwrap_or_default())
}

fn created(object: &Value, now: SystemTime) -> Value {
    json!(since(object, "/metadata/creationTimestamp", now))
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting helpers.

/// The first `keep` entries joined with `separator`, then ` + {n} more...` for the rest.
fn abbreviate(entries: &[String], keep: usize, separator: &str) -> String {
    let shown = entries[..entries.len().min(keep)].join(separator);
    if entries.len() > keep {
        format!("{shown} + {} more...", entries.len() - keep)
    } else {
        shown
    }
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
fn format_labels(labels: Option<&Value>) -> String {
    let mut pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    or(&pairs.join(","), "<none>")
}

/// `LabelSelectorAsSelector(selector).String()`: requirements sorted by key, `""` for a nil or empty selector, and
/// `None` when the selector does not convert.
fn selector_string(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector else { return Some(String::new()) };
    let mut requirements: Vec<(&str, String)> = vec![];
    for (key, value) in selector.get("matchLabels").and_then(Value::as_object).into_iter().flatten() {
        let value = value.as_str()?;
        validate_key(key).ok()?;
        validate_value(value).ok()?;
        requirements.push((key, format!("{key}={value}")));
    }
    for expression in items(selector, "/matchExpressions") {
        let key = text(expression, "/key");
        validate_key(key).ok()?;
        let mut values: Vec<&str> = items(expression, "/values").iter().map(Value::as_str).collect::<Option<_>>()?;
        values.sort_unstable();
        values.dedup();
        if !values.iter().all(|value| validate_value(value).is_ok()) {
            return None;
        }
        let requirement = match (text(expression, "/operator"), values.is_empty()) {
            ("In", false) => format!("{key} in ({})", values.join(",")),
            ("NotIn", false) => format!("{key} notin ({})", values.join(",")),
            ("Exists", true) => key.to_string(),
            ("DoesNotExist", true) => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key, requirement));
    }
    requirements.sort_by_key(|(key, _)| *key);
    Some(requirements.into_iter().map(|(_, requirement)| requirement).collect::<Vec<_>>().join(","))
}

/// `metav1.FormatLabelSelector`: `<none>` for a nil or empty selector, `<error>` for one that does not convert.
fn format_label_selector(selector: Option<&Value>) -> String {
    selector_string(selector).map_or_else(|| "<error>".into(), |selector| or(&selector, "<none>"))
}

/// The Containers and Images cells of a pod template: names and images in spec order, joined with `,`.
fn template_cells(template: Option<&Value>) -> [Value; 2] {
    let containers = template.map_or(&[][..], |template| items(template, "/spec/containers"));
    let join = |key: &str| json!(containers.iter().map(|c| text(c, key)).collect::<Vec<_>>().join(","));
    [join("/name"), join("/image")]
}

/// Access modes, de-duplicated, always in the order `RWO,ROX,RWX,RWOP`.
fn access_modes(modes: &[Value]) -> String {
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(mode, _)| modes.iter().any(|m| m == mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// An IntOrString as `5` or `50%`.
fn int_or_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// The sorted unique load-balancer ingress points: each one's IP, or its hostname.
fn load_balancer_addresses(ingress: &[Value]) -> Vec<&str> {
    let addresses: BTreeSet<&str> = ingress
        .iter()
        .map(|point| or_str(text(point, "/ip"), text(point, "/hostname")))
        .filter(|address| !address.is_empty())
        .collect();
    addresses.into_iter().collect()
}

/// A quantity's canonical string (`0` when missing), as resource.Quantity prints it.
fn quantity(value: Option<&Value>) -> String {
    let text = match value {
        None => return "0".into(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    canonical_quantity(&text).unwrap_or(text)
}

/// resource.Quantity's canonical form: `1024Mi` → `1Gi`, `1.5Gi` → `1536Mi`, `0.5Ki` → `512`, `0.5` → `500m`,
/// `1000M` → `1G`, `1e4` → `10e3`. `None` for text that is not a quantity (or too large to reason about here).
fn canonical_quantity(text: &str) -> Option<String> {
    let end = text.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-'))).unwrap_or(text.len());
    let (number, suffix) = text.split_at(end);
    let (negative, digits) = match number.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.len() + fraction.len() == 0 || !whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut mantissa: i128 = format!("{whole}{fraction}").parse().ok()?;
    if negative {
        mantissa = -mantissa;
    }
    // The value is mantissa × 10^exponent.
    let mut exponent = -i32::try_from(fraction.len()).ok()?;
    const DECIMAL: [(&str, i32); 10] =
        [("n", -9), ("u", -6), ("m", -3), ("", 0), ("k", 3), ("M", 6), ("G", 9), ("T", 12), ("P", 15), ("E", 18)];
    const BINARY: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let mut scientific = false;
    if let Some(power) = BINARY.iter().skip(1).position(|s| *s == suffix) {
        mantissa = mantissa.checked_mul(1024_i128.checked_pow(power as u32 + 1)?)?;
        // Binary notation stays only for whole numbers of at least 1024; anything else is shown in decimal.
        let whole = if exponent >= 0 {
            mantissa.checked_mul(10_i128.checked_pow(exponent.unsigned_abs())?)
        } else {
            let divisor = 10_i128.checked_pow(exponent.unsigned_abs())?;
            (mantissa % divisor == 0).then(|| mantissa / divisor)
        };
        if let Some(mut value) = whole.filter(|value| value.abs() >= 1024) {
            let mut power = 0;
            while power < 6 && value % 1024 == 0 {
                value /= 1024;
                power += 1;
            }
            return Some(format!("{value}{}", BINARY[power]));
        }
    } else if let Some((_, shift)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
        exponent += shift;
    } else {
        exponent += suffix.strip_prefix(['e', 'E'])?.parse::<i32>().ok()?;
        scientific = true;
    }
    if mantissa == 0 {
        return Some("0".into());
    }
    if exponent < -9 {
        // Quantities keep nano precision, rounding up.
        let divisor = 10_i128.checked_pow((-9 - exponent).unsigned_abs())?;
        mantissa = mantissa / divisor + mantissa.signum() * i128::from(mantissa % divisor != 0);
        exponent = -9;
    }
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exponent += 1;
    }
    while exponent.rem_euclid(3) != 0 {
        mantissa = mantissa.checked_mul(10)?;
        exponent -= 1;
    }
    let suffix = match (scientific, exponent) {
        (_, 0) => String::new(),
        (true, _) => format!("e{exponent}"),
        (false, _) => DECIMAL.iter().find(|(_, shift)| *shift == exponent)?.0.to_string(),
    };
    Some(format!("{mantissa}{suffix}"))
}

// ---------------------------------------------------------------------------------------------------------------
// Per-resource cells.

/// Pods: the aggregate status as upstream's printPod computes it.
fn pod_cells(pod: &Value, now: SystemTime) -> Vec<Value> {
    let init_specs = items(pod, "/spec/initContainers");
    let is_sidecar = |spec: &Value| text(spec, "/restartPolicy") == "Always";
    let sidecar_named = |name: &str| init_specs.iter().any(|spec| text(spec, "/name") == name && is_sidecar(spec));
    let total = items(pod, "/spec/containers").len() + init_specs.iter().filter(|spec| is_sidecar(spec)).count();
    let conditions = items(pod, "/status/conditions");
    let phase = text(pod, "/status/phase");
    let mut reason = or(text(pod, "/status/reason"), phase);
    if conditions.iter().any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated") {
        reason = "SchedulingGated".into();
    }

    let (mut ready, mut restarts, mut sidecar_restarts) = (0, Restarts::default(), Restarts::default());
    let mut initializing = false;
    for (i, status) in items(pod, "/status/initContainerStatuses").iter().enumerate() {
        restarts.add(status);
        let sidecar = sidecar_named(text(status, "/name"));
        if sidecar {
            sidecar_restarts.add(status);
        }
        let terminated = field(status, "/state/terminated");
        if terminated.is_some_and(|t| int(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && flag(status, "/started") {
            ready += usize::from(flag(status, "/ready"));
            continue;
        }
        let waiting = text(status, "/state/waiting/reason");
        reason = match terminated {
            Some(terminated) => format!("Init:{}", exit_reason(terminated)),
            None if !waiting.is_empty() && waiting != "PodInitializing" => format!("Init:{waiting}"),
            None => format!("Init:{i}/{}", init_specs.len()),
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = sidecar_restarts;
        let mut has_running = false;
        for status in items(pod, "/status/containerStatuses").iter().rev() {
            restarts.add(status);
            let waiting = text(status, "/state/waiting/reason");
            if !waiting.is_empty() {
                reason = waiting.into();
            } else if let Some(terminated) = field(status, "/state/terminated") {
                reason = exit_reason(terminated);
            } else if flag(status, "/ready") && field(status, "/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") { "Running" } else { "NotReady" }.into();
        }
    }

    if deleting(pod) && text(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting(pod) && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".into();
    }

    let ip = items(pod, "/status/podIPs").first().map_or_else(|| text(pod, "/status/podIP"), |ip| text(ip, "/ip"));
    let gates = items(pod, "/spec/readinessGates");
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let passed = gates.iter().filter(|gate| condition_true(conditions, text(gate, "/conditionType"))).count();
        format!("{passed}/{}", gates.len())
    };
    vec![
        name(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts.cell(now)),
        created(pod, now),
        json!(or(ip, "<none>")),
        json!(or(text(pod, "/spec/nodeName"), "<none>")),
        json!(or(text(pod, "/status/nominatedNodeName"), "<none>")),
        json!(gates),
    ]
}

/// Container restarts and the latest time a container last terminated.
#[derive(Default)]
struct Restarts<'a> {
    count: i64,
    /// The latest `lastState.terminated.finishedAt`, in seconds and as written.
    last: Option<(i64, &'a str)>,
}

impl<'a> Restarts<'a> {
    fn add(&mut self, status: &'a Value) {
        self.count += int(status, "/restartCount");
        let finished = str_at(status, "/lastState/terminated/finishedAt");
        self.last = self.last.max(finished.and_then(|at| Some((parse_timestamp(at)?, at))));
    }

    /// `5`, or `5 (3m2s ago)` when the last restart is known.
    fn cell(&self, now: SystemTime) -> String {
        match self.last {
            Some((_, at)) if self.count != 0 => format!("{} ({} ago)", self.count, age(Some(at), now)),
            _ => self.count.to_string(),
        }
    }
}

/// A terminated container's reason, else `Signal:{n}` or `ExitCode:{n}`.
fn exit_reason(terminated: &Value) -> String {
    match (text(terminated, "/reason"), int(terminated, "/signal")) {
        ("", 0) => format!("ExitCode:{}", int(terminated, "/exitCode")),
        ("", signal) => format!("Signal:{signal}"),
        (reason, _) => reason.to_string(),
    }
}

/// `spec.replicas`, defaulted to 1.
fn desired_replicas(object: &Value) -> i64 {
    field(object, "/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

fn replication_controller_cells(controller: &Value, now: SystemTime) -> Vec<Value> {
    replica_cells(controller, now, format_labels(field(controller, "/spec/selector")))
}

fn replica_set_cells(set: &Value, now: SystemTime) -> Vec<Value> {
    replica_cells(set, now, format_label_selector(field(set, "/spec/selector")))
}

fn replica_cells(object: &Value, now: SystemTime, selector: String) -> Vec<Value> {
    let [containers, images] = template_cells(field(object, "/spec/template"));
    vec![
        name(object),
        json!(desired_replicas(object)),
        json!(int(object, "/status/replicas")),
        json!(int(object, "/status/readyReplicas")),
        created(object, now),
        containers,
        images,
        json!(selector),
    ]
}

/// `{readyReplicas}/{spec.replicas}`.
fn ready_of_desired(object: &Value) -> Value {
    json!(format!("{}/{}", int(object, "/status/readyReplicas"), desired_replicas(object)))
}

fn deployment_cells(deployment: &Value, now: SystemTime) -> Vec<Value> {
    let [containers, images] = template_cells(field(deployment, "/spec/template"));
    let selector = selector_string(field(deployment, "/spec/selector")).unwrap_or_else(|| "<invalid>".into());
    vec![
        name(deployment),
        ready_of_desired(deployment),
        json!(int(deployment, "/status/updatedReplicas")),
        json!(int(deployment, "/status/availableReplicas")),
        created(deployment, now),
        containers,
        images,
        json!(selector),
    ]
}

fn stateful_set_cells(set: &Value, now: SystemTime) -> Vec<Value> {
    let [containers, images] = template_cells(field(set, "/spec/template"));
    vec![name(set), ready_of_desired(set), created(set, now), containers, images]
}

fn daemon_set_cells(set: &Value, now: SystemTime) -> Vec<Value> {
    let [desired, current, ready, updated, available] = [
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "updatedNumberScheduled",
        "numberAvailable",
    ]
    .map(|count| json!(int(set, &format!("/status/{count}"))));
    let [containers, images] = template_cells(field(set, "/spec/template"));
    vec![
        name(set),
        desired,
        current,
        ready,
        updated,
        available,
        json!(format_labels(field(set, "/spec/template/spec/nodeSelector"))),
        created(set, now),
        containers,
        images,
        json!(format_label_selector(field(set, "/spec/selector"))),
    ]
}

fn job_status(job: &Value) -> &'static str {
    let conditions = items(job, "/status/conditions");
    let has = |kind| condition_true(conditions, kind);
    match () {
        _ if has("Complete") => "Complete",
        _ if has("Failed") => "Failed",
        _ if deleting(job) => "Terminating",
        _ if has("Suspended") => "Suspended",
        _ if has("FailureTarget") => "FailureTarget",
        _ if has("SuccessCriteriaMet") => "SuccessCriteriaMet",
        _ => "Running",
    }
}

fn job_cells(job: &Value, now: SystemTime) -> Vec<Value> {
    let succeeded = int(job, "/status/succeeded");
    let completions = match field(job, "/spec/completions").and_then(Value::as_i64) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match int(job, "/spec/parallelism") {
            parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = str_at(job, "/status/startTime").and_then(parse_timestamp);
    let duration = match (start, str_at(job, "/status/completionTime").and_then(parse_timestamp)) {
        (None, _) => String::new(),
        (Some(_), None) => since(job, "/status/startTime", now),
        (Some(start), Some(completion)) => human_duration(completion - start),
    };
    let [containers, images] = template_cells(field(job, "/spec/template"));
    vec![
        name(job),
        json!(job_status(job)),
        json!(completions),
        json!(duration),
        created(job, now),
        containers,
        images,
        json!(format_label_selector(field(job, "/spec/selector"))),
    ]
}

fn cron_job_cells(job: &Value, now: SystemTime) -> Vec<Value> {
    let suspend = match field(job, "/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let last_schedule = match field(job, "/status/lastScheduleTime") {
        Some(_) => since(job, "/status/lastScheduleTime", now),
        None => "<none>".into(),
    };
    let [containers, images] = template_cells(field(job, "/spec/jobTemplate/spec/template"));
    vec![
        name(job),
        json!(text(job, "/spec/schedule")),
        json!(str_at(job, "/spec/timeZone").unwrap_or("<none>")),
        json!(suspend),
        json!(items(job, "/status/active").len()),
        json!(last_schedule),
        created(job, now),
        containers,
        images,
        json!(format_label_selector(field(job, "/spec/jobTemplate/spec/selector"))),
    ]
}

fn service_cells(service: &Value, now: SystemTime) -> Vec<Value> {
    // An unset type and clusterIPs are what defaulting would fill in: ClusterIP, and clusterIPs from clusterIP.
    let kind = or(text(service, "/spec/type"), "ClusterIP");
    let cluster_ip = items(service, "/spec/clusterIPs").first().and_then(Value::as_str);
    let cluster_ip = or(cluster_ip.unwrap_or_else(|| text(service, "/spec/clusterIP")), "<none>");
    let external_ips: Vec<&str> = items(service, "/spec/externalIPs").iter().filter_map(Value::as_str).collect();
    let external_ip = match kind.as_str() {
        "ClusterIP" | "NodePort" => or(&external_ips.join(","), "<none>"),
        "LoadBalancer" => {
            let mut addresses = load_balancer_addresses(items(service, "/status/loadBalancer/ingress"));
            addresses.extend(&external_ips);
            or(&addresses.join(","), "<pending>")
        }
        "ExternalName" => text(service, "/spec/externalName").into(),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = items(service, "/spec/ports")
        .iter()
        .map(|port| {
            let protocol = or(text(port, "/protocol"), "TCP");
            match int(port, "/nodePort") {
                node_port if node_port > 0 => format!("{}:{node_port}/{protocol}", int(port, "/port")),
                _ => format!("{}/{protocol}", int(port, "/port")),
            }
        })
        .collect();
    vec![
        name(service),
        json!(kind),
        json!(cluster_ip),
        json!(external_ip),
        json!(or(&ports.join(","), "<none>")),
        created(service, now),
        json!(format_labels(field(service, "/spec/selector"))),
    ]
}

fn endpoints_cells(endpoints: &Value, now: SystemTime) -> Vec<Value> {
    let subsets = items(endpoints, "/subsets");
    let cell = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut entries = vec![];
        for subset in subsets {
            let addresses: Vec<&str> = items(subset, "/addresses").iter().map(|address| text(address, "/ip")).collect();
            let ports = items(subset, "/ports");
            if ports.is_empty() {
                entries.extend(addresses.iter().map(|ip| ip.to_string()));
            }
            for port in ports.iter().map(|port| int(port, "/port")) {
                // net.JoinHostPort: IPv6 addresses in brackets.
                entries.extend(addresses.iter().map(|ip| match ip.contains(':') {
                    true => format!("[{ip}]:{port}"),
                    false => format!("{ip}:{port}"),
                }));
            }
        }
        abbreviate(&entries, 3, ",")
    };
    vec![name(endpoints), json!(cell), created(endpoints, now)]
}

fn endpoint_slice_cells(slice: &Value, now: SystemTime) -> Vec<Value> {
    let ports: Vec<String> = items(slice, "/ports")
        .iter()
        .map(|port| match (field(port, "/port"), str_at(port, "/name")) {
            (Some(number), _) => number.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".into(),
        })
        .collect();
    let addresses: Vec<String> = items(slice, "/endpoints")
        .iter()
        .flat_map(|endpoint| items(endpoint, "/addresses"))
        .map(|address| address.as_str().unwrap_or_default().to_string())
        .collect();
    vec![
        name(slice),
        json!(text(slice, "/addressType")),
        json!(or(&abbreviate(&ports, 3, ","), "<unset>")),
        json!(or(&abbreviate(&addresses, 3, ","), "<unset>")),
        created(slice, now),
    ]
}

/// The first three non-empty rule hosts; ` + {n} more...` when a rule follows them.
fn ingress_hosts(rules: &[Value]) -> String {
    let mut hosts = vec![];
    for rule in rules {
        if hosts.len() == 3 {
            return format!("{} + {} more...", hosts.join(","), rules.len() - 3);
        }
        let host = text(rule, "/host");
        if !host.is_empty() {
            hosts.push(host);
        }
    }
    or(&hosts.join(","), "*")
}

fn ingress_cells(ingress: &Value, now: SystemTime) -> Vec<Value> {
    let class = field(ingress, "/spec/ingressClassName").and_then(Value::as_str).unwrap_or("<none>");
    let ports = if items(ingress, "/spec/tls").is_empty() { "80" } else { "80, 443" };
    vec![
        name(ingress),
        json!(class),
        json!(ingress_hosts(items(ingress, "/spec/rules"))),
        json!(load_balancer_addresses(items(ingress, "/status/loadBalancer/ingress")).join(",")),
        json!(ports),
        created(ingress, now),
    ]
}

fn node_cells(node: &Value, now: SystemTime) -> Vec<Value> {
    let ready = items(node, "/status/conditions").iter().rev().find(|c| c["type"] == "Ready");
    let mut status = match ready {
        Some(condition) if condition["status"] == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }
    .to_string();
    if flag(node, "/spec/unschedulable") {
        status.push_str(",SchedulingDisabled");
    }
    let labels = node.pointer("/metadata/labels").and_then(Value::as_object).into_iter().flatten();
    let roles: BTreeSet<&str> = labels
        .filter_map(|(key, value)| match key.strip_prefix("node-role.kubernetes.io/") {
            Some(role) => Some(role),
            None => value.as_str().filter(|_| key == "kubernetes.io/role"),
        })
        .filter(|role| !role.is_empty())
        .collect();
    let address = |kind: &str| {
        let addresses = items(node, "/status/addresses");
        or(addresses.iter().find(|a| a["type"] == kind).map_or("", |a| text(a, "/address")), "<none>")
    };
    let info = |key: &str| or(text(node, &format!("/status/nodeInfo/{key}")), "<unknown>");
    vec![
        name(node),
        json!(status),
        json!(or(&roles.into_iter().collect::<Vec<_>>().join(","), "<none>")),
        created(node, now),
        json!(text(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn namespace_cells(namespace: &Value, now: SystemTime) -> Vec<Value> {
    vec![name(namespace), json!(text(namespace, "/status/phase")), created(namespace, now)]
}

fn config_map_cells(config_map: &Value, now: SystemTime) -> Vec<Value> {
    let count = map_len(config_map, "/data") + map_len(config_map, "/binaryData");
    vec![name(config_map), json!(count), created(config_map, now)]
}

fn secret_cells(secret: &Value, now: SystemTime) -> Vec<Value> {
    // stringData never reaches the store: writes merge it into data.
    vec![name(secret), json!(text(secret, "/type")), json!(map_len(secret, "/data")), created(secret, now)]
}

fn service_account_cells(account: &Value, now: SystemTime) -> Vec<Value> {
    vec![name(account), json!(items(account, "/secrets").len()), created(account, now)]
}

fn event_cells(event: &Value, now: SystemTime) -> Vec<Value> {
    let first = age(str_at(event, "/firstTimestamp").or(str_at(event, "/eventTime")), now);
    let mut last = str_at(event, "/lastTimestamp").map_or_else(|| first.clone(), |at| age(Some(at), now));
    let count = match field(event, "/series") {
        Some(series) => {
            last = since(series, "/lastObservedTime", now);
            int(series, "/count")
        }
        // Singleton events of the newer API have no count.
        None => match int(event, "/count") {
            0 => 1,
            count => count,
        },
    };
    let kind = text(event, "/involvedObject/kind").to_lowercase();
    let object = match text(event, "/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    // core/v1 spells the internal ReportingController `reportingComponent`.
    let component = or_str(text(event, "/source/component"), text(event, "/reportingComponent"));
    let source = match or_str(text(event, "/source/host"), text(event, "/reportingInstance")) {
        "" => component.to_string(),
        instance => format!("{component}, {instance}"),
    };
    vec![
        json!(last),
        json!(text(event, "/type")),
        json!(text(event, "/reason")),
        json!(object),
        json!(text(event, "/involvedObject/fieldPath")),
        json!(source),
        json!(text(event, "/message").trim()),
        json!(first),
        json!(count),
        name(event),
    ]
}

/// The volume's or claim's class: the beta annotation when present, else `spec.storageClassName`.
fn storage_class_of(object: &Value) -> String {
    annotation(object, "volume.beta.kubernetes.io/storage-class")
        .unwrap_or(text(object, "/spec/storageClassName"))
        .into()
}

/// The phase, or `Terminating` while being deleted.
fn volume_phase(object: &Value) -> &str {
    if deleting(object) {
        "Terminating"
    } else {
        text(object, "/status/phase")
    }
}

fn unset_or(object: &Value, pointer: &str) -> String {
    str_at(object, pointer).unwrap_or("<unset>").into()
}

fn persistent_volume_cells(volume: &Value, now: SystemTime) -> Vec<Value> {
    let claim = field(volume, "/spec/claimRef")
        .map_or_else(String::new, |claim| format!("{}/{}", text(claim, "/namespace"), text(claim, "/name")));
    vec![
        name(volume),
        json!(quantity(field(volume, "/spec/capacity/storage"))),
        json!(access_modes(items(volume, "/spec/accessModes"))),
        json!(text(volume, "/spec/persistentVolumeReclaimPolicy")),
        json!(volume_phase(volume)),
        json!(claim),
        json!(storage_class_of(volume)),
        json!(unset_or(volume, "/spec/volumeAttributesClassName")),
        json!(text(volume, "/status/reason")),
        created(volume, now),
        json!(unset_or(volume, "/spec/volumeMode")),
    ]
}

fn persistent_volume_claim_cells(claim: &Value, now: SystemTime) -> Vec<Value> {
    let volume = text(claim, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (quantity(field(claim, "/status/capacity/storage")), access_modes(items(claim, "/status/accessModes")))
    };
    vec![
        name(claim),
        json!(volume_phase(claim)),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(storage_class_of(claim)),
        json!(unset_or(claim, "/spec/volumeAttributesClassName")),
        created(claim, now),
        json!(unset_or(claim, "/spec/volumeMode")),
    ]
}

fn storage_class_cells(class: &Value, now: SystemTime) -> Vec<Value> {
    let default = ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
        .iter()
        .any(|key| annotation(class, key) == Some("true"));
    let name = meta_str(class, "name").unwrap_or_default();
    vec![
        json!(if default { format!("{name} (default)") } else { name.to_string() }),
        json!(text(class, "/provisioner")),
        json!(or(text(class, "/reclaimPolicy"), "Delete")),
        json!(or(text(class, "/volumeBindingMode"), "Immediate")),
        json!(flag(class, "/allowVolumeExpansion")),
        created(class, now),
    ]
}

/// `resource: used/hard` for each quota'd resource by name, `limits.*` ones in the Limit column.
fn resource_quota_cells(quota: &Value, now: SystemTime) -> Vec<Value> {
    let mut hard: Vec<(&String, &Value)> =
        field(quota, "/spec/hard").and_then(Value::as_object).into_iter().flatten().collect();
    hard.sort_by_key(|(resource, _)| *resource);
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for (resource, limit) in hard {
        let used = quota.get("status").and_then(|s| s.get("used")).and_then(|u| u.get(resource.as_str()));
        let entry = format!("{resource}: {}/{}", quantity(used), quantity(Some(limit)));
        match resource.split_once('.') {
            Some(("limits", _)) => limits.push(entry),
            _ => requests.push(entry),
        }
    }
    vec![name(quota), created(quota, now), json!(requests.join(", ")), json!(limits.join(", "))]
}

fn pod_template_cells(template: &Value, _now: SystemTime) -> Vec<Value> {
    let [containers, images] = template_cells(field(template, "/template"));
    vec![name(template), containers, images, json!(format_labels(field(template, "/template/metadata/labels")))]
}

/// The controller as `kind.group/name` in lower case (`daemonset.apps/fluentd`), `<none>` without one.
fn controller_revision_cells(revision: &Value, now: SystemTime) -> Vec<Value> {
    let owners = items(revision, "/metadata/ownerReferences");
    let controller = owners.iter().find(|owner| owner["controller"] == true).map_or("<none>".to_string(), |owner| {
        let group = text(owner, "/apiVersion").rsplit_once('/').map_or("", |(group, _)| group);
        let kind = text(owner, "/kind");
        let kind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        format!("{}/{}", kind.to_lowercase(), text(owner, "/name"))
    });
    vec![name(revision), json!(controller), json!(int(revision, "/revision")), created(revision, now)]
}

/// Parameters as `Kind.group/name`, `<none>` without them.
fn ingress_class_cells(class: &Value, now: SystemTime) -> Vec<Value> {
    let parameters = field(class, "/spec/parameters").map_or("<none>".to_string(), |parameters| {
        let kind = match str_at(parameters, "/apiGroup") {
            Some(group) => format!("{}.{group}", text(parameters, "/kind")),
            None => text(parameters, "/kind").to_string(),
        };
        format!("{kind}/{}", text(parameters, "/name"))
    });
    vec![name(class), json!(text(class, "/spec/controller")), json!(parameters), created(class, now)]
}

fn lease_cells(lease: &Value, now: SystemTime) -> Vec<Value> {
    vec![name(lease), json!(text(lease, "/spec/holderIdentity")), created(lease, now)]
}

fn priority_class_cells(class: &Value, now: SystemTime) -> Vec<Value> {
    vec![
        name(class),
        json!(int(class, "/value")),
        json!(flag(class, "/globalDefault")),
        created(class, now),
        json!(text(class, "/preemptionPolicy")),
    ]
}

fn role_binding_cells(binding: &Value, now: SystemTime) -> Vec<Value> {
    let subjects = items(binding, "/subjects");
    // Users and Groups by name, ServiceAccounts as namespace/name.
    let names = |kind: &str| {
        let of_kind = subjects.iter().filter(|subject| subject["kind"] == kind);
        let rendered = of_kind.map(|subject| match kind {
            "ServiceAccount" => format!("{}/{}", text(subject, "/namespace"), text(subject, "/name")),
            _ => text(subject, "/name").to_string(),
        });
        json!(rendered.collect::<Vec<_>>().join(", "))
    };
    vec![
        name(binding),
        json!(format!("{}/{}", text(binding, "/roleRef/kind"), text(binding, "/roleRef/name"))),
        created(binding, now),
        names("User"),
        names("Group"),
        names("ServiceAccount"),
    ]
}

/// The metric specs and current statuses of an HPA; an autoscaling/v1-shaped object's CPU target becomes the
/// Resource metric it converts to.
fn autoscaler_metrics(autoscaler: &Value) -> (Vec<Value>, Vec<Value>) {
    let Some(target) = field(autoscaler, "/spec/targetCPUUtilizationPercentage")
        .filter(|_| field(autoscaler, "/spec/metrics").is_none())
    else {
        return (items(autoscaler, "/spec/metrics").to_vec(), items(autoscaler, "/status/currentMetrics").to_vec());
    };
    let metric = |key: &str, value: &Value| {
        let mut resource = json!({"name": "cpu"});
        resource[key] = json!({"averageUtilization": value});
        json!({"type": "Resource", "resource": resource})
    };
    let current = field(autoscaler, "/status/currentCPUUtilizationPercentage");
    (vec![metric("target", target)], current.map(|current| metric("current", current)).into_iter().collect())
}

/// One HPA metric as `cpu: 45%/80%`, `{current}/{target}` or `{current}/{target} (avg)`; the status is paired by
/// index.
fn autoscaler_metric(spec: &Value, status: Option<&Value>) -> String {
    let kind = text(spec, "/type");
    let key = match kind {
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "Pods" => "pods",
        "Object" => "object",
        "External" => "external",
        _ => return "<unknown type>".into(),
    };
    let source = &spec[key];
    let target = &source["target"];
    let current = status.and_then(|status| field(status, &format!("/{key}/current")));
    let value = |object: Option<&Value>, pointer| {
        object.and_then(|object| field(object, pointer)).map_or_else(|| "<unknown>".into(), |v| quantity(Some(v)))
    };
    // `{current}/{target}` of one field.
    let pair = |pointer| format!("{}/{}", value(current, pointer), value(Some(target), pointer));
    let average = field(target, "/averageValue").is_some();
    match kind {
        "Resource" | "ContainerResource" if average => format!("{}: {}", text(source, "/name"), pair("/averageValue")),
        "Resource" | "ContainerResource" => {
            let percent = |object: Option<&Value>, placeholder: &str| {
                let utilization = object.and_then(|object| field(object, "/averageUtilization"));
                utilization.map_or_else(|| placeholder.to_string(), |u| format!("{u}%"))
            };
            format!("{}: {}/{}", text(source, "/name"), percent(current, "<unknown>"), percent(Some(target), "<auto>"))
        }
        "Pods" => pair("/averageValue"),
        _ if average => format!("{} (avg)", pair("/averageValue")),
        _ => pair("/value"),
    }
}

fn horizontal_pod_autoscaler_cells(autoscaler: &Value, now: SystemTime) -> Vec<Value> {
    let (specs, statuses) = autoscaler_metrics(autoscaler);
    let targets: Vec<String> =
        specs.iter().enumerate().map(|(i, spec)| autoscaler_metric(spec, statuses.get(i))).collect();
    let min_pods = field(autoscaler, "/spec/minReplicas").map_or_else(|| "<unset>".into(), Value::to_string);
    let reference =
        format!("{}/{}", text(autoscaler, "/spec/scaleTargetRef/kind"), text(autoscaler, "/spec/scaleTargetRef/name"));
    vec![
        name(autoscaler),
        json!(reference),
        json!(or(&abbreviate(&targets, 2, ", "), "<none>")),
        json!(min_pods),
        json!(int(autoscaler, "/spec/maxReplicas")),
        json!(int(autoscaler, "/status/currentReplicas")),
        created(autoscaler, now),
    ]
}

fn pod_disruption_budget_cells(budget: &Value, now: SystemTime) -> Vec<Value> {
    let bound = |pointer| int_or_string(field(budget, pointer)).unwrap_or_else(|| "N/A".into());
    vec![
        name(budget),
        json!(bound("/spec/minAvailable")),
        json!(bound("/spec/maxUnavailable")),
        json!(int(budget, "/status/disruptionsAllowed")),
        created(budget, now),
    ]
}

fn network_policy_cells(policy: &Value, now: SystemTime) -> Vec<Value> {
    vec![name(policy), json!(format_label_selector(field(policy, "/spec/podSelector"))), created(policy, now)]
}

fn certificate_signing_request_cells(request: &Value, now: SystemTime) -> Vec<Value> {
    let conditions = items(request, "/status/conditions");
    let has = |kind: &str| conditions.iter().any(|c| c["type"] == kind);
    let mut condition = match () {
        _ if has("Denied") => "Denied",
        _ if has("Approved") => "Approved",
        _ => "Pending",
    }
    .to_string();
    if has("Failed") {
        condition.push_str(",Failed");
    }
    if !text(request, "/status/certificate").is_empty() {
        condition.push_str(",Issued");
    }
    let duration = field(request, "/spec/expirationSeconds").and_then(Value::as_i64);
    vec![
        name(request),
        created(request, now),
        json!(or(text(request, "/spec/signerName"), "<none>")),
        json!(text(request, "/spec/username")),
        json!(duration.map_or_else(|| "<none>".into(), human_duration)),
        json!(condition),
    ]
}

/// The default convertor: the name and the creation time in RFC 3339 UTC, not humanized.
fn default_cells(object: &Value, _now: SystemTime) -> Vec<Value> {
    let created = meta_str(object, "creationTimestamp");
    let created_at = match created.and_then(parse_timestamp) {
        Some(seconds) if seconds >= 0 => timestamp(UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())),
        Some(_) => created.unwrap_or_default().to_string(),
        None => "0001-01-01T00:00:00Z".into(),
    };
    vec![name(object), json!(created_at)]
}

// ---------------------------------------------------------------------------------------------------------------
// The Table.

/// Pods that ran to completion carry a `Completed` row condition.
fn row_conditions(resource: &Resource, object: &Value) -> Option<Value> {
    if (resource.group, resource.name) != ("", "pods") {
        return None;
    }
    let (reason, message) = match text(object, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

/// The object a row embeds, borrowed from the listed object: a list of 10,000 rows copies no metadata.
enum RowObject<'a> {
    None,
    Whole(&'a Value),
    Metadata(Option<&'a Value>),
}

impl serde::Serialize for RowObject<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            RowObject::None => serializer.serialize_none(),
            RowObject::Whole(object) => object.serialize(serializer),
            RowObject::Metadata(metadata) => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("apiVersion", "meta.k8s.io/v1")?;
                map.serialize_entry("kind", "PartialObjectMetadata")?;
                match metadata {
                    Some(metadata) => map.serialize_entry("metadata", metadata)?,
                    None => map.serialize_entry("metadata", &serde_json::Map::new())?,
                }
                map.end()
            }
        }
    }
}

/// One row, its fields in the order a JSON object of them prints.
#[derive(serde::Serialize)]
struct Row<'a> {
    cells: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conditions: Option<Value>,
    #[serde(skip_serializing_if = "RowObject::is_none")]
    object: RowObject<'a>,
}

impl RowObject<'_> {
    fn is_none(&self) -> bool {
        matches!(self, RowObject::None | RowObject::Whole(Value::Null))
    }
}

fn row<'a>(resource: &Resource, cells: Cells, object: &'a Value, now: SystemTime, include: IncludeObject) -> Row<'a> {
    let embedded = match include {
        IncludeObject::None => RowObject::None,
        IncludeObject::Object => RowObject::Whole(object),
        IncludeObject::Metadata => RowObject::Metadata(object.get("metadata")),
    };
    Row { cells: cells(object, now), conditions: row_conditions(resource, object), object: embedded }
}

/// A Table of `objects`, with the list's metadata (resourceVersion, continue, remainingItemCount), written as
/// JSON row by row.
pub fn table_json<V: std::borrow::Borrow<Value>>(
    resource: &Resource,
    objects: &[V],
    list_metadata: &Value,
    include: IncludeObject,
) -> Vec<u8> {
    const WRITES: &str = "writing JSON to a Vec cannot fail";
    let now = SystemTime::now();
    let (columns, cells) = printer(resource);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(br#"{"apiVersion":"meta.k8s.io/v1","columnDefinitions":"#);
    serde_json::to_writer(&mut out, &definitions).expect(WRITES);
    out.extend_from_slice(br#","kind":"Table","metadata":"#);
    serde_json::to_writer(&mut out, list_metadata).expect(WRITES);
    out.extend_from_slice(br#","rows":["#);
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &row(resource, cells, object.borrow(), now, include)).expect(WRITES);
    }
    out.extend_from_slice(b"]}");
    out
}

/// [`table_json`] as a value.
#[cfg(test)]
fn table<V: std::borrow::Borrow<Value>>(
    resource: &Resource,
    objects: &[V],
    list_metadata: Value,
    include: IncludeObject,
) -> Value {
    serde_json::from_slice(&table_json(resource, objects, &list_metadata, include)).expect("tables are JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::registry::{self, GROUPS};

    /// 2023-11-14T22:13:20Z.
    const NOW_SECONDS: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_SECONDS)
    }

    /// The timestamp `seconds` before [`now`].
    fn ago(seconds: u64) -> String {
        timestamp(now() - Duration::from_secs(seconds))
    }

    fn resource(group: &str, name: &str) -> &'static Resource {
        let versions = GROUPS.iter().filter(|g| g.name == group).flat_map(|g| g.versions.iter());
        versions.filter_map(|version| registry::find(group, version, name)).next().expect("a served resource")
    }

    fn cells(group: &str, name: &str, object: &Value) -> Vec<Value> {
        (printer(resource(group, name)).1)(object, now())
    }

    /// Asserts the column names and priorities, and that every row has one cell per column.
    fn assert_columns(group: &str, name: &str, expected: &[(&str, u8)]) {
        let table = table(resource(group, name), &[json!({})], json!({}), IncludeObject::None);
        let actual: Vec<(&str, u8)> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["priority"].as_u64().unwrap() as u8))
            .collect();
        assert_eq!(actual, expected, "{group}/{name}");
        assert_eq!(table["rows"][0]["cells"].as_array().unwrap().len(), expected.len());
    }

    fn column_types(group: &str, name: &str) -> Vec<String> {
        let table = table::<Value>(resource(group, name), &[], json!({}), IncludeObject::None);
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap().into()).collect()
    }

    fn metadata(name: &str, created_ago: u64) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": ago(created_ago)})
    }

    #[test]
    fn configmap_rows_count_data_and_carry_metadata() {
        let configmaps = registry::find("", "v1", "configmaps").unwrap();
        let object = json!({
            "metadata": {"name": "cfg", "namespace": "default", "labels": {"app": "x"},
                         "creationTimestamp": "2020-01-01T00:00:00Z"},
            "data": {"a": "1", "b": "2"},
            "binaryData": {"c": "AA=="},
        });
        let table = table(configmaps, &[object], json!({"resourceVersion": "7"}), IncludeObject::Metadata);
        let names: Vec<&str> =
            table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Name", "Data", "Age"]);
        assert_eq!(table["metadata"]["resourceVersion"], "7");
        assert_eq!(table["rows"][0]["cells"][0], "cfg");
        assert_eq!(table["rows"][0]["cells"][1], 3);
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(table["rows"][0]["object"]["metadata"]["labels"]["app"], "x");
        assert_eq!(table["columnDefinitions"][0]["format"], "name");
        assert_eq!(table["columnDefinitions"][1]["format"], "");
    }

    #[test]
    fn every_resource_has_one_cell_per_column() {
        for group in GROUPS {
            for version in group.versions {
                for resource in registry::resources_in(group.name, version) {
                    let (columns, cells) = printer(resource);
                    for object in [json!({}), json!({"metadata": metadata("x", 5), "spec": {}, "status": {}})] {
                        assert_eq!(cells(&object, now()).len(), columns.len(), "{}/{}", group.name, resource.name);
                    }
                }
            }
        }
    }

    #[test]
    fn resources_without_a_printer_show_name_and_created_at() {
        for (group, name) in [("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "clusterroles")] {
            assert_columns(group, name, &[("Name", 0), ("Created At", 0)]);
            assert_eq!(column_types(group, name), ["string", "date"]);
        }
        let role = json!({"metadata": {"name": "reader", "creationTimestamp": "2024-09-17T13:57:54+02:00"}});
        assert_eq!(
            json!(cells("rbac.authorization.k8s.io", "roles", &role)),
            json!(["reader", "2024-09-17T11:57:54Z"])
        );
        assert_eq!(cells("", "limitranges", &json!({"metadata": {"name": "l"}}))[1], "0001-01-01T00:00:00Z");
    }

    #[test]
    fn pod_columns() {
        assert_columns(
            "",
            "pods",
            &[
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1),
            ],
        );
        assert!(column_types("", "pods").iter().all(|t| t == "string"));
    }

    #[test]
    fn running_pod_shows_ready_restarts_and_wide_cells() {
        let pod = json!({
            "metadata": metadata("web-1", 5 * 3600),
            "spec": {
                "nodeName": "node-a",
                "containers": [{"name": "app"}, {"name": "log"}],
                "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}],
            },
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.5",
                "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
                "nominatedNodeName": "node-b",
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "example.com/lb", "status": "True"},
                    {"type": "example.com/dns", "status": "False"},
                ],
                "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 2, "state": {"running": {"startedAt": ago(300)}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(302)}}},
                    {"name": "log", "ready": true, "restartCount": 1, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 137, "finishedAt": ago(4000)}}},
                ],
            },
        });
        assert_eq!(
            json!(cells("", "pods", &pod)),
            json!(["web-1", "2/2", "Running", "3 (5m2s ago)", "5h", "10.0.0.5", "node-a", "node-b", "1/2"])
        );
    }

    #[test]
    fn pending_pod_has_placeholders() {
        let pod = json!({
            "metadata": metadata("new", 30),
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Pending"},
        });
        assert_eq!(
            json!(cells("", "pods", &pod)),
            json!(["new", "0/1", "Pending", "0", "30s", "<none>", "<none>", "<none>", "<none>"])
        );
    }

    /// Status and Ready of a pod with these containers and init containers.
    fn pod_status(spec: Value, status: Value) -> (String, String) {
        let pod = json!({"metadata": metadata("p", 60), "spec": spec, "status": status});
        let cells = cells("", "pods", &pod);
        (cells[2].as_str().unwrap().into(), cells[1].as_str().unwrap().into())
    }

    fn status_of(spec: Value, status: Value) -> String {
        pod_status(spec, status).0
    }

    #[test]
    fn pod_status_from_container_states() {
        let one = json!({"containers": [{"name": "app"}]});
        let waiting = json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(40)}}}]});
        assert_eq!(status_of(one.clone(), waiting.clone()), "CrashLoopBackOff");
        assert_eq!(cells("", "pods", &json!({"spec": one, "status": waiting}))[3], "4 (40s ago)");

        let completed = json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]});
        assert_eq!(pod_status(one.clone(), completed), ("Completed".into(), "0/1".into()));

        let oom = json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]});
        assert_eq!(status_of(one.clone(), oom), "OOMKilled");

        let signal = json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "state": {"terminated": {"exitCode": 143, "signal": 15}}}]});
        assert_eq!(status_of(one.clone(), signal), "Signal:15");

        let exit = json!({"phase": "Failed", "containerStatuses": [
            {"name": "app", "state": {"terminated": {"exitCode": 2}}}]});
        assert_eq!(status_of(one.clone(), exit), "ExitCode:2");

        let creating = json!({"phase": "Pending", "containerStatuses": [
            {"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}]});
        assert_eq!(status_of(one.clone(), creating), "ContainerCreating");

        let evicted = json!({"phase": "Failed", "reason": "Evicted"});
        assert_eq!(status_of(one, evicted), "Evicted");
    }

    #[test]
    fn the_first_container_decides_and_completed_with_a_running_one_is_running_or_not_ready() {
        let two = json!({"containers": [{"name": "a"}, {"name": "b"}]});
        let statuses = json!([
            {"name": "a", "ready": true, "state": {"running": {}}},
            {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        ]);
        let ready = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                           "containerStatuses": statuses});
        assert_eq!(pod_status(two.clone(), ready), ("Running".into(), "1/2".into()));
        let not_ready = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                               "containerStatuses": statuses});
        assert_eq!(status_of(two.clone(), not_ready), "NotReady");

        let both = json!({"phase": "Running", "containerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}},
            {"name": "b", "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
        ]});
        assert_eq!(status_of(two, both), "ImagePullBackOff");
    }

    #[test]
    fn pod_status_while_initializing() {
        let spec = json!({"initContainers": [{"name": "init"}], "containers": [{"name": "app"}]});
        let init = |state: Value| {
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "init", "state": state}],
                   "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]})
        };
        assert_eq!(pod_status(spec.clone(), init(json!({"running": {}}))), ("Init:0/1".into(), "0/1".into()));
        assert_eq!(status_of(spec.clone(), init(json!({"waiting": {"reason": "PodInitializing"}}))), "Init:0/1");
        assert_eq!(
            status_of(spec.clone(), init(json!({"waiting": {"reason": "CrashLoopBackOff"}}))),
            "Init:CrashLoopBackOff"
        );
        assert_eq!(
            status_of(spec.clone(), init(json!({"terminated": {"exitCode": 1, "reason": "Error"}}))),
            "Init:Error"
        );
        assert_eq!(status_of(spec.clone(), init(json!({"terminated": {"exitCode": 3}}))), "Init:ExitCode:3");
        assert_eq!(
            status_of(spec.clone(), init(json!({"terminated": {"exitCode": 137, "signal": 9}}))),
            "Init:Signal:9"
        );
        // Once the init container succeeded, the app container decides.
        assert_eq!(
            status_of(spec.clone(), init(json!({"terminated": {"exitCode": 0, "reason": "Completed"}}))),
            "PodInitializing"
        );

        // The second of two init containers.
        let two = json!({"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "app"}]});
        let status = json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "a", "state": {"terminated": {"exitCode": 0}}},
            {"name": "b", "state": {"running": {}}},
        ]});
        assert_eq!(status_of(two, status), "Init:1/2");
    }

    #[test]
    fn sidecars_count_toward_ready_and_restarts() {
        let spec = json!({
            "initContainers": [{"name": "proxy", "restartPolicy": "Always"}, {"name": "migrate"}],
            "containers": [{"name": "app"}],
        });
        let status = json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [
                {"name": "proxy", "started": true, "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "migrate", "restartCount": 1, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            ],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 1, "state": {"running": {}}}],
        });
        let pod = json!({"metadata": metadata("p", 60), "spec": spec, "status": status});
        let cells = cells("", "pods", &pod);
        // The proxy's 2 restarts and the app's 1; the finished init container's restart no longer counts.
        assert_eq!(json!(cells[1..4]), json!(["2/2", "Running", "3"]));
    }

    #[test]
    fn deleted_pods_are_terminating_or_unknown() {
        let running = json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": true, "state": {"running": {}}}]});
        let pod = |status: &Value| {
            let mut metadata = metadata("p", 60);
            metadata["deletionTimestamp"] = json!(ago(0));
            json!({"metadata": metadata, "spec": {"containers": [{"name": "app"}]}, "status": status})
        };
        assert_eq!(cells("", "pods", &pod(&running))[2], "Terminating");
        let mut lost = running.clone();
        lost["reason"] = json!("NodeLost");
        assert_eq!(cells("", "pods", &pod(&lost))[2], "Unknown");
        let done = json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]});
        assert_eq!(cells("", "pods", &pod(&done))[2], "Completed");
        // Without a deletionTimestamp, NodeLost shows as such.
        assert_eq!(
            status_of(json!({"containers": [{"name": "app"}]}), json!({"phase": "Running", "reason": "NodeLost"})),
            "NodeLost"
        );
    }

    #[test]
    fn scheduling_gated_pods() {
        let status = json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]});
        assert_eq!(status_of(json!({"containers": [{"name": "app"}]}), status), "SchedulingGated");
    }

    #[test]
    fn finished_pods_carry_a_completed_row_condition() {
        let pods = resource("", "pods");
        let succeeded = json!({"metadata": metadata("a", 5), "status": {"phase": "Succeeded"}});
        let failed = json!({"metadata": metadata("b", 5), "status": {"phase": "Failed"}});
        let running = json!({"metadata": metadata("c", 5), "status": {"phase": "Running"}});
        let table = table(pods, &[succeeded, failed, running], json!({}), IncludeObject::None);
        assert_eq!(
            table["rows"][0]["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}])
        );
        assert_eq!(table["rows"][1]["conditions"][0]["reason"], "Failed");
        assert_eq!(table["rows"][1]["conditions"][0]["message"], "The pod failed.");
        assert!(table["rows"][2].get("conditions").is_none());
        assert!(table["rows"][2].get("object").is_none());
    }

    fn pod_template(containers: &[(&str, &str)]) -> Value {
        let containers: Vec<Value> =
            containers.iter().map(|(name, image)| json!({"name": name, "image": image})).collect();
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
    }

    #[test]
    fn deployment_cells() {
        assert_columns(
            "apps",
            "deployments",
            &[
                ("Name", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ],
        );
        let deployment = json!({
            "metadata": metadata("web", 3 * 86_400 + 7200),
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web", "tier": "front"}, "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "canary"]},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ]},
                "template": pod_template(&[("nginx", "nginx:1.27"), ("sidecar", "busybox")]),
            },
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 1, "availableReplicas": 2},
        });
        assert_eq!(
            json!(cells("apps", "deployments", &deployment)),
            json!([
                "web",
                "2/3",
                1,
                2,
                "3d2h",
                "nginx,sidecar",
                "nginx:1.27,busybox",
                "app=web,env in (canary,prod),!legacy,tier=front"
            ])
        );
        // A fresh deployment: nothing ready, and no `<none>` for an empty selector.
        let fresh = json!({"metadata": metadata("new", 10), "spec": {"replicas": 2, "selector": {}}});
        assert_eq!(json!(cells("apps", "deployments", &fresh)[1..4]), json!(["0/2", 0, 0]));
        assert_eq!(cells("apps", "deployments", &fresh)[7], "");
        let invalid = json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}});
        assert_eq!(cells("apps", "deployments", &invalid)[7], "<invalid>");
    }

    #[test]
    fn replica_set_and_controller_cells() {
        let expected = [
            ("Name", 0),
            ("Desired", 0),
            ("Current", 0),
            ("Ready", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1),
        ];
        assert_columns("apps", "replicasets", &expected);
        assert_columns("", "replicationcontrollers", &expected);
        assert_eq!(column_types("apps", "replicasets")[1..4], ["integer", "integer", "integer"]);
        let set = json!({
            "metadata": metadata("web-5d9c", 600),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d9c"}},
                     "template": pod_template(&[("nginx", "nginx")])},
            "status": {"replicas": 3, "readyReplicas": 1},
        });
        assert_eq!(
            json!(cells("apps", "replicasets", &set)),
            json!(["web-5d9c", 3, 3, 1, "10m", "nginx", "nginx", "app=web,pod-template-hash=5d9c"])
        );
        let controller =
            json!({"metadata": metadata("rc", 60), "spec": {"replicas": 0, "selector": {"b": "2", "a": "1"}}});
        assert_eq!(
            json!(cells("", "replicationcontrollers", &controller)),
            json!(["rc", 0, 0, 0, "60s", "", "", "a=1,b=2"])
        );
        assert_eq!(cells("", "replicationcontrollers", &json!({}))[7], "<none>");
        assert_eq!(cells("apps", "replicasets", &json!({}))[7], "<none>");
    }

    #[test]
    fn stateful_and_daemon_set_cells() {
        assert_columns(
            "apps",
            "statefulsets",
            &[("Name", 0), ("Ready", 0), ("Age", 0), ("Containers", 1), ("Images", 1)],
        );
        let set = json!({"metadata": metadata("db", 90),
                         "spec": {"replicas": 3, "template": pod_template(&[("pg", "postgres:16")])},
                         "status": {"readyReplicas": 3}});
        assert_eq!(json!(cells("apps", "statefulsets", &set)), json!(["db", "3/3", "90s", "pg", "postgres:16"]));

        assert_columns(
            "apps",
            "daemonsets",
            &[
                ("Name", 0),
                ("Desired", 0),
                ("Current", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Node Selector", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ],
        );
        let mut template = pod_template(&[("agent", "k8rs/agent")]);
        template["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        let daemons = json!({
            "metadata": metadata("agent", 86_400),
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                       "updatedNumberScheduled": 3, "numberAvailable": 2},
        });
        assert_eq!(
            json!(cells("apps", "daemonsets", &daemons)),
            json!(["agent", 3, 3, 2, 3, 2, "kubernetes.io/os=linux", "24h", "agent", "k8rs/agent", "app=agent"])
        );
    }

    #[test]
    fn job_cells() {
        assert_columns(
            "batch",
            "jobs",
            &[
                ("Name", 0),
                ("Status", 0),
                ("Completions", 0),
                ("Duration", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ],
        );
        let complete = json!({
            "metadata": metadata("pi", 3600),
            "spec": {"completions": 1, "parallelism": 1,
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                     "template": pod_template(&[("pi", "perl:5.34")])},
            "status": {"succeeded": 1, "startTime": ago(3600), "completionTime": ago(3600 - 125),
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                      {"type": "Complete", "status": "True"}]},
        });
        assert_eq!(
            json!(cells("batch", "jobs", &complete)),
            json!([
                "pi",
                "Complete",
                "1/1",
                "2m5s",
                "60m",
                "pi",
                "perl:5.34",
                "batch.kubernetes.io/controller-uid=abc"
            ])
        );
        let running = json!({"spec": {"parallelism": 3}, "status": {"succeeded": 2, "startTime": ago(45)}});
        assert_eq!(json!(cells("batch", "jobs", &running)[1..4]), json!(["Running", "2/1 of 3", "45s"]));
        let queued = json!({"spec": {"completions": 5, "suspend": true},
                            "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(json!(cells("batch", "jobs", &queued)[1..4]), json!(["Suspended", "0/5", ""]));
        let failed = json!({"status": {"conditions": [{"type": "FailureTarget", "status": "True"},
                                                      {"type": "Failed", "status": "True"}]}});
        assert_eq!(json!(cells("batch", "jobs", &failed)[1..3]), json!(["Failed", "0/1"]));
        let failing = json!({"status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}});
        assert_eq!(cells("batch", "jobs", &failing)[1], "FailureTarget");
        let deleted = json!({"metadata": {"deletionTimestamp": ago(1)},
                             "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(cells("batch", "jobs", &deleted)[1], "Terminating");
        let not_complete = json!({"status": {"conditions": [{"type": "Complete", "status": "False"}]}});
        assert_eq!(cells("batch", "jobs", &not_complete)[1], "Running");
    }

    #[test]
    fn cron_job_cells() {
        assert_columns(
            "batch",
            "cronjobs",
            &[
                ("Name", 0),
                ("Schedule", 0),
                ("Timezone", 0),
                ("Suspend", 0),
                ("Active", 0),
                ("Last Schedule", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ],
        );
        assert_eq!(column_types("batch", "cronjobs")[3..5], ["boolean", "integer"]);
        let job = json!({
            "metadata": metadata("backup", 10 * 86_400),
            "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "suspend": false,
                     "jobTemplate": {"spec": {"template": pod_template(&[("backup", "restic")])}}},
            "status": {"active": [{"name": "backup-1"}], "lastScheduleTime": ago(200)},
        });
        assert_eq!(
            json!(cells("batch", "cronjobs", &job)),
            json!(["backup", "*/5 * * * *", "Etc/UTC", "False", 1, "3m20s", "10d", "backup", "restic", "<none>"])
        );
        let never = json!({"spec": {"schedule": "@daily", "suspend": true}});
        assert_eq!(json!(cells("batch", "cronjobs", &never)[2..6]), json!(["<none>", "True", 0, "<none>"]));
        assert_eq!(cells("batch", "cronjobs", &json!({"spec": {}}))[3], "<unset>");
    }

    #[test]
    fn service_cells() {
        assert_columns(
            "",
            "services",
            &[
                ("Name", 0),
                ("Type", 0),
                ("Cluster-IP", 0),
                ("External-IP", 0),
                ("Port(s)", 0),
                ("Age", 0),
                ("Selector", 1),
            ],
        );
        let service =
            |spec: Value, status: Value| json!({"metadata": metadata("web", 120), "spec": spec, "status": status});
        let cluster_ip = service(
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                   "selector": {"app": "web", "tier": "a"},
                   "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}),
            json!({}),
        );
        assert_eq!(
            json!(cells("", "services", &cluster_ip)),
            json!(["web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP,53/UDP", "2m", "app=web,tier=a"])
        );
        let node_port = service(
            json!({"type": "NodePort", "clusterIPs": ["10.96.1.1"], "externalIPs": ["192.0.2.1", "192.0.2.2"],
                   "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 443, "nodePort": 30443}]}),
            json!({}),
        );
        assert_eq!(
            json!(cells("", "services", &node_port)[2..5]),
            json!(["10.96.1.1", "192.0.2.1,192.0.2.2", "80:30080/TCP,443:30443/TCP"])
        );
        let pending =
            service(json!({"type": "LoadBalancer", "clusterIPs": ["10.96.2.2"]}), json!({"loadBalancer": {}}));
        assert_eq!(json!(cells("", "services", &pending)[3..5]), json!(["<pending>", "<none>"]));
        let balanced = service(
            json!({"type": "LoadBalancer"}),
            json!({"loadBalancer": {"ingress": [
                {"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.1"}]}}),
        );
        assert_eq!(cells("", "services", &balanced)[3], "203.0.113.1,203.0.113.9,lb.example.com");
        let both = service(
            json!({"type": "LoadBalancer", "externalIPs": ["192.0.2.7"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}),
        );
        assert_eq!(cells("", "services", &both)[3], "203.0.113.9,192.0.2.7");
        let headless = service(json!({"clusterIP": "None", "clusterIPs": ["None"], "selector": {}}), json!({}));
        assert_eq!(json!(cells("", "services", &headless)[1..4]), json!(["ClusterIP", "None", "<none>"]));
        assert_eq!(cells("", "services", &headless)[6], "<none>");
        let external = service(json!({"type": "ExternalName", "externalName": "db.example.com"}), json!({}));
        assert_eq!(json!(cells("", "services", &external)[1..4]), json!(["ExternalName", "<none>", "db.example.com"]));
        assert_eq!(cells("", "services", &service(json!({"type": "Weird"}), json!({})))[3], "<unknown>");
    }

    #[test]
    fn endpoints_and_endpoint_slices() {
        assert_columns("", "endpoints", &[("Name", 0), ("Endpoints", 0), ("Age", 0)]);
        let endpoints = |subsets: Value| json!({"metadata": metadata("web", 5), "subsets": subsets});
        let many = endpoints(json!([
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "notReadyAddresses": [{"ip": "10.0.0.9"}],
             "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
        ]));
        assert_eq!(cells("", "endpoints", &many)[1], "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...");
        let v6 = endpoints(
            json!([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]}, {"addresses": [{"ip": "10.0.0.3"}]}]),
        );
        assert_eq!(cells("", "endpoints", &v6)[1], "[fd00::1]:8080,10.0.0.3");
        assert_eq!(cells("", "endpoints", &endpoints(json!([])))[1], "<none>");
        let not_ready = endpoints(json!([{"notReadyAddresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}]));
        assert_eq!(cells("", "endpoints", &not_ready)[1], "");

        assert_columns(
            "discovery.k8s.io",
            "endpointslices",
            &[("Name", 0), ("AddressType", 0), ("Ports", 0), ("Endpoints", 0), ("Age", 0)],
        );
        let slice = json!({
            "metadata": metadata("web-abc12", 5),
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "metrics"}, {}, {"port": 9000}],
            "endpoints": [
                {"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}, {"addresses": ["10.0.0.4"]},
            ],
        });
        assert_eq!(
            json!(cells("discovery.k8s.io", "endpointslices", &slice)),
            json!(["web-abc12", "IPv4", "80,metrics,* + 1 more...", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "5s"])
        );
        let empty = json!({"addressType": "IPv6", "ports": [], "endpoints": []});
        assert_eq!(json!(cells("discovery.k8s.io", "endpointslices", &empty)[2..4]), json!(["<unset>", "<unset>"]));
    }

    #[test]
    fn ingress_cells() {
        assert_columns(
            "networking.k8s.io",
            "ingresses",
            &[("Name", 0), ("Class", 0), ("Hosts", 0), ("Address", 0), ("Ports", 0), ("Age", 0)],
        );
        let ingress = json!({
            "metadata": metadata("web", 60),
            "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                     "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"}, {"host": "c.example.com"},
                               {"host": "d.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}},
        });
        assert_eq!(
            json!(cells("networking.k8s.io", "ingresses", &ingress)),
            json!([
                "web",
                "nginx",
                "a.example.com,b.example.com,c.example.com + 2 more...",
                "203.0.113.5",
                "80, 443",
                "60s"
            ])
        );
        let bare = json!({"spec": {"rules": [{"http": {}}]}});
        assert_eq!(json!(cells("networking.k8s.io", "ingresses", &bare)[1..5]), json!(["<none>", "*", "", "80"]));
    }

    #[test]
    fn node_cells() {
        assert_columns(
            "",
            "nodes",
            &[
                ("Name", 0),
                ("Status", 0),
                ("Roles", 0),
                ("Age", 0),
                ("Version", 0),
                ("Internal-IP", 1),
                ("External-IP", 1),
                ("OS-Image", 1),
                ("Kernel-Version", 1),
                ("Container-Runtime", 1),
            ],
        );
        let node = json!({
            "metadata": {"name": "cp-1", "creationTimestamp": ago(40 * 86_400), "labels": {
                "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "true",
                "node-role.kubernetes.io/": "x", "kubernetes.io/role": "master", "kubernetes.io/os": "linux"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "cp-1"},
                              {"type": "InternalIP", "address": "192.168.1.10"},
                              {"type": "InternalIP", "address": "fd00::10"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0-k8rs", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": ""},
            },
        });
        assert_eq!(
            json!(cells("", "nodes", &node)),
            json!([
                "cp-1",
                "Ready,SchedulingDisabled",
                "control-plane,etcd,master",
                "40d",
                "v1.32.0-k8rs",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-18-amd64",
                "<unknown>"
            ])
        );
        let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(json!(cells("", "nodes", &not_ready)[1..3]), json!(["NotReady", "<none>"]));
        let unknown = json!({"spec": {"unschedulable": true}});
        assert_eq!(cells("", "nodes", &unknown)[1], "Unknown,SchedulingDisabled");
    }

    #[test]
    fn event_cells() {
        let expected = [
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1),
        ];
        assert_columns("", "events", &expected);
        assert_columns("events.k8s.io", "events", &expected);
        let table = table::<Value>(resource("", "events"), &[], json!({}), IncludeObject::None);
        assert_eq!(table["columnDefinitions"][9]["format"], "name");
        assert_eq!(table["columnDefinitions"][0]["format"], "");

        let event = json!({
            "metadata": metadata("web-1.17a", 600),
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "type": "Warning", "message": "  Back-off restarting failed container\n",
            "source": {"component": "kubelet", "host": "node-a"},
            "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 7,
        });
        assert_eq!(
            json!(cells("", "events", &event)),
            json!([
                "30s",
                "Warning",
                "BackOff",
                "pod/web-1",
                "spec.containers{app}",
                "kubelet, node-a",
                "Back-off restarting failed container",
                "10m",
                7,
                "web-1.17a"
            ])
        );
        // The newer shape: eventTime, reporting fields, a series, and no count.
        let new = json!({
            "metadata": metadata("lease.1", 60),
            "involvedObject": {"kind": "Lease"},
            "reason": "LeaderElection", "type": "Normal", "message": "k8rs became leader",
            "eventTime": "2023-11-14T22:03:20.123456Z", "reportingComponent": "k8rs-controller-manager",
            "series": {"count": 4, "lastObservedTime": ago(90)},
        });
        assert_eq!(
            json!(cells("", "events", &new)[..9]),
            json!([
                "90s",
                "Normal",
                "LeaderElection",
                "lease",
                "",
                "k8rs-controller-manager",
                "k8rs became leader",
                "10m",
                4
            ])
        );
        let singleton = json!({"eventTime": ago(5), "reportingComponent": "c", "reportingInstance": "c-1"});
        assert_eq!(
            cells("", "events", &singleton)[..9].iter().map(Value::to_string).collect::<Vec<_>>().join(" "),
            r#""5s" "" "" "" "" "c, c-1" "" "5s" 1"#
        );
        assert_eq!(cells("", "events", &json!({}))[0], "<unknown>");

        // events.k8s.io/v1 prints the same columns from its own field names.
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "metadata": metadata("web-1.17b", 300),
            "regarding": {"kind": "Deployment", "name": "web"},
            "reason": "ScalingReplicaSet", "type": "Normal", "note": "Scaled up replica set web-5d9c to 3",
            "eventTime": ago(300), "reportingController": "deployment-controller", "reportingInstance": "cm-1",
            "deprecatedCount": 2, "deprecatedLastTimestamp": ago(100),
        });
        assert_eq!(
            json!(cells("events.k8s.io", "events", &v1)),
            json!([
                "100s",
                "Normal",
                "ScalingReplicaSet",
                "deployment/web",
                "",
                "deployment-controller, cm-1",
                "Scaled up replica set web-5d9c to 3",
                "5m",
                2,
                "web-1.17b"
            ])
        );
    }

    #[test]
    fn persistent_volume_cells() {
        assert_columns(
            "",
            "persistentvolumes",
            &[
                ("Name", 0),
                ("Capacity", 0),
                ("Access Modes", 0),
                ("Reclaim Policy", 0),
                ("Status", 0),
                ("Claim", 0),
                ("StorageClass", 0),
                ("VolumeAttributesClass", 0),
                ("Reason", 0),
                ("Age", 0),
                ("VolumeMode", 1),
            ],
        );
        let volume = json!({
            "metadata": {"name": "pv-1", "creationTimestamp": ago(7200)},
            "spec": {"capacity": {"storage": "10240Mi"},
                     "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast", "volumeMode": "Filesystem",
                     "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "data"}},
            "status": {"phase": "Bound"},
        });
        assert_eq!(
            json!(cells("", "persistentvolumes", &volume)),
            json!([
                "pv-1",
                "10Gi",
                "RWO,RWX",
                "Retain",
                "Bound",
                "default/data",
                "fast",
                "<unset>",
                "",
                "120m",
                "Filesystem"
            ])
        );
        let released = json!({
            "metadata": {"name": "pv-2", "deletionTimestamp": ago(1),
                         "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}},
            "spec": {"storageClassName": "fast", "volumeAttributesClassName": "gold"},
            "status": {"phase": "Failed", "reason": "VolumeFailedRecycle"},
        });
        assert_eq!(
            json!(cells("", "persistentvolumes", &released)[1..9]),
            json!(["0", "", "", "Terminating", "", "legacy", "gold", "VolumeFailedRecycle"])
        );
    }

    #[test]
    fn persistent_volume_claim_cells() {
        assert_columns(
            "",
            "persistentvolumeclaims",
            &[
                ("Name", 0),
                ("Status", 0),
                ("Volume", 0),
                ("Capacity", 0),
                ("Access Modes", 0),
                ("StorageClass", 0),
                ("VolumeAttributesClass", 0),
                ("Age", 0),
                ("VolumeMode", 1),
            ],
        );
        let bound = json!({
            "metadata": metadata("data", 300),
            "spec": {"volumeName": "pv-1", "storageClassName": "fast", "volumeMode": "Block",
                     "resources": {"requests": {"storage": "5Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"},
                       "accessModes": ["ReadWriteOncePod", "ReadOnlyMany"]},
        });
        assert_eq!(
            json!(cells("", "persistentvolumeclaims", &bound)),
            json!(["data", "Bound", "pv-1", "10Gi", "ROX,RWOP", "fast", "<unset>", "5m", "Block"])
        );
        // Capacity and access modes only show once bound.
        let pending = json!({
            "metadata": metadata("logs", 5),
            "spec": {"resources": {"requests": {"storage": "1Gi"}}, "accessModes": ["ReadWriteOnce"]},
            "status": {"phase": "Pending", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}},
        });
        assert_eq!(
            json!(cells("", "persistentvolumeclaims", &pending)),
            json!(["logs", "Pending", "", "", "", "", "<unset>", "5s", "<unset>"])
        );
    }

    #[test]
    fn quotas_pod_templates_controller_revisions_and_ingress_classes() {
        assert_columns("", "resourcequotas", &[("Name", 0), ("Age", 0), ("Request", 0), ("Limit", 0)]);
        let quota = json!({
            "metadata": metadata("compute", 60),
            "spec": {"hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "2Gi", "limits.cpu": "4",
                              "requests.memory": "1024Mi"}},
            "status": {"used": {"pods": "3", "requests.cpu": "500m", "limits.cpu": "1"}},
        });
        assert_eq!(
            json!(cells("", "resourcequotas", &quota)),
            json!([
                "compute",
                "60s",
                "pods: 3/10, requests.cpu: 500m/2, requests.memory: 0/1Gi",
                "limits.cpu: 1/4, limits.memory: 0/2Gi"
            ])
        );

        assert_columns("", "podtemplates", &[("Name", 0), ("Containers", 0), ("Images", 0), ("Pod Labels", 0)]);
        let template =
            json!({"metadata": metadata("batch", 5), "template": pod_template(&[("a", "busybox"), ("b", "nginx")])});
        let row = cells("", "podtemplates", &template);
        assert_eq!(json!(row[..3]), json!(["batch", "a,b", "busybox,nginx"]));
        assert_eq!(row[3], json!(format_labels(template["template"]["metadata"].get("labels"))));
        let bare = json!({"metadata": metadata("bare", 5), "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}});
        assert_eq!(json!(cells("", "podtemplates", &bare)), json!(["bare", "c", "i", "<none>"]));

        assert_columns("apps", "controllerrevisions", &[("Name", 0), ("Controller", 0), ("Revision", 0), ("Age", 0)]);
        let owned = json!({"metadata": {"name": "fluentd-7d9", "creationTimestamp": ago(90), "ownerReferences": [
                              {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "fluentd", "uid": "u", "controller": true}]},
                           "revision": 3});
        assert_eq!(
            json!(cells("apps", "controllerrevisions", &owned)),
            json!(["fluentd-7d9", "daemonset.apps/fluentd", 3, "90s"])
        );
        let orphan = json!({"metadata": metadata("orphan", 90), "revision": 1});
        assert_eq!(json!(cells("apps", "controllerrevisions", &orphan)[1]), json!("<none>"));

        assert_columns(
            "networking.k8s.io",
            "ingressclasses",
            &[("Name", 0), ("Controller", 0), ("Parameters", 0), ("Age", 0)],
        );
        let class = json!({"metadata": metadata("nginx", 30), "spec": {"controller": "k8s.io/ingress-nginx",
                           "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external"}}});
        assert_eq!(
            json!(cells("networking.k8s.io", "ingressclasses", &class)),
            json!(["nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/external", "30s"])
        );
        let plain = json!({"metadata": metadata("k8rs", 30), "spec": {"controller": "k8rs.io/ingress"}});
        assert_eq!(json!(cells("networking.k8s.io", "ingressclasses", &plain)[2]), json!("<none>"));
    }

    #[test]
    fn storage_classes_leases_and_priority_classes() {
        assert_columns(
            "storage.k8s.io",
            "storageclasses",
            &[
                ("Name", 0),
                ("Provisioner", 0),
                ("ReclaimPolicy", 0),
                ("VolumeBindingMode", 0),
                ("AllowVolumeExpansion", 0),
                ("Age", 0),
            ],
        );
        let class = json!({
            "metadata": {"name": "standard", "creationTimestamp": ago(60),
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer",
        });
        assert_eq!(
            json!(cells("storage.k8s.io", "storageclasses", &class)),
            json!(["standard (default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", false, "60s"])
        );
        let beta = json!({"metadata": {"name": "old",
                                       "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}},
                          "reclaimPolicy": "Retain", "allowVolumeExpansion": true});
        assert_eq!(
            json!(cells("storage.k8s.io", "storageclasses", &beta)[..5]),
            json!(["old (default)", "", "Retain", "Immediate", true])
        );

        assert_columns("coordination.k8s.io", "leases", &[("Name", 0), ("Holder", 0), ("Age", 0)]);
        let lease = json!({"metadata": metadata("kube-scheduler", 30), "spec": {"holderIdentity": "cp-1_1234"}});
        assert_eq!(
            json!(cells("coordination.k8s.io", "leases", &lease)),
            json!(["kube-scheduler", "cp-1_1234", "30s"])
        );

        assert_columns(
            "scheduling.k8s.io",
            "priorityclasses",
            &[("Name", 0), ("Value", 0), ("Global-Default", 0), ("Age", 0), ("PreemptionPolicy", 0)],
        );
        assert_eq!(
            column_types("scheduling.k8s.io", "priorityclasses"),
            ["string", "integer", "boolean", "string", "string"]
        );
        let priority = json!({"metadata": metadata("system-node-critical", 60), "value": 2_000_001_000,
                              "preemptionPolicy": "PreemptLowerPriority"});
        assert_eq!(
            json!(cells("scheduling.k8s.io", "priorityclasses", &priority)),
            json!(["system-node-critical", 2_000_001_000, false, "60s", "PreemptLowerPriority"])
        );
    }

    #[test]
    fn role_binding_cells() {
        let expected = [("Name", 0), ("Role", 0), ("Age", 0), ("Users", 1), ("Groups", 1), ("ServiceAccounts", 1)];
        assert_columns("rbac.authorization.k8s.io", "rolebindings", &expected);
        assert_columns("rbac.authorization.k8s.io", "clusterrolebindings", &expected);
        let binding = json!({
            "metadata": metadata("admins", 60),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [
                {"kind": "User", "name": "alice"}, {"kind": "Group", "name": "ops"}, {"kind": "User", "name": "bob"},
                {"kind": "ServiceAccount", "namespace": "kube-system", "name": "deployer"},
            ],
        });
        assert_eq!(
            json!(cells("rbac.authorization.k8s.io", "clusterrolebindings", &binding)),
            json!(["admins", "ClusterRole/admin", "60s", "alice, bob", "ops", "kube-system/deployer"])
        );
    }

    #[test]
    fn horizontal_pod_autoscaler_cells() {
        let expected = [
            ("Name", 0),
            ("Reference", 0),
            ("Targets", 0),
            ("MinPods", 0),
            ("MaxPods", 0),
            ("Replicas", 0),
            ("Age", 0),
        ];
        assert_columns("autoscaling", "horizontalpodautoscalers", &expected);
        let metric = |kind: &str, key: &str, source: Value| {
            let mut metric = json!({"type": kind});
            metric[key] = source;
            metric
        };
        let hpa = |metrics: Vec<Value>, current: Vec<Value>| {
            json!({
                "metadata": metadata("web", 600),
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                         "minReplicas": 2, "maxReplicas": 10, "metrics": metrics},
                "status": {"currentReplicas": 3, "currentMetrics": current},
            })
        };
        let cpu = metric(
            "Resource",
            "resource",
            json!({"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}),
        );
        let cpu_now = metric(
            "Resource",
            "resource",
            json!({"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "90m"}}),
        );
        assert_eq!(
            json!(cells("autoscaling", "horizontalpodautoscalers", &hpa(vec![cpu.clone()], vec![cpu_now.clone()]))),
            json!(["web", "Deployment/web", "cpu: 45%/80%", "2", 10, 3, "10m"])
        );
        let targets = |metrics: Vec<Value>, current: Vec<Value>| {
            cells("autoscaling", "horizontalpodautoscalers", &hpa(metrics, current))[2].as_str().unwrap().to_string()
        };
        assert_eq!(targets(vec![cpu.clone()], vec![]), "cpu: <unknown>/80%");
        let memory = metric(
            "Resource",
            "resource",
            json!({"name": "memory", "target": {"type": "AverageValue", "averageValue": "512Mi"}}),
        );
        let memory_now =
            metric("Resource", "resource", json!({"name": "memory", "current": {"averageValue": "300Mi"}}));
        let auto = metric(
            "ContainerResource",
            "containerResource",
            json!({"name": "cpu", "container": "app", "target": {"type": "Utilization"}}),
        );
        let pods = metric(
            "Pods",
            "pods",
            json!({"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}),
        );
        let pods_now = metric("Pods", "pods", json!({"metric": {"name": "rps"}, "current": {"averageValue": "1500m"}}));
        assert_eq!(
            targets(vec![memory, auto.clone(), pods.clone()], vec![memory_now, json!({}), pods_now.clone()]),
            "memory: 300Mi/512Mi, cpu: <unknown>/<auto> + 1 more..."
        );
        assert_eq!(targets(vec![pods, auto], vec![pods_now]), "1500m/1k, cpu: <unknown>/<auto>");
        let object = metric("Object", "object", json!({"target": {"type": "Value", "value": "10"}}));
        let object_now = metric("Object", "object", json!({"current": {"value": "7"}}));
        let external =
            metric("External", "external", json!({"target": {"type": "AverageValue", "averageValue": "30"}}));
        let external_now = metric("External", "external", json!({"current": {"averageValue": "12"}}));
        assert_eq!(targets(vec![object, external], vec![object_now, external_now]), "7/10, 12/30 (avg)");
        assert_eq!(targets(vec![json!({"type": "Mystery"})], vec![]), "<unknown type>");
        assert_eq!(targets(vec![], vec![]), "<none>");

        // An autoscaling/v1-shaped object, and no minReplicas.
        let v1 = json!({
            "metadata": metadata("api", 60),
            "spec": {"scaleTargetRef": {"kind": "StatefulSet", "name": "api"}, "maxReplicas": 4,
                     "targetCPUUtilizationPercentage": 50},
            "status": {"currentReplicas": 1, "currentCPUUtilizationPercentage": 12},
        });
        assert_eq!(
            json!(cells("autoscaling", "horizontalpodautoscalers", &v1)),
            json!(["api", "StatefulSet/api", "cpu: 12%/50%", "<unset>", 4, 1, "60s"])
        );
    }

    #[test]
    fn disruption_budgets_network_policies_and_signing_requests() {
        assert_columns(
            "policy",
            "poddisruptionbudgets",
            &[("Name", 0), ("Min Available", 0), ("Max Unavailable", 0), ("Allowed Disruptions", 0), ("Age", 0)],
        );
        let budget =
            json!({"metadata": metadata("web", 60), "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(json!(cells("policy", "poddisruptionbudgets", &budget)), json!(["web", "2", "N/A", 1, "60s"]));
        let percent = json!({"spec": {"maxUnavailable": "25%"}});
        assert_eq!(json!(cells("policy", "poddisruptionbudgets", &percent)[1..4]), json!(["N/A", "25%", 0]));

        assert_columns("networking.k8s.io", "networkpolicies", &[("Name", 0), ("Pod-Selector", 0), ("Age", 0)]);
        let deny = json!({"metadata": metadata("deny-all", 60), "spec": {"podSelector": {}}});
        assert_eq!(json!(cells("networking.k8s.io", "networkpolicies", &deny)), json!(["deny-all", "<none>", "60s"]));
        let web = json!({"spec": {"podSelector": {"matchExpressions": [
            {"key": "app", "operator": "NotIn", "values": ["b", "a", "b"]},
            {"key": "tier", "operator": "Exists"}]}}});
        assert_eq!(cells("networking.k8s.io", "networkpolicies", &web)[1], "app notin (a,b),tier");
        let bad = json!({"spec": {"podSelector": {"matchExpressions": [
            {"key": "tier", "operator": "Exists", "values": ["x"]}]}}});
        assert_eq!(cells("networking.k8s.io", "networkpolicies", &bad)[1], "<error>");

        assert_columns(
            "certificates.k8s.io",
            "certificatesigningrequests",
            &[("Name", 0), ("Age", 0), ("SignerName", 0), ("Requestor", 0), ("RequestedDuration", 0), ("Condition", 0)],
        );
        let csr = json!({
            "metadata": {"name": "csr-abc", "creationTimestamp": ago(120)},
            "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet", "username": "system:node:node-a",
                     "expirationSeconds": 86_400},
            "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0tLS1CRUdJTi..."},
        });
        assert_eq!(
            json!(cells("certificates.k8s.io", "certificatesigningrequests", &csr)),
            json!([
                "csr-abc",
                "2m",
                "kubernetes.io/kube-apiserver-client-kubelet",
                "system:node:node-a",
                "24h",
                "Approved,Issued"
            ])
        );
        let csr_condition = |conditions: Value| {
            let request = json!({"status": {"conditions": conditions}});
            cells("certificates.k8s.io", "certificatesigningrequests", &request)[5].as_str().unwrap().to_string()
        };
        assert_eq!(csr_condition(json!([])), "Pending");
        assert_eq!(
            csr_condition(json!([{"type": "Approved"}, {"type": "Denied", "status": "False"}, {"type": "Failed"}])),
            "Denied,Failed"
        );
        let unsigned = json!({"spec": {"username": "bob"}});
        assert_eq!(
            json!(cells("certificates.k8s.io", "certificatesigningrequests", &unsigned)[2..5]),
            json!(["<none>", "bob", "<none>"])
        );
    }

    #[test]
    fn secrets_and_service_accounts() {
        assert_columns("", "secrets", &[("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)]);
        let secret = json!({"metadata": metadata("tls", 60), "type": "kubernetes.io/tls",
                            "data": {"tls.crt": "", "tls.key": "", "ca.crt": ""}});
        assert_eq!(json!(cells("", "secrets", &secret)), json!(["tls", "kubernetes.io/tls", 3, "60s"]));
        assert_columns("", "serviceaccounts", &[("Name", 0), ("Secrets", 0), ("Age", 0)]);
        let account = json!({"metadata": metadata("default", 60), "secrets": [{"name": "token"}]});
        assert_eq!(json!(cells("", "serviceaccounts", &account)), json!(["default", 1, "60s"]));
        assert_columns("", "namespaces", &[("Name", 0), ("Status", 0), ("Age", 0)]);
        let namespace =
            json!({"metadata": {"name": "dev", "creationTimestamp": ago(60)}, "status": {"phase": "Terminating"}});
        assert_eq!(json!(cells("", "namespaces", &namespace)), json!(["dev", "Terminating", "60s"]));
    }

    #[test]
    fn ages_follow_human_duration() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 300, "3h5m"),
            (8 * 3600 + 59, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (8 * 86_400, "8d"),
            (729 * 86_400, "729d"),
            (730 * 86_400, "2y"),
            (745 * 86_400, "2y15d"),
            (8 * 365 * 86_400, "8y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(seconds), expected, "{seconds}");
        }
        assert_eq!(age(Some(&timestamp(now() + Duration::from_secs(10))), now()), "<invalid>");
        assert_eq!(age(None, now()), "<unknown>");
    }

    #[test]
    fn quantities_print_canonically() {
        let cases = [
            ("10Gi", "10Gi"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Ki", "512"),
            ("1536", "1536"),
            ("1000M", "1G"),
            ("1500M", "1500M"),
            ("1.5G", "1500M"),
            ("0.5", "500m"),
            ("100m", "100m"),
            ("1e4", "10e3"),
            ("1E3", "1e3"),
            ("2k", "2k"),
            ("0", "0"),
            ("0Gi", "0"),
            ("0.1n", "1n"),
            ("-1.5", "-1500m"),
            ("not a quantity", "not a quantity"),
        ];
        for (text, expected) in cases {
            assert_eq!(quantity(Some(&json!(text))), expected, "{text}");
        }
        assert_eq!(quantity(Some(&json!(3))), "3");
        assert_eq!(quantity(None), "0");
    }
}
