//! A blocking MQTT client over a plain `TcpStream` that speaks packets, not
//! messages: the test decides every packet identifier, DUP flag and
//! acknowledgement (or withholds it). Packets are encoded and decoded with
//! starling-proto's codec, the one the broker uses.
//!
//! Every wait has a deadline; a broker that does not answer in time fails the
//! test with what was expected.

use std::collections::{HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use starling_proto::property::{ConnectProperties, SubscribeProperties};
use starling_proto::{
    ConnAck, Connect, Decoder, Delivery, Disconnect, MqttString, Packet, PacketId, ProtocolVersion,
    PubAck, PubComp, PubRec, PubRel, Publish, QoS, ReasonCode, Role, SubAck, Subscribe,
    SubscriptionId, SubscriptionOptions, TopicFilter, TopicName, Will,
};

use super::{HOST, WAIT};

/// What one read brought.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one at a time, matched at once
pub(crate) enum Recv {
    /// A packet from the broker.
    Packet(Packet),
    /// Nothing within the timeout.
    Timeout,
    /// The broker closed the connection (or it broke).
    Closed,
}

/// How a connection starts: the CONNECT, built field by field.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    connect: Connect,
}

impl Login {
    /// MQTT 5.0, `client_id`, clean start, no session expiry, keep alive 60.
    pub(crate) fn v5(client_id: &str) -> Login {
        Login {
            connect: Connect::new(ProtocolVersion::V5, mqtt_string(client_id)),
        }
    }

    /// MQTT 3.1.1, `client_id`, clean session, keep alive 60.
    pub(crate) fn v311(client_id: &str) -> Login {
        Login {
            connect: Connect::new(ProtocolVersion::V3_1_1, mqtt_string(client_id)),
        }
    }

    /// Clean Start (5.0) / Clean Session (3.1.1).
    pub(crate) fn clean(mut self, clean: bool) -> Login {
        self.connect.clean_start = clean;
        self
    }

    /// MQTT 5.0 Session Expiry Interval, in seconds.
    pub(crate) fn session_expiry(mut self, seconds: u32) -> Login {
        self.connect.properties.session_expiry_interval = Some(seconds);
        self
    }

    /// A persistent session: 3.1.1 Clean Session 0; 5.0 Clean Start 0 with
    /// a Session Expiry Interval of an hour.
    pub(crate) fn persistent(self) -> Login {
        let v5 = self.connect.protocol.is_v5();
        let login = self.clean(false);
        if v5 {
            login.session_expiry(3600)
        } else {
            login
        }
    }

    /// The Will Message.
    pub(crate) fn will(mut self, will: Will) -> Login {
        self.connect.will = Some(will);
        self
    }

    /// The CONNECT properties (5.0).
    pub(crate) fn properties(mut self, properties: ConnectProperties) -> Login {
        self.connect.properties = properties;
        self
    }

    pub(crate) fn version(&self) -> ProtocolVersion {
        self.connect.protocol
    }

    pub(crate) fn client_id(&self) -> &str {
        self.connect.client_id.as_str()
    }
}

/// One connection to the broker.
pub(crate) struct Raw {
    stream: TcpStream,
    version: ProtocolVersion,
    decoder: Decoder,
    buf: BytesMut,
    next_id: u16,
    /// QoS 2 packet identifiers received and acknowledged with PUBREC, not
    /// yet released by PUBREL (the receiver's half of exactly-once).
    pending_qos2: HashSet<u16>,
    /// Messages that arrived while something else was awaited, in order.
    stash: VecDeque<Publish>,
    label: String,
}

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Raw({})", self.label)
    }
}

impl Raw {
    /// Connects to 127.0.0.1:`port` and sends `login`; the CONNACK, which
    /// must accept the connection.
    pub(crate) fn connect(port: u16, login: Login) -> (Raw, ConnAck) {
        let label = login.connect.client_id.as_str().to_owned();
        let (raw, connack) = Raw::try_connect(port, login)
            .unwrap_or_else(|e| panic!("{label}: cannot connect to port {port}: {e}"));
        assert!(
            !connack.reason_code.is_error(),
            "{label}: the broker refused the connection: {}",
            connack.reason_code
        );
        (raw, connack)
    }

