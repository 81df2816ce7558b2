//! Real patches (what kubectl sends) on real objects; every expected result is what kube-apiserver 1.33's
//! strategic merge patch gives.

use serde_json::{json, Value};

use super::*;

fn apply(group: &str, version: &str, kind: &str, original: &Value, patch: Value) -> Result<Value, PatchError> {
    let schema = schema_for_kind(group, version, kind).expect("a built-in kind");
    strategic_merge(original, &patch, &schema)
}

fn deployment_patch(original: &Value, patch: Value) -> Value {
    apply("apps", "v1", "Deployment", original, patch).unwrap()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "frontend"}, "finalizers": ["a", "b", "c"]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1",
                            "env": [{"name": "MODE", "value": "prod"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]
                        },
                        {"name": "log", "image": "busybox"}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}, {"name": "config", "configMap": {"name": "web"}}],
                    "tolerations": [{"key": "dedicated", "operator": "Exists"}]
                }
            }
        }
    })
}

/// The pod spec of a patched deployment.
fn pod(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]
}

fn template_patch(pod_spec: Value) -> Value {
    json!({"spec": {"template": {"spec": pod_spec}}})
}

#[test]
fn patch_set_image_changes_only_that_container() {
    // kubectl set image deployment/web app=nginx:2
    let patch = json!({"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"app"},{"name":"log"}],
        "containers":[{"image":"nginx:2","name":"app"}]
    }}}});
    let patched = deployment_patch(&deployment(), patch);
    let mut expected = deployment();
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    assert_eq!(patched, expected);
}

#[test]
fn patch_env_var_merges_by_name() {
    let patch = template_patch(json!({"containers": [{"name": "app", "env": [
        {"name": "DEBUG", "value": "1"},
        {"name": "MODE", "value": "dev"}
    ]}]}));
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(
        pod(&patched)["containers"][0]["env"],
        json!([{"name": "DEBUG", "value": "1"}, {"name": "MODE", "value": "dev"}])
    );
    assert_eq!(pod(&patched)["containers"][0]["image"], "nginx:1");
    assert_eq!(pod(&patched)["containers"][1], json!({"name": "log", "image": "busybox"}));
}

#[test]
fn patch_delete_directive_removes_a_container() {
    let patch = template_patch(json!({"containers": [{"name": "log", "$patch": "delete"}]}));
    let patched = deployment_patch(&deployment(), patch);
    let containers = pod(&patched)["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["name"], "app");
}

#[test]
fn patch_ports_merge_by_container_port() {
    let patch = template_patch(json!({"containers": [{"name": "app", "ports": [
        {"containerPort": 8080},
        {"containerPort": 80, "name": "http"}
    ]}]}));
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(
        pod(&patched)["containers"][0]["ports"],
        json!([
            {"containerPort": 8080},
            {"containerPort": 80, "name": "http", "protocol": "TCP"},
            {"containerPort": 443}
        ])
    );

    // The merge key is containerPort alone: a UDP port on the same number merges into the TCP one, as upstream.
    let udp =
        template_patch(json!({"containers": [{"name": "app", "ports": [{"containerPort": 80, "protocol": "UDP"}]}]}));
    let patched = deployment_patch(&deployment(), udp);
    assert_eq!(
        pod(&patched)["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "UDP"}, {"containerPort": 443}])
    );

    // 80.0 is not 80: upstream decodes them as different types, so the port is added, not merged.
    let float =
        template_patch(json!({"containers": [{"name": "app", "ports": [{"containerPort": 80.0, "name": "h"}]}]}));
    let patched = deployment_patch(&deployment(), float);
    assert_eq!(pod(&patched)["containers"][0]["ports"].as_array().unwrap().len(), 3);
}

#[test]
fn patch_configmap_data_adds_changes_and_deletes_keys() {
    let configmap =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    let patched = apply("", "v1", "ConfigMap", &configmap, json!({"data": {"a": null, "b": "22", "c": "3"}})).unwrap();
    assert_eq!(patched["data"], json!({"b": "22", "c": "3"}));
}

#[test]
fn patch_retain_keys_switches_rolling_update_to_recreate() {
    // What kubectl apply sends when the strategy type changes (DeploymentSpec.strategy is retainKeys).
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}});
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));

    // $retainKeys alone drops the unlisted keys too.
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn patch_delete_from_primitive_list_removes_finalizers() {
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "absent"]}});
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(patched["metadata"]["finalizers"], json!(["a", "c"]));

    // A deletion list for a field the object does not have changes nothing.
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/ownerReferences": ["x"]}});
    assert_eq!(deployment_patch(&deployment(), patch), deployment());
}

#[test]
fn patch_primitive_merge_list_is_a_union_with_new_values_first() {
    let patch = json!({"metadata": {"finalizers": ["d", "b"]}});
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(patched["metadata"]["finalizers"], json!(["d", "a", "b", "c"]));

    // With $setElementOrder the listed values take that order; the others keep their place relative to them.
    let patch = json!({"metadata": {"$setElementOrder/finalizers": ["c", "d", "a", "b"], "finalizers": ["d"]}});
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(patched["metadata"]["finalizers"], json!(["c", "d", "a", "b"]));
}

