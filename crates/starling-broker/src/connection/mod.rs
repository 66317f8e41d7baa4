//! One client connection: the CONNECT handshake, then the loop that reads
//! packets, applies them to the session and the broker, and writes what the
//! session has queued. Everything a connection alone knows lives here: its
//! protocol version, keep alive, will, both Topic Alias maps, the client's
//! Receive Maximum and Maximum Packet Size, and the write buffer.
//!
//! Writes are batched: the packets produced by one read (or one wake-up) are
//! encoded into one buffer and written with one `write_all`. The session mutex
//! is never held across an `.await`.
//!
//! Layout: this file has the connection's state, its loop, its writes (with
//! the store's gate) and its deliveries; `open.rs` reads CONNECT, accepts or
//! refuses the client and lingers on a connection the server ends;
//! `packets.rs` applies each packet the client sends.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use starling_proto::property::{ConnAckProperties, Props, PublishOverrides, PublishProperties};
use starling_proto::{
    ConnAck, Connect, DecodeError, Decoder, Delivery as QosDelivery, Disconnect, MqttString,
    Packet, PacketId, PacketType, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish,
    PublishRef, QoS, ReasonCode, RetainHandling, Role, SubAck, Subscribe, SubscriptionOptions,
    TopicAlias, TopicName, UnsubAck, Unsubscribe, Will,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::auth::acl::Client as AclClient;
use crate::auth::{Login, Scope};
use crate::broker::{Broker, Expiry, SessionHandle};
use crate::message::{Delivery, Message};
use crate::rate::RateLimit;
use crate::router::Subscription;
use crate::server::Slot;
use crate::session::Resend;
use crate::stats::Stats;
use crate::transport::{CertificateUser, ConnectionInfo};

mod mount;
mod open;
mod packets;

use open::{handshake, linger};

/// How long a new connection may take to send CONNECT by default
/// (`connect_timeout` in the configuration).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bounds of the adaptive read size.
const MIN_READ_SIZE: usize = 256;
/// How long a publisher is not read from when its messages found a backlog
/// (`handle_buffered`): shorter than a backlog takes to drain at any useful
/// rate, so the subscriber does not run dry.
const BACKLOG_PAUSE: Duration = Duration::from_millis(1);
const MAX_READ_SIZE: usize = 64 * 1024;

/// A connection whose last wait lasted this long (in keep alive ticks: 1 s)
/// waits without a task ([`hibernate`]).
const HIBERNATE_AFTER: u32 = 10;

/// Packets encoded per lock of the session before the buffer is written.
const DRAIN_BATCH: usize = 256;

/// How long the last writes of a closing connection may take: a client that
/// stopped reading must not keep its will and session waiting.
const FINAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a connection the server ends goes on reading (and dropping) what
/// its client still sends, after the final CONNACK or DISCONNECT and the
/// shutdown of the write side: see [`linger`].
pub const LINGER: Duration = Duration::from_secs(2);

/// [`LINGER`] once the server is shutting down: long enough for a client in
/// the middle of a burst, short enough that idle clients, which never close
/// their side, do not hold up the broker's exit (or a restart).
pub const LINGER_AT_SHUTDOWN: Duration = Duration::from_millis(100);

/// How long acknowledgements wait for a store that reports failing before the
/// connection is closed with its reason (a client with a message in flight
/// would otherwise wait with no answer, not even to PINGREQ).
const STORE_PATIENCE: Duration = Duration::from_secs(1);

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// DISCONNECT with Normal disconnection: the will is discarded [MQTT-3.1.2-10].
    Normal,
    /// v5 DISCONNECT 0x04: the will is published.
    DisconnectWithWill,
    /// The client closed the socket without DISCONNECT.
    Closed,
    /// A read or write failed.
    Io(std::io::Error),
    /// The server ends the connection with this reason (sent to v5 clients).
    Server(ReasonCode, String),
    /// The server ends the connection with this reason in the middle of a
    /// write the client was not reading: nothing more can be sent.
    Abandoned(ReasonCode),
}

/// Serves one accepted connection from `peer` until it ends.
pub async fn serve<S>(broker: Arc<Broker>, stream: S, peer: SocketAddr, shutdown: Shutdown)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let info = ConnectionInfo::plain(peer, broker.config.connect_timeout);
    serve_with(broker, stream, info, shutdown).await;
}

/// Serves one connection whose transport is set up (TLS, WebSocket, PROXY
/// header: `info` says what they gave) until it ends, or until it waits
/// without a task ([`hibernate`]): the future may end before the connection.
pub fn serve_with<S>(
    broker: Arc<Broker>,
    stream: S,
    info: ConnectionInfo,
    shutdown: Shutdown,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_in(broker, stream, info, shutdown, Slot::default())
}

/// As [`serve_with`], for a connection that holds `slot` among its
/// listener's connections until it ends.
#[allow(clippy::manual_async_fn)] // on purpose: see the comment in the body
pub fn serve_in<S>(
    broker: Arc<Broker>,
    mut stream: S,
    info: ConnectionInfo,
    shutdown: Shutdown,
    slot: Slot,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed, as is `finish` below, and made before the loop's `async` block,
    // which then holds the state of the loop alone: not that of the handshake
    // (the CONNECT, the login, the attach), nor the connection's `info` and
    // the other arguments the handshake takes (an `async` block keeps what it
    // captures for its whole life), which keeps idle connections small.
    let handshake = Box::pin(async move {
        let (conn, read_buf, decoder) = handshake(&broker, &mut stream, &info).await?;
        Some((conn, stream, read_buf, decoder))
    });
    // An `async` block, not an `async fn`: the state of an `async fn` holds
    // its arguments twice (as arguments and as the locals they move into)
    // for the life of the connection.
    async move {
        let Some((conn, stream, read_buf, decoder)) = handshake.await else {
            return;
        };
        // No timer of its own: the broker's keep alive wheel watches it and
        // wakes it when its keep alive runs out.
        if conn.keep_alive > 0 {
            conn.watch(Instant::now());
        }
        let served = Served {
            conn,
            stream,
            read_buf,
            decoder,
            shutdown,
            slot,
        };
        run_served(served, None).await;
    }
}

