//! `ClientOptions`: everything fixed before connecting, built in the builder
//! style, and the broker URL it starts from.
//!
//! Options are checked when [`Client::connect`](crate::Client::connect) turns them
//! into a CONNECT packet, not in each setter, so that the builder chains without
//! `?` after every call; a bad client identifier or will topic is an
//! [`Error::InvalidOption`] or [`Error::Topic`] from `connect`.

use std::fmt;
use std::net::IpAddr;
use std::num::{NonZeroU16, NonZeroU32};
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use starling_proto::property::{ConnectProperties, WillProperties};
use starling_proto::{Connect, MqttString, ProtocolVersion, QoS, TopicName, UserProperty, Will};

use crate::error::Error;
use crate::event::PacketObserver;
use crate::tls::TlsOptions;

/// How the client reaches the broker, from the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `mqtt://` (or `tcp://`): plain TCP, default port 1883.
    Mqtt,
    /// `mqtts://` (or `ssl://`, `tls://`): TLS over TCP, default port 8883.
    Mqtts,
    /// `ws://`: MQTT over WebSocket, default port 80.
    Ws,
    /// `wss://`: MQTT over WebSocket over TLS, default port 443.
    Wss,
}

impl Scheme {
    /// The port used when the URL names none.
    pub const fn default_port(self) -> u16 {
        match self {
            Scheme::Mqtt => 1883,
            Scheme::Mqtts => 8883,
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }

    /// The scheme as written in a URL.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Mqtt => "mqtt",
            Scheme::Mqtts => "mqtts",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }
}

/// A parsed broker URL: `scheme://[user[:password]@]host[:port][/path]`.
///
/// The user and password are not percent-decoded; the path only matters for
/// WebSocket URLs (it defaults to `/mqtt` there, as for Mosquitto and MQTT.js).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerUrl {
    /// The transport.
    pub scheme: Scheme,
    /// The host name or IP address (IPv6 without its brackets).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The path of a WebSocket URL; empty for `mqtt://` and `mqtts://`.
    pub path: String,
    /// A user name given in the URL.
    pub username: Option<String>,
    /// A password given in the URL.
    pub password: Option<String>,
}

impl FromStr for BrokerUrl {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected scheme://host[:port]"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => Scheme::Mqtt,
            "mqtts" | "ssl" | "tls" => Scheme::Mqtts,
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            _ => return Err(invalid("unknown scheme (expected mqtt, mqtts, ws or wss)")),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, password)) => (Some(user.to_owned()), Some(password.to_owned())),
                None => (Some(info.to_owned()), None),
            },
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("unclosed '[' in IPv6 address"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| invalid("expected ':' after ']'"))?,
                ),
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let port = match port {
            None => scheme.default_port(),
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| invalid("port is not a number from 1 to 65535"))?,
        };
        let path = match scheme {
            Scheme::Ws | Scheme::Wss if path.is_empty() => "/mqtt".to_owned(),
            Scheme::Ws | Scheme::Wss => path.to_owned(),
            Scheme::Mqtt | Scheme::Mqtts => String::new(),
        };
        Ok(BrokerUrl {
            scheme,
            host: host.to_owned(),
            port,
            path,
            username,
            password,
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        f.write_str(&self.path)
    }
}

/// What the client does when a connection is lost after the first one succeeded.
/// (The first connection is never retried: [`Client::connect`](crate::Client::connect)
/// reports its failure.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconnectPolicy {
    /// Stop: the connection task ends and pending requests fail.
    Off,
    /// Reconnect after `min`, doubling the delay after each failed attempt up to
    /// `max`; a successful connection resets it to `min`.
    Backoff {
        /// The first delay.
        min: Duration,
        /// The longest delay.
        max: Duration,
    },
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy::Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

/// A Will Message, set before connecting: the broker publishes it if the
/// connection ends without a DISCONNECT (or with reason 0x04 in MQTT 5.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// The topic it is published to.
    pub topic: String,
    /// The payload.
    pub payload: Bytes,
    /// Its QoS.
    pub qos: QoS,
    /// Whether the broker retains it.
    pub retain: bool,
    /// MQTT 5.0 will properties (Will Delay Interval, Message Expiry, ...).
    pub properties: WillProperties,
}

impl LastWill {
    /// A will of `payload` on `topic` at `qos`, not retained, without properties.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>, qos: QoS) -> Self {
        LastWill {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain: false,
            properties: WillProperties::default(),
        }
    }

    /// Sets the retain flag.
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Sets the MQTT 5.0 will properties.
    pub fn properties(mut self, properties: WillProperties) -> Self {
        self.properties = properties;
        self
    }
}

