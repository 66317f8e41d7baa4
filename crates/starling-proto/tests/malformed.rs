//! One test per malformed or protocol-violating input: hand-written bytes, the exact
//! `DecodeError`, the v5 reason code the peer is told, and the rule id the error's text
//! starts with.
//!
//! The comment on each test names the normative statement (OASIS MQTT 5.0 numbering, or
//! 3.1.1 where the rule exists only there) or, where the specification states the rule
//! without an identifier, its section.

mod common;

use bytes::BytesMut;
use common::hex;
use starling_proto::packet::PacketType::{self, *};
use starling_proto::property::PropertyId;
use starling_proto::string::Utf8Error;
use starling_proto::topic::TopicError;
use starling_proto::DecodeError::{self, *};
use starling_proto::{Decoder, Packet, ProtocolVersion, ReasonCode, Role, SubscriptionId};

use ProtocolVersion::{V3_1_1, V5};

/// `Packet::decode` of one hex-dumped frame.
fn decode(version: ProtocolVersion, dump: &str) -> Result<Packet, DecodeError> {
    Packet::decode(hex(dump), version)
}

/// A streaming decoder for `role` fed one hex-dumped buffer.
fn stream(role: Role, version: ProtocolVersion, dump: &str) -> Result<Option<Packet>, DecodeError> {
    Decoder::new(role, version).decode(&mut BytesMut::from(&hex(dump)[..]))
}

/// Checks a refusal three ways: the exact error, the reason code, and the rule id in
/// brackets at the start of its text.
fn refused<T: std::fmt::Debug>(
    result: Result<T, DecodeError>,
    expected: DecodeError,
    code: ReasonCode,
    rule: &str,
) {
    let error = result.expect_err("must be refused");
    assert_eq!(error, expected);
    assert_eq!(error.reason_code(), code, "{error}");
    assert_eq!(error.rule(), rule, "{error}");
    let text = error.to_string();
    assert!(text.starts_with(&format!("[{rule}] ")), "{text}");
}

const MALFORMED: ReasonCode = ReasonCode::MALFORMED_PACKET;
const PROTOCOL: ReasonCode = ReasonCode::PROTOCOL_ERROR;
const NAME_INVALID: ReasonCode = ReasonCode::TOPIC_NAME_INVALID;
const FILTER_INVALID: ReasonCode = ReasonCode::TOPIC_FILTER_INVALID;
const BAD_VERSION: ReasonCode = ReasonCode::UNSUPPORTED_PROTOCOL_VERSION;

fn flags(packet: PacketType, flags: u8) -> DecodeError {
    InvalidHeaderFlags { packet, flags }
}

fn utf8(field: &'static str, error: Utf8Error) -> DecodeError {
    InvalidUtf8 { field, error }
}

fn id_zero(packet: PacketType) -> DecodeError {
    PacketIdZero { packet }
}

// Fixed header flags of every packet type but PUBLISH (MQTT 5.0 §2.1.3, Table 2-2).

#[test]
fn connect_with_flags_0001() {
    // [MQTT-2.1.3-1] CONNECT's flags are reserved as 0000.
    let result = decode(V3_1_1, "11 00");
    refused(result, flags(Connect, 0x1), MALFORMED, "MQTT-2.1.3-1");
}

#[test]
fn connack_with_flags_0001() {
    // [MQTT-2.1.3-1]
    let result = decode(V3_1_1, "21 02 00 00");
    refused(result, flags(ConnAck, 0x1), MALFORMED, "MQTT-2.1.3-1");
}

#[test]
fn puback_with_flags_0010() {
    // [MQTT-2.1.3-1] Only PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0010.
    let result = decode(V3_1_1, "42 02 00 01");
    refused(result, flags(PubAck, 0x2), MALFORMED, "MQTT-2.1.3-1");
}

#[test]
fn pubrec_with_flags_1000() {
    // [MQTT-2.1.3-1]
    let result = decode(V3_1_1, "58 02 00 01");
    refused(result, flags(PubRec, 0x8), MALFORMED, "MQTT-2.1.3-1");
}

#[test]
fn pubrel_with_flags_0000() {
    // [MQTT-3.6.1-1] PUBREL's flags MUST be 0010: 0x60 is malformed, 0x62 is right.
    let result = decode(V3_1_1, "60 02 00 01");
    refused(result, flags(PubRel, 0x0), MALFORMED, "MQTT-3.6.1-1");
}