/// An open connection and all it holds: what a connection that waits
/// without a task keeps ([`hibernate`]).
struct Served<S> {
    conn: Connection,
    stream: S,
    read_buf: BytesMut,
    decoder: Decoder,
    shutdown: Shutdown,
    /// Its place among its listener's connections, given back when it ends.
    slot: Slot,
}

/// What a read that ended a wait gave: the bytes read into the read buffer
/// (`room` at most), the end of the stream or an error.
struct Read {
    result: std::io::Result<usize>,
    room: usize,
}

/// How [`Connection::run`] returns.
enum Outcome {
    /// The connection ends.
    Ended(End),
    /// The connection is about to wait, and may do so without a task.
    Idle,
}

/// Runs `served` (from `read`, if a read woke it) until it ends, then
/// finishes it; or until it waits without a task. Not an `async fn`, which
/// would hold its argument twice.
#[allow(clippy::manual_async_fn)]
fn run_served<S>(mut served: Served<S>, mut read: Option<Read>) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async move {
        let end = loop {
            let outcome = served
                .conn
                .run(
                    &mut served.stream,
                    &mut served.read_buf,
                    &mut served.decoder,
                    &served.shutdown,
                    read.take(),
                )
                .await;
            match outcome {
                Outcome::Ended(end) => break end,
                Outcome::Idle => match hibernate(served) {
                    None => return,
                    // Something came as it was about to wait.
                    Some((back, woke)) => {
                        served = back;
                        read = woke;
                    }
                },
            }
        };
        served.read_buf = BytesMut::new();
        let server_ended = matches!(end, End::Server(..) | End::Abandoned(_));
        // `finish` consumes the connection: a takeover waiting for it goes
        // on before the linger, not after.
        Box::pin(served.conn.finish(end, &mut served.stream)).await;
        if server_ended {
            linger(&mut served.stream, Some(&served.shutdown)).await;
        }
    }
}

/// Waits for `served`'s client or session without a task: what an idle
/// connection costs is then `served` alone, not a task sized for the busy
/// connection it can be (a tokio task is allocated in 128-byte steps with
/// ~100 bytes of its own). Its socket and its session hold a waker that
/// spawns a task for it again ([`Hibernating`]). `Some` with the connection
/// back if its client or session already has something for it.
fn hibernate<S>(served: Served<S>) -> Option<(Served<S>, Option<Read>)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Its read buffer is empty (and so is its write buffer), and its decoder
    // holds nothing but settings: neither is kept.
    let Served {
        conn,
        stream,
        read_buf: _,
        decoder: _,
        shutdown,
        slot,
    } = served;
    let hibernating = Arc::new(Hibernating {
        parked: parking_lot::Mutex::new(None),
        runtime: tokio::runtime::Handle::current(),
    });
    let waker = std::task::Waker::from(Arc::clone(&hibernating));
    let mut cx = std::task::Context::from_waker(&waker);
    // Parked before the wakers are handed out, and under the lock while they
    // are: a wake-up meanwhile waits for the lock, then finds it parked.
    let mut guard = hibernating.parked.lock();
    let parked = guard.insert(Parked {
        conn,
        stream,
        shutdown,
        slot,
    });
    let mut read_buf = BytesMut::new();
    let room = parked.conn.read_room(&mut read_buf);
    let read = read_some(
        &mut parked.stream,
        &mut read_buf,
        &mut parked.conn.out,
        true,
    );
    let read = match std::pin::pin!(read).poll(&mut cx) {
        std::task::Poll::Ready(result) => Some(Read { result, room }),
        std::task::Poll::Pending => None,
    };
    if read.is_some() || parked.conn.session.poll_woken(&mut cx).is_ready() {
        return Some((guard.take()?.resume(read_buf), read));
    }
    // Parked: its wait begins. Its empty write buffer keeps no allocation
    // (a read to the stack, as this one, does not release it).
    if parked.conn.out.is_empty() {
        parked.conn.out = BytesMut::new();
    }
    parked.conn.last_wait = parked.conn.broker.keep_alives.tick(Instant::now());
    None
}

/// What a connection waiting without a task keeps: [`Served`] but for its
/// read buffer and decoder, made again when it resumes.
struct Parked<S> {
    conn: Connection,
    stream: S,
    shutdown: Shutdown,
    slot: Slot,
}

impl<S> Parked<S> {
    fn resume(self, read_buf: BytesMut) -> Served<S> {
        let decoder = decoder(&self.conn.broker, self.conn.version);
        Served {
            conn: self.conn,
            stream: self.stream,
            read_buf,
            decoder,
            shutdown: self.shutdown,
            slot: self.slot,
        }
    }
}

/// A server's decoder of `version` with the broker's maximum packet size.
fn decoder(broker: &Broker, version: ProtocolVersion) -> Decoder {
    let decoder = Decoder::new(Role::Server, version);
    match broker.config.max_packet_size {
        Some(max) => decoder.with_max_packet_size(max.get()),
        None => decoder,
    }
}

/// A connection waiting without a task ([`hibernate`]), and the waker of its
/// socket and session: the first wake-up spawns a task that runs it again.
struct Hibernating<S> {
    parked: parking_lot::Mutex<Option<Parked<S>>>,
    runtime: tokio::runtime::Handle,
}

impl<S> std::task::Wake for Hibernating<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The lock is released before the spawn: the new task may run at once.
        let parked = self.parked.lock().take();
        if let Some(parked) = parked {
            self.runtime
                .spawn(run_served(parked.resume(BytesMut::new()), None));
        }
    }
}

