//! `ClientState`: the client's side of the protocol as a plain struct, with no
//! sockets, no tasks and no clock: time comes in as `now`.
//!
//! It owns what outlives one connection (the session: packet identifiers, the
//! outgoing QoS 1 and 2 flows and requests in [`outbound`], the incoming QoS 2
//! identifiers awaiting PUBREL in [`inbound`], publishes waiting to be sent)
//! and what belongs to one connection (keep alive, the broker's limits,
//! incoming Topic Aliases). The connection task feeds it packets, commands and
//! timeouts (`handle_*`, `publish`, ...) and drains what it produced: packets to
//! write ([`ClientState::poll_transmit`]) and completions and events for the
//! application ([`ClientState::poll_output`]). Requests are named by a
//! [`Token`] that the task maps to the caller waiting for it.
//!
//! Reconnection [MQTT-4.4.0-1]: when the broker resumes the session (CONNACK
//! Session Present), unacknowledged PUBLISHes are sent again with DUP set and
//! their original Packet Identifiers, and PUBRELs again, in their original
//! order. When it does not, the session is gone on both sides: PUBLISHes not
//! yet acknowledged are sent again as new messages (new identifiers, DUP clear;
//! QoS 1 and 2 are then at least once across that loss), and a QoS 2 message
//! whose PUBREC had arrived completes, since the broker had taken it.

mod inbound;
mod outbound;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use starling_proto::property::{SubscribeProperties, UnsubscribeProperties};
use starling_proto::{
    ConnAck, Connect, DecodeError, Disconnect, EncodeError, MqttString, Packet, PacketId,
    PacketType, ProtocolVersion, ReasonCode, SubAck, Subscribe, SubscriptionOptions, TopicFilter,
    UnsubAck, Unsubscribe,
};

use self::inbound::Inbound;
use self::outbound::{Limits, Outbound, RequestKind};
use crate::error::Error;
use crate::event::{packet_message_id, Event, Message, Published};
use crate::keepalive::{KeepAlive, KeepAliveAction};
use crate::options::ClientOptions;

/// Names one request of the application, so that its completion finds its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Token(pub(crate) u64);

/// What a completed request gives back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    Published(Published),
    SubAck(SubAck),
    UnsubAck(UnsubAck),
}

/// What the state has for the application.
#[derive(Debug)]
pub(crate) enum Output {
    /// A request completed.
    Complete {
        token: Token,
        result: Result<Reply, Error>,
    },
    /// A message arrived or the connection changed.
    Event(Event),
}

/// A packet to write.
#[derive(Debug)]
pub(crate) struct Transmit {
    pub(crate) packet: Packet,
    /// The message identifier for the packet trace.
    pub(crate) message_id: u16,
    /// A QoS 0 publish completes once its bytes are written.
    pub(crate) on_written: Option<(Token, Published)>,
}

/// What the state produced and the task has not taken yet.
#[derive(Debug, Default)]
struct Queues {
    transmit: VecDeque<Transmit>,
    outputs: VecDeque<Output>,
}

impl Queues {
    fn send(&mut self, packet: Packet) {
        let message_id = packet_message_id(&packet);
        self.send_with(packet, message_id, None);
    }

    fn send_with(
        &mut self,
        packet: Packet,
        message_id: u16,
        on_written: Option<(Token, Published)>,
    ) {
        self.transmit.push_back(Transmit {
            packet,
            message_id,
            on_written,
        });
    }

    fn complete(&mut self, token: Token, result: Result<Reply, Error>) {
        self.outputs.push_back(Output::Complete { token, result });
    }

    fn event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }
}

/// What holds for one connection only, from its CONNACK to its end.
#[derive(Debug)]
struct Link {
    keep_alive: KeepAlive,
    limits: Limits,
}

/// The protocol state of one client across its connections.
#[derive(Debug)]
pub(crate) struct ClientState {
    version: ProtocolVersion,
    /// The CONNECT every attempt starts from.
    connect: Connect,
    /// Reconnect with Clean Start 0: a v5 session that outlives its connection.
    resume_on_reconnect: bool,
    /// Clean Start of the last CONNECT, for 3.1's missing Session Present.
    last_clean_start: bool,
    ever_connected: bool,
    /// The identifier in use: the configured one, or the one the broker assigned.
    client_id: MqttString,
    assigned_client_id: Option<MqttString>,
    link: Option<Link>,
    outbound: Outbound,
    inbound: Inbound,
    queues: Queues,
    closed: bool,
}

