//! The tokio shell: accepts connections on the listeners it is given, runs one
//! task per connection, and shuts down gracefully when told to. Like
//! mini-redis's `server::run`, it takes its listeners and its shutdown signal as
//! arguments, so tests bind port 0 and stop it when they are done.
//!
//! Each accepted connection is held to two `max_connections` limits, the
//! broker's and its listener's (a refused one is closed at once, as Mosquitto
//! does), and to `connect_timeout`: from the accept, its PROXY header, TLS and
//! WebSocket handshakes ([`crate::transport`]) and its CONNECT must all arrive
//! within it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tracing::{error, info};

use crate::broker::Broker;
use crate::config::Config;
use crate::connection;
use crate::transport::{ConnectionInfo, Endpoint, Opened};

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
    let endpoints = listeners.into_iter().map(Endpoint::plain).collect();
    serve_endpoints(broker, endpoints, shutdown).await;
}

/// As [`serve`], with listeners of any kind (TLS, WebSockets, PROXY protocol,
/// their own `max_connections`). Their TLS certificates are reloaded by
/// [`Broker::reload_tls`].
pub async fn serve_endpoints(broker: Arc<Broker>, endpoints: Vec<Endpoint>, shutdown: impl Future) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Connections being opened watch `stop_rx`; those past that, `ending`.
    let ending = connection::Shutdown::new();
    let limit = broker
        .config
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n)));
    if let Some(interval) = broker.config.sys_interval {
        tokio::spawn(crate::sys::run(Arc::clone(&broker), interval));
    }
    let mut accepts = tokio::task::JoinSet::new();
    // A listener's `max_connections` counts every socket it binds (`listener
    // 1883` binds 0.0.0.0 and ::): sockets on the same port with the same
    // settings share one limit.
    let endpoints: Vec<Arc<Endpoint>> = endpoints.into_iter().map(Arc::new).collect();
    let mut groups: Vec<(u16, &crate::config::ListenerSettings, Arc<Semaphore>)> = Vec::new();
    let mut limits_of = Vec::with_capacity(endpoints.len());
    for endpoint in &endpoints {
        let port = endpoint.local_addr().map_or(0, |a| a.port());
        let settings = &endpoint.listener.settings;
        let listener_limit = settings.max_connections.map(|n| {
            match groups.iter().find(|(p, s, _)| *p == port && *s == settings) {
                Some((_, _, shared)) => Arc::clone(shared),
                None => {
                    let own = Arc::new(Semaphore::new(n));
                    groups.push((port, settings, Arc::clone(&own)));
                    own
                }
            }
        });
        limits_of.push(listener_limit);
    }
    for (endpoint, listener_limit) in endpoints.iter().zip(limits_of) {
        info!("Opening {}.", endpoint.describe());
        if let (Some(tls), Ok(addr)) = (&endpoint.tls, endpoint.local_addr()) {
            broker.tls.register(addr, tls);
        }
        accepts.spawn(accept_loop(
            Arc::clone(&broker),
            Arc::clone(endpoint),
            stop_rx.clone(),
            ending.clone(),
            [limit.clone(), listener_limit],
        ));
    }
    shutdown.await;
    info!("Shutting down.");
    let _ = stop_tx.send(true);
    ending.begin(&broker);
    // Each accept loop returns once its connections have ended.
    while accepts.join_next().await.is_some() {}
}

/// Binds a listening socket as Mosquitto does: an IPv6 socket is IPv6-only, so
/// that `0.0.0.0:p` and `[::]:p` can both be bound, and addresses are reusable at
/// once after a restart.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    bind_to(addr, None)
}

/// [`bind`], on the network interface `interface` only if given (a
/// listener's `bind_interface`: `SO_BINDTODEVICE`).
pub fn bind_to(addr: SocketAddr, interface: Option<&str>) -> std::io::Result<TcpListener> {
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
    if let Some(interface) = interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("bind_interface {interface}: {e}"))
            })?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// The connections of one listener: how many are open, under which limits.
