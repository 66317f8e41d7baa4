//! What `starling sub` prints for a message: byte for byte what `mosquitto_sub` 2.0.11
//! prints, as Debian builds it (client/sub_client_output.c, with cJSON 1.7.15 behind
//! `%j` and `%J`).
//!
//! - [`check_format`] is `mosquitto_sub`'s start-up check of `-F`, with its messages.
//! - [`print_message`] prints one message as `print_message()` does: through
//!   [`format_message`] when `-F` is given, else through [`format_default`] (`-v`, `-N`).
//! - [`format_message`] expands the `%` fields (with their `-`, `0`, width and
//!   precision), the `@` fields (glibc `strftime` in the C locale, `@N` nanoseconds,
//!   `@@`) and the `\` escapes.
//! - `json` is the part of cJSON that `%j` and `%J` go through: its parser, which
//!   `%J` re-prints the payload with, and its compact and `--pretty` printers.
//!
//! Nothing here reads the clock or writes to a stream: the receive time and the time
//! zone are arguments, output goes to a `Vec<u8>`, and the errors Mosquitto prints on
//! stderr are returned. Mosquitto's quirks are kept on purpose, so that scripts written
//! against `mosquitto_sub` see the same bytes; each is marked "Mosquitto quirk".

use std::fmt;
use std::io::Write as _;
use std::time::SystemTime;

use jiff::tz::TimeZone;
use starling_proto::property::PublishProperties;
use starling_proto::QoS;

use self::strftime::LocalTime;

mod json;
mod strftime;

/// One received message, as the printer sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageView<'a> {
    /// The topic name, after any topic alias was resolved.
    pub(crate) topic: &'a str,
    pub(crate) payload: &'a [u8],
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    /// The packet identifier; 0 for QoS 0 (Mosquitto's `mid`).
    pub(crate) mid: u16,
    /// MQTT 5.0 properties; empty for MQTT 3.1 and 3.1.1.
    pub(crate) properties: &'a PublishProperties,
    /// When the message was received: the time `%I`, `%U`, `%j`, `%J` and `@` show.
    pub(crate) received: SystemTime,
}

/// How messages are printed: `mosquitto_sub`'s `-F`, `-v`, `-N` and `--pretty`.
#[derive(Debug, Clone)]
pub(crate) struct OutputOptions {
    /// `-F`: the format, already accepted by [`check_format`].
    pub(crate) format: Option<Vec<u8>>,
    /// `-v`: the topic before the payload (only without `-F`).
    pub(crate) verbose: bool,
    /// Cleared by `-N`: a newline after each message.
    pub(crate) eol: bool,
    /// `--pretty`: indented output for `%j` and `%J`.
    pub(crate) pretty: bool,
    /// The local time zone of the time fields (`localtime()` in Mosquitto).
    pub(crate) time_zone: TimeZone,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions {
            format: None,
            verbose: false,
            eol: true,
            pretty: false,
            time_zone: local_time_zone(),
        }
    }
}

/// The time zone `localtime()` uses: `TZ`, else /etc/localtime, else UTC.
pub(crate) fn local_time_zone() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// A `-F` format that `mosquitto_sub` refuses at startup.
///
/// Mosquitto prints [`FormatError::message`], a newline, then
/// `"\nUse 'mosquitto_sub --help' to see usage.\n"`, and exits with status 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormatError {
    /// A `%` or `@` ends the format, or a `%` spec ends before its field letter.
    IncompleteSpecifier,
    /// A `%` spec whose field letter is none of the fields.
    InvalidSpecifier(u8),
    /// A `\` ends the format.
    IncompleteEscape,
    /// A `\` followed by none of the escapes.
    InvalidEscape(u8),
}

impl FormatError {
    /// Mosquitto's message, without its newline: bytes, because it quotes the offending
    /// byte as it is, which may be part of a UTF-8 sequence.
    pub(crate) fn message(&self) -> Vec<u8> {
        let quoted = |text: &str, byte: u8| {
            let mut message = format!("Error: Invalid {text} specifier '").into_bytes();
            message.push(byte);
            message.extend_from_slice(b"'.");
            message
        };
        match *self {
            FormatError::IncompleteSpecifier => b"Error: Incomplete format specifier.".to_vec(),
            FormatError::InvalidSpecifier(byte) => quoted("format", byte),
            FormatError::IncompleteEscape => b"Error: Incomplete escape specifier.".to_vec(),
            FormatError::InvalidEscape(byte) => quoted("escape", byte),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.message()))
    }
}

