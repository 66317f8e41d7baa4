//! Opening a connection (TCP, CONNECT/CONNACK, SUBSCRIBE/SUBACK), pacing the
//! openings, and the `conn` scenario, which opens connections and holds them.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use starling_proto::property::ConnectProperties;
use starling_proto::{
    ConnAck, Connect, Decoder, Disconnect, MqttString, Packet, PacketId, ProtocolVersion, Publish,
    ReasonCode, Role, Subscribe, SubscriptionOptions, TopicFilter,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::stats::{vm_rss_kib, Connections, Delivery, Rss, Shared, Summary};
use super::stream::BenchStream;
use super::Settings;

/// How long one connection may take to open (TCP, CONNECT, CONNACK).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a SUBSCRIBE may wait for its SUBACK.
const SUBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the final DISCONNECT may take to write.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Bytes reserved for each read during the handshake: CONNACK and SUBACK are small.
const SETUP_READ: usize = 256;

/// One open MQTT connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: BenchStream,
    pub(crate) decoder: Decoder,
    /// Bytes read and not decoded yet.
    pub(crate) read_buf: BytesMut,
    pub(crate) version: ProtocolVersion,
    pub(crate) connack: ConnAck,
}

impl Conn {
    /// Connects and completes CONNECT/CONNACK.
    async fn open(
        settings: &Settings,
        client_id: String,
        local: Option<IpAddr>,
    ) -> anyhow::Result<Conn> {
        let stream = match local {
            None => TcpStream::connect(settings.addr).await,
            Some(ip) => {
                let socket = if ip.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(settings.addr).await
            }
        }
        .with_context(|| format!("cannot connect to {}", settings.addr))?;
        stream.set_nodelay(true)?;
        let stream = match &settings.tls {
            None => BenchStream::Tcp(stream),
            Some(tls) => BenchStream::Tls(Box::new(
                tls.connect(&settings.host, stream)
                    .await
                    .map_err(|e| anyhow::anyhow!("TLS handshake with {}: {e}", settings.addr))?,
            )),
        };
        let client_id = MqttString::try_from(client_id.as_str())
            .map_err(|e| anyhow::anyhow!("bad client identifier `{client_id}`: {e:?}"))?;
        let mut connect = Connect::new(settings.version, client_id);
        connect.keep_alive = settings.keepalive;
        connect.clean_start = !settings.persistent;
        if settings.persistent && settings.version.is_v5() {
            connect.properties = ConnectProperties {
                session_expiry_interval: Some(3600),
                ..Default::default()
            };
        }
        let mut conn = Conn {
            stream,
            decoder: Decoder::new(Role::Client, settings.version),
            read_buf: BytesMut::new(),
            version: settings.version,
            connack: ConnAck::default(),
        };
        conn.send(&Packet::Connect(Box::new(connect))).await?;
        match conn.read_packet().await? {
            Packet::ConnAck(connack) if !connack.reason_code.is_error() => conn.connack = connack,
            Packet::ConnAck(connack) => {
                anyhow::bail!("connection refused: {}", describe(connack.reason_code))
            }
            other => anyhow::bail!("expected CONNACK, got {}", other.packet_type()),
        }
        Ok(conn)
    }

    /// Subscribes to `filter` and waits for the SUBACK. Returns the messages
    /// that arrived before it (a persistent session's queue).
    pub(crate) async fn subscribe(
        &mut self,
        filter: &str,
        settings: &Settings,
    ) -> anyhow::Result<Vec<Publish>> {
        let filter = TopicFilter::try_from(filter)
            .map_err(|e| anyhow::anyhow!("bad topic filter `{filter}`: {e}"))?;
        let subscribe = Subscribe {
            packet_id: PacketId::MIN,
            filters: vec![(filter, SubscriptionOptions::new(settings.qos))],
            properties: Default::default(),
        };
        self.send(&Packet::Subscribe(subscribe)).await?;
        let mut early = Vec::new();
        let wait = async {
            loop {
                match self.read_packet().await? {
                    Packet::SubAck(ack) => {
                        let code = ack.reason_codes.first().copied().unwrap_or_default();
                        anyhow::ensure!(
                            !code.is_error(),
                            "subscription refused: {}",
                            describe(code)
                        );
                        anyhow::ensure!(
                            code.0 >= settings.qos.as_u8(),
                            "subscription granted at QoS {} only",
                            code.0
                        );
                        return Ok(());
                    }
                    Packet::Publish(p) => early.push(p),
                    other => anyhow::bail!("expected SUBACK, got {}", other.packet_type()),
                }
            }
        };
        tokio::time::timeout(SUBACK_TIMEOUT, wait)
            .await
            .context("no SUBACK")??;
        Ok(early)
    }

