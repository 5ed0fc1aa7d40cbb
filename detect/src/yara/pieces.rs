//! The scan buffer of a batch of events: the bytes of every target (cut at the scan limit),
//! each followed by a separator, in one buffer the scanner keeps from call to call, with where
//! each target came from.
//!
//! Targets are appended as they are read from an event, so the prefilter scans the buffer as it
//! is, and a target scanned alone is a slice of it: no allocation per target or per call once
//! the buffer has grown, and each target's bytes are copied once.

use super::decode::Decoding;

/// Targets are separated by a newline in the buffer: not a word character, so `fullword` and
/// `\b` behave at a target's edges as they do at the edges of the data.
pub(crate) const SEPARATOR: u8 = b'\n';

/// Where one target in the buffer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    /// The event's number in the slice given to `scan_events`.
    pub(crate) event: usize,
    /// Index of the target in the scanner's target list.
    pub(crate) target: usize,
    /// How the bytes were decoded from the event's text, if they were.
    pub(crate) decoding: Option<Decoding>,
    /// The target was longer than the scan limit; the buffer holds its first bytes.
    pub(crate) truncated: bool,
}

/// The targets of a batch, back to back.
#[derive(Debug, Default)]
pub(crate) struct Pieces {
    buffer: Vec<u8>,
    /// Offset of each target in `buffer`.
    starts: Vec<usize>,
    list: Vec<Piece>,
}

impl Pieces {
    /// Empties the batch, keeping the allocations.
    pub(crate) fn clear(&mut self) {
        self.buffer.clear();
        self.starts.clear();
        self.list.clear();
    }

    /// Appends `bytes` cut at `limit` as target `target` of event `event`; true when they
    /// were cut.
    pub(crate) fn push(
        &mut self,
        event: usize,
        target: usize,
        bytes: &[u8],
        decoding: Option<Decoding>,
        limit: usize,
    ) -> bool {
        let kept = bytes.get(..limit).unwrap_or(bytes);
        let truncated = kept.len() < bytes.len();
        self.starts.push(self.buffer.len());
        self.buffer.extend_from_slice(kept);
        self.buffer.push(SEPARATOR);
        self.list.push(Piece {
            event,
            target,
            decoding,
            truncated,
        });
        truncated
    }

    /// How many targets the batch holds.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Bytes in the buffer, separators included.
    pub(crate) fn buffer_len(&self) -> usize {
        self.buffer.len()
    }

    /// The whole buffer: every target followed by its separator.
    pub(crate) fn buffer(&self) -> &[u8] {
        &self.buffer
    }

    /// Offset of each target in the buffer, in order.
    pub(crate) fn starts(&self) -> &[usize] {
        &self.starts
    }

    /// Target `number`'s origin.
    pub(crate) fn get(&self, number: usize) -> Option<Piece> {
        self.list.get(number).copied()
    }

    /// Target `number`'s bytes as scanned (without its separator).
    pub(crate) fn bytes(&self, number: usize) -> &[u8] {
        let Some(&start) = self.starts.get(number) else {
            return &[];
        };
        let end = self
            .starts
            .get(number + 1)
            .copied()
            .unwrap_or(self.buffer.len())
            .saturating_sub(1);
        self.buffer.get(start..end).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_kept_back_to_back_cut_at_the_limit() {
        let mut pieces = Pieces::default();
        assert!(!pieces.push(0, 0, b"first", None, 100));
        assert!(!pieces.push(0, 2, b"", Some(Decoding::Percent), 100));
        assert!(pieces.push(3, 1, b"a longer target", Some(Decoding::Base64), 8));
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.buffer(), b"first\n\na longer\n");
        assert_eq!(pieces.starts(), [0, 6, 7]);
        assert_eq!(pieces.bytes(0), b"first");
        assert_eq!(pieces.bytes(1), b"");
        assert_eq!(pieces.bytes(2), b"a longer");
        assert_eq!(pieces.bytes(3), b"");
        assert_eq!(
            pieces.get(2),
            Some(Piece {
                event: 3,
                target: 1,
                decoding: Some(Decoding::Base64),
                truncated: true
            })
        );
        assert!(pieces.get(0).is_some_and(|piece| !piece.truncated));
        pieces.clear();
        assert_eq!(pieces.len(), 0);
        assert_eq!(pieces.buffer_len(), 0);
        assert!(!pieces.push(1, 0, b"again", None, 100));
        assert_eq!(pieces.bytes(0), b"again");
        assert_eq!(pieces.len(), 1);
    }
}
