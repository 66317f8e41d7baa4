//! `Inbound`: the broker's PUBLISHes to the client: acknowledging them,
//! delivering each QoS 2 message once, and resolving Topic Aliases.
//!
//! The QoS 2 identifiers awaiting PUBREL belong to the session (a resumed
//! session keeps them, so a resend after a reconnection is still recognised);
//! Topic Aliases belong to one connection [MQTT-3.3.2-7].

use std::collections::{HashMap, HashSet};

use starling_proto::{
    Delivery, Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish,
    ReasonCode, TopicAlias, TopicName,
};

use super::Queues;
use crate::event::{Event, Message};

/// A rule the broker broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Violation {
    /// The reason code of our DISCONNECT.
    pub(super) reason_code: ReasonCode,
    /// What happened, with the rule it breaks.
    pub(super) what: &'static str,
}

/// The client's incoming side.
#[derive(Debug)]
pub(super) struct Inbound {
    version: ProtocolVersion,
    /// The Topic Alias Maximum we announced.
    alias_maximum: u16,
    /// Aliases the broker set on this connection.
    aliases: HashMap<TopicAlias, TopicName>,
    /// QoS 2 identifiers PUBREC'd and not yet released.
    unreleased: HashSet<PacketId>,
}

impl Inbound {
    pub(super) fn new(version: ProtocolVersion, alias_maximum: u16) -> Self {
        Inbound {
            version,
            alias_maximum,
            aliases: HashMap::new(),
            unreleased: HashSet::new(),
        }
    }

    /// A new connection: aliases start empty.
    pub(super) fn new_connection(&mut self) {
        self.aliases.clear();
    }

    /// A new session: the broker will not resend what we have not released.
    pub(super) fn new_session(&mut self) {
        self.unreleased.clear();
    }

    /// Acknowledges and delivers one PUBLISH.
    pub(super) fn handle_publish(
        &mut self,
        mut publish: Publish,
        queues: &mut Queues,
    ) -> Result<(), Violation> {
        if let Some(alias) = publish.properties.topic_alias {
            publish.topic = self.resolve(alias, publish.topic)?;
        }
        match publish.delivery {
            Delivery::AtMostOnce => deliver(publish, queues),
            Delivery::AtLeastOnce(id) => {
                deliver(publish, queues);
                queues.send(Packet::PubAck(PubAck::new(id)));
            }
            Delivery::ExactlyOnce(id) => {
                // A resend of an identifier not yet released is acknowledged
                // again but not delivered again [MQTT-4.3.3-10].
                if self.unreleased.insert(id) {
                    deliver(publish, queues);
                }
                queues.send(Packet::PubRec(PubRec::new(id)));
            }
        }
        Ok(())
    }

    /// Releases a QoS 2 identifier; PUBCOMP either way, "not found" (v5) if it
    /// was not held.
    pub(super) fn handle_pubrel(&mut self, rel: PubRel, queues: &mut Queues) {
        let found = self.unreleased.remove(&rel.packet_id);
        let mut comp = PubComp::new(rel.packet_id);
        if !found && self.version.is_v5() {
            comp.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        }
        queues.send(Packet::PubComp(comp));
    }

    /// The topic `alias` stands for: `topic` itself, remembered, if it is not
    /// empty; the one set before otherwise.
    fn resolve(&mut self, alias: TopicAlias, topic: TopicName) -> Result<TopicName, Violation> {
        if alias.get() > self.alias_maximum {
            return Err(Violation {
                reason_code: ReasonCode::TOPIC_ALIAS_INVALID,
                what: "[MQTT-3.3.2-10] topic alias above the client's Topic Alias Maximum",
            });
        }
        if topic.as_str().is_empty() {
            return self.aliases.get(&alias).cloned().ok_or(Violation {
                reason_code: ReasonCode::PROTOCOL_ERROR,
                what: "[MQTT-5.0 §3.3.2.3.4] topic alias with no topic set for it",
            });
        }
        self.aliases.insert(alias, topic.clone());
        Ok(topic)
    }
}

fn deliver(publish: Publish, queues: &mut Queues) {
    queues.event(Event::Message(Message::from_publish(publish)));
}

#[cfg(test)]
mod tests {
    use starling_proto::{Disconnect, QoS};

    use super::super::test_support::*;
    use super::*;
    use crate::error::Error;

    fn incoming(topic: &str, qos: QoS, id: u16, dup: bool) -> Packet {
        let mut publish = Publish::new(TopicName::try_from(topic).unwrap(), "x");
        publish.delivery = Delivery::new(qos, pid(id));
        publish.dup = dup;
        Packet::Publish(publish)
    }

    fn aliased(topic: &str, alias: u16, payload: &'static str) -> Packet {
        let topic = match topic {
            "" => TopicName::empty(),
            topic => TopicName::try_from(topic).unwrap(),
        };
        let mut publish = Publish::new(topic, payload);
        publish.properties.topic_alias = TopicAlias::new(alias);
        Packet::Publish(publish)
    }

