//! `starling broker`: loads the configuration, binds the listeners and serves
//! until SIGINT or SIGTERM. SIGHUP reloads the password and ACL files (and
//! the TLS certificates) and the log's timestamp and connection messages, as
//! Mosquitto's reload signal does. Started as root, it runs as `user` once
//! its listeners are bound and its store is open, then writes `pid_file`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use starling_broker::auth::AuthState;
use starling_broker::config::{self, Config, SocketDomain};
use starling_broker::storage::{Durability, SqliteStore, Store, StoreError};
use starling_broker::transport::Endpoint;
use starling_broker::Broker;
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
    /// Keep the store in DIR (`starling.db`), with persistence on, whatever the
    /// configuration says.
    #[arg(long = "data-dir", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// If the store cannot be read (damaged, or from another Starling), move its
    /// files aside as `starling.db.damaged-<unix seconds>` and start with an
    /// empty store. Without it, a damaged store stops the start.
    #[arg(long = "fresh-if-damaged")]
    fresh_if_damaged: bool,
}

pub(crate) fn main(args: BrokerArgs) -> ExitCode {
    // Configuration problems go straight to stderr: logging is configured by
    // the file being read.
    let config = match load(&args) {
        Ok(config) => config,
        Err(()) => return ExitCode::from(1),
    };
    // Mosquitto does not start either when its password or ACL file is unusable.
    let auth = match AuthState::load(&config) {
        Ok((auth, report)) => {
            for warning in &report.warnings {
                eprintln!("Warning: {warning}");
            }
            auth
        }
        Err(report) => {
            for problem in &report.errors {
                eprintln!("Error: {problem}");
            }
            eprintln!("Cannot use the password or ACL file; not starting.");
            return ExitCode::from(1);
        }
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
    match runtime.block_on(serve(config, auth, &args)) {
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
    apply_args(&mut config, args.verbose, args.data_dir.as_deref());
    Ok(config)
}

/// What the command line changes in a configuration read from a file.
fn apply_args(config: &mut Config, verbose: bool, data_dir: Option<&Path>) {
    config.logging.packets |= verbose;
    if let Some(dir) = data_dir {
        config.storage.enabled = true;
        config.storage.dir = Some(dir.to_path_buf());
    }
}

/// Opens the store the configuration names and reads it. With `fresh`, a store
/// that is damaged (or of another schema) is moved aside, and an empty one
/// started in its place; the move is logged.
fn open_store(
    config: &Config,
    fresh: bool,
) -> anyhow::Result<(Arc<dyn Store>, starling_broker::storage::Snapshot)> {
    let file = config.storage.file();
    let attempt = || -> Result<_, StoreError> {
        let store = SqliteStore::open(&file, config.storage.durability)?;
        let snapshot = store.load(std::time::SystemTime::now())?;
        Ok((Arc::new(store) as Arc<dyn Store>, snapshot))
    };
    match attempt() {
        Ok(opened) => Ok(opened),
        Err(e @ (StoreError::Corrupt { .. } | StoreError::Version { .. })) if fresh => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let aside = move_aside(&file, stamp)
                .with_context(|| format!("cannot move the damaged store {} aside", file.display()))?;
            warn!(
                "Warning: {e}; moved it aside as {} (--fresh-if-damaged) and starting with an empty store.",
                aside.display()
            );
            Ok(attempt()?)
        }
        Err(e @ (StoreError::Corrupt { .. } | StoreError::Version { .. })) => Err(anyhow::anyhow!(
            "{e}; not starting. Start with --fresh-if-damaged to move it aside and start with an empty store."
        )),
        Err(e) => Err(anyhow::anyhow!("{e}; not starting.")),
    }
}

/// Renames the store's file (and its `-wal` and `-shm` files) to
/// `<file>.damaged-<stamp>`; returns the new name of the main file.
fn move_aside(file: &Path, stamp: u64) -> std::io::Result<PathBuf> {
    let aside = PathBuf::from(format!("{}.damaged-{stamp}", file.display()));
    std::fs::rename(file, &aside)?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", file.display()));
        if side.exists() {
            std::fs::rename(&side, format!("{}{suffix}", aside.display()))?;
        }
    }
    Ok(aside)
}

