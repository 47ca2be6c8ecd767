//! The §1.5 vector (accepted by a running NervesHub), vectors re-derived
//! with Python's hashlib/hmac for the other digests, the Erlang integer
//! encodings, the Date parser and the clock recovery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::*;
use crate::config::HeaderProvider;

const TIME: u64 = 1_787_120_842;
const PAYLOAD_HEX: &str = "8368036d000000096d792d6465766963656e060010f5b318a0016200015180";

fn vector_secret() -> SharedSecret {
    SharedSecret::new("nhp_abc123", "s3cret-value", "my-device")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
}

#[test]
fn payload_is_erlang_term_to_binary() {
    assert_eq!(hex(&payload("my-device", TIME as i64 * 1000)), PAYLOAD_HEX);
}

#[test]
fn server_verified_vector_uppercase_alg() {
    let secret = vector_secret();
    let alg = "NH1-HMAC-SHA256-1000-32";
    assert_eq!(
        hex(&derive_key(&secret, alg, TIME)),
        "7b3df9c32780d83f23b38b04128a43370094f282733587d1605c68fa8c6aea2e"
    );
    assert_eq!(
        token(&secret, alg, TIME),
        "SFMyNTY.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.9qXfZC7_ENQyT5_LZc6LsXd_uEoUB2V-IZDqcmNd7gQ"
    );
}

#[test]
fn lowercase_alg_is_what_sign_headers_sends() {
    let headers = sign_headers(&vector_secret(), TIME);
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["x-nh-alg", "x-nh-key", "x-nh-time", "x-nh-signature"]
    );
    assert_eq!(header(&headers, "x-nh-alg"), "NH1-HMAC-sha256-1000-32");
    assert_eq!(header(&headers, "x-nh-key"), "nhp_abc123");
    assert_eq!(header(&headers, "x-nh-time"), "1787120842");
    assert_eq!(
        header(&headers, "x-nh-signature"),
        "SFMyNTY.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.Kzk1TAVMDm7D7CWWnFSR2AIxgZNLWPjSKtTJmuDLnBA"
    );
}

#[test]
fn sha384_derives_48_bytes_and_signs() {
    let mut secret = SharedSecret::new("nhd_dev", "s3cret-value", "my-device");
    secret.digest = Nh1Digest::Sha384;
    secret.iterations = 2000;
    secret.key_length = 48;
    assert_eq!(secret.alg(), "NH1-HMAC-sha384-2000-48");
    assert_eq!(
        hex(&derive_key(&secret, &secret.alg(), TIME)),
        "c7beadc87579ef50c736bea6c22558854c47ac073cb27d86e55d801890a0707f64398ea692a66ad49debd40e7481e4c8"
    );
    assert_eq!(
        header(&sign_headers(&secret, TIME), "x-nh-signature"),
        "SFMyNTY.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.nEKnvFIE13yhZg51HJaZK0mXakWiKJRaX0TYGJSCJXU"
    );
}

#[test]
fn sha512_derives_64_bytes_and_signs() {
    let mut secret = SharedSecret::new("nhd_dev", "s3cret-value", "my-device");
    secret.digest = Nh1Digest::Sha512;
    secret.iterations = 500;
    secret.key_length = 64;
    assert_eq!(
        hex(&derive_key(&secret, &secret.alg(), TIME)),
        "8769ea5821fbf5abb6ae2baec78a9436cb529fa723af29bdb9490efd259e2f9a3af17d795d9da637656fc08bee1261da0a552e7630ca6f602b69f706c8b0e786"
    );
    assert_eq!(
        header(&sign_headers(&secret, TIME), "x-nh-signature"),
        "SFMyNTY.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.UNwo4R1sab_EOti3CWx55-pGgGgCwKIP3wmvuGmL0U4"
    );
}

fn int(v: i64) -> String {
    let mut out = Vec::new();
    etf::integer(&mut out, v);
    hex(&out)
}

#[test]
fn erlang_integer_encodings() {
    // SMALL_INTEGER_EXT for 0..=255.
    assert_eq!(int(0), "6100");
    assert_eq!(int(255), "61ff");
    // INTEGER_EXT (i32, big-endian) for the rest of the 32-bit range.
    assert_eq!(int(256), "6200000100");
    assert_eq!(int(86_400), "6200015180");
    assert_eq!(int(-1), "62ffffffff");
    assert_eq!(int(i64::from(i32::MAX)), "627fffffff");
    assert_eq!(int(i64::from(i32::MIN)), "6280000000");
    // SMALL_BIG_EXT: n, sign, n little-endian magnitude bytes.
    assert_eq!(int(i64::from(i32::MAX) + 1), "6e040000000080");
    assert_eq!(int(i64::from(i32::MIN) - 1), "6e040101000080");
    assert_eq!(int(1_787_120_842_000), "6e060010f5b318a001");
    assert_eq!(int(i64::MAX), "6e0800ffffffffffffff7f");
    assert_eq!(int(i64::MIN), "6e08010000000000000080");
}

#[test]
fn debug_never_shows_the_secret() {
    let secret = SharedSecret::new("nhp_k", "very-secret-value", "dev-1");
    let shown = format!("{secret:?}");
    assert!(!shown.contains("very-secret-value"), "{shown}");
    assert!(shown.contains("dev-1"), "{shown}");
    let auth = Nh1Auth::new(secret).expect("valid");
    let shown = format!("{auth:?}");
    assert!(!shown.contains("very-secret-value"), "{shown}");
}