#[test]
fn patch_volumes_merge_by_name() {
    let patch = template_patch(json!({"volumes": [
        {"name": "config", "configMap": {"name": "web-v2"}},
        {"name": "cache", "emptyDir": {"medium": "Memory"}}
    ]}));
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(
        pod(&patched)["volumes"],
        json!([
            {"name": "data", "emptyDir": {}},
            {"name": "config", "configMap": {"name": "web-v2"}},
            {"name": "cache", "emptyDir": {"medium": "Memory"}}
        ])
    );

    // kubectl apply switching a volume's source: $retainKeys in the element drops the old source.
    let patch = template_patch(json!({
        "$setElementOrder/volumes": [{"name": "data"}, {"name": "config"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "name": "data", "configMap": {"name": "x"}}]
    }));
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(pod(&patched)["volumes"][0], json!({"name": "data", "configMap": {"name": "x"}}));
}

#[test]
fn patch_tolerations_without_merge_key_are_replaced() {
    let patch = template_patch(json!({"tolerations": [{"key": "gpu", "operator": "Equal", "value": "true"}]}));
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(pod(&patched)["tolerations"], json!([{"key": "gpu", "operator": "Equal", "value": "true"}]));
}

#[test]
fn patch_null_deletes_a_label() {
    let patch = json!({"metadata": {"labels": {"tier": null, "track": "stable", "absent": null}}});
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web", "track": "stable"}));
}

#[test]
fn patch_client_side_apply_on_service_ports() {
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.0.0.5",
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}
            ]
        }
    });
    // The configuration dropped the metrics port and added https: kubectl apply's three-way patch.
    let last_applied = concat!(
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":"web"},"spec":{"ports":"#,
        r#"[{"name":"http","port":80,"targetPort":8080},{"name":"https","port":443,"targetPort":8443}],"#,
        r#""selector":{"app":"web"}}}"#
    );
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{last_applied}\n")}},
        "spec": {
            "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
            "ports": [{"name": "https", "port": 443, "targetPort": 8443}, {"$patch": "delete", "port": 9090}]
        }
    });
    let patched = apply("", "v1", "Service", &service, patch).unwrap();
    assert_eq!(
        patched["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "https", "port": 443, "targetPort": 8443}
        ])
    );
    assert_eq!(
        patched["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        format!("{last_applied}\n")
    );
    assert_eq!(patched["spec"]["clusterIP"], "10.0.0.5");
}

#[test]
fn patch_set_element_order_keeps_server_only_elements_where_upstream_puts_them() {
    let mut original = deployment();
    original["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "app", "image": "a"},
        {"name": "old", "image": "o"},
        {"name": "istio-proxy", "image": "proxy"},
        {"name": "log", "image": "l"}
    ]);
    // Reordering only.
    let patch = template_patch(json!({"$setElementOrder/containers": [{"name": "log"}, {"name": "app"}]}));
    let names = |patched: &Value| -> Vec<String> {
        let containers = pod(patched)["containers"].as_array().unwrap();
        containers.iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&deployment_patch(&original, patch)), ["old", "istio-proxy", "log", "app"]);

    // kubectl apply replacing "old" by "new": upstream's view of the original list has "new" in the slot the
    // deletion freed, which puts the server-only sidecar before it.
    let patch = template_patch(json!({
        "$setElementOrder/containers": [{"name": "app"}, {"name": "new"}, {"name": "log"}],
        "containers": [{"name": "new", "image": "n"}, {"$patch": "delete", "name": "old"}]
    }));
    assert_eq!(names(&deployment_patch(&original, patch)), ["app", "istio-proxy", "new", "log"]);
}

#[test]
fn patch_replace_directives() {
    // On a map: the patch content replaces it.
    let patch = json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}});
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(patched["metadata"]["labels"], json!({"only": "this"}));

    // In a merging list: the other elements become the whole list, nested directives dropped as upstream's
    // decoding drops them.
    let patch = template_patch(json!({"containers": [
        {"$patch": "replace"},
        {
            "name": "solo",
            "image": "s",
            "env": [{"name": "E", "$patch": "delete"}],
            "resources": {"$patch": "replace", "limits": {"cpu": "1"}}
        }
    ]}));
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(
        pod(&patched)["containers"],
        json!([{"name": "solo", "image": "s", "env": [{"name": "E"}], "resources": {"limits": {"cpu": "1"}}}])
    );

    // A field whose patch strategy is replace (PodDisruptionBudget selector).
    let pdb = json!({"spec": {"minAvailable": 1, "selector": {
        "matchLabels": {"a": "b"},
        "matchExpressions": [{"key": "x", "operator": "Exists"}]
    }}});
    let patched =
        apply("policy", "v1", "PodDisruptionBudget", &pdb, json!({"spec": {"selector": {"matchLabels": {"c": "d"}}}}))
            .unwrap();
    assert_eq!(patched["spec"]["selector"], json!({"matchLabels": {"c": "d"}}));
}

