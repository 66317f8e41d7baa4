//! The settings Mosquitto scopes to one listener: its protocol (MQTT or
//! WebSockets), TLS, the PROXY protocol and its connection limit. Both file
//! syntaxes feed the same [`ListenerOptions`], one directive at a time, and
//! [`ListenerOptions::finish`] checks them together when the listener's block
//! ends, so that both accept exactly the same settings.
//!
//! What rustls cannot honour of Mosquitto's OpenSSL-based options is said
//! where each is read: TLS 1.0 and 1.1, cipher suites other than the AEAD
//! ones listed in [`CIPHERS`], OpenSSL cipher expressions, DH parameters,
//! pre-shared keys and OpenSSL engines.

use std::path::{Path, PathBuf};

/// What a listener speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT over TCP (or TLS).
    #[default]
    Mqtt,
    /// MQTT over WebSocket (over TLS too, `wss`, when the listener has TLS).
    WebSockets,
}

/// The PROXY protocol version a listener expects before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// The text header, `PROXY TCP4 ...\r\n`.
    V1,
    /// The binary header.
    V2,
}

/// The oldest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3 (Mosquitto 2's default).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// A cipher suite rustls offers, by its OpenSSL name.
#[derive(Debug, PartialEq, Eq)]
pub struct Cipher {
    /// The OpenSSL name, as `ciphers` and `ciphers_tls1.3` take it.
    pub name: &'static str,
    /// The IANA code point.
    pub id: u16,
    /// A TLS 1.3 suite (`ciphers_tls1.3`) or a TLS 1.2 one (`ciphers`).
    pub tls13: bool,
}

/// Every cipher suite of rustls' *ring* provider: AEAD only, ECDHE key
/// exchange only. OpenSSL names anything else (CBC, RSA key exchange, DHE,
/// PSK) that rustls does not implement.
pub const CIPHERS: &[Cipher] = &[
    Cipher {
        name: "TLS_AES_256_GCM_SHA384",
        id: 0x1302,
        tls13: true,
    },
    Cipher {
        name: "TLS_AES_128_GCM_SHA256",
        id: 0x1301,
        tls13: true,
    },
    Cipher {
        name: "TLS_CHACHA20_POLY1305_SHA256",
        id: 0x1303,
        tls13: true,
    },
    Cipher {
        name: "ECDHE-ECDSA-AES256-GCM-SHA384",
        id: 0xC02C,
        tls13: false,
    },
    Cipher {
        name: "ECDHE-ECDSA-AES128-GCM-SHA256",
        id: 0xC02B,
        tls13: false,
    },
    Cipher {
        name: "ECDHE-ECDSA-CHACHA20-POLY1305",
        id: 0xCCA9,
        tls13: false,
    },
    Cipher {
        name: "ECDHE-RSA-AES256-GCM-SHA384",
        id: 0xC030,
        tls13: false,
    },
    Cipher {
        name: "ECDHE-RSA-AES128-GCM-SHA256",
        id: 0xC02F,
        tls13: false,
    },
    Cipher {
        name: "ECDHE-RSA-CHACHA20-POLY1305",
        id: 0xCCA8,
        tls13: false,
    },
];

/// A listener's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate chain (PEM); reloaded on SIGHUP.
    pub certfile: PathBuf,
    /// The server's private key (PEM, not encrypted); reloaded on SIGHUP.
    pub keyfile: PathBuf,
    /// CA certificates trusted for client certificates.
    pub cafile: Option<PathBuf>,
    /// A directory of CA certificates trusted for client certificates.
    pub capath: Option<PathBuf>,
    /// Revoked client certificates (PEM CRLs of the client CAs).
    pub crlfile: Option<PathBuf>,
    /// A client without a valid certificate is refused during the handshake.
    pub require_certificate: bool,
    /// The client certificate's Common Name is the user name.
    pub use_identity_as_username: bool,
    /// The client certificate's whole subject (RFC 2253) is the user name.
    pub use_subject_as_username: bool,
    /// The oldest TLS version accepted.
    pub min_version: TlsVersion,
    /// TLS 1.2 cipher suites allowed (`None`: all of [`CIPHERS`]).
    pub ciphers: Option<Vec<&'static Cipher>>,
    /// TLS 1.3 cipher suites allowed (`None`: all of [`CIPHERS`]).
    pub ciphers_tls13: Option<Vec<&'static Cipher>>,
}

