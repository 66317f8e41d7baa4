//! What the fuzz targets share: running a [`Decoder`] over a byte stream, and the
//! round-trip invariant every decoded packet must keep.
//!
//! The targets themselves live in `fuzz_targets/`; see `README.md` for how to run them.

use bytes::BytesMut;
use starling_proto::{DecodeError, Decoder, Packet, ProtocolVersion, Role};

/// Both ends of a connection.
pub const ROLES: [Role; 2] = [Role::Server, Role::Client];

/// One packet taken off a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The packet.
    pub packet: Packet,
    /// The version the decoder was reading when it took the packet off.
    pub version: ProtocolVersion,
    /// How many bytes of the stream the packet took.
    pub frame_len: usize,
}

/// Everything a decoder makes of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The packets, in order.
    pub packets: Vec<Decoded>,
    /// How the stream ended: `Ok(n)` when the decoder asked for more data with `n`
    /// bytes still buffered, or the error that made the stream unusable.
    pub end: Result<usize, DecodeError>,
}

/// Feeds `data` to `decoder` in one piece and calls `decode` until it returns
/// `Ok(None)` or an error.
pub fn decode_whole(decoder: Decoder, data: &[u8]) -> Stream {
    decode_chunked(decoder, data, &[data.len()])
}

/// Feeds `data` to `decoder` in chunks of the sizes in `chunks`, cycling through
/// them, and calls `decode` after each chunk until it returns `Ok(None)` or an error.
/// A chunk of 0 bytes calls `decode` without new data.
///
/// # Panics
/// If `chunks` is empty or all zero while `data` is not empty, or if `decode`
/// returns `Ok(None)` but changes the buffer's length.
pub fn decode_chunked(mut decoder: Decoder, data: &[u8], chunks: &[usize]) -> Stream {
    assert!(
        data.is_empty() || chunks.iter().any(|&n| n > 0),
        "chunks must make progress"
    );
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    let mut offset = 0;
    for &chunk in chunks.iter().cycle() {
        if offset == data.len() {
            break;
        }
        let end = data.len().min(offset + chunk);
        buf.extend_from_slice(&data[offset..end]);
        offset = end;
        loop {
            let version = decoder.version();
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => packets.push(Decoded {
                    packet,
                    version,
                    frame_len: before - buf.len(),
                }),
                Ok(None) => {
                    assert_eq!(
                        buf.len(),
                        before,
                        "Ok(None) must leave the buffer as it was"
                    );
                    break;
                }
                Err(error) => {
                    return Stream {
                        packets,
                        end: Err(error),
                    }
                }
            }
        }
    }
    Stream {
        packets,
        end: Ok(buf.len()),
    }
}

/// Asserts the round-trip invariant for a packet decoded in `version`: it encodes
/// without error into exactly [`Packet::encoded_len`] bytes, those bytes decode to
/// an equal packet, and that packet encodes to the same bytes again.
///
/// # Panics
/// If any of those fails: a bug in the codec.
pub fn assert_round_trip(packet: &Packet, version: ProtocolVersion) {
    let mut buf = BytesMut::new();
    if let Err(error) = packet.encode(version, &mut buf) {
        panic!("decoded packet does not encode in {version}: {error}\n{packet:#?}");
    }
    assert_eq!(
        buf.len(),
        packet.encoded_len(version),
        "encoded_len disagrees with encode in {version} for {packet:#?}"
    );
    let encoded = buf.freeze();
    let again = match Packet::decode(encoded.clone(), version) {
        Ok(again) => again,
        Err(error) => {
            panic!("encoding does not decode in {version}: {error}\n{packet:#?}\n{encoded:02x?}")
        }
    };
    assert_eq!(&again, packet, "decode(encode(p)) != p in {version}");
    let mut twice = BytesMut::new();
    again
        .encode(version, &mut twice)
        .expect("a packet that encoded once encodes again");
    assert_eq!(twice, encoded, "encoding is not deterministic in {version}");
}
