//! One syslog stream (a TCP or TLS connection): read, frame, decode, send; wait while the
//! pipeline is full, so a fast sender is slowed down by TCP itself instead of losing data.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{decode_frames, SourceRuntime, QUIET_CLOSE, QUIET_CLOSE_MID_RECORD};
use crate::framing::{Framer, Framing};
use crate::lines::Lines;
use crate::metrics::SourceErrorKind;

/// How much is read from a socket at a time (at most: a read is one batch in the pipeline).
const READ_CHUNK: usize = 64 * 1024;
/// At shutdown, what already arrived is still read, for at most this long in all and until
/// the socket has been quiet for [`DRAIN_QUIET`].
const DRAIN_LIMIT: Duration = Duration::from_secs(1);
const DRAIN_QUIET: Duration = Duration::from_millis(50);

/// Reads `reader` until the peer closes it or `shutdown` fires (then what already arrived is
/// still read, briefly). A record cut off by the close is still handed out: the sender
/// stopped there.
pub(crate) async fn read_stream<R: AsyncRead + Unpin>(
    mut reader: R,
    framing: Framing,
    address: String,
    source: &SourceRuntime,
    shutdown: &CancellationToken,
) {
    let mut framer = Framer::new(framing, source.config.max_frame);
    let mut decoder = source.decoder(Some(address.clone()));
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_CHUNK * 2);
    let mut events = Vec::new();
    let mut held = HeldShare {
        metrics: &source.metrics,
        bytes: 0,
    };
    let mut at_eof = false;
    let mut drain_until: Option<Instant> = None;
    while !at_eof {
        buffer.reserve(READ_CHUNK);
        let mut chunk = (&mut reader).take(READ_CHUNK as u64);
        let mut quiet = false;
        let quiet_after = if buffer.is_empty() {
            QUIET_CLOSE
        } else {
            QUIET_CLOSE_MID_RECORD
        };
        let read = match drain_until {
            // Biased, the read before the quiet timer: after the runtime was held up, both
            // may be ready, and a read that has bytes must win, or a document whose rest has
            // arrived would be given out split.
            None => tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    drain_until = Some(Instant::now() + DRAIN_LIMIT);
                    continue;
                }
                read = chunk.read_buf(&mut buffer) => Some(read),
                // Nothing more for a while and an open document held: give it out
                // (`QUIET_CLOSE`, longer with a record begun). Reads are cancel-safe: one cut
                // short read nothing.
                _ = tokio::time::sleep(quiet_after), if decoder.holds_records() => {
                    quiet = true;
                    None
                }
            },
            Some(limit) if Instant::now() < limit => {
                tokio::time::timeout(DRAIN_QUIET, chunk.read_buf(&mut buffer))
                    .await
                    .ok()
            }
            Some(_) => None,
        };
        match read {
            _ if quiet => {}
            None | Some(Ok(0)) => at_eof = true,
            Some(Ok(count)) => source.metrics.add_bytes_in(count as u64),
            Some(Err(error)) => {
                // A reset connection is the sender's business; what was read is kept.
                if error.kind() != std::io::ErrorKind::ConnectionReset {
                    source.metrics.add_error(SourceErrorKind::Read);
                    tracing::debug!(source = %source.config.name, peer = %address, %error, "read failed");
                }
                at_eof = true;
            }
        }
        // The read's events go into one batch, encoded a few at a time as they are decoded
        // (`ENCODE_EVERY`); the batch is made when the first ones are ready.
        let mut lines: Option<Lines> = None;
        if quiet {
            decoder.close_quiet(&mut events);
        } else {
            decoder.set_received_at(chrono::Utc::now());
            let (guess_lines, guess_bytes) = batch_size_guess(&buffer);
            let framed = decode_frames(
                &mut framer,
                &mut decoder,
                &buffer,
                at_eof,
                &mut events,
                &source.metrics,
                |decoder, events| {
                    let lines = lines.get_or_insert_with(|| {
                        source.pipeline.batch_buffer(guess_lines, guess_bytes)
                    });
                    source.encode_into(events, lines);
                    decoder.recycle(events);
                },
            );
            buffer.drain(..framed.consumed);
            if at_eof {
                decoder.finish(&mut events);
            }
        }
        held.set(decoder.held_bytes());
        if held.bytes > 0 && source.metrics.held_bytes() > MAX_HELD_BYTES_PER_SOURCE as u64 {
            decoder.release_held(&mut events);
            source.metrics.add_held_release();
            tracing::warn!(source = %source.config.name, peer = %address, "the source's connections hold more than {MAX_HELD_BYTES_PER_SOURCE} bytes of open documents: this one gave out what it held (events flagged held_released_early)");
            held.set(0);
        }
        if !events.is_empty() {
            match lines.as_mut() {
                Some(lines) => {
                    source.encode_into(&mut events, lines);
                    decoder.recycle(&mut events);
                }
                None => lines = Some(source.encode(&mut events)),
            }
        }
        if let Some(mut lines) = lines {
            lines.release_spare_room();
            if source.pipeline.send(source.index, lines).await.is_err() {
                return;
            }
        }
    }
}