/// A WebSockets listener's HTTP side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebSocketSettings {
    /// The only path the upgrade may ask for; `None` accepts any path, as
    /// Mosquitto does.
    pub path: Option<String>,
    /// Origins allowed to connect (the `Origin` header, compared exactly);
    /// empty allows any, and requests without one.
    pub origins: Vec<String>,
}

/// Everything a listener has of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerSettings {
    /// MQTT or WebSockets.
    pub protocol: Protocol,
    /// TLS, when the listener has a certificate.
    pub tls: Option<TlsSettings>,
    /// The WebSocket path and origins (WebSockets listeners only).
    pub websockets: WebSocketSettings,
    /// The PROXY protocol header every connection starts with, if any.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Most clients connected to this listener at once; `None` is unlimited.
    pub max_connections: Option<usize>,
}

/// The directives [`ListenerOptions::set`] reads.
pub(super) const DIRECTIVES: &[&str] = &[
    "protocol",
    "enable_proxy_protocol",
    "websockets_path",
    "websockets_origin",
    "http_dir",
    "certfile",
    "keyfile",
    "cafile",
    "capath",
    "crlfile",
    "require_certificate",
    "use_identity_as_username",
    "use_subject_as_username",
    "tls_version",
    "ciphers",
    "ciphers_tls1.3",
    "dhparamfile",
    "tls_keyform",
    "tls_engine",
    "tls_engine_kpass_sha1",
    "psk_hint",
];

/// A listener's options as written, before they are checked together.
#[derive(Debug, Default)]
pub(super) struct ListenerOptions {
    protocol: Option<Protocol>,
    proxy_protocol: Option<ProxyProtocol>,
    websockets_path: Option<String>,
    websockets_origins: Vec<String>,
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    cafile: Option<PathBuf>,
    capath: Option<PathBuf>,
    crlfile: Option<PathBuf>,
    require_certificate: Option<bool>,
    use_identity_as_username: Option<bool>,
    use_subject_as_username: Option<bool>,
    min_version: Option<TlsVersion>,
    ciphers: Option<Vec<&'static Cipher>>,
    ciphers_tls13: Option<Vec<&'static Cipher>>,
    /// Set by the syntax's own `max_connections` handling.
    pub(super) max_connections: Option<usize>,
    /// Whether any option was given (the first one's place is the syntax's).
    pub(super) given: bool,
}

/// What one directive did: nothing to say, or a warning.
pub(super) type Applied = Result<Option<String>, String>;

