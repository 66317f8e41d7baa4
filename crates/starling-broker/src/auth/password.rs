//! Mosquitto's password file and the hashes in it. Pure: text in, decisions
//! out; reading the file is [`super`]'s business.
//!
//! One `username:hash` per line. `#` at the start of a line makes a comment and
//! a line without `:` is skipped, as Mosquitto does. The hashes are those every
//! Mosquitto version writes:
//!
//! | form | written by | computed as |
//! |---|---|---|
//! | `$6$salt$hash` | `mosquitto_passwd -H sha512` (1.x default) | SHA-512(password ‖ salt) |
//! | `$7$iterations$salt$hash` | 2.0 (12-byte salt, 101 iterations), 2.1 (64-byte salt, 1000) | PBKDF2-HMAC-SHA512, 64 bytes |
//! | `$argon2id$v=19$m=..,t=..,p=..$salt$hash` | 2.1 `-H argon2id` (PHC string) | Argon2id |
//!
//! Salt and hash of `$6$`/`$7$` are standard base64 with padding; those of the
//! PHC string are base64 without padding. Every comparison of a computed hash
//! with a stored one is constant-time ([`subtle`]), and a user that does not
//! exist costs as much as one with a wrong password ([`PasswordFile::check`]).

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use super::LineProblem;

/// Length of a SHA-512 digest, and of every `$6$` and `$7$` hash.
const HASH_LEN: usize = 64;

/// Iterations `mosquitto_passwd` 2.0 uses for `$7$`.
pub const MOSQUITTO_2_0_ITERATIONS: u32 = 101;
/// Salt length `mosquitto_passwd` 2.0 uses for `$6$` and `$7$`.
pub const MOSQUITTO_2_0_SALT_LEN: usize = 12;
/// Salt length Mosquitto 2.1 uses for every hash.
pub const MOSQUITTO_2_1_SALT_LEN: usize = 64;

/// Mosquitto 2.1's Argon2id parameters: 46 MiB, one pass, one lane, a 64-byte hash.
pub const ARGON2_MEMORY_KIB: u32 = 47_104;
/// Argon2id passes (`t`).
pub const ARGON2_TIME: u32 = 1;
/// Argon2id lanes (`p`).
pub const ARGON2_LANES: u32 = 1;

