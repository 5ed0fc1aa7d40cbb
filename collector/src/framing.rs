//! Framing: cutting a byte stream into records, before any format is known.
//!
//! Two framings, as Vector and rsyslog have them: newline-delimited (LF or CRLF) and RFC 6587
//! octet counting (`MSG-LEN SP SYSLOG-MSG`). Both are pure and incremental: give them the bytes
//! buffered so far and they say how many bytes the next record took, so the same code serves a
//! file, stdin and (later) a tokio TCP source.
//!
//! Nothing is lost: a record longer than `max_frame` is handed out in `max_frame`-sized pieces
//! marked [`FrameKind::Fragment`] (the last piece of the record is [`FrameKind::Final`]), never
//! cut off silently, and a partial record at end of stream is handed out when `at_eof` says so.

use memchr::memchr;

/// Default maximum record size: 64 KiB, the UDP datagram limit, which most senders respect.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// The largest `max_frame` a source may set, and the longest raw record one event may carry
/// (a longer one, from a source without frames, is kept in pieces: `parse::into_pieces`).
/// Records beyond it are kept in pieces anyway, and a bigger frame buffer per connection only
/// costs memory. Above all, one record's compact form must fit a batch the server accepts
/// (16 MiB compressed, `protocol::MAX_BODY_BYTES`; `record::MAX_RECORD_BYTES`, 12 MiB): a
/// 4 MiB frame makes ~8.4 MiB of record at most as key=value text (its text and each value
/// copied out of it), 5.4 MiB as base64 when it is not UTF-8. With 16 MiB frames, one
/// incompressible line would have had its batch refused (`tests/batch_budget.rs` sends the
/// largest frames).
pub const MAX_MAX_FRAME: usize = 4 << 20;

/// Whether a frame is a whole record or one piece of an oversized one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A whole record.
    Complete,
    /// A piece of a record longer than the maximum frame size; more pieces follow.
    Fragment,
    /// The last piece of a record that was handed out in fragments.
    Final,
}

/// One record (or piece of one) cut from the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The record's bytes, without delimiter or length prefix.
    pub bytes: &'a [u8],
    /// How many bytes of the buffer the frame used (delimiters and prefixes included); the
    /// caller drops these from the front before asking again.
    pub consumed: usize,
    /// Whole record or piece.
    pub kind: FrameKind,
    /// Bytes of the record that its octet count announced but that never came (the stream
    /// ended first); 0 for every complete record.
    pub missing: usize,
}

/// The framing a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// LF or CRLF after each record.
    Newline,
    /// RFC 6587 octet counting; a record that does not start with a digit falls back to newline
    /// framing, the way rsyslog reads mixed senders.
    OctetCounting,
}

/// An incremental framer for one stream.
#[derive(Debug, Clone)]
pub struct Framer {
    framing: Framing,
    max_frame: usize,
    /// Bytes of the current record still to come in octet-counting mode after an oversized
    /// length prefix, or `None` when the next byte starts a record.
    remaining_octets: Option<usize>,
    /// True while the framer is inside a record already handed out in fragments.
    in_fragmented_record: bool,
}

impl Framer {
    /// A framer with the given framing and maximum record size (at least 1 byte).
    pub fn new(framing: Framing, max_frame: usize) -> Self {
        Framer {
            framing,
            max_frame: max_frame.max(1),
            remaining_octets: None,
            in_fragmented_record: false,
        }
    }

