//! Which patch strategy and merge key apply at each path of a built-in object.
//!
//! Two embedded files feed it, parsed once on first use:
//! - `data/patch-metadata.json`: the upstream OpenAPI patch extensions (`x-kubernetes-patch-strategy`,
//!   `x-kubernetes-patch-merge-key`, …) per definition and field;
//! - `data/patch-graph.json`: the type graph of the built-in kinds, generated from k8s-openapi's schemas by the
//!   test `patch_graph_matches_k8s_openapi` (run it with `UPDATE_PATCH_GRAPH=1` to rewrite the file). For each
//!   definition it lists the fields whose type leads to a definition with metadata that changes merging (a patch
//!   strategy, a keyed or set list, an atomic map or struct), as `Name`, `[]Name` (list of) or `map[string]Name`
//!   (map of); everything else behaves as a type without metadata, so it is left out.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

const METADATA: &str = include_str!("../../data/patch-metadata.json");
const GRAPH: &str = include_str!("../../data/patch-graph.json");

/// The stable built-in kinds that accept a strategic merge patch, by group and version.
pub(crate) const KINDS: &[(&str, &str, &[&str])] = &[
    (
        "",
        "v1",
        &[
            "Binding",
            "ComponentStatus",
            "ConfigMap",
            "Endpoints",
            "Event",
            "LimitRange",
            "Namespace",
            "Node",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "Pod",
            "PodTemplate",
            "ReplicationController",
            "ResourceQuota",
            "Secret",
            "Service",
            "ServiceAccount",
        ],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        &[
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingWebhookConfiguration",
        ],
    ),
    ("apiextensions.k8s.io", "v1", &["CustomResourceDefinition"]),
    ("apiregistration.k8s.io", "v1", &["APIService"]),
    ("apps", "v1", &["ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"]),
    ("autoscaling", "v1", &["HorizontalPodAutoscaler", "Scale"]),
    ("autoscaling", "v2", &["HorizontalPodAutoscaler"]),
    ("batch", "v1", &["CronJob", "Job"]),
    ("certificates.k8s.io", "v1", &["CertificateSigningRequest"]),
    ("coordination.k8s.io", "v1", &["Lease"]),
    ("discovery.k8s.io", "v1", &["EndpointSlice"]),
    ("events.k8s.io", "v1", &["Event"]),
    ("flowcontrol.apiserver.k8s.io", "v1", &["FlowSchema", "PriorityLevelConfiguration"]),
    ("networking.k8s.io", "v1", &["IPAddress", "Ingress", "IngressClass", "NetworkPolicy", "ServiceCIDR"]),
    ("node.k8s.io", "v1", &["RuntimeClass"]),
    ("policy", "v1", &["Eviction", "PodDisruptionBudget"]),
    ("rbac.authorization.k8s.io", "v1", &["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]),
    ("scheduling.k8s.io", "v1", &["PriorityClass"]),
    ("storage.k8s.io", "v1", &["CSIDriver", "CSINode", "CSIStorageCapacity", "StorageClass", "VolumeAttachment"]),
];

/// The patch schema of a built-in kind, or `None` for a kind this table does not know (custom resources, alpha
/// and beta versions): upstream refuses a strategic merge patch for those (415 Unsupported Media Type).
pub fn schema_for_kind(group: &str, version: &str, kind: &str) -> Option<PatchSchema> {
    KINDS.iter().find(|(g, v, kinds)| *g == group && *v == version && kinds.contains(&kind))?;
    PatchSchema::for_definition(&format!("{}.{version}.{kind}", package(group)))
}

/// The OpenAPI definition prefix of an API group's types.
fn package(group: &str) -> String {
    match group {
        "" => "io.k8s.api.core".to_owned(),
        "apiextensions.k8s.io" => "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions".to_owned(),
        "apiregistration.k8s.io" => "io.k8s.kube-aggregator.pkg.apis.apiregistration".to_owned(),
        _ => format!("io.k8s.api.{}", group.split('.').next().unwrap_or(group)),
    }
}

/// Where in the type graph a patch is being applied: the definition of the current object (or the value type of a
/// map), which gives each field's patch strategy, merge key and type. Paths the graph does not know merge like a
/// JSON merge patch (maps merge, lists are replaced).
#[derive(Clone, Copy)]
pub struct PatchSchema {
    node: Node,
}

#[derive(Clone, Copy)]
enum Node {
    Unknown,
    Def(&'static Def),
    /// A map (`additionalProperties`) whose values are of this type.
    Map(&'static Ty),
}

impl PatchSchema {
    /// The schema of an OpenAPI definition, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub fn for_definition(name: &str) -> Option<PatchSchema> {
        registry().defs.get(name).map(|def| PatchSchema { node: Node::Def(def) })
    }

    const UNKNOWN: PatchSchema = PatchSchema { node: Node::Unknown };

    /// The OpenAPI definition this schema is of, when it is one.
    pub(crate) fn definition(&self) -> Option<&'static str> {
        match self.node {
            Node::Def(def) => Some(&def.name),
            _ => None,
        }
    }

    /// The schema and patch metadata of field `key` when its value is a map.
    pub(crate) fn map_field(&self, key: &str) -> (PatchSchema, FieldPatch) {
        let (ty, patch) = self.field(key);
        let schema = match ty {
            Some(Ty::List(_)) | None => Self::UNKNOWN,
            Some(ty) => Self::of_type(ty),
        };
        (schema, patch)
    }

    /// The schema of the elements and the patch metadata of field `key` when its value is a list.
    pub(crate) fn list_field(&self, key: &str) -> (PatchSchema, FieldPatch) {
        let (ty, patch) = self.field(key);
        let schema = match ty {
            Some(Ty::List(element)) => Self::of_type(element),
            _ => Self::UNKNOWN,
        };
        (schema, patch)
    }

    /// The schema of a value of type `ty`; lists of lists are not described further.
    fn of_type(ty: &'static Ty) -> PatchSchema {
        match ty {
            Ty::Def(name) => PatchSchema::for_definition(name).unwrap_or(Self::UNKNOWN),
            Ty::Map(value) => PatchSchema { node: Node::Map(value) },
            Ty::List(_) => Self::UNKNOWN,
        }
    }

    fn field(&self, key: &str) -> (Option<&'static Ty>, FieldPatch) {
        match self.node {
            Node::Def(def) => def.fields.get(key).map_or((None, FieldPatch::default()), |field| {
                (field.ty.as_ref(), FieldPatch { strategy: field.strategy, merge_key: &field.merge_key })
            }),
            Node::Map(value) => (Some(value), FieldPatch::default()),
            Node::Unknown => (None, FieldPatch::default()),
        }
    }

    /// A schema that knows no field: everything merges as plain JSON (custom resources).
    pub fn unknown() -> PatchSchema {
        Self::UNKNOWN
    }

    /// The server-side apply metadata of field `key` (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
    /// `x-kubernetes-map-type`) and the schema of its value (of its elements for a list). Lists without type
    /// information are atomic.
    pub fn apply_field(&self, key: &str) -> ApplyField {
        // One lookup of the field: every create records its managed fields through here.
        let field = match self.node {
            Node::Def(def) => def.fields.get(key),
            _ => None,
        };
        let ty = match self.node {
            Node::Map(value) => Some(value),
            _ => field.and_then(|f| f.ty.as_ref()),
        };
        let schema = match ty {
            Some(Ty::List(element)) => Self::of_type(element),
            Some(ty) => Self::of_type(ty),
            None => Self::UNKNOWN,
        };
        let list = match field.map(|f| f.list_type.as_str()) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(field.map_or(&[][..], |f| &f.list_map_keys[..])),
            _ => ListType::Atomic,
        };
        let value_atomic = match schema.node {
            Node::Def(def) => def.atomic,
            _ => false,
        };
        let atomic_map = field.is_some_and(|f| f.map_type == "atomic") || value_atomic;
        ApplyField { schema, list, atomic_map }
    }

    /// The definition name, for messages.
    pub(crate) fn name(&self) -> &'static str {
        match self.node {
            Node::Def(def) => &def.name,
            Node::Map(_) => "map",
            Node::Unknown => "unknown type",
        }
    }
}

