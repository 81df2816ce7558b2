//! Label selectors (equality- and set-based) and field selectors, parsed from the query-string syntax clients
//! send and matched against objects.

use std::collections::BTreeMap;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    Exists(String),
    DoesNotExist(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector: every requirement must hold. Empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses `app=web,tier!=db,env in (a,b),!legacy`.
    pub fn parse(input: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        let mut rest = input.trim();
        while !rest.is_empty() {
            let (requirement, after) = parse_requirement(rest)?;
            requirements.push(requirement);
            rest = after.trim_start();
            if let Some(after_comma) = rest.strip_prefix(',') {
                rest = after_comma.trim_start();
                if rest.is_empty() {
                    return Err(format!("unable to parse requirement: found trailing ',' in {input:?}"));
                }
            } else if !rest.is_empty() {
                return Err(format!("unable to parse requirement: expected ',' before {rest:?}"));
            }
        }
        Ok(LabelSelector { requirements })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        })
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn split_while(input: &str, f: impl Fn(char) -> bool) -> (&str, &str) {
    let end = input.find(|c| !f(c)).unwrap_or(input.len());
    input.split_at(end)
}

fn parse_requirement(input: &str) -> Result<(Requirement, &str), String> {
    if let Some(rest) = input.strip_prefix('!') {
        let (key, rest) = split_while(rest.trim_start(), is_key_char);
        validate_key(key)?;
        return Ok((Requirement::DoesNotExist(key.to_string()), rest));
    }
    let (key, rest) = split_while(input, is_key_char);
    if key.is_empty() {
        return Err(format!("unable to parse requirement: expected a label key at {input:?}"));
    }
    validate_key(key)?;
    let key = key.to_string();
    let trimmed = rest.trim_start();
    let operator_end = trimmed.find(|c: char| !matches!(c, '=' | '!')).unwrap_or(trimmed.len());
    let (operator, after) = trimmed.split_at(operator_end);
    match operator {
        "=" | "==" | "!=" => {
            let (value, rest) = split_while(after.trim_start(), is_value_char);
            validate_value(value)?;
            let value = value.to_string();
            let requirement =
                if operator == "!=" { Requirement::NotEquals(key, value) } else { Requirement::Equals(key, value) };
            Ok((requirement, rest))
        }
        "" => {
            let lower = trimmed;
            for (word, notin) in [("in", false), ("notin", true)] {
                if let Some(after) = lower.strip_prefix(word) {
                    if after.starts_with(|c: char| c.is_whitespace() || c == '(') {
                        let (values, rest) = parse_set(after.trim_start())?;
                        let requirement =
                            if notin { Requirement::NotIn(key, values) } else { Requirement::In(key, values) };
                        return Ok((requirement, rest));
                    }
                }
            }
            if trimmed.is_empty() || trimmed.starts_with(',') {
                Ok((Requirement::Exists(key), rest))
            } else {
                Err(format!("unable to parse requirement: unknown operator at {trimmed:?}"))
            }
        }
        other => Err(format!("unable to parse requirement: unknown operator {other:?}")),
    }
}

fn is_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn parse_set(input: &str) -> Result<(Vec<String>, &str), String> {
    let inner =
        input.strip_prefix('(').ok_or_else(|| format!("unable to parse requirement: expected '(' at {input:?}"))?;
    let close = inner.find(')').ok_or_else(|| format!("unable to parse requirement: missing ')' in {input:?}"))?;
    let mut values = Vec::new();
    for value in inner[..close].split(',') {
        let value = value.trim();
        validate_value(value)?;
        values.push(value.to_string());
    }
    Ok((values, &inner[close + 1..]))
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
pub fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(is_dns_label) {
            return Err(format!("invalid label key {key:?}: prefix part must be a lowercase RFC 1123 subdomain"));
        }
    }
    if !is_qualified_name(name) {
        return Err(format!(
            "invalid label key {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', \
             and must start and end with an alphanumeric character, at most 63 characters"
        ));
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_qualified_name(value) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value: {value:?}: a valid label must be an empty string or consist of alphanumeric \
             characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn is_qualified_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(is_value_char)
}

fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && label.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// One term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

