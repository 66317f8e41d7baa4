//! A client's TLS, built as libmosquitto 2.0 builds its OpenSSL context
//! (`net__init_ssl_ctx`): the broker's certificate checked against
//! `cafile`/`capath` and/or the system's CAs, its host name checked as
//! OpenSSL checks it (subjectAltName, else the Common Name; an IP address
//! against the certificate's IP addresses) unless `insecure`; the client's
//! own certificate and key; the oldest version; cipher expressions; ALPN;
//! TLS-PSK.

use std::path::PathBuf;
use std::pin::Pin;

use openssl::ssl::{SslConnector, SslMethod, SslMode, SslOptions, SslVerifyMode};
use tokio::io::{AsyncRead, AsyncWrite};

use super::key::{self, Passphrase};
use super::{reasons, HandshakeError, TlsError, TlsStream, TlsVersion};

/// A pre-shared key and the identity it goes with (`--psk`,
/// `--psk-identity`).
#[derive(Clone, PartialEq, Eq)]
pub struct Psk {
    /// The identity sent to the server.
    pub identity: String,
    /// The key (the tools take it in hexadecimal).
    pub key: Vec<u8>,
}

impl std::fmt::Debug for Psk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Psk")
            .field("identity", &self.identity)
            .field("key", &"<hidden>")
            .finish()
    }
}

/// How a client does TLS: Mosquitto's client options of the same names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSettings {
    /// `--cafile`.
    pub cafile: Option<PathBuf>,
    /// `--capath`: a directory of CAs by subject hash.
    pub capath: Option<PathBuf>,
    /// `--tls-use-os-certs`: trust the system's CAs (also when no CA is
    /// given and no PSK is used).
    pub use_os_certs: bool,
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// An encrypted `--key`'s pass phrase.
    pub passphrase: Passphrase,
    /// `--insecure`: the host name is not checked.
    pub insecure: bool,
    /// `--tls-version`: the oldest version.
    pub min_version: TlsVersion,
    /// The newest version (`None`: the newest OpenSSL has); for tests that
    /// need an older handshake than a server would pick.
    pub max_version: Option<TlsVersion>,
    /// `--ciphers`: an OpenSSL expression (TLS 1.2 and older).
    pub ciphers: Option<String>,
    /// TLS 1.3 suites.
    pub ciphers_tls13: Option<String>,
    /// `--tls-alpn`.
    pub alpn: Vec<String>,
    /// `--psk` and `--psk-identity`.
    pub psk: Option<Psk>,
}

/// A client's TLS context.
pub struct ClientTls {
    connector: SslConnector,
    insecure: bool,
    verifies: bool,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl ClientTls {
    /// Reads the files and builds the context.
    pub fn new(settings: &ClientSettings) -> Result<ClientTls, TlsError> {
        let mut builder = SslConnector::builder(SslMethod::tls_client())
            .map_err(|e| TlsError::setting("TLS", reasons(&e)))?;
        builder.set_options(SslOptions::NO_COMPRESSION);
        builder.set_mode(SslMode::RELEASE_BUFFERS);
        builder
            .set_min_proto_version(Some(settings.min_version.openssl()))
            .map_err(|e| TlsError::setting("tls-version", reasons(&e)))?;
        if let Some(max) = settings.max_version {
            builder
                .set_max_proto_version(Some(max.openssl()))
                .map_err(|e| TlsError::setting("tls-version", reasons(&e)))?;
        }
        // libmosquitto offers the PSK suites only, unless told otherwise.
        let ciphers = match (&settings.ciphers, &settings.psk) {
            (Some(ciphers), _) => Some(ciphers.as_str()),
            (None, Some(_)) => Some("PSK"),
            (None, None) => None,
        };
        super::set_ciphers(&mut builder, ciphers, settings.ciphers_tls13.as_deref())?;
        let with_cas = settings.cafile.is_some() || settings.capath.is_some();
        super::load_cas(
            &mut builder,
            settings.cafile.as_deref(),
            settings.capath.as_deref(),
        )?;
        if settings.use_os_certs || (!with_cas && settings.psk.is_none()) {
            builder
                .set_default_verify_paths()
                .map_err(|e| TlsError::setting("tls-use-os-certs", reasons(&e)))?;
        }
        let verifies = with_cas || settings.use_os_certs || settings.psk.is_none();
        builder.set_verify(if verifies {
            SslVerifyMode::PEER
        } else {
            SslVerifyMode::NONE
        });
        match (&settings.cert, &settings.key) {
            (Some(cert), Some(keyfile)) => {
                key::install_identity(&mut builder, cert, keyfile, &settings.passphrase)?;
            }
            (None, None) => {}
            _ => {
                return Err(TlsError::setting(
                    "cert",
                    "a client certificate needs both its certificate and its key",
                ))
            }
        }
        if !settings.alpn.is_empty() {
            let mut wire = Vec::new();
            for protocol in &settings.alpn {
                let len = u8::try_from(protocol.len())
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        TlsError::setting("tls-alpn", format!("'{protocol}' is not 1 to 255 bytes"))
                    })?;
                wire.push(len);
                wire.extend_from_slice(protocol.as_bytes());
            }
            builder
                .set_alpn_protos(&wire)
                .map_err(|e| TlsError::setting("tls-alpn", reasons(&e)))?;
        }
        if let Some(psk) = settings.psk.clone() {
            builder.set_psk_client_callback(move |_ssl, _hint, identity, key| {
                let id = psk.identity.as_bytes();
                // The identity is written NUL-terminated.
                if id.len() + 1 > identity.len() || psk.key.len() > key.len() {
                    return Ok(0);
                }
                identity[..id.len()].copy_from_slice(id);
                identity[id.len()] = 0;
                key[..psk.key.len()].copy_from_slice(&psk.key);
                Ok(psk.key.len())
            });
        }
        Ok(ClientTls {
            connector: builder.build(),
            insecure: settings.insecure,
            verifies,
        })
    }

    /// The handshake with the server `host` (a name, sent in SNI, or an IP
    /// address) over `stream`.
    pub async fn connect<S>(&self, host: &str, stream: S) -> Result<TlsStream<S>, HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut config = self
            .connector
            .configure()
            .map_err(|e| HandshakeError::setup(&e))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        // SNI for a name (not an address); the name or address checked
        // against the certificate unless insecure, or nothing is verified
        // (PSK alone).
        config.set_verify_hostname(self.verifies && !self.insecure);
        let ssl = config
            .into_ssl(host)
            .map_err(|e| HandshakeError::setup(&e))?;
        let mut inner =
            tokio_openssl::SslStream::new(ssl, stream).map_err(|e| HandshakeError::setup(&e))?;
        match Pin::new(&mut inner).connect().await {
            Ok(()) => Ok(TlsStream { inner }),
            Err(e) => Err(HandshakeError::new(&e, inner.ssl())),
        }
    }
}
