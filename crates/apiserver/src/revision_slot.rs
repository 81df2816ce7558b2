//! Objects as served: the stored bytes of an object (stored without its resourceVersion) with the revision put
//! in at the place an encoding of the decoded object would have it, so that answers, lists and the watch cache
//! copy stored bytes instead of decoding and encoding objects.

use serde_json::Value;

/// Where `"resourceVersion"` goes in an object encoded without it, so that the response to a write is the stored
/// bytes with the write's revision put in rather than a second encoding of the object.
#[derive(Debug)]
pub struct RevisionSlot {
    at: usize,
    /// Whether metadata fields come before and after it.
    before: bool,
    after: bool,
}

impl RevisionSlot {
    /// The object of `stored` with `metadata.resourceVersion`, byte for byte as `with_revision` encodes.
    pub fn fill(&self, stored: &[u8], revision: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(stored.len() + 48);
        self.fill_into(stored, revision, &mut out);
        out
    }

    /// [`Self::fill`], appended to `out`.
    pub fn fill_into(&self, stored: &[u8], revision: i64, out: &mut Vec<u8>) {
        out.extend_from_slice(&stored[..self.at]);
        if self.before {
            out.push(b',');
        }
        out.extend_from_slice(b"\"resourceVersion\":\"");
        out.extend_from_slice(revision.to_string().as_bytes());
        out.push(b'"');
        // The bytes after the slot start with the comma before the next field, unless it is the first.
        if self.after && !self.before {
            out.push(b',');
        }
        out.extend_from_slice(&stored[self.at..]);
    }
}

/// Encodes an object as `serde_json::to_vec` does, noting where `metadata.resourceVersion` (absent) would go.
pub fn encode_with_slot(map: &serde_json::Map<String, Value>, out: &mut Vec<u8>) -> Option<RevisionSlot> {
    const WRITES: &str = "writing JSON to a Vec cannot fail";
    let mut slot = None;
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).expect(WRITES);
        out.push(b':');
        let metadata = match value {
            Value::Object(metadata) if key == "metadata" => metadata,
            _ => {
                serde_json::to_writer(&mut *out, value).expect(WRITES);
                continue;
            }
        };
        out.push(b'{');
        for (j, (field, value)) in metadata.iter().enumerate() {
            if slot.is_none() && field.as_str() > "resourceVersion" {
                slot = Some(RevisionSlot { at: out.len(), before: j > 0, after: true });
            }
            if j > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, field).expect(WRITES);
            out.push(b':');
            serde_json::to_writer(&mut *out, value).expect(WRITES);
        }
        if slot.is_none() {
            slot = Some(RevisionSlot { at: out.len(), before: !metadata.is_empty(), after: false });
        }
        out.push(b'}');
    }
    out.push(b'}');
    slot
}

impl RevisionSlot {
    /// Where `metadata.resourceVersion` goes in stored bytes (compact JSON as k8rs writes objects), so that a
    /// list can answer with the stored bytes instead of decoding and encoding every object; None for bytes of
    /// another shape, which the caller decodes instead.
    pub fn find(stored: &[u8]) -> Option<RevisionSlot> {
        let mut scan = Scanner { bytes: stored, at: 0 };
        scan.expect(b'{')?;
        loop {
            let key = scan.string()?;
            scan.expect(b':')?;
            if key == b"metadata" {
                return scan.metadata_slot();
            }
            scan.skip_value()?;
            scan.expect(b',')?;
        }
    }
}

