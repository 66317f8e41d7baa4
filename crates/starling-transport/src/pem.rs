//! TLS material from PEM files: certificate chains, private keys, CA stores
//! (a file, a directory, or both, as Mosquitto's `cafile` and `capath`) and
//! certificate revocation lists. Every error names the file.

use std::fs;
use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// A file of TLS material that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct PemError {
    /// The file (or directory).
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl PemError {
    fn new(path: &Path, reason: impl Into<String>) -> PemError {
        PemError {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    fs::read(path).map_err(|e| PemError::new(path, format!("cannot read: {e}")))
}

fn parse_error(path: &Path, e: pem::Error) -> PemError {
    PemError::new(path, format!("not valid PEM: {e}"))
}

/// The certificates of a PEM file, in order (a chain: the end entity first).
/// A file without any is an error.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = certificates_in(path, &read(path)?)?;
    if certs.is_empty() {
        return Err(PemError::new(path, "no certificate in the file"));
    }
    Ok(certs)
}

fn certificates_in(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_error(path, e))
}

/// The first private key of a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
/// Encrypted keys are not supported (there is no passphrase prompt).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let bytes = read(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let encrypted = bytes.windows(b"ENCRYPTED".len()).any(|w| w == b"ENCRYPTED");
            Err(PemError::new(
                path,
                if encrypted {
                    "the private key is encrypted, which is not supported: decrypt it (openssl pkey -in KEY -out KEY.plain)"
                } else {
                    "no private key in the file (PKCS#8, RSA or EC, PEM-encoded)"
                },
            ))
        }
        Err(e) => Err(parse_error(path, e)),
    }
}

/// The trusted CAs of `cafile` (a PEM file of certificates) and of every file
/// in the directory `capath` (as `openssl rehash` lays it out; files without a
/// certificate, CRLs for one, are skipped). Empty is an error.
pub fn root_store(cafile: Option<&Path>, capath: Option<&Path>) -> Result<RootCertStore, PemError> {
    let mut store = RootCertStore::empty();
    let mut add = |path: &Path, certs: Vec<CertificateDer<'static>>| -> Result<(), PemError> {
        for cert in certs {
            store
                .add(cert)
                .map_err(|e| PemError::new(path, format!("unusable CA certificate: {e}")))?;
        }
        Ok(())
    };
    if let Some(cafile) = cafile {
        add(cafile, certificates(cafile)?)?;
    }
    if let Some(capath) = capath {
        let entries = fs::read_dir(capath)
            .map_err(|e| PemError::new(capath, format!("cannot read the directory: {e}")))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        for file in files {
            let certs = certificates_in(&file, &read(&file)?)?;
            add(&file, certs)?;
        }
    }
    if store.is_empty() {
        let path = cafile.or(capath).unwrap_or(Path::new(""));
        return Err(PemError::new(path, "no CA certificate found"));
    }
    Ok(store)
}

/// The certificate revocation lists of a PEM file; at least one.
pub fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, PemError> {
    let bytes = read(path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_error(path, e))?;
    if crls.is_empty() {
        return Err(PemError::new(
            path,
            "no certificate revocation list (X509 CRL) in the file",
        ));
    }
    Ok(crls)
}
