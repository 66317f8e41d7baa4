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
use jiff::Timestamp;
use starling_proto::property::PublishProperties;
use starling_proto::QoS;

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

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A receive time broken down in the local time zone: a `struct tm` and the
/// nanoseconds `clock_gettime()` gave.
#[derive(Debug, Clone)]
struct LocalTime {
    epoch: i64,
    nanos: u32,
    year: i64,
    /// 1 to 12.
    month: usize,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// 0 is Sunday.
    weekday: usize,
    /// 0 is January 1st.
    yday: i64,
    iso_year: i64,
    iso_week: i64,
    /// Seconds east of UTC.
    offset: i32,
    abbreviation: String,
}

impl LocalTime {
    /// Times beyond jiff's years -9999 to 9999 are clamped to them.
    fn new(received: SystemTime, time_zone: &TimeZone) -> LocalTime {
        let ts = Timestamp::try_from(received).unwrap_or(if received < SystemTime::UNIX_EPOCH {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        });
        let info = time_zone.to_offset_info(ts);
        let dt = info.offset().to_datetime(ts);
        let iso = dt.iso_week_date();
        let (mut epoch, mut nanos) = (ts.as_second(), ts.subsec_nanosecond());
        if nanos < 0 {
            epoch -= 1;
            nanos += 1_000_000_000;
        }
        LocalTime {
            epoch,
            nanos: nanos.unsigned_abs(),
            year: dt.year().into(),
            month: dt.month().unsigned_abs().into(),
            day: dt.day().into(),
            hour: dt.hour().into(),
            minute: dt.minute().into(),
            second: dt.second().into(),
            weekday: dt.weekday().to_sunday_zero_offset().unsigned_abs().into(),
            yday: i64::from(dt.day_of_year()) - 1,
            iso_year: iso.year().into(),
            iso_week: iso.week().into(),
            offset: info.offset().seconds(),
            abbreviation: info.abbreviation().to_owned(),
        }
    }

    /// `strftime()` over a format of conversions and plain bytes.
    fn strftime(&self, format: &[u8], out: &mut Vec<u8>) {
        let mut bytes = format.iter().copied();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                out.push(b);
            } else if let Some(c) = bytes.next() {
                self.conversion(c, out);
            }
        }
    }

    /// glibc's `strftime("%c")` in the C locale (`mosquitto_sub` never calls
    /// `setlocale()`), which is what `@c` prints.
    fn conversion(&self, c: u8, out: &mut Vec<u8>) {
        let hour12 = match self.hour % 12 {
            0 => 12,
            h => h,
        };
        let weekday = WEEKDAYS[self.weekday];
        let month = MONTHS[self.month - 1];
        match c {
            b'a' => out.extend_from_slice(&weekday.as_bytes()[..3]),
            b'A' => out.extend_from_slice(weekday.as_bytes()),
            b'b' | b'h' => out.extend_from_slice(&month.as_bytes()[..3]),
            b'B' => out.extend_from_slice(month.as_bytes()),
            b'c' => self.strftime(b"%a %b %e %H:%M:%S %Y", out),
            b'C' => put(out, format_args!("{:02}", self.year.div_euclid(100))),
            b'd' => put(out, format_args!("{:02}", self.day)),
            b'D' | b'x' => self.strftime(b"%m/%d/%y", out),
            b'e' => put(out, format_args!("{:2}", self.day)),
            b'F' => self.strftime(b"%Y-%m-%d", out),
            b'g' => put(out, format_args!("{:02}", self.iso_year.rem_euclid(100))),
            b'G' => put(out, format_args!("{:04}", self.iso_year)),
            b'H' => put(out, format_args!("{:02}", self.hour)),
            b'I' => put(out, format_args!("{hour12:02}")),
            b'j' => put(out, format_args!("{:03}", self.yday + 1)),
            b'k' => put(out, format_args!("{:2}", self.hour)),
            b'l' => put(out, format_args!("{hour12:2}")),
            b'm' => put(out, format_args!("{:02}", self.month)),
            b'M' => put(out, format_args!("{:02}", self.minute)),
            b'n' => out.push(b'\n'),
            b'p' => out.extend_from_slice(if self.hour < 12 { b"AM" } else { b"PM" }),
            b'P' => out.extend_from_slice(if self.hour < 12 { b"am" } else { b"pm" }),
            b'r' => self.strftime(b"%I:%M:%S %p", out),
            b'R' => self.strftime(b"%H:%M", out),
            b's' => put(out, format_args!("{}", self.epoch)),
            b'S' => put(out, format_args!("{:02}", self.second)),
            b't' => out.push(b'\t'),
            b'T' | b'X' => self.strftime(b"%H:%M:%S", out),
            b'u' => put(out, format_args!("{}", (self.weekday + 6) % 7 + 1)),
            b'U' => put(
                out,
                format_args!("{:02}", (self.yday + 7 - self.weekday as i64) / 7),
            ),
            b'V' => put(out, format_args!("{:02}", self.iso_week)),
            b'w' => put(out, format_args!("{}", self.weekday)),
            b'W' => put(
                out,
                format_args!(
                    "{:02}",
                    (self.yday + 7 - ((self.weekday + 6) % 7) as i64) / 7
                ),
            ),
            b'y' => put(out, format_args!("{:02}", self.year.rem_euclid(100))),
            b'Y' => put(out, format_args!("{:04}", self.year)),
            b'z' => {
                let sign = if self.offset < 0 { '-' } else { '+' };
                let minutes = self.offset.unsigned_abs() / 60;
                put(
                    out,
                    format_args!("{sign}{:04}", minutes / 60 * 100 + minutes % 60),
                );
            }
            b'Z' => out.extend_from_slice(self.abbreviation.as_bytes()),
            b'%' => out.push(b'%'),
            // glibc quirk: a width with no conversion after it is copied, padded to
            // that width: `@5` prints `   %5`.
            b'1'..=b'9' => {
                spaces(usize::from(c - b'0').saturating_sub(2), out);
                out.extend_from_slice(&[b'%', c]);
            }
            // Flags (`_-0^#+`), modifiers (`E`, `O`) and unknown letters are copied.
            _ => out.extend_from_slice(&[b'%', c]),
        }
    }
}

