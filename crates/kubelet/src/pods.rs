//! Pod workers: one task per pod bound to this node. A worker drives its pod towards the spec — sandbox and
//! network, volumes, init containers in order, then the containers with their restart policy and back-off — and
//! reports what is true in `status`. A deleted pod is stopped gracefully, torn down, and then removed from the API.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use runtime::container::{ContainerSpec, ContainerState, Sandbox, SandboxSpec};
use runtime::image::Image;
use serde_json::Value;
use tokio::sync::watch;

use crate::events::{Kind, Recorder, Subject};
use crate::projection::Source;
use crate::tokens::TokenManager;
use crate::{hooks, spec, status, volumes, Config};

/// How often a worker looks at its containers when nothing else wakes it.
const POLL: Duration = Duration::from_millis(250);
/// Upstream's crash-loop back-off: 10 s doubling up to 5 minutes, forgotten after 10 minutes of running.
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// After projected volumes could not be written with renewed tokens, the next try waits this long.
const TOKEN_RETRY: Duration = Duration::from_secs(10);
const DEFAULT_GRACE: i64 = 30;
const LOG_MAX_SIZE: u64 = 10 << 20;
const LOG_MAX_FILES: usize = 5;

/// What the log server needs to know about a container.
#[derive(Clone, Debug, Default)]
pub struct ContainerView {
    pub attempt: Option<u32>,
    pub running: bool,
    pub waiting: Option<(String, String)>,
    /// Attempts that have a log file, oldest first.
    pub previous_attempt: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct PodView {
    pub uid: String,
    pub containers: BTreeMap<String, ContainerView>,
}

/// Each pod's worker is fed the latest version of its pod; None once the pod is gone from the API.
type WorkerInbox = watch::Sender<Option<Arc<Pod>>>;

#[derive(Clone)]
pub struct PodManager {
    client: kube::Client,
    config: Arc<Config>,
    recorder: Recorder,
    workers: Arc<tokio::sync::Mutex<HashMap<String, WorkerInbox>>>,
    /// (namespace, name) → the view of that pod, for the log server.
    views: Arc<RwLock<HashMap<(String, String), PodView>>>,
}

impl PodManager {
    pub fn new(client: kube::Client, config: Arc<Config>) -> PodManager {
        let recorder = Recorder::new(client.clone(), config.node_name.clone());
        PodManager { client, config, recorder, workers: Default::default(), views: Default::default() }
    }

    pub fn view(&self, namespace: &str, name: &str) -> Option<PodView> {
        self.views.read().expect("views lock").get(&(namespace.to_string(), name.to_string())).cloned()
    }

    pub fn log_dir(&self, namespace: &str, name: &str, uid: &str, container: &str) -> PathBuf {
        self.config.dir.join("logs").join(format!("{namespace}_{name}_{uid}")).join(container)
    }

