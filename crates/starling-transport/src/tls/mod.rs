//! TLS with OpenSSL, the library Mosquitto uses, so that the same files and
//! settings behave the same: X.509 version 1 certificates without
//! subjectAltName (what `man 7 mosquitto-tls` makes), encrypted keys,
//! pre-shared keys, OpenSSL cipher expressions, hashed CA directories, CRLs
//! and chains completed from `cafile`.
//!
//! - [`server`]: a listener's context ([`ServerTls`]) and its handshake;
//! - [`client`]: a client's context ([`ClientTls`]) and its handshake;
//! - [`key`]: private keys and their pass phrases;
//! - this file: the stream both handshakes give ([`TlsStream`]), the
//!   versions, and the errors, every one in plain words naming its file or
//!   setting, never a library's debug form.
//!
//! Nothing here knows MQTT: the broker and the client map their settings
//! (mosquitto.conf directives, tool flags) onto [`ServerSettings`] and
//! [`ClientSettings`].

pub mod client;
pub mod key;
pub mod server;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use openssl::error::ErrorStack;
use openssl::ssl::{self, SslRef, SslVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use client::{ClientSettings, ClientTls, Psk};
pub use key::Passphrase;
pub use server::{PskStore, ServerSettings, ServerTls};

/// The oldest TLS version a side accepts (Mosquitto's `tls_version` and
/// `--tls-version` are minimums).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `tlsv1`: TLS 1.0, if the system's OpenSSL still allows it.
    Tls10,
    /// `tlsv1.1`: TLS 1.1, if the system's OpenSSL still allows it.
    Tls11,
    /// `tlsv1.2`: Mosquitto 2's default.
    #[default]
    Tls12,
    /// `tlsv1.3`.
    Tls13,
}

impl TlsVersion {
    /// By Mosquitto's name: `tlsv1.3`, `tlsv1.2`, `tlsv1.1`, `tlsv1`.
    pub fn from_mosquitto(name: &str) -> Option<TlsVersion> {
        match name {
            "tlsv1.3" => Some(TlsVersion::Tls13),
            "tlsv1.2" => Some(TlsVersion::Tls12),
            "tlsv1.1" => Some(TlsVersion::Tls11),
            "tlsv1" => Some(TlsVersion::Tls10),
            _ => None,
        }
    }

    fn openssl(self) -> SslVersion {
        match self {
            TlsVersion::Tls10 => SslVersion::TLS1,
            TlsVersion::Tls11 => SslVersion::TLS1_1,
            TlsVersion::Tls12 => SslVersion::TLS1_2,
            TlsVersion::Tls13 => SslVersion::TLS1_3,
        }
    }
}

/// TLS that cannot be set up, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key, CA, CRL, DH parameter or PSK file that cannot be
    /// used.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file (or directory).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting OpenSSL refused (a cipher expression that matches nothing,
    /// a version it does not offer...).
    #[error("{setting}: {reason}")]
    Setting {
        /// The directive or option, as the user wrote it.
        setting: &'static str,
        /// Why.
        reason: String,
    },
}

