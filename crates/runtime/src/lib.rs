//! The node's container runtime: OCI images (registry pulls, archive import, content-addressed blobs, unpacked
//! layers, overlay root filesystems) and containers (pod sandboxes with their namespaces and cgroups, one `k8rs shim`
//! per container driving runc or crun). It knows nothing of the Kubernetes API: the kubelet translates pods into the
//! calls made here.

pub mod container;
pub mod image;
