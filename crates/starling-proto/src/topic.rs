//! Topic names and topic filters: their validation, their matching and the
//! `$share/{ShareName}/{filter}` syntax of shared subscriptions.
//!
//! A [`TopicName`] is what a PUBLISH carries; a [`TopicFilter`] is what a SUBSCRIBE or
//! UNSUBSCRIBE carries. Both wrap an [`MqttString`], so they keep sharing the received
//! buffer, and both are checked once, on construction, against MQTT 5.0 §4.7 and §4.8.2
//! (the rules are the same in 3.1.1, only numbered differently). Every later use, above
//! all [`matches()`], which runs per message per subscription, can then trust them.

use std::fmt;
use std::ops::Range;
use std::str::Split;

use crate::string::{MqttString, Utf8Error};

const LEVEL_SEPARATOR: char = '/';
const SINGLE_LEVEL: char = '+';
const MULTI_LEVEL: char = '#';
const WILDCARDS: [char; 2] = [SINGLE_LEVEL, MULTI_LEVEL];
const SHARE_PREFIX: &str = "$share/";

/// A rule of MQTT 5.0 §4.7 or §4.8.2 that a topic name or topic filter breaks.
///
/// Each message starts with the normative statement it breaks, so a log line or a
/// reason string can be traced back to the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic name or filter has no characters.
    #[error("[MQTT-4.7.3-1] topic is empty")]
    Empty,
    /// The topic contains U+0000.
    #[error("[MQTT-4.7.3-2] topic contains the null character U+0000")]
    NullCharacter,
    /// The topic encodes to more than 65,535 bytes.
    #[error("[MQTT-4.7.3-3] topic encodes to more than 65,535 bytes")]
    TooLong,
    /// The topic bytes are not well-formed UTF-8.
    #[error("[MQTT-1.5.4-1] topic is not well-formed UTF-8")]
    MalformedUtf8,
    /// A topic name contains `+` or `#`.
    #[error("[MQTT-4.7.0-1] topic name contains a wildcard character ('+' or '#')")]
    WildcardInName,
    /// A `#` shares its level with other characters or is not the last level.
    #[error("[MQTT-4.7.1-1] '#' must be alone in the last level of a topic filter")]
    MisplacedMultiLevelWildcard,
    /// A `+` shares its level with other characters.
    #[error("[MQTT-4.7.1-2] '+' must occupy an entire level of a topic filter")]
    MisplacedSingleLevelWildcard,
    /// `$share/` is directly followed by `/` or by nothing: the ShareName is empty.
    #[error("[MQTT-4.8.2-1] shared subscription has an empty ShareName")]
    EmptyShareName,
    /// The ShareName contains `+` or `#`.
    #[error("[MQTT-4.8.2-2] ShareName contains '+' or '#'")]
    InvalidShareName,
    /// The ShareName is not followed by `/` and a non-empty topic filter.
    #[error("[MQTT-4.8.2-2] ShareName is not followed by '/' and a topic filter")]
    MissingSharedFilter,
    /// The filter after the ShareName is itself a shared subscription.
    ///
    /// §4.8.2 asks for a Topic Filter after the ShareName; a nested `$share/` would
    /// make [`TopicFilter::share`] return a filter that is shared again, so it is
    /// refused rather than given a meaning the specification does not define.
    #[error("[MQTT-4.8.2-2] the filter after the ShareName is itself a shared subscription")]
    NestedSharedFilter,
}

impl TopicError {
    /// The normative statement broken, e.g. `"MQTT-4.7.3-1"`.
    pub fn rule(&self) -> &'static str {
        match self {
            TopicError::Empty => "MQTT-4.7.3-1",
            TopicError::NullCharacter => "MQTT-4.7.3-2",
            TopicError::TooLong => "MQTT-4.7.3-3",
            TopicError::MalformedUtf8 => "MQTT-1.5.4-1",
            TopicError::WildcardInName => "MQTT-4.7.0-1",
            TopicError::MisplacedMultiLevelWildcard => "MQTT-4.7.1-1",
            TopicError::MisplacedSingleLevelWildcard => "MQTT-4.7.1-2",
            TopicError::EmptyShareName => "MQTT-4.8.2-1",
            TopicError::InvalidShareName
            | TopicError::MissingSharedFilter
            | TopicError::NestedSharedFilter => "MQTT-4.8.2-2",
        }
    }
}