    /// Encodes and writes one packet.
    pub(crate) async fn send(&mut self, packet: &Packet) -> anyhow::Result<()> {
        let mut buf = BytesMut::with_capacity(packet.encoded_len(self.version));
        packet.encode(self.version, &mut buf)?;
        self.stream.write_all(&buf).await?;
        Ok(())
    }

    /// Waits for the next packet.
    async fn read_packet(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.read_buf)? {
                return Ok(packet);
            }
            self.read_buf.reserve(SETUP_READ);
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                anyhow::bail!("the broker closed the connection");
            }
        }
    }

    /// Sends DISCONNECT (Normal) and closes the write side, ignoring errors:
    /// the run is over for this connection. Gives up after [`CLOSE_TIMEOUT`]:
    /// a busy broker may not read a publisher's last writes for a while.
    pub(crate) async fn close(mut self) {
        let close = async {
            self.send(&Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)))
                .await?;
            self.stream.shutdown().await?;
            Ok::<_, anyhow::Error>(())
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    }
}

/// Returns once the run's stop flag is set (or its sender is gone).
/// Cancel-safe: the flag lives in the channel and is read again on every call.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        let stop_now = *stop.borrow_and_update();
        if stop_now || stop.changed().await.is_err() {
            return;
        }
    }
}

/// A reason code with its name where MQTT 3.1.1 and 5.0 agree on one.
fn describe(code: ReasonCode) -> String {
    format!("reason code 0x{:02X}", code.0)
}

/// Paces connection openings: at most `conn_parallel` handshakes at once and,
/// with --conn-rate, no more than that many starts per second.
#[derive(Debug)]
pub(crate) struct Opener {
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    permits: Semaphore,
    start: Instant,
    attempts: AtomicU64,
    last_done: parking_lot::Mutex<Option<Instant>>,
}

impl Opener {
    pub(crate) fn new(settings: Arc<Settings>, shared: Arc<Shared>) -> Arc<Opener> {
        Arc::new(Opener {
            permits: Semaphore::new(settings.conn_parallel),
            settings,
            shared,
            start: Instant::now(),
            attempts: AtomicU64::new(0),
            last_done: parking_lot::Mutex::new(None),
        })
    }

    /// Opens one connection; counts it as connected or failed.
    pub(crate) async fn open(&self, client_id: String) -> anyhow::Result<Conn> {
        let k = self.attempts.fetch_add(1, Ordering::Relaxed);
        if let Some(rate) = self.settings.conn_rate {
            let at = self.start + Duration::from_secs_f64(k as f64 / rate as f64);
            tokio::time::sleep_until(at.into()).await;
        }
        let _permit = self.permits.acquire().await?;
        let bind = &self.settings.bind;
        let local = (!bind.is_empty()).then(|| bind[k as usize % bind.len()]);
        let begun = Instant::now();
        let result = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Conn::open(&self.settings, client_id, local),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no CONNACK within {CONNECT_TIMEOUT:?}")));
        let now = Instant::now();
        *self.last_done.lock() = Some(now);
        match &result {
            Ok(_) => {
                self.shared.record_connect(now - begun);
                self.shared.connected.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                self.shared.error(format!("{e:#}"));
            }
        }
        result
    }

