//! Segment files: naming, reading frames with damage detection, and the recovery scan at open.
//!
//! A segment is named after the offset of its first record (`00000000000000000042.seg`) and
//! only ever grows at its end; it is deleted whole once every record in it is acknowledged or
//! dropped. Damage is handled in two ways:
//!
//! - a frame that fails its checksum with valid frames after it is *corruption* (bad sector,
//!   flipped bit, a page that never reached the disk): the reader jumps to the next valid frame
//!   (resynchronisation) and counts the records in between as skipped;
//! - a bad frame with nothing valid after it at the end of the newest segment is a *torn
//!   append* (kill -9 or power loss mid-write): the file is cut back to the last whole group.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::frame::{self, FrameHeader, HEADER_BYTES, MAX_PAYLOAD_BYTES};

/// File name suffix of segments.
pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
const NAME_DIGITS: usize = 20;
/// How much a reader fetches per system call.
const CHUNK_BYTES: usize = 256 << 10;

/// The file name of the segment whose first record is `first`.
pub(crate) fn segment_name(first: u64) -> String {
    format!("{first:0width$}{SEGMENT_SUFFIX}", width = NAME_DIGITS)
}

/// The first offset a segment file name stands for, if it is one of ours.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A damaged byte range of a segment and how many records it cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CorruptRange {
    /// First damaged byte.
    pub start: u64,
    /// The next valid frame (or the end of the file).
    pub end: u64,
}

/// What the buffer knows about one segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Offset in the file name: no record in the file is older.
    pub first: u64,
    /// One past the newest record in the file (`first` when empty).
    pub end: u64,
    /// Where it is.
    pub path: PathBuf,
    /// Bytes in the file.
    pub len: u64,
    /// Records not yet acknowledged or dropped.
    pub live_records: u64,
    /// Frame bytes of those records.
    pub live_bytes: u64,
    /// Damaged ranges found so far (readers jump over them).
    pub corrupt: Vec<CorruptRange>,
}

/// Reads a segment through a buffer of [`CHUNK_BYTES`], so walking frames costs few system
/// calls.
pub(crate) struct ChunkReader<'a> {
    file: &'a File,
    file_len: u64,
    buffer: Vec<u8>,
    buffer_start: u64,
}

impl<'a> ChunkReader<'a> {
    pub(crate) fn new(file: &'a File, file_len: u64) -> Self {
        Self {
            file,
            file_len,
            buffer: Vec::new(),
            buffer_start: 0,
        }
    }

    /// `len` bytes at `position`, or `None` when the file ends before.
    pub(crate) fn get(&mut self, position: u64, len: u64) -> io::Result<Option<&[u8]>> {
        let Some(end) = position.checked_add(len) else {
            return Ok(None);
        };
        if end > self.file_len {
            return Ok(None);
        }
        let buffer_end = self.buffer_start + self.buffer.len() as u64;
        if position < self.buffer_start || end > buffer_end {
            let want = len.max(CHUNK_BYTES as u64).min(self.file_len - position);
            self.buffer
                .resize(usize::try_from(want).unwrap_or(usize::MAX), 0);
            self.file.read_exact_at(&mut self.buffer, position)?;
            self.buffer_start = position;
        }
        let from = usize::try_from(position - self.buffer_start).unwrap_or(usize::MAX);
        let to = usize::try_from(end - self.buffer_start).unwrap_or(usize::MAX);
        Ok(self.buffer.get(from..to))
    }

    /// The valid frame at `position`, if there is one.
    pub(crate) fn frame_at(&mut self, position: u64) -> io::Result<Option<FrameHeader>> {
        let Some(header) = self
            .get(position, HEADER_BYTES)?
            .and_then(frame::parse_header)
        else {
            return Ok(None);
        };
        if u64::from(header.payload_len) > MAX_PAYLOAD_BYTES {
            return Ok(None);
        }
        let payload = self.get(position + HEADER_BYTES, u64::from(header.payload_len))?;
        Ok(payload
            .filter(|payload| frame::verify(&header, payload))
            .map(|_| header))
    }

    /// The payload of a frame already checked by [`ChunkReader::frame_at`].
    pub(crate) fn payload(&mut self, position: u64, header: &FrameHeader) -> io::Result<Vec<u8>> {
        Ok(self
            .get(position + HEADER_BYTES, u64::from(header.payload_len))?
            .map(<[u8]>::to_vec)
            .unwrap_or_default())
    }

