//! The tokio shell: accepts connections on the listeners it is given, runs one
//! task per connection, and shuts down gracefully when told to. Like
//! mini-redis's `server::run`, it takes its listeners and its shutdown signal as
//! arguments, so tests bind port 0 and stop it when they are done.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{error, info};

use crate::broker::Broker;
use crate::config::Config;
use crate::connection;

/// Serves MQTT on `listeners` until `shutdown` completes; then stops accepting,
/// sends v5 clients DISCONNECT 0x8B (Server shutting down), and returns once
/// every connection has closed.
pub async fn run(
    config: Config,
    listeners: Vec<TcpListener>,
    shutdown: impl Future,
) -> Arc<Broker> {
    let broker = Broker::new(config);
    serve(Arc::clone(&broker), listeners, shutdown).await;
    broker
}

/// As [`run`], with a broker the caller made (and may inspect).
pub async fn serve(broker: Arc<Broker>, listeners: Vec<TcpListener>, shutdown: impl Future) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let limit = broker
        .config
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n)));
    if let Some(interval) = broker.config.sys_interval {
        tokio::spawn(crate::sys::run(Arc::clone(&broker), interval));
    }
    let mut accepts = tokio::task::JoinSet::new();
    for listener in listeners {
        if let Ok(addr) = listener.local_addr() {
            info!(
                "Opening ipv{} listen socket on port {}.",
                if addr.is_ipv4() { 4 } else { 6 },
                addr.port()
            );
        }
        accepts.spawn(accept_loop(
            Arc::clone(&broker),
            listener,
            stop_rx.clone(),
            limit.clone(),
        ));
    }
    shutdown.await;
    info!("Shutting down.");
    let _ = stop_tx.send(true);
    // Each accept loop returns once its connections have ended.
    while accepts.join_next().await.is_some() {}
}

/// Binds a listening socket as Mosquitto does: an IPv6 socket is IPv6-only, so
/// that `0.0.0.0:p` and `[::]:p` can both be bound, and addresses are reusable at
/// once after a restart.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    limit: Option<Arc<Semaphore>>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: keep serving the others.
                error!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let permit = match &limit {
            Some(limit) => match Arc::clone(limit).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    info!("Refusing connection from {peer}: max_connections reached.");
                    continue;
                }
            },
            None => None,
        };
        let _ = stream.set_nodelay(true);
        let broker = Arc::clone(&broker);
        let stop = stop.clone();
        connections.spawn(async move {
            connection::serve(broker, stream, peer, stop).await;
            drop(permit);
        });
    }
    while connections.join_next().await.is_some() {}
}
