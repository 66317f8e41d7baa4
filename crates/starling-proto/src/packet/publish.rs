//! PUBLISH and the four packets of its QoS flows: PUBACK (QoS 1), PUBREC, PUBREL
//! and PUBCOMP (QoS 2) (MQTT 5.0 §3.3 to §3.7).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::{AckProperties, Props, PublishOverrides, PublishProperties};
use crate::qos::{Delivery, PacketId, QoS};
use crate::reason::ReasonCode;
use crate::topic::{TopicError, TopicName};
use crate::version::ProtocolVersion;
use crate::wire::{put_varint, varint_len, Reader, VARINT_MAX};

/// A PUBLISH packet. Topic and payload share the buffer the packet was decoded
/// from: decoding copies neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Whether this is a re-delivery; never set on QoS 0 [MQTT-3.3.1-2].
    pub dup: bool,
    /// The QoS and, for QoS 1 and 2, the packet identifier.
    pub delivery: Delivery,
    /// Whether the server keeps the message for future subscribers.
    pub retain: bool,
    /// The topic; empty only in a v5 PUBLISH that carries a Topic Alias.
    pub topic: TopicName,
    /// The application message.
    pub payload: Bytes,
    /// v5 properties; always empty for 3.x. Out of line: see [`Props`].
    pub properties: Props<PublishProperties>,
}

impl Publish {
    /// A QoS 0 message with no properties.
    pub fn new(topic: TopicName, payload: impl Into<Bytes>) -> Self {
        Publish {
            dup: false,
            delivery: Delivery::AtMostOnce,
            retain: false,
            topic,
            payload: payload.into(),
            properties: Props::none(),
        }
    }

    /// The QoS level.
    pub fn qos(&self) -> QoS {
        self.delivery.qos()
    }

    /// The packet identifier, for QoS 1 and 2.
    pub fn packet_id(&self) -> Option<PacketId> {
        self.delivery.packet_id()
    }

    pub(crate) fn decode(
        flags: u8,
        r: &mut Reader,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let dup = flags & 0x08 != 0;
        let retain = flags & 0x01 != 0;
        let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(DecodeError::InvalidQoS)?;
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupOnQoS0);
        }
        let name = r.string("topic name")?;
        let topic = match TopicName::new(name) {
            Ok(topic) => topic,
            // Legal only if a Topic Alias follows; checked once properties are read.
            Err(TopicError::Empty) if version.is_v5() => TopicName::empty(),
            Err(e) => return Err(DecodeError::InvalidTopicName(e)),
        };
        let delivery = match qos {
            QoS::AtMostOnce => Delivery::AtMostOnce,
            QoS::AtLeastOnce => Delivery::AtLeastOnce(r.packet_id()?),
            QoS::ExactlyOnce => Delivery::ExactlyOnce(r.packet_id()?),
        };
        let properties = if version.is_v5() {
            PublishProperties::decode_props(r)?
        } else {
            Props::none()
        };
        if topic.as_str().is_empty() && properties.topic_alias.is_none() {
            return Err(DecodeError::EmptyTopicWithoutAlias);
        }
        Ok(Publish {
            dup,
            delivery,
            retain,
            topic,
            payload: r.rest(),
            properties,
        })
    }

    pub(crate) fn flags(&self) -> u8 {
        let dup = self.dup && self.qos() != QoS::AtMostOnce;
        (u8::from(dup) << 3) | (self.qos().as_u8() << 1) | u8::from(self.retain)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let mut len = 2 + self.topic.as_str().len() + self.payload.len();
        if self.packet_id().is_some() {
            len += 2;
        }
        if version.is_v5() {
            len += self.properties.encoded_len();
        }
        len
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if self.topic.as_str().is_empty() {
            let alias = version.is_v5() && self.properties.topic_alias.is_some();
            if !alias {
                return Err(EncodeError::Refused(DecodeError::EmptyTopicWithoutAlias));
            }
        }
        self.properties.check()
    }

    pub(crate) fn encode_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        crate::wire::put_string(buf, self.topic.as_mqtt_string());
        if let Some(id) = self.packet_id() {
            buf.put_u16(id.get());
        }
        if version.is_v5() {
            self.properties.encode(buf);
        }
        buf.put_slice(&self.payload);
    }
}

