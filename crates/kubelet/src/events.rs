//! Events about pods, as the kubelet records them (`source.component: kubelet`): a repeated event (same pod,
//! field path, reason and message) bumps the count of the first one instead of making a new object.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use apimachinery::time::rfc3339;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::Mutex;

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

#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    node: String,
    /// The event recorded for each key → (event name, count).
    seen: Arc<Mutex<HashMap<EventKey, (String, i32)>>>,
}

impl Recorder {
    pub fn new(client: kube::Client, node: String) -> Recorder {
        Recorder { client, node, seen: Default::default() }
    }

    /// Records an event; failures are logged, never returned (events are best effort, as upstream).
    pub async fn record(&self, subject: &Subject<'_>, kind: Kind, reason: &str, message: &str) {
        let field_path = subject.container.map(|c| format!("spec.containers{{{c}}}")).unwrap_or_default();
        let key = (
            subject.namespace.to_string(),
            subject.uid.to_string(),
            field_path.clone(),
            reason.to_string(),
            message.to_string(),
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), subject.namespace);
        let now = rfc3339(SystemTime::now());
        let mut seen = self.seen.lock().await;
        if let Some((name, count)) = seen.get_mut(&key) {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": now});
            match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return,
                Err(error) => tracing::debug!(%error, "cannot update an event; making a new one"),
            }
        }
        let name = format!("{}.{:x}", subject.pod, rand_suffix());
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": subject.namespace},
            "involvedObject": {
                "kind": "Pod", "apiVersion": "v1", "namespace": subject.namespace, "name": subject.pod,
                "uid": subject.uid, "fieldPath": if field_path.is_empty() { None } else { Some(&field_path) },
            },
            "reason": reason,
            "message": message,
            "type": if kind == Kind::Normal { "Normal" } else { "Warning" },
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
                seen.insert(key, (name, 1));
            }
            Err(error) => tracing::debug!(%error, %reason, "cannot record an event"),
        }
    }

    /// Forgets a pod's events once the pod is gone.
    pub async fn forget(&self, uid: &str) {
        self.seen.lock().await.retain(|key, _| key.1 != uid);
    }
}

fn rand_suffix() -> u64 {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    // Nanoseconds since the epoch, like upstream's event names: unique enough per pod.
    now.as_nanos() as u64
}
