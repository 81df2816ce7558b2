//! The static registry of built-in resources: every group, version, resource and subresource that
//! k8rs serves, with the metadata discovery reports for each (verbs, short names, categories,
//! storage version hash), the field selectors each kind accepts and deprecation warnings.
//!
//! The data is transcribed from upstream kube-apiserver v1.33 discovery (legacy and aggregated),
//! its storage-version-hash table and the field-label conversions of each kind.

/// One subresource, e.g. `pods/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// `"status"`, `"scale"`, `"log"`, `"exec"`, ...
    pub name: &'static str,
    /// Group of the response kind, always filled in (`""` for core). Discovery blanks group and
    /// version when they equal the parent's GV.
    pub group: &'static str,
    /// Version of the response kind.
    pub version: &'static str,
    /// Response kind, e.g. `"Scale"`, `"Pod"`, `"Eviction"`.
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// One resource in one group version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural resource name, e.g. `"deployments"`.
    pub name: &'static str,
    /// Singular name, e.g. `"deployment"`. Quirk: the singular of `endpoints` is `"endpoints"`.
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// In the order create, delete, deletecollection, get, list, patch, update, watch.
    pub verbs: &'static [&'static str],
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Sorted by name.
    pub subresources: &'static [Subresource],
    pub storage_version_hash: Option<&'static str>,
    /// Field selector labels accepted for this kind.
    pub field_selectors: &'static [&'static str],
    /// The `Warning` header text sent with every request if the resource is deprecated.
    pub deprecation: Option<&'static str>,
}

/// One API group and the versions it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// `""` for core.
    pub name: &'static str,
    /// Preferred version first.
    pub versions: &'static [&'static str],
}

impl Resource {
    /// `"v1"` for the core group, `"apps/v1"` otherwise.
    pub fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        let subresources: &'static [Subresource] = self.subresources;
        subresources.iter().find(|s| s.name == name)
    }
}

/// The resource with this plural name in this group version.
pub fn find(group: &str, version: &str, name: &str) -> Option<&'static Resource> {
    index().by_name.get(&(group, version, name)).copied()
}

/// The resource serving this kind in this group version.
pub fn find_kind(group: &str, version: &str, kind: &str) -> Option<&'static Resource> {
    index().by_kind.get(&(group, version, kind)).copied()
}

type Triple = (&'static str, &'static str, &'static str);

/// Lookups by (group, version, name or kind): every request finds its resource, a create several.
struct Index {
    by_name: std::collections::HashMap<Triple, &'static Resource>,
    by_kind: std::collections::HashMap<Triple, &'static Resource>,
}

fn index() -> &'static Index {
    static INDEX: std::sync::OnceLock<Index> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index = Index { by_name: Default::default(), by_kind: Default::default() };
        // Where two entries share a key, the first one in RESOURCES answers.
        for resource in RESOURCES.iter() {
            index.by_name.entry((resource.group, resource.version, resource.name)).or_insert(resource);
            index.by_kind.entry((resource.group, resource.version, resource.kind)).or_insert(resource);
        }
        index
    })
}

/// The resources of one group version, sorted by name.
pub fn resources_in(group: &str, version: &str) -> impl Iterator<Item = &'static Resource> {
    let mut resources: Vec<&'static Resource> =
        RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    resources.sort_by_key(|r| r.name);
    resources.into_iter()
}

/// Core first, then the named groups.
pub static GROUPS: &[Group] = &[
    group("", &["v1"]),
    group("apiregistration.k8s.io", &["v1"]),
    group("apps", &["v1"]),
    group("events.k8s.io", &["v1"]),
    group("authentication.k8s.io", &["v1"]),
    group("authorization.k8s.io", &["v1"]),
    group("autoscaling", &["v2", "v1"]),
    group("batch", &["v1"]),
    group("certificates.k8s.io", &["v1"]),
    group("networking.k8s.io", &["v1"]),
    group("policy", &["v1"]),
    group("rbac.authorization.k8s.io", &["v1"]),
    group("storage.k8s.io", &["v1"]),
    group("admissionregistration.k8s.io", &["v1"]),
    group("apiextensions.k8s.io", &["v1"]),
    group("scheduling.k8s.io", &["v1"]),
    group("coordination.k8s.io", &["v1"]),
    group("node.k8s.io", &["v1"]),
    group("discovery.k8s.io", &["v1"]),
    group("flowcontrol.apiserver.k8s.io", &["v1"]),
];