/// A PUBLISH made of borrowed parts, for a server that forwards one message to
/// many subscribers: every receiver shares the message's topic, payload and
/// properties, and only what differs per receiver is set apart
/// ([`PublishOverrides`]). Encodes exactly as the [`Publish`] that
/// [`PublishRef::to_publish`] returns, with no copy and no reference count
/// touched.
#[derive(Debug, Clone, Copy)]
pub struct PublishRef<'a> {
    /// Whether this is a re-delivery; never set on QoS 0 [MQTT-3.3.1-2].
    pub dup: bool,
    /// The QoS and, for QoS 1 and 2, the packet identifier.
    pub delivery: Delivery,
    /// The RETAIN flag.
    pub retain: bool,
    /// The topic; empty only in a v5 PUBLISH that carries a Topic Alias.
    pub topic: &'a TopicName,
    /// The application message.
    pub payload: &'a Bytes,
    /// The message's v5 properties, but for those in `overrides`.
    pub properties: &'a PublishProperties,
    /// The v5 properties that differ per receiver.
    pub overrides: PublishOverrides<'a>,
}

impl PublishRef<'_> {
    /// The QoS level.
    pub fn qos(&self) -> QoS {
        self.delivery.qos()
    }

    fn body_len(&self, version: ProtocolVersion) -> usize {
        let mut len = 2 + self.topic.as_str().len() + self.payload.len();
        if self.delivery.packet_id().is_some() {
            len += 2;
        }
        if version.is_v5() {
            len += self.properties.encoded_len_with(&self.overrides);
        }
        len
    }

    /// The number of bytes [`PublishRef::encode`] writes for `version`.
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        let body = self.body_len(version);
        1 + varint_len(body) + body
    }

    /// Encodes the PUBLISH for `version` at the end of `buf`, as
    /// [`crate::Packet::encode`] encodes [`PublishRef::to_publish`].
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        if self.topic.as_str().is_empty()
            && !(version.is_v5() && self.overrides.topic_alias.is_some())
        {
            return Err(EncodeError::Refused(DecodeError::EmptyTopicWithoutAlias));
        }
        self.properties.check()?;
        let body = self.body_len(version);
        if body > VARINT_MAX as usize {
            return Err(EncodeError::TooLarge(body));
        }
        buf.reserve(1 + varint_len(body) + body);
        let dup = self.dup && self.qos() != QoS::AtMostOnce;
        let flags = (u8::from(dup) << 3) | (self.qos().as_u8() << 1) | u8::from(self.retain);
        buf.put_u8(((PacketType::Publish as u8) << 4) | flags);
        put_varint(buf, body);
        crate::wire::put_string(buf, self.topic.as_mqtt_string());
        if let Some(id) = self.delivery.packet_id() {
            buf.put_u16(id.get());
        }
        if version.is_v5() {
            self.properties.encode_with(&self.overrides, buf);
        }
        buf.put_slice(self.payload);
        Ok(())
    }

    /// The same PUBLISH, owned.
    pub fn to_publish(&self) -> Publish {
        let mut properties = self.properties.clone();
        properties.message_expiry_interval = self.overrides.message_expiry_interval;
        properties.topic_alias = self.overrides.topic_alias;
        properties.subscription_identifiers = self.overrides.subscription_identifiers.to_vec();
        Publish {
            dup: self.dup,
            delivery: self.delivery,
            retain: self.retain,
            topic: self.topic.clone(),
            payload: self.payload.clone(),
            properties: properties.into(),
        }
    }
}