impl fmt::Debug for PatchSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PatchSchema").field(&self.name()).finish()
    }
}

/// What server-side apply needs to know about a field: see [`PatchSchema::apply_field`].
#[derive(Clone, Copy, Debug)]
pub struct ApplyField {
    /// The schema of the value, or of the elements of a list.
    pub schema: PatchSchema,
    /// How a list value is owned and merged.
    pub list: ListType,
    /// Whether a map (object) value is owned and replaced whole (`x-kubernetes-map-type: atomic`).
    pub atomic_map: bool,
}

/// `x-kubernetes-list-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListType {
    Atomic,
    Set,
    /// Elements are objects identified by these keys.
    Map(&'static [String]),
}

/// How a field's value is patched (`x-kubernetes-patch-strategy` less `retainKeys`, which only matters when a
/// patch is computed, and `x-kubernetes-patch-merge-key`, empty when there is none).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FieldPatch {
    pub strategy: Strategy,
    pub merge_key: &'static str,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Maps merge, lists are replaced.
    #[default]
    Default,
    /// Lists merge: maps by the merge key, primitives as a set.
    Merge,
    /// The patch value replaces the field whole.
    Replace,
}

impl Strategy {
    fn parse(value: &str) -> Option<Strategy> {
        let mut strategies = value.split(',').filter(|s| *s != "retainKeys");
        let strategy = match strategies.next() {
            None => Strategy::Default,
            Some("merge") => Strategy::Merge,
            Some("replace") => Strategy::Replace,
            Some(_) => return None,
        };
        strategies.next().is_none().then_some(strategy)
    }
}

