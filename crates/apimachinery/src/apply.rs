//! Server-side apply (`application/apply-patch+yaml`) and the field ownership it rests on: `metadata.managedFields`
//! with field sets in the `FieldsV1` format, as upstream sigs.k8s.io/structured-merge-diff writes them.
//!
//! A field set is a set of paths. Each path element is `f:<field>` (a field of an object), `k:{"name":"x"}` (an
//! element of a list-map, by its list-map-keys), or `v:<json>` (an element of a set). In `FieldsV1` a path is a
//! nested object; a leaf is `{}`, and `.` marks an element (or field) that is owned itself and has owned fields
//! below it. Which lists are sets or maps comes from [`PatchSchema::apply_field`]; lists without type information
//! are atomic (owned and replaced whole).
//!
//! Pure functions: no I/O (the clock is read for the entries' `time`).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::patch::{ApplyField, ListType, PatchSchema};

/// One path: its elements as `FieldsV1` keys (`f:spec`, `k:{"name":"app"}`, `v:"x"`).
pub type FieldPath = Vec<String>;

/// A set of owned fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    paths: BTreeSet<FieldPath>,
}

impl FieldSet {
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    pub fn insert(&mut self, path: FieldPath) {
        self.paths.insert(path);
    }

    pub fn contains(&self, path: &[String]) -> bool {
        self.paths.contains(path)
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn paths(&self) -> impl Iterator<Item = &FieldPath> {
        self.paths.iter()
    }

    /// Whether some path is `prefix` or lies below it.
    pub fn touches(&self, prefix: &[String]) -> bool {
        self.paths.iter().any(|p| p.starts_with(prefix))
    }

    /// Whether some path lies strictly below `prefix`.
    fn has_below(&self, prefix: &[String]) -> bool {
        self.paths.iter().any(|p| p.len() > prefix.len() && p.starts_with(prefix))
    }

    /// The paths of `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet { paths: self.paths.difference(&other.paths).cloned().collect() }
    }

    fn remove_all(&mut self, other: &FieldSet) {
        self.paths.retain(|p| !other.paths.contains(p));
    }

    /// The set as a `FieldsV1` object.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Node::default();
        for path in &self.paths {
            let mut node = &mut root;
            for element in path {
                node = node.child(element.clone());
            }
            node.member = true;
        }
        root.into_value()
    }

    /// The set a `FieldsV1` object describes (anything malformed is skipped).
    pub fn from_fields_v1(value: &Value) -> FieldSet {
        fn walk(value: &Value, prefix: &mut FieldPath, set: &mut FieldSet) {
            let Some(map) = value.as_object() else { return };
            for (key, child) in map {
                if key == "." {
                    if !prefix.is_empty() {
                        set.insert(prefix.clone());
                    }
                    continue;
                }
                prefix.push(key.clone());
                match child.as_object() {
                    Some(m) if m.is_empty() => set.insert(prefix.clone()),
                    _ => walk(child, prefix, set),
                }
                prefix.pop();
            }
        }
        let mut set = FieldSet::new();
        walk(value, &mut Vec::new(), &mut set);
        set
    }
}

/// A path as upstream prints it: `.spec.template.spec.containers[name="app"].image`, `.metadata.finalizers[="x"]`.
pub fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = element.strip_prefix("k:") {
            let keys: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else {
            out.push_str(element);
        }
    }
    out
}

/// Top-level fields nobody owns.
const UNOWNED_TOP: &[&str] = &["apiVersion", "kind", "status"];
/// Metadata fields nobody owns: the server sets them.
const UNOWNED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// A field set as the tree `FieldsV1` writes: a path is the chain of keys to a node that is a member.
#[derive(Default)]
struct Node {
    member: bool,
    children: std::collections::BTreeMap<String, Node>,
}

impl Node {
    fn child(&mut self, element: String) -> &mut Node {
        self.children.entry(element).or_default()
    }

    fn into_value(self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), json!({}));
        }
        for (key, child) in self.children {
            map.insert(key, child.into_value());
        }
        Value::Object(map)
    }
}

/// `field_set(object, schema).to_fields_v1()` of a written object, built directly: every create records one, and
/// the set's per-path copies and the intermediate tree cost more than the rest of a create's managedFields. A null
/// is no field set, as upstream's typed objects read it (a template's `creationTimestamp: null` is owned by none).
/// A create is an Update of the type's zero value: what that lacks is owned itself too (see [`Zero`]).
fn fields_v1_of_object(object: &Value, schema: &PatchSchema) -> Map<String, Value> {
    let mut root = Map::new();
    let Some(map) = object.as_object() else { return root };
    let zero = Zero::of_object(schema);
    for (key, value) in map {
        if UNOWNED_TOP.contains(&key.as_str()) {
            continue;
        }
        let info = schema.apply_field(key);
        if key == "metadata" {
            let Some(meta) = value.as_object() else { continue };
            let fields: Map<String, Value> = meta
                .iter()
                .filter(|(k, _)| !UNOWNED_META.contains(&k.as_str()))
                .filter_map(|(k, v)| {
                    Some((field_element(k), fields_v1_of_value(v, &info.schema.apply_field(k), Zero::Absent)?))
                })
                .collect();
            if !fields.is_empty() {
                root.insert(field_element(key), Value::Object(fields));
            }
        } else if let Some(node) = fields_v1_of_value(value, &info, zero.field(key)) {
            root.insert(field_element(key), node);
        }
    }
    root
}

