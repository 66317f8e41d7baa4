//! The connection task: the thin tokio shell around [`ClientState`].
//!
//! One task per client owns the transport. Its loop reads bytes and hands each
//! decoded packet to the state, takes commands from the [`Client`](crate::Client)
//! handles, fires the state's keep-alive deadline, and writes whatever the state
//! queued: all the packets produced by one read or one command go out in one
//! buffer, one write call. Completions go back to the callers over oneshot
//! channels; events go to [`Events`](crate::Events) through a bounded channel,
//! and while that channel is full the task stops reading from the broker (TCP
//! backpressure) rather than buffering without bound; keep alive pauses with
//! it, since an unread PINGRESP is not the broker's fault.
//!
//! When the connection is lost the task waits (backoff), reconnects and carries
//! on with the same state, which resends the session; meanwhile publishes are
//! queued (up to the offline bound) and other requests fail with
//! [`Error::NotConnected`].
//!
//! Shutdown: [`Client::disconnect`](crate::Client::disconnect) (or the last
//! handle being dropped, which disconnects with reason Normal) makes the state
//! queue DISCONNECT and fail every pending request with [`Error::Closed`]; the
//! task writes what is queued (for at most [`FLUSH_TIMEOUT`]), shuts the socket
//! down, delivers the remaining events and ends, which ends the event stream.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use starling_proto::property::{SubscribeProperties, UnsubscribeProperties};
use starling_proto::{
    ConnAck, Connect, Decoder, Disconnect, MqttString, Packet, ReasonCode, Role, SubAck,
    SubscriptionOptions, TopicFilter, UnsubAck,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tracing::{debug, warn};

use crate::backoff::Backoff;
use crate::error::Error;
use crate::event::{packet_message_id, Direction, Event, Message, PacketTrace, Published};
use crate::now;
use crate::options::ClientOptions;
use crate::state::{ClientState, Output, Reply, Token};
use crate::transport::Transport;

/// How long closing may spend writing what is left (DISCONNECT above all).
pub(crate) const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Stop taking commands while this many bytes wait to be written.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// Read this much at least per read call.
const READ_CHUNK: usize = 8 * 1024;

/// A request from a [`Client`](crate::Client) handle.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        message: Box<Message>,
        reply: oneshot::Sender<Result<Published, Error>>,
    },
    Subscribe {
        filters: Vec<(TopicFilter, SubscriptionOptions)>,
        properties: SubscribeProperties,
        reply: oneshot::Sender<Result<SubAck, Error>>,
    },
    Unsubscribe {
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
        reply: oneshot::Sender<Result<UnsubAck, Error>>,
    },
    Disconnect {
        disconnect: Disconnect,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// Someone waiting for a request to complete.
#[derive(Debug)]
enum Waiter {
    Publish(oneshot::Sender<Result<Published, Error>>),
    Subscribe(oneshot::Sender<Result<SubAck, Error>>),
    Unsubscribe(oneshot::Sender<Result<UnsubAck, Error>>),
}

impl Waiter {
    /// Hands `result` over; a caller that stopped waiting is not an error.
    fn complete(self, result: Result<Reply, Error>) {
        let mismatch = || Error::Protocol("a reply of the wrong kind (client bug)");
        match self {
            Waiter::Publish(tx) => {
                let _ = tx.send(result.and_then(|reply| match reply {
                    Reply::Published(published) => Ok(published),
                    _ => Err(mismatch()),
                }));
            }
            Waiter::Subscribe(tx) => {
                let _ = tx.send(result.and_then(|reply| match reply {
                    Reply::SubAck(ack) => Ok(ack),
                    _ => Err(mismatch()),
                }));
            }
            Waiter::Unsubscribe(tx) => {
                let _ = tx.send(result.and_then(|reply| match reply {
                    Reply::UnsubAck(ack) => Ok(ack),
                    _ => Err(mismatch()),
                }));
            }
        }
    }
}

/// What the handles can read without asking the task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) client_id: MqttString,
    pub(crate) assigned_client_id: Option<MqttString>,
    pub(crate) connack: Option<ConnAck>,
    pub(crate) connected: bool,
}

