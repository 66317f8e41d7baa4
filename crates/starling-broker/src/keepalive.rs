//! Keep alive for every connection at once [MQTT-3.1.2-24]: a coarse timer
//! wheel and one sweeper task, not a timer in each connection (a tokio
//! `Sleep` is 112 bytes of every idle connection's task, issue 17).
//!
//! A connection with a keep alive is watched from its CONNACK to its end.
//! Each read records when it happened, in ticks of [`TICK`], in its session
//! ([`SessionHandle::touch`]: one relaxed store, no lock). The wheel keeps
//! each watched connection under the tick at which it is due at the
//! earliest. The sweeper sleeps until the first due tick, then moves each
//! connection due on to the tick its last read makes it due at or, once one
//! and a half keep alives have passed since that read, marks its session
//! ([`SessionHandle::time_out`]) and wakes its connection, which ends with
//! Keep Alive timeout. So a connection is closed at most two ticks late,
//! never early, and a busy one costs the sweeper one look per keep alive
//! period, not one per packet.
//!
//! A connection that ends takes itself out ([`KeepAlives::unwatch`]): its
//! entry would otherwise keep its session's memory until it came due.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::broker::SessionHandle;

/// Ticks per second.
const TICKS_PER_SECOND: u32 = 10;

/// The wheel's resolution.
pub const TICK: Duration = Duration::from_millis(1000 / TICKS_PER_SECOND as u64);

/// The keep alive of every connection of a broker.
#[derive(Debug)]
pub struct KeepAlives {
    /// Tick 0.
    epoch: Instant,
    wheel: Mutex<Wheel>,
    /// Wakes the sweeper for a connection due before the tick it sleeps to.
    sooner: Notify,
}

#[derive(Debug, Default)]
struct Wheel {
    /// The watched connections by the tick at which they are due at the
    /// earliest (a read since may have moved their deadline on).
    due: BTreeMap<u32, Vec<Watched>>,
    /// The tick the sweeper sleeps until; `None`: no sweeper runs (none is
    /// needed while nothing is watched).
    sweeper: Option<u32>,
}

#[derive(Debug)]
struct Watched {
    session: Arc<SessionHandle>,
    /// Its connection.
    generation: u64,
    /// One and a half keep alives, in ticks, rounded up.
    limit: u32,
}

impl Wheel {
    fn insert(&mut self, due: u32, watched: Watched) {
        watched.session.set_due(due);
        self.due.entry(due).or_default().push(watched);
    }
}

impl Default for KeepAlives {
    fn default() -> Self {
        KeepAlives {
            epoch: Instant::now(),
            wheel: Mutex::default(),
            sooner: Notify::new(),
        }
    }
}

impl KeepAlives {
    /// The tick `at` falls in.
    pub fn tick(&self, at: Instant) -> u32 {
        let since = at.saturating_duration_since(self.epoch);
        let ticks = since.as_secs() * u64::from(TICKS_PER_SECOND)
            + u64::from(since.subsec_millis() / (1000 / TICKS_PER_SECOND));
        ticks as u32
    }

    /// The tick by which the connection of `session` that last read at tick
    /// `last_read`, with a `limit` of one and a half keep alives (in ticks),
    /// has been silent for longer than that limit: two ticks late at most.
    fn due(last_read: u32, limit: u32) -> u32 {
        // The read happened before tick `last_read + 1` began.
        last_read.saturating_add(limit).saturating_add(1)
    }

    /// One and a half `keep_alive`, in ticks, rounded up.
    fn limit(keep_alive: Duration) -> u32 {
        let limit = keep_alive * 3 / 2;
        limit.as_millis().div_ceil(TICK.as_millis()) as u32
    }

    /// Whether the connection of `session`, with `keep_alive`, has been
    /// silent for one and a half keep alives at `now`.
    pub fn expired(&self, session: &SessionHandle, keep_alive: Duration, now: Instant) -> bool {
        self.tick(now) >= Self::due(session.last_read(), Self::limit(keep_alive))
    }

    /// Starts watching the connection of `generation` to `session`, which has
    /// `keep_alive` (not zero) and reads at `now`.
    pub fn watch(
        self: &Arc<Self>,
        session: &Arc<SessionHandle>,
        generation: u64,
        keep_alive: Duration,
        now: Instant,
    ) {
        let tick = self.tick(now);
        session.touch(tick);
        let limit = Self::limit(keep_alive);
        let due = Self::due(tick, limit);
        let mut wheel = self.wheel.lock();
        wheel.insert(
            due,
            Watched {
                session: Arc::clone(session),
                generation,
                limit,
            },
        );
        match wheel.sweeper {
            None => {
                wheel.sweeper = Some(due);
                drop(wheel);
                tokio::spawn(Sweeper::new(Arc::clone(self)).run());
            }
            Some(at) if due < at => {
                drop(wheel);
                self.sooner.notify_one();
            }
            Some(_) => {}
        }
    }

    /// Stops watching the connection of `generation` to `session` (it ends).
    pub fn unwatch(&self, session: &SessionHandle, generation: u64) {
        let mut wheel = self.wheel.lock();
        // Where the wheel put it last, unless it timed out (it is out then),
        // or a later connection of the session is watched (it stays until it
        // is due, and is then dropped as no longer current).
        let due = session.due();
        let Some(watched) = wheel.due.get_mut(&due) else {
            return;
        };
        let this = |w: &Watched| std::ptr::eq(&*w.session, session) && w.generation == generation;
        if let Some(i) = watched.iter().position(this) {
            watched.swap_remove(i);
            if watched.is_empty() {
                wheel.due.remove(&due);
            }
        }
    }

