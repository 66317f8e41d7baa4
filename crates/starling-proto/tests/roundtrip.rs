//! Property tests for the packet codec over every packet type and every protocol
//! version: encode then decode is the identity, `encoded_len` is exact, the
//! streaming [`Decoder`] waits on every strict prefix and re-frames a stream cut
//! at random points, malformed input is an error and never a panic, the maximum
//! packet size is enforced from the fixed header alone, and a decoded payload
//! shares the receive buffer.
//!
//! The generators build only packets the model allows in the version at hand:
//! for 3.x every v5-only field stays at its default (no properties, reason code
//! Success, no UNSUBACK codes, no AUTH, only the QoS in subscription options).

use std::fmt::Debug;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::Union;
use proptest::test_runner::{TestCaseError, TestRunner};
use starling_proto::property::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};
use starling_proto::{
    Auth, ConnAck, Connect, DecodeError, Decoder, Delivery, Disconnect, MqttString, Packet,
    PacketId, PacketType, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS,
    ReasonCode, RetainHandling, Role, SubAck, Subscribe, SubscriptionId, SubscriptionOptions,
    TopicAlias, TopicFilter, TopicName, UnsubAck, Unsubscribe, UserProperty, Will, VARINT_MAX,
};

// ---------------------------------------------------------------------------
// Strings, topics and payloads

/// Characters outside ASCII that strings and topics should meet: 2-, 3- and
/// 4-byte UTF-8, and the characters topics give a meaning to.
const TEXT_EXTRA: &[char] = &[
    'é', 'ß', 'Ω', '日', '本', '€', '🦀', ' ', '$', '/', '+', '#',
];
const LEVEL_EXTRA: &[char] = &['é', 'Ω', '日', '本', '€', '🦀', ' ', '$', '-', '_', '0'];

fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::char::range('a', 'z'),
        2 => select(TEXT_EXTRA),
        1 => any::<char>().prop_filter("U+0000 is not allowed [MQTT-1.5.4-2]", |c| *c != '\0'),
    ]
}

fn string() -> impl Strategy<Value = MqttString> {
    vec(text_char(), 0..12).prop_map(|chars| {
        MqttString::try_from(String::from_iter(chars)).expect("short and without U+0000")
    })
}

/// A character of a topic level: no separator, no wildcard, no U+0000.
fn level_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::char::range('a', 'z'),
        2 => select(LEVEL_EXTRA),
        1 => any::<char>().prop_filter("not '/', '+', '#' or U+0000", |c| {
            !matches!(c, '\0' | '/' | '+' | '#')
        }),
    ]
}

/// A topic level; empty levels are legal (§4.7.1.1).
fn level() -> impl Strategy<Value = String> {
    vec(level_char(), 0..6).prop_map(String::from_iter)
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    (prop::bool::weighted(0.2), vec(level(), 1..5)).prop_filter_map(
        "a topic name is non-empty",
        |(system, levels)| {
            let name = levels.join("/");
            let name = if system { format!("${name}") } else { name };
            TopicName::try_from(name.as_str()).ok()
        },
    )
}

/// Filters with `+` levels, a trailing `#`, `$` first levels and
/// `$share/{group}/` prefixes.
fn topic_filter() -> impl Strategy<Value = TopicFilter> {
    let level = prop_oneof![4 => level(), 1 => Just("+".to_owned())];
    (
        prop::bool::weighted(0.1),
        vec(level, 0..5),
        prop::bool::weighted(0.3),
        option::weighted(0.2, vec(level_char(), 1..6).prop_map(String::from_iter)),
    )
        .prop_filter_map(
            "a valid topic filter",
            |(system, mut levels, multi_level, group)| {
                if multi_level {
                    levels.push("#".to_owned());
                }
                let mut filter = levels.join("/");
                if system {
                    filter.insert(0, '$');
                }
                if let Some(group) = group {
                    filter = format!("$share/{group}/{filter}");
                }
                TopicFilter::try_from(filter.as_str()).ok()
            },
        )
}

