//! Test harness: a Starling broker on an ephemeral port, a TCP proxy that can
//! hold back the broker's packets and cut connections at will, a fake broker
//! made from the codec, and waits that poll a condition with a deadline (no
//! bare sleeps).

#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use starling_broker::{Broker, Config};
use starling_client::{
    Client, ClientOptions, Direction, Event, Events, Message, Packet, PacketTrace, PacketType,
    ProtocolVersion, QoS, ReconnectPolicy,
};
use starling_proto::{Decoder, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// A broker serving on 127.0.0.1 with an ephemeral port.
pub struct TestBroker {
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::with_config(Config::default()).await
    }

    pub async fn with_config(config: Config) -> TestBroker {
        let config = Config {
            sys_interval: None,
            ..config
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let broker = Broker::new(config);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(starling_broker::server::serve(
            Arc::clone(&broker),
            vec![listener],
            async move {
                let _ = stopped.await;
            },
        ));
        TestBroker {
            addr,
            broker,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// Options for this broker: `version`, `client_id`, no reconnection.
    pub fn options(&self, version: ProtocolVersion, client_id: &str) -> ClientOptions {
        ClientOptions::new(&self.url())
            .unwrap()
            .version(version)
            .client_id(client_id)
            .reconnect(ReconnectPolicy::Off)
    }

    /// Stops the broker and waits until every connection has closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("broker did not stop")
                .unwrap();
        }
    }
}

/// A client subscribed to `filter` at QoS 2, connected straight to the broker.
pub async fn subscriber(
    broker: &TestBroker,
    version: ProtocolVersion,
    client_id: &str,
    filter: &str,
) -> (Client, Events) {
    let (client, mut events) = Client::connect(broker.options(version, client_id))
        .await
        .expect("subscriber connects");
    assert!(matches!(events.recv().await, Some(Event::Connected { .. })));
    client
        .subscribe_one(filter, QoS::ExactlyOnce)
        .await
        .expect("subscribed");
    (client, events)
}

/// The next message, within the deadline.
pub async fn next_message(events: &mut Events) -> Message {
    tokio::time::timeout(WAIT, events.next_message())
        .await
        .expect("no message within the deadline")
        .expect("the event stream ended")
}

/// The next event, within the deadline.
pub async fn next_event(events: &mut Events) -> Option<Event> {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no event within the deadline")
}

/// Messages until one with `payload` arrives (included).
pub async fn messages_until(events: &mut Events, payload: &str) -> Vec<Message> {
    let mut seen = Vec::new();
    loop {
        let message = next_message(events).await;
        let last = message.payload == payload.as_bytes();
        seen.push(message);
        if last {
            return seen;
        }
    }
}

/// Polls `condition` until it holds or the deadline passes.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Records every packet a client sends and receives.
#[derive(Clone, Default)]
pub struct Recorder {
    pub packets: Arc<Mutex<Vec<(Direction, Packet, u16)>>>,
}

impl Recorder {
    pub fn observer(&self) -> starling_client::PacketObserver {
        let packets = Arc::clone(&self.packets);
        Arc::new(move |trace: &PacketTrace<'_>| {
            packets
                .lock()
                .unwrap()
                .push((trace.direction, trace.packet.clone(), trace.message_id));
        })
    }

    /// A copy of what was recorded so far.
    pub fn packets(&self) -> Vec<(Direction, Packet, u16)> {
        self.packets.lock().unwrap().clone()
    }

    pub fn count(&self, direction: Direction, packet_type: PacketType) -> usize {
        self.packets
            .lock()
            .unwrap()
            .iter()
            .filter(|(d, p, _)| *d == direction && p.packet_type() == packet_type)
            .count()
    }

    /// The packets as `(direction, type, message id)`.
    pub fn summary(&self) -> Vec<(Direction, PacketType, u16)> {
        self.packets
            .lock()
            .unwrap()
            .iter()
            .map(|(d, p, id)| (*d, p.packet_type(), *id))
            .collect()
    }
}

/// A TCP proxy between clients and a broker. It can hold back packets from the
/// broker (a given type and everything after it, as a stalled link would),
/// refuse new connections, and cut every open connection.
pub struct Proxy {
    pub addr: SocketAddr,
    control: Arc<ProxyControl>,
    task: JoinHandle<()>,
}