impl ClientState {
    /// The state for a client with `options`; fails if they cannot make a CONNECT.
    pub(crate) fn new(options: &ClientOptions) -> Result<Self, Error> {
        let connect = options.to_connect()?;
        let version = connect.protocol;
        let max_inflight = options
            .max_inflight
            .map_or(usize::from(u16::MAX), |m| usize::from(m.get()));
        let alias_maximum = connect.properties.topic_alias_maximum.unwrap_or(0);
        Ok(ClientState {
            version,
            resume_on_reconnect: version.is_v5()
                && connect.properties.session_expiry_interval.unwrap_or(0) > 0,
            last_clean_start: connect.clean_start,
            ever_connected: false,
            client_id: connect.client_id.clone(),
            assigned_client_id: None,
            connect,
            link: None,
            outbound: Outbound::new(version, options.offline_queue, max_inflight),
            inbound: Inbound::new(version, alias_maximum),
            queues: Queues::default(),
            closed: false,
        })
    }

    /// The protocol version.
    pub(crate) fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The client identifier in use (empty if a 3.x broker assigned one).
    pub(crate) fn client_id(&self) -> &MqttString {
        &self.client_id
    }

    /// The identifier an MQTT 5.0 broker assigned, if it did.
    pub(crate) fn assigned_client_id(&self) -> Option<&MqttString> {
        self.assigned_client_id.as_ref()
    }

    /// Whether a CONNACK has been accepted and the connection not lost since.
    pub(crate) fn is_connected(&self) -> bool {
        self.link.is_some()
    }

    /// Whether the client was closed; nothing more will be sent.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// QoS 1 and 2 publishes sent and not yet completed.
    pub(crate) fn inflight(&self) -> usize {
        self.outbound.inflight()
    }

    /// Publishes waiting to be sent (offline, or for an in-flight slot).
    pub(crate) fn queued(&self) -> usize {
        self.outbound.queued()
    }

    /// The CONNECT for the next attempt: the configured one, with the
    /// broker-assigned client identifier once there is one, and Clean Start 0
    /// on reconnection when a v5 session is meant to outlive its connection.
    pub(crate) fn connect_packet(&mut self) -> Connect {
        let mut connect = self.connect.clone();
        connect.client_id = self.client_id.clone();
        if self.ever_connected && self.resume_on_reconnect {
            connect.clean_start = false;
        }
        self.last_clean_start = connect.clean_start;
        connect
    }