impl ListenerOptions {
    /// Applies one listener directive, its value as text; relative paths are
    /// taken from `base`, the directory of the file that says them. `None` if
    /// `name` is not a listener directive.
    pub(super) fn set(&mut self, name: &str, value: &str, base: &Path) -> Option<Applied> {
        let path = || base.join(value);
        let applied = match name {
            "protocol" => protocol(value).map(|p| {
                self.protocol = Some(p);
                None
            }),
            "enable_proxy_protocol" => proxy_protocol(value).map(|p| {
                self.proxy_protocol = Some(p);
                None
            }),
            "websockets_path" => {
                if value.starts_with('/') && !value.contains(char::is_whitespace) {
                    self.websockets_path = Some(value.to_string());
                    Ok(None)
                } else {
                    Err(format!("'{value}' is not a path (it starts with /)"))
                }
            }
            "websockets_origin" => {
                self.websockets_origins.push(value.to_string());
                Ok(None)
            }
            "http_dir" => Ok(Some(
                "serving files over HTTP is not supported; ignored".into(),
            )),
            "certfile" => Ok(set_path(&mut self.certfile, path())),
            "keyfile" => Ok(set_path(&mut self.keyfile, path())),
            "cafile" => Ok(set_path(&mut self.cafile, path())),
            "capath" => Ok(set_path(&mut self.capath, path())),
            "crlfile" => Ok(set_path(&mut self.crlfile, path())),
            "require_certificate" => boolean(value, &mut self.require_certificate),
            "use_identity_as_username" => boolean(value, &mut self.use_identity_as_username),
            "use_subject_as_username" => boolean(value, &mut self.use_subject_as_username),
            "tls_version" => tls_version(value).map(|(version, warning)| {
                self.min_version = Some(version);
                warning
            }),
            "ciphers" => ciphers(value, false).map(|(list, warning)| {
                self.ciphers = Some(list);
                warning
            }),
            "ciphers_tls1.3" => ciphers(value, true).map(|(list, warning)| {
                self.ciphers_tls13 = Some(list);
                warning
            }),
            "dhparamfile" => Ok(Some(
                "rustls has no finite-field DHE cipher suites, so no DH parameters; ignored".into(),
            )),
            "tls_keyform" => match value {
                "pem" => Ok(None),
                "engine" => Err("OpenSSL engines are not supported (rustls): keys are PEM files".into()),
                other => Err(format!("'{other}' is not pem or engine")),
            },
            "tls_engine" | "tls_engine_kpass_sha1" => {
                Err("OpenSSL engines are not supported (rustls): keys are PEM files".into())
            }
            "psk_hint" => Err(
                "TLS with pre-shared keys is not supported (rustls has no TLS-PSK cipher suites); use certificates"
                    .into(),
            ),
            _ => return None,
        };
        if applied.is_ok() {
            self.given = true;
        }
        Some(applied)
    }

