//! The message scenarios: who publishes where, who subscribes to what, and
//! the order of a run:
//! 1. subscribers connect and subscribe, then publishers connect;
//! 2. every publisher starts at the same instant and stops at the deadline,
//!    then waits for the acknowledgements of what it has in flight;
//! 3. subscribers receive what is still on its way: until everything the
//!    publishers sent has arrived, or nothing new came for the drain time
//!    (QoS 1 and 2: for at most a minute in all, so that a broker's backlog
//!    is not counted as lost; QoS 0: half a second of quiet, and the drain
//!    time in all), then disconnect;
//! 4. the summary compares what each subscriber received from each publisher
//!    with what that publisher sent.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use starling_proto::{QoS, TopicName};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::conn::{self, Conn, Opener};
use super::payload::Template;
use super::publisher::Publisher;
use super::stats::{vm_rss_kib, Delivery, Progress, Rss, Shared, Summary};
use super::subscriber::{Seen, Subscriber};
use super::{Scenario, Settings};

/// Time between the last connection and the first message.
const START_DELAY: Duration = Duration::from_millis(50);

/// At QoS 0, the drain also ends after this long with nothing received.
const QOS0_QUIET: Duration = Duration::from_millis(500);

/// At QoS 1 and 2, the longest drain, however steadily messages still arrive.
const DRAIN_MAX: Duration = Duration::from_secs(60);

pub(crate) async fn run(settings: Settings) -> anyhow::Result<Summary> {
    let settings = Arc::new(settings);
    if settings.scenario == Scenario::Conn {
        return conn::run(settings).await;
    }
    Plan::new(&settings)?.run(settings).await
}

/// Topics and filters of a message scenario.
#[derive(Debug)]
struct Plan {
    /// Each publisher's topic.
    publishers: Vec<TopicName>,
    /// Each subscriber's filter and the publishers whose every message it must
    /// receive (none in `sub`).
    subscribers: Vec<(String, Range)>,
}

/// Publisher indices `start..end`.
type Range = std::ops::Range<u32>;

impl Plan {
    fn new(s: &Settings) -> anyhow::Result<Plan> {
        let topic = |i: usize| -> anyhow::Result<TopicName> {
            let name = s.topic.replace("%i", &i.to_string());
            TopicName::try_from(name.as_str())
                .map_err(|e| anyhow::anyhow!("bad topic `{name}`: {e}"))
        };
        let n = s.count as u32;
        let (publishers, subscribers) = match s.scenario {
            Scenario::Conn => unreachable!("conn has its own run"),
            Scenario::Pub => ((0..s.count).map(topic).collect::<Result<_, _>>()?, vec![]),
            Scenario::Sub => (vec![], vec![(wildcard(&s.topic), 0..0); s.subscribers]),
            Scenario::Fanin => (
                (0..s.count).map(topic).collect::<Result<_, _>>()?,
                vec![(wildcard(&s.topic), 0..n); s.subscribers],
            ),
            Scenario::Fanout => {
                let t = topic(0)?;
                let filter = t.as_str().to_owned();
                (vec![t; s.count], vec![(filter, 0..n); s.subscribers])
            }
            Scenario::Pairs | Scenario::Latency => {
                anyhow::ensure!(
                    s.topic.contains("%i"),
                    "pairs need %i in the topic pattern, to give each pair its own topic"
                );
                let topics: Vec<TopicName> = (0..s.count).map(topic).collect::<Result<_, _>>()?;
                let subs = topics
                    .iter()
                    .zip(0..n)
                    .map(|(t, i)| (t.as_str().to_owned(), i..i + 1))
                    .collect();
                (topics, subs)
            }
        };
        Ok(Plan {
            publishers,
            subscribers,
        })
    }

