//! Log output in Mosquitto's form: `1700000000: New client connected ...`, a
//! Unix timestamp, a colon, the message, so users' log parsers keep working;
//! filtered by `log_type` and sent where `log_dest` says.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use starling_broker::config::Logging;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
use tracing_subscriber::EnvFilter;

struct UnixSeconds;

impl FormatTime for UnixSeconds {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        write!(w, "{secs}:")
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
    let mut ansi = false;
    for dest in &logging.destinations {
        match dest
            .split_once(' ')
            .map_or((dest.as_str(), ""), |(k, v)| (k, v.trim()))
        {
            ("stderr", _) => {
                ansi = std::io::stderr().is_terminal();
                add(BoxMakeWriter::new(std::io::stderr));
            }
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
        .with_timer(UnixSeconds)
        .with_target(false)
        .with_level(false)
        .with_ansi(ansi)
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
