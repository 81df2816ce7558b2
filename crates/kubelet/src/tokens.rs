//! Service account tokens for `projected` volumes, as upstream's token manager: the kubelet asks the API server,
//! with its own client, for a token of the pod's service account bound to the pod (TokenRequest,
//! `POST …/serviceaccounts/{name}/token`), keeps it, and renews it once 80% of its lifetime has passed or it is
//! 24 hours old. Each pod worker owns one manager, so renewal ends with the pod.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::api::{Api, PostParams};

/// What the API defaults `expirationSeconds` of a projected token to.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// A token is renewed at the latest when it is this old, however long it is valid (upstream's maxTTL).
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// After a failed renewal the next try waits this long; a token that has not expired serves meanwhile.
const RETRY: Duration = Duration::from_secs(10);

/// Tokens that differ in any of these are requested separately.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    audience: Option<String>,
    expiration_seconds: i64,
}

struct Token {
    value: String,
    expires: SystemTime,
    renew_at: SystemTime,
}

/// The service account tokens of one pod.
pub struct TokenManager {
    client: kube::Client,
    tokens: HashMap<Key, Token>,
}

impl TokenManager {
    pub fn new(client: kube::Client) -> TokenManager {
        TokenManager { client, tokens: HashMap::new() }
    }

    /// The token a projected `serviceAccountToken` source of `pod` holds: the kept one until it is due for renewal,
    /// else a new one. When a renewal fails, the kept token serves until it expires; after that, the error.
    pub async fn token(&mut self, pod: &Pod, source: &ServiceAccountTokenProjection) -> Result<String, String> {
        let request = token_request(pod, source);
        let key = Key {
            audience: request.spec.audiences.first().cloned(),
            expiration_seconds: request.spec.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        };
        let now = SystemTime::now();
        if let Some(kept) = self.tokens.get(&key).filter(|t| now < t.renew_at.min(t.expires)) {
            return Ok(kept.value.clone());
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let service_account = service_account(pod);
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let response = api.create_token_request(service_account, &PostParams::default(), &request).await;
        match response.map_err(|e| crate::api_message(&e)).and_then(|r| received(r, key.expiration_seconds)) {
            Ok(token) => {
                tracing::debug!(pod = ?pod.metadata.name, %service_account, "service account token requested");
                let value = token.value.clone();
                self.tokens.insert(key, token);
                Ok(value)
            }
            Err(error) => {
                let error = format!("failed to fetch token for service account \"{service_account}\": {error}");
                let Some(kept) = self.tokens.get_mut(&key) else { return Err(error) };
                kept.renew_at = now + RETRY;
                if now >= kept.expires {
                    return Err(error);
                }
                tracing::warn!(pod = ?pod.metadata.name, %error, "cannot renew a service account token; the current one serves on");
                Ok(kept.value.clone())
            }
        }
    }

    /// Whether a token is due for renewal (the projected volumes holding tokens are to be written again).
    pub fn renewal_due(&self, now: SystemTime) -> bool {
        self.tokens.values().any(|t| now >= t.renew_at)
    }
}

/// The pod's service account: `spec.serviceAccountName`, "default" when unset.
pub fn service_account(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.service_account_name.as_deref()).filter(|s| !s.is_empty()).unwrap_or("default")
}

/// The TokenRequest for a projected source of `pod`: the source's audience (the API server's own when none),
/// its lifetime, and bound to the pod.
pub fn token_request(pod: &Pod, source: &ServiceAccountTokenProjection) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: source.audience.iter().filter(|a| !a.is_empty()).cloned().collect(),
            expiration_seconds: Some(source.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    }
}

/// The token of a TokenRequest response, with its renewal time from the lifetime the server granted (which may
/// differ from the one asked for).
fn received(response: TokenRequest, asked_seconds: i64) -> Result<Token, String> {
    let status = response.status.filter(|s| !s.token.is_empty()).ok_or("the TokenRequest response has no token")?;
    let expires = SystemTime::from(status.expiration_timestamp.0);
    let lifetime = response.spec.expiration_seconds.unwrap_or(asked_seconds);
    Ok(Token { value: status.token, expires, renew_at: renew_at(expires, lifetime) })
}

