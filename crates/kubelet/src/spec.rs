//! From a pod's spec to what the runtime runs: the command line (image entrypoint and cmd versus the container's
//! command and args, with `$(VAR)` expansion), the environment and downward API values, the user, and resources
//! as cgroup values.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use runtime::image::ImageConfig;

/// CFS period the kubelet uses for CPU limits (100 ms, as upstream).
pub const CPU_PERIOD: u64 = 100_000;

/// The command line, as upstream combines image and container: `command` replaces the entrypoint, `args`
/// replaces the image's cmd, and the image's cmd is dropped whenever `command` is given.
pub fn command_line(container: &Container, image: &ImageConfig, env: &[String]) -> Vec<String> {
    let vars: BTreeMap<&str, &str> = env.iter().filter_map(|e| e.split_once('=')).collect();
    let expand = |words: &[String]| words.iter().map(|w| expand(w, &vars)).collect::<Vec<_>>();
    match (&container.command, &container.args) {
        (Some(command), args) if !command.is_empty() => {
            let mut line = expand(command);
            line.extend(expand(args.as_deref().unwrap_or_default()));
            line
        }
        (_, Some(args)) if !args.is_empty() => {
            let mut line = image.entrypoint.clone();
            line.extend(expand(args));
            line
        }
        _ => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    }
}