/// Lines and bytes to make room for in the batch of a read of `buffer`, before its records
/// are decoded: about one record per newline (at least one per 256 bytes, for octet-counted
/// records without newlines) and `record_size_guess` for each. The batch is made before its
/// events exist, and growing it later would copy it whole; what is left over is given back
/// (`Lines::release_spare_room`).
fn batch_size_guess(buffer: &[u8]) -> (usize, usize) {
    let records = memchr::memchr_iter(b'\n', buffer)
        .count()
        .max(buffer.len() / 256)
        .max(1);
    let bytes = buffer
        .len()
        .saturating_mul(2)
        .saturating_add(records.saturating_mul(super::RECORD_FIXED_GUESS))
        .saturating_add(super::SERIALIZER_HEADROOM);
    (records, bytes)
}

/// The most bytes a source's connections may hold together in open multi-line documents
/// (JSON documents up to `json::MAX_DOCUMENT_BYTES` each, audit events up to
/// `auditd::MAX_OPEN_BYTES` each): without it, senders that leave documents open on many
/// connections could hold gigabytes. A connection that reads while the source is over it
/// gives out what it holds, so the source holds at most this plus one read's growth for each
/// connection reading at that moment. A connection that holds and goes quiet gives out what
/// it holds after [`QUIET_CLOSE`] ([`QUIET_CLOSE_MID_RECORD`] with a record begun), so quiet
/// holders cannot keep the source at the bound for long.
pub(crate) const MAX_HELD_BYTES_PER_SOURCE: usize = 32 << 20;

/// A connection's share of its source's held bytes, taken back when the connection ends.
struct HeldShare<'a> {
    metrics: &'a crate::metrics::SourceMetrics,
    bytes: usize,
}

impl HeldShare<'_> {
    fn set(&mut self, bytes: usize) {
        if bytes == self.bytes {
            return;
        }
        self.metrics.change_held(self.bytes, bytes);
        self.bytes = bytes;
    }
}

impl Drop for HeldShare<'_> {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::batch_size_guess;
    use crate::sources::{RECORD_FIXED_GUESS, SERIALIZER_HEADROOM};

    #[test]
    fn a_batch_is_sized_for_a_record_a_line() {
        let read = "<13>Jan  1 00:00:00 h app: x\n".repeat(100);
        let (lines, bytes) = batch_size_guess(read.as_bytes());
        assert_eq!(lines, 100);
        assert_eq!(
            bytes,
            2 * read.len() + 100 * RECORD_FIXED_GUESS + SERIALIZER_HEADROOM
        );
    }

    #[test]
    fn octet_counted_records_without_newlines_still_get_room() {
        let read = "300 ".to_owned() + &"x".repeat(300);
        let read = read.repeat(40);
        let (lines, _) = batch_size_guess(read.as_bytes());
        assert_eq!(lines, read.len() / 256);
        assert_eq!(batch_size_guess(b"").0, 1);
    }
}
