//! C's number parsing as Mosquitto's clients use it on their arguments: `atoi`,
//! `atol`, `atof` and `strtol(s, &end, 0)`, with glibc's behaviour, so that
//! `-q x` means QoS 0 and `-x 0x10` means 16 here too.

/// glibc `strtol(s, &end, base)` for base 10 or 0: the value (saturated at the
/// `long` range, as glibc does) and how many bytes it used; 0 bytes when no
/// number starts `s` (after blanks and a sign).
fn strtol(s: &[u8], auto_base: bool) -> (i64, usize) {
    let mut i = 0;
    while s.get(i).is_some_and(|&b| is_c_space(b)) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut base = 10;
    if auto_base && s.get(i) == Some(&b'0') {
        if matches!(s.get(i + 1), Some(b'x' | b'X'))
            && s.get(i + 2).is_some_and(|b| b.is_ascii_hexdigit())
        {
            base = 16;
            i += 2;
        } else {
            base = 8;
        }
    }
    let start = i;
    let mut value: i128 = 0;
    while let Some(digit) = s.get(i).and_then(|&b| char::from(b).to_digit(base)) {
        value = (value * i128::from(base) + i128::from(digit)).min(i128::from(u64::MAX));
        i += 1;
    }
    if i == start {
        return (0, 0);
    }
    let value = if negative { -value } else { value };
    let value = value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    (value, i)
}

/// C's `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `atol(s)`: the leading decimal number, 0 if there is none.
pub(crate) fn atol(s: &[u8]) -> i64 {
    strtol(s, false).0
}

/// `atoi(s)`: glibc's `(int) strtol(s, NULL, 10)`, truncated to 32 bits.
pub(crate) fn atoi(s: &[u8]) -> i32 {
    atol(s) as i32
}

/// `strtol(s, &end, 0)` where the whole of `s` must be the number (decimal,
/// `0x` hexadecimal or `0` octal): `None` otherwise, as Mosquitto's
/// "not a number" checks see it.
pub(crate) fn strtol_whole(s: &[u8]) -> Option<i64> {
    match strtol(s, true) {
        (_, 0) => None,
        (value, used) if used == s.len() => Some(value),
        _ => None,
    }
}

/// `atof(s)`: the longest leading decimal floating-point number (blanks, sign,
/// digits, a fraction, an exponent, or `inf`/`nan`), 0.0 if there is none.
pub(crate) fn atof(s: &[u8]) -> f64 {
    let text = String::from_utf8_lossy(s);
    let text = text.trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
    let bytes = text.as_bytes();
    let mut end = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        end = 1;
    }
    let lower = text[end..].to_ascii_lowercase();
    for word in ["infinity", "inf", "nan"] {
        if lower.starts_with(word) {
            return text[..end + word.len()].parse().unwrap_or(0.0);
        }
    }
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let int = digits(end);
    end += int;
    let mut frac = 0;
    if bytes.get(end) == Some(&b'.') {
        frac = digits(end + 1);
        if int + frac > 0 {
            end += 1 + frac;
        }
    }
    if int + frac == 0 {
        return 0.0;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exp = end + 1;
        if matches!(bytes.get(exp), Some(b'+' | b'-')) {
            exp += 1;
        }
        let n = digits(exp);
        if n > 0 {
            end = exp + n;
        }
    }
    text[..end].parse().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_reads_a_leading_number_like_glibc() {
        assert_eq!(atoi(b"2"), 2);
        assert_eq!(atoi(b"  -5x"), -5);
        assert_eq!(atoi(b"x"), 0);
        assert_eq!(atoi(b""), 0);
        assert_eq!(atoi(b"+7"), 7);
        assert_eq!(atoi(b"0x10"), 0);
        // glibc: strtol saturates at LONG_MAX, and the cast keeps the low 32 bits.
        assert_eq!(atoi(b"99999999999999999999"), -1);
        assert_eq!(atol(b"5000000000"), 5_000_000_000);
    }

    #[test]
    fn strtol_whole_takes_c_prefixes_and_refuses_trailing_text() {
        assert_eq!(strtol_whole(b"60"), Some(60));
        assert_eq!(strtol_whole(b"0x10"), Some(16));
        assert_eq!(strtol_whole(b"010"), Some(8));
        assert_eq!(strtol_whole(b"-1"), Some(-1));
        assert_eq!(strtol_whole(b" 12"), Some(12));
        assert_eq!(strtol_whole(b"12abc"), None);
        assert_eq!(strtol_whole(b"abc"), None);
        assert_eq!(strtol_whole(b""), None);
        assert_eq!(strtol_whole(b"0x"), None);
        assert_eq!(strtol_whole(b"0"), Some(0));
    }

    #[test]
    fn atof_reads_a_leading_float() {
        assert_eq!(atof(b"0.5"), 0.5);
        assert_eq!(atof(b"2"), 2.0);
        assert_eq!(atof(b" -1.5e1x"), -15.0);
        assert_eq!(atof(b".25"), 0.25);
        assert_eq!(atof(b"5."), 5.0);
        assert_eq!(atof(b"x"), 0.0);
        assert_eq!(atof(b"1e"), 1.0);
        assert!(atof(b"inf").is_infinite());
    }
}