#[test]
fn pubcomp_with_flags_0010() {
    // [MQTT-2.1.3-1]
    let result = decode(V3_1_1, "72 02 00 01");
    refused(result, flags(PubComp, 0x2), MALFORMED, "MQTT-2.1.3-1");
}

#[test]
fn subscribe_with_flags_0000() {
    // [MQTT-3.8.1-1] SUBSCRIBE's flags MUST be 0010: 0x80 is malformed, 0x82 is right.
    let result = decode(V3_1_1, "80 06 00 01 00 01 61 00");
    refused(result, flags(Subscribe, 0x0), MALFORMED, "MQTT-3.8.1-1");
}

#[test]
fn suback_with_flags_0010() {
    // [MQTT-2.1.3-1]
    let result = decode(V3_1_1, "92 03 00 01 00");
    refused(result, flags(SubAck, 0x2), MALFORMED, "MQTT-2.1.3-1");
}

#[test]
fn unsubscribe_with_flags_0000() {
    // [MQTT-3.10.1-1] UNSUBSCRIBE's flags MUST be 0010: 0xA0 is malformed, 0xA2 is right.
    let result = decode(V3_1_1, "a0 05 00 01 00 01 61");
    refused(result, flags(Unsubscribe, 0x0), MALFORMED, "MQTT-3.10.1-1");
}

#[test]
fn unsuback_with_flags_0001() {
    // [MQTT-2.1.3-1]
    let result = decode(V3_1_1, "b1 02 00 01");
    refused(result, flags(UnsubAck, 0x1), MALFORMED, "MQTT-2.1.3-1");
}

#[test]
fn pingreq_with_flags_0001() {
    // [MQTT-2.1.3-1]
    let result = decode(V3_1_1, "c1 00");
    refused(result, flags(PingReq, 0x1), MALFORMED, "MQTT-2.1.3-1");
}

#[test]
fn pingresp_with_flags_1000() {
    // [MQTT-2.1.3-1]
    let result = decode(V3_1_1, "d8 00");
    refused(result, flags(PingResp, 0x8), MALFORMED, "MQTT-2.1.3-1");
}

#[test]
fn disconnect_with_flags_0010() {
    // [MQTT-2.1.3-1], restated for DISCONNECT as [MQTT-3.14.1-1].
    let result = decode(V5, "e2 00");
    refused(result, flags(Disconnect, 0x2), MALFORMED, "MQTT-2.1.3-1");
}

#[test]
fn auth_with_flags_0001() {
    // [MQTT-2.1.3-1], restated for AUTH as [MQTT-3.15.1-1].
    let result = decode(V5, "f1 00");
    refused(result, flags(Auth, 0x1), MALFORMED, "MQTT-2.1.3-1");
}

// Remaining Length (MQTT 5.0 §1.5.5, §2.1.4) and packet types (§2.1.2).

#[test]
fn remaining_length_with_a_fifth_byte() {
    // MQTT 5.0 §1.5.5: "The maximum number of bytes in the Variable Byte Integer field
    // is four."
    let result = decode(V3_1_1, "30 ff ff ff ff 01");
    refused(result, VarintTooLong, MALFORMED, "MQTT-5.0 §1.5.5");
}

#[test]
fn remaining_length_with_a_fifth_byte_in_a_stream() {
    // MQTT 5.0 §1.5.5: refused once the fourth byte still has its continuation bit.
    let result = stream(Role::Server, V3_1_1, "30 ff ff ff ff");
    refused(result, VarintTooLong, MALFORMED, "MQTT-5.0 §1.5.5");
}

#[test]
fn remaining_length_not_minimal() {
    // [MQTT-1.5.5-1] 0 must be encoded as 00, not 80 00.
    let result = decode(V3_1_1, "c0 80 00");
    refused(result, VarintNotMinimal, MALFORMED, "MQTT-1.5.5-1");
}

#[test]
fn reserved_packet_type_0() {
    // MQTT 5.0 §2.1.2, Table 2-1: type 0 is reserved (forbidden).
    let result = decode(V5, "00 00");
    refused(result, ReservedPacketType(0), MALFORMED, "MQTT-5.0 §2.1.2");
}

#[test]
fn auth_does_not_exist_in_3_1_1() {
    // MQTT 5.0 §2.1.2 gives type 15 to AUTH; 3.1.1 §2.2.1 reserves it.
    let result = decode(V3_1_1, "f0 00");
    refused(result, ReservedPacketType(15), MALFORMED, "MQTT-5.0 §2.1.2");
}