    /// Watches the pods bound to this node and hands each to its worker, until the process ends.
    pub async fn run(self) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let selector = format!("spec.nodeName={}", self.config.node_name);
        let mut stream = watcher(pods, watcher::Config::default().fields(&selector)).boxed();
        let mut listed: HashSet<String> = HashSet::new();
        let mut first_list = true;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(pod)) => {
                    listed.insert(pod.metadata.uid.clone().unwrap_or_default());
                    self.dispatch(pod).await;
                }
                Ok(watcher::Event::InitDone) => {
                    // Pods that went away while the watch was down, and sandboxes nobody owns any more.
                    let gone: Vec<String> =
                        self.workers.lock().await.keys().filter(|uid| !listed.contains(*uid)).cloned().collect();
                    for uid in gone {
                        if let Some(worker) = self.workers.lock().await.get(&uid) {
                            let _ = worker.send(None);
                        }
                    }
                    if first_list {
                        first_list = false;
                        self.remove_orphans(&listed).await;
                    }
                }
                Ok(watcher::Event::Apply(pod)) => self.dispatch(pod).await,
                Ok(watcher::Event::Delete(pod)) => {
                    if let Some(worker) = self.workers.lock().await.get(pod.metadata.uid.as_deref().unwrap_or_default())
                    {
                        let _ = worker.send(None);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "watching this node's pods failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn dispatch(&self, pod: Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod = Arc::new(pod);
        let mut workers = self.workers.lock().await;
        if let Some(worker) = workers.get(&uid) {
            let _ = worker.send(Some(pod));
            return;
        }
        let (tx, rx) = watch::channel(Some(pod));
        workers.insert(uid.clone(), tx);
        let manager = self.clone();
        tokio::spawn(async move {
            Worker::new(manager.clone(), uid.clone()).run(rx).await;
            manager.workers.lock().await.remove(&uid);
            manager.recorder.forget(&uid).await;
        });
    }

    /// Sandboxes and containers left by pods that no longer exist (deleted while the agent was down).
    async fn remove_orphans(&self, live: &HashSet<String>) {
        let runtime = &self.config.containers;
        let containers = runtime.list_containers().await.unwrap_or_default();
        for sandbox in runtime.list_sandboxes().await.unwrap_or_default() {
            if live.contains(&sandbox.id) {
                continue;
            }
            tracing::info!(sandbox = %sandbox.id, "removing the sandbox of a pod that no longer exists");
            for container in containers.iter().filter(|c| c.sandbox_id == sandbox.id) {
                let _ = runtime.stop_container(&container.id, Duration::from_secs(2)).await;
                let _ = runtime.remove_container(&container.id).await;
            }
            let worker = Worker::new(self.clone(), sandbox.id.clone());
            worker.teardown_sandbox(&sandbox, sandbox.labels.get("namespace"), sandbox.labels.get("name")).await;
        }
    }
}

/// What a worker remembers about one container of its pod.
#[derive(Clone, Debug, Default)]
pub struct ContainerRecord {
    /// The attempt now in the runtime (0 for the first run), if any was created.
    pub attempt: Option<u32>,
    pub restart_count: i32,
    pub id: Option<String>,
    pub state: Option<ContainerState>,
    pub waiting: Option<(String, String)>,
    pub last_terminated: Option<Value>,
    pub image_id: Option<String>,
    pub backoff: Option<Duration>,
    pub retry_at: Option<Instant>,
    pub image_backoff: Option<Duration>,
    /// Why the current attempt could not start (the runtime's message).
    pub start_error: Option<String>,
}

pub struct Worker {
    manager: PodManager,
    uid: String,
    sandbox: Option<Sandbox>,
    pod_ip: Option<String>,
    volumes: Option<BTreeMap<String, PathBuf>>,
    /// The service account tokens of the pod's projected volumes.
    tokens: TokenManager,
    /// Set while writing renewed tokens into the volumes fails: when to try again.
    tokens_retry_at: Option<Instant>,
    etc_mounts: Vec<runtime::container::Mount>,
    records: BTreeMap<String, ContainerRecord>,
    init_done: bool,
    start_time: Option<SystemTime>,
    sandbox_retry_at: Option<Instant>,
    last_status: Option<Value>,
    adopted: bool,
}

impl Worker {
    fn new(manager: PodManager, uid: String) -> Worker {
        Worker {
            tokens: TokenManager::new(manager.client.clone()),
            tokens_retry_at: None,
            manager,
            uid,
            sandbox: None,
            pod_ip: None,
            volumes: None,
            etc_mounts: Vec::new(),
            records: BTreeMap::new(),
            init_done: false,
            start_time: None,
            sandbox_retry_at: None,
            last_status: None,
            adopted: false,
        }
    }

    fn config(&self) -> &Config {
        &self.manager.config
    }

    fn pod_dir(&self) -> PathBuf {
        self.config().dir.join("pods").join(&self.uid)
    }