/// Mostly 0..300 bytes, now and then a few KB.
fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        24 => vec(any::<u8>(), 0..300),
        1 => vec(any::<u8>(), 1000..5000),
    ]
    .prop_map(Bytes::from)
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

// ---------------------------------------------------------------------------
// Small values

fn packet_id() -> impl Strategy<Value = PacketId> {
    prop_oneof![Just(1), Just(u16::MAX), 1..=u16::MAX]
        .prop_map(|id| PacketId::new(id).expect("non-zero"))
}

fn delivery() -> impl Strategy<Value = Delivery> {
    prop_oneof![
        Just(Delivery::AtMostOnce),
        packet_id().prop_map(Delivery::AtLeastOnce),
        packet_id().prop_map(Delivery::ExactlyOnce),
    ]
}

fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn non_zero_u16() -> impl Strategy<Value = NonZeroU16> {
    (1..=u16::MAX).prop_map(|n| NonZeroU16::new(n).expect("non-zero"))
}

fn non_zero_u32() -> impl Strategy<Value = NonZeroU32> {
    (1..=u32::MAX).prop_map(|n| NonZeroU32::new(n).expect("non-zero"))
}

/// Identifiers of every Variable Byte Integer length.
fn subscription_id() -> impl Strategy<Value = SubscriptionId> {
    prop_oneof![
        1..128u32,
        128..16_384u32,
        16_384..2_097_152u32,
        2_097_152..=VARINT_MAX,
    ]
    .prop_map(|id| SubscriptionId::new(id).expect("in 1..=VARINT_MAX"))
}

fn topic_alias() -> impl Strategy<Value = TopicAlias> {
    (1..=u16::MAX).prop_map(|alias| TopicAlias::new(alias).expect("non-zero"))
}

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    vec(
        (string(), string()).prop_map(|(name, value)| UserProperty { name, value }),
        0..=3,
    )
}

/// A reason code MQTT 5.0 allows in `packet`; Success before 5.0.
fn reason_code(version: ProtocolVersion, packet: PacketType) -> BoxedStrategy<ReasonCode> {
    if version.is_v5() {
        select(ReasonCode::allowed_in(packet).expect("the packet carries reason codes"))
            .prop_map(ReasonCode)
            .boxed()
    } else {
        Just(ReasonCode::SUCCESS).boxed()
    }
}

/// `strategy` in MQTT 5.0; the default value, which 3.x has no room for, before.
fn v5_only<T, S>(version: ProtocolVersion, strategy: S) -> BoxedStrategy<T>
where
    T: Default + Clone + Debug + 'static,
    S: Strategy<Value = T> + 'static,
{
    if version.is_v5() {
        strategy.boxed()
    } else {
        Just(T::default()).boxed()
    }
}

// ---------------------------------------------------------------------------
// v5 properties: every property of each struct present or absent

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        option::of(any::<u32>()),
        option::of(non_zero_u16()),
        option::of(non_zero_u32()),
        option::of(any::<u16>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(string()),
        option::of(binary()),
        user_properties(),
    )
        .prop_map(
            |(a, b, c, d, e, f, g, h, user_properties)| ConnectProperties {
                session_expiry_interval: a,
                receive_maximum: b,
                maximum_packet_size: c,
                topic_alias_maximum: d,
                request_response_information: e,
                request_problem_information: f,
                authentication_method: g,
                authentication_data: h,
                user_properties,
            },
        )
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        option::of(any::<u32>()),
        option::of(any::<bool>()),
        option::of(any::<u32>()),
        option::of(string()),
        option::of(topic_name()),
        option::of(binary()),
        user_properties(),
    )
        .prop_map(|(a, b, c, d, e, f, user_properties)| WillProperties {
            will_delay_interval: a,
            payload_format_indicator: b,
            message_expiry_interval: c,
            content_type: d,
            response_topic: e,
            correlation_data: f,
            user_properties,
        })
}