#[test]
fn trailing_bytes_after_a_packet_body() {
    // MQTT 5.0 §2.1.4: a 3.1.1 PUBACK is its packet id; Remaining Length 3 leaves a byte.
    let result = decode(V3_1_1, "40 03 00 01 00");
    let expected = TrailingBytes { packet: PubAck };
    refused(result, expected, MALFORMED, "MQTT-5.0 §2.1.4");
}

#[test]
fn truncated_inside_a_field() {
    // MQTT 5.0 §2.1.4: the topic claims 10 bytes, the Remaining Length leaves 3.
    let result = decode(V3_1_1, "30 05 00 0a 61 62 63");
    let expected = Truncated { packet: Publish };
    refused(result, expected, MALFORMED, "MQTT-5.0 §2.1.4");
}

// UTF-8 Encoded Strings (MQTT 5.0 §1.5.4).

#[test]
fn overlong_slash_in_a_topic_name() {
    // [MQTT-1.5.4-1] '/' as the overlong C0 AF is not well-formed UTF-8: "a" C0 AF "b".
    let result = decode(V3_1_1, "30 06 00 04 61 c0 af 62");
    let expected = utf8("topic name", Utf8Error::Malformed);
    refused(result, expected, MALFORMED, "MQTT-1.5.4-1");
}

#[test]
fn surrogate_in_a_topic_name() {
    // [MQTT-1.5.4-1] ED A0 80 encodes U+D800, a surrogate.
    let result = decode(V3_1_1, "30 05 00 03 ed a0 80");
    let expected = utf8("topic name", Utf8Error::Malformed);
    refused(result, expected, MALFORMED, "MQTT-1.5.4-1");
}

#[test]
fn null_character_in_a_topic_name() {
    // [MQTT-1.5.4-2] (and [MQTT-4.7.3-2] for topics) "a\0b".
    let result = decode(V3_1_1, "30 05 00 03 61 00 62");
    let expected = utf8("topic name", Utf8Error::NullCharacter);
    refused(result, expected, MALFORMED, "MQTT-1.5.4-2");
}

#[test]
fn null_character_in_a_client_identifier() {
    // [MQTT-1.5.4-2] client id "a\0b": 10 + 2 + 3 = 15.
    let result = decode(V3_1_1, "10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 61 00 62");
    let expected = utf8("client identifier", Utf8Error::NullCharacter);
    refused(result, expected, MALFORMED, "MQTT-1.5.4-2");
}

#[test]
fn lone_continuation_byte_in_a_client_identifier() {
    // [MQTT-1.5.4-1] 0x80 cannot start a character: client id "a" 80, 10 + 2 + 2 = 14.
    let result = decode(V3_1_1, "10 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 61 80");
    let expected = utf8("client identifier", Utf8Error::Malformed);
    refused(result, expected, MALFORMED, "MQTT-1.5.4-1");
}

// Topic Names (MQTT 5.0 §3.3.2.1, §4.7).

#[test]
fn topic_name_with_single_level_wildcard() {
    // [MQTT-3.3.2-2], [MQTT-4.7.0-1] "a/+"
    let result = decode(V3_1_1, "30 05 00 03 61 2f 2b");
    let expected = InvalidTopicName(TopicError::WildcardInName);
    refused(result, expected, NAME_INVALID, "MQTT-4.7.0-1");
}

#[test]
fn topic_name_with_multi_level_wildcard() {
    // [MQTT-3.3.2-2], [MQTT-4.7.0-1] "a/#"
    let result = decode(V3_1_1, "30 05 00 03 61 2f 23");
    let expected = InvalidTopicName(TopicError::WildcardInName);
    refused(result, expected, NAME_INVALID, "MQTT-4.7.0-1");
}

#[test]
fn empty_topic_name_in_3_1_1() {
    // [MQTT-4.7.3-1] Topic Names are at least one character long.
    let result = decode(V3_1_1, "30 02 00 00");
    let expected = InvalidTopicName(TopicError::Empty);
    refused(result, expected, NAME_INVALID, "MQTT-4.7.3-1");
}

#[test]
fn empty_topic_name_without_topic_alias_in_v5() {
    // MQTT 5.0 §3.3.2.1: "It is a Protocol Error if the Topic Name is zero length and
    // there is no Topic Alias."
    let result = decode(V5, "30 03 00 00 00");
    refused(
        result,
        EmptyTopicWithoutAlias,
        PROTOCOL,
        "MQTT-5.0 §3.3.2.1",
    );
}

