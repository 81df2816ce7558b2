//! Events about pods, as the kubelet records them (`source.component: kubelet`): a repeated event (same pod,
//! field path, reason and message) bumps the count of the first one instead of making a new object.

use std::collections::HashMap;
use std::time::SystemTime;

use apimachinery::time::rfc3339;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

/// What an event is about: a pod, or one of its containers.
pub struct Subject<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub uid: &'a str,
    pub container: Option<&'a str>,
}

/// (namespace, pod uid, field path, reason, message): what makes two events the same.
type EventKey = (String, String, String, String, String);

/// One event to record, owned so that it can wait in the queue.
struct Request {
    namespace: String,
    pod: String,
    uid: String,
    field_path: String,
    kind: Kind,
    reason: String,
    message: String,
    at: SystemTime,
}

enum Message {
    Record(Request),
    Forget(String),
}

/// Queues events for a background writer: pod workers never wait for the API on their way to a running container.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::UnboundedSender<Message>,
}

impl Recorder {
    pub fn new(client: kube::Client, node: String) -> Recorder {
        let (queue, mut inbox) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut writer = Writer { client, node, seen: HashMap::new() };
            while let Some(message) = inbox.recv().await {
                match message {
                    Message::Record(request) => writer.write(request).await,
                    Message::Forget(uid) => writer.seen.retain(|key, _| key.1 != uid),
                }
            }
        });
        Recorder { queue }
    }

    /// Records an event in order with the others; failures are logged, never returned (events are best effort).
    pub async fn record(&self, subject: &Subject<'_>, kind: Kind, reason: &str, message: &str) {
        let request = Request {
            namespace: subject.namespace.to_string(),
            pod: subject.pod.to_string(),
            uid: subject.uid.to_string(),
            field_path: subject.container.map(|c| format!("spec.containers{{{c}}}")).unwrap_or_default(),
            kind,
            reason: reason.to_string(),
            message: message.to_string(),
            at: SystemTime::now(),
        };
        let _ = self.queue.send(Message::Record(request));
    }

    /// Forgets a pod's events once the pod is gone.
    pub async fn forget(&self, uid: &str) {
        let _ = self.queue.send(Message::Forget(uid.to_string()));
    }
}

struct Writer {
    client: kube::Client,
    node: String,
    /// The event recorded for each key → (event name, count).
    seen: HashMap<EventKey, (String, i32)>,
}

impl Writer {
    async fn write(&mut self, request: Request) {
        let key = (
            request.namespace.clone(),
            request.uid.clone(),
            request.field_path.clone(),
            request.reason.clone(),
            request.message.clone(),
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), &request.namespace);
        let now = rfc3339(request.at);
        if let Some((name, count)) = self.seen.get_mut(&key) {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": now});
            match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return,
                Err(error) => tracing::debug!(%error, "cannot update an event; making a new one"),
            }
        }
        let name = format!("{}.{:x}", request.pod, rand_suffix());
        let field_path = (!request.field_path.is_empty()).then_some(&request.field_path);
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": request.namespace},
            "involvedObject": {
                "kind": "Pod", "apiVersion": "v1", "namespace": request.namespace, "name": request.pod,
                "uid": request.uid, "fieldPath": field_path,
            },
            "reason": request.reason,
            "message": request.message,
            "type": if request.kind == Kind::Normal { "Normal" } else { "Warning" },
            "source": {"component": "kubelet", "host": self.node},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }))
        .expect("a valid Event");
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                self.seen.insert(key, (name, 1));
            }
            Err(error) => tracing::debug!(%error, reason = %request.reason, "cannot record an event"),
        }
    }
}

fn rand_suffix() -> u64 {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    // Nanoseconds since the epoch, like upstream's event names: unique enough per pod.
    now.as_nanos() as u64
}