impl From<Utf8Error> for TopicError {
    fn from(error: Utf8Error) -> Self {
        match error {
            Utf8Error::Malformed => TopicError::MalformedUtf8,
            Utf8Error::NullCharacter => TopicError::NullCharacter,
            Utf8Error::TooLong => TopicError::TooLong,
        }
    }
}

/// A Topic Name: non-empty and without wildcards.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(MqttString);

impl TopicName {
    /// Validates `name` as a Topic Name.
    pub fn new(name: MqttString) -> Result<Self, TopicError> {
        if name.is_empty() {
            return Err(TopicError::Empty);
        }
        // Bytes, not `char`s: both wildcards are ASCII, and UTF-8 never uses
        // ASCII bytes inside a longer character.
        if name.as_bytes().iter().any(|&b| b == b'+' || b == b'#') {
            return Err(TopicError::WildcardInName);
        }
        Ok(TopicName(name))
    }

    /// A topic name known at compile time.
    ///
    /// # Panics
    /// If `name` is not a valid topic name; only for literals.
    pub fn from_static(name: &'static str) -> Self {
        match MqttString::from_bytes(bytes::Bytes::from_static(name.as_bytes()))
            .map_err(TopicError::from)
            .and_then(Self::new)
        {
            Ok(name) => name,
            Err(error) => panic!("invalid static topic name {name:?}: {error}"),
        }
    }

    /// The empty Topic Name.
    ///
    /// It is legal only in an MQTT 5.0 PUBLISH that carries a Topic Alias, where the
    /// alias stands for the name (§3.3.2.3.4). The packet decoder is its only user: it
    /// must resolve the alias to a real name before the message is routed, because an
    /// empty name would otherwise match `+` and `#`.
    pub const fn empty() -> Self {
        TopicName(MqttString::new())
    }

    /// The name as `&str`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The name as the string it was built from.
    pub fn as_mqtt_string(&self) -> &MqttString {
        &self.0
    }

    /// Gives back the underlying string.
    pub fn into_inner(self) -> MqttString {
        self.0
    }

    /// The levels of the name, split on `/`; adjacent, leading or trailing separators
    /// yield empty levels (§4.7.1.1).
    pub fn levels(&self) -> Levels<'_> {
        Levels {
            rest: Some(self.as_str()),
        }
    }

    /// Whether the name starts with `$`, which hides it from filters that start with a
    /// wildcard [MQTT-4.7.2-1].
    pub fn is_system(&self) -> bool {
        self.as_str().starts_with('$')
    }
}

/// The levels of a [`TopicName`], as `str::split('/')` gives them, found
/// byte by byte: every PUBLISH is split once for routing, and the `char`
/// searcher's set-up cost more than the search on topics this short. A `/`
/// byte never occurs inside a longer UTF-8 character.
#[derive(Debug, Clone)]
pub struct Levels<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for Levels<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.bytes().position(|b| b == b'/') {
            Some(at) => {
                self.rest = Some(&rest[at + 1..]);
                Some(&rest[..at])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

impl TryFrom<&str> for TopicName {
    type Error = TopicError;
    fn try_from(name: &str) -> Result<Self, TopicError> {
        Self::new(MqttString::try_from(name)?)
    }
}

impl AsRef<str> for TopicName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for TopicName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TopicName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Topic Filter: a topic name that may hold wildcards, or a shared subscription
/// `$share/{ShareName}/{filter}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicFilter(MqttString);

impl TopicFilter {
    /// Validates `filter` as a Topic Filter, including the shared-subscription syntax
    /// when it starts with `$share/`.
    pub fn new(filter: MqttString) -> Result<Self, TopicError> {
        match share_split(filter.as_str()) {
            Some(split) => {
                let ranges = split?;
                let group = &filter.as_str()[ranges.group];
                let inner = &filter.as_str()[ranges.filter];
                if group.contains(WILDCARDS) {
                    return Err(TopicError::InvalidShareName);
                }
                if inner.starts_with(SHARE_PREFIX) {
                    return Err(TopicError::NestedSharedFilter);
                }
                validate_plain_filter(inner)?;
            }
            None => validate_plain_filter(filter.as_str())?,
        }
        Ok(TopicFilter(filter))
    }

    /// A topic filter known at compile time.
    ///
    /// # Panics
    /// If `filter` is not a valid topic filter; only for literals.
    pub fn from_static(filter: &'static str) -> Self {
        match MqttString::from_bytes(bytes::Bytes::from_static(filter.as_bytes()))
            .map_err(TopicError::from)
            .and_then(Self::new)
        {
            Ok(filter) => filter,
            Err(error) => panic!("invalid static topic filter {filter:?}: {error}"),
        }
    }

    /// The filter as `&str`, with its `$share/{ShareName}/` prefix if it has one.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The filter as the string it was built from.
    pub fn as_mqtt_string(&self) -> &MqttString {
        &self.0
    }

    /// Gives back the underlying string.
    pub fn into_inner(self) -> MqttString {
        self.0
    }

    /// The levels of the whole filter as written, `$share` and the ShareName included
    /// for a shared subscription; [`share`](Self::share) gives the inner filter.
    pub fn levels(&self) -> Split<'_, char> {
        self.as_str().split(LEVEL_SEPARATOR)
    }

    /// Whether the filter holds `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        // A ShareName cannot hold a wildcard, so the whole string answers for the
        // inner filter too.
        self.as_str().contains(WILDCARDS)
    }