/// One open connection: the transport's halves and their buffers.
#[derive(Debug)]
pub(crate) struct Link {
    reader: ReadHalf<Transport>,
    writer: WriteHalf<Transport>,
    decoder: Decoder,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// Bytes written since the link opened.
    written: u64,
    /// QoS 0 publishes that complete once `written` reaches their end offset.
    on_written: VecDeque<(u64, Token, Published)>,
    /// The transport holds written bytes until flushed (TLS, WebSocket).
    buffers_writes: bool,
    /// Bytes were written since the last flush.
    unflushed: bool,
}

impl Link {
    fn new(transport: Transport, decoder: Decoder) -> Self {
        let buffers_writes = transport.buffers_writes();
        let (reader, writer) = tokio::io::split(transport);
        Link {
            reader,
            writer,
            decoder,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: BytesMut::new(),
            written: 0,
            on_written: VecDeque::new(),
            buffers_writes,
            unflushed: false,
        }
    }

    /// Writes what is buffered and shuts the write side down, within `FLUSH_TIMEOUT`.
    async fn flush_and_close(&mut self) -> Result<(), Error> {
        let flush = async {
            self.writer.write_all_buf(&mut self.write_buf).await?;
            self.writer.flush().await?;
            self.writer.shutdown().await
        };
        match timeout(FLUSH_TIMEOUT, flush).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::Io(Arc::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "could not write DISCONNECT in time",
            )))),
        }
    }
}

/// Writes from `buf` (`Some(n)`), or, once it is empty, flushes what the
/// transport holds (`None`: TLS and WebSocket hold bytes until flushed).
async fn write_or_flush(
    writer: &mut WriteHalf<Transport>,
    buf: &mut BytesMut,
) -> std::io::Result<Option<usize>> {
    if buf.is_empty() {
        writer.flush().await.map(|()| None)
    } else {
        writer.write_buf(buf).await.map(Some)
    }
}

/// Opens the transport, sends `connect` and reads the CONNACK, within the
/// connect timeout. Packets after the CONNACK stay in the link's buffer.
pub(crate) async fn open(
    options: &ClientOptions,
    connect: Connect,
) -> Result<(Link, ConnAck), Error> {
    let attempt = async {
        let transport = Transport::connect(options).await?;
        let mut decoder = Decoder::new(Role::Client, connect.protocol);
        if let Some(max) = options.properties.maximum_packet_size {
            decoder = decoder.with_max_packet_size(max.get());
        }
        let mut link = Link::new(transport, decoder);
        let version = connect.protocol;
        let client_id = connect.client_id.clone();
        let packet = Packet::Connect(Box::new(connect));
        trace(options, Direction::Sent, &packet, &client_id, 0);
        packet.encode(version, &mut link.write_buf)?;
        link.writer.write_all_buf(&mut link.write_buf).await?;
        link.writer.flush().await?;
        loop {
            if let Some(packet) = link.decoder.decode(&mut link.read_buf)? {
                return match packet {
                    Packet::ConnAck(connack) => {
                        let id = connack
                            .properties
                            .assigned_client_identifier
                            .clone()
                            .unwrap_or(client_id);
                        trace(
                            options,
                            Direction::Received,
                            &Packet::ConnAck(connack.clone()),
                            &id,
                            0,
                        );
                        Ok((link, connack))
                    }
                    other => {
                        trace(options, Direction::Received, &other, &client_id, 0);
                        Err(Error::Protocol(
                            "[MQTT-3.2.0-1] the broker's first packet is not CONNACK",
                        ))
                    }
                };
            }
            link.read_buf.reserve(READ_CHUNK);
            if link.reader.read_buf(&mut link.read_buf).await? == 0 {
                return Err(Error::ConnectionClosed);
            }
        }
    };
    timeout(options.connect_timeout, attempt)
        .await
        .map_err(|_| Error::ConnectTimeout(options.connect_timeout))?
}

fn trace(
    options: &ClientOptions,
    direction: Direction,
    packet: &Packet,
    client_id: &str,
    message_id: u16,
) {
    if let Some(observer) = &options.observer {
        observer(&PacketTrace {
            direction,
            packet,
            client_id,
            message_id,
        });
    }
}

/// How a connection ended.
enum Outcome {
    /// The client is closed; the task ends.
    Closed,
    /// The connection broke; reconnect if the policy says so.
    Lost(Error),
}

