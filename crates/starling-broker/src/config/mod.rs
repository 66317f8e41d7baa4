//! `Config`: everything the broker can be told at start-up, with Mosquitto 2's
//! defaults. Two file syntaxes fill it: Starling's TOML ([`toml`]) and Mosquitto's
//! `mosquitto.conf` ([`mosquitto`]); both report every error at once, each with
//! its file, line and reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod listener;
pub mod mosquitto;
#[cfg(test)]
mod reference;
mod security;
pub mod toml;
mod values;

pub use listener::{
    ListenerSettings, Protocol, ProxyProtocol, SocketDomain, TlsSettings, TlsVersion,
    WebSocketSettings,
};

/// Reads a configuration file: Starling's TOML when the name ends in `.toml`,
/// Mosquitto's `mosquitto.conf` syntax otherwise.
///
/// Returns the configuration with the warnings, or every error found; a file
/// that cannot be read is an error at line 0.
pub fn load(path: &Path) -> Result<(Config, ConfigReport), ConfigReport> {
    if path.extension().is_some_and(|ext| ext == "toml") {
        self::toml::parse_toml(path)
    } else {
        mosquitto::parse_mosquitto(path)
    }
}

/// The mosquitto.conf directives (and their TOML keys) a reload signal
/// (SIGHUP) applies; the others take effect at the next start. The TLS
/// listeners' certificate files are read again too, from the paths in force.
/// `docs/configuration.md` says the same, checked by a test.
pub const RELOADED: &[&str] = &[
    "password_file",
    "acl_file",
    "psk_file",
    "allow_anonymous",
    "allow_zero_length_clientid",
    "auto_id_prefix",
    "per_listener_settings",
    "log_timestamp",
    "log_timestamp_format",
    "connection_messages",
];

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The address and port to bind.
    pub bind: SocketAddr,
    /// Its protocol, TLS, PROXY protocol and connection limit (one `listener`
    /// line binding two addresses gives both the same settings).
    pub settings: ListenerSettings,
    /// With `per_listener_settings`: this listener's authentication and access
    /// control. `None`: the broker-wide settings of [`Config`].
    pub security: Option<Security>,
}

impl Listener {
    /// A plain MQTT listener on `bind`.
    pub fn new(bind: SocketAddr) -> Listener {
        Listener {
            bind,
            settings: ListenerSettings::default(),
            security: None,
        }
    }
}

/// The settings Mosquitto's `per_listener_settings` scopes to one listener:
/// who may connect, and what each client may publish and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// Accept clients that give no user name.
    pub allow_anonymous: bool,
    /// Accept a zero-length client identifier (assigning one).
    pub allow_zero_length_clientid: bool,
    /// The start of the client identifiers the broker assigns.
    pub auto_id_prefix: String,
    /// Users and password hashes, in Mosquitto's format (`starling passwd`).
    pub password_file: Option<PathBuf>,
    /// Access control, in Mosquitto's `acl_file` format.
    pub acl_file: Option<PathBuf>,
    /// Pre-shared keys of TLS-PSK listeners (`identity:hexkey` lines).
    pub psk_file: Option<PathBuf>,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            allow_anonymous: true,
            allow_zero_length_clientid: true,
            auto_id_prefix: "auto-".into(),
            password_file: None,
            acl_file: None,
            psk_file: None,
        }
    }
}

/// Where log lines go and which ones are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// Mosquitto `log_type` values in force (`error`, `warning`, `notice`,
    /// `information`, `debug`, `subscribe`, `unsubscribe`, `websockets`, `all`, `none`).
    pub types: Vec<String>,
    /// Mosquitto `log_dest` values (`stderr`, `stdout`, `file <path>`, `syslog`, `topic`, `none`).
    pub destinations: Vec<String>,
    /// Log every packet in and out (`-v` on the command line).
    pub packets: bool,
    /// Start each line with a timestamp (`log_timestamp`; reloaded).
    pub timestamp: bool,
    /// The timestamp as `strftime` writes it in local time
    /// (`log_timestamp_format`); `None`: seconds since the Unix epoch. Reloaded.
    pub timestamp_format: Option<String>,
    /// Log clients connecting and disconnecting (`connection_messages`; reloaded).
    pub connection_messages: bool,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            types: vec![
                "error".into(),
                "warning".into(),
                "notice".into(),
                "information".into(),
            ],
            destinations: vec!["stderr".into()],
            packets: false,
            timestamp: true,
            timestamp_format: None,
            connection_messages: true,
        }
    }
}

