//! `starling broker`: loads the configuration, binds the listeners and serves
//! until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use starling_broker::config::{self, Config};
use tracing::{error, info, warn};

/// `starling broker [-c FILE] [-p PORT] [-v]`.
#[derive(Debug, Args)]
pub(crate) struct BrokerArgs {
    /// Configuration file: Starling TOML (`.toml`) or Mosquitto's `mosquitto.conf` syntax.
    #[arg(short = 'c', long = "config-file", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Port of the default listener (127.0.0.1 and ::1) when the configuration has none.
    #[arg(
        short = 'p',
        long = "port",
        value_name = "PORT",
        default_value_t = 1883
    )]
    port: u16,
    /// Log every packet in and out.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
}

pub(crate) fn main(args: BrokerArgs) -> ExitCode {
    // Configuration problems go straight to stderr: logging is configured by
    // the file being read.
    let config = match load(&args) {
        Ok(config) => config,
        Err(()) => return ExitCode::from(1),
    };
    for problem in crate::logging::init(&config.logging) {
        warn!("Warning: {problem}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("Error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(config, args.port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("Error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Reads the configuration file, printing every error and warning with its
/// file and line; `Err` if there was any error.
fn load(args: &BrokerArgs) -> Result<Config, ()> {
    let mut config = match &args.config {
        None => Config::default(),
        Some(path) => match config::load(path) {
            Ok((config, report)) => {
                for warning in &report.warnings {
                    eprintln!("Warning: {warning}");
                }
                config
            }
            Err(report) => {
                for warning in &report.warnings {
                    eprintln!("Warning: {warning}");
                }
                for problem in &report.errors {
                    eprintln!("Error: {problem}");
                }
                let n = report.errors.len();
                let plural = if n == 1 { "" } else { "s" };
                eprintln!("{n} error{plural} in the configuration; not starting.");
                return Err(());
            }
        },
    };
    config.logging.packets |= args.verbose;
    Ok(config)
}

async fn serve(config: Config, port: u16) -> anyhow::Result<()> {
    info!("starling version {} starting", env!("CARGO_PKG_VERSION"));
    let mut listeners = Vec::new();
    for addr in config.listen_addresses(port) {
        match starling_broker::server::bind(addr) {
            Ok(listener) => listeners.push(listener),
            // Mosquitto carries on when only the IPv6 loopback is missing.
            Err(e) if addr.is_ipv6() && config.listeners.is_empty() => {
                warn!("Warning: cannot listen on {addr}: {e}");
            }
            Err(e) => return Err(e).with_context(|| format!("cannot listen on {addr}")),
        }
    }
    anyhow::ensure!(!listeners.is_empty(), "no listener could be opened");
    starling_broker::server::run(config, listeners, shutdown_signal()).await;
    info!("starling version {} terminating", env!("CARGO_PKG_VERSION"));
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
