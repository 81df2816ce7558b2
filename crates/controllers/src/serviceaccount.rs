//! The serviceaccount controller: every active namespace has a ServiceAccount named `default`, made when the
//! namespace appears and made again when it is deleted (upstream's `ServiceAccountsController`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::Client;

/// The account every namespace gets.
pub const DEFAULT_ACCOUNT: &str = "default";
const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

pub async fn run(client: Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    let only_default = watcher::Config::default().fields(&format!("metadata.name={DEFAULT_ACCOUNT}"));
    Controller::new(namespaces, watcher::Config::default())
        .watches(accounts, only_default, |account| account.metadata.namespace.map(|ns| ObjectRef::new(&ns)))
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "serviceaccount reconcile failed");
            }
        })
        .await;
}

fn error_policy(_: Arc<Namespace>, error: &Error, _: Arc<Client>) -> Action {
    tracing::warn!(%error, "serviceaccount controller will retry");
    Action::requeue(RETRY)
}

/// Whether a namespace takes new content: upstream skips every namespace that is not Active.
pub fn is_active(namespace: &Namespace) -> bool {
    namespace.metadata.deletion_timestamp.is_none()
        && namespace.status.as_ref().and_then(|s| s.phase.as_deref()).is_none_or(|phase| phase == "Active")
}

async fn reconcile(namespace: Arc<Namespace>, client: Arc<Client>) -> Result<Action, Error> {
    let Some(name) = namespace.metadata.name.as_deref() else { return Ok(Action::await_change()) };
    if !is_active(&namespace) {
        return Ok(Action::await_change());
    }
    let accounts: Api<ServiceAccount> = Api::namespaced((*client).clone(), name);
    if accounts.get_opt(DEFAULT_ACCOUNT).await?.is_some() {
        return Ok(Action::await_change());
    }
    let account = ServiceAccount {
        metadata: ObjectMeta { name: Some(DEFAULT_ACCOUNT.into()), ..Default::default() },
        ..Default::default()
    };
    match accounts.create(&PostParams::default(), &account).await {
        Ok(_) => {
            tracing::debug!(namespace = name, "made the default service account");
            Ok(Action::await_change())
        }
        // Made by someone else meanwhile, or the namespace went away or began terminating.
        Err(error) if gone_or_done(&error) => Ok(Action::await_change()),
        Err(error) => Err(error.into()),
    }
}

/// A create that needs no retry: the object exists already (409), or its namespace is gone (404) or terminating
/// (403).
pub fn gone_or_done(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if matches!(status.code, 403 | 404 | 409))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn only_active_namespaces_get_accounts() {
        let namespace = |phase: &str| Namespace {
            status: Some(NamespaceStatus { phase: Some(phase.into()), ..Default::default() }),
            ..Default::default()
        };
        assert!(is_active(&namespace("Active")));
        assert!(is_active(&Namespace::default()), "a namespace without status yet is new, not terminating");
        assert!(!is_active(&namespace("Terminating")));
        let mut deleted = namespace("Active");
        deleted.metadata.deletion_timestamp = Some(Time(Default::default()));
        assert!(!is_active(&deleted));
    }
}
