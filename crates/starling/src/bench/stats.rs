//! What the connection tasks count, the progress line, and the final summary.
//!
//! Tasks count locally and add to the shared atomics once per batch (one read
//! or one write), never per message. Latencies go the same way: a subscriber
//! collects a batch's samples and records them under one lock into the
//! interval histogram, which the reporter takes every second for the progress
//! line and adds to the run's total.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

use super::Settings;

/// Counters shared by every task of a run.
#[derive(Debug)]
pub(crate) struct Shared {
    /// PUBLISH packets written.
    pub(crate) sent: AtomicU64,
    /// PUBACKs and PUBCOMPs received by publishers.
    pub(crate) acked: AtomicU64,
    /// PUBLISH packets received by subscribers.
    pub(crate) received: AtomicU64,
    /// Received messages that were not duplicates.
    pub(crate) unique: AtomicU64,
    /// Connections that completed CONNECT/CONNACK.
    pub(crate) connected: AtomicU64,
    /// Connections that could not be opened.
    pub(crate) failed: AtomicU64,
    /// Open connections that the broker closed before the end.
    pub(crate) dropped: AtomicU64,
    /// Messages each publisher sent, by publisher index.
    pub(crate) published: Vec<AtomicU64>,
    /// End-to-end latency since the last progress line, in nanoseconds.
    interval: Mutex<Histogram<u64>>,
    /// Latency over the whole run, in nanoseconds.
    total: Mutex<Histogram<u64>>,
    /// CONNECT to CONNACK, in nanoseconds.
    connect: Mutex<Histogram<u64>>,
    /// Error messages and how often each happened.
    errors: Mutex<BTreeMap<String, u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures are valid")
}

impl Shared {
    pub(crate) fn new(publishers: usize) -> Arc<Shared> {
        Arc::new(Shared {
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            received: AtomicU64::new(0),
            unique: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            published: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            interval: Mutex::new(histogram()),
            total: Mutex::new(histogram()),
            connect: Mutex::new(histogram()),
            errors: Mutex::new(BTreeMap::new()),
        })
    }

    /// Records a batch of end-to-end latencies (nanoseconds).
    pub(crate) fn record_latencies(&self, samples: &[u64]) {
        if samples.is_empty() {
            return;
        }
        let mut h = self.interval.lock();
        for &ns in samples {
            h.record(ns.max(1))
                .expect("auto-resizing histograms record any value");
        }
    }

    pub(crate) fn record_connect(&self, took: Duration) {
        self.connect
            .lock()
            .record((took.as_nanos() as u64).max(1))
            .expect("auto-resizing histograms record any value");
    }

    /// CONNECT to CONNACK of every connection so far.
    pub(crate) fn connect_quantiles(&self) -> Option<Quantiles> {
        Quantiles::of(&self.connect.lock())
    }

    pub(crate) fn error(&self, message: String) {
        *self.errors.lock().entry(message).or_insert(0) += 1;
    }

    /// Moves the interval's latencies to the total and returns its p50 and p99.
    fn take_interval(&self) -> Option<(u64, u64)> {
        let interval = std::mem::replace(&mut *self.interval.lock(), histogram());
        if interval.is_empty() {
            return None;
        }
        let quantiles = (
            interval.value_at_quantile(0.5),
            interval.value_at_quantile(0.99),
        );
        self.total
            .lock()
            .add(&interval)
            .expect("auto-resizing histograms add");
        Some(quantiles)
    }

    fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .iter()
            .map(|(e, n)| {
                if *n == 1 {
                    e.clone()
                } else {
                    format!("{e} (x{n})")
                }
            })
            .collect()
    }
}

