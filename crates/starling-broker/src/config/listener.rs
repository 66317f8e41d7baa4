//! The settings Mosquitto scopes to one listener: its protocol (MQTT or
//! WebSockets), TLS, the PROXY protocol, its connection limit, the highest
//! QoS it takes (`max_qos`), its topic namespace (`mount_point`), user names
//! as client identifiers (`use_username_as_clientid`), and how its socket is
//! bound (`socket_domain`, `bind_interface`). Both file
//! syntaxes feed the same [`ListenerOptions`], one directive at a time, and
//! [`ListenerOptions::finish`] checks them together when the listener's block
//! ends, so that both accept exactly the same settings.
//!
//! TLS is OpenSSL's, as in Mosquitto: cipher expressions are checked by
//! OpenSSL as they are read, so a bad one stops start-up at its line. Only
//! OpenSSL engines (`tls_engine`, `tls_keyform engine`) are refused.

use std::path::{Path, PathBuf};

use starling_proto::ProtocolVersion;

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

pub use starling_transport::tls::TlsVersion;

/// A listener's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate, optionally followed by its chain (PEM);
    /// reloaded on SIGHUP. `None` on a PSK-only listener.
    pub certfile: Option<PathBuf>,
    /// The server's private key (PEM, encrypted or not); reloaded on SIGHUP.
    pub keyfile: Option<PathBuf>,
    /// CA certificates trusted for client certificates.
    pub cafile: Option<PathBuf>,
    /// A directory of CA certificates trusted for client certificates.
    pub capath: Option<PathBuf>,
    /// Revoked client certificates (PEM CRLs of the client CAs).
    pub crlfile: Option<PathBuf>,
    /// A client without a valid certificate is refused during the handshake.
    pub require_certificate: bool,
    /// The client certificate's Common Name (or the PSK identity) is the
    /// user name.
    pub use_identity_as_username: bool,
    /// The client certificate's whole subject (RFC 2253) is the user name.
    pub use_subject_as_username: bool,
    /// The oldest TLS version accepted.
    pub min_version: TlsVersion,
    /// TLS 1.2 and older cipher suites: an OpenSSL expression (`None`:
    /// OpenSSL's default).
    pub ciphers: Option<String>,
    /// TLS 1.3 suites, colon-separated (`None`: OpenSSL's default).
    pub ciphers_tls13: Option<String>,
    /// DH parameters for DHE suites.
    pub dhparamfile: Option<PathBuf>,
    /// TLS-PSK is on with this hint (the keys are `psk_file`'s).
    pub psk_hint: Option<String>,
}

impl TlsSettings {
    /// What OpenSSL is told.
    pub fn server_settings(&self) -> starling_transport::tls::ServerSettings {
        starling_transport::tls::ServerSettings {
            certfile: self.certfile.clone(),
            keyfile: self.keyfile.clone(),
            cafile: self.cafile.clone(),
            capath: self.capath.clone(),
            crlfile: self.crlfile.clone(),
            require_certificate: self.require_certificate,
            min_version: self.min_version,
            ciphers: self.ciphers.clone(),
            ciphers_tls13: self.ciphers_tls13.clone(),
            dhparamfile: self.dhparamfile.clone(),
            psk_hint: self.psk_hint.clone(),
        }
    }
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

/// The address family a listener binds (`socket_domain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketDomain {
    /// IPv4 only.
    Ipv4,
    /// IPv6 only.
    Ipv6,
}