/// The `FieldsV1` node of a member field: `{}` for a leaf, its children otherwise (with `.` when the zero value
/// lacks it); none for a null, or for a map of nothing but nulls.
fn fields_v1_of_value(value: &Value, info: &ApplyField, zero: Zero) -> Option<Value> {
    let mut fields = match value {
        Value::Null => return None,
        Value::Object(map) if !info.atomic_map && !map.is_empty() => {
            let fields = fields_v1_of_map(map, &info.schema, zero);
            if fields.is_empty() {
                return None;
            }
            fields
        }
        Value::Array(items) if !items.is_empty() => match info.list {
            ListType::Atomic => Map::new(),
            ListType::Set => items.iter().map(|item| (format!("v:{item}"), Value::Object(Map::new()))).collect(),
            ListType::Map(keys) => {
                let elements: Option<Vec<String>> = items.iter().map(|item| key_element(item, keys)).collect();
                let Some(elements) = elements else { return Some(Value::Object(Map::new())) };
                let mut fields = Map::new();
                for (item, element) in items.iter().zip(elements) {
                    let mut children =
                        item.as_object().map(|m| fields_v1_of_map(m, &info.schema, Zero::Absent)).unwrap_or_default();
                    // An element is a member of its own, besides its fields.
                    if !children.is_empty() {
                        children.insert(".".into(), Value::Object(Map::new()));
                    }
                    match fields.entry(element) {
                        serde_json::map::Entry::Vacant(vacant) => {
                            vacant.insert(Value::Object(children));
                        }
                        serde_json::map::Entry::Occupied(mut occupied) => merge_fields_v1(occupied.get_mut(), children),
                    }
                }
                fields
            }
        },
        _ => Map::new(),
    };
    if !fields.is_empty() && zero.is_absent() {
        fields.insert(".".into(), Value::Object(Map::new()));
    }
    Some(Value::Object(fields))
}

fn fields_v1_of_map(map: &Map<String, Value>, schema: &PatchSchema, zero: Zero) -> Map<String, Value> {
    map.iter()
        .filter_map(|(key, value)| {
            Some((field_element(key), fields_v1_of_value(value, &schema.apply_field(key), zero.field(key))?))
        })
        .collect()
}

/// The fields of a built-in type's Go zero value that hold an object or a list, by OpenAPI definition: the
/// definition of a non-pointer struct (an empty object there), or null for a field that is null there
/// (`data/zero-fields.json`, written by `scripts/zero-fields.py` from k8s.io/api).
type ZeroFields = HashMap<String, HashMap<String, Option<String>>>;

fn zero_fields() -> &'static ZeroFields {
    static FIELDS: OnceLock<ZeroFields> = OnceLock::new();
    FIELDS.get_or_init(|| {
        serde_json::from_str(include_str!("../data/zero-fields.json")).expect("zero-fields.json is valid")
    })
}

/// Where a node of an object stands in the zero value of its type. Upstream's managed fields of an Update are the
/// fields that differ from the object before, which for a create is the zero value: a map, struct or list that is
/// new is owned itself besides its members (`.` in FieldsV1). A Deployment's `spec`, `spec.strategy` and
/// `spec.template.metadata` are in the zero value (non-pointer structs); its labels, `strategy.rollingUpdate` or a
/// container's `ports` are not.
#[derive(Clone, Copy)]
enum Zero {
    Absent,
    /// Present, with the fields of its own that are present too (none known for a type without them).
    Present(Option<&'static HashMap<String, Option<String>>>),
}

impl Zero {
    /// The zero value of the object of a schema (a custom resource's holds nothing but itself).
    fn of_object(schema: &PatchSchema) -> Zero {
        Zero::Present(schema.definition().and_then(|name| zero_fields().get(name)))
    }

    fn field(self, key: &str) -> Zero {
        match self {
            Zero::Present(Some(fields)) => match fields.get(key) {
                Some(definition) => Zero::Present(definition.as_deref().and_then(|name| zero_fields().get(name))),
                None => Zero::Absent,
            },
            _ => Zero::Absent,
        }
    }