/// The connection task.
pub(crate) struct Task {
    options: ClientOptions,
    state: ClientState,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    /// Events not yet taken by the channel; reading pauses while there are any.
    backlog: VecDeque<Event>,
    waiters: HashMap<Token, Waiter>,
    next_token: u64,
    shared: Arc<Mutex<Shared>>,
    backoff: Option<Backoff>,
    disconnect_reply: Option<oneshot::Sender<Result<(), Error>>>,
}

impl Task {
    pub(crate) fn new(
        options: ClientOptions,
        state: ClientState,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
        shared: Arc<Mutex<Shared>>,
    ) -> Self {
        Task {
            backoff: Backoff::new(options.reconnect),
            options,
            state,
            commands,
            events,
            backlog: VecDeque::new(),
            waiters: HashMap::new(),
            next_token: 0,
            shared,
            disconnect_reply: None,
        }
    }

    /// Runs the client from its first connection, `link`, to its end.
    pub(crate) async fn run(mut self, link: Link) {
        let mut link = Some(link);
        loop {
            let outcome = match link.take() {
                Some(link) => self.drive(link).await,
                None => match self.reconnect().await {
                    Ok(next) => {
                        link = Some(next);
                        continue;
                    }
                    Err(outcome) => outcome,
                },
            };
            match outcome {
                Outcome::Closed => break,
                Outcome::Lost(reason) => {
                    debug!(client_id = %self.state.client_id(), "connection lost: {reason}");
                    self.state.handle_connection_lost(reason);
                    if self.backoff.is_none() {
                        self.state.close(Error::ConnectionLost);
                        break;
                    }
                    self.dispatch();
                }
            }
        }
        self.finish().await;
    }

    /// Serves one connection until it ends.
    async fn drive(&mut self, mut link: Link) -> Outcome {
        loop {
            if let Err(error) = self.pump(&mut link) {
                return self.lose(&mut link, error).await;
            }
            if self.state.is_closed() {
                let unwritten = link.write_buf.len();
                let flushed = link.flush_and_close().await;
                if flushed.is_ok() {
                    // QoS 0 publishes queued before DISCONNECT went out with it.
                    self.handle_written(&mut link, unwritten);
                }
                self.fail_unwritten(&mut link, Error::Closed);
                if let Some(reply) = self.disconnect_reply.take() {
                    let _ = reply.send(flushed);
                }
                return Outcome::Closed;
            }
            let deadline = self.state.poll_timeout();
            let far = Instant::now() + Duration::from_secs(86_400);
            let reading = self.backlog.is_empty();
            let writing = !link.write_buf.is_empty();
            let accepting = link.write_buf.len() < WRITE_HIGH_WATER;
            if reading {
                link.read_buf.reserve(READ_CHUNK);
            }
            tokio::select! {
                // Cancel safe: if another branch wins, nothing was read.
                read = link.reader.read_buf(&mut link.read_buf), if reading => {
                    match read {
                        Ok(0) => return self.lose(&mut link, Error::ConnectionClosed).await,
                        Ok(_) => {
                            if let Err(error) = self.handle_read(&mut link) {
                                return self.lose(&mut link, error).await;
                            }
                        }
                        Err(error) => return self.lose(&mut link, error.into()).await,
                    }
                }
                // Cancel safe: if another branch wins, nothing was written
                // (or what a flush did not push out yet stays for the next).
                written = write_or_flush(&mut link.writer, &mut link.write_buf), if writing || link.unflushed => {
                    match written {
                        Ok(Some(0)) => return self.lose(&mut link, Error::ConnectionClosed).await,
                        Ok(Some(n)) => {
                            link.unflushed = link.buffers_writes;
                            self.handle_written(&mut link, n);
                        }
                        Ok(None) => link.unflushed = false,
                        Err(error) => return self.lose(&mut link, error.into()).await,
                    }
                }
                // Cancel safe: a message not received stays in the channel.
                command = self.commands.recv(), if accepting => self.handle_command(command),
                // Cancel safe: a sleep. Off while reading is paused: a PINGRESP
                // may be waiting unread, and the broker is not to blame for that.
                _ = sleep_until(deadline.map_or(far, Instant::from_std)), if deadline.is_some() && reading => {
                    if let Err(error) = self.state.handle_timeout(now()) {
                        return self.lose(&mut link, error).await;
                    }
                }
                // Cancel safe here: this task is the only sender, so giving up
                // its place in the channel's queue of reservations costs nothing.
                // (An owned permit, so that the branch borrows nothing of `self`.)
                permit = self.events.clone().reserve_owned(), if !self.backlog.is_empty() => self.send_event(permit),
            }
        }
    }