/// Tells the connections it is given to to end with DISCONNECT 0x8B (Server
/// shutting down) for v5 clients, once [`Shutdown::begin`] is called. A flag,
/// not a channel: the connections learn of it by their session's one wake-up,
/// which costs an idle connection no wait of its own.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A shutdown not yet begun.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Ends this shutdown's connections on `broker`: each ends at its next
    /// turn, and the idle ones are woken.
    pub fn begin(&self, broker: &Broker) {
        self.0.store(true, Ordering::Release);
        broker.wake_sessions();
    }

    /// Whether [`Shutdown::begin`] was called.
    pub fn has_begun(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The reason the connection of `generation` to `session` ends, if a takeover
/// or `shutdown` ends it.
fn ending(session: &SessionHandle, generation: u64, shutdown: &Shutdown) -> Option<ReasonCode> {
    if session.kicked(generation) {
        Some(ReasonCode::SESSION_TAKEN_OVER)
    } else if shutdown.has_begun() {
        Some(ReasonCode::SERVER_SHUTTING_DOWN)
    } else {
        None
    }
}

/// Waits until what a write buffer acknowledges (up to the store's sequence
/// number `gate`) is stored. `Err` with the reason to give the client when
/// the store has been failing for [`STORE_PATIENCE`]; a slow but working disk
/// is waited for.
async fn stored(broker: &Broker, gate: u64) -> Result<(), ReasonCode> {
    loop {
        match tokio::time::timeout(STORE_PATIENCE, broker.durable(gate)).await {
            Ok(()) => return Ok(()),
            Err(_) => {
                if let Some(reason) = broker.store_refusal() {
                    return Err(reason);
                }
            }
        }
    }
}

/// Writes the write buffer `out`, once what it acknowledges is stored (the
/// store's sequence number `gate`; 0: nothing to wait for).
async fn write_out<S: AsyncWrite + Unpin>(
    broker: &Broker,
    out: &mut BytesMut,
    gate: &mut u64,
    stream: &mut S,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    // Group commit: the acknowledgements in this buffer wait for the one
    // batch that stores what they acknowledge.
    if *gate != 0 {
        let gate = std::mem::take(gate);
        broker.durable(gate).await;
    }
    stream.write_all(out).await?;
    // TLS and WebSocket streams hold written bytes until flushed.
    stream.flush().await?;
    Stats::add(&broker.stats.bytes_sent, out.len() as u64);
    out.clear();
    // Do not keep a burst's buffer for an idle connection: one allocation
    // per written batch is cheap, a buffer per idle client is not.
    if out.capacity() > MIN_READ_SIZE {
        *out = BytesMut::new();
    }
    Ok(())
}

/// Reads what the client sent into `buf`: the number of bytes, 0 at the end
/// of the stream. Cancel-safe: bytes are read into `buf` or not at all.
///
/// A quiet client (`quiet`: the read size at its minimum) holds no buffers
/// while it waits: when nothing is there to read and `buf` is empty, `buf` and
/// the empty write buffer `out` are released, and the next read goes to the
/// stack (a local of `poll`, not part of the connection's state) and is copied
/// into a new `buf` of [`MIN_READ_SIZE`]. A busy client finds bytes waiting
/// and reads straight into its buffer.
///
/// Not an `async fn`, which would hold its arguments twice.
fn read_some<'a, S: AsyncRead + Unpin>(
    stream: &'a mut S,
    buf: &'a mut BytesMut,
    out: &'a mut BytesMut,
    quiet: bool,
) -> impl Future<Output = std::io::Result<usize>> + 'a {
    std::future::poll_fn(move |cx| {
        if buf.capacity() == 0 {
            let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); MIN_READ_SIZE];
            let mut read = tokio::io::ReadBuf::uninit(&mut stack);
            std::task::ready!(std::pin::Pin::new(&mut *stream).poll_read(cx, &mut read))?;
            let filled = read.filled();
            if !filled.is_empty() {
                buf.reserve(MIN_READ_SIZE);
                buf.extend_from_slice(filled);
            }
            return std::task::Poll::Ready(Ok(filled.len()));
        }
        // A fresh `read_buf` per poll: it holds nothing but its arguments.
        let polled = std::pin::pin!(stream.read_buf(&mut *buf)).poll(cx);
        if polled.is_pending() && quiet && buf.is_empty() {
            *buf = BytesMut::new();
            if out.is_empty() {
                *out = BytesMut::new();
            }
        }
        polled
    })
}

/// Whether a topic name or filter has more than `max` levels. A topic of
/// fewer bytes than `max` cannot (n levels take n - 1 separators), so the
/// short topics of nearly every PUBLISH are not scanned at all.
fn too_deep(topic: &str, max: u32) -> bool {
    let max = max as usize;
    topic.len() >= max && topic.bytes().filter(|&b| b == b'/').count() >= max
}

/// What few connections have, boxed and made when first needed: 32 bytes
/// less in every connection, and in every idle one ([`Parked`]).
#[derive(Default)]
struct Extras {
    /// Boxed: most clients have none, and it is read only at the end.
    will: Option<Box<Will>>,
    /// Both Topic Alias maps, allocated when the first alias is used.
    aliases: Option<Box<Aliases>>,
    /// `max_publish_rate`: this client's token bucket.
    rate: Option<RateLimit>,
    /// A 3.x client over its rate, or any client whose messages found a
    /// backlog: nothing more is read from it until this ends (backpressure).
    /// Boxed, and only while it lasts: an idle connection holds no timer.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The Topic Alias maps of one connection (MQTT 5.0 §3.3.2.3.4).
#[derive(Default)]
struct Aliases {
    /// Aliases the client set for its PUBLISHes to us.
    inbound: HashMap<u16, TopicName>,
    /// Aliases we assigned for our PUBLISHes to the client, up to its maximum.
    outbound: HashMap<TopicName, TopicAlias>,
}

struct Connection {
    broker: Arc<Broker>,
    session: Arc<SessionHandle>,
    generation: u64,
    version: ProtocolVersion,
    /// In seconds; 0: none.
    keep_alive: u16,
    /// The will, the Topic Alias maps, the rate limit and the pause: what
    /// few connections have (`Extras`).
    extras: Option<Box<Extras>>,
    clean_start: bool,
    /// v5 Session Expiry Interval in force (seconds), changeable at DISCONNECT.
    session_expiry: u32,
    /// The client's Receive Maximum: outbound QoS 1 and 2 in flight at once.
    window: u16,
    /// The client's Maximum Packet Size.
    max_packet_size: u32,
    alias_out_max: u16,
    out: BytesMut,
    log_packets: bool,
    /// How much to read at once: see `run`.
    read_size: usize,
    /// The client's Request Problem Information: whether Reason Strings may go
    /// on acknowledgements [MQTT-3.1.2-29].
    problem_info: bool,
    /// The listener (its bound address: which security scope applies).
    /// Shared, not copied: an address is 32 bytes in every connection.
    listener: Arc<crate::config::Listener>,
    /// The user name the client logged in with (or its certificate gave).
    /// Not a `String`: 8 bytes less in every connection.
    username: Option<Box<str>>,
    /// The password file, ACL and settings in force for this client; replaced
    /// when a reload is announced on `reloads`.
    scope: Arc<Scope>,
    reloads: watch::Receiver<u64>,
    /// The store's sequence number the next write waits for: an
    /// acknowledgement in the write buffer promises what came before it is
    /// stored. 0: nothing to wait for.
    gate: u64,
    /// When its last wait began, in keep alive ticks ([`Self::may_hibernate`]).
    last_wait: u32,
}

impl Drop for Connection {
    /// At the end of `finish`, or wherever the connection's task is dropped.
    fn drop(&mut self) {
        if self.keep_alive > 0 {
            self.broker
                .keep_alives
                .unwatch(&self.session, self.generation);
        }
        self.session.forget_waiter(self.generation);
        self.broker.finished(&self.session, self.generation);
    }
}

/// Waits for the end of the pause in `extras`, for ever if there is none.
fn pause_ended(extras: &mut Option<Box<Extras>>) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(
        move |cx| match extras.as_mut().and_then(|e| e.pause.as_mut()) {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => std::task::Poll::Pending,
        },
    )
}

