//! Pod sandboxes: network, IPC and UTS namespaces that outlive any process, kept alive by bind mounts of the
//! namespace files under the sandbox's directory, plus the pod cgroup.

use std::ffi::CString;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use tracing::{debug, warn};

use super::cgroup::Hierarchies;
use super::{records, IoContext, RuntimeError, Sandbox, SandboxSpec};

/// The sandbox's record in its directory; present once the sandbox is complete.
pub(super) const RECORD: &str = "sandbox.json";
const NAMESPACES: [&str; 3] = ["net", "ipc", "uts"];

pub(super) fn cgroup_rel(cgroup_root: &str, parent: &str) -> String {
    format!("{}/{}", cgroup_root, parent.trim_matches('/')).trim_start_matches('/').to_string()
}

/// Must run on a thread of its own that ends afterwards: it moves that thread into the new namespaces.
pub(super) fn create(
    sandboxes_dir: &Path,
    hierarchies: &Hierarchies,
    cgroup_root: &str,
    spec: &SandboxSpec,
) -> Result<Sandbox, RuntimeError> {
    let dir = sandboxes_dir.join(&spec.id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::AlreadyExists { kind: "sandbox", id: spec.id.clone() })
        }
        Err(e) => return Err(RuntimeError::io(format!("create {}", dir.display()), e)),
    }
    let rel = cgroup_rel(cgroup_root, &spec.cgroup_parent);
    let result = make(&dir, hierarchies, &rel, spec);
    if result.is_err() {
        if let Err(e) = destroy(&dir, hierarchies, Some(&rel)) {
            warn!(sandbox = %spec.id, error = %e, "cleanup after failed create");
        }
    }
    result
}

fn make(dir: &Path, hierarchies: &Hierarchies, rel: &str, spec: &SandboxSpec) -> Result<Sandbox, RuntimeError> {
    let mut flags = libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if !spec.host_network {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: unshare affects only the calling thread for these namespace kinds.
    check(unsafe { libc::unshare(flags) }).ctx(|| "unshare pod namespaces".into())?;
    let hostname = CString::new(spec.hostname.as_str())
        .map_err(|_| RuntimeError::InvalidArgument(format!("hostname {:?}", spec.hostname)))?;
    // SAFETY: pointer and length of a live C string.
    check(unsafe { libc::sethostname(hostname.as_ptr(), spec.hostname.len()) })
        .ctx(|| format!("set hostname {:?}", spec.hostname))?;
    if !spec.host_network {
        // Containers expect a working loopback (localhost between the pod's containers) whatever the CNI does.
        loopback_up().ctx(|| "bring up lo in the pod netns".into())?;
    }
    let kinds: &[&str] = if spec.host_network { &NAMESPACES[1..] } else { &NAMESPACES };
    for kind in kinds {
        bind_namespace(kind, &dir.join(kind))?;
    }
    hierarchies.create_pod(rel, spec)?;
    let sandbox = Sandbox {
        id: spec.id.clone(),
        netns: (!spec.host_network).then(|| dir.join("net")),
        ipc_ns: dir.join("ipc"),
        uts_ns: dir.join("uts"),
        cgroup_parent: spec.cgroup_parent.clone(),
        labels: spec.labels.clone(),
        created_at: SystemTime::now(),
    };
    records::write_atomic(&dir.join(RECORD), &sandbox)?;
    Ok(sandbox)
}

fn bind_namespace(kind: &str, target: &Path) -> Result<(), RuntimeError> {
    std::fs::File::create(target).ctx(|| format!("create {}", target.display()))?;
    let source = CString::new(format!("/proc/thread-self/ns/{kind}")).expect("no NUL");
    let target_c = CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| RuntimeError::InvalidArgument(format!("state path {}", target.display())))?;
    // SAFETY: valid C strings; a bind mount changes nothing else.
    let rc =
        unsafe { libc::mount(source.as_ptr(), target_c.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) };
    check(rc).ctx(|| format!("bind {kind} namespace to {}", target.display()))
}

fn loopback_up() -> io::Result<()> {
    // SAFETY: a socket we own and close; ifreq is plain data.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = check(libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req));
        if result.is_ok() {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            result = check(libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req));
        }
        libc::close(fd);
        result
    }
}

/// Unmounts and deletes the namespace files, removes the pod cgroup everywhere, then the directory. Idempotent.
pub(super) fn remove(
    sandboxes_dir: &Path,
    hierarchies: &Hierarchies,
    cgroup_root: &str,
    id: &str,
) -> Result<(), RuntimeError> {
    let dir = sandboxes_dir.join(id);
    if !dir.exists() {
        return Ok(());
    }
    let record: Option<Sandbox> = records::read_optional(&dir.join(RECORD))?;
    let rel = record.map(|r| cgroup_rel(cgroup_root, &r.cgroup_parent));
    destroy(&dir, hierarchies, rel.as_deref())?;
    debug!(sandbox = %id, "sandbox removed");
    Ok(())
}

fn destroy(dir: &Path, hierarchies: &Hierarchies, cgroup: Option<&str>) -> Result<(), RuntimeError> {
    for kind in NAMESPACES {
        unmount_file(&dir.join(kind))?;
    }
    if let Some(rel) = cgroup {
        hierarchies.remove(rel)?;
    }
    // The record goes last, so that a failed removal can be retried.
    std::fs::remove_dir_all(dir).ctx(|| format!("remove {}", dir.display()))
}

fn unmount_file(path: &Path) -> Result<(), RuntimeError> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| RuntimeError::InvalidArgument(format!("state path {}", path.display())))?;
    loop {
        // SAFETY: valid C string.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) } == 0 {
            continue; // a file can carry stacked mounts
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // EINVAL: not (any longer) a mount point.
            Some(libc::EINVAL) | Some(libc::ENOENT) => break,
            _ => return Err(RuntimeError::io(format!("unmount {}", path.display()), err)),
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(RuntimeError::io(format!("remove {}", path.display()), e)),
        _ => Ok(()),
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
