//! What a listener does with a TCP connection before MQTT starts: read the
//! PROXY header ([`proxy`]), complete the TLS handshake ([`tls`]) and the
//! WebSocket upgrade ([`ws`]), in that order, each as the listener says; then
//! hand the resulting byte stream to [`crate::connection`], which is the
//! same whatever the transport.
//!
//! An [`Endpoint`] is a bound socket with its listener's settings and, for a
//! TLS listener, its loaded certificates; [`crate::server`] accepts on it.
//! [`crate::Broker::reload_tls`] reads every TLS listener's files again.

pub mod proxy;
pub mod tls;
pub mod ws;
mod x509;

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::{error, info};

use crate::broker::Broker;
use crate::config::{Listener, Protocol};
use proxy::{ProxyError, ProxySource};
pub use tls::{CertificateUser, ServerTls, TlsError};
use ws::WsHandshakeError;

/// A byte stream MQTT runs over: TLS, WebSocket, or TCP behind a PROXY header.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// A connection ready for MQTT. Plain TCP stays a `TcpStream` (the common
/// case pays no indirection); the other transports are boxed.
pub enum Opened {
    /// MQTT over TCP.
    Tcp(TcpStream),
    /// MQTT over TLS and/or WebSocket.
    Boxed(Box<dyn Stream>),
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Opened::Tcp(_) => "Opened::Tcp",
            Opened::Boxed(_) => "Opened::Boxed",
        })
    }
}

/// What the transport learnt about a connection before MQTT starts.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The client's address: the TCP peer, or the client a PROXY header named.
    /// Logs, limits and access control use this one.
    pub peer: SocketAddr,
    /// The listener it came in on.
    pub listener: Arc<Listener>,
    /// The user name its client certificate gives, on a listener with
    /// `use_identity_as_username` or `use_subject_as_username`. Such a name
    /// replaces the CONNECT's user name, and the password is not checked:
    /// the certificate authenticated the client (mosquitto.conf(5)).
    pub certificate_user: CertificateUser,
    /// CONNECT must have arrived by then (`connect_timeout` after the accept).
    pub connect_deadline: tokio::time::Instant,
}

impl ConnectionInfo {
    /// A plain connection from `peer` on an unknown listener (bound to
    /// 0.0.0.0:0) with default settings.
    pub fn plain(peer: SocketAddr, connect_timeout: std::time::Duration) -> ConnectionInfo {
        ConnectionInfo {
            peer,
            listener: Arc::new(Listener::new(SocketAddr::from(([0, 0, 0, 0], 0)))),
            certificate_user: CertificateUser::NotUsed,
            connect_deadline: tokio::time::Instant::now() + connect_timeout,
        }
    }
}

/// Why a connection never reached MQTT.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A missing or invalid PROXY header.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The TLS handshake failed (an untrusted, expired or revoked client
    /// certificate, no certificate where one is required, an unknown PSK
    /// identity, not TLS at all...).
    #[error("TLS handshake failed: {0}")]
    Tls(starling_transport::tls::HandshakeError),
    /// The WebSocket upgrade was refused or failed.
    #[error(transparent)]
    WebSocket(#[from] WsHandshakeError),
}

/// A bound listening socket with its listener's settings.
#[derive(Debug)]
pub struct Endpoint {
    pub(crate) socket: TcpListener,
    pub(crate) listener: Arc<Listener>,
    pub(crate) tls: Option<Arc<ServerTls>>,
}

impl Endpoint {
    /// `socket` with `listener`'s settings; loads its TLS certificates.
    pub fn new(socket: TcpListener, listener: Listener) -> Result<Endpoint, TlsError> {
        let tls = match &listener.settings.tls {
            Some(settings) => Some(Arc::new(ServerTls::load(settings)?)),
            None => None,
        };
        Ok(Endpoint {
            socket,
            listener: Arc::new(listener),
            tls,
        })
    }

    /// `socket` as a plain MQTT listener.
    pub fn plain(socket: TcpListener) -> Endpoint {
        let bind = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        Endpoint {
            socket,
            listener: Arc::new(Listener::new(bind)),
            tls: None,
        }
    }

    /// Whether its TLS takes pre-shared keys (`psk_hint`).
    pub(crate) fn takes_psk(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|tls| tls.settings().psk_hint.is_some())
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The listener's settings.
    pub fn listener(&self) -> &Listener {
        &self.listener
    }