    async fn run(mut self, mut rx: watch::Receiver<Option<Arc<Pod>>>) {
        let mut last: Option<Arc<Pod>> = None;
        loop {
            let current = rx.borrow_and_update().clone();
            match current {
                Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                    self.terminate(&pod, true).await;
                    return;
                }
                Some(pod) => {
                    if !self.adopted {
                        self.adopt(&pod).await;
                    }
                    self.sync(&pod).await;
                    last = Some(pod);
                }
                None => {
                    if let Some(pod) = last {
                        self.terminate(&pod, false).await;
                    }
                    return;
                }
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    fn subject<'a>(pod: &'a Pod, container: Option<&'a str>) -> Subject<'a> {
        Subject {
            namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod: pod.metadata.name.as_deref().unwrap_or_default(),
            uid: pod.metadata.uid.as_deref().unwrap_or_default(),
            container,
        }
    }

    async fn event(&self, pod: &Pod, container: Option<&str>, kind: Kind, reason: &str, message: &str) {
        self.manager.recorder.record(&Self::subject(pod, container), kind, reason, message).await;
    }

    /// A restarted kubelet finds the pod's sandbox and containers again, and its counts in the pod's status.
    async fn adopt(&mut self, pod: &Pod) {
        self.adopted = true;
        let runtime = &self.manager.config.containers;
        let Ok(Some(sandbox)) = runtime.sandbox(&self.uid).await else { return };
        let status = pod.status.clone().unwrap_or_default();
        self.pod_ip = status.pod_ip.clone();
        self.start_time = Some(SystemTime::now());
        let reported: HashMap<String, Value> = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .filter_map(|s| Some((s.name.clone(), serde_json::to_value(s).ok()?)))
            .collect();
        for info in runtime.list_containers().await.unwrap_or_default() {
            if info.sandbox_id != self.uid {
                continue;
            }
            let record = self.records.entry(info.name.clone()).or_default();
            if record.attempt.is_some_and(|a| a > info.attempt) {
                continue;
            }
            record.attempt = Some(info.attempt);
            record.id = Some(info.id.clone());
            record.state = Some(info.status.state.clone());
            record.restart_count = info.attempt as i32;
            if let Some(reported) = reported.get(&info.name) {
                record.last_terminated = reported.get("lastState").and_then(|l| l.get("terminated")).cloned();
                record.image_id = reported.get("imageID").and_then(Value::as_str).map(str::to_string);
            }
        }
        let spec = pod.spec.clone().unwrap_or_default();
        self.init_done = spec.init_containers.iter().flatten().all(|c| {
            matches!(
                self.records.get(&c.name).and_then(|r| r.state.as_ref()),
                Some(ContainerState::Exited { exit_code: 0, .. })
            )
        });
        tracing::info!(pod = ?pod.metadata.name, containers = self.records.len(), "found the pod's sandbox again");
        self.sandbox = Some(sandbox);
    }

    /// One pass towards the spec, then a status report if anything changed.
    async fn sync(&mut self, pod: &Pod) {
        if self.start_time.is_none() {
            self.start_time = Some(SystemTime::now());
        }
        self.refresh_states().await;
        let terminal = self.is_terminal(pod);
        if !terminal && self.ensure_sandbox(pod).await {
            self.renew_tokens(pod).await;
            if !self.init_done {
                self.run_init_containers(pod).await;
            }
            if self.init_done {
                let spec = pod.spec.clone().unwrap_or_default();
                for container in &spec.containers {
                    self.sync_container(pod, container, restart_policy(pod)).await;
                }
            }
        }
        self.refresh_states().await;
        self.publish_view(pod);
        self.report(pod).await;
    }

    fn is_terminal(&self, pod: &Pod) -> bool {
        matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
    }

    async fn refresh_states(&mut self) {
        let runtime = self.manager.config.containers.clone();
        for record in self.records.values_mut() {
            if let Some(id) = &record.id {
                if matches!(record.state, Some(ContainerState::Exited { .. })) {
                    continue;
                }
                if let Ok(status) = runtime.status(id).await {
                    record.state = Some(status.state);
                }
            }
        }
    }

    /// Sandbox, network, volumes and /etc files; false while they are not ready.
    async fn ensure_sandbox(&mut self, pod: &Pod) -> bool {
        if self.sandbox.is_some() && self.volumes.is_some() {
            return true;
        }
        if self.sandbox_retry_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        match self.create_sandbox(pod).await {
            Ok(()) => true,
            Err((reason, message)) => {
                tracing::warn!(pod = ?pod.metadata.name, %message, "pod sandbox not ready");
                self.event(pod, None, Kind::Warning, reason, &message).await;
                self.sandbox_retry_at = Some(Instant::now() + Duration::from_secs(2));
                false
            }
        }
    }

    async fn create_sandbox(&mut self, pod: &Pod) -> Result<(), (&'static str, String)> {
        let config = self.manager.config.clone();
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network == Some(true);
        if self.sandbox.is_none() {
            let (memory_limit, cpu_quota) = spec::pod_limits(pod);
            let hostname = if host_network {
                std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string()
            } else {
                spec.hostname.clone().unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default())
            };
            let labels = BTreeMap::from([
                ("namespace".to_string(), pod.metadata.namespace.clone().unwrap_or_default()),
                ("name".to_string(), pod.metadata.name.clone().unwrap_or_default()),
            ]);
            let sandbox_spec = SandboxSpec {
                id: self.uid.clone(),
                hostname,
                host_network,
                cgroup_parent: spec::cgroup_parent(pod),
                // Upstream: the pod's shares are the sum of its containers' requests.
                cpu_shares: Some(
                    spec.containers.iter().filter_map(|c| spec::resources(c).cpu_shares).sum::<u64>().max(2),
                ),
                cpu_quota,
                cpu_period: cpu_quota.map(|_| spec::CPU_PERIOD),
                memory_limit,
                labels,
            };
            let failed =
                |e: &dyn std::fmt::Display| ("FailedCreatePodSandBox", format!("Failed to create pod sandbox: {e}"));
            let sandbox = config.containers.create_sandbox(&sandbox_spec).await.map_err(|e| failed(&e))?;
            if host_network {
                self.pod_ip = Some(config.node_ip.to_string());
            } else {
                let attachment = self.attachment(pod, &sandbox);
                match config.cni.add(&attachment).await {
                    Ok(result) => self.pod_ip = result.ips.first().map(|ip| ip.to_string()),
                    Err(e) => {
                        let _ = config.containers.remove_sandbox(&sandbox.id).await;
                        return Err(failed(&format!("failed to set up the pod network: {e}")));
                    }
                }
            }
            self.sandbox = Some(sandbox);
        }
        if host_network && self.pod_ip.is_none() {
            self.pod_ip = Some(config.node_ip.to_string());
        }
        let pod_dir = self.pod_dir();
        self.etc_mounts = volumes::etc_files(pod, &pod_dir, self.pod_ip.as_deref())
            .map_err(|e| ("FailedMount", format!("cannot write the pod's /etc files: {e}")))?;
        let prepared = volumes::prepare(&self.manager.client, &mut self.tokens, pod, &pod_dir)
            .await
            .map_err(|e| ("FailedMount", e))?;
        self.volumes = Some(prepared);
        Ok(())
    }

    /// Writes fresh service account tokens into the pod's projected volumes when one is due for renewal, or again
    /// after a failed write.
    async fn renew_tokens(&mut self, pod: &Pod) {
        let retry = self.tokens_retry_at.is_some_and(|at| Instant::now() >= at);
        if !retry && !self.tokens.renewal_due(SystemTime::now()) {
            return;
        }
        let pod_dir = self.pod_dir();
        match volumes::renew_tokens(&self.manager.client, &mut self.tokens, pod, &pod_dir).await {
            Ok(()) => self.tokens_retry_at = None,
            Err(message) => {
                tracing::warn!(pod = ?pod.metadata.name, %message, "cannot renew the pod's service account tokens");
                self.event(pod, None, Kind::Warning, "FailedMount", &message).await;
                self.tokens_retry_at = Some(Instant::now() + TOKEN_RETRY);
            }
        }
    }

    fn attachment(&self, pod: &Pod, sandbox: &Sandbox) -> network::Attachment {
        let spec = pod.spec.clone().unwrap_or_default();
        let port_mappings = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.clone().unwrap_or_default())
            .filter_map(|p| {
                Some(network::PortMapping {
                    host_port: u16::try_from(p.host_port.filter(|h| *h > 0)?).ok()?,
                    container_port: u16::try_from(p.container_port).ok()?,
                    protocol: p.protocol.unwrap_or_else(|| "TCP".into()).to_lowercase(),
                    host_ip: p.host_ip.unwrap_or_default(),
                })
            })
            .collect();
        network::Attachment {
            container_id: sandbox.id.clone(),
            netns: sandbox.netns.clone().unwrap_or_default(),
            ifname: "eth0".into(),
            pod_namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            pod_uid: self.uid.clone(),
            port_mappings,
        }
    }

