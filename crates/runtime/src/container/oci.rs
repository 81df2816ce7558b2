//! The OCI runtime spec (config.json) of a container in a pod sandbox.

use std::path::PathBuf;

use oci_spec::runtime::{
    get_default_maskedpaths, get_default_mounts, get_default_readonly_paths, Capability, LinuxBuilder,
    LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxResourcesBuilder, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

use super::{ContainerSpec, RuntimeError, Sandbox};

/// Docker's default capabilities, CAP_NET_RAW included (containerd dropped it; busybox ping wants it).
const CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

pub(super) fn build(sandbox: &Sandbox, spec: &ContainerSpec, cgroups_path: String) -> Result<Spec, RuntimeError> {
    if spec.args.is_empty() {
        return Err(RuntimeError::InvalidArgument(format!("container {}: no command", spec.name)));
    }
    let caps: oci_spec::runtime::Capabilities = CAPABILITIES.into_iter().collect();
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(UserBuilder::default().uid(spec.uid).gid(spec.gid).build()?)
        .args(spec.args.clone())
        .env(spec.env.clone())
        .cwd(if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() })
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .build()?,
        )
        // Kubernetes' default (allowPrivilegeEscalation: true).
        .no_new_privileges(false)
        // Inherited from the shim, as containerd's containers inherit its limits (not oci-spec's example 1024).
        .rlimits(Vec::new())
        .build()?;

    let mut mounts = get_default_mounts();
    for m in &spec.mounts {
        let mode = if m.read_only { "ro" } else { "rw" };
        mounts.push(
            MountBuilder::default()
                .destination(PathBuf::from(&m.destination))
                .typ("bind")
                .source(m.source.clone())
                .options(vec!["rbind".to_string(), "rprivate".to_string(), mode.to_string()])
                .build()?,
        );
    }

    // pid and mount are the container's own; the pod's namespaces are joined by path (host network: no entry, so
    // the runtime's network namespace, the host's, is kept).
    let mut namespaces = vec![new_ns(LinuxNamespaceType::Pid)?, new_ns(LinuxNamespaceType::Mount)?];
    if let Some(netns) = &sandbox.netns {
        namespaces.push(join_ns(LinuxNamespaceType::Network, netns.clone())?);
    }
    namespaces.push(join_ns(LinuxNamespaceType::Ipc, sandbox.ipc_ns.clone())?);
    namespaces.push(join_ns(LinuxNamespaceType::Uts, sandbox.uts_ns.clone())?);

    let mut resources = LinuxResourcesBuilder::default()
        // Deny all devices; the runtime allows its default set (null, zero, tty, …) on top.
        .devices(vec![LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build()?]);
    if let Some(limit) = spec.memory_limit {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).swap(limit).build()?);
    }
    if spec.cpu_shares.is_some() || spec.cpu_quota.is_some() || spec.cpu_period.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(shares) = spec.cpu_shares {
            cpu = cpu.shares(shares);
        }
        if let Some(quota) = spec.cpu_quota {
            cpu = cpu.quota(quota);
        }
        if let Some(period) = spec.cpu_period {
            cpu = cpu.period(period);
        }
        resources = resources.cpu(cpu.build()?);
    }

    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(cgroups_path))
        .resources(resources.build()?)
        .masked_paths(get_default_maskedpaths())
        .readonly_paths(get_default_readonly_paths())
        .build()?;

    let mut config = SpecBuilder::default()
        .version("1.0.2")
        .root(RootBuilder::default().path(spec.rootfs.clone()).readonly(false).build()?)
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()?;
    // The builder starts from oci-spec's example hostname; the UTS namespace is the pod's, joined, and its
    // hostname was set with the sandbox, so none here (it would overwrite the pod's).
    config.set_hostname(None);
    Ok(config)
}

fn new_ns(typ: LinuxNamespaceType) -> Result<oci_spec::runtime::LinuxNamespace, RuntimeError> {
    Ok(LinuxNamespaceBuilder::default().typ(typ).build()?)
}

fn join_ns(typ: LinuxNamespaceType, path: PathBuf) -> Result<oci_spec::runtime::LinuxNamespace, RuntimeError> {
    Ok(LinuxNamespaceBuilder::default().typ(typ).path(path).build()?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;
    use crate::container::Mount;

    #[test]
    fn joins_the_pod_and_sets_limits() {
        let sandbox = Sandbox {
            id: "sb".into(),
            netns: Some("/state/sb/net".into()),
            ipc_ns: "/state/sb/ipc".into(),
            uts_ns: "/state/sb/uts".into(),
            cgroup_parent: "burstable/pod1".into(),
            labels: BTreeMap::new(),
            created_at: SystemTime::now(),
        };
        let spec = ContainerSpec {
            name: "c".into(),
            attempt: 0,
            labels: BTreeMap::new(),
            rootfs: "/rootfs".into(),
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: String::new(),
            uid: 1000,
            gid: 1000,
            mounts: vec![Mount { source: "/data".into(), destination: "/data".into(), read_only: true }],
            memory_limit: Some(1 << 20),
            cpu_shares: Some(2),
            cpu_quota: Some(1000),
            cpu_period: None,
            log_path: "/log".into(),
            log_max_size: 0,
            log_max_files: 1,
            stop_signal: None,
        };
        let json = serde_json::to_value(build(&sandbox, &spec, "/k8rs/burstable/pod1/c1".into()).unwrap()).unwrap();
        assert!(json.get("hostname").is_none(), "joined UTS namespace: no hostname");
        assert_eq!(json["linux"]["cgroupsPath"], "/k8rs/burstable/pod1/c1");
        let ns = &json["linux"]["namespaces"];
        assert_eq!(ns[0]["type"], "pid");
        assert!(ns[0].get("path").is_none());
        assert_eq!(ns[2], serde_json::json!({"type": "network", "path": "/state/sb/net"}));
        assert_eq!(json["linux"]["resources"]["memory"], serde_json::json!({"limit": 1048576, "swap": 1048576}));
        assert_eq!(json["linux"]["resources"]["cpu"], serde_json::json!({"shares": 2, "quota": 1000}));
        assert_eq!(json["process"]["cwd"], "/");
        assert_eq!(json["process"]["user"]["uid"], 1000);
        assert!(json["process"]["capabilities"]["bounding"].as_array().unwrap().contains(&"CAP_NET_RAW".into()));
        let data = json["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/data").unwrap();
        assert_eq!(data["options"], serde_json::json!(["rbind", "rprivate", "ro"]));

        let host = Sandbox { netns: None, ..sandbox };
        let json = serde_json::to_value(build(&host, &spec, "/x".into()).unwrap()).unwrap();
        let types: Vec<&str> =
            json["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["pid", "mount", "ipc", "uts"]);
    }
}