    #[test]
    fn qos1_is_acknowledged_and_delivered() {
        let mut state = connected(options(ProtocolVersion::V3_1_1), connack(false));
        let packet = incoming("a/b", QoS::AtLeastOnce, 9, false);
        state.handle_packet(packet).unwrap();
        assert_eq!(sent(&mut state), [Packet::PubAck(PubAck::new(pid(9)))]);
        let got = delivered(&outputs(&mut state));
        assert_eq!(
            (got[0].topic.as_str(), got[0].qos),
            ("a/b", QoS::AtLeastOnce)
        );
    }

    #[test]
    fn qos2_resend_before_pubrel_is_delivered_once() {
        let mut state = connected(options(ProtocolVersion::V3_1_1), connack(false));
        let first = incoming("a", QoS::ExactlyOnce, 4, false);
        state.handle_packet(first).unwrap();
        state
            .handle_packet(incoming("a", QoS::ExactlyOnce, 4, true))
            .unwrap();
        assert_eq!(
            sent(&mut state),
            [
                Packet::PubRec(PubRec::new(pid(4))),
                Packet::PubRec(PubRec::new(pid(4)))
            ]
        );
        assert_eq!(delivered(&outputs(&mut state)).len(), 1);
        state
            .handle_packet(Packet::PubRel(PubRel::new(pid(4))))
            .unwrap();
        assert_eq!(sent(&mut state), [Packet::PubComp(PubComp::new(pid(4)))]);
        // Released: the identifier may carry a new message now.
        state
            .handle_packet(incoming("a", QoS::ExactlyOnce, 4, false))
            .unwrap();
        assert_eq!(delivered(&outputs(&mut state)).len(), 1);
    }

    #[test]
    fn unreleased_qos2_ids_survive_a_resumed_session_only() {
        let options = options(ProtocolVersion::V3_1_1).clean_start(false);
        let mut state = connected(options, connack(false));
        state
            .handle_packet(incoming("a", QoS::ExactlyOnce, 4, false))
            .unwrap();
        drain(&mut state);
        state.handle_connection_lost(Error::ConnectionClosed);
        state.connect_packet();
        state.handle_connack(connack(true), now()).unwrap();
        state
            .handle_packet(incoming("a", QoS::ExactlyOnce, 4, true))
            .unwrap();
        assert!(
            delivered(&outputs(&mut state)).is_empty(),
            "a DUP of an unreleased id"
        );
        state.handle_connection_lost(Error::ConnectionClosed);
        state.connect_packet();
        state.handle_connack(connack(false), now()).unwrap();
        state
            .handle_packet(incoming("a", QoS::ExactlyOnce, 4, false))
            .unwrap();
        assert_eq!(
            delivered(&outputs(&mut state)).len(),
            1,
            "a new session's message"
        );
    }

    #[test]
    fn unknown_pubrel_gets_pubcomp_not_found_in_v5() {
        let mut state = connected(options(ProtocolVersion::V5), connack(false));
        state
            .handle_packet(Packet::PubRel(PubRel::new(pid(3))))
            .unwrap();
        let mut comp = PubComp::new(pid(3));
        comp.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        assert_eq!(sent(&mut state), [Packet::PubComp(comp)]);
    }

    #[test]
    fn topic_aliases_are_resolved() {
        let options = options(ProtocolVersion::V5).topic_alias_maximum(5);
        let mut state = connected(options, connack(false));
        state
            .handle_packet(aliased("long/topic/name", 2, "1"))
            .unwrap();
        state.handle_packet(aliased("", 2, "2")).unwrap();
        let got = delivered(&outputs(&mut state));
        assert_eq!(got[1].topic.as_str(), "long/topic/name");
        assert_eq!(&got[1].payload[..], b"2");
    }

    #[test]
    fn bad_topic_aliases_close_with_a_reason() {
        let options = options(ProtocolVersion::V5).topic_alias_maximum(5);
        let mut state = connected(options.clone(), connack(false));
        let result = state.handle_packet(aliased("", 3, "x"));
        assert!(matches!(result, Err(Error::Protocol(_))));
        let disconnect = Disconnect::new(ReasonCode::PROTOCOL_ERROR);
        assert_eq!(sent(&mut state), [Packet::Disconnect(disconnect)]);

        let mut state = connected(options, connack(false));
        assert!(state.handle_packet(aliased("t", 6, "x")).is_err());
        let disconnect = Disconnect::new(ReasonCode::TOPIC_ALIAS_INVALID);
        assert_eq!(sent(&mut state), [Packet::Disconnect(disconnect)]);
    }

    #[test]
    fn aliases_do_not_outlive_their_connection() {
        let options = options(ProtocolVersion::V5).topic_alias_maximum(5);
        let mut state = connected(options, connack(false));
        state.handle_packet(aliased("a", 1, "1")).unwrap();
        state.handle_connection_lost(Error::ConnectionClosed);
        state.connect_packet();
        state.handle_connack(connack(true), now()).unwrap();
        assert!(state.handle_packet(aliased("", 1, "2")).is_err());
    }
}
