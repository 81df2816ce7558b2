//! Object metadata rules every resource shares: names, generateName, uid, timestamps, and where an object
//! lives in the store.

use std::time::{SystemTime, UNIX_EPOCH};

use apimachinery::registry::Resource;
use apimachinery::status::StatusCause;
use serde_json::{json, Value};

/// The store key of an object: `/registry/[group/]resource/[namespace/]name`, the core group written as the
/// resource alone, as upstream lays out etcd.
pub fn key(resource: &Resource, namespace: Option<&str>, name: &str) -> String {
    format!("{}{name}", prefix(resource, namespace))
}

/// The prefix under which every object of `resource` (in `namespace`, if given) lives.
pub fn prefix(resource: &Resource, namespace: Option<&str>) -> String {
    let (group, name) = apimachinery::conversion::storage_resource(resource.group, resource.name);
    let mut prefix = String::from("/registry/");
    if !group.is_empty() {
        prefix.push_str(group);
        prefix.push('/');
    }
    prefix.push_str(name);
    prefix.push('/');
    if let Some(namespace) = namespace.filter(|_| resource.namespaced) {
        prefix.push_str(namespace);
        prefix.push('/');
    }
    prefix
}

pub use apimachinery::time::{parse_rfc3339 as parse_timestamp, rfc3339 as timestamp};

/// Upstream's humanized age of a timestamp (`<unknown>` when absent or unparsable), see [`human_duration`].
pub fn age(created: Option<&str>, now: SystemTime) -> String {
    let Some(created) = created.and_then(parse_timestamp) else {
        return "<unknown>".into();
    };
    let now_ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()) as i64;
    // Truncated toward zero, as Go's `int(d.Seconds())`.
    human_duration((now_ms - created * 1000) / 1000)
}

/// Upstream's `duration.HumanDuration` of whole seconds: `45s`, `5m`, `3h`, `2d`, `400d`…, with two units where
/// upstream shows two; `0s` for a second in the future and `<invalid>` beyond.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let seconds = seconds.max(0);
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if days < 365 * 8 {
        let d = days % 365;
        if d == 0 {
            format!("{}y", days / 365)
        } else {
            format!("{}y{d}d", days / 365)
        }
    } else {
        format!("{}y", days / 365)
    }
}

/// Five characters from upstream's alphabet for generated names (no vowels, no confusable characters).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    id_bytes::<5>().iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

/// Bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut bytes = [0; N];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("the system random source works");
    bytes
}

/// Unpredictable bytes for names and UIDs, without a system call each: SipHash keyed once per thread from the
/// operating system's random source (std's `RandomState`), over a counter. Secrets take `random_bytes`.
fn id_bytes<const N: usize>() -> [u8; N] {
    use std::cell::Cell;
    use std::hash::{BuildHasher, RandomState};
    thread_local! {
        static GENERATOR: (RandomState, Cell<u64>) = (RandomState::new(), Cell::new(0));
    }
    GENERATOR.with(|(key, counter)| {
        let mut bytes = [0; N];
        for chunk in bytes.chunks_mut(8) {
            let n = counter.get();
            counter.set(n.wrapping_add(1));
            chunk.copy_from_slice(&key.hash_one(n).to_le_bytes()[..chunk.len()]);
        }
        bytes
    })
}

/// A random (version 4) UUID for `metadata.uid`.
pub fn new_uid() -> String {
    uuid::Builder::from_random_bytes(id_bytes()).into_uuid().to_string()
}

/// The rule an object's name must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: most resources.
    Subdomain,
    /// RFC 1123 label: namespaces.
    Label,
    /// RFC 1035 label (starts with a letter): services.
    Rfc1035Label,
    /// Anything usable as a path segment: RBAC objects.
    PathSegment,
}

impl NameRule {
    pub fn for_resource(resource: &Resource) -> NameRule {
        match (resource.group, resource.name) {
            ("", "namespaces") => NameRule::Label,
            ("", "services") => NameRule::Rfc1035Label,
            ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
            _ => NameRule::Subdomain,
        }
    }

    /// Why `name` breaks the rule, worded as upstream.
    pub fn check(self, name: &str) -> Option<String> {
        let label_ok = |l: &str, first_letter: bool| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && l.starts_with(|c: char| c.is_ascii_lowercase() || (!first_letter && c.is_ascii_digit()))
                && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        };
        match self {
            NameRule::Subdomain => (name.len() > 253 || !name.split('.').all(|l| label_ok(l, false)))
                .then(|| apimachinery::validation::SUBDOMAIN_MESSAGE.into()),
            NameRule::Label => {
                (!label_ok(name, false)).then(|| apimachinery::validation::DNS_LABEL_MESSAGE.into())
            }
            NameRule::Rfc1035Label => (!label_ok(name, true)).then(|| {
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".into()
            }),
            NameRule::PathSegment => {
                if name == "." || name == ".." {
                    Some(format!("may not be '{name}'"))
                } else if name.contains('/') || name.contains('%') {
                    Some("may not contain '/' or '%'".into())
                } else {
                    None
                }
            }
        }
    }
}

