//! TLS for a listener, with rustls: the server certificate and key, client
//! certificates checked against `cafile`/`capath` and `crlfile`, the oldest
//! version and the cipher suites allowed, and the user name a client
//! certificate gives (`use_identity_as_username`, `use_subject_as_username`).
//!
//! A client whose certificate is untrusted, expired or revoked fails the
//! handshake: rustls' WebPKI verifier checks the chain, the validity period
//! and, with CRLs, revocation of the client's own certificate (as OpenSSL's
//! `X509_V_FLAG_CRL_CHECK` does for Mosquitto: a client certificate whose
//! issuer has no CRL in `crlfile` is refused too).
//!
//! The certificate, key, CAs and CRLs are read again by [`ServerTls::reload`]
//! (SIGHUP): connections made after it use them, open ones keep theirs.

use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use starling_transport::pem::{self, PemError};
use tokio_rustls::TlsAcceptor;

use crate::config::{TlsSettings, TlsVersion};

/// Why a listener's TLS cannot be set up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key, CA or CRL file that cannot be used.
    #[error(transparent)]
    File(#[from] PemError),
    /// rustls refused the combination (a key that does not match the
    /// certificate, a CRL it cannot parse, no cipher suite left, ...).
    #[error("{0}")]
    Config(String),
}

/// A listener's TLS configuration, replaced whole on reload.
#[derive(Debug)]
pub struct ServerTls {
    settings: TlsSettings,
    config: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    /// Reads the listener's certificate, key, CAs and CRLs.
    pub fn load(settings: &TlsSettings) -> Result<ServerTls, TlsError> {
        Ok(ServerTls {
            settings: settings.clone(),
            config: RwLock::new(Arc::new(server_config(settings)?)),
        })
    }

    /// Reads the files again; on failure the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.settings)?;
        *self.config.write() = Arc::new(config);
        Ok(())
    }

    /// An acceptor with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config.read()))
    }

    /// The settings it was loaded from.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }
}

/// The *ring* provider with the cipher suites the settings allow.
fn provider(settings: &TlsSettings) -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|suite| {
        let id = u16::from(suite.suite());
        let allowed = match suite.version().version {
            rustls::ProtocolVersion::TLSv1_3 => &settings.ciphers_tls13,
            _ => &settings.ciphers,
        };
        allowed
            .as_ref()
            .map_or(true, |list| list.iter().any(|cipher| cipher.id == id))
    });
    provider
}

fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(provider(settings));
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(format!("TLS versions and cipher suites: {e}")))?;
    let verifier = if settings.cafile.is_some() || settings.capath.is_some() {
        let roots = pem::root_store(settings.cafile.as_deref(), settings.capath.as_deref())?;
        let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        if let Some(crlfile) = &settings.crlfile {
            verifier = verifier
                .with_crls(pem::crls(crlfile)?)
                .only_check_end_entity_revocation();
        }
        if !settings.require_certificate {
            verifier = verifier.allow_unauthenticated();
        }
        verifier
            .build()
            .map_err(|e| TlsError::Config(format!("client certificate verification: {e}")))?
    } else {
        WebPkiClientVerifier::no_client_auth()
    };
    let certs = pem::certificates(&settings.certfile)?;
    let key = pem::private_key(&settings.keyfile)?;
    builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsError::Config(format!(
                "{} with {}: {e}",
                settings.certfile.display(),
                settings.keyfile.display()
            ))
        })
}

/// The user name a client certificate gives on a listener with
/// `use_identity_as_username` or `use_subject_as_username`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateUser {
    /// The listener does not take user names from certificates.
    NotUsed,
    /// The certificate's Common Name, or its whole subject.
    Name(String),
    /// The listener wants one, and the client sent no certificate (or one
    /// without a Common Name): it is refused at CONNECT, Not Authorized.
    Missing,
}

/// The user name the client's certificate `der` gives, per `settings`
/// (`use_identity_as_username` first, as in Mosquitto).
pub fn certificate_user(settings: &TlsSettings, der: Option<&[u8]>) -> CertificateUser {
    if !settings.use_identity_as_username && !settings.use_subject_as_username {
        return CertificateUser::NotUsed;
    }
    let name = der.and_then(|der| {
        if settings.use_identity_as_username {
            super::x509::common_name(der)
        } else {
            super::x509::rfc2253(der)
        }
    });
    match name {
        Some(name) if !name.is_empty() => CertificateUser::Name(name),
        _ => CertificateUser::Missing,
    }
}