    /// Connects and sends `login`; the CONNACK, whatever it says.
    pub(crate) fn try_connect(port: u16, login: Login) -> Result<(Raw, ConnAck), String> {
        let stream = TcpStream::connect((HOST, port)).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let version = login.version();
        let mut raw = Raw {
            stream,
            version,
            decoder: Decoder::new(Role::Client, version),
            buf: BytesMut::with_capacity(64 * 1024),
            next_id: 0,
            pending_qos2: HashSet::new(),
            stash: VecDeque::new(),
            label: login.connect.client_id.as_str().to_owned(),
        };
        raw.try_send(Packet::Connect(Box::new(login.connect)))
            .map_err(|e| format!("cannot write CONNECT: {e}"))?;
        match raw.recv(WAIT) {
            Recv::Packet(Packet::ConnAck(connack)) => Ok((raw, connack)),
            other => Err(format!("expected CONNACK, got {other:?}")),
        }
    }

    pub(crate) fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Writes one packet; panics if the socket is broken.
    pub(crate) fn send(&mut self, packet: Packet) {
        if let Err(e) = self.try_send(packet) {
            panic!("{}: cannot write: {e}", self.label);
        }
    }

    /// Writes `packets` with one write.
    pub(crate) fn send_all(&mut self, packets: impl IntoIterator<Item = Packet>) {
        let mut out = BytesMut::new();
        for packet in packets {
            packet
                .encode(self.version, &mut out)
                .expect("encode a test packet");
        }
        if let Err(e) = self.stream.write_all(&out) {
            panic!("{}: cannot write: {e}", self.label);
        }
    }