impl TlsError {
    pub(crate) fn file(path: &Path, reason: impl Into<String>) -> TlsError {
        TlsError::File {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn setting(setting: &'static str, reason: impl Into<String>) -> TlsError {
        TlsError::Setting {
            setting,
            reason: reason.into(),
        }
    }
}

/// OpenSSL's reasons in an error stack, in its own plain words ("no cipher
/// match", "bad decrypt"), without the library's codes.
pub(crate) fn reasons(stack: &ErrorStack) -> String {
    let mut reasons: Vec<String> = Vec::new();
    for error in stack.errors() {
        let reason = error
            .reason()
            .map(str::to_string)
            .unwrap_or_else(|| format!("error {:#x}", error.code()));
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    if reasons.is_empty() {
        "OpenSSL gave no reason".into()
    } else {
        reasons.join("; ")
    }
}

/// A handshake that failed, and why in one plain line (e.g. "certificate
/// verify failed: unable to get local issuer certificate", "peer did not
/// return a certificate", "the connection closed during the handshake").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct HandshakeError {
    /// The reason.
    pub reason: String,
    /// Whether the peer's certificate failed verification.
    pub verify_failed: bool,
}

impl HandshakeError {
    fn new(error: &ssl::Error, ssl: &SslRef) -> HandshakeError {
        let verify = ssl.verify_result();
        if verify != openssl::x509::X509VerifyResult::OK {
            return HandshakeError {
                reason: format!("certificate verify failed: {}", verify.error_string()),
                verify_failed: true,
            };
        }
        let reason = if let Some(stack) = error.ssl_error() {
            reasons(stack)
        } else if let Some(io) = error.io_error() {
            io.to_string()
        } else if error.code() == ssl::ErrorCode::ZERO_RETURN
            || error.code() == ssl::ErrorCode::SYSCALL
        {
            "the connection closed during the handshake".into()
        } else {
            format!(
                "handshake failed (OpenSSL error code {})",
                error.code().as_raw()
            )
        };
        HandshakeError {
            reason,
            verify_failed: false,
        }
    }

    fn setup(stack: &ErrorStack) -> HandshakeError {
        HandshakeError {
            reason: reasons(stack),
            verify_failed: false,
        }
    }
}

impl From<HandshakeError> for io::Error {
    fn from(error: HandshakeError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error.reason)
    }
}

/// A TLS connection over `S`, after its handshake: a byte stream
/// (`AsyncRead + AsyncWrite`) like the one under it.
pub struct TlsStream<S> {
    inner: tokio_openssl::SslStream<S>,
}

impl<S> fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("version", &self.inner.ssl().version_str())
            .field(
                "cipher",
                &self.inner.ssl().current_cipher().map(|c| c.name()),
            )
            .finish()
    }
}

impl<S> TlsStream<S> {
    /// The peer's certificate (DER), if it sent one (and, on a server that
    /// asks for one, it verified).
    pub fn peer_certificate_der(&self) -> Option<Vec<u8>> {
        self.inner.ssl().peer_certificate()?.to_der().ok()
    }

    /// The identity a TLS-PSK client gave, on a server.
    pub fn psk_identity(&self) -> Option<&str> {
        self.inner
            .ssl()
            .ex_data(server::identity_index())
            .map(String::as_str)
    }

    /// The version negotiated, as OpenSSL names it (`TLSv1.3`).
    pub fn version(&self) -> &'static str {
        self.inner.ssl().version_str()
    }

    /// The cipher suite negotiated, by its OpenSSL name.
    pub fn cipher(&self) -> Option<&'static str> {
        self.inner.ssl().current_cipher().map(|c| c.name())
    }

    /// The ALPN protocol the server chose, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.inner.ssl().selected_alpn_protocol()
    }

    /// Bytes decrypted and not read yet (a reader waiting on the socket
    /// must take these first).
    pub fn buffered(&self) -> usize {
        self.inner.ssl().pending()
    }

    /// The stream under TLS.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner)
            .poll_read(cx, buf)
            .map_err(plain_tls)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner)
            .poll_write(cx, buf)
            .map_err(plain_tls)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx).map_err(plain_tls)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether OpenSSL takes `expression` as a TLS 1.2 cipher list (`ciphers`):
/// one that names nothing it has is refused, with its reason.
pub fn check_ciphers(expression: &str) -> Result<(), String> {
    let mut builder = openssl::ssl::SslContextBuilder::new(openssl::ssl::SslMethod::tls())
        .map_err(|e| reasons(&e))?;
    builder.set_cipher_list(expression).map_err(|e| {
        format!(
            "OpenSSL takes no cipher suite from '{expression}': {}",
            reasons(&e)
        )
    })
}

/// Whether OpenSSL takes `list` as TLS 1.3 suites (`ciphers_tls1.3`).
pub fn check_ciphersuites(list: &str) -> Result<(), String> {
    let mut builder = openssl::ssl::SslContextBuilder::new(openssl::ssl::SslMethod::tls())
        .map_err(|e| reasons(&e))?;
    builder.set_ciphersuites(list).map_err(|e| {
        format!(
            "OpenSSL takes no TLS 1.3 suite from '{list}': {}",
            reasons(&e)
        )
    })
}