    async fn run_init_containers(&mut self, pod: &Pod) {
        let spec = pod.spec.clone().unwrap_or_default();
        for container in spec.init_containers.iter().flatten() {
            let state = self.records.get(&container.name).and_then(|r| r.state.clone());
            match state {
                Some(ContainerState::Exited { exit_code: 0, .. }) => continue,
                Some(ContainerState::Running { .. } | ContainerState::Created) => return,
                // Init containers restart on failure unless the pod's policy is Never (then the pod fails).
                _ => {
                    let policy = if restart_policy(pod) == "Never" { "Never" } else { "OnFailure" };
                    self.sync_container(pod, container, policy).await;
                    return;
                }
            }
        }
        self.init_done = true;
    }

    /// Starts, leaves alone or restarts one container, per its state and the restart policy.
    async fn sync_container(&mut self, pod: &Pod, container: &Container, policy: &str) {
        let record = self.records.get(&container.name).cloned().unwrap_or_default();
        match &record.state {
            Some(ContainerState::Running { .. } | ContainerState::Created) => {}
            Some(ContainerState::Exited { exit_code, started_at, finished_at, .. }) => {
                let restart = match policy {
                    "Always" => true,
                    "OnFailure" => *exit_code != 0,
                    _ => false,
                };
                if !restart {
                    return;
                }
                let ran_for = started_at.and_then(|s| finished_at.duration_since(s).ok()).unwrap_or_default();
                let entry = self.records.entry(container.name.clone()).or_default();
                if entry.retry_at.is_none() {
                    // The first restart is immediate; each one after waits twice as long as the last.
                    let backoff = match entry.backoff {
                        _ if ran_for >= BACKOFF_RESET => None,
                        None => Some(BACKOFF_INITIAL),
                        Some(previous) => Some((previous * 2).min(BACKOFF_MAX)),
                    };
                    let wait = if entry.restart_count == 0 || backoff.is_none() {
                        Duration::ZERO
                    } else {
                        entry.backoff.unwrap_or(BACKOFF_INITIAL)
                    };
                    entry.backoff = backoff;
                    entry.retry_at = Some(Instant::now() + wait);
                }
                if entry.retry_at.is_some_and(|at| Instant::now() < at) {
                    let wait =
                        entry.retry_at.map(|at| at.saturating_duration_since(Instant::now())).unwrap_or_default();
                    let message = format!(
                        "back-off {}s restarting failed container={} pod={}_{}({})",
                        wait.as_secs().max(1),
                        container.name,
                        pod.metadata.name.as_deref().unwrap_or_default(),
                        pod.metadata.namespace.as_deref().unwrap_or_default(),
                        self.uid
                    );
                    if entry.waiting.as_ref().map(|w| w.0.as_str()) != Some("CrashLoopBackOff") {
                        entry.waiting = Some(("CrashLoopBackOff".into(), message));
                        self.event(
                            pod,
                            Some(&container.name),
                            Kind::Warning,
                            "BackOff",
                            "Back-off restarting failed container",
                        )
                        .await;
                    }
                    return;
                }
                self.start(pod, container).await;
            }
            None => {
                if record.retry_at.is_some_and(|at| Instant::now() < at) {
                    return;
                }
                self.start(pod, container).await;
            }
        }
    }

