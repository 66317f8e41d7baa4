//! Mosquitto's `mosquitto.conf` syntax, read into [`Config`].
//!
//! One directive per line, its values separated by whitespace; `#` at the start
//! of a line, or after whitespace, starts a comment. Every line is checked and
//! every problem is reported with its file and line, where Mosquitto stops at
//! the first. Directives that a later Starling version implements (plugins,
//! bridges, ...) are accepted with a warning.
//!
//! Where Starling departs from Mosquitto 2, on purpose:
//! - `include_dir` resolves a relative directory against the including file's
//!   directory; Mosquitto uses the process's working directory, so the same
//!   file would mean different things depending on where the broker starts.
//! - Mosquitto keeps `max_topic_alias` per listener; [`Config`] has one value
//!   for the whole broker, so a file that gives listeners different values
//!   gets a warning and the last value.
//! - `max_connections` after a `listener` line limits that listener, as in
//!   Mosquitto; before the first `listener` line it limits the whole broker.
//! - Only `port` and `bind_address` create the default listener; Mosquitto
//!   also creates it for a listener option written before the first `listener`.
//!   Listener options written before the first `listener` apply to the default
//!   listener, and are an error when there is none.
//! - Relative paths of TLS files (`certfile`, `cafile`, ...) are resolved
//!   against the directory of the file that names them, as `include_dir` is.
//! - Relative paths of `password_file` and `acl_file` are resolved against the
//!   directory of the file that names them too, and `per_listener_settings`
//!   applies wherever it is written (Mosquitto: only to what follows it); see
//!   the `security` module.
//! - Starling's own directives: `connect_timeout`, `max_publish_rate`,
//!   `login_delay`, `login_delay_max`,
//!   `persistence_sync` and `persistence_sync_interval` (broker-wide),
//!   `websockets_path` (per listener).
//! - `persistence` is `true` by default (Mosquitto: `false`). The store is
//!   `starling.db` in `persistence_location`, written as each change happens
//!   (`persistence_sync`), so `persistence_file`, `autosave_interval` and
//!   `autosave_on_changes` are accepted with a warning and not used; Mosquitto's
//!   `mosquitto.db` is not read.
//! - `user`: started as root, the broker drops to that user once its
//!   listeners are bound and its store is open; Mosquitto 2.0 drops right
//!   after reading its configuration (so a port below 1024 or a store only
//!   root may write would stop it). `pid_file` is written after the drop, as
//!   in Mosquitto.
//! - Numbers must be whole numbers (Mosquitto's `atoi` reads `10abc` as 10),
//!   booleans exactly `true` or `false` (Mosquitto also takes `1` and `0`).
//!
//! The value checks live in the private `config::values` module, shared with
//! the TOML syntax so that both accept exactly the same settings; the tests in
//! `mosquitto/tests.rs`.

use std::cmp::Ordering;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::listener::{self, ListenerOptions};
use super::security;
use super::values;
use super::{Config, ConfigProblem, ConfigReport, Listener};

/// The port of the default listener when `bind_address` is given without `port`.
const DEFAULT_PORT: u16 = 1883;

/// Directives that later Starling versions implement: warned about and ignored.
const LATER: &[&str] = &[
    "auth_plugin",
    "auth_plugin_deny_special_chars",
    "global_plugin",
    "max_inflight_bytes",
    "memory_limit",
    "plugin",
    "plugin_load",
    "plugin_use",
];

/// Plugin option families, `auth_opt_<name>` and `plugin_opt_<name>`.
const LATER_PREFIXES: &[&str] = &["auth_opt_", "plugin_opt_"];

/// Directives Mosquitto itself no longer reads; kept harmless for old files.
const OBSOLETE: &[&str] = &["retry_interval", "store_clean_interval"];