macro_rules! publish_response {
    ($($(#[$meta:meta])* $name:ident = $packet:ident;)*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// The identifier of the PUBLISH this answers.
            pub packet_id: PacketId,
            /// v5 reason code; always Success for 3.x.
            pub reason_code: ReasonCode,
            /// v5 properties; always empty for 3.x.
            pub properties: AckProperties,
        }

        impl $name {
            /// A successful response for `packet_id`.
            pub fn new(packet_id: PacketId) -> Self {
                $name { packet_id, reason_code: ReasonCode::SUCCESS, properties: Default::default() }
            }

            pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
                let (packet_id, reason_code, properties) = decode_response(r, version)?;
                Ok($name { packet_id, reason_code, properties })
            }

            pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
                response_len(&self.reason_code, &self.properties, version)
            }

            pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
                check_response(PacketType::$packet, self.reason_code, &self.properties, version)
            }

            pub(crate) fn encode_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
                encode_response(self.packet_id, self.reason_code, &self.properties, version, buf)
            }
        }
    )*};
}

publish_response! {
    /// A PUBACK packet: the answer to a QoS 1 PUBLISH.
    PubAck = PubAck;
    /// A PUBREC packet: first answer to a QoS 2 PUBLISH.
    PubRec = PubRec;
    /// A PUBREL packet: the publisher releases a QoS 2 message.
    PubRel = PubRel;
    /// A PUBCOMP packet: the end of a QoS 2 flow.
    PubComp = PubComp;
}