    /// Pulls the image as the policy says, then creates and starts the next attempt of the container.
    async fn start(&mut self, pod: &Pod, container: &Container) {
        let config = self.manager.config.clone();
        let name = container.name.clone();
        let image = match self.ensure_image(pod, container).await {
            Some(image) => image,
            None => return,
        };
        let previous = self.records.get(&name).cloned().unwrap_or_default();
        let attempt = previous.attempt.map_or(0, |a| a + 1);
        // The previous attempt's container goes; its log stays for `--previous`.
        if let Some(old) = &previous.id {
            let _ = config.containers.remove_container(old).await;
            if let Some(old_attempt) = previous.attempt {
                let old_dir = self.container_dir(&name, old_attempt);
                let _ = config.images.unmount_rootfs(&old_dir).await;
            }
        }
        let result = self.create_and_start(pod, container, &image, attempt).await;
        let entry = self.records.entry(name.clone()).or_default();
        if previous.state.is_some() {
            entry.last_terminated = status::terminated(&previous);
        }
        entry.attempt = Some(attempt);
        entry.id = match &result {
            Ok((id, _)) | Err((Some(id), _)) => Some(id.clone()),
            Err((None, _)) => None,
        };
        entry.retry_at = None;
        entry.waiting = None;
        entry.image_id = Some(image_id(&image));
        if previous.attempt.is_some() {
            entry.restart_count += 1;
        }
        entry.start_error = None;
        match result {
            Ok((_, state)) => {
                entry.state = Some(state);
                self.event(pod, Some(&name), Kind::Normal, "Started", &format!("Started container {name}")).await;
            }
            Err((_, message)) => {
                // As upstream with runc: the attempt ends at once, a StartError with exit code 128, and the
                // restart policy and back-off apply as to any other exit.
                let now = SystemTime::now();
                entry.state = Some(ContainerState::Exited {
                    exit_code: 128,
                    oom_killed: false,
                    started_at: None,
                    finished_at: now,
                });
                entry.start_error = Some(message.clone());
                self.event(pod, Some(&name), Kind::Warning, "Failed", &format!("Error: {message}")).await;
            }
        }
    }

    /// Where attempt `attempt` of a container keeps its root filesystem.
    fn container_dir(&self, name: &str, attempt: u32) -> PathBuf {
        self.pod_dir().join("containers").join(name).join(attempt.to_string())
    }

    async fn create_and_start(
        &mut self,
        pod: &Pod,
        container: &Container,
        image: &Image,
        attempt: u32,
    ) -> Result<(String, ContainerState), (Option<String>, String)> {
        let config = self.manager.config.clone();
        let sandbox = self.sandbox.clone().ok_or((None, "the pod has no sandbox".to_string()))?;
        let spec = self.container_spec(pod, container, image, attempt).await.map_err(|e| (None, e))?;
        let created = config.containers.create_container(&sandbox, &spec).await.map_err(|e| (None, e.to_string()))?;
        self.event(
            pod,
            Some(&container.name),
            Kind::Normal,
            "Created",
            &format!("Created container: {}", container.name),
        )
        .await;
        let failed = |e: runtime::container::RuntimeError| (Some(created.clone()), e.to_string());
        config.containers.start_container(&created).await.map_err(failed)?;
        let state = config.containers.status(&created).await.map_err(failed)?.state;
        Ok((created, state))
    }

    /// What the runtime needs to run one attempt of a container: rootfs, command line, environment, user, mounts,
    /// resources and log file.
    async fn container_spec(
        &self,
        pod: &Pod,
        container: &Container,
        image: &Image,
        attempt: u32,
    ) -> Result<ContainerSpec, String> {
        let config = self.manager.config.clone();
        let (namespace, pod_name) =
            (pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default());
        let container_dir = self.container_dir(&container.name, attempt);
        let rootfs = config.images.mount_rootfs(image, &container_dir).await.map_err(|e| e.to_string())?;
        let env = self.environment(pod, container, image).await?;
        let args = spec::command_line(container, &image.config, &env);
        if args.is_empty() {
            return Err("no command specified".into());
        }
        let (uid, gid) = spec::user(pod, container, &image.config, &rootfs)?;
        let mut mounts = self.etc_mounts.clone();
        mounts.extend(volumes::container_mounts(container, self.volumes.as_ref().ok_or("volumes are not ready")?)?);
        let resources = spec::resources(container);
        let log_dir = self.manager.log_dir(namespace, pod_name, &self.uid, &container.name);
        std::fs::create_dir_all(&log_dir).map_err(|e| format!("cannot create {}: {e}", log_dir.display()))?;
        let labels = BTreeMap::from([
            ("io.kubernetes.pod.name".to_string(), pod_name.to_string()),
            ("io.kubernetes.pod.namespace".to_string(), namespace.to_string()),
            ("io.kubernetes.pod.uid".to_string(), self.uid.clone()),
            ("io.kubernetes.container.name".to_string(), container.name.clone()),
        ]);
        let container_spec = ContainerSpec {
            name: container.name.clone(),
            attempt,
            labels,
            rootfs,
            args,
            env,
            cwd: container.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| {
                if image.config.working_dir.is_empty() {
                    "/".into()
                } else {
                    image.config.working_dir.clone()
                }
            }),
            uid,
            gid,
            mounts,
            memory_limit: resources.memory_limit,
            cpu_shares: resources.cpu_shares,
            cpu_quota: resources.cpu_quota,
            cpu_period: resources.cpu_quota.map(|_| spec::CPU_PERIOD),
            log_path: log_dir.join(format!("{attempt}.log")),
            log_max_size: LOG_MAX_SIZE,
            log_max_files: LOG_MAX_FILES,
            stop_signal: None,
        };
        Ok(container_spec)
    }