/// Just enough of a JSON reader to find a place in compact JSON: strings, and values skipped whole.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// A string's bytes as written (escapes kept: the keys compared here never hold any).
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            // Objects are mostly strings: jump to the next quote or escape rather than step byte by byte.
            self.at += memchr::memchr2(b'"', b'\\', self.bytes.get(self.at..)?)?;
            match self.next()? {
                b'\\' => {
                    self.next()?;
                }
                _ => return Some(&self.bytes[start..self.at - 1]),
            }
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                while !matches!(self.peek()?, b',' | b'}' | b']') {
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    /// The slot in the metadata object that starts here, by the rules of [`encode_with_slot`]; None if the
    /// object already holds a resourceVersion.
    fn metadata_slot(&mut self) -> Option<RevisionSlot> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            return Some(RevisionSlot { at: self.at, before: false, after: false });
        }
        let mut first = true;
        loop {
            let key_at = self.at;
            let key = self.string()?;
            match key.cmp(b"resourceVersion".as_slice()) {
                std::cmp::Ordering::Equal => return None,
                // Before this key; when it is not the first, before the comma that precedes it.
                std::cmp::Ordering::Greater if first => {
                    return Some(RevisionSlot { at: key_at, before: false, after: true })
                }
                std::cmp::Ordering::Greater => return Some(RevisionSlot { at: key_at - 1, before: true, after: true }),
                std::cmp::Ordering::Less => {}
            }
            self.expect(b':')?;
            self.skip_value()?;
            match self.next()? {
                b',' => first = false,
                b'}' => return Some(RevisionSlot { at: self.at - 1, before: true, after: false }),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with_revision(mut object: Value, revision: i64) -> Value {
        object["metadata"]["resourceVersion"] = json!(revision.to_string());
        object
    }

    #[test]
    fn a_filled_revision_slot_encodes_as_the_object_with_its_revision() {
        let objects = [
            json!({"apiVersion": "v1", "metadata": {"name": "a", "namespace": "n", "uid": "u\"x"}, "spec": {"a": [1.5, null]}}),
            json!({"metadata": {"uid": "u", "zone": {}}}),
            json!({"metadata": {"annotations": {"resourceVersion": "no"}, "name": "a"}, "z": 1}),
            json!({"metadata": {}}),
            json!({"a": "é\n", "metadata": {"resourceVersionX": 1, "resourceVersio": 2}}),
        ];
        for object in objects {
            let mut out = Vec::new();
            let slot = encode_with_slot(object.as_object().unwrap(), &mut out).unwrap();
            assert_eq!(out, serde_json::to_vec(&object).unwrap());
            let expected = serde_json::to_vec(&with_revision(object.clone(), 42)).unwrap();
            assert_eq!(String::from_utf8(slot.fill(&out, 42)).unwrap(), String::from_utf8(expected).unwrap());
        }
        assert!(encode_with_slot(json!({"spec": {}}).as_object().unwrap(), &mut Vec::new()).is_none());
    }

    #[test]
    fn a_slot_found_in_stored_bytes_fills_as_the_decoded_object_encodes() {
        let objects = [
            json!({"apiVersion": "v1", "metadata": {"name": "a", "namespace": "n", "uid": "u\"x}{"}, "spec": {"a": [1.5, null, {"b": "]"}]}}),
            json!({"metadata": {"uid": "u", "zone": {}}}),
            json!({"a": {"metadata": {"x": 1}}, "metadata": {"annotations": {"resourceVersion": "no", "k": "\\\""}, "name": "a"}, "z": 1}),
            json!({"metadata": {}}),
            json!({"a": "é\n", "metadata": {"resourceVersionX": 1, "resourceVersio": 2}}),
            json!({"metadata": {"labels": {"a": "b"}, "managedFields": [{"f:x": {}}]}, "status": {"phase": "Running"}}),
        ];
        for object in objects {
            let stored = serde_json::to_vec(&object).unwrap();
            let slot = RevisionSlot::find(&stored).unwrap_or_else(|| panic!("no slot in {object}"));
            let expected = serde_json::to_vec(&with_revision(object.clone(), 42)).unwrap();
            assert_eq!(String::from_utf8(slot.fill(&stored, 42)).unwrap(), String::from_utf8(expected).unwrap());
        }
        // Bytes of another shape are left to the decoder.
        for other in [
            &b"{\"spec\":{}}"[..],
            b"{\"metadata\":{\"resourceVersion\":\"3\"}}",
            b"[1]",
            b"{\"metadata\":{\"a\":1",
            b"",
        ] {
            assert!(RevisionSlot::find(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }
}
