//! The 15 MQTT control packets as one model for every protocol version, with
//! version-aware decoding of one framed packet and encoding into a `BytesMut`.
//!
//! Framing (finding where a packet ends in a stream) lives in [`crate::codec`];
//! this module turns one complete packet into a [`Packet`] and back.

mod connect;
mod publish;
mod subscribe;

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

pub use connect::{ConnAck, Connect, Will};
pub use publish::{PubAck, PubComp, PubRec, PubRel, Publish, PublishRef};
pub use subscribe::{
    RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};

use crate::error::{DecodeError, EncodeError};
use crate::property::{AuthProperties, DisconnectProperties, Props};
use crate::reason::ReasonCode;
use crate::version::ProtocolVersion;
use crate::wire::{decode_varint, put_varint, varint_len, Reader, VARINT_MAX};

/// The control packet types of MQTT 5.0 §2.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl PacketType {
    /// The type in the high nibble of a fixed header's first byte, if `version` has it.
    pub fn from_first_byte(byte: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        use PacketType::*;
        Ok(match byte >> 4 {
            1 => Connect,
            2 => ConnAck,
            3 => Publish,
            4 => PubAck,
            5 => PubRec,
            6 => PubRel,
            7 => PubComp,
            8 => Subscribe,
            9 => SubAck,
            10 => Unsubscribe,
            11 => UnsubAck,
            12 => PingReq,
            13 => PingResp,
            14 => Disconnect,
            15 if version.is_v5() => Auth,
            other => return Err(DecodeError::ReservedPacketType(other)),
        })
    }

    /// The flags every packet but PUBLISH must carry [MQTT-2.1.3-1].
    const fn required_flags(self) -> u8 {
        match self {
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => 0x02,
            _ => 0x00,
        }
    }

    /// The name Wireshark and the specification use, in capitals.
    pub const fn name(self) -> &'static str {
        use PacketType::*;
        match self {
            Connect => "CONNECT",
            ConnAck => "CONNACK",
            Publish => "PUBLISH",
            PubAck => "PUBACK",
            PubRec => "PUBREC",
            PubRel => "PUBREL",
            PubComp => "PUBCOMP",
            Subscribe => "SUBSCRIBE",
            SubAck => "SUBACK",
            Unsubscribe => "UNSUBSCRIBE",
            UnsubAck => "UNSUBACK",
            PingReq => "PINGREQ",
            PingResp => "PINGRESP",
            Disconnect => "DISCONNECT",
            Auth => "AUTH",
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A DISCONNECT packet. 3.x DISCONNECT has no body: its reason is always Normal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Why the connection ends.
    pub reason_code: ReasonCode,
    /// v5 properties; always empty for 3.x.
    pub properties: Props<DisconnectProperties>,
}

impl Disconnect {
    /// A DISCONNECT with `reason_code` and no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Disconnect {
            reason_code,
            properties: Default::default(),
        }
    }
}

/// An AUTH packet (MQTT 5.0 only): a step of extended authentication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason_code: ReasonCode,
    /// The method, data and diagnostics.
    pub properties: Props<AuthProperties>,
}

