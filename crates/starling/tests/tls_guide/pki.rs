//! The certificates of `man 7 mosquitto-tls`, made once per test process.

use super::*;

/// The guide's files, made once per test process and only read afterwards:
/// `ca`, `other-ca` (trusted by nobody) and `new-ca` (the SIGHUP case) with
/// `.crt` and an encrypted `.key`; from `ca`: `server` (CN localhost, plain
/// key), `server-enc` (CN localhost, `genrsa -des3` key), `server-legacy`
/// (the same, legacy PEM), `alice`, `alice-enc` and `alice-legacy`
/// (encrypted keys), `bob`, `mallory` (revoked in `crl.pem`);
/// from `new-ca`: `new-server` (O=Renewed, CN localhost). Readable by
/// everyone: Debian's mosquitto, started as root, runs as user mosquitto.
pub(crate) struct Guide {
    dir: PathBuf,
}

/// How `genrsa` makes a key.
#[derive(Clone, Copy)]
pub(crate) enum Key {
    /// `genrsa -out X.key 2048`.
    Plain,
    /// `genrsa -des3 -out X.key 2048` with this pass phrase: PKCS#8 (`BEGIN
    /// ENCRYPTED PRIVATE KEY`) on OpenSSL 3.
    Encrypted(&'static str),
    /// The same command as OpenSSL 1.1 ran it (the guide's keys of older
    /// deployments), `-traditional` on OpenSSL 3: legacy PEM with
    /// `Proc-Type: 4,ENCRYPTED`.
    Legacy(&'static str),
}

/// The leaf certificates, all checked to be version 1 without subjectAltName.
pub(crate) const LEAVES: [&str; 9] = [
    "server",
    "server-enc",
    "server-legacy",
    "new-server",
    "alice",
    "alice-enc",
    "alice-legacy",
    "bob",
    "mallory",
];

pub(crate) fn guide() -> &'static Guide {
    static GUIDE: OnceLock<Guide> = OnceLock::new();
    GUIDE.get_or_init(Guide::make)
}

impl Guide {
    pub(crate) fn make() -> Guide {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale(base);
        let dir = base.join(format!("tls-guide-pki-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let guide = Guide { dir };
        guide.ca("ca", "/CN=Guide CA");
        guide.ca("other-ca", "/CN=Other CA");
        guide.ca("new-ca", "/CN=Renewed CA");
        guide.leaf("ca", "server", "/CN=localhost", Key::Plain);
        let encrypted = Key::Encrypted(SERVER_PASS);
        guide.leaf("ca", "server-enc", "/CN=localhost", encrypted);
        let legacy = Key::Legacy(SERVER_PASS);
        guide.leaf("ca", "server-legacy", "/CN=localhost", legacy);
        let renewed = "/O=Renewed/CN=localhost";
        guide.leaf("new-ca", "new-server", renewed, Key::Plain);
        guide.leaf("ca", "alice", "/CN=alice", Key::Plain);
        guide.leaf("ca", "alice-enc", "/CN=alice", Key::Encrypted(ALICE_PASS));
        guide.leaf("ca", "alice-legacy", "/CN=alice", Key::Legacy(ALICE_PASS));
        guide.leaf("ca", "bob", "/CN=bob", Key::Plain);
        guide.leaf("ca", "mallory", "/CN=mallory", Key::Plain);
        guide.revoke_mallory();
        guide.write(
            "acl",
            "user alice\ntopic readwrite alice/#\n\nuser bob\ntopic readwrite #\n",
        );
        guide.write("psk", &format!("alice:{PSK}\n"));
        guide.write("server-pass", &format!("{SERVER_PASS}\n"));
        guide.write("alice-pass", &format!("{ALICE_PASS}\n"));
        guide.write("wrong-pass", "not the pass phrase\n");
        guide.hashed_directory("capath", "ca.crt");
        guide.hashed_directory("other-capath", "other-ca.crt");
        readable_by_all(&guide.dir);
        for leaf in LEAVES {
            let text = guide.openssl(&["x509", "-noout", "-text", "-in", &format!("{leaf}.crt")]);
            assert!(
                text.contains("Version: 1 (0x0)") && !text.contains("Subject Alternative Name"),
                "{leaf}.crt: the guide's commands should make a version 1 certificate without \
                 subjectAltName on this OpenSSL:\n{text}"
            );
        }
        guide
    }

    /// `openssl req -new -x509 -days N -extensions v3_ca -keyout ca.key -out ca.crt`.
    pub(crate) fn ca(&self, name: &str, subject: &str) {
        self.openssl(&[
            "req",
            "-new",
            "-x509",
            "-days",
            "365",
            "-extensions",
            "v3_ca",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-subj",
            subject,
            "-passout",
            &format!("pass:{CA_PASS}"),
        ]);
    }

    /// `openssl genrsa [-des3] -out X.key 2048`, `openssl req -out X.csr -key
    /// X.key -new`, `openssl x509 -req -in X.csr -CA ca.crt -CAkey ca.key
    /// -CAcreateserial -out X.crt -days N`.
    pub(crate) fn leaf(&self, ca: &str, name: &str, subject: &str, kind: Key) {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pass = match kind {
            Key::Plain => {
                self.openssl(&["genrsa", "-out", &key, "2048"]);
                None
            }
            Key::Encrypted(pass) | Key::Legacy(pass) => {
                let passout = format!("pass:{pass}");
                let mut genrsa = vec!["genrsa", "-des3", "-out", &key, "-passout", &passout];
                if matches!(kind, Key::Legacy(_)) {
                    genrsa.push("-traditional");
                }
                genrsa.push("2048");
                self.openssl(&genrsa);
                Some(pass)
            }
        };
        let passin = pass.map(|pass| format!("pass:{pass}"));
        let mut req = vec!["req", "-out", &csr, "-key", &key, "-new", "-subj", subject];
        if let Some(passin) = &passin {
            req.extend(["-passin", passin]);
        }
        self.openssl(&req);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "365",
            "-passin",
            &format!("pass:{CA_PASS}"),
        ]);
    }

