//! From options to a connected client: the checks Mosquitto makes before it
//! connects (`client_opts_set()`, `client_id_generate()`), in its order and
//! words, TLS as Mosquitto sets it up ([`super::tls`]), the refusal of what this
//! client cannot do yet (Unix sockets, SOCKS), then the connection itself.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use starling_client::{
    BrokerUrl, Client, ClientOptions, Disconnect, Error, Events, LastWill, PacketObserver,
    ProtocolVersion, ReasonCode, ReconnectPolicy, Scheme,
};
use starling_proto::property::DisconnectProperties;

use super::args::{Config, Tool};
use super::errors::{client_error, Fail};

/// Builds the client options `cfg` describes, with `observer` seeing every
/// packet, after Mosquitto's pre-connection checks.
pub(crate) async fn client_options(
    cfg: &Config,
    observer: PacketObserver,
) -> Result<ClientOptions, Fail> {
    let v5 = cfg.version.is_v5();
    let mut will = None;
    if let Some(topic) = &cfg.will_topic {
        if !v5 && cfg.properties.has_will() {
            return Err(Fail::plain("Error: Problem setting will.\n", 1));
        }
        let properties = cfg.properties.will().map_err(|m| Fail::plain(m, 1))?;
        let payload = Bytes::from(cfg.will_payload.clone().unwrap_or_default());
        will = Some(
            LastWill::new(topic.as_str(), payload, cfg.will_qos)
                .retain(cfg.will_retain)
                .properties(properties),
        );
    }
    let username = match &cfg.username {
        Some(name) => Some(
            String::from_utf8(name.clone())
                .ok()
                .filter(|n| starling_proto::string::validate(n.as_bytes()).is_ok())
                .ok_or_else(credentials_problem)?,
        ),
        None => None,
    };
    if !v5 && cfg.password.is_some() && username.is_none() {
        return Err(credentials_problem());
    }
    let tls = super::tls::options(cfg)?;
    if cfg.unix_socket.is_some() {
        return Err(Fail::plain(
            "Error: --unix is not supported: Starling's client has no Unix socket transport yet.\n",
            1,
        ));
    }
    if cfg.proxy.is_some() {
        return Err(Fail::plain(
            "Error: --proxy is not supported: Starling's client has no SOCKS5 transport yet.\n",
            1,
        ));
    }
    let client_id = client_id(cfg)?;
    if !v5 && cfg.properties.has_connect() {
        return Err(Fail::plain(
            "Unable to connect (This feature is not supported.).\n",
            1,
        ));
    }
    if !v5 {
        if let Some(packet) = cfg.properties.v5_only(cfg.tool == Tool::Pub) {
            return Err(Fail::plain(
                format!("Error: -D {packet} properties need MQTT v5 (-V mqttv5).\n"),
                1,
            ));
        }
    }
    let port = u16::try_from(cfg.port())
        .map_err(|_| Fail::plain(format!("Error: Invalid port given: {}\n", cfg.port()), 1))?;
    let url = BrokerUrl {
        scheme: if tls.is_some() {
            Scheme::Mqtts
        } else {
            Scheme::Mqtt
        },
        host: cfg.host.clone(),
        port,
        path: String::new(),
        username: None,
        password: None,
    };
    // Mosquitto resolves the host before it connects, and says so when it cannot.
    if tokio::net::lookup_host((cfg.host.as_str(), port))
        .await
        .map_or(true, |mut addrs| addrs.next().is_none())
    {
        return Err(lookup_error());
    }
    let mut properties = cfg.properties.connect().map_err(|m| Fail::plain(m, 1))?;
    if v5 && cfg.msg_count > 0 && cfg.msg_count < 20 && properties.receive_maximum.is_none() {
        // As Mosquitto: do not let the broker send more than -C messages at once.
        properties.receive_maximum = std::num::NonZeroU16::new(cfg.msg_count as u16);
    }
    let keep_alive = Duration::from_secs(u64::from(cfg.keepalive));
    let mut options = ClientOptions::from_url(url)
        .version(cfg.version)
        .client_id(client_id)
        .clean_start(cfg.clean_session)
        .keep_alive(keep_alive)
        .connect_properties(properties)
        .max_inflight(cfg.max_inflight)
        .reconnect(reconnect_policy(cfg))
        .connect_timeout(keep_alive + keep_alive / 2)
        .packet_observer(observer);
    if let Some(name) = username {
        options = options.username(name);
    }
    if let Some(password) = &cfg.password {
        options = options.password(Bytes::from(password.clone()));
    }
    if let Some(will) = will {
        options = options.last_will(will);
    }
    if let Some(address) = &cfg.bind_address {
        options = options.bind_address(bind_address(address).await?);
    }
    if let Some(tls) = tls {
        options = options.tls(tls);
    }
    Ok(options)
}

