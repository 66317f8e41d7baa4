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
//! [log]
//! type = ["error", "warning"]
//! dest = ["stderr"]
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

use super::mosquitto::{line_of, values};
use super::{Config, ConfigProblem, ConfigReport, Listener};

/// The file as written. Numbers are `i64` so that range checks are ours and
/// all reported, rather than serde's and only the first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    allow_anonymous: Option<bool>,
    allow_zero_length_clientid: Option<bool>,
    max_connections: Option<Spanned<i64>>,
    max_packet_size: Option<Spanned<i64>>,
    message_size_limit: Option<Spanned<i64>>,
    max_inflight_messages: Option<Spanned<i64>>,
    max_queued_messages: Option<Spanned<i64>>,
    max_queued_bytes: Option<Spanned<i64>>,
    queue_qos0_messages: Option<bool>,
    max_keepalive: Option<Spanned<i64>>,
    max_topic_alias: Option<Spanned<i64>>,
    retain_available: Option<bool>,
    /// A Mosquitto duration string (`"14d"`) or a number of seconds.
    persistent_client_expiration: Option<Spanned<Value>>,
    upgrade_outgoing_qos: Option<bool>,
    sys_interval: Option<Spanned<i64>>,
    #[serde(default)]
    listener: Vec<ListenerTable>,
    log: Option<LogTable>,
    /// Sections a later Starling version reads: accepted with a warning.
    storage: Option<Spanned<Value>>,
    tls: Option<Spanned<Value>>,
    auth: Option<Spanned<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerTable {
    port: Spanned<i64>,
    address: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogTable {
    #[serde(rename = "type")]
    types: Option<Vec<Spanned<String>>>,
    dest: Option<Vec<Spanned<String>>>,
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
            (
                file.allow_zero_length_clientid,
                &mut c.allow_zero_length_clientid,
            ),
            (file.queue_qos0_messages, &mut c.queue_qos0_messages),
            (file.retain_available, &mut c.retain_available),
            (file.upgrade_outgoing_qos, &mut c.upgrade_outgoing_qos),
        ];
        for (value, field) in flags {
            if let Some(value) = value {
                *field = value;
            }
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
        if let Some(v) = self.number("sys_interval", file.sys_interval, values::sys_interval) {
            self.config.sys_interval = v;
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

        for listener in file.listener {
            self.listener(listener);
        }
        // Mosquitto 2: a broker reachable from the network needs an explicit
        // `allow_anonymous = true` to let anonymous clients in.
        self.config.allow_anonymous = file
            .allow_anonymous
            .unwrap_or(self.config.listeners.is_empty());

        if let Some(log) = file.log {
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

        for (name, section) in [
            ("storage", file.storage),
            ("tls", file.tls),
            ("auth", file.auth),
        ] {
            if let Some(section) = section {
                let line = self.line(section.span());
                let reason = format!("[{name}]: not supported yet; ignored");
                self.report.warnings.push(problem(self.path, line, reason));
            }
        }
    }

    fn listener(&mut self, table: ListenerTable) {
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
        self.config
            .listeners
            .extend(addrs.iter().map(|&bind| Listener { bind }));
        self.listeners.push((line, addrs));
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