#[test]
fn empty_topic_name_with_topic_alias_in_v5_is_accepted() {
    // MQTT 5.0 §3.3.2.3.4: a zero-length Topic Name with Topic Alias 1: 2 + 1 + 3 = 6.
    let result = decode(V5, "30 06 00 00 03 23 00 01");
    let Ok(Packet::Publish(publish)) = result else {
        panic!("must be accepted: {result:?}");
    };
    assert_eq!(publish.topic, "");
    assert_eq!(publish.properties.topic_alias.map(|a| a.get()), Some(1));
}

#[test]
fn publish_with_topic_alias_0() {
    // [MQTT-3.3.2-8]; §3.3.4 answers with 0x94 Topic Alias invalid.
    let result = decode(V5, "30 07 00 01 61 03 23 00 00");
    let code = ReasonCode::TOPIC_ALIAS_INVALID;
    refused(result, TopicAliasZero, code, "MQTT-3.3.2-8");
}

// Topic Filters (MQTT 5.0 §4.7, §4.8.2), in SUBSCRIBE packets with packet id 1.

#[test]
fn filter_with_multi_level_wildcard_before_the_last_level() {
    // [MQTT-4.7.1-1] "a/#/b": 2 + 2 + 5 + 1 = 10.
    let result = decode(V3_1_1, "82 0a 00 01 00 05 61 2f 23 2f 62 00");
    let expected = InvalidTopicFilter(TopicError::MisplacedMultiLevelWildcard);
    refused(result, expected, FILTER_INVALID, "MQTT-4.7.1-1");
}

#[test]
fn filter_with_multi_level_wildcard_inside_a_level() {
    // [MQTT-4.7.1-1] "a#"
    let result = decode(V3_1_1, "82 07 00 01 00 02 61 23 00");
    let expected = InvalidTopicFilter(TopicError::MisplacedMultiLevelWildcard);
    refused(result, expected, FILTER_INVALID, "MQTT-4.7.1-1");
}

#[test]
fn filter_with_single_level_wildcard_inside_a_level() {
    // [MQTT-4.7.1-2] "a+/b"
    let result = decode(V3_1_1, "82 09 00 01 00 04 61 2b 2f 62 00");
    let expected = InvalidTopicFilter(TopicError::MisplacedSingleLevelWildcard);
    refused(result, expected, FILTER_INVALID, "MQTT-4.7.1-2");
}

#[test]
fn empty_filter() {
    // [MQTT-4.7.3-1] ""
    let result = decode(V3_1_1, "82 05 00 01 00 00 00");
    let expected = InvalidTopicFilter(TopicError::Empty);
    refused(result, expected, FILTER_INVALID, "MQTT-4.7.3-1");
}

#[test]
fn shared_filter_with_empty_share_name() {
    // [MQTT-4.8.2-1] "$share//x": 2 + 1 + 2 + 9 + 1 = 15.
    let result = decode(V5, "82 0f 00 01 00 00 09 24 73 68 61 72 65 2f 2f 78 00");
    let expected = InvalidTopicFilter(TopicError::EmptyShareName);
    refused(result, expected, FILTER_INVALID, "MQTT-4.8.2-1");
}

#[test]
fn shared_filter_without_a_filter() {
    // [MQTT-4.8.2-2] "$share/g": the ShareName must be followed by '/' and a filter.
    let result = decode(V5, "82 0e 00 01 00 00 08 24 73 68 61 72 65 2f 67 00");
    let expected = InvalidTopicFilter(TopicError::MissingSharedFilter);
    refused(result, expected, FILTER_INVALID, "MQTT-4.8.2-2");
}

// Packet Identifiers (MQTT 5.0 §2.2.1).

#[test]
fn publish_qos1_with_packet_id_0() {
    // [MQTT-2.2.1-3]
    let result = decode(V3_1_1, "32 05 00 01 61 00 00");
    refused(result, id_zero(Publish), PROTOCOL, "MQTT-2.2.1-3");
}

#[test]
fn subscribe_with_packet_id_0() {
    // [MQTT-2.2.1-3]
    let result = decode(V3_1_1, "82 06 00 00 00 01 61 00");
    refused(result, id_zero(Subscribe), PROTOCOL, "MQTT-2.2.1-3");
}

#[test]
fn unsubscribe_with_packet_id_0() {
    // [MQTT-2.2.1-3]
    let result = decode(V3_1_1, "a2 05 00 00 00 01 61");
    refused(result, id_zero(Unsubscribe), PROTOCOL, "MQTT-2.2.1-3");
}