/// Hexadecimal digits to bytes; an odd count has a leading 0 (as
/// Mosquitto's `mosquitto__hex2bin` reads it).
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text
        .chars()
        .map(|c| c.to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()?;
    let mut bytes = Vec::with_capacity(digits.len().div_ceil(2));
    let mut rest = digits.as_slice();
    if rest.len() % 2 == 1 {
        bytes.push(rest[0]);
        rest = &rest[1..];
    }
    for pair in rest.chunks(2) {
        bytes.push(pair[0] << 4 | pair[1]);
    }
    Some(bytes)
}

/// A TLS failure after the handshake (an alert, a bad record) as an
/// `InvalidData` error in OpenSSL's plain words ("tlsv13 alert certificate
/// required"), not its error string with codes and source lines.
fn plain_tls(error: io::Error) -> io::Error {
    let reason = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ssl::Error>())
        .map(|ssl| match (ssl.ssl_error(), ssl.io_error()) {
            (Some(stack), _) => reasons(stack),
            (None, Some(io)) => io.to_string(),
            (None, None) => "the TLS connection failed".into(),
        });
    // A reset under TLS is the TLS connection failing too (libmosquitto
    // reports both as a lost connection): a peer that refused us after the
    // handshake may reset before its alert is read.
    let reason = reason.or_else(|| {
        matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        )
        .then(|| plain_io(&error))
    });
    match reason {
        Some(reason) => io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {reason}")),
        None => error,
    }
}

/// Sets the TLS 1.2 cipher list and the TLS 1.3 suites, each error naming its
/// setting as the user wrote it (`ciphers`, `ciphers_tls1.3`).
pub(crate) fn set_ciphers(
    builder: &mut openssl::ssl::SslContextBuilder,
    ciphers: Option<&str>,
    ciphers_tls13: Option<&str>,
) -> Result<(), TlsError> {
    if let Some(ciphers) = ciphers {
        builder
            .set_cipher_list(ciphers)
            .map_err(|e| TlsError::setting("ciphers", format!("'{ciphers}': {}", reasons(&e))))?;
    }
    if let Some(ciphers) = ciphers_tls13 {
        builder.set_ciphersuites(ciphers).map_err(|e| {
            TlsError::setting("ciphers_tls1.3", format!("'{ciphers}': {}", reasons(&e)))
        })?;
    }
    Ok(())
}

/// Trusts the CAs of `cafile` and of the hashed directory `capath`.
pub(crate) fn load_cas(
    builder: &mut openssl::ssl::SslContextBuilder,
    cafile: Option<&Path>,
    capath: Option<&Path>,
) -> Result<(), TlsError> {
    if let Some(cafile) = cafile {
        // Read first, for an error that says what is wrong with the file.
        drop(key::certificates(cafile)?);
        builder
            .load_verify_locations(Some(cafile), None)
            .map_err(|e| TlsError::file(cafile, format!("unusable CA file: {}", reasons(&e))))?;
    }
    if let Some(capath) = capath {
        if !capath.is_dir() {
            return Err(TlsError::file(capath, "not a directory (capath)"));
        }
        builder
            .load_verify_locations(None, Some(capath))
            .map_err(|e| {
                TlsError::file(capath, format!("unusable CA directory: {}", reasons(&e)))
            })?;
    }
    Ok(())
}

/// Reads a file for TLS, the error naming it.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::file(path, format!("cannot read: {}", plain_io(&e))))
}

/// An I/O error without Rust's "(os error N)".
pub(crate) fn plain_io(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex() {
        assert_eq!(decode_hex("0a1B"), Some(vec![0x0a, 0x1b]));
        assert_eq!(decode_hex("f"), Some(vec![0x0f]));
        assert_eq!(decode_hex(""), Some(vec![]));
        assert_eq!(decode_hex("0g"), None);
    }
}
