//! Certificates and private keys from PEM files, and the pass phrase of an
//! encrypted key (`openssl genrsa -des3`: legacy PEM with `Proc-Type:
//! 4,ENCRYPTED`, or PKCS#8 `ENCRYPTED PRIVATE KEY`).
//!
//! Where the pass phrase comes from, first that applies:
//! 1. one the caller gives ([`Passphrase::Given`]: the client library's
//!    option);
//! 2. the file named by the environment variable
//!    [`PASSPHRASE_FILE_VARIABLE`] (its first line), for services that
//!    start with no terminal: never a command-line argument, which `ps`
//!    shows;
//! 3. the terminal, asked as OpenSSL asks for Mosquitto (`Enter PEM pass
//!    phrase:`), when there is one.
//!
//! Otherwise loading fails, saying how to give it.

use std::io::IsTerminal;
use std::path::Path;

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::{read, reasons, TlsError};

/// The environment variable naming a file whose first line is the pass
/// phrase of encrypted private keys (the broker's `keyfile`, the tools'
/// `--key`).
pub const PASSPHRASE_FILE_VARIABLE: &str = "STARLING_TLS_PASSPHRASE_FILE";

/// How to get an encrypted key's pass phrase.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Passphrase {
    /// From [`PASSPHRASE_FILE_VARIABLE`]'s file, else the terminal.
    #[default]
    FromEnvironmentOrTerminal,
    /// This one.
    Given(String),
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Passphrase::FromEnvironmentOrTerminal => "FromEnvironmentOrTerminal",
            Passphrase::Given(_) => "Given(<hidden>)",
        })
    }
}

/// Whether a PEM key is encrypted.
fn is_encrypted(pem: &[u8]) -> bool {
    let has = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    has(b"Proc-Type: 4,ENCRYPTED") || has(b"BEGIN ENCRYPTED PRIVATE KEY")
}

/// The private key of the PEM file `path` (PKCS#8, PKCS#1 RSA or SEC1 EC;
/// encrypted or not).
pub fn private_key(path: &Path, passphrase: &Passphrase) -> Result<PKey<Private>, TlsError> {
    let pem = read(path)?;
    if !pem
        .windows(b"PRIVATE KEY-----".len())
        .any(|w| w == b"PRIVATE KEY-----")
    {
        return Err(TlsError::file(
            path,
            "no private key in the file (PEM: PKCS#8, RSA or EC)",
        ));
    }
    if !is_encrypted(&pem) {
        return PKey::private_key_from_pem(&pem).map_err(|e| {
            TlsError::file(path, format!("not a usable private key: {}", reasons(&e)))
        });
    }
    let phrase = match passphrase {
        Passphrase::Given(phrase) => phrase.clone(),
        Passphrase::FromEnvironmentOrTerminal => from_environment_or_terminal(path)?,
    };
    PKey::private_key_from_pem_passphrase(&pem, phrase.as_bytes()).map_err(|e| {
        let why = reasons(&e);
        if why.contains("bad decrypt")
            || why.contains("bad password")
            || why.contains("unsupported")
        {
            TlsError::file(path, "wrong pass phrase for the encrypted private key")
        } else {
            TlsError::file(path, format!("cannot decrypt the private key: {why}"))
        }
    })
}

fn from_environment_or_terminal(path: &Path) -> Result<String, TlsError> {
    if let Some(file) = std::env::var_os(PASSPHRASE_FILE_VARIABLE) {
        let file = Path::new(&file);
        let text = read(file)?;
        let text = String::from_utf8_lossy(&text);
        let phrase = text.lines().next().unwrap_or("").to_string();
        return Ok(phrase);
    }
    // OpenSSL's prompt, on the terminal as OpenSSL asks for Mosquitto.
    if std::fs::File::open("/dev/tty").is_ok() || std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Enter PEM pass phrase:").map_err(|e| {
            TlsError::file(
                path,
                format!("cannot read the pass phrase: {}", super::plain_io(&e)),
            )
        });
    }
    Err(TlsError::file(
        path,
        format!(
            "the private key is encrypted and there is no terminal to ask its pass phrase on: \
             put it in a file and name that file in {PASSPHRASE_FILE_VARIABLE}"
        ),
    ))
}

/// Why OpenSSL refused `keyfile` with the certificate of `certfile`.
pub(crate) fn unusable(
    keyfile: &Path,
    certfile: &Path,
    error: &openssl::error::ErrorStack,
) -> TlsError {
    let why = reasons(error);
    if why.contains("key values mismatch") || why.contains("mismatch") {
        TlsError::file(
            keyfile,
            format!("key does not match certificate {}", certfile.display()),
        )
    } else {
        TlsError::file(keyfile, format!("unusable private key: {why}"))
    }
}

/// Gives `builder` the certificate of `certfile` (with the chain after it)
/// and the key of `keyfile`, checking that they match.
pub(crate) fn install_identity(
    builder: &mut openssl::ssl::SslContextBuilder,
    certfile: &Path,
    keyfile: &Path,
    passphrase: &Passphrase,
) -> Result<(), TlsError> {
    let mut certs = certificates(certfile)?.into_iter();
    let leaf = certs.next().expect("at least one certificate");
    builder
        .set_certificate(&leaf)
        .map_err(|e| TlsError::file(certfile, format!("unusable certificate: {}", reasons(&e))))?;
    for cert in certs {
        builder.add_extra_chain_cert(cert).map_err(|e| {
            TlsError::file(
                certfile,
                format!("unusable chain certificate: {}", reasons(&e)),
            )
        })?;
    }
    let key = private_key(keyfile, passphrase)?;
    builder
        .set_private_key(&key)
        .map_err(|e| unusable(keyfile, certfile, &e))?;
    builder.check_private_key().map_err(|_| {
        TlsError::file(
            keyfile,
            format!("key does not match certificate {}", certfile.display()),
        )
    })
}

/// The certificates of a PEM file, in order (the end entity first, then its
/// chain). A file without any is an error.
pub fn certificates(path: &Path) -> Result<Vec<X509>, TlsError> {
    let pem = read(path)?;
    let certs = X509::stack_from_pem(&pem)
        .map_err(|e| TlsError::file(path, format!("not a PEM certificate: {}", reasons(&e))))?;
    if certs.is_empty() {
        return Err(TlsError::file(path, "no certificate in the file"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_keys_are_recognised_in_both_forms() {
        assert!(is_encrypted(
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: DES-EDE3-CBC,0\n"
        ));
        assert!(is_encrypted(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        assert!(!is_encrypted(b"-----BEGIN PRIVATE KEY-----\n"));
    }

    #[test]
    fn a_key_encrypted_with_a_pass_phrase_needs_that_one() {
        let dir = std::env::temp_dir().join(format!("starling-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let key = PKey::from_ec_key(key).unwrap();
        let pem = key
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"secret")
            .unwrap();
        let path = dir.join("k.pem");
        std::fs::write(&path, pem).unwrap();
        assert!(private_key(&path, &Passphrase::Given("secret".into())).is_ok());
        let wrong = private_key(&path, &Passphrase::Given("nope".into())).unwrap_err();
        assert!(wrong.to_string().contains("wrong pass phrase"), "{wrong}");
        assert!(wrong.to_string().contains("k.pem"), "{wrong}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = private_key(Path::new("/nonexistent/k.pem"), &Passphrase::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/nonexistent/k.pem: cannot read: No such file or directory"
        );
    }
}