/// A parsed field selector: `metadata.name=web,status.phase!=Running`. Empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses a field selector; `\` escapes `,`, `=`, `!` and `\` in values.
    pub fn parse(input: &str) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for raw in split_unescaped(input, ',') {
            if raw.trim().is_empty() {
                continue;
            }
            let (field, negated, value) = if let Some(i) = find_unescaped(&raw, "!=") {
                (&raw[..i], true, &raw[i + 2..])
            } else if let Some(i) = find_unescaped(&raw, "==") {
                (&raw[..i], false, &raw[i + 2..])
            } else if let Some(i) = find_unescaped(&raw, "=") {
                (&raw[..i], false, &raw[i + 1..])
            } else {
                return Err(format!("invalid selector: {input:?}; can't understand {raw:?}"));
            };
            terms.push(FieldTerm { field: field.trim().to_string(), value: unescape(value.trim()), negated });
        }
        Ok(FieldSelector { terms })
    }

    /// The value of `field=value` if the selector pins `field` to exactly one value.
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.terms.iter().find(|t| t.field == field && !t.negated).map(|t| t.value.as_str())
    }

    /// Whether an object matches, given how to read each field (a missing field reads as "").
    pub fn matches(&self, field_value: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let actual = field_value(&t.field).unwrap_or_default();
            (actual == t.value) != t.negated
        })
    }
}

fn split_unescaped(input: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            parts.last_mut().unwrap().push('\\');
            parts.last_mut().unwrap().push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            parts.push(String::new());
        } else {
            parts.last_mut().unwrap().push(c);
        }
    }
    parts
}

fn find_unescaped(input: &str, needle: &str) -> Option<usize> {
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        // Bytes, not `input[i..]`: `i` may be inside a multi-byte character, and an ASCII needle only matches at
        // a character boundary.
        if bytes[i..].starts_with(needle.as_bytes()) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(input: &str) -> String {
    let mut out = String::new();
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn equality_and_set_based_requirements_match_as_upstream() {
        let web = labels(&[("app", "web"), ("env", "prod"), ("k8s.io/tier", "front")]);
        let db = labels(&[("app", "db"), ("legacy", "")]);
        for (selector, on_web, on_db) in [
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("app in (web, db)", true, true),
            ("app notin (web)", false, true),
            ("env notin (prod)", false, true),
            ("legacy", false, true),
            ("!legacy", true, false),
            ("k8s.io/tier=front, app", true, false),
            ("app=web,env in (prod,dev),!legacy", true, false),
        ] {
            let parsed = LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
            assert_eq!((parsed.matches(&web), parsed.matches(&db)), (on_web, on_db), "{selector}");
        }
    }

    #[test]
    fn bad_label_selectors_are_refused_with_the_reason() {
        for bad in ["app=", "app=web,", "app in web", "app in (a", "=web", "app=we b", "a=b=c", "-app=x", "app>1"] {
            let error = LabelSelector::parse(bad).err();
            if bad == "app=" {
                // An empty value is allowed: `app=` selects objects whose label is set to "".
                assert!(error.is_none());
                continue;
            }
            assert!(error.is_some(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn field_selectors_parse_with_escapes_and_match() {
        let selector = FieldSelector::parse("metadata.name=web,status.phase!=Running,spec.x==a\\,b").unwrap();
        assert_eq!(selector.terms.len(), 3);
        assert_eq!(selector.terms[2].value, "a,b");
        assert_eq!(selector.required_value("metadata.name"), Some("web"));
        let object = |field: &str| match field {
            "metadata.name" => Some("web".to_string()),
            "status.phase" => Some("Pending".to_string()),
            "spec.x" => Some("a,b".to_string()),
            _ => None,
        };
        assert!(selector.matches(object));
        assert!(!FieldSelector::parse("status.phase=Running").unwrap().matches(object));
        assert!(FieldSelector::parse("spec.missing=").unwrap().matches(object));
        assert!(FieldSelector::parse("metadata.name").is_err());
    }

    #[test]
    fn field_selectors_with_non_ascii_characters_parse() {
        // Found by fuzzing: scanning for the operator sliced the string inside a multi-byte character.
        assert!(FieldSelector::parse("ň").is_err());
        let selector = FieldSelector::parse("metadata.name=café,spec.ň!=\\ů\\=x").unwrap();
        assert_eq!(selector.required_value("metadata.name"), Some("café"));
        assert_eq!(selector.terms[1], FieldTerm { field: "spec.ň".into(), value: "ů=x".into(), negated: true });
    }
}