fn conn_ack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let first = (
        option::of(any::<u32>()),
        option::of(non_zero_u16()),
        // Maximum QoS is 0 or 1; its absence means 2 (MQTT 5.0 §3.2.2.3.4).
        option::of(select(vec![QoS::AtMostOnce, QoS::AtLeastOnce])),
        option::of(any::<bool>()),
        option::of(non_zero_u32()),
        option::of(string()),
        option::of(any::<u16>()),
        option::of(string()),
        option::of(any::<bool>()),
    );
    let second = (
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<u16>()),
        option::of(string()),
        option::of(string()),
        option::of(string()),
        option::of(binary()),
        user_properties(),
    );
    (first, second).prop_map(
        |((a, b, c, d, e, f, g, h, i), (j, k, l, m, n, o, p, user_properties))| ConnAckProperties {
            session_expiry_interval: a,
            receive_maximum: b,
            maximum_qos: c,
            retain_available: d,
            maximum_packet_size: e,
            assigned_client_identifier: f,
            topic_alias_maximum: g,
            reason_string: h,
            wildcard_subscription_available: i,
            subscription_identifiers_available: j,
            shared_subscription_available: k,
            server_keep_alive: l,
            response_information: m,
            server_reference: n,
            authentication_method: o,
            authentication_data: p,
            user_properties,
        },
    )
}

