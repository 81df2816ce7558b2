//! Watch and list semantics over the wire, as client libraries rely on them (api-compat.md §1.3–1.4): replay
//! from a resourceVersion, BOOKMARKs after the initial events, 410 for compacted history, lists from the cache.

mod support;

use serde_json::Value;
use support::{call, json, server};

fn configmap(name: &str, value: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","labels":{{"app":"w"}}}},"data":{{"v":"{value}"}}}}"#
    )
}

const CM: &str = "/api/v1/namespaces/default/configmaps";

/// Python's test_watch: list, make four changes, watch from the list's resourceVersion and see all four.
#[test]
fn a_watch_replays_every_change_after_the_listed_revision() {
    let server = server(&[]);
    let (code, body) = call(&server, "GET", CM, None);
    assert_eq!(code, 200);
    let listed = json(&body.join("\n"))["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    call(&server, "POST", CM, Some(&configmap("a", "1")));
    assert_eq!(call(&server, "PATCH", &format!("{CM}/a"), Some(r#"{"data":{"v":"2"}}"#)).0, 200);
    call(&server, "DELETE", &format!("{CM}/a"), None);
    call(&server, "POST", CM, Some(&configmap("b", "1")));
    call(&server, "DELETE", &format!("{CM}/b"), None);
    let watch = format!("{CM}?watch=true&resourceVersion={listed}&labelSelector=app%3Dw&timeoutSeconds=2");
    let (code, events) = call(&server, "GET", &watch, None);
    assert_eq!(code, 200);
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|l| json(l))
        .map(|e| {
            (e["type"].as_str().unwrap().to_string(), e["object"]["metadata"]["name"].as_str().unwrap().to_string())
        })
        .collect();
    let expected = [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a"), ("ADDED", "b"), ("DELETED", "b")];
    assert_eq!(seen, expected.map(|(t, n)| (t.to_string(), n.to_string())));
    let revisions: Vec<i64> = events
        .iter()
        .map(|l| json(l)["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
}

#[test]
fn initial_events_end_with_an_annotated_bookmark() {
    let server = server(&[]);
    call(&server, "POST", CM, Some(&configmap("one", "1")));
    call(&server, "POST", CM, Some(&configmap("two", "2")));
    // Selected by label: the namespace also holds the root CA ConfigMap.
    let watch = format!(
        "{CM}?watch=true&labelSelector=app%3Dw&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"
    );
    let (_, events) = call(&server, "GET", &watch, None);
    let events: Vec<Value> = events.iter().map(|l| json(l)).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ADDED", "ADDED", "BOOKMARK"]);
    let bookmark = &events[2]["object"];
    assert_eq!(bookmark["kind"], "ConfigMap");
    assert_eq!(bookmark["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
}

#[test]
fn a_watch_from_compacted_history_gets_410_expired() {
    let server = server(&["--compaction-window", "1s"]);
    let (_, body) = call(&server, "GET", CM, None);
    let listed: i64 = json(&body.join("\n"))["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    for n in 0..5 {
        call(&server, "POST", CM, Some(&configmap(&format!("c{n}"), "1")));
    }
    // Once the store has compacted past what we listed (and the watch cache, which follows the store's window a
    // moment later, has let go of it too), a watch from there is told its history is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Selected by label: the root CA publisher may write its ConfigMap here after the list.
    let watch = format!("{CM}?watch=true&labelSelector=app%3Dw&resourceVersion={listed}&timeoutSeconds=1");
    loop {
        let (code, events) = call(&server, "GET", &watch, None);
        assert_eq!(code, 200);
        let first = json(&events[0]);
        if first["type"] == "ERROR" {
            assert_eq!(first["object"]["code"], 410);
            assert_eq!(first["object"]["reason"], "Expired");
            assert!(first["object"]["message"].as_str().unwrap().starts_with("too old resource version"));
            break;
        }
        // Until then the events replay from the start, in order.
        assert_eq!((first["type"].as_str(), first["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("c0")));
        assert!(std::time::Instant::now() < deadline, "a watch from compacted history was never refused");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn lists_at_resource_version_zero_come_from_the_cache() {
    let server = server(&[]);
    call(&server, "POST", CM, Some(&configmap("cached", "1")));
    let (code, body) = call(&server, "GET", &format!("{CM}?resourceVersion=0"), None);
    assert_eq!(code, 200);
    let list = json(&body.join("\n"));
    // Every namespace also holds the root CA ConfigMap (its publisher may not have made it yet).
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .filter(|name| *name != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, ["cached"]);
    // A revision the server has not reached yet is answered 504 after a short wait, never with stale data.
    let (code, body) = call(&server, "GET", &format!("{CM}?resourceVersion=999999"), None);
    assert_eq!(code, 504, "{body:?}");
    assert!(body.join("").contains("Too large resource version"));
    // An exact read of a revision the store has not reached: the same 504, not a server error.
    let (code, body) = call(&server, "GET", &format!("{CM}?resourceVersion=999999&resourceVersionMatch=Exact"), None);
    assert_eq!(code, 504, "{body:?}");
    assert!(body.join("").contains("Too large resource version: 999999, current: "), "{body:?}");
    // A get takes any revision at least as new as the one asked for, and the same 504 for one not reached.
    let got = json(&call(&server, "GET", &format!("{CM}/cached"), None).1.join("\n"));
    let rv = got["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    assert_eq!(call(&server, "GET", &format!("{CM}/cached?resourceVersion={rv}"), None).0, 200);
    let (code, body) = call(&server, "GET", &format!("{CM}/cached?resourceVersion=999999"), None);
    assert_eq!(code, 504, "{body:?}");
    let (code, body) = call(&server, "GET", &format!("{CM}/cached?resourceVersion=latest"), None);
    assert_eq!(code, 400, "{body:?}");
}

/// A watch with a label selector sees an object leave its selection as DELETED and come back as ADDED, as
/// upstream's watch cache reports it (it compares the object before and after each change).
#[test]
fn a_selected_watch_sees_objects_leave_and_come_back() {
    let server = server(&[]);
    call(&server, "POST", CM, Some(&configmap("mover", "1")));
    let watch = format!("{CM}?watch=true&labelSelector=app%3Dw&timeoutSeconds=10");
    let events =
        std::thread::scope(|scope| {
            let watcher = scope.spawn(|| call(&server, "GET", &watch, None));
            // Changes only once the watch is open.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
            while !call(&server, "GET", "/metrics", None).1.iter().any(|l| {
                l.starts_with("apiserver_registered_watchers{") && l.contains("configmaps") && !l.ends_with(" 0")
            }) {
                assert!(std::time::Instant::now() < deadline, "the watch did not open");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let relabel = |app: &str| format!(r#"{{"metadata":{{"labels":{{"app":"{app}"}}}}}}"#);
            assert_eq!(call(&server, "PATCH", &format!("{CM}/mover"), Some(&relabel("elsewhere"))).0, 200);
            assert_eq!(call(&server, "PATCH", &format!("{CM}/mover"), Some(&relabel("w"))).0, 200);
            watcher.join().unwrap().1
        });
    let events: Vec<Value> = events.iter().map(|l| json(l)).collect();
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["object"]["metadata"]["labels"]["app"].as_str().unwrap()))
        .collect();
    // The DELETED event carries the object as it was (still selected), at the revision of the change.
    assert_eq!(seen, [("ADDED", "w"), ("DELETED", "w"), ("ADDED", "w")], "{events:?}");
    let revisions: Vec<i64> =
        events.iter().map(|e| e["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
}