    fn is_absent(self) -> bool {
        matches!(self, Zero::Absent)
    }
}

/// Merges the node of a second list element with the same key into the first's: `{}` is a member without
/// children, and a member that also has children says so with ".".
fn merge_fields_v1(into: &mut Value, other: Map<String, Value>) {
    let Value::Object(into) = into else { return };
    let was_leaf = into.is_empty();
    let other_leaf = other.is_empty();
    for (key, value) in other {
        match (into.get_mut(&key), value) {
            (Some(existing), Value::Object(children)) => merge_fields_v1(existing, children),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
    if (was_leaf || other_leaf) && !into.is_empty() {
        into.insert(".".into(), Value::Object(Map::new()));
    }
}

/// `f:name`, without the formatting machinery (a create makes one per field).
fn field_element(key: &str) -> String {
    let mut element = String::with_capacity(key.len() + 2);
    element.push_str("f:");
    element.push_str(key);
    element
}

/// The fields an object (an applied configuration, or an object as written) sets, with list types from `schema`.
pub fn field_set(object: &Value, schema: &PatchSchema) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(map) = object.as_object() else { return set };
    let mut prefix = Vec::new();
    for (key, value) in map {
        if UNOWNED_TOP.contains(&key.as_str()) {
            continue;
        }
        let info = schema.apply_field(key);
        prefix.push(field_element(key));
        if key == "metadata" {
            if let Some(meta) = value.as_object() {
                let kept: Map<String, Value> = meta
                    .iter()
                    .filter(|(k, _)| !UNOWNED_META.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !kept.is_empty() {
                    walk_value(&Value::Object(kept), &info, &mut prefix, &mut set);
                }
            }
        } else {
            walk_value(value, &info, &mut prefix, &mut set);
        }
        prefix.pop();
    }
    set
}

fn walk_object(map: &Map<String, Value>, schema: &PatchSchema, prefix: &mut FieldPath, set: &mut FieldSet) {
    for (key, value) in map {
        let info = schema.apply_field(key);
        prefix.push(field_element(key));
        walk_value(value, &info, prefix, set);
        prefix.pop();
    }
}

fn walk_value(value: &Value, info: &ApplyField, prefix: &mut FieldPath, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !info.atomic_map && !map.is_empty() => walk_object(map, &info.schema, prefix, set),
        Value::Array(items) if !items.is_empty() => match info.list {
            ListType::Atomic => set.insert(prefix.clone()),
            ListType::Set => {
                for item in items {
                    prefix.push(format!("v:{item}"));
                    set.insert(prefix.clone());
                    prefix.pop();
                }
            }
            ListType::Map(keys) => {
                if items.iter().any(|item| key_element(item, keys).is_none()) {
                    set.insert(prefix.clone());
                    return;
                }
                for item in items {
                    prefix.push(key_element(item, keys).unwrap_or_default());
                    set.insert(prefix.clone());
                    if let Some(map) = item.as_object() {
                        walk_object(map, &info.schema, prefix, set);
                    }
                    prefix.pop();
                }
            }
        },
        _ => set.insert(prefix.clone()),
    }
}

/// The value of list-map key `key` of an element. A container port's `protocol` defaults to TCP (upstream
/// defaults the applied configuration before it computes keys; this is the one defaulted key in common use).
fn key_value(item: &Map<String, Value>, key: &str) -> Option<Value> {
    match item.get(key) {
        Some(value) => Some(value.clone()),
        None if key == "protocol" => Some(json!("TCP")),
        None => None,
    }
}

/// `k:{...}` of a list-map element, or `None` when it is not an object or lacks every key. Written directly, keys
/// in order as a JSON object prints them: a create makes one per container, port, env var, mount…
fn key_element(item: &Value, keys: &[String]) -> Option<String> {
    let map = item.as_object()?;
    if keys.iter().all(|k| !map.contains_key(k)) {
        return None;
    }
    let mut present: Vec<(&str, Value)> =
        keys.iter().filter_map(|k| key_value(map, k).map(|v| (k.as_str(), v))).collect();
    present.sort_by(|a, b| a.0.cmp(b.0));
    present.dedup_by(|a, b| a.0 == b.0);
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(b"k:{");
    for (i, (key, value)) in present.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        serde_json::to_writer(&mut out, value).ok()?;
    }
    out.push(b'}');
    String::from_utf8(out).ok()
}

/// Whether list element `item` is the one `element` (`k:…` or `v:…`) names.
fn element_matches(item: &Value, element: &str) -> bool {
    if let Some(keys) = element.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(keys) else { return false };
        let Some(map) = item.as_object() else { return false };
        keys.iter().all(|(k, v)| key_value(map, k).as_ref() == Some(v))
    } else if let Some(value) = element.strip_prefix("v:") {
        serde_json::from_str::<Value>(value).is_ok_and(|v| &v == item)
    } else {
        false
    }
}

/// The value at a path, if the object has it.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut node = object;
    for element in path {
        node = match element.strip_prefix("f:") {
            Some(field) => node.as_object()?.get(field)?,
            None => node.as_array()?.iter().find(|item| element_matches(item, element))?,
        };
    }
    Some(node)
}

/// Removes the value at a path (a field, or a list element); nothing if it is not there.
fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut node = object;
    for element in parents {
        node = match element.strip_prefix("f:") {
            Some(field) => match node.as_object_mut().and_then(|m| m.get_mut(field)) {
                Some(next) => next,
                None => return,
            },
            None => {
                match node.as_array_mut().and_then(|items| items.iter_mut().find(|i| element_matches(i, element))) {
                    Some(next) => next,
                    None => return,
                }
            }
        };
    }
    match last.strip_prefix("f:") {
        Some(field) => {
            if let Some(map) = node.as_object_mut() {
                map.remove(field);
            }
        }
        None => {
            if let Some(items) = node.as_array_mut() {
                items.retain(|item| !element_matches(item, last));
            }
        }
    }
}

