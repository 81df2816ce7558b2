//! Resource usage for upstream's `/metrics/resource` (what metrics-server scrapes): CPU and memory of the node, of
//! each pod and of each running container, read from cgroup v1 as cadvisor computes them, written in the
//! Prometheus text format as client_golang writes it.

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use runtime::container::{ContainerRuntime, ContainerState};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// CPU and memory of one cgroup, read at `time`.
#[derive(Debug)]
pub struct Usage {
    /// `cpuacct.usage`: CPU time of the cgroup's tasks and its descendants', in nanoseconds.
    pub cpu_nanos: u64,
    pub working_set: u64,
    pub time: SystemTime,
}

#[derive(Debug)]
pub struct ContainerUsage {
    pub name: String,
    pub started: SystemTime,
    pub usage: Usage,
}

#[derive(Debug)]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub usage: Usage,
    pub containers: Vec<ContainerUsage>,
}

/// One scrape. `error` is upstream's `resource_scrape_error`.
#[derive(Debug, Default)]
pub struct Sample {
    pub node: Option<Usage>,
    pub pods: Vec<PodUsage>,
    pub error: bool,
}

/// A pod and its running containers, with cgroups relative to each hierarchy's root.
struct PodCgroups {
    namespace: String,
    name: String,
    cgroup: String,
    containers: Vec<(String, SystemTime, String)>,
}

/// Reads the node, every pod of the runtime and their running containers.
pub async fn collect(runtime: &ContainerRuntime) -> Sample {
    let (sandboxes, containers) = match tokio::try_join!(runtime.list_sandboxes(), runtime.list_containers()) {
        Ok(listed) => listed,
        Err(error) => {
            tracing::warn!(%error, "cannot list pods for resource metrics");
            return Sample { error: true, ..Default::default() };
        }
    };
    let (Some(cpuacct), Some(memory)) = (runtime.cgroup_hierarchy("cpuacct"), runtime.cgroup_hierarchy("memory"))
    else {
        tracing::warn!("no cpuacct or memory cgroup hierarchy is mounted");
        return Sample { error: true, ..Default::default() };
    };
    let pods = sandboxes
        .iter()
        .map(|sandbox| PodCgroups {
            namespace: sandbox.labels.get("namespace").cloned().unwrap_or_default(),
            name: sandbox.labels.get("name").cloned().unwrap_or_default(),
            cgroup: runtime.sandbox_cgroup(sandbox),
            containers: containers
                .iter()
                .filter(|c| c.sandbox_id == sandbox.id)
                .filter_map(|c| match c.status.state {
                    ContainerState::Running { started_at, .. } => {
                        Some((c.name.clone(), started_at, runtime.container_cgroup(sandbox, &c.id)))
                    }
                    _ => None,
                })
                .collect(),
        })
        .collect();
    tokio::task::spawn_blocking(move || read_all(&cpuacct, &memory, pods))
        .await
        .unwrap_or_else(|_| Sample { error: true, ..Default::default() })
}

/// Reads the cgroups below the two hierarchies' roots. The node is the root cgroup `/`, as upstream (cadvisor's
/// root container), not this kubelet's pods: the host's whole usage. So every node of a local test cluster sharing
/// one host reports the host's totals, as kind nodes do.
fn read_all(cpuacct: &Path, memory: &Path, pods: Vec<PodCgroups>) -> Sample {
    let mut sample = Sample::default();
    let mut read_or_flag = |rel: &str| match read(&cpuacct.join(rel), &memory.join(rel)) {
        Ok(usage) => usage,
        Err(error) => {
            tracing::warn!(cgroup = rel, %error, "cannot read cgroup usage");
            sample.error = true;
            None
        }
    };
    let node = read_or_flag("");
    let mut pod_usages = Vec::new();
    for pod in pods {
        // A pod or container whose cgroup is gone has just ended: skipped, not an error.
        let Some(usage) = read_or_flag(&pod.cgroup) else { continue };
        let containers = pod
            .containers
            .into_iter()
            .filter_map(|(name, started, cgroup)| {
                read_or_flag(&cgroup).map(|usage| ContainerUsage { name, started, usage })
            })
            .collect();
        pod_usages.push(PodUsage { namespace: pod.namespace, name: pod.name, usage, containers });
    }
    sample.error |= node.is_none();
    Sample { node, pods: pod_usages, ..sample }
}

