//! Log output in Mosquitto's form: `1700000000: New client connected ...`, a
//! Unix timestamp, a colon, the message, so users' log parsers keep working;
//! filtered by `log_type` and sent where `log_dest` says.

use std::fmt::{self, Write as _};
use std::fs::OpenOptions;
use std::sync::Mutex;
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

/// One line per event, as Mosquitto writes it: `SECS: message`, then any
/// other fields as ` name=value`. Written straight from the event's fields:
/// tracing-subscriber's own format escapes its output one `char` at a time,
/// which was a fifth of what a connection cost the broker (issue 7).
struct MosquittoLine;

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
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        write!(writer, "{secs}:")?;
        let mut line = Fields {
            out: Printable(&mut writer),
            result: Ok(()),
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
}

impl Visit for Fields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = if field.name() == "message" {
                write!(self.out, " {value:?}")
            } else {
                write!(self.out, " {}={value:?}", field.name())
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(MosquittoLine)
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

    /// The line Mosquitto writes, from an event with a message and a field;
    /// control characters a client put in its id are escaped.
    #[test]
    fn lines_are_mosquittos_and_printable() {
        let buf = std::sync::Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = std::sync::Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .event_format(MosquittoLine)
            .with_writer(move || Capture(std::sync::Arc::clone(&sink)))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                "New client connected from 127.0.0.1:5000 as {}.",
                "a\x1b[31mb"
            );
            tracing::info!(port = 1883, "Opening ipv4 listen socket.");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
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