async fn serve(config: Config, auth: AuthState, args: &BrokerArgs) -> anyhow::Result<()> {
    let port = args.port;
    info!("starling version {} starting", env!("CARGO_PKG_VERSION"));
    raise_open_file_limit(&config);
    let mut listeners = Vec::new();
    for listener in config.listeners_or_default(port) {
        let addr = listener.bind;
        // `socket_domain`: a listener of one address family skips the other's
        // sockets.
        let family_wanted = match listener.settings.socket_domain {
            None => true,
            Some(SocketDomain::Ipv4) => addr.is_ipv4(),
            Some(SocketDomain::Ipv6) => addr.is_ipv6(),
        };
        if !family_wanted {
            continue;
        }
        let interface = listener.settings.bind_interface.clone();
        let socket = match starling_broker::server::bind_to(addr, interface.as_deref()) {
            Ok(socket) => socket,
            // Mosquitto carries on when only the IPv6 loopback is missing.
            Err(e) if addr.is_ipv6() && config.listeners.is_empty() => {
                warn!("Warning: cannot listen on {addr}: {e}");
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot listen on {addr}")),
        };
        // A TLS listener whose certificate or key cannot be used stops the start.
        let endpoint = Endpoint::new(socket, listener)
            .with_context(|| format!("the TLS settings of the listener on {addr}"))?;
        listeners.push(endpoint);
    }
    anyhow::ensure!(!listeners.is_empty(), "no listener could be opened");
    // Everything stored is restored before the first client is accepted.
    let broker = if config.storage.enabled {
        let (store, snapshot) = open_store(&config, args.fresh_if_damaged)?;
        info!(
            "Persistence: {} ({}).",
            config.storage.file().display(),
            match config.storage.durability {
                Durability::Sync => "sync: acknowledged once on disk".to_owned(),
                Durability::Periodic(every) => format!("periodic: on disk every {every:?}"),
                Durability::Off => "off: never fsynced".to_owned(),
            }
        );
        Broker::with_store(config, auth, store, snapshot)
    } else {
        info!("Persistence off: sessions and retained messages are kept in memory only.");
        Broker::with_auth(config, auth)
    };
    // The signals are caught from now on: one that came before its handler
    // would end the process at once, leaving the pid file behind.
    let shutdown = shutdown_signal();
    #[cfg(unix)]
    let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(e) => {
            warn!("Warning: cannot catch SIGHUP ({e}); the configuration will not be reloaded.");
            None
        }
    };
    // As Mosquitto 2.0 does, started as root the broker runs as `user`
    // (`mosquitto` by default); unlike it, only once the listeners are bound
    // (ports below 1024 work) and the store is open (the default store
    // directory is root's own). Then the pid file, written as that user.
    let privileges = crate::process::drop_privileges(&broker.config.process)?;
    if let crate::process::Privileges::Dropped(account) = &privileges {
        crate::process::warn_unreadable(&broker.config, args.config.as_deref(), account);
    }
    let _pid_file = match &broker.config.process.pid_file {
        Some(path) => Some(crate::process::PidFile::write(path, &privileges)?),
        None => None,
    };
    #[cfg(unix)]
    if let Some(hangup) = hangup {
        tokio::spawn(reload_on_hangup(
            hangup,
            Arc::clone(&broker),
            args.config.clone(),
            args.verbose,
            args.data_dir.clone(),
        ));
    }
    starling_broker::server::serve_endpoints(Arc::clone(&broker), listeners, shutdown).await;
    // The connections have ended (and written their sessions' state): write
    // what is pending and stop the store.
    let _ = tokio::task::spawn_blocking(move || broker.close_store()).await;
    info!("starling version {} terminating", env!("CARGO_PKG_VERSION"));
    Ok(())
}

/// File descriptors kept for what is not a client: listeners, the store and
/// its journal, log files, the password and ACL files when re-read.
const RESERVED_FILES: u64 = 64;

/// Each connection holds a file descriptor: the soft limit (often 1,024) is
/// raised to the hard one, and the log says how many clients that leaves
/// room for, as a refused accept would otherwise be the first sign of it.
fn raise_open_file_limit(config: &Config) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let room = limit.saturating_sub(RESERVED_FILES);
            info!("Open file limit {limit}: room for about {room} connections.");
            if let Some(max) = config.max_connections {
                if max as u64 > room {
                    warn!(
                        "Warning: max_connections {max} is above the {room} connections the open \
                         file limit leaves room for; raise the hard limit (ulimit -Hn, LimitNOFILE)."
                    );
                }
            }
        }
        Err(e) => warn!("Warning: cannot raise the open file limit: {e}"),
    }
}

/// On each SIGHUP, [`reload`].
#[cfg(unix)]
async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    broker: Arc<Broker>,
    path: Option<PathBuf>,
    verbose: bool,
    data_dir: Option<PathBuf>,
) {
    while hangup.recv().await.is_some() {
        reload(&broker, path.as_deref(), verbose, data_dir.as_deref());
    }
}

/// Everything a reload applies, each part on its own: the configuration file
/// read again for what [`Broker::reload`] takes (password file, ACL file and
/// the settings `per_listener_settings` scopes), then the TLS listeners'
/// certificates, keys, CAs and CRLs ([`Broker::reload_tls`]). A part that
/// cannot be used keeps what is in force and says why; the others still reload.
#[cfg(unix)]
fn reload(broker: &Broker, path: Option<&Path>, verbose: bool, data_dir: Option<&Path>) {
    info!("Reloading config.");
    reload_security(broker, path, verbose, data_dir);
    // Logs each TLS listener's outcome; one that fails keeps its certificate.
    let _ = broker.reload_tls();
}

#[cfg(unix)]
fn reload_security(broker: &Broker, path: Option<&Path>, verbose: bool, data_dir: Option<&Path>) {
    let mut config = match path {
        None => Config::default(),
        Some(path) => match config::load(path) {
            Ok((config, report)) => {
                for problem in &report.warnings {
                    warn!("Warning: {problem}");
                }
                config
            }
            Err(report) => {
                for problem in &report.errors {
                    error!("Error: {problem}");
                }
                error!("Error: reload failed; the settings in force are kept.");
                return;
            }
        },
    };
    apply_args(&mut config, verbose, data_dir);
    crate::logging::set_style(&config.logging);
    match broker.reload(&config) {
        Ok(reloaded) => {
            for problem in &reloaded.warnings {
                warn!("Warning: {problem}");
            }
            if reloaded.restart_needed {
                warn!(
                    "Warning: only {} are reloaded (and the TLS listeners' certificate \
                     files); the other changes take effect at the next start.",
                    config::RELOADED.join(", ")
                );
            }
        }
        Err(report) => {
            for problem in &report.errors {
                error!("Error: {problem}");
            }
            error!("Error: reload failed; the password and ACL files in force are kept.");
        }
    }
}

/// SIGINT or SIGTERM, caught from the call on (not from the first poll).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            match (interrupt, term) {
                (Ok(mut interrupt), Ok(mut term)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