#[test]
fn patch_delete_directive_on_a_map_empties_it() {
    let patched = deployment_patch(&deployment(), json!({"spec": {"strategy": {"$patch": "delete"}}}));
    assert_eq!(patched["spec"]["strategy"], json!({}));
    let patched = deployment_patch(&deployment(), json!({"$patch": "delete"}));
    assert_eq!(patched, json!({}));
}

#[test]
fn patch_new_values_never_keep_directives() {
    let patch = template_patch(json!({
        "initContainers": [{
            "name": "init",
            "image": "i",
            "env": [{"name": "gone", "$patch": "delete"}, {"name": "kept", "value": null}]
        }],
        "securityContext": {"$setElementOrder/supplementalGroups": [1], "supplementalGroups": [1], "runAsUser": 1000}
    }));
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(pod(&patched)["initContainers"], json!([{"name": "init", "image": "i", "env": [{"name": "kept"}]}]));
    assert_eq!(pod(&patched)["securityContext"], json!({"supplementalGroups": [1], "runAsUser": 1000}));

    let patch = template_patch(json!({"containers": [{"name": "app", "env": [{"name": "NEW", "value": null}]}]}));
    let patched = deployment_patch(&deployment(), patch);
    assert_eq!(pod(&patched)["containers"][0]["env"], json!([{"name": "NEW"}, {"name": "MODE", "value": "prod"}]));
}

#[test]
fn patch_paths_without_schema_merge_like_json_merge_patch() {
    // ControllerRevision.data is a RawExtension: no schema below it. (Upstream refuses to look into it: "unable to
    // find api field in struct RawExtension"; here it merges like a JSON merge patch.)
    let revision = json!({"data": {"spec": {"a": {"b": 1, "c": 2}, "list": [1, 2]}}, "revision": 1});
    let patch = json!({"data": {"spec": {"a": {"b": null, "d": 3}, "list": [3]}}});
    let patched = apply("apps", "v1", "ControllerRevision", &revision, patch).unwrap();
    assert_eq!(patched, json!({"data": {"spec": {"a": {"c": 2, "d": 3}, "list": [3]}}, "revision": 1}));
}

#[test]
fn patch_errors_name_the_problem() {
    let error = |patch: Value| apply("apps", "v1", "Deployment", &deployment(), patch).unwrap_err();

    let bogus = error(json!({"$patch": "bogus", "a": 1}));
    assert_eq!(bogus.to_string(), "unknown patch type: bogus in map: map[$patch:bogus a:1]");
    assert_eq!(bogus.code(), 400);

    let bogus = error(template_patch(json!({"containers": [{"name": "app", "$patch": "bogus"}]})));
    assert_eq!(bogus.to_string(), "unknown patch type: bogus in map: map[$patch:bogus name:app]");

    let no_key = error(template_patch(json!({"containers": [{"image": "nginx:3"}]})));
    assert_eq!(no_key.to_string(), "map: map[image:nginx:3] does not contain declared merge key: name");
    assert_eq!(no_key.code(), 422);
    let no_key = error(template_patch(json!({"containers": [{"$patch": "delete"}]})));
    assert_eq!(no_key.to_string(), "map: map[$patch:delete] does not contain declared merge key: name");

    let merge = error(template_patch(json!({"containers": [{"name": "app", "$patch": "merge"}]})));
    assert_eq!(merge.to_string(), "merging lists cannot yet be specified in the patch");
    // Upstream rejects `$patch: merge` on a map too: merging is what happens without a directive.
    error(json!({"$patch": "merge", "metadata": {}}));

    let retain = error(json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}}));
    assert!(retain.to_string().starts_with("invalid patch format of retainKeys"), "{retain}");

    let order = error(template_patch(json!({
        "$setElementOrder/containers": [{"name": "log"}, {"name": "app"}],
        "containers": [{"name": "app", "image": "x"}, {"name": "log", "image": "y"}]
    })));
    assert!(order.to_string().contains("doesn't match $setElementOrder list"), "{order}");

    let mixed = error(json!({"metadata": {"finalizers": [1]}}));
    assert_eq!(mixed.to_string(), "list element types are not identical: [[a b c] [1]]");

    for not_an_object in [json!([1]), json!("x"), Value::Null] {
        let error = apply("apps", "v1", "Deployment", &deployment(), not_an_object).unwrap_err();
        assert_eq!(error.code(), 400);
        assert!(error.to_string().starts_with("invalid JSON document"), "{error}");
    }
}

#[test]
fn patch_leaves_inputs_untouched_and_accepts_a_null_original() {
    let original = deployment();
    let patch = json!({"metadata": {"labels": {"x": "y"}}});
    deployment_patch(&original, patch.clone());
    assert_eq!(original, deployment());
    assert_eq!(deployment_patch(&Value::Null, patch.clone()), patch);
}