    /// The next valid frame after damage at `from`, whose offset is at least `expected`: tries
    /// every byte position, cheaply rejecting those whose offset field cannot be right.
    pub(crate) fn resync(
        &mut self,
        from: u64,
        expected: u64,
    ) -> io::Result<Option<(u64, FrameHeader)>> {
        // Every lost record took at least a header, which bounds how far offsets can jump.
        let plausible_end = expected.saturating_add((self.file_len - from) / HEADER_BYTES + 1);
        let mut position = from + 1;
        while position + HEADER_BYTES <= self.file_len {
            let candidate = self
                .get(position, HEADER_BYTES)?
                .and_then(frame::parse_header);
            if let Some(header) = candidate {
                if header.offset >= expected
                    && header.offset < plausible_end
                    && position + header.frame_bytes() <= self.file_len
                    && self.frame_at(position)?.is_some()
                {
                    return Ok(Some((position, header)));
                }
            }
            position += 1;
        }
        Ok(None)
    }
}

/// What the recovery scan found in one segment.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// The segment, with live counts relative to the acknowledged offset.
    pub segment: Segment,
    /// Records lost to damage inside this segment.
    pub corrupt_records: u64,
    /// Bytes cut off a torn tail.
    pub truncated_bytes: u64,
    /// Position of the first live record (the file length when none).
    pub head_position: u64,
}

/// Unacknowledged offsets in `from..to`: the records damage cost (acknowledged ones were
/// already delivered, so losing their bytes costs nothing).
pub(crate) fn lost(from: u64, to: u64, first_unacked: u64) -> u64 {
    to.saturating_sub(from.max(first_unacked))
}

/// Scans a segment at open: checks every frame, records damaged ranges, and on the newest
/// segment (`is_last`) cuts a torn tail back to the end of the last whole append.
/// `expected` is the offset the first record should have; `first_unacked` splits live records
/// from acknowledged ones.
pub(crate) fn scan(
    path: &Path,
    first: u64,
    expected: u64,
    first_unacked: u64,
    is_last: bool,
) -> io::Result<ScanOutcome> {
    let file = File::options().read(true).write(is_last).open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = ChunkReader::new(&file, file_len);

    let mut segment = Segment {
        first,
        end: first,
        path: path.to_path_buf(),
        len: file_len,
        live_records: 0,
        live_bytes: 0,
        corrupt: Vec::new(),
    };
    let mut corrupt_records = 0;
    let mut head_position = None;
    let mut expected = expected;
    // State at the start of the current append group, to cut back to on a torn tail.
    let mut group_start = (0u64, 0u64, 0u64, expected, None);
    let mut in_group = false;
    let mut position = 0;

    while position < file_len {
        let header = match reader.frame_at(position)? {
            Some(header) if header.offset >= expected => header,
            _ => match reader.resync(position, expected)? {
                Some((next, header)) => {
                    segment.corrupt.push(CorruptRange {
                        start: position,
                        end: next,
                    });
                    corrupt_records += lost(expected, header.offset, first_unacked);
                    expected = header.offset;
                    position = next;
                    in_group = false;
                    header
                }
                None if is_last => break,
                None => {
                    segment.corrupt.push(CorruptRange {
                        start: position,
                        end: file_len,
                    });
                    // The caller counts what the next segment's name shows was lost here.
                    position = file_len;
                    break;
                }
            },
        };
        if !in_group {
            group_start = (
                position,
                segment.live_records,
                segment.live_bytes,
                expected,
                head_position,
            );
        }
        corrupt_records += lost(expected, header.offset, first_unacked);
        if header.offset >= first_unacked {
            segment.live_records += 1;
            segment.live_bytes += header.frame_bytes();
            head_position.get_or_insert(position);
        }
        expected = header.offset + 1;
        segment.end = expected;
        in_group = header.continues;
        position += header.frame_bytes();
    }

    let mut truncated_bytes = 0;
    if is_last {
        let mut keep = position.min(file_len);
        if in_group {
            // A crash cut this append short: none of it was acknowledged to the writer.
            let (start, records, bytes, group_expected, head) = group_start;
            keep = start;
            segment.live_records = records;
            segment.live_bytes = bytes;
            segment.end = group_expected.max(first);
            head_position = head;
            segment.corrupt.retain(|range| range.end <= keep);
        }
        if keep < file_len {
            truncated_bytes = file_len - keep;
            file.set_len(keep)?;
            file.sync_all()?;
            segment.len = keep;
        }
    }
    let head_position = head_position.unwrap_or(segment.len);
    Ok(ScanOutcome {
        segment,
        corrupt_records,
        truncated_bytes,
        head_position,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        for name in [
            "42.seg",
            "0000000000000000004x.seg",
            "00000000000000000042.tmp",
            "",
        ] {
            assert_eq!(parse_segment_name(name), None, "{name}");
        }
    }
}
