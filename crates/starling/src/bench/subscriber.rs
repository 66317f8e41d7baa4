//! One subscriber's connection loop and its per-publisher accounting.
//!
//! Each wake-up reads one chunk, decodes every complete packet in it, takes the
//! clock once for the whole batch, and writes the batch's PUBACKs, PUBRECs and
//! PUBCOMPs with one `write_all`. Counters and latency samples reach the shared
//! state once per batch.

use std::io;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use starling_proto::{Delivery, Packet, PubAck, PubComp, PubRec, Publish};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::conn::{stopped, Conn};
use super::payload::{now_ns, Header};
use super::stats::Shared;
use super::Settings;

/// Bytes reserved for each read.
const READ_CHUNK: usize = 64 * 1024;

/// Gaps remembered per publisher; beyond it, late messages are counted as
/// reordered without checking that they are not duplicates.
const MAX_GAPS: usize = 4096;

/// Publisher indices above this are not tracked (a foreign payload, say).
const MAX_PUBLISHERS: u32 = 1 << 20;

/// What one subscriber knows of the messages of one publisher.
#[derive(Debug, Default, Clone)]
pub(crate) struct Track {
    /// Whether a message of this publisher arrived yet.
    started: bool,
    /// One past the highest sequence number received.
    next: u64,
    /// Distinct messages received.
    pub(crate) unique: u64,
    pub(crate) duplicates: u64,
    pub(crate) reordered: u64,
    /// Sequence numbers skipped and not received since, oldest first.
    gaps: Vec<Range<u64>>,
    /// Whether gaps had to be forgotten.
    overflow: bool,
}

impl Track {
    /// Records sequence number `seq`. `from_zero`: the publisher's first
    /// message is 0 (it started after the subscription); otherwise the first
    /// one received starts the count.
    /// Returns whether it is new (not a duplicate).
    fn record(&mut self, seq: u64, from_zero: bool) -> bool {
        if !self.started {
            self.started = true;
            if !from_zero {
                self.next = seq;
            }
        }
        if seq >= self.next {
            if seq > self.next {
                if self.gaps.len() < MAX_GAPS {
                    self.gaps.push(self.next..seq);
                } else {
                    self.overflow = true;
                }
            }
            self.next = seq + 1;
            self.unique += 1;
            return true;
        }
        match self.gaps.iter().position(|g| g.contains(&seq)) {
            Some(i) => {
                let gap = self.gaps[i].clone();
                let (before, after) = (gap.start..seq, seq + 1..gap.end);
                match (before.is_empty(), after.is_empty()) {
                    (true, true) => {
                        self.gaps.remove(i);
                    }
                    (false, true) => self.gaps[i] = before,
                    (true, false) => self.gaps[i] = after,
                    (false, false) => {
                        self.gaps[i] = before;
                        self.gaps.insert(i + 1, after);
                    }
                }
            }
            None if self.overflow => {}
            None => {
                self.duplicates += 1;
                return false;
            }
        }
        self.reordered += 1;
        self.unique += 1;
        true
    }

    /// Sequence numbers missing between the first and the last received.
    pub(crate) fn gap_count(&self) -> u64 {
        self.gaps.iter().map(|g| g.end - g.start).sum()
    }
}

/// What a subscriber saw over the run.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) received: u64,
    /// Received messages that were not duplicates.
    pub(crate) unique: u64,
    /// Messages without a bench header.
    pub(crate) untracked: u64,
    /// Publisher indices from `base` on, each with its track.
    pub(crate) base: u32,
    pub(crate) tracks: Vec<Track>,
    pub(crate) last_received: Option<Instant>,
}

impl Seen {
    pub(crate) fn track(&self, publisher: u32) -> Option<&Track> {
        self.tracks.get(publisher.checked_sub(self.base)? as usize)
    }
}

/// One subscriber, subscribed.
#[derive(Debug)]
pub(crate) struct Subscriber {
    conn: Conn,
    shared: Arc<Shared>,
    /// Whether every publisher this subscriber hears starts after it subscribed.
    from_zero: bool,
    seen: Seen,
    write_buf: BytesMut,
    latencies: Vec<u64>,
    /// `received` and `unique` as last added to the shared counters.
    reported: (u64, u64),
    last_write: Instant,
    keepalive: Option<Duration>,
}

impl Subscriber {
    /// `base`: the lowest publisher index it expects (pairs hear one publisher).
    pub(crate) fn new(
        conn: Conn,
        settings: &Settings,
        shared: Arc<Shared>,
        base: u32,
        from_zero: bool,
    ) -> Subscriber {
        let keepalive = conn
            .connack
            .properties
            .server_keep_alive
            .unwrap_or(settings.keepalive);
        Subscriber {
            conn,
            shared,
            from_zero,
            seen: Seen {
                base,
                ..Seen::default()
            },
            write_buf: BytesMut::new(),
            latencies: Vec::new(),
            reported: (0, 0),
            last_write: Instant::now(),
            keepalive: (keepalive > 0).then(|| Duration::from_secs(u64::from(keepalive)) / 2),
        }
    }

