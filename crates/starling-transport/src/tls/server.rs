//! A listener's TLS, built as Mosquitto builds its OpenSSL context
//! (`net__tls_server_ctx` and friends in Mosquitto 2.0): the certificate and
//! its chain, the key (encrypted or not), client certificates checked against
//! `cafile`/`capath` (a hashed directory, as `openssl rehash` makes it) and
//! `crlfile`, the oldest version, OpenSSL cipher expressions, DH parameters
//! and pre-shared keys.
//!
//! A client certificate is asked for only with `require_certificate` (as in
//! Mosquitto: otherwise the server asks for none). The server sends the
//! intermediate CAs it finds in `cafile` when `certfile` holds only its own
//! certificate: OpenSSL completes the chain from the CAs it trusts.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openssl::dh::Dh;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslMode, SslOptions, SslVerifyMode,
};
use openssl::x509::store::X509Lookup;
use openssl::x509::verify::X509VerifyFlags;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::key::{self, Passphrase};
use super::{read, reasons, HandshakeError, TlsError, TlsStream, TlsVersion};

/// A listener's TLS settings: Mosquitto's directives of the same names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSettings {
    /// `certfile`: the server's certificate, optionally followed by its chain.
    pub certfile: Option<PathBuf>,
    /// `keyfile`: its private key.
    pub keyfile: Option<PathBuf>,
    /// `cafile`: CAs trusted for client certificates (and to complete the
    /// server's chain).
    pub cafile: Option<PathBuf>,
    /// `capath`: a directory of CAs, by subject hash.
    pub capath: Option<PathBuf>,
    /// `crlfile`: revoked client certificates.
    pub crlfile: Option<PathBuf>,
    /// `require_certificate`.
    pub require_certificate: bool,
    /// `tls_version`: the oldest version accepted.
    pub min_version: TlsVersion,
    /// `ciphers`: TLS 1.2 and older cipher suites, an OpenSSL expression.
    pub ciphers: Option<String>,
    /// `ciphers_tls1.3`: TLS 1.3 suites, colon-separated.
    pub ciphers_tls13: Option<String>,
    /// `dhparamfile`: parameters for DHE cipher suites.
    pub dhparamfile: Option<PathBuf>,
    /// `psk_hint`: TLS-PSK is on, with this hint.
    pub psk_hint: Option<String>,
}

/// Where a PSK listener finds the key of an identity (the broker's
/// `psk_file`, as reloaded).
pub trait PskStore: Send + Sync {
    /// The key of `identity`, if it has one.
    fn key(&self, identity: &str) -> Option<Vec<u8>>;
}

/// A listener's TLS context, ready to accept.
pub struct ServerTls {
    context: SslContext,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

/// Where a connection's PSK store is kept for the PSK callback.
fn store_index() -> Index<Ssl, Arc<dyn PskStore>> {
    static INDEX: OnceLock<Index<Ssl, Arc<dyn PskStore>>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("an OpenSSL ex_data index"))
}

/// Where the identity a PSK client gave is kept.
pub(super) fn identity_index() -> Index<Ssl, String> {
    static INDEX: OnceLock<Index<Ssl, String>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("an OpenSSL ex_data index"))
}

impl ServerTls {
    /// Reads the files and builds the context; every error names its file or
    /// directive. An encrypted key's pass phrase is found as [`key`] says.
    pub fn new(settings: &ServerSettings) -> Result<ServerTls, TlsError> {
        let mut builder = SslContextBuilder::new(SslMethod::tls_server())
            .map_err(|e| TlsError::setting("TLS", reasons(&e)))?;
        // As Mosquitto: no compression (CRIME); buffers released while a
        // connection is idle, which most MQTT connections are.
        builder.set_options(SslOptions::NO_COMPRESSION | SslOptions::CIPHER_SERVER_PREFERENCE);
        builder.set_mode(SslMode::RELEASE_BUFFERS);
        // Read whole records and what follows them at once, not the 5-byte
        // header then the body: half the reads on a busy connection.
        builder.set_read_ahead(true);
        builder
            .set_min_proto_version(Some(settings.min_version.openssl()))
            .map_err(|e| TlsError::setting("tls_version", reasons(&e)))?;
        super::set_ciphers(
            &mut builder,
            settings.ciphers.as_deref(),
            settings.ciphers_tls13.as_deref(),
        )?;
        if let Some(path) = &settings.dhparamfile {
            let dh = Dh::params_from_pem(&read(path)?).map_err(|e| {
                TlsError::file(path, format!("not PEM DH parameters: {}", reasons(&e)))
            })?;
            builder.set_tmp_dh(&dh).map_err(|e| {
                TlsError::file(path, format!("unusable DH parameters: {}", reasons(&e)))
            })?;
        }
        if settings.cafile.is_some() || settings.capath.is_some() {
            trust(&mut builder, settings)?;
        }
        match (&settings.certfile, &settings.keyfile) {
            (Some(certfile), Some(keyfile)) => {
                key::install_identity(&mut builder, certfile, keyfile, &Passphrase::default())?;
            }
            (None, None) if settings.psk_hint.is_some() => {}
            _ => {
                return Err(TlsError::setting(
                    "certfile",
                    "TLS needs both certfile and keyfile (or psk_hint for pre-shared keys)",
                ))
            }
        }
        if let Some(hint) = &settings.psk_hint {
            set_psk_hint(&mut builder, hint)?;
            builder.set_psk_server_callback(|ssl, identity, psk| {
                let identity = identity.and_then(|i| std::str::from_utf8(i).ok());
                let (Some(identity), Some(store)) = (identity, ssl.ex_data(store_index())) else {
                    return Ok(0);
                };
                let Some(key) = store.key(identity) else {
                    return Ok(0);
                };
                if key.len() > psk.len() {
                    return Ok(0);
                }
                psk[..key.len()].copy_from_slice(&key);
                let identity = identity.to_string();
                ssl.set_ex_data(identity_index(), identity);
                Ok(key.len())
            });
        }
        Ok(ServerTls {
            context: builder.build(),
        })
    }

