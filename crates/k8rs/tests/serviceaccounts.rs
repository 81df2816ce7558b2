//! ServiceAccounts end to end, through the real kubectl: the `default` account and the `kube-root-ca.crt`
//! ConfigMap every namespace gets from the controllers, the ServiceAccount admission of pods, TokenRequest
//! (`kubectl create token`), tokens as bearer credentials, and the OIDC discovery documents that publish the key.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use testkit::Server;

mod support;

use support::{fails, ok, stderr, stdout};

const JSON_KUBECTL: Option<&str> = Some("1.31");
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Generous: the controllers are asynchronous and test machines are busy.
const DEADLINE: Duration = Duration::from_secs(60);

fn server() -> Server {
    Server::start(env!("CARGO_BIN_EXE_k8rs").as_ref(), &[])
}

/// A namespace name no other run or test uses.
fn unique_namespace(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("sa-{what}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Polls `probe` until it returns Some, or fails with `what` after `DEADLINE`.
#[track_caller]
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An object as JSON, if it exists.
fn get(server: &Server, namespace: &str, what: &[&str]) -> Option<Value> {
    let args = [&["-n", namespace, "get"][..], what, &["-o", "json"]].concat();
    let out = server.kubectl(None, &args);
    out.status.success().then(|| json_of(&stdout(&out)))
}

fn create_namespace(server: &Server, name: &str) {
    ok(server.kubectl(JSON_KUBECTL, &["create", "namespace", name]));
}

/// Waits for the controller's `default` account in `namespace`; returns its uid.
fn default_account_uid(server: &Server, namespace: &str) -> String {
    let account = eventually(&format!("the default ServiceAccount in {namespace}"), || {
        get(server, namespace, &["serviceaccount", "default"])
    });
    account["metadata"]["uid"].as_str().unwrap().to_string()
}

/// kubectl (`version`, or the dispatcher) with only the server address, its CA and `token`: no kubeconfig.
fn with_token(server: &Server, version: Option<&str>, token: &str, args: &[&str]) -> Output {
    let ca = server.data_dir().join("server/tls/ca.crt");
    Command::new(testkit::kubectl_path(version))
        .args(["--server", &server.url(), "--certificate-authority", ca.to_str().unwrap(), "--kubeconfig", "/dev/null"])
        .args(["--token", token])
        .args(args)
        .env("HOME", server.data_dir())
        .output()
        .unwrap()
}

/// `GET path` over HTTPS with the admin's client certificate, as `(status, content type, body)`.
fn admin_get(server: &Server, path: &str) -> (u16, String, String) {
    let tls = server.data_dir().join("server/tls");
    let file = |name: &str| tls.join(name).to_str().unwrap().to_string();
    let out = Command::new("curl")
        .args(["-sS", "--cacert", &file("ca.crt"), "--cert", &file("admin.crt"), "--key", &file("admin.key")])
        .args(["-o", "-", "-w", "\n%{http_code} %{content_type}"])
        .arg(format!("{}{path}", server.url()))
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl: {}", stderr(&out));
    let text = stdout(&out);
    let (body, last) = text.rsplit_once('\n').unwrap();
    let (code, content_type) = last.split_once(' ').unwrap();
    (code.parse().unwrap(), content_type.to_string(), body.to_string())
}

fn b64url(part: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap_or_else(|e| panic!("{e}: {part}"))
}

/// The header and claims of a JWT.
fn decode_jwt(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {token}");
    (serde_json::from_slice(&b64url(parts[0])).unwrap(), serde_json::from_slice(&b64url(parts[1])).unwrap())
}

fn create_token(server: &Server, namespace: &str, extra: &[&str]) -> String {
    let args = [&["create", "token", "default", "-n", namespace][..], extra].concat();
    ok(server.kubectl(None, &args)).trim().to_string()
}

#[track_caller]
fn assert_unauthorized(output: Output) {
    let error = fails(output);
    assert!(error.contains("Unauthorized") || error.contains("must be logged in"), "{error}");
}

const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"NAME"},
 "spec":{"initContainers":[{"name":"init","image":"busybox:1.36"}],"containers":[{"name":"app","image":"nginx:1.27"}]}}"#;

