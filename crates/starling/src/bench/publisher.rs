//! One publisher's connection loop.
//!
//! Each turn reads whatever has arrived (without waiting), applies the
//! acknowledgements, then appends as many PUBLISH packets as the rate, the
//! in-flight window and the batch size allow to one buffer (PUBRELs too) and
//! writes it with one `write_all`. With nothing to send it waits for input or
//! for the next message's due time.
//!
//! Acknowledgements are not read during a `write_all`: the window bounds them
//! (a few bytes per message in flight), so they always fit in the socket's
//! receive buffer and the broker is never blocked on us.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use starling_proto::{Packet, PacketId, PubRel, QoS, ReasonCode};
use tokio::io::AsyncWriteExt;

use super::conn::Conn;
use super::payload::{now_ns, Header, Template};
use super::stats::Shared;
use super::Settings;

/// Bytes of PUBLISH packets encoded before a write.
const WRITE_BATCH: usize = 64 * 1024;

/// Bytes reserved for each read of acknowledgements.
const READ_CHUNK: usize = 4 * 1024;

/// Where a QoS 1 or 2 message in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published,
    /// PUBREL sent; waiting for PUBCOMP.
    Released,
}

/// One publisher: its connection, its template and what it has in flight.
#[derive(Debug)]
pub(crate) struct Publisher {
    conn: Conn,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    index: u32,
    template: Template,
    /// QoS 1 and 2 messages unacknowledged, by packet identifier.
    inflight: HashMap<PacketId, Stage>,
    /// The largest `inflight` may grow.
    window: usize,
    next_id: PacketId,
    /// Sequence number of the next message; also the count sent.
    seq: u64,
    /// Acknowledgements not yet added to the shared counter.
    acked: u64,
    write_buf: BytesMut,
    last_write: Instant,
}

impl Publisher {
    pub(crate) fn new(
        conn: Conn,
        settings: Arc<Settings>,
        shared: Arc<Shared>,
        index: u32,
        template: Template,
    ) -> Publisher {
        let window = if settings.qos == QoS::AtMostOnce {
            usize::MAX
        } else {
            let broker = conn
                .connack
                .properties
                .receive_maximum
                .map_or(u16::MAX, |r| r.get());
            usize::from(settings.inflight.get().min(broker))
        };
        Publisher {
            conn,
            settings,
            shared,
            index,
            template,
            inflight: HashMap::new(),
            window,
            next_id: PacketId::MIN,
            seq: 0,
            acked: 0,
            write_buf: BytesMut::new(),
            last_write: Instant::now(),
        }
    }

    /// Publishes from `start` until `deadline`, then waits (at most the drain
    /// time) for the acknowledgements of what is in flight, and disconnects.
    pub(crate) async fn run(mut self, start: Instant, deadline: Instant) -> anyhow::Result<()> {
        let result = self.publish(start, deadline).await;
        let result = match result {
            Ok(()) => self.drain(deadline + self.settings.drain).await,
            Err(e) => Err(e),
        };
        self.flush_counters();
        if result.is_ok() {
            self.conn.close().await;
        }
        result
    }