/// Options of a bridge, valid only after a `connection` line in the same file.
const BRIDGE: &[&str] = &[
    "address",
    "addresses",
    "bridge_alpn",
    "bridge_attempt_unsubscribe",
    "bridge_bind_address",
    "bridge_cafile",
    "bridge_capath",
    "bridge_certfile",
    "bridge_identity",
    "bridge_insecure",
    "bridge_keyfile",
    "bridge_max_packet_size",
    "bridge_outgoing_retain",
    "bridge_protocol_version",
    "bridge_psk",
    "bridge_receive_maximum",
    "bridge_require_ocsp",
    "bridge_session_expiry_interval",
    "bridge_tls_version",
    "cleansession",
    "clientid",
    "idle_timeout",
    "keepalive_interval",
    "local_cleansession",
    "local_clientid",
    "local_password",
    "local_username",
    "notification_topic",
    "notifications",
    "notifications_local_only",
    "password",
    "remote_clientid",
    "remote_password",
    "remote_username",
    "restart_timeout",
    "round_robin",
    "start_type",
    "threshold",
    "topic",
    "try_private",
    "username",
];

/// Reads a `mosquitto.conf` file and the files it includes.
///
/// Returns the configuration with the warnings, or every error found.
pub fn parse_mosquitto(path: &Path) -> Result<(Config, ConfigReport), ConfigReport> {
    let mut parser = Parser::new(path);
    parser.read_file(path, 0);
    parser.finish()
}

/// The line being read.
#[derive(Clone, Copy)]
struct At<'a> {
    file: &'a Path,
    line: usize,
    directive: &'a str,
}

/// Where a directive was, kept for problems found after the whole file is read.
struct Place {
    file: PathBuf,
    line: usize,
    directive: &'static str,
}

/// State that lives across the main file and the files it includes.
struct Parser {
    main_file: PathBuf,
    config: Config,
    report: ConfigReport,
    /// The line of each listener, to report duplicates.
    listener_lines: Vec<(Place, Vec<SocketAddr>)>,
    default_port: Option<u16>,
    default_bind: Option<Vec<std::net::IpAddr>>,
    /// The last `port` or `bind_address` line: where the default listener is reported.
    default_place: Option<Place>,
    /// Mosquitto 2 leaves local-only mode at the first `listener`, `port` or
    /// `bind_address`; then anonymous access is off unless the file says otherwise.
    local_only: bool,
    /// `allow_anonymous`, `password_file`, `acl_file`... and where each applies.
    security: security::Collector,
    /// The first `log_type` or `log_dest` replaces the default list; later ones add.
    log_types_given: bool,
    log_dests_given: bool,
    /// Last value of `max_topic_alias`, which Mosquitto keeps per listener.
    max_topic_alias_seen: Option<i64>,
    /// The listener whose options are being read: where its `listener` line
    /// is, the index of its first socket in `config.listeners`, its options.
    open_listener: Option<(Place, usize, ListenerOptions)>,
    /// Listener options written before the first `listener` line, for the
    /// default listener, and where the first of them is.
    default_options: ListenerOptions,
    default_options_place: Option<Place>,
    /// `persistence_sync` and `persistence_sync_interval`, combined once the
    /// whole file is read so that their order does not matter.
    persistence_sync: Option<values::SyncMode>,
    persistence_sync_interval: Option<std::time::Duration>,
}

impl Parser {
    fn new(main_file: &Path) -> Parser {
        Parser {
            main_file: main_file.to_path_buf(),
            config: Config::default(),
            report: ConfigReport::default(),
            listener_lines: Vec::new(),
            default_port: None,
            default_bind: None,
            default_place: None,
            local_only: true,
            security: security::Collector::default(),
            log_types_given: false,
            log_dests_given: false,
            max_topic_alias_seen: None,
            open_listener: None,
            default_options: ListenerOptions::default(),
            default_options_place: None,
            persistence_sync: None,
            persistence_sync_interval: None,
        }
    }

