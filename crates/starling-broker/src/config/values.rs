//! Value checks shared by both syntaxes (mosquitto.conf and TOML). Each
//! takes the value as written and returns what [`Config`](super::Config)
//! holds, or why the value is wrong.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use crate::storage::Durability;

/// Largest PUBLISH payload MQTT can carry.
const MAX_PAYLOAD: i64 = 268_435_455;
/// Smallest `max_packet_size` Mosquitto accepts: below it not even CONNACK fits.
const MIN_PACKET_SIZE: i64 = 20;

pub(crate) const LOG_TYPES: &[&str] = &[
    "none",
    "error",
    "warning",
    "notice",
    "information",
    "debug",
    "subscribe",
    "unsubscribe",
    "internal",
    "websockets",
    "all",
];
pub(crate) const LOG_DESTS: &[&str] = &[
    "none",
    "stderr",
    "stdout",
    "syslog",
    "topic",
    "dlt",
    "file <path>",
];

fn in_range(n: i64, low: i64, high: i64) -> Result<i64, String> {
    if (low..=high).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is out of range {low}..{high}"))
    }
}

fn u16_value(n: i64) -> Result<u16, String> {
    u16::try_from(n).map_err(|_| format!("{n} is out of range 0..65535"))
}

/// 0 is unlimited (`None`); negative values are errors.
fn zero_unlimited(n: i64) -> Result<Option<usize>, String> {
    if n < 0 {
        return Err(format!("{n} is negative (0 means unlimited)"));
    }
    let n = usize::try_from(n).map_err(|_| format!("{n} is too large"))?;
    Ok((n > 0).then_some(n))
}

pub(crate) fn port(n: i64) -> Result<u16, String> {
    in_range(n, 1, 65535).map(|n| n as u16)
}

pub(crate) fn max_connections(n: i64) -> Result<Option<usize>, String> {
    zero_unlimited(n)
}

pub(crate) fn max_queued_messages(n: i64) -> Result<Option<usize>, String> {
    zero_unlimited(n)
}

pub(crate) fn max_queued_bytes(n: i64) -> Result<Option<usize>, String> {
    zero_unlimited(n)
}

pub(crate) fn max_packet_size(n: i64) -> Result<Option<NonZeroU32>, String> {
    match u32::try_from(n) {
        Ok(0) => Ok(None),
        Ok(size) if n >= MIN_PACKET_SIZE => Ok(NonZeroU32::new(size)),
        _ => Err(format!(
            "{n} is out of range: 0 (unlimited) or {MIN_PACKET_SIZE}..{}",
            u32::MAX
        )),
    }
}

pub(crate) fn message_size_limit(n: i64) -> Result<Option<NonZeroU32>, String> {
    let n = in_range(n, 0, MAX_PAYLOAD)?;
    Ok(NonZeroU32::new(n as u32))
}

/// 0 is unlimited, which the protocol caps at 65535 (Receive Maximum).
pub(crate) fn max_inflight_messages(n: i64) -> Result<u16, String> {
    let n = u16_value(n)?;
    Ok(if n == 0 { u16::MAX } else { n })
}

pub(crate) fn max_keepalive(n: i64) -> Result<u16, String> {
    u16_value(n)
}

/// Seconds a new connection has to send CONNECT (Starling's own directive).
pub(crate) fn connect_timeout(n: i64) -> Result<Duration, String> {
    let n = in_range(n, 1, 3600)?;
    Ok(Duration::from_secs(n as u64))
}

/// `login_delay`: seconds of the first wait after repeated failed logins of
/// one user from one address (it doubles up to `login_delay_max`); 0 turns
/// the delay off (Starling's own).
pub(crate) fn login_delay(n: i64) -> Result<Duration, String> {
    let n = in_range(n, 0, 3600)?;
    Ok(Duration::from_secs(n as u64))
}

/// `login_delay_max`: the longest such wait, in seconds (Starling's own).
pub(crate) fn login_delay_max(n: i64) -> Result<Duration, String> {
    let n = in_range(n, 1, 86_400)?;
    Ok(Duration::from_secs(n as u64))
}

/// PUBLISH packets per second per client; 0 is unlimited (Starling's own).
pub(crate) fn max_publish_rate(n: i64) -> Result<Option<NonZeroU32>, String> {
    let n = in_range(n, 0, i64::from(u32::MAX))?;
    Ok(NonZeroU32::new(n as u32))
}

