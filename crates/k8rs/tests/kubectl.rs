//! The API server through the real kubectl: each test starts `k8rs server` on a free port with its own data
//! directory and drives it as a user would.
//!
//! Most writes go through `kubectl.1.31` (JSON bodies) and reads through the dispatcher (kubectl 1.33), so
//! both generations of kubectl are exercised; `kubectl_133_creates_with_protobuf_bodies` covers 1.33's writes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::Server;

mod support;

use support::{fails, ok, stderr, stdout};

const JSON_KUBECTL: Option<&str> = Some("1.31");

fn server() -> Server {
    Server::start(env!("CARGO_BIN_EXE_k8rs").as_ref(), &[])
}

/// kubectl with only a server address and the CA: no credentials unless `extra` adds them.
fn bare_kubectl(server: &Server, extra: &[&str]) -> Output {
    let ca = server.data_dir().join("server/tls/ca.crt");
    Command::new(testkit::kubectl_path(None))
        .args(["--server", &server.url(), "--certificate-authority", ca.to_str().unwrap(), "--kubeconfig", "/dev/null"])
        .args(extra)
        .env("HOME", server.data_dir())
        .output()
        .unwrap()
}

/// `GET path` with no credentials at all, as `"<code> <body>"`.
fn anonymous_get(server: &Server, path: &str) -> String {
    let client = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/client.py");
    let ca = server.data_dir().join("server/tls/ca.crt");
    let target = format!("--anonymous={}:{}", ca.display(), server.port);
    let out = Command::new("python3").args([client, &target, "GET", path]).output().expect("python3");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).replacen('\n', " ", 1)
}

#[test]
fn discovery_serves_every_kubectl_version() {
    let server = server();
    for version in [None, Some("1.27"), Some("1.33")] {
        let resources = ok(server.kubectl(version, &["api-resources", "--no-headers"]));
        let deployments = resources
            .lines()
            .find(|l| l.starts_with("deployments "))
            .unwrap_or_else(|| panic!("{version:?}: {resources}"));
        let columns: Vec<&str> = deployments.split_whitespace().collect();
        assert_eq!(columns, ["deployments", "deploy", "apps/v1", "true", "Deployment"], "{version:?}");
        let versions = ok(server.kubectl(version, &["api-versions"]));
        for gv in ["v1", "apps/v1", "autoscaling/v1", "autoscaling/v2", "batch/v1", "rbac.authorization.k8s.io/v1"] {
            assert!(versions.lines().any(|l| l == gv), "{version:?} lacks {gv}: {versions}");
        }
    }
    let categories = ok(server.kubectl(None, &["api-resources", "--categories=all", "-o", "name"]));
    let mut all: Vec<&str> = categories.lines().collect();
    all.sort();
    assert_eq!(
        all,
        [
            "cronjobs.batch",
            "daemonsets.apps",
            "deployments.apps",
            "horizontalpodautoscalers.autoscaling",
            "jobs.batch",
            "pods",
            "replicasets.apps",
            "replicationcontrollers",
            "services",
            "statefulsets.apps"
        ]
    );
}

#[test]
fn a_new_cluster_has_the_default_namespaces() {
    let server = server();
    let namespaces = ok(server.kubectl(None, &["get", "namespaces"]));
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let line =
            namespaces.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{namespaces}"));
        assert!(line.contains("Active"), "{line}");
    }
    let path = "jsonpath={.metadata.labels.kubernetes\\.io/metadata\\.name}";
    assert_eq!(ok(server.kubectl(None, &["get", "ns", "default", "-o", path])), "default");
}