/// Not a `JoinSet`: an entry per connection (64 bytes) and a task per
/// connection, where an idle connection may have none (it waits without one:
/// `connection::hibernate`).
#[derive(Debug)]
pub struct Slots {
    /// The broker's `max_connections` and the listener's.
    limits: [Option<Arc<Semaphore>>; 2],
    open: AtomicUsize,
    /// Woken when the last open connection closes.
    all_closed: Notify,
}

/// One connection's place among its listener's [`Slots`], given back when
/// it is dropped (the connection has ended).
#[derive(Debug, Default)]
pub struct Slot(Option<Arc<Slots>>);

impl Slots {
    fn new(limits: [Option<Arc<Semaphore>>; 2]) -> Arc<Slots> {
        Arc::new(Slots {
            limits,
            open: AtomicUsize::new(0),
            all_closed: Notify::new(),
        })
    }

    /// A place under every limit, or `None` if one is full.
    fn take(self: &Arc<Self>) -> Option<Slot> {
        let mut taken = Vec::with_capacity(2);
        for limit in self.limits.iter().flatten() {
            match limit.try_acquire() {
                Ok(permit) => taken.push(permit),
                Err(_) => return None,
            }
        }
        // Given back by hand when the slot is dropped.
        taken
            .into_iter()
            .for_each(tokio::sync::SemaphorePermit::forget);
        self.open.fetch_add(1, Ordering::AcqRel);
        Some(Slot(Some(Arc::clone(self))))
    }

    /// Waits until no connection is open.
    async fn closed(&self) {
        loop {
            let closed = self.all_closed.notified();
            tokio::pin!(closed);
            // Registered before the check: a close after it wakes us.
            closed.as_mut().enable();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slots) = self.0.take() {
            for limit in slots.limits.iter().flatten() {
                limit.add_permits(1);
            }
            if slots.open.fetch_sub(1, Ordering::AcqRel) == 1 {
                slots.all_closed.notify_waiters();
            }
        }
    }
}