#[test]
fn puback_with_packet_id_0() {
    // [MQTT-2.2.1-5]: a PUBACK carries the id of its PUBLISH, never 0 [MQTT-2.2.1-3].
    let result = decode(V3_1_1, "40 02 00 00");
    refused(result, id_zero(PubAck), PROTOCOL, "MQTT-2.2.1-3");
}

// PUBLISH fixed header (MQTT 5.0 §3.3.1).

#[test]
fn publish_with_qos_3() {
    // [MQTT-3.3.1-4] both QoS bits set.
    let result = decode(V3_1_1, "36 05 00 01 61 00 01");
    refused(result, InvalidQoS, MALFORMED, "MQTT-3.3.1-4");
}

#[test]
fn publish_qos0_with_dup() {
    // [MQTT-3.3.1-2]
    let result = decode(V3_1_1, "38 03 00 01 61");
    refused(result, DupOnQoS0, PROTOCOL, "MQTT-3.3.1-2");
}

// CONNECT (MQTT 5.0 §3.1.2; 3.1.1 §3.1.2).

/// A 3.1.1 CONNECT with the connect flags `flags` and client id "c": 10 + 3 = 13.
fn connect_3_1_1(flags: &str) -> String {
    format!("10 0d 00 04 4d 51 54 54 04 {flags} 00 3c 00 01 63")
}

#[test]
fn connect_reserved_flag_set() {
    // [MQTT-3.1.2-3]
    let result = decode(V3_1_1, &connect_3_1_1("03"));
    refused(result, ConnectReservedFlag, MALFORMED, "MQTT-3.1.2-3");
}

#[test]
fn connect_will_qos_without_will_flag() {
    // [MQTT-3.1.2-11] flags 0000 1010: Will QoS 1, Will Flag 0.
    let result = decode(V3_1_1, &connect_3_1_1("0a"));
    refused(result, WillQoSWithoutWill, MALFORMED, "MQTT-3.1.2-11");
}

#[test]
fn connect_will_retain_without_will_flag() {
    // [MQTT-3.1.2-13] flags 0010 0010: Will Retain 1, Will Flag 0.
    let result = decode(V3_1_1, &connect_3_1_1("22"));
    refused(result, WillRetainWithoutWill, MALFORMED, "MQTT-3.1.2-13");
}

#[test]
fn connect_will_qos_3() {
    // [MQTT-3.1.2-12] flags 0001 1110: Will Flag with Will QoS 3.
    let result = decode(V3_1_1, &connect_3_1_1("1e"));
    refused(result, InvalidWillQoS, MALFORMED, "MQTT-3.1.2-12");
}

#[test]
fn connect_3_1_1_password_without_user_name() {
    // 3.1.1 [MQTT-3.1.2-22]: "If the User Name Flag is set to 0, the Password Flag MUST
    // be set to 0." Flags 0100 0010.
    let result = decode(V3_1_1, &connect_3_1_1("42"));
    refused(
        result,
        PasswordWithoutUsername,
        MALFORMED,
        "MQTT-3.1.2-22 of 3.1.1",
    );
}

#[test]
fn connect_v5_password_without_user_name_is_accepted() {
    // MQTT 5.0 §3.1.2.9: "This version of the protocol allows the sending of a Password
    // with no User Name". 10 + 1 (no properties) + 3 + 4 (password "pw") = 18.
    let result = decode(
        V5,
        "10 12 00 04 4d 51 54 54 05 42 00 3c 00 00 01 63 00 02 70 77",
    );
    let Ok(Packet::Connect(connect)) = result else {
        panic!("must be accepted: {result:?}");
    };
    assert_eq!(connect.username, None);
    assert_eq!(connect.password.as_deref(), Some(&b"pw"[..]));
}

#[test]
fn connect_with_unknown_protocol_name() {
    // [MQTT-3.1.2-1] "MQTX"
    let result = decode(V3_1_1, "10 0d 00 04 4d 51 54 58 04 02 00 3c 00 01 63");
    refused(result, InvalidProtocolName, BAD_VERSION, "MQTT-3.1.2-1");
}

#[test]
fn connect_with_protocol_level_6() {
    // [MQTT-3.1.2-2]
    let result = decode(V3_1_1, "10 0d 00 04 4d 51 54 54 06 02 00 3c 00 01 63");
    refused(
        result,
        UnsupportedProtocolLevel(6),
        BAD_VERSION,
        "MQTT-3.1.2-2",
    );
}