/// One cgroup's usage; None when the cgroup does not exist.
fn read(cpuacct: &Path, memory: &Path) -> io::Result<Option<Usage>> {
    let files = [cpuacct.join("cpuacct.usage"), memory.join("memory.usage_in_bytes"), memory.join("memory.stat")]
        .map(std::fs::read_to_string);
    if files.iter().any(|f| f.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::NotFound)) {
        return Ok(None);
    }
    let [cpu, usage, stat] = files;
    let number = |text: &str| {
        text.trim().parse::<u64>().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{text:?}: {e}")))
    };
    Ok(Some(Usage {
        cpu_nanos: number(&cpu?)?,
        working_set: working_set(number(&usage?)?, &stat?),
        time: SystemTime::now(),
    }))
}

/// cadvisor's working set on cgroup v1: usage minus the inactive file cache of the cgroup and its descendants (which
/// the kernel reclaims first), never below 0.
fn working_set(usage: u64, memory_stat: &str) -> u64 {
    let inactive_file = memory_stat
        .lines()
        .find_map(|line| line.strip_prefix("total_inactive_file "))
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(0);
    usage.saturating_sub(inactive_file)
}

/// The families client_golang would gather: sorted by name, series sorted by label values, families without
/// series left out; usage carries the time it was read (milliseconds), start time and scrape error carry none.
pub fn exposition(sample: &Sample) -> String {
    let seconds = |nanos: u64| nanos as f64 / 1e9;
    let mut containers: Vec<(&ContainerUsage, &PodUsage)> =
        sample.pods.iter().flat_map(|pod| pod.containers.iter().map(move |c| (c, pod))).collect();
    containers.sort_by(|(a, pa), (b, pb)| (&a.name, &pa.namespace, &pa.name).cmp(&(&b.name, &pb.namespace, &pb.name)));
    let mut pods: Vec<&PodUsage> = sample.pods.iter().collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let container_labels = |c: &ContainerUsage, pod: &PodUsage| {
        labels(&[("container", &c.name), ("namespace", &pod.namespace), ("pod", &pod.name)])
    };
    let pod_labels = |pod: &PodUsage| labels(&[("namespace", &pod.namespace), ("pod", &pod.name)]);

    let mut out = String::new();
    family(
        &mut out,
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
        containers.iter().map(|(c, pod)| (container_labels(c, pod), seconds(c.usage.cpu_nanos), Some(c.usage.time))),
    );
    family(
        &mut out,
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set of the container in bytes",
        containers.iter().map(|(c, pod)| (container_labels(c, pod), c.usage.working_set as f64, Some(c.usage.time))),
    );
    family(
        &mut out,
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds",
        // Upstream leaves out start times not after the epoch.
        containers.iter().filter_map(|(c, pod)| {
            let since_epoch = c.started.duration_since(UNIX_EPOCH).ok().filter(|d| d.as_secs() > 0)?;
            Some((container_labels(c, pod), seconds(since_epoch.as_nanos() as u64), None))
        }),
    );
    family(
        &mut out,
        "node_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the node in core-seconds",
        sample.node.iter().map(|n| (String::new(), seconds(n.cpu_nanos), Some(n.time))),
    );
    family(
        &mut out,
        "node_memory_working_set_bytes",
        "gauge",
        "Current working set of the node in bytes",
        sample.node.iter().map(|n| (String::new(), n.working_set as f64, Some(n.time))),
    );
    family(
        &mut out,
        "pod_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
        pods.iter().map(|pod| (pod_labels(pod), seconds(pod.usage.cpu_nanos), Some(pod.usage.time))),
    );
    family(
        &mut out,
        "pod_memory_working_set_bytes",
        "gauge",
        "Current working set of the pod in bytes",
        pods.iter().map(|pod| (pod_labels(pod), pod.usage.working_set as f64, Some(pod.usage.time))),
    );
    family(
        &mut out,
        "resource_scrape_error",
        "gauge",
        "1 if there was an error while getting container metrics, 0 otherwise",
        std::iter::once((String::new(), if sample.error { 1.0 } else { 0.0 }, None)),
    );
    out
}

