//! Log output in Mosquitto's form: `1700000000: New client connected ...`, a
//! Unix timestamp, a colon, the message, so users' log parsers keep working;
//! filtered by `log_type` and sent where `log_dest` says. The timestamp
//! (`log_timestamp`, `log_timestamp_format`) and the connection messages
//! (`connection_messages`) are [`set_style`], again on each reload.

use std::fmt::{self, Write as _};
use std::fs::OpenOptions;
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use starling_broker::config::Logging;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// What each line looks like; reloaded on SIGHUP, as in Mosquitto.
#[derive(Debug)]
struct Style {
    /// `log_timestamp`.
    timestamp: bool,
    /// `log_timestamp_format`, ready for `strftime`; `None`: Unix seconds.
    format: Option<std::ffi::CString>,
    /// `connection_messages`.
    connection_messages: bool,
}

static STYLE: RwLock<Style> = RwLock::new(Style {
    timestamp: true,
    format: None,
    connection_messages: true,
});

/// Applies `logging`'s timestamp and connection message settings to the
/// lines written from now on.
pub(crate) fn set_style(logging: &Logging) {
    *STYLE.write().unwrap_or_else(|e| e.into_inner()) = Style::of(logging);
}

impl Style {
    fn of(logging: &Logging) -> Style {
        Style {
            timestamp: logging.timestamp,
            // The parsers refuse a format holding a NUL.
            format: logging
                .timestamp_format
                .as_ref()
                .and_then(|f| std::ffi::CString::new(f.as_str()).ok()),
            connection_messages: logging.connection_messages,
        }
    }
}

/// One line per event, as Mosquitto writes it: `SECS: message`, then any
/// other fields as ` name=value`. Written straight from the event's fields:
/// tracing-subscriber's own format escapes its output one `char` at a time,
/// which was a fifth of what a connection cost the broker (issue 7).
struct MosquittoLine(&'static RwLock<Style>);

impl<S, N> FormatEvent<S, N> for MosquittoLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let timestamped = {
            let style = self.0.read().unwrap_or_else(|e| e.into_inner());
            let meta = event.metadata();
            if !style.connection_messages
                && starling_broker::log::is_connection_message(meta.target(), *meta.level())
            {
                return Ok(());
            }
            if style.timestamp {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                match &style.format {
                    None => write!(writer, "{secs}:")?,
                    Some(format) => write!(writer, "{}:", crate::process::strftime(format, secs))?,
                }
            }
            style.timestamp
        };
        let mut line = Fields {
            out: Printable(&mut writer),
            result: Ok(()),
            // Without a timestamp the line starts with the message, as in Mosquitto.
            first: !timestamped,
        };
        event.record(&mut line);
        line.result?;
        writeln!(writer)
    }
}

/// Writes an event's fields.
struct Fields<'a, 'w> {
    out: Printable<'a, 'w>,
    result: fmt::Result,
    /// Nothing written yet: no space before the first field.
    first: bool,
}

impl Visit for Fields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            let space = if std::mem::take(&mut self.first) {
                ""
            } else {
                " "
            };
            self.result = if field.name() == "message" {
                write!(self.out, "{space}{value:?}")
            } else {
                write!(self.out, "{space}{}={value:?}", field.name())
            };
        }
    }
}

