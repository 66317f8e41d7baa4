//! Byte-exact test vectors: each packet is written out as hex, decoded, checked field by
//! field, and re-encoded to exactly the same bytes.
//!
//! The bytes are not produced by our encoder. Lengths were counted by hand against the
//! OASIS texts (MQTT 3.1.1 and 5.0 §2 and §3) and, for the Paho Python session, against
//! the Wireshark decode in `shared/seeds/000_*` ("Msg Len" is the Remaining Length).
//! The topic and filter of the QoS 2 exchange follow `shared/seeds/003_*`
//! (`mosquitto_sub -V mqttv311 -t sensors/drone03/# -q 2`, "Mid: 1").

mod common;

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use common::hex;
use starling_proto::property::{AckProperties, ConnAckProperties};
use starling_proto::{
    Decoder, Delivery, Packet, PacketId, ProtocolVersion, QoS, ReasonCode, RetainHandling, Role,
    SubscriptionId, SubscriptionOptions, UserProperty,
};

/// `bytes` as a hex dump, so that a failed comparison shows where the bytes differ.
fn dump(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Decodes `wire` as exactly one packet of `version`, then checks that encoding the
/// result gives back `wire`, byte for byte.
fn round_trip(wire: &Bytes, version: ProtocolVersion) -> Packet {
    let packet = Packet::decode(wire.clone(), version)
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", dump(wire)));
    assert_eq!(packet.encoded_len(version), wire.len(), "encoded_len");
    let mut out = BytesMut::new();
    packet.encode(version, &mut out).expect("encodes");
    assert_eq!(dump(&out), dump(wire), "re-encoding differs");
    packet
}

fn id(id: u16) -> PacketId {
    PacketId::new(id).expect("non-zero")
}

// The Paho Python session of seed 000: Ethernet (14), IPv4 (20) and TCP with timestamps
// (32) add 66 bytes to every frame, which cross-checks each packet's total size against
// the "Length" column of the capture.
const FRAME_OVERHEAD: usize = 66;

/// Paho Python's CONNECT with a last will, frame 1106: 150 bytes on the wire, Msg Len 82.
fn paho_connect() -> Bytes {
    hex(concat!(
        "10 52",                                        // CONNECT, Remaining Length 82
        "00 04 4d 51 54 54",                            // "MQTT"
        "04",                                           // level 4 (3.1.1)
        "2e",                                           // flags 0010 1110
        "00 3c",                                        // keep alive 60
        "00 17 70 61 68 6f 2f 45 30 43 39 31 41 44 36", // "paho/E0C91AD6
        "32 41 34 33 30 31 38 46 45 30",                //  2A43018FE0"
        "00 15 2f 75 66 73 63 61 72 2f 6d 71 74 74 5f", // "/ufscar/mqtt_
        "61 63 74 69 76 69 74 79",                      //  activity"
        "00 16 50 75 62 6c 69 73 68 65 72 20 64 69 73", // "Publisher dis
        "63 6f 6e 6e 65 63 74 65 64",                   //  connected"
    ))
}

// "/ufscar/mqtt_activity" with its two-byte length: 2 + 21 bytes.
const UFSCAR_TOPIC: &str = "00 15 2f 75 66 73 63 61 72 2f 6d 71 74 74 5f 61 63 74 69 76 69 74 79";

fn paho_publish_qos0() -> Bytes {
    // Frame 1142: 104 bytes, Msg Len 36 = 23 (topic) + 13 (payload).
    hex(&format!(
        "30 24 {UFSCAR_TOPIC} 46 69 72 73 74 20 4d 65 73 73 61 67 65" // "First Message"
    ))
}

fn paho_publish_qos1() -> Bytes {
    // Frame 6844: 107 bytes, Msg Len 39 = 23 + 2 (message id) + 14.
    hex(&format!(
        "32 27 {UFSCAR_TOPIC} 00 02 53 65 63 6f 6e 64 20 4d 65 73 73 61 67 65" // "Second Message"
    ))
}

fn paho_publish_qos2() -> Bytes {
    // Frame 94: 106 bytes, Msg Len 38 = 23 + 2 + 13.
    hex(&format!(
        "34 26 {UFSCAR_TOPIC} 00 03 54 68 69 72 64 20 4d 65 73 73 61 67 65" // "Third Message"
    ))
}

#[test]
fn paho_connect_with_last_will() {
    let wire = paho_connect();
    assert_eq!(wire[1], 82, "Wireshark: Msg Len: 82");
    assert_eq!(wire.len(), 2 + 82);
    assert_eq!(wire.len() + FRAME_OVERHEAD, 150, "frame 1106 is 150 bytes");

    let Packet::Connect(connect) = round_trip(&wire, ProtocolVersion::V3_1_1) else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.protocol, ProtocolVersion::V3_1_1);
    // 0x2e = 0010 1110: Will Retain (bit 5), Will QoS 1 (bits 4-3 = 01), Will Flag
    // (bit 2), Clean Session (bit 1); no user name, no password, reserved bit 0 clear.
    assert!(connect.clean_start);
    assert_eq!(connect.keep_alive, 60);
    assert_eq!(connect.client_id, "paho/E0C91AD62A43018FE0");
    let will = connect.will.as_ref().expect("Will Flag is set");
    assert_eq!(will.topic, "/ufscar/mqtt_activity");
    assert_eq!(&will.payload[..], b"Publisher disconnected");
    assert_eq!(will.qos, QoS::AtLeastOnce);
    assert!(will.retain, "bit 5 of 0x2e is Will Retain");
    assert!(will.properties.is_empty());
    assert_eq!(connect.username, None);
    assert_eq!(connect.password, None);
    assert!(connect.properties.is_empty());
}