/// Whether the value at `path` differs between `before` and `after`. A path with owned fields below it in `set`
/// (an object element of a list-map) only differs by existing or not.
fn differs(before: &Value, after: &Value, path: &[String], set: &FieldSet) -> bool {
    let (a, b) = (value_at(before, path), value_at(after, path));
    if set.has_below(path) {
        a.is_some() != b.is_some()
    } else {
        a != b
    }
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedEntry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagedEntry {
    fn from_value(value: &Value) -> ManagedEntry {
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
        ManagedEntry {
            manager: text("manager"),
            operation: text("operation"),
            api_version: text("apiVersion"),
            time: text("time"),
            subresource: text("subresource"),
            fields: FieldSet::from_fields_v1(&value["fieldsV1"]),
        }
    }

    fn to_value(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if !self.subresource.is_empty() {
            entry["subresource"] = json!(self.subresource);
        }
        entry
    }

    /// The manager as upstream names it in conflicts: `"kubectl-edit" using apps/v1`.
    pub fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

/// The managedFields entries of an object.
pub fn managed_fields(object: &Value) -> Vec<ManagedEntry> {
    object["metadata"]["managedFields"].as_array().into_iter().flatten().map(ManagedEntry::from_value).collect()
}

fn set_managed_fields(object: &mut Value, entries: Vec<ManagedEntry>) {
    let Some(root) = object.as_object_mut() else { return };
    let metadata = root.entry("metadata").or_insert_with(|| json!({}));
    let Some(metadata) = metadata.as_object_mut() else { return };
    let entries: Vec<Value> = entries.iter().filter(|e| !e.fields.is_empty()).map(ManagedEntry::to_value).collect();
    if entries.is_empty() {
        metadata.remove("managedFields");
    } else {
        metadata.insert("managedFields".into(), Value::Array(entries));
    }
}

/// A field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The owner's name.
    pub manager: String,
    /// The owner as upstream prints it (`"kubectl-client-side-apply" using apps/v1`).
    pub owner: String,
    /// The field, as upstream prints it (`.spec.replicas`).
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// Fields owned by other managers whose values the apply would change.
    Conflicts(Vec<Conflict>),
    /// The applied configuration is not an object.
    Invalid(String),
}

impl fmt::Display for ApplyError {
    /// Upstream's message: `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Invalid(message) => f.write_str(message),
            ApplyError::Conflicts(conflicts) if conflicts.len() == 1 => {
                let c = &conflicts[0];
                write!(f, "Apply failed with 1 conflict: conflict with {}: {}", c.owner, c.path)
            }
            ApplyError::Conflicts(conflicts) => {
                let mut owners: Vec<&str> = conflicts.iter().map(|c| c.owner.as_str()).collect();
                owners.sort();
                owners.dedup();
                let mut lines = Vec::new();
                for owner in owners {
                    lines.push(format!("conflicts with {owner}:"));
                    lines.extend(conflicts.iter().filter(|c| c.owner == owner).map(|c| format!("- {}", c.path)));
                }
                write!(f, "Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
            }
        }
    }
}

impl std::error::Error for ApplyError {}

