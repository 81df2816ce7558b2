//! Overlay root filesystems (node-recipes.md §2), and finding out from the kernel's mount table which layers are in
//! use, so that the answer survives a kubelet restart.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::store::remove_any;
use super::unpack::c_path;
use super::ImageError;

/// The kernel takes mount options up to one page.
const MAX_OPTIONS: usize = 4095;

pub(crate) fn mount_overlay(lower: &[PathBuf], empty: &Path, dir: &Path) -> Result<PathBuf, ImageError> {
    let (rootfs, upper, work) = (dir.join("rootfs"), dir.join("upper"), dir.join("work"));
    for d in [&rootfs, &upper, &work] {
        fs::create_dir_all(d).map_err(ImageError::io(format!("cannot create {}", d.display())))?;
    }
    let rootfs = rootfs.canonicalize().map_err(ImageError::io(format!("cannot resolve {}", rootfs.display())))?;
    if mount_points()?.contains(&rootfs) {
        return Ok(rootfs);
    }
    for layer in lower {
        if !layer.is_dir() {
            return Err(ImageError::Io {
                context: format!("cannot mount {}", rootfs.display()),
                source: io::Error::new(io::ErrorKind::NotFound, format!("layer {} is missing", layer.display())),
            });
        }
    }
    // overlayfs needs at least one lower directory; an image without layers gets an empty one.
    let lower: Vec<&Path> = if lower.is_empty() {
        fs::create_dir_all(empty).map_err(ImageError::io(format!("cannot create {}", empty.display())))?;
        vec![empty]
    } else {
        lower.iter().map(PathBuf::as_path).collect()
    };
    let lowerdir: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let options = format!("lowerdir={},upperdir={},workdir={}", lowerdir.join(":"), upper.display(), work.display());
    let fail =
        |source: io::Error| ImageError::Io { context: format!("cannot mount overlay at {}", rootfs.display()), source };
    if options.len() > MAX_OPTIONS {
        return Err(fail(io::Error::other(format!(
            "{} layers make the mount options longer than {MAX_OPTIONS} bytes; use a shorter image store path",
            lower.len()
        ))));
    }
    let source = CString::new("overlay").expect("static");
    let target = c_path(&rootfs).map_err(fail)?;
    let options_c = CString::new(options).map_err(|_| fail(io::Error::other("NUL in a layer path")))?;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), source.as_ptr(), 0, options_c.as_ptr().cast()) };
    if rc != 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    tracing::debug!(rootfs = %rootfs.display(), layers = lower.len(), "mounted overlay");
    Ok(rootfs)
}

pub(crate) fn unmount_overlay(dir: &Path) -> Result<(), ImageError> {
    let rootfs = dir.join("rootfs");
    let Ok(rootfs) = rootfs.canonicalize() else {
        return remove_any(dir).map_err(ImageError::io(format!("cannot remove {}", dir.display())));
    };
    if mount_points()?.contains(&rootfs) {
        let target = c_path(&rootfs).map_err(ImageError::io("bad rootfs path"))?;
        // SAFETY: target is a valid NUL-terminated path.
        if unsafe { libc::umount2(target.as_ptr(), 0) } != 0 {
            let busy = io::Error::last_os_error();
            if busy.raw_os_error() != Some(libc::EBUSY) {
                return Err(ImageError::io(format!("cannot unmount {}", rootfs.display()))(busy));
            }
            // Still used by a process: detach now, the kernel frees it when the last user goes.
            // SAFETY: as above.
            if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
                return Err(ImageError::io(format!("cannot unmount {}", rootfs.display()))(io::Error::last_os_error()));
            }
        }
    }
    remove_any(dir).map_err(ImageError::io(format!("cannot remove {}", dir.display())))
}

/// Refuses when a mounted overlay uses one of `layers` as a lower directory.
pub(crate) fn check_unused(layers: &[PathBuf]) -> Result<(), String> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("cannot read mountinfo: {e}"))?;
    for line in mounts.lines() {
        let Some((before, after)) = line.split_once(" - ") else { continue };
        let mut fields = after.split(' ');
        if fields.next() != Some("overlay") {
            continue;
        }
        let options = fields.nth(1).unwrap_or_default();
        let Some(lowerdir) = options.split(',').find_map(|o| o.strip_prefix("lowerdir=")) else { continue };
        let lowers: Vec<String> = lowerdir.split(':').map(unescape).collect();
        if let Some(layer) = layers.iter().find(|l| lowers.iter().any(|lower| Path::new(lower) == l.as_path())) {
            let mount_point = before.split(' ').nth(4).map(unescape).unwrap_or_default();
            return Err(format!("layer {} is mounted at {mount_point}", layer.display()));
        }
    }
    Ok(())
}

fn mount_points() -> Result<Vec<PathBuf>, ImageError> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").map_err(ImageError::io("cannot read mountinfo"))?;
    Ok(mounts.lines().filter_map(|line| line.split(' ').nth(4)).map(|p| PathBuf::from(unescape(p))).collect())
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