/// Checks `metadata.name` against the resource's rule.
pub fn validate_name(resource: &Resource, name: &str) -> Vec<StatusCause> {
    match NameRule::for_resource(resource).check(name) {
        Some(why) => vec![StatusCause::invalid("metadata.name", format!("Invalid value: {name:?}: {why}"))],
        None => Vec::new(),
    }
}

/// Checks `metadata.generateName` as a name prefix: as upstream, a trailing dash is masked first.
pub fn validate_generate_name(resource: &Resource, base: &str) -> Vec<StatusCause> {
    let masked = match base.strip_suffix('-') {
        Some(rest) if base.len() > 1 => {
            format!("{}a", &rest[..rest.len() - rest.chars().last().map_or(0, char::len_utf8)])
        }
        _ => base.to_string(),
    };
    match NameRule::for_resource(resource).check(&masked) {
        Some(why) => vec![StatusCause::invalid("metadata.generateName", format!("Invalid value: {base:?}: {why}"))],
        None => Vec::new(),
    }
}

/// The object's `metadata`, made an object if it is missing.
pub fn metadata(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"].as_object_mut().expect("metadata is an object")
}

/// Drops the empty metadata maps and lists that Go's `omitempty` leaves out, so objects read back as upstream's
/// do (a patch that empties `annotations` leaves no `annotations: {}` behind).
pub fn drop_empty_metadata(object: &mut Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["labels", "annotations", "finalizers", "ownerReferences", "managedFields"] {
            let empty = match metadata.get(field) {
                Some(Value::Object(map)) => map.is_empty(),
                Some(Value::Array(list)) => list.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                metadata.remove(field);
            }
        }
    }
}

pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generate_name_is_checked_as_a_prefix() {
        let configmaps = apimachinery::registry::find("", "v1", "configmaps").unwrap();
        assert!(validate_generate_name(configmaps, "web-").is_empty(), "a trailing dash is masked");
        assert!(validate_generate_name(configmaps, "a-").is_empty());
        let causes = validate_generate_name(configmaps, "Bad_");
        assert_eq!(causes[0].field, "metadata.generateName");
        assert!(causes[0].message.starts_with("Invalid value: \"Bad_\": a lowercase RFC 1123 subdomain"));
    }
    use std::time::Duration;

    #[test]
    fn uids_and_suffixes_do_not_repeat_across_threads() {
        let draw = || (0..5000).map(|_| (new_uid(), random_suffix())).collect::<Vec<_>>();
        let other = std::thread::spawn(draw).join().unwrap();
        let mine = draw();
        let uids: std::collections::HashSet<&String> = mine.iter().chain(&other).map(|(uid, _)| uid).collect();
        assert_eq!(uids.len(), 10_000);
        assert!(mine.iter().all(|(uid, _)| uuid::Uuid::parse_str(uid).unwrap().get_version_num() == 4));
        // 27^5 suffixes: 10,000 draws repeat a handful at most, not whole runs.
        let suffixes: std::collections::HashSet<&String> = mine.iter().chain(&other).map(|(_, s)| s).collect();
        assert!(suffixes.len() > 9_900, "{} distinct suffixes", suffixes.len());
    }

    #[test]
    fn ages_read_as_kubectl_shows_them() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ago = |s: u64| timestamp(now - Duration::from_secs(s));
        assert_eq!(age(Some(&ago(5)), now), "5s");
        assert_eq!(age(Some(&ago(150)), now), "2m30s");
        assert_eq!(age(Some(&ago(3600)), now), "60m");
        assert_eq!(age(Some(&ago(5 * 3600 + 600)), now), "5h10m");
        assert_eq!(age(Some(&ago(3 * 86_400)), now), "3d");
        assert_eq!(age(None, now), "<unknown>");
    }

    #[test]
    fn names_follow_their_resource_rule() {
        assert!(NameRule::Subdomain.check("web.example-1").is_none());
        assert!(NameRule::Subdomain.check("Web").is_some());
        assert!(NameRule::Label.check("kube.system").is_some());
        assert!(NameRule::Rfc1035Label.check("1svc").is_some());
        assert!(NameRule::PathSegment.check("system:admin").is_none());
        assert!(NameRule::PathSegment.check("a/b").is_some());
        assert_eq!(random_suffix().len(), 5);
    }
}
