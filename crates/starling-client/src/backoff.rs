//! `Backoff`: the delays between reconnection attempts, as a plain value the
//! connection task asks for the next delay; no clock, no sleeping.

use std::time::Duration;

use crate::options::ReconnectPolicy;

/// Exponential backoff: `min`, then twice as long after each failed attempt,
/// capped at `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// The backoff of `policy`, or `None` if it does not reconnect.
    pub(crate) fn new(policy: ReconnectPolicy) -> Option<Backoff> {
        match policy {
            ReconnectPolicy::Off => None,
            ReconnectPolicy::Backoff { min, max } => Some(Backoff {
                min,
                max: max.max(min),
                next: min,
            }),
        }
    }

    /// The delay before the next attempt; each call doubles the one after.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max).max(self.min);
        delay
    }

    /// A connection succeeded: the next loss waits `min` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_up_to_the_maximum_and_reset() {
        let mut backoff = Backoff::new(ReconnectPolicy::Backoff {
            min: 100 * MS,
            max: 500 * MS,
        })
        .unwrap();
        let delays: Vec<_> = (0..5).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays, [100 * MS, 200 * MS, 400 * MS, 500 * MS, 500 * MS]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), 100 * MS);
    }

    #[test]
    fn zero_minimum_retries_at_once_every_time() {
        let mut backoff = Backoff::new(ReconnectPolicy::Backoff {
            min: Duration::ZERO,
            max: Duration::ZERO,
        })
        .unwrap();
        assert_eq!(backoff.next_delay(), Duration::ZERO);
        assert_eq!(backoff.next_delay(), Duration::ZERO);
    }

    #[test]
    fn off_gives_no_backoff() {
        assert!(Backoff::new(ReconnectPolicy::Off).is_none());
    }
}