/// Everything a listener has of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `max_qos`: the highest QoS its clients may publish, subscribe and
    /// will with (v5 clients are told in CONNACK; a PUBLISH above it ends
    /// the connection; subscriptions are granted at most this).
    pub max_qos: starling_proto::QoS,
    /// `mount_point`: a prefix put before every topic its clients publish,
    /// subscribe to and will with, and taken off what they receive.
    pub mount_point: Option<String>,
    /// `use_username_as_clientid`: the user name is the client identifier
    /// (a client with none is refused).
    pub use_username_as_clientid: bool,
    /// `socket_domain`: only this address family, for a listener bound to
    /// every address.
    pub socket_domain: Option<SocketDomain>,
    /// `bind_interface`: the network interface its socket is bound to
    /// (`SO_BINDTODEVICE`).
    pub bind_interface: Option<String>,
    /// `accept_protocol_versions` (Mosquitto 2.1): the MQTT versions its
    /// clients may speak; `None`: all. Others get CONNACK Unsupported
    /// Protocol Version.
    pub accept_protocol_versions: Option<Vec<ProtocolVersion>>,
    /// `listener_allow_anonymous` (Mosquitto 2.1): this listener's
    /// `allow_anonymous`, whatever `per_listener_settings` says.
    pub allow_anonymous: Option<bool>,
    /// `listener_auto_id_prefix` (Mosquitto 2.1): this listener's
    /// `auto_id_prefix`, whatever `per_listener_settings` says.
    pub auto_id_prefix: Option<String>,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            protocol: Protocol::default(),
            tls: None,
            websockets: WebSocketSettings::default(),
            proxy_protocol: None,
            max_connections: None,
            max_qos: starling_proto::QoS::ExactlyOnce,
            mount_point: None,
            use_username_as_clientid: false,
            socket_domain: None,
            bind_interface: None,
            accept_protocol_versions: None,
            allow_anonymous: None,
            auto_id_prefix: None,
        }
    }
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
    "max_qos",
    "maximum_qos",
    "mount_point",
    "use_username_as_clientid",
    "socket_domain",
    "bind_interface",
    "accept_protocol_versions",
    "listener_allow_anonymous",
    "listener_auto_id_prefix",
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
    ciphers: Option<String>,
    ciphers_tls13: Option<String>,
    dhparamfile: Option<PathBuf>,
    psk_hint: Option<String>,
    max_qos: Option<starling_proto::QoS>,
    mount_point: Option<String>,
    use_username_as_clientid: Option<bool>,
    socket_domain: Option<SocketDomain>,
    bind_interface: Option<String>,
    accept_protocol_versions: Option<Vec<ProtocolVersion>>,
    allow_anonymous: Option<bool>,
    auto_id_prefix: Option<String>,
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
            "tls_version" => tls_version(value).map(|version| {
                self.min_version = Some(version);
                None
            }),
            "ciphers" => starling_transport::tls::check_ciphers(value).map(|()| {
                self.ciphers = Some(value.to_string());
                None
            }),
            "ciphers_tls1.3" => starling_transport::tls::check_ciphersuites(value).map(|()| {
                self.ciphers_tls13 = Some(value.to_string());
                None
            }),
            "dhparamfile" => Ok(set_path(&mut self.dhparamfile, path())),
            "tls_keyform" => match value {
                "pem" => Ok(None),
                "engine" => Err(ENGINES.into()),
                other => Err(format!("'{other}' is not pem or engine")),
            },
            "tls_engine" | "tls_engine_kpass_sha1" => Err(ENGINES.into()),
            "max_qos" | "maximum_qos" => match value {
                "0" => Ok(starling_proto::QoS::AtMostOnce),
                "1" => Ok(starling_proto::QoS::AtLeastOnce),
                "2" => Ok(starling_proto::QoS::ExactlyOnce),
                other => Err(format!("'{other}' is not a QoS (0, 1 or 2)")),
            }
            .map(|qos| {
                self.max_qos = Some(qos);
                None
            }),
            "mount_point" => mount_point(value).map(|mount| {
                self.mount_point = Some(mount);
                None
            }),
            "use_username_as_clientid" => boolean(value, &mut self.use_username_as_clientid),
            "socket_domain" => match value {
                "ipv4" => Ok(SocketDomain::Ipv4),
                "ipv6" => Ok(SocketDomain::Ipv6),
                other => Err(format!("'{other}' is not ipv4 or ipv6")),
            }
            .map(|domain| {
                self.socket_domain = Some(domain);
                None
            }),
            "accept_protocol_versions" => protocol_versions(value).map(|versions| {
                self.accept_protocol_versions = Some(versions);
                None
            }),
            "listener_allow_anonymous" => boolean(value, &mut self.allow_anonymous),
            "listener_auto_id_prefix" => {
                if value.contains(['+', '#', '/', '\0']) {
                    Err(format!(
                        "'{value}' would make client identifiers with '+', '#' or '/'"
                    ))
                } else {
                    self.auto_id_prefix = Some(value.to_string());
                    Ok(None)
                }
            }
            "bind_interface" => {
                if value.is_empty() || value.len() > 15 || value.contains(char::is_whitespace) {
                    Err(format!("'{value}' is not a network interface name"))
                } else {
                    self.bind_interface = Some(value.to_string());
                    Ok(None)
                }
            }
            "psk_hint" => {
                if value.is_empty() {
                    Err("missing value".into())
                } else {
                    self.psk_hint = Some(value.to_string());
                    Ok(None)
                }
            }
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
            || self.ciphers_tls13.is_some()
            || self.dhparamfile.is_some();
        let tls = match (self.certfile, self.keyfile) {
            (None, None) if self.psk_hint.is_none() => {
                if tls_wanted {
                    errors.push(
                        "TLS options without certfile and keyfile (or psk_hint), which TLS needs"
                            .into(),
                    );
                }
                None
            }
            (certfile @ Some(_), keyfile @ Some(_)) | (certfile @ None, keyfile @ None) => {
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
                if (use_identity && !has_ca && self.psk_hint.is_none()) || (use_subject && !has_ca)
                {
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
                    dhparamfile: self.dhparamfile,
                    psk_hint: self.psk_hint,
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
            max_qos: self.max_qos.unwrap_or(starling_proto::QoS::ExactlyOnce),
            mount_point: self.mount_point,
            use_username_as_clientid: self.use_username_as_clientid.unwrap_or(false),
            socket_domain: self.socket_domain,
            bind_interface: self.bind_interface,
            accept_protocol_versions: self.accept_protocol_versions,
            allow_anonymous: self.allow_anonymous,
            auto_id_prefix: self.auto_id_prefix,
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
/// `tlsv1.1`; also `tlsv1`). Whether the system's OpenSSL still speaks TLS
/// 1.1 or 1.0 is its own policy (Debian's allows neither at its default
/// security level).
fn tls_version(value: &str) -> Result<TlsVersion, String> {
    TlsVersion::from_mosquitto(value)
        .ok_or_else(|| format!("'{value}' is not tlsv1.3, tlsv1.2, tlsv1.1 or tlsv1"))
}

/// Mosquitto 2.1's `accept_protocol_versions 3,4,5`: protocol levels (3 is
/// MQTT 3.1, 4 is 3.1.1, 5 is 5.0), separated by commas.
fn protocol_versions(value: &str) -> Result<Vec<ProtocolVersion>, String> {
    let mut versions = Vec::new();
    for part in value.split(',').map(str::trim) {
        let version = match part {
            "3" => ProtocolVersion::V3_1,
            "4" => ProtocolVersion::V3_1_1,
            "5" => ProtocolVersion::V5,
            other => {
                return Err(format!(
                    "'{other}' is not a protocol level (3 for MQTT 3.1, 4 for 3.1.1, 5 for 5.0)"
                ))
            }
        };
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    Ok(versions)
}

/// `mount_point`: a topic name prefix (no wildcards), as Mosquitto checks it.
fn mount_point(value: &str) -> Result<String, String> {
    if value.is_empty() || value.contains(['+', '#', '\0']) || value.len() > 65_535 {
        return Err(format!(
            "'{value}' is not a valid topic prefix (no + or #, not empty)"
        ));
    }
    Ok(value.to_string())
}

/// Why `tls_engine` and `tls_keyform engine` are refused.
const ENGINES: &str =
    "OpenSSL engines are not supported by Starling: give the key as a PEM file (keyfile)";

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
        assert_eq!(
            tls.certfile.as_deref(),
            Some(Path::new("/etc/starling/certs/server.pem"))
        );
        assert_eq!(tls.keyfile.as_deref(), Some(Path::new("/abs/server.key")));
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
            ["TLS options without certfile and keyfile (or psk_hint), which TLS needs"]
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
    fn openssl_settings_are_checked_as_they_are_read() {
        let mut o = ListenerOptions::default();
        let base = Path::new("/");
        assert_eq!(o.set("tls_version", "tlsv1.1", base), Some(Ok(None)));
        assert_eq!(o.min_version, Some(TlsVersion::Tls11));
        assert!(o.set("tls_version", "sslv3", base).unwrap().is_err());
        // An OpenSSL expression, kept as written.
        assert_eq!(o.set("ciphers", "HIGH:!aNULL:!MD5", base), Some(Ok(None)));
        assert_eq!(o.ciphers.as_deref(), Some("HIGH:!aNULL:!MD5"));
        let error = o
            .set("ciphers", "NO-SUCH-CIPHER", base)
            .unwrap()
            .unwrap_err();
        assert!(error.contains("no cipher"), "{error}");
        assert_eq!(
            o.set("ciphers_tls1.3", "TLS_AES_128_GCM_SHA256", base),
            Some(Ok(None))
        );
        assert!(o
            .set("ciphers_tls1.3", "AES128-SHA", base)
            .unwrap()
            .is_err());
        assert_eq!(o.set("dhparamfile", "dh.pem", base), Some(Ok(None)));
        assert_eq!(o.dhparamfile.as_deref(), Some(Path::new("/dh.pem")));
        assert!(o.set("tls_keyform", "engine", base).unwrap().is_err());
        assert!(o.set("tls_engine", "pkcs11", base).unwrap().is_err());
        assert!(o
            .set("http_dir", "/var/www", base)
            .unwrap()
            .unwrap()
            .is_some());
        assert!(o.set("max_keepalive", "10", base).is_none());
    }

    #[test]
    fn a_psk_listener_needs_no_certificate() {
        let (settings, _) = options(&[("psk_hint", "hint"), ("use_identity_as_username", "true")])
            .finish()
            .expect("valid");
        let tls = settings.tls.expect("TLS");
        assert_eq!(tls.psk_hint.as_deref(), Some("hint"));
        assert!(tls.certfile.is_none() && tls.use_identity_as_username);
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
