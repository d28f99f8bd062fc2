//! SQLite's memory: its allocations go to the server's allocator, uncounted.
//!
//! The bundled SQLite allocates through glibc's malloc and, by default,
//! counts every allocation in statistics kept under a global mutex
//! (`SQLITE_CONFIG_MEMSTATUS`). scimd reads none of those statistics and
//! sets no heap limit, which is all they serve. In a profile of Bulk creates
//! glibc's malloc and free were ~8% of the server's samples and
//! `pthread_mutex_lock`/`unlock` ~5%, most of both on SQLite's writer
//! thread; the rest of the server already runs on mimalloc
//! ([`crate::allocator`]).
//!
//! `sqlite3_config` only works before SQLite initialises, which its first
//! connection does, so [`configure`] runs once, first thing in
//! [`super::Store::connect`]. If something in the process opened SQLite
//! before that, SQLite keeps its defaults, which are slower, not wrong.

use std::ffi::{c_int, c_void};
use std::sync::Once;

use libmimalloc_sys::{mi_free, mi_good_size, mi_malloc, mi_realloc, mi_usable_size};
use rusqlite::ffi;

static CONFIGURE: Once = Once::new();

/// Routes SQLite's allocations to mimalloc and turns its memory statistics
/// off, once per process; a no-op after the first call.
pub fn configure() {
    CONFIGURE.call_once(|| {
        if let Err(code) = route_to_mimalloc() {
            tracing::warn!(
                code,
                "SQLite was initialised before its allocator could be set; it keeps its own"
            );
        }
    });
}

#[expect(
    unsafe_code,
    reason = "sqlite3_config is variadic FFI; called before SQLite initialises, as it requires"
)]
fn route_to_mimalloc() -> Result<(), c_int> {
    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(sqlite_malloc),
        xFree: Some(sqlite_free),
        xRealloc: Some(sqlite_realloc),
        xSize: Some(sqlite_size),
        xRoundup: Some(sqlite_roundup),
        xInit: Some(sqlite_init),
        xShutdown: Some(sqlite_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLite copies the methods it is given; each takes an int, as
    // the C prototypes for these two options say. `Once` keeps this from
    // running twice at once; SQLite refuses both (SQLITE_MISUSE) once it is
    // initialised, and changes nothing then.
    let code = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods as *const ffi::sqlite3_mem_methods) };
    if code != ffi::SQLITE_OK {
        return Err(code);
    }
    // SAFETY: as above; the option takes one int.
    let code = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int) };
    if code != ffi::SQLITE_OK {
        return Err(code);
    }
    Ok(())
}

// SQLite calls these with positive sizes and non-null pointers (its
// `sqlite3_mem_methods` contract); mimalloc aligns to at least 8 bytes, as
// SQLite requires.

#[expect(unsafe_code, reason = "an allocator entry point for SQLite")]
unsafe extern "C" fn sqlite_malloc(size: c_int) -> *mut c_void {
    // SAFETY: mimalloc accepts any size and returns null when out of memory.
    unsafe { mi_malloc(usize::try_from(size).unwrap_or(0)) }
}

#[expect(unsafe_code, reason = "an allocator entry point for SQLite")]
unsafe extern "C" fn sqlite_free(block: *mut c_void) {
    // SAFETY: SQLite frees only what `sqlite_malloc`/`sqlite_realloc` gave it.
    unsafe { mi_free(block) }
}

#[expect(unsafe_code, reason = "an allocator entry point for SQLite")]
unsafe extern "C" fn sqlite_realloc(block: *mut c_void, size: c_int) -> *mut c_void {
    // SAFETY: `block` came from mimalloc, as above.
    unsafe { mi_realloc(block, usize::try_from(size).unwrap_or(0)) }
}

#[expect(unsafe_code, reason = "an allocator entry point for SQLite")]
unsafe extern "C" fn sqlite_size(block: *mut c_void) -> c_int {
    // SAFETY: `block` came from mimalloc, as above.
    let size = unsafe { mi_usable_size(block) };
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

#[expect(unsafe_code, reason = "an allocator entry point for SQLite")]
unsafe extern "C" fn sqlite_roundup(size: c_int) -> c_int {
    // SAFETY: a pure function of its argument.
    let rounded = unsafe { mi_good_size(usize::try_from(size).unwrap_or(0)) };
    c_int::try_from(rounded).unwrap_or(size)
}

#[expect(unsafe_code, reason = "an allocator entry point for SQLite")]
unsafe extern "C" fn sqlite_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

#[expect(unsafe_code, reason = "an allocator entry point for SQLite")]
unsafe extern "C" fn sqlite_shutdown(_: *mut c_void) {}
