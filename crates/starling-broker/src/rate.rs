//! The per-client inbound PUBLISH rate limit (`max_publish_rate`): a token
//! bucket, sans-IO (time is passed in).
//!
//! The bucket holds one second's worth of tokens, so a client may send a burst
//! of `rate` messages and then `rate` per second. Each PUBLISH takes a token;
//! what the connection does when none is left depends on the protocol
//! version (see [`crate::connection`]): an MQTT 5 client is told, with
//! DISCONNECT 0x96 Message rate too high; a 3.x client, which has no way to be
//! told, is slowed down: the broker stops reading from it until the bucket
//! has refilled, so TCP backpressure throttles it.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// A token bucket of `rate` tokens, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: f64,
    /// Tokens available; negative while a slowed-down client is in debt.
    tokens: f64,
    updated: Instant,
}

impl RateLimit {
    /// A full bucket at `now`.
    pub fn new(rate: NonZeroU32, now: Instant) -> RateLimit {
        let rate = f64::from(rate.get());
        RateLimit {
            rate,
            tokens: rate,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.updated = now;
    }

    /// Takes a token for one PUBLISH. `Ok` if there was one; else the token is
    /// borrowed and `Err` says how long until the debt is paid back: the time
    /// to wait before reading more from the client.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        let had = self.tokens >= 1.0;
        self.tokens -= 1.0;
        if had {
            Ok(())
        } else {
            Err(self.wait())
        }
    }

    /// How long until the bucket is out of debt (zero if it is not in debt).
    pub fn wait(&self) -> Duration {
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-self.tokens / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn a_burst_of_one_second_then_the_rate() {
        let start = Instant::now();
        let mut limit = RateLimit::new(rate(10), start);
        for _ in 0..10 {
            assert_eq!(limit.take(start), Ok(()));
        }
        // The 11th borrows a token: a tenth of a second to pay back.
        let wait = limit.take(start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // After the wait the debt is paid, and one more tenth gives a token.
        let later = start + wait;
        assert_eq!(limit.wait_at(later), Duration::ZERO);
        assert!(limit.take(later).is_err());
        assert_eq!(limit.take(later + Duration::from_millis(300)), Ok(()));
    }

    #[test]
    fn the_bucket_never_holds_more_than_one_second() {
        let start = Instant::now();
        let mut limit = RateLimit::new(rate(5), start);
        let much_later = start + Duration::from_secs(3600);
        for _ in 0..5 {
            assert_eq!(limit.take(much_later), Ok(()));
        }
        assert!(limit.take(much_later).is_err());
    }

    #[test]
    fn sustained_rate_is_honoured() {
        let start = Instant::now();
        let mut limit = RateLimit::new(rate(100), start);
        let mut now = start;
        let mut sent = 0u32;
        // A client that sends whenever it may, for ten seconds.
        while now < start + Duration::from_secs(10) {
            match limit.take(now) {
                Ok(()) => sent += 1,
                Err(wait) => {
                    sent += 1;
                    now += wait;
                }
            }
        }
        // 100 in the first burst, then 100 per second.
        assert!((1000..=1101).contains(&sent), "{sent}");
    }

    impl RateLimit {
        fn wait_at(&mut self, now: Instant) -> Duration {
            self.refill(now);
            self.wait()
        }
    }
}
