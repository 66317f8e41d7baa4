//! `-D command identifier value` (`--property`): MQTT 5.0 properties by packet and
//! name, read and checked as Mosquitto 2.0.11 does (`cfg_parse_property()`, then
//! `mosquitto_property_check_all()` for each packet), then turned into the typed
//! property structs of `starling-proto`.
//!
//! Command and property names are case-insensitive. Numbers are read with C's
//! `atol` (so `-D publish message-expiry-interval x` is 0, as in Mosquitto).
//! Where Mosquitto would send a value the protocol forbids, Starling refuses it
//! here with a reason instead: a payload format indicator above 1, a response
//! topic with wildcards, subscription identifier 0, a reason string in the will,
//! and a topic alias (the client library does not send topic aliases).

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use starling_proto::property::{
    ConnectProperties, DisconnectProperties, PropertyId, PublishProperties, SubscribeProperties,
    UnsubscribeProperties, WillProperties,
};
use starling_proto::{MqttString, SubscriptionId, TopicName, UserProperty};

use super::cnum::atol;

/// The packets `-D` names (Mosquitto's `mosquitto_string_to_command`; 2.0.11 does
/// not know `suback` and `unsuback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Connect,
    Connack,
    Publish,
    Puback,
    Pubrec,
    Pubrel,
    Pubcomp,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Auth,
    Will,
}

impl Command {
    fn from_name(name: &[u8]) -> Option<Command> {
        const NAMES: [(&str, Command); 12] = [
            ("connect", Command::Connect),
            ("connack", Command::Connack),
            ("publish", Command::Publish),
            ("puback", Command::Puback),
            ("pubrec", Command::Pubrec),
            ("pubrel", Command::Pubrel),
            ("pubcomp", Command::Pubcomp),
            ("subscribe", Command::Subscribe),
            ("unsubscribe", Command::Unsubscribe),
            ("disconnect", Command::Disconnect),
            ("auth", Command::Auth),
            ("will", Command::Will),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|&(_, command)| command)
    }

    /// Whether the protocol allows property `id` in this packet
    /// (`mosquitto_property_check_command`).
    fn allows(self, id: PropertyId) -> bool {
        use PropertyId as P;
        if id == P::UserProperty {
            return true;
        }
        match self {
            Command::Connect => matches!(
                id,
                P::SessionExpiryInterval
                    | P::AuthenticationMethod
                    | P::AuthenticationData
                    | P::RequestProblemInformation
                    | P::RequestResponseInformation
                    | P::ReceiveMaximum
                    | P::TopicAliasMaximum
                    | P::MaximumPacketSize
            ),
            Command::Connack => matches!(
                id,
                P::SessionExpiryInterval
                    | P::AssignedClientIdentifier
                    | P::ServerKeepAlive
                    | P::AuthenticationMethod
                    | P::AuthenticationData
                    | P::ResponseInformation
                    | P::ServerReference
                    | P::ReasonString
                    | P::ReceiveMaximum
                    | P::TopicAliasMaximum
                    | P::MaximumQoS
                    | P::RetainAvailable
                    | P::MaximumPacketSize
                    | P::WildcardSubscriptionAvailable
                    | P::SubscriptionIdentifierAvailable
                    | P::SharedSubscriptionAvailable
            ),
            Command::Publish => matches!(
                id,
                P::PayloadFormatIndicator
                    | P::MessageExpiryInterval
                    | P::ContentType
                    | P::ResponseTopic
                    | P::CorrelationData
                    | P::SubscriptionIdentifier
                    | P::TopicAlias
            ),
            Command::Puback | Command::Pubrec | Command::Pubrel | Command::Pubcomp => {
                id == P::ReasonString
            }
            Command::Subscribe => id == P::SubscriptionIdentifier,
            Command::Unsubscribe => false,
            Command::Disconnect => matches!(
                id,
                P::SessionExpiryInterval | P::ServerReference | P::ReasonString
            ),
            Command::Auth => matches!(
                id,
                P::AuthenticationMethod | P::AuthenticationData | P::ReasonString
            ),
            // Mosquitto 2.0.11 lets a reason string through for the will too.
            Command::Will => matches!(
                id,
                P::PayloadFormatIndicator
                    | P::MessageExpiryInterval
                    | P::ContentType
                    | P::ResponseTopic
                    | P::CorrelationData
                    | P::WillDelayInterval
                    | P::ReasonString
            ),
        }
    }
}

