//! [`Lines`]: a batch of serialized events on its way from a source to the sink, stored back to
//! back in one allocation with where each one ends.
//!
//! A `Vec<u8>` per event cost an allocation and a copy (out of the serializer's scratch) on the
//! source's thread and a free on the sink's thread for every event, and rounded every event up
//! to an allocator size class; one buffer per batch costs one of each per batch, and events
//! are serialized straight into it.

use std::sync::Mutex;

/// Serialized events (one each, no newline inside), in order, in one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    bytes: Vec<u8>,
    /// Where each line ends in `bytes` (the next one starts there).
    ends: Vec<usize>,
}

impl Lines {
    /// No lines, with room for `lines` lines of `bytes` bytes in all.
    pub fn with_capacity(lines: usize, bytes: usize) -> Self {
        Lines {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(lines),
        }
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there is no line.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of all the lines together.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes the batch holds in memory: its buffers' capacity, which is more than
    /// [`Lines::byte_len`] (a source sizes the buffer for a read's events before encoding
    /// them, generously so that it seldom grows).
    pub fn heap_bytes(&self) -> usize {
        self.bytes
            .capacity()
            .saturating_add(self.ends.capacity() * std::mem::size_of::<usize>())
    }

    /// Gives back the buffers' spare room when it is more than the lines themselves (plus a
    /// page): a copy into smaller buffers, cheap for the small batches it applies to. The
    /// pipeline counts a batch's buffers against its bound, and a source sizes them before
    /// encoding with headroom that would make a one-line batch claim ~50 times its bytes.
    pub fn release_spare_room(&mut self) {
        if self.heap_bytes() > 2 * self.byte_len() + 4096 {
            self.bytes.shrink_to_fit();
            self.ends.shrink_to_fit();
        }
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Adds a copy of `line`.
    pub fn push(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.ends.push(self.bytes.len());
    }

    /// Adds the line `write` appends to the buffer it is given; when `write` fails, whatever it
    /// appended is taken back and no line is added.
    pub fn push_with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.bytes.len();
        match write(&mut self.bytes) {
            Ok(()) => {
                self.ends.push(self.bytes.len());
                Ok(())
            }
            Err(error) => {
                self.bytes.truncate(start);
                Err(error)
            }
        }
    }

    /// The line at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)?;
        let start = match index.checked_sub(1) {
            Some(previous) => *self.ends.get(previous)?,
            None => 0,
        };
        self.bytes.get(start..end)
    }

    /// The lines in order.
    pub fn iter(&self) -> LinesIter<'_> {
        LinesIter {
            lines: self,
            start: 0,
            index: 0,
        }
    }
}

impl<'a> IntoIterator for &'a Lines {
    type Item = &'a [u8];
    type IntoIter = LinesIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: AsRef<[u8]>> FromIterator<T> for Lines {
    fn from_iter<I: IntoIterator<Item = T>>(lines: I) -> Self {
        let mut collected = Lines::default();
        for line in lines {
            collected.push(line.as_ref());
        }
        collected
    }
}

/// Bytes of idle buffers a [`LinesPool`] keeps, at most.
pub const POOL_MAX_BYTES: usize = 2 << 20;

/// Buffers smaller than this are not kept: they come from mimalloc's own pages and cost
/// little to allocate, and a source never asks for one (its request includes 16 KiB of
/// headroom), so kept they would only fill the pool. It also caps the idle buffers at 32.
pub const POOL_MIN_BUFFER_BYTES: usize = 64 << 10;

/// Batch buffers the sink has written, kept for the next batches a source encodes.
///
/// Why: a source's batch buffer is ~200 KiB (a 64 KiB read's records, with headroom), past
/// mimalloc's medium sizes, so each one came from pages mimalloc had given back to the system
/// after the last batch was freed (its purge delay was 10 ms then, 250 ms now:
/// `citysoc-alloc`) and every page was faulted in and zeroed again while the records were
/// written into it: ~5% of the collector's time in a profile under load (BENCHMARKS.md,
/// Collector throughput). Reusing the written buffers keeps their pages. Idle buffers are bounded ([`POOL_MAX_BYTES`], at most
/// 32 of them), apart from the pipeline's own bound on batches queued and under write.
#[derive(Debug, Default)]
pub struct LinesPool {
    idle: Mutex<Vec<Lines>>,
}

impl LinesPool {
    /// A batch with room for `lines` lines of `bytes` bytes in all: an idle buffer when one is
    /// large enough and at most half as large again (a source's guess is above what its
    /// records take, and [`Lines::release_spare_room`] copies a batch out of a buffer more
    /// than about twice its size: a buffer much larger than the guess would be copied out of
    /// and lost to the pool); a new one otherwise.
    pub fn take(&self, lines: usize, bytes: usize) -> Lines {
        let largest = bytes.saturating_add(bytes / 2);
        let reused = self.idle.lock().ok().and_then(|mut idle| {
            let fits = idle
                .iter()
                .rposition(|spare| (bytes..=largest).contains(&spare.bytes.capacity()))?;
            Some(idle.swap_remove(fits))
        });
        match reused {
            Some(mut spare) => {
                spare.ends.reserve(lines);
                spare
            }
            None => Lines::with_capacity(lines, bytes),
        }
    }

