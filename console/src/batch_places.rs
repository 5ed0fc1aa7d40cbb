//! The server's bound on batches being decoded, checked and stored at once, whoever sends them.
//!
//! Why: each batch is held to its own allowance (at most 128 MiB decompressed, 4,000,000
//! values and 256 MiB of field paths decoded: `citysoc_collector::record` budget). The densest
//! batches a collector can send took up to ~280 MiB of resident memory each while handled, and
//! one crafted up to the server's value cap ~380 MiB (measured by `tests/batch_memory.rs`,
//! BENCHMARKS.md "Server"). The places for signed requests
//! (`signed::MAX_SIGNED_REQUESTS`, 32) bound the bodies held, not the batches decoded: before
//! this bound, 32 collectors' worst batches at once could ask for 32 times that, more than a
//! server has. Handling a batch is CPU work (decoding, detection, indexing, the commit), so
//! more batches at once than cores gains nothing; the default is the machine's cores, at most
//! [`DEFAULT_MAX_PLACES`]. A batch that finds no place within its wait is refused as `busy`
//! (503): the collector keeps it in its disk buffer and sends it again after a pause.
//!
//! A batch waiting for a place keeps its signed-request place and its collector's lock: that
//! collector's heartbeat waits for the lock. Heartbeats and key rotations take places of their
//! own (`signed::MAX_CONTROL_REQUESTS`), so batches waiting here never leave the other
//! collectors' health reports without one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most batches handled at once by default (fewer on a machine with fewer cores).
pub const DEFAULT_MAX_PLACES: usize = 4;

/// How long a batch waits for a place by default before it is refused as `busy`: well inside
/// a collector's request timeout (30 s by default), so that the collector gets the answer.
pub const DEFAULT_PLACE_WAIT: Duration = Duration::from_secs(10);

/// The machine's cores, from 1 to [`DEFAULT_MAX_PLACES`].
pub fn default_max_places() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, DEFAULT_MAX_PLACES)
}

/// The places for batches (see the module docs).
#[derive(Debug)]
pub(crate) struct BatchPlaces {
    places: Arc<Semaphore>,
    total: usize,
    wait: Duration,
    /// Batches that found every place taken and waited for one (whether they got it or not).
    waited: AtomicU64,
}

impl BatchPlaces {
    /// `total` places (at least one); a batch waits up to `wait` for one.
    pub fn new(total: usize, wait: Duration) -> Self {
        let total = total.max(1);
        BatchPlaces {
            places: Arc::new(Semaphore::new(total)),
            total,
            wait,
            waited: AtomicU64::new(0),
        }
    }

    /// A place, held until the permit is dropped; `None` when none came free within the wait.
    pub async fn take(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.places.clone().try_acquire_owned() {
            return Some(permit);
        }
        self.waited.fetch_add(1, Ordering::Relaxed);
        tokio::time::timeout(self.wait, self.places.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Places taken now.
    pub fn in_use(&self) -> usize {
        self.total.saturating_sub(self.places.available_permits())
    }

    /// All the places.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Batches that had to wait for a place so far.
    pub fn waited(&self) -> u64 {
        self.waited.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_waits_for_a_place_and_is_refused_when_none_comes_free() {
        let places = BatchPlaces::new(2, Duration::from_millis(50));
        let _first = places.take().await.unwrap();
        let _second = places.take().await.unwrap();
        assert_eq!((places.in_use(), places.waited()), (2, 0));
        // Every place taken for longer than the wait: refused.
        assert!(places.take().await.is_none());
        assert_eq!(places.waited(), 1);
    }

    #[tokio::test]
    async fn a_place_given_back_during_the_wait_goes_to_the_batch_waiting() {
        // A wait far longer than the moment the place is held (no race with the timer).
        let places = Arc::new(BatchPlaces::new(1, Duration::from_secs(60)));
        let held = places.take().await.unwrap();
        let waiting = tokio::spawn({
            let places = places.clone();
            async move {
                let place = places.take().await;
                (place.is_some(), places.in_use())
            }
        });
        while places.waited() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(held);
        assert_eq!(waiting.await.unwrap(), (true, 1));
        assert_eq!(places.in_use(), 0);
    }

    #[test]
    fn there_is_always_a_place_and_the_default_follows_the_cores() {
        assert_eq!(BatchPlaces::new(0, DEFAULT_PLACE_WAIT).total(), 1);
        assert!((1..=DEFAULT_MAX_PLACES).contains(&default_max_places()));
    }
}
