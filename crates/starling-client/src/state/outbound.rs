//! `Outbound`: what the client sends and waits for an answer to: its QoS 1
//! and 2 publishes in flight, its SUBSCRIBE and UNSUBSCRIBE requests, the
//! publishes waiting to be sent, and the packet identifiers they all share.
//!
//! The in-flight window is the broker's Receive Maximum (and the client's own
//! cap): a publish counts from its PUBLISH until its PUBACK, its PUBCOMP or a
//! failed PUBREC (MQTT 5.0 §4.9), and the ones beyond wait, in order.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;

use starling_proto::codec::MAX_PACKET_SIZE;
use starling_proto::property::{AckProperties, ConnAckProperties};
use starling_proto::{
    Delivery, EncodeError, Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, ReasonCode,
};

use super::{Queues, Reply, Token};
use crate::error::Error;
use crate::event::{Message, Published};

/// What the broker allows on one connection, from its CONNACK.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// QoS 1 and 2 publishes in flight at once.
    send_quota: usize,
    /// The broker's Maximum Packet Size.
    max_packet_size: u32,
    /// The broker's Maximum QoS.
    maximum_qos: QoS,
    /// Whether the broker accepts retained messages.
    retain_available: bool,
}

impl Limits {
    /// The limits a CONNACK announces, with the client's own in-flight cap.
    pub(super) fn new(props: &ConnAckProperties, max_inflight: usize) -> Self {
        let receive_maximum = props
            .receive_maximum
            .map_or(usize::from(u16::MAX), |r| usize::from(r.get()));
        Limits {
            send_quota: receive_maximum.min(max_inflight),
            max_packet_size: props
                .maximum_packet_size
                .map_or(MAX_PACKET_SIZE, NonZeroU32::get),
            maximum_qos: props.maximum_qos.unwrap_or(QoS::ExactlyOnce),
            retain_available: props.retain_available.unwrap_or(true),
        }
    }
}

/// Where an outgoing QoS 1 or 2 message is in its flow.
#[derive(Debug)]
enum Stage {
    /// QoS 1, sent, waiting for PUBACK.
    Unacked(Publish),
    /// QoS 2, sent, waiting for PUBREC.
    Unreceived(Publish),
    /// QoS 2, PUBREC received and PUBREL sent, waiting for PUBCOMP.
    Released {
        reason_code: ReasonCode,
        properties: AckProperties,
    },
}

#[derive(Debug)]
struct Flow {
    /// Send order, for resending in the original order [MQTT-4.6.0-1].
    seq: u64,
    token: Token,
    stage: Stage,
}

#[derive(Debug)]
struct Pending {
    message: Message,
    token: Token,
}

/// Which request a SUBACK or UNSUBACK may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RequestKind {
    Subscribe,
    Unsubscribe,
}

#[derive(Debug)]
struct Request {
    token: Token,
    kind: RequestKind,
}

/// The client's outgoing side of the session.
#[derive(Debug)]
pub(super) struct Outbound {
    version: ProtocolVersion,
    /// The last packet or message identifier handed out.
    last_id: u16,
    seq: u64,
    flows: HashMap<PacketId, Flow>,
    requests: HashMap<PacketId, Request>,
    pending: VecDeque<Pending>,
    offline_queue: usize,
    /// The client's own cap on publishes in flight.
    pub(super) max_inflight: usize,
}

impl Outbound {
    pub(super) fn new(version: ProtocolVersion, offline_queue: usize, max_inflight: usize) -> Self {
        Outbound {
            version,
            last_id: 0,
            seq: 0,
            flows: HashMap::new(),
            requests: HashMap::new(),
            pending: VecDeque::new(),
            offline_queue,
            max_inflight,
        }
    }

    /// QoS 1 and 2 publishes sent and not yet completed.
    pub(super) fn inflight(&self) -> usize {
        self.flows.len()
    }

    /// Publishes waiting to be sent.
    pub(super) fn queued(&self) -> usize {
        self.pending.len()
    }