    /// Whether this is a shared subscription, `$share/{ShareName}/{filter}`.
    pub fn is_shared(&self) -> bool {
        self.as_str().starts_with(SHARE_PREFIX)
    }

    /// The ShareName and the inner filter of a shared subscription, as slices of the
    /// same buffer; `None` for an ordinary filter.
    pub fn share(&self) -> Option<SharedFilter> {
        let ranges = self.share_ranges()?;
        Some(SharedFilter {
            group: self.slice(ranges.group),
            filter: TopicFilter(self.slice(ranges.filter)),
        })
    }

    /// Whether a message published to `name` reaches this subscription; a shared
    /// subscription matches with its inner filter.
    pub fn matches(&self, name: &TopicName) -> bool {
        matches(self.matching_filter(), name.as_str())
    }

    fn matching_filter(&self) -> &str {
        match self.share_ranges() {
            Some(ranges) => &self.as_str()[ranges.filter],
            None => self.as_str(),
        }
    }

    fn share_ranges(&self) -> Option<ShareRanges> {
        // `new` accepted the filter, so a `$share/` prefix is known to split cleanly.
        share_split(self.as_str())?.ok()
    }

    fn slice(&self, range: Range<usize>) -> MqttString {
        // Both ends sit next to an ASCII '/' or at the ends of a valid MQTT string, so
        // the slice is valid too and this cannot fail.
        MqttString::from_bytes(self.0.as_bytes().slice(range))
            .expect("a slice at '/' boundaries of an MQTT string is an MQTT string")
    }
}

impl TryFrom<&str> for TopicFilter {
    type Error = TopicError;
    fn try_from(filter: &str) -> Result<Self, TopicError> {
        Self::new(MqttString::try_from(filter)?)
    }
}

impl AsRef<str> for TopicFilter {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for TopicFilter {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TopicFilter {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parts of a shared subscription `$share/{ShareName}/{filter}`, both sharing the
/// buffer of the [`TopicFilter`] they came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedFilter {
    group: MqttString,
    filter: TopicFilter,
}

impl SharedFilter {
    /// The ShareName: at least one character, without `/`, `+` or `#`.
    pub fn group(&self) -> &MqttString {
        &self.group
    }

    /// The filter messages are matched with; never itself shared.
    pub fn filter(&self) -> &TopicFilter {
        &self.filter
    }

