//! The rest of a body the HTTP intake refused before it had read it whole: `413` for a body
//! declared or grown past `max_body`, `503` when the room for bodies arriving at once is full,
//! `408` for one too slow to arrive.
//!
//! Dropped, the body would make hyper close the connection with the agent's bytes unread, and
//! the kernel answers unread bytes with a reset (RFC 9112 §9.6, "the TCP reset problem"). An
//! agent that writes its whole request before it reads the answer (Fluent Bit, NXLog's
//! `om_http`, Python's clients) then fails on its write and never sees the refusal or its
//! reason: it logs a connection reset and sends the same request again, forever for a `413`.
//! So the rest is read and thrown away while hyper writes the answer, for a bounded time and
//! amount, as nginx's lingering close does. A body read to its end leaves the connection open
//! for the agent's next request; past either bound it is dropped, and the connection closed,
//! by then long after the answer went out.
//!
//! Nothing is held: each piece is let go of as it is read, so a refused body charges neither
//! the room for arriving bodies nor the pipeline. The bytes are the agent's to send again:
//! the refusal is counted (`http_request` or `http_busy`), and what is thrown away here never
//! was an event.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use http_body_util::BodyExt;

/// How long the rest of a refused body is read for, from the refusal. An agent writing
/// `max_body` (10 MiB by default) at a few megabytes a second is done well within it.
pub(crate) const DISCARD_TIME: Duration = Duration::from_secs(5);

/// How much of a refused body is read at most: bodies past it (a declared gigabyte) are not
/// worth the reading, and their senders had the answer long before.
pub(crate) const DISCARD_BYTES: usize = 64 << 20;

/// Reads and throws away the rest of `body` in a task of its own (so the handler's answer goes
/// out meanwhile), within [`DISCARD_TIME`] and [`DISCARD_BYTES`].
///
/// `read_from` says whether any of it was read before the refusal. A body not read at all
/// whose sender asked `Expect: 100-continue` is not read: reading it would have hyper tell
/// the agent to send it after all, and the agent, which waits for that, has sent nothing.
pub(crate) fn discard_rest(body: Body, headers: &HeaderMap, read_from: bool) {
    if !read_from && expects_continue(headers) {
        return;
    }
    tokio::spawn(discard(body));
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("100-continue"))
}

/// The bytes of `body` read and thrown away until its end, an error, or a bound.
async fn discard(mut body: Body) -> usize {
    let reading = async {
        let mut read = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                read = read.saturating_add(data.len());
                if read > DISCARD_BYTES {
                    break;
                }
            }
        }
        read
    };
    tokio::time::timeout(DISCARD_TIME, reading)
        .await
        .unwrap_or(DISCARD_BYTES)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    use axum::body::Bytes;
    use axum::http::HeaderValue;
    use http_body_util::channel::Channel;

    /// A body whose pieces come from the returned sender, as a connection's do.
    fn channel_body() -> (http_body_util::channel::Sender<Bytes>, Body) {
        let (sender, channel) = Channel::<Bytes>::new(4);
        (sender, Body::new(channel))
    }

    #[tokio::test]
    async fn a_body_is_read_to_its_end() {
        let (mut sender, body) = channel_body();
        let discarding = tokio::spawn(discard(body));
        for piece in [&b"abc"[..], b"", b"defg"] {
            sender.send_data(Bytes::from_static(piece)).await.unwrap();
        }
        drop(sender);
        assert_eq!(discarding.await.unwrap(), 7);
    }

    #[tokio::test]
    async fn reading_stops_past_the_byte_bound() {
        static PIECE: [u8; 1 << 20] = [b'x'; 1 << 20];
        let (mut sender, body) = channel_body();
        let discarding = tokio::spawn(discard(body));
        // The reader stops after DISCARD_BYTES and one piece more, and drops the body: the
        // sender finds it gone.
        let mut sent = 0;
        while sender.send_data(Bytes::from_static(&PIECE)).await.is_ok() {
            sent += PIECE.len();
            assert!(sent <= 2 * DISCARD_BYTES, "still read after {sent} bytes");
        }
        assert_eq!(discarding.await.unwrap(), DISCARD_BYTES + PIECE.len());
    }

    #[tokio::test(start_paused = true)]
    async fn reading_stops_past_the_time_bound() {
        let (mut sender, body) = channel_body();
        sender.send_data(Bytes::from_static(b"abc")).await.unwrap();
        // Then nothing, and no end: only the time bound ends the reading.
        let started = tokio::time::Instant::now();
        assert_eq!(discard(body).await, DISCARD_BYTES);
        assert_eq!(started.elapsed(), DISCARD_TIME);
        drop(sender);
    }

    #[test]
    fn only_an_expect_100_continue_header_counts() {
        let mut headers = HeaderMap::new();
        assert!(!expects_continue(&headers));
        headers.insert(header::EXPECT, HeaderValue::from_static(" 100-Continue "));
        assert!(expects_continue(&headers));
        headers.insert(header::EXPECT, HeaderValue::from_static("something-else"));
        assert!(!expects_continue(&headers));
    }
}