/// The default `max_topic_levels`: what Mosquitto accepts (at most 200 `/`).
pub const DEFAULT_MAX_TOPIC_LEVELS: u32 = 201;

/// The broker's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Sockets to listen on. Empty means the defaults: 127.0.0.1 and ::1 on port 1883.
    pub listeners: Vec<Listener>,
    /// Accept clients that give no user name; without a password file, every
    /// client (named or not) is let in or refused by this alone, as in Mosquitto 2.
    pub allow_anonymous: bool,
    /// Most clients connected at once over every listener; `None` is
    /// unlimited. (Each listener may have its own limit too.)
    pub max_connections: Option<usize>,
    /// How long a new connection has, from the TCP accept, to finish its
    /// PROXY header, TLS and WebSocket handshakes and send CONNECT.
    pub connect_timeout: Duration,
    /// Most PUBLISH packets one client may send per second (a token bucket
    /// holding one second's worth); `None` is unlimited.
    pub max_publish_rate: Option<NonZeroU32>,
    /// Largest packet accepted from a client, and announced to v5 clients.
    pub max_packet_size: Option<NonZeroU32>,
    /// Largest PUBLISH payload accepted.
    pub message_size_limit: Option<NonZeroU32>,
    /// QoS 1 and 2 messages in flight to one client at once (v5: the Receive
    /// Maximum the broker sends, and at most the client's).
    pub max_inflight_messages: u16,
    /// Messages queued for one client beyond those in flight; `None` is unlimited.
    pub max_queued_messages: Option<usize>,
    /// Bytes of payload queued for one client; `None` is unlimited.
    pub max_queued_bytes: Option<usize>,
    /// Queue QoS 0 messages for offline persistent sessions too.
    pub queue_qos0_messages: bool,
    /// Longest keep alive a client may ask for; longer ones are capped (v5: Server Keep Alive).
    pub max_keepalive: u16,
    /// Highest Topic Alias a v5 client may use towards the broker.
    pub max_topic_alias: u16,
    /// Most levels a topic name or filter may have (`max_topic_levels`):
    /// Mosquitto refuses more than 200 `/`, so the default is 201 levels. A
    /// PUBLISH, will or SUBSCRIBE over it closes its connection.
    pub max_topic_levels: u32,
    /// Whether retained messages are supported.
    pub retain_available: bool,
    /// Accept a zero-length client identifier (assigning one).
    pub allow_zero_length_clientid: bool,
    /// The start of the client identifiers the broker assigns (`auto-`).
    pub auto_id_prefix: String,
    /// Users and password hashes (Mosquitto's format); `None`: no passwords
    /// are checked, and only `allow_anonymous` decides.
    pub password_file: Option<PathBuf>,
    /// Access control (Mosquitto's format); `None`: every client may publish
    /// and subscribe to everything but writing `$SYS`.
    pub acl_file: Option<PathBuf>,
    /// Pre-shared keys of TLS-PSK listeners (`identity:hexkey` lines).
    pub psk_file: Option<PathBuf>,
    /// Whether the listeners' own security settings ([`Listener::security`])
    /// are used instead of the broker-wide ones.
    pub per_listener_settings: bool,
    /// How repeated failed logins from one address are slowed down.
    pub login_delay: crate::auth::limiter::LoginDelay,
    /// `clientid_prefixes`: only client identifiers that start with this
    /// may connect (others: Not Authorized, as Mosquitto answers).
    pub clientid_prefixes: Option<String>,
    /// `set_tcp_nodelay`: TCP_NODELAY on clients' sockets. Starling's
    /// default is true (Mosquitto's false): it batches its own writes, so
    /// Nagle's algorithm only adds latency.
    pub set_tcp_nodelay: bool,
    /// `check_retain_source`: a retained message is sent to a new subscriber
    /// only if its publisher may still publish to its topic (the ACL in force
    /// when it is sent), as in Mosquitto.
    pub check_retain_source: bool,

    /// How long a 3.x persistent session (or a v5 one with an expiry of 0xFFFFFFFF)
    /// outlives its connection; `None` is forever.
    pub persistent_client_expiration: Option<Duration>,
    /// Deliver at the subscription's QoS rather than the lower of it and the publication's.
    pub upgrade_outgoing_qos: bool,
    /// Interval of `$SYS` updates; `None` turns them off.
    pub sys_interval: Option<Duration>,
    /// Logging.
    pub logging: Logging,
    /// Durable storage: `persistence`, `persistence_location`,
    /// `persistence_sync` (mosquitto.conf) or `[storage]` (TOML).
    pub storage: StorageSettings,
    /// The process: `user` and `pid_file` (neither reloaded).
    pub process: ProcessSettings,
}