    /// Takes a message to send; while offline, only up to the offline bound.
    pub(super) fn enqueue(
        &mut self,
        message: Message,
        token: Token,
        connected: bool,
    ) -> Result<(), Error> {
        if message
            .properties
            .correlation_data
            .as_ref()
            .is_some_and(|data| data.len() > usize::from(u16::MAX))
        {
            return Err(Error::Encode(EncodeError::FieldTooLong("correlation data")));
        }
        if !connected && self.pending.len() >= self.offline_queue {
            return Err(Error::QueueFull(self.offline_queue));
        }
        self.pending.push_back(Pending { message, token });
        Ok(())
    }

    /// Sends waiting publishes while the window allows, in order: a QoS 0
    /// message waits behind a QoS 1 one waiting for a slot.
    pub(super) fn pump(&mut self, limits: &Limits, queues: &mut Queues) {
        while let Some(front) = self.pending.front() {
            if front.message.qos != QoS::AtMostOnce && self.flows.len() >= limits.send_quota {
                return;
            }
            let Pending { message, token } = self.pending.pop_front().expect("front exists");
            if message.qos > limits.maximum_qos {
                let error = Error::Unsupported("QoS above the broker's Maximum QoS");
                queues.complete(token, Err(error));
                continue;
            }
            if message.retain && !limits.retain_available {
                let error =
                    Error::Unsupported("retained messages (the broker's Retain Available is 0)");
                queues.complete(token, Err(error));
                continue;
            }
            let id = if message.qos == QoS::AtMostOnce {
                self.local_message_id()
            } else {
                match self.allocate_id() {
                    Some(id) => id,
                    None => {
                        self.pending.push_front(Pending { message, token });
                        return;
                    }
                }
            };
            let mut properties = message.properties;
            properties.topic_alias = None;
            properties.subscription_identifiers.clear();
            let packet = Packet::Publish(Publish {
                dup: false,
                delivery: Delivery::new(message.qos, id),
                retain: message.retain,
                topic: message.topic,
                payload: message.payload,
                properties: properties.into(),
            });
            let size = packet.encoded_len(self.version);
            if size > limits.max_packet_size as usize {
                let max = limits.max_packet_size;
                queues.complete(token, Err(Error::PacketTooLarge { size, max }));
                continue;
            }
            let Packet::Publish(publish) = packet else {
                unreachable!("built as a PUBLISH")
            };
            let stage = match message.qos {
                QoS::AtMostOnce => {
                    let published = Published {
                        message_id: id,
                        qos: QoS::AtMostOnce,
                        reason_code: ReasonCode::SUCCESS,
                        properties: AckProperties::default(),
                    };
                    queues.send_with(Packet::Publish(publish), id.get(), Some((token, published)));
                    continue;
                }
                QoS::AtLeastOnce => Stage::Unacked(publish.clone()),
                QoS::ExactlyOnce => Stage::Unreceived(publish.clone()),
            };
            self.seq += 1;
            let seq = self.seq;
            self.flows.insert(id, Flow { seq, token, stage });
            queues.send(Packet::Publish(publish));
        }
    }

    /// A packet identifier for a SUBSCRIBE or UNSUBSCRIBE that `token` waits on.
    pub(super) fn request(&mut self, token: Token, kind: RequestKind) -> Result<PacketId, Error> {
        let id = self.allocate_id().ok_or(Error::PacketIdsExhausted)?;
        self.requests.insert(id, Request { token, kind });
        Ok(id)
    }

    /// The request a SUBACK or UNSUBACK with `id` answers, if it is of `kind`.
    pub(super) fn take_request(&mut self, id: PacketId, kind: RequestKind) -> Option<Token> {
        match self.requests.remove(&id) {
            Some(request) if request.kind == kind => Some(request.token),
            Some(request) => {
                self.requests.insert(id, request);
                None
            }
            None => None,
        }
    }

    /// Fails every request awaiting a SUBACK or UNSUBACK.
    pub(super) fn fail_requests(&mut self, error: &Error, queues: &mut Queues) {
        for (_, request) in self.requests.drain() {
            queues.complete(request.token, Err(error.clone()));
        }
    }

