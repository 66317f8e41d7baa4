//! PUBLISH and the four packets of its QoS flows: PUBACK (QoS 1), PUBREC, PUBREL
//! and PUBCOMP (QoS 2) (MQTT 5.0 §3.3 to §3.7).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::{AckProperties, PublishProperties};
use crate::qos::{Delivery, PacketId, QoS};
use crate::reason::ReasonCode;
use crate::topic::{TopicError, TopicName};
use crate::version::ProtocolVersion;
use crate::wire::Reader;

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
    /// v5 properties; always empty for 3.x.
    pub properties: PublishProperties,
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
            properties: PublishProperties::default(),
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
            PublishProperties::decode(r)?
        } else {
            Default::default()
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
