//! TLS for `mqtts://` and `wss://`, with rustls: which CAs the broker's
//! certificate is checked against, the client's own certificate, the TLS
//! version, ALPN and the server name.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use starling_transport::pem;

use crate::error::Error;

/// The TLS version a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 only (`tlsv1.2`).
    Tls12,
    /// TLS 1.3 only (`tlsv1.3`).
    Tls13,
}

impl std::str::FromStr for TlsVersion {
    type Err = Error;

    /// Mosquitto's names, `tlsv1.2` and `tlsv1.3` (rustls has no older ones).
    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "tlsv1.2" => Ok(TlsVersion::Tls12),
            "tlsv1.3" => Ok(TlsVersion::Tls13),
            "tlsv1.1" | "tlsv1" => Err(Error::Unsupported(
                "TLS older than 1.2 (rustls implements TLS 1.2 and 1.3)",
            )),
            _ => Err(Error::InvalidOption {
                option: "tls_version",
                reason: format!("'{text}' is not tlsv1.2 or tlsv1.3"),
            }),
        }
    }
}

/// How a client does TLS (`mqtts://`, `wss://`), as Mosquitto's clients take
/// it (`--cafile`, `--capath`, `--cert`, `--key`, `--insecure`,
/// `--tls-version`, `--tls-alpn`).
///
/// Without `cafile` or `capath`, the broker's certificate is checked against
/// the system's CAs.
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
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub(crate) cafile: Option<PathBuf>,
    pub(crate) capath: Option<PathBuf>,
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
    pub(crate) insecure: bool,
    pub(crate) version: Option<TlsVersion>,
    pub(crate) alpn: Vec<String>,
    pub(crate) server_name: Option<String>,
}

impl TlsOptions {
    /// TLS 1.2 or 1.3, the broker checked against the system's CAs, no client
    /// certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// A PEM file of CA certificates to trust for the broker's certificate.
    pub fn cafile(mut self, path: impl Into<PathBuf>) -> Self {
        self.cafile = Some(path.into());
        self
    }

    /// A directory of PEM CA certificates to trust (every file in it).
    pub fn capath(mut self, path: impl Into<PathBuf>) -> Self {
        self.capath = Some(path.into());
        self
    }

    /// The client's certificate chain and private key (PEM), for brokers that
    /// ask for one.
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.cert = Some(cert.into());
        self.key = Some(key.into());
        self
    }

    /// Mosquitto's `--insecure`, for testing: the broker's certificate is
    /// still checked against the CAs, but not against the host name. Anyone
    /// with a certificate from those CAs can then pose as the broker.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Speak only this TLS version (both 1.2 and 1.3 by default).
    pub fn version(mut self, version: TlsVersion) -> Self {
        self.version = Some(version);
        self
    }

    /// Offers these ALPN protocols (none by default).
    pub fn alpn<S: Into<String>>(mut self, protocols: impl IntoIterator<Item = S>) -> Self {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// The name sent in SNI and checked against the broker's certificate,
    /// instead of the URL's host (an IP address sends no SNI).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The rustls configuration these options describe.
    pub(crate) fn client_config(&self) -> Result<ClientConfig, Error> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(Error::InvalidOption {
                option: "tls",
                reason: "a client certificate needs both its certificate and its key".into(),
            });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = match self.version {
            None => &[&rustls::version::TLS13, &rustls::version::TLS12],
            Some(TlsVersion::Tls12) => &[&rustls::version::TLS12],
            Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
        };
        let roots = if self.cafile.is_some() || self.capath.is_some() {
            pem::root_store(self.cafile.as_deref(), self.capath.as_deref()).map_err(tls_error)?
        } else {
            system_roots()?
        };
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| Error::Tls(format!("server certificate verification: {e}")))?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| Error::Tls(e.to_string()))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
        } else {
            builder.with_webpki_verifier(verifier)
        };
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let certs = pem::certificates(cert).map_err(tls_error)?;
                let key = pem::private_key(key).map_err(tls_error)?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| Error::Tls(format!("client certificate: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(config)
    }

    /// The name to verify the broker's certificate against: the configured
    /// server name, or the URL's host (an IP address as such).
    pub(crate) fn server_name_for(&self, host: &str) -> Result<ServerName<'static>, Error> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_string()).map_err(|_| Error::InvalidOption {
            option: "tls server name",
            reason: format!("'{name}' is not a DNS name or IP address"),
        })
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("cafile", &self.cafile)
            .field("capath", &self.capath)
            .field("cert", &self.cert)
            .field("key", &self.key.as_ref().map(|_| "<path>"))
            .field("insecure", &self.insecure)
            .field("version", &self.version)
            .field("alpn", &self.alpn)
            .field("server_name", &self.server_name)
            .finish()
    }
}

fn tls_error(error: pem::PemError) -> Error {
    Error::Tls(error.to_string())
}

/// The operating system's trusted CAs.
fn system_roots() -> Result<RootCertStore, Error> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(Error::Tls(
            "no CA certificate given (cafile, capath) and none found in the system's store".into(),
        ));
    }
    Ok(roots)
}

/// The WebPKI verifier without its host name check (`insecure`).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_versions_by_mosquitto_name() {
        assert_eq!("tlsv1.2".parse::<TlsVersion>().unwrap(), TlsVersion::Tls12);
        assert_eq!("tlsv1.3".parse::<TlsVersion>().unwrap(), TlsVersion::Tls13);
        assert!(matches!(
            "tlsv1.1".parse::<TlsVersion>(),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            "ssl3".parse::<TlsVersion>(),
            Err(Error::InvalidOption { .. })
        ));
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let mut options = TlsOptions::new().cafile("/nonexistent/ca.pem");
        options.cert = Some("c.pem".into());
        assert!(matches!(
            options.client_config(),
            Err(Error::InvalidOption { .. })
        ));
        let options = TlsOptions::new().cafile("/nonexistent/ca.pem");
        assert!(matches!(options.client_config(), Err(Error::Tls(_))));
    }

    #[test]
    fn server_names() {
        let options = TlsOptions::new();
        assert!(matches!(
            options.server_name_for("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            options.server_name_for("broker.example").unwrap(),
            ServerName::DnsName(_)
        ));
        let options = TlsOptions::new().server_name("localhost");
        assert!(matches!(
            options.server_name_for("127.0.0.1").unwrap(),
            ServerName::DnsName(_)
        ));
    }
}