    /// Applies the CONNACK of an attempt: a refusal is `Err(Refused)`; success
    /// starts the connection, resends or re-queues the session's messages and
    /// sends what waits.
    pub(crate) fn handle_connack(&mut self, connack: ConnAck, now: Instant) -> Result<(), Error> {
        if connack.reason_code.is_error() {
            return Err(Error::Refused(connack.reason_code));
        }
        let props = &connack.properties;
        if let Some(assigned) = &props.assigned_client_identifier {
            self.client_id = assigned.clone();
            self.assigned_client_id = Some(assigned.clone());
        }
        // MQTT 3.1's CONNACK has no Session Present flag: a 3.1 broker keeps
        // the session whenever Clean Session was 0.
        let session_present = connack.session_present
            || (self.version == ProtocolVersion::V3_1 && !self.last_clean_start);
        let keep_alive = props.server_keep_alive.unwrap_or(self.connect.keep_alive);
        let keep_alive = (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive)));
        self.link = Some(Link {
            keep_alive: KeepAlive::new(keep_alive, now),
            limits: Limits::new(props, self.outbound.max_inflight),
        });
        self.ever_connected = true;
        self.inbound.new_connection();
        if session_present {
            self.outbound.resend(&mut self.queues);
        } else {
            self.inbound.new_session();
            self.outbound.restart(&mut self.queues);
        }
        self.queues.event(Event::Connected {
            session_present,
            connack,
        });
        self.pump();
        Ok(())
    }

    /// The connection ended (`reason` says why): requests that needed it fail,
    /// packets not yet taken for writing are dropped (the session's are sent
    /// again on the next connection), the session stays.
    pub(crate) fn handle_connection_lost(&mut self, reason: Error) {
        let was_connected = self.link.take().is_some();
        self.outbound
            .fail_requests(&Error::ConnectionLost, &mut self.queues);
        for transmit in std::mem::take(&mut self.queues.transmit) {
            if let Some((token, _)) = transmit.on_written {
                self.queues.complete(token, Err(Error::ConnectionLost));
            }
        }
        if was_connected {
            self.queues.event(Event::Disconnected { reason });
        }
    }

    /// Takes an application message; it is sent at once if the connection and
    /// the in-flight window allow, otherwise when they do, in order.
    pub(crate) fn publish(&mut self, message: Message, token: Token) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.outbound.enqueue(message, token, self.link.is_some())?;
        self.pump();
        Ok(())
    }

    /// Sends a SUBSCRIBE; the SUBACK completes `token`.
    pub(crate) fn subscribe(
        &mut self,
        filters: Vec<(TopicFilter, SubscriptionOptions)>,
        properties: SubscribeProperties,
        token: Token,
    ) -> Result<(), Error> {
        if filters.is_empty() {
            return Err(Error::Encode(EncodeError::Empty(PacketType::Subscribe)));
        }
        let packet_id = self.request(token, RequestKind::Subscribe)?;
        self.queues.send(Packet::Subscribe(Subscribe {
            packet_id,
            filters,
            properties,
        }));
        Ok(())
    }

    /// Sends an UNSUBSCRIBE; the UNSUBACK completes `token`.
    pub(crate) fn unsubscribe(
        &mut self,
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
        token: Token,
    ) -> Result<(), Error> {
        if filters.is_empty() {
            return Err(Error::Encode(EncodeError::Empty(PacketType::Unsubscribe)));
        }
        let packet_id = self.request(token, RequestKind::Unsubscribe)?;
        self.queues.send(Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters,
            properties,
        }));
        Ok(())
    }

    fn request(&mut self, token: Token, kind: RequestKind) -> Result<PacketId, Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        if self.link.is_none() {
            return Err(Error::NotConnected);
        }
        self.outbound.request(token, kind)
    }

    /// Ends the client: sends `disconnect` if connected, and fails everything
    /// still pending with [`Error::Closed`].
    pub(crate) fn disconnect(&mut self, disconnect: Disconnect) {
        if self.link.is_some() {
            self.queues.send(Packet::Disconnect(disconnect));
            self.queues.event(Event::Disconnected {
                reason: Error::Closed,
            });
        }
        self.close(Error::Closed);
    }

    /// Fails every pending request with `error`; nothing is sent after what is
    /// already queued.
    pub(crate) fn close(&mut self, error: Error) {
        self.closed = true;
        self.link = None;
        self.outbound.fail_all(&error, &mut self.queues);
    }

    /// Applies one packet from the broker. An error ends the connection (after a
    /// v5 DISCONNECT, queued here, where the broker broke a rule).
    pub(crate) fn handle_packet(&mut self, packet: Packet) -> Result<(), Error> {
        let Some(link) = &mut self.link else {
            return Ok(());
        };
        match packet {
            Packet::Publish(publish) => {
                if let Err(violation) = self.inbound.handle_publish(publish, &mut self.queues) {
                    return Err(self.protocol_error(violation.reason_code, violation.what));
                }
            }
            Packet::PubAck(ack) => {
                self.outbound.handle_puback(ack, &mut self.queues);
                self.pump();
            }
            Packet::PubRec(rec) => {
                self.outbound.handle_pubrec(rec, &mut self.queues);
                self.pump();
            }
            Packet::PubComp(comp) => {
                self.outbound.handle_pubcomp(comp, &mut self.queues);
                self.pump();
            }
            Packet::PubRel(rel) => self.inbound.handle_pubrel(rel, &mut self.queues),
            Packet::SubAck(ack) => {
                let token = self
                    .outbound
                    .take_request(ack.packet_id, RequestKind::Subscribe);
                if let Some(token) = token {
                    self.queues.complete(token, Ok(Reply::SubAck(ack)));
                }
            }
            Packet::UnsubAck(ack) => {
                let token = self
                    .outbound
                    .take_request(ack.packet_id, RequestKind::Unsubscribe);
                if let Some(token) = token {
                    self.queues.complete(token, Ok(Reply::UnsubAck(ack)));
                }
            }
            Packet::PingResp => link.keep_alive.handle_pingresp(),
            Packet::Disconnect(disconnect) => {
                return Err(Error::ServerDisconnect {
                    reason_code: disconnect.reason_code,
                    reason_string: disconnect.properties.into_inner().reason_string,
                })
            }
            Packet::ConnAck(_) => {
                return Err(self.protocol_error(
                    ReasonCode::PROTOCOL_ERROR,
                    "[MQTT-3.2.0-2] a second CONNACK",
                ))
            }
            Packet::Auth(_) => {
                return Err(self.protocol_error(
                    ReasonCode::PROTOCOL_ERROR,
                    "[MQTT-4.12.0-6] AUTH without an Authentication Method in CONNECT",
                ))
            }
            // The client-role decoder refuses what a broker may not send.
            Packet::Connect(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PingReq => {}
        }
        Ok(())
    }

    /// The broker sent bytes that do not decode: the connection ends, with a v5
    /// DISCONNECT carrying the error's reason code.
    pub(crate) fn handle_decode_error(&mut self, error: DecodeError) -> Error {
        if self.version.is_v5() && self.link.is_some() {
            let disconnect = Disconnect::new(error.reason_code());
            self.queues.send(Packet::Disconnect(disconnect));
        }
        Error::Decode(error)
    }

    fn protocol_error(&mut self, code: ReasonCode, what: &'static str) -> Error {
        if self.version.is_v5() {
            self.queues.send(Packet::Disconnect(Disconnect::new(code)));
        }
        Error::Protocol(what)
    }

    /// When [`Self::handle_timeout`] is next due, if ever.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.link.as_ref()?.keep_alive.poll_timeout()
    }

    /// Keep alive: queues PINGREQ when due; an error if its PINGRESP is overdue.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        let Some(link) = &mut self.link else {
            return Ok(());
        };
        match link.keep_alive.handle_timeout(now) {
            KeepAliveAction::Wait => Ok(()),
            KeepAliveAction::Ping => {
                self.queues.send(Packet::PingReq);
                Ok(())
            }
            KeepAliveAction::TimedOut => {
                let interval = link.keep_alive.interval().unwrap_or_default();
                Err(Error::KeepAliveTimeout(interval))
            }
        }
    }

    /// The next packet to write, which leaves at `now` as far as keep alive is
    /// concerned.
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let transmit = self.queues.transmit.pop_front()?;
        if let Some(link) = &mut self.link {
            link.keep_alive.handle_sent(now);
        }
        Some(transmit)
    }

    /// The next completion or event.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.queues.outputs.pop_front()
    }

    fn pump(&mut self) {
        if let Some(link) = &self.link {
            self.outbound.pump(&link.limits, &mut self.queues);
        }
    }
}

