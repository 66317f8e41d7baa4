//! Slowing down password guessing: failed logins of one user name from one
//! address make the next CONNACKs to that user at that address wait. Pure:
//! the time is passed in.
//!
//! Records are kept per address *and* user name, so that a misconfigured
//! device behind a carrier NAT slows only its own logins, not those of the
//! thousands of other devices sharing its address; a guesser trying one
//! user's passwords is slowed all the same.
//!
//! The policy (Mosquitto has none; `login_delay` and `login_delay_max` set it,
//! `login_delay 0` turns it off):
//! - the first failure is answered at once (a typo);
//! - the n-th failure in a row waits `first × 2^(n−2)`: 1 s, 2 s, 4 s, 8 s,
//!   then `max` (16 s) for every later one;
//! - a success from an address with failures behind it waits as long as the
//!   last failure did (so that a guesser cannot tell success by the answer
//!   coming sooner), then clears the record;
//! - a record is forgotten `forget` (15 min) after its last failure.
//!
//! The connection that waits holds only its own task (a timer), never another
//! client. IPv6 addresses count by their /64, the block one host is given, so
//! that a guesser cannot start afresh with each address of its own network.
//! At most [`MAX_ADDRESSES`] records are kept: past that, the oldest go first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most records (address and user name) remembered at once.
pub const MAX_ADDRESSES: usize = 65_536;

/// The delays of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginDelay {
    /// The wait after the second failure in a row; it doubles with each next
    /// one. Zero: no wait ever (the limiter is off).
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
    /// How long after its last failure an address starts afresh.
    pub forget: Duration,
}

impl Default for LoginDelay {
    fn default() -> Self {
        LoginDelay {
            first: Duration::from_secs(1),
            max: Duration::from_secs(16),
            forget: Duration::from_secs(15 * 60),
        }
    }
}

impl LoginDelay {
    /// The wait for the `failures`-th failure in a row.
    fn after(&self, failures: u32) -> Duration {
        if self.first.is_zero() {
            return Duration::ZERO;
        }
        match failures {
            0 | 1 => Duration::ZERO,
            n => {
                let doublings = (n - 2).min(31);
                self.first
                    .checked_mul(1 << doublings)
                    .map_or(self.max, |d| d.min(self.max))
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// Who a record is about: an address block and the user name given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    block: IpAddr,
    user: Option<String>,
}

impl Key {
    fn new(ip: IpAddr, user: Option<&str>) -> Key {
        Key {
            block: block(ip),
            user: user.map(str::to_owned),
        }
    }
}

/// Failure records per address and user name.
#[derive(Debug)]
pub struct Limiter {
    delay: LoginDelay,
    records: HashMap<Key, Record>,
}

impl Limiter {
    /// A limiter with no record.
    pub fn new(delay: LoginDelay) -> Limiter {
        Limiter {
            delay,
            records: HashMap::new(),
        }
    }

    /// A failed login of `user` from `ip` at `now`: how long to hold its
    /// CONNACK.
    pub fn fail(&mut self, ip: IpAddr, user: Option<&str>, now: Instant) -> Duration {
        if self.delay.first.is_zero() {
            return Duration::ZERO;
        }
        let key = Key::new(ip, user);
        let failures = match self.live(&key, now) {
            Some(record) => record.failures.saturating_add(1),
            None => 1,
        };
        if !self.records.contains_key(&key) && self.records.len() >= MAX_ADDRESSES {
            self.make_room(now);
        }
        self.records.insert(
            key,
            Record {
                failures,
                last: now,
            },
        );
        self.delay.after(failures)
    }

    /// A successful login of `user` from `ip` at `now`: how long to hold its
    /// CONNACK. The record is cleared.
    pub fn succeed(&mut self, ip: IpAddr, user: Option<&str>, now: Instant) -> Duration {
        if self.records.is_empty() {
            return Duration::ZERO;
        }
        let key = Key::new(ip, user);
        let wait = self
            .live(&key, now)
            .map_or(Duration::ZERO, |r| self.delay.after(r.failures));
        self.records.remove(&key);
        wait
    }

    /// Addresses with a record.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no address has a record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn live(&self, key: &Key, now: Instant) -> Option<Record> {
        self.records
            .get(key)
            .copied()
            .filter(|r| now.saturating_duration_since(r.last) < self.delay.forget)
    }

    /// Drops forgotten records; if none was, the oldest one.
    fn make_room(&mut self, now: Instant) {
        let forget = self.delay.forget;
        self.records
            .retain(|_, r| now.saturating_duration_since(r.last) < forget);
        if self.records.len() >= MAX_ADDRESSES {
            if let Some(oldest) = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.last)
                .map(|(key, _)| key.clone())
            {
                self.records.remove(&oldest);
            }
        }
    }
}

/// The address a record is kept under: an IPv4 address (or an IPv4-mapped IPv6
/// one) as is, an IPv6 address by its /64.
fn block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_wait_doubles_from_the_second_failure_up_to_the_cap() {
        let mut limiter = Limiter::new(LoginDelay::default());
        let start = Instant::now();
        let waits: Vec<u64> = (0..8)
            .map(|i| {
                limiter
                    .fail(ip("192.0.2.1"), None, start + SECOND * i)
                    .as_secs()
            })
            .collect();
        assert_eq!(waits, [0, 1, 2, 4, 8, 16, 16, 16]);
    }