#[test]
fn connect_mqisdp_with_level_4() {
    // [MQTT-3.1.2-2] "MQIsdp" exists only at level 3 (level 4 is "MQTT"); as in
    // Mosquitto, the level is what is refused. 12 + 3 = 15.
    let result = decode(V3_1_1, "10 0f 00 06 4d 51 49 73 64 70 04 02 00 3c 00 01 63");
    refused(
        result,
        UnsupportedProtocolLevel(4),
        BAD_VERSION,
        "MQTT-3.1.2-2",
    );
}

// Properties (MQTT 5.0 §2.2.2 and each property's definition in §3).

const PROPERTY_RULES: &str = "MQTT-5.0 §2.2.2.2 and the property's definition in §3";

/// A v5 CONNECT with the property bytes `properties` (a hex dump) and client id "c".
fn connect_v5_with(properties: &str) -> String {
    let len = hex(properties).len();
    let remaining = 10 + 1 + len + 3;
    assert!(remaining < 128);
    format!("10 {remaining:02x} 00 04 4d 51 54 54 05 02 00 3c {len:02x} {properties} 00 01 63")
}

#[test]
fn connect_with_session_expiry_interval_twice() {
    // MQTT 5.0 §3.1.2.11.2: "It is a Protocol Error to include the Session Expiry
    // Interval more than once."
    let result = decode(V5, &connect_v5_with("11 00 00 00 0a 11 00 00 00 14"));
    let expected = DuplicateProperty(PropertyId::SessionExpiryInterval);
    refused(result, expected, PROTOCOL, PROPERTY_RULES);
}

#[test]
fn connect_with_unknown_property_0x7f() {
    // MQTT 5.0 §2.2.2.2: an Identifier not valid for the packet is a Malformed Packet.
    let result = decode(V5, &connect_v5_with("7f 00"));
    refused(
        result,
        UnknownProperty(0x7f),
        MALFORMED,
        "MQTT-5.0 §2.2.2.2",
    );
}

#[test]
fn connect_with_topic_alias() {
    // MQTT 5.0 §2.2.2.2: Topic Alias (0x23) belongs to PUBLISH only.
    let result = decode(V5, &connect_v5_with("23 00 01"));
    let property = PropertyId::TopicAlias;
    let expected = PropertyNotAllowed {
        property,
        packet: Connect,
    };
    refused(result, expected, MALFORMED, "MQTT-5.0 §2.2.2.2");
}

#[test]
fn publish_with_reason_string() {
    // MQTT 5.0 §2.2.2.2: Reason String (0x1F) is not a PUBLISH property.
    // 3 (topic "a") + 1 + 4 (1f 00 01 "x") = 8.
    let result = decode(V5, "30 08 00 01 61 04 1f 00 01 78");
    let property = PropertyId::ReasonString;
    let expected = PropertyNotAllowed {
        property,
        packet: Publish,
    };
    refused(result, expected, MALFORMED, "MQTT-5.0 §2.2.2.2");
}

#[test]
fn connect_with_receive_maximum_0() {
    // MQTT 5.0 §3.1.2.11.3: "It is a Protocol Error to include the Receive Maximum value
    // more than once or for it to have the value 0."
    let result = decode(V5, &connect_v5_with("21 00 00"));
    let expected = InvalidPropertyValue(PropertyId::ReceiveMaximum);
    refused(result, expected, PROTOCOL, PROPERTY_RULES);
}

#[test]
fn connect_with_request_problem_information_2() {
    // MQTT 5.0 §3.1.2.11.7: a value other than 0 or 1 is a Protocol Error.
    let result = decode(V5, &connect_v5_with("17 02"));
    let expected = InvalidPropertyValue(PropertyId::RequestProblemInformation);
    refused(result, expected, PROTOCOL, PROPERTY_RULES);
}

#[test]
fn connack_with_maximum_qos_2() {
    // MQTT 5.0 §3.2.2.3.4: Maximum QoS is 0 or 1; its absence means 2.
    let result = decode(V5, "20 05 00 00 02 24 02");
    let expected = InvalidPropertyValue(PropertyId::MaximumQoS);
    refused(result, expected, PROTOCOL, PROPERTY_RULES);
}

// A v5 QoS 0 PUBLISH to "a" carrying Subscription Identifier 1: 3 + 1 + 2 = 6.
const PUBLISH_WITH_SUBSCRIPTION_ID: &str = "30 06 00 01 61 02 0b 01";

#[test]
fn client_publish_with_subscription_identifier() {
    // [MQTT-3.3.4-6] A PUBLISH sent from a Client to a Server MUST NOT contain one.
    let result = stream(Role::Server, V5, PUBLISH_WITH_SUBSCRIPTION_ID);
    refused(result, SubscriptionIdFromClient, PROTOCOL, "MQTT-3.3.4-6");
}