    /// Fails everything: requests, publishes in flight and waiting.
    pub(super) fn fail_all(&mut self, error: &Error, queues: &mut Queues) {
        self.fail_requests(error, queues);
        for pending in self.pending.drain(..) {
            queues.complete(pending.token, Err(error.clone()));
        }
        for (_, flow) in self.flows.drain() {
            queues.complete(flow.token, Err(error.clone()));
        }
    }

    pub(super) fn handle_puback(&mut self, ack: PubAck, queues: &mut Queues) {
        let id = ack.packet_id;
        // A PUBACK for a QoS 2 flow is not ours to end.
        if let Some(flow) = self.take_flow(id, |s| matches!(s, Stage::Unacked(_))) {
            complete(
                queues,
                flow.token,
                id,
                QoS::AtLeastOnce,
                ack.reason_code,
                ack.properties,
            );
        }
    }

    pub(super) fn handle_pubrec(&mut self, rec: PubRec, queues: &mut Queues) {
        let id = rec.packet_id;
        let Some(flow) = self.flows.get_mut(&id) else {
            // Not ours (any more): let the broker finish its side.
            if !rec.reason_code.is_error() {
                let mut rel = PubRel::new(id);
                if self.version.is_v5() {
                    rel.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                }
                queues.send(Packet::PubRel(rel));
            }
            return;
        };
        match flow.stage {
            Stage::Unreceived(_) if rec.reason_code.is_error() => {
                // A failed PUBREC ends the flow; no PUBREL follows (MQTT 5.0 §4.3.3).
                let flow = self.flows.remove(&id).expect("just found");
                let error = Error::Rejected {
                    reason_code: rec.reason_code,
                    reason_string: rec.properties.reason_string,
                };
                queues.complete(flow.token, Err(error));
            }
            Stage::Unreceived(_) => {
                flow.stage = Stage::Released {
                    reason_code: rec.reason_code,
                    properties: rec.properties,
                };
                queues.send(Packet::PubRel(PubRel::new(id)));
            }
            // The broker sent PUBREC again: so do we our PUBREL.
            Stage::Released { .. } => queues.send(Packet::PubRel(PubRel::new(id))),
            Stage::Unacked(_) => {}
        }
    }

    pub(super) fn handle_pubcomp(&mut self, comp: PubComp, queues: &mut Queues) {
        let id = comp.packet_id;
        let done = self.take_flow(id, |s| matches!(s, Stage::Released { .. }));
        if let Some(Flow {
            token,
            stage:
                Stage::Released {
                    reason_code,
                    properties,
                },
            ..
        }) = done
        {
            // The result is the PUBREC's: a PUBCOMP "not found" after a resent
            // PUBREL only says the broker had finished already.
            complete(queues, token, id, QoS::ExactlyOnce, reason_code, properties);
        }
    }

    /// The session was resumed: sends again what was unacknowledged, in the
    /// original order, PUBLISHes with DUP set [MQTT-4.4.0-1].
    pub(super) fn resend(&self, queues: &mut Queues) {
        let mut flows: Vec<_> = self.flows.iter().collect();
        flows.sort_by_key(|(_, flow)| flow.seq);
        for (&id, flow) in flows {
            match &flow.stage {
                Stage::Unacked(publish) | Stage::Unreceived(publish) => {
                    let mut publish = publish.clone();
                    publish.dup = true;
                    queues.send(Packet::Publish(publish));
                }
                Stage::Released { .. } => queues.send(Packet::PubRel(PubRel::new(id))),
            }
        }
    }