const fn group(name: &'static str, versions: &'static [&'static str]) -> Group {
    Group { name, versions }
}

// Verb sets.
const ALL: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
/// Status, scale, approval, ephemeralcontainers and resize subresources.
const ST: &[&str] = &["get", "patch", "update"];
/// Proxy subresources.
const PX: &[&str] = &["create", "delete", "get", "patch", "update"];
const C: &[&str] = &["create"];

// Scopes.
const NAMESPACED: bool = true;
const CLUSTER: bool = false;

// Group versions.
type GroupVersion = (&'static str, &'static str);
const CORE: GroupVersion = ("", "v1");
const APPS: GroupVersion = ("apps", "v1");
const BATCH: GroupVersion = ("batch", "v1");
const NETWORKING: GroupVersion = ("networking.k8s.io", "v1");
const DISCOVERY: GroupVersion = ("discovery.k8s.io", "v1");
const COORDINATION: GroupVersion = ("coordination.k8s.io", "v1");
const EVENTS: GroupVersion = ("events.k8s.io", "v1");
const RBAC: GroupVersion = ("rbac.authorization.k8s.io", "v1");
const STORAGE: GroupVersion = ("storage.k8s.io", "v1");
const POLICY: GroupVersion = ("policy", "v1");
const AUTOSCALING_V2: GroupVersion = ("autoscaling", "v2");
const AUTOSCALING_V1: GroupVersion = ("autoscaling", "v1");
const SCHEDULING: GroupVersion = ("scheduling.k8s.io", "v1");
const CERTIFICATES: GroupVersion = ("certificates.k8s.io", "v1");
const AUTHENTICATION: GroupVersion = ("authentication.k8s.io", "v1");
const AUTHORIZATION: GroupVersion = ("authorization.k8s.io", "v1");
const APIEXTENSIONS: GroupVersion = ("apiextensions.k8s.io", "v1");
const ADMISSIONREGISTRATION: GroupVersion = ("admissionregistration.k8s.io", "v1");
const NODE: GroupVersion = ("node.k8s.io", "v1");
const FLOWCONTROL: GroupVersion = ("flowcontrol.apiserver.k8s.io", "v1");
const APIREGISTRATION: GroupVersion = ("apiregistration.k8s.io", "v1");

// Categories.
const CAT_ALL: &[&str] = &["all"];
const CAT_API_EXTENSIONS: &[&str] = &["api-extensions"];

// Field selectors.
const DEFAULT_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];
const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];
const NODE_FIELDS: &[&str] = &["metadata.name", "spec.unschedulable"];
const NAMESPACE_FIELDS: &[&str] = &["metadata.name", "status.phase"];
const SECRET_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "type"];
const SERVICE_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"];
const REPLICATION_CONTROLLER_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.replicas"];
const CORE_EVENT_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];
const EVENTS_EVENT_FIELDS: &[&str] = &[
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reportingController",
    "reason",
    "type",
    "source",
    "metadata.name",
    "metadata.namespace",
];
const JOB_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.successful"];
const CSR_FIELDS: &[&str] = &["metadata.name", "spec.signerName"];

/// A resource with no short names, categories or subresources, the default field selectors and
/// no deprecation; the table below overrides the rest with struct update syntax.
const fn resource(
    (group, version): GroupVersion,
    name: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
    storage_version_hash: Option<&'static str>,
) -> Resource {
    Resource {
        group,
        version,
        name,
        singular,
        kind,
        namespaced,
        verbs,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage_version_hash,
        field_selectors: DEFAULT_FIELDS,
        deprecation: None,
    }
}