/// One MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubAck),
    PubRec(PubRec),
    PubRel(PubRel),
    PubComp(PubComp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    /// Decodes exactly one packet, fixed header included, from `frame`. A CONNECT
    /// is read in the version it announces; every other packet in `version`.
    /// Fails if `frame` holds less or more than one packet.
    pub fn decode(frame: Bytes, version: ProtocolVersion) -> Result<Packet, DecodeError> {
        let first = *frame.first().ok_or(DecodeError::Truncated {
            packet: PacketType::Connect,
        })?;
        let packet = PacketType::from_first_byte(first, version)?;
        let (remaining, len_bytes) =
            decode_varint(&frame[1..])?.ok_or(DecodeError::Truncated { packet })?;
        let header = 1 + len_bytes;
        match (header + remaining as usize).cmp(&frame.len()) {
            std::cmp::Ordering::Greater => return Err(DecodeError::Truncated { packet }),
            std::cmp::Ordering::Less => return Err(DecodeError::TrailingBytes { packet }),
            std::cmp::Ordering::Equal => {}
        }
        Self::decode_body(first, frame.slice(header..), version)
    }

    /// Decodes a packet from its first header byte and its body (the Remaining
    /// Length bytes after the fixed header).
    pub(crate) fn decode_body(
        first: u8,
        body: Bytes,
        version: ProtocolVersion,
    ) -> Result<Packet, DecodeError> {
        let packet = PacketType::from_first_byte(first, version)?;
        let flags = first & 0x0F;
        if packet != PacketType::Publish && flags != packet.required_flags() {
            return Err(DecodeError::InvalidHeaderFlags { packet, flags });
        }
        let mut r = Reader::new(body, packet);
        let decoded = match packet {
            PacketType::Connect => Packet::Connect(Box::new(Connect::decode(&mut r)?)),
            PacketType::ConnAck => Packet::ConnAck(ConnAck::decode(&mut r, version)?),
            PacketType::Publish => Packet::Publish(Publish::decode(flags, &mut r, version)?),
            PacketType::PubAck => Packet::PubAck(PubAck::decode(&mut r, version)?),
            PacketType::PubRec => Packet::PubRec(PubRec::decode(&mut r, version)?),
            PacketType::PubRel => Packet::PubRel(PubRel::decode(&mut r, version)?),
            PacketType::PubComp => Packet::PubComp(PubComp::decode(&mut r, version)?),
            PacketType::Subscribe => Packet::Subscribe(Subscribe::decode(&mut r, version)?),
            PacketType::SubAck => Packet::SubAck(SubAck::decode(&mut r, version)?),
            PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::decode(&mut r, version)?),
            PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(&mut r, version)?),
            PacketType::PingReq | PacketType::PingResp => {
                if !r.is_empty() {
                    return Err(DecodeError::UnexpectedBody { packet });
                }
                if packet == PacketType::PingReq {
                    Packet::PingReq
                } else {
                    Packet::PingResp
                }
            }
            PacketType::Disconnect => {
                if !version.is_v5() && !r.is_empty() {
                    return Err(DecodeError::UnexpectedBody { packet });
                }
                let (reason_code, properties) = decode_reason_and_properties(&mut r)?;
                Packet::Disconnect(Disconnect {
                    reason_code,
                    properties: properties
                        .map(DisconnectProperties::decode_props)
                        .transpose()?
                        .unwrap_or_default(),
                })
            }
            PacketType::Auth => {
                let (reason_code, properties) = decode_reason_and_properties(&mut r)?;
                Packet::Auth(Auth {
                    reason_code,
                    properties: properties
                        .map(AuthProperties::decode_props)
                        .transpose()?
                        .unwrap_or_default(),
                })
            }
        };
        r.finish()?;
        Ok(decoded)
    }

    fn flags(&self) -> u8 {
        match self {
            Packet::Publish(p) => p.flags(),
            other => other.packet_type().required_flags(),
        }
    }

    /// The Remaining Length of this packet in `version`.
    fn body_len(&self, version: ProtocolVersion) -> usize {
        match self {
            Packet::Connect(p) => p.body_len(),
            Packet::ConnAck(p) => p.body_len(version),
            Packet::Publish(p) => p.body_len(version),
            Packet::PubAck(p) => p.body_len(version),
            Packet::PubRec(p) => p.body_len(version),
            Packet::PubRel(p) => p.body_len(version),
            Packet::PubComp(p) => p.body_len(version),
            Packet::Subscribe(p) => p.body_len(version),
            Packet::SubAck(p) => p.body_len(version),
            Packet::Unsubscribe(p) => p.body_len(version),
            Packet::UnsubAck(p) => p.body_len(version),
            Packet::PingReq | Packet::PingResp => 0,
            Packet::Disconnect(p) => {
                if version.is_v5() {
                    reason_and_properties_len(
                        p.reason_code,
                        p.properties.encoded_len(),
                        p.properties.is_empty(),
                    )
                } else {
                    0
                }
            }
            Packet::Auth(p) => reason_and_properties_len(
                p.reason_code,
                p.properties.encoded_len(),
                p.properties.is_empty(),
            ),
        }
    }

    /// The number of bytes [`Packet::encode`] writes for `version`.
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        let body = self.body_len(version);
        1 + varint_len(body) + body
    }

    /// Encodes the packet for `version` at the end of `buf`. A CONNECT is encoded
    /// in the version it names. v5 properties and reason codes are left out for
    /// 3.x, where they do not exist.
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        // The four acknowledgements of the QoS flows are nearly always this
        // short form, written in one go: a QoS 2 message takes four of them.
        let short = match self {
            Packet::PubAck(PubAck {
                packet_id,
                reason_code,
                properties,
            })
            | Packet::PubRec(PubRec {
                packet_id,
                reason_code,
                properties,
            })
            | Packet::PubRel(PubRel {
                packet_id,
                reason_code,
                properties,
            })
            | Packet::PubComp(PubComp {
                packet_id,
                reason_code,
                properties,
            }) if *reason_code == ReasonCode::SUCCESS && properties.is_empty() => Some(*packet_id),
            _ => None,
        };
        if let Some(id) = short {
            let [high, low] = id.get().to_be_bytes();
            let first = ((self.packet_type() as u8) << 4) | self.flags();
            buf.extend_from_slice(&[first, 2, high, low]);
            return Ok(());
        }
        self.check(version)?;
        let body = self.body_len(version);
        if body > VARINT_MAX as usize {
            return Err(EncodeError::TooLarge(body));
        }
        buf.reserve(1 + varint_len(body) + body);
        let start = buf.len();
        buf.put_u8(((self.packet_type() as u8) << 4) | self.flags());
        put_varint(buf, body);
        match self {
            Packet::Connect(p) => p.encode_body(buf),
            Packet::ConnAck(p) => p.encode_body(version, buf),
            Packet::Publish(p) => p.encode_body(version, buf),
            Packet::PubAck(p) => p.encode_body(version, buf),
            Packet::PubRec(p) => p.encode_body(version, buf),
            Packet::PubRel(p) => p.encode_body(version, buf),
            Packet::PubComp(p) => p.encode_body(version, buf),
            Packet::Subscribe(p) => p.encode_body(version, buf),
            Packet::SubAck(p) => p.encode_body(version, buf),
            Packet::Unsubscribe(p) => p.encode_body(version, buf),
            Packet::UnsubAck(p) => p.encode_body(version, buf),
            Packet::PingReq | Packet::PingResp => {}
            Packet::Disconnect(p) => {
                if version.is_v5() && body > 0 {
                    buf.put_u8(p.reason_code.0);
                    if body > 1 {
                        p.properties.encode(buf);
                    }
                }
            }
            Packet::Auth(p) => {
                if body > 0 {
                    buf.put_u8(p.reason_code.0);
                    if body > 1 {
                        p.properties.encode(buf);
                    }
                }
            }
        }
        debug_assert_eq!(buf.len() - start, self.encoded_len(version));
        Ok(())
    }

    fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        let packet = self.packet_type();
        let code = |code: ReasonCode| {
            if version.is_v5() && !code.is_allowed_in(packet) {
                return Err(EncodeError::InvalidReasonCode {
                    packet,
                    code,
                    version,
                });
            }
            Ok(())
        };
        match self {
            Packet::Connect(p) => p.check(),
            Packet::ConnAck(p) => p.check(version),
            Packet::Publish(p) => p.check(version),
            Packet::PubAck(p) => p.check(version),
            Packet::PubRec(p) => p.check(version),
            Packet::PubRel(p) => p.check(version),
            Packet::PubComp(p) => p.check(version),
            Packet::Subscribe(p) => p.check(version),
            Packet::SubAck(p) => p.check(version),
            Packet::Unsubscribe(p) => p.check(),
            Packet::UnsubAck(p) => p.check(version),
            Packet::PingReq | Packet::PingResp => Ok(()),
            Packet::Disconnect(p) => {
                code(p.reason_code)?;
                p.properties.check()
            }
            Packet::Auth(p) => {
                if !version.is_v5() {
                    return Err(EncodeError::NotInVersion { packet, version });
                }
                code(p.reason_code)?;
                p.properties.check()
            }
        }
    }
}

