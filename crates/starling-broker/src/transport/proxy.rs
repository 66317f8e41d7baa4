//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, versions 1 and 2): the
//! header a load balancer sends before anything else, naming the client it
//! relays, so that logs, limits and access control see the client's address
//! and not the balancer's.
//!
//! Strict and bounded. A listener expects exactly one version and never guesses
//! whether a header is there ("the receiver MUST be configured to only receive
//! the protocol described in this specification and MUST not try to guess
//! whether the protocol header is present or not", §1); a connection without
//! a complete and valid header is closed before any MQTT byte is read (§2).
//! A v1 header is at most 107 bytes (§2.1); a v2 one 16 bytes and a length of
//! at most 65,535 (§2.2). Nothing after the header is read here: the bytes
//! that follow belong to TLS or MQTT.
//!
//! [`decode`] is the sans-IO parser; [`read_header`] reads one header off a
//! TCP stream without consuming a byte past it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::ProxyProtocol;

/// The v2 signature, the header's first 12 bytes (§2.2).
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest v1 header, CRLF included (§2.1).
const V1_MAX: usize = 107;

/// Where a relayed connection comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxySource {
    /// The client's address and port.
    Client(SocketAddr),
    /// No client address: a v1 `UNKNOWN`, or a v2 `LOCAL` command (the
    /// balancer's own health check) or unspecified or Unix family. The real
    /// connection's address is used (§2.1, §2.2).
    Local,
}

/// Why a PROXY header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The first bytes are not a header of the expected version.
    #[error("no PROXY protocol v{0} header (the listener requires one, proxy-protocol.txt §1)")]
    Missing(u8),
    /// A v1 line longer than 107 bytes.
    #[error("PROXY v1 header longer than 107 bytes (proxy-protocol.txt §2.1)")]
    TooLong,
    /// A v1 header that is not `PROXY TCP4|TCP6|UNKNOWN ...\r\n` exactly.
    #[error("malformed PROXY v1 header: {0} (proxy-protocol.txt §2.1)")]
    V1(&'static str),
    /// A v2 header with a field out of its allowed values.
    #[error("malformed PROXY v2 header: {0} (proxy-protocol.txt §2.2)")]
    V2(&'static str),
    /// The connection closed (or failed) before the header was complete.
    #[error("connection closed in the PROXY header")]
    Closed,
}

/// Decodes one header of `version` from the start of `buf`: `Ok(None)` when
/// more bytes are needed, else the source and the header's length.
pub fn decode(
    buf: &[u8],
    version: ProxyProtocol,
) -> Result<Option<(ProxySource, usize)>, ProxyError> {
    match version {
        ProxyProtocol::V1 => decode_v1(buf),
        ProxyProtocol::V2 => decode_v2(buf),
    }
}

fn decode_v1(buf: &[u8]) -> Result<Option<(ProxySource, usize)>, ProxyError> {
    const PREFIX: &[u8] = b"PROXY ";
    let checked = buf.len().min(PREFIX.len());
    if buf[..checked] != PREFIX[..checked] {
        return Err(ProxyError::Missing(1));
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::TooLong)
        } else {
            Ok(None)
        };
    };
    let len = end + 2;
    if len > V1_MAX {
        return Err(ProxyError::TooLong);
    }
    let line =
        std::str::from_utf8(&buf[PREFIX.len()..end]).map_err(|_| ProxyError::V1("not ASCII"))?;
    // UNKNOWN: "the receiver must ignore anything presented before the CRLF".
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Ok(Some((ProxySource::Local, len)));
    }
    // Exactly one space between fields: `split(' ')` keeps empty fields.
    let fields: Vec<&str> = line.split(' ').collect();
    let [family, source, _destination, source_port, destination_port] = fields[..] else {
        return Err(ProxyError::V1(
            "expected a protocol, two addresses and two ports",
        ));
    };
    let ip: IpAddr = match family {
        "TCP4" => source
            .parse::<Ipv4Addr>()
            .map_err(|_| ProxyError::V1("bad IPv4 source address"))?
            .into(),
        "TCP6" => source
            .parse::<Ipv6Addr>()
            .map_err(|_| ProxyError::V1("bad IPv6 source address"))?
            .into(),
        _ => return Err(ProxyError::V1("the protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let destination = fields[2];
    let destination_ok = match family {
        "TCP4" => destination.parse::<Ipv4Addr>().is_ok(),
        _ => destination.parse::<Ipv6Addr>().is_ok(),
    };
    if !destination_ok {
        return Err(ProxyError::V1("bad destination address"));
    }
    let port = v1_port(source_port)?;
    v1_port(destination_port)?;
    Ok(Some((ProxySource::Client(SocketAddr::new(ip, port)), len)))
}

/// A port in decimal, 0 to 65535, without sign or leading zeros.
fn v1_port(text: &str) -> Result<u16, ProxyError> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return Err(ProxyError::V1("bad port"));
    }
    text.parse()
        .map_err(|_| ProxyError::V1("port out of range"))
}