/// How a property's value is written on the command line and on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Byte,
    Int16,
    Int32,
    VarInt,
    Binary,
    String,
    Pair,
}

impl Kind {
    /// Mosquitto's `MQTT_PROP_TYPE_*` number, which its "Error adding property"
    /// message shows.
    fn mosquitto_type(self) -> u8 {
        match self {
            Kind::Byte => 1,
            Kind::Int16 => 2,
            Kind::Int32 => 3,
            Kind::VarInt => 4,
            Kind::Binary => 5,
            Kind::String => 6,
            Kind::Pair => 7,
        }
    }
}

/// Every property name `-D` takes, with its identifier and kind.
const PROPERTIES: [(&str, PropertyId, Kind); 27] = [
    (
        "payload-format-indicator",
        PropertyId::PayloadFormatIndicator,
        Kind::Byte,
    ),
    (
        "message-expiry-interval",
        PropertyId::MessageExpiryInterval,
        Kind::Int32,
    ),
    ("content-type", PropertyId::ContentType, Kind::String),
    ("response-topic", PropertyId::ResponseTopic, Kind::String),
    (
        "correlation-data",
        PropertyId::CorrelationData,
        Kind::Binary,
    ),
    (
        "subscription-identifier",
        PropertyId::SubscriptionIdentifier,
        Kind::VarInt,
    ),
    (
        "session-expiry-interval",
        PropertyId::SessionExpiryInterval,
        Kind::Int32,
    ),
    (
        "assigned-client-identifier",
        PropertyId::AssignedClientIdentifier,
        Kind::String,
    ),
    (
        "server-keep-alive",
        PropertyId::ServerKeepAlive,
        Kind::Int16,
    ),
    (
        "authentication-method",
        PropertyId::AuthenticationMethod,
        Kind::String,
    ),
    (
        "authentication-data",
        PropertyId::AuthenticationData,
        Kind::Binary,
    ),
    (
        "request-problem-information",
        PropertyId::RequestProblemInformation,
        Kind::Byte,
    ),
    (
        "will-delay-interval",
        PropertyId::WillDelayInterval,
        Kind::Int32,
    ),
    (
        "request-response-information",
        PropertyId::RequestResponseInformation,
        Kind::Byte,
    ),
    (
        "response-information",
        PropertyId::ResponseInformation,
        Kind::String,
    ),
    (
        "server-reference",
        PropertyId::ServerReference,
        Kind::String,
    ),
    ("reason-string", PropertyId::ReasonString, Kind::String),
    ("receive-maximum", PropertyId::ReceiveMaximum, Kind::Int16),
    (
        "topic-alias-maximum",
        PropertyId::TopicAliasMaximum,
        Kind::Int16,
    ),
    ("topic-alias", PropertyId::TopicAlias, Kind::Int16),
    ("maximum-qos", PropertyId::MaximumQoS, Kind::Byte),
    ("retain-available", PropertyId::RetainAvailable, Kind::Byte),
    ("user-property", PropertyId::UserProperty, Kind::Pair),
    (
        "maximum-packet-size",
        PropertyId::MaximumPacketSize,
        Kind::Int32,
    ),
    (
        "wildcard-subscription-available",
        PropertyId::WildcardSubscriptionAvailable,
        Kind::Byte,
    ),
    (
        "subscription-identifier-available",
        PropertyId::SubscriptionIdentifierAvailable,
        Kind::Byte,
    ),
    (
        "shared-subscription-available",
        PropertyId::SharedSubscriptionAvailable,
        Kind::Byte,
    ),
];

