//! Bad input gets an upstream-shaped Status with the right code, never a panic or a 500, and the server keeps
//! serving.

mod support;

use support::{call_json, server};

const PODS: &str = "/api/v1/namespaces/default/pods";
const SERVICES: &str = "/api/v1/namespaces/default/services";

#[test]
fn malformed_and_mistyped_bodies_are_refused_with_a_status() {
    let server = server(&[]);
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            "POST",
            SERVICES,
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"},"spec":{"ports":[1]}}"#,
            400,
            "spec.ports[0]: expected object, got integer",
        ),
        (
            "POST",
            PODS,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":1}},"spec":{"containers":[{"name":"a","image":"b"}]}}"#,
            400,
            "metadata.labels.a: expected string",
        ),
        (
            "POST",
            PODS,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":"nope"}"#,
            400,
            "spec: expected object, got string",
        ),
        (
            "POST",
            PODS,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"bad key":"x"}},"spec":{"containers":[{"name":"a","image":"b"}]}}"#,
            422,
            r#"metadata.labels: Invalid value: "bad key": name part must consist of alphanumeric characters"#,
        ),
        (
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"},"annotations":{"x//y":"z"}},"spec":{"containers":[{"name":"a","image":"b"}]}}}}"#,
            422,
            r#"spec.template.metadata.annotations: Invalid value: "x//y": a qualified name must consist"#,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"Bad_"}}"#,
            422,
            r#"metadata.generateName: Invalid value: "Bad_": a lowercase RFC 1123 subdomain"#,
        ),
        ("POST", PODS, r#"{"apiVersion":"v1","kind":"Pod","#, 400, "error decoding the JSON body"),
        ("POST", PODS, r#"[1,2,3]"#, 400, "must be a JSON object"),
        (
            "POST",
            PODS,
            r#"{"apiVersion":"v2","kind":"Pod","metadata":{"name":"p"}}"#,
            400,
            "does not match the expected API version",
        ),
        (
            "POST",
            PODS,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[]}}"#,
            422,
            "spec.containers: Required value",
        ),
        ("GET", "/api/v1/namespaces/default/pods?labelSelector=a%20in%20(b", "", 400, "unable to parse requirement"),
        (
            "GET",
            "/api/v1/namespaces/default/pods?fieldSelector=spec.nope%3Dx",
            "",
            400,
            "is not a known field selector",
        ),
        ("GET", "/api/v1/namespaces/default/pods?limit=-3", "", 400, "invalid value for limit"),
        ("GET", "/api/v1/namespaces/default/pods?continue=garbage", "", 400, "invalid continue token"),
        ("GET", "/api/v1/namespaces/default/widgets", "", 404, "could not find the requested resource"),
        ("DELETE", "/api/v1/namespaces/default/pods/none", "", 404, "pods \"none\" not found"),
    ];
    for (method, path, body, code, needle) in cases {
        let body = (!body.is_empty()).then_some(*body);
        let (got, status) = call_json(&server, method, path, body);
        assert_eq!((got, status["kind"].as_str()), (*code, Some("Status")), "{method} {path}: {status}");
        assert_eq!(status["code"], *code);
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{method} {path}: {message}");
    }
    // A verb the resource does not take: 405 naming the resource, in the message and the details.
    let (code, status) = call_json(&server, "DELETE", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/x", None);
    assert_eq!((code, status["reason"].as_str()), (405, Some("MethodNotAllowed")), "{status}");
    assert_eq!(
        status["message"],
        "delete is not supported on resources of kind \"selfsubjectaccessreviews.authorization.k8s.io\""
    );
    assert_eq!(
        status["details"],
        serde_json::json!({"group": "authorization.k8s.io", "kind": "selfsubjectaccessreviews"})
    );
    // A body over 3 MiB is refused before it is read whole.
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"x":"{}"}}}}"#,
        "a".repeat(3 * 1024 * 1024 + 10)
    );
    let file = server.data_dir().join("big.json");
    std::fs::write(&file, big).unwrap();
    let argument = format!("@{}", file.display());
    let (code, status) = call_json(&server, "POST", "/api/v1/namespaces/default/configmaps", Some(&argument));
    assert_eq!((code, status["reason"].as_str()), (413, Some("RequestEntityTooLarge")), "{status}");
    // Still serving.
    assert_eq!(call_json(&server, "GET", "/api/v1/namespaces/default/pods", None).0, 200);
}
