//! For the transport tests: a broker serving listeners of any kind (TLS,
//! WebSockets, PROXY protocol) on ephemeral ports of 127.0.0.1, and a raw MQTT
//! client over any byte stream, speaking packets through the real codec.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use starling_broker::config::{Listener, ListenerSettings, TlsSettings};
use starling_broker::transport::Endpoint;
use starling_broker::{Broker, Config};
use starling_proto::{ConnAck, Connect, Decoder, Packet, ProtocolVersion, Role};
use starling_transport::tls::{ClientSettings, ClientTls, TlsStream, TlsVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::pki::{Issued, Pki};
use super::{connect, Serving, WAIT};

/// A broker serving one or more listeners on 127.0.0.1, ephemeral ports.
pub struct Served {
    pub addrs: Vec<SocketAddr>,
    pub broker: Arc<Broker>,
    serving: Serving,
}

impl Served {
    /// Serves one listener with `settings`.
    pub async fn one(config: Config, settings: ListenerSettings) -> Served {
        Self::many(config, vec![settings]).await
    }

    /// Serves a listener for each of `settings`, in order.
    pub async fn many(config: Config, settings: Vec<ListenerSettings>) -> Served {
        let mut endpoints = Vec::new();
        for settings in settings {
            let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let listener = Listener {
                settings,
                ..Listener::new(socket.local_addr().unwrap())
            };
            endpoints.push(Endpoint::new(socket, listener).expect("the listener's TLS loads"));
        }
        Self::endpoints(config, endpoints).await
    }

    /// Serves `endpoints`.
    pub async fn endpoints(config: Config, endpoints: Vec<Endpoint>) -> Served {
        let broker = Broker::new(Config {
            sys_interval: None,
            ..config
        });
        let addrs = endpoints.iter().map(|e| e.local_addr().unwrap()).collect();
        let serving = Serving::start(&broker, endpoints);
        Served {
            addrs,
            broker,
            serving,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Stops the broker and waits until every connection has closed.
    pub async fn stop(self) {
        self.serving.stop().await;
    }
}

/// TLS settings with the PKI's server certificate and nothing else.
pub fn tls(pki: &Pki) -> TlsSettings {
    let server = pki.server();
    TlsSettings {
        certfile: Some(server.cert),
        keyfile: Some(server.key),
        cafile: None,
        capath: None,
        crlfile: None,
        require_certificate: false,
        use_identity_as_username: false,
        use_subject_as_username: false,
        min_version: Default::default(),
        ciphers: None,
        ciphers_tls13: None,
        dhparamfile: None,
        psk_hint: None,
    }
}

/// TLS settings that require a client certificate from the PKI's CA.
pub fn mutual_tls(pki: &Pki) -> TlsSettings {
    TlsSettings {
        cafile: Some(pki.ca()),
        require_certificate: true,
        ..tls(pki)
    }
}

/// Listener settings with `tls`.
pub fn with_tls(tls: TlsSettings) -> ListenerSettings {
    ListenerSettings {
        tls: Some(tls),
        ..Default::default()
    }
}

/// A TLS connection to `addr` (as `localhost`), trusting `ca`, presenting
/// `client` if given, with OpenSSL's versions (TLS 1.2 and 1.3) or only
/// `version`.
pub async fn tls_connect(
    addr: SocketAddr,
    ca: &Path,
    client: Option<&Issued>,
    version: Option<TlsVersion>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let settings = ClientSettings {
        cafile: Some(ca.to_path_buf()),
        cert: client.map(|issued| issued.cert.clone()),
        key: client.map(|issued| issued.key.clone()),
        min_version: version.unwrap_or(TlsVersion::Tls12),
        max_version: version,
        ..ClientSettings::default()
    };
    let context = ClientTls::new(&settings).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr).await?;
    Ok(context.connect("localhost", tcp).await?)
}

/// A client that sends and receives whole packets over any byte stream.
pub struct Raw<S> {
    pub stream: S,
    pub version: ProtocolVersion,
    decoder: Decoder,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    pub fn new(stream: S, version: ProtocolVersion) -> Raw<S> {
        Raw {
            stream,
            version,
            decoder: Decoder::new(Role::Client, version),
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        packet.encode(self.version, &mut buf).unwrap();
        self.send_bytes(&buf).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The next packet; `Err` with the reason if the connection ended first.
    pub async fn try_recv(&mut self) -> Result<Packet, String> {
        let read = async {
            loop {
                if let Some(packet) = self
                    .decoder
                    .decode(&mut self.buf)
                    .map_err(|e| e.to_string())?
                {
                    return Ok(packet);
                }
                self.buf.reserve(4096);
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => return Err("closed".to_string()),
                    Err(e) => return Err(e.to_string()),
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .unwrap_or_else(|_| Err("nothing within the deadline".into()))
    }

    pub async fn recv(&mut self) -> Packet {
        self.try_recv().await.expect("a packet")
    }

    /// CONNECT as `id`, and the CONNACK (or why there was none).
    pub async fn connect(&mut self, id: &str) -> Result<ConnAck, String> {
        self.connect_with(connect(self.version, id)).await
    }

    pub async fn connect_with(&mut self, connect: Connect) -> Result<ConnAck, String> {
        self.send(Packet::Connect(Box::new(connect))).await;
        match self.try_recv().await? {
            Packet::ConnAck(ack) => Ok(ack),
            other => Err(format!("expected CONNACK, got {other:?}")),
        }
    }

    /// Waits until the broker closes the connection; the packets before.
    pub async fn closed(&mut self) -> Vec<Packet> {
        let mut seen = Vec::new();
        while let Ok(packet) = self.try_recv().await {
            seen.push(packet);
        }
        seen
    }
}

/// Reads until the peer closes, returning what it sent; panics after `within`.
pub async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin), within: Duration) -> Vec<u8> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .expect("the broker did not close the connection in time");
    seen
}