/// How to connect, and how the connection behaves.
///
/// ```
/// use std::time::Duration;
/// use starling_client::{ClientOptions, LastWill, QoS, ProtocolVersion};
///
/// let options = ClientOptions::new("mqtt://127.0.0.1:1883")?
///     .version(ProtocolVersion::V5)
///     .client_id("sensor-7")
///     .keep_alive(Duration::from_secs(30))
///     .last_will(LastWill::new("sensors/7/status", "offline", QoS::AtLeastOnce));
/// # Ok::<(), starling_client::Error>(())
/// ```
#[derive(Clone)]
pub struct ClientOptions {
    pub(crate) url: BrokerUrl,
    pub(crate) version: ProtocolVersion,
    pub(crate) client_id: String,
    pub(crate) clean_start: bool,
    pub(crate) keep_alive: u16,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Bytes>,
    pub(crate) will: Option<LastWill>,
    pub(crate) properties: ConnectProperties,
    pub(crate) user_properties: Vec<(String, String)>,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) offline_queue: usize,
    pub(crate) max_inflight: Option<NonZeroU16>,
    pub(crate) connect_timeout: Duration,
    pub(crate) event_capacity: usize,
    pub(crate) observer: Option<PacketObserver>,
    pub(crate) bind_address: Option<IpAddr>,
    pub(crate) tls: Option<TlsOptions>,
}

impl ClientOptions {
    /// Options for the broker at `url` (`mqtt://host[:port]`, `mqtts://`, `ws://`,
    /// `wss://`), with the defaults: MQTT 3.1.1, an empty client identifier (the
    /// broker assigns one), clean start, keep alive 60 s, reconnect with backoff
    /// from 1 s to 30 s, an offline queue of 1000 publishes, a 10 s connect timeout.
    pub fn new(url: &str) -> Result<Self, Error> {
        Ok(Self::from_url(url.parse()?))
    }

    /// Options for an already parsed URL. A user name and password in the URL
    /// become the options' user name and password.
    pub fn from_url(url: BrokerUrl) -> Self {
        ClientOptions {
            username: url.username.clone(),
            password: url.password.clone().map(Bytes::from),
            url,
            version: ProtocolVersion::V3_1_1,
            client_id: String::new(),
            clean_start: true,
            keep_alive: 60,
            will: None,
            properties: ConnectProperties::default(),
            user_properties: Vec::new(),
            reconnect: ReconnectPolicy::default(),
            offline_queue: 1000,
            max_inflight: None,
            connect_timeout: Duration::from_secs(10),
            event_capacity: 1024,
            observer: None,
            bind_address: None,
            tls: None,
        }
    }

    /// The protocol version: 3.1, 3.1.1 (the default) or 5.0.
    pub fn version(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        self
    }

    /// The client identifier. Empty (the default) lets the broker assign one; an
    /// MQTT 5.0 broker says which (see
    /// [`Client::assigned_client_id`](crate::Client::assigned_client_id)), and
    /// reconnections use it so that the session can be resumed.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Clean Session (3.x) / Clean Start (5.0), `true` by default.
    ///
    /// It applies to every connection, except that an MQTT 5.0 client with a
    /// non-zero session expiry reconnects with Clean Start 0, to resume the
    /// session it opened.
    pub fn clean_start(mut self, clean_start: bool) -> Self {
        self.clean_start = clean_start;
        self
    }