fn decode_v2(buf: &[u8]) -> Result<Option<(ProxySource, usize)>, ProxyError> {
    let checked = buf.len().min(V2_SIGNATURE.len());
    if buf[..checked] != V2_SIGNATURE[..checked] {
        return Err(ProxyError::Missing(2));
    }
    if buf.len() < 16 {
        return Ok(None);
    }
    let version_command = buf[12];
    // "The highest four bits contains the version ... the receiver must only
    // accept this value"; commands other than LOCAL and PROXY: "receivers
    // must drop connections presenting unexpected values here".
    if version_command >> 4 != 2 {
        return Err(ProxyError::V2("version is not 2"));
    }
    let local = match version_command & 0x0F {
        0x0 => true,
        0x1 => false,
        _ => return Err(ProxyError::V2("command is neither LOCAL nor PROXY")),
    };
    let family = buf[13];
    let body_len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body_len;
    if buf.len() < len {
        return Ok(None);
    }
    let body = &buf[16..len];
    // The address block, by family (high nibble) and transport (low nibble).
    let (address_len, source) = match family {
        // AF_UNSPEC: "the receiver should ignore address information".
        0x00 => (0, None),
        // TCP over IPv4: source, destination, source port, destination port.
        0x11 => {
            let block = body
                .get(..12)
                .ok_or(ProxyError::V2("length too short for IPv4 addresses"))?;
            let ip = Ipv4Addr::new(block[0], block[1], block[2], block[3]);
            let port = u16::from_be_bytes([block[8], block[9]]);
            (12, Some(SocketAddr::new(ip.into(), port)))
        }
        // TCP over IPv6.
        0x21 => {
            let block = body
                .get(..36)
                .ok_or(ProxyError::V2("length too short for IPv6 addresses"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&block[..16]);
            let port = u16::from_be_bytes([block[32], block[33]]);
            (
                36,
                Some(SocketAddr::new(Ipv6Addr::from(octets).into(), port)),
            )
        }
        // Unix stream sockets: no IP address to give.
        0x31 => {
            body.get(..216)
                .ok_or(ProxyError::V2("length too short for Unix addresses"))?;
            (216, None)
        }
        // Datagrams cannot carry MQTT; other values are unassigned.
        0x12 | 0x22 | 0x32 => return Err(ProxyError::V2("a datagram transport")),
        _ => return Err(ProxyError::V2("unknown address family")),
    };
    // "The receiver must ... discard the protocol block including the family"
    // for LOCAL; the TLVs after the addresses are skipped, but their framing
    // must be exact.
    let mut tlvs = &body[address_len..];
    while !tlvs.is_empty() {
        let [_kind, hi, lo, rest @ ..] = tlvs else {
            return Err(ProxyError::V2("truncated TLV"));
        };
        let value_len = usize::from(u16::from_be_bytes([*hi, *lo]));
        tlvs = rest
            .get(value_len..)
            .ok_or(ProxyError::V2("TLV longer than the header"))?;
    }
    let source = match (local, source) {
        (false, Some(address)) => ProxySource::Client(address),
        _ => ProxySource::Local,
    };
    Ok(Some((source, len)))
}

/// Reads one header of `version` from the start of `stream`, consuming the
/// header and nothing after it: bytes are peeked, and only those that belong
/// to the header are read. A stream whose first bytes cannot start a header
/// is refused as soon as they arrive.
pub async fn read_header(
    stream: &mut TcpStream,
    version: ProxyProtocol,
) -> Result<ProxySource, ProxyError> {
    let mut header: Vec<u8> = Vec::with_capacity(V1_MAX);
    let mut peeked = vec![0u8; V1_MAX];
    loop {
        // The most bytes that can still be header: v1 ends at its CRLF within
        // 107 bytes; v2 is 16 bytes, then the length those give.
        let limit = match version {
            ProxyProtocol::V1 => V1_MAX,
            ProxyProtocol::V2 if header.len() < 16 => 16,
            ProxyProtocol::V2 => 16 + usize::from(u16::from_be_bytes([header[14], header[15]])),
        };
        let room = limit - header.len();
        if peeked.len() < room {
            peeked.resize(room, 0);
        }
        let n = stream
            .peek(&mut peeked[..room])
            .await
            .map_err(|_| ProxyError::Closed)?;
        if n == 0 {
            return Err(ProxyError::Closed);
        }
        let start = header.len();
        header.extend_from_slice(&peeked[..n]);
        let take = match version {
            ProxyProtocol::V2 => n,
            ProxyProtocol::V1 => {
                // Up to the CRLF, which may straddle what was read before.
                let from = start.saturating_sub(1);
                match header[from..].windows(2).position(|w| w == b"\r\n") {
                    Some(at) => from + at + 2 - start,
                    None => n,
                }
            }
        };
        header.truncate(start + take);
        let decoded = decode(&header, version)?;
        read_exact(stream, &mut peeked[..take]).await?;
        if let Some((source, _)) = decoded {
            return Ok(source);
        }
    }
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), ProxyError> {
    stream
        .read_exact(buf)
        .await
        .map(drop)
        .map_err(|_| ProxyError::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(text: &str) -> Result<Option<(ProxySource, usize)>, ProxyError> {
        decode(text.as_bytes(), ProxyProtocol::V1)
    }

    fn client(addr: &str) -> ProxySource {
        ProxySource::Client(addr.parse().unwrap())
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let line = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 1883\r\n";
        assert_eq!(
            v1(&format!("{line}\x10\x0c")),
            Ok(Some((client("192.0.2.7:56324"), line.len())))
        );
        let line = "PROXY TCP6 2001:db8::7 2001:db8::1 4000 8883\r\n";
        assert_eq!(
            v1(line),
            Ok(Some((client("[2001:db8::7]:4000"), line.len())))
        );
        assert_eq!(v1("PROXY UNKNOWN\r\n"), Ok(Some((ProxySource::Local, 15))));
        assert_eq!(
            v1("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"),
            Ok(Some((ProxySource::Local, 35)))
        );
    }

    #[test]
    fn v1_needs_more_until_the_crlf() {
        let line = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 1883\r\n";
        for cut in 0..line.len() {
            assert_eq!(v1(&line[..cut]), Ok(None), "prefix of {cut} bytes");
        }
    }

    #[test]
    fn v1_is_strict() {
        for bad in [
            "PROXY  TCP4 192.0.2.7 198.51.100.1 56324 1883\r\n",
            "PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",
            "PROXY TCP4 192.0.2.7 198.51.100.1 56324 1883 x\r\n",
            "PROXY TCP4 2001:db8::7 198.51.100.1 56324 1883\r\n",
            "PROXY TCP6 192.0.2.7 2001:db8::1 56324 1883\r\n",
            "PROXY TCP4 192.0.2.7 198.51.100.1 65536 1883\r\n",
            "PROXY TCP4 192.0.2.7 198.51.100.1 056324 1883\r\n",
            "PROXY TCP4 192.0.2.7 198.51.100.1 +5 1883\r\n",
            "PROXY UDP4 192.0.2.7 198.51.100.1 5 1883\r\n",
            "PROXY TCP4 192.0.2.007 198.51.100.1 5 1883\r\n",
        ] {
            assert!(matches!(v1(bad), Err(ProxyError::V1(_))), "{bad:?}");
        }
        assert_eq!(v1("\x10\x0c\0\x04MQTT"), Err(ProxyError::Missing(1)));
        assert_eq!(v1("PROXZ"), Err(ProxyError::Missing(1)));
        let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(100));
        assert_eq!(v1(&long), Err(ProxyError::TooLong));
        assert_eq!(v1(&"PROXY ".repeat(20)), Err(ProxyError::TooLong));
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend_from_slice(&(body.len() as u16).to_be_bytes());
        header.extend_from_slice(body);
        header
    }

    fn ipv4_block() -> Vec<u8> {
        let mut body = vec![192, 0, 2, 7, 198, 51, 100, 1];
        body.extend_from_slice(&56324u16.to_be_bytes());
        body.extend_from_slice(&1883u16.to_be_bytes());
        body
    }

    #[test]
    fn v2_ipv4_ipv6_local_and_tlvs() {
        let header = v2(1, 0x11, &ipv4_block());
        assert_eq!(
            decode(&header, ProxyProtocol::V2),
            Ok(Some((client("192.0.2.7:56324"), 28)))
        );
        let mut body = Vec::new();
        body.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(&[0x0F, 0xA0, 0x22, 0xB3]);
        // A PP2_TYPE_ALPN TLV and a NOOP TLV after the addresses.
        body.extend_from_slice(&[0x01, 0x00, 0x04]);
        body.extend_from_slice(b"mqtt");
        body.extend_from_slice(&[0x04, 0x00, 0x00]);
        let header = v2(1, 0x21, &body);
        assert_eq!(
            decode(&header, ProxyProtocol::V2),
            Ok(Some((client("[2001:db8::7]:4000"), header.len())))
        );
        // LOCAL (a health check) uses the connection's own address.
        let header = v2(0, 0x11, &ipv4_block());
        assert_eq!(
            decode(&header, ProxyProtocol::V2),
            Ok(Some((ProxySource::Local, 28)))
        );
        let header = v2(1, 0x00, &[]);
        assert_eq!(
            decode(&header, ProxyProtocol::V2),
            Ok(Some((ProxySource::Local, 16)))
        );
    }

    #[test]
    fn v2_needs_more_until_its_length() {
        let header = v2(1, 0x11, &ipv4_block());
        for cut in 0..header.len() {
            assert_eq!(decode(&header[..cut], ProxyProtocol::V2), Ok(None), "{cut}");
        }
    }

    proptest::proptest! {
        /// Any bytes: no panic, and a header is never longer than the bytes
        /// given, nor than the version's bound.
        #[test]
        fn any_bytes_decode_within_bounds(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(Some((_, len))) = decode(&bytes, ProxyProtocol::V1) {
                proptest::prop_assert!(len <= bytes.len() && len <= V1_MAX);
            }
            if let Ok(Some((_, len))) = decode(&bytes, ProxyProtocol::V2) {
                proptest::prop_assert!(len <= bytes.len() && len <= 16 + 65_535);
            }
            // With a valid signature in front, the v2 parser sees the rest.
            let mut signed = V2_SIGNATURE.to_vec();
            signed.extend_from_slice(&bytes);
            if let Ok(Some((_, len))) = decode(&signed, ProxyProtocol::V2) {
                proptest::prop_assert!(len <= signed.len());
            }
        }
    }

    #[test]
    fn v2_is_strict() {
        let mut wrong_version = v2(1, 0x11, &ipv4_block());
        wrong_version[12] = 0x11;
        let cases = [
            wrong_version,
            v2(2, 0x11, &ipv4_block()),
            v2(1, 0x12, &ipv4_block()),
            v2(1, 0x41, &ipv4_block()),
            v2(1, 0x11, &ipv4_block()[..11]),
            v2(1, 0x11, &[ipv4_block(), vec![0x01, 0x00]].concat()),
            v2(
                1,
                0x11,
                &[ipv4_block(), vec![0x01, 0x00, 0x05, b'm']].concat(),
            ),
        ];
        for header in cases {
            assert!(
                matches!(decode(&header, ProxyProtocol::V2), Err(ProxyError::V2(_))),
                "{header:?}"
            );
        }
        let mqtt = [0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T'];
        assert_eq!(
            decode(&mqtt, ProxyProtocol::V2),
            Err(ProxyError::Missing(2))
        );
        // A v1 header on a v2 listener is not guessed at.
        assert_eq!(
            decode(b"PROXY UNKNOWN\r\n", ProxyProtocol::V2),
            Err(ProxyError::Missing(2))
        );
    }
}
