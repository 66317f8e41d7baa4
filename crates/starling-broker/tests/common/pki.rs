//! Test certificates, made by the `openssl` command line in a directory of
//! their own: a CA, a server certificate for 127.0.0.1 and localhost, client
//! certificates that are trusted, from another CA, expired and revoked (with
//! the CA's CRL), and, for reload tests, a second server certificate from a
//! second CA. EC P-256 keys, quick to make.
//!
//! `openssl` missing fails the test (run scripts/test, which installs it);
//! nothing is skipped. Shared by the broker's and the binary's tests.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory of certificates and keys; removed on drop unless the test
/// failed.
pub struct Pki {
    dir: PathBuf,
}

/// A certificate and its key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// Makes every certificate the tests use.
    pub fn new(label: &str) -> Pki {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("starling-pki-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the PKI directory");
        let pki = Pki { dir };
        pki.make_ca("ca", "Starling Test CA");
        pki.make_ca("other-ca", "Some Other CA");
        pki.make_ca("new-ca", "Starling Renewed CA");
        pki.issue("ca", "server", "localhost", "server_ext", None);
        pki.issue("new-ca", "new-server", "localhost", "server_ext", None);
        pki.issue("ca", "alice", "alice", "client_ext", None);
        pki.issue("ca", "mallory", "mallory", "client_ext", None);
        pki.issue(
            "ca",
            "old",
            "old",
            "client_ext",
            Some(("20200101000000Z", "20200201000000Z")),
        );
        pki.issue("other-ca", "eve", "eve", "client_ext", None);
        // A subject of several attributes, for use_subject_as_username.
        pki.issue_subject(
            "ca",
            "bob",
            "/C=GB/ST=Nottinghamshire/L=Nottingham/O=Server/OU=Production/CN=test client",
            "client_ext",
        );
        pki.openssl(&[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-revoke",
            "mallory.pem",
        ]);
        pki.openssl(&[
            "ca", "-batch", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem",
        ]);
        pki
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The trusted CA.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The CA of [`Pki::new_server`].
    pub fn new_ca(&self) -> PathBuf {
        self.path("new-ca.pem")
    }

    /// The CRL of the trusted CA, revoking `mallory`.
    pub fn crl(&self) -> PathBuf {
        self.path("crl.pem")
    }

    /// The server's certificate (127.0.0.1, localhost) from the trusted CA.
    pub fn server(&self) -> Issued {
        self.issued("server")
    }

    /// Another server certificate, from the second CA.
    pub fn new_server(&self) -> Issued {
        self.issued("new-server")
    }

    /// Trusted, CN=alice.
    pub fn alice(&self) -> Issued {
        self.issued("alice")
    }

    /// Trusted CA, but revoked in the CRL; CN=mallory.
    pub fn mallory(&self) -> Issued {
        self.issued("mallory")
    }

    /// Trusted CA, expired in 2020; CN=old.
    pub fn expired(&self) -> Issued {
        self.issued("old")
    }

    /// From a CA the broker does not trust; CN=eve.
    pub fn untrusted(&self) -> Issued {
        self.issued("eve")
    }

    /// Trusted, subject C=GB, ST=Nottinghamshire, L=Nottingham, O=Server,
    /// OU=Production, CN=test client.
    pub fn bob(&self) -> Issued {
        self.issued("bob")
    }

    fn issued(&self, name: &str) -> Issued {
        Issued {
            cert: self.path(&format!("{name}.pem")),
            key: self.path(&format!("{name}.key")),
        }
    }

    fn make_ca(&self, name: &str, cn: &str) {
        let dir = self.dir.display().to_string();
        let db = format!("{name}-db");
        fs::create_dir_all(self.path(&db)).expect("CA directory");
        fs::write(self.path(&format!("{db}/index.txt")), "").expect("index");
        fs::write(self.path(&format!("{db}/serial")), "1000\n").expect("serial");
        fs::write(self.path(&format!("{db}/crlnumber")), "1000\n").expect("crlnumber");
        let config = format!(
            "[ ca ]\ndefault_ca = test_ca\n\
             [ test_ca ]\ndir = {dir}\ndatabase = $dir/{db}/index.txt\nnew_certs_dir = $dir/{db}\n\
             serial = $dir/{db}/serial\ncrlnumber = $dir/{db}/crlnumber\n\
             certificate = $dir/{name}.pem\nprivate_key = $dir/{name}.key\n\
             default_md = sha256\ndefault_days = 365\ndefault_crl_days = 30\n\
             policy = policy_any\ncopy_extensions = none\nunique_subject = no\n\
             [ policy_any ]\ncountryName = optional\nstateOrProvinceName = optional\n\
             localityName = optional\norganizationName = optional\n\
             organizationalUnitName = optional\ncommonName = supplied\n\
             [ server_ext ]\nbasicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n\
             subjectAltName = IP:127.0.0.1, DNS:localhost\n\
             [ client_ext ]\nbasicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\n\
             [ req ]\ndistinguished_name = dn\n[ dn ]\n\
             [ ca_ext ]\nbasicConstraints = critical, CA:TRUE\n\
             keyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n"
        );
        fs::write(self.path(&format!("{name}.cnf")), config).expect("CA config");
        self.key(name);
        self.openssl(&[
            "req",
            "-new",
            "-x509",
            "-config",
            &format!("{name}.cnf"),
            "-extensions",
            "ca_ext",
            "-key",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "3650",
            "-subj",
            &format!("/CN={cn}"),
        ]);
    }

    fn key(&self, name: &str) {
        self.openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &format!("{name}.key"),
        ]);
    }

    fn issue(&self, ca: &str, name: &str, cn: &str, ext: &str, dates: Option<(&str, &str)>) {
        self.issue_with(ca, name, &format!("/CN={cn}"), ext, dates);
    }

    fn issue_subject(&self, ca: &str, name: &str, subject: &str, ext: &str) {
        self.issue_with(ca, name, subject, ext, None);
    }

    fn issue_with(
        &self,
        ca: &str,
        name: &str,
        subject: &str,
        ext: &str,
        dates: Option<(&str, &str)>,
    ) {
        self.key(name);
        self.openssl(&[
            "req",
            "-new",
            "-config",
            &format!("{ca}.cnf"),
            "-key",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ]);
        let cnf = format!("{ca}.cnf");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let mut args = vec![
            "ca",
            "-batch",
            "-notext",
            "-config",
            &cnf,
            "-extensions",
            ext,
            "-in",
            &csr,
            "-out",
            &pem,
        ];
        if let Some((start, end)) = dates {
            args.extend(["-startdate", start, "-enddate", end]);
        }
        self.openssl(&args);
    }

    /// Runs `openssl` in the directory; a failure fails the test.
    pub fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `openssl` ({e}): it is needed to make test certificates; \
                     run scripts/test, which installs it"
                )
            });
        assert!(
            output.status.success(),
            "openssl {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test certificates kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
