//! The subject of a client certificate, for `use_identity_as_username` (its
//! Common Name) and `use_subject_as_username` (all of it, as OpenSSL's
//! `X509_NAME_print_ex(.., XN_FLAG_RFC2253)` writes it, which is what
//! Mosquitto uses).
//!
//! A small DER reader: it walks to the subject of a certificate that OpenSSL
//! has already verified, and reads nothing else. Lengths are checked against
//! the input at every step; anything unexpected gives `None`.

/// One attribute of the subject: its OID (dotted), its value's tag and
/// content, its whole encoding, and the RDN (SET) it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attribute<'a> {
    oid: String,
    tag: u8,
    value: &'a [u8],
    encoded: &'a [u8],
    rdn: usize,
}

/// Reads one DER TLV off `input`: its tag, its content and its whole encoding.
fn tlv<'a>(input: &mut &'a [u8]) -> Option<(u8, &'a [u8], &'a [u8])> {
    let all = *input;
    let (&tag, rest) = all.split_first()?;
    // Low-tag-number form only: certificates use no other.
    if tag & 0x1F == 0x1F {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let header = all.len() - rest.len();
    let (content, after) = rest.split_at(len);
    *input = after;
    Some((tag, content, &all[..header + len]))
}

/// Reads a TLV that must have `tag`.
fn expect<'a>(input: &mut &'a [u8], tag: u8) -> Option<&'a [u8]> {
    match tlv(input)? {
        (found, content, _) if found == tag => Some(content),
        _ => None,
    }
}

/// An OBJECT IDENTIFIER's content as dotted decimal.
fn oid(content: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for (i, &b) in content.iter().enumerate() {
        if value > (u64::MAX >> 7) {
            return None;
        }
        value = (value << 7) | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        } else if i + 1 == content.len() {
            return None;
        }
    }
    if arcs.is_empty() {
        return None;
    }
    Some(
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The subject's attributes, in certificate order.
fn subject(cert: &[u8]) -> Option<Vec<Attribute<'_>>> {
    let mut input = cert;
    let mut certificate = expect(&mut input, 0x30)?;
    let mut tbs = expect(&mut certificate, 0x30)?;
    // version [0] EXPLICIT, optional
    if tbs.first() == Some(&0xA0) {
        tlv(&mut tbs)?;
    }
    expect(&mut tbs, 0x02)?; // serialNumber
    expect(&mut tbs, 0x30)?; // signature
    expect(&mut tbs, 0x30)?; // issuer
    expect(&mut tbs, 0x30)?; // validity
    let mut name = expect(&mut tbs, 0x30)?;
    let mut attributes = Vec::new();
    let mut rdn = 0;
    while !name.is_empty() {
        let mut set = expect(&mut name, 0x31)?;
        while !set.is_empty() {
            let mut pair = expect(&mut set, 0x30)?;
            let oid = oid(expect(&mut pair, 0x06)?)?;
            let (tag, value, encoded) = tlv(&mut pair)?;
            attributes.push(Attribute {
                oid,
                tag,
                value,
                encoded,
                rdn,
            });
        }
        rdn += 1;
    }
    Some(attributes)
}