    /// Reads one file; `level` is 0 for the main file and 1 for included ones.
    fn read_file(&mut self, path: &Path, level: usize) {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => return self.problem(path, 0, format!("cannot read the file: {e}")),
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let line = line_of(e.as_bytes(), e.utf8_error().valid_up_to());
                return self.problem(path, line, "the file is not valid UTF-8".into());
            }
        };
        // Mosquitto scopes bridges to the file that opened them.
        let mut in_bridge = false;
        for (index, raw) in text.lines().enumerate() {
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            let (directive, rest) = match line.find(char::is_whitespace) {
                Some(split) => (&line[..split], line[split..].trim()),
                None => (line, ""),
            };
            let at = At {
                file: path,
                line: index + 1,
                directive,
            };
            self.directive(at, rest, level, &mut in_bridge);
        }
    }

    fn directive(&mut self, at: At<'_>, rest: &str, level: usize, in_bridge: &mut bool) {
        let args: Vec<&str> = rest.split_whitespace().collect();
        let args = args.as_slice();
        match at.directive {
            "listener" => self.listener(at, args),
            "port" => self.port(at, args),
            "bind_address" => self.bind_address(at, args),
            "per_listener_settings" => {
                if let Some(value) = self.boolean(at, args) {
                    self.security.set_per_listener_settings(value);
                }
            }
            directive if security::DIRECTIVES.contains(&directive) => {
                self.security_setting(at, rest, args);
            }
            "retain_available" => {
                if let Some(value) = self.boolean(at, args) {
                    self.config.retain_available = value;
                }
            }
            "upgrade_outgoing_qos" => {
                if let Some(value) = self.boolean(at, args) {
                    self.config.upgrade_outgoing_qos = value;
                }
            }
            "queue_qos0_messages" => {
                if let Some(value) = self.boolean(at, args) {
                    self.config.queue_qos0_messages = value;
                }
            }
            "max_connections" => {
                // Mosquitto reads anything below 1 as unlimited.
                if let Some(n) = self.number(at, args).map(|n| n.max(0)) {
                    if let Some(value) = self.check(at, values::max_connections(n)) {
                        match &mut self.open_listener {
                            Some((_, _, options)) => options.max_connections = value,
                            None => self.config.max_connections = value,
                        }
                    }
                }
            }
            // libwebsockets' header buffer in Mosquitto; Starling's upgrade has
            // no such buffer to size. Checked as Mosquitto checks it.
            "websockets_headers_size" => {
                if let Some(n) = self.number(at, args) {
                    if (0..=i64::from(u16::MAX)).contains(&n) {
                        self.warn(
                            at,
                            "sizes libwebsockets' header buffer in Mosquitto; Starling's WebSocket \
                             upgrade reads headers of any size up to its own bound, so there is \
                             nothing to set"
                                .into(),
                        );
                    } else {
                        self.error(at, format!("{n} is not between 0 and 65535"));
                    }
                }
            }
            // Mosquitto 2.1: the limit across every listener, wherever it is
            // written (Starling's broker-wide `max_connections`).
            "global_max_connections" => {
                if let Some(n) = self.number(at, args).map(|n| n.max(0)) {
                    if let Some(value) = self.check(at, values::max_connections(n)) {
                        self.config.max_connections = value;
                    }
                }
            }
            "connect_timeout" => {
                if let Some(value) = self.checked(at, args, false, values::connect_timeout) {
                    self.config.connect_timeout = value;
                }
            }
            "max_publish_rate" => {
                if let Some(value) = self.checked(at, args, false, values::max_publish_rate) {
                    self.config.max_publish_rate = value;
                }
            }
            "login_delay" => {
                if let Some(value) = self.checked(at, args, false, values::login_delay) {
                    self.config.login_delay.first = value;
                }
            }
            "login_delay_max" => {
                if let Some(value) = self.checked(at, args, false, values::login_delay_max) {
                    self.config.login_delay.max = value;
                }
            }
            directive if listener::DIRECTIVES.contains(&directive) => {
                self.listener_option(at, rest);
            }
            "max_topic_alias" => {
                if let Some(n) = self.number(at, args) {
                    let previous = self.max_topic_alias_seen.replace(n);
                    self.one_value_for_all_listeners(at, previous, n);
                    if let Some(value) = self.check(at, values::max_topic_alias(n)) {
                        self.config.max_topic_alias = value;
                    }
                }
            }
            "max_topic_levels" => {
                if let Some(value) = self.checked(at, args, false, values::max_topic_levels) {
                    self.config.max_topic_levels = value;
                }
            }
            "max_packet_size" => {
                if let Some(value) = self.checked(at, args, false, values::max_packet_size) {
                    self.config.max_packet_size = value;
                }
            }
            "message_size_limit" => {
                if let Some(value) = self.checked(at, args, false, values::message_size_limit) {
                    self.config.message_size_limit = value;
                }
            }
            "max_inflight_messages" => {
                if let Some(value) = self.checked(at, args, true, values::max_inflight_messages) {
                    self.config.max_inflight_messages = value;
                }
            }
            "max_queued_messages" => {
                if let Some(value) = self.checked(at, args, true, values::max_queued_messages) {
                    self.config.max_queued_messages = value;
                }
            }
            "max_queued_bytes" => {
                if let Some(value) = self.checked(at, args, true, values::max_queued_bytes) {
                    self.config.max_queued_bytes = value;
                }
            }
            "max_keepalive" => {
                if let Some(value) = self.checked(at, args, false, values::max_keepalive) {
                    self.config.max_keepalive = value;
                }
            }
            "sys_interval" => {
                if let Some(value) = self.checked(at, args, false, values::sys_interval) {
                    self.config.sys_interval = value;
                }
            }
            "persistent_client_expiration" => {
                if let Some(text) = self.single(at, args) {
                    if let Some(value) = self.check(at, values::expiration(text)) {
                        self.config.persistent_client_expiration = Some(value);
                    }
                }
            }
            // Mosquitto 2.0 reads `retained_persistence` as `persistence`.
            "persistence" | "retained_persistence" => {
                if let Some(value) = self.boolean(at, args) {
                    self.config.storage.enabled = value;
                }
            }
            "clientid_prefixes" => {
                if let Some(value) = self.single(at, args) {
                    self.config.clientid_prefixes = Some(value.to_string());
                    self.warn(
                        at,
                        "deprecated in Mosquitto 2.0 (use an ACL or a plugin); still applied"
                            .into(),
                    );
                }
            }
            "check_retain_source" => {
                if let Some(value) = self.boolean(at, args) {
                    self.config.check_retain_source = value;
                }
            }
            "set_tcp_nodelay" => {
                if let Some(value) = self.boolean(at, args) {
                    self.config.set_tcp_nodelay = value;
                }
            }
            "allow_duplicate_messages" => {
                if let Some(value) = self.boolean(at, args) {
                    // Mosquitto 2.0 deprecates it; its default, true, is what
                    // Starling does: a client whose subscriptions overlap gets
                    // a message once per matching subscription (3.x) or once
                    // with every subscription identifier (v5, [MQTT-3.3.4-3]).
                    let note = if value {
                        "deprecated in Mosquitto 2.0; true is what Starling does"
                    } else {
                        "deprecated in Mosquitto 2.0, which will behave as if it were true; \
                         Starling does: overlapping subscriptions of a 3.x client each get the message"
                    };
                    self.warn(at, note.into());
                }
            }
            "persistence_location" => {
                // A directory, taking the rest of the line, spaces and all; a
                // relative one stays relative to the working directory, as in
                // Mosquitto.
                if rest.is_empty() {
                    return self.error(at, "missing value".into());
                }
                if let Some(dir) = self.check(at, values::persistence_location(rest)) {
                    self.config.storage.dir = Some(dir);
                }
            }
            "persistence_sync" => {
                if let Some(text) = self.single(at, args) {
                    if let Some(mode) = self.check(at, values::persistence_sync(text)) {
                        self.persistence_sync = Some(mode);
                    }
                }
            }
            "persistence_sync_interval" => {
                if let Some(value) =
                    self.checked(at, args, false, values::persistence_sync_interval)
                {
                    self.persistence_sync_interval = Some(value);
                }
            }
            "persistence_file" => {
                if rest.is_empty() {
                    return self.error(at, "missing value".into());
                }
                self.warn(
                    at,
                    format!(
                        "Starling keeps its store in {} inside persistence_location and does \
                         not read Mosquitto's mosquitto.db; '{rest}' is not used",
                        super::StorageSettings::FILE_NAME
                    ),
                );
            }
            "autosave_interval" | "autosave_on_changes" => {
                self.warn(
                    at,
                    "Starling writes every change as it happens (see persistence_sync); \
                     autosave is not used"
                        .into(),
                );
            }
            "log_timestamp"
            | "log_timestamp_format"
            | "log_facility"
            | "connection_messages"
            | "websockets_log_level"
            | "pid_file"
            | "user" => self.process_or_log(at, rest, args),
            "log_type" => self.log_type(at, args),
            "log_dest" => self.log_dest(at, rest, args),
            "include_dir" => self.include_dir(at, rest, level),
            "connection" => {
                *in_bridge = true;
                let name = args.first().copied().unwrap_or("");
                self.warn(at, format!("bridges are not supported yet; bridge '{name}' and its options are ignored"));
            }
            directive if BRIDGE.contains(&directive) => {
                // The `connection` line already warned about the whole bridge.
                if !*in_bridge {
                    self.error(
                        at,
                        "a bridge option, valid only after a `connection` line in the same file"
                            .into(),
                    );
                }
            }
            directive
                if LATER.contains(&directive)
                    || LATER_PREFIXES.iter().any(|p| directive.starts_with(p)) =>
            {
                self.warn(at, "not supported yet; ignored".into());
            }
            directive if OBSOLETE.contains(&directive) => {
                self.warn(at, "no longer used by Mosquitto 2; ignored".into());
            }
            directive => self.problem(at.file, at.line, format!("unknown directive '{directive}'")),
        }
    }

    /// `listener <port> [<address or host>]`: a new listener.
    fn listener(&mut self, at: At<'_>, args: &[&str]) {
        self.local_only = false;
        // The options that follow are this listener's, even if this line is
        // refused (they are checked, and apply to no socket).
        self.close_listener();
        let open = Place {
            file: at.file.to_path_buf(),
            line: at.line,
            directive: "listener",
        };
        let first = self.config.listeners.len();
        self.open_listener = Some((open, first, ListenerOptions::default()));
        let (port, host) = match args {
            [] => return self.error(at, "missing port".into()),
            [port] => (*port, None),
            [port, host] => (*port, Some(*host)),
            [_, _, extra, ..] => {
                return self.error(at, format!("unexpected extra value '{extra}'"))
            }
        };
        let Some(port) = self.parse_number(at, port) else {
            return;
        };
        if port == 0 && host.is_some() {
            return self.warn(
                at,
                "listeners on Unix sockets (port 0) are not supported yet; ignored".into(),
            );
        }
        let Some(port) = self.check(at, values::port(port)) else {
            return;
        };
        let ips = match host {
            None => values::all_interfaces(),
            Some(host) => match self.check(at, values::host(host)) {
                Some(ips) => ips,
                None => return,
            },
        };
        let place = Place {
            file: at.file.to_path_buf(),
            line: at.line,
            directive: "listener",
        };
        self.add_listener(place, values::bind(&ips, port));
    }

    /// A security setting (`password_file`, `acl_file`, ...): for the listener
    /// being read or the broker; [`security::Collector`] decides at the end.
    fn security_setting(&mut self, at: At<'_>, rest: &str, args: &[&str]) {
        let value = match at.directive {
            // Paths take the rest of the line, spaces and all.
            "password_file" | "acl_file" | "psk_file" => rest,
            _ => match self.single(at, args) {
                Some(value) => value,
                None => return,
            },
        };
        let base = at.file.parent().unwrap_or(Path::new(""));
        let Some(setting) = self.check(at, security::Setting::parse(at.directive, value, base))
        else {
            return;
        };
        let listener = self.open_listener.as_ref().map(|(_, first, _)| *first);
        self.security.add(listener, setting);
    }

    /// A listener-scoped option (TLS, protocol, PROXY protocol, WebSockets):
    /// for the listener being read, or the default listener before any.
    fn listener_option(&mut self, at: At<'_>, rest: &str) {
        if rest.is_empty() {
            return self.error(at, "missing value".into());
        }
        let base = at.file.parent().unwrap_or(Path::new("")).to_path_buf();
        let options = match &mut self.open_listener {
            Some((_, _, options)) => options,
            None => {
                if self.default_options_place.is_none() {
                    self.default_options_place = Some(Place {
                        file: at.file.to_path_buf(),
                        line: at.line,
                        directive: "listener option",
                    });
                }
                &mut self.default_options
            }
        };
        match options.set(at.directive, rest, &base) {
            Some(Ok(None)) | None => {}
            Some(Ok(Some(warning))) => self.warn(at, warning),
            Some(Err(reason)) => self.error(at, reason),
        }
    }

    /// Checks the options of the listener being read and gives them to its sockets.
    fn close_listener(&mut self) {
        if let Some((place, first, options)) = self.open_listener.take() {
            self.apply_listener_options(&place, first, options);
        }
    }

    fn apply_listener_options(&mut self, place: &Place, first: usize, options: ListenerOptions) {
        match options.finish() {
            Ok((settings, warnings)) => {
                for warning in warnings {
                    let reason = format!("{}: {warning}", place.directive);
                    self.report.warnings.push(ConfigProblem {
                        file: place.file.clone(),
                        line: place.line,
                        reason,
                    });
                }
                for listener in &mut self.config.listeners[first..] {
                    listener.settings = settings.clone();
                }
            }
            Err(errors) => {
                for error in errors {
                    let reason = format!("{}: {error}", place.directive);
                    self.problem(&place.file.clone(), place.line, reason);
                }
            }
        }
    }

    /// `port <port>`: the default listener's port (deprecated in Mosquitto 2, still read).
    fn port(&mut self, at: At<'_>, args: &[&str]) {
        self.local_only = false;
        let Some(port) = self.checked(at, args, false, values::port) else {
            return;
        };
        if self.default_port.is_some() {
            // Mosquitto warns too, and uses the last one.
            self.warn(at, "given more than once; the last one is used".into());
        }
        self.default_port = Some(port);
        self.default_place = Some(Place {
            file: at.file.to_path_buf(),
            line: at.line,
            directive: "port",
        });
    }

    /// `bind_address <address or host>`: the default listener's address.
    fn bind_address(&mut self, at: At<'_>, args: &[&str]) {
        self.local_only = false;
        let Some(host) = self.single(at, args) else {
            return;
        };
        if self.default_bind.is_some() {
            return self.error(at, "given more than once".into());
        }
        let Some(ips) = self.check(at, values::host(host)) else {
            return;
        };
        self.default_bind = Some(ips);
        self.default_place = Some(Place {
            file: at.file.to_path_buf(),
            line: at.line,
            directive: "bind_address",
        });
    }

    fn add_listener(&mut self, place: Place, addrs: Vec<SocketAddr>) {
        let clash = self
            .listener_lines
            .iter()
            .find_map(|(earlier, earlier_addrs)| {
                let addr = addrs.iter().find(|a| earlier_addrs.contains(a))?;
                Some(if earlier.file == place.file {
                    format!("{addr} is already configured at line {}", earlier.line)
                } else {
                    format!(
                        "{addr} is already configured at {}:{}",
                        earlier.file.display(),
                        earlier.line
                    )
                })
            });
        if let Some(reason) = clash {
            let reason = format!("{}: {reason}", place.directive);
            return self.problem(&place.file, place.line, reason);
        }
        self.config
            .listeners
            .extend(addrs.iter().map(|&bind| Listener::new(bind)));
        self.listener_lines.push((place, addrs));
    }

    /// The process's and the log's own settings: `user`, `pid_file`,
    /// `log_timestamp`, `log_timestamp_format`, `connection_messages`, and
    /// `log_facility` and `websockets_log_level`, which are checked and
    /// explained (they change nothing in Starling).
    fn process_or_log(&mut self, at: At<'_>, rest: &str, args: &[&str]) {
        let logging = &self.config.logging;
        let process = &self.config.process;
        // Mosquitto refuses these strings given twice.
        let given = match at.directive {
            "user" => process.user.is_some(),
            "pid_file" => process.pid_file.is_some(),
            "log_timestamp_format" => logging.timestamp_format.is_some(),
            _ => false,
        };
        if given {
            return self.error(at, "given more than once".into());
        }
        match at.directive {
            "log_timestamp" => {
                if let Some(value) = self.boolean(at, args) {
                    self.config.logging.timestamp = value;
                }
            }
            "connection_messages" => {
                if let Some(value) = self.boolean(at, args) {
                    self.config.logging.connection_messages = value;
                }
            }
            // The rest of the line, spaces and all, as Mosquitto reads them.
            "log_timestamp_format" => {
                if let Some(format) = self.check(at, values::log_timestamp_format(rest)) {
                    self.config.logging.timestamp_format = Some(format);
                }
            }
            "pid_file" => {
                if let Some(path) = self.check(at, values::pid_file(rest)) {
                    self.config.process.pid_file = Some(path);
                }
            }
            "user" => {
                if let Some(user) = self.check(at, values::user(rest)) {
                    self.config.process.user = Some(user);
                }
            }
            "log_facility" | "websockets_log_level" => {
                let explained = if at.directive == "log_facility" {
                    self.checked(at, args, false, values::log_facility)
                        .map(|_| values::LOG_FACILITY_UNUSED)
                } else {
                    self.checked(at, args, false, values::websockets_log_level)
                        .map(|_| values::WEBSOCKETS_LOG_LEVEL_UNUSED)
                };
                if let Some(reason) = explained {
                    self.warn(at, reason.into());
                }
            }
            // `directive` sends only the names above here.
            _ => {}
        }
    }

    fn log_type(&mut self, at: At<'_>, args: &[&str]) {
        let Some(kind) = self.single(at, args) else {
            return;
        };
        if self.check(at, values::log_type(kind)).is_none() {
            return;
        }
        if !std::mem::replace(&mut self.log_types_given, true) {
            self.config.logging.types.clear();
        }
        values::add_log_choice(&mut self.config.logging.types, kind.to_string());
    }

    fn log_dest(&mut self, at: At<'_>, rest: &str, args: &[&str]) {
        match args {
            [] => return self.error(at, "missing value".into()),
            // `file` takes the rest of the line as its path, spaces and all.
            ["file", ..] => {}
            [_, extra, ..] => return self.error(at, format!("unexpected extra value '{extra}'")),
            [_] => {}
        }
        let Some(dest) = self.check(at, values::log_dest(rest)) else {
            return;
        };
        if !std::mem::replace(&mut self.log_dests_given, true) {
            self.config.logging.destinations.clear();
        }
        if let Err(reason) = values::add_log_dest(&mut self.config.logging.destinations, dest) {
            self.error(at, reason);
        }
    }

    /// `include_dir <dir>`: every `*.conf` file in `dir`, in Mosquitto's order
    /// (case-insensitive first), read as if written here.
    fn include_dir(&mut self, at: At<'_>, rest: &str, level: usize) {
        if rest.is_empty() {
            return self.error(at, "missing value".into());
        }
        if level > 0 {
            // Mosquitto ignores it too, which also rules out include loops.
            return self.warn(
                at,
                "read only in the main configuration file; ignored".into(),
            );
        }
        let dir = match at.file.parent() {
            Some(parent) => parent.join(rest),
            None => PathBuf::from(rest),
        };
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                return self.error(at, format!("cannot read directory {}: {e}", dir.display()))
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                let name = path.file_name().map_or(&[][..], |n| n.as_encoded_bytes());
                name.len() > ".conf".len() && name.ends_with(b".conf")
            })
            .collect();
        files.sort_by(|a, b| mosquitto_order(a, b));
        let main = fs::canonicalize(&self.main_file).ok();
        for file in files {
            if main.is_some() && fs::canonicalize(&file).ok() == main {
                self.error(
                    at,
                    format!(
                        "{} holds the main configuration file, which must not include itself",
                        dir.display()
                    ),
                );
                continue;
            }
            self.read_file(&file, level + 1);
        }
    }

    fn finish(mut self) -> Result<(Config, ConfigReport), ConfigReport> {
        self.close_listener();
        let default_options = std::mem::take(&mut self.default_options);
        let options_place = self.default_options_place.take();
        if let Some(place) = self.default_place.take() {
            let ips = self
                .default_bind
                .take()
                .unwrap_or_else(values::all_interfaces);
            let addrs = values::bind(&ips, self.default_port.unwrap_or(DEFAULT_PORT));
            let first = self.config.listeners.len();
            let at = Place {
                file: place.file.clone(),
                line: place.line,
                directive: place.directive,
            };
            self.add_listener(place, addrs);
            self.apply_listener_options(&at, first, default_options);
        } else if let Some(place) = options_place {
            self.problem(
                &place.file,
                place.line,
                "a listener option before any `listener` line, and no `port` or `bind_address` \
                 to make the default listener: write it after the `listener` line it is for"
                    .into(),
            );
        }
        let mut groups = Vec::new();
        let mut first = 0;
        for (place, addrs) in &self.listener_lines {
            groups.push(security::Group {
                first,
                len: addrs.len(),
                default_listener: place.directive != "listener",
            });
            first += addrs.len();
        }
        std::mem::take(&mut self.security).finish(&mut self.config, self.local_only, &groups);
        self.config.storage.durability =
            values::durability(self.persistence_sync, self.persistence_sync_interval);
        if self.report.errors.is_empty() {
            Ok((self.config, self.report))
        } else {
            Err(self.report)
        }
    }

    fn one_value_for_all_listeners(&mut self, at: At<'_>, previous: Option<i64>, value: i64) {
        if previous.is_some_and(|p| p != value) {
            self.warn(
                at,
                format!("Mosquitto sets this per listener; Starling uses one value for all listeners, the last one ({value})"),
            );
        }
    }

    /// The single value of a directive, or an error.
    fn single<'v>(&mut self, at: At<'_>, args: &[&'v str]) -> Option<&'v str> {
        match args {
            [] => {
                self.error(at, "missing value".into());
                None
            }
            [value] => Some(*value),
            [_, extra, ..] => {
                self.error(at, format!("unexpected extra value '{extra}'"));
                None
            }
        }
    }

    fn boolean(&mut self, at: At<'_>, args: &[&str]) -> Option<bool> {
        match self.single(at, args)? {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                self.error(
                    at,
                    format!("'{other}' is not a boolean (expected true or false)"),
                );
                None
            }
        }
    }

    fn number(&mut self, at: At<'_>, args: &[&str]) -> Option<i64> {
        let text = self.single(at, args)?;
        self.parse_number(at, text)
    }

    fn parse_number(&mut self, at: At<'_>, text: &str) -> Option<i64> {
        match text.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(at, format!("'{text}' is not a whole number"));
                None
            }
        }
    }

    /// A number run through a shared check. `negative_is_zero` keeps Mosquitto's
    /// reading of negative values as 0 ("unlimited") where Mosquitto has it.
    fn checked<T>(
        &mut self,
        at: At<'_>,
        args: &[&str],
        negative_is_zero: bool,
        check: fn(i64) -> Result<T, String>,
    ) -> Option<T> {
        let n = self.number(at, args)?;
        let n = if negative_is_zero { n.max(0) } else { n };
        self.check(at, check(n))
    }

    fn check<T>(&mut self, at: At<'_>, result: Result<T, String>) -> Option<T> {
        result.map_err(|reason| self.error(at, reason)).ok()
    }

    fn error(&mut self, at: At<'_>, reason: String) {
        self.problem(at.file, at.line, format!("{}: {reason}", at.directive));
    }

    fn problem(&mut self, file: &Path, line: usize, reason: String) {
        self.report.errors.push(ConfigProblem {
            file: file.to_path_buf(),
            line,
            reason,
        });
    }

    fn warn(&mut self, at: At<'_>, reason: String) {
        let reason = format!("{}: {reason}", at.directive);
        self.report.warnings.push(ConfigProblem {
            file: at.file.to_path_buf(),
            line: at.line,
            reason,
        });
    }
}