/// Mosquitto's clients reconnect (every second) when their loop runs in the
/// background: `sub`, and `pub -l`; the others stop.
fn reconnect_policy(cfg: &Config) -> ReconnectPolicy {
    let reconnects = match cfg.tool {
        Tool::Sub => true,
        Tool::Pub => cfg.payload == Some(super::args::Payload::Lines),
        Tool::Rr => false,
    };
    if reconnects {
        ReconnectPolicy::Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(1),
        }
    } else {
        ReconnectPolicy::Off
    }
}

fn credentials_problem() -> Fail {
    Fail::plain("Error: Problem setting username and/or password.\n", 1)
}

fn lookup_error() -> Fail {
    Fail::plain("Unable to connect (Lookup error.).\n", 1)
}

/// `-i`, `-I` plus the process id, or for MQTT 3.1 (which needs an identifier)
/// a random `mosq-` one as libmosquitto makes; otherwise empty, for the broker
/// to assign.
fn client_id(cfg: &Config) -> Result<String, Fail> {
    let id = match (&cfg.id, &cfg.id_prefix) {
        (Some(id), _) => id.clone(),
        (None, Some(prefix)) => {
            let mut id = prefix.clone();
            id.extend_from_slice(std::process::id().to_string().as_bytes());
            id
        }
        (None, None) if cfg.version == ProtocolVersion::V3_1 => {
            const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
            let mut id = b"mosq-".to_vec();
            id.extend((0..18).map(|_| CHARS[rand::random_range(0..CHARS.len())]));
            id
        }
        (None, None) => Vec::new(),
    };
    String::from_utf8(id)
        .ok()
        .filter(|id| starling_proto::string::validate(id.as_bytes()).is_ok())
        .ok_or_else(|| {
            Fail::plain(
                match cfg.tool {
                    Tool::Pub => "Error: Invalid id.\n",
                    Tool::Sub | Tool::Rr => "Error: Invalid id and/or clean_session.\n",
                },
                1,
            )
        })
}

/// `-A`: an address, or a name resolved to its first address.
async fn bind_address(address: &str) -> Result<IpAddr, Fail> {
    if let Ok(ip) = address.parse() {
        return Ok(ip);
    }
    tokio::net::lookup_host((address, 0))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|addr| addr.ip())
        .ok_or_else(lookup_error)
}

/// Connects, or says why not as Mosquitto does.
///
/// TLS failures read as libmosquitto's: a CA, certificate or key file that
/// cannot be used fails `mosquitto_connect()` itself ("Unable to connect (A TLS
/// error occurred.)." and status 1); a handshake that fails (a broker
/// certificate that does not verify) "Error: A TLS error occurred." and status
/// 8, the form mosquitto_pub gives when the broker answers after
/// `mosquitto_connect()` has returned, as it often does; an alert after the
/// handshake (a client certificate the broker rejects, in TLS 1.3) loses the
/// connection (status 7). With `-d`, the reason is printed first on stdout,
/// where libmosquitto logs OpenSSL's.
pub(crate) async fn connect(
    cfg: &Config,
    options: ClientOptions,
) -> Result<(Client, Events), Fail> {
    Client::connect(options).await.map_err(|error| {
        if cfg.debug {
            if let Some(reason) = tls_reason(&error) {
                use std::io::Write;
                let _ = writeln!(std::io::stdout().lock(), "Error: TLS: {reason}");
            }
        }
        match &error {
            // The client library's words for a failed handshake (transport.rs);
            // anything else is the setting up of TLS.
            Error::Tls(reason) if !reason.starts_with("handshake with ") => {
                Fail::plain("Unable to connect (A TLS error occurred.).\n", 1)
            }
            _ => client_error(cfg.tool, cfg.version, &error),
        }
    })
}

/// What went wrong with TLS, if `error` is a TLS failure.
fn tls_reason(error: &Error) -> Option<String> {
    match error {
        Error::Tls(reason) => Some(reason.clone()),
        // The TLS stream's own failures already say "TLS: ".
        Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            let text = e.to_string();
            Some(text.strip_prefix("TLS: ").unwrap_or(&text).to_string())
        }
        _ => None,
    }
}

/// The DISCONNECT the tool ends with: `reason` and the `-D disconnect` properties.
pub(crate) fn disconnect_packet(
    reason: ReasonCode,
    properties: &DisconnectProperties,
    version: ProtocolVersion,
) -> Disconnect {
    let mut disconnect = Disconnect::new(reason);
    if version.is_v5() {
        disconnect.properties = properties.clone().into();
    }
    disconnect
}