// v5 allows the short forms: no Reason Code when it is Success and no properties
// follow, no Property Length when there are no properties (MQTT 5.0 §3.4.2.1).
fn decode_response(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<(PacketId, ReasonCode, AckProperties), DecodeError> {
    let packet_id = r.packet_id()?;
    if !version.is_v5() || r.is_empty() {
        return Ok((packet_id, ReasonCode::SUCCESS, AckProperties::default()));
    }
    let code = r.u8()?;
    let reason_code = ReasonCode(code);
    if !reason_code.is_allowed_in(r.packet()) {
        return Err(DecodeError::InvalidReasonCode {
            packet: r.packet(),
            code,
        });
    }
    let properties = if r.is_empty() {
        AckProperties::default()
    } else {
        AckProperties::decode(r)?
    };
    Ok((packet_id, reason_code, properties))
}

pub(crate) fn response_len(
    reason_code: &ReasonCode,
    properties: &AckProperties,
    version: ProtocolVersion,
) -> usize {
    if !version.is_v5() {
        return 2;
    }
    match (*reason_code == ReasonCode::SUCCESS, properties.is_empty()) {
        (true, true) => 2,
        (false, true) => 3,
        (_, false) => 3 + properties.encoded_len(),
    }
}

fn check_response(
    packet: PacketType,
    code: ReasonCode,
    properties: &AckProperties,
    version: ProtocolVersion,
) -> Result<(), EncodeError> {
    if !code.is_valid_for(packet, version) {
        return Err(EncodeError::InvalidReasonCode {
            packet,
            code,
            version,
        });
    }
    properties.check()
}

fn encode_response(
    packet_id: PacketId,
    reason_code: ReasonCode,
    properties: &AckProperties,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) {
    buf.put_u16(packet_id.get());
    let len = response_len(&reason_code, properties, version);
    if len >= 3 {
        buf.put_u8(reason_code.0);
    }
    if len > 3 {
        properties.encode(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Packet;
    use crate::property::{SubscriptionId, TopicAlias, UserProperty};
    use crate::string::MqttString;

    fn encoded(publish: &PublishRef<'_>, version: ProtocolVersion) -> BytesMut {
        let mut buf = BytesMut::new();
        publish.encode(version, &mut buf).unwrap();
        assert_eq!(buf.len(), publish.encoded_len(version));
        buf
    }

    #[test]
    fn publish_ref_encodes_as_the_owned_publish() {
        let topic = TopicName::from_static("a/b");
        let empty = TopicName::empty();
        let payload = Bytes::from_static(b"payload");
        let properties = PublishProperties {
            payload_format_indicator: Some(true),
            // Replaced by the overrides, as are the alias and identifiers.
            message_expiry_interval: Some(99),
            topic_alias: TopicAlias::new(9),
            response_topic: Some(TopicName::from_static("r")),
            correlation_data: Some(Bytes::from_static(b"c")),
            user_properties: vec![UserProperty {
                name: MqttString::from_static("k"),
                value: MqttString::from_static("v"),
            }],
            subscription_identifiers: vec![SubscriptionId::new(7).unwrap()],
            content_type: Some(MqttString::from_static("text/plain")),
        };
        let ids = [
            SubscriptionId::new(1).unwrap(),
            SubscriptionId::new(300).unwrap(),
        ];
        let id = PacketId::new(5).unwrap();
        for (topic, overrides) in [
            (&topic, PublishOverrides::default()),
            (
                &topic,
                PublishOverrides {
                    message_expiry_interval: Some(10),
                    topic_alias: None,
                    subscription_identifiers: &ids,
                },
            ),
            (
                &empty,
                PublishOverrides {
                    message_expiry_interval: None,
                    topic_alias: TopicAlias::new(3),
                    subscription_identifiers: &ids[..1],
                },
            ),
        ] {
            for delivery in [Delivery::AtMostOnce, Delivery::ExactlyOnce(id)] {
                let publish = PublishRef {
                    dup: true,
                    delivery,
                    retain: true,
                    topic,
                    payload: &payload,
                    properties: &properties,
                    overrides,
                };
                let owned = Packet::Publish(publish.to_publish());
                for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
                    if topic.as_str().is_empty() && !version.is_v5() {
                        continue;
                    }
                    let mut expected = BytesMut::new();
                    owned.encode(version, &mut expected).unwrap();
                    assert_eq!(encoded(&publish, version), expected, "{version:?}");
                }
            }
        }
    }
}

#[cfg(test)]
mod out_of_line_properties {
    use super::*;
    use crate::packet::Packet;
    use crate::property::UserProperty;
    use crate::string::MqttString;

    fn decoded(publish: Publish, version: ProtocolVersion) -> Publish {
        let mut buf = BytesMut::new();
        Packet::Publish(publish).encode(version, &mut buf).unwrap();
        let mut decoder = crate::Decoder::new(crate::Role::Server, version);
        match decoder.decode(&mut buf).unwrap() {
            Some(Packet::Publish(publish)) => publish,
            other => panic!("expected a PUBLISH, got {other:?}"),
        }
    }

    /// Issue 7: a packet moves between the decoder and the router several
    /// times; its properties must not travel with it.
    #[test]
    fn packets_stay_small() {
        assert!(std::mem::size_of::<Publish>() <= 96);
        assert!(std::mem::size_of::<Packet>() <= 104);
    }

    #[test]
    fn a_publish_without_properties_holds_no_allocation() {
        let topic = TopicName::from_static("a/b");
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            let publish = decoded(Publish::new(topic.clone(), "x"), version);
            assert!(publish.properties.is_none(), "{version:?}");
            assert!(publish.properties.is_empty());
            assert_eq!(publish.properties.topic_alias, None);
        }
    }

    #[test]
    fn properties_survive_the_trip_out_of_line() {
        let mut publish = Publish::new(TopicName::from_static("a/b"), "x");
        publish.properties.user_properties.push(UserProperty {
            name: MqttString::from_static("k"),
            value: MqttString::from_static("v"),
        });
        publish.properties.message_expiry_interval = Some(5);
        let back = decoded(publish.clone(), ProtocolVersion::V5);
        assert!(!back.properties.is_none());
        assert_eq!(back.properties, publish.properties);
        assert_eq!(back.properties.clone().into_inner(), *publish.properties);
        // An empty set given by value is not boxed.
        assert!(Props::from(PublishProperties::default()).is_none());
    }
}
