//! Test harness: a broker on an ephemeral port, and a raw MQTT client that
//! speaks packets through the real codec over a real socket. Waits poll for a
//! condition with a deadline; there are no bare sleeps.
//!
//! - this file: [`TestBroker`], [`RawClient`], packet builders and waits;
//! - [`flow`]: conversations on top of it (connecting, subscribing, both ends
//!   of the QoS flows, DISCONNECT);
//! - [`transport`]: brokers serving TLS, WebSocket and PROXY listeners, and a
//!   raw client over any byte stream;
//! - [`pki`]: test certificates (also used by the `starling` crate's tests).

#![allow(dead_code, unreachable_pub)]

mod flow;
pub mod pki;
mod transport;

// Each test binary uses its own part of the harness.
#[allow(unused_imports)]
pub use flow::*;
#[allow(unused_imports)]
pub use pki::{Issued, Pki};
#[allow(unused_imports)]
pub use starling_proto::ProtocolVersion::{V3_1, V3_1_1, V5};
#[allow(unused_imports)]
pub use transport::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use starling_broker::transport::Endpoint;
use starling_broker::{Broker, Config};
use starling_proto::{
    Connect, Decoder, MqttString, Packet, PacketId, ProtocolVersion, Publish, QoS, Role, Subscribe,
    SubscriptionOptions, TopicFilter, TopicName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// How long "nothing arrives" is watched for.
pub const QUIET: Duration = Duration::from_millis(300);

/// A broker serving on 127.0.0.1 with an ephemeral port.
pub struct TestBroker {
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    serving: Serving,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::with_config(Config {
            sys_interval: None,
            ..Config::default()
        })
        .await
    }

    pub async fn with_config(config: Config) -> TestBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let broker = Broker::new(config);
        let serving = Serving::start(&broker, vec![Endpoint::plain(listener)]);
        TestBroker {
            addr,
            broker,
            serving,
        }
    }

    /// A broker that keeps its state in `store`, restored from it first: a
    /// second one on the same store is the first one restarted.
    pub async fn with_store(
        config: Config,
        store: Arc<dyn starling_broker::storage::Store>,
    ) -> TestBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let snapshot = store.load(std::time::SystemTime::now()).unwrap();
        let auth = starling_broker::auth::AuthState::load(&config).unwrap().0;
        let broker = Broker::with_store(config, auth, store, snapshot);
        let serving = Serving::start(&broker, vec![Endpoint::plain(listener)]);
        TestBroker {
            addr,
            broker,
            serving,
        }
    }

    /// Stops the broker and waits until every connection has closed (and,
    /// with a store, until everything is written).
    pub async fn stop(self) {
        self.serving.stop().await;
        self.broker.close_store();
    }

    pub async fn client(&self, version: ProtocolVersion) -> RawClient {
        RawClient::connect(self.addr, version).await
    }
}

/// A `serve_endpoints` task and the signal that stops it.
struct Serving {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Serving {
    fn start(broker: &Arc<Broker>, endpoints: Vec<Endpoint>) -> Serving {
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(starling_broker::server::serve_endpoints(
            Arc::clone(broker),
            endpoints,
            async move {
                let _ = stopped.await;
            },
        ));
        let task = tokio::spawn(async move {
            let _ = serving.await;
        });
        Serving { stop, task }
    }

    /// Stops the broker and waits until every connection has closed.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("broker did not stop")
            .unwrap();
    }
}

/// A client that sends and receives whole packets.
pub struct RawClient {
    pub stream: TcpStream,
    pub version: ProtocolVersion,
    decoder: Decoder,
    buf: BytesMut,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr, version: ProtocolVersion) -> RawClient {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            version,
            decoder: Decoder::new(Role::Client, version),
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        packet.encode(self.version, &mut buf).unwrap();
        self.stream.write_all(&buf).await.unwrap();
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next packet, or `None` if the broker closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(WAIT, self.recv_inner())
            .await
            .expect("no packet within the deadline")
    }

    async fn recv_inner(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = self
                .decoder
                .decode(&mut self.buf)
                .expect("broker sent a bad packet")
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

    /// Asserts nothing arrives for `quiet`.
    pub async fn expect_nothing(&mut self, quiet: Duration) {
        if let Ok(packet) = tokio::time::timeout(quiet, self.recv_inner()).await {
            panic!("expected nothing, got {packet:?}");
        }
    }

    /// Waits until the broker closes the connection, skipping packets.
    pub async fn expect_closed(&mut self) -> Vec<Packet> {
        let mut seen = Vec::new();
        while let Some(packet) = self.recv().await {
            seen.push(packet);
        }
        seen
    }

    /// Sends CONNECT and returns the CONNACK.
    pub async fn handshake(&mut self, connect: Connect) -> starling_proto::ConnAck {
        self.send(Packet::Connect(Box::new(connect))).await;
        match self.recv().await {
            Some(Packet::ConnAck(ack)) => ack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub async fn subscribe(
        &mut self,
        id: u16,
        filter: &str,
        qos: QoS,
    ) -> Vec<starling_proto::ReasonCode> {
        self.send(Packet::Subscribe(Subscribe {
            packet_id: pid(id),
            filters: vec![(
                TopicFilter::try_from(filter).unwrap(),
                SubscriptionOptions::new(qos),
            )],
            properties: Default::default(),
        }))
        .await;
        match self.recv().await {
            Some(Packet::SubAck(ack)) => ack.reason_codes,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub async fn expect_publish(&mut self) -> Publish {
        match self.recv().await {
            Some(Packet::Publish(p)) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

/// A CONNECT for `version` with `client_id`, clean, keep alive 60.
pub fn connect(version: ProtocolVersion, client_id: &str) -> Connect {
    Connect::new(version, MqttString::try_from(client_id).unwrap())
}

pub fn pid(id: u16) -> PacketId {
    PacketId::new(id).unwrap()
}

pub fn topic(name: &str) -> TopicName {
    TopicName::try_from(name).unwrap()
}

/// A PUBLISH of `payload` to `name`.
pub fn publish(name: &str, payload: &'static str, qos: QoS, id: u16) -> Publish {
    message(name, payload.as_bytes(), qos, id)
}

/// A PUBLISH of `payload` (any bytes) to `name` at `qos`, packet id `id`.
pub fn message(name: &str, payload: impl Into<Bytes>, qos: QoS, id: u16) -> Publish {
    let mut p = Publish::new(topic(name), payload);
    p.delivery = starling_proto::Delivery::new(qos, pid(id.max(1)));
    p
}

/// As [`message`], retained.
pub fn retained(name: &str, payload: impl Into<Bytes>, qos: QoS, id: u16) -> Publish {
    let mut p = message(name, payload, qos, id);
    p.retain = true;
    p
}

/// Polls `condition` until it holds or the deadline passes.
pub async fn eventually(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A deadline for a polling loop: `tick` waits a little, and fails the test
/// once [`WAIT`] has passed.
pub struct Deadline {
    at: tokio::time::Instant,
    what: &'static str,
}

impl Deadline {
    /// A deadline [`WAIT`] from now for waiting on `what`.
    pub fn start(what: &'static str) -> Deadline {
        Deadline {
            at: tokio::time::Instant::now() + WAIT,
            what,
        }
    }

    /// Waits 20 ms before the next poll; panics past the deadline.
    pub async fn tick(&self) {
        assert!(
            tokio::time::Instant::now() < self.at,
            "{}: not within {WAIT:?}",
            self.what
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