    /// Cuts the next frame from the front of `buffer`. Returns `None` when more bytes are
    /// needed; with `at_eof`, a partial record at the end is returned as the last frame.
    pub fn next_frame<'a>(&mut self, buffer: &'a [u8], at_eof: bool) -> Option<Frame<'a>> {
        if buffer.is_empty() {
            return None;
        }
        if let Some(remaining) = self.remaining_octets {
            return self.continue_counted(buffer, remaining, at_eof);
        }
        match self.framing {
            Framing::OctetCounting if !self.in_fragmented_record => {
                match parse_octet_count(buffer) {
                    OctetCount::Length { length, prefix } => {
                        self.remaining_octets = Some(length);
                        let frame = self.continue_counted(&buffer[prefix..], length, at_eof);
                        frame
                            .map(|frame| Frame {
                                consumed: frame.consumed + prefix,
                                ..frame
                            })
                            .or_else(|| {
                                // Not enough bytes yet: forget the prefix, it is read again.
                                self.remaining_octets = None;
                                None
                            })
                    }
                    OctetCount::NeedMore if !at_eof => None,
                    OctetCount::NeedMore | OctetCount::NotCounted => {
                        self.next_newline_frame(buffer, at_eof)
                    }
                }
            }
            _ => self.next_newline_frame(buffer, at_eof),
        }
    }

    fn next_newline_frame<'a>(&mut self, buffer: &'a [u8], at_eof: bool) -> Option<Frame<'a>> {
        let search_window = &buffer[..buffer.len().min(self.max_frame + 2)];
        if let Some(position) = memchr(b'\n', search_window) {
            let mut record = &buffer[..position];
            if record.last() == Some(&b'\r') {
                record = &record[..record.len() - 1];
            }
            if record.len() <= self.max_frame {
                let kind = self.end_of_record_kind();
                return Some(Frame {
                    bytes: record,
                    consumed: position + 1,
                    kind,
                    missing: 0,
                });
            }
        }
        if buffer.len() > self.max_frame {
            self.in_fragmented_record = true;
            return Some(Frame {
                bytes: &buffer[..self.max_frame],
                consumed: self.max_frame,
                kind: FrameKind::Fragment,
                missing: 0,
            });
        }
        if at_eof {
            let kind = self.end_of_record_kind();
            return Some(Frame {
                bytes: buffer,
                consumed: buffer.len(),
                kind,
                missing: 0,
            });
        }
        None
    }

    fn continue_counted<'a>(
        &mut self,
        buffer: &'a [u8],
        remaining: usize,
        at_eof: bool,
    ) -> Option<Frame<'a>> {
        if remaining <= self.max_frame {
            if buffer.len() >= remaining || at_eof {
                let take = remaining.min(buffer.len());
                self.remaining_octets = None;
                let kind = self.end_of_record_kind();
                return Some(Frame {
                    bytes: &buffer[..take],
                    consumed: take,
                    kind,
                    missing: remaining - take,
                });
            }
            return None;
        }
        if buffer.len() >= self.max_frame || at_eof {
            let take = self.max_frame.min(buffer.len());
            let left = remaining - take;
            self.in_fragmented_record = true;
            if at_eof && take == buffer.len() {
                self.remaining_octets = None;
                let kind = self.end_of_record_kind();
                return Some(Frame {
                    bytes: &buffer[..take],
                    consumed: take,
                    kind,
                    missing: left,
                });
            }
            self.remaining_octets = Some(left);
            return Some(Frame {
                bytes: &buffer[..take],
                consumed: take,
                kind: FrameKind::Fragment,
                missing: 0,
            });
        }
        None
    }

    fn end_of_record_kind(&mut self) -> FrameKind {
        if std::mem::take(&mut self.in_fragmented_record) {
            FrameKind::Final
        } else {
            FrameKind::Complete
        }
    }
}

enum OctetCount {
    Length { length: usize, prefix: usize },
    NeedMore,
    NotCounted,
}

/// Reads `MSG-LEN SP` (RFC 6587 §3.4.1): a non-zero decimal without leading zero, at most 9
/// digits (a larger count is certainly not a length), then one space.
fn parse_octet_count(buffer: &[u8]) -> OctetCount {
    let digits = buffer
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    if digits == 0 || buffer[0] == b'0' || digits > 9 {
        return OctetCount::NotCounted;
    }
    match buffer.get(digits) {
        None => OctetCount::NeedMore,
        Some(b' ') => {
            let length = buffer[..digits].iter().fold(0usize, |total, digit| {
                total * 10 + usize::from(digit - b'0')
            });
            OctetCount::Length {
                length,
                prefix: digits + 1,
            }
        }
        Some(_) => OctetCount::NotCounted,
    }
}

