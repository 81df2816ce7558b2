//! `/openapi/v2` as the kubectl versions that read it use it: `kubectl.1.27` and `kubectl.1.28 explain` (1.29+
//! read `/openapi/v3`), which fetch the protobuf document, and 1.27's `apply`.

use std::process::{Command, Output};

use serde_json::{json, Value};
use testkit::Server;

/// What kubectl sends for the document: protobuf only.
const KUBECTL_ACCEPT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

fn server() -> Server {
    Server::start(env!("CARGO_BIN_EXE_k8rs").as_ref(), &[])
}

#[track_caller]
fn ok(output: Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "kubectl failed: {stdout}{stderr}");
    stdout.into_owned()
}

#[track_caller]
fn assert_contains(text: &str, wanted: &[&str]) {
    for line in wanted {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

/// `GET /openapi/v2` as the admin with extra headers: the status, content type, ETag, and the body's length and
/// first bytes in hex, one per line.
fn get_v2(server: &Server, headers: &[(&str, &str)]) -> Vec<String> {
    let tls = server.data_dir().join("server/tls");
    let script = r#"
import http.client, json, ssl, sys
tls, port, headers = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
context = ssl.create_default_context(cafile=tls + "/ca.crt")
context.load_cert_chain(tls + "/admin.crt", tls + "/admin.key")
connection = http.client.HTTPSConnection("127.0.0.1", port, context=context)
connection.request("GET", "/openapi/v2", headers=headers)
response = connection.getresponse()
body = response.read()
print(response.status, response.getheader("Content-Type"), response.getheader("ETag"), sep="\n")
print(len(body), body[:5].hex(), sep="\n")
"#;
    let headers: serde_json::Map<String, Value> = headers.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let out = Command::new("python3")
        .args(["-c", script, tls.to_str().unwrap(), &server.port.to_string(), &Value::Object(headers).to_string()])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn kubectl_127_and_128_explain_fields() {
    let server = server();
    let restart_policy = ok(server.kubectl(Some("1.27"), &["explain", "pods.spec.restartPolicy"]));
    assert_contains(
        &restart_policy,
        &[
            "KIND:       Pod\nVERSION:    v1\n",
            "FIELD: restartPolicy <string>\n",
            "DESCRIPTION:\n    Restart policy for all containers within the pod.",
        ],
    );
    let strategy = ok(server.kubectl(Some("1.28"), &["explain", "deployments.spec.strategy"]));
    assert_contains(
        &strategy,
        &[
            "GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n",
            "FIELD: strategy <DeploymentStrategy>\n",
            "The deployment strategy to use to replace existing pods with new ones.",
            "FIELDS:\n  rollingUpdate\t<RollingUpdateDeployment>\n",
            "  type\t<string>\n",
        ],
    );
    // --recursive follows every reference; kubectl 1.33, which reads /openapi/v3, prints the same tree.
    let recursive = ok(server.kubectl(Some("1.27"), &["explain", "deployments", "--recursive"]));
    assert_contains(&recursive, &["    managedFields\t<[]ManagedFieldsEntry>\n", "      fieldsV1\t<FieldsV1>\n"]);
    assert_eq!(recursive, ok(server.kubectl(Some("1.33"), &["explain", "deployments", "--recursive"])));
}

#[test]
fn openapi_v2_is_served_as_json_and_protobuf_with_an_etag() {
    let server = server();
    let raw = ok(server.kubectl(None, &["get", "--raw", "/openapi/v2"]));
    let document: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(document["swagger"], "2.0");
    let pod = &document["definitions"]["io.k8s.api.core.v1.Pod"];
    assert_eq!(pod["x-kubernetes-group-version-kind"], json!([{"group": "", "kind": "Pod", "version": "v1"}]));
    assert_eq!(pod["properties"]["spec"]["$ref"], "#/definitions/io.k8s.api.core.v1.PodSpec");

    let protobuf = get_v2(&server, &[("Accept", KUBECTL_ACCEPT)]);
    assert_eq!(protobuf[..2], ["200", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"]);
    // Document field 1 (swagger), length 3: "2.0".
    assert_eq!(protobuf[4], "0a03322e30");
    let etag = &protobuf[2];
    assert!(etag.starts_with('"') && etag.len() == 130, "{etag}");
    let cached = get_v2(&server, &[("Accept", KUBECTL_ACCEPT), ("If-None-Match", etag)]);
    assert_eq!((cached[0].as_str(), cached[3].as_str()), ("304", "0"));
    let stale = get_v2(&server, &[("Accept", KUBECTL_ACCEPT), ("If-None-Match", "\"stale\"")]);
    assert_eq!(stale[0], "200");
    let json = get_v2(&server, &[("Accept", "application/json"), ("If-None-Match", "\"stale\"")]);
    assert_eq!((json[0].as_str(), json[1].as_str(), &json[2]), ("200", "application/json", etag));
    assert_eq!(json[3], raw.len().to_string());
}

#[test]
fn kubectl_127_applies_and_validates() {
    let server = server();
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n";
    let apply = |manifest: &str| server.kubectl_stdin(Some("1.27"), &["apply", "-f", "-"], manifest);
    assert_eq!(ok(apply(manifest)), "configmap/settings created\n");
    assert_eq!(ok(apply(manifest)), "configmap/settings unchanged\n");
    let typo = apply(&manifest.replace("\ndata:", "\ndataa:"));
    assert!(!typo.status.success());
    assert_contains(&String::from_utf8_lossy(&typo.stderr), &["unknown field \"dataa\""]);
}
