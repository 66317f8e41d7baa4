//! Mosquitto's `psk_file`: the pre-shared keys of TLS-PSK listeners, one
//! `identity:key` line each, the key in hexadecimal (as `--psk` takes it).
//! Blank lines and lines starting with `#` are skipped. Pure: the TLS layer
//! asks it for an identity's key during the handshake.

use std::collections::HashMap;

use starling_transport::tls::decode_hex;

use super::LineProblem;

/// The identities and their keys.
#[derive(Default)]
pub struct PskFile {
    keys: HashMap<String, Vec<u8>>,
}

impl std::fmt::Debug for PskFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PskFile")
            .field("identities", &self.keys.len())
            .finish()
    }
}

/// The longest key OpenSSL takes (`PSK_MAX_PSK_LEN`).
const MAX_KEY_BYTES: usize = 512;

impl PskFile {
    /// Reads the file's text; a line that cannot be used is left out and
    /// reported.
    pub fn parse(text: &str) -> (PskFile, Vec<LineProblem>) {
        let mut keys = HashMap::new();
        let mut problems = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let problem = |reason: String| LineProblem {
                line: index + 1,
                reason,
            };
            let Some((identity, hex)) = line.split_once(':') else {
                problems.push(problem("not identity:key".into()));
                continue;
            };
            if identity.is_empty() {
                problems.push(problem("an empty identity".into()));
                continue;
            }
            match decode_hex(hex) {
                Some(key) if !key.is_empty() && key.len() <= MAX_KEY_BYTES => {
                    if keys.insert(identity.to_string(), key).is_some() {
                        problems.push(problem(format!(
                            "identity '{identity}' given again; this line's key is used"
                        )));
                    }
                }
                Some(_) => problems.push(problem(format!(
                    "the key of '{identity}' must be 1 to {MAX_KEY_BYTES} bytes"
                ))),
                None => problems.push(problem(format!(
                    "the key of '{identity}' is not hexadecimal"
                ))),
            }
        }
        (PskFile { keys }, problems)
    }

    /// The key of `identity`.
    pub fn key(&self, identity: &str) -> Option<&[u8]> {
        self.keys.get(identity).map(Vec::as_slice)
    }
}

impl starling_transport::tls::PskStore for PskFile {
    fn key(&self, identity: &str) -> Option<Vec<u8>> {
        PskFile::key(self, identity).map(<[u8]>::to_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_and_hex_keys() {
        let (file, problems) = PskFile::parse(
            "# devices\nsensor-1:deadBEEF\n\nsensor-2:abc\nbad line\n:00\nx:zz\nsensor-1:01\n",
        );
        assert_eq!(file.key("sensor-1"), Some(&[0x01][..]));
        assert_eq!(file.key("sensor-2"), Some(&[0x0a, 0xbc][..]));
        assert_eq!(file.key("x"), None);
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [5, 6, 7, 8]);
        assert!(problems[2].reason.contains("not hexadecimal"));
    }
}