    /// Receives until `stop` turns true, then disconnects. Returns what it saw,
    /// also when the connection failed (with the error).
    pub(crate) async fn run(
        mut self,
        early: Vec<Publish>,
        mut stop: watch::Receiver<bool>,
    ) -> (Seen, anyhow::Result<()>) {
        let result = async {
            let now = now_ns();
            for publish in early {
                self.on_publish(publish, now)?;
            }
            self.flush().await?;
            loop {
                let ping_at = self.keepalive.map(|k| self.last_write + k);
                let ping = async {
                    match ping_at {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    _ = stopped(&mut stop) => return Ok(()),
                    ready = self.conn.stream.readable() => ready?,
                    _ = ping => {
                        Packet::PingReq.encode(self.conn.version, &mut self.write_buf)?;
                        self.flush().await?;
                        continue;
                    }
                }
                self.conn.read_buf.reserve(READ_CHUNK);
                match self.conn.stream.try_read_buf(&mut self.conn.read_buf) {
                    Ok(0) => anyhow::bail!("the broker closed the connection"),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e.into()),
                }
                let now = now_ns();
                while let Some(packet) = self.conn.decoder.decode(&mut self.conn.read_buf)? {
                    self.handle(packet, now)?;
                }
                self.flush().await?;
                // A broker that sends faster than we decode keeps the socket
                // readable forever: let the other tasks (the clock, the
                // progress line, other connections) run now and then.
                tokio::task::consume_budget().await;
            }
        }
        .await;
        self.flush_counters();
        if result.is_ok() {
            self.conn.close().await;
        }
        (self.seen, result)
    }

    fn handle(&mut self, packet: Packet, now: u64) -> anyhow::Result<()> {
        match packet {
            Packet::Publish(publish) => self.on_publish(publish, now),
            Packet::PubRel(rel) => {
                Packet::PubComp(PubComp::new(rel.packet_id))
                    .encode(self.conn.version, &mut self.write_buf)?;
                Ok(())
            }
            Packet::PingResp | Packet::SubAck(_) => Ok(()),
            Packet::Disconnect(d) => anyhow::bail!(
                "the broker disconnected with reason code 0x{:02X}",
                d.reason_code.0
            ),
            other => anyhow::bail!("unexpected {} from the broker", other.packet_type()),
        }
    }

    fn on_publish(&mut self, publish: Publish, now: u64) -> anyhow::Result<()> {
        match publish.delivery {
            Delivery::AtMostOnce => {}
            Delivery::AtLeastOnce(id) => {
                Packet::PubAck(PubAck::new(id)).encode(self.conn.version, &mut self.write_buf)?
            }
            Delivery::ExactlyOnce(id) => {
                Packet::PubRec(PubRec::new(id)).encode(self.conn.version, &mut self.write_buf)?
            }
        }
        self.seen.received += 1;
        let header = Header::decode(&publish.payload);
        if let Some(header) = header {
            self.latencies.push(now.saturating_sub(header.sent));
        }
        let index = header.and_then(|h| {
            let i = h.publisher.checked_sub(self.seen.base)?;
            (i < MAX_PUBLISHERS).then_some((i as usize, h.seq))
        });
        let Some((i, seq)) = index else {
            self.seen.untracked += 1;
            self.seen.unique += 1;
            return Ok(());
        };
        if i >= self.seen.tracks.len() {
            self.seen.tracks.resize(i + 1, Track::default());
        }
        if self.seen.tracks[i].record(seq, self.from_zero) {
            self.seen.unique += 1;
        }
        Ok(())
    }

    /// Writes the acknowledgements of the batch and publishes the counters.
    async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.write_buf.is_empty() {
            self.conn.stream.write_all(&self.write_buf).await?;
            self.write_buf.clear();
            self.last_write = Instant::now();
        }
        self.flush_counters();
        Ok(())
    }

    fn flush_counters(&mut self) {
        let (received, unique) = (self.seen.received, self.seen.unique);
        if (received, unique) == self.reported {
            return;
        }
        self.shared.record_latencies(&self.latencies);
        self.latencies.clear();
        let (r0, u0) = self.reported;
        self.shared
            .received
            .fetch_add(received - r0, Ordering::Relaxed);
        self.shared.unique.fetch_add(unique - u0, Ordering::Relaxed);
        self.reported = (received, unique);
        self.seen.last_received = Some(Instant::now());
    }
}
