//! `apimachinery::apply`: an ordinary write recorded in managedFields (`record_update_subresource`), then a
//! server-side apply over the result. Input: one byte choosing the kind and the subresource, then three JSON
//! documents: the object before (`null` for a create), the object written, the applied configuration. Every
//! `fieldsV1` written must read back as the same set.
#![no_main]

use apimachinery::apply::{self, FieldSet};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const KINDS: &[(&str, &str, &str)] = &[
    ("", "v1", "Pod"),
    ("apps", "v1", "Deployment"),
    ("", "v1", "Service"),
    ("", "v1", "ConfigMap"),
    ("batch", "v1", "CronJob"),
];
const SUBRESOURCES: &[&str] = &["", "status", "scale"];

fn check_fields_v1(object: &Value) {
    let Some(entries) = object.pointer("/metadata/managedFields").and_then(Value::as_array) else { return };
    for entry in entries {
        let fields = &entry["fieldsV1"];
        assert_eq!(&FieldSet::from_fields_v1(fields).to_fields_v1(), fields, "fieldsV1 that does not read back");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (group, version, kind) = KINDS[usize::from(selector) % KINDS.len()];
    let subresource = SUBRESOURCES[usize::from(selector / 16) % SUBRESOURCES.len()];
    let Some(schema) = apimachinery::patch::schema_for_kind(group, version, kind) else { return };
    let mut documents = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
    let (Some(Ok(old)), Some(Ok(mut new)), Some(Ok(applied))) = (documents.next(), documents.next(), documents.next())
    else {
        return;
    };
    let old = (!old.is_null()).then_some(old);
    apply::record_update_subresource(old.as_ref(), &mut new, "writer", subresource, &schema);
    check_fields_v1(&new);
    if let Ok(result) = apply::apply(Some(&new), &applied, "applier", selector & 1 == 1, &schema) {
        check_fields_v1(&result);
    }
});
