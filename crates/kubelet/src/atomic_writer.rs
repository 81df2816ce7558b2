//! Upstream's atomic writer for the volumes whose files the kubelet writes (configMap, secret, downwardAPI,
//! projected). Each write makes a new timestamped directory `..2006_01_02_15_04_05.<ns>` holding every file, then
//! swaps the `..data` symlink to it with one rename, so a container sees either the old files or the new ones,
//! never a mix. The names a container uses are symlinks through `..data` (`token -> ..data/token`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Error, ErrorKind};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// One file of a volume: its content and permission bits.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by relative path (`key`, `dir/key`).
pub type Payload = BTreeMap<String, File>;

/// Replaces the files of `dir` by `payload`, atomically.
pub fn write(dir: &Path, payload: &Payload) -> std::io::Result<()> {
    validate(payload)?;
    let old = std::fs::read_link(dir.join(DATA)).ok();
    let generation = generation_name(SystemTime::now());
    let generation_dir = dir.join(&generation);
    std::fs::create_dir(&generation_dir)?;
    if let Err(error) = write_generation(&generation_dir, payload) {
        let _ = std::fs::remove_dir_all(&generation_dir);
        return Err(error);
    }
    replace_with_symlink(dir, DATA, Path::new(&generation))?;
    let visible: BTreeSet<&str> = payload.keys().filter_map(|p| p.split('/').next()).collect();
    for name in &visible {
        if std::fs::read_link(dir.join(name)).ok().as_deref() != Some(&Path::new(DATA).join(name)) {
            replace_with_symlink(dir, name, &Path::new(DATA).join(name))?;
        }
    }
    if let Some(old) = old {
        let old_dir = dir.join(old);
        for entry in std::fs::read_dir(&old_dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if !visible.contains(name.to_string_lossy().as_ref()) {
                let _ = std::fs::remove_file(dir.join(&name));
            }
        }
        std::fs::remove_dir_all(old_dir)?;
    }
    Ok(())
}

fn write_generation(generation_dir: &Path, payload: &Payload) -> std::io::Result<()> {
    std::fs::set_permissions(generation_dir, std::fs::Permissions::from_mode(0o755))?;
    for (path, file) in payload {
        let target = generation_dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &file.data)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))?;
    }
    Ok(())
}

/// Paths are relative, without `..`, do not start with `..` (the writer's own names), and no file is also
/// the directory of another.
fn validate(payload: &Payload) -> std::io::Result<()> {
    let invalid =
        |path: &str, why: &str| Err(Error::new(ErrorKind::InvalidInput, format!("invalid path {path:?}: {why}")));
    for path in payload.keys() {
        if path.is_empty() || path.starts_with('/') {
            return invalid(path, "must be a non-empty relative path");
        }
        if path.split('/').any(|part| part == ".." || part.is_empty()) {
            return invalid(path, "must not contain '..' or empty elements");
        }
        if path.starts_with("..") {
            return invalid(path, "must not start with '..'");
        }
        let mut prefix = path.as_str();
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            if payload.contains_key(parent) {
                return invalid(path, &format!("{parent:?} is a file of the volume too"));
            }
            prefix = parent;
        }
    }
    Ok(())
}

/// `..2006_01_02_15_04_05.123456789`, as upstream names its generations (with nanoseconds instead of a random
/// suffix).
fn generation_name(at: SystemTime) -> String {
    let stamp = apimachinery::time::rfc3339(at);
    let nanos = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("..{}.{nanos:09}", stamp.trim_end_matches('Z').replace(['-', 'T', ':'], "_"))
}

/// `dir/name` becomes a symlink to `target`, in one rename (a directory left by an older layout goes first).
fn replace_with_symlink(dir: &Path, name: &str, target: &Path) -> std::io::Result<()> {
    let tmp = dir.join(DATA_TMP);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    symlink(target, &tmp)?;
    let path = dir.join(name);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(&path)?;
    }
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &str, mode: u32) -> File {
        File { data: data.as_bytes().to_vec(), mode }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn files_are_reached_through_the_data_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let payload = Payload::from([("token".into(), file("t1", 0o600)), ("sub/ca.crt".into(), file("ca", 0o644))]);
        write(dir.path(), &payload).unwrap();
        let generation = std::fs::read_link(dir.path().join("..data")).unwrap();
        assert!(generation.to_string_lossy().starts_with("..20"), "{generation:?}");
        assert!(generation.is_relative());
        assert_eq!(std::fs::read_link(dir.path().join("token")).unwrap(), Path::new("..data/token"));
        assert_eq!(std::fs::read_link(dir.path().join("sub")).unwrap(), Path::new("..data/sub"));
        assert_eq!(std::fs::read_to_string(dir.path().join("token")).unwrap(), "t1");
        assert_eq!(std::fs::read_to_string(dir.path().join("sub/ca.crt")).unwrap(), "ca");
        assert_eq!(mode(&dir.path().join("token")), 0o600);
        assert_eq!(mode(&dir.path().join("sub/ca.crt")), 0o644);
        assert_eq!(mode(&dir.path().join(&generation)), 0o755);
    }

    #[test]
    fn a_rewrite_swaps_generations_and_drops_what_went_away() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &Payload::from([("a".into(), file("1", 0o644)), ("b".into(), file("1", 0o644))])).unwrap();
        let first = std::fs::read_link(dir.path().join("..data")).unwrap();
        write(dir.path(), &Payload::from([("a".into(), file("2", 0o644))])).unwrap();
        let second = std::fs::read_link(dir.path().join("..data")).unwrap();
        assert_ne!(first, second);
        assert!(!dir.path().join(&first).exists(), "the old generation is removed");
        assert_eq!(std::fs::read_to_string(dir.path().join("a")).unwrap(), "2");
        assert!(std::fs::symlink_metadata(dir.path().join("b")).is_err(), "b is gone");
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        assert_eq!(names, [second.to_string_lossy().to_string(), "..data".into(), "a".into()]);
    }

    #[test]
    fn files_of_an_older_layout_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "plain").unwrap();
        std::fs::create_dir_all(dir.path().join("d/e")).unwrap();
        write(dir.path(), &Payload::from([("a".into(), file("new", 0o644)), ("d/f".into(), file("f", 0o644))]))
            .unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("a")).unwrap(), "new");
        assert_eq!(std::fs::read_link(dir.path().join("d")).unwrap(), Path::new("..data/d"));
    }

    #[test]
    fn bad_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "/abs", "../x", "a/../b", "..data", "..x/y", "a//b"] {
            let error = write(dir.path(), &Payload::from([(bad.into(), file("x", 0o644))])).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
        let nested = Payload::from([("a".into(), file("x", 0o644)), ("a/b".into(), file("y", 0o644))]);
        assert!(write(dir.path(), &nested).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing is written");
    }

    #[test]
    fn generation_names_follow_upstream() {
        let at = UNIX_EPOCH + std::time::Duration::new(86_400 + 3_661, 42);
        assert_eq!(generation_name(at), "..1970_01_02_01_01_01.000000042");
    }
}