    /// Gives back the ShareName and the inner filter.
    pub fn into_parts(self) -> (MqttString, TopicFilter) {
        (self.group, self.filter)
    }
}

/// Whether the Topic Filter `filter` matches the Topic Name `name` (§4.7).
///
/// Both must already be valid; this neither checks them nor allocates. `+` matches
/// exactly one level, an empty one included; `#` matches its parent level and any
/// number of child levels; a filter starting with a wildcard never matches a name
/// starting with `$` [MQTT-4.7.2-1]. A `$share/` prefix is not interpreted here:
/// [`TopicFilter::matches`] strips it first.
pub fn matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && filter.starts_with(WILDCARDS) {
        return false;
    }
    let mut filter_levels = filter.split(LEVEL_SEPARATOR);
    let mut name_levels = name.split(LEVEL_SEPARATOR);
    loop {
        match (filter_levels.next(), name_levels.next()) {
            // '#' is last and takes the rest, including nothing: "sport/#" matches
            // "sport" because the parent level itself is included.
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(wanted), Some(level)) if wanted == level => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Checks the wildcard rules of a filter that is not, or no longer, shared.
fn validate_plain_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    if !filter.contains(WILDCARDS) {
        return Ok(());
    }
    let mut levels = filter.split(LEVEL_SEPARATOR).peekable();
    while let Some(level) = levels.next() {
        if level.contains(MULTI_LEVEL) && (level.len() != 1 || levels.peek().is_some()) {
            return Err(TopicError::MisplacedMultiLevelWildcard);
        }
        if level.contains(SINGLE_LEVEL) && level.len() != 1 {
            return Err(TopicError::MisplacedSingleLevelWildcard);
        }
    }
    Ok(())
}

/// Where the parts of a `$share/{ShareName}/{filter}` sit, in bytes.
#[derive(Debug)]
struct ShareRanges {
    group: Range<usize>,
    filter: Range<usize>,
}

/// For a filter starting with `$share/`, where its ShareName and inner filter sit,
/// or the §4.8.2 rule the split breaks; `None` for any other filter.
///
/// The ShareName ends at the first `/`, which is why it can never contain one.
fn share_split(filter: &str) -> Option<Result<ShareRanges, TopicError>> {
    let rest = filter.strip_prefix(SHARE_PREFIX)?;
    let start = SHARE_PREFIX.len();
    let Some(group_len) = rest.find(LEVEL_SEPARATOR) else {
        return Some(Err(if rest.is_empty() {
            TopicError::EmptyShareName
        } else {
            TopicError::MissingSharedFilter
        }));
    };
    if group_len == 0 {
        return Some(Err(TopicError::EmptyShareName));
    }
    let inner_start = start + group_len + 1;
    if inner_start == filter.len() {
        return Some(Err(TopicError::MissingSharedFilter));
    }
    Some(Ok(ShareRanges {
        group: start..start + group_len,
        filter: inner_start..filter.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TopicName {
        TopicName::try_from(s).unwrap()
    }

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::try_from(s).unwrap()
    }

    fn filter_err(s: &str) -> TopicError {
        TopicFilter::try_from(s).unwrap_err()
    }

    /// Matches through the typed API and the free function, which must agree.
    fn is_match(f: &str, n: &str) -> bool {
        let typed = filter(f).matches(&name(n));
        assert_eq!(
            typed,
            matches(f, n),
            "typed and free matching disagree on {f:?} {n:?}"
        );
        typed
    }

    #[test]
    fn every_message_starts_with_its_rule() {
        let all = [
            TopicError::Empty,
            TopicError::NullCharacter,
            TopicError::TooLong,
            TopicError::MalformedUtf8,
            TopicError::WildcardInName,
            TopicError::MisplacedMultiLevelWildcard,
            TopicError::MisplacedSingleLevelWildcard,
            TopicError::EmptyShareName,
            TopicError::InvalidShareName,
            TopicError::MissingSharedFilter,
            TopicError::NestedSharedFilter,
        ];
        for error in all {
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("[{}] ", error.rule())),
                "{message}"
            );
        }
        assert_eq!(
            TopicError::Empty.to_string(),
            "[MQTT-4.7.3-1] topic is empty"
        );
    }

    #[test]
    fn empty_names_and_filters_are_rejected() {
        // [MQTT-4.7.3-1]
        assert_eq!(TopicName::try_from(""), Err(TopicError::Empty));
        assert_eq!(filter_err(""), TopicError::Empty);
        assert_eq!(TopicError::Empty.rule(), "MQTT-4.7.3-1");
    }

    #[test]
    fn string_rules_surface_as_topic_rules() {
        // [MQTT-4.7.3-2]
        assert_eq!(TopicName::try_from("a\0b"), Err(TopicError::NullCharacter));
        assert_eq!(filter_err("a/\0"), TopicError::NullCharacter);
        // [MQTT-4.7.3-3]
        let long = "a".repeat(65_536);
        assert_eq!(TopicName::try_from(long.as_str()), Err(TopicError::TooLong));
        assert!(TopicName::try_from(&long[1..]).is_ok());
        // [MQTT-1.5.4-1]
        assert_eq!(
            TopicError::from(Utf8Error::Malformed),
            TopicError::MalformedUtf8
        );
    }

    #[test]
    fn topic_names_reject_wildcards() {
        // [MQTT-4.7.0-1]
        for bad in ["+", "#", "a/+", "a/#", "sport+", "a#b", "+/a"] {
            assert_eq!(
                TopicName::try_from(bad),
                Err(TopicError::WildcardInName),
                "{bad}"
            );
        }
        assert_eq!(TopicError::WildcardInName.rule(), "MQTT-4.7.0-1");
    }

    #[test]
    fn multi_level_wildcard_validity_examples() {
        // [MQTT-4.7.1-1], §4.7.1.2: "#", "sport/tennis/#" are valid.
        for ok in ["#", "sport/tennis/#", "/#", "+/#", "a//#"] {
            assert!(TopicFilter::try_from(ok).is_ok(), "{ok}");
        }
        // [MQTT-4.7.1-1], §4.7.1.2: "sport/tennis#" and "sport/tennis/#/ranking" are not.
        for bad in [
            "sport/tennis#",
            "sport/tennis/#/ranking",
            "#/",
            "##",
            "a/#b",
            "#/#",
        ] {
            assert_eq!(
                filter_err(bad),
                TopicError::MisplacedMultiLevelWildcard,
                "{bad}"
            );
        }
        assert_eq!(
            TopicError::MisplacedMultiLevelWildcard.rule(),
            "MQTT-4.7.1-1"
        );
    }

    #[test]
    fn multi_level_wildcard_matches_parent_and_children() {
        // §4.7.1.2: a subscriber to "sport/tennis/player1/#" receives these.
        let f = "sport/tennis/player1/#";
        assert!(is_match(f, "sport/tennis/player1"));
        assert!(is_match(f, "sport/tennis/player1/ranking"));
        assert!(is_match(f, "sport/tennis/player1/score/wimbledon"));
        assert!(!is_match(f, "sport/tennis/player2"));
        assert!(!is_match(f, "sport/tennis"));
        // §4.7.1.2: "sport/#" also matches the singular "sport".
        assert!(is_match("sport/#", "sport"));
        assert!(!is_match("sport/#", "sportsdirect"));
        // §4.7.1.2: "#" receives every application message.
        for n in ["sport", "sport/tennis", "/", "a//b", "/finance"] {
            assert!(is_match("#", n), "{n}");
        }
    }

    #[test]
    fn single_level_wildcard_validity_examples() {
        // [MQTT-4.7.1-2], §4.7.1.3: "+", "+/tennis/#", "sport/+/player1" are valid.
        for ok in ["+", "+/tennis/#", "sport/+/player1", "+/+", "/+", "+//+"] {
            assert!(TopicFilter::try_from(ok).is_ok(), "{ok}");
        }
        // [MQTT-4.7.1-2], §4.7.1.3: "sport+" is not.
        for bad in ["sport+", "+sport", "a/b+/c", "++", "+a/#"] {
            assert_eq!(
                filter_err(bad),
                TopicError::MisplacedSingleLevelWildcard,
                "{bad}"
            );
        }
        assert_eq!(
            TopicError::MisplacedSingleLevelWildcard.rule(),
            "MQTT-4.7.1-2"
        );
    }

    #[test]
    fn single_level_wildcard_matches_one_level() {
        // §4.7.1.3: "sport/tennis/+" matches player1 and player2 but not a deeper level.
        assert!(is_match("sport/tennis/+", "sport/tennis/player1"));
        assert!(is_match("sport/tennis/+", "sport/tennis/player2"));
        assert!(!is_match("sport/tennis/+", "sport/tennis/player1/ranking"));
        // §4.7.1.3: "sport/+" does not match "sport" but does match "sport/".
        assert!(!is_match("sport/+", "sport"));
        assert!(is_match("sport/+", "sport/"));
        // §4.7.1.3: "/finance" matches "+/+" and "/+", but not "+".
        assert!(is_match("+/+", "/finance"));
        assert!(is_match("/+", "/finance"));
        assert!(!is_match("+", "/finance"));
        assert!(is_match("+", "sport"));
        assert!(is_match("+/tennis/#", "sport/tennis/player1"));
        assert!(is_match("sport/+/player1", "sport/tennis/player1"));
    }

    #[test]
    fn wildcards_at_the_start_do_not_match_dollar_topics() {
        // [MQTT-4.7.2-1], §4.7.2: "#" receives nothing published to a topic starting with $.
        assert!(!is_match("#", "$SYS/monitor/Clock"));
        assert!(!is_match("#", "$SYS"));
        assert!(!is_match("#", "$"));
        // [MQTT-4.7.2-1], §4.7.2: "+/monitor/Clock" does not receive "$SYS/monitor/Clock".
        assert!(!is_match("+/monitor/Clock", "$SYS/monitor/Clock"));
        assert!(!is_match("+", "$SYS"));
        // §4.7.2: "$SYS/#" and "$SYS/monitor/+" do.
        assert!(is_match("$SYS/#", "$SYS/monitor/Clock"));
        assert!(is_match("$SYS/#", "$SYS"));
        assert!(is_match("$SYS/monitor/+", "$SYS/monitor/Clock"));
        // The rule looks at the first character only: a later '$' level is ordinary.
        assert!(is_match("+/$SYS", "a/$SYS"));
        assert!(is_match("a/#", "a/$SYS"));
    }

    #[test]
    fn levels_split_as_str_split_does() {
        for name in ["a", "/", "a/b", "/a", "a/", "a//b", "//", "é/ü/€", "$SYS/x"] {
            let topic = TopicName::try_from(name).unwrap();
            assert_eq!(
                topic.levels().collect::<Vec<_>>(),
                name.split('/').collect::<Vec<_>>(),
                "{name}"
            );
        }
    }

    #[test]
    fn levels_are_compared_exactly() {
        // §4.7.1.1: adjacent separators make a zero-length level, which is a real level.
        assert!(is_match("a//b", "a//b"));
        assert!(!is_match("a/b", "a//b"));
        assert!(is_match("a/+/b", "a//b"));
        // §4.7.3: a leading or trailing '/' makes a distinct topic; "/" alone is valid.
        assert!(!is_match("finance", "/finance"));
        assert!(!is_match("finance", "finance/"));
        assert!(is_match("/", "/"));
        assert!(is_match("+/+", "/"));
        // §4.7.3: topics are case sensitive and may contain spaces; no normalisation
        // [MQTT-4.7.3-4].
        assert!(!is_match("ACCOUNTS", "Accounts"));
        assert!(is_match("Accounts payable", "Accounts payable"));
        assert!(!is_match("caf\u{e9}", "cafe\u{301}"));
    }

    #[test]
    fn name_accessors() {
        let n = name("$SYS//uptime");
        assert_eq!(n.as_str(), "$SYS//uptime");
        assert_eq!(n, "$SYS//uptime");
        assert_eq!(n.levels().collect::<Vec<_>>(), ["$SYS", "", "uptime"]);
        assert!(n.is_system());
        assert!(!name("sport").is_system());
        assert_eq!(n.to_string(), "$SYS//uptime");
        assert_eq!(format!("{n:?}"), "TopicName(\"$SYS//uptime\")");
        assert_eq!(n.as_mqtt_string(), "$SYS//uptime");
        assert_eq!(n.clone().into_inner(), "$SYS//uptime");
        assert_eq!(TopicName::from_static("a/b"), name("a/b"));
        assert!(name("a") < name("b"));
    }

    #[test]
    fn empty_name_exists_only_for_topic_aliases() {
        let empty = TopicName::empty();
        assert_eq!(empty.as_str(), "");
        assert!(TopicName::new(empty.into_inner()).is_err());
    }

    #[test]
    #[should_panic(expected = "MQTT-4.7.0-1")]
    fn static_name_with_wildcard_panics() {
        let _ = TopicName::from_static("a/+");
    }

    #[test]
    #[should_panic(expected = "MQTT-4.7.1-1")]
    fn static_filter_with_misplaced_hash_panics() {
        let _ = TopicFilter::from_static("a/#/b");
    }

    #[test]
    fn filter_accessors() {
        let f = TopicFilter::from_static("a/+/#");
        assert!(f.has_wildcards());
        assert!(!f.is_shared());
        assert!(f.share().is_none());
        assert_eq!(f.levels().collect::<Vec<_>>(), ["a", "+", "#"]);
        assert_eq!(f.to_string(), "a/+/#");
        assert_eq!(f.as_mqtt_string(), "a/+/#");
        assert_eq!(f.clone().into_inner(), "a/+/#");
        assert!(!filter("a/b").has_wildcards());
    }

    #[test]
    fn shared_filter_splits_into_zero_copy_parts() {
        // [MQTT-4.8.2-1], [MQTT-4.8.2-2]
        let f = filter("$share/g/a/+");
        assert!(f.is_shared());
        assert!(f.has_wildcards());
        let shared = f.share().unwrap();
        assert_eq!(shared.group(), "g");
        assert_eq!(shared.filter(), &filter("a/+"));
        assert!(!shared.filter().is_shared());

        let whole = f.as_mqtt_string().as_bytes().as_ptr_range();
        for part in [
            shared.group().as_bytes(),
            shared.filter().as_mqtt_string().as_bytes(),
        ] {
            let part = part.as_ptr_range();
            assert!(whole.start <= part.start && part.end <= whole.end);
        }

        let (group, inner) = shared.into_parts();
        assert_eq!((group.as_str(), inner.as_str()), ("g", "a/+"));
        assert_eq!(
            filter("$share/group one/#").share().unwrap().group(),
            "group one"
        );
        assert_eq!(filter("$share/g//").share().unwrap().filter(), "/");
    }

    #[test]
    fn malformed_shared_filters_are_rejected() {
        // [MQTT-4.8.2-1]: the ShareName is at least one character.
        assert_eq!(filter_err("$share//a"), TopicError::EmptyShareName);
        assert_eq!(filter_err("$share/"), TopicError::EmptyShareName);
        assert_eq!(TopicError::EmptyShareName.rule(), "MQTT-4.8.2-1");
        // [MQTT-4.8.2-2]: the ShareName holds no '+' or '#'...
        assert_eq!(filter_err("$share/g+/a"), TopicError::InvalidShareName);
        assert_eq!(filter_err("$share/a#/b"), TopicError::InvalidShareName);
        assert_eq!(filter_err("$share/+/a"), TopicError::InvalidShareName);
        // ...and is followed by '/' and a topic filter.
        assert_eq!(filter_err("$share/g"), TopicError::MissingSharedFilter);
        assert_eq!(filter_err("$share/g/"), TopicError::MissingSharedFilter);
        assert_eq!(
            filter_err("$share/g/$share/h/a"),
            TopicError::NestedSharedFilter
        );
        for error in [
            TopicError::InvalidShareName,
            TopicError::MissingSharedFilter,
            TopicError::NestedSharedFilter,
        ] {
            assert_eq!(error.rule(), "MQTT-4.8.2-2");
        }
        // The inner filter obeys the ordinary rules: [MQTT-4.7.1-1], [MQTT-4.7.1-2].
        assert_eq!(
            filter_err("$share/g/a#"),
            TopicError::MisplacedMultiLevelWildcard
        );
        assert_eq!(
            filter_err("$share/g/a/#/b"),
            TopicError::MisplacedMultiLevelWildcard
        );
        assert_eq!(
            filter_err("$share/g/a+"),
            TopicError::MisplacedSingleLevelWildcard
        );
    }

    #[test]
    fn only_the_exact_share_prefix_makes_a_shared_filter() {
        for plain in ["$share", "$SHARE/g/a", "$sharex/g", "a/$share/g/b"] {
            let f = filter(plain);
            assert!(!f.is_shared(), "{plain}");
            assert!(f.share().is_none(), "{plain}");
        }
        // The literal "$share" filter only matches the literal name.
        assert!(is_match("$share", "$share"));
    }

    #[test]
    fn shared_filters_match_with_their_inner_filter() {
        let f = filter("$share/g/sport/+");
        assert!(f.matches(&name("sport/tennis")));
        assert!(!f.matches(&name("sport")));
        assert!(!f.matches(&name("$share/g/sport/tennis")));
        // [MQTT-4.7.2-1] applies to the inner filter.
        assert!(!filter("$share/g/#").matches(&name("$SYS/uptime")));
        assert!(filter("$share/g/#").matches(&name("a")));
        assert!(filter("$share/g/$SYS/#").matches(&name("$SYS/uptime")));
    }
}
