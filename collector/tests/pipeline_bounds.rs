//! The pipeline's bounds: at most CHANNEL_BYTES of events queued and under write
//! together, whatever the batches look like, a batch larger than that still delivered, and no sender left waiting for room once
//! the writer is gone.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use citysoc_collector::metrics::{CollectorMetrics, SourceMetrics};
use citysoc_collector::pipeline::{
    start_writer, start_writer_bounded, PipelineClosed, PipelineSender, SendFailure,
    CHANNEL_BATCHES, CHANNEL_BYTES,
};
use citysoc_collector::Lines;
use support::GateSink;
use tokio::task::JoinHandle;

fn pipeline(sink: Arc<GateSink>) -> (PipelineSender, JoinHandle<()>) {
    let metrics = Arc::new(CollectorMetrics::new(
        vec![Arc::new(SourceMetrics::new("test", "tcp"))],
        "",
    ));
    start_writer(sink, metrics, Duration::from_secs(60))
}

const MIB: usize = 1 << 20;

/// A batch of one line of `len` times `byte`, less the batch's own bookkeeping: it claims at
/// most `len` bytes of the bound, so that four of a MiB fill 4 MiB.
fn one_line(byte: u8, len: usize) -> Lines {
    let mut lines = Lines::with_capacity(1, len - 64);
    lines.push(&vec![byte; len - 64]);
    assert!(lines.heap_bytes() <= len);
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bound_covers_the_batch_under_write_and_nothing_taken_is_lost() {
    let sink = Arc::new(GateSink::default());
    let (sender, writer) = pipeline(sink.clone());
    // The writer takes the first batch and blocks in the closed sink.
    sender.send(0, one_line(b'a', MIB)).await.unwrap();
    sink.wait_for_writes(1).await;
    // Far fewer batches than CHANNEL_BATCHES, but 1 MiB each: the byte bound decides.
    let wait = Duration::from_millis(50);
    let mut queued = 0;
    let refused = loop {
        match sender.send_within(0, one_line(b'b', MIB), wait).await {
            Ok(()) => queued += 1,
            Err(failure) => break failure,
        }
        assert!(queued <= CHANNEL_BATCHES, "the byte bound never applied");
    };
    // Opened before checking: a writer left blocked in the sink would hold the runtime (and
    // the test) after a failed assertion.
    sink.open();
    // The batch under write (1 MiB) still holds its room: queued and under write together
    // stay within the bound.
    assert_eq!(queued, CHANNEL_BYTES / MIB - 1);
    // The refused lines come back to the source (which counts them), nothing vanishes.
    assert_eq!(refused, SendFailure::Full(one_line(b'b', MIB)));
    drop(sender);
    writer.await.unwrap();
    assert_eq!(sink.line_count(), 1 + queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_bound_replaces_the_default() {
    let sink = Arc::new(GateSink::default());
    let metrics = Arc::new(CollectorMetrics::new(
        vec![Arc::new(SourceMetrics::new("test", "tcp"))],
        "",
    ));
    let (sender, writer) =
        start_writer_bounded(sink.clone(), metrics, Duration::from_secs(60), 2 * MIB);
    sender.send(0, one_line(b'a', MIB)).await.unwrap();
    sink.wait_for_writes(1).await;
    let mut queued = 0;
    while sender
        .send_within(0, one_line(b'b', MIB / 2), Duration::from_millis(50))
        .await
        .is_ok()
    {
        queued += 1;
        assert!(queued <= CHANNEL_BATCHES, "the byte bound never applied");
    }
    sink.open();
    assert_eq!(
        queued, 2,
        "2 MiB, 1 MiB of it under write, in half-MiB batches"
    );
    drop(sender);
    writer.await.unwrap();
    assert_eq!(sink.line_count(), 1 + queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_claims_the_memory_it_holds_not_only_its_lines() {
    let sink = Arc::new(GateSink::default());
    let (sender, writer) = pipeline(sink.clone());
    sender.send(0, one_line(b'a', MIB)).await.unwrap();
    sink.wait_for_writes(1).await;
    // Ten bytes of lines in a 2 MiB buffer: the buffer is what the collector holds.
    let roomy = || {
        let mut lines = Lines::with_capacity(1, 2 * MIB);
        lines.push(b"0123456789");
        lines
    };
    let first = sender
        .send_within(0, roomy(), Duration::from_millis(50))
        .await;
    let second = sender
        .send_within(0, roomy(), Duration::from_millis(50))
        .await;
    sink.open();
    assert!(
        first.is_ok(),
        "1 MiB under write and 2 MiB queued fit 4 MiB"
    );
    assert!(
        matches!(second, Err(SendFailure::Full(_))),
        "a second 2 MiB buffer would take the pipeline past its bound"
    );
    drop(sender);
    writer.await.unwrap();
    assert_eq!(sink.line_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_the_bound_still_goes_through() {
    let sink = Arc::new(GateSink::default());
    sink.open();
    let (sender, writer) = pipeline(sink.clone());
    let huge = one_line(b'c', CHANNEL_BYTES + MIB);
    sender.send(0, huge.clone()).await.unwrap();
    sender
        .send_within(0, huge, Duration::from_secs(10))
        .await
        .unwrap();
    let sender_for_thread = sender.clone();
    tokio::task::spawn_blocking(move || {
        sender_for_thread
            .blocking_send(0, one_line(b'd', CHANNEL_BYTES * 2))
            .unwrap();
        assert!(sender_for_thread
            .blocking_barrier(0, Lines::default())
            .unwrap());
    })
    .await
    .unwrap();
    drop(sender);
    writer.await.unwrap();
    assert_eq!(sink.line_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_waiting_for_room_are_released_when_the_writer_ends() {
    let sink = Arc::new(GateSink::default());
    let (sender, writer) = pipeline(sink.clone());
    // The writer blocks in the sink with one batch; the room fills behind it.
    sender.send(0, one_line(b'e', MIB)).await.unwrap();
    sink.wait_for_writes(1).await;
    let queued = sender
        .send_within(
            0,
            one_line(b'e', CHANNEL_BYTES - MIB),
            Duration::from_secs(5),
        )
        .await;
    writer.abort();
    let _ = writer.await;
    // The writer is gone: a send must fail, not wait forever for room.
    let sent =
        tokio::time::timeout(Duration::from_secs(10), sender.send(0, one_line(b'e', MIB))).await;
    // Opened before checking: the aborted writer's write, blocked in the sink, would hold the
    // runtime (and the test) after a failed check.
    sink.open();
    queued.unwrap();
    assert_eq!(
        sent.expect("a send waited for a writer that is gone"),
        Err(PipelineClosed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_comes_back_when_the_sink_has_written_not_when_the_writer_takes_a_batch() {
    let sink = Arc::new(GateSink::default());
    let (sender, writer) = pipeline(sink.clone());
    // The writer takes this batch out of the channel and blocks in the closed sink with it.
    sender.send(0, one_line(b'f', CHANNEL_BYTES)).await.unwrap();
    sink.wait_for_writes(1).await;
    // The channel is empty, but the batch under write holds all of the room.
    let refused = sender
        .send_within(0, one_line(b'g', 1024), Duration::from_millis(300))
        .await;
    // Once the sink has written it, the room is back.
    sink.open();
    assert_eq!(refused, Err(SendFailure::Full(one_line(b'g', 1024))));
    sender
        .send_within(0, one_line(b'g', 1024), Duration::from_secs(10))
        .await
        .unwrap();
    drop(sender);
    writer.await.unwrap();
    assert_eq!(sink.line_count(), 2);
}
