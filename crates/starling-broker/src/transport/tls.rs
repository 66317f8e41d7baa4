//! TLS for a listener: its OpenSSL context (built by
//! [`starling_transport::tls`] from the listener's settings: certificate and
//! chain, key, client CAs and CRLs, versions, cipher expressions, DH
//! parameters, PSK), swapped whole by [`ServerTls::reload`] (SIGHUP): new
//! connections use the new files, open ones keep theirs. And the user name a
//! client certificate or a PSK identity gives (`use_identity_as_username`,
//! `use_subject_as_username`).
//!
//! A client whose certificate is untrusted, expired or revoked fails the
//! handshake, as OpenSSL decides for Mosquitto (with `crlfile`,
//! `X509_V_FLAG_CRL_CHECK`: a client certificate whose issuer has no CRL in
//! the file is refused too).

use std::sync::Arc;

use parking_lot::RwLock;
use starling_transport::tls::{self as openssl_tls, HandshakeError, PskStore, TlsStream};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::TlsSettings;

pub use starling_transport::tls::TlsError;

/// A listener's TLS, replaced whole on reload.
#[derive(Debug)]
pub struct ServerTls {
    settings: TlsSettings,
    context: RwLock<Arc<openssl_tls::ServerTls>>,
}

impl ServerTls {
    /// Reads the listener's certificate, key, CAs and CRLs.
    pub fn load(settings: &TlsSettings) -> Result<ServerTls, TlsError> {
        Ok(ServerTls {
            settings: settings.clone(),
            context: RwLock::new(Arc::new(openssl_tls::ServerTls::new(
                &settings.server_settings(),
            )?)),
        })
    }

    /// Reads the files again; on failure the context in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let context = openssl_tls::ServerTls::new(&self.settings.server_settings())?;
        *self.context.write() = Arc::new(context);
        Ok(())
    }

    /// The handshake with the context in force now; `psk` holds the keys of
    /// PSK identities on a `psk_hint` listener.
    pub async fn accept<S>(
        &self,
        stream: S,
        psk: Option<Arc<dyn PskStore>>,
    ) -> Result<TlsStream<S>, HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let context = Arc::clone(&self.context.read());
        context.accept(stream, psk).await
    }

    /// The settings it was loaded from.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }
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

/// The user name the client's certificate `der` (or, on a PSK listener, its
/// PSK identity) gives, per `settings` (`use_identity_as_username` first, as
/// in Mosquitto).
pub fn certificate_user(
    settings: &TlsSettings,
    der: Option<&[u8]>,
    psk_identity: Option<&str>,
) -> CertificateUser {
    if !settings.use_identity_as_username && !settings.use_subject_as_username {
        return CertificateUser::NotUsed;
    }
    if let (Some(identity), true) = (psk_identity, settings.use_identity_as_username) {
        return CertificateUser::Name(identity.to_string());
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