    /// The image per `imagePullPolicy`, with the upstream events; None while pulling failed (status says why).
    async fn ensure_image(&mut self, pod: &Pod, container: &Container) -> Option<Image> {
        let config = self.manager.config.clone();
        let name = container.name.clone();
        let reference = container.image.clone().unwrap_or_default();
        let policy = container.image_pull_policy.clone().unwrap_or_else(|| "IfNotPresent".into());
        let present = config.images.resolve(&reference).await.ok().flatten();
        if policy != "Always" {
            if let Some(image) = present {
                let message = format!("Container image \"{reference}\" already present on machine");
                self.event(pod, Some(&name), Kind::Normal, "Pulled", &message).await;
                return Some(image);
            }
            if policy == "Never" {
                let message = format!("Container image \"{reference}\" is not present with pull policy of Never");
                self.set_waiting(&name, "ErrImageNeverPull", &message);
                self.event(pod, Some(&name), Kind::Warning, "ErrImageNeverPull", &message).await;
                self.retry_later(&name, Duration::from_secs(10));
                return None;
            }
        }
        let record = self.records.entry(name.clone()).or_default();
        if record.retry_at.is_some_and(|at| Instant::now() < at) {
            if let Some((_, message)) = record.waiting.clone().filter(|w| w.0 == "ErrImagePull") {
                record.waiting = Some((
                    "ImagePullBackOff".into(),
                    format!("Back-off pulling image \"{reference}\": ErrImagePull: {message}"),
                ));
                self.event(
                    pod,
                    Some(&name),
                    Kind::Normal,
                    "BackOff",
                    &format!("Back-off pulling image \"{reference}\""),
                )
                .await;
                self.event(pod, Some(&name), Kind::Warning, "Failed", "Error: ImagePullBackOff").await;
            }
            return None;
        }
        self.event(pod, Some(&name), Kind::Normal, "Pulling", &format!("Pulling image \"{reference}\"")).await;
        let credentials = volumes::pull_credentials(&self.manager.client, pod).await;
        let started = Instant::now();
        match config.images.pull(&reference, &credentials).await {
            Ok(image) => {
                let took = started.elapsed().as_secs_f64();
                let message = format!(
                    "Successfully pulled image \"{reference}\" in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                    image.size
                );
                self.event(pod, Some(&name), Kind::Normal, "Pulled", &message).await;
                self.records.entry(name).or_default().image_backoff = None;
                Some(image)
            }
            Err(error) => {
                let message = error.to_string();
                self.event(
                    pod,
                    Some(&name),
                    Kind::Warning,
                    "Failed",
                    &format!("Failed to pull image \"{reference}\": {message}"),
                )
                .await;
                self.event(pod, Some(&name), Kind::Warning, "Failed", "Error: ErrImagePull").await;
                let record = self.records.entry(name.clone()).or_default();
                let backoff = record.image_backoff.map_or(BACKOFF_INITIAL, |b| (b * 2).min(BACKOFF_MAX));
                record.image_backoff = Some(backoff);
                record.retry_at = Some(Instant::now() + backoff);
                record.waiting = Some(("ErrImagePull".into(), message));
                None
            }
        }
    }

    fn set_waiting(&mut self, name: &str, reason: &str, message: &str) {
        self.records.entry(name.to_string()).or_default().waiting = Some((reason.into(), message.into()));
    }

    fn retry_later(&mut self, name: &str, after: Duration) {
        self.records.entry(name.to_string()).or_default().retry_at = Some(Instant::now() + after);
    }