    /// Writes one packet.
    pub(crate) fn try_send(&mut self, packet: Packet) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        packet
            .encode(self.version, &mut out)
            .expect("encode a test packet");
        self.stream.write_all(&out)
    }

    /// The next packet, waiting at most `timeout`.
    pub(crate) fn recv(&mut self, timeout: Duration) -> Recv {
        let deadline = Instant::now() + timeout;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(packet)) => return Recv::Packet(packet),
                Ok(None) => {}
                Err(e) => panic!("{}: the broker sent a malformed packet: {e}", self.label),
            }
            let now = Instant::now();
            if now >= deadline {
                return Recv::Timeout;
            }
            self.stream
                .set_read_timeout(Some(deadline - now))
                .expect("set_read_timeout");
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Recv::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Recv::Timeout
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Recv::Closed,
            }
        }
    }

    /// The next packet, within [`WAIT`]; panics naming `what` otherwise.
    pub(crate) fn expect(&mut self, what: &str) -> Packet {
        match self.recv(WAIT) {
            Recv::Packet(packet) => packet,
            other => panic!("{}: waited for {what}, got {other:?}", self.label),
        }
    }

    /// A fresh packet identifier (1, 2, 3, ...).
    pub(crate) fn next_packet_id(&mut self) -> PacketId {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        PacketId::new(self.next_id).expect("non-zero")
    }

    /// Subscribes to `filters` with their options and, for 5.0, the
    /// Subscription Identifier `id`; returns the SUBACK, whose codes must all
    /// be grants.
    pub(crate) fn subscribe(
        &mut self,
        filters: &[(&str, SubscriptionOptions)],
        id: Option<u32>,
    ) -> SubAck {
        let packet_id = self.next_packet_id();
        let properties = SubscribeProperties {
            subscription_identifier: id.map(|id| SubscriptionId::new(id).expect("valid id")),
            ..Default::default()
        };
        self.send(Packet::Subscribe(Subscribe {
            packet_id,
            filters: filters
                .iter()
                .map(|(filter, options)| {
                    (
                        TopicFilter::try_from(*filter).expect("valid filter"),
                        *options,
                    )
                })
                .collect(),
            properties,
        }));
        loop {
            match self.expect("SUBACK") {
                Packet::SubAck(suback) if suback.packet_id == packet_id => {
                    assert!(
                        suback.reason_codes.iter().all(|code| !code.is_error()),
                        "{}: subscription to {:?} refused: {:?}",
                        self.label,
                        filters.iter().map(|(f, _)| f).collect::<Vec<_>>(),
                        suback.reason_codes
                    );
                    return suback;
                }
                // Queued messages may come before the SUBACK.
                other => self.unexpected(other, "SUBACK"),
            }
        }
    }

    /// Subscribes to one filter at `qos` with default options.
    pub(crate) fn subscribe_one(&mut self, filter: &str, qos: QoS) -> SubAck {
        self.subscribe(&[(filter, SubscriptionOptions::new(qos))], None)
    }

    /// Publishes `publish` (its packet identifier is replaced by a fresh one
    /// for QoS 1 and 2) and completes its QoS flow: nothing for QoS 0, PUBACK
    /// for QoS 1, PUBREC then PUBREL / PUBCOMP for QoS 2. The reason code of
    /// the PUBACK or PUBREC (always Success for 3.1.1); a QoS 2 flow refused at
    /// PUBREC ends there. Panics if the connection closes first.
    pub(crate) fn publish(&mut self, publish: Publish) -> ReasonCode {
        match self.try_publish(publish) {
            Some(code) => code,
            None => panic!("{}: the broker closed the connection", self.label),
        }
    }

    /// As [`Raw::publish`], but `None` if the broker closes the connection
    /// before acknowledging.
    pub(crate) fn try_publish(&mut self, mut publish: Publish) -> Option<ReasonCode> {
        let qos = publish.qos();
        publish.delivery = match qos {
            QoS::AtMostOnce => Delivery::AtMostOnce,
            QoS::AtLeastOnce => Delivery::AtLeastOnce(self.next_packet_id()),
            QoS::ExactlyOnce => Delivery::ExactlyOnce(self.next_packet_id()),
        };
        let id = publish.packet_id();
        if self.try_send(Packet::Publish(publish)).is_err() {
            return None;
        }
        let Some(id) = id else {
            return Some(ReasonCode::SUCCESS);
        };
        let code = self.wait_ack(id, qos)?;
        if qos == QoS::ExactlyOnce && !code.is_error() {
            self.try_send(Packet::PubRel(PubRel::new(id))).ok()?;
            loop {
                match self.recv(WAIT) {
                    Recv::Packet(Packet::PubComp(pubcomp)) if pubcomp.packet_id == id => break,
                    Recv::Packet(other) => self.unexpected(other, "PUBCOMP"),
                    Recv::Closed => return None,
                    Recv::Timeout => panic!("{}: no PUBCOMP for {id}", self.label),
                }
            }
        }
        Some(code)
    }

    /// Waits for the PUBACK (QoS 1) or PUBREC (QoS 2) of `id`: its reason
    /// code, or `None` if the connection closes first.
    pub(crate) fn wait_ack(&mut self, id: PacketId, qos: QoS) -> Option<ReasonCode> {
        loop {
            match self.recv(WAIT) {
                Recv::Packet(Packet::PubAck(ack))
                    if qos == QoS::AtLeastOnce && ack.packet_id == id =>
                {
                    return Some(ack.reason_code)
                }
                Recv::Packet(Packet::PubRec(rec))
                    if qos == QoS::ExactlyOnce && rec.packet_id == id =>
                {
                    return Some(rec.reason_code)
                }
                Recv::Packet(other) => self.unexpected(other, "PUBACK or PUBREC"),
                Recv::Closed => return None,
                Recv::Timeout => panic!("{}: no acknowledgement for {id}", self.label),
            }
        }
    }

    /// While waiting for something else: acknowledges messages, fails on
    /// anything that has no place there.
    fn unexpected(&mut self, packet: Packet, waiting_for: &str) {
        match packet {
            Packet::Publish(publish) => {
                if let Some(publish) = self.receive(publish) {
                    self.stash.push_back(publish);
                }
            }
            Packet::PubRel(pubrel) => self.release(pubrel.packet_id),
            Packet::PingResp => {}
            other => panic!("{}: waited for {waiting_for}, got {other:?}", self.label),
        }
    }

    /// The next application message, acknowledged as a well-behaved
    /// receiver does: PUBACK for QoS 1; for QoS 2 PUBREC, and a PUBLISH whose
    /// identifier awaits PUBREL is the same message again, not a new one
    /// (method B of MQTT 5.0 §4.3.3), so it is not returned. PUBRELs are
    /// answered with PUBCOMP. `None` if nothing comes within `timeout`; panics
    /// if the connection closes.
    pub(crate) fn next_message(&mut self, timeout: Duration) -> Option<Publish> {
        if let Some(publish) = self.stash.pop_front() {
            return Some(publish);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Packet(Packet::Publish(publish)) => {
                    if let Some(publish) = self.receive(publish) {
                        return Some(publish);
                    }
                }
                Recv::Packet(Packet::PubRel(pubrel)) => self.release(pubrel.packet_id),
                Recv::Packet(Packet::PingResp) => {}
                Recv::Packet(other) => {
                    panic!("{}: waited for a message, got {other:?}", self.label)
                }
                Recv::Timeout => return None,
                Recv::Closed => panic!(
                    "{}: the broker closed the connection while messages were awaited",
                    self.label
                ),
            }
        }
    }

    /// The next application message within [`WAIT`]; panics naming `what`.
    pub(crate) fn expect_message(&mut self, what: &str) -> Publish {
        self.next_message(WAIT)
            .unwrap_or_else(|| panic!("{}: no message within {WAIT:?}: {what}", self.label))
    }

    /// Every message until one whose payload is `marker`, and the marker: a
    /// marker published after everything else proves nothing else is on its
    /// way.
    pub(crate) fn messages_until(&mut self, marker: &[u8]) -> (Vec<Publish>, Publish) {
        let mut messages = Vec::new();
        loop {
            let message = self.expect_message(&format!(
                "the marker {:?} after {} messages",
                String::from_utf8_lossy(marker),
                messages.len()
            ));
            if message.payload == marker {
                return (messages, message);
            }
            messages.push(message);
        }
    }

    /// Acknowledges `publish`; the message, unless it is a QoS 2 message
    /// already received and not yet released (the same one again).
    fn receive(&mut self, publish: Publish) -> Option<Publish> {
        let repeat = match publish.delivery {
            Delivery::ExactlyOnce(id) => self.pending_qos2.contains(&id.get()),
            _ => false,
        };
        self.acknowledge(&publish);
        (!repeat).then_some(publish)
    }

    /// Sends the acknowledgement `publish` calls for.
    pub(crate) fn acknowledge(&mut self, publish: &Publish) {
        match publish.delivery {
            Delivery::AtMostOnce => {}
            Delivery::AtLeastOnce(id) => self.send(Packet::PubAck(PubAck::new(id))),
            Delivery::ExactlyOnce(id) => {
                self.pending_qos2.insert(id.get());
                self.send(Packet::PubRec(PubRec::new(id)));
            }
        }
    }

    /// Answers a PUBREL with PUBCOMP and forgets its identifier.
    pub(crate) fn release(&mut self, id: PacketId) {
        self.pending_qos2.remove(&id.get());
        self.send(Packet::PubComp(PubComp::new(id)));
    }

    /// Sends DISCONNECT (Normal) and closes.
    pub(crate) fn disconnect(mut self) {
        let _ = self.try_send(Packet::Disconnect(Disconnect::new(
            ReasonCode::NORMAL_DISCONNECTION,
        )));
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Closes the socket without DISCONNECT: to the broker, a connection lost.
    pub(crate) fn drop_connection(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Whether the broker closes the connection within `timeout` (packets
    /// arriving meanwhile are handled as usual).
    pub(crate) fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Closed => return true,
                Recv::Timeout => return false,
                Recv::Packet(Packet::Disconnect(_)) => {}
                Recv::Packet(other) => self.unexpected(other, "the connection to close"),
            }
        }
    }
}