/// Accepts on one endpoint; `limits` are the broker's and its listener's.
async fn accept_loop(
    broker: Arc<Broker>,
    endpoint: Arc<Endpoint>,
    mut stop: watch::Receiver<bool>,
    shutdown: connection::Shutdown,
    limits: [Option<Arc<Semaphore>>; 2],
) {
    let slots = Slots::new(limits);
    loop {
        let accepted = tokio::select! {
            accepted = endpoint.socket.accept() => accepted,
            _ = stop.changed() => break,
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
        let Some(slot) = slots.take() else {
            info!(target: crate::log::CONNECTIONS, "Refusing connection from {peer}: max_connections reached.");
            continue;
        };
        if broker.config.set_tcp_nodelay {
            let _ = stream.set_nodelay(true);
        }
        // The task holds only a box with what opening needs, then the
        // connection: a task's size is that of its largest stage, so the
        // transport handshakes' state (TLS and WebSocket ones are big) and
        // these arguments are kept out of it, which keeps idle connections
        // small. The connection itself is not boxed: tasks are allocated in
        // 128-byte steps, and a second allocation would cost more.
        let opening = Box::new(Opening {
            broker: Arc::clone(&broker),
            endpoint: Arc::clone(&endpoint),
            stream,
            peer,
            stop: stop.clone(),
            shutdown: shutdown.clone(),
        });
        tokio::spawn(connection_task(opening, slot));
    }
    slots.closed().await;
}

/// The task of one accepted connection: opens it and serves it; the
/// connection gives its `slot` back when it ends. Not an `async fn`, which
/// would hold its arguments twice.
#[allow(clippy::manual_async_fn)]
fn connection_task(opening: Box<Opening>, slot: Slot) -> impl Future<Output = ()> + Send {
    async move {
        // Not a `match` on the awaited value: its temporary would be kept
        // beside the connection for the life of the task.
        let Some((opened, info, broker, shutdown)) = Box::pin(open(opening)).await else {
            return;
        };
        match opened {
            Opened::Tcp(stream) => {
                connection::serve_in(broker, stream, info, shutdown, slot).await;
            }
            Opened::Boxed(stream) => {
                connection::serve_in(broker, stream, info, shutdown, slot).await;
            }
        }
    }
}

/// What an accepted connection needs to be opened.
struct Opening {
    broker: Arc<Broker>,
    endpoint: Arc<Endpoint>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    shutdown: connection::Shutdown,
}

/// Takes one accepted connection through its listener's transport stages:
/// what [`connection::serve_with`] needs, or `None` if it never got there.
async fn open(
    opening: Box<Opening>,
) -> Option<(Opened, ConnectionInfo, Arc<Broker>, connection::Shutdown)> {
    let Opening {
        broker,
        endpoint,
        stream,
        peer,
        mut stop,
        shutdown,
    } = *opening;
    let timeout = broker.config.connect_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let max_packet = broker
        .config
        .max_packet_size
        .map_or(starling_transport::MAX_MQTT_PACKET, |max| {
            max.get() as usize
        });
    // A listener with no stage skips `Endpoint::open`, whose state is sized
    // for the TLS and WebSocket handshakes: boxing it copied a few kilobytes
    // per connection, a third of what accepting a client cost. Boxed when
    // used, so this future stays small too.
    let opened = if endpoint.is_plain() {
        Ok(Ok((Opened::Tcp(stream), endpoint.info(peer, deadline))))
    } else {
        // The keys of the listener's scope in force now (a reload replaces
        // them for the handshakes that follow).
        let psk = if endpoint.takes_psk() {
            let scope = Arc::clone(broker.auth.state().scope(Some(endpoint.listener.bind)));
            scope
                .psk
                .clone()
                .map(|keys| keys as Arc<dyn starling_transport::tls::PskStore>)
        } else {
            None
        };
        // Dropping `open` on shutdown or at the deadline closes the socket;
        // what it had read is lost with the connection, so it need not be
        // cancel-safe.
        tokio::select! {
            opened = tokio::time::timeout_at(deadline, Box::pin(endpoint.open(stream, peer, max_packet, deadline, psk))) => opened,
            _ = stop.changed() => return None,
        }
    };
    match opened {
        Ok(Ok((opened, info))) => Some((opened, info, broker, shutdown)),
        Ok(Err(e)) => {
            info!(target: crate::log::CONNECTIONS, "Client <unknown> from {peer} refused: {e}.");
            None
        }
        Err(_) => {
            info!(
                target: crate::log::CONNECTIONS,
                "Client <unknown> from {peer} did not complete its handshake within {timeout:?}, disconnecting."
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        drop(client);
        let (_stop, stop) = watch::channel(false);
        let opening = Box::new(Opening {
            broker: Broker::new(Config::default()),
            endpoint: Arc::new(Endpoint::plain(listener)),
            stream,
            peer,
            stop,
            shutdown: connection::Shutdown::new(),
        });
        let task = connection_task(opening, Slot::default());
        // The task is allocated in 128-byte steps with ~130 bytes of tokio's
        // own; what it adds to the connection's future is the opening's box
        // and the permits. 1,224 bytes, with a 1,152-byte TCP connection, in a
        // release build when this was written.
        let task_size = std::mem::size_of_val(&task);
        let info = ConnectionInfo::plain(peer, connection::CONNECT_TIMEOUT);
        let (stream, _) = tokio::io::duplex(1);
        let serve = connection::serve_with(
            Broker::new(Config::default()),
            stream,
            info,
            connection::Shutdown::new(),
        );
        let serve_size = std::mem::size_of_val(&serve);
        assert!(
            task_size <= serve_size + 128,
            "connection task: {task_size} bytes, its connection {serve_size}"
        );
    }
}