    /// The guide has no CRL: `openssl ca` keeps the revocation list, with a
    /// configuration for that alone.
    pub(crate) fn revoke_mallory(&self) {
        let dir = self.dir.display();
        self.write(
            "ca.cnf",
            &format!(
                "[ ca ]\ndefault_ca = guide_ca\n[ guide_ca ]\ndatabase = {dir}/index.txt\n\
                 crlnumber = {dir}/crlnumber\ncertificate = {dir}/ca.crt\n\
                 private_key = {dir}/ca.key\ndefault_md = sha256\ndefault_crl_days = 30\n"
            ),
        );
        self.write("index.txt", "");
        self.write("crlnumber", "1000\n");
        let passin = format!("pass:{CA_PASS}");
        self.openssl(&[
            "ca",
            "-config",
            "ca.cnf",
            "-revoke",
            "mallory.crt",
            "-passin",
            &passin,
        ]);
        self.openssl(&[
            "ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem", "-passin", &passin,
        ]);
    }

    /// A `capath` directory: a copy of the certificate `crt` and the hash
    /// links of `openssl rehash`.
    pub(crate) fn hashed_directory(&self, name: &str, crt: &str) {
        fs::create_dir_all(self.path(name)).unwrap();
        fs::copy(self.path(crt), self.path(&format!("{name}/{crt}"))).unwrap();
        self.openssl(&["rehash", name]);
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The path of `name` as an argument.
    pub(crate) fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    pub(crate) fn write(&self, name: &str, text: &str) {
        fs::write(self.path(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }

    /// Runs `openssl` in the directory: its stdout; a failure fails the test.
    pub(crate) fn openssl(&self, args: &[&str]) -> String {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `openssl` ({e}): it makes the test certificates; run \
                     scripts/test, which installs it"
                )
            });
        assert!(
            output.status.success(),
            "openssl {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `cafile`, `certfile` and `keyfile` lines for the server certificate
    /// `name`, then `extra`.
    pub(crate) fn listener(&self, name: &str, extra: &str) -> String {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n{extra}",
            self.arg("ca.crt"),
            self.arg(&format!("{name}.crt")),
            self.arg(&format!("{name}.key"))
        )
    }
}

/// Removes the certificate directories of earlier runs whose process is gone.
pub(crate) fn remove_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("tls-guide-pki-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// The directory (and those in it) searchable and its files readable by
/// every user.
pub(crate) fn readable_by_all(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            readable_by_all(&path);
        } else if path.is_file() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

#[test]
fn the_guides_commands_make_version_1_certificates_and_encrypted_keys() {
    let guide = guide();
    let ca = guide.openssl(&["x509", "-noout", "-text", "-in", "ca.crt"]);
    assert!(
        ca.contains("Version: 3 (0x2)") && ca.contains("CA:TRUE"),
        "{ca}"
    );
    for name in ["server-enc", "alice-enc"] {
        let key = fs::read_to_string(guide.path(&format!("{name}.key"))).unwrap();
        assert!(
            key.contains("BEGIN ENCRYPTED PRIVATE KEY"),
            "genrsa -des3: {key}"
        );
    }
    for name in ["server-legacy", "alice-legacy"] {
        let key = fs::read_to_string(guide.path(&format!("{name}.key"))).unwrap();
        assert!(
            key.contains("Proc-Type: 4,ENCRYPTED"),
            "genrsa -des3 -traditional: {key}"
        );
    }
    let key = fs::read_to_string(guide.path("server.key")).unwrap();
    assert!(!key.contains("ENCRYPTED"), "genrsa: {key}");
    let crl = guide.openssl(&["crl", "-noout", "-text", "-in", "crl.pem"]);
    let serial = guide.openssl(&["x509", "-noout", "-serial", "-in", "mallory.crt"]);
    let serial = serial.trim().trim_start_matches("serial=");
    assert!(crl.contains(serial), "mallory {serial} in the CRL:\n{crl}");
}