    async fn publish(&mut self, start: Instant, deadline: Instant) -> anyhow::Result<()> {
        tokio::time::sleep_until(start.into()).await;
        self.last_write = Instant::now();
        let batch = (WRITE_BATCH / self.template.len()).max(1);
        let rate = self.settings.rate;
        let keepalive = self.keepalive();
        loop {
            self.read_available()?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            let mut n = batch.min(self.window.saturating_sub(self.inflight.len()));
            if let Some(rate) = rate {
                let due = (now - start).as_nanos() * u128::from(rate) / 1_000_000_000;
                n = n.min((due as u64).saturating_sub(self.seq) as usize);
            }
            if n > 0 {
                self.put_messages(n);
            }
            if !self.write_buf.is_empty() {
                self.write().await?;
                // A socket that always takes more would keep this task
                // running forever: let the others run now and then.
                tokio::task::consume_budget().await;
                continue;
            }
            // Nothing to send now: wait for an acknowledgement, the next due
            // time, or the time to ping.
            let mut wake = deadline;
            let window_full = self.inflight.len() >= self.window;
            if let (Some(rate), false) = (rate, window_full) {
                let next = Duration::from_nanos(
                    ((self.seq + 1) as u128 * 1_000_000_000 / u128::from(rate)) as u64,
                );
                wake = wake.min(start + next);
            }
            if let Some(keepalive) = keepalive {
                wake = wake.min(self.last_write + keepalive);
            }
            tokio::select! {
                ready = self.conn.stream.readable() => ready?,
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            if keepalive.is_some_and(|k| Instant::now() >= self.last_write + k) {
                Packet::PingReq.encode(self.conn.version, &mut self.write_buf)?;
                self.write().await?;
            }
        }
    }

    /// Waits until nothing is in flight or `until`, answering PUBRECs.
    async fn drain(&mut self, until: Instant) -> anyhow::Result<()> {
        while !self.inflight.is_empty() {
            if !self.write_buf.is_empty() {
                self.write().await?;
                continue;
            }
            tokio::select! {
                ready = self.conn.stream.readable() => ready?,
                _ = tokio::time::sleep_until(until.into()) => {
                    anyhow::bail!(
                        "publisher {}: {} messages still unacknowledged {:?} after the end",
                        self.index,
                        self.inflight.len(),
                        self.settings.drain,
                    );
                }
            }
            self.read_available()?;
        }
        Ok(())
    }

    /// Half the Keep Alive: how long the connection may stay silent.
    fn keepalive(&self) -> Option<Duration> {
        let keepalive = self
            .conn
            .connack
            .properties
            .server_keep_alive
            .unwrap_or(self.settings.keepalive);
        (keepalive > 0).then(|| Duration::from_secs(u64::from(keepalive)) / 2)
    }

    /// Appends `n` messages (n <= free window) to the write buffer.
    fn put_messages(&mut self, n: usize) {
        let sent = now_ns();
        let qos = self.settings.qos;
        for _ in 0..n {
            let id = if qos == QoS::AtMostOnce {
                PacketId::MIN
            } else {
                while self.inflight.contains_key(&self.next_id) {
                    self.next_id = self.next_id.next();
                }
                let id = self.next_id;
                self.next_id = id.next();
                self.inflight.insert(id, Stage::Published);
                id
            };
            let header = Header {
                publisher: self.index,
                seq: self.seq,
                sent,
            };
            self.template.put(&mut self.write_buf, id, header);
            self.seq += 1;
        }
    }

    async fn write(&mut self) -> anyhow::Result<()> {
        self.conn.stream.write_all(&self.write_buf).await?;
        self.write_buf.clear();
        self.last_write = Instant::now();
        self.flush_counters();
        Ok(())
    }

    fn flush_counters(&mut self) {
        let published = &self.shared.published[self.index as usize];
        let before = published.swap(self.seq, Ordering::Relaxed);
        self.shared
            .sent
            .fetch_add(self.seq - before, Ordering::Relaxed);
        if self.acked > 0 {
            self.shared.acked.fetch_add(self.acked, Ordering::Relaxed);
            self.acked = 0;
        }
    }

    /// Reads what has arrived, without waiting, and handles every packet.
    fn read_available(&mut self) -> anyhow::Result<()> {
        loop {
            self.conn.read_buf.reserve(READ_CHUNK);
            match self.conn.stream.try_read_buf(&mut self.conn.read_buf) {
                Ok(0) => anyhow::bail!("the broker closed the connection"),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        while let Some(packet) = self.conn.decoder.decode(&mut self.conn.read_buf)? {
            self.handle(packet)?;
        }
        Ok(())
    }

    fn handle(&mut self, packet: Packet) -> anyhow::Result<()> {
        match packet {
            Packet::PubAck(ack) => {
                self.acknowledged(ack.packet_id, Stage::Published, ack.reason_code)
            }
            Packet::PubRec(rec) => {
                let id = rec.packet_id;
                if self.inflight.get(&id) != Some(&Stage::Published) {
                    anyhow::bail!("PUBREC for packet {id}, which is not awaiting one");
                }
                if rec.reason_code.is_error() {
                    // An error PUBREC ends the flow: no PUBREL follows.
                    self.inflight.remove(&id);
                    anyhow::bail!("PUBREC with reason code 0x{:02X}", rec.reason_code.0);
                }
                self.inflight.insert(id, Stage::Released);
                Packet::PubRel(PubRel::new(id)).encode(self.conn.version, &mut self.write_buf)?;
                Ok(())
            }
            Packet::PubComp(comp) => {
                self.acknowledged(comp.packet_id, Stage::Released, comp.reason_code)
            }
            Packet::PingResp => Ok(()),
            // A persistent session's leftovers: publishers subscribe to nothing.
            Packet::Publish(_) => Ok(()),
            Packet::Disconnect(d) => anyhow::bail!(
                "the broker disconnected with reason code 0x{:02X}",
                d.reason_code.0
            ),
            other => anyhow::bail!("unexpected {} from the broker", other.packet_type()),
        }
    }

    fn acknowledged(&mut self, id: PacketId, stage: Stage, code: ReasonCode) -> anyhow::Result<()> {
        if self.inflight.get(&id) != Some(&stage) {
            anyhow::bail!("acknowledgement for packet {id}, which is not in flight at that stage");
        }
        self.inflight.remove(&id);
        // 0x10 No matching subscribers is a success for the bench: it was taken.
        if code.is_error() {
            anyhow::bail!("publication refused with reason code 0x{:02X}", code.0);
        }
        self.acked += 1;
        Ok(())
    }
}
