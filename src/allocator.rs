//! The server's allocator: mimalloc, set up to give freed memory back.
//!
//! mimalloc replaced glibc's malloc for speed (malloc/free was a fifth of
//! the CPU of a page of 100 users). With its defaults the server kept what
//! a burst had used: mimalloc returns freed memory to the OS only 1 s after
//! the free, and only when it next allocates, so an idle server held
//! argon2's 19 MiB block and a Bulk request's JSON for good; and it asks
//! for transparent huge pages, with which each touched 2 MiB of its arenas
//! is resident whole. Twelve Bulk requests of 1,000 users, four at a time:
//! peak RSS 117 → 56 MB, idle 46 → 18 MB, GET and page throughput
//! unchanged (returning memory at once, delay 0, cost a sixth of a page's
//! throughput).

use std::ffi::c_long;

use libmimalloc_sys::{mi_option_set, mi_option_t};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mimalloc.h`, which the Rust
/// bindings do not name; a test checks that it still is.
const PURGE_DELAY: mi_option_t = 15;
/// Milliseconds freed memory is kept before it goes back (mimalloc 2's default).
const PURGE_DELAY_MS: c_long = 10;

/// Applies the settings above; call first thing in `main`. mimalloc reads
/// its options when the process loads, before `main`: the purge delay is
/// read again at each purge, and huge pages are refused for the whole
/// process (mimalloc is also built not to ask for them, `no_thp`), which
/// covers systems that hand them out unasked (`enabled = always`).
#[expect(unsafe_code, reason = "two FFI calls that take no pointers")]
pub fn tune() {
    // SAFETY: sets an integer option; mimalloc reads options atomically.
    unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE sets a flag on this process and takes no
    // pointers. On failure (an old kernel) huge pages stay possible.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(unsafe_code, reason = "reads an integer option")]
    fn the_purge_delay_option_is_mimallocs_purge_delay() {
        // mimalloc 3 defaults the purge delay to 1,000 ms; no other option
        // of its table has that default. The environment could override it.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an integer option.
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 1000);
        }
        tune();
        // SAFETY: reads an integer option.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, PURGE_DELAY_MS);
    }
}
