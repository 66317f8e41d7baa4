//! Helpers shared by the codec tests: packets written out as hex dumps.

#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;

/// The bytes of a hex dump such as `"30 24 00 15"`; whitespace is ignored.
pub fn hex(dump: &str) -> Bytes {
    let digits: Vec<u8> = dump.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len() % 2 == 0,
        "odd number of hex digits in {dump:?}"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("ASCII");
            u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("not hex: {pair:?}"))
        })
        .collect::<Vec<u8>>()
        .into()
}