#[test]
fn server_publish_with_subscription_identifier_is_accepted() {
    // [MQTT-3.3.4-3]: the Server sends the identifiers of the matching subscriptions.
    let result = stream(Role::Client, V5, PUBLISH_WITH_SUBSCRIPTION_ID);
    let Ok(Some(Packet::Publish(publish))) = result else {
        panic!("must be accepted: {result:?}");
    };
    let expected = vec![SubscriptionId::new(1).unwrap()];
    assert_eq!(publish.properties.subscription_identifiers, expected);
}

#[test]
fn subscribe_with_subscription_identifier_0() {
    // MQTT 5.0 §3.8.2.1.2: "It is a Protocol Error if the Subscription Identifier has a
    // value of 0." 2 + 1 + 2 + 3 + 1 = 9.
    let result = decode(V5, "82 09 00 01 02 0b 00 00 01 61 00");
    refused(result, SubscriptionIdZero, PROTOCOL, "MQTT-5.0 §3.8.2.1.2");
}

// SUBSCRIBE and UNSUBSCRIBE payloads (MQTT 5.0 §3.8.3, §3.10.3).

/// A v5 SUBSCRIBE to "a" with the options byte `options`: 2 + 1 + 3 + 1 = 7.
fn subscribe_v5_options(options: u8) -> String {
    format!("82 07 00 01 00 00 01 61 {options:02x}")
}

#[test]
fn subscribe_without_a_filter() {
    // [MQTT-3.8.3-2]
    let result = decode(V3_1_1, "82 02 00 01");
    refused(result, EmptySubscribe, PROTOCOL, "MQTT-3.8.3-2");
}

#[test]
fn unsubscribe_without_a_filter() {
    // [MQTT-3.10.3-2]
    let result = decode(V3_1_1, "a2 02 00 01");
    refused(result, EmptyUnsubscribe, PROTOCOL, "MQTT-3.10.3-2");
}

#[test]
fn subscription_options_bit_6_in_v5() {
    // [MQTT-3.8.3-5] bits 6 and 7 are reserved.
    let result = decode(V5, &subscribe_v5_options(0x40));
    refused(
        result,
        SubscriptionOptionsReserved,
        MALFORMED,
        "MQTT-3.8.3-5",
    );
}

#[test]
fn subscription_options_bit_7_in_v5() {
    // [MQTT-3.8.3-5]
    let result = decode(V5, &subscribe_v5_options(0x80));
    refused(
        result,
        SubscriptionOptionsReserved,
        MALFORMED,
        "MQTT-3.8.3-5",
    );
}

#[test]
fn subscription_options_bits_2_to_7_in_3_1_1() {
    // [MQTT-3.8.3-5]; 3.1.1 [MQTT-3-8.3-4]: in 3.1.1 only the two QoS bits exist.
    for bit in 2..8 {
        let result = decode(V3_1_1, &format!("82 06 00 01 00 01 61 {:02x}", 1u8 << bit));
        refused(
            result,
            SubscriptionOptionsReserved,
            MALFORMED,
            "MQTT-3.8.3-5",
        );
    }
}

#[test]
fn subscription_options_qos_3() {
    // MQTT 5.0 §3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3."
    let result = decode(V5, &subscribe_v5_options(0x03));
    refused(
        result,
        InvalidSubscriptionQoS,
        PROTOCOL,
        "MQTT-5.0 §3.8.3.1",
    );
}

#[test]
fn subscription_options_retain_handling_3() {
    // MQTT 5.0 §3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
    let result = decode(V5, &subscribe_v5_options(0x30));
    refused(result, InvalidRetainHandling, PROTOCOL, "MQTT-5.0 §3.8.3.1");
}

#[test]
fn no_local_on_a_shared_subscription() {
    // [MQTT-3.8.3-4] "$share/g/a" with No Local: 2 + 1 + 2 + 10 + 1 = 16.
    let result = decode(V5, "82 10 00 01 00 00 0a 24 73 68 61 72 65 2f 67 2f 61 04");
    refused(
        result,
        NoLocalOnSharedSubscription,
        PROTOCOL,
        "MQTT-3.8.3-4",
    );
}

// Packets without a body.

#[test]
fn pingreq_with_a_body() {
    // MQTT 5.0 §3.12.1: PINGREQ's Remaining Length is 0.
    let result = decode(V5, "c0 01 00");
    let expected = UnexpectedBody { packet: PingReq };
    refused(result, expected, MALFORMED, "MQTT-5.0 §3.12.1");
}

