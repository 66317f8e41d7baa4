//! Starling's own configuration syntax: TOML, with Mosquitto's directive names.
//!
//! ```toml
//! max_keepalive = 300
//! persistent_client_expiration = "14d"
//!
//! [[listener]]
//! port = 1883
//! address = "127.0.0.1"
//!
//! [[listener]]
//! port = 8883
//! certfile = "/etc/starling/server.pem"
//! keyfile = "/etc/starling/server.key"
//!
//! [log]
//! type = ["error", "warning"]
//! dest = ["stderr"]
//!
//! [storage]
//! dir = "/var/lib/starling"
//! sync = "periodic"
//! sync_interval = 500
//! ```
//!
//! `starling.toml` at the repository root lists every key with its default.
//! Serde stops at the first syntax error, unknown key or wrong type, so such a
//! file gets one error; once the types are right, every value out of range is
//! reported. Values go through the same checks as the Mosquitto syntax
//! ([`super::mosquitto`]), so both accept exactly the same settings, and both
//! follow Mosquitto 2 in turning anonymous access off by default once a
//! listener is configured.

use std::fs;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;

use ::toml::{Spanned, Value};
use serde::Deserialize;

use super::listener::ListenerOptions;
use super::mosquitto::line_of;
use super::security;
use super::values;
use super::{Config, ConfigProblem, ConfigReport, Listener};

/// The file as written. Numbers are `i64` so that range checks are ours and
/// all reported, rather than serde's and only the first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    allow_anonymous: Option<bool>,
    allow_zero_length_clientid: Option<bool>,
    auto_id_prefix: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    acl_file: Option<Spanned<String>>,
    psk_file: Option<Spanned<String>>,
    per_listener_settings: Option<bool>,
    max_connections: Option<Spanned<i64>>,
    max_packet_size: Option<Spanned<i64>>,
    message_size_limit: Option<Spanned<i64>>,
    max_inflight_messages: Option<Spanned<i64>>,
    max_queued_messages: Option<Spanned<i64>>,
    max_queued_bytes: Option<Spanned<i64>>,
    queue_qos0_messages: Option<bool>,
    max_keepalive: Option<Spanned<i64>>,
    max_topic_alias: Option<Spanned<i64>>,
    max_topic_levels: Option<Spanned<i64>>,
    retain_available: Option<bool>,
    /// A Mosquitto duration string (`"14d"`) or a number of seconds.
    persistent_client_expiration: Option<Spanned<Value>>,
    upgrade_outgoing_qos: Option<bool>,
    set_tcp_nodelay: Option<bool>,
    check_retain_source: Option<bool>,
    clientid_prefixes: Option<String>,
    sys_interval: Option<Spanned<i64>>,
    connect_timeout: Option<Spanned<i64>>,
    max_publish_rate: Option<Spanned<i64>>,
    login_delay: Option<Spanned<i64>>,
    login_delay_max: Option<Spanned<i64>>,
    user: Option<Spanned<String>>,
    pid_file: Option<Spanned<String>>,
    connection_messages: Option<bool>,
    websockets_log_level: Option<Spanned<i64>>,
    #[serde(default)]
    listener: Vec<ListenerTable>,
    log: Option<LogTable>,
    storage: Option<StorageTable>,
    /// A section a later Starling version reads: accepted with a warning.
    tls: Option<Spanned<Value>>,
    auth: Option<Spanned<Value>>,
}

/// A `[[listener]]` table: Mosquitto's listener directives as keys
/// (`ciphers_tls13` for `ciphers_tls1.3`, which TOML would need quoted).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerTable {
    port: Spanned<i64>,
    address: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
    protocol: Option<Spanned<String>>,
    enable_proxy_protocol: Option<Spanned<i64>>,
    websockets_path: Option<Spanned<String>>,
    websockets_origin: Option<Vec<Spanned<String>>>,
    certfile: Option<Spanned<String>>,
    keyfile: Option<Spanned<String>>,
    cafile: Option<Spanned<String>>,
    capath: Option<Spanned<String>>,
    crlfile: Option<Spanned<String>>,
    require_certificate: Option<Spanned<bool>>,
    use_identity_as_username: Option<Spanned<bool>>,
    use_subject_as_username: Option<Spanned<bool>>,
    tls_version: Option<Spanned<String>>,
    ciphers: Option<Spanned<String>>,
    ciphers_tls13: Option<Spanned<String>>,
    dhparamfile: Option<Spanned<String>>,
    psk_hint: Option<Spanned<String>>,
    max_qos: Option<Spanned<i64>>,
    mount_point: Option<Spanned<String>>,
    use_username_as_clientid: Option<Spanned<bool>>,
    socket_domain: Option<Spanned<String>>,
    bind_interface: Option<Spanned<String>>,
    accept_protocol_versions: Option<Spanned<String>>,
    listener_allow_anonymous: Option<Spanned<bool>>,
    listener_auto_id_prefix: Option<Spanned<String>>,
    // With `per_listener_settings = true` only.
    allow_anonymous: Option<Spanned<bool>>,
    allow_zero_length_clientid: Option<Spanned<bool>>,
    auto_id_prefix: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    acl_file: Option<Spanned<String>>,
    psk_file: Option<Spanned<String>>,
}

/// The settings `per_listener_settings` scopes, at the top level or in a
/// `[[listener]]`.
#[derive(Debug, Default)]
struct SecurityKeys {
    allow_anonymous: Option<Spanned<bool>>,
    allow_zero_length_clientid: Option<Spanned<bool>>,
    auto_id_prefix: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    acl_file: Option<Spanned<String>>,
    psk_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogTable {
    #[serde(rename = "type")]
    types: Option<Vec<Spanned<String>>>,
    dest: Option<Vec<Spanned<String>>>,
    timestamp: Option<bool>,
    timestamp_format: Option<Spanned<String>>,
    facility: Option<Spanned<i64>>,
}

/// `[storage]`: mosquitto.conf's `persistence`, `persistence_location`,
/// `persistence_sync` and `persistence_sync_interval`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageTable {
    enabled: Option<bool>,
    dir: Option<Spanned<String>>,
    sync: Option<Spanned<String>>,
    /// Milliseconds.
    sync_interval: Option<Spanned<i64>>,
}