/// When a token valid for `lifetime_seconds` until `expires` is renewed: once 80% of its lifetime has passed, or
/// when it is 24 hours old, whichever is first (upstream's rule, without its jitter).
pub fn renew_at(expires: SystemTime, lifetime_seconds: i64) -> SystemTime {
    let seconds = lifetime_seconds.max(0) as u64;
    let issued = expires.checked_sub(Duration::from_secs(seconds)).unwrap_or(expires);
    // Whole seconds, as upstream: the last 20% of 3607 s is 721 s.
    let last_fifth = Duration::from_secs(seconds * 20 / 100);
    (issued + MAX_AGE).min(expires.checked_sub(last_fifth).unwrap_or(expires))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_api::{granted, FakeApi};
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    fn pod(service_account: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec { service_account_name: service_account.map(String::from), ..Default::default() }),
            ..Default::default()
        }
    }

    fn source(audience: Option<&str>, expiration_seconds: Option<i64>) -> ServiceAccountTokenProjection {
        ServiceAccountTokenProjection { audience: audience.map(String::from), expiration_seconds, path: "token".into() }
    }

    #[test]
    fn renewal_comes_at_80_percent_or_after_a_day() {
        let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = issued + Duration::from_secs(3600);
        assert_eq!(renew_at(hour, 3600), issued + Duration::from_secs(2880));
        let upstream_default = issued + Duration::from_secs(3607);
        assert_eq!(renew_at(upstream_default, 3607), issued + Duration::from_secs(3607 - 721));
        // A token the server extended to a year is still renewed daily.
        let year = issued + Duration::from_secs(365 * 86_400);
        assert_eq!(renew_at(year, 365 * 86_400), issued + Duration::from_secs(86_400));
        assert_eq!(renew_at(issued + Duration::from_secs(600), 600), issued + Duration::from_secs(480));
    }

    #[test]
    fn the_request_is_bound_to_the_pod() {
        let body = serde_json::to_value(token_request(&pod(None), &source(Some("vault"), Some(7200)))).unwrap();
        assert_eq!(
            body,
            json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "metadata": {},
                "spec": {
                    "audiences": ["vault"],
                    "expirationSeconds": 7200,
                    "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u-1"},
                },
            })
        );
        let body = serde_json::to_value(token_request(&pod(None), &source(None, None))).unwrap();
        assert_eq!(body["spec"]["audiences"], json!([]), "no audience: the API server's own");
        assert_eq!(body["spec"]["expirationSeconds"], 3600);
        assert_eq!(service_account(&pod(None)), "default");
        assert_eq!(service_account(&pod(Some("builder"))), "builder");
    }

    #[tokio::test]
    async fn tokens_are_requested_kept_and_renewed() {
        let api = FakeApi::start().await;
        let path = "/api/v1/namespaces/shop/serviceaccounts/builder/token";
        api.respond("POST", path, 201, granted("t1", 3600, 3600));
        let mut tokens = TokenManager::new(api.client());
        let (pod, hour) = (pod(Some("builder")), source(None, Some(3600)));
        assert_eq!(tokens.token(&pod, &hour).await.unwrap(), "t1");
        let requests = api.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!((requests[0].method.as_str(), requests[0].path.as_str()), ("POST", path));
        assert_eq!(requests[0].body["spec"]["boundObjectRef"]["uid"], "u-1");
        assert_eq!(requests[0].body["spec"]["expirationSeconds"], 3600);
        // Kept while fresh.
        assert_eq!(tokens.token(&pod, &hour).await.unwrap(), "t1");
        assert_eq!(api.requests().len(), 1);
        assert!(!tokens.renewal_due(SystemTime::now()));
        assert!(tokens.renewal_due(SystemTime::now() + Duration::from_secs(2881)));

        // A token whose lifetime is 80% gone is renewed.
        api.respond("POST", path, 201, granted("t2", 600, 3600));
        let other = source(Some("vault"), Some(3600));
        assert_eq!(tokens.token(&pod, &other).await.unwrap(), "t2");
        assert!(tokens.renewal_due(SystemTime::now()));
        api.respond("POST", path, 201, granted("t3", 3600, 3600));
        assert_eq!(tokens.token(&pod, &other).await.unwrap(), "t3");
        assert_eq!(api.requests().len(), 3);
        assert_eq!(api.requests()[2].body["spec"]["audiences"], json!(["vault"]));
        assert!(!tokens.renewal_due(SystemTime::now()));
    }

    #[tokio::test]
    async fn a_failed_renewal_keeps_a_valid_token_and_a_failed_request_is_an_error() {
        let api = FakeApi::start().await;
        let path = "/api/v1/namespaces/shop/serviceaccounts/default/token";
        let mut tokens = TokenManager::new(api.client());
        let (pod, source) = (pod(None), source(None, None));
        let message = "serviceaccounts \"default\" not found";
        api.respond(
            "POST",
            path,
            404,
            json!({"kind": "Status", "code": 404, "reason": "NotFound", "message": message}),
        );
        let error = tokens.token(&pod, &source).await.unwrap_err();
        assert_eq!(error, format!("failed to fetch token for service account \"default\": {message}"));
        api.respond("POST", path, 201, granted("old", 300, 3600));
        assert_eq!(tokens.token(&pod, &source).await.unwrap(), "old");
        api.respond("POST", path, 500, json!({"kind": "Status", "code": 500, "message": "etcd is down"}));
        assert_eq!(tokens.token(&pod, &source).await.unwrap(), "old", "the valid token serves on");
        assert!(!tokens.renewal_due(SystemTime::now()), "the next try waits");
        assert!(tokens.renewal_due(SystemTime::now() + RETRY));
    }
}