pub(crate) fn max_topic_alias(n: i64) -> Result<u16, String> {
    u16_value(n)
}

/// Levels of a topic (Starling's own, as EMQX's `max_topic_levels`):
/// 65,536 is the most a topic of 65,535 bytes can have.
pub(crate) fn max_topic_levels(n: i64) -> Result<u32, String> {
    Ok(in_range(n, 1, 65_536)? as u32)
}

/// Seconds between `$SYS` updates; 0 turns them off.
pub(crate) fn sys_interval(n: i64) -> Result<Option<Duration>, String> {
    let n = in_range(n, 0, 65535)?;
    Ok((n > 0).then(|| Duration::from_secs(n as u64)))
}

/// Mosquitto's duration: a whole number followed by `h`, `d`, `w`, `m`
/// (30 days) or `y` (365 days), as in `14d`.
pub(crate) fn expiration(text: &str) -> Result<Duration, String> {
    const HOUR: u64 = 3600;
    const DAY: u64 = 24 * HOUR;
    let bad =
        || format!("'{text}' is not a duration (a whole number and h, d, w, m or y, e.g. 14d)");
    let split = text
        .len()
        .checked_sub(1)
        .filter(|&i| text.is_char_boundary(i))
        .ok_or_else(bad)?;
    let (count, unit) = text.split_at(split);
    let unit = match unit {
        "h" => HOUR,
        "d" => DAY,
        "w" => 7 * DAY,
        "m" => 30 * DAY,
        "y" => 365 * DAY,
        _ => return Err(bad()),
    };
    let count: u64 = count.parse().map_err(|_| bad())?;
    if count == 0 {
        return Err(format!("'{text}' must be longer than zero"));
    }
    let secs = count
        .checked_mul(unit)
        .ok_or_else(|| format!("'{text}' is too long"))?;
    Ok(Duration::from_secs(secs))
}

/// How often `periodic` fsyncs when no interval is given.
pub(crate) const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(1000);
/// The longest `persistence_sync_interval`, in milliseconds (one hour).
const MAX_SYNC_INTERVAL_MS: i64 = 3_600_000;

/// `persistence_sync` as written; [`durability`] turns it into a
/// [`Durability`] once its interval is known too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncMode {
    Sync,
    Periodic,
    Off,
}

/// The directory of the store (`persistence_location`), as given.
pub(crate) fn persistence_location(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("an empty path (expected a directory)".into());
    }
    Ok(PathBuf::from(text))
}

pub(crate) fn persistence_sync(text: &str) -> Result<SyncMode, String> {
    match text {
        "sync" => Ok(SyncMode::Sync),
        "periodic" => Ok(SyncMode::Periodic),
        "off" => Ok(SyncMode::Off),
        _ => Err(format!("'{text}' is not sync, periodic or off")),
    }
}

/// Milliseconds between fsyncs with `periodic` (Starling's own directive).
pub(crate) fn persistence_sync_interval(n: i64) -> Result<Duration, String> {
    let n = in_range(n, 1, MAX_SYNC_INTERVAL_MS)?;
    Ok(Duration::from_millis(n as u64))
}

/// The durability the two settings give: `sync` unless told otherwise, and
/// `periodic` every [`DEFAULT_SYNC_INTERVAL`] unless told otherwise; the
/// interval means nothing to `sync` and `off`.
pub(crate) fn durability(mode: Option<SyncMode>, interval: Option<Duration>) -> Durability {
    match mode.unwrap_or(SyncMode::Sync) {
        SyncMode::Sync => Durability::Sync,
        SyncMode::Periodic => Durability::Periodic(interval.unwrap_or(DEFAULT_SYNC_INTERVAL)),
        SyncMode::Off => Durability::Off,
    }
}

/// A duration in seconds (TOML only); 0 means never.
pub(crate) fn expiration_seconds(n: i64) -> Result<Option<Duration>, String> {
    let n = u64::try_from(n).map_err(|_| format!("{n} is negative (0 means never)"))?;
    Ok((n > 0).then(|| Duration::from_secs(n)))
}

/// Every interface, IPv4 and IPv6, as Mosquitto binds when no address is given.
pub(crate) fn all_interfaces() -> Vec<IpAddr> {
    vec![
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ]
}

