//! Strategic merge patch (`application/strategic-merge-patch+json`), the patch kubectl sends for `kubectl
//! patch`, `set image`, `scale`, `label` and client-side `apply`, with the semantics of upstream
//! k8s.io/apimachinery/pkg/util/strategicpatch.
//!
//! A strategic merge patch is a JSON merge patch whose lists can merge: a list field tagged with patch strategy
//! `merge` merges its elements by the field's merge key (containers by `name`, ports by `containerPort`) or, for
//! primitives, as a set; directives (`$patch`, `$retainKeys`, `$setElementOrder/…`, `$deleteFromPrimitiveList/…`)
//! replace, delete and order. Which strategy applies where comes from [`PatchSchema`], obtained per kind with
//! [`schema_for_kind`].
//!
//! ```
//! use apimachinery::patch::{schema_for_kind, strategic_merge};
//! use serde_json::json;
//!
//! let schema = schema_for_kind("", "v1", "Pod").unwrap();
//! let pod = json!({"spec": {"containers": [{"name": "app", "image": "nginx:1"}, {"name": "log", "image": "x"}]}});
//! let patch = json!({"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}});
//! let patched = strategic_merge(&pod, &patch, &schema).unwrap();
//! let containers = json!([{"name": "app", "image": "nginx:2"}, {"name": "log", "image": "x"}]);
//! assert_eq!(patched["spec"]["containers"], containers);
//! ```

mod schema;
mod strategic;

pub use schema::{schema_for_kind, ApplyField, ListType, PatchSchema};
pub use strategic::{strategic_merge, PatchError};

#[cfg(test)]
mod tests;