impl std::error::Error for FormatError {}

/// An error Mosquitto prints on stderr while printing a message; the rest of the
/// format is still printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrintError {
    /// `%J` on a payload that is not one JSON value by cJSON's rules.
    PayloadNotJson {
        /// The message's topic.
        topic: String,
    },
}

impl fmt::Display for PrintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrintError::PayloadNotJson { topic } => {
                write!(
                    f,
                    "Error: Message payload is not valid JSON on topic {topic}."
                )
            }
        }
    }
}

impl std::error::Error for PrintError {}

/// The `%` fields `mosquitto_sub` knows.
const FIELDS: &[u8] = b"%ACDEFIlmPpqRSrtjJUxX";
/// The letters that may follow `\`.
const ESCAPES: &[u8] = b"\\0aenrtv";

/// Checks `format` as `mosquitto_sub -F` does before connecting (`check_format()` in
/// client_shared.c). An empty format is accepted: it prints empty lines.
pub(crate) fn check_format(format: &[u8]) -> Result<(), FormatError> {
    let s = c_string(format);
    let len = s.len();
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = 0;
    while i < len {
        match s[i] {
            b'%' => {
                if i == len - 1 {
                    return Err(FormatError::IncompleteSpecifier);
                }
                // Mosquitto quirk: one flag only, so `%-05p` passes and `%0-5p` fails.
                if matches!(at(i + 1), b'0' | b'-') {
                    i += 1;
                    if i == len - 1 {
                        return Err(FormatError::IncompleteSpecifier);
                    }
                }
                while at(i + 1).is_ascii_digit() {
                    i += 1;
                    if i == len - 1 {
                        return Err(FormatError::IncompleteSpecifier);
                    }
                }
                if at(i + 1) == b'.' {
                    i += 1;
                    if i == len - 1 {
                        return Err(FormatError::IncompleteSpecifier);
                    }
                    while at(i + 1).is_ascii_digit() {
                        i += 1;
                        if i == len - 1 {
                            return Err(FormatError::IncompleteSpecifier);
                        }
                    }
                }
                if !FIELDS.contains(&at(i + 1)) {
                    return Err(FormatError::InvalidSpecifier(at(i + 1)));
                }
                i += 1;
            }
            b'@' => {
                if i == len - 1 {
                    return Err(FormatError::IncompleteSpecifier);
                }
                i += 1;
            }
            b'\\' => {
                if i == len - 1 {
                    return Err(FormatError::IncompleteEscape);
                }
                if !ESCAPES.contains(&s[i + 1]) {
                    return Err(FormatError::InvalidEscape(s[i + 1]));
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Prints one message as `mosquitto_sub` does with `options`.
pub(crate) fn print_message(
    options: &OutputOptions,
    msg: &MessageView<'_>,
    out: &mut Vec<u8>,
) -> Vec<PrintError> {
    match &options.format {
        Some(format) => {
            let errors = format_message(format, options.pretty, &options.time_zone, msg, out);
            if options.eol {
                out.push(b'\n');
            }
            errors
        }
        None => {
            format_default(options.verbose, options.eol, msg, out);
            Vec::new()
        }
    }
}

/// The output without `-F`: the payload, after the topic and a space with `-v`, then a
/// newline unless `-N`. Payloads are written as they are, binary or not.
///
/// Mosquitto quirk: an empty payload prints nothing at all, not even the newline, and
/// with `-v` prints `topic (null)` and the newline, or nothing with `-N`.
pub(crate) fn format_default(verbose: bool, eol: bool, msg: &MessageView<'_>, out: &mut Vec<u8>) {
    if msg.payload.is_empty() {
        if verbose && eol {
            out.extend_from_slice(msg.topic.as_bytes());
            out.extend_from_slice(b" (null)\n");
        }
        return;
    }
    if verbose {
        out.extend_from_slice(msg.topic.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(msg.payload);
    if eol {
        out.push(b'\n');
    }
}

/// Expands `format` (`-F`) for `msg`, without the newline [`print_message`] adds.
///
/// `format` should have passed [`check_format`]; anything else is expanded the way
/// Mosquitto's printer would, dropping what it does not know. All time fields show
/// `msg.received` in `time_zone`.
pub(crate) fn format_message(
    format: &[u8],
    pretty: bool,
    time_zone: &TimeZone,
    msg: &MessageView<'_>,
    out: &mut Vec<u8>,
) -> Vec<PrintError> {
    let mut printer = Printer {
        msg,
        pretty,
        time_zone,
        time: None,
        errors: Vec::new(),
    };
    let s = c_string(format);
    let len = s.len();
    let mut i = 0;
    while i < len {
        match s[i] {
            b'%' if i < len - 1 => {
                i += 1;
                let mut spec = Spec {
                    left: false,
                    zero: false,
                    width: 0,
                    precision: -1,
                };
                if s[i] == b'-' {
                    spec.left = true;
                    if i < len - 1 {
                        i += 1;
                    }
                }
                if s[i] == b'0' {
                    spec.zero = true;
                    if i < len - 1 {
                        i += 1;
                    }
                }
                // Mosquitto accumulates in a C int; wrapping is what it does in practice.
                while i < len - 1 && s[i].is_ascii_digit() {
                    spec.width = spec
                        .width
                        .wrapping_mul(10)
                        .wrapping_add(i32::from(s[i] - b'0'));
                    i += 1;
                }
                if s[i] == b'.' && i < len - 1 {
                    i += 1;
                    spec.precision = 0;
                    while i < len - 1 && s[i].is_ascii_digit() {
                        spec.precision = spec
                            .precision
                            .wrapping_mul(10)
                            .wrapping_add(i32::from(s[i] - b'0'));
                        i += 1;
                    }
                }
                printer.field(s[i], spec, out);
            }
            b'@' if i < len - 1 => {
                i += 1;
                match s[i] {
                    b'@' => out.push(b'@'),
                    b'N' => put(out, format_args!("{:09}", printer.time().nanos)),
                    c => printer.time().conversion(c, out),
                }
            }
            b'\\' if i < len - 1 => {
                i += 1;
                match s[i] {
                    b'\\' => out.push(b'\\'),
                    b'0' => out.push(0),
                    b'a' => out.push(0x07),
                    b'e' => out.push(0x1b),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(0x0b),
                    _ => {}
                }
            }
            // A lone `%`, `@` or `\` at the end prints nothing.
            b'%' | b'@' | b'\\' => {}
            c => out.push(c),
        }
        i += 1;
    }
    printer.errors
}

/// The format as the C string Mosquitto holds: up to its first NUL.
fn c_string(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

fn put(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    out.write_fmt(args).expect("writing to a Vec cannot fail");
}

/// The flags of one `%` field: `-`, `0`, width and precision (-1 when absent).
#[derive(Debug, Clone, Copy)]
struct Spec {
    left: bool,
    zero: bool,
    width: i32,
    precision: i32,
}

impl Spec {
    fn pad(&self) -> u8 {
        if self.zero {
            b'0'
        } else {
            b' '
        }
    }
}

struct Printer<'a> {
    msg: &'a MessageView<'a>,
    pretty: bool,
    time_zone: &'a TimeZone,
    time: Option<LocalTime>,
    errors: Vec<PrintError>,
}

impl Printer<'_> {
    /// The receive time in the local time zone, computed once per message.
    fn time(&mut self) -> &LocalTime {
        let (received, time_zone) = (self.msg.received, self.time_zone);
        self.time
            .get_or_insert_with(|| LocalTime::new(received, time_zone))
    }

    /// One `%` field (`formatted_print_percent()`).
    fn field(&mut self, field: u8, spec: Spec, out: &mut Vec<u8>) {
        let msg = self.msg;
        let props = msg.properties;
        match field {
            b'%' => out.push(b'%'),
            b'A' => match props.topic_alias {
                Some(alias) => print_int(i64::from(alias.get()), spec, out),
                None => print_blank(spec.pad(), spec.width, out),
            },
            // Mosquitto quirk: a missing string property pads with spaces even with `0`.
            b'C' => match &props.content_type {
                Some(content_type) => print_str(content_type.as_str().as_bytes(), spec, out),
                None => print_blank(b' ', spec.width, out),
            },
            // Mosquitto quirk: no width or precision, and binary data written as it is.
            b'D' => {
                if let Some(data) = &props.correlation_data {
                    out.extend_from_slice(data);
                }
            }
            // Mosquitto quirk: printed as a C int, so 4294967295 shows as -1.
            b'E' => match props.message_expiry_interval {
                Some(expiry) => print_int(i64::from(expiry as i32), spec, out),
                None => print_blank(spec.pad(), spec.width, out),
            },
            b'F' => match props.payload_format_indicator {
                Some(utf8) => print_int(i64::from(utf8), spec, out),
                None => print_blank(spec.pad(), spec.width, out),
            },
            b'I' => {
                let mut iso = Vec::new();
                self.time().strftime(b"%FT%T%z", &mut iso);
                print_str(&iso, spec, out);
            }
            b'j' | b'J' => {
                let time = self.time().clone();
                if let Err(error) = json::message(msg, &time, field == b'j', self.pretty, out) {
                    self.errors.push(error);
                }
            }
            b'l' => print_int(msg.payload.len() as i64, spec, out),
            b'm' => print_int(i64::from(msg.mid), spec, out),
            // Mosquitto quirk: no width; pairs are `name:value`, separated by one space.
            b'P' => {
                for (n, property) in props.user_properties.iter().enumerate() {
                    if n > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(property.name.as_str().as_bytes());
                    out.push(b':');
                    out.extend_from_slice(property.value.as_str().as_bytes());
                }
            }
            b'p' => print_payload(msg.payload, Hex::No, spec, out),
            // Mosquitto quirk: `%q` and `%r` ignore width and flags.
            b'q' => out.push(b'0' + msg.qos.as_u8()),
            // Mosquitto quirk: a missing response topic prints nothing, whatever the width.
            b'R' => {
                if let Some(topic) = &props.response_topic {
                    print_str(topic.as_str().as_bytes(), spec, out);
                }
            }
            b'r' => out.push(if msg.retain { b'1' } else { b'0' }),
            // Only the first subscription identifier.
            b'S' => match props.subscription_identifiers.first() {
                Some(id) => print_int(i64::from(id.get()), spec, out),
                None => print_blank(spec.pad(), spec.width, out),
            },
            b't' => print_str(msg.topic.as_bytes(), spec, out),
            b'U' => {
                let time = self.time();
                put(out, format_args!("{}.{:09}", time.epoch, time.nanos));
            }
            b'x' => print_payload(msg.payload, Hex::Lower, spec, out),
            b'X' => print_payload(msg.payload, Hex::Upper, spec, out),
            _ => {}
        }
    }
}

/// `printf`'s `*` width: a negative one means left-justified.
fn star_width(width: i32, left: bool) -> (usize, bool) {
    if width < 0 {
        (width.unsigned_abs() as usize, true)
    } else {
        (width as usize, left)
    }
}

fn spaces(n: usize, out: &mut Vec<u8>) {
    out.resize(out.len() + n, b' ');
}

/// `formatted_print_int()`: `%d`, `%-*d`, `%0*d` or `%*d`.
fn print_int(value: i64, spec: Spec, out: &mut Vec<u8>) {
    let digits = value.unsigned_abs().to_string();
    let sign = if value < 0 { "-" } else { "" };
    let (width, left) = star_width(spec.width, spec.left);
    let fill = width.saturating_sub(sign.len() + digits.len());
    if left {
        out.extend_from_slice(sign.as_bytes());
        out.extend_from_slice(digits.as_bytes());
        spaces(fill, out);
    } else if spec.zero {
        out.extend_from_slice(sign.as_bytes());
        out.resize(out.len() + fill, b'0');
        out.extend_from_slice(digits.as_bytes());
    } else {
        spaces(fill, out);
        out.extend_from_slice(sign.as_bytes());
        out.extend_from_slice(digits.as_bytes());
    }
}

/// `formatted_print_str()`: `%-*.*s` and its variants; the precision counts bytes.
fn print_str(value: &[u8], spec: Spec, out: &mut Vec<u8>) {
    let value = match usize::try_from(spec.precision) {
        Ok(precision) => &value[..value.len().min(precision)],
        Err(_) => value,
    };
    let (width, left) = star_width(spec.width, spec.left);
    let fill = width.saturating_sub(value.len());
    if !left {
        spaces(fill, out);
    }
    out.extend_from_slice(value);
    if left {
        spaces(fill, out);
    }
}

/// `formatted_print_blank()`: a missing property is `width` pad characters.
fn print_blank(pad: u8, width: i32, out: &mut Vec<u8>) {
    if let Ok(width) = usize::try_from(width) {
        out.resize(out.len() + width, pad);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hex {
    No,
    Lower,
    Upper,
}

/// `write_payload()`, with its arithmetic kept.
///
/// Mosquitto quirks: a width truncates the payload to `width` bytes; in hex, that
/// count is then halved, so `%10x` of a 3-byte payload prints one byte padded to 10;
/// the precision is ignored; `-` pads on the right with spaces by the payload's length
/// when there is no width, so `%-p` of `abc` is `abc   `.
fn print_payload(payload: &[u8], hex: Hex, spec: Spec, out: &mut Vec<u8>) {
    let width = spec.width;
    let mut len = i32::try_from(payload.len()).unwrap_or(i32::MAX);
    let padlen = if width > 0 {
        len = len.min(width);
        if hex == Hex::No {
            width - len
        } else {
            len /= 2;
            width - len * 2
        }
    } else {
        width.wrapping_sub(len)
    };
    if !spec.left {
        print_blank(spec.pad(), padlen, out);
    }
    let shown = &payload[..usize::try_from(len).unwrap_or(0)];
    match hex {
        Hex::No => out.extend_from_slice(shown),
        Hex::Lower => shown.iter().for_each(|b| put(out, format_args!("{b:02x}"))),
        Hex::Upper => shown.iter().for_each(|b| put(out, format_args!("{b:02X}"))),
    }
    if spec.left {
        // printf("%*s", padlen, ""): a negative width pads too.
        spaces(padlen.unsigned_abs() as usize, out);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use jiff::tz::TimeZone;
    use starling_proto::property::{PublishProperties, UserProperty};
    use starling_proto::{MqttString, QoS, SubscriptionId, TopicName};

    use super::*;

    /// 2024-03-10T14:05:09.000123456Z, a Sunday.
    fn received() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(1_710_079_509, 123_456)
    }

    fn view<'a>(payload: &'a [u8], props: &'a PublishProperties) -> MessageView<'a> {
        MessageView {
            topic: "t/1",
            payload,
            qos: QoS::AtMostOnce,
            retain: false,
            mid: 0,
            properties: props,
            received: received(),
        }
    }

    fn string(s: &str) -> MqttString {
        MqttString::try_from(s).unwrap()
    }

    fn all_properties() -> PublishProperties {
        PublishProperties {
            payload_format_indicator: Some(true),
            message_expiry_interval: Some(u32::MAX),
            topic_alias: None,
            response_topic: Some(TopicName::try_from("r/t").unwrap()),
            correlation_data: Some(Bytes::from_static(b"c\x00d")),
            user_properties: vec![
                UserProperty {
                    name: string("a"),
                    value: string("b"),
                },
                UserProperty {
                    name: string("a"),
                    value: string("c d"),
                },
            ],
            subscription_identifiers: vec![SubscriptionId::new(7).unwrap()],
            content_type: Some(string("x/y")),
        }
    }

    fn format_in(format: &str, msg: &MessageView<'_>, tz: &TimeZone) -> String {
        let mut out = Vec::new();
        let errors = format_message(format.as_bytes(), false, tz, msg, &mut out);
        assert_eq!(errors, []);
        String::from_utf8(out).unwrap()
    }

    fn format(format: &str, msg: &MessageView<'_>) -> String {
        format_in(format, msg, &TimeZone::UTC)
    }

    #[test]
    fn check_format_accepts_what_mosquitto_sub_accepts() {
        for ok in [
            "",
            "%p",
            "%%",
            "%-05p",
            "%-10.3t",
            "%.t",
            "%010x",
            "@@",
            "@q",
            "@%",
            "\\\\\\0\\e",
            "%ACDEFIlmPpqRSrtjJUxX",
        ] {
            assert_eq!(check_format(ok.as_bytes()), Ok(()), "{ok}");
        }
    }

    #[test]
    fn check_format_rejects_with_mosquitto_sub_messages() {
        for (bad, message) in [
            ("%", "Error: Incomplete format specifier."),
            ("%-", "Error: Incomplete format specifier."),
            ("%5", "Error: Incomplete format specifier."),
            ("%.3", "Error: Incomplete format specifier."),
            ("x@", "Error: Incomplete format specifier."),
            ("%z", "Error: Invalid format specifier 'z'."),
            ("%0-5p", "Error: Invalid format specifier '-'."),
            ("%.:", "Error: Invalid format specifier ':'."),
            ("\\", "Error: Incomplete escape specifier."),
            ("\\x", "Error: Invalid escape specifier 'x'."),
        ] {
            let error = check_format(bad.as_bytes()).unwrap_err();
            assert_eq!(error.to_string(), message, "{bad}");
        }
        // The offending byte is quoted as it is, even inside a UTF-8 sequence.
        let error = check_format("%é".as_bytes()).unwrap_err();
        assert_eq!(error.message(), b"Error: Invalid format specifier '\xc3'.");
        // Mosquitto keeps the format as a C string: it ends at a NUL.
        assert_eq!(check_format(b"%p\0%z"), Ok(()));
    }

    #[test]
    fn default_output_follows_verbose_and_eol() {
        let props = PublishProperties::default();
        let cases: [(&[u8], bool, bool, &[u8]); 8] = [
            (b"hi", false, true, b"hi\n"),
            (b"hi", false, false, b"hi"),
            (b"hi", true, true, b"t/1 hi\n"),
            (b"hi", true, false, b"t/1 hi"),
            (b"", false, true, b""),
            (b"", false, false, b""),
            (b"", true, true, b"t/1 (null)\n"),
            (b"", true, false, b""),
        ];
        for (payload, verbose, eol, expected) in cases {
            let mut out = Vec::new();
            format_default(verbose, eol, &view(payload, &props), &mut out);
            assert_eq!(out, expected, "{payload:?} verbose={verbose} eol={eol}");
        }
        let mut out = Vec::new();
        format_default(false, true, &view(b"\x00\xff", &props), &mut out);
        assert_eq!(out, b"\x00\xff\n");
    }

    #[test]
    fn print_message_adds_the_newline_after_a_format() {
        let props = PublishProperties::default();
        let mut options = OutputOptions {
            format: Some(b"%t".to_vec()),
            time_zone: TimeZone::UTC,
            ..OutputOptions::default()
        };
        let mut out = Vec::new();
        print_message(&options, &view(b"", &props), &mut out);
        options.eol = false;
        print_message(&options, &view(b"", &props), &mut out);
        options.format = Some(Vec::new());
        options.eol = true;
        print_message(&options, &view(b"", &props), &mut out);
        assert_eq!(out, b"t/1\nt/1\n");
    }

    #[test]
    fn plain_fields() {
        let props = all_properties();
        let mut msg = view(b"abc", &props);
        msg.qos = QoS::ExactlyOnce;
        msg.retain = true;
        msg.mid = 42;
        assert_eq!(
            format("%%|%t|%p|%l|%q|%r|%m|%x|%X", &msg),
            "%|t/1|abc|3|2|1|42|616263|616263"
        );
        assert_eq!(
            format("%A|%C|%E|%F|%P|%R|%S", &msg),
            "|x/y|-1|1|a:b a:c d|r/t|7"
        );
        let mut out = Vec::new();
        format_message(b"%D", false, &TimeZone::UTC, &msg, &mut out);
        assert_eq!(out, b"c\x00d");
    }

    /// Outputs taken from mosquitto_sub 2.0.11 with the payload "abc" on "t/…".
    #[test]
    fn widths_and_flags_keep_mosquitto_quirks() {
        let props = PublishProperties::default();
        let msg = view(b"abc", &props);
        for (spec, expected) in [
            ("[%-p]", "[abc   ]"),
            ("[%-x]", "[616263   ]"),
            ("[%10x]", "[        61]"),
            ("[%10p]", "[       abc]"),
            ("[%3p]", "[abc]"),
            ("[%2p]", "[ab]"),
            ("[%08p]", "[00000abc]"),
            ("[%-8p]", "[abc     ]"),
            ("[%.2p]", "[abc]"),
            ("[%5.2t]", "[   t/]"),
            ("[%-5.2t]|%.t|", "[t/   ]||"),
            (
                "[%05A][%5A][%-5A][%05E][%05F][%5C][%5R][%05S]",
                "[00000][     ][     ][00000][00000][     ][][00000]",
            ),
            ("[%05l][%-5m][%05q][%5r]", "[00003][0    ][0][0]"),
            ("[%-05l][%05t]", "[3    ][  t/1]"),
        ] {
            assert_eq!(format(spec, &msg), expected, "{spec}");
        }
        let msg = view(b"ab\x00cd", &props);
        assert_eq!(
            format("%x|%10x|%-10X|%4x|%05x", &msg),
            "6162006364|      6162|6162      |6162|06162"
        );
        let expiry = PublishProperties {
            message_expiry_interval: Some(u32::MAX),
            ..PublishProperties::default()
        };
        assert_eq!(format("[%05E][%-4E]", &view(b"", &expiry)), "[-0001][-1  ]");
    }

    #[test]
    fn escapes_and_unfinished_specs() {
        let props = PublishProperties::default();
        let msg = view(b"p", &props);
        let mut out = Vec::new();
        format_message(
            b"\\\\\\0\\a\\e\\n\\r\\t\\v\\x|%z|%|@",
            false,
            &TimeZone::UTC,
            &msg,
            &mut out,
        );
        assert_eq!(out, b"\\\x00\x07\x1b\n\r\t\x0b||");
        assert_eq!(format("%-", &msg), "");
        assert_eq!(format("%5", &msg), "");
        assert_eq!(format("a\\", &msg), "a");
    }

    #[test]
    fn at_fields_are_glibc_strftime_in_the_c_locale() {
        let props = PublishProperties::default();
        let msg = view(b"", &props);
        assert_eq!(
            format(
                "@a @A @b @B @h @C @d @e @j @k @l @I @p @P @u @w @U @W @V @G @g",
                &msg
            ),
            "Sun Sunday Mar March Mar 20 10 10 070 14  2 02 PM pm 7 0 10 10 10 2024 24"
        );
        assert_eq!(
            format("@c|@D|@x|@F|@r|@R|@T|@X|@y|@Y|@s|@N|@z|@Z", &msg),
            "Sun Mar 10 14:05:09 2024|03/10/24|03/10/24|2024-03-10|02:05:09 PM|14:05|\
             14:05:09|14:05:09|24|2024|1710079509|000123456|+0000|UTC"
        );
        assert_eq!(format("@@|@%|@n|@t", &msg), "@|%|\n|\t");
        assert_eq!(
            format("@E|@O|@+|@_|@-|@0|@^|@#|@q|@:", &msg),
            "%E|%O|%+|%_|%-|%0|%^|%#|%q|%:"
        );
        assert_eq!(format("@1|@2|@3|@9", &msg), "%1|%2| %3|       %9");
        assert_eq!(format("@é", &msg), "%é");
        let mut early = msg;
        early.received = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_157_445);
        assert_eq!(
            format("@c|@e|@d|@k|@l|@I|@j|@U|@W|@V|@G", &early),
            "Tue Jan  2 01:04:05 2024| 2|02| 1| 1|01|002|00|01|01|2024"
        );

        // Newfoundland: -0230 in daylight time, which starts 2024-03-10 at 02:00.
        let tz = TimeZone::posix("NST3:30NDT,M3.2.0,M11.1.0").unwrap();
        assert_eq!(
            format_in("@H:@M @z @Z|%I", &msg, &tz),
            "11:35 -0230 NDT|2024-03-10T11:35:09-0230"
        );
        let tz = TimeZone::posix("<+0545>-5:45").unwrap();
        assert_eq!(format_in("@z @Z", &msg, &tz), "+0545 +0545");
    }

    #[test]
    fn time_fields() {
        let props = PublishProperties::default();
        let msg = view(b"", &props);
        assert_eq!(format("%U", &msg), "1710079509.000123456");
        assert_eq!(
            format("%I|[%.10I]|[%-26I]", &msg),
            "2024-03-10T14:05:09+0000|[2024-03-10]|[2024-03-10T14:05:09+0000  ]"
        );
    }

    #[test]
    fn json_escaped_payload() {
        let props = all_properties();
        let mut msg = view(b"a\"b\\c/d\x01\xc3\xa9\x7f\x00rest", &props);
        msg.qos = QoS::AtLeastOnce;
        msg.mid = 3;
        assert_eq!(
            format("%j", &msg),
            "{\"tst\":\"2024-03-10T14:05:09.000123Z+0000\",\"topic\":\"t/1\",\"qos\":1,\
             \"retain\":0,\"payloadlen\":16,\"mid\":3,\"properties\":{\
             \"subscription-identifier\":7,\"payload-format-indicator\":1,\
             \"response-topic\":\"r/t\",\"correlation-data\":\"c\",\
             \"user-properties\":{\"a\":\"b\",\"a\":\"c d\"},\"content-type\":\"x/y\",\
             \"message-expiry-interval\":4294967295},\"payload\":\"a\\\"b\\\\c/d\\u0001é\x7f\"}"
        );
        let empty = PublishProperties::default();
        assert_eq!(
            format("%j", &view(b"", &empty)),
            "{\"tst\":\"2024-03-10T14:05:09.000123Z+0000\",\"topic\":\"t/1\",\"qos\":0,\
             \"retain\":0,\"payloadlen\":0,\"payload\":null}"
        );
    }

    #[test]
    fn json_pretty_matches_cjson_print() {
        let props = PublishProperties {
            user_properties: vec![UserProperty {
                name: string("a"),
                value: string("b"),
            }],
            ..PublishProperties::default()
        };
        let msg = view(
            br#"{"a": [1, 2.50, {"x":[]}], "b":{}, "c":[], "d":{"e":1}}"#,
            &props,
        );
        let mut out = Vec::new();
        format_message(b"%J", true, &TimeZone::UTC, &msg, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n\t\"tst\":\t\"2024-03-10T14:05:09.000123Z+0000\",\n\t\"topic\":\t\"t/1\",\n\
             \t\"qos\":\t0,\n\t\"retain\":\t0,\n\t\"payloadlen\":\t55,\n\
             \t\"properties\":\t{\n\t\t\"user-properties\":\t{\n\t\t\t\"a\":\t\"b\"\n\t\t}\n\t},\n\
             \t\"payload\":\t{\n\t\t\"a\":\t[1, 2.5, {\n\t\t\t\t\"x\":\t[]\n\t\t\t}],\n\
             \t\t\"b\":\t{\n\t\t},\n\t\t\"c\":\t[],\n\t\t\"d\":\t{\n\t\t\t\"e\":\t1\n\t\t}\n\t}\n}"
        );
    }

    #[test]
    fn json_payload_that_is_not_json_is_an_error_and_prints_nothing() {
        let props = PublishProperties::default();
        let msg = view(b"notjson", &props);
        let mut out = Vec::new();
        let errors = format_message(b"%J|%p", false, &TimeZone::UTC, &msg, &mut out);
        assert_eq!(out, b"|notjson");
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["Error: Message payload is not valid JSON on topic t/1."]
        );
    }
}

#[cfg(all(test, unix))]
mod reference;