#[test]
fn paho_publish_qos0_first_message() {
    let wire = paho_publish_qos0();
    assert_eq!(wire[1], 36, "Wireshark: Msg Len: 36");
    assert_eq!(wire.len() + FRAME_OVERHEAD, 104);

    let Packet::Publish(publish) = round_trip(&wire, ProtocolVersion::V3_1_1) else {
        panic!("not a PUBLISH");
    };
    // Header Flags 0x30: DUP 0, QoS 0, RETAIN 0; no message identifier [MQTT-2.2.1-2].
    assert!(!publish.dup);
    assert_eq!(publish.delivery, Delivery::AtMostOnce);
    assert!(!publish.retain);
    assert_eq!(publish.topic, "/ufscar/mqtt_activity");
    assert_eq!(&publish.payload[..], b"First Message");
    assert!(publish.properties.is_empty());
}

#[test]
fn paho_publish_qos1_second_message() {
    let wire = paho_publish_qos1();
    assert_eq!(wire[1], 39, "Wireshark: Msg Len: 39");
    assert_eq!(wire.len() + FRAME_OVERHEAD, 107);

    let Packet::Publish(publish) = round_trip(&wire, ProtocolVersion::V3_1_1) else {
        panic!("not a PUBLISH");
    };
    // Header Flags 0x32: QoS 1, Message Identifier 2.
    assert!(!publish.dup);
    assert_eq!(publish.delivery, Delivery::AtLeastOnce(id(2)));
    assert!(!publish.retain);
    assert_eq!(publish.topic, "/ufscar/mqtt_activity");
    assert_eq!(&publish.payload[..], b"Second Message");
}

#[test]
fn paho_publish_qos2_third_message() {
    let wire = paho_publish_qos2();
    assert_eq!(wire[1], 38, "Wireshark: Msg Len: 38");
    assert_eq!(wire.len() + FRAME_OVERHEAD, 106);

    let Packet::Publish(publish) = round_trip(&wire, ProtocolVersion::V3_1_1) else {
        panic!("not a PUBLISH");
    };
    // Header Flags 0x34: QoS 2, Message Identifier 3.
    assert!(!publish.dup);
    assert_eq!(publish.delivery, Delivery::ExactlyOnce(id(3)));
    assert!(!publish.retain);
    assert_eq!(publish.topic, "/ufscar/mqtt_activity");
    assert_eq!(&publish.payload[..], b"Third Message");
}

#[test]
fn qos2_flow_pubrec_pubrel_pubcomp_for_id_3() {
    // Frames 103, 105 and 113 are 70 bytes each: 66 + 4.
    let pubrec = hex("50 02 00 03");
    let pubrel = hex("62 02 00 03"); // PUBREL's reserved flags are 0010 [MQTT-3.6.1-1]
    let pubcomp = hex("70 02 00 03");
    for wire in [&pubrec, &pubrel, &pubcomp] {
        assert_eq!(wire.len() + FRAME_OVERHEAD, 70);
    }

    let Packet::PubRec(rec) = round_trip(&pubrec, ProtocolVersion::V3_1_1) else {
        panic!("not a PUBREC");
    };
    assert_eq!(rec.packet_id, id(3));
    assert_eq!(rec.reason_code, ReasonCode::SUCCESS);
    assert_eq!(rec.properties, AckProperties::default());

    let Packet::PubRel(rel) = round_trip(&pubrel, ProtocolVersion::V3_1_1) else {
        panic!("not a PUBREL");
    };
    assert_eq!(rel.packet_id, id(3));
    assert_eq!(rel.reason_code, ReasonCode::SUCCESS);
    assert_eq!(rel.properties, AckProperties::default());

    let Packet::PubComp(comp) = round_trip(&pubcomp, ProtocolVersion::V3_1_1) else {
        panic!("not a PUBCOMP");
    };
    assert_eq!(comp.packet_id, id(3));
    assert_eq!(comp.reason_code, ReasonCode::SUCCESS);
    assert_eq!(comp.properties, AckProperties::default());
}

