//! The primitive data types of MQTT 5.0 §1.5 (and 3.1.1 §1.5): integers, Variable
//! Byte Integers, UTF-8 Encoded Strings and Binary Data, read from a `Bytes`
//! without copying and written into a `BytesMut`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::qos::PacketId;
use crate::string::MqttString;

/// The largest value a Variable Byte Integer can hold (MQTT 5.0 §1.5.5).
pub const VARINT_MAX: u32 = 268_435_455;

/// Reads the fields of one packet body. Every read that runs out of bytes is a
/// `Truncated` error for `packet`, never a panic.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
    packet: PacketType,
}

impl Reader {
    pub(crate) fn new(buf: Bytes, packet: PacketType) -> Self {
        Reader { buf, packet }
    }

    pub(crate) fn packet(&self) -> PacketType {
        self.packet
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                packet: self.packet,
            });
        }
        Ok(())
    }

    /// The next byte, left unread.
    pub(crate) fn peek_u8(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        match decode_varint(&self.buf)? {
            Some((value, len)) => {
                self.buf.advance(len);
                Ok(value)
            }
            None => Err(DecodeError::Truncated {
                packet: self.packet,
            }),
        }
    }

    /// The next `n` bytes, sharing the packet's buffer.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    /// Everything that is left, sharing the packet's buffer.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// A reader over the next `n` bytes (a property block), advancing past them.
    pub(crate) fn sub_reader(&mut self, n: usize) -> Result<Reader, DecodeError> {
        Ok(Reader::new(self.take(n)?, self.packet))
    }

    /// Binary Data: a two-byte length and that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 Encoded String, validated; `field` names it in errors.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<MqttString, DecodeError> {
        let bytes = self.binary()?;
        MqttString::from_bytes(bytes).map_err(|error| DecodeError::InvalidUtf8 { field, error })
    }

    pub(crate) fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        PacketId::new(self.u16()?).ok_or(DecodeError::PacketIdZero {
            packet: self.packet,
        })
    }

    /// Fails unless every byte of the packet was read.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if !self.buf.is_empty() {
            return Err(DecodeError::TrailingBytes {
                packet: self.packet,
            });
        }
        Ok(())
    }
}

/// Decodes a Variable Byte Integer at the start of `buf`: `Ok(None)` if `buf` ends
/// before it does, else its value and length in bytes.
pub(crate) fn decode_varint(buf: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().enumerate() {
        if i == 4 {
            return Err(DecodeError::VarintTooLong);
        }
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // A zero final byte after the first means a shorter form existed.
            if i > 0 && byte == 0 {
                return Err(DecodeError::VarintNotMinimal);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        return Err(DecodeError::VarintTooLong);
    }
    Ok(None)
}

/// Bytes a Variable Byte Integer of `value` takes.
pub(crate) const fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

pub(crate) fn put_varint(buf: &mut BytesMut, mut value: usize) {
    debug_assert!(value <= VARINT_MAX as usize);
    loop {
        let mut byte = (value & 0x7F) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            break;
        }
    }
}

/// Writes Binary Data: the caller has checked the length fits in 16 bits.
pub(crate) fn put_binary(buf: &mut BytesMut, data: &[u8]) {
    debug_assert!(data.len() <= usize::from(u16::MAX));
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
}

pub(crate) fn put_string(buf: &mut BytesMut, s: &MqttString) {
    put_binary(buf, s.as_bytes());
}

/// Fails if `data` is too long for a two-byte length.
pub(crate) fn check_binary(data: &[u8], field: &'static str) -> Result<(), EncodeError> {
    if data.len() > usize::from(u16::MAX) {
        return Err(EncodeError::FieldTooLong(field));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_boundaries_round_trip() {
        for value in [
            0,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            VARINT_MAX as usize,
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value));
            assert_eq!(decode_varint(&buf), Ok(Some((value as u32, buf.len()))));
        }
    }

    #[test]
    fn varint_of_five_bytes_is_rejected_after_four() {
        assert_eq!(
            decode_varint(&[0xFF, 0xFF, 0xFF, 0xFF]),
            Err(DecodeError::VarintTooLong)
        );
        assert_eq!(decode_varint(&[0xFF, 0xFF, 0xFF]), Ok(None));
    }

    #[test]
    fn varint_must_be_minimal() {
        // [MQTT-1.5.5-1]: 0 encoded in two bytes.
        assert_eq!(
            decode_varint(&[0x80, 0x00]),
            Err(DecodeError::VarintNotMinimal)
        );
    }
}