    /// Keeps `lines`' buffers (emptied) for a later [`LinesPool::take`], unless they are
    /// smaller than [`POOL_MIN_BUFFER_BYTES`] or the pool already holds [`POOL_MAX_BYTES`].
    pub fn give_back(&self, mut lines: Lines) {
        if lines.bytes.capacity() < POOL_MIN_BUFFER_BYTES {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let held: usize = idle.iter().map(Lines::heap_bytes).sum();
        if held.saturating_add(lines.heap_bytes()) <= POOL_MAX_BYTES {
            lines.clear();
            idle.push(lines);
        }
    }

    /// Bytes the idle buffers hold.
    pub fn idle_bytes(&self) -> usize {
        self.idle
            .lock()
            .map_or(0, |idle| idle.iter().map(Lines::heap_bytes).sum())
    }
}

/// The lines of a [`Lines`], in order.
#[derive(Debug, Clone)]
pub struct LinesIter<'a> {
    lines: &'a Lines,
    /// Where the next line starts.
    start: usize,
    index: usize,
}

impl<'a> Iterator for LinesIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let end = *self.lines.ends.get(self.index)?;
        let line = self.lines.bytes.get(self.start..end)?;
        self.start = end;
        self.index += 1;
        Some(line)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.lines.ends.len().saturating_sub(self.index);
        (left, Some(left))
    }
}

impl ExactSizeIterator for LinesIter<'_> {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_small_batch_gives_back_its_headroom_and_a_full_one_keeps_its_buffer() {
        let mut small = Lines::with_capacity(16, 16 << 10);
        small.push(b"one short line");
        small.release_spare_room();
        assert_eq!(small.get(0), Some(&b"one short line"[..]));
        assert!(
            small.heap_bytes() <= 2 * small.byte_len() + 4096,
            "{}",
            small.heap_bytes()
        );
        let mut full = Lines::with_capacity(4, 1400);
        for _ in 0..4 {
            full.push(&[b'x'; 250]);
        }
        let before = full.heap_bytes();
        full.release_spare_room();
        assert_eq!(full.heap_bytes(), before);
        assert_eq!(full.len(), 4);
    }

    #[test]
    fn the_pool_hands_back_a_written_buffer_that_fits_emptied_and_keeps_within_its_bound() {
        let pool = LinesPool::default();
        let mut written = pool.take(4, 200 << 10);
        written.push(b"an event");
        let buffer = written.bytes.as_ptr();
        pool.give_back(written);
        assert_eq!(
            pool.idle_bytes(),
            (200 << 10) + 4 * std::mem::size_of::<usize>()
        );
        // Too small for it, and so much smaller that the batch would be copied out of it:
        // a new buffer, the idle one kept.
        let small = pool.take(1, 100);
        assert_ne!(small.bytes.as_ptr(), buffer);
        assert_ne!(pool.take(1, 120 << 10).bytes.as_ptr(), buffer);
        assert!(pool.idle_bytes() > 0);
        assert!(pool.take(1, 300 << 10).bytes.capacity() >= 300 << 10);
        // A small buffer (a quiet source's batch, trimmed) is not kept.
        pool.give_back(small);
        let reused = pool.take(400, 150 << 10);
        assert_eq!(reused.bytes.as_ptr(), buffer);
        assert!(reused.is_empty() && reused.byte_len() == 0);
        assert!(reused.ends.capacity() >= 400);
        assert_eq!(pool.idle_bytes(), 0);
        // Past the bound, buffers are freed, not kept.
        for _ in 0..(POOL_MAX_BYTES / (200 << 10)) + 3 {
            pool.give_back(Lines::with_capacity(0, 200 << 10));
        }
        assert!(pool.idle_bytes() <= POOL_MAX_BYTES);
        assert!(pool.idle_bytes() > POOL_MAX_BYTES - (200 << 10));
    }

    #[test]
    fn lines_come_back_as_pushed_including_empty_ones() {
        let texts: [&[u8]; 5] = [b"first", b"", b"third \xff", b"", b"last"];
        let mut lines = Lines::with_capacity(1, 1);
        for text in texts {
            lines.push(text);
        }
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines.byte_len(),
            texts.iter().map(|text| text.len()).sum::<usize>()
        );
        assert_eq!(lines.iter().collect::<Vec<_>>(), texts.to_vec());
        assert_eq!(lines.iter().len(), 5);
        for (index, text) in texts.iter().enumerate() {
            assert_eq!(lines.get(index), Some(*text));
        }
        assert_eq!(lines.get(5), None);
        assert_eq!(Lines::from_iter(texts), lines);
    }

    #[test]
    fn a_failed_write_leaves_no_line_and_no_bytes() {
        let mut lines = Lines::default();
        lines.push(b"kept");
        let failed: Result<(), &str> = lines.push_with(|buffer| {
            buffer.extend_from_slice(b"half written");
            Err("cannot serialize")
        });
        assert_eq!(failed, Err("cannot serialize"));
        lines
            .push_with(|buffer| {
                buffer.extend_from_slice(b"next");
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(
            lines.iter().collect::<Vec<_>>(),
            vec![&b"kept"[..], b"next"]
        );
        assert_eq!(lines.byte_len(), 8);
    }
}