/// The largest Variable Byte Integer.
const VARINT_MAX: i64 = 268_435_455;

/// A property value as given.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Number(u32),
    Bytes(Vec<u8>),
    Pair(Vec<u8>, Vec<u8>),
}

/// One `-D` property.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Property {
    id: PropertyId,
    name: &'static str,
    value: Value,
}

/// The `-D` properties of each packet, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Properties {
    connect: Vec<Property>,
    publish: Vec<Property>,
    subscribe: Vec<Property>,
    unsubscribe: Vec<Property>,
    disconnect: Vec<Property>,
    will: Vec<Property>,
}

/// A `-D` error: the message Mosquitto prints, with its trailing newlines.
pub(crate) type PropError = String;

impl Properties {
    /// Reads one `-D`: `args[*i]` is the command name. On success `*i` is left on
    /// the last argument used.
    pub(crate) fn parse(&mut self, args: &[Vec<u8>], i: &mut usize) -> Result<(), PropError> {
        let not_enough = || {
            "Error: --property argument given but not enough arguments specified.\n\n".to_owned()
        };
        if *i + 2 >= args.len() {
            return Err(not_enough());
        }
        let command_name = String::from_utf8_lossy(&args[*i]).into_owned();
        let command = Command::from_name(&args[*i])
            .ok_or_else(|| "Error: Invalid command given in --property argument.\n\n".to_owned())?;
        let &(name, id, kind) = PROPERTIES
            .iter()
            .find(|(n, _, _)| n.as_bytes().eq_ignore_ascii_case(&args[*i + 1]))
            .ok_or_else(|| {
                "Error: Invalid property name given in --property argument.\n\n".to_owned()
            })?;
        let given_name = String::from_utf8_lossy(&args[*i + 1]).into_owned();
        if !command.allows(id) {
            return Err(format!(
                "Error: {given_name} property not allowed for {command_name} in --property argument.\n\n"
            ));
        }
        let value = if kind == Kind::Pair {
            if *i + 3 >= args.len() {
                return Err(not_enough());
            }
            let pair = (args[*i + 2].clone(), args[*i + 3].clone());
            *i += 3;
            Value::Pair(pair.0, pair.1)
        } else {
            let raw = args[*i + 2].clone();
            *i += 2;
            number_or_bytes(kind, &raw, &given_name)?
        };
        let not_supported = || {
            format!("Error: {given_name} property not supported for {command_name} in --property argument.\n\n")
        };
        let list = match command {
            Command::Connect => &mut self.connect,
            Command::Publish if id == PropertyId::SubscriptionIdentifier => {
                return Err(not_supported())
            }
            Command::Publish => &mut self.publish,
            Command::Subscribe => &mut self.subscribe,
            Command::Unsubscribe => &mut self.unsubscribe,
            Command::Disconnect => &mut self.disconnect,
            Command::Will => &mut self.will,
            // Mosquitto prints nothing for `connack`; say why.
            Command::Connack
            | Command::Puback
            | Command::Pubrec
            | Command::Pubrel
            | Command::Pubcomp
            | Command::Auth => return Err(not_supported()),
        };
        if let Value::Pair(key, val) = &value {
            for s in [key, val] {
                if starling_proto::string::validate(s).is_err() {
                    return Err(format!(
                        "Error adding property {given_name} {}\n",
                        kind.mosquitto_type()
                    ));
                }
            }
        }
        if let (Kind::String, Value::Bytes(s)) = (kind, &value) {
            if starling_proto::string::validate(s).is_err() {
                return Err(format!(
                    "Error adding property {given_name} {}\n",
                    kind.mosquitto_type()
                ));
            }
        }
        list.push(Property { id, name, value });
        Ok(())
    }