/// `%j` and `%J`: the message as a JSON object, through the parts of cJSON 1.7.15
/// that `mosquitto_sub` uses.
mod json {
    use std::borrow::Cow;

    use super::{put, LocalTime, MessageView, PrintError};

    /// cJSON's `CJSON_NESTING_LIMIT`.
    const NESTING_LIMIT: usize = 1000;

    /// A cJSON item. Strings are bytes: cJSON neither checks nor fixes UTF-8, and they
    /// end at their first NUL when printed, as C strings do.
    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Value<'a> {
        Null,
        False,
        True,
        Number(f64),
        String(Cow<'a, [u8]>),
        Array(Vec<Value<'a>>),
        /// Members in order; duplicate names are kept.
        Object(Vec<(Cow<'a, [u8]>, Value<'a>)>),
    }

    /// `json_print()`: `escaped` for `%j` (the payload as a JSON string), else `%J`
    /// (the payload parsed as JSON and printed again by cJSON).
    pub(super) fn message(
        msg: &MessageView<'_>,
        time: &LocalTime,
        escaped: bool,
        pretty: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), PrintError> {
        let number = |n: f64| Value::Number(n);
        let text = |s: &str| Value::String(Cow::Owned(s.as_bytes().to_vec()));
        let name = |s: &'static str| Cow::Borrowed(s.as_bytes());

        // Mosquitto quirk: "2020-05-06T21:48:00.123456Z+0100", a `Z` and an offset.
        let mut tst = Vec::new();
        time.strftime(b"%Y-%m-%dT%H:%M:%S.000000Z%z", &mut tst);
        if tst.len() > 26 {
            tst[20..26].copy_from_slice(format!("{:06}", time.nanos / 1000).as_bytes());
            tst[26] = b'Z';
        }

        let mut root = vec![
            (name("tst"), Value::String(Cow::Owned(tst))),
            (name("topic"), text(msg.topic)),
            (name("qos"), number(msg.qos.as_u8().into())),
            (name("retain"), number(u8::from(msg.retain).into())),
            (name("payloadlen"), number(msg.payload.len() as f64)),
        ];
        if msg.qos.as_u8() > 0 {
            root.push((name("mid"), number(msg.mid.into())));
        }
        if !msg.properties.is_empty() {
            root.push((name("properties"), properties(msg)));
        }
        let payload = if msg.payload.is_empty() {
            Value::Null
        } else if escaped {
            Value::String(Cow::Borrowed(msg.payload))
        } else {
            parse(msg.payload).ok_or_else(|| PrintError::PayloadNotJson {
                topic: msg.topic.to_owned(),
            })?
        };
        root.push((name("payload"), payload));
        print(&Value::Object(root), pretty, out);
        Ok(())
    }

    /// `json_print_properties()`. Mosquitto lists properties in the order they came
    /// on the wire; a `PublishProperties` does not keep that order, so they come in
    /// the order a Mosquitto broker relays them when the publisher wrote them in
    /// starling-proto's order: subscription identifiers first (the broker adds them),
    /// message expiry interval last (the broker rewrites it), the rest in between.
    fn properties<'a>(msg: &MessageView<'a>) -> Value<'a> {
        let props = msg.properties;
        let name = |s: &'static str| Cow::Borrowed(s.as_bytes());
        let text = |s: &'a str| Value::String(Cow::Borrowed(s.as_bytes()));
        let mut members = Vec::new();
        for id in &props.subscription_identifiers {
            members.push((
                name("subscription-identifier"),
                Value::Number(id.get().into()),
            ));
        }
        if let Some(utf8) = props.payload_format_indicator {
            members.push((
                name("payload-format-indicator"),
                Value::Number(u8::from(utf8).into()),
            ));
        }
        if props.topic_alias.is_some() {
            // Mosquitto quirk: it reads the alias asking for the message expiry
            // interval, which fails and leaves the variable as it was: 0, or the
            // length of correlation data listed before it (never, in this order).
            members.push((name("topic-alias"), Value::Number(0.0)));
        }
        if let Some(topic) = &props.response_topic {
            members.push((name("response-topic"), text(topic.as_str())));
        }
        if let Some(data) = &props.correlation_data {
            members.push((name("correlation-data"), Value::String(Cow::Borrowed(data))));
        }
        if !props.user_properties.is_empty() {
            let pairs = props
                .user_properties
                .iter()
                .map(|p| {
                    (
                        Cow::Borrowed(p.name.as_str().as_bytes()),
                        text(p.value.as_str()),
                    )
                })
                .collect();
            members.push((name("user-properties"), Value::Object(pairs)));
        }
        if let Some(content_type) = &props.content_type {
            members.push((name("content-type"), text(content_type.as_str())));
        }
        if let Some(expiry) = props.message_expiry_interval {
            members.push((
                name("message-expiry-interval"),
                Value::Number(expiry.into()),
            ));
        }
        Value::Object(members)
    }

    /// `cJSON_ParseWithOpts(payload, &end, true)` as Mosquitto checks it: one value,
    /// with only whitespace around it, covering the whole payload.
    ///
    /// cJSON quirks kept: every byte from 1 to 32 is whitespace; a UTF-8 byte order
    /// mark is skipped when at least 4 bytes long; strings keep control characters and
    /// invalid UTF-8 as they are; a bad `\u` hex digit reads as `\u0000`, which ends the
    /// string when printed; numbers are `strtod()` over the run of `0-9+-eE.` that
    /// starts with `-` or a digit (Debian's 1.7.15 has the later fix that lifted the
    /// 63-character limit on that run).
    pub(super) fn parse(payload: &[u8]) -> Option<Value<'static>> {
        // The payload is a C string to cJSON: a NUL ends it short of the payload's end.
        if payload.contains(&0) {
            return None;
        }
        let mut parser = Parser {
            buf: payload,
            pos: 0,
        };
        if payload.len() >= 4 && payload.starts_with(b"\xEF\xBB\xBF") {
            parser.pos = 3;
        }
        parser.skip_whitespace();
        let value = parser.value(0)?;
        parser.skip_whitespace();
        (parser.pos == payload.len()).then_some(value)
    }

    struct Parser<'b> {
        buf: &'b [u8],
        pos: usize,
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<u8> {
            self.buf.get(self.pos).copied()
        }

        fn skip_whitespace(&mut self) {
            while self.peek().is_some_and(|b| b <= 32) {
                self.pos += 1;
            }
        }

        fn value(&mut self, depth: usize) -> Option<Value<'static>> {
            let rest = &self.buf[self.pos..];
            for (word, value) in [
                (&b"null"[..], Value::Null),
                (b"false", Value::False),
                (b"true", Value::True),
            ] {
                if rest.starts_with(word) {
                    self.pos += word.len();
                    return Some(value);
                }
            }
            match self.peek()? {
                b'"' => self.string().map(|s| Value::String(Cow::Owned(s))),
                b'-' | b'0'..=b'9' => self.number(),
                b'[' => self.array(depth),
                b'{' => self.object(depth),
                _ => None,
            }
        }

        fn number(&mut self) -> Option<Value<'static>> {
            let run = self.buf[self.pos..]
                .iter()
                .take_while(|b| matches!(b, b'0'..=b'9' | b'+' | b'-' | b'e' | b'E' | b'.'))
                .count();
            let (number, used) = strtod(&self.buf[self.pos..self.pos + run])?;
            self.pos += used;
            Some(Value::Number(number))
        }

        fn string(&mut self) -> Option<Vec<u8>> {
            if self.peek() != Some(b'"') {
                return None;
            }
            let start = self.pos + 1;
            let mut end = start;
            while end < self.buf.len() && self.buf[end] != b'"' {
                if self.buf[end] == b'\\' {
                    end += 1;
                }
                end += 1;
            }
            if end >= self.buf.len() {
                return None;
            }
            let mut text = Vec::with_capacity(end - start);
            let mut p = start;
            while p < end {
                if self.buf[p] != b'\\' {
                    text.push(self.buf[p]);
                    p += 1;
                    continue;
                }
                let escaped = match self.buf[p + 1] {
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    c @ (b'"' | b'\\' | b'/') => c,
                    b'u' => {
                        p += utf16_literal(&self.buf[p..end], &mut text)?;
                        continue;
                    }
                    _ => return None,
                };
                text.push(escaped);
                p += 2;
            }
            self.pos = end + 1;
            Some(text)
        }

        fn array(&mut self, depth: usize) -> Option<Value<'static>> {
            if depth >= NESTING_LIMIT {
                return None;
            }
            self.pos += 1;
            self.skip_whitespace();
            let mut items = Vec::new();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Some(Value::Array(items));
            }
            loop {
                self.skip_whitespace();
                items.push(self.value(depth + 1)?);
                self.skip_whitespace();
                if self.peek() != Some(b',') {
                    break;
                }
                self.pos += 1;
            }
            (self.peek() == Some(b']')).then(|| {
                self.pos += 1;
                Value::Array(items)
            })
        }

        fn object(&mut self, depth: usize) -> Option<Value<'static>> {
            if depth >= NESTING_LIMIT {
                return None;
            }
            self.pos += 1;
            self.skip_whitespace();
            let mut members = Vec::new();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Some(Value::Object(members));
            }
            loop {
                self.skip_whitespace();
                let name = self.string()?;
                self.skip_whitespace();
                if self.peek() != Some(b':') {
                    return None;
                }
                self.pos += 1;
                self.skip_whitespace();
                members.push((Cow::Owned(name), self.value(depth + 1)?));
                self.skip_whitespace();
                if self.peek() != Some(b',') {
                    break;
                }
                self.pos += 1;
            }
            (self.peek() == Some(b'}')).then(|| {
                self.pos += 1;
                Value::Object(members)
            })
        }
    }

    /// `strtod()` in the C locale on a run of `0-9+-eE.`: the longest decimal number
    /// at its start and how many bytes it used, or `None` if there is none.
    fn strtod(run: &[u8]) -> Option<(f64, usize)> {
        let digits = |from: usize| {
            run[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let mut end = usize::from(matches!(run.first(), Some(b'+' | b'-')));
        let mut mantissa = digits(end);
        end += mantissa;
        if run.get(end) == Some(&b'.') {
            let fraction = digits(end + 1);
            mantissa += fraction;
            end += 1 + fraction;
        }
        if mantissa == 0 {
            return None;
        }
        if matches!(run.get(end), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(run.get(end + 1), Some(b'+' | b'-')));
            let exponent = digits(end + 1 + sign);
            if exponent > 0 {
                end += 1 + sign + exponent;
            }
        }
        let text = std::str::from_utf8(&run[..end]).ok()?;
        Some((text.parse().ok()?, end))
    }

    /// cJSON's `utf16_literal_to_utf8()` on `\uXXXX` (or a surrogate pair of them) at
    /// the start of `s`, which ends at the string's closing quote: the bytes used.
    fn utf16_literal(s: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        if s.len() < 6 {
            return None;
        }
        let first = hex4(&s[2..6]);
        let (code, used) = match first {
            0xDC00..=0xDFFF => return None,
            0xD800..=0xDBFF => {
                if s.len() < 12 || s[6] != b'\\' || s[7] != b'u' {
                    return None;
                }
                let second = hex4(&s[8..12]);
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return None;
                }
                (0x10000 + (((first & 0x3FF) << 10) | (second & 0x3FF)), 12)
            }
            _ => (first, 6),
        };
        let mut utf8 = [0; 4];
        out.extend_from_slice(char::from_u32(code)?.encode_utf8(&mut utf8).as_bytes());
        Some(used)
    }

    /// cJSON's `parse_hex4()`: 0 as soon as a digit is not hexadecimal.
    fn hex4(s: &[u8]) -> u32 {
        let mut code = 0;
        for &b in s {
            let Some(digit) = char::from(b).to_digit(16) else {
                return 0;
            };
            code = code * 16 + digit;
        }
        code
    }

    /// `cJSON_PrintUnformatted()`, or `cJSON_Print()` when `pretty`: tabs to indent,
    /// `":\t"` after names, `", "` between array items, arrays on one line.
    pub(super) fn print(value: &Value<'_>, pretty: bool, out: &mut Vec<u8>) {
        print_value(value, 0, pretty, out);
    }

    fn print_value(value: &Value<'_>, depth: usize, pretty: bool, out: &mut Vec<u8>) {
        match value {
            Value::Null => out.extend_from_slice(b"null"),
            Value::False => out.extend_from_slice(b"false"),
            Value::True => out.extend_from_slice(b"true"),
            Value::Number(n) => print_number(*n, out),
            Value::String(s) => print_string(s, out),
            Value::Array(items) => {
                out.push(b'[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.extend_from_slice(if pretty { b", " } else { b"," });
                    }
                    print_value(item, depth + 1, pretty, out);
                }
                out.push(b']');
            }
            Value::Object(members) => {
                let depth = depth + 1;
                out.push(b'{');
                if pretty {
                    out.push(b'\n');
                }
                for (n, (name, member)) in members.iter().enumerate() {
                    if pretty {
                        out.resize(out.len() + depth, b'\t');
                    }
                    print_string(name, out);
                    out.push(b':');
                    if pretty {
                        out.push(b'\t');
                    }
                    print_value(member, depth, pretty, out);
                    if n + 1 < members.len() {
                        out.push(b',');
                    }
                    if pretty {
                        out.push(b'\n');
                    }
                }
                if pretty {
                    out.resize(out.len() + depth - 1, b'\t');
                }
                out.push(b'}');
            }
        }
    }

    /// cJSON 1.7.15's `print_number()`: `%1.15g`, or `%1.17g` when that does not read
    /// back as the same double; infinities print as `null`.
    fn print_number(n: f64, out: &mut Vec<u8>) {
        if !n.is_finite() {
            out.extend_from_slice(b"null");
            return;
        }
        let short = format_g(n, 15);
        let back: f64 = short.parse().unwrap_or(f64::NAN);
        let close = (back - n).abs() <= back.abs().max(n.abs()) * f64::EPSILON;
        out.extend_from_slice(if close { short } else { format_g(n, 17) }.as_bytes());
    }

    /// C's `%.{precision}g` for a finite `n`.
    pub(super) fn format_g(n: f64, precision: usize) -> String {
        if n == 0.0 {
            return if n.is_sign_negative() { "-0" } else { "0" }.to_owned();
        }
        let scientific = format!("{:.*e}", precision - 1, n);
        let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
        let exponent: i32 = exponent.parse().expect("{:e} has a decimal exponent");
        let trim = |s: &str| -> String {
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            } else {
                s.to_owned()
            }
        };
        if exponent < -4 || exponent >= precision as i32 {
            let sign = if exponent < 0 { '-' } else { '+' };
            format!("{}e{sign}{:02}", trim(mantissa), exponent.unsigned_abs())
        } else {
            let decimals = (precision as i32 - 1 - exponent) as usize;
            trim(&format!("{n:.decimals$}"))
        }
    }

    /// cJSON's `print_string_ptr()`: up to the first NUL; `"`, `\`, `\b`, `\f`, `\n`,
    /// `\r`, `\t` escaped short, other bytes below 32 as `\u00xx`, the rest as they are.
    fn print_string(s: &[u8], out: &mut Vec<u8>) {
        out.push(b'"');
        for &b in s.iter().take_while(|&&b| b != 0) {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0..=31 => put(out, format_args!("\\u{b:04x}")),
                _ => out.push(b),
            }
        }
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use jiff::tz::TimeZone;
    use starling_proto::property::{PublishProperties, UserProperty};
    use starling_proto::{MqttString, QoS, SubscriptionId, TopicName};

    use super::json::{format_g, parse, print};
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

    fn reprint(payload: &[u8]) -> Option<String> {
        let value = parse(payload)?;
        let mut out = Vec::new();
        print(&value, false, &mut out);
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn json_parse_follows_cjson() {
        for (payload, expected) in [
            (
                &br#"{"a": [1, 2.50, 1e3, -0, 1.5e300, 12345678901, true, null, "\u00e9\/x"], "b":{}, "c":[]}"#[..],
                Some(r#"{"a":[1,2.5,1000,-0,1.5e+300,12345678901,true,null,"é/x"],"b":{},"c":[]}"#),
            ),
            (b" \x01 -12.5e-3 \t", Some("-0.0125")),
            (b"01", Some("1")),
            (b"1e400", Some("null")),
            (b"\xEF\xBB\xBF[1]", Some("[1]")),
            (b"\xEF\xBB\xBF1", Some("1")),
            (b"\xEF\xBB\xBF", None),
            (br#""\ud83d\ude00""#, Some("\"\u{1F600}\"")),
            (br#""\ud83d x""#, None),
            (br#""\ude00""#, None),
            (br#""a\uZZZZb""#, Some(r#""a""#)),
            (br#"{"a\u0000b":"c\u0000d"}"#, Some(r#"{"a":"c"}"#)),
            (b"\"t\x01\xff\"", Some("\"t\\u0001\u{FFFD}\"")),
            (br#"{"a":1,"a":2}"#, Some(r#"{"a":1,"a":2}"#)),
            (b"{\"a\":1,}", None),
            (b"[1 2]", None),
            (b".5", None),
            (b"-", None),
            (b"1.5.3", None),
            (b"[1e+2,2E-2,1e,5.]", None),
            (b"[1e+2,2E-2]", Some("[100,0.02]")),
            (b"nullx", None),
            (b"\"open", None),
            (b"{} \x00", None),
            (b"", None),
        ] {
            assert_eq!(reprint(payload).as_deref(), expected, "{}", payload.escape_ascii());
        }
        // strtod sees the whole run of number characters, however long.
        let long = format!("1{}", "0".repeat(70));
        assert_eq!(reprint(long.as_bytes()).as_deref(), Some("1e+70"));
        assert_eq!(reprint(format!("{long}x").as_bytes()), None);
        // cJSON's nesting limit is 1,000.
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(reprint(nested(1000).as_bytes()).is_some());
        assert!(reprint(nested(1001).as_bytes()).is_none());
    }

    #[test]
    fn numbers_print_as_cjson_1_7_15() {
        for (n, expected) in [
            (0.1, "0.1"),
            (0.30000000000000004, "0.3"),
            (1e21, "1e+21"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (100000000000000000000.0, "1e+20"),
            (-7.0, "-7"),
            (5e-324, "4.94065645841247e-324"),
            (f64::MAX, "1.79769313486232e+308"),
        ] {
            let mut out = Vec::new();
            print(&json::Value::Number(n), false, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{n:e}");
        }
        assert_eq!(format_g(123456.0, 15), "123456");
        assert_eq!(format_g(1234567.0, 6), "1.23457e+06");
        assert_eq!(format_g(0.000123, 15), "0.000123");
    }
}

/// The reference test: the real `mosquitto_sub` 2.0.11, against a real `mosquitto`, prints
/// every message of a list with every format of a list (and `-v`, `-N`, `--pretty`, MQTT
/// 3.1.1 and 5.0); [`print_message`] must print the same bytes, on stdout and stderr.
///
/// It runs the real tools and fails, never skips, when they are missing (scripts/test
/// installs them). Time fields are compared exactly too: each format carries one source
/// of the time `mosquitto_sub` used (`@s.@N`, `%U`, or an ISO 8601 time it printed),
/// which is read back from its output and given to [`print_message`].
#[cfg(all(test, unix))]
mod reference {
    use std::ffi::OsString;
    use std::fs;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::ffi::OsStringExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::thread::{self, JoinHandle};
    use std::time::{Duration, Instant, SystemTime};

    use bytes::Bytes;
    use jiff::tz::TimeZone;
    use starling_proto::property::{PublishProperties, UserProperty};
    use starling_proto::{MqttString, QoS, SubscriptionId, TopicName};

    use super::*;

    /// Ends every format, in `-F` syntax, so that records can be told apart.
    const TERMINATOR: &[u8] = br"\0\e\e\0";
    const RECORD_END: &[u8] = b"\0\x1b\x1b\0";
    const SUBSCRIPTION_ID: u32 = 7;
    const UTC: &str = "UTC0";

    fn tool(name: &str) -> PathBuf {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|dir| dir.join(name))
            .find(|file| file.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "{name} is not installed: this test compares with Debian's mosquitto and \
                     mosquitto-clients 2.0.11 (scripts/test installs them)"
                )
            })
    }

    /// A message as published, in the order subscribers receive it.
    struct Sent {
        topic: &'static str,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
        properties: PublishProperties,
    }

    fn string(s: &str) -> MqttString {
        MqttString::try_from(s).unwrap()
    }

    fn user(name: &str, value: &str) -> UserProperty {
        UserProperty {
            name: string(name),
            value: string(value),
        }
    }

    impl Sent {
        fn view<'a>(
            &'a self,
            mid: u16,
            properties: &'a PublishProperties,
            received: SystemTime,
        ) -> MessageView<'a> {
            MessageView {
                topic: self.topic,
                payload: &self.payload,
                qos: self.qos,
                retain: self.retain,
                mid,
                properties,
                received,
            }
        }
    }

    /// The packet identifiers the broker gives a new subscriber's messages: 1, 2, …
    /// for those above QoS 0.
    fn packet_ids(sent: &[Sent]) -> Vec<u16> {
        let mut last = 0;
        sent.iter()
            .map(|message| match message.qos {
                QoS::AtMostOnce => 0,
                _ => {
                    last += 1;
                    last
                }
            })
            .collect()
    }

    fn messages() -> Vec<Sent> {
        let sent = |topic, payload: &[u8], qos| Sent {
            topic,
            payload: payload.to_vec(),
            qos,
            retain: false,
            properties: PublishProperties::default(),
        };
        let mut retained = sent("ref/retained", "retained é".as_bytes(), QoS::AtLeastOnce);
        retained.retain = true;
        retained.properties.user_properties = vec![user("r", "1")];
        retained.properties.content_type = Some(string("text/plain"));
        // Messages with a message expiry interval are QoS 0: the broker forwards those
        // in the loop iteration that received them, while it counts down the interval
        // of a QoS 1 or 2 message that waits past a second boundary.
        let mut props = sent(
            "ref/props",
            b"props \"quoted\" \\ back/slash",
            QoS::AtMostOnce,
        );
        props.properties = PublishProperties {
            payload_format_indicator: Some(true),
            response_topic: Some(TopicName::try_from("resp/topic").unwrap()),
            correlation_data: Some(Bytes::from_static(b"corr\x01\xff")),
            user_properties: vec![
                user("name 1", "va:lue"),
                user("k2", ""),
                user("name 1", "dup"),
            ],
            content_type: Some(string("application/x-ct")),
            message_expiry_interval: Some(3600),
            ..PublishProperties::default()
        };
        let mut long = sent(
            "ref/long",
            b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-the-end-of-it",
            QoS::AtMostOnce,
        );
        long.properties.payload_format_indicator = Some(false);
        long.properties.message_expiry_interval = Some(u32::MAX);
        let nested = |n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
        vec![
            retained,
            props,
            long,
            sent("ref/te\"x\\t", b"hello world", QoS::AtMostOnce),
            sent(
                "ref/a b/binary",
                b"bin\x01\x02\t\n\r\x1f \x7f\x80\xc3\xa9\xff\"\\\x00end",
                QoS::AtLeastOnce,
            ),
            sent("ref/empty", b"", QoS::ExactlyOnce),
            sent(
                "ref/json",
                br#"{"a":[1,2.50,-0,1e3,1.5e300,12345678901,0.1,1e-7],"s":"x\u00e9\n\/","n":null,"t":true,"f":false,"o":{},"e":[],"d":{"k":[{"z":[]},[1,[2]]]}}"#,
                QoS::ExactlyOnce,
            ),
            sent("ref/json/scalar", b" \x01 -12.5e-3 \t", QoS::AtMostOnce),
            sent(
                "ref/json/string",
                br#""\ud83d\ude00 \u00e9 \t \/ \b\f\u001f""#,
                QoS::AtLeastOnce,
            ),
            sent("ref/json/bad", b"{\"a\":1,}", QoS::AtMostOnce),
            sent("ref/json/bom", b"\xEF\xBB\xBF[1,2]", QoS::AtMostOnce),
            sent("ref/json/hex", br#""a\uZZZZb""#, QoS::AtMostOnce),
            sent(
                "ref/json/numbers",
                b"[1e400,-1e400,2.2250738585072014e-308,5e-324,0.30000000000000004,\
                  100000000000000000000,1E2,1.7976931348623157e308,-0.0,0.0,0.1,\
                  123456789012345678,1.5,-7,3.14159265358979323846,1e21,1e-5,0.0001,01,1e+2,2E-2]",
                QoS::AtMostOnce,
            ),
            sent("ref/json/deep", &nested(1000), QoS::AtMostOnce),
            sent("ref/json/deeper", &nested(1001), QoS::AtMostOnce),
            sent(
                "ref/json/keys",
                br#"{"a":1,"a":2,"\u0041\"":3, "x" : [ true , false , null ] , "nul\u0000cut":"v\u0000w"}"#,
                QoS::AtMostOnce,
            ),
            sent("ref/json/ws", b"\t\n\r {\"k\"\x1f:\x01\"v\"}\x20\x02", QoS::AtMostOnce),
            sent("ref/json/raw", b"\"tab\there\x01\xff\"", QoS::AtMostOnce),
            sent("ref/json/bad2", b"[1 2]", QoS::AtMostOnce),
            sent("ref/json/bad3", b"\"unterminated", QoS::AtMostOnce),
            sent("ref/json/bad4", b".5", QoS::AtMostOnce),
            sent("ref/json/bad5", b"1.5.3", QoS::AtMostOnce),
            sent("ref/json/long-number", format!("1{}", "0".repeat(70)).as_bytes(), QoS::AtMostOnce),
            sent("ref/json/surrogate", br#""\ud83d x""#, QoS::AtMostOnce),
        ]
    }

    /// The `-D publish …` arguments for `props`, in the order `json::properties` lists them.
    fn property_args(props: &PublishProperties) -> Vec<OsString> {
        let mut args: Vec<Vec<u8>> = Vec::new();
        let mut add = |name: &str, values: &[&[u8]]| {
            args.extend([
                b"-D".to_vec(),
                b"publish".to_vec(),
                name.as_bytes().to_vec(),
            ]);
            args.extend(values.iter().map(|v| v.to_vec()));
        };
        if let Some(utf8) = props.payload_format_indicator {
            add(
                "payload-format-indicator",
                &[if utf8 { b"1" } else { b"0" }],
            );
        }
        if let Some(topic) = &props.response_topic {
            add("response-topic", &[topic.as_str().as_bytes()]);
        }
        if let Some(data) = &props.correlation_data {
            add("correlation-data", &[data]);
        }
        for p in &props.user_properties {
            add(
                "user-property",
                &[p.name.as_str().as_bytes(), p.value.as_str().as_bytes()],
            );
        }
        if let Some(content_type) = &props.content_type {
            add("content-type", &[content_type.as_str().as_bytes()]);
        }
        if let Some(expiry) = props.message_expiry_interval {
            add("message-expiry-interval", &[expiry.to_string().as_bytes()]);
        }
        args.into_iter().map(OsString::from_vec).collect()
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Protocol {
        /// MQTT 5.0, subscribed with subscription identifier 7.
        V5WithId,
        V5,
        V311,
    }

    /// Where the time `mosquitto_sub` used is read back from.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Clock {
        /// The format has no time field.
        None,
        /// `@s.@N|` is put before the format.
        At,
        /// `%U|` is put before the format.
        Unix,
        /// The first ISO 8601 time printed (`%I`, or `tst` of `%j`), in UTC.
        Iso,
    }

    #[derive(Debug, Clone)]
    struct Case {
        format: Option<Vec<u8>>,
        verbose: bool,
        eol: bool,
        pretty: bool,
        protocol: Protocol,
        clock: Clock,
        tz: &'static str,
    }

    impl Case {
        fn new(format: &[u8]) -> Case {
            Case {
                format: Some(format.to_vec()),
                verbose: false,
                eol: true,
                pretty: false,
                protocol: Protocol::V5WithId,
                clock: Clock::None,
                tz: UTC,
            }
        }

        fn default_output(verbose: bool, eol: bool) -> Case {
            Case {
                format: None,
                verbose,
                eol,
                ..Case::new(b"")
            }
        }

        fn clock(mut self, clock: Clock) -> Case {
            self.clock = clock;
            self
        }

        fn protocol(mut self, protocol: Protocol) -> Case {
            self.protocol = protocol;
            self
        }

        /// The `-F` given to `mosquitto_sub`.
        fn full_format(&self) -> Option<Vec<u8>> {
            let prefix: &[u8] = match self.clock {
                Clock::At => b"@s.@N|",
                Clock::Unix => b"%U|",
                Clock::None | Clock::Iso => b"",
            };
            let format = self.format.as_ref()?;
            Some([prefix, format, TERMINATOR].concat())
        }
    }

    fn cases() -> Vec<Case> {
        let mut every_at = Vec::new();
        for c in (0x20..=0x7e).chain("é".bytes()) {
            every_at.extend([b'@', c, b' ']);
        }
        let mut cases: Vec<Case> = [
            &br"%%|%t|%p|%l|%q|%r|%m"[..],
            br"%x|%X",
            br"%A|%C|%D|%E|%F|%P|%R|%S",
            br"[%10t][%-10t][%.3t][%10.3t][%-10.3t][%.0t][%3t][%.t]",
            br"[%10p][%-10p][%010p][%3p][%-p][%.2p][%-3p][%-05p][%0p][%100p]",
            br"[%10x][%-10x][%010X][%3x][%-x][%1x][%2X][%.1x][%-05x]",
            br"[%5l][%-5l][%05l][%5m][%-5m][%05m][%5q][%-5r][%05q]",
            br"[%5A][%-5A][%05A][%5E][%-5E][%05E][%5F][%-5F][%05F][%5S][%-5S][%05S]",
            br"[%10C][%-10C][%.2C][%05C][%3.1C][%10R][%-10R][%.3R][%010R]",
            br"[%10D][%10P][%-5%][%05%]",
            br"\\|\0|\a|\e|\n|\r|\t|\v|@@|%%",
            "é→ %t ←é".as_bytes(),
            br"%00005t|%-0010l|%99t|%0.5t",
            br"",
        ]
        .into_iter()
        .map(Case::new)
        .collect();
        cases.extend([
            Case::new(br"%A|%C|%D|%E|%F|%P|%R|%S|%m|%q").protocol(Protocol::V311),
            Case::new(br"%S|[%5S]|%P").protocol(Protocol::V5),
            Case {
                eol: false,
                ..Case::new(br"%t %p")
            },
            Case::new(&every_at).clock(Clock::At),
            Case {
                tz: "NST3:30NDT,M3.2.0,M11.1.0",
                ..Case::new(&every_at).clock(Clock::At)
            },
            Case {
                tz: "<+0545>-5:45",
                ..Case::new(br"@z @Z @c").clock(Clock::At)
            },
            Case::new(br"").clock(Clock::Unix),
            Case::new(br"%I").clock(Clock::Iso),
            Case::new(br"[%30I]").clock(Clock::Iso),
            Case::new(br"[%-30I]").clock(Clock::Iso),
            Case::new(br"[%.10I]").clock(Clock::Iso),
            Case::new(br"%j").clock(Clock::Iso),
            Case::new(br"%J|%t").clock(Clock::Iso),
            Case {
                pretty: true,
                ..Case::new(br"%j").clock(Clock::Iso)
            },
            Case {
                pretty: true,
                ..Case::new(br"%J").clock(Clock::Iso)
            },
            Case::new(br"%j").clock(Clock::Iso).protocol(Protocol::V311),
            Case::new(br"%j").clock(Clock::Iso).protocol(Protocol::V5),
            Case {
                eol: false,
                pretty: true,
                ..Case::new(br"%j").clock(Clock::Iso).protocol(Protocol::V311)
            },
            Case::default_output(false, true),
            Case::default_output(true, true),
            Case::default_output(false, false),
            Case::default_output(true, false),
        ]);
        cases
    }

    /// Kills what it holds when dropped, so a failed test leaves no process behind.
    struct Processes(Vec<Child>);

    impl Drop for Processes {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn collect(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&buffer);
        let reader = thread::spawn(move || {
            let mut chunk = [0; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                shared.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        (buffer, reader)
    }

    fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn start_broker(dir: &Path, processes: &mut Processes) -> u16 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let config = dir.join("mosquitto.conf");
        fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let broker = Command::new(tool("mosquitto"))
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto does not start");
        processes.0.push(broker);
        wait_until("mosquitto to listen", Duration::from_secs(10), || {
            if let Some(status) = processes.0[0].try_wait().unwrap() {
                panic!("mosquitto exited with {status} (port {port} taken?)");
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        port
    }

    fn publish(port: u16, dir: &Path, n: usize, sent: &Sent) {
        let mut command = Command::new(tool("mosquitto_pub"));
        command
            .args(["-h", "127.0.0.1", "-V", "mqttv5"])
            .args(["-p", &port.to_string()])
            .args(["-q", &sent.qos.as_u8().to_string()])
            .args(["-t", sent.topic]);
        if sent.payload.is_empty() {
            command.arg("-n");
        } else {
            let file = dir.join(format!("payload-{n}"));
            fs::write(&file, &sent.payload).unwrap();
            command.arg("-f").arg(file);
        }
        if sent.retain {
            command.arg("-r");
        }
        command.args(property_args(&sent.properties));
        let output = command
            .stdin(Stdio::null())
            .output()
            .expect("mosquitto_pub does not run");
        assert!(
            output.status.success(),
            "mosquitto_pub of {} failed: {}",
            sent.topic,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    struct Subscriber {
        stdout: Arc<Mutex<Vec<u8>>>,
        stderr: Arc<Mutex<Vec<u8>>>,
        readers: Vec<JoinHandle<()>>,
    }

    fn subscribe(port: u16, case: &Case, count: usize, processes: &mut Processes) -> Subscriber {
        let mut command = Command::new(tool("mosquitto_sub"));
        command
            .args(["-h", "127.0.0.1", "-q", "2", "-t", "ref/#", "-W", "60"])
            .args(["-p", &port.to_string()])
            .args(["-C", &count.to_string()])
            .env("TZ", case.tz);
        match case.protocol {
            Protocol::V5WithId => command
                .args(["-V", "mqttv5", "-D", "subscribe"])
                .args(["subscription-identifier", &SUBSCRIPTION_ID.to_string()]),
            Protocol::V5 => command.args(["-V", "mqttv5"]),
            Protocol::V311 => command.args(["-V", "mqttv311"]),
        };
        if let Some(format) = case.full_format() {
            command.arg("-F").arg(OsString::from_vec(format));
        }
        for (set, flag) in [
            (case.verbose, "-v"),
            (!case.eol, "-N"),
            (case.pretty, "--pretty"),
        ] {
            if set {
                command.arg(flag);
            }
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub does not start");
        let (stdout, out_reader) = collect(child.stdout.take().unwrap());
        let (stderr, err_reader) = collect(child.stderr.take().unwrap());
        processes.0.push(child);
        Subscriber {
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    /// Splits a subscriber's output after each [`RECORD_END`] (and newline).
    fn records(mut output: &[u8], eol: bool) -> Vec<&[u8]> {
        let end = [RECORD_END, if eol { b"\n" } else { b"" }].concat();
        let mut records = Vec::new();
        while let Some(at) = output.windows(end.len()).position(|w| w == end) {
            records.push(&output[..at + end.len()]);
            output = &output[at + end.len()..];
        }
        if !output.is_empty() {
            records.push(output);
        }
        records
    }

    /// The time `mosquitto_sub` printed at the start of `record`, or in it.
    fn time_in(record: &[u8], clock: Clock) -> Option<SystemTime> {
        let text = String::from_utf8_lossy(record);
        match clock {
            Clock::None => Some(SystemTime::UNIX_EPOCH),
            Clock::At | Clock::Unix => {
                let (seconds, rest) = text.split_once('.')?;
                let nanos = rest.get(..9)?;
                let since = Duration::new(seconds.parse().ok()?, nanos.parse().ok()?);
                Some(SystemTime::UNIX_EPOCH + since)
            }
            Clock::Iso => {
                let bytes = text.as_bytes();
                let start = (0..bytes.len()).find(|&i| {
                    bytes.len() >= i + 10
                        && bytes[i..i + 10].iter().enumerate().all(|(j, b)| {
                            if j == 4 || j == 7 {
                                *b == b'-'
                            } else {
                                b.is_ascii_digit()
                            }
                        })
                })?;
                // As much of YYYY-MM-DDTHH:MM:SS.ffffff as was printed.
                let shape = b"dddd-dd-ddTdd:dd:dd.dddddd";
                let mut len = 0;
                while len < shape.len()
                    && bytes.get(start + len).is_some_and(|b| match shape[len] {
                        b'd' => b.is_ascii_digit(),
                        s => *b == s,
                    })
                {
                    len += 1;
                }
                let iso = match len {
                    10..=18 => format!("{}T00:00:00", &text[start..start + 10]),
                    19..=25 => text[start..start + 19].to_owned(),
                    _ => text[start..start + 26].to_owned(),
                };
                let civil: jiff::civil::DateTime = iso.parse().ok()?;
                Some(civil.to_zoned(TimeZone::UTC).ok()?.timestamp().into())
            }
        }
    }

    fn expected_properties(sent: &Sent, protocol: Protocol) -> PublishProperties {
        match protocol {
            Protocol::V311 => PublishProperties::default(),
            Protocol::V5 => sent.properties.clone(),
            Protocol::V5WithId => PublishProperties {
                subscription_identifiers: vec![SubscriptionId::new(SUBSCRIPTION_ID).unwrap()],
                ..sent.properties.clone()
            },
        }
    }

    #[test]
    fn reference_matches_mosquitto_sub_2_0_11() {
        let version = Command::new(tool("mosquitto_sub"))
            .arg("--help")
            .output()
            .expect("mosquitto_sub does not run");
        let help = String::from_utf8_lossy(&version.stdout);
        assert!(
            help.contains("mosquitto_sub version 2.0.11 "),
            "this test compares with mosquitto_sub 2.0.11; found: {}",
            help.lines().nth(1).unwrap_or_default()
        );

        let dir = std::env::temp_dir().join(format!("starling-sub-format-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let _dir = TempDir(dir.clone());
        let mut processes = Processes(Vec::new());
        let port = start_broker(&dir, &mut processes);

        let sent = messages();
        let cases = cases();
        publish(port, &dir, 0, &sent[0]);
        let subscribers: Vec<Subscriber> = cases
            .iter()
            .map(|case| subscribe(port, case, sent.len(), &mut processes))
            .collect();
        // One message at a time, each once every subscriber has printed the one before:
        // the broker may send a QoS 2 message after a QoS 0 one published later.
        let mids = packet_ids(&sent);
        let printed = |case: &Case, subscriber: &Subscriber| -> usize {
            let stdout = subscriber.stdout.lock().unwrap();
            match case.format {
                Some(_) => records(&stdout, case.eol).len(),
                // Without -F there is no time: the output so far is known in advance.
                None => (0..=sent.len())
                    .take_while(|&n| {
                        let mut expected = Vec::new();
                        for (message, &mid) in sent.iter().zip(&mids).take(n) {
                            let properties = expected_properties(message, case.protocol);
                            let view = message.view(mid, &properties, SystemTime::UNIX_EPOCH);
                            format_default(case.verbose, case.eol, &view, &mut expected);
                        }
                        stdout.starts_with(&expected)
                    })
                    .count()
                    .saturating_sub(1),
            }
        };
        for (n, message) in sent.iter().enumerate() {
            // The retained message is there before anyone subscribes: it reaches each
            // subscriber at once, and shows that its subscription is in place.
            if n > 0 {
                publish(port, &dir, n, message);
            }
            wait_until(
                &format!("every mosquitto_sub to print {}", message.topic),
                Duration::from_secs(20),
                || {
                    cases
                        .iter()
                        .zip(&subscribers)
                        .all(|(case, subscriber)| printed(case, subscriber) > n)
                },
            );
        }
        wait_until(
            "every mosquitto_sub to exit",
            Duration::from_secs(30),
            || {
                processes.0[1..]
                    .iter_mut()
                    .all(|child| child.try_wait().unwrap().is_some())
            },
        );

        let mut failures = Vec::new();
        for (case, subscriber) in cases.iter().zip(subscribers) {
            for reader in subscriber.readers {
                reader.join().unwrap();
            }
            let stdout = subscriber.stdout.lock().unwrap().clone();
            let stderr = subscriber.stderr.lock().unwrap().clone();
            let actual: Vec<&[u8]> = match case.format {
                Some(_) => records(&stdout, case.eol),
                None => vec![&stdout],
            };
            let options = OutputOptions {
                format: case.full_format(),
                verbose: case.verbose,
                eol: case.eol,
                pretty: case.pretty,
                time_zone: TimeZone::posix(case.tz).unwrap(),
            };
            let mut expected_stdout = Vec::new();
            let mut expected_stderr = Vec::new();
            for (n, message) in sent.iter().enumerate() {
                let properties = expected_properties(message, case.protocol);
                let received = actual
                    .get(n)
                    .filter(|_| case.format.is_some())
                    .and_then(|record| time_in(record, case.clock))
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let view = message.view(mids[n], &properties, received);
                let mut record = Vec::new();
                for error in print_message(&options, &view, &mut record) {
                    expected_stderr.extend_from_slice(format!("{error}\n").as_bytes());
                }
                if case.format.is_some() && actual.get(n).copied() != Some(&record[..]) {
                    failures.push(format!(
                        "{case:?}\n  message {n} ({}):\n  mosquitto_sub: {}\n  starling:      {}",
                        message.topic,
                        actual.get(n).copied().unwrap_or_default().escape_ascii(),
                        record.escape_ascii(),
                    ));
                }
                expected_stdout.extend_from_slice(&record);
            }
            if stdout != expected_stdout && (case.format.is_none() || failures.is_empty()) {
                failures.push(format!(
                    "{case:?}\n  whole stdout differs:\n  mosquitto_sub: {}\n  starling:      {}",
                    stdout.escape_ascii(),
                    expected_stdout.escape_ascii(),
                ));
            }
            if stderr != expected_stderr {
                failures.push(format!(
                    "{case:?}\n  stderr differs:\n  mosquitto_sub: {}\n  starling:      {}",
                    stderr.escape_ascii(),
                    expected_stderr.escape_ascii(),
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} differences from mosquitto_sub 2.0.11:\n{}",
            failures.len(),
            failures
                .iter()
                .take(25)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
