//! TLS for `mqtts://` and `wss://`, with OpenSSL as libmosquitto uses it:
//! which CAs the broker's certificate is checked against (files, hashed
//! directories, the system's), the host name check (subjectAltName, else the
//! Common Name), the client's own certificate and key (encrypted or not),
//! the oldest version, cipher expressions, ALPN and pre-shared keys.

use std::path::PathBuf;

use starling_transport::tls::{ClientSettings, ClientTls, Passphrase, Psk};

use crate::error::Error;

pub use starling_transport::tls::TlsVersion;

/// How a client does TLS (`mqtts://`, `wss://`), as Mosquitto's clients take
/// it (`--cafile`, `--capath`, `--tls-use-os-certs`, `--cert`, `--key`,
/// `--insecure`, `--tls-version`, `--ciphers`, `--tls-alpn`, `--psk`,
/// `--psk-identity`).
///
/// Without `cafile`, `capath` or a pre-shared key, the broker's certificate
/// is checked against the system's CAs.
///
/// ```
/// use starling_client::{ClientOptions, TlsOptions};
///
/// let options = ClientOptions::new("mqtts://broker.example:8883")?.tls(
///     TlsOptions::new()
///         .cafile("ca.pem")
///         .client_certificate("client.pem", "client.key"),
/// );
/// # Ok::<(), starling_client::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub(crate) settings: ClientSettings,
    pub(crate) server_name: Option<String>,
}

impl TlsOptions {
    /// TLS 1.2 or newer, the broker checked against the system's CAs, no
    /// client certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// A PEM file of CA certificates to trust for the broker's certificate.
    pub fn cafile(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.cafile = Some(path.into());
        self
    }

    /// A directory of CA certificates to trust, named by subject hash as
    /// `openssl rehash` (or `c_rehash`) lays it out.
    pub fn capath(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.capath = Some(path.into());
        self
    }

    /// Trust the system's CAs too (Mosquitto's `--tls-use-os-certs`).
    pub fn use_os_certs(mut self, use_them: bool) -> Self {
        self.settings.use_os_certs = use_them;
        self
    }

    /// The client's certificate (optionally followed by its chain) and
    /// private key (PEM), for brokers that ask for one.
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.settings.cert = Some(cert.into());
        self.settings.key = Some(key.into());
        self
    }

    /// The pass phrase of an encrypted client key. Without it, an encrypted
    /// key's pass phrase is read from the file named by
    /// `STARLING_TLS_PASSPHRASE_FILE`, else asked on the terminal.
    pub fn key_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.settings.passphrase = Passphrase::Given(passphrase.into());
        self
    }

    /// Mosquitto's `--insecure`, for testing: the broker's certificate is
    /// still checked against the CAs, but not against the host name. Anyone
    /// with a certificate from those CAs can then pose as the broker.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.settings.insecure = insecure;
        self
    }

    /// The oldest TLS version to speak (TLS 1.2 by default; `Tls13` speaks
    /// 1.3 only), as libmosquitto's `tls_version`.
    pub fn version(mut self, version: TlsVersion) -> Self {
        self.settings.min_version = version;
        self
    }

    /// TLS 1.2 cipher suites, an OpenSSL expression (`--ciphers`).
    pub fn ciphers(mut self, expression: impl Into<String>) -> Self {
        self.settings.ciphers = Some(expression.into());
        self
    }

    /// TLS 1.3 cipher suites, colon-separated.
    pub fn ciphers_tls13(mut self, list: impl Into<String>) -> Self {
        self.settings.ciphers_tls13 = Some(list.into());
        self
    }

    /// Offers these ALPN protocols (none by default).
    pub fn alpn<S: Into<String>>(mut self, protocols: impl IntoIterator<Item = S>) -> Self {
        self.settings.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// TLS-PSK: this identity and key instead of certificates (unless CAs
    /// are given too).
    pub fn psk(mut self, identity: impl Into<String>, key: impl Into<Vec<u8>>) -> Self {
        self.settings.psk = Some(Psk {
            identity: identity.into(),
            key: key.into(),
        });
        self
    }

    /// The name sent in SNI and checked against the broker's certificate,
    /// instead of the URL's host.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The OpenSSL context these options describe.
    pub(crate) fn context(&self) -> Result<ClientTls, Error> {
        ClientTls::new(&self.settings).map_err(|e| Error::Tls(e.to_string()))
    }

    /// The name to verify the broker's certificate against: the configured
    /// server name, or the URL's host.
    pub(crate) fn server_name_for<'a>(&'a self, host: &'a str) -> &'a str {
        self.server_name.as_deref().unwrap_or(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let mut options = TlsOptions::new();
        options.settings.cert = Some("c.pem".into());
        assert!(matches!(options.context(), Err(Error::Tls(_))));
        let options = TlsOptions::new().cafile("/nonexistent/ca.pem");
        match options.context() {
            Err(Error::Tls(reason)) => assert_eq!(
                reason,
                "/nonexistent/ca.pem: cannot read: No such file or directory"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_names() {
        let options = TlsOptions::new();
        assert_eq!(options.server_name_for("127.0.0.1"), "127.0.0.1");
        let options = TlsOptions::new().server_name("localhost");
        assert_eq!(options.server_name_for("127.0.0.1"), "localhost");
    }

    #[test]
    fn a_cipher_expression_that_names_nothing_is_refused() {
        let options = TlsOptions::new().ciphers("NOT-A-CIPHER");
        match options.context() {
            Err(Error::Tls(reason)) => {
                assert!(reason.starts_with("ciphers: 'NOT-A-CIPHER'"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