/// Subscription Identifiers only in a PUBLISH from the server [MQTT-3.3.4-6].
fn publish_properties(from_server: bool) -> impl Strategy<Value = PublishProperties> {
    let subscription_ids = if from_server {
        vec(subscription_id(), 0..4).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (
        option::of(any::<bool>()),
        option::of(any::<u32>()),
        option::of(topic_alias()),
        option::of(topic_name()),
        option::of(binary()),
        user_properties(),
        subscription_ids,
        option::of(string()),
    )
        .prop_map(
            |(a, b, c, d, e, user_properties, subscription_identifiers, f)| PublishProperties {
                payload_format_indicator: a,
                message_expiry_interval: b,
                topic_alias: c,
                response_topic: d,
                correlation_data: e,
                user_properties,
                subscription_identifiers,
                content_type: f,
            },
        )
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (option::of(string()), user_properties()).prop_map(|(reason_string, user_properties)| {
        AckProperties {
            reason_string,
            user_properties,
        }
    })
}

fn subscribe_properties() -> impl Strategy<Value = SubscribeProperties> {
    (option::of(subscription_id()), user_properties()).prop_map(
        |(subscription_identifier, user_properties)| SubscribeProperties {
            subscription_identifier,
            user_properties,
        },
    )
}

fn unsubscribe_properties() -> impl Strategy<Value = UnsubscribeProperties> {
    user_properties().prop_map(|user_properties| UnsubscribeProperties { user_properties })
}

fn disconnect_properties() -> impl Strategy<Value = DisconnectProperties> {
    (
        option::of(any::<u32>()),
        option::of(string()),
        user_properties(),
        option::of(string()),
    )
        .prop_map(
            |(session_expiry_interval, reason_string, user_properties, server_reference)| {
                DisconnectProperties {
                    session_expiry_interval,
                    reason_string,
                    user_properties,
                    server_reference,
                }
            },
        )
}

fn auth_properties() -> impl Strategy<Value = AuthProperties> {
    (
        option::of(string()),
        option::of(binary()),
        option::of(string()),
        user_properties(),
    )
        .prop_map(
            |(authentication_method, authentication_data, reason_string, user_properties)| {
                AuthProperties {
                    authentication_method,
                    authentication_data,
                    reason_string,
                    user_properties,
                }
            },
        )
}

// ---------------------------------------------------------------------------
// Packets

fn connect(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let will = (
        topic_name(),
        payload(),
        qos(),
        any::<bool>(),
        v5_only(version, will_properties()),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        });
    (
        any::<bool>(),
        any::<u16>(),
        string(),
        option::of(will),
        option::of(string()),
        option::of(binary()),
        v5_only(version, connect_properties()),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // [MQTT-3.1.2-22]: before 5.0, no password without a user name.
                let password = password.filter(|_| version.is_v5() || username.is_some());
                Packet::Connect(Box::new(Connect {
                    protocol: version,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
        .boxed()
}

fn conn_ack(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let code = if version.is_v5() {
        reason_code(version, PacketType::ConnAck)
    } else {
        (0..=5u8)
            .prop_map(|code| ReasonCode::from_connect_return_code(code).expect("0 to 5"))
            .boxed()
    };
    (any::<bool>(), code, v5_only(version, conn_ack_properties()))
        .prop_map(|(session_present, reason_code, properties)| {
            Packet::ConnAck(ConnAck {
                // [MQTT-3.2.2-6]: a refused connection has no session.
                session_present: session_present && !reason_code.is_error(),
                reason_code,
                properties: properties.into(),
            })
        })
        .boxed()
}

fn publish(version: ProtocolVersion, from_server: bool) -> BoxedStrategy<Packet> {
    (
        any::<bool>(),
        delivery(),
        any::<bool>(),
        topic_name(),
        prop::bool::weighted(0.3),
        payload(),
        v5_only(version, publish_properties(from_server)),
    )
        .prop_map(
            |(dup, delivery, retain, topic, alias_only, payload, properties)| {
                // An empty topic only stands beside a Topic Alias (§3.3.2.3.4), which
                // 3.x does not have.
                let topic = if alias_only && properties.topic_alias.is_some() {
                    TopicName::empty()
                } else {
                    topic
                };
                Packet::Publish(Publish {
                    // [MQTT-3.3.1-2]: no DUP on QoS 0.
                    dup: dup && delivery.qos() != QoS::AtMostOnce,
                    delivery,
                    retain,
                    topic,
                    payload,
                    properties: properties.into(),
                })
            },
        )
        .boxed()
}

fn publish_response(version: ProtocolVersion, packet: PacketType) -> BoxedStrategy<Packet> {
    (
        packet_id(),
        reason_code(version, packet),
        v5_only(version, ack_properties()),
    )
        .prop_map(move |(packet_id, reason_code, properties)| match packet {
            PacketType::PubAck => Packet::PubAck(PubAck {
                packet_id,
                reason_code,
                properties,
            }),
            PacketType::PubRec => Packet::PubRec(PubRec {
                packet_id,
                reason_code,
                properties,
            }),
            PacketType::PubRel => Packet::PubRel(PubRel {
                packet_id,
                reason_code,
                properties,
            }),
            PacketType::PubComp => Packet::PubComp(PubComp {
                packet_id,
                reason_code,
                properties,
            }),
            other => unreachable!("{other} is not a response to PUBLISH"),
        })
        .boxed()
}

const RETAIN_HANDLING: &[RetainHandling] = &[
    RetainHandling::SendAtSubscribe,
    RetainHandling::SendAtSubscribeIfNew,
    RetainHandling::DoNotSend,
];

fn subscribe(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let entry = (
        topic_filter(),
        qos(),
        any::<bool>(),
        any::<bool>(),
        select(RETAIN_HANDLING),
    )
        .prop_map(
            move |(filter, qos, no_local, retain_as_published, retain_handling)| {
                let options = if version.is_v5() {
                    SubscriptionOptions {
                        qos,
                        // [MQTT-3.8.3-4]: no No Local on a shared subscription.
                        no_local: no_local && !filter.is_shared(),
                        retain_as_published,
                        retain_handling,
                    }
                } else {
                    SubscriptionOptions::new(qos)
                };
                (filter, options)
            },
        );
    (
        packet_id(),
        vec(entry, 1..5),
        v5_only(version, subscribe_properties()),
    )
        .prop_map(|(packet_id, filters, properties)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties,
            })
        })
        .boxed()
}

fn sub_ack(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let code = if version.is_v5() {
        reason_code(version, PacketType::SubAck)
    } else {
        // 3.x: a granted QoS or Failure.
        select(vec![0x00, 0x01, 0x02, 0x80])
            .prop_map(ReasonCode)
            .boxed()
    };
    (
        packet_id(),
        vec(code, 1..5),
        v5_only(version, ack_properties()),
    )
        .prop_map(|(packet_id, reason_codes, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                reason_codes,
                properties,
            })
        })
        .boxed()
}

