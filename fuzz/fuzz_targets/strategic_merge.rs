//! `apimachinery::patch::strategic_merge`. Input: one byte choosing the kind, then two JSON documents (the
//! object and the patch) one after the other, e.g. `0{"spec":{}} {"spec":{"$patch":"replace"}}`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const KINDS: &[(&str, &str, &str)] = &[
    ("", "v1", "Pod"),
    ("apps", "v1", "Deployment"),
    ("", "v1", "Service"),
    ("", "v1", "ConfigMap"),
    ("apps", "v1", "StatefulSet"),
    ("apps", "v1", "DaemonSet"),
    ("batch", "v1", "CronJob"),
    ("", "v1", "Node"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    ("autoscaling", "v1", "Scale"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (group, version, kind) = KINDS[usize::from(selector) % KINDS.len()];
    let Some(schema) = apimachinery::patch::schema_for_kind(group, version, kind) else { return };
    let mut documents = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
    let (Some(Ok(original)), Some(Ok(patch))) = (documents.next(), documents.next()) else { return };
    if let Ok(patched) = apimachinery::patch::strategic_merge(&original, &patch, &schema) {
        let _ = serde_json::to_vec(&patched);
    }
});