#[test]
fn disconnect_3_1_1_with_a_body() {
    // 3.1.1 §3.14.1: DISCONNECT's Remaining Length is 0.
    let result = decode(V3_1_1, "e0 01 00");
    let expected = UnexpectedBody { packet: Disconnect };
    refused(result, expected, MALFORMED, "MQTT-3.1.1 §3.14.1");
}

#[test]
fn disconnect_v5_with_a_body_is_accepted() {
    // MQTT 5.0 §3.14.2.1: a Reason Code, 0x04 Disconnect with Will Message.
    let result = decode(V5, "e0 01 04");
    let Ok(Packet::Disconnect(disconnect)) = result else {
        panic!("must be accepted: {result:?}");
    };
    let expected = ReasonCode::DISCONNECT_WITH_WILL_MESSAGE;
    assert_eq!(disconnect.reason_code, expected);
}

// Reason codes (MQTT 5.0 §2.4 and each packet's table).

#[test]
fn pubrel_with_reason_0x10() {
    // [MQTT-3.6.2-1]: PUBREL's reason codes are 0x00 and 0x92 only (Table 3-6).
    let result = decode(V5, "62 03 00 01 10");
    let expected = InvalidReasonCode {
        packet: PubRel,
        code: 0x10,
    };
    refused(result, expected, MALFORMED, "MQTT-5.0 §2.4");
}

#[test]
fn suback_with_reason_0x03() {
    // [MQTT-3.9.3-2]: Table 3-8 has no 0x03, as QoS 3 cannot be granted.
    let result = decode(V5, "90 04 00 01 00 03");
    let expected = InvalidReasonCode {
        packet: SubAck,
        code: 0x03,
    };
    refused(result, expected, MALFORMED, "MQTT-5.0 §2.4");
}

// CONNACK (MQTT 5.0 §3.2.2).

#[test]
fn connack_3_1_1_session_present_with_return_code_5() {
    // [MQTT-3.2.2-6] (3.1.1 [MQTT-3.2.2-4]): a refusal carries Session Present 0.
    let result = decode(V3_1_1, "20 02 01 05");
    refused(result, SessionPresentOnFailure, PROTOCOL, "MQTT-3.2.2-6");
}

#[test]
fn connack_with_reserved_acknowledge_flags() {
    // [MQTT-3.2.2-1] bits 7-1 of the Connect Acknowledge Flags are reserved.
    let result = decode(V5, "20 03 02 00 00");
    refused(result, ConnAckReservedFlags, MALFORMED, "MQTT-3.2.2-1");
}

// Direction (MQTT 5.0 §2.1.2, Table 2-1).

#[test]
fn server_receives_connack() {
    // MQTT 5.0 §2.1.2: CONNACK flows from Server to Client only.
    let result = stream(Role::Server, V3_1_1, "20 02 00 00");
    refused(
        result,
        UnexpectedPacket(ConnAck),
        PROTOCOL,
        "MQTT-5.0 §2.1.2",
    );
}

#[test]
fn client_receives_subscribe() {
    // MQTT 5.0 §2.1.2: SUBSCRIBE flows from Client to Server only.
    let result = stream(Role::Client, V3_1_1, "82 06 00 01 00 01 61 00");
    refused(
        result,
        UnexpectedPacket(Subscribe),
        PROTOCOL,
        "MQTT-5.0 §2.1.2",
    );
}

// Maximum Packet Size (MQTT 5.0 §3.2.2.3.6).

#[test]
fn packet_claiming_256_mb_is_refused_from_its_fixed_header() {
    // [MQTT-3.2.2-15]; the Server answers 0x95 Packet too large. The five bytes claim a
    // Remaining Length of 268,435,455: 5 + 268,435,455 bytes in all.
    let mut decoder = Decoder::new(Role::Server, V5).with_max_packet_size(1024);
    let mut buf = BytesMut::from(&hex("30 ff ff ff 7f")[..]);
    let result = decoder.decode(&mut buf);
    let expected = PacketTooLarge {
        size: 268_435_460,
        max: 1024,
    };
    refused(
        result,
        expected,
        ReasonCode::PACKET_TOO_LARGE,
        "MQTT-3.2.2-15",
    );
    // Refused before anything was reserved for the body.
    assert!(buf.capacity() < 4096, "capacity grew to {}", buf.capacity());
    assert_eq!(buf.len(), 5);
}