/// Applies a configuration for `manager`: the object that results from it, with `metadata.managedFields`
/// rewritten, or the conflicts with other managers (which `force` overrides, taking their fields).
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    schema: &PatchSchema,
) -> Result<Value, ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::Invalid("the applied configuration must be an object".into()));
    }
    let empty = json!({});
    let live = live.unwrap_or(&empty);
    let mut entries = managed_fields(live);
    let applied_set = field_set(applied, schema);

    let mut conflicts = Vec::new();
    let mut taken: Vec<FieldSet> = vec![FieldSet::new(); entries.len()];
    for (entry, taken) in entries.iter().zip(taken.iter_mut()) {
        if entry.is(manager, "Apply", "") {
            continue;
        }
        for path in entry.fields.paths().filter(|p| applied_set.contains(p)) {
            if differs(live, applied, path, &applied_set) {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    owner: entry.describe(),
                    path: path_string(path),
                });
                taken.insert(path.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for (entry, taken) in entries.iter_mut().zip(&taken) {
        entry.fields.remove_all(taken);
    }

    let mut merged = live.clone();
    merge_value(&mut merged, applied, &ApplyField { schema: *schema, list: ListType::Atomic, atomic_map: false });

    let previous = entries.iter().find(|e| e.is(manager, "Apply", "")).map(|e| e.fields.clone()).unwrap_or_default();
    let others: Vec<&FieldSet> = entries.iter().filter(|e| !e.is(manager, "Apply", "")).map(|e| &e.fields).collect();
    let removed = previous.difference(&applied_set);
    for path in removed.paths() {
        if !applied_set.touches(path) && !others.iter().any(|set| set.touches(path)) {
            remove_at(&mut merged, path);
        }
    }

    let api_version = applied["apiVersion"].as_str().unwrap_or_default().to_owned();
    let own = ManagedEntry {
        manager: manager.to_owned(),
        operation: "Apply".into(),
        api_version,
        time: now(),
        subresource: String::new(),
        fields: applied_set,
    };
    match entries.iter_mut().find(|e| e.is(manager, "Apply", "")) {
        Some(entry) => *entry = own,
        None => entries.push(own),
    }
    set_managed_fields(&mut merged, entries);
    Ok(merged)
}

fn merge_value(live: &mut Value, applied: &Value, info: &ApplyField) {
    match (live, applied) {
        (Value::Object(live), Value::Object(applied)) if !info.atomic_map => {
            for (key, value) in applied {
                let field = info.schema.apply_field(key);
                match live.get_mut(key) {
                    Some(existing) => merge_value(existing, value, &field),
                    None => {
                        live.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(live), Value::Array(applied)) if info.list != ListType::Atomic => {
            let element = ApplyField { schema: info.schema, list: ListType::Atomic, atomic_map: false };
            for item in applied {
                let key = match info.list {
                    ListType::Map(keys) => key_element(item, keys),
                    _ => None,
                };
                let existing = match &key {
                    Some(key) => live.iter_mut().find(|l| element_matches(l, key)),
                    None => live.iter_mut().find(|l| *l == item),
                };
                match existing {
                    Some(existing) => merge_value(existing, item, &element),
                    None => live.push(item.clone()),
                }
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

/// Records an ordinary write (create, update, patch) by `manager` in `new`'s managedFields: the manager's
/// `Update` entry takes the fields the write set or changed, which leave the other managers' sets; fields the
/// object no longer has leave every set.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, schema: &PatchSchema) {
    record_update_subresource(old, new, manager, "", schema);
}

/// [`record_update`] for a write through a subresource (`scale`, `status`), named in the entry.
pub fn record_update_subresource(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    schema: &PatchSchema,
) {
    let Some(old) = old else {
        return record_create(new, manager, subresource, schema);
    };
    let mut entries = managed_fields(old);
    let mut new_set = field_set(new, schema);
    if subresource == "status" {
        // Status is owned through its subresource only (the main resource leaves it as it was).
        if let Some(status) = new.get("status") {
            let mut prefix = vec![field_element("status")];
            walk_value(status, &schema.apply_field("status"), &mut prefix, &mut new_set);
        }
    }
    // A null is no field set (see `fields_v1_of_object`).
    let set_and_changed =
        |p: &&FieldPath| differs(old, new, p, &new_set) && !value_at(new, p).is_some_and(Value::is_null);
    let mut changed = FieldSet { paths: new_set.paths().filter(set_and_changed).cloned().collect() };
    changed.paths.extend(added_nodes(old, new, schema, subresource).paths);
    for entry in &mut entries {
        entry.fields.paths.retain(|p| new_set.contains(p) || value_at(new, p).is_some());
        if !entry.is(manager, "Update", subresource) {
            entry.fields.remove_all(&changed);
        }
    }
    if !changed.is_empty() {
        let api_version = new["apiVersion"].as_str().unwrap_or_default().to_owned();
        match entries.iter_mut().find(|e| e.is(manager, "Update", subresource)) {
            Some(entry) => {
                entry.fields.paths.extend(changed.paths);
                entry.time = now();
                entry.api_version = api_version;
            }
            None => entries.push(ManagedEntry {
                manager: manager.to_owned(),
                operation: "Update".into(),
                api_version,
                time: now(),
                subresource: subresource.to_owned(),
                fields: changed,
            }),
        }
    }
    set_managed_fields(new, entries);
}

/// The maps, structs and lists with members that `new` has and `old` had not, as upstream's typed comparison
/// adds them (owned themselves, `.` in FieldsV1). One that the old object's Go value holds, being in `old` or in
/// its type's zero value, is not added.
fn added_nodes(old: &Value, new: &Value, schema: &PatchSchema, subresource: &str) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(new_map) = new.as_object() else { return set };
    let zero = Zero::of_object(schema);
    let mut prefix = Vec::new();
    for (key, value) in new_map {
        let owned_status = key == "status" && subresource == "status";
        if UNOWNED_TOP.contains(&key.as_str()) && !owned_status {
            continue;
        }
        let info = schema.apply_field(key);
        prefix.push(field_element(key));
        let before = old.get(key);
        if key == "metadata" {
            let fields = value.as_object().into_iter().flatten().filter(|(k, _)| !UNOWNED_META.contains(&k.as_str()));
            for (field, value) in fields {
                prefix.push(field_element(field));
                let before = before.and_then(|m| m.get(field));
                added_below(value, before, &info.schema.apply_field(field), Zero::Absent, &mut prefix, &mut set);
                prefix.pop();
            }
        } else {
            added_below(value, before, &info, zero.field(key), &mut prefix, &mut set);
        }
        prefix.pop();
    }
    set
}

/// [`added_nodes`] from the node at `prefix`, `new` now and `old` before; `zero` is its place in the zero value.
fn added_below(
    new: &Value,
    old: Option<&Value>,
    info: &ApplyField,
    zero: Zero,
    prefix: &mut FieldPath,
    set: &mut FieldSet,
) {
    let held = old.is_some() || !zero.is_absent();
    // The zero value of what lies below: the type's own when the old object has the node.
    let below = if old.is_some() { Zero::of_object(&info.schema) } else { zero };
    match new {
        Value::Object(map) if !info.atomic_map && map.values().any(|v| !v.is_null()) => {
            if !held {
                set.insert(prefix.clone());
            }
            for (key, value) in map {
                prefix.push(field_element(key));
                let before = old.and_then(|o| o.get(key));
                added_below(value, before, &info.schema.apply_field(key), below.field(key), prefix, set);
                prefix.pop();
            }
        }
        Value::Array(items) if !items.is_empty() && info.list != ListType::Atomic => {
            if !held {
                set.insert(prefix.clone());
            }
            let ListType::Map(keys) = info.list else { return };
            let old_elements: HashMap<String, &Value> = old
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|item| Some((key_element(item, keys)?, item)))
                .collect();
            for item in items {
                let (Some(element), Some(fields)) = (key_element(item, keys), item.as_object()) else { continue };
                let before = old_elements.get(&element).copied();
                let element_zero = if before.is_some() { Zero::of_object(&info.schema) } else { Zero::Absent };
                prefix.push(element);
                for (key, value) in fields {
                    prefix.push(field_element(key));
                    let old_value = before.and_then(|b| b.get(key));
                    added_below(value, old_value, &info.schema.apply_field(key), element_zero.field(key), prefix, set);
                    prefix.pop();
                }
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// [`record_update_subresource`] of a new object: the writer owns every field it sets, in the one entry.
fn record_create(new: &mut Value, manager: &str, subresource: &str, schema: &PatchSchema) {
    let fields = fields_v1_of_object(new, schema);
    let api_version = new["apiVersion"].as_str().unwrap_or_default().to_owned();
    let Some(root) = new.as_object_mut() else { return };
    let metadata = root.entry("metadata").or_insert_with(|| json!({}));
    let Some(metadata) = metadata.as_object_mut() else { return };
    if fields.is_empty() {
        metadata.remove("managedFields");
        return;
    }
    let mut entry = Map::new();
    entry.insert("manager".into(), json!(manager));
    entry.insert("operation".into(), json!("Update"));
    entry.insert("apiVersion".into(), json!(api_version));
    entry.insert("time".into(), json!(now()));
    entry.insert("fieldsType".into(), json!("FieldsV1"));
    entry.insert("fieldsV1".into(), Value::Object(fields));
    if !subresource.is_empty() {
        entry.insert("subresource".into(), json!(subresource));
    }
    metadata.insert("managedFields".into(), Value::Array(vec![Value::Object(entry)]));
}

/// The current time as RFC 3339 in UTC, to the second.
fn now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::schema_for_kind;

    fn deployment_schema() -> PatchSchema {
        schema_for_kind("apps", "v1", "Deployment").unwrap()
    }

    fn deployment(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "front", "namespace": "web", "labels": {"app": "front", "tier": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "front"}},
                "template": {
                    "metadata": {"labels": {"app": "front"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}]}
                }
            }
        })
    }

    fn entry<'a>(object: &'a Value, manager: &str) -> &'a Value {
        object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == manager)
            .unwrap_or_else(|| panic!("no entry for {manager}: {object}"))
    }

    #[test]
    fn apply_field_set_of_a_deployment() {
        let set = field_set(&deployment(2), &deployment_schema());
        let expected = json!({
            "f:metadata": {"f:labels": {"f:app": {}, "f:tier": {}}},
            "f:spec": {
                "f:replicas": {},
                // A LabelSelector is an atomic struct: owned whole, as upstream's managedFields show it.
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                    }}}
                }
            }
        });
        assert_eq!(set.to_fields_v1(), expected);
        assert_eq!(FieldSet::from_fields_v1(&expected), set);
        let containers = ["f:spec", "f:template", "f:spec", "f:containers", "k:{\"name\":\"app\"}", "f:image"];
        let path: FieldPath = containers.iter().map(|s| s.to_string()).collect();
        assert_eq!(path_string(&path), ".spec.template.spec.containers[name=\"app\"].image");
        assert_eq!(value_at(&deployment(2), &path), Some(&json!("nginx")));
    }

    #[test]
    fn apply_creates_with_an_apply_entry() {
        let created = apply(None, &deployment(2), "kubectl", false, &deployment_schema()).unwrap();
        let own = entry(&created, "kubectl");
        assert_eq!(own["operation"], "Apply");
        assert_eq!(own["apiVersion"], "apps/v1");
        assert_eq!(own["fieldsType"], "FieldsV1");
        assert_eq!(own["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
        assert!(own["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(created["spec"]["replicas"], 2);
    }

    #[test]
    fn apply_conflicts_with_another_managers_replicas_unless_forced() {
        let schema = deployment_schema();
        let created = apply(None, &deployment(2), "kubectl", false, &schema).unwrap();
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(Some(&created), &mut scaled, "kubectl-scale", &schema);
        let scaler = entry(&scaled, "kubectl-scale");
        assert_eq!(scaler["operation"], "Update");
        assert_eq!(scaler["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        assert!(entry(&scaled, "kubectl")["fieldsV1"]["f:spec"].get("f:replicas").is_none());

        let error = apply(Some(&scaled), &deployment(2), "kubectl", false, &schema).unwrap_err();
        let ApplyError::Conflicts(conflicts) = &error else { panic!("{error:?}") };
        assert_eq!(conflicts.len(), 1);
        assert_eq!((conflicts[0].manager.as_str(), conflicts[0].path.as_str()), ("kubectl-scale", ".spec.replicas"));
        assert_eq!(
            error.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas"
        );
        // The same value is no conflict: the field is shared.
        let shared = apply(Some(&scaled), &deployment(5), "kubectl", false, &schema).unwrap();
        assert_eq!(entry(&shared, "kubectl-scale")["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));

        let forced = apply(Some(&scaled), &deployment(2), "kubectl", true, &schema).unwrap();
        assert_eq!(forced["spec"]["replicas"], 2);
        assert_eq!(entry(&forced, "kubectl")["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
        let managers: Vec<&Value> =
            forced["metadata"]["managedFields"].as_array().unwrap().iter().map(|e| &e["manager"]).collect();
        assert_eq!(managers, [&json!("kubectl")], "the scaler's emptied entry is dropped");
    }

    /// The `.` members upstream records: a create owns each map, struct and list its type's zero value lacks
    /// (labels, `strategy.rollingUpdate`, a ConfigMap's `data`, everything inside a list element) besides their
    /// members; an update owns the ones it adds; a status write owns status fields.
    #[test]
    fn new_maps_and_structs_are_owned_themselves() {
        let schema = deployment_schema();
        // `kubectl create deployment web --image=nginx`, as stored after defaulting.
        let mut created = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "nginx", "image": "nginx", "resources": {},
                                        "terminationMessagePath": "/dev/termination-log",
                                        "terminationMessagePolicy": "File", "imagePullPolicy": "Always"}],
                        "restartPolicy": "Always",
                        "terminationGracePeriodSeconds": 30,
                        "dnsPolicy": "ClusterFirst",
                        "securityContext": {},
                        "schedulerName": "default-scheduler"
                    }
                },
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600
            },
            "status": {}
        });
        record_update(None, &mut created, "kubectl-create", &schema);
        // As upstream's API server records it.
        let upstream = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:progressDeadlineSeconds": {},
                "f:replicas": {},
                "f:revisionHistoryLimit": {},
                "f:selector": {},
                "f:strategy": {
                    "f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}},
                    "f:type": {}
                },
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        "f:containers": {
                            "k:{\"name\":\"nginx\"}": {
                                ".": {},
                                "f:image": {},
                                "f:imagePullPolicy": {},
                                "f:name": {},
                                "f:resources": {},
                                "f:terminationMessagePath": {},
                                "f:terminationMessagePolicy": {}
                            }
                        },
                        "f:dnsPolicy": {},
                        "f:restartPolicy": {},
                        "f:schedulerName": {},
                        "f:securityContext": {},
                        "f:terminationGracePeriodSeconds": {}
                    }
                }
            }
        });
        assert_eq!(entry(&created, "kubectl-create")["fieldsV1"], upstream);

        // Inside a new list element everything is new; a list the zero value lacks is owned itself.
        let mut edited = created.clone();
        let container = &mut edited["spec"]["template"]["spec"]["containers"][0];
        container["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
        container["resources"] = json!({"limits": {"cpu": "1"}});
        edited["metadata"]["annotations"] = json!({"note": "x"});
        record_update(Some(&created), &mut edited, "kubectl-edit", &schema);
        let fields = &entry(&edited, "kubectl-edit")["fieldsV1"];
        let container = &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"];
        assert_eq!(
            container["f:ports"],
            json!({".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}}),
            "{fields}"
        );
        // `resources` was there (a non-pointer struct of the container); its limits are new.
        assert_eq!(container["f:resources"], json!({"f:limits": {".": {}, "f:cpu": {}}}), "{fields}");
        assert_eq!(fields["f:metadata"], json!({"f:annotations": {".": {}, "f:note": {}}}), "{fields}");

        // A map in a type's zero value only as null (a ConfigMap has no such field; `data` is absent): owned.
        let mut config =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
        record_update(None, &mut config, "kubectl-create", &schema_for_kind("", "v1", "ConfigMap").unwrap());
        assert_eq!(entry(&config, "kubectl-create")["fieldsV1"], json!({"f:data": {".": {}, "f:k": {}}}));

        // A status write owns what it changes in status, under its subresource; `status` is in the zero value.
        let mut reported = edited.clone();
        reported["status"] = json!({"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
        record_update_subresource(Some(&edited), &mut reported, "kube-controller-manager", "status", &schema);
        let status = reported["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["subresource"] == "status")
            .expect("a status entry");
        assert_eq!(
            status["fieldsV1"],
            json!({"f:status": {
                "f:conditions": {".": {}, "k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}},
                "f:replicas": {}
            }}),
            "{status}"
        );
    }

    /// As `kubectl create deployment` writes it: upstream's managedFields leave out the template's
    /// `creationTimestamp: null` and own the selector whole.
    #[test]
    fn a_written_object_owns_no_nulls_and_atomic_structs_whole() {
        let schema = deployment_schema();
        let mut created = deployment(2);
        created["spec"]["template"]["metadata"]["creationTimestamp"] = Value::Null;
        created["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({});
        created["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": null}});
        record_update(None, &mut created, "kubectl-create", &schema);
        let fields = &entry(&created, "kubectl-create")["fieldsV1"];
        assert_eq!(fields["f:spec"]["f:selector"], json!({}), "{fields}");
        // The template's metadata is in a Deployment's zero value, its labels are not.
        assert_eq!(
            fields["f:spec"]["f:template"]["f:metadata"],
            json!({"f:labels": {".": {}, "f:app": {}}}),
            "{fields}"
        );
        assert!(fields["f:spec"].get("f:strategy").is_none(), "a map of nulls is no field: {fields}");
        let container = &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
        assert_eq!(container["f:resources"], json!({}), "an empty map is a field: {fields}");

        // An update that sets a field to null does not take it.
        let mut edited = created.clone();
        edited["spec"]["replicas"] = Value::Null;
        edited["spec"]["paused"] = json!(true);
        record_update(Some(&created), &mut edited, "kubectl-edit", &schema);
        assert_eq!(entry(&edited, "kubectl-edit")["fieldsV1"], json!({"f:spec": {"f:paused": {}}}));
    }

    #[test]
    fn apply_removes_fields_no_longer_applied() {
        let schema = deployment_schema();
        let created = apply(None, &deployment(2), "kubectl", false, &schema).unwrap();
        let mut without = deployment(2);
        without["metadata"]["labels"].as_object_mut().unwrap().remove("tier");
        let applied = apply(Some(&created), &without, "kubectl", false, &schema).unwrap();
        assert_eq!(applied["metadata"]["labels"], json!({"app": "front"}));
        assert!(entry(&applied, "kubectl")["fieldsV1"]["f:metadata"]["f:labels"].get("f:tier").is_none());

        // A field another manager also owns stays.
        let mut labelled = created.clone();
        labelled["metadata"]["labels"]["tier"] = json!("front");
        record_update(Some(&created), &mut labelled, "kubectl-label", &schema);
        let applied = apply(Some(&labelled), &without, "kubectl", true, &schema).unwrap();
        assert_eq!(applied["metadata"]["labels"]["tier"], "front");
    }

    #[test]
    fn apply_merges_containers_by_name() {
        let schema = deployment_schema();
        let created = apply(None, &deployment(2), "kubectl", false, &schema).unwrap();
        let mut edited = created.clone();
        edited["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": "busybox"}));
        record_update(Some(&created), &mut edited, "kubectl-edit", &schema);
        let editor = entry(&edited, "kubectl-edit");
        assert!(editor["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"sidecar\"}"]
            .is_object());

        let mut next = deployment(2);
        next["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        let applied = apply(Some(&edited), &next, "kubectl", false, &schema).unwrap();
        let containers = &applied["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 2, "{containers}");
        assert_eq!(containers[0]["image"], "nginx:1.27");
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 80}]));
        assert_eq!(containers[1], json!({"name": "sidecar", "image": "busybox"}));

        // Dropping a container this manager alone applied removes it.
        let mut two = next.clone();
        two["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "log", "image": "x"}));
        let with_log = apply(Some(&applied), &two, "kubectl", false, &schema).unwrap();
        assert_eq!(with_log["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 3);
        let without_log = apply(Some(&with_log), &next, "kubectl", false, &schema).unwrap();
        let names: Vec<&Value> = without_log["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, [&json!("app"), &json!("sidecar")]);
    }

    #[test]
    fn apply_record_update_owns_what_a_create_sets() {
        let schema = deployment_schema();
        let mut object = deployment(3);
        record_update(None, &mut object, "kubectl-client-side-apply", &schema);
        let own = entry(&object, "kubectl-client-side-apply");
        assert_eq!(own["operation"], "Update");
        assert_eq!(own["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
        let error = apply(Some(&object), &deployment(2), "kubectl", false, &schema).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
    }

    #[test]
    fn apply_create_records_the_field_set_of_the_object() {
        let schema = schema_for_kind("", "v1", "Pod").unwrap();
        let pods = [
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "uid": "u", "labels": {"a": "b"}, "finalizers": ["x", "y", "x"],
                             "managedFields": [{"manager": "old"}]},
                "spec": {
                    "containers": [
                        {"name": "a", "image": "i", "ports": [{"containerPort": 80}, {"containerPort": 80, "protocol": "UDP"}]},
                        {"name": "a", "image": {"odd": 1}, "env": [], "resources": {}},
                        {"name": "b", "ports": [{"name": "no-key"}]},
                    ],
                    "nodeSelector": {"disk": "ssd"},
                    "tolerations": [{"key": "k"}],
                },
                "status": {"phase": "Pending"},
            }),
            json!({"kind": "Pod", "metadata": {"name": "only-unowned"}, "spec": {"containers": [1, 2]}}),
            json!({"metadata": {"name": "p"}}),
            json!({"spec": {}}),
            json!({}),
            json!("not an object"),
        ];
        for pod in pods {
            // A create is an update of an object that had nothing but its type's zero value.
            let mut set = field_set(&pod, &schema);
            set.paths.extend(added_nodes(&json!({}), &pod, &schema, "").paths);
            let expected = set.to_fields_v1();
            assert_eq!(Value::Object(fields_v1_of_object(&pod, &schema)), expected, "{pod}");
            let mut created = pod.clone();
            record_update(None, &mut created, "m", &schema);
            let entries = managed_fields(&created);
            if expected == json!({}) {
                assert!(entries.is_empty(), "{created}");
                assert_eq!(created.get("metadata").is_some(), pod.is_object(), "{created}");
            } else {
                assert_eq!(entries.len(), 1, "{created}");
                assert_eq!(created["metadata"]["managedFields"][0]["fieldsV1"], expected);
                assert_eq!(entries[0].api_version, pod["apiVersion"].as_str().unwrap_or_default());
                assert!(entries[0].is("m", "Update", ""));
            }
        }
    }

    #[test]
    fn apply_time_is_rfc3339() {
        let time = now();
        assert_eq!(time.len(), 20, "{time}");
        assert!(time.starts_with("20"), "{time}");
    }
}