    #[test]
    fn addresses_are_counted_apart() {
        let mut limiter = Limiter::new(LoginDelay::default());
        let now = Instant::now();
        limiter.fail(ip("192.0.2.1"), None, now);
        assert_eq!(limiter.fail(ip("192.0.2.1"), None, now), SECOND);
        assert_eq!(limiter.fail(ip("192.0.2.2"), None, now), Duration::ZERO);
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let mut limiter = Limiter::new(LoginDelay::default());
        let now = Instant::now();
        limiter.fail(ip("2001:db8:1:2::1"), None, now);
        assert_eq!(limiter.fail(ip("2001:db8:1:2:ffff::9"), None, now), SECOND);
        assert_eq!(
            limiter.fail(ip("2001:db8:1:3::1"), None, now),
            Duration::ZERO
        );
        limiter.fail(ip("::ffff:192.0.2.7"), None, now);
        assert_eq!(limiter.fail(ip("192.0.2.7"), None, now), SECOND);
    }

    #[test]
    fn success_waits_like_the_last_failure_then_clears() {
        let mut limiter = Limiter::new(LoginDelay::default());
        let now = Instant::now();
        assert_eq!(limiter.succeed(ip("192.0.2.1"), None, now), Duration::ZERO);
        limiter.fail(ip("192.0.2.1"), None, now);
        limiter.fail(ip("192.0.2.1"), None, now);
        limiter.fail(ip("192.0.2.1"), None, now);
        assert_eq!(limiter.succeed(ip("192.0.2.1"), None, now), 2 * SECOND);
        assert!(limiter.is_empty());
        assert_eq!(limiter.fail(ip("192.0.2.1"), None, now), Duration::ZERO);
    }

    #[test]
    fn records_are_forgotten_after_a_quiet_while() {
        let delay = LoginDelay::default();
        let mut limiter = Limiter::new(delay);
        let now = Instant::now();
        limiter.fail(ip("192.0.2.1"), None, now);
        limiter.fail(ip("192.0.2.1"), None, now);
        let later = now + delay.forget;
        assert_eq!(limiter.fail(ip("192.0.2.1"), None, later), Duration::ZERO);
        assert_eq!(
            limiter.succeed(ip("192.0.2.1"), None, later + delay.forget),
            Duration::ZERO
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let mut limiter = Limiter::new(LoginDelay::default());
        let now = Instant::now();
        for n in 0..MAX_ADDRESSES as u32 + 10 {
            limiter.fail(
                IpAddr::V4(n.into()),
                None,
                now + Duration::from_nanos(u64::from(n)),
            );
        }
        assert_eq!(limiter.len(), MAX_ADDRESSES);
        // The oldest went first; the newest are still counted.
        let newest = IpAddr::V4((MAX_ADDRESSES as u32 + 9).into());
        assert_eq!(limiter.fail(newest, None, now + SECOND), SECOND);
    }

    #[test]
    fn one_users_failures_do_not_slow_another_user_at_the_same_address() {
        let mut limiter = Limiter::new(LoginDelay::default());
        let now = Instant::now();
        let nat = ip("198.51.100.1");
        limiter.fail(nat, Some("broken-device"), now);
        assert_eq!(limiter.fail(nat, Some("broken-device"), now), SECOND);
        assert_eq!(limiter.fail(nat, Some("other-device"), now), Duration::ZERO);
        assert_eq!(
            limiter.succeed(nat, Some("third-device"), now),
            Duration::ZERO
        );
        assert_eq!(limiter.fail(nat, Some("broken-device"), now), 2 * SECOND);
    }

    #[test]
    fn a_first_delay_of_zero_turns_it_off() {
        let mut limiter = Limiter::new(LoginDelay {
            first: Duration::ZERO,
            ..LoginDelay::default()
        });
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(limiter.fail(ip("192.0.2.1"), None, now), Duration::ZERO);
        }
        assert!(limiter.is_empty());
    }
}
