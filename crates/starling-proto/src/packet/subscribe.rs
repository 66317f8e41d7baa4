//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (MQTT 5.0 §3.8 to §3.11), with the
//! subscription options byte.

use bytes::{BufMut, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::{AckProperties, SubscribeProperties, UnsubscribeProperties};
use crate::qos::{PacketId, QoS};
use crate::reason::ReasonCode;
use crate::topic::TopicFilter;
use crate::version::ProtocolVersion;
use crate::wire::{put_string, Reader};

/// When retained messages are sent for a new subscription (MQTT 5.0 §3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Send them only if the subscription did not exist already.
    SendAtSubscribeIfNew = 1,
    /// Do not send them.
    DoNotSend = 2,
}

/// The options of one subscription. For 3.x only `qos` is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// The maximum QoS the server may deliver with.
    pub qos: QoS,
    /// Do not deliver the client's own publications back to it.
    pub no_local: bool,
    /// Keep the RETAIN flag of forwarded messages as published.
    pub retain_as_published: bool,
    /// When retained messages are sent.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with `qos` and every v5 option at its default.
    pub fn new(qos: QoS) -> Self {
        SubscriptionOptions {
            qos,
            ..Default::default()
        }
    }

    fn decode(byte: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
        if byte & reserved != 0 {
            return Err(DecodeError::SubscriptionOptionsReserved);
        }
        let qos = QoS::from_u8(byte & 0x03).ok_or(DecodeError::InvalidSubscriptionQoS)?;
        let retain_handling = match (byte >> 4) & 0x03 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtSubscribeIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::InvalidRetainHandling),
        };
        Ok(SubscriptionOptions {
            qos,
            no_local: byte & 0x04 != 0,
            retain_as_published: byte & 0x08 != 0,
            retain_handling,
        })
    }

    /// The options byte; 3.x carries only the QoS bits.
    pub fn to_byte(self, version: ProtocolVersion) -> u8 {
        if !version.is_v5() {
            return self.qos.as_u8();
        }
        self.qos.as_u8()
            | (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
            | ((self.retain_handling as u8) << 4)
    }
}

/// A SUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Identifies the SUBSCRIBE and its SUBACK.
    pub packet_id: PacketId,
    /// The filters and their options; never empty [MQTT-3.8.3-2].
    pub filters: Vec<(TopicFilter, SubscriptionOptions)>,
    /// v5 properties; always empty for 3.x.
    pub properties: SubscribeProperties,
}

impl Subscribe {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let properties = if version.is_v5() {
            SubscribeProperties::decode(r)?
        } else {
            Default::default()
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = TopicFilter::new(r.string("topic filter")?)
                .map_err(DecodeError::InvalidTopicFilter)?;
            let options = SubscriptionOptions::decode(r.u8()?, version)?;
            if options.no_local && filter.is_shared() {
                return Err(DecodeError::NoLocalOnSharedSubscription);
            }
            filters.push((filter, options));
        }
        if filters.is_empty() {
            return Err(DecodeError::EmptySubscribe);
        }
        Ok(Subscribe {
            packet_id,
            filters,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let filters: usize = self
            .filters
            .iter()
            .map(|(f, _)| 2 + f.as_str().len() + 1)
            .sum();
        2 + filters
            + if version.is_v5() {
                self.properties.encoded_len()
            } else {
                0
            }
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::Empty(PacketType::Subscribe));
        }
        let no_local_shared = self
            .filters
            .iter()
            .any(|(f, o)| o.no_local && f.is_shared());
        if version.is_v5() && no_local_shared {
            return Err(EncodeError::Refused(
                DecodeError::NoLocalOnSharedSubscription,
            ));
        }
        self.properties.check()
    }

    pub(crate) fn encode_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(buf);
        }
        for (filter, options) in &self.filters {
            put_string(buf, filter.as_mqtt_string());
            buf.put_u8(options.to_byte(version));
        }
    }
}

/// A SUBACK packet: one reason code per filter of the SUBSCRIBE, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// The identifier of the SUBSCRIBE this answers.
    pub packet_id: PacketId,
    /// Granted QoS (0x00 to 0x02) or a failure, per filter.
    pub reason_codes: Vec<ReasonCode>,
    /// v5 properties; always empty for 3.x.
    pub properties: AckProperties,
}