/// Passes text through but for control characters, which are escaped
/// (`\u{1b}`): client identifiers and topics are the clients' own, and must
/// not reach a terminal as escape sequences.
struct Printable<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Printable<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !s.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return self.0.write_str(s);
        }
        for c in s.chars() {
            if c.is_control() {
                write!(self.0, "{}", c.escape_default())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// The most detailed level Mosquitto's `log_type` list asks for. Packet logs
/// are `debug`, as in Mosquitto, where `-v` means `log_type all`.
fn level(logging: &Logging) -> LevelFilter {
    let has = |t: &str| logging.types.iter().any(|x| x == t);
    if logging.packets || has("all") || has("debug") {
        LevelFilter::DEBUG
    } else if has("information") || has("notice") || has("subscribe") || has("unsubscribe") {
        LevelFilter::INFO
    } else if has("warning") {
        LevelFilter::WARN
    } else if has("error") {
        LevelFilter::ERROR
    } else {
        LevelFilter::OFF
    }
}

/// Installs the global subscriber for `logging`; `RUST_LOG` overrides the
/// level. Returns the destinations it could not honour, for a warning.
pub(crate) fn init(logging: &Logging) -> Vec<String> {
    let mut unsupported = Vec::new();
    let mut writer: Option<BoxMakeWriter> = None;
    let mut add = |w: BoxMakeWriter| {
        writer = Some(match writer.take() {
            Some(prev) => BoxMakeWriter::new(prev.and(w)),
            None => w,
        });
    };
    for dest in &logging.destinations {
        match dest
            .split_once(' ')
            .map_or((dest.as_str(), ""), |(k, v)| (k, v.trim()))
        {
            ("stderr", _) => add(BoxMakeWriter::new(std::io::stderr)),
            ("stdout", _) => add(BoxMakeWriter::new(std::io::stdout)),
            ("file", path) => match OpenOptions::new().create(true).append(true).open(path) {
                Ok(file) => add(BoxMakeWriter::new(Mutex::new(file))),
                Err(e) => unsupported.push(format!("log_dest file {path}: {e}")),
            },
            ("none", _) => {}
            (other, _) => unsupported.push(format!("log_dest {other} is not supported yet")),
        }
    }
    let writer = writer.unwrap_or_else(|| BoxMakeWriter::new(std::io::sink));
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::default().add_directive(level(logging).into()));
    set_style(logging);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(MosquittoLine(&STYLE))
        .with_writer(writer)
        .init();
    unsupported
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logging(types: &[&str]) -> Logging {
        Logging {
            types: types.iter().map(|t| t.to_string()).collect(),
            ..Logging::default()
        }
    }

    /// What `logging` makes of three events: a connection message, a line
    /// with a field, a warning.
    fn written(logging: &Logging) -> String {
        let style: &'static RwLock<Style> = Box::leak(Box::new(RwLock::new(Style::of(logging))));
        let buf = std::sync::Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = std::sync::Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .event_format(MosquittoLine(style))
            .with_writer(move || Capture(std::sync::Arc::clone(&sink)))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                target: starling_broker::log::CONNECTIONS,
                "New client connected from 127.0.0.1:5000 as {}.",
                "a\x1b[31mb"
            );
            tracing::info!(port = 1883, "Opening ipv4 listen socket.");
            tracing::warn!(target: starling_broker::log::CONNECTIONS, "Warning: a warning.");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        text
    }

    /// `log_timestamp false`: the message alone; `connection_messages false`:
    /// no connection line (but its warnings); a `log_timestamp_format`.
    #[test]
    fn timestamps_and_connection_messages_as_configured() {
        let bare = Logging {
            timestamp: false,
            ..Logging::default()
        };
        assert_eq!(
            written(&bare),
            "New client connected from 127.0.0.1:5000 as a\\u{1b}[31mb.\n\
             Opening ipv4 listen socket. port=1883\n\
             Warning: a warning.\n"
        );
        let quiet = Logging {
            timestamp: false,
            connection_messages: false,
            ..Logging::default()
        };
        assert_eq!(
            written(&quiet),
            "Opening ipv4 listen socket. port=1883\nWarning: a warning.\n"
        );
        let formatted = Logging {
            timestamp_format: Some("[%%Y]".into()),
            ..Logging::default()
        };
        assert!(
            written(&formatted).starts_with("[%Y]: New client connected"),
            "{}",
            written(&formatted)
        );
    }

    /// The line Mosquitto writes, from an event with a message and a field;
    /// control characters a client put in its id are escaped.
    #[test]
    fn lines_are_mosquittos_and_printable() {
        let text = written(&Logging::default());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let (secs, rest) = lines[0].split_once(": ").unwrap();
        assert!(secs.parse::<u64>().unwrap() > 1_600_000_000);
        assert_eq!(
            rest,
            "New client connected from 127.0.0.1:5000 as a\\u{1b}[31mb."
        );
        assert!(lines[1].ends_with(": Opening ipv4 listen socket. port=1883"));
    }

    struct Capture(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_type_picks_the_level() {
        assert_eq!(level(&Logging::default()), LevelFilter::INFO);
        assert_eq!(level(&logging(&["all"])), LevelFilter::DEBUG);
        assert_eq!(level(&logging(&["error", "warning"])), LevelFilter::WARN);
        assert_eq!(level(&logging(&["none"])), LevelFilter::OFF);
        let verbose = Logging {
            packets: true,
            ..logging(&["error"])
        };
        assert_eq!(level(&verbose), LevelFilter::DEBUG);
    }
}