    /// The openings so far: attempts, and the time from the first to the last.
    pub(crate) fn connections(&self) -> Connections {
        let connected = self.shared.connected.load(Ordering::Relaxed);
        let open_seconds = self
            .last_done
            .lock()
            .map_or(0.0, |t| t.duration_since(self.start).as_secs_f64());
        Connections {
            attempted: self.attempts.load(Ordering::Relaxed),
            connected,
            failed: self.shared.failed.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            open_seconds,
            rate: connected as f64 / open_seconds.max(1e-9),
            connack_latency_us: self.shared.connect_quantiles(),
        }
    }
}

/// `conn`: opens -c connections, holds them for the duration once they are
/// all open, then disconnects them.
pub(crate) async fn run(settings: Arc<Settings>) -> anyhow::Result<Summary> {
    let shared = Shared::new(0);
    let rss_before = settings.watch_pid.and_then(vm_rss_kib);
    let opener = Opener::new(Arc::clone(&settings), Arc::clone(&shared));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(settings.count);
    for i in 0..settings.count {
        let opener = Arc::clone(&opener);
        let shared = Arc::clone(&shared);
        let stop = stop_rx.clone();
        let id = format!("{}-c{i}", settings.id_prefix);
        let keepalive = settings.keepalive;
        tasks.push(tokio::spawn(async move {
            if let Ok(conn) = opener.open(id).await {
                hold(conn, keepalive, stop, &shared).await;
            }
        }));
    }
    let total = settings.count as u64;
    let mut last_report = Instant::now();
    loop {
        let done = shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed);
        if done >= total {
            break;
        }
        if !settings.quiet && last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            eprintln!(
                "[{:>5.1}s] {} connected, {} failed of {total}",
                opener.start.elapsed().as_secs_f64(),
                shared.connected.load(Ordering::Relaxed),
                shared.failed.load(Ordering::Relaxed),
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let opened = opener.connections();
    if !settings.quiet {
        eprintln!(
            "{} connections open in {:.2} s ({:.0}/s); holding them for {:?}",
            opened.connected, opened.open_seconds, opened.rate, settings.duration
        );
    }
    let hold_start = Instant::now();
    // Measure the watched process half-way through the hold, once it settled.
    tokio::time::sleep(settings.duration / 2).await;
    let rss_after = settings.watch_pid.and_then(vm_rss_kib);
    tokio::time::sleep_until((hold_start + settings.duration).into()).await;
    let elapsed = hold_start.elapsed();
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let broker_rss = match (settings.watch_pid, rss_before, rss_after) {
        (Some(pid), Some(before_kib), Some(after_kib)) => Some(Rss {
            pid,
            before_kib,
            after_kib,
            per_connection_bytes: (opened.connected > 0)
                .then(|| (after_kib as f64 - before_kib as f64) * 1024.0 / opened.connected as f64),
        }),
        (Some(pid), _, _) => {
            shared.error(format!("cannot read VmRSS of pid {pid}"));
            None
        }
        _ => None,
    };
    let mut connections = opened;
    connections.dropped = shared.dropped.load(Ordering::Relaxed);
    Ok(Summary::new(
        &settings,
        &shared,
        connections,
        elapsed,
        Delivery::default(),
        broker_rss,
    ))
}

/// Holds an idle connection: answers nothing, pings when Keep Alive requires,
/// counts it as dropped if the broker closes it. Its read buffer is released:
/// an idle connection costs the task, the socket and a few bytes.
async fn hold(mut conn: Conn, keepalive: u16, mut stop: watch::Receiver<bool>, shared: &Shared) {
    conn.read_buf = BytesMut::new();
    let ping_every = (keepalive > 0).then(|| Duration::from_secs(u64::from(keepalive)) / 2);
    let mut last_write = Instant::now();
    let mut scratch = [0u8; 64];
    loop {
        let ping_at = ping_every.map(|p| last_write + p);
        let ping = async {
            match ping_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stopped(&mut stop) => break,
            ready = conn.stream.readable() => {
                if ready.is_err() {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                match conn.stream.try_read(&mut scratch) {
                    // PINGRESP, or whatever: an idle connection only counts bytes.
                    Ok(n) if n > 0 => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    _ => {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
            _ = ping => {
                if conn.send(&Packet::PingReq).await.is_err() {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                last_write = Instant::now();
            }
        }
    }
    conn.close().await;
}