/// The type of a field, as far as the graph follows it.
#[derive(Debug)]
enum Ty {
    Def(String),
    List(Box<Ty>),
    Map(Box<Ty>),
}

impl Ty {
    fn parse(s: &str) -> Ty {
        if let Some(element) = s.strip_prefix("[]") {
            Ty::List(Box::new(Ty::parse(element)))
        } else if let Some(value) = s.strip_prefix("map[string]") {
            Ty::Map(Box::new(Ty::parse(value)))
        } else {
            Ty::Def(s.to_owned())
        }
    }
}

struct Def {
    name: String,
    fields: HashMap<String, Field>,
    /// `x-kubernetes-map-type: atomic` on the definition itself.
    atomic: bool,
}

#[derive(Default)]
struct Field {
    ty: Option<Ty>,
    strategy: Strategy,
    merge_key: String,
    list_type: String,
    list_map_keys: Vec<String>,
    map_type: String,
}

struct Registry {
    defs: HashMap<String, Def>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::load(METADATA, GRAPH))
}

impl Registry {
    /// Joins the metadata and the graph. Both are embedded and checked by this module's tests, so a malformed
    /// file is a build defect and panics.
    fn load(metadata: &str, graph: &str) -> Registry {
        let metadata: Value = serde_json::from_str(metadata).expect("patch-metadata.json is JSON");
        let graph: Value = serde_json::from_str(graph).expect("patch-graph.json is JSON");
        let mut defs: HashMap<String, Def> = HashMap::new();
        for (name, fields) in objects(&metadata["definitions"]) {
            if fields["."]["map-type"].as_str() == Some("atomic") {
                defs.entry(name.to_owned())
                    .or_insert_with(|| Def { name: name.to_owned(), fields: HashMap::new(), atomic: false })
                    .atomic = true;
            }
            let def_fields = fields_of(&mut defs, name);
            for (field, meta) in objects(fields) {
                if field == "." {
                    continue;
                }
                let list_type = meta["list-type"].as_str().unwrap_or_default();
                let map_type = meta["map-type"].as_str().unwrap_or_default();
                let list_map_keys: Vec<String> = meta["list-map-keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect();
                if !list_type.is_empty() || !map_type.is_empty() {
                    let entry = def_fields.entry(field.clone()).or_default();
                    entry.list_type = list_type.to_owned();
                    entry.map_type = map_type.to_owned();
                    entry.list_map_keys = list_map_keys;
                }
                let strategy = meta["patch-strategy"].as_str().map(|s| {
                    Strategy::parse(s).unwrap_or_else(|| panic!("bad patch strategy {s:?} on {name}.{field}"))
                });
                let merge_key = meta["patch-merge-key"].as_str();
                if strategy.is_none() && merge_key.is_none() {
                    continue;
                }
                let entry = def_fields.entry(field.clone()).or_default();
                entry.strategy = strategy.unwrap_or_default();
                entry.merge_key = merge_key.unwrap_or_default().to_owned();
            }
        }
        for (name, fields) in objects(&graph) {
            let def_fields = fields_of(&mut defs, name);
            for (field, ty) in objects(fields) {
                let ty = ty.as_str().expect("patch-graph.json types are strings");
                def_fields.entry(field.clone()).or_default().ty = Some(Ty::parse(ty));
            }
        }
        Registry { defs }
    }
}

fn fields_of<'a>(defs: &'a mut HashMap<String, Def>, name: &str) -> &'a mut HashMap<String, Field> {
    let def = defs.entry(name.to_owned()).or_insert_with(|| Def {
        name: name.to_owned(),
        fields: HashMap::new(),
        atomic: false,
    });
    &mut def.fields
}

