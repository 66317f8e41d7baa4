//! `%j` and `%J`: the message as a JSON object, through the parts of cJSON 1.7.15
//! that `mosquitto_sub` uses.

use std::borrow::Cow;

use super::strftime::LocalTime;
use super::{put, MessageView, PrintError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
            print(&Value::Number(n), false, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{n:e}");
        }
        assert_eq!(format_g(123456.0, 15), "123456");
        assert_eq!(format_g(1234567.0, 6), "1.23457e+06");
        assert_eq!(format_g(0.000123, 15), "0.000123");
    }
}
