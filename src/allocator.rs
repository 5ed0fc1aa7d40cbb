//! The process's memory allocator: mimalloc, told to give freed memory back to the system
//! within milliseconds rather than a second.

/// mimalloc instead of the system allocator: parsing allocates a few small strings per event,
/// and glibc's malloc/free showed as a fifth of the syslog hot path in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long mimalloc keeps freed pages before returning them to the system, in milliseconds.
///
/// mimalloc 3 waits 1,000 ms (version 2 waited 10). The collector frees a read's events and a
/// batch's buffers on other threads than the ones that allocated them, in bursts, and memory
/// freed in one burst was still held when the next one allocated fresh pages: its peak resident
/// memory in the peer bench moved between 30 and 52 MiB from run to run (the limit is
/// 50 MB), 18 to 32 MiB of it the allocator's. With 10 ms the peaks stay at 12–16 MiB of heap
/// and the throughput is level (BENCHMARKS.md, "Collector throughput"); 0 (purge at once) cost
/// ~20% of the throughput in system calls.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// `mi_option_purge_delay`'s number in mimalloc 3.3's `mi_option_t`. libmimalloc-sys names no
/// constant for it; the number was read from that version's `mimalloc.h` (the dependency is
/// pinned, and a test checks the version and the option count).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the allocator's options. Call first thing in `main`, before any thread exists.
pub fn configure() {
    set_purge_delay_default(PURGE_DELAY_MS);
}

/// Sets the purge delay unless the environment did (`MIMALLOC_PURGE_DELAY`, in any spelling
/// mimalloc accepts): an operator's value wins.
#[allow(unsafe_code)]
fn set_purge_delay_default(milliseconds: std::ffi::c_long) {
    // SAFETY: `mi_option_set_default` stores an integer in mimalloc's option table unless the
    // option was already set; it takes no pointer and is valid at any time. mimalloc documents
    // option setters as not thread-safe, which is why `configure` runs before any other thread
    // starts.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, milliseconds) }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    /// `MI_OPTION_PURGE_DELAY` is a number read from one mimalloc version's header: a new
    /// mimalloc must be checked again before this passes.
    #[test]
    fn the_option_number_was_read_from_this_mimalloc() {
        // SAFETY: returns a constant.
        let version = unsafe { libmimalloc_sys::mi_version() };
        assert_eq!(
            version, 30302,
            "check MI_OPTION_PURGE_DELAY in the new mimalloc.h"
        );
        assert_eq!(libmimalloc_sys::_mi_option_last, 47);
    }

    #[test]
    fn the_purge_delay_is_what_we_set() {
        if ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"]
            .iter()
            .any(|name| std::env::var_os(name).is_some())
        {
            // The operator's value wins (what `mi_option_set_default` is for): nothing of ours
            // to check in this environment.
            return;
        }
        // SAFETY: reads an integer from mimalloc's option table.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            before, 1000,
            "mimalloc 3's own default, read through our option number"
        );
        set_purge_delay_default(PURGE_DELAY_MS);
        // SAFETY: as above.
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, PURGE_DELAY_MS);
    }
}