fn objects(value: &Value) -> impl Iterator<Item = (&String, &Value)> {
    value.as_object().into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    use crate::k8s_kinds::openapi_kinds;

    /// The graph type of a property schema: a `$ref`, or a list or map of one.
    fn graph_type(schema: &Value) -> Option<String> {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.strip_prefix("#/$defs/").expect("schemars refers to $defs");
            return Some(name.to_owned());
        }
        match schema["type"].as_str() {
            Some("array") => graph_type(&schema["items"]).map(|t| format!("[]{t}")),
            Some("object") => graph_type(&schema["additionalProperties"]).map(|t| format!("map[string]{t}")),
            _ => None,
        }
    }

    fn type_definition(ty: &str) -> &str {
        ty.trim_start_matches("[]").trim_start_matches("map[string]")
    }

    /// The graph of the given definitions, pruned to the fields that lead to patch metadata.
    fn build_graph(definitions: &serde_json::Map<String, Value>) -> BTreeMap<String, BTreeMap<String, String>> {
        let metadata: Value = serde_json::from_str(METADATA).unwrap();
        let full: BTreeMap<&str, BTreeMap<&str, String>> = definitions
            .iter()
            .map(|(name, schema)| {
                let fields = objects(&schema["properties"])
                    .filter_map(|(field, property)| Some((field.as_str(), graph_type(property)?)))
                    .collect();
                (name.as_str(), fields)
            })
            .collect();
        // What changes a patch or an apply from the defaults (replace lists, own them whole, merge maps): a patch
        // strategy, a keyed or set list, an atomic map or struct.
        let changes_merging = |meta: &Value| {
            meta.get("patch-strategy").is_some()
                || matches!(meta["list-type"].as_str(), Some("map" | "set"))
                || meta["map-type"].as_str() == Some("atomic")
        };
        let mut relevant: BTreeSet<&str> = objects(&metadata["definitions"])
            .filter(|(_, fields)| objects(fields).any(|(_, meta)| changes_merging(meta)))
            .map(|(name, _)| name.as_str())
            .collect();
        loop {
            let more: Vec<&str> = full
                .iter()
                .filter(|(name, fields)| {
                    !relevant.contains(*name) && fields.values().any(|ty| relevant.contains(type_definition(ty)))
                })
                .map(|(name, _)| *name)
                .collect();
            if more.is_empty() {
                break;
            }
            relevant.extend(more);
        }
        full.iter()
            .filter(|(name, _)| relevant.contains(*name))
            .map(|(name, fields)| {
                let fields = fields
                    .iter()
                    .filter(|(_, ty)| relevant.contains(type_definition(ty)))
                    .map(|(field, ty)| (field.to_string(), ty.clone()))
                    .collect();
                (name.to_string(), fields)
            })
            .filter(|(_, fields): &(String, BTreeMap<String, String>)| !fields.is_empty())
            .collect()
    }

    #[test]
    fn patch_graph_matches_k8s_openapi() {
        let (_, definitions) = openapi_kinds();
        let graph = serde_json::to_value(build_graph(&definitions)).unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/patch-graph.json");
        if std::env::var_os("UPDATE_PATCH_GRAPH").is_some() {
            std::fs::write(path, serde_json::to_string_pretty(&graph).unwrap() + "\n").unwrap();
        }
        let embedded: Value = serde_json::from_str(GRAPH).unwrap();
        assert!(embedded == graph, "data/patch-graph.json is stale: rerun this test with UPDATE_PATCH_GRAPH=1");
    }

    #[test]
    fn patch_metadata_names_match_k8s_openapi_definitions() {
        let (_, definitions) = openapi_kinds();
        let metadata: Value = serde_json::from_str(METADATA).unwrap();
        for name in [
            "io.k8s.api.apps.v1.DeploymentSpec",
            "io.k8s.api.core.v1.PodSpec",
            "io.k8s.api.core.v1.Container",
            "io.k8s.api.core.v1.ServiceSpec",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "io.k8s.api.policy.v1.PodDisruptionBudgetSpec",
        ] {
            assert!(definitions.contains_key(name), "{name} missing from k8s-openapi");
            assert!(metadata["definitions"].get(name).is_some(), "{name} missing from patch-metadata.json");
        }
        // Every field with a patch strategy on a definition the kinds use exists in k8s-openapi's schema.
        let missing: Vec<String> = objects(&metadata["definitions"])
            .filter_map(|(name, fields)| Some((definitions.get(name)?, name, fields)))
            .flat_map(|(schema, name, fields)| {
                objects(fields)
                    .filter(|(field, meta)| {
                        meta.get("patch-strategy").is_some() && schema["properties"].get(field.as_str()).is_none()
                    })
                    .map(move |(field, _)| format!("{name}.{field}"))
            })
            .collect();
        assert!(missing.is_empty(), "fields with patch metadata unknown to k8s-openapi: {missing:?}");
    }

    #[test]
    fn patch_schema_for_every_kind_is_its_k8s_openapi_type() {
        // The kinds strategic merge patch serves: the shared list also holds create-only ones (reviews, tokens).
        let (kinds, _) = openapi_kinds();
        let kinds: Vec<_> = kinds
            .into_iter()
            .filter(|(g, v, k, _)| KINDS.iter().any(|(kg, kv, ks)| kg == g && kv == v && ks.contains(k)))
            .collect();
        assert_eq!(kinds.len(), KINDS.iter().map(|(_, _, k)| k.len()).sum::<usize>());
        for (group, version, kind, definition) in kinds {
            let schema = schema_for_kind(group, version, kind).unwrap_or_else(|| panic!("{group}/{version} {kind}"));
            assert_eq!(schema.name(), definition);
        }
        assert!(schema_for_kind("apps", "v1beta1", "Deployment").is_none());
        assert!(schema_for_kind("example.com", "v1", "Widget").is_none());
    }

    #[test]
    fn patch_schema_follows_fields_lists_and_maps() {
        let deployment = schema_for_kind("apps", "v1", "Deployment").unwrap();
        let (spec, _) = deployment.map_field("spec");
        let (template, _) = spec.map_field("template");
        let (pod, _) = template.map_field("spec");
        assert_eq!(pod.name(), "io.k8s.api.core.v1.PodSpec");
        let (container, containers) = pod.list_field("containers");
        assert_eq!(container.name(), "io.k8s.api.core.v1.Container");
        assert_eq!((containers.strategy, containers.merge_key), (Strategy::Merge, "name"));
        let (_, ports) = container.list_field("ports");
        assert_eq!((ports.strategy, ports.merge_key), (Strategy::Merge, "containerPort"));
        let (_, volumes) = pod.list_field("volumes");
        assert_eq!((volumes.strategy, volumes.merge_key), (Strategy::Merge, "name"));
        let (_, tolerations) = pod.list_field("tolerations");
        assert_eq!((tolerations.strategy, tolerations.merge_key), (Strategy::Default, ""));
        let (_, strategy) = spec.map_field("strategy");
        assert_eq!(strategy.strategy, Strategy::Default);

        let (meta, _) = deployment.map_field("metadata");
        let (labels, _) = meta.map_field("labels");
        assert_eq!(labels.name(), "unknown type");
        let (_, finalizers) = meta.list_field("finalizers");
        assert_eq!((finalizers.strategy, finalizers.merge_key), (Strategy::Merge, ""));

        let pdb = schema_for_kind("policy", "v1", "PodDisruptionBudget").unwrap();
        let (_, selector) = pdb.map_field("spec").0.map_field("selector");
        assert_eq!(selector.strategy, Strategy::Replace);
    }

    #[test]
    fn patch_strategy_parses_upstream_values() {
        assert_eq!(Strategy::parse("merge"), Some(Strategy::Merge));
        assert_eq!(Strategy::parse("merge,retainKeys"), Some(Strategy::Merge));
        assert_eq!(Strategy::parse("retainKeys"), Some(Strategy::Default));
        assert_eq!(Strategy::parse("replace"), Some(Strategy::Replace));
        assert_eq!(Strategy::parse("merge,replace"), None);
        assert_eq!(Strategy::parse("bogus"), None);
    }
}