/// Reads a Starling TOML configuration file.
///
/// Returns the configuration with the warnings, or every error found.
pub fn parse_toml(path: &Path) -> Result<(Config, ConfigReport), ConfigReport> {
    let mut report = ConfigReport::default();
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            report
                .errors
                .push(problem(path, 0, format!("cannot read the file: {e}")));
            return Err(report);
        }
    };
    let file: File = match ::toml::from_str(&text) {
        Ok(file) => file,
        Err(e) => {
            let line = e
                .span()
                .map_or(0, |span| line_of(text.as_bytes(), span.start));
            report
                .errors
                .push(problem(path, line, e.message().trim_end().to_string()));
            return Err(report);
        }
    };
    let mut builder = Builder {
        path,
        text: &text,
        config: Config::default(),
        report,
        listeners: Vec::new(),
    };
    builder.apply(file);
    let Builder { config, report, .. } = builder;
    if report.errors.is_empty() {
        Ok((config, report))
    } else {
        Err(report)
    }
}

/// Turns the file as written into a [`Config`], collecting every problem.
struct Builder<'a> {
    path: &'a Path,
    text: &'a str,
    config: Config,
    report: ConfigReport,
    /// Each listener's addresses and line, to report duplicates.
    listeners: Vec<(usize, Vec<SocketAddr>)>,
}