    /// The keep alive: the client sends PINGREQ after this long without sending
    /// anything, and drops the connection if no PINGRESP follows within as
    /// long again. Rounded up to whole seconds (at most 65,535); zero turns it off.
    /// An MQTT 5.0 broker's Server Keep Alive replaces it.
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        let secs = keep_alive.as_secs() + u64::from(keep_alive.subsec_nanos() > 0);
        self.keep_alive = u16::try_from(secs).unwrap_or(u16::MAX);
        self
    }

    /// MQTT 5.0 Session Expiry Interval: how long the broker keeps the session
    /// after the connection ends. Whole seconds; `Duration::MAX` (or anything
    /// from 2^32-1 s) never expires. Ignored for 3.x.
    pub fn session_expiry(mut self, expiry: Duration) -> Self {
        self.properties.session_expiry_interval =
            Some(u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX));
        self
    }

    /// The user name.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The password (binary data).
    pub fn password(mut self, password: impl Into<Bytes>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// The Will Message, sent in CONNECT.
    pub fn last_will(mut self, will: LastWill) -> Self {
        self.will = Some(will);
        self
    }

    /// MQTT 5.0 Receive Maximum: how many QoS 1 and 2 messages the broker may
    /// have in flight to this client (0 leaves the default, 65,535).
    pub fn receive_maximum(mut self, maximum: u16) -> Self {
        self.properties.receive_maximum = NonZeroU16::new(maximum);
        self
    }

    /// The largest packet this client accepts (MQTT 5.0 Maximum Packet Size,
    /// announced to the broker, and enforced by the decoder for every version).
    pub fn maximum_packet_size(mut self, maximum: u32) -> Self {
        self.properties.maximum_packet_size = NonZeroU32::new(maximum);
        self
    }

    /// MQTT 5.0 Topic Alias Maximum: how many Topic Aliases the broker may use
    /// towards this client (0, the default, allows none). Incoming aliases are
    /// always resolved to the topic name before delivery.
    pub fn topic_alias_maximum(mut self, maximum: u16) -> Self {
        self.properties.topic_alias_maximum = Some(maximum).filter(|&m| m > 0);
        self
    }

    /// MQTT 5.0 Request Response Information.
    pub fn request_response_information(mut self, request: bool) -> Self {
        self.properties.request_response_information = Some(request);
        self
    }

    /// MQTT 5.0 Request Problem Information.
    pub fn request_problem_information(mut self, request: bool) -> Self {
        self.properties.request_problem_information = Some(request);
        self
    }

    /// Adds an MQTT 5.0 User Property to CONNECT.
    pub fn user_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.user_properties.push((name.into(), value.into()));
        self
    }

    /// Replaces every MQTT 5.0 CONNECT property at once (the setters above
    /// change one each; user properties added with [`Self::user_property`] are
    /// appended to these).
    pub fn connect_properties(mut self, properties: ConnectProperties) -> Self {
        self.properties = properties;
        self
    }

    /// What to do when the connection is lost.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// How many publishes may wait while the client is not connected; one more
    /// fails with [`Error::QueueFull`]. 0 makes every publish made while
    /// reconnecting fail at once.
    pub fn offline_queue(mut self, bound: usize) -> Self {
        self.offline_queue = bound;
        self
    }

    /// The most QoS 1 and 2 publishes this client has in flight at once, below
    /// the broker's Receive Maximum (MQTT 5.0) or instead of it (3.x, which has
    /// none: the default there is 65,535). Publishes beyond it wait for a slot.
    pub fn max_inflight(mut self, maximum: u16) -> Self {
        self.max_inflight = NonZeroU16::new(maximum);
        self
    }

    /// How long opening the transport and the CONNECT/CONNACK exchange may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many events [`Events`](crate::Events) holds before the client stops
    /// reading from the broker until the application catches up (at least 1).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Calls `observer` with every packet sent and received, before it is
    /// written or after it is decoded (for `-d` style debug output).
    pub fn packet_observer(mut self, observer: PacketObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The local address to bind the socket to before connecting (Mosquitto's
    /// `-A`), to choose the interface the client uses. Only addresses of the
    /// broker of the same family (IPv4 or IPv6) are tried.
    pub fn bind_address(mut self, address: IpAddr) -> Self {
        self.bind_address = Some(address);
        self
    }

    /// How to do TLS for `mqtts://` and `wss://` URLs (ignored for the
    /// others). Without it: TLS 1.2 or 1.3, the broker's certificate checked
    /// against the system's CAs, no client certificate.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The TLS options, if set.
    pub fn tls_options(&self) -> Option<&TlsOptions> {
        self.tls.as_ref()
    }

    /// The broker URL.
    pub fn url(&self) -> &BrokerUrl {
        &self.url
    }

    /// The protocol version.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// The configured client identifier (empty if the broker is to assign one).
    pub fn configured_client_id(&self) -> &str {
        &self.client_id
    }

    /// The reconnect policy.
    pub fn reconnect_policy(&self) -> ReconnectPolicy {
        self.reconnect
    }

    /// The CONNECT these options describe (Clean Start as configured).
    pub(crate) fn to_connect(&self) -> Result<Connect, Error> {
        let invalid = |option: &'static str| {
            move |e: starling_proto::string::Utf8Error| Error::InvalidOption {
                option,
                reason: format!("not a valid MQTT UTF-8 string ({e:?})"),
            }
        };
        let client_id =
            MqttString::try_from(self.client_id.as_str()).map_err(invalid("client_id"))?;
        let mut connect = Connect::new(self.version, client_id);
        connect.clean_start = self.clean_start;
        connect.keep_alive = self.keep_alive;
        connect.username = self
            .username
            .as_deref()
            .map(MqttString::try_from)
            .transpose()
            .map_err(invalid("username"))?;
        connect.password = self.password.clone();
        if !self.version.is_v5() && connect.password.is_some() && connect.username.is_none() {
            return Err(Error::InvalidOption {
                option: "password",
                reason: "MQTT 3.x needs a user name with a password [MQTT-3.1.2-22]".into(),
            });
        }
        if let Some(will) = &self.will {
            connect.will = Some(Will {
                topic: TopicName::try_from(will.topic.as_str())?,
                payload: will.payload.clone(),
                qos: will.qos,
                retain: will.retain,
                properties: if self.version.is_v5() {
                    will.properties.clone()
                } else {
                    WillProperties::default()
                },
            });
        }
        if self.version.is_v5() {
            let mut properties = self.properties.clone();
            for (name, value) in &self.user_properties {
                properties.user_properties.push(UserProperty {
                    name: MqttString::try_from(name.as_str()).map_err(invalid("user_property"))?,
                    value: MqttString::try_from(value.as_str())
                        .map_err(invalid("user_property"))?,
                });
            }
            connect.properties = properties;
        }
        Ok(connect)
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("url", &self.url.to_string())
            .field("version", &self.version)
            .field("client_id", &self.client_id)
            .field("clean_start", &self.clean_start)
            .field("keep_alive", &self.keep_alive)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("will", &self.will)
            .field("properties", &self.properties)
            .field("user_properties", &self.user_properties)
            .field("reconnect", &self.reconnect)
            .field("offline_queue", &self.offline_queue)
            .field("max_inflight", &self.max_inflight)
            .field("connect_timeout", &self.connect_timeout)
            .field("event_capacity", &self.event_capacity)
            .field("packet_observer", &self.observer.is_some())
            .field("bind_address", &self.bind_address)
            .field("tls", &self.tls)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_default_ports_per_scheme() {
        let url: BrokerUrl = "mqtt://broker.example".parse().unwrap();
        assert_eq!((url.scheme, url.port), (Scheme::Mqtt, 1883));
        let url: BrokerUrl = "mqtts://broker.example".parse().unwrap();
        assert_eq!((url.scheme, url.port), (Scheme::Mqtts, 8883));
        let url: BrokerUrl = "ws://broker.example:9001".parse().unwrap();
        assert_eq!(
            (url.scheme, url.port, url.path.as_str()),
            (Scheme::Ws, 9001, "/mqtt")
        );
        let url: BrokerUrl = "wss://broker.example/ws".parse().unwrap();
        assert_eq!(
            (url.scheme, url.port, url.path.as_str()),
            (Scheme::Wss, 443, "/ws")
        );
        let url: BrokerUrl = "tcp://127.0.0.1:1884".parse().unwrap();
        assert_eq!(
            (url.scheme, url.host.as_str(), url.port),
            (Scheme::Mqtt, "127.0.0.1", 1884)
        );
    }

    #[test]
    fn urls_carry_ipv6_hosts_and_credentials() {
        let url: BrokerUrl = "mqtt://[::1]:1999".parse().unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 1999));
        assert_eq!(url.to_string(), "mqtt://[::1]:1999");
        let url: BrokerUrl = "mqtt://alice:s3cret@host".parse().unwrap();
        assert_eq!(url.username.as_deref(), Some("alice"));
        assert_eq!(url.password.as_deref(), Some("s3cret"));
        let options = ClientOptions::from_url(url);
        assert_eq!(options.username.as_deref(), Some("alice"));
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for bad in [
            "127.0.0.1:1883",
            "http://host",
            "mqtt://",
            "mqtt://host:0",
            "mqtt://host:x",
            "mqtt://[::1",
        ] {
            assert!(
                matches!(bad.parse::<BrokerUrl>(), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn connect_packet_follows_the_options() {
        let options = ClientOptions::new("mqtt://localhost")
            .unwrap()
            .version(ProtocolVersion::V5)
            .client_id("c1")
            .clean_start(false)
            .keep_alive(Duration::from_millis(1500))
            .session_expiry(Duration::from_secs(300))
            .receive_maximum(10)
            .user_property("k", "v")
            .last_will(LastWill::new("a/b", "gone", QoS::AtLeastOnce).retain(true));
        let connect = options.to_connect().unwrap();
        assert_eq!(connect.client_id, "c1");
        assert!(!connect.clean_start);
        assert_eq!(connect.keep_alive, 2);
        assert_eq!(connect.properties.session_expiry_interval, Some(300));
        assert_eq!(connect.properties.receive_maximum, NonZeroU16::new(10));
        assert_eq!(connect.properties.user_properties.len(), 1);
        let will = connect.will.unwrap();
        assert_eq!(
            (will.topic.as_str(), will.qos, will.retain),
            ("a/b", QoS::AtLeastOnce, true)
        );
    }

    #[test]
    fn v3_connect_carries_no_properties() {
        let options = ClientOptions::new("mqtt://localhost")
            .unwrap()
            .session_expiry(Duration::from_secs(300))
            .user_property("k", "v");
        assert!(options.to_connect().unwrap().properties.is_empty());
    }

    #[test]
    fn invalid_will_topic_is_reported_at_connect() {
        let options = ClientOptions::new("mqtt://localhost")
            .unwrap()
            .last_will(LastWill::new("a/#", "x", QoS::AtMostOnce));
        assert!(matches!(options.to_connect(), Err(Error::Topic(_))));
    }
}