/// Helpers for the tests of this module and its children.
#[cfg(test)]
mod test_support {
    use super::*;
    use starling_proto::{PacketId, QoS, TopicName};

    pub(super) fn now() -> Instant {
        Instant::now()
    }

    pub(super) fn options(version: ProtocolVersion) -> ClientOptions {
        ClientOptions::new("mqtt://localhost")
            .unwrap()
            .version(version)
            .client_id("c")
    }

    pub(super) fn connack(session_present: bool) -> ConnAck {
        ConnAck {
            session_present,
            ..ConnAck::default()
        }
    }

    pub(super) fn connected_at(options: ClientOptions, ack: ConnAck, at: Instant) -> ClientState {
        let mut state = ClientState::new(&options).unwrap();
        state.connect_packet();
        state.handle_connack(ack, at).unwrap();
        drain(&mut state);
        state
    }

    pub(super) fn connected(options: ClientOptions, ack: ConnAck) -> ClientState {
        connected_at(options, ack, now())
    }

    pub(super) fn sent_at(state: &mut ClientState, at: Instant) -> Vec<Packet> {
        std::iter::from_fn(|| state.poll_transmit(at))
            .map(|t| t.packet)
            .collect()
    }

    pub(super) fn sent(state: &mut ClientState) -> Vec<Packet> {
        sent_at(state, now())
    }

    pub(super) fn outputs(state: &mut ClientState) -> Vec<Output> {
        std::iter::from_fn(|| state.poll_output()).collect()
    }

    pub(super) fn drain(state: &mut ClientState) {
        sent(state);
        outputs(state);
    }

    pub(super) fn message(topic: &str, payload: &'static str, qos: QoS) -> Message {
        Message::new(TopicName::try_from(topic).unwrap(), payload, qos)
    }

    pub(super) fn pid(id: u16) -> PacketId {
        PacketId::new(id).unwrap()
    }

