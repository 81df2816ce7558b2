//! JSON merge patch and JSON patch through the `json-patch` crate, as the API server applies them
//! (`crates/apiserver/src/rest.rs` `apply_patch`). Input: two JSON documents one after the other, the object
//! and the patch, e.g. `{"a":1} [{"op":"remove","path":"/a"}]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut documents = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
    let (Some(Ok(original)), Some(Ok(patch))) = (documents.next(), documents.next()) else { return };
    let mut merged = original.clone();
    json_patch::merge(&mut merged, &patch);
    if let Ok(operations) = serde_json::from_value::<json_patch::Patch>(patch) {
        // `patch_unsafe` as the server calls it (on a copy it drops on error): json-patch 4.2's `patch` panics when
        // its rollback fails (a failed `move` has already removed its source), see apiserver `apply_json_patch`.
        let mut patched = original;
        let _ = json_patch::patch_unsafe(&mut patched, &operations);
    }
});
