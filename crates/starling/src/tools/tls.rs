//! The TLS options, used as Mosquitto 2.0.11's clients use them
//! (`client_tls_opts_set()` and libmosquitto's `net__init_ssl_ctx()`), on
//! OpenSSL as there:
//!
//! - TLS is on with `--cafile` or `--capath` (those CAs are trusted, and
//!   `--cert`/`--key` give the client certificate), with `--tls-use-os-certs`,
//!   an `mqtts://` URL or port 8883 (the system's CAs are trusted; a client
//!   certificate given then is not sent, as in Mosquitto), and with `--psk`
//!   (TLS-PSK: `--psk-identity` and the key in hexadecimal);
//! - `--insecure`, `--tls-version`, `--tls-alpn` and `--ciphers` only shape a
//!   TLS connection: alone, the connection is plain MQTT, as in Mosquitto;
//! - `--tls-version` is a minimum in libmosquitto: `tlsv1.3` is TLS 1.3 only,
//!   `tlsv1.2` allows 1.2 and 1.3, `tlsv1.1` also 1.1 where the system's
//!   OpenSSL still speaks it;
//! - an encrypted `--key` asks for its pass phrase on the terminal, as
//!   OpenSSL does for libmosquitto, unless `STARLING_TLS_PASSPHRASE_FILE`
//!   names a file holding it.
//!
//! OpenSSL engines (`--tls-engine`, `--keyform engine`) are refused in one
//! line before connecting.

use starling_client::{TlsOptions, TlsVersion};

use super::args::Config;
use super::errors::Fail;

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
    }
    if tls.engine.is_some() {
        return Err(unsupported("--tls-engine"));
    }
    match tls.keyform.as_deref() {
        None | Some("pem") => {}
        Some("engine") => return Err(unsupported("--keyform engine")),
        Some(_) => {
            return Err(Fail::plain(
                "Error: Problem setting key form, it must be one of 'pem' or 'engine'.\n",
                1,
            ))
        }
    }
    // mosquitto_tls_psk_set(): the key is hexadecimal.
    let psk = match (&tls.psk, &tls.psk_identity) {
        (Some(key), Some(identity)) => {
            let bytes = (!key.is_empty())
                .then(|| starling_transport::tls::decode_hex(key))
                .flatten();
            match bytes {
                Some(bytes) => Some((identity.clone(), bytes)),
                None => return Err(Fail::plain("Error: Problem setting TLS-PSK options.\n", 1)),
            }
        }
        _ => None,
    };
    let version = match tls.version.as_deref() {
        None => None,
        Some(name @ ("tlsv1.3" | "tlsv1.2" | "tlsv1.1")) => TlsVersion::from_mosquitto(name),
        Some(_) => {
            return Err(Fail::plain(
                "Error: Problem setting TLS options, check the options are valid.\n",
                1,
            ));
        }
    };
    if !(with_cas || psk.is_some() || tls.use_os_certs || cfg.url_tls || cfg.port() == 8883) {
        return Ok(None);
    }
    let mut options = TlsOptions::new().insecure(tls.insecure);
    if let Some(cafile) = &tls.cafile {
        options = options.cafile(cafile);
    }
    if let Some(capath) = &tls.capath {
        options = options.capath(capath);
    }
    // The system's CAs: asked for, or no other way to check the broker.
    if tls.use_os_certs || cfg.url_tls || (!with_cas && psk.is_none()) {
        options = options.use_os_certs(true);
    }
    if let (true, Some(cert), Some(key)) = (with_cas, &tls.cert, &tls.key) {
        options = options.client_certificate(cert, key);
    }
    if let Some(version) = version {
        options = options.version(version);
    }
    if let Some(ciphers) = &tls.ciphers {
        options = options.ciphers(ciphers);
    }
    if let Some(alpn) = &tls.alpn {
        options = options.alpn([alpn.as_str()]);
    }
    if let Some((identity, key)) = psk {
        options = options.psk(identity, key);
    }
    Ok(Some(options))
}

/// OpenSSL engines, which Starling's client does not load.
fn unsupported(option: &str) -> Fail {
    Fail::plain(
        format!("Error: {option} is not supported: Starling's client loads no OpenSSL engines.\n"),
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
    fn psk_ciphers_and_engines() {
        assert!(tls(&["--psk", "00ff", "--psk-identity", "me"])
            .unwrap()
            .is_some());
        assert!(tls(&["-p", "8883", "--ciphers", "HIGH"]).unwrap().is_some());
        let refused = |args: &[&str]| tls(args).unwrap_err();
        assert_eq!(
            refused(&["--psk", "0x", "--psk-identity", "me"]),
            "Error: Problem setting TLS-PSK options.\n"
        );
        assert!(refused(&["--tls-engine", "e"]).starts_with("Error: --tls-engine "));
        assert_eq!(
            refused(&["--tls-version", "tlsv1"]),
            "Error: Problem setting TLS options, check the options are valid.\n"
        );
    }
}