/// Prints a progress line on stderr every second until dropped.
#[derive(Debug)]
pub(crate) struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub(crate) fn start(shared: Arc<Shared>, start: Instant, quiet: bool) -> Progress {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::from_std(start) + Duration::from_secs(1),
                Duration::from_secs(1),
            );
            let (mut sent, mut received) = (0, 0);
            let mut last = start;
            loop {
                tick.tick().await;
                let now = Instant::now();
                let secs = now.duration_since(last).as_secs_f64().max(1e-3);
                last = now;
                let s = shared.sent.load(Ordering::Relaxed);
                let r = shared.received.load(Ordering::Relaxed);
                let latency = shared.take_interval();
                if quiet {
                    continue;
                }
                let mut line = format!(
                    "[{:>5.1}s] sent {:>9.0}/s  received {:>9.0}/s",
                    now.duration_since(start).as_secs_f64(),
                    (s - sent) as f64 / secs,
                    (r - received) as f64 / secs,
                );
                if let Some((p50, p99)) = latency {
                    let _ = write!(line, "  p50 {}  p99 {}", show_ns(p50), show_ns(p99));
                }
                eprintln!("{line}");
                (sent, received) = (s, r);
            }
        });
        Progress { task }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn show_ns(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{ns}ns"),
        10_000..=9_999_999 => format!("{:.1}us", ns as f64 / 1e3),
        _ => format!("{:.2}ms", ns as f64 / 1e6),
    }
}

/// Quantiles of a histogram, in microseconds.
#[derive(Debug, Serialize)]
pub(crate) struct Quantiles {
    pub(crate) count: u64,
    pub(crate) mean: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

impl Quantiles {
    fn of(h: &Histogram<u64>) -> Option<Quantiles> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1e3;
        Some(Quantiles {
            count: h.len(),
            mean: h.mean() / 1e3,
            p50: us(h.value_at_quantile(0.5)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        })
    }
}

/// Resident memory of a watched process, in KiB.
#[derive(Debug, Serialize)]
pub(crate) struct Rss {
    pub(crate) pid: u32,
    pub(crate) before_kib: u64,
    pub(crate) after_kib: u64,
    /// (after - before) / connections opened, in bytes.
    pub(crate) per_connection_bytes: Option<f64>,
}

/// VmRSS of `pid` in KiB, from /proc/PID/status.
pub(crate) fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Connections of a run.
#[derive(Debug, Serialize)]
pub(crate) struct Connections {
    pub(crate) attempted: u64,
    pub(crate) connected: u64,
    pub(crate) failed: u64,
    /// Open connections the broker closed before the end.
    pub(crate) dropped: u64,
    /// Seconds from the first attempt until every attempt had finished.
    pub(crate) open_seconds: f64,
    /// Connections opened per second over `open_seconds`.
    pub(crate) rate: f64,
    /// CONNECT to CONNACK.
    pub(crate) connack_latency_us: Option<Quantiles>,
}

/// Per-subscriber accounting, added up over the run.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub(crate) struct Delivery {
    /// Messages that should have arrived (sum over subscribers of what the
    /// publishers they listen to sent); `None` in `sub`, where publishers are
    /// elsewhere.
    pub(crate) expected: Option<u64>,
    pub(crate) received: u64,
    /// Sequence numbers never received (gaps, and the tail after the last one).
    pub(crate) lost: u64,
    pub(crate) duplicates: u64,
    /// Messages that arrived after a later one of the same publisher.
    pub(crate) reordered: u64,
    /// Messages whose payload had no bench header.
    pub(crate) untracked: u64,
}

/// The result of a run.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) scenario: String,
    pub(crate) version: String,
    pub(crate) qos: u8,
    pub(crate) size: usize,
    /// Messages per second per publisher; 0 = unbounded.
    pub(crate) rate: u64,
    pub(crate) publishers: usize,
    pub(crate) subscribers: usize,
    pub(crate) threads: usize,
    pub(crate) connections: Connections,
    /// Seconds the publishers published (or `conn` held its connections).
    pub(crate) elapsed: f64,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) send_rate: f64,
    #[serde(flatten)]
    pub(crate) delivery: Delivery,
    /// Messages received per second while the publishers published.
    pub(crate) receive_rate: f64,
    /// Seconds from the start to the last reception (beyond `elapsed` when
    /// the broker had a backlog to deliver).
    pub(crate) last_received: f64,
    pub(crate) latency_us: Option<Quantiles>,
    pub(crate) broker_rss: Option<Rss>,
    pub(crate) errors: Vec<String>,
}

