//! Log output in Mosquitto's form: `1700000000: New client connected ...`, a
//! Unix timestamp, a colon, the message. Users' log parsers keep working.

use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::EnvFilter;

struct UnixSeconds;

impl FormatTime for UnixSeconds {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        write!(w, "{secs}:")
    }
}

/// Installs the global subscriber: `info` and above, `debug` for the broker
/// with `verbose` (every packet), or what `RUST_LOG` says.
pub(crate) fn init(verbose: bool) {
    let default = if verbose { "info,starling_broker=debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(UnixSeconds)
        .with_target(false)
        .with_level(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
