//! The payload header every bench message carries, and the PUBLISH template
//! publishers copy and patch instead of encoding each message from scratch.
//!
//! Header, big-endian, at the start of the payload; zero padding follows:
//! | bytes | field |
//! |---|---|
//! | 0..4 | publisher index |
//! | 4..12 | sequence number (0, 1, 2, ... per publisher) |
//! | 12..20 | send time: nanoseconds since the Unix epoch (CLOCK_REALTIME) |
//!
//! The wall clock, not a monotonic one, so that a `sub` in one process can
//! time what a `pub` in another sends (same machine, same clock).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use starling_proto::{Delivery, Packet, PacketId, ProtocolVersion, Publish, QoS, TopicName};

/// Bytes of the header; the smallest payload `starling bench` sends.
pub(crate) const HEADER_LEN: usize = 20;

/// What the header of a received payload says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) publisher: u32,
    pub(crate) seq: u64,
    /// Nanoseconds since the Unix epoch.
    pub(crate) sent: u64,
}

impl Header {
    /// The header at the start of `payload`, if it is long enough.
    pub(crate) fn decode(payload: &[u8]) -> Option<Header> {
        let h = payload.get(..HEADER_LEN)?;
        Some(Header {
            publisher: u32::from_be_bytes(h[0..4].try_into().ok()?),
            seq: u64::from_be_bytes(h[4..12].try_into().ok()?),
            sent: u64::from_be_bytes(h[12..20].try_into().ok()?),
        })
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.publisher.to_be_bytes());
        out[4..12].copy_from_slice(&self.seq.to_be_bytes());
        out[12..20].copy_from_slice(&self.sent.to_be_bytes());
    }
}

/// Nanoseconds since the Unix epoch, as the header carries them.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One publisher's PUBLISH, encoded once by the codec; each message is a copy
/// with its packet identifier and payload header written in place.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    bytes: Bytes,
    /// Where the packet identifier is, for QoS 1 and 2.
    id_at: Option<usize>,
    /// Where the payload starts.
    payload_at: usize,
}

impl Template {
    pub(crate) fn new(
        topic: TopicName,
        qos: QoS,
        size: usize,
        version: ProtocolVersion,
    ) -> anyhow::Result<Template> {
        assert!(size >= HEADER_LEN, "payload smaller than its header");
        let topic_len = topic.as_str().len();
        let publish = Publish {
            delivery: Delivery::new(qos, PacketId::MIN),
            ..Publish::new(topic, vec![0; size])
        };
        let mut buf = BytesMut::new();
        Packet::Publish(publish).encode(version, &mut buf)?;
        // The fixed header: the type byte and a Remaining Length of 1 to 4 bytes.
        let length_bytes = buf[1..].iter().take_while(|b| *b & 0x80 != 0).count() + 1;
        let fixed = 1 + length_bytes;
        Ok(Template {
            id_at: (qos != QoS::AtMostOnce).then_some(fixed + 2 + topic_len),
            payload_at: buf.len() - size,
            bytes: buf.freeze(),
        })
    }

    /// Bytes of one message on the wire.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends one message to `out`. `id` is ignored at QoS 0.
    pub(crate) fn put(&self, out: &mut BytesMut, id: PacketId, header: Header) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let packet = &mut out[start..];
        if let Some(at) = self.id_at {
            packet[at..at + 2].copy_from_slice(&id.get().to_be_bytes());
        }
        header.encode(&mut packet[self.payload_at..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_proto::{Decoder, Role};

    fn decode_all(version: ProtocolVersion, mut buf: BytesMut) -> Vec<Publish> {
        let mut decoder = Decoder::new(Role::Server, version);
        let mut out = Vec::new();
        while let Some(packet) = decoder.decode(&mut buf).expect("valid packet") {
            match packet {
                Packet::Publish(p) => out.push(p),
                other => panic!("not a PUBLISH: {other:?}"),
            }
        }
        assert!(buf.is_empty(), "trailing bytes");
        out
    }

    #[test]
    fn patched_copies_decode_to_what_was_written() {
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                for size in [HEADER_LEN, 64, 200, 20_000] {
                    let topic = TopicName::try_from("bench/17").unwrap();
                    let template = Template::new(topic, qos, size, version).unwrap();
                    let mut buf = BytesMut::new();
                    let mut id = PacketId::MIN;
                    for seq in 0..3u64 {
                        let header = Header {
                            publisher: 17,
                            seq,
                            sent: 1_700_000_000_000_000_000 + seq,
                        };
                        template.put(&mut buf, id, header);
                        id = id.next();
                    }
                    assert_eq!(buf.len(), 3 * template.len());
                    let publishes = decode_all(version, buf);
                    assert_eq!(publishes.len(), 3);
                    for (seq, p) in publishes.iter().enumerate() {
                        assert_eq!(p.topic.as_str(), "bench/17");
                        assert_eq!(p.qos(), qos);
                        assert_eq!(p.payload.len(), size);
                        let expected_id = PacketId::new(seq as u16 + 1).unwrap();
                        if qos != QoS::AtMostOnce {
                            assert_eq!(p.packet_id(), Some(expected_id));
                        }
                        let h = Header::decode(&p.payload).unwrap();
                        assert_eq!(h.publisher, 17);
                        assert_eq!(h.seq, seq as u64);
                        assert_eq!(h.sent, 1_700_000_000_000_000_000 + seq as u64);
                    }
                }
            }
        }
    }

    #[test]
    fn short_payloads_have_no_header() {
        assert_eq!(Header::decode(&[0; HEADER_LEN - 1]), None);
    }
}