    /// The session is new: the broker knows none of our identifiers. What was
    /// not acknowledged goes again as new messages, first in the queue; a QoS 2
    /// message whose PUBREC came is complete (the broker had taken it).
    pub(super) fn restart(&mut self, queues: &mut Queues) {
        let mut flows: Vec<_> = self.flows.drain().collect();
        flows.sort_by_key(|(_, flow)| std::cmp::Reverse(flow.seq));
        for (id, flow) in flows {
            match flow.stage {
                Stage::Unacked(publish) | Stage::Unreceived(publish) => {
                    let mut message = Message::from_publish(publish);
                    message.dup = false;
                    let token = flow.token;
                    self.pending.push_front(Pending { message, token });
                }
                Stage::Released {
                    reason_code,
                    properties,
                } => complete(
                    queues,
                    flow.token,
                    id,
                    QoS::ExactlyOnce,
                    reason_code,
                    properties,
                ),
            }
        }
    }

    /// Removes the flow of `id` if it is at a stage `at` accepts.
    fn take_flow(&mut self, id: PacketId, at: impl Fn(&Stage) -> bool) -> Option<Flow> {
        if self.flows.get(&id).is_some_and(|flow| at(&flow.stage)) {
            self.flows.remove(&id)
        } else {
            None
        }
    }

    /// The next identifier not used by an unacknowledged packet.
    fn allocate_id(&mut self) -> Option<PacketId> {
        let mut id = PacketId::new(self.last_id).map_or(PacketId::MIN, PacketId::next);
        for _ in 0..u16::MAX {
            if !self.flows.contains_key(&id) && !self.requests.contains_key(&id) {
                self.last_id = id.get();
                return Some(id);
            }
            id = id.next();
        }
        None
    }

    /// A QoS 0 message's local identifier: the next value of the counter, never
    /// sent, so it may equal an identifier in use.
    fn local_message_id(&mut self) -> PacketId {
        let id = PacketId::new(self.last_id).map_or(PacketId::MIN, PacketId::next);
        self.last_id = id.get();
        id
    }

    #[cfg(test)]
    pub(super) fn set_last_id(&mut self, id: u16) {
        self.last_id = id;
    }
}