fn create_pod(server: &Server, namespace: &str, name: &str, spec_extra: Value) -> Output {
    let mut pod = json_of(&POD.replace("NAME", name));
    for (key, value) in spec_extra.as_object().unwrap() {
        pod["spec"][key] = value.clone();
    }
    server.kubectl_stdin(JSON_KUBECTL, &["-n", namespace, "create", "-f", "-"], &pod.to_string())
}

#[test]
fn every_namespace_gets_a_default_account_and_the_root_ca() {
    let server = server();
    let namespace = unique_namespace("ns");
    create_namespace(&server, &namespace);
    let uid = default_account_uid(&server, &namespace);
    let ca = std::fs::read_to_string(server.data_dir().join("server/tls/ca.crt")).unwrap();
    let map =
        eventually("the kube-root-ca.crt ConfigMap", || get(&server, &namespace, &["configmap", "kube-root-ca.crt"]));
    assert_eq!(map["data"], json!({"ca.crt": ca}));
    assert_eq!(
        map["metadata"]["annotations"]["kubernetes.io/description"],
        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the \
         internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of \
         Kubernetes clusters."
    );
    // The namespaces every cluster starts with have them too.
    for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        default_account_uid(&server, namespace);
        eventually("kube-root-ca.crt in a built-in namespace", || get(&server, namespace, &["cm", "kube-root-ca.crt"]));
    }

    // A deleted account is made again (a new object), a changed or deleted ConfigMap restored.
    ok(server.kubectl(None, &["-n", &namespace, "delete", "serviceaccount", "default"]));
    eventually("the default ServiceAccount made again", || {
        get(&server, &namespace, &["serviceaccount", "default"]).filter(|sa| sa["metadata"]["uid"] != uid.as_str())
    });
    let tamper = r#"{"data":{"ca.crt":"forged","extra":"x"}}"#;
    ok(server.kubectl(None, &["-n", &namespace, "patch", "cm", "kube-root-ca.crt", "--type=merge", "-p", tamper]));
    eventually("the changed ConfigMap restored", || {
        get(&server, &namespace, &["cm", "kube-root-ca.crt"]).filter(|m| m["data"] == json!({"ca.crt": ca}))
    });
    ok(server.kubectl(None, &["-n", &namespace, "delete", "cm", "kube-root-ca.crt"]));
    eventually("the deleted ConfigMap restored", || get(&server, &namespace, &["cm", "kube-root-ca.crt"]));
}