    pub(super) fn completed(outputs: &[Output]) -> Vec<(Token, Result<Reply, Error>)> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Complete { token, result } => Some((*token, result.clone())),
                Output::Event(_) => None,
            })
            .collect()
    }

    pub(super) fn delivered(outputs: &[Output]) -> Vec<Message> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Event(Event::Message(m)) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn keep_alive_pings_when_idle_and_times_out_without_pingresp() {
        let start = now();
        let options = options(ProtocolVersion::V3_1_1).keep_alive(10 * SEC);
        let mut state = connected_at(options, connack(false), start);
        assert_eq!(state.poll_timeout(), Some(start + 10 * SEC));
        state.handle_timeout(start + 10 * SEC).unwrap();
        assert_eq!(sent_at(&mut state, start + 10 * SEC), [Packet::PingReq]);
        state.handle_packet(Packet::PingResp).unwrap();
        assert_eq!(state.poll_timeout(), Some(start + 20 * SEC));
        state.handle_timeout(start + 20 * SEC).unwrap();
        assert_eq!(sent_at(&mut state, start + 20 * SEC), [Packet::PingReq]);
        let timed_out = state.handle_timeout(start + 30 * SEC);
        assert!(matches!(timed_out, Err(Error::KeepAliveTimeout(d)) if d == 10 * SEC));
    }

    #[test]
    fn traffic_defers_the_ping() {
        let start = now();
        let options = options(ProtocolVersion::V3_1_1).keep_alive(10 * SEC);
        let mut state = connected_at(options, connack(false), start);
        state
            .handle_packet(Packet::PubRel(starling_proto::PubRel::new(pid(1))))
            .unwrap();
        sent_at(&mut state, start + 5 * SEC);
        assert_eq!(state.poll_timeout(), Some(start + 15 * SEC));
    }

    #[test]
    fn server_keep_alive_replaces_ours() {
        let start = now();
        let mut ack = connack(false);
        ack.properties.server_keep_alive = Some(3);
        let options_60 = options(ProtocolVersion::V5).keep_alive(60 * SEC);
        let state = connected_at(options_60, ack, start);
        assert_eq!(state.poll_timeout(), Some(start + 3 * SEC));
        let options_off = options(ProtocolVersion::V5).keep_alive(Duration::ZERO);
        let state = connected_at(options_off, connack(false), start);
        assert_eq!(state.poll_timeout(), None);
    }

    #[test]
    fn refused_connack_is_refused_with_its_reason() {
        let mut state = ClientState::new(&options(ProtocolVersion::V3_1_1)).unwrap();
        state.connect_packet();
        let ack = ConnAck {
            reason_code: ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            ..ConnAck::default()
        };
        assert!(matches!(
            state.handle_connack(ack, now()),
            Err(Error::Refused(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID))
        ));
        assert!(!state.is_connected());
    }

    #[test]
    fn assigned_id_and_session_expiry_shape_the_reconnection() {
        let options = ClientOptions::new("mqtt://localhost")
            .unwrap()
            .version(ProtocolVersion::V5)
            .session_expiry(60 * SEC);
        let mut state = ClientState::new(&options).unwrap();
        assert!(state.connect_packet().clean_start);
        let mut ack = connack(false);
        ack.properties.assigned_client_identifier = Some(MqttString::from_static("auto-1"));
        state.handle_connack(ack, now()).unwrap();
        assert_eq!(
            state.assigned_client_id().map(|id| id.as_str()),
            Some("auto-1")
        );
        state.handle_connection_lost(Error::ConnectionClosed);
        let again = state.connect_packet();
        assert_eq!(again.client_id, "auto-1");
        assert!(
            !again.clean_start,
            "resume the session that outlives the connection"
        );
    }

    #[test]
    fn a_3x_clean_session_reconnects_clean() {
        let mut state = connected(options(ProtocolVersion::V3_1_1), connack(false));
        state.handle_connection_lost(Error::ConnectionClosed);
        assert!(state.connect_packet().clean_start);
    }

    #[test]
    fn server_disconnect_ends_the_connection_with_its_reason() {
        let mut state = connected(options(ProtocolVersion::V5), connack(false));
        let disconnect = Disconnect::new(ReasonCode::SESSION_TAKEN_OVER);
        let result = state.handle_packet(Packet::Disconnect(disconnect));
        assert!(matches!(
            result,
            Err(Error::ServerDisconnect {
                reason_code: ReasonCode::SESSION_TAKEN_OVER,
                ..
            })
        ));
        assert!(sent(&mut state).is_empty());
    }

    #[test]
    fn decode_errors_close_with_their_reason_code_in_v5() {
        let mut state = connected(options(ProtocolVersion::V5), connack(false));
        let error = state.handle_decode_error(DecodeError::InvalidQoS);
        assert!(matches!(error, Error::Decode(DecodeError::InvalidQoS)));
        let disconnect = Disconnect::new(ReasonCode::MALFORMED_PACKET);
        assert_eq!(sent(&mut state), [Packet::Disconnect(disconnect)]);
    }

    #[test]
    fn a_second_connack_is_a_protocol_error() {
        let mut state = connected(options(ProtocolVersion::V3_1_1), connack(false));
        let result = state.handle_packet(Packet::ConnAck(connack(false)));
        assert!(matches!(result, Err(Error::Protocol(_))));
        assert!(
            sent(&mut state).is_empty(),
            "3.x has no DISCONNECT from a client with a reason"
        );
    }
}