    /// Ends a connection that broke: writes what the state queued for a clean
    /// goodbye (a v5 DISCONNECT after a protocol error), fails what was waiting
    /// to be written.
    async fn lose(&mut self, link: &mut Link, error: Error) -> Outcome {
        let _ = self.pump(link);
        if matches!(error, Error::Protocol(_) | Error::Decode(_)) {
            let _ = link.flush_and_close().await;
        }
        self.fail_unwritten(link, Error::ConnectionLost);
        Outcome::Lost(error)
    }

    fn fail_unwritten(&mut self, link: &mut Link, error: Error) {
        for (_, token, _) in link.on_written.drain(..) {
            if let Some(waiter) = self.waiters.remove(&token) {
                waiter.complete(Err(error.clone()));
            }
        }
    }

    /// Decodes and applies every complete packet in the read buffer.
    fn handle_read(&mut self, link: &mut Link) -> Result<(), Error> {
        loop {
            match link.decoder.decode(&mut link.read_buf) {
                Ok(Some(packet)) => {
                    let message_id = packet_message_id(&packet);
                    trace(
                        &self.options,
                        Direction::Received,
                        &packet,
                        self.state.client_id(),
                        message_id,
                    );
                    self.state.handle_packet(packet)?;
                }
                Ok(None) => return Ok(()),
                Err(error) => return Err(self.state.handle_decode_error(error)),
            }
        }
    }

    fn handle_written(&mut self, link: &mut Link, n: usize) {
        link.written += n as u64;
        while link
            .on_written
            .front()
            .is_some_and(|(end, _, _)| *end <= link.written)
        {
            let (_, token, published) = link.on_written.pop_front().expect("front exists");
            if let Some(waiter) = self.waiters.remove(&token) {
                waiter.complete(Ok(Reply::Published(published)));
            }
        }
        if link.write_buf.is_empty() {
            // Keep the allocation from growing without bound after a large payload.
            if link.write_buf.capacity() > 4 * WRITE_HIGH_WATER {
                link.write_buf = BytesMut::new();
            }
        }
    }

    /// Moves the state's packets into the write buffer and its outputs to
    /// their callers and the event backlog.
    fn pump(&mut self, link: &mut Link) -> Result<(), Error> {
        let version = self.state.version();
        let now = now();
        while let Some(transmit) = self.state.poll_transmit(now) {
            trace(
                &self.options,
                Direction::Sent,
                &transmit.packet,
                self.state.client_id(),
                transmit.message_id,
            );
            if let Err(error) = transmit.packet.encode(version, &mut link.write_buf) {
                // Checked before queueing; a failure here is a bug, not input.
                warn!("cannot encode {}: {error}", transmit.packet.packet_type());
                if let Some((token, _)) = transmit.on_written {
                    if let Some(waiter) = self.waiters.remove(&token) {
                        waiter.complete(Err(error.clone().into()));
                    }
                }
                return Err(error.into());
            }
            if let Some((token, published)) = transmit.on_written {
                let end = link.written + link.write_buf.len() as u64;
                link.on_written.push_back((end, token, published));
            }
        }
        self.dispatch();
        Ok(())
    }

    /// Hands completions to their callers and events to the backlog.
    fn dispatch(&mut self) {
        while let Some(output) = self.state.poll_output() {
            match output {
                Output::Complete { token, result } => {
                    if let Some(waiter) = self.waiters.remove(&token) {
                        waiter.complete(result);
                    }
                }
                Output::Event(event) => {
                    self.update_shared(&event);
                    if !self.events.is_closed() {
                        self.backlog.push_back(event);
                    }
                }
            }
        }
        // Events was dropped: nobody will read these.
        if self.events.is_closed() {
            self.backlog.clear();
        }
    }