/// `text` as an MQTT string.
pub(crate) fn mqtt_string(text: &str) -> MqttString {
    MqttString::try_from(text).expect("a valid MQTT string")
}

/// A PUBLISH of `payload` on `topic` at `qos` (its packet identifier is
/// assigned by [`Raw::publish`]).
pub(crate) fn message(topic: &str, payload: impl Into<Bytes>, qos: QoS) -> Publish {
    let mut publish = Publish::new(TopicName::try_from(topic).expect("a valid topic"), payload);
    publish.delivery = match qos {
        QoS::AtMostOnce => Delivery::AtMostOnce,
        QoS::AtLeastOnce => Delivery::AtLeastOnce(PacketId::MIN),
        QoS::ExactlyOnce => Delivery::ExactlyOnce(PacketId::MIN),
    };
    publish
}

/// A retained PUBLISH of `payload` on `topic` at `qos`.
pub(crate) fn retained(topic: &str, payload: impl Into<Bytes>, qos: QoS) -> Publish {
    let mut publish = message(topic, payload, qos);
    publish.retain = true;
    publish
}

/// A Will Message of `payload` on `topic` at `qos`.
pub(crate) fn will(topic: &str, payload: &'static str, qos: QoS) -> Will {
    Will {
        topic: TopicName::try_from(topic).expect("a valid topic"),
        payload: Bytes::from_static(payload.as_bytes()),
        qos,
        retain: false,
        properties: Default::default(),
    }
}

/// The payload as text, for messages.
pub(crate) fn text(publish: &Publish) -> String {
    String::from_utf8_lossy(&publish.payload).into_owned()
}
