//! The root-ca-cert-publisher: every namespace has the ConfigMap `kube-root-ca.crt` holding the cluster CA
//! (`ca.crt`), which the service-account token volume of every pod mounts. A deleted or changed one is made
//! again (upstream's `rootcacertpublisher`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::Client;

use crate::serviceaccount::{gone_or_done, is_active};

pub const CONFIG_MAP: &str = "kube-root-ca.crt";
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Upstream's text, word for word.
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal \
endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across \
distributions of Kubernetes clusters.";
const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

struct Context {
    client: Client,
    /// The cluster CA, PEM.
    root_ca: String,
}

pub async fn run(client: Client, root_ca: String) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let config_maps: Api<ConfigMap> = Api::all(client.clone());
    let only_ours = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}"));
    Controller::new(namespaces, watcher::Config::default())
        .watches(config_maps, only_ours, |map| map.metadata.namespace.map(|ns| ObjectRef::new(&ns)))
        .run(reconcile, error_policy, Arc::new(Context { client, root_ca }))
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "root CA publisher reconcile failed");
            }
        })
        .await;
}

fn error_policy(_: Arc<Namespace>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "root CA publisher will retry");
    Action::requeue(RETRY)
}

fn wanted_data(root_ca: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("ca.crt".to_string(), root_ca.to_string())])
}

/// Whether an existing ConfigMap is as the publisher keeps it: exactly the CA as data, and a description (whose
/// text, as upstream, is not compared).
fn is_current(map: &ConfigMap, root_ca: &str) -> bool {
    map.data.as_ref() == Some(&wanted_data(root_ca))
        && map.metadata.annotations.as_ref().and_then(|a| a.get(DESCRIPTION_ANNOTATION)).is_some_and(|d| !d.is_empty())
}

/// `map` with the CA as its data and the description set, everything else kept.
fn corrected(mut map: ConfigMap, root_ca: &str) -> ConfigMap {
    map.data = Some(wanted_data(root_ca));
    map.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    map
}

async fn reconcile(namespace: Arc<Namespace>, context: Arc<Context>) -> Result<Action, Error> {
    let Some(name) = namespace.metadata.name.as_deref() else { return Ok(Action::await_change()) };
    if !is_active(&namespace) {
        return Ok(Action::await_change());
    }
    let maps: Api<ConfigMap> = Api::namespaced(context.client.clone(), name);
    match maps.get_opt(CONFIG_MAP).await? {
        None => {
            let map = corrected(
                ConfigMap {
                    metadata: ObjectMeta { name: Some(CONFIG_MAP.into()), ..Default::default() },
                    ..Default::default()
                },
                &context.root_ca,
            );
            match maps.create(&PostParams::default(), &map).await {
                Ok(_) => tracing::debug!(namespace = name, "published the root CA"),
                Err(error) if gone_or_done(&error) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Some(map) if is_current(&map, &context.root_ca) => {}
        // Replaced under the resourceVersion read: a conflicting write makes the reconcile run again.
        Some(map) => {
            maps.replace(CONFIG_MAP, &PostParams::default(), &corrected(map, &context.root_ca)).await?;
            tracing::debug!(namespace = name, "restored the root CA");
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_changed_or_undescribed_map_is_corrected_and_the_rest_kept() {
        let made = corrected(ConfigMap::default(), CA);
        assert!(is_current(&made, CA));
        assert_eq!(made.data.as_ref().unwrap()["ca.crt"], CA);
        assert_eq!(made.metadata.annotations.as_ref().unwrap()[DESCRIPTION_ANNOTATION], DESCRIPTION);
        assert!(DESCRIPTION.contains("kubernetes.default.svc. No other usage"), "{DESCRIPTION}");

        let mut edited = made.clone();
        edited.data.as_mut().unwrap().insert("extra".into(), "x".into());
        assert!(!is_current(&edited, CA), "extra keys are removed, as upstream compares the whole data");
        let mut other_ca = made.clone();
        other_ca.data = Some(wanted_data("other"));
        assert!(!is_current(&other_ca, CA));
        let mut undescribed = made.clone();
        undescribed.metadata.annotations = Some(BTreeMap::from([("team".to_string(), "a".to_string())]));
        assert!(!is_current(&undescribed, CA));
        let fixed = corrected(undescribed, CA);
        assert!(is_current(&fixed, CA));
        assert_eq!(fixed.metadata.annotations.unwrap()["team"], "a", "other annotations stay");
    }
}