/// The line up to the first `#` that starts the line or follows whitespace.
fn strip_comment(line: &str) -> &str {
    let mut after_space = true;
    for (index, c) in line.char_indices() {
        if c == '#' && after_space {
            return &line[..index];
        }
        after_space = c.is_whitespace();
    }
    line
}

/// The 1-based line holding byte `offset` of `text`.
pub(super) fn line_of(text: &[u8], offset: usize) -> usize {
    text[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Mosquitto's include order: by file name, case-insensitively, with case
/// breaking ties at the first differing character.
fn mosquitto_order(a: &Path, b: &Path) -> Ordering {
    let key = |path: &Path| -> Vec<(u8, u8)> {
        let name = path.file_name().map_or(&[][..], |n| n.as_encoded_bytes());
        name.iter().map(|&c| (c.to_ascii_uppercase(), c)).collect()
    };
    key(a).cmp(&key(b))
}

/// The directive lists, for the configuration reference's test.
#[cfg(test)]
pub(super) mod lists {
    pub(in crate::config) const BRIDGE: &[&str] = super::BRIDGE;
    pub(in crate::config) const LATER: &[&str] = super::LATER;
    pub(in crate::config) const LATER_PREFIXES: &[&str] = super::LATER_PREFIXES;
    pub(in crate::config) const OBSOLETE: &[&str] = super::OBSOLETE;
}

#[cfg(test)]
mod tests;