struct ProxyControl {
    upstream: SocketAddr,
    version: ProtocolVersion,
    hold: Mutex<HashSet<PacketType>>,
    held: AtomicUsize,
    refuse: AtomicBool,
    cut: watch::Sender<u64>,
    accepted: AtomicUsize,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr, version: ProtocolVersion) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let control = Arc::new(ProxyControl {
            upstream,
            version,
            hold: Mutex::new(HashSet::new()),
            held: AtomicUsize::new(0),
            refuse: AtomicBool::new(false),
            cut: watch::channel(0).0,
            accepted: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&control)));
        Proxy {
            addr,
            control,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// From now on, the broker's packets of these types, and all after one,
    /// are dropped on open connections (new connections pass everything).
    pub fn hold(&self, types: &[PacketType]) {
        *self.control.hold.lock().unwrap() = types.iter().copied().collect();
    }

    /// How many of the broker's packets were dropped.
    pub fn held(&self) -> usize {
        self.control.held.load(Ordering::SeqCst)
    }

    /// Connections accepted and forwarded so far.
    pub fn accepted(&self) -> usize {
        self.control.accepted.load(Ordering::SeqCst)
    }

    /// Refuse (accept and close at once) new connections, or stop refusing.
    pub fn refuse(&self, refuse: bool) {
        self.control.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Closes every open connection, both sides, and stops holding.
    pub fn cut(&self) {
        self.control.hold.lock().unwrap().clear();
        self.control.cut.send_modify(|generation| *generation += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, control: Arc<ProxyControl>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        if control.refuse.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let Ok(broker) = TcpStream::connect(control.upstream).await else {
            continue;
        };
        control.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = client.set_nodelay(true);
        let _ = broker.set_nodelay(true);
        tokio::spawn(forward(client, broker, Arc::clone(&control)));
    }
}

async fn forward(client: TcpStream, broker: TcpStream, control: Arc<ProxyControl>) {
    let mut cut = control.cut.subscribe();
    cut.mark_unchanged();
    let (mut client_read, mut client_write) = client.into_split();
    let (mut broker_read, mut broker_write) = broker.into_split();
    let upstream = async {
        let _ = tokio::io::copy(&mut client_read, &mut broker_write).await;
    };
    let downstream = async {
        let mut decoder = Decoder::new(Role::Client, control.version);
        let mut buf = BytesMut::new();
        let mut holding = false;
        loop {
            buf.reserve(4096);
            match broker_read.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let mut out = BytesMut::new();
            while let Ok(Some(packet)) = decoder.decode(&mut buf) {
                holding = holding || control.hold.lock().unwrap().contains(&packet.packet_type());
                if holding {
                    control.held.fetch_add(1, Ordering::SeqCst);
                } else {
                    packet.encode(control.version, &mut out).unwrap();
                }
            }
            if client_write.write_all(&out).await.is_err() {
                return;
            }
        }
    };
    // Cancel safe enough for a test: whichever side ends, both sockets close.
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = cut.changed() => {}
    }
}

/// A fake broker: accepts one connection at a time and speaks raw packets
/// through the codec.
pub struct FakeBroker {
    pub listener: TcpListener,
    pub addr: SocketAddr,
}

impl FakeBroker {
    pub async fn bind() -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        FakeBroker { listener, addr }
    }

    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// Accepts a connection and reads its CONNECT.
    pub async fn accept(&self) -> (RawConnection, starling_proto::Connect) {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("no connection within the deadline")
            .unwrap();
        let mut conn = RawConnection {
            stream,
            version: ProtocolVersion::V5,
            decoder: Decoder::new(Role::Server, ProtocolVersion::V5),
            buf: BytesMut::new(),
        };
        match conn.recv().await {
            Some(Packet::Connect(connect)) => {
                conn.version = connect.protocol;
                (conn, *connect)
            }
            other => panic!("expected CONNECT, got {other:?}"),
        }
    }
}

/// The fake broker's side of one connection.
pub struct RawConnection {
    pub stream: TcpStream,
    pub version: ProtocolVersion,
    decoder: Decoder,
    buf: BytesMut,
}

impl RawConnection {
    pub async fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        packet.encode(self.version, &mut buf).unwrap();
        self.stream.write_all(&buf).await.unwrap();
    }

    /// The next packet, or `None` if the client closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(WAIT, self.recv_inner())
            .await
            .expect("no packet within the deadline")
    }

    /// The next packet if one comes within `quiet`.
    pub async fn recv_within(&mut self, quiet: Duration) -> Option<Packet> {
        tokio::time::timeout(quiet, self.recv_inner())
            .await
            .ok()
            .flatten()
    }

    async fn recv_inner(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = self
                .decoder
                .decode(&mut self.buf)
                .expect("client sent a bad packet")
            {
                return Some(packet);
            }
            self.buf.reserve(4096);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}
