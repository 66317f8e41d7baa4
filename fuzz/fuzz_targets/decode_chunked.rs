//! Re-chunking a stream must not change what the decoder makes of it: the same
//! packets, then the same error or the same number of bytes left waiting.
//!
//! Input layout: one byte `n`, then `(n % 8) + 1` chunk sizes of one byte each
//! (0 means a `decode` call with no new data), then the stream. The sizes are
//! used in turn, cyclically, until the stream is fed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_fuzz::{decode_chunked, decode_whole, ROLES};
use starling_proto::{Decoder, ProtocolVersion};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8) + 1;
    if rest.len() < n {
        return;
    }
    let (sizes, stream) = rest.split_at(n);
    let sizes: Vec<usize> = sizes.iter().map(|&b| usize::from(b)).collect();
    if sizes.iter().all(|&s| s == 0) {
        return;
    }
    for version in ProtocolVersion::ALL {
        for role in ROLES {
            for max in [None, Some(64)] {
                let decoder = |d: Decoder| match max {
                    Some(max) => d.with_max_packet_size(max),
                    None => d,
                };
                let whole = decode_whole(decoder(Decoder::new(role, version)), stream);
                let chunked = decode_chunked(decoder(Decoder::new(role, version)), stream, &sizes);
                assert_eq!(
                    chunked, whole,
                    "{role:?} {version} max {max:?} chunks {sizes:?}"
                );
            }
        }
    }
});
