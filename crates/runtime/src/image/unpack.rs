//! Layer unpacking (node-recipes.md §2): decompress, extract and check the diff_id in one pass, turn whiteouts into
//! what overlayfs reads, and publish the directory with one rename.

use std::ffi::CString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::store::{remove_any, Sha256Writer};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

#[derive(Debug)]
pub(crate) enum UnpackError {
    /// The uncompressed tar did not hash to the diff_id the image config names.
    DiffIdMismatch { actual: String },
    /// Not a readable tar (or compression), a path escaping the layer, or a failed write.
    Broken(String),
}

impl From<io::Error> for UnpackError {
    fn from(e: io::Error) -> Self {
        UnpackError::Broken(e.to_string())
    }
}

/// Unpacks the layer blob at `blob` (gzip, zstd or plain tar, told apart by magic) into `dest` (which must not
/// exist), going through `tmp` first. Returns the uncompressed size. If another unpack of the same layer wins the
/// race, its result is kept.
pub(crate) fn unpack_layer(blob: &Path, diff_id: &str, tmp: &Path, dest: &Path) -> Result<u64, UnpackError> {
    let mut input = BufReader::with_capacity(256 * 1024, fs::File::open(blob)?);
    let magic = input.fill_buf()?;
    let decompressed: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::Decoder::with_buffer(input)?)
    } else {
        Box::new(input)
    };
    let mut hashing = HashingReader { inner: decompressed, hash: Sha256Writer::new() };
    let _ = fs::remove_dir_all(tmp);
    fs::create_dir(tmp)?;
    let result = extract(&mut hashing, tmp).and_then(|()| {
        // The tar reader stops at the end-of-archive blocks; the diff_id covers the padding after them too.
        io::copy(&mut hashing, &mut io::sink())?;
        let (digest, size) = hashing.hash.finish();
        if digest != diff_id {
            return Err(UnpackError::DiffIdMismatch { actual: digest });
        }
        Ok(size)
    });
    let size = match result {
        Ok(size) => size,
        Err(e) => {
            let _ = fs::remove_dir_all(tmp);
            return Err(e);
        }
    };
    if let Err(e) = fs::rename(tmp, dest) {
        let _ = fs::remove_dir_all(tmp);
        // A concurrent unpack of the same diff_id got there first: identical content, keep theirs.
        if !dest.is_dir() {
            return Err(e.into());
        }
    }
    Ok(size)
}

fn extract(input: &mut dyn Read, root: &Path) -> Result<(), UnpackError> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let relative = relative_path(&path)?;
        // The layer root itself ("./") has no name: overlayfs shows the upper directory's attributes for it.
        let Some(file_name) = relative.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let parent_rel = relative.parent().unwrap_or(Path::new(""));
        if file_name == OPAQUE_MARKER {
            let dir = safe_dir(root, parent_rel)?;
            set_xattr(&dir, "trusted.overlay.opaque", b"y")?;
        } else if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            // `.wh..` would whiteout the parent of the directory, `.wh.` the directory itself.
            if matches!(hidden, "" | "." | "..") {
                return Err(UnpackError::Broken(format!("invalid whiteout {}", path.display())));
            }
            let dir = safe_dir(root, parent_rel)?;
            let target = dir.join(hidden);
            remove_any(&target)?;
            make_node(&target, libc::S_IFCHR, 0, 0)?;
        } else {
            match entry.header().entry_type() {
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                    // The tar crate writes these as regular files; containers need the real nodes.
                    let header = entry.header();
                    let kind = match header.entry_type() {
                        tar::EntryType::Char => libc::S_IFCHR,
                        tar::EntryType::Block => libc::S_IFBLK,
                        _ => libc::S_IFIFO,
                    };
                    let mode = header.mode()? & 0o7777;
                    let (major, minor) = (header.device_major()?.unwrap_or(0), header.device_minor()?.unwrap_or(0));
                    let (uid, gid) = (header.uid()?, header.gid()?);
                    let target = safe_dir(root, parent_rel)?.join(&file_name);
                    remove_any(&target)?;
                    make_node(&target, kind, major, minor)?;
                    chown_chmod(&target, uid, gid, mode)?;
                }
                _ => {
                    safe_dir(root, parent_rel)?;
                    entry.unpack_in(root)?;
                }
            }
        }
    }
    Ok(())
}

/// The entry's path inside the layer; `..` anywhere is refused rather than skipped, since it means a hostile layer.
fn relative_path(path: &Path) -> Result<PathBuf, UnpackError> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(UnpackError::Broken(format!("entry {} leaves the layer", path.display())));
            }
        }
    }
    Ok(relative)
}

/// Creates the directories of `relative` below `root`, refusing symlinks on the way so nothing lands outside.
fn safe_dir(root: &Path, relative: &Path) -> Result<PathBuf, UnpackError> {
    let mut dir = root.to_path_buf();
    for component in relative.components() {
        dir.push(component);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(UnpackError::Broken(format!(
                    "{} is not a directory (a symlink or file in the path of a later entry)",
                    dir.strip_prefix(root).unwrap_or(&dir).display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&dir)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(dir)
}

pub(crate) fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

fn make_node(path: &Path, kind: libc::mode_t, major: u32, minor: u32) -> io::Result<()> {
    let c = c_path(path)?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::mknod(c.as_ptr(), kind, libc::makedev(major, minor)) } != 0 {
        return Err(io::Error::other(format!("mknod {}: {}", path.display(), io::Error::last_os_error())));
    }
    Ok(())
}

fn chown_chmod(path: &Path, uid: u64, gid: u64, mode: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid as u32), Some(gid as u32))?;
    // mknod applied the umask; set the exact mode.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = c_path(path)?;
    let name = CString::new(name).expect("static xattr name");
    // SAFETY: valid NUL-terminated strings and a value slice with its length.
    let rc = unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc != 0 {
        return Err(io::Error::other(format!("setxattr {}: {}", path.display(), io::Error::last_os_error())));
    }
    Ok(())
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256Writer,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}
