//! `MqttString`: a UTF-8 Encoded String of the MQTT wire format, held as a zero-copy
//! slice of the received buffer.
//!
//! Validation happens once, when the string is decoded or built, so every later
//! `as_str` is free. The rules are those of MQTT 5.0 §1.5.4 (and 3.1.1 §1.5.3):
//! well-formed UTF-8 without surrogates or overlong forms [MQTT-1.5.4-1], no U+0000
//! [MQTT-1.5.4-2], and at most 65,535 bytes.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// Why a byte sequence is not an MQTT UTF-8 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf8Error {
    /// Ill-formed UTF-8, a surrogate or an overlong form [MQTT-1.5.4-1].
    Malformed,
    /// The string contains U+0000 [MQTT-1.5.4-2].
    NullCharacter,
    /// Longer than the 65,535 bytes a two-byte length can describe.
    TooLong,
}

/// A validated MQTT UTF-8 string sharing the buffer it was decoded from.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MqttString(Bytes);

impl MqttString {
    /// The empty string.
    pub const fn new() -> Self {
        MqttString(Bytes::new())
    }

    /// Validates `bytes` without copying them.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, Utf8Error> {
        validate(&bytes)?;
        Ok(MqttString(bytes))
    }

    /// A string known at compile time.
    ///
    /// # Panics
    /// If `s` breaks the MQTT string rules; only for literals.
    pub fn from_static(s: &'static str) -> Self {
        Self::from_bytes(Bytes::from_static(s.as_bytes())).expect("invalid static MQTT string")
    }

    /// The string as `&str`.
    #[allow(unsafe_code)]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor runs `validate`, which checks the bytes are
        // UTF-8, and `Bytes` is immutable. Topic matching calls this per message
        // per subscription, so re-validating here would sit on the hot path.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes, shared with the buffer they came from.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Gives back the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Checks the MQTT string rules on `bytes`.
pub fn validate(bytes: &[u8]) -> Result<(), Utf8Error> {
    if bytes.len() > usize::from(u16::MAX) {
        return Err(Utf8Error::TooLong);
    }
    // Topics and client identifiers are nearly always ASCII: one pass that
    // vectorises checks that and the null character together (this runs for
    // every PUBLISH's topic).
    if bytes
        .iter()
        .fold(true, |ascii, &b| ascii & (b.wrapping_sub(1) < 0x7f))
    {
        return Ok(());
    }
    // std's validator rejects surrogates (ED A0..BF) and overlong forms.
    std::str::from_utf8(bytes).map_err(|_| Utf8Error::Malformed)?;
    if bytes.contains(&0) {
        return Err(Utf8Error::NullCharacter);
    }
    Ok(())
}

impl TryFrom<String> for MqttString {
    type Error = Utf8Error;
    fn try_from(s: String) -> Result<Self, Utf8Error> {
        Self::from_bytes(Bytes::from(s))
    }
}

impl TryFrom<&str> for MqttString {
    type Error = Utf8Error;
    fn try_from(s: &str) -> Result<Self, Utf8Error> {
        Self::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl Deref for MqttString {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for MqttString {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for MqttString {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for MqttString {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Debug for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_multilingual_text() {
        assert_eq!(
            MqttString::try_from("capteur/température/日本").unwrap(),
            "capteur/température/日本"
        );
    }

    #[test]
    fn rejects_null_character() {
        // [MQTT-1.5.4-2]
        assert_eq!(validate(b"a\0b"), Err(Utf8Error::NullCharacter));
    }

    #[test]
    fn rejects_surrogates_and_overlong_forms() {
        // [MQTT-1.5.4-1]: U+D800 encoded as ED A0 80; '/' as overlong C0 AF; a lone continuation byte.
        assert_eq!(validate(&[0xED, 0xA0, 0x80]), Err(Utf8Error::Malformed));
        assert_eq!(validate(&[0xC0, 0xAF]), Err(Utf8Error::Malformed));
        assert_eq!(validate(&[0x80]), Err(Utf8Error::Malformed));
        assert_eq!(validate(&[0xE0, 0x80, 0x80]), Err(Utf8Error::Malformed));
    }

    #[test]
    fn rejects_more_than_65535_bytes() {
        assert_eq!(validate(&vec![b'a'; 65_536]), Err(Utf8Error::TooLong));
        assert_eq!(validate(&vec![b'a'; 65_535]), Ok(()));
    }
}