/// Writes one family (all of upstream's are STABLE); nothing when it has no series.
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    series: impl Iterator<Item = (String, f64, Option<SystemTime>)>,
) {
    let mut series = series.peekable();
    if series.peek().is_none() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} [STABLE] {help}\n# TYPE {name} {kind}");
    for (labels, value, time) in series {
        let _ = write!(out, "{name}{labels} {}", go_float(value));
        if let Some(millis) = time.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis()) {
            let _ = write!(out, " {millis}");
        }
        out.push('\n');
    }
}

/// `{name="value",…}` with the value escaped as the text format requires (`\`, `"`, newline).
fn labels(pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            let value = value.replace('\\', r"\\").replace('"', r#"\""#).replace('\n', r"\n");
            format!("{name}=\"{value}\"")
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// A float as Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which client_golang writes: the shortest digits that read
/// back exactly, in exponent form (at least two exponent digits) when the exponent is below -4 or 6 and above.
fn go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("Rust's {:e} always has an exponent");
    let exponent: i32 = exponent.parse().expect("a decimal exponent");
    if (-4..6).contains(&exponent) {
        format!("{value}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    #[test]
    fn working_set_subtracts_total_inactive_file_and_stops_at_zero() {
        let stat = "cache 900\ninactive_file 100\ntotal_cache 4096\ntotal_inactive_file 1000\ntotal_active_file 7\n";
        assert_eq!(working_set(5000, stat), 4000);
        assert_eq!(working_set(600, stat), 0);
        assert_eq!(working_set(5000, "cache 0\ninactive_file 100\n"), 5000);
    }

    #[test]
    fn floats_are_written_as_go_does() {
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (1.234567, "1.234567"),
            (12345.6, "12345.6"),
            (100000.0, "100000"),
            (1.4e6, "1.4e+06"),
            (1234567.0, "1.234567e+06"),
            (1.7643e9, "1.7643e+09"),
            (0.0001, "0.0001"),
            (0.00001234, "1.234e-05"),
            (1e100, "1e+100"),
        ];
        for (value, text) in cases {
            assert_eq!(go_float(value), text, "{value}");
        }
    }

    #[test]
    fn exposition_of_a_fixed_sample() {
        let usage = |cpu_nanos, working_set, millis| Usage { cpu_nanos, working_set, time: at(millis) };
        let sample = Sample {
            node: Some(usage(12_345_600_000_000, 1_200_000_000, 1764300000123)),
            pods: vec![
                PodUsage {
                    namespace: "default".into(),
                    name: "web-1".into(),
                    usage: usage(1_300_000_000, 1_500_000, 1764300000123),
                    containers: vec![ContainerUsage {
                        name: "app".into(),
                        started: at(1_764_300_000_000),
                        usage: usage(1_234_567_000, 1_400_000, 1764300000123),
                    }],
                },
                PodUsage {
                    namespace: "a".into(),
                    name: "odd\"\\\nname".into(),
                    usage: usage(0, 0, 1764300000456),
                    containers: vec![ContainerUsage {
                        name: "z".into(),
                        started: at(1_764_299_999_500),
                        usage: usage(5_000_000, 4096, 1764300000456),
                    }],
                },
            ],
            error: false,
        };
        let expected = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="default",pod="web-1"} 1.234567 1764300000123
container_cpu_usage_seconds_total{container="z",namespace="a",pod="odd\"\\\nname"} 0.005 1764300000456
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="default",pod="web-1"} 1.4e+06 1764300000123
container_memory_working_set_bytes{container="z",namespace="a",pod="odd\"\\\nname"} 4096 1764300000456
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="app",namespace="default",pod="web-1"} 1.7643e+09
container_start_time_seconds{container="z",namespace="a",pod="odd\"\\\nname"} 1.7642999995e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 12345.6 1764300000123
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.2e+09 1764300000123
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="a",pod="odd\"\\\nname"} 0 1764300000456
pod_cpu_usage_seconds_total{namespace="default",pod="web-1"} 1.3 1764300000123
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="a",pod="odd\"\\\nname"} 0 1764300000456
pod_memory_working_set_bytes{namespace="default",pod="web-1"} 1.5e+06 1764300000123
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
"#;
        assert_eq!(exposition(&sample), expected);
    }

    #[test]
    fn a_failed_scrape_has_only_the_error() {
        let text = exposition(&Sample { error: true, ..Default::default() });
        assert_eq!(
            text,
            "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise\n\
             # TYPE resource_scrape_error gauge\nresource_scrape_error 1\n"
        );
    }

    /// Writes a cgroup's files in both fake hierarchies.
    fn cgroup(root: &Path, rel: &str, cpu: &str, usage: &str, stat: &str) {
        let (cpuacct, memory) = (root.join("cpuacct").join(rel), root.join("memory").join(rel));
        std::fs::create_dir_all(&cpuacct).unwrap();
        std::fs::create_dir_all(&memory).unwrap();
        std::fs::write(cpuacct.join("cpuacct.usage"), cpu).unwrap();
        std::fs::write(memory.join("memory.usage_in_bytes"), usage).unwrap();
        std::fs::write(memory.join("memory.stat"), stat).unwrap();
    }

    #[test]
    fn reads_a_cgroup_tree_and_skips_what_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        cgroup(root, "", "900000000000\n", "8000\n", "total_inactive_file 3000\n");
        cgroup(root, "k8rs/kubepods/podA", "2500000000\n", "6000\n", "total_inactive_file 1000\n");
        cgroup(root, "k8rs/kubepods/podA/c1", "2000000000\n", "5000\n", "total_inactive_file 9000\n");
        let started = at(1_764_300_000_000);
        let containers = |names: &[&str]| {
            names.iter().map(|n| (n.to_string(), started, format!("k8rs/kubepods/podA/{n}"))).collect::<Vec<_>>()
        };
        let pods = |containers| {
            vec![
                PodCgroups {
                    namespace: "ns".into(),
                    name: "a".into(),
                    cgroup: "k8rs/kubepods/podA".into(),
                    containers,
                },
                // Removed between listing and reading.
                PodCgroups {
                    namespace: "ns".into(),
                    name: "gone".into(),
                    cgroup: "k8rs/kubepods/podB".into(),
                    containers: vec![],
                },
            ]
        };
        let before = SystemTime::now();
        let sample = read_all(&root.join("cpuacct"), &root.join("memory"), pods(containers(&["c1", "vanished"])));
        assert!(!sample.error);
        let node = sample.node.unwrap();
        assert_eq!((node.cpu_nanos, node.working_set), (900_000_000_000, 5000));
        assert!(node.time >= before);
        assert_eq!(sample.pods.len(), 1);
        let pod = &sample.pods[0];
        assert_eq!((pod.namespace.as_str(), pod.name.as_str()), ("ns", "a"));
        assert_eq!((pod.usage.cpu_nanos, pod.usage.working_set), (2_500_000_000, 5000));
        assert_eq!(pod.containers.len(), 1);
        let c1 = &pod.containers[0];
        assert_eq!((c1.name.as_str(), c1.started), ("c1", started));
        assert_eq!((c1.usage.cpu_nanos, c1.usage.working_set), (2_000_000_000, 0));

        // An unreadable value is an error; the rest is still reported.
        cgroup(root, "k8rs/kubepods/podA/bad", "garbage\n", "1\n", "");
        let sample = read_all(&root.join("cpuacct"), &root.join("memory"), pods(containers(&["c1", "bad"])));
        assert!(sample.error);
        assert_eq!(sample.pods[0].containers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["c1"]);
    }
}
