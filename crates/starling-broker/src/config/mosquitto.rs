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
//!   `persistence_sync` and `persistence_sync_interval` (broker-wide),
//!   `websockets_path` (per listener).
//! - `persistence` is `true` by default (Mosquitto: `false`). The store is
//!   `starling.db` in `persistence_location`, written as each change happens
//!   (`persistence_sync`), so `persistence_file`, `autosave_interval` and
//!   `autosave_on_changes` are accepted with a warning and not used; Mosquitto's
//!   `mosquitto.db` is not read.
//! - Numbers must be whole numbers (Mosquitto's `atoi` reads `10abc` as 10),
//!   booleans exactly `true` or `false` (Mosquitto also takes `1` and `0`).
//!
//! The value checks live in the private `values` module, shared with the TOML
//! syntax so that both accept exactly the same settings.

use std::cmp::Ordering;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::listener::{self, ListenerOptions};
use super::security;
use super::{Config, ConfigProblem, ConfigReport, Listener};

/// The port of the default listener when `bind_address` is given without `port`.
const DEFAULT_PORT: u16 = 1883;

/// Directives that later Starling versions implement: warned about and ignored.
const LATER: &[&str] = &[
    "accept_protocol_versions",
    "allow_duplicate_messages",
    "auth_plugin",
    "auth_plugin_deny_special_chars",
    "bind_interface",
    "check_retain_source",
    "clientid_prefixes",
    "connection_messages",
    "global_max_connections",
    "global_plugin",
    "listener_allow_anonymous",
    "listener_auto_id_prefix",
    "log_facility",
    "log_timestamp",
    "log_timestamp_format",
    "max_inflight_bytes",
    "max_qos",
    "maximum_qos",
    "memory_limit",
    "mount_point",
    "pid_file",
    "plugin",
    "plugin_load",
    "plugin_use",
    "psk_file",
    "retained_persistence",
    "set_tcp_nodelay",
    "socket_domain",
    "use_username_as_clientid",
    "user",
    "websockets_headers_size",
    "websockets_log_level",
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
            "persistence" => {
                if let Some(value) = self.boolean(at, args) {
                    self.config.storage.enabled = value;
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
            "password_file" | "acl_file" => rest,
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

/// Value checks shared by both syntaxes. Each takes the value as written and
/// returns what [`Config`] holds, or why the value is wrong.
pub(super) mod values {
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
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::num::NonZeroU32;
    use std::time::Duration;

    use super::super::tests::Scratch;
    use super::super::StorageSettings;
    use super::*;
    use crate::storage::Durability;

    const DAY: u64 = 86_400;

    fn parse(text: &str) -> Result<(Config, ConfigReport), ConfigReport> {
        let scratch = Scratch::new("mosquitto");
        parse_mosquitto(&scratch.write("mosquitto.conf", text))
    }

    /// The configuration, which must come with no error and no warning.
    fn valid(text: &str) -> Config {
        match parse(text) {
            Ok((config, report)) => {
                assert!(
                    report.warnings.is_empty(),
                    "unexpected warnings: {:#?}",
                    report.warnings
                );
                config
            }
            Err(report) => panic!("unexpected errors: {:#?}", report.errors),
        }
    }

    /// The errors, as (line, reason).
    fn errors(text: &str) -> Vec<(usize, String)> {
        let report = parse(text).expect_err("errors expected");
        report
            .errors
            .into_iter()
            .map(|p| (p.line, p.reason))
            .collect()
    }

    fn warnings(text: &str) -> Vec<(usize, String)> {
        let (_, report) =
            parse(text).unwrap_or_else(|r| panic!("unexpected errors: {:#?}", r.errors));
        report
            .warnings
            .into_iter()
            .map(|p| (p.line, p.reason))
            .collect()
    }

    fn listeners(addrs: &[&str]) -> Vec<Listener> {
        addrs
            .iter()
            .map(|a| Listener::new(a.parse::<SocketAddr>().expect("address")))
            .collect()
    }

    #[test]
    fn sample_with_every_directive() {
        let scratch = Scratch::new("sample");
        scratch.write("conf.d/extra.conf", "listener 9001 localhost\n");
        let main = scratch.write(
            "mosquitto.conf",
            "# A mosquitto.conf using every directive Starling reads.\n\
             per_listener_settings false\n\
             allow_anonymous true\n\
             allow_zero_length_clientid false\n\
             auto_id_prefix dev-\n\
             password_file /etc/starling/passwd\n\
             acl_file /etc/starling/acl\n\
             max_connections 500\n\
             max_packet_size 1048576\n\
             message_size_limit 65536\n\
             max_inflight_messages 10\n\
             max_queued_messages 200\n\
             max_queued_bytes 1000000\n\
             max_keepalive 300\n\
             max_topic_alias 5\n\
             retain_available false\n\
             persistent_client_expiration 14d\n\
             upgrade_outgoing_qos true\n\
             sys_interval 30\n\
             queue_qos0_messages true\n\
             persistence false\n\
             persistence_location /var/lib/mosquitto/\n\
             persistence_sync_interval 250\n\
             persistence_sync periodic\n\
             log_type error\n\
             log_type warning\n\
             log_type subscribe\n\
             log_dest stdout\n\
             log_dest file /var/log/starling broker.log\n\
             port 1884\n\
             bind_address 127.0.0.1\n\
             listener 1883\n\
             listener 8883 ::1\n\
             include_dir conf.d\n",
        );
        let (config, report) = parse_mosquitto(&main).expect("valid");
        assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
        let expected = Config {
            // The default listener (port, bind_address) comes last, as in Mosquitto.
            listeners: listeners(&[
                "0.0.0.0:1883",
                "[::]:1883",
                "[::1]:8883",
                "127.0.0.1:9001",
                "[::1]:9001",
                "127.0.0.1:1884",
            ]),
            allow_anonymous: true,
            max_connections: Some(500),
            connect_timeout: Duration::from_secs(10),
            max_publish_rate: None,
            max_packet_size: NonZeroU32::new(1_048_576),
            message_size_limit: NonZeroU32::new(65_536),
            max_inflight_messages: 10,
            max_queued_messages: Some(200),
            max_queued_bytes: Some(1_000_000),
            queue_qos0_messages: true,
            max_keepalive: 300,
            max_topic_alias: 5,
            max_topic_levels: 201,
            retain_available: false,
            allow_zero_length_clientid: false,
            auto_id_prefix: "dev-".into(),
            password_file: Some("/etc/starling/passwd".into()),
            acl_file: Some("/etc/starling/acl".into()),
            per_listener_settings: false,
            login_delay: Default::default(),
            persistent_client_expiration: Some(Duration::from_secs(14 * DAY)),
            upgrade_outgoing_qos: true,
            sys_interval: Some(Duration::from_secs(30)),
            logging: super::super::Logging {
                types: vec!["error".into(), "warning".into(), "subscribe".into()],
                destinations: vec!["stdout".into(), "file /var/log/starling broker.log".into()],
                packets: false,
            },
            storage: StorageSettings {
                enabled: false,
                dir: Some("/var/lib/mosquitto/".into()),
                durability: Durability::Periodic(Duration::from_millis(250)),
            },
        };
        assert_eq!(config, expected);
    }

    #[test]
    fn no_directive_leaves_the_defaults() {
        assert_eq!(valid("# nothing but a comment\n\n"), Config::default());
    }

    #[test]
    fn listener_without_address_binds_every_interface() {
        let config = valid("listener 1883\n");
        assert_eq!(config.listeners, listeners(&["0.0.0.0:1883", "[::]:1883"]));
    }

    #[test]
    fn listener_addresses() {
        let config = valid(
            "listener 1884 127.0.0.1\n\
             listener 1885 localhost\n\
             listener 1886 [::1]\n\
             listener 1887 ::\n",
        );
        let expected = listeners(&[
            "127.0.0.1:1884",
            "127.0.0.1:1885",
            "[::1]:1885",
            "[::1]:1886",
            "[::]:1887",
        ]);
        assert_eq!(config.listeners, expected);
    }

    #[test]
    fn port_alone_listens_on_every_interface() {
        let config = valid("port 1884\n");
        assert_eq!(config.listeners, listeners(&["0.0.0.0:1884", "[::]:1884"]));
    }

    #[test]
    fn bind_address_alone_uses_port_1883() {
        assert_eq!(
            valid("bind_address 127.0.0.1\n").listeners,
            listeners(&["127.0.0.1:1883"])
        );
        let both = valid("bind_address ::1\nport 1999\n");
        assert_eq!(both.listeners, listeners(&["[::1]:1999"]));
    }

    #[test]
    fn a_listener_turns_anonymous_access_off_unless_allowed() {
        assert!(
            valid("max_keepalive 60\n").allow_anonymous,
            "local-only keeps anonymous access"
        );
        assert!(!valid("listener 1883\n").allow_anonymous);
        assert!(!valid("port 1883\n").allow_anonymous);
        assert!(!valid("bind_address 127.0.0.1\n").allow_anonymous);
        assert!(valid("listener 1883\nallow_anonymous true\n").allow_anonymous);
        assert!(valid("allow_anonymous true\nlistener 1883\n").allow_anonymous);
        assert!(!valid("allow_anonymous false\n").allow_anonymous);
    }

    #[test]
    fn zero_and_negative_values_mean_unlimited_as_in_mosquitto() {
        let config = valid(
            "max_connections -1\n\
             max_packet_size 0\n\
             message_size_limit 0\n\
             max_inflight_messages 0\n\
             max_queued_messages 0\n\
             max_queued_bytes 0\n\
             sys_interval 0\n",
        );
        assert_eq!(config.max_connections, None);
        assert_eq!(config.max_packet_size, None);
        assert_eq!(config.message_size_limit, None);
        assert_eq!(config.max_inflight_messages, 65535);
        assert_eq!(config.max_queued_messages, None);
        assert_eq!(config.max_queued_bytes, None);
        assert_eq!(config.sys_interval, None);

        let negative = valid(
            "max_connections 0\nmax_inflight_messages -5\nmax_queued_messages -1\nmax_queued_bytes -1\n",
        );
        assert_eq!(negative.max_connections, None);
        assert_eq!(negative.max_inflight_messages, 65535);
        assert_eq!(negative.max_queued_messages, None);
        assert_eq!(negative.max_queued_bytes, None);
    }

    #[test]
    fn limits_at_their_bounds() {
        let config = valid(
            "max_keepalive 0\nmax_topic_alias 65535\nmax_packet_size 20\n\
             message_size_limit 268435455\nmax_inflight_messages 65535\nsys_interval 65535\n\
             max_topic_levels 65536\n",
        );
        assert_eq!(config.max_topic_levels, 65536);
        assert_eq!(
            valid("").max_topic_levels,
            201,
            "Mosquitto's limit by default"
        );
        assert_eq!(config.max_keepalive, 0);
        assert_eq!(config.max_topic_alias, 65535);
        assert_eq!(config.max_packet_size, NonZeroU32::new(20));
        assert_eq!(config.message_size_limit, NonZeroU32::new(268_435_455));
        assert_eq!(config.max_inflight_messages, 65535);
        assert_eq!(config.sys_interval, Some(Duration::from_secs(65535)));
    }

    #[test]
    fn expiration_units() {
        for (text, secs) in [
            ("2h", 2 * 3600),
            ("14d", 14 * DAY),
            ("1w", 7 * DAY),
            ("1m", 30 * DAY),
            ("1y", 365 * DAY),
        ] {
            let config = valid(&format!("persistent_client_expiration {text}\n"));
            assert_eq!(
                config.persistent_client_expiration,
                Some(Duration::from_secs(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn persistence_is_on_by_default_unlike_mosquitto() {
        let storage = valid("max_keepalive 60\n").storage;
        assert_eq!(storage, StorageSettings::default());
        assert!(storage.enabled);
        assert_eq!(storage.dir, None);
        assert_eq!(storage.durability, Durability::Sync);
        assert!(!valid("persistence false\n").storage.enabled);
        assert!(
            valid("persistence false\npersistence true\n")
                .storage
                .enabled
        );
    }

    #[test]
    fn persistence_location_is_kept_as_given() {
        let dir = |text: &str| valid(text).storage.dir;
        // Mosquitto's value is a directory, usually with a trailing slash.
        assert_eq!(
            dir("persistence_location /var/lib/mosquitto/\n"),
            Some("/var/lib/mosquitto/".into())
        );
        let storage = valid("persistence_location /var/lib/mosquitto/\n").storage;
        assert_eq!(
            storage.file(),
            Path::new("/var/lib/mosquitto/starling.db"),
            "the trailing slash changes nothing"
        );
        // Relative: to the working directory, as in Mosquitto, not to this file.
        assert_eq!(dir("persistence_location data\n"), Some("data".into()));
        assert_eq!(
            dir("persistence_location /srv/my data  # comment\n"),
            Some("/srv/my data".into()),
            "the rest of the line, spaces and all"
        );
    }

    #[test]
    fn persistence_sync_modes() {
        let durability = |text: &str| valid(text).storage.durability;
        assert_eq!(durability("persistence_sync sync\n"), Durability::Sync);
        assert_eq!(durability("persistence_sync off\n"), Durability::Off);
        assert_eq!(
            durability("persistence_sync periodic\n"),
            Durability::Periodic(Duration::from_millis(1000)),
            "1000 ms unless told otherwise"
        );
        // The interval means something to periodic only.
        assert_eq!(
            durability("persistence_sync_interval 50\n"),
            Durability::Sync
        );
        assert_eq!(
            durability("persistence_sync off\npersistence_sync_interval 50\n"),
            Durability::Off
        );
        assert_eq!(
            durability("persistence_sync_interval 3600000\npersistence_sync periodic\n"),
            Durability::Periodic(Duration::from_secs(3600))
        );
    }

    #[test]
    fn persistence_sync_and_its_interval_in_either_order() {
        let want = Durability::Periodic(Duration::from_millis(20));
        let scratch = Scratch::new("sync-order");
        scratch.write("conf.d/sync.conf", "persistence_sync periodic\n");
        let main = scratch.write(
            "mosquitto.conf",
            "persistence_sync_interval 20\ninclude_dir conf.d\n",
        );
        let (config, _) = parse_mosquitto(&main).expect("valid");
        assert_eq!(config.storage.durability, want, "across files too");
        for text in [
            "persistence_sync periodic\npersistence_sync_interval 20\n",
            "persistence_sync_interval 20\npersistence_sync periodic\n",
            "persistence_sync_interval 5\npersistence_sync periodic\npersistence_sync_interval 20\n",
        ] {
            assert_eq!(valid(text).storage.durability, want, "{text:?}");
        }
    }

    #[test]
    fn mosquitto_s_own_store_settings_are_warned_about_and_not_used() {
        let text = "persistence_file mosquitto.db\n\
                    autosave_interval 1800\n\
                    autosave_on_changes false\n\
                    persistence true\n\
                    persistence_location /var/lib/mosquitto/\n";
        assert_eq!(
            warnings(text),
            [
                (
                    1,
                    "persistence_file: Starling keeps its store in starling.db inside \
                     persistence_location and does not read Mosquitto's mosquitto.db; \
                     'mosquitto.db' is not used"
                        .to_string()
                ),
                (
                    2,
                    "autosave_interval: Starling writes every change as it happens \
                     (see persistence_sync); autosave is not used"
                        .to_string()
                ),
                (
                    3,
                    "autosave_on_changes: Starling writes every change as it happens \
                     (see persistence_sync); autosave is not used"
                        .to_string()
                ),
            ]
        );
        let (config, _) = parse(text).expect("valid");
        assert_eq!(
            config.storage.file(),
            Path::new("/var/lib/mosquitto/starling.db")
        );
    }

    #[test]
    fn log_type_replaces_the_default_then_accumulates() {
        let types = |text: &str| valid(text).logging.types;
        assert_eq!(types("log_type debug\n"), ["debug"]);
        assert_eq!(
            types("log_type debug\nlog_type error\nlog_type debug\n"),
            ["debug", "error"]
        );
        assert_eq!(types("log_type error\nlog_type none\n"), ["none"]);
        assert_eq!(types("log_type none\nlog_type error\n"), ["error"]);
        assert_eq!(types("log_type all\nlog_type debug\n"), ["all"]);
        assert_eq!(types("log_type debug\nlog_type all\n"), ["all"]);
    }

    #[test]
    fn log_dest_replaces_the_default_then_accumulates() {
        let dests = |text: &str| valid(text).logging.destinations;
        assert_eq!(
            dests("log_dest syslog\nlog_dest topic\n"),
            ["syslog", "topic"]
        );
        assert_eq!(dests("log_dest none\n"), ["none"]);
        assert_eq!(
            dests("log_dest file   /tmp/a b.log  \n"),
            ["file /tmp/a b.log"]
        );
        assert_eq!(
            errors("log_dest file /tmp/a.log\nlog_dest file /tmp/b.log\n"),
            [(
                2,
                "log_dest: only one file destination may be configured".to_string()
            )]
        );
    }

    #[test]
    fn comments_whitespace_and_crlf() {
        let config = valid(
            "# comment\r\n\
             \t  # indented comment\r\n\
             max_keepalive\t60   # trailing comment\r\n\
             \r\n\
             \x20 sys_interval 5\r\n",
        );
        assert_eq!(config.max_keepalive, 60);
        assert_eq!(config.sys_interval, Some(Duration::from_secs(5)));
    }

    /// Every kind of error, each with the line it is on: all reported from one file.
    #[test]
    fn every_error_is_reported_with_its_line() {
        let cases: &[(&str, &str)] = &[
            ("max_keepalive 70000", "max_keepalive: 70000 is out of range 0..65535"),
            ("max_keepalive", "max_keepalive: missing value"),
            ("max_keepalive 60 70", "max_keepalive: unexpected extra value '70'"),
            ("max_keepalive sixty", "max_keepalive: 'sixty' is not a whole number"),
            ("allow_anonymous yes", "allow_anonymous: 'yes' is not a boolean (expected true or false)"),
            ("retain_available 1", "retain_available: '1' is not a boolean (expected true or false)"),
            ("queue_qos0_messages TRUE", "queue_qos0_messages: 'TRUE' is not a boolean"),
            ("upgrade_outgoing_qos", "upgrade_outgoing_qos: missing value"),
            ("allow_zero_length_clientid false true", "allow_zero_length_clientid: unexpected extra value 'true'"),
            ("per_listener_settings maybe", "per_listener_settings: 'maybe' is not a boolean"),
            ("frobnicate 3", "unknown directive 'frobnicate'"),
            ("listener", "listener: missing port"),
            ("listener 0", "listener: 0 is out of range 1..65535"),
            ("listener 70000", "listener: 70000 is out of range 1..65535"),
            ("listener x1883", "listener: 'x1883' is not a whole number"),
            ("listener 1890 127.0.0.1 extra", "listener: unexpected extra value 'extra'"),
            ("listener 1891 no-such-host.invalid", "listener: cannot resolve 'no-such-host.invalid'"),
            ("port 0", "port: 0 is out of range 1..65535"),
            ("bind_address", "bind_address: missing value"),
            ("max_connections lots", "max_connections: 'lots' is not a whole number"),
            ("max_packet_size 10", "max_packet_size: 10 is out of range: 0 (unlimited) or 20..4294967295"),
            ("max_packet_size 5000000000", "max_packet_size: 5000000000 is out of range"),
            ("message_size_limit 268435456", "message_size_limit: 268435456 is out of range 0..268435455"),
            ("max_inflight_messages 65536", "max_inflight_messages: 65536 is out of range 0..65535"),
            ("max_queued_messages 1.5", "max_queued_messages: '1.5' is not a whole number"),
            ("max_queued_bytes many", "max_queued_bytes: 'many' is not a whole number"),
            ("max_topic_alias -1", "max_topic_alias: -1 is out of range 0..65535"),
            ("max_topic_levels 0", "max_topic_levels: 0 is out of range 1..65536"),
            ("max_topic_levels 65537", "max_topic_levels: 65537 is out of range 1..65536"),
            ("sys_interval 70000", "sys_interval: 70000 is out of range 0..65535"),
            (
                "persistent_client_expiration 14x",
                "persistent_client_expiration: '14x' is not a duration (a whole number and h, d, w, m or y, e.g. 14d)",
            ),
            ("persistent_client_expiration d", "persistent_client_expiration: 'd' is not a duration"),
            ("persistent_client_expiration 0d", "persistent_client_expiration: '0d' must be longer than zero"),
            ("persistence yes", "persistence: 'yes' is not a boolean (expected true or false)"),
            ("persistence", "persistence: missing value"),
            ("persistence_location", "persistence_location: missing value"),
            ("persistence_file", "persistence_file: missing value"),
            ("persistence_sync fast", "persistence_sync: 'fast' is not sync, periodic or off"),
            ("persistence_sync", "persistence_sync: missing value"),
            ("persistence_sync off now", "persistence_sync: unexpected extra value 'now'"),
            ("persistence_sync_interval 0", "persistence_sync_interval: 0 is out of range 1..3600000"),
            ("persistence_sync_interval -5", "persistence_sync_interval: -5 is out of range 1..3600000"),
            ("persistence_sync_interval 3600001", "persistence_sync_interval: 3600001 is out of range 1..3600000"),
            ("persistence_sync_interval 1s", "persistence_sync_interval: '1s' is not a whole number"),
            ("log_type loud", "log_type: unknown type 'loud' (expected one of none, error,"),
            ("log_type", "log_type: missing value"),
            ("log_dest paper", "log_dest: unknown destination 'paper' (expected one of none, stderr,"),
            ("log_dest file", "log_dest: file needs a path"),
            ("log_dest stderr stdout", "log_dest: unexpected extra value 'stdout'"),
            ("include_dir", "include_dir: missing value"),
            ("include_dir does-not-exist", "include_dir: cannot read directory"),
            ("remote_username bob", "remote_username: a bridge option, valid only after a `connection` line"),
        ];
        // Valid lines and blank lines between the bad ones, so that line numbers
        // are not just positions in the list.
        let mut text = String::from("# errors, one per kind\n");
        let mut expected = Vec::new();
        for (index, (line, reason)) in cases.iter().enumerate() {
            text.push_str(line);
            text.push('\n');
            expected.push((text.lines().count(), *reason));
            text.push_str(if index % 2 == 0 {
                "max_queued_messages 100\n"
            } else {
                "\n"
            });
        }
        let found = errors(&text);
        assert_eq!(found.len(), cases.len(), "{found:#?}");
        for ((line, reason), (want_line, want_reason)) in found.iter().zip(&expected) {
            assert_eq!(line, want_line, "line of '{reason}'");
            assert!(
                reason.starts_with(want_reason),
                "line {line}: '{reason}' should start with '{want_reason}'"
            );
        }
    }

    #[test]
    fn several_errors_are_all_reported() {
        let found =
            errors("max_keepalive 70000\nallow_anonymous yes\n\nlistener 0\nmax_keepalive 30\n");
        assert_eq!(
            found,
            [
                (
                    1,
                    "max_keepalive: 70000 is out of range 0..65535".to_string()
                ),
                (
                    2,
                    "allow_anonymous: 'yes' is not a boolean (expected true or false)".to_string()
                ),
                (4, "listener: 0 is out of range 1..65535".to_string()),
            ]
        );
    }

    #[test]
    fn duplicate_listeners_are_errors() {
        assert_eq!(
            errors("listener 1883\nlistener 1883 0.0.0.0\n"),
            [(
                2,
                "listener: 0.0.0.0:1883 is already configured at line 1".to_string()
            )]
        );
        // The default listener is checked after the whole file, at its own line.
        assert_eq!(
            errors("port 1883\nlistener 1883 ::\n"),
            [(
                1,
                "port: [::]:1883 is already configured at line 2".to_string()
            )]
        );
        assert_eq!(
            errors("bind_address ::1\nbind_address ::1\n"),
            [(2, "bind_address: given more than once".to_string())]
        );
    }

    #[test]
    fn include_dir_reads_conf_files_in_mosquitto_order() {
        let scratch = Scratch::new("include");
        // Mosquitto sorts case-insensitively: a.conf, then B.conf (byte order
        // would read B.conf first and end with 20).
        scratch.write("conf.d/a.conf", "max_keepalive 20\n");
        scratch.write("conf.d/B.conf", "max_keepalive 30\n");
        scratch.write("conf.d/c.conf", "max_topic_alias 7\ninclude_dir ../more\n");
        scratch.write("conf.d/notes.txt", "not a directive\n");
        scratch.write("conf.d/.conf", "not a directive\n");
        scratch.write("more/d.conf", "max_topic_alias 8\n");
        let main = scratch.write("mosquitto.conf", "max_keepalive 10\ninclude_dir conf.d\n");
        let (config, report) = parse_mosquitto(&main).expect("valid");
        assert_eq!(config.max_keepalive, 30);
        assert_eq!(
            config.max_topic_alias, 7,
            "include_dir in an included file is not followed"
        );
        assert_eq!(report.warnings.len(), 1, "{:#?}", report.warnings);
        let warning = &report.warnings[0];
        assert_eq!(warning.file, scratch.dir().join("conf.d/c.conf"));
        assert_eq!(warning.line, 2);
        assert!(
            warning
                .reason
                .starts_with("include_dir: read only in the main"),
            "{}",
            warning.reason
        );
    }

    #[test]
    fn include_dir_takes_absolute_paths() {
        let scratch = Scratch::new("include-absolute");
        scratch.write("elsewhere/x.conf", "sys_interval 3\n");
        let absolute = scratch.dir().join("elsewhere");
        let main = scratch.write(
            "etc/mosquitto.conf",
            &format!("include_dir {}\n", absolute.display()),
        );
        let (config, _) = parse_mosquitto(&main).expect("valid");
        assert_eq!(config.sys_interval, Some(Duration::from_secs(3)));
    }

    #[test]
    fn errors_in_included_files_name_that_file_and_line() {
        let scratch = Scratch::new("include-errors");
        scratch.write("conf.d/a.conf", "# first\nmax_keepalive 99999\n");
        scratch.write("conf.d/b.conf", "\n\nbogus 1\n");
        let main = scratch.write("mosquitto.conf", "include_dir conf.d\nsys_interval -1\n");
        let report = parse_mosquitto(&main).expect_err("errors");
        let found: Vec<_> = report
            .errors
            .iter()
            .map(|p| (p.file.clone(), p.line, p.reason.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    scratch.dir().join("conf.d/a.conf"),
                    2,
                    "max_keepalive: 99999 is out of range 0..65535"
                ),
                (
                    scratch.dir().join("conf.d/b.conf"),
                    3,
                    "unknown directive 'bogus'"
                ),
                (main.clone(), 2, "sys_interval: -1 is out of range 0..65535"),
            ]
        );
    }

    #[test]
    fn include_dir_must_not_hold_the_main_file() {
        let scratch = Scratch::new("include-self");
        scratch.write("other.conf", "max_keepalive 40\n");
        let main = scratch.write("mosquitto.conf", "include_dir .\n");
        let report = parse_mosquitto(&main).expect_err("includes itself");
        assert_eq!(report.errors.len(), 1, "{:#?}", report.errors);
        assert_eq!(report.errors[0].line, 1);
        assert!(report.errors[0]
            .reason
            .contains("holds the main configuration file"));
    }

    #[test]
    fn later_directives_are_warned_about_and_ignored() {
        let mut text = String::new();
        for directive in LATER {
            text.push_str(&format!("{directive} some-value\n"));
        }
        text.push_str("auth_opt_db_host localhost\nplugin_opt_key value\n");
        text.push_str("retry_interval 20\nstore_clean_interval 10\n");
        let (config, report) = parse(&text).unwrap_or_else(|r| panic!("{:#?}", r.errors));
        assert_eq!(config, Config::default());
        assert_eq!(report.warnings.len(), LATER.len() + 4);
        for (index, warning) in report.warnings.iter().enumerate() {
            assert_eq!(warning.line, index + 1);
        }
        assert_eq!(
            report.warnings[0].reason,
            format!("{}: not supported yet; ignored", LATER[0])
        );
        assert_eq!(
            report.warnings[LATER.len() + 2].reason,
            "retry_interval: no longer used by Mosquitto 2; ignored"
        );
    }

    #[test]
    fn a_bridge_is_one_warning() {
        let found = warnings(
            "connection uplink\n\
             address 192.0.2.1:1883\n\
             topic sensors/# out 1\n\
             remote_username bob\n\
             bridge_protocol_version mqttv50\n",
        );
        assert_eq!(
            found,
            [(1, "connection: bridges are not supported yet; bridge 'uplink' and its options are ignored".to_string())]
        );
    }

    #[test]
    fn max_connections_is_per_listener_after_a_listener_line() {
        let text =
            "max_connections 100\nlistener 1883 127.0.0.1\nmax_connections 10\nmax_topic_alias 3\n\
                    listener 1884 127.0.0.1\nmax_connections 20\nmax_topic_alias 4\n";
        let (config, report) = parse(text).expect("valid");
        assert_eq!(
            config.max_connections,
            Some(100),
            "before any listener: the broker's"
        );
        let limits: Vec<_> = config
            .listeners
            .iter()
            .map(|l| l.settings.max_connections)
            .collect();
        assert_eq!(limits, [Some(10), Some(20)]);
        assert_eq!(config.max_topic_alias, 4);
        assert_eq!(report.warnings.len(), 1);
        assert_eq!(report.warnings[0].line, 7);
        assert!(report.warnings[0]
            .reason
            .starts_with("max_topic_alias: Mosquitto sets this per listener"));
    }

    #[test]
    fn other_warnings() {
        let found = warnings("port 1883\nport 1884\nlistener 0 /tmp/mqtt.sock\n");
        let lines: Vec<usize> = found.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 3], "{found:#?}");
        let (config, _) = parse("port 1883\nport 1884\n").expect("valid");
        assert_eq!(
            config.listeners,
            listeners(&["0.0.0.0:1884", "[::]:1884"]),
            "the last port wins"
        );
    }

    #[test]
    fn unreadable_and_invalid_files() {
        let scratch = Scratch::new("unreadable");
        let missing = scratch.dir().join("missing.conf");
        let report = parse_mosquitto(&missing).expect_err("missing");
        assert_eq!(
            (report.errors[0].file.as_path(), report.errors[0].line),
            (missing.as_path(), 0)
        );

        let binary = scratch.dir().join("binary.conf");
        std::fs::write(&binary, b"max_keepalive 60\n\xff\xfe\n").expect("write");
        let report = parse_mosquitto(&binary).expect_err("not UTF-8");
        assert_eq!(report.errors[0].line, 2);
        assert_eq!(report.errors[0].reason, "the file is not valid UTF-8");
    }

    #[test]
    fn listener_options_apply_to_their_listener_s_sockets() {
        let scratch = Scratch::new("listener-options");
        let main = scratch.write(
            "mosquitto.conf",
            "connect_timeout 5\nmax_publish_rate 100\n\
             listener 8883\ncertfile certs/server.pem\nkeyfile /etc/ssl/server.key\n\
             cafile ca.pem\ncrlfile crl.pem\nrequire_certificate true\n\
             use_identity_as_username true\ntls_version tlsv1.3\nmax_connections 50\n\
             listener 9001 127.0.0.1\nprotocol websockets\nwebsockets_path /mqtt\n\
             websockets_origin https://app.example\nenable_proxy_protocol 2\n\
             listener 1883 127.0.0.1\nenable_proxy_protocol 1\n",
        );
        let (config, report) = parse_mosquitto(&main).expect("valid");
        assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.max_publish_rate, NonZeroU32::new(100));
        let [tls4, tls6, ws, mqtt] = &config.listeners[..] else {
            panic!("{:#?}", config.listeners);
        };
        assert_eq!(
            tls4.settings, tls6.settings,
            "one listener line, two sockets"
        );
        let tls = tls4.settings.tls.as_ref().expect("TLS");
        assert_eq!(tls.certfile, scratch.dir().join("certs/server.pem"));
        assert_eq!(tls.keyfile, Path::new("/etc/ssl/server.key"));
        assert_eq!(
            tls.crlfile.as_deref(),
            Some(scratch.dir().join("crl.pem").as_path())
        );
        assert!(tls.require_certificate && tls.use_identity_as_username);
        assert_eq!(tls.min_version, super::super::TlsVersion::Tls13);
        assert_eq!(tls4.settings.max_connections, Some(50));
        assert_eq!(config.max_connections, None);
        assert_eq!(ws.settings.protocol, super::super::Protocol::WebSockets);
        assert_eq!(ws.settings.websockets.path.as_deref(), Some("/mqtt"));
        assert_eq!(ws.settings.websockets.origins, ["https://app.example"]);
        assert_eq!(
            ws.settings.proxy_protocol,
            Some(super::super::ProxyProtocol::V2)
        );
        assert!(ws.settings.tls.is_none());
        assert_eq!(
            mqtt.settings.proxy_protocol,
            Some(super::super::ProxyProtocol::V1)
        );
        assert_eq!(mqtt.settings.protocol, super::super::Protocol::Mqtt);
    }

    #[test]
    fn listener_options_before_any_listener_go_to_the_default_one() {
        let config = valid("certfile /s.pem\nkeyfile /s.key\nport 8883\n");
        assert_eq!(config.listeners.len(), 2);
        assert!(config.listeners.iter().all(|l| l.settings.tls.is_some()));
        // No default listener to take them: an error at the first of them.
        assert_eq!(
            errors("max_keepalive 60\nprotocol websockets\nlistener 9001\n"),
            [(
                2,
                "a listener option before any `listener` line, and no `port` or `bind_address` \
                 to make the default listener: write it after the `listener` line it is for"
                    .to_string()
            )]
        );
    }

    #[test]
    fn listener_option_errors_and_warnings_have_their_lines() {
        let found = errors(
            "listener 8883\ncertfile /s.pem\nprotocol mqtts\nlistener 8884\n\
             keyfile /k.pem\ncertfile /c.pem\ntls_version sslv3\npsk_hint hi\n\
             listener 8885\ncafile /ca.pem\nenable_proxy_protocol yes\ncertfile\n",
        );
        // Checks of a whole listener come when its block ends: by line here.
        let mut found = found;
        found.sort();
        let expected: &[(usize, &str)] = &[
            (1, "listener: certfile without keyfile: TLS needs both"),
            (3, "protocol: 'mqtts' is not mqtt or websockets"),
            (7, "tls_version: 'sslv3' is not tlsv1.3, tlsv1.2 or tlsv1.1"),
            (8, "psk_hint: TLS with pre-shared keys is not supported"),
            (
                9,
                "listener: TLS options without certfile and keyfile, which TLS needs",
            ),
            (
                11,
                "enable_proxy_protocol: 'yes' is not a PROXY protocol version (1 or 2)",
            ),
            (12, "certfile: missing value"),
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for ((line, reason), (want_line, want)) in found.iter().zip(expected) {
            assert_eq!(
                (line, reason.starts_with(want)),
                (want_line, true),
                "{reason}"
            );
        }
        let found = warnings(
            "listener 8883\ncertfile /c.pem\nkeyfile /k.pem\ndhparamfile /dh.pem\n\
             ciphers ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-SHA\ntls_version tlsv1.1\n\
             listener 9001\nprotocol websockets\nhttp_dir /var/www\n",
        );
        let lines: Vec<usize> = found.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [4, 5, 6, 9], "{found:#?}");
    }
}