impl Connection {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        read_buf: &mut BytesMut,
        decoder: &mut Decoder,
        shutdown: &Shutdown,
        mut read: Option<Read>,
    ) -> Outcome {
        loop {
            if let Some(Read { result, room }) = read.take() {
                match self.after_read(result, room, read_buf, decoder) {
                    Err(end) => return Outcome::Ended(end),
                    // A read that filled the buffer: the client has more to
                    // send. Let the other tasks run first, or a few fast
                    // publishers read up to the scheduler's budget (128 reads)
                    // per turn and starve the subscribers they feed.
                    Ok(true) => tokio::task::yield_now().await,
                    Ok(false) => {}
                }
            }
            // A takeover, a shutdown or a reload comes as a wake-up of the
            // session (its reason in a flag), which every arm below ends in,
            // or before the first turn: each is seen here.
            if let Some(end) = self.interrupted(shutdown) {
                return Outcome::Ended(end);
            }
            let now = Instant::now();
            let more = self.drain(now);
            // Acknowledgements wait for the store (group commit). While it
            // cannot be written they are withheld, and the client is told so
            // rather than left waiting with no answer to its pings.
            // A wake-up taken while waiting below that was not an ending was
            // for a delivery: drain again before waiting on the socket, or
            // that delivery waits for the client's next packet.
            let mut woken = false;
            if self.gate != 0 {
                let (session, generation) = (&self.session, self.generation);
                // Boxed: only a connection with storage on waits here.
                let mut stored = Box::pin(stored(&self.broker, self.gate));
                let stored = loop {
                    tokio::select! {
                        biased;
                        stored = &mut stored => break Ok(stored),
                        () = session.woken() => {
                            if let Some(reason) = ending(session, generation, shutdown) {
                                break Err(reason);
                            }
                            woken = true;
                        }
                    }
                };
                self.gate = 0;
                match stored {
                    Ok(Ok(())) => {}
                    Ok(Err(reason)) => {
                        self.out.clear();
                        return Outcome::Ended(End::Server(
                            reason,
                            "the store cannot be written; acknowledgements withheld".into(),
                        ));
                    }
                    Err(reason) => return Outcome::Ended(End::Server(reason, String::new())),
                }
            }
            // A client that stops reading can block this write for ever: a
            // takeover or a shutdown still ends the connection. `flush` is not
            // cancel-safe, so that leaves the stream mid-packet: `Abandoned`.
            // Boxed, and only with something to write: an idle connection
            // then holds none of the write's state.
            if !self.out.is_empty() {
                let (session, generation) = (&self.session, self.generation);
                let flush = write_out(&self.broker, &mut self.out, &mut self.gate, &mut *stream);
                let woken = &mut woken;
                let ended = Box::pin(async move {
                    tokio::pin!(flush);
                    loop {
                        tokio::select! {
                            biased;
                            flushed = &mut flush => break flushed.err().map(End::Io),
                            () = session.woken() => {
                                if let Some(reason) = ending(session, generation, shutdown) {
                                    break Some(End::Abandoned(reason));
                                }
                                *woken = true;
                            }
                        }
                    }
                })
                .await;
                if let Some(end) = ended {
                    return Outcome::Ended(end);
                }
            }
            if more || woken {
                continue;
            }
            let room = self.read_room(read_buf);
            // A 3.x client over `max_publish_rate` is not read from until its
            // bucket has refilled, nor one whose messages found a backlog for
            // `BACKLOG_PAUSE`; nor is its keep alive counted meanwhile.
            let paused = self.paused();
            let tick = self.broker.keep_alives.tick(now);
            if !paused && self.may_hibernate(tick, read_buf) {
                return Outcome::Idle;
            }
            self.last_wait = tick;
            // Every arm is cancel-safe: `read_some` reads into the buffer or
            // not at all, the session keeps a wake-up that comes while
            // another arm runs, and the pause is a timer.
            tokio::select! {
                biased;
                result = read_some(stream, read_buf, &mut self.out, self.read_size == MIN_READ_SIZE), if !paused => {
                    read = Some(Read { result, room });
                }
                // A message queued, a takeover, a shutdown, a reload, the keep
                // alive: the next turn of the loop sees which.
                () = self.session.woken() => {}
                () = pause_ended(&mut self.extras), if paused => {
                    if let Some(extras) = &mut self.extras {
                        extras.pause = None;
                    }
                    // The keep alive counts from the end of the pause.
                    if self.keep_alive > 0 {
                        self.session.touch(self.broker.keep_alives.tick(Instant::now()));
                    }
                    if let Err(end) = self.handle_buffered(read_buf, decoder) {
                        return Outcome::Ended(end);
                    }
                }
            }
        }
    }

    /// How much the next read may take, the read buffer made ready for it.
    /// The buffer follows the traffic: it doubles while reads fill it and
    /// falls back to a few hundred bytes for a quiet client, which holds
    /// none at all while it waits (see `read_some`).
    fn read_room(&self, read_buf: &mut BytesMut) -> usize {
        if read_buf.is_empty() && read_buf.capacity() > 2 * self.read_size {
            *read_buf = BytesMut::new();
        }
        if read_buf.capacity() == 0 && self.read_size == MIN_READ_SIZE {
            MIN_READ_SIZE
        } else {
            if read_buf.capacity() - read_buf.len() < self.read_size / 2 {
                read_buf.reserve(self.read_size);
            }
            read_buf.capacity() - read_buf.len()
        }
    }

    /// Handles what a read of at most `room` bytes gave. `Ok(true)`: it
    /// filled its room, the client has more to send.
    fn after_read(
        &mut self,
        result: std::io::Result<usize>,
        room: usize,
        read_buf: &mut BytesMut,
        decoder: &mut Decoder,
    ) -> Result<bool, End> {
        let n = match result {
            Ok(0) => return Err(End::Closed),
            Err(e) => return Err(End::Io(e)),
            Ok(n) => n,
        };
        Stats::add(&self.broker.stats.bytes_received, n as u64);
        if n == room {
            self.read_size = (self.read_size * 2).min(MAX_READ_SIZE);
        } else if n < self.read_size / 4 {
            self.read_size = (self.read_size / 2).max(MIN_READ_SIZE);
        }
        self.handle_buffered(read_buf, decoder)?;
        Ok(n == room)
    }

    /// Whether the connection, about to wait at keep alive tick `tick`,
    /// should wait without a task ([`hibernate`]): it holds no buffer and no
    /// pause, and its last wait began [`HIBERNATE_AFTER`] or more before (or
    /// this is its first), so this one is likely to be long too. A busy
    /// connection, whose waits are short, keeps its task: resuming costs a
    /// task's allocation.
    fn may_hibernate(&self, tick: u32, read_buf: &BytesMut) -> bool {
        tick.wrapping_sub(self.last_wait) >= HIBERNATE_AFTER
            && self.read_size == MIN_READ_SIZE
            && read_buf.is_empty()
            && self.out.is_empty()
    }

    /// Decodes and handles the packets in `read_buf`, stopping early when a
    /// 3.x client went over its rate (the rest waits for the pause to end).
    fn handle_buffered(
        &mut self,
        read_buf: &mut BytesMut,
        decoder: &mut Decoder,
    ) -> Result<(), End> {
        // One clock read and one count per read, not per packet: both are
        // measurable on a publisher's path.
        let now = Instant::now();
        if self.keep_alive > 0 {
            self.session.touch(self.broker.keep_alives.tick(now));
        }
        let mut received = 0;
        // What other tasks on this thread pushed is theirs to wait for.
        crate::storage::writer::take_pushed();
        crate::broker::take_backed_up();
        let result = loop {
            if self.paused() {
                break Ok(());
            }
            match decoder.decode(read_buf) {
                Ok(Some(packet)) => {
                    received += 1;
                    if let Err(end) = self.handle(packet, now) {
                        break Err(end);
                    }
                    // Backpressure: what this client published waits behind a
                    // backlog, so stop reading it for a moment. TCP then slows
                    // the client down, which is the only flow control a 3.x
                    // publisher has (and a v5 one has none towards a slow
                    // subscriber).
                    if crate::broker::take_backed_up() {
                        self.pause_for(BACKLOG_PAUSE);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(End::Server(e.reason_code(), e.to_string())),
            }
        };
        Stats::add(&self.broker.stats.packets_received, received);
        result
    }

    /// Stops reading from the client for `wait`.
    fn pause_for(&mut self, wait: Duration) {
        self.extras().pause = Some(Box::pin(tokio::time::sleep(wait)));
    }

    /// Whether reading from the client is paused.
    fn paused(&self) -> bool {
        self.extras.as_ref().is_some_and(|e| e.pause.is_some())
    }

    /// The extras, made if need be.
    fn extras(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// The client's will, if it has one.
    fn will(&self) -> Option<&Will> {
        self.extras.as_ref()?.will.as_deref()
    }

    /// Has the broker's keep alive wheel watch this connection, which reads
    /// at `now`.
    fn watch(&self, now: Instant) {
        let keep_alive = Duration::from_secs(u64::from(self.keep_alive));
        self.broker
            .keep_alives
            .watch(&self.session, self.generation, keep_alive, now);
    }

    /// Whether the keep alive ran out [MQTT-3.1.2-24]: no packet for one
    /// and a half keep alives. The wheel said so; a read since (a race) or a
    /// pause (which the keep alive does not count) says otherwise, and the
    /// wheel watches the connection again.
    fn timed_out(&self) -> bool {
        if self.keep_alive == 0 || !self.session.take_timed_out(self.generation) {
            return false;
        }
        let now = Instant::now();
        let keep_alive = Duration::from_secs(u64::from(self.keep_alive));
        if !self.paused()
            && self
                .broker
                .keep_alives
                .expired(&self.session, keep_alive, now)
        {
            return true;
        }
        self.watch(now);
        false
    }

    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> std::io::Result<()> {
        write_out(&self.broker, &mut self.out, &mut self.gate, stream).await
    }

    /// Why the connection must end now, if it must: taken over, the server
    /// shutting down, or its client no longer allowed after a reload.
    fn interrupted(&mut self, shutdown: &Shutdown) -> Option<End> {
        if let Some(reason) = ending(&self.session, self.generation, shutdown) {
            if reason == ReasonCode::SESSION_TAKEN_OVER {
                info!(
                    "Client {} already connected, closing old connection.",
                    self.session.client_id
                );
            }
            return Some(End::Server(reason, String::new()));
        }
        if self.timed_out() {
            info!(
                "Client {} has exceeded timeout, disconnecting.",
                self.session.client_id
            );
            return Some(End::Server(ReasonCode::KEEP_ALIVE_TIMEOUT, String::new()));
        }
        // A reload of the password and ACL files (`Broker::reload`).
        if self.reloads.has_changed().unwrap_or(false) {
            self.reloads.mark_unchanged();
            return self.reloaded();
        }
        None
    }

    /// Ends the connection: a final DISCONNECT for v5 clients when the server
    /// ends it, the will, the session's fate.
    async fn finish<S: AsyncWrite + Unpin>(mut self, end: End, stream: &mut S) {
        // A takeover that continues a session that outlives this connection
        // is the new network connection [MQTT-3.1.3-9] speaks of: no will, as
        // in Mosquitto (which publishes it only when the takeover ends the
        // session).
        let resumed_elsewhere = matches!(end, End::Server(reason, _) if reason == ReasonCode::SESSION_TAKEN_OVER)
            && self.session.taken_over_by_resume(self.generation)
            && self.expiry() != Expiry::Now;
        let publish_will = !matches!(end, End::Normal) && !resumed_elsewhere;
        match &end {
            End::Normal => info!("Client {} disconnected.", self.session.client_id),
            End::DisconnectWithWill => {
                info!("Client {} disconnected with will.", self.session.client_id)
            }
            End::Closed => info!("Client {} closed its connection.", self.session.client_id),
            End::Io(e) => info!("Client {} disconnected: {e}.", self.session.client_id),
            End::Server(reason, text) => {
                if !text.is_empty() {
                    info!("Client {} disconnected: {text}", self.session.client_id);
                }
                if self.version.is_v5() {
                    let mut disconnect = Disconnect::new(*reason);
                    // DISCONNECT may carry a Reason String whatever Request
                    // Problem Information says [MQTT-3.1.2-29].
                    if !text.is_empty() {
                        disconnect.properties.reason_string =
                            MqttString::try_from(text.as_str()).ok();
                    }
                    self.send(Packet::Disconnect(disconnect));
                }
            }
            End::Abandoned(reason) => info!(
                "Client {} disconnected ({reason}) while not reading.",
                self.session.client_id
            ),
        }
        let abandoned = matches!(end, End::Abandoned(_));
        let _ = tokio::time::timeout(FINAL_WRITE_TIMEOUT, async {
            if !abandoned {
                let _ = self.flush(stream).await;
            }
            let _ = stream.shutdown().await;
        })
        .await;
        // The will is checked as a publish when it is published, as Mosquitto
        // does (a delayed will: when its connection ends).
        let will = self.extras.as_mut().and_then(|e| e.will.take());
        let will = will.filter(|_| publish_will).filter(|will| {
            let allowed = self.scope.may_publish(&self.acl_client(), &will.topic);
            if !allowed {
                debug!(
                    "Denied will of {} to '{}'",
                    self.session.client_id, will.topic
                );
            }
            allowed
        });
        let will = will.map(|will| {
            let delay =
                Duration::from_secs(u64::from(will.properties.will_delay_interval.unwrap_or(0)));
            (will_message(*will, &self.broker), delay)
        });
        let expiry = self.expiry();
        self.broker
            .detach(&self.session, self.generation, will, expiry);
        debug!("connection of {} finished", self.session.client_id);
    }

    fn expiry(&self) -> Expiry {
        if self.version.is_v5() {
            return match self.session_expiry {
                0 => Expiry::Now,
                // As Mosquitto: persistent_client_expiration also bounds v5
                // sessions that asked never to expire.
                u32::MAX => match self.broker.config.persistent_client_expiration {
                    Some(after) => Expiry::After(after),
                    None => Expiry::Never,
                },
                secs => Expiry::After(Duration::from_secs(u64::from(secs))),
            };
        }
        if self.clean_start {
            return Expiry::Now;
        }
        match self.broker.config.persistent_client_expiration {
            Some(after) => Expiry::After(after),
            None => Expiry::Never,
        }
    }

    /// Makes the next write wait for the store, if a packet of type `packet`
    /// (a PUBLISH: of QoS `qos`) must.
    fn gate_for(&mut self, packet: PacketType, qos: QoS) {
        // What these packets tell the client may be relied on after a crash,
        // so they wait for the store: an acknowledgement (the message,
        // subscription or session is kept: the changes this connection's
        // handling made), a PUBREL (its flow's new state is kept), a QoS 2
        // PUBLISH (its packet identifier is kept, and so is the publisher's
        // side, or a restart would deliver it twice [MQTT-4.3.3-10]).
        let waits_for = match packet {
            PacketType::ConnAck
            | PacketType::PubAck
            | PacketType::PubRec
            | PacketType::PubRel
            | PacketType::PubComp
            | PacketType::SubAck
            | PacketType::UnsubAck => crate::storage::writer::take_pushed(),
            PacketType::Publish if qos == QoS::ExactlyOnce => self.broker.store_seq(),
            _ => 0,
        };
        self.gate = self.gate.max(waits_for);
    }

    /// Encodes `packet` into the write buffer.
    fn send(&mut self, packet: Packet) {
        let qos = match &packet {
            Packet::Publish(publish) => publish.delivery.qos(),
            _ => QoS::AtMostOnce,
        };
        self.gate_for(packet.packet_type(), qos);
        if self.log_packets {
            debug!(
                "Sending {} to {}",
                crate::log::describe(&packet),
                self.session.client_id
            );
        }
        match packet.encode(self.version, &mut self.out) {
            Ok(()) => Stats::add(&self.broker.stats.packets_sent, 1),
            Err(e) => warn!(
                "cannot encode {} for {}: {e}",
                packet.packet_type(),
                self.session.client_id
            ),
        }
    }

    /// Moves queued messages into the write buffer while the client's window
    /// allows. Returns whether more are ready (the buffer should be written
    /// first).
    fn drain(&mut self, now: Instant) -> bool {
        let mut batch = Vec::new();
        let mut too_large = 0;
        {
            let mut state = self.broker.state(&self.session);
            while batch.len() < DRAIN_BATCH {
                // PUBLISHes held back at resume go first, in their order.
                if let Some((id, delivery)) = state.next_held(usize::from(self.window)) {
                    if self.may_read(&delivery) {
                        batch.push((delivery, Some(id), true));
                    } else {
                        forget_inflight(&mut state, id, delivery.qos);
                    }
                    continue;
                }
                let Some(delivery) = state.next_ready(usize::from(self.window), now) else {
                    break;
                };
                // Every delivery is checked against the ACL in force now: live,
                // retained, queued while offline, or handed over by a shared
                // group (mosquitto.conf(5) acl_file: "Existing subscriptions
                // will be affected after the reload").
                if !self.may_read(&delivery) {
                    debug!(
                        "Denied delivery of '{}' to {}",
                        delivery.message.topic, self.session.client_id
                    );
                    continue;
                }
                // A message too large for this client is dropped for it alone
                // [MQTT-3.1.2-25]. Only a client that set a limit pays for the check.
                if self.max_packet_size != u32::MAX {
                    let publish = self.build_publish(&delivery, None, false, now);
                    let size = publish.encoded_len(self.version);
                    if size > self.max_packet_size as usize {
                        too_large += 1;
                        continue;
                    }
                }
                let id = (delivery.qos != QoS::AtMostOnce)
                    .then(|| state.start_inflight(delivery.clone()));
                batch.push((delivery, id, false));
            }
            if !batch.is_empty() {
                state.note_progress(now);
            }
        }
        if too_large > 0 {
            Stats::add(&self.broker.stats.publish_dropped, too_large);
        }
        let more = batch.len() == DRAIN_BATCH;
        for (delivery, id, dup) in batch {
            self.send_delivery(delivery, id, dup, now);
        }
        more
    }

    /// The client as the ACL sees it.
    fn acl_client(&self) -> AclClient<'_> {
        AclClient {
            client_id: self.session.client_id.as_str(),
            username: self.username.as_deref(),
        }
    }

    /// Whether the ACL in force lets this client receive `delivery`.
    fn may_read(&self, delivery: &Delivery) -> bool {
        !self.scope.checks_reads()
            || self
                .scope
                .may_read(&self.acl_client(), &delivery.message.topic)
    }

    /// Drops a message in flight that may no longer be sent again.
    fn forget_inflight(&self, id: PacketId, qos: QoS) {
        forget_inflight(&mut self.broker.state(&self.session), id, qos);
    }

    /// A reload was announced: takes the new scope, and disconnects an
    /// anonymous client that is no longer allowed (as Mosquitto's
    /// `mosquitto_security_apply_default`); logged-in clients stay.
    fn reloaded(&mut self) -> Option<End> {
        self.scope = Arc::clone(self.broker.auth.state().scope(Some(self.listener.bind)));
        if self.username.is_none() && !self.scope.settings.allow_anonymous {
            return Some(End::Server(
                ReasonCode::NOT_AUTHORIZED,
                "anonymous clients are no longer allowed".into(),
            ));
        }
        None
    }

    /// The PUBLISH that sends `delivery` to this client: it borrows the shared
    /// message, so a delivery copies no property and touches no reference count.
    fn build_publish<'d>(
        &self,
        delivery: &'d Delivery,
        id: Option<PacketId>,
        dup: bool,
        now: Instant,
    ) -> PublishRef<'d> {
        let message = &delivery.message;
        let delivery_qos = match (delivery.qos, id) {
            (QoS::AtLeastOnce, Some(id)) => QosDelivery::AtLeastOnce(id),
            (QoS::ExactlyOnce, Some(id)) => QosDelivery::ExactlyOnce(id),
            // Sizing before an identifier is allocated: any identifier has the same size.
            (QoS::AtLeastOnce, None) => QosDelivery::AtLeastOnce(PacketId::MIN),
            (QoS::ExactlyOnce, None) => QosDelivery::ExactlyOnce(PacketId::MIN),
            (QoS::AtMostOnce, _) => QosDelivery::AtMostOnce,
        };
        // 3.x has no properties: they are not encoded.
        let overrides = if self.version.is_v5() {
            PublishOverrides {
                // [MQTT-3.3.2-6]: forward the expiry interval less the time spent here.
                message_expiry_interval: message.remaining_expiry(now),
                topic_alias: None,
                subscription_identifiers: &delivery.subscription_ids,
            }
        } else {
            PublishOverrides::default()
        };
        PublishRef {
            dup: dup && delivery.qos != QoS::AtMostOnce,
            delivery: delivery_qos,
            retain: delivery.retain,
            topic: &message.topic,
            payload: &message.payload,
            properties: &message.properties,
            overrides,
        }
    }

    fn send_delivery(&mut self, delivery: Delivery, id: Option<PacketId>, dup: bool, now: Instant) {
        if self.listener.settings.mount_point.is_some() {
            return self.send_mounted_delivery(delivery, id, dup, now);
        }
        let mut publish = self.build_publish(&delivery, id, dup, now);
        if self.alias_out_max > 0 {
            self.apply_outbound_alias(&mut publish);
        }
        Stats::add(&self.broker.stats.messages_sent, 1);
        self.send_publish(publish);
    }

    /// [`Self::send_delivery`] for a client under a mount point, which sees
    /// its topics without it. Out of line: most listeners have none.
    #[cold]
    #[inline(never)]
    fn send_mounted_delivery(
        &mut self,
        delivery: Delivery,
        id: Option<PacketId>,
        dup: bool,
        now: Instant,
    ) {
        let Some(mount) = self.listener.settings.mount_point.clone() else {
            return;
        };
        let Some(unmounted) = mount::unmounted(&mount, &delivery.message.topic) else {
            return;
        };
        let mut publish = self.build_publish(&delivery, id, dup, now);
        publish.topic = &unmounted;
        if self.alias_out_max > 0 {
            self.apply_outbound_alias(&mut publish);
        }
        Stats::add(&self.broker.stats.messages_sent, 1);
        self.send_publish(publish);
    }

    /// Encodes a PUBLISH into the write buffer, as [`Self::send`] does a packet.
    #[inline]
    fn send_publish(&mut self, publish: PublishRef<'_>) {
        self.gate_for(PacketType::Publish, publish.qos());
        if self.log_packets {
            let mut owned = publish.to_publish();
            if !self.version.is_v5() {
                owned.properties = Props::none();
            }
            debug!(
                "Sending {} to {}",
                crate::log::describe(&Packet::Publish(owned)),
                self.session.client_id
            );
        }
        match publish.encode(self.version, &mut self.out) {
            Ok(()) => Stats::add(&self.broker.stats.packets_sent, 1),
            Err(e) => warn!("cannot encode PUBLISH for {}: {e}", self.session.client_id),
        }
    }

    /// Uses a Topic Alias for a topic sent before, or assigns the next free one
    /// while the client's Topic Alias Maximum allows; but never one that makes
    /// the packet larger than the client's Maximum Packet Size [MQTT-3.1.2-24]
    /// (`drain` checked the size without an alias).
    fn apply_outbound_alias(&mut self, publish: &mut PublishRef<'_>) {
        static EMPTY: TopicName = TopicName::empty();
        let aliases = self
            .extras
            .get_or_insert_with(Box::default)
            .aliases
            .get_or_insert_with(Box::default);
        let (alias, new) = match aliases.outbound.get(publish.topic) {
            Some(&alias) => (alias, false),
            None if aliases.outbound.len() < usize::from(self.alias_out_max) => {
                match TopicAlias::new(aliases.outbound.len() as u16 + 1) {
                    Some(alias) => (alias, true),
                    None => return,
                }
            }
            None => return,
        };
        let mut aliased = *publish;
        aliased.overrides.topic_alias = Some(alias);
        if !new {
            aliased.topic = &EMPTY;
        }
        if self.max_packet_size < u32::MAX
            && aliased.encoded_len(self.version) > self.max_packet_size as usize
        {
            return;
        }
        if new {
            aliases.outbound.insert(publish.topic.clone(), alias);
        }
        *publish = aliased;
    }
}