impl Summary {
    pub(crate) fn new(
        settings: &Settings,
        shared: &Shared,
        connections: Connections,
        elapsed: Duration,
        delivery: Delivery,
        broker_rss: Option<Rss>,
    ) -> Summary {
        shared.take_interval();
        let sent = shared.sent.load(Ordering::Relaxed);
        let secs = elapsed.as_secs_f64().max(1e-9);
        Summary {
            scenario: format!("{:?}", settings.scenario).to_lowercase(),
            version: settings.version.to_string(),
            qos: settings.qos.as_u8(),
            size: settings.size,
            rate: settings.rate.unwrap_or(0),
            publishers: shared.published.len(),
            subscribers: settings.subscribers,
            threads: settings.threads,
            connections,
            elapsed: secs,
            sent,
            acked: shared.acked.load(Ordering::Relaxed),
            send_rate: sent as f64 / secs,
            delivery,
            receive_rate: 0.0,
            last_received: 0.0,
            latency_us: Quantiles::of(&shared.total.lock()),
            broker_rss,
            errors: shared.errors(),
        }
    }

    /// Writes the summary on stdout: text, or JSON with --json.
    pub(crate) fn print(&self, settings: &Settings) -> anyhow::Result<()> {
        let text = if settings.json {
            serde_json::to_string_pretty(self)? + "\n"
        } else {
            self.text()
        };
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    }

    fn text(&self) -> String {
        let mut t = String::new();
        let c = &self.connections;
        if self.scenario == "conn" {
            let _ = writeln!(
                t,
                "scenario conn  MQTT {}  threads {}",
                self.version, self.threads
            );
        } else {
            let rate = match self.rate {
                0 => "unbounded".to_owned(),
                r => format!("{r}/s"),
            };
            let _ = writeln!(
                t,
                "scenario {}  MQTT {}  QoS {}  payload {} B  rate {rate}  publishers {}  \
                 subscribers {}  threads {}",
                self.scenario,
                self.version,
                self.qos,
                self.size,
                self.publishers,
                self.subscribers,
                self.threads,
            );
        }
        let _ = writeln!(
            t,
            "connections  {} of {} in {:.2} s ({:.0}/s), {} failed, {} dropped",
            c.connected, c.attempted, c.open_seconds, c.rate, c.failed, c.dropped
        );
        if let Some(q) = &c.connack_latency_us {
            let _ = writeln!(t, "connack      {}", show_quantiles(q));
        }
        if self.publishers > 0 {
            let _ = writeln!(
                t,
                "sent         {} in {:.2} s ({:.0}/s), {} acknowledged",
                self.sent, self.elapsed, self.send_rate, self.acked
            );
        }
        if self.subscribers > 0 {
            let d = &self.delivery;
            let expected = d
                .expected
                .map_or(String::new(), |e| format!(" of {e} expected"));
            let _ = writeln!(
                t,
                "received     {}{expected} ({:.0}/s while publishing), the last at {:.2} s",
                d.received, self.receive_rate, self.last_received
            );
            let _ = writeln!(
                t,
                "lost {}  duplicates {}  reordered {}  without header {}",
                d.lost, d.duplicates, d.reordered, d.untracked
            );
        }
        if let Some(q) = &self.latency_us {
            let _ = writeln!(t, "latency      {}", show_quantiles(q));
        }
        if let Some(rss) = &self.broker_rss {
            let per = rss
                .per_connection_bytes
                .map_or(String::new(), |b| format!(", {b:.0} B per connection"));
            let _ = writeln!(
                t,
                "pid {} RSS   {} KiB before, {} KiB after{per}",
                rss.pid, rss.before_kib, rss.after_kib
            );
        }
        for e in &self.errors {
            let _ = writeln!(t, "error        {e}");
        }
        t
    }
}

fn show_quantiles(q: &Quantiles) -> String {
    format!(
        "p50 {:.1} us  p99 {:.1} us  p99.9 {:.1} us  max {:.1} us  mean {:.1} us  ({} samples)",
        q.p50, q.p99, q.p999, q.max, q.mean, q.count
    )
}
