//! The decoder on arbitrary bytes, as one frame and as a stream, in every version
//! and both roles. Besides never panicking, it checks:
//! - every decoded packet survives encode -> decode unchanged, and `encoded_len`
//!   is the length `encode` writes;
//! - a frame that `Packet::decode` accepts comes out of the streaming `Decoder`
//!   the same, unless the role forbids it;
//! - a Maximum Packet Size cuts the stream at the first larger packet, with
//!   `PacketTooLarge`, and changes nothing before it.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_fuzz::{assert_round_trip, decode_whole, Stream, ROLES};
use starling_proto::{DecodeError, Decoder, Packet, ProtocolVersion, Role};

/// Limits to compare against the unlimited decoder: the 64 KiB a broker might
/// configure, and one small enough that fuzzed inputs reach it with whole packets.
const LIMITS: [u32; 2] = [64 * 1024, 96];

fuzz_target!(|data: &[u8]| {
    for version in ProtocolVersion::ALL {
        check_one_frame(data, version);
        for role in ROLES {
            let full = decode_whole(Decoder::new(role, version), data);
            for decoded in &full.packets {
                assert_round_trip(&decoded.packet, decoded.version);
            }
            for max in LIMITS {
                let decoder = Decoder::new(role, version).with_max_packet_size(max);
                check_limited(&full, &decode_whole(decoder, data), max);
            }
        }
    }
});

fn check_one_frame(data: &[u8], version: ProtocolVersion) {
    let Ok(packet) = Packet::decode(Bytes::copy_from_slice(data), version) else {
        return;
    };
    assert_round_trip(&packet, version);
    for role in ROLES {
        let stream = decode_whole(Decoder::new(role, version), data);
        match (&stream.packets[..], &stream.end) {
            ([only], Ok(0)) => assert_eq!(only.packet, packet, "{role:?} {version}"),
            ([], Err(DecodeError::UnexpectedPacket(_))) => {}
            ([], Err(DecodeError::SubscriptionIdFromClient)) if role == Role::Server => {}
            _ => panic!("Packet::decode gave {packet:?} but a {role:?} decoder {stream:?}"),
        }
    }
}

/// `limited` must equal `full` up to the first packet larger than `max`, and stop
/// there with `PacketTooLarge`.
fn check_limited(full: &Stream, limited: &Stream, max: u32) {
    let fits = |len: usize| len as u64 <= u64::from(max);
    match full.packets.iter().position(|d| !fits(d.frame_len)) {
        Some(i) => {
            assert_eq!(limited.packets, full.packets[..i]);
            assert_eq!(
                limited.end,
                Err(DecodeError::PacketTooLarge {
                    size: full.packets[i].frame_len as u64,
                    max,
                })
            );
        }
        None => {
            assert_eq!(limited.packets, full.packets);
            match &limited.end {
                // The rest of the stream starts with a header that claims too much;
                // the unlimited decoder waited for its body or rejected it.
                Err(DecodeError::PacketTooLarge { size, max: m }) => {
                    assert!(*m == max && *size > u64::from(max));
                }
                end => assert_eq!(end, &full.end),
            }
        }
    }
}
