//! `KeepAlive`: when the client must ping and when it gives up on the broker,
//! from the times packets were sent, with `now` passed in.
//!
//! The client must send some packet within each keep-alive period
//! [MQTT-3.1.2-20]; with nothing else to send it sends PINGREQ. If the PINGRESP
//! has not come within one more period, the connection is taken as dead: the
//! broker would have closed it after 1.5 periods of silence anyway.

use std::time::{Duration, Instant};

/// What [`KeepAlive::handle_timeout`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeepAliveAction {
    /// Nothing is due.
    Wait,
    /// Send PINGREQ now.
    Ping,
    /// The PINGRESP is overdue: close the connection.
    TimedOut,
}

/// The keep-alive clock of one connection.
#[derive(Debug, Clone)]
pub(crate) struct KeepAlive {
    interval: Option<Duration>,
    last_sent: Instant,
    ping_sent: Option<Instant>,
}

impl KeepAlive {
    /// A clock for `interval` (`None`: no keep alive) starting at `now`.
    pub(crate) fn new(interval: Option<Duration>, now: Instant) -> Self {
        KeepAlive {
            interval,
            last_sent: now,
            ping_sent: None,
        }
    }

    /// The interval in force.
    pub(crate) fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// A packet was sent at `now`.
    pub(crate) fn handle_sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// The PINGRESP arrived.
    pub(crate) fn handle_pingresp(&mut self) {
        self.ping_sent = None;
    }

    /// When [`Self::handle_timeout`] is next due, if ever.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let interval = self.interval?;
        Some(self.ping_sent.unwrap_or(self.last_sent) + interval)
    }

    /// What is due at `now`. A `Ping` counts as sent: the caller sends PINGREQ.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> KeepAliveAction {
        let Some(interval) = self.interval else {
            return KeepAliveAction::Wait;
        };
        match self.ping_sent {
            Some(sent) if now >= sent + interval => KeepAliveAction::TimedOut,
            Some(_) => KeepAliveAction::Wait,
            None if now >= self.last_sent + interval => {
                self.ping_sent = Some(now);
                self.last_sent = now;
                KeepAliveAction::Ping
            }
            None => KeepAliveAction::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn pings_after_an_idle_interval_and_times_out_one_later() {
        let start = Instant::now();
        let mut keep_alive = KeepAlive::new(Some(10 * SEC), start);
        assert_eq!(keep_alive.poll_timeout(), Some(start + 10 * SEC));
        assert_eq!(
            keep_alive.handle_timeout(start + 9 * SEC),
            KeepAliveAction::Wait
        );
        assert_eq!(
            keep_alive.handle_timeout(start + 10 * SEC),
            KeepAliveAction::Ping
        );
        assert_eq!(keep_alive.poll_timeout(), Some(start + 20 * SEC));
        assert_eq!(
            keep_alive.handle_timeout(start + 19 * SEC),
            KeepAliveAction::Wait
        );
        assert_eq!(
            keep_alive.handle_timeout(start + 20 * SEC),
            KeepAliveAction::TimedOut
        );
    }

    #[test]
    fn sending_defers_the_ping_and_pingresp_clears_it() {
        let start = Instant::now();
        let mut keep_alive = KeepAlive::new(Some(10 * SEC), start);
        keep_alive.handle_sent(start + 8 * SEC);
        assert_eq!(
            keep_alive.handle_timeout(start + 10 * SEC),
            KeepAliveAction::Wait
        );
        assert_eq!(keep_alive.poll_timeout(), Some(start + 18 * SEC));
        assert_eq!(
            keep_alive.handle_timeout(start + 18 * SEC),
            KeepAliveAction::Ping
        );
        keep_alive.handle_pingresp();
        assert_eq!(keep_alive.poll_timeout(), Some(start + 28 * SEC));
        assert_eq!(
            keep_alive.handle_timeout(start + 27 * SEC),
            KeepAliveAction::Wait
        );
    }

    #[test]
    fn a_ping_outstanding_is_not_cancelled_by_other_traffic() {
        let start = Instant::now();
        let mut keep_alive = KeepAlive::new(Some(10 * SEC), start);
        assert_eq!(
            keep_alive.handle_timeout(start + 10 * SEC),
            KeepAliveAction::Ping
        );
        keep_alive.handle_sent(start + 15 * SEC);
        assert_eq!(
            keep_alive.handle_timeout(start + 20 * SEC),
            KeepAliveAction::TimedOut
        );
    }

    #[test]
    fn zero_keep_alive_never_fires() {
        let start = Instant::now();
        let mut keep_alive = KeepAlive::new(None, start);
        assert_eq!(keep_alive.poll_timeout(), None);
        assert_eq!(
            keep_alive.handle_timeout(start + 1000 * SEC),
            KeepAliveAction::Wait
        );
    }
}