    /// Adds the Session Expiry Interval `-x` (or `-c`) asks for, as Mosquitto does
    /// after reading the arguments (a `-D connect session-expiry-interval` as well
    /// is then a duplicate).
    pub(crate) fn add_session_expiry(&mut self, seconds: u32) {
        self.connect.push(Property {
            id: PropertyId::SessionExpiryInterval,
            name: "session-expiry-interval",
            value: Value::Number(seconds),
        });
    }

    /// Adds the Response Topic `starling rr -e` asks for.
    pub(crate) fn add_response_topic(&mut self, topic: &str) {
        self.publish.push(Property {
            id: PropertyId::ResponseTopic,
            name: "response-topic",
            value: Value::Bytes(topic.as_bytes().to_vec()),
        });
    }

    /// Whether any CONNECT property was given (Mosquitto refuses to connect with
    /// them over MQTT 3.x).
    pub(crate) fn has_connect(&self) -> bool {
        !self.connect.is_empty()
    }

    /// The first packet other than CONNECT and the will given properties, of
    /// those `tool` sends: Mosquitto silently sends nothing (no PUBLISH, no
    /// SUBSCRIBE) when they are given over MQTT 3.x; Starling says so instead.
    /// (`rr` leaves its PUBLISH properties out over 3.x, as mosquitto_rr does.)
    pub(crate) fn v5_only(&self, publish: bool) -> Option<&'static str> {
        [
            (publish && !self.publish.is_empty(), "publish"),
            (!self.subscribe.is_empty(), "subscribe"),
            (!self.unsubscribe.is_empty(), "unsubscribe"),
            (!self.disconnect.is_empty(), "disconnect"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }

    /// Whether any will property was given.
    pub(crate) fn has_will(&self) -> bool {
        !self.will.is_empty()
    }

    /// `mosquitto_property_check_all` for each packet, in Mosquitto's order:
    /// values the protocol forbids and duplicates.
    pub(crate) fn check(&self) -> Result<(), PropError> {
        for (packet, list) in [
            ("CONNECT", &self.connect),
            ("PUBLISH", &self.publish),
            ("SUBSCRIBE", &self.subscribe),
            ("UNSUBSCRIBE", &self.unsubscribe),
            ("DISCONNECT", &self.disconnect),
            ("Will", &self.will),
        ] {
            if let Err(reason) = check_all(list) {
                return Err(format!("Error in {packet} properties: {reason}\n"));
            }
        }
        Ok(())
    }

    pub(crate) fn connect(&self) -> Result<ConnectProperties, PropError> {
        let mut props = ConnectProperties::default();
        for p in &self.connect {
            match (p.id, &p.value) {
                (PropertyId::SessionExpiryInterval, &Value::Number(n)) => {
                    props.session_expiry_interval = Some(n)
                }
                (PropertyId::ReceiveMaximum, &Value::Number(n)) => {
                    props.receive_maximum = NonZeroU16::new(n as u16)
                }
                (PropertyId::MaximumPacketSize, &Value::Number(n)) => {
                    props.maximum_packet_size = NonZeroU32::new(n)
                }
                (PropertyId::TopicAliasMaximum, &Value::Number(n)) => {
                    props.topic_alias_maximum = Some(n as u16)
                }
                (PropertyId::RequestResponseInformation, &Value::Number(n)) => {
                    props.request_response_information = Some(n == 1)
                }
                (PropertyId::RequestProblemInformation, &Value::Number(n)) => {
                    props.request_problem_information = Some(n == 1)
                }
                (PropertyId::AuthenticationMethod, Value::Bytes(s)) => {
                    props.authentication_method = Some(mqtt_string(s))
                }
                (PropertyId::AuthenticationData, Value::Bytes(b)) => {
                    props.authentication_data = Some(Bytes::from(b.clone()))
                }
                (PropertyId::UserProperty, Value::Pair(k, v)) => {
                    props.user_properties.push(user_property(k, v))
                }
                _ => return Err(unusable("CONNECT", p)),
            }
        }
        Ok(props)
    }

    pub(crate) fn publish(&self) -> Result<PublishProperties, PropError> {
        message_properties(&self.publish, "PUBLISH", |p| match p.id {
            PropertyId::TopicAlias => Err("Error in PUBLISH properties: topic-alias is not \
                 supported: the Starling client does not send topic aliases.\n"
                .to_owned()),
            _ => Ok(false),
        })
    }

    pub(crate) fn subscribe(&self) -> Result<SubscribeProperties, PropError> {
        let mut props = SubscribeProperties::default();
        for p in &self.subscribe {
            match (p.id, &p.value) {
                (PropertyId::SubscriptionIdentifier, &Value::Number(n)) => props
                    .subscription_identifier =
                    Some(SubscriptionId::new(n).ok_or_else(|| {
                        "Error in SUBSCRIBE properties: subscription-identifier must be from 1 to \
                         268435455.\n"
                            .to_owned()
                    })?),
                (PropertyId::UserProperty, Value::Pair(k, v)) => {
                    props.user_properties.push(user_property(k, v))
                }
                _ => return Err(unusable("SUBSCRIBE", p)),
            }
        }
        Ok(props)
    }

    pub(crate) fn unsubscribe(&self) -> Result<UnsubscribeProperties, PropError> {
        let mut props = UnsubscribeProperties::default();
        for p in &self.unsubscribe {
            match (p.id, &p.value) {
                (PropertyId::UserProperty, Value::Pair(k, v)) => {
                    props.user_properties.push(user_property(k, v))
                }
                _ => return Err(unusable("UNSUBSCRIBE", p)),
            }
        }
        Ok(props)
    }

    pub(crate) fn disconnect(&self) -> Result<DisconnectProperties, PropError> {
        let mut props = DisconnectProperties::default();
        for p in &self.disconnect {
            match (p.id, &p.value) {
                (PropertyId::SessionExpiryInterval, &Value::Number(n)) => {
                    props.session_expiry_interval = Some(n)
                }
                (PropertyId::ReasonString, Value::Bytes(s)) => {
                    props.reason_string = Some(mqtt_string(s))
                }
                (PropertyId::ServerReference, Value::Bytes(s)) => {
                    props.server_reference = Some(mqtt_string(s))
                }
                (PropertyId::UserProperty, Value::Pair(k, v)) => {
                    props.user_properties.push(user_property(k, v))
                }
                _ => return Err(unusable("DISCONNECT", p)),
            }
        }
        Ok(props)
    }

    pub(crate) fn will(&self) -> Result<WillProperties, PropError> {
        let mut will_delay_interval = None;
        let m = message_properties(&self.will, "Will", |p| match (p.id, &p.value) {
            (PropertyId::WillDelayInterval, &Value::Number(n)) => {
                will_delay_interval = Some(n);
                Ok(true)
            }
            _ => Ok(false),
        })?;
        Ok(WillProperties {
            will_delay_interval,
            payload_format_indicator: m.payload_format_indicator,
            message_expiry_interval: m.message_expiry_interval,
            content_type: m.content_type,
            response_topic: m.response_topic,
            correlation_data: m.correlation_data,
            user_properties: m.user_properties,
        })
    }
}

/// The properties an application message carries, in a PUBLISH or a will,
/// from `list`; `other` takes the rest for `packet`: `Ok(true)` if it used the
/// property, `Ok(false)` if the property cannot be used there.
fn message_properties(
    list: &[Property],
    packet: &str,
    mut other: impl FnMut(&Property) -> Result<bool, PropError>,
) -> Result<PublishProperties, PropError> {
    let mut props = PublishProperties::default();
    for p in list {
        match (p.id, &p.value) {
            (PropertyId::PayloadFormatIndicator, &Value::Number(n)) => {
                props.payload_format_indicator = Some(format_indicator(packet, n)?)
            }
            (PropertyId::MessageExpiryInterval, &Value::Number(n)) => {
                props.message_expiry_interval = Some(n)
            }
            (PropertyId::ContentType, Value::Bytes(s)) => props.content_type = Some(mqtt_string(s)),
            (PropertyId::ResponseTopic, Value::Bytes(s)) => {
                props.response_topic = Some(response_topic(packet, s)?)
            }
            (PropertyId::CorrelationData, Value::Bytes(b)) => {
                props.correlation_data = Some(Bytes::from(b.clone()))
            }
            (PropertyId::UserProperty, Value::Pair(k, v)) => {
                props.user_properties.push(user_property(k, v))
            }
            _ if other(p)? => {}
            _ => return Err(unusable(packet, p)),
        }
    }
    Ok(props)
}

/// Reads a value the way `cfg_parse_property` does for its kind.
fn number_or_bytes(kind: Kind, raw: &[u8], name: &str) -> Result<Value, PropError> {
    let out_of_range =
        |n: i64| format!("Error: Property value ({n}) out of range for property {name}.\n\n");
    let max = match kind {
        Kind::Byte => i64::from(u8::MAX),
        Kind::Int16 => i64::from(u16::MAX),
        Kind::Int32 | Kind::VarInt => i64::from(u32::MAX),
        Kind::Binary | Kind::String => {
            if raw.len() > usize::from(u16::MAX) {
                return Err(format!(
                    "Error: Property value too long for property {name}.\n\n"
                ));
            }
            return Ok(Value::Bytes(raw.to_vec()));
        }
        Kind::Pair => unreachable!("user properties are read as pairs"),
    };
    let n = atol(raw);
    if !(0..=max).contains(&n) {
        return Err(out_of_range(n));
    }
    if kind == Kind::VarInt && n > VARINT_MAX {
        return Err(format!(
            "Error adding property {name} {}\n",
            kind.mosquitto_type()
        ));
    }
    Ok(Value::Number(n as u32))
}

/// `mosquitto_property_check_all` on one packet's list.
fn check_all(list: &[Property]) -> Result<(), &'static str> {
    const PROTOCOL: &str = "A network protocol error occurred when communicating with the broker.";
    for (i, p) in list.iter().enumerate() {
        if let Value::Number(n) = p.value {
            let bad = match p.id {
                PropertyId::RequestProblemInformation
                | PropertyId::RequestResponseInformation
                | PropertyId::MaximumQoS
                | PropertyId::RetainAvailable
                | PropertyId::WildcardSubscriptionAvailable
                | PropertyId::SubscriptionIdentifierAvailable
                | PropertyId::SharedSubscriptionAvailable => n > 1,
                PropertyId::MaximumPacketSize
                | PropertyId::ReceiveMaximum
                | PropertyId::TopicAlias => n == 0,
                _ => false,
            };
            if bad {
                return Err(PROTOCOL);
            }
        }
        if p.id != PropertyId::UserProperty && list[i + 1..].iter().any(|q| q.id == p.id) {
            return Err("Duplicate property in property list");
        }
    }
    Ok(())
}