fn unsubscribe(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    (
        packet_id(),
        vec(topic_filter(), 1..5),
        v5_only(version, unsubscribe_properties()),
    )
        .prop_map(|(packet_id, filters, properties)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        })
        .boxed()
}

fn unsub_ack(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    (
        packet_id(),
        v5_only(
            version,
            vec(reason_code(version, PacketType::UnsubAck), 1..5),
        ),
        v5_only(version, ack_properties()),
    )
        .prop_map(|(packet_id, reason_codes, properties)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                reason_codes,
                properties,
            })
        })
        .boxed()
}

fn disconnect(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    (
        reason_code(version, PacketType::Disconnect),
        v5_only(version, disconnect_properties()),
    )
        .prop_map(|(reason_code, properties)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties: properties.into(),
            })
        })
        .boxed()
}

fn auth() -> BoxedStrategy<Packet> {
    (
        reason_code(ProtocolVersion::V5, PacketType::Auth),
        auth_properties(),
    )
        .prop_map(|(reason_code, properties)| {
            Packet::Auth(Auth {
                reason_code,
                properties: properties.into(),
            })
        })
        .boxed()
}

/// Packets a client sends, which a `Role::Server` decoder reads.
fn client_packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let mut packets = vec![
        connect(version),
        publish(version, false),
        publish_response(version, PacketType::PubAck),
        publish_response(version, PacketType::PubRec),
        publish_response(version, PacketType::PubRel),
        publish_response(version, PacketType::PubComp),
        subscribe(version),
        unsubscribe(version),
        Just(Packet::PingReq).boxed(),
        disconnect(version),
    ];
    if version.is_v5() {
        packets.push(auth());
    }
    Union::new(packets).boxed()
}

/// Packets a server sends, which a `Role::Client` decoder reads. A 3.x server
/// never sends DISCONNECT.
fn server_packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let mut packets = vec![
        conn_ack(version),
        publish(version, true),
        publish_response(version, PacketType::PubAck),
        publish_response(version, PacketType::PubRec),
        publish_response(version, PacketType::PubRel),
        publish_response(version, PacketType::PubComp),
        sub_ack(version),
        unsub_ack(version),
        Just(Packet::PingResp).boxed(),
    ];
    if version.is_v5() {
        packets.push(disconnect(version));
        packets.push(auth());
    }
    Union::new(packets).boxed()
}

fn any_packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    Union::new([client_packet(version), server_packet(version)]).boxed()
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    select(ProtocolVersion::ALL.to_vec())
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|version| (Just(version), any_packet(version)))
}

// ---------------------------------------------------------------------------
// Helpers

/// The end that reads `packet`: the client for what only a server sends.
fn reader_of(packet: &Packet) -> Role {
    match packet {
        Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
            Role::Client
        }
        Packet::Publish(p) if !p.properties.subscription_identifiers.is_empty() => Role::Client,
        _ => Role::Server,
    }
}

fn encode(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    packet
        .encode(version, &mut buf)
        .expect("a valid packet encodes");
    buf
}

/// A Variable Byte Integer, written here rather than with the crate's encoder.
fn varint(mut value: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    loop {
        let byte = (value % 128) as u8;
        value /= 128;
        if value == 0 {
            bytes.push(byte);
            return bytes;
        }
        bytes.push(byte | 0x80);
    }
}