/// `$(VAR)` becomes the variable's value, `$$(VAR)` the literal `$(VAR)`; an unknown `$(VAR)` stays as written.
pub fn expand(word: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(escaped) = after.strip_prefix("$(") {
            out.push_str("$(");
            rest = escaped;
        } else if let Some(name_and_rest) = after.strip_prefix('(') {
            match name_and_rest.find(')') {
                Some(end) => {
                    let name = &name_and_rest[..end];
                    match vars.get(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &name_and_rest[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = name_and_rest;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// CPU in millicores.
pub fn cpu_millis(quantity: &Quantity) -> Option<i64> {
    apimachinery::quantity::parse(&quantity.0).map(|cores| (cores * 1000.0).ceil() as i64)
}

/// Memory in bytes.
pub fn bytes(quantity: &Quantity) -> Option<i64> {
    apimachinery::quantity::parse(&quantity.0).map(|n| n.ceil() as i64)
}

/// A pod metadata field of the downward API (`fieldRef`, in env and in volumes): name, namespace, uid, all labels or
/// annotations (`key="value"` lines), or one of them (`metadata.labels['key']`); None for any other path.
pub fn metadata_field(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let lines = |map: Option<&BTreeMap<String, String>>| -> String {
        map.into_iter().flatten().map(|(k, v)| format!("{k}={v:?}\n")).collect()
    };
    let one = |map: Option<&BTreeMap<String, String>>, prefix: &str| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key).cloned()).unwrap_or_default())
    };
    match path {
        "metadata.name" => Some(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Some(meta.namespace.clone().unwrap_or_else(|| "default".into())),
        "metadata.uid" => Some(meta.uid.clone().unwrap_or_default()),
        "metadata.labels" => Some(lines(meta.labels.as_ref())),
        "metadata.annotations" => Some(lines(meta.annotations.as_ref())),
        _ => one(meta.labels.as_ref(), "metadata.labels['")
            .or_else(|| one(meta.annotations.as_ref(), "metadata.annotations['")),
    }
}

/// A container resource of the downward API (`resourceFieldRef`: `limits.cpu`, `requests.memory`, …) in units of
/// the divisor (1 by default), rounded up as upstream; empty when the container does not set it.
pub fn resource_field(container: &Container, selector: &ResourceFieldSelector) -> Result<String, String> {
    let requirements = container.resources.clone().unwrap_or_default();
    let (values, name) = match selector.resource.split_once('.') {
        Some(("limits", name)) => (requirements.limits, name),
        Some(("requests", name)) => (requirements.requests, name),
        _ => return Err(format!("unsupported resourceFieldRef {:?}", selector.resource)),
    };
    let Some(value) = values.as_ref().and_then(|v| v.get(name)) else { return Ok(String::new()) };
    // Both positive: the ceiling of value / divisor.
    let ceil = |value: i64, divisor: i64| ((value + divisor - 1) / divisor).to_string();
    let divisor = selector.divisor.as_ref();
    Ok(match name {
        "cpu" => cpu_millis(value)
            .map_or_else(String::new, |m| ceil(m, divisor.and_then(cpu_millis).filter(|d| *d > 0).unwrap_or(1000))),
        // memory, ephemeral-storage, hugepages-<size>
        _ => {
            bytes(value).map_or_else(String::new, |b| ceil(b, divisor.and_then(bytes).filter(|d| *d > 0).unwrap_or(1)))
        }
    })
}

/// A container's cgroup values: (cpu shares, cpu quota, memory limit).
pub struct Resources {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub memory_limit: Option<i64>,
}

pub fn resources(container: &Container) -> Resources {
    let requirements = container.resources.clone().unwrap_or_default();
    let limit = |name: &str| requirements.limits.as_ref().and_then(|l| l.get(name));
    let request = |name: &str| requirements.requests.as_ref().and_then(|r| r.get(name)).or_else(|| limit(name));
    Resources {
        // Upstream: shares = millicores × 1024 / 1000, at least 2.
        cpu_shares: Some(request("cpu").and_then(cpu_millis).map(|m| (m * 1024 / 1000).max(2) as u64).unwrap_or(2)),
        cpu_quota: limit("cpu").and_then(cpu_millis).map(|m| (m * CPU_PERIOD as i64 / 1000).max(1000)),
        memory_limit: limit("memory").and_then(bytes),
    }
}

/// The pod's QoS class as the API server computed it (upstream's rules), lower-cased for the cgroup path.
pub fn qos_class(pod: &Pod) -> String {
    pod.status.as_ref().and_then(|s| s.qos_class.clone()).unwrap_or_else(|| "BestEffort".into())
}

/// `kubepods/<qos>/pod<uid>`, or `kubepods/pod<uid>` for Guaranteed pods, as upstream lays them out.
pub fn cgroup_parent(pod: &Pod) -> String {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    match qos_class(pod).as_str() {
        "Guaranteed" => format!("kubepods/pod{uid}"),
        "Burstable" => format!("kubepods/burstable/pod{uid}"),
        _ => format!("kubepods/besteffort/pod{uid}"),
    }
}

/// Pod-level limits: the sums of the containers' limits when every container has one.
pub fn pod_limits(pod: &Pod) -> (Option<i64>, Option<i64>) {
    let containers = pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
    let sum = |get: &dyn Fn(&Resources) -> Option<i64>| -> Option<i64> {
        containers.iter().map(|c| get(&resources(c))).sum::<Option<i64>>()
    };
    (sum(&|r| r.memory_limit), sum(&|r| r.cpu_quota))
}

/// The user to run as: the container's then the pod's securityContext, else the image's `User` (numeric or a name
/// looked up in the image's /etc/passwd), else root.
pub fn user(
    pod: &Pod,
    container: &Container,
    image: &ImageConfig,
    rootfs: &std::path::Path,
) -> Result<(u32, u32), String> {
    let container_context = container.security_context.as_ref();
    let pod_context = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let run_as_user = container_context.and_then(|c| c.run_as_user).or_else(|| pod_context.and_then(|c| c.run_as_user));
    let run_as_group =
        container_context.and_then(|c| c.run_as_group).or_else(|| pod_context.and_then(|c| c.run_as_group));
    let (image_uid, image_gid) = if image.user.is_empty() {
        (0, 0)
    } else {
        let (user, group) = image.user.split_once(':').map_or((image.user.as_str(), None), |(u, g)| (u, Some(g)));
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
        let entry = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 3 && (f[0] == user || f[2] == user));
        let uid = user
            .parse::<u32>()
            .ok()
            .or_else(|| entry.as_ref().and_then(|f| f[2].parse().ok()))
            .ok_or_else(|| format!("unable to find user {user}: no matching entries in passwd file"))?;
        let gid = match group {
            Some(group) => group.parse::<u32>().map_err(|_| format!("unable to find group {group}"))?,
            None => entry.as_ref().and_then(|f| f[3].parse().ok()).unwrap_or(0),
        };
        (uid, gid)
    };
    Ok((run_as_user.map_or(image_uid, |u| u as u32), run_as_group.map_or(image_gid, |g| g as u32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_upstream() {
        let vars = BTreeMap::from([("A", "x"), ("B", "y")]);
        assert_eq!(expand("$(A)-$(B)", &vars), "x-y");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("$(NOPE) $A $(", &vars), "$(NOPE) $A $(");
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis(&Quantity("250m".into())), Some(250));
        assert_eq!(cpu_millis(&Quantity("1.5".into())), Some(1500));
        assert_eq!(bytes(&Quantity("64Mi".into())), Some(64 << 20));
        assert_eq!(bytes(&Quantity("1G".into())), Some(1_000_000_000));
        assert_eq!(bytes(&Quantity("129e6".into())), Some(129_000_000));
        assert_eq!(bytes(&Quantity("1000".into())), Some(1000));
    }

    #[test]
    fn command_lines() {
        let image = ImageConfig { entrypoint: vec!["/ep".into()], cmd: vec!["c1".into()], ..Default::default() };
        let container = |command: Option<Vec<&str>>, args: Option<Vec<&str>>| Container {
            name: "c".into(),
            command: command.map(|c| c.into_iter().map(String::from).collect()),
            args: args.map(|c| c.into_iter().map(String::from).collect()),
            ..Default::default()
        };
        assert_eq!(command_line(&container(None, None), &image, &[]), ["/ep", "c1"]);
        assert_eq!(command_line(&container(None, Some(vec!["a"])), &image, &[]), ["/ep", "a"]);
        assert_eq!(command_line(&container(Some(vec!["sh"]), None), &image, &[]), ["sh"]);
        assert_eq!(
            command_line(&container(Some(vec!["echo"]), Some(vec!["$(X)"])), &image, &["X=1".into()]),
            ["echo", "1"]
        );
    }
}