#[test]
fn paho_session_streams_through_decoders_whole_and_byte_by_byte() {
    // What the publisher sent, then what the broker answered, as one TCP stream each.
    let client: Vec<Bytes> = vec![
        paho_connect(),
        paho_publish_qos0(),
        paho_publish_qos1(),
        paho_publish_qos2(),
        hex("62 02 00 03"),
    ];
    let server: Vec<Bytes> = vec![
        hex("20 02 00 00"),
        hex("40 02 00 02"),
        hex("50 02 00 03"),
        hex("70 02 00 03"),
    ];
    for (role, frames) in [(Role::Server, &client), (Role::Client, &server)] {
        let expected: Vec<Packet> = frames
            .iter()
            .map(|f| Packet::decode(f.clone(), ProtocolVersion::V3_1_1).unwrap())
            .collect();
        let stream: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();

        // All at once.
        let mut decoder = Decoder::new(role, ProtocolVersion::V3_1_1);
        let mut buf = BytesMut::from(&stream[..]);
        let mut got = Vec::new();
        while let Some(packet) = decoder.decode(&mut buf).expect("valid stream") {
            got.push(packet);
        }
        assert!(buf.is_empty());
        assert_eq!(got, expected, "{role:?}, whole stream");

        // One byte at a time: every strict prefix of a packet is "need more".
        let mut decoder = Decoder::new(role, ProtocolVersion::V3_1_1);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &byte in &stream {
            buf.extend_from_slice(&[byte]);
            if let Some(packet) = decoder.decode(&mut buf).expect("valid stream") {
                got.push(packet);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got, expected, "{role:?}, byte by byte");
    }
}

#[test]
fn remaining_length_of_128_takes_two_bytes() {
    // QoS 0 PUBLISH to "a" with 125 payload bytes: 3 + 125 = 128 = 0x80 0x01 [MQTT-1.5.5-1].
    let mut wire = hex("30 80 01 00 01 61").to_vec();
    wire.extend_from_slice(&[b'x'; 125]);
    let wire = Bytes::from(wire);
    assert_eq!(wire.len(), 1 + 2 + 128);

    let Packet::Publish(publish) = round_trip(&wire, ProtocolVersion::V3_1_1) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(publish.topic, "a");
    assert_eq!(publish.payload.len(), 125);
}

#[test]
fn v5_puback_two_byte_form() {
    // MQTT 5.0 §3.4.2.1: Remaining Length 2 means Reason Code 0x00 and no properties.
    let wire = hex("40 02 00 01");
    let Packet::PubAck(ack) = round_trip(&wire, ProtocolVersion::V5) else {
        panic!("not a PUBACK");
    };
    assert_eq!(ack.packet_id, id(1));
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert!(ack.properties.is_empty());
}

#[test]
fn v5_puback_three_byte_form_with_reason() {
    // MQTT 5.0 §3.4.2.2.1: Remaining Length below 4 means no Property Length.
    let wire = hex("40 03 00 01 10"); // 0x10 No matching subscribers
    let Packet::PubAck(ack) = round_trip(&wire, ProtocolVersion::V5) else {
        panic!("not a PUBACK");
    };
    assert_eq!(ack.packet_id, id(1));
    assert_eq!(ack.reason_code, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    assert!(ack.properties.is_empty());
}

#[test]
fn v5_puback_full_form_with_reason_string() {
    // 2 (id) + 1 (reason) + 1 (Property Length 17) + 17 (0x1F, 00 0e, 14 bytes) = 21.
    let wire = hex(concat!(
        "40 15 00 01 10",
        "11 1f 00 0e 6e 6f 20 73 75 62 73 63 72 69 62 65 72 73", // "no subscribers"
    ));
    let Packet::PubAck(ack) = round_trip(&wire, ProtocolVersion::V5) else {
        panic!("not a PUBACK");
    };
    assert_eq!(ack.packet_id, id(1));
    assert_eq!(ack.reason_code, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    assert_eq!(
        ack.properties.reason_string.as_deref(),
        Some("no subscribers")
    );
    assert!(ack.properties.user_properties.is_empty());
}

#[test]
fn subscribe_3_1_1_drone_filter_at_qos2() {
    // seed 003: SUBSCRIBE (Mid: 1, Topic: sensors/drone03/#, QoS: 2).
    // 2 (id) + 2 + 17 (filter) + 1 (QoS) = 22; header 0x82 [MQTT-3.8.1-1].
    let wire = hex(concat!(
        "82 16 00 01",
        "00 11 73 65 6e 73 6f 72 73 2f 64 72 6f 6e 65 30 33 2f 23", // "sensors/drone03/#"
        "02",
    ));
    let Packet::Subscribe(subscribe) = round_trip(&wire, ProtocolVersion::V3_1_1) else {
        panic!("not a SUBSCRIBE");
    };
    assert_eq!(subscribe.packet_id, id(1));
    assert_eq!(subscribe.filters.len(), 1);
    let (filter, options) = &subscribe.filters[0];
    assert_eq!(filter, "sensors/drone03/#");
    assert_eq!(*options, SubscriptionOptions::new(QoS::ExactlyOnce));
    assert!(subscribe.properties.is_empty());
}

#[test]
fn subscribe_v5_with_options_and_properties() {
    // Properties: Subscription Identifier 42 (0b 2a) and User Property k=v (7 bytes): 9.
    // Options 0x2d = Retain Handling 2 (0x20) | Retain As Published (0x08) |
    // No Local (0x04) | QoS 1 (MQTT 5.0 §3.8.3.1).
    // 2 (id) + 1 + 9 + 2 + 14 (filter) + 1 (options) = 29.
    let wire = hex(concat!(
        "82 1d 00 0a",
        "09 0b 2a 26 00 01 6b 00 01 76",
        "00 0e 73 65 6e 73 6f 72 73 2f 2b 2f 74 65 6d 70", // "sensors/+/temp"
        "2d",
    ));
    let Packet::Subscribe(subscribe) = round_trip(&wire, ProtocolVersion::V5) else {
        panic!("not a SUBSCRIBE");
    };
    assert_eq!(subscribe.packet_id, id(10));
    assert_eq!(
        subscribe.properties.subscription_identifier,
        SubscriptionId::new(42)
    );
    assert_eq!(
        subscribe.properties.user_properties,
        vec![UserProperty {
            name: "k".try_into().unwrap(),
            value: "v".try_into().unwrap(),
        }]
    );
    assert_eq!(subscribe.filters.len(), 1);
    let (filter, options) = &subscribe.filters[0];
    assert_eq!(filter, "sensors/+/temp");
    assert_eq!(
        *options,
        SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        }
    );
}

#[test]
fn connect_v5_with_properties_will_and_credentials() {
    // Variable header 10 + properties 1 + 28 + client id 13 + will properties 1 + 18
    // + will topic 20 + will payload 9 + user name 6 + password 6 = 112.
    let wire = hex(concat!(
        "10 70",
        "00 04 4d 51 54 54 05",                   // "MQTT", level 5
        "ce",             // user name, password, Will QoS 1, Will Flag, Clean Start
        "00 1e",          // keep alive 30
        "1c",             // Property Length 28
        "11 00 00 0e 10", // Session Expiry Interval 3600
        "21 00 14",       // Receive Maximum 20
        "27 00 00 40 00", // Maximum Packet Size 16384
        "22 00 0a",       // Topic Alias Maximum 10
        "26 00 04 73 69 74 65 00 03 6c 61 62", // User Property "site" = "lab"
        "00 0b 73 74 61 72 6c 69 6e 67 2d 76 35", // client id "starling-v5"
        "12",             // Will Property Length 18
        "18 00 00 00 1e", // Will Delay Interval 30
        "03 00 0a 74 65 78 74 2f 70 6c 61 69 6e", // Content Type "text/plain"
        "00 12 73 74 61 74 75 73 2f 73 74 61 72 6c 69 6e 67 2d 76 35", // "status/starling-v5"
        "00 07 6f 66 66 6c 69 6e 65", // will payload "offline"
        "00 04 75 73 65 72", // user name "user"
        "00 04 70 61 73 73", // password "pass"
    ));
    assert_eq!(wire.len(), 2 + 112);

    let Packet::Connect(connect) = round_trip(&wire, ProtocolVersion::V5) else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.protocol, ProtocolVersion::V5);
    assert!(connect.clean_start);
    assert_eq!(connect.keep_alive, 30);
    assert_eq!(connect.client_id, "starling-v5");

    let props = &connect.properties;
    assert_eq!(props.session_expiry_interval, Some(3600));
    assert_eq!(props.receive_maximum, NonZeroU16::new(20));
    assert_eq!(props.maximum_packet_size, NonZeroU32::new(16_384));
    assert_eq!(props.topic_alias_maximum, Some(10));
    assert_eq!(props.request_response_information, None);
    assert_eq!(props.request_problem_information, None);
    assert_eq!(props.authentication_method, None);
    assert_eq!(props.authentication_data, None);
    assert_eq!(
        props.user_properties,
        vec![UserProperty {
            name: "site".try_into().unwrap(),
            value: "lab".try_into().unwrap(),
        }]
    );

    let will = connect.will.as_ref().expect("Will Flag is set");
    assert_eq!(will.topic, "status/starling-v5");
    assert_eq!(&will.payload[..], b"offline");
    assert_eq!(will.qos, QoS::AtLeastOnce);
    assert!(!will.retain);
    assert_eq!(will.properties.will_delay_interval, Some(30));
    assert_eq!(will.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(will.properties.payload_format_indicator, None);
    assert_eq!(will.properties.message_expiry_interval, None);
    assert_eq!(will.properties.response_topic, None);
    assert_eq!(will.properties.correlation_data, None);
    assert!(will.properties.user_properties.is_empty());

    assert_eq!(connect.username.as_deref(), Some("user"));
    assert_eq!(connect.password.as_deref(), Some(&b"pass"[..]));
}

#[test]
fn connect_v3_1_mqisdp_level_3() {
    // MQTT 3.1: protocol name "MQIsdp", level 3. 12 + 2 + 23 = 37.
    let wire = hex(concat!(
        "10 25",
        "00 06 4d 51 49 73 64 70 03", // "MQIsdp", level 3
        "02 00 3c",                   // Clean Session, keep alive 60
        "00 17 6d 6f 73 71 73 75 62 2f 32 30 31 37 2d 47 61 73 74 6f 6e 73 2d 4d 61",
    ));
    let Packet::Connect(connect) = round_trip(&wire, ProtocolVersion::V3_1_1) else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.protocol, ProtocolVersion::V3_1);
    assert!(connect.clean_start);
    assert_eq!(connect.keep_alive, 60);
    assert_eq!(connect.client_id, "mosqsub/2017-Gastons-Ma");
    assert_eq!(connect.will, None);
    assert_eq!(connect.username, None);
    assert_eq!(connect.password, None);
    assert!(connect.properties.is_empty());
}

#[test]
fn connack_v5_with_assigned_client_identifier() {
    // Flags 0, Success, Property Length 14: Assigned Client Identifier (0x12), 00 0b,
    // "auto-1A2B3C". 2 + 1 + 14 = 17.
    let wire = hex("20 11 00 00 0e 12 00 0b 61 75 74 6f 2d 31 41 32 42 33 43");
    let Packet::ConnAck(connack) = round_trip(&wire, ProtocolVersion::V5) else {
        panic!("not a CONNACK");
    };
    assert!(!connack.session_present);
    assert_eq!(connack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(
        *connack.properties,
        ConnAckProperties {
            assigned_client_identifier: Some("auto-1A2B3C".try_into().unwrap()),
            ..Default::default()
        }
    );
}

#[test]
fn connack_3_1_1_refused_not_authorized() {
    // Return code 5: "Connection Refused, not authorized" (3.1.1 §3.2.2.3).
    let wire = hex("20 02 00 05");
    let Packet::ConnAck(connack) = round_trip(&wire, ProtocolVersion::V3_1_1) else {
        panic!("not a CONNACK");
    };
    assert!(!connack.session_present);
    assert_eq!(connack.reason_code, ReasonCode::NOT_AUTHORIZED);
    assert!(connack.properties.is_empty());
}

#[test]
fn disconnect_v5_session_taken_over() {
    // Reason Code only; no Property Length when there are no properties (§3.14.2.1).
    let wire = hex("e0 01 8e");
    let Packet::Disconnect(disconnect) = round_trip(&wire, ProtocolVersion::V5) else {
        panic!("not a DISCONNECT");
    };
    assert_eq!(disconnect.reason_code, ReasonCode::SESSION_TAKEN_OVER);
    assert!(disconnect.properties.is_empty());
}

#[test]
fn pingreq_and_pingresp() {
    for version in ProtocolVersion::ALL {
        assert_eq!(
            round_trip(&hex("c0 00"), version),
            Packet::PingReq,
            "{version}"
        );
        assert_eq!(
            round_trip(&hex("d0 00"), version),
            Packet::PingResp,
            "{version}"
        );
    }
}