    /// How Mosquitto names the listener in its start-up log.
    pub(crate) fn describe(&self) -> String {
        let kind = match self.listener.settings.protocol {
            Protocol::Mqtt => match self.local_addr() {
                Ok(addr) if addr.is_ipv6() => "ipv6",
                _ => "ipv4",
            },
            Protocol::WebSockets => "websockets",
        };
        let port = self.local_addr().map_or(0, |a| a.port());
        let mut text = format!("{kind} listen socket on port {port}");
        if self.tls.is_some() {
            text.push_str(" (TLS)");
        }
        if let Some(version) = self.listener.settings.proxy_protocol {
            let n = match version {
                crate::config::ProxyProtocol::V1 => 1,
                crate::config::ProxyProtocol::V2 => 2,
            };
            text.push_str(&format!(" (PROXY protocol v{n})"));
        }
        text
    }

    /// Whether this listener has no stage before MQTT (no PROXY header, TLS
    /// or WebSocket): its connections need not go through [`Self::open`],
    /// whose future is sized for the largest stage and costs a few kilobytes
    /// to set up per connection.
    pub(crate) fn is_plain(&self) -> bool {
        self.tls.is_none()
            && self.listener.settings.proxy_protocol.is_none()
            && self.listener.settings.protocol == Protocol::Mqtt
    }

    /// What the connection knows of a client from `peer` before any stage.
    pub(crate) fn info(
        &self,
        peer: SocketAddr,
        connect_deadline: tokio::time::Instant,
    ) -> ConnectionInfo {
        ConnectionInfo {
            peer,
            listener: Arc::clone(&self.listener),
            certificate_user: CertificateUser::NotUsed,
            connect_deadline,
        }
    }

    /// Takes a TCP connection from `peer` through this listener's PROXY
    /// header, TLS and WebSocket stages. The caller bounds it in time.
    /// `psk` finds the keys of PSK identities, on a `psk_hint` listener.
    pub(crate) async fn open(
        &self,
        mut tcp: TcpStream,
        peer: SocketAddr,
        max_packet: usize,
        connect_deadline: tokio::time::Instant,
        psk: Option<Arc<dyn starling_transport::tls::PskStore>>,
    ) -> Result<(Opened, ConnectionInfo), OpenError> {
        let settings = &self.listener.settings;
        let mut info = self.info(peer, connect_deadline);
        if let Some(version) = settings.proxy_protocol {
            if let ProxySource::Client(client) = proxy::read_header(&mut tcp, version).await? {
                tracing::debug!("Connection from {peer} relays {client} (PROXY protocol).");
                info.peer = client;
            }
        }
        let opened = match (&self.tls, settings.protocol) {
            (None, Protocol::Mqtt) => Opened::Tcp(tcp),
            (None, Protocol::WebSockets) => Opened::Boxed(Box::new(
                ws::accept(tcp, &settings.websockets, max_packet).await?,
            )),
            (Some(tls), protocol) => {
                let stream = tls.accept(tcp, psk).await.map_err(OpenError::Tls)?;
                let der = stream.peer_certificate_der();
                info.certificate_user =
                    tls::certificate_user(tls.settings(), der.as_deref(), stream.psk_identity());
                match protocol {
                    Protocol::Mqtt => Opened::Boxed(Box::new(stream)),
                    Protocol::WebSockets => Opened::Boxed(Box::new(
                        ws::accept(stream, &settings.websockets, max_packet).await?,
                    )),
                }
            }
        };
        Ok((opened, info))
    }
}

/// The TLS configurations of the listeners a broker serves, for reloading.
#[derive(Debug, Default)]
pub(crate) struct TlsRegistry {
    listeners: parking_lot::Mutex<Vec<(SocketAddr, Weak<ServerTls>)>>,
}

impl TlsRegistry {
    pub(crate) fn register(&self, addr: SocketAddr, tls: &Arc<ServerTls>) {
        let mut listeners = self.listeners.lock();
        listeners.retain(|(_, tls)| tls.strong_count() > 0);
        listeners.push((addr, Arc::downgrade(tls)));
    }
}

impl Broker {
    /// Reads the certificates, keys, CAs and CRLs of every TLS listener again
    /// (Mosquitto does on SIGHUP). New connections get the new ones; open
    /// connections are not touched. A listener whose files cannot be loaded
    /// keeps what it had, and its error is returned (and logged).
    pub fn reload_tls(&self) -> Result<usize, Vec<(SocketAddr, TlsError)>> {
        let listeners: Vec<_> = self.tls.listeners.lock().clone();
        let mut reloaded = 0;
        let mut errors = Vec::new();
        for (addr, tls) in listeners {
            let Some(tls) = tls.upgrade() else { continue };
            match tls.reload() {
                Ok(()) => {
                    reloaded += 1;
                    info!("Reloaded the TLS certificates of the listener on {addr}.");
                }
                Err(e) => {
                    error!("Error: cannot reload the TLS certificates of the listener on {addr}: {e}; keeping the previous ones.");
                    errors.push((addr, e));
                }
            }
        }
        if errors.is_empty() {
            Ok(reloaded)
        } else {
            Err(errors)
        }
    }
}