    fn update_shared(&self, event: &Event) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Connected { connack, .. } => {
                shared.connected = true;
                shared.connack = Some(connack.clone());
                shared.client_id = self.state.client_id().clone();
                shared.assigned_client_id = self.state.assigned_client_id().cloned();
            }
            Event::Disconnected { .. } => shared.connected = false,
            Event::Message(_) => {}
        }
    }

    fn send_event(&mut self, permit: Result<mpsc::OwnedPermit<Event>, mpsc::error::SendError<()>>) {
        match permit {
            Ok(permit) => {
                if let Some(event) = self.backlog.pop_front() {
                    permit.send(event);
                }
            }
            Err(_) => self.backlog.clear(),
        }
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    /// Applies one command; `None` means every handle is gone.
    fn handle_command(&mut self, command: Option<Command>) {
        let Some(command) = command else {
            debug!(client_id = %self.state.client_id(), "every client handle dropped: disconnecting");
            self.state
                .disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
            return;
        };
        match command {
            Command::Publish { message, reply } => {
                let token = self.token();
                self.waiters.insert(token, Waiter::Publish(reply));
                if let Err(error) = self.state.publish(*message, token) {
                    self.fail(token, error);
                }
            }
            Command::Subscribe {
                filters,
                properties,
                reply,
            } => {
                let token = self.token();
                self.waiters.insert(token, Waiter::Subscribe(reply));
                if let Err(error) = self.state.subscribe(filters, properties, token) {
                    self.fail(token, error);
                }
            }
            Command::Unsubscribe {
                filters,
                properties,
                reply,
            } => {
                let token = self.token();
                self.waiters.insert(token, Waiter::Unsubscribe(reply));
                if let Err(error) = self.state.unsubscribe(filters, properties, token) {
                    self.fail(token, error);
                }
            }
            Command::Disconnect { disconnect, reply } => {
                self.state.disconnect(disconnect);
                self.disconnect_reply = Some(reply);
            }
        }
    }

    fn fail(&mut self, token: Token, error: Error) {
        if let Some(waiter) = self.waiters.remove(&token) {
            waiter.complete(Err(error));
        }
    }

    /// Waits out the backoff and connects again, serving commands meanwhile.
    /// `Err` if the client was closed first.
    async fn reconnect(&mut self) -> Result<Link, Outcome> {
        loop {
            let delay = self
                .backoff
                .as_mut()
                .map_or(Duration::ZERO, Backoff::next_delay);
            let connect = self.state.connect_packet();
            let options = self.options.clone();
            let attempt = async move {
                sleep(delay).await;
                open(&options, connect).await
            };
            tokio::pin!(attempt);
            let result = loop {
                self.dispatch();
                if self.state.is_closed() {
                    if let Some(reply) = self.disconnect_reply.take() {
                        let _ = reply.send(Ok(()));
                    }
                    return Err(Outcome::Closed);
                }
                tokio::select! {
                    // Not cancel safe, and never cancelled: it is pinned outside
                    // the loop and polled again on the next pass.
                    result = &mut attempt => break result,
                    // Cancel safe: a message not received stays in the channel.
                    command = self.commands.recv() => self.handle_command(command),
                    // Cancel safe: see `drive`.
                    permit = self.events.clone().reserve_owned(), if !self.backlog.is_empty() => self.send_event(permit),
                }
            };
            match result {
                Ok((link, connack)) => match self.state.handle_connack(connack, now()) {
                    Ok(()) => {
                        if let Some(backoff) = &mut self.backoff {
                            backoff.reset();
                        }
                        return Ok(link);
                    }
                    Err(error) => {
                        warn!(client_id = %self.state.client_id(), "reconnection refused: {error}")
                    }
                },
                Err(error) => {
                    debug!(client_id = %self.state.client_id(), "reconnection failed: {error}")
                }
            }
        }
    }

    /// The end: everything still waiting fails, remaining events are delivered
    /// and the event stream ends when `self` is dropped.
    async fn finish(mut self) {
        if !self.state.is_closed() {
            self.state.close(Error::Closed);
        }
        self.dispatch();
        for (_, waiter) in self.waiters.drain() {
            waiter.complete(Err(Error::Closed));
        }
        if let Some(reply) = self.disconnect_reply.take() {
            let _ = reply.send(Ok(()));
        }
        {
            let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            shared.connected = false;
        }
        for event in std::mem::take(&mut self.backlog) {
            if self.events.send(event).await.is_err() {
                break;
            }
        }
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("client_id", self.state.client_id())
            .field("connected", &self.state.is_connected())
            .field("inflight", &self.state.inflight())
            .field("queued", &self.state.queued())
            .field("waiters", &self.waiters.len())
            .field("backlog", &self.backlog.len())
            .finish()
    }
}