    /// Checks the options together. Returns the settings and the warnings,
    /// or every error.
    pub(super) fn finish(self) -> Result<(ListenerSettings, Vec<String>), Vec<String>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let protocol = self.protocol.unwrap_or_default();
        let tls_wanted = self.cafile.is_some()
            || self.capath.is_some()
            || self.crlfile.is_some()
            || self.require_certificate == Some(true)
            || self.use_identity_as_username == Some(true)
            || self.use_subject_as_username == Some(true)
            || self.min_version.is_some()
            || self.ciphers.is_some()
            || self.ciphers_tls13.is_some();
        let tls = match (self.certfile, self.keyfile) {
            (Some(certfile), Some(keyfile)) => {
                let require_certificate = self.require_certificate.unwrap_or(false);
                let has_ca = self.cafile.is_some() || self.capath.is_some();
                if require_certificate && !has_ca {
                    errors.push("require_certificate needs cafile or capath to check client certificates against".into());
                }
                if self.crlfile.is_some() && !has_ca {
                    errors.push("crlfile needs cafile or capath (client certificates are only checked against a CA)".into());
                }
                let use_identity = self.use_identity_as_username.unwrap_or(false);
                let use_subject = self.use_subject_as_username.unwrap_or(false);
                if (use_identity || use_subject) && !has_ca {
                    errors.push("use_identity_as_username and use_subject_as_username need cafile or capath (and require_certificate true)".into());
                }
                Some(TlsSettings {
                    certfile,
                    keyfile,
                    cafile: self.cafile,
                    capath: self.capath,
                    crlfile: self.crlfile,
                    require_certificate,
                    use_identity_as_username: use_identity,
                    use_subject_as_username: use_subject,
                    min_version: self.min_version.unwrap_or_default(),
                    ciphers: self.ciphers,
                    ciphers_tls13: self.ciphers_tls13,
                })
            }
            (Some(_), None) => {
                errors.push("certfile without keyfile: TLS needs both".into());
                None
            }
            (None, Some(_)) => {
                errors.push("keyfile without certfile: TLS needs both".into());
                None
            }
            (None, None) => {
                if tls_wanted {
                    errors.push("TLS options without certfile and keyfile, which TLS needs".into());
                }
                None
            }
        };
        if protocol != Protocol::WebSockets
            && (self.websockets_path.is_some() || !self.websockets_origins.is_empty())
        {
            warnings.push(
                "websockets_path and websockets_origin apply to protocol websockets only; ignored"
                    .into(),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let settings = ListenerSettings {
            protocol,
            tls,
            websockets: WebSocketSettings {
                path: self.websockets_path,
                origins: self.websockets_origins,
            },
            proxy_protocol: self.proxy_protocol,
            max_connections: self.max_connections,
        };
        Ok((settings, warnings))
    }
}

fn set_path(slot: &mut Option<PathBuf>, path: PathBuf) -> Option<String> {
    let warning = slot
        .is_some()
        .then(|| "given more than once for this listener; the last one is used".to_string());
    *slot = Some(path);
    warning
}

fn boolean(value: &str, slot: &mut Option<bool>) -> Applied {
    match value {
        "true" => *slot = Some(true),
        "false" => *slot = Some(false),
        other => return Err(format!("'{other}' is not a boolean (true or false)")),
    }
    Ok(None)
}

fn protocol(value: &str) -> Result<Protocol, String> {
    match value {
        "mqtt" => Ok(Protocol::Mqtt),
        "websockets" => Ok(Protocol::WebSockets),
        other => Err(format!("'{other}' is not mqtt or websockets")),
    }
}

/// Mosquitto 2.1: `enable_proxy_protocol 1` or `2`.
fn proxy_protocol(value: &str) -> Result<ProxyProtocol, String> {
    match value {
        "1" => Ok(ProxyProtocol::V1),
        "2" => Ok(ProxyProtocol::V2),
        other => Err(format!(
            "'{other}' is not a PROXY protocol version (1 or 2)"
        )),
    }
}

/// Mosquitto 2: the *oldest* version allowed (`tlsv1.3`, `tlsv1.2`,
/// `tlsv1.1`). rustls has no TLS 1.1 or 1.0: asking for them allows 1.2 and
/// 1.3, with a warning.
fn tls_version(value: &str) -> Result<(TlsVersion, Option<String>), String> {
    match value {
        "tlsv1.3" => Ok((TlsVersion::Tls13, None)),
        "tlsv1.2" => Ok((TlsVersion::Tls12, None)),
        "tlsv1.1" | "tlsv1" => Ok((
            TlsVersion::Tls12,
            Some(format!(
                "rustls has no TLS older than 1.2: {value} allows TLS 1.2 and 1.3 only"
            )),
        )),
        other => Err(format!("'{other}' is not tlsv1.3, tlsv1.2 or tlsv1.1")),
    }
}

/// An OpenSSL cipher list: names separated by colons (or commas, or spaces).
/// The names rustls implements are kept; other names and OpenSSL's cipher
/// expressions (`HIGH`, `!aNULL`, `@STRENGTH`, ...) cannot be honoured and are
/// ignored with a warning; a list that keeps nothing is an error.
fn ciphers(value: &str, tls13: bool) -> Result<(Vec<&'static Cipher>, Option<String>), String> {
    let mut kept = Vec::new();
    let mut ignored = Vec::new();
    for name in value.split([':', ',', ' ']).filter(|name| !name.is_empty()) {
        match CIPHERS
            .iter()
            .find(|c| c.tls13 == tls13 && c.name.eq_ignore_ascii_case(name))
        {
            Some(cipher) => {
                if !kept.contains(&cipher) {
                    kept.push(cipher);
                }
            }
            None => ignored.push(name),
        }
    }
    let available = || {
        CIPHERS
            .iter()
            .filter(|c| c.tls13 == tls13)
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(":")
    };
    if kept.is_empty() {
        return Err(format!(
            "none of these cipher suites is available with rustls (available: {})",
            available()
        ));
    }
    let warning = (!ignored.is_empty()).then(|| {
        format!(
            "{} not available with rustls (only {}); ignored",
            ignored.join(":"),
            available()
        )
    });
    Ok((kept, warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(lines: &[(&str, &str)]) -> ListenerOptions {
        let mut options = ListenerOptions::default();
        for (name, value) in lines {
            options
                .set(name, value, Path::new("/etc/starling"))
                .expect("a listener directive")
                .expect("valid");
        }
        options
    }

    #[test]
    fn tls_settings_with_relative_paths_from_the_file() {
        let (settings, warnings) = options(&[
            ("certfile", "certs/server.pem"),
            ("keyfile", "/abs/server.key"),
            ("cafile", "ca.pem"),
            ("require_certificate", "true"),
            ("use_identity_as_username", "true"),
            ("tls_version", "tlsv1.3"),
        ])
        .finish()
        .expect("valid");
        assert!(warnings.is_empty());
        let tls = settings.tls.expect("TLS");
        assert_eq!(tls.certfile, Path::new("/etc/starling/certs/server.pem"));
        assert_eq!(tls.keyfile, Path::new("/abs/server.key"));
        assert_eq!(
            tls.cafile.as_deref(),
            Some(Path::new("/etc/starling/ca.pem"))
        );
        assert!(tls.require_certificate && tls.use_identity_as_username);
        assert_eq!(tls.min_version, TlsVersion::Tls13);
    }

    #[test]
    fn incomplete_tls_is_an_error() {
        let errors = |lines: &[(&str, &str)]| options(lines).finish().expect_err("invalid");
        assert_eq!(
            errors(&[("certfile", "c.pem")]),
            ["certfile without keyfile: TLS needs both"]
        );
        assert_eq!(
            errors(&[("cafile", "ca.pem")]),
            ["TLS options without certfile and keyfile, which TLS needs"]
        );
        assert_eq!(
            errors(&[
                ("certfile", "c"),
                ("keyfile", "k"),
                ("require_certificate", "true")
            ])
            .len(),
            1
        );
        assert_eq!(
            errors(&[("certfile", "c"), ("keyfile", "k"), ("crlfile", "crl.pem")]).len(),
            1
        );
    }

    #[test]
    fn values_rustls_cannot_honour() {
        let mut o = ListenerOptions::default();
        let base = Path::new("/");
        let warning = o.set("tls_version", "tlsv1.1", base).unwrap().unwrap();
        assert!(warning.unwrap().contains("TLS 1.2 and 1.3 only"));
        let warning = o
            .set(
                "ciphers",
                "ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA:HIGH:!aNULL",
                base,
            )
            .unwrap()
            .unwrap();
        assert!(warning
            .unwrap()
            .starts_with("AES128-SHA:HIGH:!aNULL not available"));
        assert_eq!(
            o.ciphers
                .as_deref()
                .map(|c| c.iter().map(|c| c.id).collect::<Vec<_>>()),
            Some(vec![0xC02F])
        );
        assert!(o
            .set("ciphers", "DHE-RSA-AES256-SHA", base)
            .unwrap()
            .is_err());
        assert!(o
            .set("ciphers_tls1.3", "TLS_AES_128_GCM_SHA256", base)
            .unwrap()
            .unwrap()
            .is_none());
        assert!(o.set("psk_hint", "hint", base).unwrap().is_err());
        assert!(o.set("tls_keyform", "engine", base).unwrap().is_err());
        assert!(o
            .set("dhparamfile", "dh.pem", base)
            .unwrap()
            .unwrap()
            .is_some());
        assert!(o
            .set("http_dir", "/var/www", base)
            .unwrap()
            .unwrap()
            .is_some());
        assert!(o.set("max_keepalive", "10", base).is_none());
    }

    #[test]
    fn protocol_proxy_and_websockets() {
        let (settings, warnings) = options(&[
            ("protocol", "websockets"),
            ("enable_proxy_protocol", "2"),
            ("websockets_path", "/mqtt"),
            ("websockets_origin", "https://example.org"),
            ("websockets_origin", "https://example.com"),
        ])
        .finish()
        .expect("valid");
        assert!(warnings.is_empty());
        assert_eq!(settings.protocol, Protocol::WebSockets);
        assert_eq!(settings.proxy_protocol, Some(ProxyProtocol::V2));
        assert_eq!(settings.websockets.path.as_deref(), Some("/mqtt"));
        assert_eq!(settings.websockets.origins.len(), 2);

        let mut o = ListenerOptions::default();
        let base = Path::new("/");
        assert!(o.set("protocol", "http", base).unwrap().is_err());
        assert!(o.set("enable_proxy_protocol", "3", base).unwrap().is_err());
        assert!(o.set("websockets_path", "mqtt", base).unwrap().is_err());
        let (_, warnings) = options(&[("websockets_path", "/mqtt")]).finish().unwrap();
        assert_eq!(warnings.len(), 1, "a path on an MQTT listener is ignored");
    }
}