#[test]
fn pods_get_their_account_and_the_token_volume() {
    let server = server();
    let namespace = unique_namespace("pods");
    create_namespace(&server, &namespace);
    // Right after its namespace: admission waits for the controller's `default` account.
    ok(create_pod(&server, &namespace, "web", json!({})));
    let pod = get(&server, &namespace, &["pod", "web"]).unwrap();
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");
    let volumes = spec["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let volume_name = volumes[0]["name"].as_str().unwrap();
    let suffix = volume_name.strip_prefix("kube-api-access-").unwrap();
    assert!(suffix.len() == 5 && suffix.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{volume_name}");
    assert_eq!(
        volumes[0]["projected"],
        json!({
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        })
    );
    let mount = json!([{"name": volume_name, "readOnly": true, "mountPath": MOUNT_PATH}]);
    assert_eq!(spec["initContainers"][0]["volumeMounts"], mount);
    assert_eq!(spec["containers"][0]["volumeMounts"], mount);

    // An account that does not exist: 403 with upstream's message, and nothing stored.
    let refused = fails(create_pod(&server, &namespace, "ghostly", json!({"serviceAccountName": "ghost"})));
    assert!(
        refused.contains(&format!(
            r#"pods "ghostly" is forbidden: error looking up service account {namespace}/ghost: serviceaccount "ghost" not found"#
        )),
        "{refused}"
    );
    assert!(get(&server, &namespace, &["pod", "ghostly"]).is_none());

    // An account of one's own, with pull secrets and automount off; the pod's own choice wins over the account's.
    let account = r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"builder"},
        "imagePullSecrets":[{"name":"regcred"}],"automountServiceAccountToken":false}"#;
    ok(server.kubectl_stdin(JSON_KUBECTL, &["-n", &namespace, "create", "-f", "-"], account));
    ok(create_pod(&server, &namespace, "quiet", json!({"serviceAccountName": "builder"})));
    let quiet = get(&server, &namespace, &["pod", "quiet"]).unwrap();
    assert!(quiet["spec"].get("volumes").is_none(), "{quiet}");
    assert!(quiet["spec"]["containers"][0].get("volumeMounts").is_none(), "{quiet}");
    assert_eq!(quiet["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));
    ok(create_pod(
        &server,
        &namespace,
        "loud",
        json!({"serviceAccountName": "builder", "automountServiceAccountToken": true}),
    ));
    let loud = get(&server, &namespace, &["pod", "loud"]).unwrap();
    assert_eq!(loud["spec"]["volumes"].as_array().unwrap().len(), 1, "{loud}");
    ok(create_pod(&server, &namespace, "off", json!({"automountServiceAccountToken": false})));
    assert!(get(&server, &namespace, &["pod", "off"]).unwrap()["spec"].get("volumes").is_none());

    // A container that mounts something at the path already keeps it.
    let own = json!({
        "volumes": [{"name": "mine", "emptyDir": {}}],
        "containers": [
            {"name": "app", "image": "nginx:1.27", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]},
            {"name": "side", "image": "nginx:1.27"},
        ],
    });
    ok(create_pod(&server, &namespace, "own", own));
    let own = get(&server, &namespace, &["pod", "own"]).unwrap();
    assert_eq!(own["spec"]["containers"][0]["volumeMounts"], json!([{"name": "mine", "mountPath": MOUNT_PATH}]));
    assert_eq!(own["spec"]["containers"][1]["volumeMounts"][0]["mountPath"], MOUNT_PATH);
    assert_eq!(own["spec"]["volumes"].as_array().unwrap().len(), 2);

    // A server-side dry run is admitted the same way and stores nothing.
    let dry = ok(server.kubectl_stdin(
        JSON_KUBECTL,
        &["-n", &namespace, "create", "--dry-run=server", "-o", "json", "-f", "-"],
        &POD.replace("NAME", "dry"),
    ));
    assert_eq!(json_of(&dry)["spec"]["serviceAccountName"], "default");
    assert!(get(&server, &namespace, &["pod", "dry"]).is_none());
}

#[test]
fn a_requested_token_authenticates_as_its_account_until_the_account_goes() {
    let mut server = server();
    let namespace = unique_namespace("token");
    create_namespace(&server, &namespace);
    let uid = default_account_uid(&server, &namespace);
    let token = create_token(&server, &namespace, &[]);
    let (header, claims) = decode_jwt(&token);
    assert_eq!(header["alg"], "ES256");
    let subject = format!("system:serviceaccount:{namespace}:default");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], subject.as_str());
    assert_eq!(claims["aud"], json!([ISSUER]));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    assert_eq!(claims["nbf"], claims["iat"]);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert_eq!(
        claims["kubernetes.io"],
        json!({"namespace": namespace, "serviceaccount": {"name": "default", "uid": uid}})
    );

    // The token is a credential: kubectl with nothing else reads pods, and is the account.
    ok(with_token(&server, None, &token, &["get", "pods", "-n", &namespace]));
    let review = json_of(&ok(with_token(&server, Some("1.33"), &token, &["auth", "whoami", "-o", "json"])));
    assert_eq!(
        review["status"]["userInfo"],
        json!({
            "username": subject,
            "uid": uid,
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{namespace}"), "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": [format!("JTI={}", claims["jti"].as_str().unwrap())]},
        })
    );
    // A forged copy (another subject under the same signature) is not.
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = claims.clone();
    forged["sub"] = json!("system:serviceaccount:kube-system:default");
    let forged_body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    assert_unauthorized(with_token(&server, None, &format!("{}.{forged_body}.{}", parts[0], parts[2]), &["get", "ns"]));

    // TokenReview answers for the API server's audience, or for the audiences the token was made for.
    let review = |token: &str, audiences: &[&str]| -> Value {
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                          "spec": {"token": token, "audiences": audiences}});
        json_of(&ok(server.kubectl_stdin(None, &["create", "-f", "-", "-o", "json"], &body.to_string())))
    };
    let reviewed = review(&token, &[]);
    assert_eq!(reviewed["status"]["authenticated"], true, "{reviewed}");
    assert_eq!(reviewed["status"]["user"]["username"], subject.as_str());
    assert_eq!(reviewed["status"]["user"]["uid"], uid.as_str());
    assert_eq!(reviewed["status"]["audiences"], json!([ISSUER]));
    let elsewhere = review(&token, &["https://vault.example"]);
    assert_ne!(elsewhere["status"]["authenticated"], true, "{elsewhere}");
    let vault_token = create_token(&server, &namespace, &["--audience", "https://vault.example"]);
    let for_vault = review(&vault_token, &["https://vault.example", "other"]);
    assert_eq!(for_vault["status"]["audiences"], json!(["https://vault.example"]), "{for_vault}");
    assert_unauthorized(with_token(&server, None, &vault_token, &["get", "pods", "-n", &namespace]));
    let garbage = review("not-a-token", &[]);
    assert_eq!(
        (garbage["status"]["authenticated"].as_bool(), garbage["status"]["error"].as_str()),
        (None, Some("invalid bearer token"))
    );

    // The issuer's key is published, and verifies the token.
    let (code, content_type, body) = admin_get(&server, "/.well-known/openid-configuration");
    assert_eq!((code, content_type.as_str()), (200, "application/json"), "{body}");
    let configuration = json_of(&body);
    assert_eq!(configuration["issuer"], ISSUER);
    assert_eq!(configuration["jwks_uri"], format!("{}/openid/v1/jwks", server.url()));
    assert_eq!(configuration["id_token_signing_alg_values_supported"], json!(["ES256"]));
    let (code, content_type, body) = admin_get(&server, "/openid/v1/jwks");
    assert_eq!((code, content_type.as_str()), (200, "application/jwk-set+json"), "{body}");
    let keys = json_of(&body)["keys"].as_array().unwrap().clone();
    let key = keys.iter().find(|k| k["kid"] == header["kid"]).unwrap_or_else(|| panic!("no key {header} in {keys:?}"));
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str(), key["use"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"), Some("sig"))
    );
    let point = [&[4u8][..], &b64url(key["x"].as_str().unwrap()), &b64url(key["y"].as_str().unwrap())].concat();
    let signed = format!("{}.{}", parts[0], parts[1]);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(signed.as_bytes(), &b64url(parts[2]))
        .expect("the published key verifies the token");
    // Upstream lets authenticated users read the discovery documents, not anonymous ones.
    let anonymous = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(server.data_dir().join("server/tls/ca.crt"))
        .arg(format!("{}/openid/v1/jwks", server.url()))
        .output()
        .unwrap();
    assert_eq!(stdout(&anonymous), "401");

    // The key survives a restart, and so do the tokens it signed.
    server.restart();
    ok(with_token(&server, None, &token, &["get", "pods", "-n", &namespace]));
    let (_, _, again) = admin_get(&server, "/openid/v1/jwks");
    assert_eq!(json_of(&again)["keys"], json!(keys));

    // Deleting the account ends the token, even though the controller makes a new `default` at once.
    ok(server.kubectl(None, &["-n", &namespace, "delete", "serviceaccount", "default"]));
    assert_unauthorized(with_token(&server, None, &token, &["get", "pods", "-n", &namespace]));
    let new_uid = default_account_uid(&server, &namespace);
    assert_ne!(new_uid, uid);
    assert_unauthorized(with_token(&server, None, &token, &["get", "pods", "-n", &namespace]));
}

