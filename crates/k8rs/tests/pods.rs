//! Pod lifecycle rules the API server owns: binding to a node, graceful deletion of bound pods, eviction under
//! PodDisruptionBudgets, and deletion propagation policies recorded for the garbage collector.

mod support;

use support::{call, call_json, server};

const PODS: &str = "/api/v1/namespaces/default/pods";

fn pod(name: &str, grace: Option<u32>) -> String {
    let grace = grace.map_or(String::new(), |g| format!(r#","terminationGracePeriodSeconds":{g}"#));
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"app":"web"}}}},"spec":{{"containers":[{{"name":"app","image":"busybox"}}]{grace}}}}}"#
    )
}

fn binding(pod: &str, node: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Binding","metadata":{{"name":"{pod}"}},"target":{{"kind":"Node","name":"{node}"}}}}"#
    )
}

#[test]
fn a_pod_is_bound_to_a_node_once() {
    let server = server(&[]);
    assert_eq!(call(&server, "POST", PODS, Some(&pod("web", None))).0, 201);
    let (code, status) = call_json(&server, "POST", &format!("{PODS}/web/binding"), Some(&binding("web", "node-1")));
    assert_eq!((code, status["status"].as_str()), (201, Some("Success")));
    let (_, bound) = call_json(&server, "GET", &format!("{PODS}/web"), None);
    assert_eq!(bound["spec"]["nodeName"], "node-1");
    let scheduled =
        bound["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "PodScheduled").cloned();
    assert_eq!(scheduled.unwrap()["status"], "True");
    let (code, again) = call_json(&server, "POST", &format!("{PODS}/web/binding"), Some(&binding("web", "node-2")));
    assert_eq!(code, 409);
    assert!(again["message"].as_str().unwrap().contains("already assigned to node \"node-1\""), "{again}");
    // The `bindings` resource does the same.
    call(&server, "POST", PODS, Some(&pod("api", None)));
    assert_eq!(call(&server, "POST", "/api/v1/namespaces/default/bindings", Some(&binding("api", "node-2"))).0, 201);
    let (_, api) = call_json(&server, "GET", &format!("{PODS}/api"), None);
    assert_eq!(api["spec"]["nodeName"], "node-2");
    assert_eq!(call(&server, "POST", &format!("{PODS}/nope/binding"), Some(&binding("nope", "n"))).0, 404);
}

#[test]
fn a_bound_pod_is_deleted_gracefully_and_an_unbound_one_at_once() {
    let server = server(&[]);
    call(&server, "POST", PODS, Some(&pod("loose", None)));
    // Pods answer a delete with the deleted object, as upstream's registry does.
    let (code, deleted) = call_json(&server, "DELETE", &format!("{PODS}/loose"), None);
    assert_eq!(
        (code, deleted["kind"].as_str(), deleted["metadata"]["name"].as_str()),
        (200, Some("Pod"), Some("loose"))
    );
    assert_eq!(call(&server, "GET", &format!("{PODS}/loose"), None).0, 404);

    call(&server, "POST", PODS, Some(&pod("bound", Some(45))));
    call(&server, "POST", &format!("{PODS}/bound/binding"), Some(&binding("bound", "node-1")));
    let (code, marked) = call_json(&server, "DELETE", &format!("{PODS}/bound"), None);
    assert_eq!(code, 200);
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 45);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    // Still there until its node (here: the test, as the kubelet would) deletes it with no grace.
    assert_eq!(call(&server, "GET", &format!("{PODS}/bound"), None).0, 200);
    let (_, shorter) = call_json(&server, "DELETE", &format!("{PODS}/bound"), Some(r#"{"gracePeriodSeconds":10}"#));
    assert_eq!(shorter["metadata"]["deletionGracePeriodSeconds"], 10);
    assert_eq!(call(&server, "DELETE", &format!("{PODS}/bound"), Some(r#"{"gracePeriodSeconds":0}"#)).0, 200);
    assert_eq!(call(&server, "GET", &format!("{PODS}/bound"), None).0, 404);
}

#[test]
fn eviction_respects_pod_disruption_budgets() {
    let server = server(&[]);
    call(&server, "POST", PODS, Some(&pod("guarded", None)));
    let budget = r#"{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"web"},"spec":{"minAvailable":1,"selector":{"matchLabels":{"app":"web"}}}}"#;
    let budgets = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
    assert_eq!(call(&server, "POST", budgets, Some(budget)).0, 201);
    let eviction = r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"guarded"}}"#;
    let (code, refused) = call_json(&server, "POST", &format!("{PODS}/guarded/eviction"), Some(eviction));
    assert_eq!(code, 429, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("disruption budget"));
    // The disruption controller would say one disruption is allowed.
    let status = r#"{"status":{"disruptionsAllowed":1,"currentHealthy":2,"desiredHealthy":1,"expectedPods":2}}"#;
    assert_eq!(call(&server, "PATCH", &format!("{budgets}/web/status"), Some(status)).0, 200);
    assert_eq!(call(&server, "POST", &format!("{PODS}/guarded/eviction"), Some(eviction)).0, 201);
    assert_eq!(call(&server, "GET", &format!("{PODS}/guarded"), None).0, 404);
}

#[test]
fn foreground_and_orphan_deletion_leave_finalizers_for_the_garbage_collector() {
    let server = server(&[]);
    let configmaps = "/api/v1/namespaces/default/configmaps";
    for name in ["fg", "orphan", "bg"] {
        let body = format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#);
        call(&server, "POST", configmaps, Some(&body));
    }
    let (_, fg) =
        call_json(&server, "DELETE", &format!("{configmaps}/fg"), Some(r#"{"propagationPolicy":"Foreground"}"#));
    assert_eq!(fg["metadata"]["finalizers"], serde_json::json!(["foregroundDeletion"]));
    assert!(fg["metadata"]["deletionTimestamp"].is_string());
    let (_, orphan) =
        call_json(&server, "DELETE", &format!("{configmaps}/orphan"), Some(r#"{"propagationPolicy":"Orphan"}"#));
    assert_eq!(orphan["metadata"]["finalizers"], serde_json::json!(["orphan"]));
    assert_eq!(
        call(&server, "DELETE", &format!("{configmaps}/bg"), Some(r#"{"propagationPolicy":"Background"}"#)).0,
        200
    );
    assert_eq!(call(&server, "GET", &format!("{configmaps}/bg"), None).0, 404);
    let (code, bad) =
        call_json(&server, "DELETE", &format!("{configmaps}/fg"), Some(r#"{"propagationPolicy":"Sideways"}"#));
    assert_eq!(code, 400, "{bad}");
}

#[test]
fn a_node_keeps_the_status_it_is_registered_with() {
    let server = server(&[]);
    let node = r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"registered"},
        "status":{"capacity":{"cpu":"2"},"addresses":[{"type":"InternalIP","address":"10.0.0.9"}]}}"#;
    let (code, created) = call_json(&server, "POST", "/api/v1/nodes", Some(node));
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["status"]["capacity"]["cpu"], "2", "{created}");
    // Pods, like most kinds, start with the status their strategy gives them, whatever the request says.
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"b"}]},
        "status":{"phase":"Running"}}"#;
    let (_, pod) = call_json(&server, "POST", PODS, Some(pod));
    assert_eq!(pod["status"]["phase"], "Pending", "{pod}");
}