/// Completes a publish with its acknowledgement's reason code: a failure is
/// [`Error::Rejected`].
fn complete(
    queues: &mut Queues,
    token: Token,
    id: PacketId,
    qos: QoS,
    reason_code: ReasonCode,
    properties: AckProperties,
) {
    let result = if reason_code.is_error() {
        Err(Error::Rejected {
            reason_code,
            reason_string: properties.reason_string,
        })
    } else {
        Ok(Reply::Published(Published {
            message_id: id,
            qos,
            reason_code,
            properties,
        }))
    };
    queues.complete(token, result);
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU16;

    use bytes::Bytes;
    use starling_proto::{ConnAck, Disconnect, SubscriptionOptions, TopicFilter, TopicName};

    use super::super::test_support::*;
    use super::super::{ClientState, Output};
    use super::*;
    use crate::event::Event;

    fn with_receive_maximum(max: u16) -> ConnAck {
        let mut ack = connack(false);
        ack.properties.receive_maximum = NonZeroU16::new(max);
        ack
    }

    fn publishes(packets: &[Packet]) -> Vec<(u16, bool, Bytes)> {
        packets
            .iter()
            .filter_map(|p| match p {
                Packet::Publish(p) => Some((
                    p.packet_id().map_or(0, PacketId::get),
                    p.dup,
                    p.payload.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    fn filter(filter: &str) -> Vec<(TopicFilter, SubscriptionOptions)> {
        vec![(
            TopicFilter::try_from(filter).unwrap(),
            SubscriptionOptions::default(),
        )]
    }

    fn reconnect(state: &mut ClientState, session_present: bool) {
        state.handle_connection_lost(Error::ConnectionClosed);
        state.connect_packet();
        state
            .handle_connack(connack(session_present), now())
            .unwrap();
    }

    #[test]
    fn qos0_completes_when_written_with_a_local_message_id() {
        let mut state = connected(options(ProtocolVersion::V3_1_1), connack(false));
        state
            .publish(message("t", "a", QoS::AtMostOnce), Token(1))
            .unwrap();
        state
            .publish(message("t", "b", QoS::AtLeastOnce), Token(2))
            .unwrap();
        let transmit = state.poll_transmit(now()).unwrap();
        let (token, published) = transmit.on_written.unwrap();
        assert_eq!((token, published.message_id), (Token(1), pid(1)));
        assert!(matches!(transmit.packet, Packet::Publish(ref p) if p.packet_id().is_none()));
        // One counter for both, as Paho numbers its messages: the QoS 1
        // message that follows carries identifier 2.
        assert_eq!(publishes(&sent(&mut state)), [(2, false, Bytes::from("b"))]);
    }

    #[test]
    fn qos1_completes_at_puback_with_its_reason_code() {
        let mut state = connected(options(ProtocolVersion::V5), connack(false));
        state
            .publish(message("t", "a", QoS::AtLeastOnce), Token(7))
            .unwrap();
        assert_eq!(publishes(&sent(&mut state)), [(1, false, Bytes::from("a"))]);
        assert!(completed(&outputs(&mut state)).is_empty());
        let mut ack = PubAck::new(pid(1));
        ack.reason_code = ReasonCode::NO_MATCHING_SUBSCRIBERS;
        state.handle_packet(Packet::PubAck(ack)).unwrap();
        let done = completed(&outputs(&mut state));
        assert!(matches!(&done[..], [(Token(7), Ok(Reply::Published(p)))]
            if p.reason_code == ReasonCode::NO_MATCHING_SUBSCRIBERS && p.message_id == pid(1)));
        assert_eq!(state.inflight(), 0);
    }

    #[test]
    fn qos2_goes_pubrec_pubrel_pubcomp() {
        let mut state = connected(options(ProtocolVersion::V3_1_1), connack(false));
        state
            .publish(message("t", "a", QoS::ExactlyOnce), Token(1))
            .unwrap();
        sent(&mut state);
        state
            .handle_packet(Packet::PubRec(PubRec::new(pid(1))))
            .unwrap();
        assert_eq!(sent(&mut state), [Packet::PubRel(PubRel::new(pid(1)))]);
        assert!(completed(&outputs(&mut state)).is_empty());
        // A PUBACK for a QoS 2 identifier does not end its flow.
        state
            .handle_packet(Packet::PubAck(PubAck::new(pid(1))))
            .unwrap();
        assert!(completed(&outputs(&mut state)).is_empty());
        state
            .handle_packet(Packet::PubComp(PubComp::new(pid(1))))
            .unwrap();
        let done = completed(&outputs(&mut state));
        assert!(
            matches!(&done[..], [(Token(1), Ok(Reply::Published(p)))] if p.qos == QoS::ExactlyOnce)
        );
    }

    #[test]
    fn failed_puback_and_pubrec_are_rejections_without_pubrel() {
        let mut state = connected(options(ProtocolVersion::V5), connack(false));
        state
            .publish(message("t", "a", QoS::AtLeastOnce), Token(1))
            .unwrap();
        state
            .publish(message("t", "b", QoS::ExactlyOnce), Token(2))
            .unwrap();
        sent(&mut state);
        let mut ack = PubAck::new(pid(1));
        ack.reason_code = ReasonCode::NOT_AUTHORIZED;
        state.handle_packet(Packet::PubAck(ack)).unwrap();
        let mut rec = PubRec::new(pid(2));
        rec.reason_code = ReasonCode::QUOTA_EXCEEDED;
        state.handle_packet(Packet::PubRec(rec)).unwrap();
        assert!(
            sent(&mut state).is_empty(),
            "no PUBREL after a failed PUBREC"
        );
        let done = completed(&outputs(&mut state));
        assert!(
            matches!(&done[0], (Token(1), Err(Error::Rejected { reason_code, .. }))
            if *reason_code == ReasonCode::NOT_AUTHORIZED)
        );
        assert!(
            matches!(&done[1], (Token(2), Err(Error::Rejected { reason_code, .. }))
            if *reason_code == ReasonCode::QUOTA_EXCEEDED)
        );
        assert_eq!(state.inflight(), 0);
    }

    #[test]
    fn unknown_pubrec_is_released_as_not_found() {
        let mut state = connected(options(ProtocolVersion::V5), connack(false));
        state
            .handle_packet(Packet::PubRec(PubRec::new(pid(5))))
            .unwrap();
        let mut rel = PubRel::new(pid(5));
        rel.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        assert_eq!(sent(&mut state), [Packet::PubRel(rel)]);
    }

    #[test]
    fn receive_maximum_caps_publishes_in_flight() {
        let mut state = connected(options(ProtocolVersion::V5), with_receive_maximum(2));
        let qos = [
            QoS::AtLeastOnce,
            QoS::ExactlyOnce,
            QoS::AtLeastOnce,
            QoS::AtMostOnce,
        ];
        for (i, qos) in qos.into_iter().enumerate() {
            state
                .publish(message("t", "m", qos), Token(i as u64))
                .unwrap();
        }
        assert_eq!(publishes(&sent(&mut state)).len(), 2);
        assert_eq!((state.inflight(), state.queued()), (2, 2));
        // PUBREC does not free the slot; PUBCOMP does (MQTT 5.0 §4.9).
        state
            .handle_packet(Packet::PubRec(PubRec::new(pid(2))))
            .unwrap();
        assert_eq!(sent(&mut state), [Packet::PubRel(PubRel::new(pid(2)))]);
        state
            .handle_packet(Packet::PubComp(PubComp::new(pid(2))))
            .unwrap();
        // The third goes, and the QoS 0 one behind it, in order.
        assert_eq!(
            publishes(&sent(&mut state)),
            [(3, false, Bytes::from("m")), (0, false, Bytes::from("m"))]
        );
        assert_eq!(state.inflight(), 2);
    }

    #[test]
    fn max_inflight_option_caps_a_3x_client() {
        let mut state = connected(
            options(ProtocolVersion::V3_1_1).max_inflight(1),
            connack(false),
        );
        state
            .publish(message("t", "a", QoS::AtLeastOnce), Token(1))
            .unwrap();
        state
            .publish(message("t", "b", QoS::AtLeastOnce), Token(2))
            .unwrap();
        assert_eq!(publishes(&sent(&mut state)).len(), 1);
        state
            .handle_packet(Packet::PubAck(PubAck::new(pid(1))))
            .unwrap();
        assert_eq!(publishes(&sent(&mut state)), [(2, false, Bytes::from("b"))]);
    }

    #[test]
    fn packet_ids_skip_those_in_use_and_wrap() {
        let mut state = connected(options(ProtocolVersion::V3_1_1), connack(false));
        state.outbound.set_last_id(u16::MAX - 1);
        for (i, payload) in ["a", "b", "c"].into_iter().enumerate() {
            let m = message("t", payload, QoS::AtLeastOnce);
            state.publish(m, Token(i as u64)).unwrap();
        }
        let ids: Vec<_> = publishes(&sent(&mut state))
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(ids, [u16::MAX, 1, 2]);
        // 65535, 1 and 2 are still in flight: the next identifier skips them.
        state.outbound.set_last_id(u16::MAX - 1);
        state
            .subscribe(filter("a"), Default::default(), Token(4))
            .unwrap();
        assert!(matches!(&sent(&mut state)[..], [Packet::Subscribe(s)] if s.packet_id == pid(3)));
    }

    #[test]
    fn oversized_publish_fails_instead_of_being_sent() {
        let mut ack = connack(false);
        ack.properties.maximum_packet_size = NonZeroU32::new(64);
        let mut state = connected(options(ProtocolVersion::V5), ack);
        let topic = TopicName::try_from("t").unwrap();
        let big = Message::new(topic, vec![0u8; 100], QoS::AtLeastOnce);
        state.publish(big, Token(1)).unwrap();
        assert!(sent(&mut state).is_empty());
        let done = completed(&outputs(&mut state));
        assert!(matches!(
            &done[..],
            [(Token(1), Err(Error::PacketTooLarge { max: 64, .. }))]
        ));
        assert_eq!(state.inflight(), 0);
    }

    #[test]
    fn qos_and_retain_beyond_the_brokers_support_are_refused() {
        let mut ack = connack(false);
        ack.properties.maximum_qos = Some(QoS::AtLeastOnce);
        ack.properties.retain_available = Some(false);
        let mut state = connected(options(ProtocolVersion::V5), ack);
        state
            .publish(message("t", "a", QoS::ExactlyOnce), Token(1))
            .unwrap();
        let retained = message("t", "a", QoS::AtMostOnce).retain(true);
        state.publish(retained, Token(2)).unwrap();
        assert!(sent(&mut state).is_empty());
        let done = completed(&outputs(&mut state));
        assert!(matches!(
            &done[..],
            [
                (Token(1), Err(Error::Unsupported(_))),
                (Token(2), Err(Error::Unsupported(_)))
            ]
        ));
    }

    #[test]
    fn resumed_session_resends_with_dup_and_original_ids_in_order() {
        let mut state = connected(
            options(ProtocolVersion::V3_1_1).clean_start(false),
            connack(false),
        );
        state
            .publish(message("t", "q1", QoS::AtLeastOnce), Token(1))
            .unwrap();
        state
            .publish(message("t", "q2", QoS::ExactlyOnce), Token(2))
            .unwrap();
        state
            .publish(message("t", "q2b", QoS::ExactlyOnce), Token(3))
            .unwrap();
        sent(&mut state);
        state
            .handle_packet(Packet::PubRec(PubRec::new(pid(3))))
            .unwrap();
        drain(&mut state);
        state.handle_connection_lost(Error::ConnectionClosed);
        assert!(!state.connect_packet().clean_start);
        state.handle_connack(connack(true), now()).unwrap();
        let resent = sent(&mut state);
        assert_eq!(
            publishes(&resent),
            [(1, true, Bytes::from("q1")), (2, true, Bytes::from("q2"))]
        );
        assert_eq!(resent[2], Packet::PubRel(PubRel::new(pid(3))));
        state
            .handle_packet(Packet::PubAck(PubAck::new(pid(1))))
            .unwrap();
        let mut comp = PubComp::new(pid(3));
        comp.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        state.handle_packet(Packet::PubComp(comp)).unwrap();
        let done = completed(&outputs(&mut state));
        assert!(matches!(&done[..], [(Token(1), Ok(_)), (Token(3), Ok(_))]));
    }

    #[test]
    fn new_session_sends_unacknowledged_messages_again_as_new() {
        let mut state = connected(options(ProtocolVersion::V3_1_1), connack(false));
        state
            .publish(message("t", "q1", QoS::AtLeastOnce), Token(1))
            .unwrap();
        state
            .publish(message("t", "q2", QoS::ExactlyOnce), Token(2))
            .unwrap();
        state
            .publish(message("t", "q2b", QoS::ExactlyOnce), Token(3))
            .unwrap();
        sent(&mut state);
        state
            .handle_packet(Packet::PubRec(PubRec::new(pid(3))))
            .unwrap();
        drain(&mut state);
        reconnect(&mut state, false);
        // q2b's PUBREC had come: the broker has it, so it is complete.
        let done = completed(&outputs(&mut state));
        assert!(matches!(&done[..], [(Token(3), Ok(_))]));
        assert_eq!(
            publishes(&sent(&mut state)),
            [(4, false, Bytes::from("q1")), (5, false, Bytes::from("q2"))]
        );
    }

    #[test]
    fn mqtt31_session_is_present_when_clean_session_was_0() {
        let mut state = connected(
            options(ProtocolVersion::V3_1).clean_start(false),
            connack(false),
        );
        state
            .publish(message("t", "a", QoS::AtLeastOnce), Token(1))
            .unwrap();
        sent(&mut state);
        reconnect(&mut state, false);
        assert_eq!(publishes(&sent(&mut state)), [(1, true, Bytes::from("a"))]);
    }

    #[test]
    fn offline_publishes_queue_up_to_the_bound_and_go_on_reconnect() {
        let mut state = connected(
            options(ProtocolVersion::V3_1_1).offline_queue(2),
            connack(false),
        );
        state.handle_connection_lost(Error::ConnectionClosed);
        state
            .publish(message("t", "a", QoS::AtMostOnce), Token(1))
            .unwrap();
        state
            .publish(message("t", "b", QoS::AtLeastOnce), Token(2))
            .unwrap();
        assert!(matches!(
            state.publish(message("t", "c", QoS::AtLeastOnce), Token(3)),
            Err(Error::QueueFull(2))
        ));
        assert!(sent(&mut state).is_empty());
        state.connect_packet();
        state.handle_connack(connack(false), now()).unwrap();
        assert_eq!(publishes(&sent(&mut state)).len(), 2);
    }

    #[test]
    fn requests_fail_offline_and_when_the_connection_is_lost() {
        let mut state = connected(options(ProtocolVersion::V3_1_1), connack(false));
        state
            .subscribe(filter("a"), Default::default(), Token(1))
            .unwrap();
        state.handle_connection_lost(Error::ConnectionClosed);
        let out = outputs(&mut state);
        assert!(matches!(
            &completed(&out)[..],
            [(Token(1), Err(Error::ConnectionLost))]
        ));
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Event(Event::Disconnected {
                reason: Error::ConnectionClosed
            })
        )));
        assert!(matches!(
            state.subscribe(filter("a"), Default::default(), Token(2)),
            Err(Error::NotConnected)
        ));
    }

    #[test]
    fn suback_and_unsuback_complete_their_requests() {
        let mut state = connected(options(ProtocolVersion::V5), connack(false));
        state
            .subscribe(filter("a/+"), Default::default(), Token(1))
            .unwrap();
        let filters = vec![TopicFilter::try_from("a/+").unwrap()];
        state
            .unsubscribe(filters, Default::default(), Token(2))
            .unwrap();
        sent(&mut state);
        let suback = starling_proto::SubAck {
            packet_id: pid(1),
            reason_codes: vec![ReasonCode::GRANTED_QOS_0],
            properties: Default::default(),
        };
        let unsuback = starling_proto::UnsubAck {
            packet_id: pid(2),
            reason_codes: vec![ReasonCode::SUCCESS],
            properties: Default::default(),
        };
        // An UNSUBACK with a SUBSCRIBE's identifier is not taken as its answer.
        let wrong = starling_proto::UnsubAck {
            packet_id: pid(1),
            ..unsuback.clone()
        };
        state.handle_packet(Packet::UnsubAck(wrong)).unwrap();
        assert!(completed(&outputs(&mut state)).is_empty());
        state.handle_packet(Packet::SubAck(suback.clone())).unwrap();
        state
            .handle_packet(Packet::UnsubAck(unsuback.clone()))
            .unwrap();
        let done = completed(&outputs(&mut state));
        assert!(matches!(&done[0], (Token(1), Ok(Reply::SubAck(a))) if *a == suback));
        assert!(matches!(&done[1], (Token(2), Ok(Reply::UnsubAck(a))) if *a == unsuback));
    }

    #[test]
    fn disconnect_sends_disconnect_and_fails_what_is_pending() {
        let mut state = connected(options(ProtocolVersion::V5), with_receive_maximum(1));
        state
            .publish(message("t", "a", QoS::AtLeastOnce), Token(1))
            .unwrap();
        state
            .publish(message("t", "b", QoS::AtLeastOnce), Token(2))
            .unwrap();
        sent(&mut state);
        let mut disconnect = Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE);
        disconnect.properties.session_expiry_interval = Some(0);
        state.disconnect(disconnect.clone());
        assert_eq!(sent(&mut state), [Packet::Disconnect(disconnect)]);
        let mut tokens: Vec<_> = completed(&outputs(&mut state))
            .into_iter()
            .map(|(token, result)| {
                assert!(matches!(result, Err(Error::Closed)));
                token.0
            })
            .collect();
        tokens.sort_unstable();
        assert_eq!(tokens, [1, 2]);
        assert!(state.is_closed());
        let late = state.publish(message("t", "c", QoS::AtMostOnce), Token(3));
        assert!(matches!(late, Err(Error::Closed)));
    }
}
