//! `Decoder`: frames packets out of a byte stream for one connection.
//!
//! It reads the fixed header first and refuses a packet larger than the Maximum
//! Packet Size from the header alone, before buffering or allocating for its
//! body; so a peer that claims 256 MB gets an error at once, not an allocation.
//! It also applies the rules that depend on which end is reading: a server never
//! accepts a CONNACK, and a client's PUBLISH never carries a Subscription
//! Identifier [MQTT-3.3.4-6].

use bytes::BytesMut;

use crate::error::DecodeError;
use crate::packet::{Packet, PacketType};
use crate::version::ProtocolVersion;
use crate::wire::{decode_varint, VARINT_MAX};

/// The largest packet MQTT can express: a 1-byte type, a 4-byte Remaining Length
/// and 268,435,455 bytes of body.
pub const MAX_PACKET_SIZE: u32 = 1 + 4 + VARINT_MAX;

/// The most the decoder reserves ahead of the bytes it has.
const RESERVE_AHEAD: usize = 64 * 1024;

/// Which end of the connection is decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A broker, reading what clients send.
    Server,
    /// A client, reading what the broker sends.
    Client,
}

/// The streaming decoder for one connection.
#[derive(Debug, Clone)]
pub struct Decoder {
    role: Role,
    version: ProtocolVersion,
    max_packet_size: u32,
}

impl Decoder {
    /// A decoder for `role` reading `version`. A server's decoder switches to the
    /// version a CONNECT announces when it decodes one.
    pub fn new(role: Role, version: ProtocolVersion) -> Self {
        Decoder {
            role,
            version,
            max_packet_size: MAX_PACKET_SIZE,
        }
    }

    /// Refuse packets larger than `max` bytes, fixed header included.
    pub fn with_max_packet_size(mut self, max: u32) -> Self {
        self.max_packet_size = max;
        self
    }

    /// The largest packet accepted.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// The version packets are read in.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Reads later packets in `version`.
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    /// Takes the first complete packet off the front of `buf`: `Ok(None)` if `buf`
    /// holds only part of one (it is left untouched, with room reserved for up to
    /// 64 KiB more of a packet whose header has arrived).
    ///
    /// An error leaves the stream unusable: the caller closes the connection,
    /// with [`DecodeError::reason_code`] in a v5 DISCONNECT.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let packet_type = PacketType::from_first_byte(first, self.version)?;
        let Some((remaining, len_bytes)) = decode_varint(&buf[1..])? else {
            return Ok(None);
        };
        let header = 1 + len_bytes;
        let size = header as u64 + u64::from(remaining);
        if size > u64::from(self.max_packet_size) {
            return Err(DecodeError::PacketTooLarge {
                size,
                max: self.max_packet_size,
            });
        }
        let size = size as usize;
        if buf.len() < size {
            // Room for what is likely to come next, not for what the header
            // claims: memory follows the bytes that actually arrive.
            buf.reserve((size - buf.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        let mut frame = buf.split_to(size);
        let body = frame.split_off(header).freeze();
        let packet = Packet::decode_body(first, body, self.version)?;
        self.check_direction(packet_type, &packet)?;
        if let Packet::Connect(connect) = &packet {
            self.version = connect.protocol;
        }
        Ok(Some(packet))
    }

    fn check_direction(&self, packet_type: PacketType, packet: &Packet) -> Result<(), DecodeError> {
        use PacketType::*;
        let allowed = match self.role {
            Role::Server => !matches!(packet_type, ConnAck | SubAck | UnsubAck | PingResp),
            Role::Client => !matches!(packet_type, Connect | Subscribe | Unsubscribe | PingReq),
        };
        if !allowed {
            return Err(DecodeError::UnexpectedPacket(packet_type));
        }
        if let (Role::Server, Packet::Publish(publish)) = (self.role, packet) {
            if !publish.properties.subscription_identifiers.is_empty() {
                return Err(DecodeError::SubscriptionIdFromClient);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_size_is_not_allocated_before_it_arrives() {
        // A header claiming 268,435,455 bytes of body under the default limit.
        let mut decoder = Decoder::new(Role::Server, ProtocolVersion::V3_1_1);
        let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert!(
            buf.capacity() <= 2 * RESERVE_AHEAD,
            "reserved {} bytes",
            buf.capacity()
        );
    }
}