/// What the broker does as a process once its listeners are bound and its
/// store is open: the user it runs as and the file holding its pid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSettings {
    /// `user`: when started as root, the user to run as (and its primary
    /// group). `None`: Mosquitto's default, `mosquitto` (`nobody` if there is
    /// no such user); `root` keeps root. No effect when not started as root.
    pub user: Option<String>,
    /// `pid_file`: written with the broker's pid once it runs (as the user
    /// it runs as), removed when it exits.
    pub pid_file: Option<PathBuf>,
}

impl ProcessSettings {
    /// The user a broker started as root runs as: `user`, else `mosquitto`.
    pub const DEFAULT_USER: &'static str = "mosquitto";
}

/// Where and how the broker keeps what must survive a restart (issue 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// Whether anything is stored (`persistence`; on by default, unlike
    /// Mosquitto). Off: sessions and retained messages live in memory only.
    pub enabled: bool,
    /// The directory holding `starling.db` (`persistence_location`); `None`:
    /// [`StorageSettings::default_dir`].
    pub dir: Option<PathBuf>,
    /// When writes reach the disk (`persistence_sync`, `persistence_sync_interval`).
    pub durability: crate::storage::Durability,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            enabled: true,
            dir: None,
            durability: crate::storage::Durability::Sync,
        }
    }
}

impl StorageSettings {
    /// The store's file name inside [`StorageSettings::dir`].
    pub const FILE_NAME: &'static str = "starling.db";

    /// The directory used when none is configured: `$STARLING_DATA_DIR`, else
    /// `$XDG_DATA_HOME/starling`, else `$HOME/.local/share/starling`, else
    /// `./starling-data`.
    pub fn default_dir() -> PathBuf {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = var("STARLING_DATA_DIR") {
            return PathBuf::from(dir);
        }
        if let Some(dir) = var("XDG_DATA_HOME") {
            return PathBuf::from(dir).join("starling");
        }
        if let Some(home) = var("HOME") {
            return PathBuf::from(home).join(".local/share/starling");
        }
        PathBuf::from("starling-data")
    }

    /// The store's file: `starling.db` in the configured or default directory.
    pub fn file(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(StorageSettings::default_dir)
            .join(StorageSettings::FILE_NAME)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: Vec::new(),
            allow_anonymous: true,
            max_connections: None,
            connect_timeout: Duration::from_secs(10),
            max_publish_rate: None,
            max_packet_size: None,
            message_size_limit: None,
            max_inflight_messages: 20,
            max_queued_messages: Some(1000),
            max_queued_bytes: None,
            queue_qos0_messages: false,
            max_keepalive: 65535,
            max_topic_alias: 10,
            max_topic_levels: DEFAULT_MAX_TOPIC_LEVELS,
            retain_available: true,
            allow_zero_length_clientid: true,
            auto_id_prefix: "auto-".into(),
            password_file: None,
            acl_file: None,
            psk_file: None,
            per_listener_settings: false,
            login_delay: crate::auth::limiter::LoginDelay::default(),
            clientid_prefixes: None,
            set_tcp_nodelay: true,
            check_retain_source: false,
            persistent_client_expiration: None,
            upgrade_outgoing_qos: false,
            sys_interval: Some(Duration::from_secs(10)),
            logging: Logging::default(),
            storage: StorageSettings::default(),
            process: ProcessSettings::default(),
        }
    }
}

