//! One record on disk: `[len u32][xxh3 u64][offset u64][payload]`, little endian.
//!
//! The top bit of `len` says "more records of the same append follow": recovery uses it to drop
//! a group that a crash cut in half, so an append is all or nothing. The checksum covers the
//! length word, the offset and the payload, so a flipped bit anywhere in a frame is caught, and
//! a frame found by resynchronisation after damage is a real one (its offset must also fit).

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// Bytes before the payload.
pub(crate) const HEADER_BYTES: u64 = 20;
/// Largest payload a frame can describe (the length word keeps one bit for the group flag).
pub(crate) const MAX_PAYLOAD_BYTES: u64 = (1 << 31) - 1;
const CONTINUES: u32 = 1 << 31;

/// The fixed part of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// Payload bytes.
    pub payload_len: u32,
    /// More records of the same append follow this one.
    pub continues: bool,
    /// The record's offset.
    pub offset: u64,
    checksum: u64,
}

impl FrameHeader {
    /// Header and payload bytes.
    pub(crate) fn frame_bytes(&self) -> u64 {
        HEADER_BYTES + u64::from(self.payload_len)
    }
}

/// Frame bytes of a payload of `payload_len` bytes.
pub(crate) fn frame_bytes(payload_len: usize) -> u64 {
    HEADER_BYTES + payload_len as u64
}

fn length_word(payload_len: u32, continues: bool) -> u32 {
    if continues {
        payload_len | CONTINUES
    } else {
        payload_len
    }
}

fn checksum(length_word: u32, offset: u64, payload: &[u8]) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(&length_word.to_le_bytes());
    hasher.update(&offset.to_le_bytes());
    hasher.update(payload);
    hasher.digest()
}

/// Appends one frame to `out`. The caller has checked `payload.len() <= MAX_PAYLOAD_BYTES`.
pub(crate) fn encode(out: &mut Vec<u8>, offset: u64, payload: &[u8], continues: bool) {
    let payload_len = u32::try_from(payload.len()).unwrap_or(u32::MAX) & !CONTINUES;
    debug_assert_eq!(payload_len as usize, payload.len());
    let word = length_word(payload_len, continues).to_le_bytes();
    // The checksum covers `word ‖ offset ‖ payload`, which the frame does not hold in one
    // piece (the checksum sits between them). Written first as `[pad 4][word][offset]
    // [payload]`, they are contiguous from byte 8, and one-shot xxh3 over them (the same
    // digest as the streaming hasher `verify` uses, a test holds it, and about twice as fast
    // for a record's size) replaces the streaming hasher; then `[word][checksum]` go over
    // the first 12 bytes.
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&word);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(payload);
    let checksum = xxh3_64(&out[start + 8..]).to_le_bytes();
    out[start..start + 4].copy_from_slice(&word);
    out[start + 4..start + 12].copy_from_slice(&checksum);
}

/// Reads the fixed part of a frame from the first [`HEADER_BYTES`] of `bytes` (no check yet).
pub(crate) fn parse_header(bytes: &[u8]) -> Option<FrameHeader> {
    let word = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
    let checksum = u64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?);
    let offset = u64::from_le_bytes(bytes.get(12..20)?.try_into().ok()?);
    Some(FrameHeader {
        payload_len: word & !CONTINUES,
        continues: word & CONTINUES != 0,
        offset,
        checksum,
    })
}

/// Whether `payload` is the one `header` was written with.
pub(crate) fn verify(header: &FrameHeader, payload: &[u8]) -> bool {
    payload.len() == header.payload_len as usize
        && checksum(
            length_word(header.payload_len, header.continues),
            header.offset,
            payload,
        ) == header.checksum
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// `encode` hashes in one shot, `verify` (and every buffer written before) streams: the
    /// two must agree for every length, across xxh3's size classes (16, 128, 240 bytes, its
    /// 256-byte stream buffer, stripes of 1 KiB).
    #[test]
    fn one_shot_checksums_are_the_streaming_ones() {
        let payload: Vec<u8> = (0..5_000u32)
            .map(|index| (index * 31 % 251) as u8)
            .collect();
        for length in (0..=300).chain([511, 512, 513, 1023, 1024, 1025, 2048, 4_999]) {
            for continues in [false, true] {
                let mut bytes = vec![0xAA; 3];
                encode(&mut bytes, 7 + length as u64, &payload[..length], continues);
                let frame = &bytes[3..];
                let header = parse_header(frame).unwrap();
                assert_eq!(header.frame_bytes(), frame.len() as u64);
                assert_eq!(header.continues, continues);
                assert_eq!(header.offset, 7 + length as u64);
                assert!(verify(&header, &frame[HEADER_BYTES as usize..]), "{length}");
                assert_eq!(
                    header.checksum,
                    checksum(
                        length_word(length as u32, continues),
                        header.offset,
                        &payload[..length]
                    )
                );
            }
        }
    }

    #[test]
    fn frames_round_trip_and_any_flipped_bit_is_caught() {
        let mut bytes = Vec::new();
        encode(&mut bytes, 42, b"hello", true);
        assert_eq!(bytes.len() as u64, frame_bytes(5));
        let header = parse_header(&bytes).unwrap();
        assert_eq!(header.offset, 42);
        assert!(header.continues);
        assert_eq!(header.payload_len, 5);
        assert!(verify(&header, &bytes[HEADER_BYTES as usize..]));
        for index in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[index] ^= 1 << bit;
                let ok = parse_header(&damaged).is_some_and(|header| {
                    damaged.len() as u64 == header.frame_bytes()
                        && verify(&header, &damaged[HEADER_BYTES as usize..])
                });
                assert!(!ok, "flip at byte {index} bit {bit} went unnoticed");
            }
        }
    }
}
