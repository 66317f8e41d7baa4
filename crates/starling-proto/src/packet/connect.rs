//! CONNECT and CONNACK (MQTT 5.0 §3.1, §3.2; 3.1.1 §3.1, §3.2; 3.1), the packets
//! that open a connection and fix its protocol version.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::{ConnAckProperties, ConnectProperties, Props, WillProperties};
use crate::qos::QoS;
use crate::reason::ReasonCode;
use crate::string::MqttString;
use crate::topic::TopicName;
use crate::version::ProtocolVersion;
use crate::wire::{check_binary, put_binary, put_string, Reader};

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN_START: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

/// A CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The version the client speaks; every later packet follows it.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.x) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 turns the mechanism off.
    pub keep_alive: u16,
    /// The Client Identifier; empty asks the server to assign one.
    pub client_id: MqttString,
    /// The Will Message, if the client set one.
    pub will: Option<Will>,
    /// The User Name.
    pub username: Option<MqttString>,
    /// The Password: binary data.
    pub password: Option<Bytes>,
    /// v5 properties; always empty for 3.x.
    pub properties: ConnectProperties,
}

/// A Will Message, published by the server when the connection ends abnormally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Where it is published.
    pub topic: TopicName,
    /// What is published.
    pub payload: Bytes,
    /// Its QoS.
    pub qos: QoS,
    /// Whether it is retained.
    pub retain: bool,
    /// v5 will properties; always empty for 3.x.
    pub properties: WillProperties,
}

