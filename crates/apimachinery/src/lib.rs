//! The Kubernetes object model for k8rs: the resource registry (what discovery lists and how each resource is
//! served), label and field selectors, and `metav1.Status` errors.
//!
//! Pure data and functions: no I/O, no HTTP, no storage. The API server and every client-side component build on it.

pub mod apply;
pub mod conversion;
pub mod defaults;
#[cfg(test)]
mod k8s_kinds;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod quantity;
pub mod registry;
pub mod selector;
pub mod status;
pub mod time;
pub mod validation;