const fn sub(
    name: &'static str,
    (group, version): GroupVersion,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> Subresource {
    Subresource { name, group, version, kind, verbs }
}

/// The `status` subresource, which responds with the parent kind.
const fn status(gv: GroupVersion, kind: &'static str) -> Subresource {
    sub("status", gv, kind, ST)
}

const SCALE: Subresource = sub("scale", AUTOSCALING_V1, "Scale", ST);

/// Every built-in resource, grouped as in [`GROUPS`] and sorted by name within a group version.
pub static RESOURCES: &[Resource] = &[
    // Core, v1.
    resource(CORE, "bindings", "binding", "Binding", NAMESPACED, C, None),
    Resource {
        short_names: &["cs"],
        deprecation: Some("v1 ComponentStatus is deprecated in v1.19+"),
        ..resource(CORE, "componentstatuses", "componentstatus", "ComponentStatus", CLUSTER, &["get", "list"], None)
    },
    Resource {
        short_names: &["cm"],
        ..resource(CORE, "configmaps", "configmap", "ConfigMap", NAMESPACED, ALL, Some("qFsyl6wFWjQ="))
    },
    Resource {
        short_names: &["ep"],
        deprecation: Some("v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"),
        ..resource(CORE, "endpoints", "endpoints", "Endpoints", NAMESPACED, ALL, Some("fWeeMqaN/OA="))
    },
    Resource {
        short_names: &["ev"],
        field_selectors: CORE_EVENT_FIELDS,
        ..resource(CORE, "events", "event", "Event", NAMESPACED, ALL, Some("r2yiGXH7wu8="))
    },
    Resource {
        short_names: &["limits"],
        ..resource(CORE, "limitranges", "limitrange", "LimitRange", NAMESPACED, ALL, Some("EBKMFVe6cwo="))
    },
    Resource {
        short_names: &["ns"],
        subresources: &[sub("finalize", CORE, "Namespace", &["update"]), status(CORE, "Namespace")],
        field_selectors: NAMESPACE_FIELDS,
        ..resource(
            CORE,
            "namespaces",
            "namespace",
            "Namespace",
            CLUSTER,
            &["create", "delete", "get", "list", "patch", "update", "watch"],
            Some("Q3oi5N2YM8M="),
        )
    },
    Resource {
        short_names: &["no"],
        subresources: &[sub("proxy", CORE, "NodeProxyOptions", PX), status(CORE, "Node")],
        field_selectors: NODE_FIELDS,
        ..resource(CORE, "nodes", "node", "Node", CLUSTER, ALL, Some("XwShjMxG9Fs="))
    },
    Resource {
        short_names: &["pvc"],
        subresources: &[status(CORE, "PersistentVolumeClaim")],
        ..resource(
            CORE,
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            "PersistentVolumeClaim",
            NAMESPACED,
            ALL,
            Some("QWTyNDq0dC4="),
        )
    },
    Resource {
        short_names: &["pv"],
        subresources: &[status(CORE, "PersistentVolume")],
        ..resource(
            CORE,
            "persistentvolumes",
            "persistentvolume",
            "PersistentVolume",
            CLUSTER,
            ALL,
            Some("HN/zwEC+JgM="),
        )
    },
    Resource {
        short_names: &["po"],
        categories: CAT_ALL,
        subresources: &[
            sub("attach", CORE, "PodAttachOptions", &["create", "get"]),
            sub("binding", CORE, "Binding", C),
            sub("ephemeralcontainers", CORE, "Pod", ST),
            sub("eviction", POLICY, "Eviction", C),
            sub("exec", CORE, "PodExecOptions", &["create", "get"]),
            sub("log", CORE, "Pod", &["get"]),
            sub("portforward", CORE, "PodPortForwardOptions", &["create", "get"]),
            sub("proxy", CORE, "PodProxyOptions", PX),
            // Served while the InPlacePodVerticalScaling gate is on: beta and on by default in 1.33.
            sub("resize", CORE, "Pod", ST),
            status(CORE, "Pod"),
        ],
        field_selectors: POD_FIELDS,
        ..resource(CORE, "pods", "pod", "Pod", NAMESPACED, ALL, Some("xPOwRZ+Yhw8="))
    },
    resource(CORE, "podtemplates", "podtemplate", "PodTemplate", NAMESPACED, ALL, Some("LIXB2x4IFpk=")),
    Resource {
        short_names: &["rc"],
        categories: CAT_ALL,
        subresources: &[SCALE, status(CORE, "ReplicationController")],
        field_selectors: REPLICATION_CONTROLLER_FIELDS,
        ..resource(
            CORE,
            "replicationcontrollers",
            "replicationcontroller",
            "ReplicationController",
            NAMESPACED,
            ALL,
            Some("Jond2If31h0="),
        )
    },
    Resource {
        short_names: &["quota"],
        subresources: &[status(CORE, "ResourceQuota")],
        ..resource(CORE, "resourcequotas", "resourcequota", "ResourceQuota", NAMESPACED, ALL, Some("8uhSgffRX6w="))
    },
    Resource {
        field_selectors: SECRET_FIELDS,
        ..resource(CORE, "secrets", "secret", "Secret", NAMESPACED, ALL, Some("S6u1pOWzb84="))
    },
    Resource {
        short_names: &["sa"],
        subresources: &[sub("token", AUTHENTICATION, "TokenRequest", C)],
        ..resource(CORE, "serviceaccounts", "serviceaccount", "ServiceAccount", NAMESPACED, ALL, Some("pbx9ZvyFpBE="))
    },
    Resource {
        short_names: &["svc"],
        categories: CAT_ALL,
        subresources: &[sub("proxy", CORE, "ServiceProxyOptions", PX), status(CORE, "Service")],
        field_selectors: SERVICE_FIELDS,
        ..resource(CORE, "services", "service", "Service", NAMESPACED, ALL, Some("0/CO1lhkEBI="))
    },
    // apps/v1.
    resource(
        APPS,
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        NAMESPACED,
        ALL,
        Some("85nkx63pcBU="),
    ),
    Resource {
        short_names: &["ds"],
        categories: CAT_ALL,
        subresources: &[status(APPS, "DaemonSet")],
        ..resource(APPS, "daemonsets", "daemonset", "DaemonSet", NAMESPACED, ALL, Some("dd7pWHUlMKQ="))
    },
    Resource {
        short_names: &["deploy"],
        categories: CAT_ALL,
        subresources: &[SCALE, status(APPS, "Deployment")],
        ..resource(APPS, "deployments", "deployment", "Deployment", NAMESPACED, ALL, Some("8aSe+NMegvE="))
    },
    Resource {
        short_names: &["rs"],
        categories: CAT_ALL,
        subresources: &[SCALE, status(APPS, "ReplicaSet")],
        ..resource(APPS, "replicasets", "replicaset", "ReplicaSet", NAMESPACED, ALL, Some("P1RzHs8/mWQ="))
    },
    Resource {
        short_names: &["sts"],
        categories: CAT_ALL,
        subresources: &[SCALE, status(APPS, "StatefulSet")],
        ..resource(APPS, "statefulsets", "statefulset", "StatefulSet", NAMESPACED, ALL, Some("H+vl74LkKdo="))
    },
    // events.k8s.io/v1.
    Resource {
        short_names: &["ev"],
        field_selectors: EVENTS_EVENT_FIELDS,
        ..resource(EVENTS, "events", "event", "Event", NAMESPACED, ALL, Some("r2yiGXH7wu8="))
    },
    // authentication.k8s.io/v1.
    resource(AUTHENTICATION, "selfsubjectreviews", "selfsubjectreview", "SelfSubjectReview", CLUSTER, C, None),
    resource(AUTHENTICATION, "tokenreviews", "tokenreview", "TokenReview", CLUSTER, C, None),
    // authorization.k8s.io/v1.
    resource(
        AUTHORIZATION,
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        "LocalSubjectAccessReview",
        NAMESPACED,
        C,
        None,
    ),
    resource(
        AUTHORIZATION,
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        CLUSTER,
        C,
        None,
    ),
    resource(
        AUTHORIZATION,
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
        CLUSTER,
        C,
        None,
    ),
    resource(AUTHORIZATION, "subjectaccessreviews", "subjectaccessreview", "SubjectAccessReview", CLUSTER, C, None),
    // autoscaling/v2 and v1 serve the same stored object, hence the same hash.
    Resource {
        short_names: &["hpa"],
        categories: CAT_ALL,
        subresources: &[status(AUTOSCALING_V2, "HorizontalPodAutoscaler")],
        ..resource(
            AUTOSCALING_V2,
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            "HorizontalPodAutoscaler",
            NAMESPACED,
            ALL,
            Some("qwQve8ut294="),
        )
    },
    Resource {
        short_names: &["hpa"],
        categories: CAT_ALL,
        subresources: &[status(AUTOSCALING_V1, "HorizontalPodAutoscaler")],
        ..resource(
            AUTOSCALING_V1,
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            "HorizontalPodAutoscaler",
            NAMESPACED,
            ALL,
            Some("qwQve8ut294="),
        )
    },
    // batch/v1.
    Resource {
        short_names: &["cj"],
        categories: CAT_ALL,
        subresources: &[status(BATCH, "CronJob")],
        ..resource(BATCH, "cronjobs", "cronjob", "CronJob", NAMESPACED, ALL, Some("sd5LIXh4Fjs="))
    },
    Resource {
        categories: CAT_ALL,
        subresources: &[status(BATCH, "Job")],
        field_selectors: JOB_FIELDS,
        ..resource(BATCH, "jobs", "job", "Job", NAMESPACED, ALL, Some("mudhfqk/qZY="))
    },
    // certificates.k8s.io/v1.
    Resource {
        short_names: &["csr"],
        subresources: &[
            sub("approval", CERTIFICATES, "CertificateSigningRequest", ST),
            status(CERTIFICATES, "CertificateSigningRequest"),
        ],
        field_selectors: CSR_FIELDS,
        ..resource(
            CERTIFICATES,
            "certificatesigningrequests",
            "certificatesigningrequest",
            "CertificateSigningRequest",
            CLUSTER,
            ALL,
            Some("95fRKMXA+00="),
        )
    },
    // networking.k8s.io/v1.
    resource(NETWORKING, "ingressclasses", "ingressclass", "IngressClass", CLUSTER, ALL, Some("l/iqIbDgFyQ=")),
    Resource {
        short_names: &["ing"],
        subresources: &[status(NETWORKING, "Ingress")],
        ..resource(NETWORKING, "ingresses", "ingress", "Ingress", NAMESPACED, ALL, Some("39NQlfNR+bo="))
    },
    // Stored as networking.k8s.io/v1beta1 in 1.33.
    Resource {
        short_names: &["ip"],
        ..resource(NETWORKING, "ipaddresses", "ipaddress", "IPAddress", CLUSTER, ALL, Some("O4H8VxQhW5Y="))
    },
    Resource {
        short_names: &["netpol"],
        ..resource(
            NETWORKING,
            "networkpolicies",
            "networkpolicy",
            "NetworkPolicy",
            NAMESPACED,
            ALL,
            Some("YpfwF18m1G8="),
        )
    },
    // Stored as networking.k8s.io/v1beta1 in 1.33.
    Resource {
        subresources: &[status(NETWORKING, "ServiceCIDR")],
        ..resource(NETWORKING, "servicecidrs", "servicecidr", "ServiceCIDR", CLUSTER, ALL, Some("8ufAXOnr3Yg="))
    },
    // policy/v1.
    Resource {
        short_names: &["pdb"],
        subresources: &[status(POLICY, "PodDisruptionBudget")],
        ..resource(
            POLICY,
            "poddisruptionbudgets",
            "poddisruptionbudget",
            "PodDisruptionBudget",
            NAMESPACED,
            ALL,
            Some("EVWiDmWqyJw="),
        )
    },
    // rbac.authorization.k8s.io/v1.
    resource(
        RBAC,
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        CLUSTER,
        ALL,
        Some("48tpQ8gZHFc="),
    ),
    resource(RBAC, "clusterroles", "clusterrole", "ClusterRole", CLUSTER, ALL, Some("bYE5ZWDrJ44=")),
    resource(RBAC, "rolebindings", "rolebinding", "RoleBinding", NAMESPACED, ALL, Some("eGsCzGH6b1g=")),
    resource(RBAC, "roles", "role", "Role", NAMESPACED, ALL, Some("7FuwZcIIItM=")),
    // storage.k8s.io/v1.
    resource(STORAGE, "csidrivers", "csidriver", "CSIDriver", CLUSTER, ALL, Some("hL6j/rwBV5w=")),
    resource(STORAGE, "csinodes", "csinode", "CSINode", CLUSTER, ALL, Some("Pe62DkZtjuo=")),
    resource(
        STORAGE,
        "csistoragecapacities",
        "csistoragecapacity",
        "CSIStorageCapacity",
        NAMESPACED,
        ALL,
        Some("xeVl+2Ly1kE="),
    ),
    Resource {
        short_names: &["sc"],
        ..resource(STORAGE, "storageclasses", "storageclass", "StorageClass", CLUSTER, ALL, Some("K+m6uJwbjGY="))
    },
    Resource {
        subresources: &[status(STORAGE, "VolumeAttachment")],
        ..resource(
            STORAGE,
            "volumeattachments",
            "volumeattachment",
            "VolumeAttachment",
            CLUSTER,
            ALL,
            Some("tJx/ezt6UDU="),
        )
    },
    // admissionregistration.k8s.io/v1.
    Resource {
        categories: CAT_API_EXTENSIONS,
        ..resource(
            ADMISSIONREGISTRATION,
            "mutatingwebhookconfigurations",
            "mutatingwebhookconfiguration",
            "MutatingWebhookConfiguration",
            CLUSTER,
            ALL,
            Some("Sqi0GUgDaX0="),
        )
    },
    Resource {
        categories: CAT_API_EXTENSIONS,
        ..resource(
            ADMISSIONREGISTRATION,
            "validatingadmissionpolicies",
            "validatingadmissionpolicy",
            "ValidatingAdmissionPolicy",
            CLUSTER,
            ALL,
            Some("6OxvlMmQ6is="),
        )
    },
    Resource {
        categories: CAT_API_EXTENSIONS,
        ..resource(
            ADMISSIONREGISTRATION,
            "validatingadmissionpolicybindings",
            "validatingadmissionpolicybinding",
            "ValidatingAdmissionPolicyBinding",
            CLUSTER,
            ALL,
            Some("v9715VZqakg="),
        )
    },
    Resource {
        categories: CAT_API_EXTENSIONS,
        ..resource(
            ADMISSIONREGISTRATION,
            "validatingwebhookconfigurations",
            "validatingwebhookconfiguration",
            "ValidatingWebhookConfiguration",
            CLUSTER,
            ALL,
            Some("B0wHjQmsGNk="),
        )
    },
    // apiextensions.k8s.io/v1; CRDs are still stored as v1beta1.
    Resource {
        short_names: &["crd", "crds"],
        categories: CAT_API_EXTENSIONS,
        subresources: &[status(APIEXTENSIONS, "CustomResourceDefinition")],
        ..resource(
            APIEXTENSIONS,
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            CLUSTER,
            ALL,
            Some("jfWCUB31mvA="),
        )
    },
    // scheduling.k8s.io/v1.
    Resource {
        short_names: &["pc"],
        ..resource(SCHEDULING, "priorityclasses", "priorityclass", "PriorityClass", CLUSTER, ALL, Some("1QwjyaZjj3Y="))
    },
    // coordination.k8s.io/v1.
    resource(COORDINATION, "leases", "lease", "Lease", NAMESPACED, ALL, Some("gqkMMb/YqFM=")),
    // node.k8s.io/v1.
    resource(NODE, "runtimeclasses", "runtimeclass", "RuntimeClass", CLUSTER, ALL, Some("WQTu1GL3T2Q=")),
    // discovery.k8s.io/v1.
    resource(DISCOVERY, "endpointslices", "endpointslice", "EndpointSlice", NAMESPACED, ALL, Some("qgS0xkrxYAI=")),
    // flowcontrol.apiserver.k8s.io/v1.
    Resource {
        subresources: &[status(FLOWCONTROL, "FlowSchema")],
        ..resource(FLOWCONTROL, "flowschemas", "flowschema", "FlowSchema", CLUSTER, ALL, Some("GJVAJZSZBIw="))
    },
    Resource {
        subresources: &[status(FLOWCONTROL, "PriorityLevelConfiguration")],
        ..resource(
            FLOWCONTROL,
            "prioritylevelconfigurations",
            "prioritylevelconfiguration",
            "PriorityLevelConfiguration",
            CLUSTER,
            ALL,
            Some("Kir5PVfvNeI="),
        )
    },
    // apiregistration.k8s.io/v1.
    Resource {
        categories: CAT_API_EXTENSIONS,
        subresources: &[status(APIREGISTRATION, "APIService")],
        ..resource(APIREGISTRATION, "apiservices", "apiservice", "APIService", CLUSTER, ALL, Some("InPBPD7+PqM="))
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn get(group: &str, version: &str, name: &str) -> &'static Resource {
        find(group, version, name).unwrap_or_else(|| panic!("{group}/{version} {name} is not registered"))
    }

    #[test]
    fn pods() {
        let pods = get("", "v1", "pods");
        assert_eq!(pods.kind, "Pod");
        assert_eq!(pods.singular, "pod");
        assert!(pods.namespaced);
        assert_eq!(pods.short_names, ["po"]);
        assert_eq!(pods.categories, ["all"]);
        assert_eq!(pods.group_version(), "v1");
        for name in ["log", "exec", "status", "eviction", "resize", "ephemeralcontainers"] {
            assert!(pods.subresource(name).is_some(), "pods/{name} missing");
        }
        assert!(pods.subresource("checkpoint").is_none());

        let eviction = pods.subresource("eviction").unwrap();
        assert_eq!((eviction.group, eviction.version, eviction.kind), ("policy", "v1", "Eviction"));
        assert_eq!(eviction.verbs, ["create"]);

        let status = pods.subresource("status").unwrap();
        assert_eq!((status.group, status.version, status.kind), ("", "v1", "Pod"));
        assert_eq!(status.verbs, ["get", "patch", "update"]);

        assert_eq!(pods.subresource("log").unwrap().verbs, ["get"]);
        assert_eq!(pods.subresource("exec").unwrap().kind, "PodExecOptions");
        assert_eq!(pods.subresource("proxy").unwrap().verbs, ["create", "delete", "get", "patch", "update"]);
    }

    #[test]
    fn scale_and_token_respond_with_other_groups_kinds() {
        for (group, name) in
            [("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"), ("", "replicationcontrollers")]
        {
            let scale = get(group, "v1", name).subresource("scale").unwrap();
            assert_eq!((scale.group, scale.version, scale.kind), ("autoscaling", "v1", "Scale"), "{name}/scale");
            assert_eq!(scale.verbs, ["get", "patch", "update"]);
        }
        assert!(get("apps", "v1", "daemonsets").subresource("scale").is_none());

        let status = get("apps", "v1", "deployments").subresource("status").unwrap();
        assert_eq!((status.group, status.version, status.kind), ("apps", "v1", "Deployment"));

        let token = get("", "v1", "serviceaccounts").subresource("token").unwrap();
        assert_eq!((token.group, token.version, token.kind), ("authentication.k8s.io", "v1", "TokenRequest"));
    }

    #[test]
    fn verbs() {
        let namespaces = get("", "v1", "namespaces");
        assert!(!namespaces.has_verb("deletecollection"));
        assert!(namespaces.has_verb("delete") && namespaces.has_verb("watch"));
        assert!(get("", "v1", "nodes").has_verb("deletecollection"));
        assert_eq!(get("", "v1", "componentstatuses").verbs, ["get", "list"]);
        assert_eq!(get("", "v1", "bindings").verbs, ["create"]);
        assert_eq!(get("authorization.k8s.io", "v1", "subjectaccessreviews").verbs, ["create"]);
    }

    #[test]
    fn verbs_are_known_and_in_canonical_order() {
        let rank = |verb: &str| ALL.iter().position(|v| *v == verb).unwrap_or_else(|| panic!("unknown verb {verb}"));
        let check = |what: String, verbs: &[&str]| {
            assert!(!verbs.is_empty(), "{what} has no verbs");
            let ranks: Vec<usize> = verbs.iter().map(|v| rank(v)).collect();
            assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{what}: {verbs:?}");
        };
        for r in RESOURCES {
            check(r.name.to_string(), r.verbs);
            for s in r.subresources {
                check(format!("{}/{}", r.name, s.name), s.verbs);
            }
        }
    }

    #[test]
    fn category_all_has_exactly_ten_members() {
        let members: BTreeSet<&str> =
            RESOURCES.iter().filter(|r| r.categories.contains(&"all")).map(|r| r.name).collect();
        let expected: BTreeSet<&str> = [
            "pods",
            "replicationcontrollers",
            "services",
            "daemonsets",
            "deployments",
            "replicasets",
            "statefulsets",
            "jobs",
            "cronjobs",
            "horizontalpodautoscalers",
        ]
        .into_iter()
        .collect();
        assert_eq!(members, expected);
    }

    #[test]
    fn category_api_extensions() {
        let members: BTreeSet<&str> =
            RESOURCES.iter().filter(|r| r.categories.contains(&"api-extensions")).map(|r| r.name).collect();
        let expected: BTreeSet<&str> = [
            "customresourcedefinitions",
            "apiservices",
            "mutatingwebhookconfigurations",
            "validatingwebhookconfigurations",
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
        ]
        .into_iter()
        .collect();
        assert_eq!(members, expected);
    }

    #[test]
    fn find_kind_and_group_version() {
        let deployments = find_kind("apps", "v1", "Deployment").unwrap();
        assert_eq!(deployments.name, "deployments");
        assert_eq!(deployments.short_names, ["deploy"]);
        assert_eq!(deployments.group_version(), "apps/v1");
        assert!(find_kind("apps", "v1", "Pod").is_none());
        assert!(find_kind("", "v1", "Deployment").is_none());
        assert!(find("apps", "v2", "deployments").is_none());
    }

    #[test]
    fn autoscaling_prefers_v2() {
        let autoscaling = GROUPS.iter().find(|g| g.name == "autoscaling").unwrap();
        assert_eq!(autoscaling.versions, ["v2", "v1"]);

        let v2 = get("autoscaling", "v2", "horizontalpodautoscalers");
        let v1 = get("autoscaling", "v1", "horizontalpodautoscalers");
        assert_eq!(v2.storage_version_hash, Some("qwQve8ut294="));
        assert_eq!(v1.storage_version_hash, v2.storage_version_hash);
        assert_eq!(v2.subresource("status").unwrap().version, "v2");
        assert_eq!(v1.subresource("status").unwrap().version, "v1");
    }

    #[test]
    fn groups() {
        assert_eq!(GROUPS.len(), 20);
        assert_eq!(GROUPS[0].name, "");
        assert_eq!(GROUPS[0].versions, ["v1"]);
        let names: BTreeSet<&str> = GROUPS.iter().map(|g| g.name).collect();
        assert_eq!(names.len(), GROUPS.len(), "a group is listed twice");
        // Every group version serves something.
        for g in GROUPS {
            for v in g.versions {
                assert!(resources_in(g.name, v).next().is_some(), "{}/{v} is empty", g.name);
            }
        }
    }

    #[test]
    fn every_resource_is_in_a_listed_group_version() {
        for r in RESOURCES {
            let group = GROUPS.iter().find(|g| g.name == r.group);
            assert!(
                group.is_some_and(|g| g.versions.contains(&r.version)),
                "{} {} is not in GROUPS",
                r.group_version(),
                r.name
            );
        }
    }

    #[test]
    fn no_duplicates() {
        let mut names = BTreeSet::new();
        let mut kinds = BTreeSet::new();
        for r in RESOURCES {
            assert!(names.insert((r.group, r.version, r.name)), "{} twice", r.name);
            assert!(kinds.insert((r.group, r.version, r.kind)), "{} twice", r.kind);
            let subs: BTreeSet<&str> = r.subresources.iter().map(|s| s.name).collect();
            assert_eq!(subs.len(), r.subresources.len(), "{} subresources", r.name);
        }
        assert_eq!(RESOURCES.len(), 61);
    }

    #[test]
    fn resources_in_is_sorted() {
        let core: Vec<&str> = resources_in("", "v1").map(|r| r.name).collect();
        assert_eq!(core.len(), 17);
        assert!(core.windows(2).all(|w| w[0] < w[1]));
        let apps: Vec<&str> = resources_in("apps", "v1").map(|r| r.name).collect();
        assert_eq!(apps, ["controllerrevisions", "daemonsets", "deployments", "replicasets", "statefulsets"]);
    }

    #[test]
    fn subresources_are_sorted() {
        for r in RESOURCES {
            assert!(r.subresources.windows(2).all(|w| w[0].name < w[1].name), "{} subresources are not sorted", r.name);
        }
    }

    #[test]
    fn storage_version_hashes() {
        assert_eq!(get("", "v1", "configmaps").storage_version_hash, Some("qFsyl6wFWjQ="));
        assert_eq!(
            get("events.k8s.io", "v1", "events").storage_version_hash,
            get("", "v1", "events").storage_version_hash
        );
        assert_eq!(
            get("apiextensions.k8s.io", "v1", "customresourcedefinitions").storage_version_hash,
            Some("jfWCUB31mvA=")
        );
        for r in RESOURCES {
            let unhashed = r.name == "bindings" || r.name == "componentstatuses" || r.name.ends_with("reviews");
            assert_eq!(r.storage_version_hash.is_none(), unhashed, "{}", r.name);
        }
    }

    #[test]
    fn field_selectors() {
        let nodes = get("", "v1", "nodes");
        assert!(!nodes.field_selectors.contains(&"metadata.namespace"));
        assert!(nodes.field_selectors.contains(&"spec.unschedulable"));
        for (group, name) in [("", "namespaces"), ("certificates.k8s.io", "certificatesigningrequests")] {
            assert!(!get(group, "v1", name).field_selectors.contains(&"metadata.namespace"));
        }

        let pods = get("", "v1", "pods");
        for label in ["spec.nodeName", "status.phase", "status.podIPs"] {
            assert!(pods.field_selectors.contains(&label), "{label}");
        }
        assert!(!pods.field_selectors.contains(&"spec.host"));

        // apps/v1 registers no conversion for ReplicaSet's status.replicas.
        assert_eq!(get("apps", "v1", "replicasets").field_selectors, ["metadata.name", "metadata.namespace"]);
        assert_eq!(get("", "v1", "configmaps").field_selectors, ["metadata.name", "metadata.namespace"]);
        assert_eq!(
            get("batch", "v1", "jobs").field_selectors,
            ["metadata.name", "metadata.namespace", "status.successful"]
        );
        let events = get("events.k8s.io", "v1", "events");
        assert!(events.field_selectors.contains(&"regarding.kind"));
        assert!(events.field_selectors.contains(&"reportingController"));
        assert!(!events.field_selectors.contains(&"involvedObject.kind"));
    }

    #[test]
    fn endpoints_quirks_and_deprecations() {
        let endpoints = get("", "v1", "endpoints");
        assert_eq!(endpoints.singular, "endpoints");
        assert_eq!(endpoints.short_names, ["ep"]);
        assert_eq!(endpoints.verbs, ALL);
        assert_eq!(
            endpoints.deprecation,
            Some("v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
        );
        assert_eq!(get("", "v1", "componentstatuses").deprecation, Some("v1 ComponentStatus is deprecated in v1.19+"));
        let deprecated = RESOURCES.iter().filter(|r| r.deprecation.is_some()).count();
        assert_eq!(deprecated, 2);
    }

    #[test]
    fn not_served_in_1_33() {
        assert!(find("storage.k8s.io", "v1", "volumeattributesclasses").is_none());
        assert!(find("admissionregistration.k8s.io", "v1", "mutatingadmissionpolicies").is_none());
        assert!(RESOURCES.iter().all(|r| r.version != "v1beta1"));
    }

    #[test]
    fn scopes() {
        assert!(get("authorization.k8s.io", "v1", "localsubjectaccessreviews").namespaced);
        assert!(!get("authorization.k8s.io", "v1", "selfsubjectaccessreviews").namespaced);
        assert!(!get("networking.k8s.io", "v1", "ipaddresses").namespaced);
        assert!(get("storage.k8s.io", "v1", "csistoragecapacities").namespaced);
    }
}
