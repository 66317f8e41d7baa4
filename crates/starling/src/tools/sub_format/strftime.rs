//! The time fields: a receive time broken down as `localtime()` does, and glibc
//! `strftime()` in the C locale for `@` conversions.

use std::time::SystemTime;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::{put, spaces};

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
pub(super) struct LocalTime {
    pub(super) epoch: i64,
    pub(super) nanos: u32,
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
    pub(super) fn new(received: SystemTime, time_zone: &TimeZone) -> LocalTime {
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
    pub(super) fn strftime(&self, format: &[u8], out: &mut Vec<u8>) {
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
    pub(super) fn conversion(&self, c: u8, out: &mut Vec<u8>) {
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