#[test]
fn a_pod_bound_token_ends_with_its_pod() {
    let server = server();
    let namespace = unique_namespace("bound");
    create_namespace(&server, &namespace);
    let account_uid = default_account_uid(&server, &namespace);
    ok(create_pod(&server, &namespace, "web", json!({})));
    let pod_uid = get(&server, &namespace, &["pod", "web"]).unwrap()["metadata"]["uid"].as_str().unwrap().to_string();

    let bound = ["--bound-object-kind", "Pod", "--bound-object-name", "web", "--duration", "20m"];
    let token = create_token(&server, &namespace, &bound);
    let (_, claims) = decode_jwt(&token);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 1200);
    assert_eq!(
        claims["kubernetes.io"],
        json!({
            "namespace": namespace,
            "serviceaccount": {"name": "default", "uid": account_uid},
            "pod": {"name": "web", "uid": pod_uid},
        })
    );
    ok(with_token(&server, None, &token, &["get", "pods", "-n", &namespace]));
    // The identity names the pod, as upstream's `extra` does.
    let review = json_of(&ok(with_token(&server, Some("1.33"), &token, &["auth", "whoami", "-o", "json"])));
    let extra = &review["status"]["userInfo"]["extra"];
    assert_eq!(extra["authentication.kubernetes.io/pod-name"], json!(["web"]), "{review}");
    assert_eq!(extra["authentication.kubernetes.io/pod-uid"], json!([pod_uid]), "{review}");
    // The pod was never scheduled, so deleting it deletes it at once; the token goes with it.
    ok(server.kubectl(None, &["-n", &namespace, "delete", "pod", "web", "--wait=false"]));
    assert_unauthorized(with_token(&server, None, &token, &["get", "pods", "-n", &namespace]));

    // What TokenRequest refuses, as upstream does.
    let k = |args: &[&str]| server.kubectl(None, &[&["-n", namespace.as_str()][..], args].concat());
    let missing = fails(k(&["create", "token", "nobody"]));
    assert!(missing.contains(r#"serviceaccounts "nobody" not found"#), "{missing}");
    let short = fails(k(&["create", "token", "default", "--duration", "5m"]));
    assert!(short.contains("may not specify a duration less than 10 minutes"), "{short}");
    let gone = fails(k(&["create", "token", "default", "--bound-object-kind", "Pod", "--bound-object-name", "web"]));
    assert!(gone.contains(r#"pods "web" not found"#), "{gone}");
    ok(create_pod(&server, &namespace, "again", json!({})));
    let wrong_uid = ["--bound-object-kind", "Pod", "--bound-object-name", "again", "--bound-object-uid", "0000"];
    let conflict = fails(k(&[&["create", "token", "default"][..], &wrong_uid].concat()));
    assert!(conflict.contains("does not match the UID in record"), "{conflict}");

    // The raw TokenRequest: defaults echoed, and a dry run makes no token.
    let path = format!("/api/v1/namespaces/{namespace}/serviceaccounts/default/token");
    let issued = json_of(&ok(server.kubectl_stdin(None, &["create", "--raw", &path, "-f", "-"], "{}")));
    assert_eq!(issued["kind"], "TokenRequest");
    assert_eq!(issued["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(issued["spec"], json!({"audiences": [ISSUER], "expirationSeconds": 3600, "boundObjectRef": null}));
    let (_, claims) = decode_jwt(issued["status"]["token"].as_str().unwrap());
    let expires = issued["status"]["expirationTimestamp"].as_str().unwrap();
    assert!(expires.ends_with('Z') && expires.len() == 20, "RFC 3339 in seconds: {expires}");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    let dry =
        json_of(&ok(server.kubectl_stdin(None, &["create", "--raw", &format!("{path}?dryRun=All"), "-f", "-"], "{}")));
    assert_eq!(dry["status"]["token"], "");

    // Discovery names the subresource as resources.md has it.
    let resources = json_of(&ok(server.kubectl(None, &["get", "--raw", "/api/v1"])));
    let token_resource =
        resources["resources"].as_array().unwrap().iter().find(|r| r["name"] == "serviceaccounts/token");
    assert_eq!(
        token_resource.cloned(),
        Some(
            json!({"name": "serviceaccounts/token", "singularName": "", "namespaced": true, "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"]})
        )
    );
}

/// A Secret of type `kubernetes.io/service-account-token` gets a long-lived token of its account (with the CA and
/// the namespace), which authenticates as the account for as long as the Secret holds it.
#[test]
fn a_token_secret_holds_a_long_lived_token_of_its_account() {
    let server = server();
    let namespace = unique_namespace("legacy");
    create_namespace(&server, &namespace);
    ok(server.kubectl(None, &["-n", &namespace, "create", "serviceaccount", "build-robot"]));
    let secret = |name: &str, account: Option<&str>| {
        let annotations = account.map_or(json!({}), |a| json!({"kubernetes.io/service-account.name": a}));
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
               "metadata": {"name": name, "annotations": annotations}})
        .to_string()
    };
    let create = |body: String| server.kubectl_stdin(None, &["-n", &namespace, "create", "-f", "-"], &body);
    ok(create(secret("robot-token", Some("build-robot"))));
    let stored = get(&server, &namespace, &["secret", "robot-token"]).expect("the secret");
    let account = get(&server, &namespace, &["serviceaccount", "build-robot"]).unwrap();
    let uid = account["metadata"]["uid"].as_str().unwrap();
    assert_eq!(stored["metadata"]["annotations"]["kubernetes.io/service-account.uid"], uid, "{stored}");
    let data = |key: &str| {
        let encoded = stored["data"][key].as_str().unwrap_or_else(|| panic!("data.{key}: {stored}"));
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap()
    };
    assert_eq!(data("namespace"), namespace);
    let ca = std::fs::read_to_string(server.data_dir().join("server/tls/ca.crt")).unwrap();
    assert_eq!(data("ca.crt"), ca);
    let token = data("token");
    let (_, claims) = decode_jwt(&token);
    let subject = format!("system:serviceaccount:{namespace}:build-robot");
    assert_eq!(
        claims,
        json!({"iss": "kubernetes/serviceaccount", "sub": subject,
               "kubernetes.io/serviceaccount/namespace": namespace,
               "kubernetes.io/serviceaccount/secret.name": "robot-token",
               "kubernetes.io/serviceaccount/service-account.name": "build-robot",
               "kubernetes.io/serviceaccount/service-account.uid": uid})
    );

    let review = json_of(&ok(with_token(&server, Some("1.33"), &token, &["auth", "whoami", "-o", "json"])));
    assert_eq!(review["status"]["userInfo"]["username"], subject.as_str(), "{review}");
    assert_eq!(review["status"]["userInfo"]["uid"], uid);
    ok(with_token(&server, None, &token, &["get", "pods", "-n", &namespace]));

    // Without the account annotation the Secret is refused; for an account that does not exist it gets no token.
    let refused = fails(create(secret("anonymous", None)));
    assert!(refused.contains("metadata.annotations[kubernetes.io/service-account.name]: Required value"), "{refused}");
    ok(create(secret("orphan", Some("nobody"))));
    assert!(get(&server, &namespace, &["secret", "orphan"]).unwrap()["data"].get("token").is_none());

    // The token is good while its Secret holds it.
    ok(server.kubectl(None, &["-n", &namespace, "delete", "secret", "robot-token"]));
    assert_unauthorized(with_token(&server, None, &token, &["get", "pods", "-n", &namespace]));
}
