//! Exponential backoff with jitter between retries of a batch.

use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

/// Delays that double from `initial` up to `max`; each is drawn between half and all of the
/// current step ("equal jitter"), so collectors cut off together do not retry together.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
    random: SystemRandom,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            step: initial,
            random: SystemRandom::new(),
        }
    }

    /// The next delay.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.step.min(self.max);
        self.step = step.saturating_mul(2).min(self.max);
        let mut bytes = [0u8; 4];
        // Without randomness the delay is the full step: still correct, only less spread.
        let fraction = match self.random.fill(&mut bytes) {
            Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
            Err(_) => 1.0,
        };
        step / 2 + step.mul_f64(fraction / 2.0)
    }

    /// Back to the first step (after a success).
    pub(crate) fn reset(&mut self) {
        self.step = self.initial;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let steps = [100u64, 200, 400, 800, 1000, 1000];
        for step in steps {
            let delay = backoff.next_delay();
            assert!(
                delay >= Duration::from_millis(step / 2) && delay <= Duration::from_millis(step),
                "{delay:?} for a step of {step} ms"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
