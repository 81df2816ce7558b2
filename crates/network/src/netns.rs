//! Network namespace switching for the calling OS thread only: `setns(CLONE_NEWNET)` affects just the thread, so
//! callers run it on a dedicated thread (never on a shared async worker).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Moves the calling thread into the network namespace `ns` (an open namespace file).
pub(crate) fn set(ns: &File) -> io::Result<()> {
    // SAFETY: plain syscall on a valid, open file descriptor.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens a network namespace file (e.g. /var/run/netns/NAME).
pub(crate) fn open(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// The calling thread's current network namespace, to return to after a temporary switch.
pub(crate) fn current() -> io::Result<File> {
    File::open("/proc/thread-self/ns/net")
}

/// Runs `f` with the calling thread inside `target`, then switches back to where it was, even if `f` fails.
pub(crate) fn within<T>(target: &File, f: impl FnOnce() -> T) -> io::Result<T> {
    let home = current()?;
    set(target)?;
    let out = f();
    set(&home)?;
    Ok(out)
}