impl Builder<'_> {
    fn apply(&mut self, file: File) {
        let c = &mut self.config;
        let flags = [
            (file.queue_qos0_messages, &mut c.queue_qos0_messages),
            (file.retain_available, &mut c.retain_available),
            (file.upgrade_outgoing_qos, &mut c.upgrade_outgoing_qos),
            (file.set_tcp_nodelay, &mut c.set_tcp_nodelay),
            (file.check_retain_source, &mut c.check_retain_source),
        ];
        for (value, field) in flags {
            if let Some(value) = value {
                *field = value;
            }
        }
        if file.clientid_prefixes.is_some() {
            c.clientid_prefixes = file.clientid_prefixes;
        }

        if let Some(v) = self.number(
            "max_connections",
            file.max_connections,
            values::max_connections,
        ) {
            self.config.max_connections = v;
        }
        if let Some(v) = self.number(
            "max_packet_size",
            file.max_packet_size,
            values::max_packet_size,
        ) {
            self.config.max_packet_size = v;
        }
        if let Some(v) = self.number(
            "message_size_limit",
            file.message_size_limit,
            values::message_size_limit,
        ) {
            self.config.message_size_limit = v;
        }
        if let Some(v) = self.number(
            "max_inflight_messages",
            file.max_inflight_messages,
            values::max_inflight_messages,
        ) {
            self.config.max_inflight_messages = v;
        }
        if let Some(v) = self.number(
            "max_queued_messages",
            file.max_queued_messages,
            values::max_queued_messages,
        ) {
            self.config.max_queued_messages = v;
        }
        if let Some(v) = self.number(
            "max_queued_bytes",
            file.max_queued_bytes,
            values::max_queued_bytes,
        ) {
            self.config.max_queued_bytes = v;
        }
        if let Some(v) = self.number("max_keepalive", file.max_keepalive, values::max_keepalive) {
            self.config.max_keepalive = v;
        }
        if let Some(v) = self.number(
            "max_topic_alias",
            file.max_topic_alias,
            values::max_topic_alias,
        ) {
            self.config.max_topic_alias = v;
        }
        if let Some(v) = self.number(
            "max_topic_levels",
            file.max_topic_levels,
            values::max_topic_levels,
        ) {
            self.config.max_topic_levels = v;
        }
        if let Some(v) = self.number("sys_interval", file.sys_interval, values::sys_interval) {
            self.config.sys_interval = v;
        }
        if let Some(v) = self.number(
            "connect_timeout",
            file.connect_timeout,
            values::connect_timeout,
        ) {
            self.config.connect_timeout = v;
        }
        if let Some(v) = self.number(
            "max_publish_rate",
            file.max_publish_rate,
            values::max_publish_rate,
        ) {
            self.config.max_publish_rate = v;
        }
        if let Some(v) = self.number("login_delay", file.login_delay, values::login_delay) {
            self.config.login_delay.first = v;
        }
        if let Some(v) = self.number(
            "login_delay_max",
            file.login_delay_max,
            values::login_delay_max,
        ) {
            self.config.login_delay.max = v;
        }
        if let Some(expiration) = file.persistent_client_expiration {
            let result = match expiration.get_ref() {
                Value::String(text) => values::expiration(text).map(Some),
                Value::Integer(n) => values::expiration_seconds(*n),
                other => Err(format!(
                    "expected a duration such as \"14d\" or a number of seconds, found {}",
                    other.type_str()
                )),
            };
            if let Some(v) = self.check(expiration.span(), "persistent_client_expiration", result) {
                self.config.persistent_client_expiration = v;
            }
        }

        // Security settings go through the same collector as mosquitto.conf's:
        // it gives `allow_anonymous` Mosquitto 2's default and scopes them.
        let mut security = security::Collector::default();
        security.set_per_listener_settings(file.per_listener_settings.unwrap_or(false));
        let top = SecurityKeys {
            allow_anonymous: file.allow_anonymous.map(|v| Spanned::new(0..0, v)),
            allow_zero_length_clientid: file
                .allow_zero_length_clientid
                .map(|v| Spanned::new(0..0, v)),
            auto_id_prefix: file.auto_id_prefix,
            password_file: file.password_file,
            acl_file: file.acl_file,
            psk_file: file.psk_file,
        };
        self.security_keys(&mut security, None, top);
        let mut groups = Vec::new();
        for mut listener in file.listener {
            let keys = SecurityKeys {
                allow_anonymous: listener.allow_anonymous.take(),
                allow_zero_length_clientid: listener.allow_zero_length_clientid.take(),
                auto_id_prefix: listener.auto_id_prefix.take(),
                password_file: listener.password_file.take(),
                acl_file: listener.acl_file.take(),
                psk_file: listener.psk_file.take(),
            };
            let first = self.config.listeners.len();
            self.listener(listener);
            let len = self.config.listeners.len() - first;
            groups.push(security::Group {
                first,
                len,
                default_listener: false,
            });
            self.security_keys(&mut security, Some(first), keys);
        }
        let local_only = groups.is_empty();
        security.finish(&mut self.config, local_only, &groups);

        self.process_and_log(file.user, file.pid_file, file.websockets_log_level);
        if let Some(value) = file.connection_messages {
            self.config.logging.connection_messages = value;
        }
        if let Some(log) = file.log {
            if let Some(value) = log.timestamp {
                self.config.logging.timestamp = value;
            }
            if let Some(format) = log.timestamp_format {
                let result = values::log_timestamp_format(format.get_ref());
                self.config.logging.timestamp_format =
                    self.check(format.span(), "log.timestamp_format", result);
            }
            if let Some(facility) = log.facility {
                let span = facility.span();
                if self
                    .number("log.facility", Some(facility), values::log_facility)
                    .is_some()
                {
                    self.warn(span, "log.facility", values::LOG_FACILITY_UNUSED);
                }
            }
            if let Some(types) = log.types {
                self.config.logging.types = self.log_list("log.type", types, |list, value| {
                    values::log_type(&value)?;
                    values::add_log_choice(list, value);
                    Ok(())
                });
            }
            if let Some(dests) = log.dest {
                self.config.logging.destinations =
                    self.log_list("log.dest", dests, |list, value| {
                        let value = values::log_dest(&value)?;
                        values::add_log_dest(list, value)
                    });
            }
        }

        if let Some(storage) = file.storage {
            self.storage(storage);
        }

        if let Some(auth) = file.auth {
            // Not a warning: a file that meant to require passwords must not
            // start a broker that does not.
            let line = self.line(auth.span());
            let reason = "[auth]: the authentication settings are top-level keys \
                          (password_file, acl_file, allow_anonymous, ...)"
                .to_string();
            self.report.errors.push(problem(self.path, line, reason));
        }
        if let Some(section) = file.tls {
            let line = self.line(section.span());
            let reason = "[tls]: not supported yet; ignored".to_string();
            self.report.warnings.push(problem(self.path, line, reason));
        }
    }

    /// `user`, `pid_file` and `websockets_log_level` (checked and explained:
    /// it changes nothing in Starling).
    fn process_and_log(
        &mut self,
        user: Option<Spanned<String>>,
        pid_file: Option<Spanned<String>>,
        websockets_log_level: Option<Spanned<i64>>,
    ) {
        if let Some(user) = user {
            let result = values::user(user.get_ref());
            self.config.process.user = self.check(user.span(), "user", result);
        }
        if let Some(path) = pid_file {
            let result = values::pid_file(path.get_ref());
            self.config.process.pid_file = self.check(path.span(), "pid_file", result);
        }
        if let Some(level) = websockets_log_level {
            let span = level.span();
            let key = "websockets_log_level";
            if self
                .number(key, Some(level), values::websockets_log_level)
                .is_some()
            {
                self.warn(span, key, values::WEBSOCKETS_LOG_LEVEL_UNUSED);
            }
        }
    }

    fn warn(&mut self, span: Range<usize>, key: &str, reason: &str) {
        let line = self.line(span);
        let reason = format!("{key}: {reason}");
        self.report.warnings.push(problem(self.path, line, reason));
    }

    /// `[storage]`, through the same checks as mosquitto.conf's directives.
    fn storage(&mut self, table: StorageTable) {
        let storage = &mut self.config.storage;
        if let Some(enabled) = table.enabled {
            storage.enabled = enabled;
        }
        if let Some(dir) = table.dir {
            // As given: a relative one is taken from the working directory, as
            // `persistence_location` is in mosquitto.conf.
            let result = values::persistence_location(dir.get_ref());
            if let Some(dir) = self.check(dir.span(), "storage.dir", result) {
                self.config.storage.dir = Some(dir);
            }
        }
        let mode = table.sync.and_then(|sync| {
            let result = values::persistence_sync(sync.get_ref());
            self.check(sync.span(), "storage.sync", result)
        });
        let interval = self.number(
            "storage.sync_interval",
            table.sync_interval,
            values::persistence_sync_interval,
        );
        self.config.storage.durability = values::durability(mode, interval);
    }

    /// Hands the security keys of the top level (`listener` `None`) or of a
    /// `[[listener]]` to the collector.
    fn security_keys(
        &mut self,
        collector: &mut security::Collector,
        listener: Option<usize>,
        keys: SecurityKeys,
    ) {
        let base = self.path.parent().unwrap_or(Path::new("")).to_path_buf();
        let bool_text = |v: Spanned<bool>| (v.span(), v.get_ref().to_string());
        let string = |v: Spanned<String>| (v.span(), v.into_inner());
        let entries = [
            ("allow_anonymous", keys.allow_anonymous.map(bool_text)),
            (
                "allow_zero_length_clientid",
                keys.allow_zero_length_clientid.map(bool_text),
            ),
            ("auto_id_prefix", keys.auto_id_prefix.map(string)),
            ("password_file", keys.password_file.map(string)),
            ("acl_file", keys.acl_file.map(string)),
            ("psk_file", keys.psk_file.map(string)),
        ];
        for (key, entry) in entries {
            let Some((span, value)) = entry else {
                continue;
            };
            let name = match listener {
                Some(_) => format!("listener.{key}"),
                None => key.to_string(),
            };
            if listener.is_some() && !collector.per_listener_settings() {
                let reason =
                    "applies to one listener only with per_listener_settings = true".into();
                self.check::<()>(span, &name, Err(reason));
                continue;
            }
            let setting = security::Setting::parse(key, &value, &base);
            if let Some(setting) = self.check(span, &name, setting) {
                collector.add(listener, setting);
            }
        }
    }

    fn listener(&mut self, mut table: ListenerTable) {
        let options = self.listener_options(&mut table);
        let port = self.check(
            table.port.span(),
            "listener.port",
            values::port(*table.port.get_ref()),
        );
        let ips = match &table.address {
            None => Some(values::all_interfaces()),
            Some(address) => self.check(
                address.span(),
                "listener.address",
                values::host(address.get_ref()),
            ),
        };
        let (Some(port), Some(ips)) = (port, ips) else {
            return;
        };
        let line = self.line(table.port.span());
        let addrs = values::bind(&ips, port);
        let clash = self.listeners.iter().find_map(|(earlier_line, earlier)| {
            let addr = addrs.iter().find(|a| earlier.contains(a))?;
            Some(format!(
                "listener: {addr} is already configured at line {earlier_line}"
            ))
        });
        if let Some(reason) = clash {
            return self.report.errors.push(problem(self.path, line, reason));
        }
        match options.finish() {
            Ok((settings, warnings)) => {
                for warning in warnings {
                    let reason = format!("listener: {warning}");
                    self.report.warnings.push(problem(self.path, line, reason));
                }
                self.config
                    .listeners
                    .extend(addrs.iter().map(|&bind| Listener {
                        settings: settings.clone(),
                        ..Listener::new(bind)
                    }));
            }
            Err(errors) => {
                for error in errors {
                    let reason = format!("listener: {error}");
                    self.report.errors.push(problem(self.path, line, reason));
                }
            }
        }
        self.listeners.push((line, addrs));
    }

    /// A listener table's options, through the same checks as mosquitto.conf's
    /// directives (each value as the text Mosquitto would read).
    fn listener_options(&mut self, table: &mut ListenerTable) -> ListenerOptions {
        let mut options = ListenerOptions::default();
        let mut texts: Vec<(&str, Range<usize>, String)> = Vec::new();
        let strings = [
            ("protocol", table.protocol.take()),
            ("websockets_path", table.websockets_path.take()),
            ("certfile", table.certfile.take()),
            ("keyfile", table.keyfile.take()),
            ("cafile", table.cafile.take()),
            ("capath", table.capath.take()),
            ("crlfile", table.crlfile.take()),
            ("tls_version", table.tls_version.take()),
            ("ciphers", table.ciphers.take()),
            ("ciphers_tls1.3", table.ciphers_tls13.take()),
            ("dhparamfile", table.dhparamfile.take()),
            ("psk_hint", table.psk_hint.take()),
            ("mount_point", table.mount_point.take()),
            ("socket_domain", table.socket_domain.take()),
            ("bind_interface", table.bind_interface.take()),
            (
                "accept_protocol_versions",
                table.accept_protocol_versions.take(),
            ),
            (
                "listener_auto_id_prefix",
                table.listener_auto_id_prefix.take(),
            ),
        ];
        for (key, value) in strings {
            if let Some(value) = value {
                texts.push((key, value.span(), value.into_inner()));
            }
        }
        for origin in table.websockets_origin.take().unwrap_or_default() {
            texts.push(("websockets_origin", origin.span(), origin.into_inner()));
        }
        let flags = [
            ("require_certificate", table.require_certificate.take()),
            (
                "use_identity_as_username",
                table.use_identity_as_username.take(),
            ),
            (
                "use_subject_as_username",
                table.use_subject_as_username.take(),
            ),
            (
                "use_username_as_clientid",
                table.use_username_as_clientid.take(),
            ),
            (
                "listener_allow_anonymous",
                table.listener_allow_anonymous.take(),
            ),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                texts.push((key, value.span(), value.get_ref().to_string()));
            }
        }
        if let Some(qos) = table.max_qos.take() {
            texts.push(("max_qos", qos.span(), qos.get_ref().to_string()));
        }
        if let Some(version) = table.enable_proxy_protocol.take() {
            texts.push((
                "enable_proxy_protocol",
                version.span(),
                version.get_ref().to_string(),
            ));
        }
        let base = self.path.parent().unwrap_or(Path::new("")).to_path_buf();
        for (key, span, text) in texts {
            let line = self.line(span);
            match options.set(key, &text, &base) {
                Some(Ok(None)) | None => {}
                Some(Ok(Some(warning))) => self.report.warnings.push(problem(
                    self.path,
                    line,
                    format!("listener.{key}: {warning}"),
                )),
                Some(Err(reason)) => self.report.errors.push(problem(
                    self.path,
                    line,
                    format!("listener.{key}: {reason}"),
                )),
            }
        }
        if let Some(v) = self.number(
            "listener.max_connections",
            table.max_connections.take(),
            values::max_connections,
        ) {
            options.max_connections = v;
        }
        options
    }

    /// A `[log]` list, built from empty so that it replaces the default.
    fn log_list(
        &mut self,
        key: &str,
        items: Vec<Spanned<String>>,
        add: impl Fn(&mut Vec<String>, String) -> Result<(), String>,
    ) -> Vec<String> {
        let mut list = Vec::new();
        for item in items {
            let span = item.span();
            let result = add(&mut list, item.into_inner());
            self.check(span, key, result);
        }
        list
    }

    fn number<T>(
        &mut self,
        key: &str,
        value: Option<Spanned<i64>>,
        check: fn(i64) -> Result<T, String>,
    ) -> Option<T> {
        let value = value?;
        self.check(value.span(), key, check(*value.get_ref()))
    }

    fn check<T>(&mut self, span: Range<usize>, key: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(reason) => {
                let line = self.line(span);
                self.report
                    .errors
                    .push(problem(self.path, line, format!("{key}: {reason}")));
                None
            }
        }
    }

    fn line(&self, span: Range<usize>) -> usize {
        line_of(self.text.as_bytes(), span.start)
    }
}

