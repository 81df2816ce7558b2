//! The namespace controller: empties a namespace that is being deleted, then releases its `kubernetes`
//! finalizer through `/finalize`, upon which the API server removes the namespace.

use std::sync::Arc;
use std::time::Duration;

use apimachinery::registry;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::ApiResource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Client;

/// The finalizer the API server puts in every namespace's spec.
const FINALIZER: &str = "kubernetes";
/// How soon to look again at a namespace that still has content (pods stopping, finalizers pending).
const RECHECK: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

pub async fn run(client: Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "namespace reconcile failed");
            }
        })
        .await;
}

fn error_policy(_: Arc<Namespace>, error: &Error, _: Arc<Client>) -> Action {
    tracing::warn!(%error, "namespace controller will retry");
    Action::requeue(RECHECK)
}

/// Every resource that lives in namespaces, once per group (the preferred version serves all versions' objects).
fn namespaced_resources() -> impl Iterator<Item = ApiResource> {
    let mut seen = std::collections::BTreeSet::new();
    registry::RESOURCES
        .iter()
        .filter(|r| r.namespaced && r.has_verb("list") && r.has_verb("delete"))
        .filter(move |r| seen.insert((r.group, r.name)))
        .map(|r| ApiResource {
            group: r.group.to_string(),
            version: r.version.to_string(),
            api_version: r.group_version(),
            kind: r.kind.to_string(),
            plural: r.name.to_string(),
        })
}

async fn reconcile(namespace: Arc<Namespace>, client: Arc<Client>) -> Result<Action, Error> {
    let Some(name) = namespace.metadata.name.as_deref() else { return Ok(Action::await_change()) };
    let releasing = namespace.metadata.deletion_timestamp.is_some()
        && namespace
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    if !releasing {
        return Ok(Action::await_change());
    }
    let mut remaining = 0;
    for resource in namespaced_resources() {
        let api: Api<DynamicObject> = Api::namespaced_with((*client).clone(), name, &resource);
        let objects = api.list(&ListParams::default()).await?;
        for object in &objects.items {
            remaining += 1;
            if object.metadata.deletion_timestamp.is_some() {
                continue; // already going: its finalizers or its node will finish it
            }
            let Some(object_name) = object.metadata.name.as_deref() else { continue };
            match api.delete(object_name, &DeleteParams::background()).await {
                Err(error) if !is_not_found(&error) => return Err(error.into()),
                _ => {}
            }
        }
    }
    if remaining > 0 {
        tracing::debug!(namespace = name, remaining, "namespace still has content");
        return Ok(Action::requeue(RECHECK));
    }
    let mut finalized = (*namespace).clone();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers =
            Some(spec.finalizers.take().unwrap_or_default().into_iter().filter(|f| f != FINALIZER).collect());
    }
    let namespaces: Api<Namespace> = Api::all((*client).clone());
    match namespaces.replace_subresource("finalize", name, &PostParams::default(), &finalized).await {
        Err(error) if !is_not_found(&error) => Err(error.into()),
        _ => Ok(Action::await_change()),
    }
}

/// Gone already: someone else finished the job.
fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_namespaced_kind_is_emptied_once() {
        let resources: Vec<ApiResource> = namespaced_resources().collect();
        let plural = |p: &str| resources.iter().filter(|r| r.plural == p).count();
        assert_eq!((plural("pods"), plural("configmaps"), plural("horizontalpodautoscalers")), (1, 1, 1));
        assert_eq!(plural("nodes"), 0, "cluster-scoped kinds are not a namespace's content");
        assert_eq!(plural("bindings"), 0, "create-only kinds cannot be listed");
    }
}