fn mqtt_string(s: &[u8]) -> MqttString {
    // Checked when read: add_string validates UTF-8 as Mosquitto does.
    MqttString::from_bytes(Bytes::from(s.to_vec())).unwrap_or_default()
}

fn user_property(name: &[u8], value: &[u8]) -> UserProperty {
    UserProperty {
        name: mqtt_string(name),
        value: mqtt_string(value),
    }
}

fn format_indicator(packet: &str, n: u32) -> Result<bool, PropError> {
    match n {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(format!(
            "Error in {packet} properties: payload-format-indicator must be 0 or 1, not {n}.\n"
        )),
    }
}

fn response_topic(packet: &str, s: &[u8]) -> Result<TopicName, PropError> {
    TopicName::try_from(String::from_utf8_lossy(s).as_ref()).map_err(|e| {
        format!(
            "Error in {packet} properties: response-topic '{}' is not a topic name: {e}.\n",
            String::from_utf8_lossy(s)
        )
    })
}

fn unusable(packet: &str, p: &Property) -> PropError {
    format!(
        "Error in {packet} properties: {} cannot be sent in {packet}.\n",
        p.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Vec<u8>> {
        line.split(' ').map(|s| s.as_bytes().to_vec()).collect()
    }

    fn parse(line: &str) -> Result<Properties, String> {
        let args = args(line);
        let mut props = Properties::default();
        let mut i = 0;
        while i < args.len() {
            props.parse(&args, &mut i)?;
            i += 1;
        }
        Ok(props)
    }

    #[test]
    fn reads_properties_by_command_and_name() {
        let props = parse("publish user-property k v").unwrap();
        let publish = props.publish().unwrap();
        assert_eq!(publish.user_properties.len(), 1);
        assert_eq!(publish.user_properties[0].name, "k");
        let props = parse("CONNECT Session-Expiry-Interval 60").unwrap();
        assert_eq!(props.connect().unwrap().session_expiry_interval, Some(60));
        let props = parse("publish message-expiry-interval x").unwrap();
        assert_eq!(props.publish().unwrap().message_expiry_interval, Some(0));
        let props = parse("will will-delay-interval 4294967295").unwrap();
        assert_eq!(props.will().unwrap().will_delay_interval, Some(u32::MAX));
    }

    #[test]
    fn errors_are_mosquittos() {
        let first_line = |line: &str| parse(line).unwrap_err().lines().next().unwrap().to_owned();
        assert_eq!(
            first_line("publish"),
            "Error: --property argument given but not enough arguments specified."
        );
        assert_eq!(
            first_line("publish user-property k"),
            "Error: --property argument given but not enough arguments specified."
        );
        assert_eq!(
            first_line("pubish content-type x"),
            "Error: Invalid command given in --property argument."
        );
        assert_eq!(
            first_line("suback reason-string x"),
            "Error: Invalid command given in --property argument."
        );
        assert_eq!(
            first_line("publish foo 1"),
            "Error: Invalid property name given in --property argument."
        );
        assert_eq!(
            first_line("publish session-expiry-interval 1"),
            "Error: session-expiry-interval property not allowed for publish in --property argument."
        );
        assert_eq!(
            first_line("publish subscription-identifier 3"),
            "Error: subscription-identifier property not supported for publish in --property argument."
        );
        assert_eq!(
            first_line("puback reason-string 3"),
            "Error: reason-string property not supported for puback in --property argument."
        );
        assert_eq!(
            first_line("publish message-expiry-interval -1"),
            "Error: Property value (-1) out of range for property message-expiry-interval."
        );
        assert_eq!(
            first_line("publish payload-format-indicator 300"),
            "Error: Property value (300) out of range for property payload-format-indicator."
        );
        assert_eq!(
            first_line("subscribe subscription-identifier 268435456"),
            "Error adding property subscription-identifier 4"
        );
    }

    #[test]
    fn checks_values_and_duplicates_per_packet() {
        let props =
            parse("publish payload-format-indicator 1 publish payload-format-indicator 1").unwrap();
        assert_eq!(
            props.check().unwrap_err(),
            "Error in PUBLISH properties: Duplicate property in property list\n"
        );
        let props = parse("connect receive-maximum 0").unwrap();
        assert_eq!(
            props.check().unwrap_err(),
            "Error in CONNECT properties: A network protocol error occurred when communicating \
             with the broker.\n"
        );
        let props = parse("connect user-property a b connect user-property a b").unwrap();
        assert!(props.check().is_ok());
        assert_eq!(props.connect().unwrap().user_properties.len(), 2);
    }

    #[test]
    fn values_the_protocol_forbids_are_refused() {
        assert!(parse("publish payload-format-indicator 2")
            .unwrap()
            .publish()
            .is_err());
        assert!(parse("publish response-topic a/#")
            .unwrap()
            .publish()
            .is_err());
        assert!(parse("publish topic-alias 1").unwrap().publish().is_err());
        assert!(parse("subscribe subscription-identifier 0")
            .unwrap()
            .subscribe()
            .is_err());
        assert!(parse("will reason-string x").unwrap().will().is_err());
    }
}
