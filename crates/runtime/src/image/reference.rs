use std::fmt;

use super::ImageError;

pub(crate) const DOCKER_HUB: &str = "docker.io";
const NAME_MAX: usize = 255;

/// A normalised image reference, as Docker and containerd spell it in full:
/// `busybox` is `docker.io/library/busybox:latest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path within the registry (`library/busybox`).
    pub repository: String,
    /// `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Reference, ImageError> {
        let invalid = |reason: &str| ImageError::InvalidReference { reference: input.into(), reason: reason.into() };
        if input.is_empty() {
            return Err(invalid("empty reference"));
        }
        if input.chars().any(char::is_whitespace) {
            return Err(invalid("whitespace in reference"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((name, digest)) => {
                validate_digest(digest).map_err(|reason| invalid(&reason))?;
                (name, Some(digest.to_string()))
            }
            None => (input, None),
        };
        // A tag is a ':' after the last '/', so `host:5000/x` is a port and not a tag.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|reason| invalid(&reason))?;
        }
        if name.is_empty() {
            return Err(invalid("missing repository name"));
        }
        // The first component is a registry host if it looks like one, as Docker decides.
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains(['.', ':']) || first == "localhost" || first != first.to_lowercase() =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        validate_host(&registry).map_err(|reason| invalid(&reason))?;
        let registry = if registry == "index.docker.io" { DOCKER_HUB.to_string() } else { registry };
        let repository = if registry == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path };
        validate_path(&repository).map_err(|reason| invalid(&reason))?;
        if registry.len() + 1 + repository.len() > NAME_MAX {
            return Err(invalid(&format!("repository name longer than {NAME_MAX} characters")));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository@digest` for the given manifest digest.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Only sha256 digests are accepted: they name files in the store, so anything else is refused before use.
pub(crate) fn validate_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!("invalid digest \"{digest}\": missing algorithm"));
    };
    if algorithm != "sha256" {
        return Err(format!("unsupported digest algorithm \"{algorithm}\""));
    }
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("invalid digest \"{digest}\": expected 64 lowercase hex characters"));
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(format!("invalid tag \"{tag}\""))
    }
}

fn validate_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if let Some(port) = port {
        if port.parse::<u16>().is_err() {
            return Err(format!("invalid registry port in \"{host}\""));
        }
    }
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!("invalid registry host \"{host}\""))
    }
}

/// Path components are lowercase alphanumerics joined by `.`, `_`, `__` or runs of `-`.
fn validate_path(path: &str) -> Result<(), String> {
    if path != path.to_lowercase() {
        return Err("repository name must be lowercase".into());
    }
    for component in path.split('/') {
        let bytes = component.as_bytes();
        let mut valid = !bytes.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
        // Separators between alphanumerics: one '.', one or two '_', or any number of '-'.
        for run in component.split(|c: char| c.is_ascii_alphanumeric()).filter(|s| !s.is_empty()) {
            valid &= run == "." || run == "_" || run == "__" || run.bytes().all(|b| b == b'-');
        }
        if !valid {
            return Err(format!("invalid repository name component \"{component}\""));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_like_first_components() {
        let r = Reference::parse("localhost/x").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("localhost", "x"));
        let r = Reference::parse("index.docker.io/busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert!(Reference::parse("a__b/c").is_ok());
        assert!(Reference::parse("a___b").is_err());
        assert!(Reference::parse("host:x/y").is_err());
    }
}