/// A string value as UTF-8: UTF8String, PrintableString, IA5String,
/// NumericString, VisibleString, TeletexString (as Latin-1), BMPString
/// (UTF-16) and UniversalString (UTF-32). `None` for other types.
fn text(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        0x0C | 0x12 | 0x13 | 0x16 | 0x1A => String::from_utf8(value.to_vec()).ok(),
        0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
        0x1E => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            (value.len() % 2 == 0)
                .then(|| String::from_utf16(&units).ok())
                .flatten()
        }
        0x1C => {
            if value.len() % 4 != 0 {
                return None;
            }
            value
                .chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

/// The certificate's first Common Name.
pub(crate) fn common_name(cert: &[u8]) -> Option<String> {
    subject(cert)?
        .into_iter()
        .find(|a| a.oid == "2.5.4.3")
        .and_then(|a| text(a.tag, a.value))
}

/// The subject as OpenSSL prints it with `XN_FLAG_RFC2253`: the attributes
/// last first, `,` between RDNs and `+` inside one, short names, values
/// escaped as RFC 2253 says plus every byte with the high bit set (`\C3\A9`),
/// and values that are not strings as `#` and their DER in hex.
pub(crate) fn rfc2253(cert: &[u8]) -> Option<String> {
    let attributes = subject(cert)?;
    let mut out = String::new();
    let mut previous: Option<usize> = None;
    for attribute in attributes.iter().rev() {
        if let Some(rdn) = previous {
            out.push(if rdn == attribute.rdn { '+' } else { ',' });
        }
        previous = Some(attribute.rdn);
        out.push_str(short_name(&attribute.oid).unwrap_or(&attribute.oid));
        out.push('=');
        match text(attribute.tag, attribute.value) {
            Some(value) => escape(&value, &mut out),
            None => {
                out.push('#');
                for b in attribute.encoded {
                    out.push_str(&format!("{b:02X}"));
                }
            }
        }
    }
    Some(out)
}

/// OpenSSL's short names for the attributes subjects use.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// RFC 2253 §2.4 escaping, as OpenSSL's `ASN1_STRFLGS_RFC2253` does it:
/// specials backslashed, `#` and space at the start and space at the end
/// backslashed, control characters and bytes with the high bit as `\XX`.
fn escape(value: &str, out: &mut String) {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let edge = (i == 0 && (b == b'#' || b == b' ')) || (i + 1 == bytes.len() && b == b' ');
        if matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';') || edge {
            out.push('\\');
            out.push(char::from(b));
        } else if !(0x20..0x7F).contains(&b) {
            out.push_str(&format!("\\{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    /// Subject `C=GB, OU=R&D + O="Café, Ltd", CN="#test client ",
    /// emailAddress=a@b.example`, made with `openssl req -utf8`.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBzDCCAXOgAwIBAgIUDc0ae1RdkdRK+U5mz+jEbQvLgU4wCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHVGVzdCBDQTAeFw0yNjExMjIwMTQ2MjFaFw0zNjExMTkwMTQ2
MjFaMGIxCzAJBgNVBAYTAkdCMR8wCgYDVQQLDANSJkQwEQYDVQQKDApDYWbDqSwg
THRkMRYwFAYDVQQDDA0jdGVzdCBjbGllbnQgMRowGAYJKoZIhvcNAQkBFgthQGIu
ZXhhbXBsZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNZTl+OX6PIB/njjCxNK
Kq+YHdZFVEn4GA7UJZZxbNQ/Eujr7p5nPwOlY1ubDaYcSqAzetEMN00Ieg5BRl0o
Q4ejVzBVMBMGA1UdJQQMMAoGCCsGAQUFBwMCMB0GA1UdDgQWBBQLIf2RGT4d38W7
ls996WW2QAlz1zAfBgNVHSMEGDAWgBQVZOyHyzofJDBl+3pBLKTGI9moTjAKBggq
hkjOPQQDAgNHADBEAiADQqRpRcMl2FJalWS5Ea8lamrXtzzufJ1gyox/HB6kqgIg
fn06QnrRjTxePMMVl34TDXw10owbl/5I4YBWbZPP53g=
-----END CERTIFICATE-----
";

    fn der() -> Vec<u8> {
        let body: String = CERT.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    #[test]
    fn the_subject_as_openssl_prints_it() {
        // `openssl x509 -noout -subject -nameopt RFC2253` prints exactly this.
        assert_eq!(
            rfc2253(&der()).unwrap(),
            "emailAddress=a@b.example,CN=\\#test client\\ ,O=Caf\\C3\\A9\\, Ltd+OU=R&D,C=GB"
        );
    }

    #[test]
    fn the_common_name() {
        assert_eq!(common_name(&der()).unwrap(), "#test client ");
    }

    #[test]
    fn truncated_or_garbage_input_gives_none() {
        let der = der();
        for cut in 0..der.len() {
            assert_eq!(rfc2253(&der[..cut]), None, "prefix of {cut}");
        }
        assert_eq!(rfc2253(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(rfc2253(&[0x1F, 0x00]), None);
    }

    #[test]
    fn oids_in_dotted_form() {
        assert_eq!(oid(&[0x55, 0x04, 0x03]).as_deref(), Some("2.5.4.3"));
        assert_eq!(
            oid(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01]).as_deref(),
            Some("1.2.840.113549.1.9.1")
        );
        assert_eq!(oid(&[0x55, 0x84]), None);
    }
}
