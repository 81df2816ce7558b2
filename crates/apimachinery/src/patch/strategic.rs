//! Applying a strategic merge patch, as kube-apiserver does for `application/strategic-merge-patch+json`
//! (k8s.io/apimachinery/pkg/util/strategicpatch with `MergeParallelList` and `IgnoreUnmatchedNulls`).
//!
//! Upstream leaves some directive keys and `null`s in values it copies from the patch verbatim (new fields,
//! replaced lists and maps) and relies on decoding into Go structs to drop them; here they are dropped as that
//! decoding would, so the result never holds a directive.

use std::fmt;

use serde_json::{Map, Value};

use super::schema::{FieldPatch, PatchSchema, Strategy};

type Object = Map<String, Value>;

/// `$patch: replace | delete | merge` on a map or as a list element.
const PATCH: &str = "$patch";
/// The keys a map keeps after the merge.
const RETAIN_KEYS: &str = "$retainKeys";
/// `$deleteFromPrimitiveList/<field>`: values to remove from a merging list of primitives.
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
/// `$setElementOrder/<field>`: the order of a merged list's elements.
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Applies a strategic merge `patch` to `original`, an object of the type `schema` describes.
///
/// `original` may be `null` (an empty object); `patch` must be an object.
pub fn strategic_merge(original: &Value, patch: &Value, schema: &PatchSchema) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::bad_request("invalid JSON document: a strategic merge patch must be a JSON object"));
    };
    let original = match original {
        Value::Object(original) => original.clone(),
        Value::Null => Object::new(),
        _ => return Err(PatchError::bad_request("invalid JSON document: the object to patch must be a JSON object")),
    };
    merge_map(original, patch.clone(), *schema).map(Value::Object)
}

/// Why a patch could not be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchError {
    code: u16,
    message: String,
}

impl PatchError {
    /// The HTTP status to answer with: 400 when the patch document is malformed (not an object, a bad directive),
    /// 422 when it cannot be applied to this object (a list element without its merge key, mismatched lists).
    /// Upstream answers 500 for some of the latter.
    pub fn code(&self) -> u16 {
        self.code
    }

    fn bad_request(message: impl Into<String>) -> PatchError {
        PatchError { code: 400, message: message.into() }
    }

    fn unprocessable(message: impl Into<String>) -> PatchError {
        PatchError { code: 422, message: message.into() }
    }

    fn no_merge_key(map: &Object, merge_key: &str) -> PatchError {
        PatchError::unprocessable(format!(
            "map: {} does not contain declared merge key: {merge_key}",
            GoFmt(&Value::Object(map.clone()))
        ))
    }

    fn unknown_directive(directive: &Value, map: &Object) -> PatchError {
        let mut map = map.clone();
        map.insert(PATCH.to_owned(), directive.clone());
        PatchError::bad_request(format!(
            "unknown patch type: {} in map: {}",
            GoFmt(directive),
            GoFmt(&Value::Object(map))
        ))
    }