impl SubAck {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let properties = if version.is_v5() {
            AckProperties::decode(r)?
        } else {
            Default::default()
        };
        let reason_codes = decode_codes(r, version)?;
        Ok(SubAck {
            packet_id,
            reason_codes,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        2 + self.reason_codes.len()
            + if version.is_v5() {
                self.properties.encoded_len()
            } else {
                0
            }
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        check_codes(PacketType::SubAck, &self.reason_codes, version)?;
        self.properties.check()
    }

    pub(crate) fn encode_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(buf);
        }
        buf.extend(self.reason_codes.iter().map(|c| c.0));
    }
}

/// An UNSUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Identifies the UNSUBSCRIBE and its UNSUBACK.
    pub packet_id: PacketId,
    /// The filters to remove; never empty [MQTT-3.10.3-2].
    pub filters: Vec<TopicFilter>,
    /// v5 properties; always empty for 3.x.
    pub properties: UnsubscribeProperties,
}

impl Unsubscribe {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let properties = if version.is_v5() {
            UnsubscribeProperties::decode(r)?
        } else {
            Default::default()
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            filters.push(
                TopicFilter::new(r.string("topic filter")?)
                    .map_err(DecodeError::InvalidTopicFilter)?,
            );
        }
        if filters.is_empty() {
            return Err(DecodeError::EmptyUnsubscribe);
        }
        Ok(Unsubscribe {
            packet_id,
            filters,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let filters: usize = self.filters.iter().map(|f| 2 + f.as_str().len()).sum();
        2 + filters
            + if version.is_v5() {
                self.properties.encoded_len()
            } else {
                0
            }
    }

    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::Empty(PacketType::Unsubscribe));
        }
        self.properties.check()
    }

    pub(crate) fn encode_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(buf);
        }
        for filter in &self.filters {
            put_string(buf, filter.as_mqtt_string());
        }
    }
}

/// An UNSUBACK packet. 3.x UNSUBACK carries no reason codes, so `reason_codes`
/// is empty there; in v5 it has one per filter of the UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// The identifier of the UNSUBSCRIBE this answers.
    pub packet_id: PacketId,
    /// v5 reason codes, per filter.
    pub reason_codes: Vec<ReasonCode>,
    /// v5 properties; always empty for 3.x.
    pub properties: AckProperties,
}

impl UnsubAck {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        if !version.is_v5() {
            return Ok(UnsubAck {
                packet_id,
                reason_codes: Vec::new(),
                properties: Default::default(),
            });
        }
        let properties = AckProperties::decode(r)?;
        let reason_codes = decode_codes(r, version)?;
        Ok(UnsubAck {
            packet_id,
            reason_codes,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        if !version.is_v5() {
            return 2;
        }
        2 + self.properties.encoded_len() + self.reason_codes.len()
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if !version.is_v5() {
            return Ok(());
        }
        check_codes(PacketType::UnsubAck, &self.reason_codes, version)?;
        self.properties.check()
    }

    pub(crate) fn encode_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(buf);
            buf.extend(self.reason_codes.iter().map(|c| c.0));
        }
    }
}

fn decode_codes(r: &mut Reader, version: ProtocolVersion) -> Result<Vec<ReasonCode>, DecodeError> {
    let packet = r.packet();
    let codes = r.rest();
    if codes.is_empty() {
        return Err(DecodeError::Truncated { packet });
    }
    codes
        .iter()
        .map(|&code| {
            Some(ReasonCode(code))
                .filter(|c| c.is_valid_for(packet, version))
                .ok_or(DecodeError::InvalidReasonCode { packet, code })
        })
        .collect()
}

fn check_codes(
    packet: PacketType,
    codes: &[ReasonCode],
    version: ProtocolVersion,
) -> Result<(), EncodeError> {
    if codes.is_empty() {
        return Err(EncodeError::Empty(packet));
    }
    match codes.iter().find(|c| !c.is_valid_for(packet, version)) {
        Some(&code) => Err(EncodeError::InvalidReasonCode {
            packet,
            code,
            version,
        }),
        None => Ok(()),
    }
}
