//! SQLite's memory from the process's Rust global allocator instead of the C library's `malloc`.
//!
//! With glibc, the SQLite writer thread allocates from an arena of its own that is trimmed whenever its top
//! chunk grows past the trim threshold: an `madvise` that shoots down the other cores' TLB entries, then page
//! faults to fill the same pages again, several times per commit (5% of the API server's CPU when creating pods).
//! Through the global allocator (jemalloc in the `k8rs` binary) those pages stay with the allocator.

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::ffi::{c_int, c_void};
use std::sync::Once;

use rusqlite::ffi;

/// Each block starts with its size, as SQLite asks blocks their size; 16 bytes keep the payload 16-aligned.
const HEADER: usize = 16;
const ALIGN: usize = 16;

fn layout(total: usize) -> Option<Layout> {
    Layout::from_size_align(total, ALIGN).ok()
}

unsafe extern "C" fn x_malloc(size: c_int) -> *mut c_void {
    let Some(layout) = usize::try_from(size).ok().and_then(|n| layout(n.checked_add(HEADER)?)) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size (HEADER at least).
    let base = unsafe { alloc(layout) };
    if base.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: the block holds HEADER bytes, 16-aligned, before the payload.
    unsafe {
        (base as *mut usize).write(layout.size());
        base.add(HEADER) as *mut c_void
    }
}

/// The block's start and its total size.
///
/// # Safety
/// `payload` must have come from `x_malloc` or `x_realloc` and not have been freed.
unsafe fn block(payload: *mut c_void) -> (*mut u8, usize) {
    // SAFETY: the caller's promise; the header precedes the payload.
    unsafe {
        let base = (payload as *mut u8).sub(HEADER);
        (base, (base as *const usize).read())
    }
}

unsafe extern "C" fn x_free(payload: *mut c_void) {
    if payload.is_null() {
        return;
    }
    // SAFETY: SQLite frees only what its xMalloc/xRealloc returned; the layout is the one it was allocated with.
    unsafe {
        let (base, total) = block(payload);
        dealloc(base, Layout::from_size_align_unchecked(total, ALIGN));
    }
}

unsafe extern "C" fn x_realloc(payload: *mut c_void, size: c_int) -> *mut c_void {
    if payload.is_null() {
        // SAFETY: same contract as xMalloc.
        return unsafe { x_malloc(size) };
    }
    let Some(new_total) =
        usize::try_from(size).ok().and_then(|n| n.checked_add(HEADER)).filter(|t| layout(*t).is_some())
    else {
        return std::ptr::null_mut();
    };
    // SAFETY: `payload` is a live block of ours (SQLite's contract), grown or shrunk to a valid non-zero layout.
    unsafe {
        let (base, total) = block(payload);
        let moved = realloc(base, Layout::from_size_align_unchecked(total, ALIGN), new_total);
        if moved.is_null() {
            return std::ptr::null_mut();
        }
        (moved as *mut usize).write(new_total);
        moved.add(HEADER) as *mut c_void
    }
}

unsafe extern "C" fn x_size(payload: *mut c_void) -> c_int {
    if payload.is_null() {
        return 0;
    }
    // SAFETY: SQLite asks only for blocks it holds.
    let (_, total) = unsafe { block(payload) };
    c_int::try_from(total - HEADER).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn x_roundup(size: c_int) -> c_int {
    size.checked_add(7).map_or(size, |n| n & !7)
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

/// The methods table; SQLite copies it and only reads it.
struct Methods(ffi::sqlite3_mem_methods);
// SAFETY: the table holds function pointers and a null pointer, never written after start.
unsafe impl Sync for Methods {}

static METHODS: Methods = Methods(ffi::sqlite3_mem_methods {
    xMalloc: Some(x_malloc),
    xFree: Some(x_free),
    xRealloc: Some(x_realloc),
    xSize: Some(x_size),
    xRoundup: Some(x_roundup),
    xInit: Some(x_init),
    xShutdown: Some(x_shutdown),
    pAppData: std::ptr::null_mut(),
});

/// Routes SQLite's allocations through the global allocator; must run before SQLite's first use in the process
/// (SQLite refuses the change afterwards, and then keeps `malloc`, which is only slower).
pub(crate) fn use_global_allocator() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: METHODS lives for the whole process and its functions keep SQLite's allocator contract.
        let rc =
            unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &METHODS.0 as *const ffi::sqlite3_mem_methods) };
        if rc != ffi::SQLITE_OK {
            tracing::debug!(rc, "SQLite was initialised before its allocator could be set; it keeps malloc");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_know_their_size_and_survive_realloc() {
        unsafe {
            let p = x_malloc(100);
            assert!(!p.is_null());
            assert_eq!(p as usize % ALIGN, 0);
            assert_eq!(x_size(p), 100);
            std::ptr::write_bytes(p as *mut u8, 7, 100);
            let q = x_realloc(p, 5000);
            assert_eq!(x_size(q), 5000);
            assert_eq!(std::slice::from_raw_parts(q as *const u8, 100), &[7u8; 100][..]);
            x_free(q);
            assert!(x_malloc(-1).is_null());
            x_free(std::ptr::null_mut());
            assert_eq!(x_roundup(13), 16);
        }
    }
}