    fn not_a_list(what: &str, value: &Value) -> PatchError {
        PatchError::bad_request(format!("expected a list for {what}, but received {}", type_name(value)))
    }
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PatchError {}

/// Merges a patch map into an original map (upstream `mergeMap`).
fn merge_map(mut original: Object, mut patch: Object, schema: PatchSchema) -> Result<Object, PatchError> {
    if let Some(directive) = patch.remove(PATCH) {
        return match directive.as_str() {
            Some("replace") => Ok(strip_object(patch)),
            Some("delete") => Ok(Object::new()),
            _ => Err(PatchError::unknown_directive(&directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_set_element_order(&mut original, &mut patch, schema)?;

    // Keys come in serde_json's map order: sorted (`$deleteFromPrimitiveList/x` before `x`), or the document's
    // with its `preserve_order` feature. Upstream takes Go's map order, which mostly follows the document (sorted
    // when kubectl wrote it); it only matters when a patch both adds and deletes one value.
    for (key, value) in patch {
        let (key, delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(field) => (field.to_owned(), true),
            None => (key, false),
        };
        if value.is_null() {
            original.remove(&key);
            continue;
        }
        let merged = match (original.remove(&key), value) {
            // A deletion list for a field the object does not have, or whose type differs, changes nothing.
            (None, _) if delete_list => None,
            (Some(current), value) if delete_list && kind(&current) != kind(&value) => Some(current),
            (Some(Value::Object(current)), Value::Object(value)) => {
                let (schema, field) = schema.map_field(&key);
                if field.strategy == Strategy::Replace {
                    Some(Value::Object(strip_object(value)))
                } else {
                    Some(Value::Object(merge_map(current, value, schema)?))
                }
            }
            (Some(Value::Array(current)), Value::Array(value)) => {
                let (schema, field) = schema.list_field(&key);
                Some(Value::Array(merge_list_field(current, value, schema, field, delete_list)?))
            }
            // New fields, type changes and primitives take the patch value.
            (_, value) => remove_directives(value),
        };
        if let Some(merged) = merged {
            original.insert(key, merged);
        }
    }
    Ok(original)
}

/// `$retainKeys`: drops the original's keys that are not listed; every non-null key of the patch must be listed.
fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::bad_request("invalid patch format of retainKeys: $retainKeys must be a list"));
    };
    let retained = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch.iter() {
        let directive = key.starts_with(DELETE_FROM_PRIMITIVE_LIST) || key.starts_with(SET_ELEMENT_ORDER);
        if !value.is_null() && !directive && !retained(key) {
            return Err(PatchError::bad_request(format!(
                "invalid patch format of retainKeys: {key:?} is patched but not in $retainKeys"
            )));
        }
    }
    original.retain(|key, _| retained(key));
    Ok(())
}

/// `$setElementOrder/<field>`: merges the field's list now and orders the result: the listed elements in the
/// directive's order, the others (only in the original) kept where they were relative to the listed ones
/// (upstream `mergePatchIntoOriginal`).
fn apply_set_element_order(original: &mut Object, patch: &mut Object, schema: PatchSchema) -> Result<(), PatchError> {
    let directives: Vec<String> = patch.keys().filter(|key| key.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for directive in directives {
        let order = match patch.remove(&directive) {
            Some(Value::Array(order)) => order,
            Some(other) => return Err(PatchError::not_a_list(&directive, &other)),
            None => continue,
        };
        let field = &directive[SET_ELEMENT_ORDER.len()..];
        let current = match original.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => Some(list),
            Some(other) => return Err(PatchError::not_a_list(field, &other)),
        };
        let patch_list = match patch.remove(field) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(other) => return Err(PatchError::not_a_list(field, &other)),
        };
        let (element_schema, field_patch) = schema.list_field(field);
        let merge_key = field_patch.merge_key;
        validate_element_order(patch_list.as_deref().unwrap_or_default(), &order, merge_key)?;
        let element =
            element_kind(&[current.as_deref().unwrap_or_default(), patch_list.as_deref().unwrap_or_default()]);
        let server_order = match (&current, &patch_list, &element) {
            (Some(current), Some(patch_list), Ok(Kind::Object)) if field_patch.strategy == Strategy::Merge => {
                upstream_original_view(current, patch_list, merge_key)
            }
            _ => current.clone().unwrap_or_default(),
        };
        let merged = match (current, patch_list) {
            (None, None) => continue,
            (Some(current), None) => current,
            (None, Some(patch_list)) => patch_list.into_iter().filter_map(remove_directives).collect(),
            (Some(current), Some(patch_list)) => {
                merge_list_field(current, patch_list, element_schema, field_patch, false)?
            }
        };
        let element = element?;
        let (listed, server_only) = partition(merged, &order, merge_key)?;
        let ordered = normalize_order(listed, server_only, &order, &server_order, merge_key, element)?;
        original.insert(field.to_owned(), Value::Array(ordered));
    }
    Ok(())
}

/// The original list as upstream sees it when it orders the merged list. Its view shares storage with the merge:
/// each `$patch: delete` shifts the later elements down in place (leaving the last slot stale) and the elements
/// the merge appends refill the freed slots. Where the server-only elements land depends on it, so it is
/// reproduced (malformed elements are skipped here; the merge reports them).
fn upstream_original_view(current: &[Value], patch: &[Value], merge_key: &str) -> Vec<Value> {
    let mut view = current.to_vec();
    let mut len = view.len();
    let mut replace = false;
    for item in patch {
        match item.get(PATCH).and_then(Value::as_str) {
            Some("delete") => {
                let Some(key) = item.get(merge_key) else {
                    continue;
                };
                while let Some(i) = view[..len].iter().position(|o| o.get(merge_key) == Some(key)) {
                    for j in i + 1..len {
                        view[j - 1] = view[j].clone();
                    }
                    len -= 1;
                }
            }
            Some("replace") => replace = true,
            _ => {}
        }
    }
    if replace {
        return view;
    }
    let mut appended: Vec<&Value> = Vec::new();
    for item in patch.iter().filter(|item| item.get(PATCH).is_none()) {
        let Some(key) = item.get(merge_key) else {
            continue;
        };
        let merges =
            view[..len.min(view.len())].iter().any(|o| o.get(merge_key) == Some(key)) || appended.contains(&key);
        if merges {
            continue;
        }
        if len < view.len() {
            view[len] = strip_directives(item.clone());
        }
        len += 1;
        appended.push(key);
    }
    view
}

/// Checks that the patch list's elements appear in the `$setElementOrder` list, in the same relative order.
fn validate_element_order(patch_list: &[Value], order: &[Value], merge_key: &str) -> Result<(), PatchError> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut items = Vec::with_capacity(patch_list.len());
    for item in patch_list {
        if merge_key.is_empty() {
            items.push(item);
        } else {
            let map = item.as_object().ok_or_else(|| not_a_map(item))?;
            if map.get(PATCH).and_then(Value::as_str) != Some("delete") {
                items.push(item);
            }
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < items.len() && j < order.len() {
        if items[i].get(PATCH).is_some() {
            i += 1;
            continue;
        }
        if same_element(items[i], &order[j], merge_key)? {
            i += 1;
        }
        j += 1;
    }
    if i < items.len() {
        return Err(PatchError::unprocessable(format!(
            "the order in patch list {} doesn't match $setElementOrder list {}",
            GoFmt(&Value::Array(patch_list.to_vec())),
            GoFmt(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

/// Whether two list elements are the same one: by merge key, or by value for primitives.
fn same_element(left: &Value, right: &Value, merge_key: &str) -> Result<bool, PatchError> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let key = |item: &Value| -> Result<Value, PatchError> {
        let map = item.as_object().ok_or_else(|| not_a_map(item))?;
        map.get(merge_key).cloned().ok_or_else(|| PatchError::no_merge_key(map, merge_key))
    };
    Ok(key(left)? == key(right)?)
}

/// Merges the lists of a field per its strategy (upstream `mergeSliceHandler`): deletion lists and merging lists
/// merge, other lists are replaced by the patch.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: PatchSchema,
    field: FieldPatch,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if field.strategy == Strategy::Merge || delete_list {
        merge_list(original, patch, schema, field.merge_key, delete_list)
    } else {
        Ok(strip_list(patch))
    }
}

/// Merges two lists (upstream `mergeSlice`): primitives as a set, maps by merge key. The result holds the patch's
/// elements in the patch's order, with the original-only elements kept in place relative to them.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: PatchSchema,
    merge_key: &str,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let element = element_kind(&[&original, &patch])?;
    if element != Kind::Object {
        if delete_list {
            return Ok(original.into_iter().filter(|v| !contains(&patch, v)).collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for item in original.iter().chain(&patch) {
            if !contains(&merged, item) {
                merged.push(item.clone());
            }
        }
        let (in_patch, server_only) = partition(merged, &patch, "")?;
        return normalize_order(in_patch, server_only, &patch, &original, "", element);
    }
    if merge_key.is_empty() {
        return Err(PatchError::unprocessable(format!("cannot merge lists without merge key for {}", schema.name())));
    }
    let (original, patch) = apply_list_directives(original, patch, merge_key)?;
    let mut merged = original.clone();
    for item in &patch {
        let Value::Object(item) = item else {
            return Err(not_a_map(item));
        };
        let key = item.get(merge_key).ok_or_else(|| PatchError::no_merge_key(item, merge_key))?;
        match merged.iter().position(|m| m.get(merge_key).is_some_and(|k| k == key)) {
            Some(i) => {
                let current = match std::mem::take(&mut merged[i]) {
                    Value::Object(current) => current,
                    other => return Err(not_a_map(&other)),
                };
                merged[i] = Value::Object(merge_map(current, item.clone(), schema)?);
            }
            None => merged.push(Value::Object(strip_object(item.clone()))),
        }
    }
    let (in_patch, server_only) = partition(merged, &patch, merge_key)?;
    normalize_order(in_patch, server_only, &patch, &original, merge_key, element)
}

/// Applies the `$patch` elements of a merging list of maps: `delete` removes the original's elements with that
/// merge key, `replace` makes the rest of the patch the whole list. Returns the original and patch to merge.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(PATCH) else {
            rest.push(item);
            continue;
        };
        let map = item.as_object().ok_or_else(|| not_a_map(&item))?;
        match directive.as_str() {
            Some("delete") => {
                let key = map.get(merge_key).ok_or_else(|| PatchError::no_merge_key(map, merge_key))?;
                original.retain(|o| !o.get(merge_key).is_some_and(|k| k == key));
            }
            Some("replace") => replace = true,
            Some("merge") => return Err(PatchError::bad_request("merging lists cannot yet be specified in the patch")),
            _ => {
                let mut map = map.clone();
                let directive = map.remove(PATCH).unwrap_or_default();
                return Err(PatchError::unknown_directive(&directive, &map));
            }
        }
    }
    if replace {
        Ok((strip_list(rest), Vec::new()))
    } else {
        Ok((original, rest))
    }
}

/// Splits `list` into the elements present in `by` and the others, each in `list`'s order.
fn partition(list: Vec<Value>, by: &[Value], merge_key: &str) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let (mut present, mut absent) = (Vec::new(), Vec::new());
    for item in list {
        let found = if merge_key.is_empty() {
            contains(by, &item)
        } else {
            let map = item.as_object().ok_or_else(|| not_a_map(&item))?;
            let key = map.get(merge_key).ok_or_else(|| PatchError::no_merge_key(map, merge_key))?;
            let mut found = false;
            for candidate in by {
                let candidate = candidate.as_object().ok_or_else(|| not_a_map(candidate))?;
                if candidate.get(merge_key).is_some_and(|k| k == key) {
                    found = true;
                    break;
                }
            }
            found
        };
        if found {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Orders the patch's elements by `patch_order` and the server-only ones by `server_order`, then interleaves them:
/// a server-only element goes before a patch element when the original had it first (upstream
/// `normalizeElementOrder` and `mergeSortedSlice`).
fn normalize_order(
    in_patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    element: Kind,
) -> Result<Vec<Value>, PatchError> {
    let in_patch = sort_by_order(in_patch, patch_order, merge_key, element)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, element)?;
    let mut merged = Vec::with_capacity(in_patch.len() + server_only.len());
    let (mut left, mut right) = (server_only.into_iter().peekable(), in_patch.into_iter().peekable());
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                let l = position(server_order, l, merge_key, element);
                let r = position(server_order, r, merge_key, element);
                matches!((l, r), (Some(i), Some(j)) if i < j)
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        merged.extend(if take_left { left.next() } else { right.next() });
    }
    Ok(merged)
}

/// Stable-sorts `items` by their position in `order`, after checking that maps carry the merge key (upstream
/// `normalizeSliceOrder`).
fn sort_by_order(
    mut items: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    element: Kind,
) -> Result<Vec<Value>, PatchError> {
    if element == Kind::Object {
        for item in items.iter().chain(order) {
            let map = item.as_object().ok_or_else(|| not_a_map(item))?;
            if !map.contains_key(merge_key) {
                return Err(PatchError::no_merge_key(map, merge_key));
            }
        }
    }
    items.sort_by_cached_key(|item| position(order, item, merge_key, element).unwrap_or(usize::MAX));
    Ok(items)
}

/// The index of `item` in `list`: by merge key for maps, by value otherwise.
fn position(list: &[Value], item: &Value, merge_key: &str, element: Kind) -> Option<usize> {
    let wanted = order_key(item, merge_key, element);
    list.iter().position(|candidate| match (order_key(candidate, merge_key, element), wanted) {
        (Some(a), Some(b)) => a == b,
        (a, b) => a.is_none() && b.is_none(),
    })
}

fn order_key<'a>(item: &'a Value, merge_key: &str, element: Kind) -> Option<&'a Value> {
    if element == Kind::Object {
        item.get(merge_key)
    } else {
        Some(item)
    }
}

/// The JSON type of a value, as far as merging cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn kind(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

/// The one element type of some lists; lists of lists and mixed lists cannot be merged.
fn element_kind(lists: &[&[Value]]) -> Result<Kind, PatchError> {
    let mut element = None;
    for item in lists.iter().copied().flatten() {
        match (element, kind(item)) {
            (_, Kind::Array) => return Err(PatchError::unprocessable("lists of lists are not supported")),
            (None, k) => element = Some(k),
            (Some(e), k) if e != k => {
                let lists: Vec<Value> = lists.iter().map(|l| Value::Array(l.to_vec())).collect();
                return Err(PatchError::unprocessable(format!(
                    "list element types are not identical: {}",
                    GoFmt(&Value::Array(lists))
                )));
            }
            _ => {}
        }
    }
    element.ok_or_else(|| PatchError::unprocessable("no elements in any of the given slices"))
}

/// A new value from the patch (upstream `removeDirectives` after `discardNullValuesFromPatch`): maps holding
/// `$patch` are dropped, as are `null` map values and the other directive keys.
fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) if map.contains_key(PATCH) => None,
        Value::Object(map) => Some(Value::Object(
            map.into_iter()
                .filter(|(key, value)| !value.is_null() && !is_directive(key))
                .filter_map(|(key, value)| Some((key, remove_directives(value)?)))
                .collect(),
        )),
        Value::Array(list) => Some(Value::Array(list.into_iter().filter_map(remove_directives).collect())),
        other => Some(other),
    }
}