fn problem(file: &Path, line: usize, reason: String) -> ConfigProblem {
    ConfigProblem {
        file: file.to_path_buf(),
        line,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::num::NonZeroU32;
    use std::time::Duration;

    use super::super::mosquitto::parse_mosquitto;
    use super::super::tests::Scratch;
    use super::super::StorageSettings;
    use super::*;
    use crate::storage::Durability;

    /// The example file at the repository root.
    const EXAMPLE: &str = include_str!("../../../../starling.toml");

    fn parse(text: &str) -> Result<(Config, ConfigReport), ConfigReport> {
        let scratch = Scratch::new("toml");
        parse_toml(&scratch.write("starling.toml", text))
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

    /// The errors, as (line, reason), in line order.
    fn errors(text: &str) -> Vec<(usize, String)> {
        let report = parse(text).expect_err("errors expected");
        let mut found: Vec<_> = report
            .errors
            .into_iter()
            .map(|p| (p.line, p.reason))
            .collect();
        found.sort();
        found
    }

    fn listeners(addrs: &[&str]) -> Vec<Listener> {
        addrs
            .iter()
            .map(|a| Listener::new(a.parse::<SocketAddr>().expect("address")))
            .collect()
    }

    #[test]
    fn the_example_file_loads_to_the_defaults() {
        assert_eq!(valid(EXAMPLE), Config::default());
    }

    /// Uncommenting every key of the example must not change anything but the
    /// example listener: the defaults it documents are the real ones.
    #[test]
    fn the_example_documents_the_real_defaults() {
        let uncommented: Vec<&str> = EXAMPLE
            .lines()
            .map(|line| {
                let Some(rest) = line.strip_prefix("# ") else {
                    return line;
                };
                let is_key = rest.split_once(" = ").is_some_and(|(key, _)| {
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
                if is_key || ["[log]", "[storage]", "[[listener]]"].contains(&rest) {
                    rest
                } else {
                    line
                }
            })
            .collect();
        let uncommented = uncommented.join("\n");
        assert!(
            uncommented.contains("\nmax_queued_messages = 1000"),
            "keys were uncommented"
        );
        assert!(
            uncommented.contains("\n[storage]\nenabled = true"),
            "[storage] was uncommented"
        );
        let expected = Config {
            listeners: listeners(&["127.0.0.1:1883"]),
            ..Config::default()
        };
        assert_eq!(valid(&uncommented), expected);
    }

    #[test]
    fn every_key() {
        let config = valid(
            r#"
allow_anonymous = true
allow_zero_length_clientid = false
auto_id_prefix = "dev-"
password_file = "/etc/starling/passwd"
acl_file = "/etc/starling/acl"
per_listener_settings = false
max_connections = 500
max_packet_size = 1048576
message_size_limit = 65536
max_inflight_messages = 10
max_queued_messages = 200
max_queued_bytes = 1000000
queue_qos0_messages = true
max_keepalive = 300
max_topic_alias = 5
retain_available = false
persistent_client_expiration = "14d"
upgrade_outgoing_qos = true
sys_interval = 30
user = "starling"
pid_file = "/run/starling/starling.pid"
connection_messages = false

[[listener]]
port = 1883

[[listener]]
port = 8883
address = "::1"

[[listener]]
port = 9001
address = "localhost"

[log]
type = ["error", "warning", "subscribe"]
dest = ["stdout", "file /var/log/starling broker.log"]
timestamp = false
timestamp_format = "%Y-%m-%d %H:%M:%S"

[storage]
enabled = false
dir = "/var/lib/starling"
sync = "periodic"
sync_interval = 250
"#,
        );
        let expected = Config {
            listeners: listeners(&[
                "0.0.0.0:1883",
                "[::]:1883",
                "[::1]:8883",
                "127.0.0.1:9001",
                "[::1]:9001",
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
            psk_file: None,
            per_listener_settings: false,
            login_delay: Default::default(),
            clientid_prefixes: None,
            set_tcp_nodelay: true,
            check_retain_source: false,
            persistent_client_expiration: Some(Duration::from_secs(14 * 86_400)),
            upgrade_outgoing_qos: true,
            sys_interval: Some(Duration::from_secs(30)),
            logging: super::super::Logging {
                types: vec!["error".into(), "warning".into(), "subscribe".into()],
                destinations: vec!["stdout".into(), "file /var/log/starling broker.log".into()],
                packets: false,
                timestamp: false,
                timestamp_format: Some("%Y-%m-%d %H:%M:%S".into()),
                connection_messages: false,
            },
            storage: StorageSettings {
                enabled: false,
                dir: Some("/var/lib/starling".into()),
                durability: Durability::Periodic(Duration::from_millis(250)),
            },
            process: super::super::ProcessSettings {
                user: Some("starling".into()),
                pid_file: Some("/run/starling/starling.pid".into()),
            },
        };
        assert_eq!(config, expected);
    }

    #[test]
    fn both_syntaxes_agree() {
        let scratch = Scratch::new("agree");
        let conf = scratch.write(
            "mosquitto.conf",
            "listener 1883\nlistener 1884 localhost\nmax_keepalive 120\nmax_queued_messages 0\n\
             persistent_client_expiration 2h\nsys_interval 0\nlog_type all\nlog_dest syslog\n\
             persistence_sync_interval 40\npersistence_location data/\npersistence_sync periodic\n",
        );
        let toml = scratch.write(
            "starling.toml",
            "max_keepalive = 120\nmax_queued_messages = 0\npersistent_client_expiration = \"2h\"\n\
             sys_interval = 0\n[[listener]]\nport = 1883\n[[listener]]\nport = 1884\naddress = \"localhost\"\n\
             [log]\ntype = [\"all\"]\ndest = [\"syslog\"]\n\
             [storage]\ndir = \"data/\"\nsync = \"periodic\"\nsync_interval = 40\n",
        );
        let (from_conf, _) = parse_mosquitto(&conf).expect("valid mosquitto.conf");
        let (from_toml, _) = parse_toml(&toml).expect("valid TOML");
        assert_eq!(from_conf, from_toml);
        assert!(!from_toml.allow_anonymous);
        assert_eq!(
            from_toml.storage.durability,
            Durability::Periodic(Duration::from_millis(40))
        );
    }

    /// `user`, `pid_file`, the log's timestamp and connection messages read
    /// as in mosquitto.conf; `log.facility` and `websockets_log_level` are
    /// checked and explained in a warning each.
    #[test]
    fn process_and_log_keys_agree_with_mosquitto_conf() {
        let scratch = Scratch::new("agree-process");
        let conf = scratch.write(
            "mosquitto.conf",
            "user nobody
pid_file /run/s t.pid
log_timestamp false
             log_timestamp_format %H:%M:%S %z
connection_messages false
             log_facility 5
websockets_log_level 255
",
        );
        let toml = scratch.write(
            "starling.toml",
            "user = \"nobody\"\npid_file = \"/run/s t.pid\"\nconnection_messages = false\n\
             websockets_log_level = 255\n\
             [log]\ntimestamp = false\ntimestamp_format = \"%H:%M:%S %z\"\nfacility = 5\n",
        );
        let (from_conf, conf_report) = parse_mosquitto(&conf).expect("valid mosquitto.conf");
        let (from_toml, toml_report) = parse_toml(&toml).expect("valid TOML");
        assert_eq!(from_conf, from_toml);
        assert_eq!(from_toml.process.user.as_deref(), Some("nobody"));
        assert_eq!(
            from_toml.process.pid_file.as_deref(),
            Some(Path::new("/run/s t.pid"))
        );
        assert!(!from_toml.logging.timestamp);
        assert!(!from_toml.logging.connection_messages);
        assert_eq!(
            from_toml.logging.timestamp_format.as_deref(),
            Some("%H:%M:%S %z")
        );
        let reasons = |report: &ConfigReport| -> Vec<(usize, String)> {
            report
                .warnings
                .iter()
                .map(|w| (w.line, w.reason.clone()))
                .collect()
        };
        assert_eq!(
            reasons(&toml_report),
            [
                (
                    4,
                    format!(
                        "websockets_log_level: {}",
                        values::WEBSOCKETS_LOG_LEVEL_UNUSED
                    )
                ),
                (8, format!("log.facility: {}", values::LOG_FACILITY_UNUSED)),
            ]
        );
        assert_eq!(
            reasons(&conf_report),
            [
                (6, format!("log_facility: {}", values::LOG_FACILITY_UNUSED)),
                (
                    7,
                    format!(
                        "websockets_log_level: {}",
                        values::WEBSOCKETS_LOG_LEVEL_UNUSED
                    )
                ),
            ]
        );
        assert_eq!(
            errors("user = \"\"\npid_file = \"\"\n[log]\nfacility = 8\ntimestamp_format = \"\"\n"),
            [
                (1, "user: missing value".to_string()),
                (2, "pid_file: missing value".to_string()),
                (4, "log.facility: 8 is out of range 0..7".to_string()),
                (5, "log.timestamp_format: missing value".to_string()),
            ]
        );
    }

    #[test]
    fn storage_defaults_and_each_key() {
        assert_eq!(valid("[storage]\n").storage, StorageSettings::default());
        let storage = |text: &str| valid(&format!("[storage]\n{text}\n")).storage;
        assert!(!storage("enabled = false").enabled);
        assert_eq!(
            storage("dir = \"relative/dir\"").dir,
            Some("relative/dir".into()),
            "kept as given, as persistence_location is"
        );
        assert_eq!(storage("sync = \"sync\"").durability, Durability::Sync);
        assert_eq!(storage("sync = \"off\"").durability, Durability::Off);
        assert_eq!(
            storage("sync = \"periodic\"").durability,
            Durability::Periodic(Duration::from_millis(1000))
        );
        assert_eq!(
            storage("sync_interval = 5").durability,
            Durability::Sync,
            "the interval means something to periodic only"
        );
        assert_eq!(
            storage("sync_interval = 5\nsync = \"periodic\"").durability,
            Durability::Periodic(Duration::from_millis(5)),
            "in either order"
        );
    }

    #[test]
    fn storage_errors_have_their_lines() {
        let found = errors(
            "max_keepalive = 60\n\n[storage]\nenabled = true\nsync = \"fast\"\n\
             sync_interval = 0\ndir = \"\"\n",
        );
        assert_eq!(
            found,
            [
                (
                    5,
                    "storage.sync: 'fast' is not sync, periodic or off".to_string()
                ),
                (
                    6,
                    "storage.sync_interval: 0 is out of range 1..3600000".to_string()
                ),
                (
                    7,
                    "storage.dir: an empty path (expected a directory)".to_string()
                ),
            ]
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let config = valid(
            "max_connections = 0\nmax_packet_size = 0\nmessage_size_limit = 0\nmax_inflight_messages = 0\n\
             max_queued_messages = 0\nmax_queued_bytes = 0\nsys_interval = 0\npersistent_client_expiration = 0\n",
        );
        assert_eq!(config.max_connections, None);
        assert_eq!(config.max_packet_size, None);
        assert_eq!(config.message_size_limit, None);
        assert_eq!(config.max_inflight_messages, 65535);
        assert_eq!(config.max_queued_messages, None);
        assert_eq!(config.max_queued_bytes, None);
        assert_eq!(config.sys_interval, None);
        assert_eq!(config.persistent_client_expiration, None);
    }

    #[test]
    fn expiration_as_text_or_seconds() {
        let expiration = |text: &str| {
            valid(&format!("persistent_client_expiration = {text}\n")).persistent_client_expiration
        };
        assert_eq!(expiration("\"2h\""), Some(Duration::from_secs(7200)));
        assert_eq!(expiration("\"1m\""), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(expiration("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(
            errors("persistent_client_expiration = true\n"),
            [(
                1,
                "persistent_client_expiration: expected a duration such as \"14d\" or a number of seconds, found boolean"
                    .to_string()
            )]
        );
        assert_eq!(
            errors("\npersistent_client_expiration = -5\n"),
            [(
                2,
                "persistent_client_expiration: -5 is negative (0 means never)".to_string()
            )]
        );
    }

    #[test]
    fn a_listener_turns_anonymous_access_off_unless_allowed() {
        assert!(valid("max_keepalive = 60\n").allow_anonymous);
        assert!(!valid("[[listener]]\nport = 1883\n").allow_anonymous);
        assert!(valid("allow_anonymous = true\n[[listener]]\nport = 1883\n").allow_anonymous);
        assert!(!valid("allow_anonymous = false\n").allow_anonymous);
    }

    #[test]
    fn log_lists_replace_the_defaults() {
        let config = valid("[log]\ntype = [\"debug\", \"none\", \"error\"]\n");
        assert_eq!(config.logging.types, ["error"]);
        assert_eq!(config.logging.destinations, ["stderr"], "dest untouched");
        let config = valid("[log]\ndest = []\n");
        assert!(config.logging.destinations.is_empty());
        assert_eq!(
            errors("[log]\ndest = [\"file /a.log\", \"file /b.log\"]\n"),
            [(
                2,
                "log.dest: only one file destination may be configured".to_string()
            )]
        );
    }

    /// Serde stops at the first of these, so each is its own file.
    #[test]
    fn syntax_unknown_keys_and_wrong_types_report_their_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "# comment\nmax_keepalive = 60\nmax_keepalives = 60\n",
                3,
                "unknown field `max_keepalives`",
            ),
            (
                "[[listener]]\nport = 1883\nhost = \"::1\"\n",
                3,
                "unknown field `host`",
            ),
            ("\n[log]\ntypes = [\"error\"]\n", 3, "unknown field `types`"),
            ("[logging]\n", 1, "unknown field `logging`"),
            (
                "[storage]\nenabled = true\npath = \"/var/lib/starling\"\n",
                3,
                "unknown field `path`",
            ),
            (
                "[storage]\nsync_interval = \"500ms\"\n",
                2,
                "invalid type: string \"500ms\", expected i64",
            ),
            ("[storage]\nenabled = \"yes\"\n", 2, "invalid type"),
            (
                "max_keepalive = \"60\"\n",
                1,
                "invalid type: string \"60\", expected i64",
            ),
            ("\n\nallow_anonymous = yes\n", 3, ""),
            (
                "max_keepalive = 60\nmax_keepalive = 70\n",
                2,
                "duplicate key",
            ),
            (
                "[[listener]]\naddress = \"::1\"\n",
                1,
                "missing field `port`",
            ),
            (
                "[listener]\nport = 1883\n",
                1,
                "invalid type: map, expected a sequence",
            ),
        ];
        for (text, line, reason) in cases {
            let found = errors(text);
            assert_eq!(found.len(), 1, "{text:?}: {found:#?}");
            assert_eq!(found[0].0, *line, "{text:?}: {found:#?}");
            assert!(found[0].1.contains(reason), "{text:?}: {found:#?}");
        }
    }

    #[test]
    fn every_value_out_of_range_is_reported() {
        let found = errors(
            r#"# line 1
max_keepalive = 70000
max_packet_size = 10
sys_interval = -1
max_connections = -1
persistent_client_expiration = "14x"

[[listener]]
port = 0

[[listener]]
port = 1883
address = "no-such-host.invalid"

[log]
type = ["error", "loud"]
dest = ["stderr",
    "paper"]
"#,
        );
        let expected: &[(usize, &str)] = &[
            (2, "max_keepalive: 70000 is out of range 0..65535"),
            (
                3,
                "max_packet_size: 10 is out of range: 0 (unlimited) or 20..4294967295",
            ),
            (4, "sys_interval: -1 is out of range 0..65535"),
            (5, "max_connections: -1 is negative (0 means unlimited)"),
            (6, "persistent_client_expiration: '14x' is not a duration"),
            (9, "listener.port: 0 is out of range 1..65535"),
            (
                13,
                "listener.address: cannot resolve 'no-such-host.invalid'",
            ),
            (16, "log.type: unknown type 'loud'"),
            (18, "log.dest: unknown destination 'paper'"),
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for ((line, reason), (want_line, want)) in found.iter().zip(expected) {
            assert_eq!(line, want_line, "{reason}");
            assert!(
                reason.starts_with(want),
                "'{reason}' should start with '{want}'"
            );
        }
    }

    #[test]
    fn duplicate_listeners_are_errors() {
        assert_eq!(
            errors("[[listener]]\nport = 1883\n\n[[listener]]\nport = 1883\naddress = \"::\"\n"),
            [(
                5,
                "listener: [::]:1883 is already configured at line 2".to_string()
            )]
        );
    }

    #[test]
    fn later_sections_are_warned_about_and_ignored() {
        let (config, report) =
            parse("max_keepalive = 60\n\n[tls]\ncert = \"c.pem\"\n").expect("valid");
        assert_eq!(
            config,
            Config {
                max_keepalive: 60,
                ..Config::default()
            }
        );
        let found: Vec<_> = report
            .warnings
            .iter()
            .map(|p| (p.line, p.reason.as_str()))
            .collect();
        assert_eq!(found, [(3, "[tls]: not supported yet; ignored")]);
    }

    #[test]
    fn an_auth_section_is_an_error_not_a_warning() {
        // A file meant to require passwords must not start an open broker.
        assert_eq!(
            errors("max_keepalive = 60\n[auth]\npassword_file = \"p\"\n"),
            [(
                2,
                "[auth]: the authentication settings are top-level keys (password_file, acl_file, allow_anonymous, ...)"
                    .to_string()
            )]
        );
    }

    #[test]
    fn security_keys_at_the_top_and_per_listener() {
        // mosquitto.conf(5) per_listener_settings: password_file, acl_file,
        // allow_anonymous, allow_zero_length_clientid and auto_id_prefix are
        // per listener when it is true, and only then.
        let scratch = Scratch::new("toml-security");
        let path = scratch.write(
            "starling.toml",
            "per_listener_settings = true\npassword_file = \"passwd\"\n\
             [[listener]]\nport = 1883\naddress = \"127.0.0.1\"\nacl_file = \"/etc/acl\"\nallow_anonymous = true\n\
             [[listener]]\nport = 1884\naddress = \"127.0.0.1\"\nauto_id_prefix = \"b-\"\n",
        );
        let (config, _) = parse_toml(&path).expect("valid");
        assert!(config.per_listener_settings);
        assert_eq!(config.password_file, Some(scratch.dir().join("passwd")));
        assert!(!config.allow_anonymous, "listeners are configured");
        let own: Vec<_> = config
            .listeners
            .iter()
            .map(|l| l.security.clone().expect("per listener"))
            .collect();
        assert_eq!(own[0].acl_file, Some("/etc/acl".into()));
        assert!(own[0].allow_anonymous);
        assert_eq!(own[1].auto_id_prefix, "b-");
        assert!(!own[1].allow_anonymous);
        assert_eq!(own[1].password_file, None);

        assert_eq!(
            errors("[[listener]]\nport = 1883\nacl_file = \"/etc/acl\"\nauto_id_prefix = \"a/b\"\n"),
            [
                (
                    3,
                    "listener.acl_file: applies to one listener only with per_listener_settings = true"
                        .to_string()
                ),
                (
                    4,
                    "listener.auto_id_prefix: applies to one listener only with per_listener_settings = true"
                        .to_string()
                ),
            ]
        );
        assert_eq!(
            errors("auto_id_prefix = \"a#\"\n"),
            [(
                1,
                "auto_id_prefix: 'a#' would make client identifiers with '+', '#' or '/'"
                    .to_string()
            )]
        );
    }

    #[test]
    fn unreadable_file() {
        let scratch = Scratch::new("toml-missing");
        let missing = scratch.dir().join("missing.toml");
        let report = parse_toml(&missing).expect_err("missing");
        assert_eq!(
            (report.errors[0].file.as_path(), report.errors[0].line),
            (missing.as_path(), 0)
        );
    }

    #[test]
    fn listener_tables_take_the_listener_options() {
        let scratch = Scratch::new("toml-listener");
        let path = scratch.write(
            "starling.toml",
            r#"connect_timeout = 3
max_publish_rate = 50
max_topic_levels = 128

[[listener]]
port = 8883
address = "127.0.0.1"
certfile = "server.pem"
keyfile = "server.key"
cafile = "ca.pem"
require_certificate = true
use_subject_as_username = true
ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"
ciphers_tls13 = "TLS_AES_128_GCM_SHA256"
max_connections = 10

[[listener]]
port = 9001
address = "127.0.0.1"
protocol = "websockets"
websockets_path = "/mqtt"
websockets_origin = ["https://a.example", "https://b.example"]
enable_proxy_protocol = 1
"#,
        );
        let (config, report) = parse_toml(&path).expect("valid");
        assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert_eq!(config.max_publish_rate, NonZeroU32::new(50));
        assert_eq!(config.max_topic_levels, 128);
        let [tls, ws] = &config.listeners[..] else {
            panic!("{:#?}", config.listeners);
        };
        let settings = tls.settings.tls.as_ref().expect("TLS");
        assert_eq!(
            settings.certfile.as_deref(),
            Some(scratch.dir().join("server.pem").as_path())
        );
        assert!(settings.require_certificate && settings.use_subject_as_username);
        assert_eq!(
            settings.ciphers.as_deref(),
            Some("ECDHE-ECDSA-AES128-GCM-SHA256")
        );
        assert_eq!(
            settings.ciphers_tls13.as_deref(),
            Some("TLS_AES_128_GCM_SHA256")
        );
        assert_eq!(tls.settings.max_connections, Some(10));
        assert_eq!(ws.settings.protocol, super::super::Protocol::WebSockets);
        assert_eq!(ws.settings.websockets.origins.len(), 2);
        assert_eq!(
            ws.settings.proxy_protocol,
            Some(super::super::ProxyProtocol::V1)
        );

        // The same from mosquitto.conf.
        let conf = scratch.write(
            "mosquitto.conf",
            "connect_timeout 3\nmax_publish_rate 50\nmax_topic_levels 128\nlistener 8883 127.0.0.1\ncertfile server.pem\n\
             keyfile server.key\ncafile ca.pem\nrequire_certificate true\n\
             use_subject_as_username true\nciphers ECDHE-ECDSA-AES128-GCM-SHA256\n\
             ciphers_tls1.3 TLS_AES_128_GCM_SHA256\nmax_connections 10\n\
             listener 9001 127.0.0.1\nprotocol websockets\nwebsockets_path /mqtt\n\
             websockets_origin https://a.example\nwebsockets_origin https://b.example\n\
             enable_proxy_protocol 1\n",
        );
        let (from_conf, _) = parse_mosquitto(&conf).expect("valid mosquitto.conf");
        assert_eq!(from_conf, config);
    }

    #[test]
    fn listener_table_errors_have_their_lines() {
        let found = errors(
            "[[listener]]\nport = 8883\ncertfile = \"c.pem\"\n\n[[listener]]\nport = 9001\n\
             protocol = \"ws\"\nenable_proxy_protocol = 3\nmax_connections = -2\n",
        );
        let expected: &[(usize, &str)] = &[
            (2, "listener: certfile without keyfile: TLS needs both"),
            (7, "listener.protocol: 'ws' is not mqtt or websockets"),
            (
                8,
                "listener.enable_proxy_protocol: '3' is not a PROXY protocol version",
            ),
            (9, "listener.max_connections: -2 is negative"),
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for ((line, reason), (want_line, want)) in found.iter().zip(expected) {
            assert_eq!(
                (line, reason.starts_with(want)),
                (want_line, true),
                "{reason}"
            );
        }
    }
}