/// DISCONNECT and AUTH (v5): Remaining Length 0 means Success; otherwise a reason
/// code, then a Property Length if anything remains (MQTT 5.0 §3.14.2.1, §3.15.2.1).
/// Returns the reason and the reader positioned at the properties, if any.
fn decode_reason_and_properties(
    r: &mut Reader,
) -> Result<(ReasonCode, Option<&mut Reader>), DecodeError> {
    if r.is_empty() {
        return Ok((ReasonCode::SUCCESS, None));
    }
    let packet = r.packet();
    let code = r.u8()?;
    if !ReasonCode(code).is_allowed_in(packet) {
        return Err(DecodeError::InvalidReasonCode { packet, code });
    }
    Ok((ReasonCode(code), if r.is_empty() { None } else { Some(r) }))
}

fn reason_and_properties_len(
    code: ReasonCode,
    properties_len: usize,
    no_properties: bool,
) -> usize {
    match (code == ReasonCode::SUCCESS, no_properties) {
        (true, true) => 0,
        (false, true) => 1,
        (_, false) => 1 + properties_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qos::QoS;
    use crate::topic::{TopicFilter, TopicName};
    use crate::{Delivery, MqttString, PacketId};

    fn refused(packet: Packet, version: ProtocolVersion) -> DecodeError {
        match packet.encode(version, &mut BytesMut::new()) {
            Err(EncodeError::Refused(e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn encoder_refuses_what_the_receiver_would_refuse() {
        let mut publish = Publish::new(TopicName::empty(), "x");
        publish.delivery = Delivery::AtMostOnce;
        assert_eq!(
            refused(Packet::Publish(publish.clone()), ProtocolVersion::V5),
            DecodeError::EmptyTopicWithoutAlias
        );
        publish.properties.topic_alias = crate::TopicAlias::new(1);
        assert!(Packet::Publish(publish.clone())
            .encode(ProtocolVersion::V5, &mut BytesMut::new())
            .is_ok());
        assert_eq!(
            refused(Packet::Publish(publish), ProtocolVersion::V3_1_1),
            DecodeError::EmptyTopicWithoutAlias
        );

        // [MQTT-3.8.3-4]
        let options = SubscriptionOptions {
            no_local: true,
            ..SubscriptionOptions::new(QoS::AtMostOnce)
        };
        let subscribe = Subscribe {
            packet_id: PacketId::MIN,
            filters: vec![(TopicFilter::from_static("$share/g/a"), options)],
            properties: Default::default(),
        };
        assert_eq!(
            refused(Packet::Subscribe(subscribe), ProtocolVersion::V5),
            DecodeError::NoLocalOnSharedSubscription
        );

        let mut connect = Connect::new(ProtocolVersion::V3_1_1, MqttString::from_static("c"));
        connect.password = Some(bytes::Bytes::from_static(b"secret"));
        assert_eq!(
            refused(Packet::Connect(Box::new(connect)), ProtocolVersion::V3_1_1),
            DecodeError::PasswordWithoutUsername
        );

        let mut connack = ConnAck::default();
        connack.properties.maximum_qos = Some(QoS::ExactlyOnce);
        assert!(matches!(
            refused(Packet::ConnAck(connack), ProtocolVersion::V5),
            DecodeError::InvalidPropertyValue(_)
        ));
    }
}