    /// Moves on or times out every connection due by tick `now`. Returns
    /// the tick to sleep until, or `None` once nothing is watched (and the
    /// sweeper stops).
    fn sweep(&self, now: u32) -> Option<u32> {
        let mut timed_out = Vec::new();
        let next = {
            let mut wheel = self.wheel.lock();
            while let Some(first) = wheel.due.first_entry() {
                if *first.key() > now {
                    break;
                }
                for watched in first.remove() {
                    if !watched.session.is_current(watched.generation) {
                        continue; // a takeover's leftover
                    }
                    let due = Self::due(watched.session.last_read(), watched.limit);
                    if due > now {
                        wheel.insert(due, watched);
                    } else {
                        timed_out.push(watched);
                    }
                }
            }
            let next = wheel.due.first_key_value().map(|(&due, _)| due);
            wheel.sweeper = next;
            next
        };
        // Outside the wheel's lock: waking locks each session.
        for watched in timed_out {
            watched.session.time_out(watched.generation);
        }
        next
    }
}

/// The sweeper task. If its runtime drops it, it says it no longer runs, so
/// that the next watch starts another.
struct Sweeper {
    keep_alives: Arc<KeepAlives>,
    /// It stopped with nothing left to watch (and said so).
    stopped: bool,
}

impl Sweeper {
    fn new(keep_alives: Arc<KeepAlives>) -> Sweeper {
        Sweeper {
            keep_alives,
            stopped: false,
        }
    }

    async fn run(mut self) {
        let keep_alives = &self.keep_alives;
        let mut until = keep_alives.sweep(0);
        while let Some(tick) = until {
            let at = keep_alives.epoch + TICK * tick;
            // Both arms are cancel-safe: a sleep, and a `Notify` that keeps a
            // permit for a wake-up that comes meanwhile.
            tokio::select! {
                () = tokio::time::sleep_until(at.into()) => {}
                // Something is due sooner: sleep until then instead.
                () = keep_alives.sooner.notified() => {}
            }
            until = keep_alives.sweep(keep_alives.tick(Instant::now()));
        }
        self.stopped = true;
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        if !self.stopped {
            self.keep_alives.wheel.lock().sweeper = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Broker;

    #[test]
    fn ticks_and_limits_round_towards_a_late_close() {
        let keep_alives = KeepAlives::default();
        let epoch = keep_alives.epoch;
        assert_eq!(keep_alives.tick(epoch), 0);
        assert_eq!(keep_alives.tick(epoch + Duration::from_millis(99)), 0);
        assert_eq!(keep_alives.tick(epoch + Duration::from_millis(1_250)), 12);
        // 1.5 x 1 s = 15 ticks; 1.5 x 7 s = 10.5 s: 105 ticks.
        assert_eq!(KeepAlives::limit(Duration::from_secs(1)), 15);
        assert_eq!(KeepAlives::limit(Duration::from_secs(7)), 105);
        assert_eq!(KeepAlives::limit(Duration::from_millis(1_010)), 16);
        // A read late in tick 3 is not timed out before 1.5 s after it.
        assert_eq!(KeepAlives::due(3, 15), 19);
    }

    async fn attached(broker: &Arc<Broker>, id: &str) -> crate::broker::Attached {
        let id = starling_proto::MqttString::try_from(id).unwrap();
        broker.attach(&id, true).await
    }

    #[tokio::test]
    async fn a_silent_connection_times_out_after_one_and_a_half_keep_alives() {
        let broker = Broker::new(crate::config::Config::default());
        let keep_alives = Arc::clone(&broker.keep_alives);
        let quiet = attached(&broker, "quiet").await;
        let chatty = attached(&broker, "chatty").await;
        let start = Instant::now();
        for attached in [&quiet, &chatty] {
            keep_alives.watch(
                &attached.session,
                attached.generation,
                Duration::from_secs(1),
                start,
            );
        }
        // The chatty one reads every 0.3 s; neither is timed out before 1.5 s.
        while start.elapsed() < Duration::from_millis(1_400) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = keep_alives.tick(Instant::now());
            chatty.session.touch(now);
            assert!(!quiet.session.take_timed_out(quiet.generation));
        }
        // The quiet one is woken and marked by 1.5 s and two ticks.
        tokio::time::timeout(Duration::from_secs(1), quiet.session.woken())
            .await
            .expect("woken");
        assert!(quiet.session.take_timed_out(quiet.generation));
        assert!(start.elapsed() >= Duration::from_millis(1_500));
        assert!(!chatty.session.take_timed_out(chatty.generation));
        // A connection that ends leaves nothing behind, and the sweeper stops
        // at its next turn.
        keep_alives.unwatch(&chatty.session, chatty.generation);
        assert!(keep_alives.wheel.lock().due.is_empty());
        let deadline = Instant::now() + Duration::from_secs(3);
        while keep_alives.wheel.lock().sweeper.is_some() {
            assert!(Instant::now() < deadline, "the sweeper did not stop");
            tokio::time::sleep(TICK).await;
        }
    }
}