/// A value upstream copies from the patch verbatim (replaced lists and maps, list elements it appends), less
/// what decoding into the Go type drops: directive keys and `null` map values.
fn strip_directives(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(strip_object(map)),
        Value::Array(list) => Value::Array(strip_list(list)),
        other => other,
    }
}

fn strip_object(map: Object) -> Object {
    map.into_iter()
        .filter(|(key, value)| !value.is_null() && !is_directive(key))
        .map(|(key, value)| (key, strip_directives(value)))
        .collect()
}

fn strip_list(list: Vec<Value>) -> Vec<Value> {
    list.into_iter().map(strip_directives).collect()
}

fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

fn contains(list: &[Value], item: &Value) -> bool {
    list.contains(item)
}

fn not_a_map(value: &Value) -> PatchError {
    PatchError::unprocessable(format!("expected a map, but received {}", type_name(value)))
}

fn type_name(value: &Value) -> &'static str {
    match kind(value) {
        Kind::Null => "null",
        Kind::Bool => "a boolean",
        Kind::Number => "a number",
        Kind::String => "a string",
        Kind::Array => "a list",
        Kind::Object => "a map",
    }
}

/// A value printed as Go's `%v` prints decoded JSON (`map[k:v]`, `[a b]`), as upstream's messages show it.
struct GoFmt<'a>(&'a Value);

impl fmt::Display for GoFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Null => f.write_str("<nil>"),
            Value::String(s) => f.write_str(s),
            Value::Bool(_) | Value::Number(_) => write!(f, "{}", self.0),
            Value::Array(list) => {
                f.write_str("[")?;
                for (i, item) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{}", GoFmt(item))?;
                }
                f.write_str("]")
            }
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                f.write_str("map[")?;
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{key}:{}", GoFmt(&map[key]))?;
                }
                f.write_str("]")
            }
        }
    }
}