/// Base64 as OpenSSL writes it for Mosquitto (padded), read whether padded or not.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// Base64 of PHC strings (libargon2 writes it unpadded).
const B64_PHC: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$6$`: one SHA-512 of the password followed by the salt.
    Sha512 {
        /// The salt.
        salt: Vec<u8>,
        /// The digest.
        hash: [u8; HASH_LEN],
    },
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 {
        /// PBKDF2 iterations.
        iterations: NonZeroU32,
        /// The salt.
        salt: Vec<u8>,
        /// The derived key.
        hash: [u8; HASH_LEN],
    },
    /// `$argon2id$`: a PHC string.
    Argon2id {
        /// Argon2 version, 0x13 (19) or 0x10 (16).
        version: u32,
        /// Memory in KiB (`m`).
        memory: u32,
        /// Passes (`t`).
        time: u32,
        /// Lanes (`p`).
        lanes: u32,
        /// The salt.
        salt: Vec<u8>,
        /// The hash, whose length is the output length.
        hash: Vec<u8>,
    },
}

/// Why a stored hash cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Not `$6$`, `$7$` nor `$argon2id$`: Mosquitto 2 does not read plain-text
    /// passwords either (`mosquitto_passwd -U` hashes them).
    #[error("not a hash Mosquitto writes ($6$, $7$ or $argon2id$); plain-text passwords are not accepted (hash them with `starling passwd -U`)")]
    UnknownType,
    /// A field is missing or there are too many.
    #[error("malformed {0} hash")]
    Malformed(&'static str),
    /// The iteration count is not a whole number of at least 1.
    #[error("invalid iteration count '{0}'")]
    Iterations(String),
    /// The salt is not base64, or empty.
    #[error("invalid salt")]
    Salt,
    /// The hash is not base64 of the right length.
    #[error("invalid hash value")]
    Hash,
    /// Argon2 parameters out of range.
    #[error("invalid argon2id parameters: {0}")]
    Argon2(String),
}

impl PasswordHash {
    /// Reads a hash as Mosquitto writes it after `username:`.
    pub fn parse(text: &str) -> Result<PasswordHash, HashError> {
        if let Some(rest) = text.strip_prefix("$6$") {
            let (salt, hash) = match rest.split('$').collect::<Vec<_>>()[..] {
                [salt, hash] => (salt, hash),
                _ => return Err(HashError::Malformed("$6$")),
            };
            return Ok(PasswordHash::Sha512 {
                salt: decode_salt(&B64, salt)?,
                hash: decode_hash(hash)?,
            });
        }
        if let Some(rest) = text.strip_prefix("$7$") {
            let (iterations, salt, hash) = match rest.split('$').collect::<Vec<_>>()[..] {
                [iterations, salt, hash] => (iterations, salt, hash),
                _ => return Err(HashError::Malformed("$7$")),
            };
            let iterations = iterations
                .parse::<NonZeroU32>()
                .map_err(|_| HashError::Iterations(iterations.to_string()))?;
            return Ok(PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt: decode_salt(&B64, salt)?,
                hash: decode_hash(hash)?,
            });
        }
        if let Some(rest) = text.strip_prefix("$argon2id$") {
            return parse_argon2id(rest);
        }
        Err(HashError::UnknownType)
    }

    /// A `$6$` hash of `password` with `salt` (what `mosquitto_passwd -H sha512` writes).
    pub fn sha512(password: &[u8], salt: &[u8]) -> PasswordHash {
        PasswordHash::Sha512 {
            salt: salt.to_vec(),
            hash: sha512_salted(password, salt),
        }
    }

    /// A `$7$` hash of `password` (what `mosquitto_passwd` writes by default).
    pub fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> PasswordHash {
        PasswordHash::Pbkdf2Sha512 {
            iterations,
            salt: salt.to_vec(),
            hash: pbkdf2_sha512(password, salt, iterations),
        }
    }

    /// An `$argon2id$` hash of `password` with Mosquitto 2.1's parameters.
    ///
    /// # Panics
    /// If `salt` is shorter than 8 bytes, which Argon2 does not allow.
    pub fn argon2id(password: &[u8], salt: &[u8]) -> PasswordHash {
        let mut hash = vec![0; HASH_LEN];
        argon2_hash(
            password,
            salt,
            0x13,
            ARGON2_MEMORY_KIB,
            ARGON2_TIME,
            ARGON2_LANES,
            &mut hash,
        )
        .expect("Mosquitto's Argon2 parameters are valid");
        PasswordHash::Argon2id {
            version: 0x13,
            memory: ARGON2_MEMORY_KIB,
            time: ARGON2_TIME,
            lanes: ARGON2_LANES,
            salt: salt.to_vec(),
            hash,
        }
    }

    /// Whether `password` is the one hashed, compared in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Sha512 { salt, hash } => {
                bool::from(sha512_salted(password, salt).ct_eq(hash))
            }
            PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => bool::from(pbkdf2_sha512(password, salt, *iterations).ct_eq(hash)),
            PasswordHash::Argon2id {
                version,
                memory,
                time,
                lanes,
                salt,
                hash,
            } => {
                let mut computed = vec![0; hash.len()];
                argon2_hash(
                    password,
                    salt,
                    *version,
                    *memory,
                    *time,
                    *lanes,
                    &mut computed,
                )
                .is_ok()
                    && bool::from(computed.ct_eq(hash))
            }
        }
    }
}

/// Never shows the hash itself: it goes to logs.
impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Sha512 { .. } => f.write_str("PasswordHash($6$)"),
            PasswordHash::Pbkdf2Sha512 { iterations, .. } => {
                write!(f, "PasswordHash($7$, {iterations} iterations)")
            }
            PasswordHash::Argon2id { .. } => f.write_str("PasswordHash($argon2id$)"),
        }
    }
}

/// The hash as it goes in a password file, after `username:`.
impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Sha512 { salt, hash } => {
                write!(f, "$6${}${}", B64.encode(salt), B64.encode(hash))
            }
            PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => write!(
                f,
                "$7${iterations}${}${}",
                B64.encode(salt),
                B64.encode(hash)
            ),
            PasswordHash::Argon2id {
                version,
                memory,
                time,
                lanes,
                salt,
                hash,
            } => write!(
                f,
                "$argon2id$v={version}$m={memory},t={time},p={lanes}${}${}",
                B64_PHC.encode(salt),
                B64_PHC.encode(hash)
            ),
        }
    }
}

fn sha512_salted(password: &[u8], salt: &[u8]) -> [u8; HASH_LEN] {
    let mut digest = Sha512::new();
    digest.update(password);
    digest.update(salt);
    digest.finalize().into()
}

fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> [u8; HASH_LEN] {
    let mut out = [0; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations.get(), &mut out);
    out
}

fn argon2_hash(
    password: &[u8],
    salt: &[u8],
    version: u32,
    memory: u32,
    time: u32,
    lanes: u32,
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let version = argon2::Version::try_from(version)?;
    let params = argon2::Params::new(memory, time, lanes, Some(out.len()))?;
    argon2::Argon2::new(argon2::Algorithm::Argon2id, version, params)
        .hash_password_into(password, salt, out)
}

fn decode_salt(engine: &GeneralPurpose, text: &str) -> Result<Vec<u8>, HashError> {
    match engine.decode(text) {
        Ok(salt) if !salt.is_empty() => Ok(salt),
        _ => Err(HashError::Salt),
    }
}

fn decode_hash(text: &str) -> Result<[u8; HASH_LEN], HashError> {
    B64.decode(text)
        .ok()
        .and_then(|hash| <[u8; HASH_LEN]>::try_from(hash).ok())
        .ok_or(HashError::Hash)
}

/// The rest of `$argon2id$[v=19$]m=..,t=..,p=..$salt$hash`. Parsed here rather
/// than by `password-hash`, which refuses salts longer than 48 bytes, and
/// Mosquitto 2.1 writes 64.
fn parse_argon2id(rest: &str) -> Result<PasswordHash, HashError> {
    let fields: Vec<&str> = rest.split('$').collect();
    let (version, params, salt, hash) = match fields[..] {
        [version, params, salt, hash] => {
            let version = version
                .strip_prefix("v=")
                .and_then(|v| v.parse().ok())
                .ok_or(HashError::Malformed("$argon2id$"))?;
            (version, params, salt, hash)
        }
        // libargon2 leaves the version out for 0x10.
        [params, salt, hash] => (0x10, params, salt, hash),
        _ => return Err(HashError::Malformed("$argon2id$")),
    };
    let (mut memory, mut time, mut lanes) = (None, None, None);
    for param in params.split(',') {
        let (name, value) = param
            .split_once('=')
            .ok_or(HashError::Malformed("$argon2id$"))?;
        let value: u32 = value
            .parse()
            .map_err(|_| HashError::Argon2(format!("'{param}'")))?;
        let slot = match name {
            "m" => &mut memory,
            "t" => &mut time,
            "p" => &mut lanes,
            _ => return Err(HashError::Argon2(format!("unknown parameter '{name}'"))),
        };
        if slot.replace(value).is_some() {
            return Err(HashError::Argon2(format!("'{name}' given twice")));
        }
    }
    let (Some(memory), Some(time), Some(lanes)) = (memory, time, lanes) else {
        return Err(HashError::Argon2("m, t and p are required".into()));
    };
    let salt = decode_salt(&B64_PHC, salt)?;
    let hash = B64_PHC.decode(hash).map_err(|_| HashError::Hash)?;
    argon2::Version::try_from(version).map_err(|e| HashError::Argon2(e.to_string()))?;
    argon2::Params::new(memory, time, lanes, Some(hash.len()))
        .map_err(|e| HashError::Argon2(e.to_string()))?;
    if salt.len() < argon2::MIN_SALT_LEN {
        return Err(HashError::Salt);
    }
    Ok(PasswordHash::Argon2id {
        version,
        memory,
        time,
        lanes,
        salt,
        hash,
    })
}

/// One line of a password file as Mosquitto splits it: the user name before the
/// first `:` and the password field up to the next `:`, both trimmed of blanks.
/// `None` for a comment or a line without `:`.
pub fn split_line(line: &str) -> Option<(&str, &str)> {
    if line.starts_with('#') {
        return None;
    }
    let (user, rest) = line.split_once(':')?;
    let field = rest.split(':').next().unwrap_or("");
    Some((trim_blanks(user), trim_blanks(field)))
}

fn trim_blanks(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// Users and their password hashes.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    users: HashMap<String, PasswordHash>,
}

impl PasswordFile {
    /// Reads a password file's text. Lines Mosquitto would drop (no hash, a
    /// plain-text or unreadable hash, a repeated user) are dropped too and
    /// reported: those users cannot log in.
    pub fn parse(text: &str) -> (PasswordFile, Vec<LineProblem>) {
        let mut users = HashMap::new();
        let mut problems = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let Some((user, field)) = split_line(line) else {
                continue;
            };
            let line = index + 1;
            let mut problem = |reason: String| problems.push(LineProblem { line, reason });
            if user.is_empty() {
                problem("no user name before ':'; line ignored".into());
                continue;
            }
            if field.is_empty() {
                problem(format!("user '{user}' has no password hash; user ignored"));
                continue;
            }
            match PasswordHash::parse(field) {
                Err(e) => problem(format!("user '{user}': {e}; user ignored")),
                Ok(_) if users.contains_key(user) => {
                    problem(format!(
                        "user '{user}' given again; the first entry is used"
                    ));
                }
                Ok(hash) => {
                    users.insert(user.to_string(), hash);
                }
            }
        }
        (PasswordFile { users }, problems)
    }

    /// Number of users that can log in.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user can log in.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `username` may log in with `password`. An unknown user, or a
    /// known one without a password, is refused only after a hash computation
    /// as long as a `mosquitto_passwd` default one, so that timing does not tell
    /// which part was wrong.
    pub fn check(&self, username: &str, password: Option<&[u8]>) -> bool {
        match (self.users.get(username), password) {
            // An empty password is refused whatever the file holds, as in
            // Mosquitto (a hash of the empty string lets nobody in).
            (Some(hash), Some(password)) if !password.is_empty() => hash.verify(password),
            (_, password) => {
                let _ = decoy().verify(password.unwrap_or_default());
                false
            }
        }
    }
}

/// A `mosquitto_passwd` 2.0 default hash that no password matches in practice.
fn decoy() -> &'static PasswordHash {
    static DECOY: std::sync::OnceLock<PasswordHash> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| PasswordHash::Pbkdf2Sha512 {
        iterations: NonZeroU32::new(MOSQUITTO_2_0_ITERATIONS).expect("not zero"),
        salt: vec![0x5a; MOSQUITTO_2_0_SALT_LEN],
        hash: [0; HASH_LEN],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors written by Debian's mosquitto_passwd 2.0.11 (`-b`, default and
    // `-H sha512`, `-I 5`); the integration tests also run the real tool.
    const ALICE_PBKDF2: &str = "$7$101$AzAjPrGli8HaQveW$o10+M607SS0U5zMkp6yxLjtcrxY4LWUMRWNPmjvzExPa+5RrLBiRoEQIUJxeiR5O3nF9LNL/EWMkT7tm0N6Azw==";
    const BOB_SHA512: &str = "$6$RcBkrgsDoFAdHFiw$J1eH5eNA3/Zi7J+tAUffg1ZRgrNK/7RI63Fb0dkeNiDnnn48Pv1mpT+NHFPGzpzASLKbq7YNM8w8+/JHwmPcNw==";
    const CAROL_PBKDF2_5: &str = "$7$5$odCFGVFAFj9RAYXw$r2X3RLMZSsmMb2DFNwCdNmcvBdfx3XUps2IYQXnDquoEUHpKAicJLdbonz9YF8M1p4bT7gFnNa/6xyxoqsRx8A==";

    #[test]
    fn mosquitto_2_0_pbkdf2_hash_verifies() {
        // mosquitto_passwd(1): "-H sha512-pbkdf2 ... Defaults to sha512-pbkdf2".
        let hash = PasswordHash::parse(ALICE_PBKDF2).unwrap();
        assert!(
            matches!(&hash, PasswordHash::Pbkdf2Sha512 { iterations, salt, .. }
            if iterations.get() == 101 && salt.len() == 12)
        );
        assert!(hash.verify(b"secret"));
        assert!(!hash.verify(b"Secret"));
        assert!(!hash.verify(b""));
        assert_eq!(hash.to_string(), ALICE_PBKDF2, "written back byte for byte");
        let carol = PasswordHash::parse(CAROL_PBKDF2_5).unwrap();
        assert!(carol.verify(b"x"));
        assert!(!carol.verify(b"y"));
    }

    #[test]
    fn mosquitto_sha512_hash_verifies() {
        // mosquitto_passwd(1): "-H sha512 ... for use with Mosquitto 1.6 and earlier".
        let hash = PasswordHash::parse(BOB_SHA512).unwrap();
        assert!(matches!(hash, PasswordHash::Sha512 { .. }));
        assert!(hash.verify(b"hunter2"));
        assert!(!hash.verify(b"hunter3"));
        assert_eq!(hash.to_string(), BOB_SHA512);
    }

    #[test]
    fn mosquitto_2_1_pbkdf2_with_a_64_byte_salt_and_1000_iterations() {
        // Mosquitto 2.1 writes $7$ with a 64-byte salt and 1000 iterations.
        let salt = [7u8; MOSQUITTO_2_1_SALT_LEN];
        let made = PasswordHash::pbkdf2_sha512(b"pw", &salt, NonZeroU32::new(1000).unwrap());
        let text = made.to_string();
        assert!(text.starts_with("$7$1000$"), "{text}");
        let parsed = PasswordHash::parse(&text).unwrap();
        assert_eq!(parsed, made);
        assert!(parsed.verify(b"pw"));
        assert!(!parsed.verify(b"pw "));
    }

    #[test]
    fn libargon2_phc_strings_verify() {
        // Written by Debian's `argon2` 0~20171227 (libargon2, the library
        // Mosquitto 2.1 hashes with), with Mosquitto 2.1's parameters and a
        // 64-byte salt: `echo -n "correct horse" | argon2 "<salt>" -id -t 1
        // -k 47104 -p 1 -l 64 -e`; and an Argon2 1.0 (v=16) hash.
        const MOSQUITTO_2_1: &str = "$argon2id$v=19$m=47104,t=1,p=1$c2l4dHktZm91ci1ieXRlIHNhbHQsIGFzIE1vc3F1aXR0byAyLjEgZHJhd3MgZm9yIGFyZ29uMmlkIGhhc2hlcw$SYbHjIIS2yZI2PKKo1wQAHauo+qAvp+c7Q1ut9SjnI5XUJ8tLofrgM0ZseaHTn7Ot85C3p4e+90D9NvQlHQXvg";
        const VERSION_16: &str = "$argon2id$v=16$m=64,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8M41UtvClzXWZa+MjvWuOHyEonix8H59jcwNU0OYzrI";
        let hash = PasswordHash::parse(MOSQUITTO_2_1).unwrap();
        assert!(matches!(&hash, PasswordHash::Argon2id { salt, hash, .. }
            if salt.len() == 64 && hash.len() == 64));
        assert!(hash.verify(b"correct horse"));
        assert!(!hash.verify(b"correct horse "));
        assert_eq!(
            hash.to_string(),
            MOSQUITTO_2_1,
            "written back byte for byte"
        );
        let old = PasswordHash::parse(VERSION_16).unwrap();
        assert!(old.verify(b"pw"));
        assert!(!old.verify(b"pW"));
        assert_eq!(old.to_string(), VERSION_16);
    }

    #[test]
    fn argon2id_phc_strings_verify() {
        // The RFC 9106 / PHC format libargon2 writes for Mosquitto 2.1's
        // `-H argon2id`: $argon2id$v=19$m=47104,t=1,p=1$<salt>$<hash>, unpadded.
        let salt = [9u8; MOSQUITTO_2_1_SALT_LEN];
        let made = PasswordHash::argon2id(b"correct horse", &salt);
        let text = made.to_string();
        assert!(
            text.starts_with("$argon2id$v=19$m=47104,t=1,p=1$"),
            "{text}"
        );
        assert!(!text.ends_with('='), "unpadded: {text}");
        let parsed = PasswordHash::parse(&text).unwrap();
        assert!(parsed.verify(b"correct horse"));
        assert!(!parsed.verify(b"correct horsE"));
        // A reference PHC string from the argon2 crate's own test suite shape:
        // small parameters, 16-byte salt, 32-byte hash, version omitted (0x10).
        let small = PasswordHash::Argon2id {
            version: 0x10,
            memory: 64,
            time: 2,
            lanes: 1,
            salt: b"somesaltsomesalt".to_vec(),
            hash: vec![0; 32],
        };
        let mut computed = vec![0; 32];
        argon2_hash(b"pw", b"somesaltsomesalt", 0x10, 64, 2, 1, &mut computed).unwrap();
        let text = format!(
            "$argon2id$m=64,t=2,p=1${}${}",
            B64_PHC.encode(b"somesaltsomesalt"),
            B64_PHC.encode(&computed)
        );
        let parsed = PasswordHash::parse(&text).unwrap();
        assert!(matches!(
            parsed,
            PasswordHash::Argon2id { version: 0x10, .. }
        ));
        assert!(parsed.verify(b"pw"));
        assert_ne!(parsed, small);
    }

    #[test]
    fn malformed_hashes_are_refused_with_a_reason() {
        let cases: &[(&str, HashError)] = &[
            ("secret", HashError::UnknownType),
            ("$5$abc$def", HashError::UnknownType),
            ("$6$onlysalt", HashError::Malformed("$6$")),
            ("$7$101$salt", HashError::Malformed("$7$")),
            (
                "$7$0$AzAjPrGli8HaQveW$AA==",
                HashError::Iterations("0".into()),
            ),
            (
                "$7$x$AzAjPrGli8HaQveW$AA==",
                HashError::Iterations("x".into()),
            ),
            ("$6$!!!$AA==", HashError::Salt),
            ("$6$$AA==", HashError::Salt),
            ("$6$AzAjPrGli8HaQveW$AAAA", HashError::Hash),
            (
                "$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ$AAAA",
                HashError::Argon2("m, t and p are required".into()),
            ),
            (
                "$argon2id$v=19$m=64,t=1,p=1,x=2$c2FsdHNhbHQ$AAAA",
                HashError::Argon2("unknown parameter 'x'".into()),
            ),
            (
                "$argon2id$v=19$c2FsdHNhbHQ",
                HashError::Malformed("$argon2id$"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(PasswordHash::parse(text).as_ref(), Err(expected), "{text}");
        }
    }

    #[test]
    fn password_file_lines_are_split_as_mosquitto_does() {
        assert_eq!(split_line("alice:$7$x"), Some(("alice", "$7$x")));
        assert_eq!(split_line("  alice \t: $7$x \r"), Some(("alice", "$7$x")));
        assert_eq!(split_line("alice:$7$x:extra"), Some(("alice", "$7$x")));
        assert_eq!(split_line("# alice:$7$x"), None);
        assert_eq!(split_line("no colon here"), None);
        assert_eq!(split_line("alice:"), Some(("alice", "")));
    }

    #[test]
    fn password_file_keeps_good_users_and_reports_the_others() {
        let text = format!(
            "# users\nalice:{ALICE_PBKDF2}\r\nbob:{BOB_SHA512}\nplain:secret\nempty:\n\nalice:{BOB_SHA512}\n:{BOB_SHA512}\nskipped line\n"
        );
        let (file, problems) = PasswordFile::parse(&text);
        assert_eq!(file.len(), 2);
        assert!(file.check("alice", Some(b"secret")));
        assert!(file.check("bob", Some(b"hunter2")));
        assert!(
            !file.check("alice", Some(b"hunter2")),
            "first alice entry wins"
        );
        assert!(
            !file.check("plain", Some(b"secret")),
            "plain text is not accepted"
        );
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [4, 5, 7, 8], "{problems:#?}");
        assert!(problems[0].reason.starts_with("user 'plain': not a hash"));
    }

    #[test]
    fn check_refuses_unknown_users_and_missing_passwords() {
        let (file, _) = PasswordFile::parse(&format!("alice:{ALICE_PBKDF2}\n"));
        assert!(file.check("alice", Some(b"secret")));
        assert!(
            !file.check("alice", None),
            "a known user must give a password"
        );
        assert!(!file.check("mallory", Some(b"secret")));
        assert!(!file.check("mallory", None));
        // Mosquitto refuses an empty password whatever the file holds, even
        // a hash of the empty string (mosquitto_passwd -b pw user "").
        let empty = PasswordHash::sha512(b"", b"0123456789abcdef");
        assert!(empty.verify(b""), "the hash itself matches");
        let file = PasswordFile {
            users: [("blank".to_string(), empty)].into_iter().collect(),
        };
        assert!(!file.check("blank", Some(b"")));
        assert!(
            !file.check("Alice", Some(b"secret")),
            "user names are exact"
        );
    }

    #[test]
    fn debug_output_hides_the_hash() {
        let hash = PasswordHash::parse(ALICE_PBKDF2).unwrap();
        let text = format!("{hash:?}");
        assert_eq!(text, "PasswordHash($7$, 101 iterations)");
    }
}