/// Feeds `bytes` to both decoding entry points, in every role, with the default
/// and a small maximum packet size. Nothing may panic; `Ok(None)` must leave the
/// buffer as it was; whatever decodes must survive a re-encode.
fn decode_anything(bytes: &[u8], version: ProtocolVersion) -> Result<(), TestCaseError> {
    if let Ok(packet) = Packet::decode(Bytes::copy_from_slice(bytes), version) {
        let mut again = BytesMut::new();
        packet
            .encode(version, &mut again)
            .map_err(|e| TestCaseError::fail(format!("decoded {packet:?} but: {e}")))?;
        prop_assert_eq!(Packet::decode(again.freeze(), version), Ok(packet));
    }
    for role in [Role::Server, Role::Client] {
        for decoder in [
            Decoder::new(role, version),
            Decoder::new(role, version).with_max_packet_size(1024),
        ] {
            let mut decoder = decoder;
            let mut buf = BytesMut::from(bytes);
            loop {
                let before = buf.clone();
                match decoder.decode(&mut buf) {
                    // Each packet takes at least two bytes, so this ends.
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        prop_assert_eq!(&buf[..], &before[..]);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }
    Ok(())
}

/// One way to damage a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    Truncate(Index),
    /// Overwrite a byte of the Remaining Length.
    SetLengthByte(Index, u8),
    /// Overwrite any byte: often an inner length, a flag or a property id.
    SetByte(Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Mutation::FlipBit(i, bit)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetLengthByte(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
    ]
}

fn apply(mutation: &Mutation, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match *mutation {
        Mutation::FlipBit(ref i, bit) => bytes[i.index(len)] ^= 1 << bit,
        Mutation::Truncate(ref i) => bytes.truncate(i.index(len)),
        Mutation::SetLengthByte(ref i, value) => {
            let length_bytes = bytes[1..]
                .iter()
                .position(|b| b & 0x80 == 0)
                .map_or(bytes.len() - 1, |end| end + 1);
            if length_bytes > 0 {
                bytes[1 + i.index(length_bytes)] = value;
            }
        }
        Mutation::SetByte(ref i, value) => bytes[i.index(len)] = value,
    }
}

/// A first byte whose type exists in `version`, with any flags: enough for the
/// decoder to read on to the Remaining Length.
fn known_first_byte(version: ProtocolVersion) -> impl Strategy<Value = u8> {
    let last_type = if version.is_v5() { 15u8 } else { 14 };
    (1..=last_type, 0..16u8).prop_map(|(kind, flags)| (kind << 4) | flags)
}

fn role() -> impl Strategy<Value = Role> {
    select(vec![Role::Server, Role::Client])
}

// ---------------------------------------------------------------------------
// Properties

proptest! {
    #[test]
    fn decode_inverts_encode((version, packet) in versioned_packet()) {
        let bytes = encode(&packet, version).freeze();
        prop_assert_eq!(Packet::decode(bytes, version), Ok(packet));
    }

    #[test]
    fn encoded_len_counts_the_bytes_encode_appends((version, packet) in versioned_packet()) {
        let mut buf = BytesMut::from(&b"earlier bytes"[..]);
        packet.encode(version, &mut buf).expect("a valid packet encodes");
        prop_assert_eq!(&buf[..13], &b"earlier bytes"[..]);
        prop_assert_eq!(buf.len() - 13, packet.encoded_len(version));
    }

    #[test]
    fn every_strict_prefix_needs_more((version, packet) in versioned_packet()) {
        let bytes = encode(&packet, version);
        let role = reader_of(&packet);
        for cut in 0..bytes.len() {
            let mut decoder = Decoder::new(role, version);
            let mut buf = BytesMut::from(&bytes[..cut]);
            prop_assert_eq!(decoder.decode(&mut buf), Ok(None), "prefix of {} bytes", cut);
            prop_assert_eq!(&buf[..], &bytes[..cut]);
            buf.extend_from_slice(&bytes[cut..]);
            prop_assert_eq!(decoder.decode(&mut buf), Ok(Some(packet.clone())));
            prop_assert!(buf.is_empty());
        }
    }

    /// A server's decoder may start in any version when the stream opens with a
    /// CONNECT, which switches it to the version the CONNECT names.
    #[test]
    fn rechunked_stream_yields_the_same_packets(
        (version, role, packets, cuts) in (version(), role()).prop_flat_map(|(version, role)| {
            let packet = match role {
                Role::Server => client_packet(version),
                Role::Client => server_packet(version),
            };
            let packets = (option::weighted(0.5, connect(version)), vec(packet, 1..8))
                .prop_map(move |(first, rest)| {
                    first
                        .filter(|_| role == Role::Server)
                        .into_iter()
                        .chain(rest)
                        .collect::<Vec<Packet>>()
                });
            (Just(version), Just(role), packets, vec(any::<Index>(), 0..12))
        }),
        start_version in version(),
    ) {
        let mut wire = BytesMut::new();
        for packet in &packets {
            packet.encode(version, &mut wire).expect("a valid packet encodes");
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.extend([0, wire.len()]);
        points.sort_unstable();
        points.dedup();

        let start = match packets[0] {
            Packet::Connect(_) => start_version,
            _ => version,
        };
        let mut decoder = Decoder::new(role, start);
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for chunk in points.windows(2) {
            buf.extend_from_slice(&wire[chunk[0]..chunk[1]]);
            while let Some(packet) = decoder
                .decode(&mut buf)
                .map_err(|e| TestCaseError::fail(format!("{e} after {} packets", decoded.len())))?
            {
                decoded.push(packet);
            }
        }
        prop_assert_eq!(decoded, packets);
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoder.version(), version);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512), version in version()) {
        decode_anything(&bytes, version)?;
    }

    #[test]
    fn damaged_packets_never_panic(
        (version, packet) in versioned_packet(),
        mutations in vec(mutation(), 1..4),
    ) {
        let mut bytes = encode(&packet, version).to_vec();
        for mutation in &mutations {
            apply(mutation, &mut bytes);
        }
        decode_anything(&bytes, version)?;
    }

    /// [MQTT-3.2.2-15] (and §3.1.2.11.4): the limit is checked on the fixed header,
    /// before the body has arrived.
    #[test]
    fn oversized_packets_fail_on_the_fixed_header(
        (version, first) in version().prop_flat_map(|v| (Just(v), known_first_byte(v))),
        role in role(),
        remaining in prop_oneof![Just(1022u32), 1022..4096u32, 4096..=VARINT_MAX],
        body in vec(any::<u8>(), 0..64),
    ) {
        let mut buf = BytesMut::from(&[first][..]);
        let length = varint(remaining);
        buf.extend_from_slice(&length);
        buf.extend_from_slice(&body);
        let size = (1 + length.len()) as u64 + u64::from(remaining);
        let mut decoder = Decoder::new(role, version).with_max_packet_size(1024);
        prop_assert_eq!(
            decoder.decode(&mut buf),
            Err(DecodeError::PacketTooLarge { size, max: 1024 })
        );
    }

    /// The limit counts the whole packet and is inclusive.
    #[test]
    fn maximum_packet_size_is_inclusive((version, packet) in versioned_packet()) {
        let bytes = encode(&packet, version);
        let size = bytes.len() as u32;
        let role = reader_of(&packet);
        let mut buf = bytes.clone();
        let mut decoder = Decoder::new(role, version).with_max_packet_size(size);
        prop_assert_eq!(decoder.decode(&mut buf), Ok(Some(packet)));

        let header = 1 + bytes[1..].iter().position(|b| b & 0x80 == 0).expect("a length") + 1;
        let mut buf = BytesMut::from(&bytes[..header]);
        let mut decoder = Decoder::new(role, version).with_max_packet_size(size - 1);
        prop_assert_eq!(
            decoder.decode(&mut buf),
            Err(DecodeError::PacketTooLarge { size: u64::from(size), max: size - 1 })
        );
    }

    /// Decoding copies neither the payload nor the topic: both point into the
    /// buffer the bytes arrived in, from the `Decoder` and from `Packet::decode`.
    #[test]
    fn decoded_publish_shares_the_receive_buffer(
        (version, before, publish) in version().prop_flat_map(|v| {
            (Just(v), option::of(server_packet(v)), publish(v, true))
        }),
    ) {
        let mut buf = BytesMut::new();
        for packet in before.iter().chain([&publish]) {
            packet.encode(version, &mut buf).expect("a valid packet encodes");
        }
        let offset = before.as_ref().map_or(0, |p| p.encoded_len(version));
        let frame = Bytes::copy_from_slice(&buf[offset..]);

        let received = buf.as_ptr() as usize..=buf.as_ptr() as usize + buf.len();
        let mut decoder = Decoder::new(Role::Client, version);
        let mut decoded = Vec::new();
        while let Some(packet) = decoder
            .decode(&mut buf)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
        {
            decoded.push(packet);
        }
        let Some(Packet::Publish(from_decoder)) = decoded.pop() else {
            return Err(TestCaseError::fail("the stream ends with a PUBLISH"));
        };
        let frame_range = frame.as_ptr() as usize..=frame.as_ptr() as usize + frame.len();
        let Ok(Packet::Publish(from_frame)) = Packet::decode(frame, version) else {
            return Err(TestCaseError::fail("the frame decodes to a PUBLISH"));
        };
        for (p, range) in [(&from_decoder, &received), (&from_frame, &frame_range)] {
            // An empty topic (a v5 PUBLISH with only an alias) has no bytes to copy.
            let inside = |bytes: &[u8]| {
                let at = bytes.as_ptr() as usize;
                bytes.is_empty() || (range.contains(&at) && range.contains(&(at + bytes.len())))
            };
            prop_assert!(inside(&p.payload), "payload was copied");
            prop_assert!(inside(p.topic.as_str().as_bytes()), "topic was copied");
        }
        prop_assert_eq!(Packet::Publish(from_decoder), publish);
    }
}

/// The generators reach every packet type of every version, and the corners the
/// brief names, so the properties above are not vacuous.
#[test]
fn generators_cover_every_packet_type() {
    let mut runner = TestRunner::deterministic();
    for version in ProtocolVersion::ALL {
        let strategy = any_packet(version);
        let mut types = std::collections::HashSet::new();
        let (mut empty_topic, mut shared, mut sub_ids) = (false, false, false);
        for _ in 0..3000 {
            let packet = strategy.new_tree(&mut runner).expect("a packet").current();
            types.insert(packet.packet_type());
            match &packet {
                Packet::Publish(p) => {
                    empty_topic |= p.topic.as_str().is_empty();
                    sub_ids |= p.properties.subscription_identifiers.len() > 1;
                }
                Packet::Subscribe(s) => shared |= s.filters.iter().any(|(f, _)| f.is_shared()),
                _ => {}
            }
        }
        let expected = if version.is_v5() { 15 } else { 14 };
        assert_eq!(types.len(), expected, "{version}: {types:?}");
        assert!(shared, "{version}: no shared subscription generated");
        assert_eq!(empty_topic, version.is_v5(), "{version}: empty topics");
        assert_eq!(sub_ids, version.is_v5(), "{version}: subscription ids");
    }
}

/// Remaining Lengths on each side of the 2-, 3- and 4-byte Variable Byte Integer
/// boundaries (MQTT 5.0 §1.5.5), which the random payloads above do not reach.
#[test]
fn remaining_length_boundaries_round_trip() {
    for version in ProtocolVersion::ALL {
        // Topic length (2) + "t" (1), and an empty Property Length (1) in v5.
        let overhead = 3 + usize::from(version.is_v5());
        for (remaining, length_bytes) in [
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (2_097_151, 3),
            (2_097_152, 4),
        ] {
            let packet = Packet::Publish(Publish::new(
                TopicName::from_static("t"),
                vec![0xA5; remaining - overhead],
            ));
            let bytes = encode(&packet, version);
            assert_eq!(
                bytes.len(),
                1 + length_bytes + remaining,
                "{version} {remaining}"
            );
            assert_eq!(packet.encoded_len(version), bytes.len());
            assert_eq!(
                Packet::decode(bytes.clone().freeze(), version),
                Ok(packet.clone())
            );
            let mut buf = bytes;
            let decoded = Decoder::new(Role::Client, version).decode(&mut buf);
            assert_eq!(decoded, Ok(Some(packet)));
            assert!(buf.is_empty());
        }
    }
}