    /// The handshake of one client over `stream`; `psk` finds the keys of
    /// PSK identities (on a `psk_hint` listener).
    pub async fn accept<S>(
        &self,
        stream: S,
        psk: Option<Arc<dyn PskStore>>,
    ) -> Result<TlsStream<S>, HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut ssl = Ssl::new(&self.context).map_err(|e| HandshakeError::setup(&e))?;
        if let Some(psk) = psk {
            ssl.set_ex_data(store_index(), psk);
        }
        let mut inner =
            tokio_openssl::SslStream::new(ssl, stream).map_err(|e| HandshakeError::setup(&e))?;
        match Pin::new(&mut inner).accept().await {
            Ok(()) => Ok(TlsStream { inner }),
            Err(e) => {
                let error = HandshakeError::new(&e, inner.ssl());
                linger(inner.get_mut()).await;
                Err(error)
            }
        }
    }
}

/// How long a refused handshake's socket is kept reading, at most.
const LINGER: Duration = Duration::from_secs(2);

/// After a refused handshake, the alert OpenSSL wrote must reach the client:
/// closing with the client's later bytes unread (with TLS 1.3 its Finished
/// and first MQTT packet come before it learns of the refusal) sends a reset
/// that can discard the alert. So the write side is shut and what arrives is
/// read and dropped until the client closes or [`LINGER`] ends.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    let drain = async {
        let _ = stream.shutdown().await;
        let mut scratch = [0u8; 1024];
        while matches!(stream.read(&mut scratch).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// The CAs client certificates are checked against, and the CRLs.
fn trust(builder: &mut SslContextBuilder, settings: &ServerSettings) -> Result<(), TlsError> {
    super::load_cas(
        builder,
        settings.cafile.as_deref(),
        settings.capath.as_deref(),
    )?;
    if let Some(crlfile) = &settings.crlfile {
        let text = read(crlfile)?;
        if !text
            .windows(b"BEGIN X509 CRL".len())
            .any(|w| w == b"BEGIN X509 CRL")
        {
            return Err(TlsError::file(
                crlfile,
                "no certificate revocation list (X509 CRL) in the file",
            ));
        }
        let store = builder.cert_store_mut();
        let lookup = store
            .add_lookup(X509Lookup::file())
            .map_err(|e| TlsError::file(crlfile, reasons(&e)))?;
        lookup
            .load_crl_file(crlfile, SslFiletype::PEM)
            .map_err(|e| TlsError::file(crlfile, format!("unusable CRL: {}", reasons(&e))))?;
        store
            .set_flags(X509VerifyFlags::CRL_CHECK)
            .map_err(|e| TlsError::file(crlfile, reasons(&e)))?;
    }
    let mode = if settings.require_certificate {
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT
    } else {
        SslVerifyMode::NONE
    };
    builder.set_verify(mode);
    Ok(())
}

// `SSL_CTX_use_psk_identity_hint` is in libssl, which openssl-sys links, but
// neither `openssl` nor `openssl-sys` declares it.
#[allow(unsafe_code)]
extern "C" {
    fn SSL_CTX_use_psk_identity_hint(
        ctx: *mut openssl_sys::SSL_CTX,
        hint: *const std::ffi::c_char,
    ) -> std::ffi::c_int;
}

/// The hint a TLS 1.2 PSK server sends (TLS 1.3 has none).
#[allow(unsafe_code)]
fn set_psk_hint(builder: &mut SslContextBuilder, hint: &str) -> Result<(), TlsError> {
    let hint = std::ffi::CString::new(hint)
        .map_err(|_| TlsError::setting("psk_hint", "contains a NUL character"))?;
    // SAFETY: the context pointer is valid while the builder lives, and
    // OpenSSL copies the NUL-terminated hint before returning.
    let ok = unsafe { SSL_CTX_use_psk_identity_hint(builder.as_ptr(), hint.as_ptr()) };
    if ok == 1 {
        Ok(())
    } else {
        Err(TlsError::setting("psk_hint", reasons(&ErrorStack::get())))
    }
}