impl Config {
    /// The broker-wide security settings.
    pub fn security(&self) -> Security {
        Security {
            allow_anonymous: self.allow_anonymous,
            allow_zero_length_clientid: self.allow_zero_length_clientid,
            auto_id_prefix: self.auto_id_prefix.clone(),
            password_file: self.password_file.clone(),
            acl_file: self.acl_file.clone(),
            psk_file: self.psk_file.clone(),
        }
    }

    /// The sockets to bind: the configured listeners, or Mosquitto 2's local-only
    /// default of 127.0.0.1 and ::1 on `port`.
    pub fn listen_addresses(&self, default_port: u16) -> Vec<SocketAddr> {
        if self.listeners.is_empty() {
            return vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), default_port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), default_port),
            ];
        }
        self.listeners.iter().map(|l| l.bind).collect()
    }

    /// The listeners to open: the configured ones, or Mosquitto 2's local-only
    /// default (plain MQTT on 127.0.0.1 and ::1, port `default_port`).
    pub fn listeners_or_default(&self, default_port: u16) -> Vec<Listener> {
        if self.listeners.is_empty() {
            return self
                .listen_addresses(default_port)
                .into_iter()
                .map(Listener::new)
                .collect();
        }
        self.listeners.clone()
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

/// Every error found in the configuration, and the warnings (directives that a
/// later version of Starling implements, accepted and ignored for now).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigReport {
    /// Errors: start-up stops if there is any.
    pub errors: Vec<ConfigProblem>,
    /// Warnings: printed, start-up goes on.
    pub warnings: Vec<ConfigProblem>,
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A directory of its own under the system temp dir, removed on drop.
    pub(super) struct Scratch {
        dir: PathBuf,
    }

    impl Scratch {
        pub(super) fn new(name: &str) -> Scratch {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("starling-config-{}-{name}-{n}", std::process::id()));
            // A stale directory from a killed run would leak its files into this one.
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create scratch dir");
            Scratch { dir }
        }

        pub(super) fn dir(&self) -> &Path {
            &self.dir
        }

        /// Writes `text` to `name` (which may include subdirectories).
        pub(super) fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.join(name);
            fs::create_dir_all(path.parent().expect("has a parent")).expect("create dir");
            fs::write(&path, text).expect("write scratch file");
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn load_picks_the_syntax_by_extension() {
        let scratch = Scratch::new("load");
        let toml = scratch.write("a.toml", "max_keepalive = 60\n");
        let (config, _) = load(&toml).expect("TOML loads");
        assert_eq!(config.max_keepalive, 60);

        let conf = scratch.write("a.conf", "max_keepalive 61\n");
        let (config, _) = load(&conf).expect("mosquitto.conf loads");
        assert_eq!(config.max_keepalive, 61);

        // Anything that is not .toml is Mosquitto syntax, even TOML-looking text.
        let plain = scratch.write("starling", "max_keepalive = 62\n");
        let report = load(&plain).expect_err("not Mosquitto syntax");
        assert_eq!(report.errors[0].line, 1);
    }

    #[test]
    fn load_reports_an_unreadable_file_at_line_0() {
        let scratch = Scratch::new("load-missing");
        for name in ["missing.toml", "missing.conf"] {
            let path = scratch.dir().join(name);
            let report = load(&path).expect_err("missing file");
            assert_eq!(report.errors.len(), 1);
            assert_eq!(report.errors[0].file, path);
            assert_eq!(report.errors[0].line, 0);
            assert!(
                report.errors[0].reason.starts_with("cannot read the file"),
                "{}",
                report.errors[0].reason
            );
        }
    }
}