/// The addresses a bind address or host name stands for. `localhost` is
/// both loopbacks whatever the resolver says, so it does not depend on
/// `/etc/hosts`.
pub(crate) fn host(text: &str) -> Result<Vec<IpAddr>, String> {
    if text == "localhost" {
        return Ok(vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = bare.parse() {
        return Ok(vec![ip]);
    }
    let resolved = (text, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{text}': {e}"))?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for addr in resolved {
        if !ips.contains(&addr.ip()) {
            ips.push(addr.ip());
        }
    }
    if ips.is_empty() {
        return Err(format!("'{text}' resolves to no address"));
    }
    Ok(ips)
}

pub(crate) fn bind(ips: &[IpAddr], port: u16) -> Vec<SocketAddr> {
    ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect()
}

pub(crate) fn log_type(text: &str) -> Result<(), String> {
    if LOG_TYPES.contains(&text) {
        Ok(())
    } else {
        Err(format!(
            "unknown type '{text}' (expected one of {})",
            LOG_TYPES.join(", ")
        ))
    }
}

/// A log destination as `Logging` holds it: `file <path>` or a name.
pub(crate) fn log_dest(text: &str) -> Result<String, String> {
    let text = text.trim();
    if let Some(path) = text.strip_prefix("file") {
        if path.trim().is_empty() {
            return Err("file needs a path, e.g. file /var/log/starling.log".into());
        }
        if path.starts_with(char::is_whitespace) {
            return Ok(format!("file {}", path.trim()));
        }
    }
    if LOG_DESTS.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "unknown destination '{text}' (expected one of {})",
            LOG_DESTS.join(", ")
        ))
    }
}

/// Adds a log type, keeping the list minimal: `none` and `all` replace
/// everything before them, as in Mosquitto's bit mask.
pub(crate) fn add_log_choice(list: &mut Vec<String>, value: String) {
    if value == "none" || value == "all" {
        list.clear();
        list.push(value);
        return;
    }
    list.retain(|v| v != "none");
    if !list.iter().any(|v| *v == value || v == "all") {
        list.push(value);
    }
}

/// Adds a log destination; there can be only one file.
pub(crate) fn add_log_dest(list: &mut Vec<String>, value: String) -> Result<(), String> {
    if value.starts_with("file ") && list.iter().any(|v| v.starts_with("file ")) {
        return Err("only one file destination may be configured".into());
    }
    add_log_choice(list, value);
    Ok(())
}

/// `log_facility`: syslog's `local0` to `local7`, as Mosquitto takes them (0..7).
pub(crate) fn log_facility(n: i64) -> Result<u8, String> {
    let n = in_range(n, 0, 7)?;
    Ok(u8::try_from(n).unwrap_or_default())
}

/// Why `log_facility` changes nothing in Starling (a warning, never silent).
pub(crate) const LOG_FACILITY_UNUSED: &str =
    "Starling does not log to syslog (log_dest syslog is not supported yet), so there is \
     no syslog facility to choose; ignored";

/// `websockets_log_level`: a libwebsockets bit mask; any `int` Mosquitto takes.
pub(crate) fn websockets_log_level(n: i64) -> Result<i32, String> {
    i32::try_from(n).map_err(|_| format!("{n} is out of range"))
}

/// What `websockets_log_level` maps to in Starling (a warning, never silent).
pub(crate) const WEBSOCKETS_LOG_LEVEL_UNUSED: &str =
    "sets the log mask of libwebsockets, which Starling does not use: its WebSocket \
     connections are logged like any other (log_type, connection_messages); ignored";

/// `user`: a user name, one word.
pub(crate) fn user(text: &str) -> Result<String, String> {
    match text.split_whitespace().collect::<Vec<_>>().as_slice() {
        [] => Err("missing value".into()),
        [name] => Ok((*name).to_string()),
        [_, extra, ..] => Err(format!("unexpected extra value '{extra}'")),
    }
}

/// `pid_file`: a path, kept as written (a relative one is taken from the
/// working directory, as in Mosquitto).
pub(crate) fn pid_file(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        Err("missing value".into())
    } else {
        Ok(PathBuf::from(text))
    }
}

/// `log_timestamp_format`: a `strftime` format, written in full (spaces and all).
pub(crate) fn log_timestamp_format(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("missing value".into())
    } else if text.contains('\0') {
        Err("a format cannot hold a NUL character".into())
    } else {
        Ok(text.to_string())
    }
}