    async fn run(self, settings: Arc<Settings>) -> anyhow::Result<Summary> {
        let shared = Shared::new(self.publishers.len());
        let rss_before = settings.watch_pid.and_then(vm_rss_kib);
        let opener = Opener::new(Arc::clone(&settings), Arc::clone(&shared));
        let (stop_tx, stop_rx) = watch::channel(false);

        // Subscribers first, so that they miss nothing.
        let mut opening = Vec::new();
        for (i, (filter, _)) in self.subscribers.iter().enumerate() {
            let opener = Arc::clone(&opener);
            let settings = Arc::clone(&settings);
            let filter = filter.clone();
            let id = format!("{}-s{i}", settings.id_prefix);
            opening.push(tokio::spawn(async move {
                // A connection that fails to open was counted by the opener.
                let mut conn = opener.open(id).await.ok()?;
                Some(match conn.subscribe(&filter, &settings).await {
                    Ok(early) => Ok((conn, early)),
                    Err(e) => Err(e.context(format!("subscriber {i} to `{filter}`"))),
                })
            }));
        }
        let mut subscribers = Vec::new();
        for (i, task) in opening.into_iter().enumerate() {
            match task.await? {
                Some(Ok((conn, early))) => subscribers.push((i, conn, early)),
                Some(Err(e)) => shared.error(format!("{e:#}")),
                None => {}
            }
        }
        let mut publishers: Vec<(usize, Conn)> = Vec::new();
        let opening: Vec<_> = (0..self.publishers.len())
            .map(|i| {
                let opener = Arc::clone(&opener);
                let id = format!("{}-p{i}", settings.id_prefix);
                tokio::spawn(async move { opener.open(id).await })
            })
            .collect();
        for (i, task) in opening.into_iter().enumerate() {
            if let Ok(conn) = task.await? {
                publishers.push((i, conn));
            }
        }
        let connections = opener.connections();
        if !settings.quiet {
            eprintln!(
                "{} connections open in {:.2} s ({} subscribed); running for {:?}",
                connections.connected,
                connections.open_seconds,
                subscribers.len(),
                settings.duration,
            );
        }
        let rss_after = settings.watch_pid.and_then(vm_rss_kib);

        let start = Instant::now() + START_DELAY;
        let deadline = start + settings.duration;
        let progress = Progress::start(Arc::clone(&shared), start, settings.quiet);
        let sub_tasks: Vec<(usize, JoinHandle<_>)> = subscribers
            .into_iter()
            .map(|(i, conn, early)| {
                let base = self.subscribers[i].1.start;
                let from_zero = settings.scenario != Scenario::Sub;
                let sub = Subscriber::new(conn, &settings, Arc::clone(&shared), base, from_zero);
                (i, tokio::spawn(sub.run(early, stop_rx.clone())))
            })
            .collect();
        let mut pub_tasks = Vec::new();
        for (i, conn) in publishers {
            let template = Template::new(
                self.publishers[i].clone(),
                settings.qos,
                settings.size,
                settings.version,
            )?;
            let publisher = Publisher::new(
                conn,
                Arc::clone(&settings),
                Arc::clone(&shared),
                i as u32,
                template,
            );
            pub_tasks.push(tokio::spawn(publisher.run(start, deadline)));
        }
        // Reception is measured over the publishing window.
        let received_in_window = {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                tokio::time::sleep_until(deadline.into()).await;
                shared.received.load(Ordering::Relaxed)
            })
        };
        for task in pub_tasks {
            if let Err(e) = task.await? {
                shared.error(format!("{e:#}"));
            }
        }

        // What the subscribers should receive, now that the publishers are done.
        let sent = |r: &Range| -> u64 {
            r.clone()
                .map(|p| shared.published[p as usize].load(Ordering::Relaxed))
                .sum()
        };
        let expected = if settings.scenario == Scenario::Sub {
            None
        } else {
            Some(
                sub_tasks
                    .iter()
                    .map(|(i, _)| sent(&self.subscribers[*i].1))
                    .sum(),
            )
        };
        let received_in_window = received_in_window.await?;
        let elapsed = settings.duration;
        if let Some(expected) = expected {
            self.drain(&settings, &shared, expected).await;
        }
        let _ = stop_tx.send(true);
        drop(progress);

        let mut delivery = Delivery {
            expected,
            ..Delivery::default()
        };
        let mut last_received = start;
        for (i, task) in sub_tasks {
            let (seen, result) = task.await?;
            if let Err(e) = result {
                shared.error(format!("subscriber {i}: {e:#}"));
            }
            self.account(
                &settings,
                &shared,
                &self.subscribers[i].1,
                &seen,
                &mut delivery,
            );
            last_received = last_received.max(seen.last_received.unwrap_or(start));
        }
        let broker_rss = settings.watch_pid.map(|pid| Rss {
            pid,
            before_kib: rss_before.unwrap_or(0),
            after_kib: rss_after.unwrap_or(0),
            per_connection_bytes: None,
        });
        let mut summary = Summary::new(
            &settings,
            &shared,
            connections,
            elapsed,
            delivery,
            broker_rss,
        );
        summary.receive_rate = received_in_window as f64 / elapsed.as_secs_f64();
        summary.last_received = last_received.saturating_duration_since(start).as_secs_f64();
        Ok(summary)
    }

    /// Waits until the subscribers received `expected` distinct messages, or
    /// nothing new arrived for a while (see the module's documentation).
    async fn drain(&self, settings: &Settings, shared: &Shared, expected: u64) {
        let (quiet, most) = if settings.qos == QoS::AtMostOnce {
            (settings.drain.min(QOS0_QUIET), settings.drain)
        } else {
            (settings.drain, DRAIN_MAX)
        };
        let begun = Instant::now();
        let mut last = shared.unique.load(Ordering::Relaxed);
        let mut last_change = begun;
        loop {
            let unique = shared.unique.load(Ordering::Relaxed);
            let now = Instant::now();
            if unique >= expected || now - begun >= most {
                return;
            }
            if unique != last {
                (last, last_change) = (unique, now);
            } else if now - last_change >= quiet {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Adds one subscriber's reception to the run's accounting.
    fn account(
        &self,
        settings: &Settings,
        shared: &Shared,
        expects: &Range,
        seen: &Seen,
        delivery: &mut Delivery,
    ) {
        delivery.received += seen.received;
        delivery.untracked += seen.untracked;
        for track in &seen.tracks {
            delivery.duplicates += track.duplicates;
            delivery.reordered += track.reordered;
        }
        if settings.scenario == Scenario::Sub {
            delivery.lost += seen.tracks.iter().map(|t| t.gap_count()).sum::<u64>();
            return;
        }
        for p in expects.clone() {
            let sent = shared.published[p as usize].load(Ordering::Relaxed);
            let unique = seen.track(p).map_or(0, |t| t.unique);
            delivery.lost += sent.saturating_sub(unique);
        }
    }
}

/// The filter matching every topic of `pattern`: each level holding %i
/// becomes `+`.
fn wildcard(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|level| if level.contains("%i") { "+" } else { level })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_replaces_the_levels_holding_the_index() {
        assert_eq!(wildcard("bench/%i"), "bench/+");
        assert_eq!(wildcard("a/dev%i/b"), "a/+/b");
        assert_eq!(wildcard("a/#"), "a/#");
    }
}