#[test]
fn configmaps_are_created_read_patched_and_deleted() {
    let server = server();
    let k = |args: &[&str]| server.kubectl(JSON_KUBECTL, args);
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n";
    ok(server.kubectl_stdin(JSON_KUBECTL, &["create", "--validate=false", "-f", "-"], namespace));
    let created =
        ok(k(&["-n", "shop", "create", "configmap", "cfg", "--from-literal=color=blue", "--from-literal=size=L"]));
    assert!(created.contains("configmap/cfg created"), "{created}");
    assert!(fails(k(&["-n", "shop", "create", "configmap", "cfg"])).contains(r#"configmaps "cfg" already exists"#));

    let table = ok(k(&["-n", "shop", "get", "configmaps"]));
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["cfg", "2"], "{table}");
    assert_eq!(ok(k(&["-n", "shop", "get", "cm", "cfg", "-o", "jsonpath={.data.color}"])), "blue");

    ok(k(&["-n", "shop", "label", "configmap", "cfg", "app=web"]));
    ok(k(&["-n", "shop", "annotate", "configmap", "cfg", "owner=team-a"]));
    assert_eq!(ok(k(&["-n", "shop", "get", "cm", "-l", "app=web", "-o", "name"])).trim(), "configmap/cfg");
    assert_eq!(ok(k(&["-n", "shop", "get", "cm", "-l", "app in (db)", "-o", "name"])).trim(), "");
    assert!(ok(k(&["-n", "shop", "get", "cm", "--show-labels"])).contains("app=web"));
    let everywhere = ok(k(&["get", "cm", "-A", "--field-selector", "metadata.name=cfg"]));
    assert!(everywhere.lines().nth(1).unwrap().starts_with("shop "), "{everywhere}");

    let merge = r#"{"data":{"size":null,"shape":"round"}}"#;
    ok(k(&["-n", "shop", "patch", "cm", "cfg", "--type=merge", "-p", merge]));
    let json = r#"[{"op":"replace","path":"/data/color","value":"red"}]"#;
    ok(k(&["-n", "shop", "patch", "cm", "cfg", "--type=json", "-p", json]));
    let data = ok(k(&["-n", "shop", "get", "cm", "cfg", "-o", "jsonpath={.data}"]));
    assert_eq!(data, r#"{"color":"red","shape":"round"}"#);
    let broken = r#"[{"op":"remove","path":"/data/nothing"}]"#;
    let bad = fails(k(&["-n", "shop", "patch", "cm", "cfg", "--type=json", "-p", broken]));
    assert!(bad.contains("could not be applied"), "{bad}");

    // dry-run=server answers as if it wrote, and writes nothing.
    ok(k(&["-n", "shop", "create", "configmap", "ghost", "--dry-run=server"]));
    assert!(fails(k(&["-n", "shop", "get", "cm", "ghost"])).contains("NotFound"));

    let deleted = ok(k(&["-n", "shop", "delete", "configmap", "cfg"]));
    assert!(deleted.contains("deleted"), "{deleted}");
    let gone = fails(k(&["-n", "shop", "get", "configmap", "cfg"]));
    assert!(gone.contains(r#"configmaps "cfg" not found"#), "{gone}");
    assert!(fails(k(&["-n", "nowhere", "create", "configmap", "x"])).contains(r#"namespaces "nowhere" not found"#));
}

#[test]
fn invalid_objects_are_refused_with_field_causes() {
    let server = server();
    let bad_name = fails(server.kubectl(JSON_KUBECTL, &["create", "configmap", "Bad_Name"]));
    assert!(bad_name.contains("ConfigMap \"Bad_Name\" is invalid: metadata.name"), "{bad_name}");
    let wrong_kind = fails(server.kubectl_stdin(
        JSON_KUBECTL,
        &["create", "--raw", "/api/v1/namespaces/default/configmaps", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#,
    ));
    assert!(wrong_kind.contains("does not match the expected kind"), "{wrong_kind}");
}

#[test]
fn a_stale_update_is_a_conflict() {
    let server = server();
    ok(server.kubectl(JSON_KUBECTL, &["create", "configmap", "cfg", "--from-literal=a=1"]));
    let original = ok(server.kubectl(None, &["get", "cm", "cfg", "-o", "json"]));
    ok(server.kubectl(JSON_KUBECTL, &["label", "cm", "cfg", "changed=yes"]));
    let stale = fails(server.kubectl_stdin(JSON_KUBECTL, &["replace", "--validate=false", "-f", "-"], &original));
    assert!(stale.contains("the object has been modified"), "{stale}");
}

#[test]
fn requests_without_credentials_are_refused() {
    let server = server();
    // kubectl without credentials asks for a password before it sends anything, so ask as a plain HTTPS client.
    let anonymous = anonymous_get(&server, "/api/v1/namespaces");
    assert!(anonymous.starts_with("401 "), "{anonymous}");
    assert!(anonymous.contains(r#""reason":"Unauthorized""#), "{anonymous}");
    let wrong_token = stderr(&bare_kubectl(&server, &["--token", "nope", "get", "ns"]));
    assert!(wrong_token.contains("You must be logged in to the server"), "{wrong_token}");
    // Health and version are public.
    let version = anonymous_get(&server, "/version");
    assert!(version.starts_with("200 ") && version.contains(r#""minor":"33""#), "{version}");
    assert_eq!(anonymous_get(&server, "/readyz"), "200 ok");
}

#[test]
fn a_token_from_the_token_file_authenticates() {
    let dir = tempfile::Builder::new().prefix("k8rs-tokens-").tempdir().unwrap();
    let file = dir.path().join("tokens.csv");
    std::fs::write(&file, "s3cret,alice,1001,\"dev\"\n").unwrap();
    let server = Server::start(env!("CARGO_BIN_EXE_k8rs").as_ref(), &["--token-auth-file", file.to_str().unwrap()]);
    let out = bare_kubectl(&server, &["--token", "s3cret", "get", "ns", "-o", "name"]);
    assert!(stdout(&out).contains("namespace/default"), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn kubectl_get_watch_streams_new_objects() {
    let server = server();
    let mut watch = Command::new(testkit::kubectl_path(None))
        .args(["get", "configmaps", "--watch", "--output", "name"])
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", server.data_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Create until the watch reports one: the watch may start after the first create.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = false;
    let mut n = 0;
    while !seen && Instant::now() < deadline {
        ok(server.kubectl(JSON_KUBECTL, &["create", "configmap", &format!("watched-{n}")]));
        n += 1;
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            seen |= line.starts_with("configmap/watched-");
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(seen, "kubectl get --watch never showed a new configmap");
}

#[test]
fn a_restarted_server_keeps_its_objects_and_certificates() {
    let mut server = server();
    ok(server.kubectl(JSON_KUBECTL, &["create", "configmap", "kept", "--from-literal=a=1"]));
    let ca = std::fs::read(server.data_dir().join("server/tls/ca.crt")).unwrap();
    server.restart();
    assert_eq!(std::fs::read(server.data_dir().join("server/tls/ca.crt")).unwrap(), ca);
    assert_eq!(ok(server.kubectl(None, &["get", "cm", "kept", "-o", "jsonpath={.data.a}"])), "1");
}

const MANIFEST: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: web
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: site
  namespace: web
data:
  index: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: front
  namespace: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: front}
  template:
    metadata:
      labels: {app: front}
    spec:
      containers:
      - name: app
        image: nginx
";

#[test]
fn apply_creates_a_multi_document_manifest_with_strict_validation() {
    let server = server();
    // kubectl's default --validate=strict finds fieldValidation on the patch operation in /openapi/v3.
    let applied = ok(server.kubectl_stdin(JSON_KUBECTL, &["apply", "-f", "-"], MANIFEST));
    for line in ["namespace/web created", "configmap/site created", "deployment.apps/front created"] {
        assert!(applied.contains(line), "{applied}");
    }
    let again = ok(server.kubectl_stdin(None, &["apply", "-f", "-"], MANIFEST));
    assert!(again.contains("deployment.apps/front unchanged"), "{again}");
    let all = ok(server.kubectl(None, &["get", "all", "-n", "web", "-o", "name"]));
    assert_eq!(all.trim(), "deployment.apps/front");
    let generation =
        ok(server.kubectl(None, &["-n", "web", "get", "deploy", "front", "-o", "jsonpath={.metadata.generation}"]));
    assert_eq!(generation, "1");
    let applied_config = ok(server.kubectl(None, &["-n", "web", "get", "cm", "site", "-o", "yaml"]));
    assert!(applied_config.contains("kubectl.kubernetes.io/last-applied-configuration"), "{applied_config}");
}

#[test]
fn scale_changes_replicas_through_the_scale_subresource() {
    let server = server();
    ok(server.kubectl_stdin(JSON_KUBECTL, &["apply", "-f", "-"], MANIFEST));
    let scaled = ok(server.kubectl(JSON_KUBECTL, &["-n", "web", "scale", "deployment", "front", "--replicas=5"]));
    assert!(scaled.contains("deployment.apps/front scaled"), "{scaled}");
    let path = "jsonpath={.spec.replicas} {.metadata.generation}";
    assert_eq!(ok(server.kubectl(None, &["-n", "web", "get", "deploy", "front", "-o", path])), "5 2");
    let scale = ok(server.kubectl(None, &["get", "--raw", "/apis/apps/v1/namespaces/web/deployments/front/scale"]));
    assert!(scale.contains(r#""selector":"app=front""#) && scale.contains(r#""kind":"Scale""#), "{scale}");
    let negative = fails(server.kubectl(JSON_KUBECTL, &["-n", "web", "scale", "deployment", "front", "--replicas=-1"]));
    assert!(!negative.is_empty());
}

#[test]
fn auth_can_i_and_whoami_answer_for_the_admin() {
    let server = server();
    assert_eq!(ok(server.kubectl(JSON_KUBECTL, &["auth", "can-i", "create", "deployments"])).trim(), "yes");
    let whoami = ok(server.kubectl(JSON_KUBECTL, &["auth", "whoami"]));
    assert!(whoami.contains("system:admin") && whoami.contains("system:masters"), "{whoami}");
}

#[test]
fn deletecollection_removes_what_the_selector_matches() {
    let server = server();
    for (name, tier) in [("a", "cache"), ("b", "cache"), ("c", "db")] {
        ok(server.kubectl(JSON_KUBECTL, &["create", "configmap", name]));
        ok(server.kubectl(JSON_KUBECTL, &["label", "configmap", name, &format!("tier={tier}")]));
    }
    ok(server.kubectl(None, &["delete", "--raw", "/api/v1/namespaces/default/configmaps?labelSelector=tier%3Dcache"]));
    // `-l tier`: the namespace also holds the root CA ConfigMap.
    assert_eq!(ok(server.kubectl(None, &["get", "configmaps", "-l", "tier", "-o", "name"])).trim(), "configmap/c");
}

#[test]
fn apply_after_an_edit_merges_lists_by_their_keys() {
    let server = server();
    ok(server.kubectl_stdin(JSON_KUBECTL, &["apply", "-f", "-"], MANIFEST));
    // Someone adds a sidecar behind apply's back; apply must keep it (containers merge by name; as upstream, a
    // container a patch adds goes first).
    let sidecar = r#"{"spec":{"template":{"spec":{"containers":[{"name":"log","image":"busybox"}]}}}}"#;
    ok(server.kubectl(None, &["-n", "web", "patch", "deploy", "front", "-p", sidecar]));
    let edited =
        MANIFEST.replace("image: nginx", "image: nginx:1.27\n        env:\n        - {name: MODE, value: prod}");
    let applied = ok(server.kubectl_stdin(None, &["apply", "-f", "-"], &edited));
    assert!(applied.contains("deployment.apps/front configured"), "{applied}");
    let path = "jsonpath={range .spec.template.spec.containers[*]}{.name}={.image};{end}";
    let containers = ok(server.kubectl(None, &["-n", "web", "get", "deploy", "front", "-o", path]));
    assert_eq!(containers, "log=busybox;app=nginx:1.27;");
    let env_path = r#"jsonpath={.spec.template.spec.containers[?(@.name=="app")].env[0].value}"#;
    let env = ok(server.kubectl(None, &["-n", "web", "get", "deploy", "front", "-o", env_path]));
    assert_eq!(env, "prod");

    ok(server.kubectl(None, &["-n", "web", "set", "image", "deployment/front", "log=busybox:1.36"]));
    let containers = ok(server.kubectl(None, &["-n", "web", "get", "deploy", "front", "-o", path]));
    assert_eq!(containers, "log=busybox:1.36;app=nginx:1.27;");
    let generation =
        ok(server.kubectl(None, &["-n", "web", "get", "deploy", "front", "-o", "jsonpath={.metadata.generation}"]));
    assert_eq!(generation, "4");

    // kubectl edit: the editor rewrites the object, kubectl sends the difference as a strategic merge patch.
    let edit = Command::new(testkit::kubectl_path(None))
        .args(["-n", "web", "edit", "configmap", "site"])
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", server.data_dir())
        .env("KUBE_EDITOR", "sed -i s/hello/edited/")
        .output()
        .unwrap();
    assert!(stdout(&edit).contains("configmap/site edited"), "{}{}", stdout(&edit), stderr(&edit));
    assert_eq!(ok(server.kubectl(None, &["-n", "web", "get", "cm", "site", "-o", "jsonpath={.data.index}"])), "edited");
    let bad =
        fails(server.kubectl(None, &["-n", "web", "patch", "deploy", "front", "-p", r#"{"spec":{"$patch":"bogus"}}"#]));
    assert!(bad.contains("could not be applied"), "{bad}");
}

#[test]
fn services_get_unique_cluster_ips_and_node_ports_released_on_delete() {
    let server = server();
    let kubernetes = ok(server.kubectl(None, &["get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"]));
    assert_eq!(kubernetes, "10.43.0.1");
    // Twelve creates at once: every Service gets its own address.
    std::thread::scope(|scope| {
        for n in 0..12 {
            let server = &server;
            scope.spawn(move || {
                let name = format!("svc-{n}");
                ok(server.kubectl(JSON_KUBECTL, &["create", "service", "nodeport", &name, "--tcp=80:8080"]));
            });
        }
    });
    let path = "jsonpath={range .items[*]}{.spec.clusterIP} {.spec.ports[0].nodePort}{\"\\n\"}{end}";
    let listed = ok(server.kubectl(None, &["get", "svc", "-l", "app", "-o", path]));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 12, "{listed}");
    let ips: std::collections::HashSet<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    let ports: std::collections::HashSet<&str> = lines.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!((ips.len(), ports.len()), (12, 12), "{listed}");
    for line in &lines {
        let port: u32 = line.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(line.starts_with("10.43.") && (30000..=32767).contains(&port), "{line}");
    }

    ok(server.kubectl(JSON_KUBECTL, &["create", "service", "clusterip", "fixed", "--clusterip=10.43.7.7", "--tcp=80"]));
    let taken = fails(
        server.kubectl(JSON_KUBECTL, &["create", "service", "clusterip", "other", "--clusterip=10.43.7.7", "--tcp=80"]),
    );
    assert!(taken.contains("provided IP is already allocated"), "{taken}");
    let outside = fails(
        server.kubectl(JSON_KUBECTL, &["create", "service", "clusterip", "far", "--clusterip=10.99.0.1", "--tcp=80"]),
    );
    assert!(outside.contains("provided IP is not in the valid range"), "{outside}");
    ok(server.kubectl(None, &["delete", "service", "fixed"]));
    ok(server.kubectl(JSON_KUBECTL, &["create", "service", "clusterip", "other", "--clusterip=10.43.7.7", "--tcp=80"]));
    let immutable =
        fails(server.kubectl(None, &["patch", "svc", "other", "-p", r#"{"spec":{"clusterIP":"10.43.7.8"}}"#]));
    assert!(immutable.contains("may not change once set"), "{immutable}");
}

#[test]
fn metrics_count_requests_watches_and_store_operations() {
    let server = server();
    // Secrets: no controller writes or watches them (ConfigMaps have the root CA publisher).
    ok(server.kubectl(JSON_KUBECTL, &["create", "secret", "generic", "counted"]));
    ok(server.kubectl(None, &["get", "secret", "counted"]));
    ok(server.kubectl(JSON_KUBECTL, &["create", "secret", "generic", "rehearsed", "--dry-run=server"]));
    let watch = "/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=1";
    assert!(ok(server.kubectl(None, &["get", "--raw", watch])).contains("counted"));
    let metrics = ok(server.kubectl(None, &["get", "--raw", "/metrics"]));
    let has = |needle: &str| metrics.lines().any(|l| l.starts_with(needle));
    assert!(
        has(
            r#"apiserver_request_total{verb="POST",group="",version="v1",resource="secrets",subresource="",scope="namespace",component="apiserver",dry_run="",code="201"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        has(
            r#"apiserver_request_total{verb="GET",group="",version="v1",resource="secrets",subresource="",scope="resource",component="apiserver",dry_run="",code="200"}"#
        ),
        "{metrics}"
    );
    assert!(
        has(
            r#"apiserver_request_duration_seconds_count{verb="POST",group="",version="v1",resource="secrets",subresource="",scope="namespace",component="apiserver",dry_run=""} 1"#
        ),
        "{metrics}"
    );
    // A dry run is counted apart, as upstream's `dry_run` label does.
    assert!(
        has(
            r#"apiserver_request_total{verb="POST",group="",version="v1",resource="secrets",subresource="",scope="namespace",component="apiserver",dry_run="All",code="201"} 1"#
        ),
        "{metrics}"
    );
    assert!(has(r#"k8rs_storage_operation_duration_seconds_count{operation="create"}"#), "{metrics}");
    // The watch was counted while open, and no longer is.
    assert!(has(r#"apiserver_registered_watchers{resource="secrets"} 0"#), "{metrics}");
    assert!(
        has(
            r#"apiserver_request_total{verb="WATCH",group="",version="v1",resource="secrets",subresource="",scope="namespace",component="apiserver",dry_run="",code="200"} 1"#
        ),
        "{metrics}"
    );
}

/// kubectl 1.32+ sends protobuf bodies for typed creates; the dispatcher runs kubectl 1.33 against k8rs.
#[test]
fn kubectl_133_creates_with_protobuf_bodies() {
    let server = server();
    let k = |args: &[&str]| server.kubectl(None, args);
    ok(k(&["create", "namespace", "proto"]));
    ok(k(&["-n", "proto", "create", "configmap", "cfg", "--from-literal=a=1"]));
    ok(k(&["-n", "proto", "create", "secret", "generic", "s", "--from-literal=password=hunter2"]));
    ok(k(&["-n", "proto", "create", "deployment", "web", "--image=nginx", "--replicas=3"]));
    ok(k(&["-n", "proto", "create", "service", "clusterip", "web", "--tcp=80:8080"]));
    ok(k(&["-n", "proto", "create", "job", "once", "--image=busybox"]));
    assert_eq!(ok(k(&["-n", "proto", "get", "cm", "cfg", "-o", "jsonpath={.data.a}"])), "1");
    assert_eq!(ok(k(&["-n", "proto", "get", "secret", "s", "-o", "jsonpath={.data.password}"])), "aHVudGVyMg==");
    let deployment = ok(k(&[
        "-n",
        "proto",
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}",
    ]));
    assert_eq!(deployment, "3 nginx");
    let service = ok(k(&["-n", "proto", "get", "svc", "web", "-o", "jsonpath={.spec.ports[0].targetPort}"]));
    assert_eq!(service, "8080");
    assert_eq!(ok(k(&["auth", "can-i", "delete", "pods"])).trim(), "yes");
    let table = ok(k(&["-n", "proto", "get", "deployments"]));
    assert!(
        table.lines().next().unwrap().split_whitespace().collect::<Vec<_>>()
            == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{table}"
    );
}

#[test]
fn describe_diff_and_delete_wait_work_as_with_upstream() {
    let server = server();
    ok(server.kubectl_stdin(JSON_KUBECTL, &["apply", "-f", "-"], MANIFEST));
    let described = ok(server.kubectl(None, &["-n", "web", "describe", "configmap", "site"]));
    assert!(described.contains("Name:         site") && described.contains("hello"), "{described}");
    let deployment = ok(server.kubectl(None, &["-n", "web", "describe", "deployment", "front"]));
    assert!(deployment.contains("Image:         nginx") || deployment.contains("Image:"), "{deployment}");

    // diff: nothing to show for the applied manifest, the change for an edited one (exit code 1).
    let same = server.kubectl_stdin(None, &["diff", "-f", "-"], MANIFEST);
    assert_eq!(same.status.code(), Some(0), "{}{}", stdout(&same), stderr(&same));
    let edited = MANIFEST.replace("index: hello", "index: changed");
    let changed = server.kubectl_stdin(None, &["diff", "-f", "-"], &edited);
    assert_eq!(changed.status.code(), Some(1), "{}", stderr(&changed));
    let diff = stdout(&changed);
    assert!(diff.contains("-  index: hello") && diff.contains("+  index: changed"), "{diff}");
    assert!(!diff.contains("annotations: {}"), "{diff}");
    // The diff was a dry run: nothing changed.
    assert_eq!(ok(server.kubectl(None, &["-n", "web", "get", "cm", "site", "-o", "jsonpath={.data.index}"])), "hello");

    let deleted = ok(server.kubectl(None, &["-n", "web", "delete", "configmap", "site", "--wait=true"]));
    assert!(deleted.contains("configmap \"site\" deleted"), "{deleted}");
}

/// Deleting a namespace: it turns Terminating, refuses new content, the namespace controller deletes what is in
/// it (waiting for finalizers), then the namespace goes.
#[test]
fn a_deleted_namespace_is_emptied_then_removed() {
    let server = server();
    ok(server.kubectl(None, &["create", "namespace", "doomed"]));
    ok(server.kubectl(None, &["-n", "doomed", "create", "configmap", "plain"]));
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: doomed\n  finalizers: [example.com/hold]\n";
    ok(server.kubectl_stdin(None, &["create", "-f", "-"], held));
    ok(server.kubectl(None, &["delete", "namespace", "doomed", "--wait=false"]));
    let deadline = Instant::now() + Duration::from_secs(60);
    // The held configmap keeps the namespace Terminating; the plain one goes.
    loop {
        let names = ok(server.kubectl(None, &["-n", "doomed", "get", "configmaps", "-o", "name"]));
        if names.trim() == "configmap/held" {
            break;
        }
        assert!(Instant::now() < deadline, "the namespace was never emptied: {names}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let phase = ok(server.kubectl(None, &["get", "ns", "doomed", "-o", "jsonpath={.status.phase}"]));
    assert_eq!(phase, "Terminating");
    let refused = fails(server.kubectl(None, &["-n", "doomed", "create", "configmap", "late"]));
    assert!(refused.contains("because it is being terminated"), "{refused}");
    // Releasing the finalizer lets the configmap go (an update that leaves nothing holding it deletes it), and
    // then the namespace.
    ok(server.kubectl(
        None,
        &["-n", "doomed", "patch", "configmap", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#],
    ));
    loop {
        let namespace = server.kubectl(None, &["get", "ns", "doomed"]);
        if !namespace.status.success() && stderr(&namespace).contains("not found") {
            break;
        }
        assert!(Instant::now() < deadline, "the namespace was never removed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn explain_prints_field_descriptions_from_the_openapi_schemas() {
    let server = server();
    // kubectl 1.27 and 1.28 fetch `/openapi/v2` (protobuf) before explaining from v3, and give up on its 404.
    for version in [None, Some("1.29")] {
        let image = ok(server.kubectl(version, &["explain", "pods.spec.containers.image"]));
        assert!(image.contains("FIELD: image <string>") && image.contains("Container image name."), "{image}");
        let strategy = ok(server.kubectl(version, &["explain", "deployment.spec.strategy", "--recursive"]));
        assert!(strategy.contains("rollingUpdate") && strategy.contains("maxSurge"), "{strategy}");
        let unknown = fails(server.kubectl(version, &["explain", "pods.spec.nope"]));
        assert!(unknown.contains("nope"), "{unknown}");
    }
}

const DEFAULTED: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: plain
spec:
  containers:
  - name: latest
    image: nginx
  - name: pinned
    image: nginx:1.27
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
";

#[test]
fn created_objects_read_back_with_upstream_defaults_and_invalid_ones_are_refused() {
    let server = server();
    ok(server.kubectl_stdin(JSON_KUBECTL, &["create", "-f", "-"], DEFAULTED));
    let read = |kind: &str, name: &str| -> serde_json::Value {
        serde_json::from_str(&ok(server.kubectl(None, &["get", kind, name, "-o", "json"]))).unwrap()
    };
    let pod = read("pod", "plain");
    let spec = &pod["spec"];
    assert_eq!(spec["dnsPolicy"], "ClusterFirst", "{pod}");
    assert_eq!(spec["restartPolicy"], "Always", "{pod}");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30, "{pod}");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always", "{pod}");
    assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent", "{pod}");
    assert_eq!(spec["containers"][0]["terminationMessagePath"], "/dev/termination-log", "{pod}");
    assert_eq!(pod["status"]["phase"], "Pending", "{pod}");
    assert_eq!(pod["status"]["qosClass"], "BestEffort", "{pod}");
    // Priority admission: no class named and no default class.
    assert_eq!(
        (&spec["priority"], &spec["preemptionPolicy"]),
        (&serde_json::json!(0), &serde_json::json!("PreemptLowerPriority")),
        "{pod}"
    );
    assert!(spec.get("priorityClassName").is_none(), "{pod}");

    let deployment = read("deployment", "web");
    let spec = &deployment["spec"];
    assert_eq!(spec["strategy"]["type"], "RollingUpdate", "{deployment}");
    assert_eq!(spec["strategy"]["rollingUpdate"], serde_json::json!({"maxSurge": "25%", "maxUnavailable": "25%"}));
    assert_eq!(spec["revisionHistoryLimit"], 10, "{deployment}");
    assert_eq!(spec["progressDeadlineSeconds"], 600, "{deployment}");
    assert_eq!(spec["template"]["spec"]["dnsPolicy"], "ClusterFirst", "{deployment}");

    let mismatched = DEFAULTED
        .split("---\n")
        .nth(1)
        .unwrap()
        .replace("labels: {app: web}", "labels: {app: other}")
        .replace("name: web\n", "name: broken\n");
    let refused = fails(server.kubectl_stdin(JSON_KUBECTL, &["create", "-f", "-"], &mismatched));
    assert!(refused.contains(r#"The Deployment "broken" is invalid: spec.template.metadata.labels"#), "{refused}");
}

/// `kubectl certificate approve|deny` decide through `/approval`; a request names who made it.
#[test]
fn certificate_requests_are_approved_and_denied_through_approval() {
    use base64::Engine as _;
    let server = server();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let request = base64::engine::general_purpose::STANDARD.encode(csr);
    for name in ["alice", "bob"] {
        let manifest = format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\n\
             spec: {{request: {request}, signerName: kubernetes.io/kube-apiserver-client, usages: [client auth], \
             username: mallory}}\n"
        );
        ok(server.kubectl_stdin(None, &["create", "-f", "-"], &manifest));
    }
    ok(server.kubectl(None, &["certificate", "approve", "alice"]));
    ok(server.kubectl(Some("1.27"), &["certificate", "deny", "bob"]));
    let table = ok(server.kubectl(None, &["get", "csr"]));
    let rows: Vec<Vec<&str>> = table.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0][0], "alice");
    assert_eq!((rows[0][3], rows[0][5]), ("system:admin", "Approved"), "{table}");
    assert_eq!((rows[1][3], rows[1][5]), ("system:admin", "Denied"), "{table}");
    let conditions = ok(server.kubectl(None, &["get", "csr", "alice", "-o", "jsonpath={.status.conditions[0]}"]));
    let condition: serde_json::Value = serde_json::from_str(&conditions).unwrap();
    assert_eq!((condition["reason"].as_str(), condition["status"].as_str()), (Some("KubectlApprove"), Some("True")));
    assert!(condition["lastUpdateTime"].is_string(), "{condition}");

    let approval = ["patch", "csr", "alice", "--subresource=approval", "--type=json", "-p"];
    let taken_back =
        fails(server.kubectl(None, &[&approval[..], &[r#"[{"op":"remove","path":"/status/conditions/0"}]"#]].concat()));
    assert!(taken_back.contains("updates may not remove a condition of type \"Approved\""), "{taken_back}");
    let both = r#"[{"op":"add","path":"/status/conditions/-","value":{"type":"Denied","status":"True"}}]"#;
    let refused = fails(server.kubectl(None, &[&approval[..], &[both]].concat()));
    assert!(refused.contains("Approved and Denied conditions are mutually exclusive"), "{refused}");
    // The spec stays as it was asked for.
    ok(server.kubectl(
        None,
        &["patch", "csr", "alice", "--type=merge", "-p", r#"{"spec":{"usages":["digital signature"]}}"#],
    ));
    assert_eq!(
        ok(server.kubectl(None, &["get", "csr", "alice", "-o", "jsonpath={.spec.usages}"])),
        r#"["client auth"]"#
    );
}

/// `kubectl debug` adds an ephemeral container through `pods/ephemeralcontainers`; existing ones stay as they are.
#[test]
fn kubectl_debug_adds_ephemeral_containers() {
    let server = server();
    ok(server.kubectl(None, &["run", "app", "--image=nginx"]));
    for version in [Some("1.27"), None] {
        let name = if version.is_some() { "old-debugger" } else { "debugger" };
        let args = ["debug", "app", "--image=busybox", "--target=app", "-c", name, "--", "sleep", "3600"];
        ok(server.kubectl(version, &args));
    }
    let pod: serde_json::Value =
        serde_json::from_str(&ok(server.kubectl(None, &["get", "pod", "app", "-o", "json", "--show-managed-fields"])))
            .unwrap();
    let added = pod["spec"]["ephemeralContainers"].as_array().expect("ephemeral containers");
    let names: Vec<&str> = added.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["old-debugger", "debugger"], "{pod}");
    assert_eq!(added[1]["targetContainerName"], "app");
    assert_eq!(added[1]["terminationMessagePolicy"], "File", "defaulted: {pod}");
    let entries = pod["metadata"]["managedFields"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["subresource"] == "ephemeralcontainers"), "{pod}");

    let get = ok(server.kubectl(None, &["get", "--raw", "/api/v1/namespaces/default/pods/app/ephemeralcontainers"]));
    assert!(get.contains("\"kind\":\"Pod\"") && get.contains("old-debugger"), "{get}");
    let subresource = ["patch", "pod", "app", "--subresource=ephemeralcontainers"];
    let removal =
        [&subresource[..], &["--type=json", "-p", r#"[{"op":"remove","path":"/spec/ephemeralContainers/0"}]"#]];
    let removed = fails(server.kubectl(None, &removal.concat()));
    assert!(removed.contains("existing ephemeral containers \"old-debugger\" may not be removed"), "{removed}");
    let ported = r#"{"spec":{"ephemeralContainers":[{"name":"web","image":"nginx","ports":[{"containerPort":80}]}]}}"#;
    let refused = fails(server.kubectl(None, &[&subresource[..], &["-p", ported]].concat()));
    // A strategic merge patch without `$setElementOrder` puts its new elements first, as upstream's.
    assert!(
        refused.contains("spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container"),
        "{refused}"
    );
    // Through the pod itself they cannot be changed, nor given at creation.
    let direct = fails(server.kubectl(None, &["patch", "pod", "app", "-p", ported]));
    assert!(direct.contains("pod updates may not change fields"), "{direct}");
    let created = fails(server.kubectl_stdin(
        None,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: eph}\nspec:\n  containers: [{name: c, image: i}]\n  ephemeralContainers: [{name: e, image: i}]\n",
    ));
    assert!(created.contains("spec.ephemeralContainers: Forbidden: cannot be set on create"), "{created}");
}

#[test]
fn pods_take_their_priority_from_their_priority_class() {
    let server = server();
    let k = |args: &[&str]| server.kubectl(JSON_KUBECTL, args);
    let classes = ok(k(&["get", "priorityclasses"]));
    assert!(classes.contains("system-node-critical") && classes.contains("2000001000"), "{classes}");
    assert!(classes.contains("system-cluster-critical") && classes.contains("2000000000"), "{classes}");
    let pod = |name: &str, spec: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{containers: [{{name: c, image: i}}]{spec}}}\n")
    };
    let priority = |name: &str| {
        ok(k(&[
            "get",
            "pod",
            name,
            "-o",
            "jsonpath={.spec.priorityClassName}/{.spec.priority}/{.spec.preemptionPolicy}",
        ]))
    };
    ok(server.kubectl_stdin(
        JSON_KUBECTL,
        &["create", "-f", "-"],
        &pod("critical", ", priorityClassName: system-node-critical"),
    ));
    assert_eq!(priority("critical"), "system-node-critical/2000001000/PreemptLowerPriority");
    let missing =
        fails(server.kubectl_stdin(JSON_KUBECTL, &["create", "-f", "-"], &pod("lost", ", priorityClassName: nope")));
    assert!(missing.contains(r#"pods "lost" is forbidden: no PriorityClass with name nope was found"#), "{missing}");
    let given = fails(server.kubectl_stdin(JSON_KUBECTL, &["create", "-f", "-"], &pod("mine", ", priority: 7")));
    assert!(given.contains("the integer value of priority (7) must not be provided in pod spec"), "{given}");
    // A globalDefault class is what a pod that names none gets.
    let default_class = "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: batch}\nvalue: 1000\nglobalDefault: true\npreemptionPolicy: Never\n";
    ok(server.kubectl_stdin(JSON_KUBECTL, &["create", "-f", "-"], default_class));
    let mut defaulted = String::new();
    for attempt in 0..100 {
        // The class reaches admission through the watch cache.
        let name = format!("plain-{attempt}");
        ok(server.kubectl_stdin(JSON_KUBECTL, &["create", "-f", "-"], &pod(&name, "")));
        defaulted = priority(&name);
        if defaulted != "/0/PreemptLowerPriority" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(defaulted, "batch/1000/Never");

    // Classes are checked as upstream checks them.
    let class = |name: &str, rest: &str| {
        format!("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {{name: {name}}}\n{rest}")
    };
    let second = fails(server.kubectl_stdin(
        JSON_KUBECTL,
        &["create", "-f", "-"],
        &class("other", "value: 5\nglobalDefault: true\n"),
    ));
    assert!(
        second.contains("PriorityClass batch is already marked as default. Only one default can exist"),
        "{second}"
    );
    let reserved =
        fails(server.kubectl_stdin(JSON_KUBECTL, &["create", "-f", "-"], &class("system-mine", "value: 5\n")));
    assert!(reserved.contains("reserved for system use only. error: system-mine is not a known system priority class"));
    let high = fails(server.kubectl_stdin(JSON_KUBECTL, &["create", "-f", "-"], &class("high", "value: 1000000001\n")));
    assert!(high.contains("maximum allowed value of a user defined priority is 1000000000"), "{high}");
    let changed = fails(k(&["patch", "priorityclass", "batch", "--type=merge", "-p", r#"{"value":7}"#]));
    assert!(changed.contains("value: Forbidden: may not be changed in an update."), "{changed}");
}

#[test]
fn unknown_fields_are_refused_warned_about_or_dropped_as_asked() {
    let server = server();
    let typo = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: NAME\nspec:\n  containers:\n  - name: app\n    image: busybox\n    imagePullPolicyy: Always\n";
    let strict = fails(server.kubectl_stdin(None, &["create", "-f", "-"], &typo.replace("NAME", "strict")));
    assert!(
        strict.contains(r#"strict decoding error: unknown field "spec.containers[0].imagePullPolicyy""#),
        "{strict}"
    );
    assert!(fails(server.kubectl(None, &["get", "pod", "strict"])).contains("NotFound"));

    let warned = server.kubectl_stdin(None, &["create", "--validate=warn", "-f", "-"], &typo.replace("NAME", "warned"));
    assert!(warned.status.success(), "{}", stderr(&warned));
    assert!(stderr(&warned).contains(r#"unknown field "spec.containers[0].imagePullPolicyy""#), "{}", stderr(&warned));
    let stored = ok(server.kubectl(None, &["get", "pod", "warned", "-o", "json"]));
    assert!(!stored.contains("imagePullPolicyy"), "an unknown field was stored: {stored}");

    let ignored =
        server.kubectl_stdin(None, &["create", "--validate=false", "-f", "-"], &typo.replace("NAME", "ignored"));
    assert!(ignored.status.success() && !stderr(&ignored).contains("unknown field"), "{}", stderr(&ignored));
}

#[test]
fn server_side_apply_tracks_managed_fields_and_conflicts() {
    let server = server();
    let labelled = MANIFEST.replace("  name: site\n", "  name: site\n  labels: {tier: web}\n");
    let applied = ok(server.kubectl_stdin(None, &["apply", "--server-side", "-f", "-"], &labelled));
    for line in ["namespace/web serverside-applied", "configmap/site serverside-applied", "deployment.apps/front"] {
        assert!(applied.contains(line), "{applied}");
    }
    let get = |what: &str, name: &str, output: &str| {
        ok(server.kubectl(None, &["-n", "web", "get", what, name, "-o", output, "--show-managed-fields"]))
    };
    let yaml = get("deploy", "front", "yaml");
    assert!(yaml.contains("manager: kubectl\n") && yaml.contains("operation: Apply"), "{yaml}");
    assert!(yaml.contains("f:replicas: {}"), "{yaml}");
    assert_eq!(get("cm", "site", "jsonpath={.metadata.labels.tier}"), "web");

    // An Update owns the maps and structs it adds (`.`), not those of the type's zero value, as upstream records.
    ok(server.kubectl(None, &["-n", "web", "create", "deployment", "dotted", "--image=nginx"]));
    let created: serde_json::Value = serde_json::from_str(&get("deploy", "dotted", "json")).unwrap();
    let fields = &created["metadata"]["managedFields"][0]["fieldsV1"];
    assert_eq!(created["metadata"]["managedFields"][0]["manager"], "kubectl-create", "{created}");
    assert_eq!(fields["f:metadata"], serde_json::json!({"f:labels": {".": {}, "f:app": {}}}), "{fields}");
    assert!(fields["f:spec"].get(".").is_none() && fields["f:spec"]["f:strategy"].get(".").is_none(), "{fields}");
    assert!(fields["f:spec"]["f:strategy"]["f:rollingUpdate"].get(".").is_some(), "{fields}");
    assert!(fields["f:spec"]["f:template"]["f:metadata"]["f:labels"].get(".").is_some(), "{fields}");

    ok(server.kubectl(JSON_KUBECTL, &["-n", "web", "scale", "deployment", "front", "--replicas=5"]));
    let conflict = fails(server.kubectl_stdin(None, &["apply", "--server-side", "-f", "-"], &labelled));
    assert!(conflict.contains("Apply failed with 1 conflict") && conflict.contains(".spec.replicas"), "{conflict}");
    assert_eq!(get("deploy", "front", "jsonpath={.spec.replicas}"), "5");

    ok(server.kubectl_stdin(None, &["apply", "--server-side", "--force-conflicts", "-f", "-"], &labelled));
    assert_eq!(get("deploy", "front", "jsonpath={.spec.replicas}"), "2");

    // The label is no longer applied, and nobody else owns it: it goes.
    ok(server.kubectl_stdin(None, &["apply", "--server-side", "-f", "-"], MANIFEST));
    let labels = get("cm", "site", "jsonpath={.metadata.labels}");
    assert!(!labels.contains("tier"), "{labels}");
    assert_eq!(get("cm", "site", "jsonpath={.data.index}"), "hello");
}

#[test]
fn service_updates_claim_and_release_node_ports() {
    let server = server();
    ok(server.kubectl(JSON_KUBECTL, &["create", "service", "nodeport", "web", "--tcp=80:8080", "--node-port=30080"]));
    // A port added by an update gets a node port of its own.
    let added = r#"{"spec":{"ports":[{"name":"80-8080","port":80,"targetPort":8080,"nodePort":30080},{"name":"https","port":443}]}}"#;
    ok(server.kubectl(None, &["patch", "svc", "web", "--type=merge", "-p", added]));
    let path = "jsonpath={.spec.ports[*].nodePort}";
    let ports = ok(server.kubectl(None, &["get", "svc", "web", "-o", path]));
    let ports: Vec<u32> = ports.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(ports[0], 30080);
    assert!((30000..=32767).contains(&ports[1]) && ports[1] != 30080, "{ports:?}");
    // Becoming a ClusterIP Service gives the node ports back: another Service can take 30080 now.
    ok(server.kubectl(None, &["patch", "svc", "web", "--type=merge", "-p", r#"{"spec":{"type":"ClusterIP"}}"#]));
    assert_eq!(ok(server.kubectl(None, &["get", "svc", "web", "-o", path])).trim(), "");
    ok(server.kubectl(JSON_KUBECTL, &["create", "service", "nodeport", "other", "--tcp=80:8080", "--node-port=30080"]));
    let taken = fails(server.kubectl(
        None,
        &[
            "patch",
            "svc",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"type":"NodePort","ports":[{"name":"80-8080","port":80,"targetPort":8080,"nodePort":30080}]}}"#,
        ],
    ));
    assert!(taken.contains("provided port is already allocated"), "{taken}");
}

/// HorizontalPodAutoscalers are stored as autoscaling/v2; autoscaling/v1 clients see and write them converted.
#[test]
fn autoscalers_are_served_in_both_versions() {
    let server = server();
    ok(server.kubectl_stdin(JSON_KUBECTL, &["apply", "-f", "-"], MANIFEST));
    // kubectl 1.31 creates an autoscaling/v1 object.
    ok(server.kubectl(
        JSON_KUBECTL,
        &["-n", "web", "autoscale", "deployment", "front", "--min=2", "--max=6", "--cpu-percent=70"],
    ));
    let v2 =
        ok(server
            .kubectl(None, &["get", "--raw", "/apis/autoscaling/v2/namespaces/web/horizontalpodautoscalers/front"]));
    let v2: serde_json::Value = serde_json::from_str(&v2).unwrap();
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 70);
    let v1 =
        ok(server
            .kubectl(None, &["get", "--raw", "/apis/autoscaling/v1/namespaces/web/horizontalpodautoscalers/front"]));
    let v1: serde_json::Value = serde_json::from_str(&v1).unwrap();
    assert_eq!(
        (v1["apiVersion"].as_str(), v1["spec"]["targetCPUUtilizationPercentage"].as_i64()),
        (Some("autoscaling/v1"), Some(70))
    );
    // A v1 patch lands in the stored v2 object.
    let patch = r#"{"spec":{"targetCPUUtilizationPercentage":50}}"#;
    ok(server.kubectl(
        None,
        &["-n", "web", "patch", "horizontalpodautoscalers.v1.autoscaling", "front", "--type=merge", "-p", patch],
    ));
    let v2 =
        ok(server
            .kubectl(None, &["get", "--raw", "/apis/autoscaling/v2/namespaces/web/horizontalpodautoscalers/front"]));
    let v2: serde_json::Value = serde_json::from_str(&v2).unwrap();
    assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 50);
    assert_eq!(v2["spec"]["minReplicas"], 2);
    let table = ok(server.kubectl(None, &["-n", "web", "get", "hpa", "front"]));
    assert!(table.contains("front") && table.contains("Deployment/front"), "{table}");
}
