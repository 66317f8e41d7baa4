//! The TLS options, used as Mosquitto 2.0.11's clients use them
//! (`client_tls_opts_set()` and libmosquitto's `net__init_ssl_ctx()`):
//!
//! - TLS is on with `--cafile` or `--capath` (those CAs are trusted, and
//!   `--cert`/`--key` give the client certificate), with `--tls-use-os-certs`,
//!   an `mqtts://` URL or port 8883 (the system's CAs are trusted; a client
//!   certificate given then is not sent, as in Mosquitto), and with `--psk`
//!   (TLS-PSK, refused here);
//! - `--insecure`, `--tls-version`, `--tls-alpn` and `--ciphers` only shape a
//!   TLS connection: alone, the connection is plain MQTT, as in Mosquitto;
//! - `--tls-version` is a minimum in libmosquitto: `tlsv1.3` is TLS 1.3 only,
//!   `tlsv1.2` and `tlsv1.1` allow 1.2 and 1.3 (rustls has nothing older, so
//!   `tlsv1.1` cannot reach a broker that stops at TLS 1.1).
//!
//! What rustls cannot do is refused in one line before connecting, rather than
//! connecting some other way: TLS-PSK, OpenSSL engines, OpenSSL cipher lists.
//! Where Mosquitto trusts both the CAs given and the system's (`--cafile` with
//! `--tls-use-os-certs` or `mqtts://`), only the CAs given are trusted here.

use starling_client::{TlsOptions, TlsVersion};

use super::args::Config;
use super::errors::Fail;

/// The versions `--tls-version` takes (`mosquitto_tls_opts_set()`).
const TLS_VERSIONS: [&str; 3] = ["tlsv1.3", "tlsv1.2", "tlsv1.1"];

/// Mosquitto's checks of the TLS options, in its order and words, then the
/// client's TLS options if the connection uses TLS (`None` for plain MQTT).
pub(crate) fn options(cfg: &Config) -> Result<Option<TlsOptions>, Fail> {
    let tls = &cfg.tls;
    let with_cas = tls.cafile.is_some() || tls.capath.is_some();
    if with_cas {
        // mosquitto_tls_set() opens each file given (not the directory).
        for file in [&tls.cafile, &tls.cert, &tls.key].into_iter().flatten() {
            if std::fs::File::open(file).is_err() {
                return Err(Fail::plain(
                    "Error: Problem setting TLS options: File not found.\n",
                    1,
                ));
            }
        }
    } else if tls.psk.is_some() {
        return Err(unsupported("--psk", "has no TLS-PSK"));
    }
    if tls.engine.is_some() {
        return Err(unsupported("--tls-engine", "has no OpenSSL engines"));
    }
    match tls.keyform.as_deref() {
        None | Some("pem") => {}
        Some("engine") => return Err(unsupported("--keyform engine", "has no OpenSSL engines")),
        Some(_) => {
            return Err(Fail::plain(
                "Error: Problem setting key form, it must be one of 'pem' or 'engine'.\n",
                1,
            ))
        }
    }
    if let Some(version) = &tls.version {
        if !TLS_VERSIONS.contains(&version.as_str()) {
            return Err(Fail::plain(
                "Error: Problem setting TLS options, check the options are valid.\n",
                1,
            ));
        }
    }
    if !(with_cas || tls.use_os_certs || cfg.url_tls || cfg.port() == 8883) {
        return Ok(None);
    }
    if tls.ciphers.is_some() {
        return Err(unsupported(
            "--ciphers",
            "does not take OpenSSL cipher lists",
        ));
    }
    let mut options = TlsOptions::new().insecure(tls.insecure);
    if let Some(cafile) = &tls.cafile {
        options = options.cafile(cafile);
    }
    if let Some(capath) = &tls.capath {
        options = options.capath(capath);
    }
    if let (true, Some(cert), Some(key)) = (with_cas, &tls.cert, &tls.key) {
        options = options.client_certificate(cert, key);
    }
    if tls.version.as_deref() == Some("tlsv1.3") {
        options = options.version(TlsVersion::Tls13);
    }
    if let Some(alpn) = &tls.alpn {
        options = options.alpn([alpn.as_str()]);
    }
    Ok(Some(options))
}

/// An option rustls, the TLS library of Starling's client, cannot honour.
fn unsupported(option: &str, lacks: &str) -> Fail {
    Fail::plain(
        format!("Error: {option} is not supported: Starling's client (rustls) {lacks}.\n"),
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::super::args::{load_args, Tool};
    use super::*;

    fn tls(args: &[&str]) -> Result<Option<TlsOptions>, String> {
        let cfg = load_args(Tool::Pub, args).map_err(|fail| fail.message)?;
        options(&cfg).map_err(|fail| fail.message)
    }

    #[test]
    fn tls_is_on_where_mosquitto_turns_it_on() {
        for args in [
            &["--tls-use-os-certs"][..],
            &["-p", "8883"],
            &["-L", "mqtts://h:1234/t"],
            &["-L", "mqtts://h/t", "-L", "mqtt://h/t"],
        ] {
            assert!(tls(args).unwrap().is_some(), "{args:?}");
        }
        for args in [
            &[][..],
            &["--insecure"],
            &["--tls-version", "tlsv1.1"],
            &["--tls-alpn", "mqtt"],
            &["--ciphers", "HIGH"],
            &["--cert", "c", "--key", "k"],
        ] {
            assert_eq!(tls(args), Ok(None), "{args:?}");
        }
    }

    #[test]
    fn what_rustls_cannot_do_is_refused_in_one_line() {
        let refused = |args: &[&str]| tls(args).unwrap_err();
        assert!(refused(&["--psk", "00", "--psk-identity", "me"]).starts_with("Error: --psk "));
        assert!(refused(&["-p", "8883", "--ciphers", "HIGH"]).starts_with("Error: --ciphers "));
        assert!(refused(&["--tls-engine", "e"]).starts_with("Error: --tls-engine "));
        assert_eq!(
            refused(&["--tls-version", "tlsv1"]),
            "Error: Problem setting TLS options, check the options are valid.\n"
        );
    }
}