#[test]
fn validate_explains_without_echoing_the_secret() {
    let ok = SharedSecret::new("nhp_k", "s", "id");
    assert!(ok.validate().is_ok());
    type Breaker = fn(&mut SharedSecret);
    let cases: [(&str, Breaker); 6] = [
        ("empty key", |s| s.key.clear()),
        ("key with a newline", |s| s.key = "nhp_\nx".into()),
        ("empty secret", |s| s.secret.clear()),
        ("empty identifier", |s| s.identifier.clear()),
        ("zero iterations", |s| s.iterations = 0),
        ("huge key length", |s| s.key_length = MAX_KEY_LENGTH + 1),
    ];
    for (what, break_it) in cases {
        let mut s = ok.clone();
        s.secret = "hidden-value".into();
        break_it(&mut s);
        let err = s.validate().expect_err(what);
        assert_eq!(err.kind(), "invalid_argument", "{what}");
        assert!(!err.to_string().contains("hidden-value"), "{what}: {err}");
        assert!(Nh1Auth::new(s).is_err(), "{what}");
    }
}

#[test]
fn digest_names_parse_case_insensitively() {
    assert_eq!(Nh1Digest::parse("SHA512"), Some(Nh1Digest::Sha512));
    assert_eq!(Nh1Digest::parse("sha384"), Some(Nh1Digest::Sha384));
    assert_eq!(Nh1Digest::parse("md5"), None);
    assert_eq!(Nh1Digest::default().name(), "sha256");
}

#[test]
fn http_dates_in_all_three_formats() {
    let rfc_example = Some(784_111_777);
    assert_eq!(
        parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
        rfc_example
    );
    assert_eq!(
        parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
        rfc_example
    );
    assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), rfc_example);
    assert_eq!(
        parse_http_date("sun, 06 nov 1994 08:49:37 gmt"),
        rfc_example
    );
    assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    assert_eq!(
        parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"),
        Some(951_782_400)
    );
    assert_eq!(
        parse_http_date("Fri, 31 Dec 2100 23:59:59 GMT"),
        Some(4_133_980_799)
    );
    assert_eq!(
        parse_http_date("Sat, 28 Nov 2026 12:00:00 GMT"),
        Some(1_795_867_200)
    );
}

#[test]
fn garbage_dates_are_ignored() {
    for bad in [
        "",
        "yesterday",
        "Sun, 06 Nov 1994",
        "Sun, 32 Jan 2020 00:00:00 GMT",
        "Sun, 29 Feb 2001 00:00:00 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:61:00 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT extra",
        "Sun, 06 Nov Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1969 08:49:37 GMT",
        "Sun, 06 Nov 99999 08:49:37 GMT",
        "1994-11-06T08:49:37Z",
        "Sun, 06 Nov 1994 08:49:37:01 GMT",
    ] {
        assert_eq!(parse_http_date(bad), None, "{bad:?}");
    }
}

fn fixed_clock(secs: &Arc<AtomicU64>) -> Clock {
    let secs = secs.clone();
    Arc::new(move || secs.load(Ordering::SeqCst))
}

fn signed_time(headers: &[(String, String)]) -> u64 {
    header(headers, "x-nh-time").parse().expect("number")
}

#[test]
fn signs_with_the_device_clock_without_a_hint() {
    let now = Arc::new(AtomicU64::new(TIME));
    let auth = Nh1Auth::with_clock(vector_secret(), fixed_clock(&now)).expect("valid");
    let headers = auth.headers(None);
    assert_eq!(headers, sign_headers(&vector_secret(), TIME));
    now.store(TIME + 5, Ordering::SeqCst);
    assert_eq!(signed_time(&auth.headers(None)), TIME + 5, "re-signed");
}

#[test]
fn a_later_server_date_moves_the_signing_time_forward_and_sticks() {
    let now = Arc::new(AtomicU64::new(1_000));
    let auth = Nh1Auth::with_clock(vector_secret(), fixed_clock(&now)).expect("valid");
    assert_eq!(signed_time(&auth.headers(None)), 1_000);
    let server = "Sat, 28 Nov 2026 12:00:00 GMT";
    let t = signed_time(&auth.headers(Some(server)));
    // The server's time plus the (sub-second) time since the refused attempt,
    // less the margin that keeps it out of the server's future.
    let hinted = 1_795_867_200 - 45;
    assert!((hinted..hinted + 3).contains(&t), "{t}");
    // Kept after a success (the core then passes None) and for a repeated date.
    assert!(signed_time(&auth.headers(None)) >= hinted);
    assert!(signed_time(&auth.headers(Some(server))) >= hinted);
    // A device clock that is now ahead of the estimate wins.
    now.store(1_900_000_000, Ordering::SeqCst);
    assert_eq!(signed_time(&auth.headers(None)), 1_900_000_000);
}

#[test]
fn an_earlier_or_unreadable_server_date_changes_nothing() {
    let now = Arc::new(AtomicU64::new(TIME));
    let auth = Nh1Auth::with_clock(vector_secret(), fixed_clock(&now)).expect("valid");
    auth.headers(None);
    let earlier = "Thu, 01 Jan 2026 00:00:00 GMT";
    assert_eq!(signed_time(&auth.headers(Some(earlier))), TIME);
    assert_eq!(signed_time(&auth.headers(Some("not a date"))), TIME);
}
