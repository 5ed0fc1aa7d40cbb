//! The process's memory allocator: mimalloc, reached through its plain entry points for
//! ordinary alignments, and told to give freed memory back to the system within milliseconds
//! rather than a second.
//!
//! The `citysoc` binary installs [`Allocator`] as its global allocator and calls [`configure`]
//! first thing; every bench and the collector's `parse_cpu` install it too, so their figures
//! are the binary's. This crate holds the project's only `unsafe` code: a global allocator is an
//! `unsafe` trait, and mimalloc is C.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// The alignment every block of 16 bytes or more that `mi_malloc` returns has
/// (`MI_MAX_ALIGN_SIZE`, as glibc's `malloc` guarantees `max_align_t`); a smaller block is a
/// whole number of 8-byte words and aligned to 8. A test holds this build to it.
const PLAIN_ALIGNMENT: usize = 16;

/// mimalloc as the global allocator, through its plain `mi_malloc`/`mi_realloc`/`mi_zalloc`
/// whenever they give the alignment asked for (alignment at most 16 and at most the size, the
/// rule Rust's own `System` allocator follows over `malloc`), and through the `_aligned`
/// variants otherwise.
///
/// Why not the `mimalloc` crate's `MiMalloc`: it calls `mi_malloc_aligned` for every
/// allocation. For a block over 1 KiB that takes mimalloc's generic aligned path (~380
/// instructions) where `mi_malloc` takes its size-class queue: a netfilter line's ~2 KiB of
/// field entries paid it on every record. Parsing spends 1.8–3.7% fewer instructions per
/// record over all formats this way (BENCHMARKS.md, "Parsing").
pub struct Allocator;

/// Whether mimalloc's plain entry points give `layout`'s alignment for a block of `size`.
#[inline]
fn plain_alignment_suffices(alignment: usize, size: usize) -> bool {
    alignment <= PLAIN_ALIGNMENT && alignment <= size
}

// SAFETY: every method hands mimalloc's result back unchanged (null when it failed, as
// `GlobalAlloc` wants) and frees only blocks that mimalloc gave out, since every block this
// allocator gives out comes from mimalloc. The plain entry points are used only when their
// guaranteed alignment covers the layout's (`plain_alignment_suffices`); `mi_free` and
// `mi_realloc` take a block from either family, as mimalloc documents.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `mi_malloc`/`mi_malloc_aligned` take any size; the alignment is a power of
        // two (`Layout` guarantees it).
        unsafe {
            if plain_alignment_suffices(layout.align(), layout.size()) {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if plain_alignment_suffices(layout.align(), layout.size()) {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, pointer: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator gave out (`GlobalAlloc`'s contract),
        // so one of mimalloc's.
        unsafe { mi_free(pointer.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `pointer` is one of mimalloc's blocks (as in `dealloc`); the new block keeps
        // the layout's alignment: the plain call only when 16 bytes (or the new size's word
        // alignment) cover it.
        unsafe {
            if plain_alignment_suffices(layout.align(), new_size) {
                mi_realloc(pointer.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(pointer.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

/// How long mimalloc keeps freed pages before returning them to the system, in milliseconds.
///
/// mimalloc 3 waits 1,000 ms (version 2 waited 10). The collector frees a read's events and a
/// batch's buffers on other threads than the ones that allocated them, in bursts, and memory
/// freed in one burst was still held when the next one allocated fresh pages: at 1,000 ms its
/// peak resident memory in the peer bench moved between 30 and 52 MiB from run to run (the
/// issue's limit is 50 MB), 18 to 32 MiB of it the allocator's; 0 (purge at once) cost ~20% of
/// the throughput in system calls. 10 ms kept the peaks at 12–16 MiB of heap, but an agent's
/// HTTP requests come more than 10 ms apart, so each one built its events in pages given back
/// after the last and faulted in again (17% of the HTTP path's CPU). At 250 ms the HTTP intake
/// takes a third more events per CPU-second, and the TCP peer bench's peaks stay at
/// 32.7–37.5 MiB against 31.9–34.8 at 10 ms in the same runs, its throughput level
/// (BENCHMARKS.md, "Collector HTTP intake").
const PURGE_DELAY_MS: std::ffi::c_long = 250;

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
fn set_purge_delay_default(milliseconds: std::ffi::c_long) {
    // SAFETY: `mi_option_set_default` stores an integer in mimalloc's option table unless the
    // option was already set; it takes no pointer and is valid at any time. mimalloc documents
    // option setters as not thread-safe, which is why `configure` runs before any other thread
    // starts.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, milliseconds) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mimalloc's plain entry points give at least the alignment `plain_alignment_suffices`
    /// relies on, for every size class up to well past the small-block limit (1 KiB), fresh
    /// and grown.
    #[test]
    fn plain_blocks_have_the_alignment_relied_on() {
        let allocator = Allocator;
        for size in 1..=9_000usize {
            for alignment in [1usize, 2, 4, 8, 16] {
                let Ok(layout) = Layout::from_size_align(size, alignment) else {
                    continue;
                };
                if !plain_alignment_suffices(alignment, size) {
                    continue;
                }
                // SAFETY: a non-zero size; the block is freed below.
                let block = unsafe { allocator.alloc(layout) };
                assert!(!block.is_null());
                assert_eq!(
                    block as usize % alignment,
                    0,
                    "size {size}, alignment {alignment}"
                );
                // SAFETY: `block` came from this allocator with `layout`.
                let grown = unsafe { allocator.realloc(block, layout, size * 2 + 8) };
                assert!(!grown.is_null());
                assert_eq!(grown as usize % alignment, 0, "grown from {size}");
                // SAFETY: `grown` came from this allocator; `dealloc` ignores the layout's size.
                unsafe { allocator.dealloc(grown, layout) };
            }
        }
    }

    /// Alignments the plain entry points do not give go through the aligned ones, and a block
    /// from either family grows through the other.
    #[test]
    fn large_alignments_are_honoured() {
        let allocator = Allocator;
        // (4, 8): a block the aligned call gave (alignment above its size) that grows through the
        // plain `mi_realloc` (12 bytes, alignment 8).
        for (size, alignment) in [
            (4usize, 8usize),
            (8, 16),
            (24, 32),
            (100, 64),
            (5_000, 4_096),
        ] {
            let Ok(layout) = Layout::from_size_align(size, alignment) else {
                continue;
            };
            // SAFETY: a non-zero size; freed below.
            let block = unsafe { allocator.alloc_zeroed(layout) };
            assert!(!block.is_null());
            assert_eq!(block as usize % alignment, 0);
            // SAFETY: `block` holds `size` bytes, zeroed.
            let bytes = unsafe { std::slice::from_raw_parts(block, size) };
            assert!(bytes.iter().all(|byte| *byte == 0));
            // SAFETY: from this allocator with `layout`.
            let grown = unsafe { allocator.realloc(block, layout, size * 3) };
            assert_eq!(grown as usize % alignment, 0);
            // SAFETY: as above.
            unsafe { allocator.dealloc(grown, layout) };
        }
    }

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