impl Connect {
    /// A CONNECT for `protocol` with `client_id`, a clean start and keep alive 60.
    pub fn new(protocol: ProtocolVersion, client_id: MqttString) -> Self {
        Connect {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let name = r.binary()?;
        let level = r.u8()?;
        let protocol = match &name[..] {
            b"MQTT" | b"MQIsdp" => ProtocolVersion::from_level(level)
                .filter(|v| v.protocol_name().as_bytes() == &name[..])
                .ok_or(DecodeError::UnsupportedProtocolLevel(level))?,
            _ => return Err(DecodeError::InvalidProtocolName),
        };
        let flags = r.u8()?;
        if flags & FLAG_RESERVED != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let has_will = flags & FLAG_WILL != 0;
        let will_qos = (flags >> 3) & 0x03;
        let will_retain = flags & FLAG_WILL_RETAIN != 0;
        if !has_will && will_qos != 0 {
            return Err(DecodeError::WillQoSWithoutWill);
        }
        if !has_will && will_retain {
            return Err(DecodeError::WillRetainWithoutWill);
        }
        let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidWillQoS)?;
        let has_username = flags & FLAG_USERNAME != 0;
        let has_password = flags & FLAG_PASSWORD != 0;
        if has_password && !has_username && !protocol.is_v5() {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let keep_alive = r.u16()?;
        let properties = if protocol.is_v5() {
            ConnectProperties::decode(r)?
        } else {
            Default::default()
        };
        let client_id = r.string("client identifier")?;
        let will = if has_will {
            let properties = if protocol.is_v5() {
                WillProperties::decode(r)?
            } else {
                Default::default()
            };
            let topic =
                TopicName::new(r.string("will topic")?).map_err(DecodeError::InvalidTopicName)?;
            let payload = r.binary()?;
            Some(Will {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_username {
            Some(r.string("user name")?)
        } else {
            None
        };
        let password = if has_password {
            Some(r.binary()?)
        } else {
            None
        };
        Ok(Connect {
            protocol,
            clean_start: flags & FLAG_CLEAN_START != 0,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }

    // The encoder writes the version the packet names, whatever the connection's.
    pub(crate) fn body_len(&self) -> usize {
        let v5 = self.protocol.is_v5();
        let mut len = 2 + self.protocol.protocol_name().len() + 1 + 1 + 2;
        if v5 {
            len += self.properties.encoded_len();
        }
        len += 2 + self.client_id.len();
        if let Some(will) = &self.will {
            if v5 {
                len += will.properties.encoded_len();
            }
            len += 2 + will.topic.as_str().len() + 2 + will.payload.len();
        }
        len += self.username.as_ref().map_or(0, |u| 2 + u.len());
        len += self.password.as_ref().map_or(0, |p| 2 + p.len());
        len
    }

    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        if self.password.is_some() && self.username.is_none() && !self.protocol.is_v5() {
            return Err(EncodeError::Refused(DecodeError::PasswordWithoutUsername));
        }
        self.properties.check()?;
        if let Some(will) = &self.will {
            will.properties.check()?;
            check_binary(&will.payload, "will payload")?;
        }
        if let Some(password) = &self.password {
            check_binary(password, "password")?;
        }
        Ok(())
    }

    pub(crate) fn encode_body(&self, buf: &mut BytesMut) {
        let v5 = self.protocol.is_v5();
        put_binary(buf, self.protocol.protocol_name().as_bytes());
        buf.put_u8(self.protocol.level());
        let mut flags = 0;
        if self.clean_start {
            flags |= FLAG_CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= FLAG_WILL | (will.qos.as_u8() << 3);
            if will.retain {
                flags |= FLAG_WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= FLAG_USERNAME;
        }
        if self.password.is_some() {
            flags |= FLAG_PASSWORD;
        }
        buf.put_u8(flags);
        buf.put_u16(self.keep_alive);
        if v5 {
            self.properties.encode(buf);
        }
        put_string(buf, &self.client_id);
        if let Some(will) = &self.will {
            if v5 {
                will.properties.encode(buf);
            }
            put_string(buf, will.topic.as_mqtt_string());
            put_binary(buf, &will.payload);
        }
        if let Some(username) = &self.username {
            put_string(buf, username);
        }
        if let Some(password) = &self.password {
            put_binary(buf, password);
        }
    }
}

/// A CONNACK packet. For 3.x the reason code carries the CONNACK return code
/// mapped to its v5 equivalent (see [`ReasonCode::from_connect_return_code`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    /// Whether the server resumed a session.
    pub session_present: bool,
    /// The result of the connection attempt.
    pub reason_code: ReasonCode,
    /// v5 properties; always empty for 3.x.
    pub properties: Props<ConnAckProperties>,
}

impl ConnAck {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let flags = r.u8()?;
        if flags & !0x01 != 0 {
            return Err(DecodeError::ConnAckReservedFlags);
        }
        let code = r.u8()?;
        let reason_code = if version.is_v5() {
            Some(ReasonCode(code)).filter(|c| c.is_allowed_in(PacketType::ConnAck))
        } else {
            ReasonCode::from_connect_return_code(code)
        }
        .ok_or(DecodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code,
        })?;
        let session_present = flags & 0x01 != 0;
        if session_present && reason_code.is_error() {
            return Err(DecodeError::SessionPresentOnFailure);
        }
        let properties = if version.is_v5() {
            ConnAckProperties::decode_props(r)?
        } else {
            Props::none()
        };
        Ok(ConnAck {
            session_present,
            reason_code,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        2 + if version.is_v5() {
            self.properties.encoded_len()
        } else {
            0
        }
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if !self.reason_code.is_valid_for(PacketType::ConnAck, version) {
            return Err(EncodeError::InvalidReasonCode {
                packet: PacketType::ConnAck,
                code: self.reason_code,
                version,
            });
        }
        // Maximum QoS is sent only as 0 or 1; its absence means 2.
        if self.properties.maximum_qos == Some(QoS::ExactlyOnce) {
            return Err(EncodeError::Refused(DecodeError::InvalidPropertyValue(
                crate::property::PropertyId::MaximumQoS,
            )));
        }
        self.properties.check()
    }

    pub(crate) fn encode_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u8(u8::from(
            self.session_present && !self.reason_code.is_error(),
        ));
        if version.is_v5() {
            buf.put_u8(self.reason_code.0);
            self.properties.encode(buf);
        } else {
            buf.put_u8(self.reason_code.to_connect_return_code());
        }
    }
}