/// Removes message `id` from the in-flight ones, whatever its QoS flow.
fn forget_inflight(state: &mut crate::session::SessionState, id: PacketId, qos: QoS) {
    if qos == QoS::ExactlyOnce {
        state.handle_pubrec(id, true);
    } else {
        state.handle_puback(id);
    }
}

/// The message a will becomes.
fn will_message(will: Will, broker: &Broker) -> Message {
    let p = will.properties;
    let properties = PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        content_type: p.content_type,
        ..Default::default()
    };
    let now = Instant::now();
    Message {
        topic: will.topic,
        payload: will.payload,
        qos: will.qos,
        retain: will.retain && broker.config.retain_available,
        expires_at: properties
            .message_expiry_interval
            .map(|secs| now + Duration::from_secs(u64::from(secs))),
        properties: properties.into(),
        origin: None,
        publisher: None,
        stored_id: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_quiet_reader_waits_without_buffers_and_loses_nothing() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let mut buf = BytesMut::with_capacity(MIN_READ_SIZE);
        let mut out = BytesMut::with_capacity(8);
        // Nothing to read: both buffers are released while it waits.
        let waited = tokio::time::timeout(
            Duration::from_millis(10),
            read_some(&mut server, &mut buf, &mut out, true),
        )
        .await;
        assert!(waited.is_err());
        assert_eq!((buf.capacity(), out.capacity()), (0, 0));
        // The next read goes through the stack into a new buffer.
        client.write_all(b"hello").await.unwrap();
        let n = read_some(&mut server, &mut buf, &mut out, true)
            .await
            .unwrap();
        assert_eq!((n, &buf[..]), (5, &b"hello"[..]));
        // A busy client keeps its buffer.
        buf.clear();
        let waited = tokio::time::timeout(
            Duration::from_millis(10),
            read_some(&mut server, &mut buf, &mut out, false),
        )
        .await;
        assert!(waited.is_err());
        assert!(buf.capacity() >= MIN_READ_SIZE);
        drop(client);
        let n = read_some(&mut server, &mut buf, &mut out, true)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    /// A busy connection holds this future (issue 7: memory per idle
    /// connection). 1,224 bytes over TCP when this was first written; 816
    /// (release) once the handshake's arguments were left out of it and the
    /// idle `select!` waited on the session's one wake-up instead of also a
    /// kick, the shutdown and the reloads (those were 304 bytes); 688 once
    /// `Connection` (208 bytes) shared its client id, listener and peer
    /// instead of copying them; 456 without a keep alive timer and a
    /// `Notified` (issue 17). An idle connection holds no task since
    /// (`a_hibernating_connection_stays_small`); the loop's state in it grew
    /// by what resuming one needs. The task adds ~100 bytes and is
    /// allocated in 128-byte steps. A new field or `select!` arm that grows
    /// it should be boxed or justified.
    #[tokio::test]
    async fn an_idle_connection_future_stays_small() {
        let broker = Broker::new(crate::config::Config::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        drop(client);
        let info = ConnectionInfo::plain(peer, CONNECT_TIMEOUT);
        let serve = serve_with(broker, server, info, Shutdown::new());
        let size = std::mem::size_of_val(&serve);
        assert!(size <= 800, "serve_with future: {size} bytes");
    }

    /// An idle connection waits without a task (issue 17), and a packet
    /// from its client, or the server shutting down, brings it back.
    #[tokio::test]
    async fn an_idle_connection_waits_without_a_task_and_wakes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let broker = Broker::new(crate::config::Config {
            sys_interval: None,
            ..Default::default()
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::server::serve(
            Arc::clone(&broker),
            vec![listener],
            async {
                let _ = stopped.await;
            },
        ));
        let metrics = tokio::runtime::Handle::current().metrics();
        let tasks = || metrics.num_alive_tasks();
        tokio::task::yield_now().await;
        let before = tasks();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut out = BytesMut::new();
        let id = MqttString::try_from("sleeper").unwrap();
        let mut connect = Connect::new(ProtocolVersion::V3_1_1, id);
        // No keep alive: its sweeper would be one more task.
        connect.keep_alive = 0;
        Packet::Connect(Box::new(connect))
            .encode(ProtocolVersion::V3_1_1, &mut out)
            .unwrap();
        client.write_all(&out).await.unwrap();
        let mut answer = [0u8; 4];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, [0x20, 0x02, 0x00, 0x00], "CONNACK");
        // Its task ends once it waits: the connection lives on without one.
        let deadline = Instant::now() + Duration::from_secs(5);
        while tasks() != before {
            assert!(
                Instant::now() < deadline,
                "the connection's task did not end: {} tasks, {before} before",
                tasks()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(broker.session_count(), 1);
        // A PINGREQ wakes it, and it answers.
        client.write_all(&[0xC0, 0x00]).await.unwrap();
        let mut pong = [0u8; 2];
        client.read_exact(&mut pong).await.unwrap();
        assert_eq!(pong, [0xD0, 0x00], "PINGRESP");
        // So does the end of the server: the client is told, the server ends.
        stop.send(()).unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        server.await.unwrap();
        assert_eq!(broker.session_count(), 0);
    }

    /// What an idle connection costs beside its socket and its session
    /// (issue 17): its `Parked` state in an `Arc` (16 bytes more), which
    /// jemalloc serves from its 256-byte size class while it is at most 240
    /// bytes (the next class is 320). 232 bytes over TCP when this was
    /// written. A new field of `Connection` should go to `Extras` (what few
    /// connections have) or be justified.
    #[test]
    fn a_hibernating_connection_stays_small() {
        let size = std::mem::size_of::<Hibernating<tokio::net::TcpStream>>();
        assert!(size <= 240, "a hibernating connection: {size} bytes");
    }
}