    async fn environment(&self, pod: &Pod, container: &Container, image: &Image) -> Result<Vec<String>, String> {
        let mut env: Vec<(String, String)> =
            image.config.env.iter().filter_map(|e| e.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
        let hostname = pod
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
        fn set(env: &mut Vec<(String, String)>, key: String, value: String) {
            env.retain(|(k, _)| *k != key);
            env.push((key, value));
        }
        set(&mut env, "HOSTNAME".into(), hostname);
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        for source in container.env_from.iter().flatten() {
            let prefix = source.prefix.clone().unwrap_or_default();
            let data = if let Some(cm) = &source.config_map_ref {
                self.source_data(namespace, Source::ConfigMap, &cm.name, cm.optional == Some(true)).await?
            } else if let Some(secret) = &source.secret_ref {
                self.source_data(namespace, Source::Secret, &secret.name, secret.optional == Some(true)).await?
            } else {
                BTreeMap::new()
            };
            for (key, value) in data {
                set(&mut env, format!("{prefix}{key}"), value);
            }
        }
        for var in container.env.iter().flatten() {
            let value = match &var.value_from {
                None => {
                    let known: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let vars: BTreeMap<&str, &str> = known.iter().filter_map(|e| e.split_once('=')).collect();
                    spec::expand(var.value.as_deref().unwrap_or_default(), &vars)
                }
                Some(from) => {
                    if let Some(field) = &from.field_ref {
                        match field.field_path.as_str() {
                            "spec.nodeName" => self.config().node_name.clone(),
                            "spec.serviceAccountName" => {
                                pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_default()
                            }
                            "status.podIP" => self.pod_ip.clone().unwrap_or_default(),
                            "status.hostIP" => self.config().node_ip.to_string(),
                            path => spec::metadata_field(pod, path)
                                .ok_or_else(|| format!("unsupported fieldRef {path:?} in env {}", var.name))?,
                        }
                    } else if let Some(key) = &from.config_map_key_ref {
                        let optional = key.optional == Some(true);
                        let data = self.source_data(namespace, Source::ConfigMap, &key.name, optional).await?;
                        match data.get(&key.key) {
                            Some(value) => value.clone(),
                            None if optional => continue,
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in ConfigMap {namespace}/{}",
                                    key.key, key.name
                                ))
                            }
                        }
                    } else if let Some(key) = &from.secret_key_ref {
                        let optional = key.optional == Some(true);
                        let data = self.source_data(namespace, Source::Secret, &key.name, optional).await?;
                        match data.get(&key.key) {
                            Some(value) => value.clone(),
                            None if optional => continue,
                            None => {
                                return Err(format!("couldn't find key {} in Secret {namespace}/{}", key.key, key.name))
                            }
                        }
                    } else if let Some(resource) = &from.resource_field_ref {
                        spec::resource_field(container, resource)?
                    } else {
                        continue;
                    }
                }
            };
            set(&mut env, var.name.clone(), value);
        }
        Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
    }

    /// The data of a ConfigMap or Secret (decoded), for env; empty when it is optional and missing.
    async fn source_data(
        &self,
        namespace: &str,
        source: Source,
        name: &str,
        optional: bool,
    ) -> Result<BTreeMap<String, String>, String> {
        let client = self.manager.client.clone();
        let data = match source {
            Source::ConfigMap => {
                Api::<ConfigMap>::namespaced(client, namespace).get(name).await.map(|o| o.data.unwrap_or_default())
            }
            Source::Secret => Api::<Secret>::namespaced(client, namespace).get(name).await.map(|o| {
                o.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect()
            }),
        };
        match data {
            Ok(data) => Ok(data),
            Err(_) if optional => Ok(BTreeMap::new()),
            Err(kube::Error::Api(e)) if e.code == 404 => Err(format!("{} \"{name}\" not found", source.noun())),
            Err(e) => Err(format!("cannot read {} \"{name}\": {e}", source.noun())),
        }
    }

    fn publish_view(&self, pod: &Pod) {
        let key = (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default());
        let containers = self
            .records
            .iter()
            .map(|(name, record)| {
                let running = matches!(record.state, Some(ContainerState::Running { .. }));
                let view = ContainerView {
                    attempt: record.attempt,
                    running,
                    waiting: record.waiting.clone().filter(|_| !running),
                    previous_attempt: record.attempt.and_then(|a| a.checked_sub(1)),
                };
                (name.clone(), view)
            })
            .collect();
        let view = PodView { uid: self.uid.clone(), containers };
        self.manager.views.write().expect("views lock").insert(key, view);
    }

    async fn report(&mut self, pod: &Pod) {
        let status = status::pod_status(
            pod,
            &status::Inputs {
                records: &self.records,
                pod_ip: self.pod_ip.as_deref(),
                host_ip: &self.config().node_ip.to_string(),
                start_time: self.start_time,
                sandbox_ready: self.sandbox.is_some() && self.volumes.is_some(),
                init_done: self.init_done,
            },
        );
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> =
            Api::namespaced(self.manager.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
        let patch = serde_json::json!({"status": status});
        match api
            .patch_status(
                pod.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => self.last_status = Some(status),
            Err(error) => tracing::debug!(%error, pod = ?pod.metadata.name, "cannot update the pod status"),
        }
    }

    /// Stops every container (graceful, then killed), tears the sandbox down and, for a pod being deleted through
    /// the API, removes the object with grace period 0 (the kubelet's confirmation that nothing runs any more).
    async fn terminate(&mut self, pod: &Pod, delete_from_api: bool) {
        let config = self.manager.config.clone();
        if !self.adopted {
            self.adopt(pod).await;
        }
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(DEFAULT_GRACE)
            .max(0);
        self.refresh_states().await;
        let mut stops = Vec::new();
        for (name, record) in &self.records {
            if let (Some(id), Some(ContainerState::Running { .. } | ContainerState::Created)) =
                (&record.id, &record.state)
            {
                self.event(pod, Some(name), Kind::Normal, "Killing", &format!("Stopping container {name}")).await;
                let (runtime, id) = (config.containers.clone(), id.clone());
                let pre_stop = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.iter().find(|c| c.name == *name))
                    .and_then(|c| c.lifecycle.as_ref()?.pre_stop.clone());
                let (recorder, subject_pod, container) = (self.manager.recorder.clone(), pod.clone(), name.clone());
                let pod_ip = self.pod_ip.clone();
                stops.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let grace = Duration::from_secs(grace as u64);
                    if let Some(hook) = pre_stop {
                        if let Err(message) = hooks::run(&runtime, &id, &hook, pod_ip.as_deref(), grace).await {
                            let subject = Worker::subject(&subject_pod, Some(&container));
                            recorder.record(&subject, Kind::Warning, "FailedPreStopHook", &message).await;
                        }
                    }
                    let left = grace.saturating_sub(started.elapsed());
                    if let Err(error) = runtime.stop_container(&id, left).await {
                        tracing::warn!(%error, container = %id, "cannot stop the container");
                    }
                }));
            }
        }
        for stop in stops {
            let _ = stop.await;
        }
        self.refresh_states().await;
        if delete_from_api {
            self.report(pod).await;
        }
        for record in self.records.values() {
            if let Some(id) = &record.id {
                let _ = config.containers.remove_container(id).await;
            }
        }
        let sandbox = match self.sandbox.clone() {
            Some(sandbox) => Some(sandbox),
            None => config.containers.sandbox(&self.uid).await.ok().flatten(),
        };
        match sandbox {
            Some(sandbox) => {
                self.teardown_sandbox(&sandbox, pod.metadata.namespace.as_ref(), pod.metadata.name.as_ref()).await
            }
            None => volumes::cleanup(&self.pod_dir()),
        }
        let key = (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default());
        self.manager.views.write().expect("views lock").remove(&key);
        if delete_from_api {
            let api: Api<Pod> = Api::namespaced(self.manager.client.clone(), &key.0);
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
                ..Default::default()
            };
            match api.delete(&key.1, &params).await {
                Ok(_) => tracing::info!(pod = %key.1, namespace = %key.0, "pod stopped and removed"),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(error) => tracing::warn!(%error, pod = %key.1, "cannot remove the stopped pod"),
            }
        }
    }

    /// Network, rootfs mounts, volumes, namespaces, cgroups and files of a pod; logs go too.
    async fn teardown_sandbox(&self, sandbox: &Sandbox, namespace: Option<&String>, name: Option<&String>) {
        let config = &self.manager.config;
        if let Some(netns) = &sandbox.netns {
            let attachment = network::Attachment {
                container_id: sandbox.id.clone(),
                netns: netns.clone(),
                ifname: "eth0".into(),
                pod_namespace: namespace.cloned().unwrap_or_default(),
                pod_name: name.cloned().unwrap_or_default(),
                pod_uid: self.uid.clone(),
                port_mappings: Vec::new(),
            };
            if let Err(error) = config.cni.del(&attachment).await {
                tracing::warn!(%error, sandbox = %sandbox.id, "CNI DEL failed");
            }
        }
        let containers_dir = self.pod_dir().join("containers");
        for name_dir in std::fs::read_dir(&containers_dir).into_iter().flatten().flatten() {
            for attempt_dir in std::fs::read_dir(name_dir.path()).into_iter().flatten().flatten() {
                let _ = config.images.unmount_rootfs(&attempt_dir.path()).await;
            }
        }
        if let Err(error) = config.containers.remove_sandbox(&sandbox.id).await {
            tracing::warn!(%error, sandbox = %sandbox.id, "cannot remove the sandbox");
        }
        volumes::cleanup(&self.pod_dir());
        if let (Some(namespace), Some(name)) = (namespace, name) {
            let _ = std::fs::remove_dir_all(config.dir.join("logs").join(format!("{namespace}_{name}_{}", self.uid)));
        }
    }
}

pub fn restart_policy(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
}

fn image_id(image: &Image) -> String {
    image.repo_digests.first().cloned().unwrap_or_else(|| image.id.clone())
}
