//! PKCS#8 to SEC1 ("EC PRIVATE KEY") conversion for EC keys, and PEM armour.
//!
//! ring only emits PKCS#8, and its inner ECPrivateKey omits the curve
//! parameters (they sit in the PKCS#8 AlgorithmIdentifier). A standalone SEC1
//! file needs them back in the `[0] parameters` field, or OpenSSL-style
//! readers refuse it, so the curve OID is moved there.

use std::io;

use base64::Engine;

const TAG_SEQUENCE: u8 = 0x30;
const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_PARAMETERS: u8 = 0xa0;
/// 1.2.840.10045.2.1 id-ecPublicKey
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("PKCS#8 EC key: {what}"))
}

/// One DER element: its tag, its contents, and the whole encoding.
struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
    raw: &'a [u8],
}

fn read_tlv(input: &[u8]) -> io::Result<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first().ok_or_else(|| invalid("truncated"))?;
    let (&first, rest) = rest.split_first().ok_or_else(|| invalid("truncated"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(invalid("bad length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(invalid("truncated"));
    }
    let header = input.len() - rest.len();
    let (value, tail) = rest.split_at(len);
    let raw = &input[..header + len];
    Ok((Tlv { tag, value, raw }, tail))
}

fn elements(mut input: &[u8]) -> io::Result<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (tlv, rest) = read_tlv(input)?;
        out.push(tlv);
        input = rest;
    }
    Ok(out)
}

fn encode(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

/// Turns a PKCS#8 EC private key (DER) into a SEC1 ECPrivateKey (DER) that names its curve.
pub(crate) fn pkcs8_to_sec1(pkcs8: &[u8]) -> io::Result<Vec<u8>> {
    let (outer, _) = read_tlv(pkcs8)?;
    if outer.tag != TAG_SEQUENCE {
        return Err(invalid("not a SEQUENCE"));
    }
    let parts = elements(outer.value)?;
    let [version, algorithm, key, ..] = parts.as_slice() else {
        return Err(invalid("too few fields"));
    };
    if version.tag != TAG_INTEGER || algorithm.tag != TAG_SEQUENCE || key.tag != TAG_OCTET_STRING {
        return Err(invalid("unexpected structure"));
    }
    let alg = elements(algorithm.value)?;
    let [alg_oid, curve, ..] = alg.as_slice() else {
        return Err(invalid("algorithm has no curve"));
    };
    if alg_oid.tag != TAG_OID || alg_oid.value != OID_EC_PUBLIC_KEY || curve.tag != TAG_OID {
        return Err(invalid("not an EC key with a named curve"));
    }
    let (inner, _) = read_tlv(key.value)?;
    if inner.tag != TAG_SEQUENCE {
        return Err(invalid("ECPrivateKey is not a SEQUENCE"));
    }
    let fields = elements(inner.value)?;
    if fields.len() < 2 {
        return Err(invalid("ECPrivateKey has too few fields"));
    }
    if fields.iter().any(|f| f.tag == TAG_PARAMETERS) {
        return Ok(inner.raw.to_vec());
    }
    let mut body = Vec::with_capacity(inner.value.len() + curve.raw.len() + 2);
    body.extend_from_slice(fields[0].raw);
    body.extend_from_slice(fields[1].raw);
    body.extend(encode(TAG_PARAMETERS, curve.raw));
    for field in &fields[2..] {
        body.extend_from_slice(field.raw);
    }
    Ok(encode(TAG_SEQUENCE, &body))
}

/// PEM armour with the customary 64-column lines.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so any chunk boundary is a char boundary.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_curve_to_a_ring_p256_key() {
        let key = rcgen::KeyPair::generate().expect("keygen");
        let sec1 = pkcs8_to_sec1(key.serialized_der()).expect("converts");
        let (seq, rest) = read_tlv(&sec1).expect("DER");
        assert!(rest.is_empty());
        let fields = elements(seq.value).expect("fields");
        let tags: Vec<u8> = fields.iter().map(|f| f.tag).collect();
        assert_eq!(tags, [TAG_INTEGER, TAG_OCTET_STRING, TAG_PARAMETERS, 0xa1]);
        // 1.2.840.10045.3.1.7 prime256v1
        assert_eq!(
            fields[2].value,
            [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(pkcs8_to_sec1(&[]).is_err());
        assert!(pkcs8_to_sec1(&[0x30, 0x82, 0xff]).is_err());
        assert!(pkcs8_to_sec1(&[0x30, 0x00]).is_err());
    }

    #[test]
    fn long_lengths_round_trip() {
        let value = vec![7u8; 300];
        let enc = encode(TAG_OCTET_STRING, &value);
        let (tlv, rest) = read_tlv(&enc).expect("DER");
        assert!(rest.is_empty());
        assert_eq!(tlv.value, &value[..]);
    }
}