/// Cuts a whole buffer into frames (convenience for tests, benches and small inputs).
pub fn split_all(
    framing: Framing,
    max_frame: usize,
    mut buffer: &[u8],
) -> Vec<(Vec<u8>, FrameKind)> {
    let mut framer = Framer::new(framing, max_frame);
    let mut frames = Vec::new();
    while let Some(frame) = framer.next_frame(buffer, true) {
        frames.push((frame.bytes.to_vec(), frame.kind));
        buffer = &buffer[frame.consumed..];
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(frames: &[(Vec<u8>, FrameKind)]) -> Vec<String> {
        frames
            .iter()
            .map(|(bytes, _)| String::from_utf8_lossy(bytes).into_owned())
            .collect()
    }

    #[test]
    fn newline_handles_lf_crlf_and_a_last_line_without_newline() {
        let frames = split_all(Framing::Newline, 100, b"a\nbb\r\n\nccc");
        assert_eq!(texts(&frames), ["a", "bb", "", "ccc"]);
    }

    #[test]
    fn newline_waits_for_more_bytes_until_eof() {
        let mut framer = Framer::new(Framing::Newline, 100);
        assert_eq!(framer.next_frame(b"partial", false), None);
        let frame = framer.next_frame(b"partial", true);
        assert_eq!(frame.map(|frame| frame.bytes), Some(&b"partial"[..]));
    }

    #[test]
    fn oversized_newline_record_is_fragmented_not_dropped() {
        let frames = split_all(Framing::Newline, 4, b"0123456789\nab\n");
        assert_eq!(texts(&frames), ["0123", "4567", "89", "ab"]);
        let kinds: Vec<_> = frames.iter().map(|(_, kind)| *kind).collect();
        assert_eq!(
            kinds,
            [
                FrameKind::Fragment,
                FrameKind::Fragment,
                FrameKind::Final,
                FrameKind::Complete
            ]
        );
    }

    #[test]
    fn octet_counting_reads_lengths_and_keeps_embedded_newlines() {
        let frames = split_all(Framing::OctetCounting, 100, b"5 ab\ncd3 xyz");
        assert_eq!(texts(&frames), ["ab\ncd", "xyz"]);
    }

    #[test]
    fn octet_counting_falls_back_to_newline_for_uncounted_records() {
        let frames = split_all(Framing::OctetCounting, 100, b"<13>hello\n3 abc<14>x\n");
        assert_eq!(texts(&frames), ["<13>hello", "abc", "<14>x"]);
    }

    #[test]
    fn octet_counting_waits_for_the_whole_record() {
        let mut framer = Framer::new(Framing::OctetCounting, 100);
        assert_eq!(framer.next_frame(b"10 abc", false), None);
        assert_eq!(framer.next_frame(b"1", false), None);
        let frame = framer.next_frame(b"10 abcdefghij", false);
        assert_eq!(
            frame.map(|frame| (frame.bytes, frame.consumed)),
            Some((&b"abcdefghij"[..], 13))
        );
    }

    #[test]
    fn a_counted_record_cut_by_the_end_of_the_stream_says_how_much_is_missing() {
        let mut framer = Framer::new(Framing::OctetCounting, 100);
        let frame = framer.next_frame(b"10 abcd", true);
        assert_eq!(
            frame.map(|frame| (frame.bytes, frame.kind, frame.missing)),
            Some((&b"abcd"[..], FrameKind::Complete, 6))
        );
        // Oversized and cut: the last piece says it.
        let mut framer = Framer::new(Framing::OctetCounting, 4);
        let first = framer
            .next_frame(b"10 012345", false)
            .map(|f| (f.kind, f.missing));
        assert_eq!(first, Some((FrameKind::Fragment, 0)));
        let last = framer
            .next_frame(b"45", true)
            .map(|f| (f.bytes, f.kind, f.missing));
        assert_eq!(last, Some((&b"45"[..], FrameKind::Final, 4)));
        // Whole records miss nothing.
        let mut framer = Framer::new(Framing::OctetCounting, 100);
        assert_eq!(
            framer.next_frame(b"3 abc", true).map(|f| f.missing),
            Some(0)
        );
    }

    #[test]
    fn octet_counting_fragments_oversized_records() {
        let frames = split_all(Framing::OctetCounting, 4, b"10 0123456789");
        assert_eq!(texts(&frames), ["0123", "4567", "89"]);
        assert_eq!(frames[2].1, FrameKind::Final);
    }
}
