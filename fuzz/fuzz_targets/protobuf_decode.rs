//! `apimachinery::protobuf::decode` on arbitrary bodies, and the JSON the server would then write.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = apimachinery::protobuf::decode(data) {
        let _ = serde_json::to_vec(&value);
    }
});
