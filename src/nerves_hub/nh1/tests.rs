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
fn signs_a_few_seconds_behind_the_device_clock_without_a_hint() {
    let now = Arc::new(AtomicU64::new(TIME));
    let auth = Nh1Auth::with_clock(vector_secret(), fixed_clock(&now)).expect("valid");
    // The margin keeps a clock a fraction of a second ahead out of the
    // server's future (plug_crypto 2.2 compares milliseconds).
    assert_eq!(auth.headers(None), sign_headers(&vector_secret(), TIME - 5));
    now.store(TIME + 5, Ordering::SeqCst);
    assert_eq!(signed_time(&auth.headers(None)), TIME, "re-signed");
    assert_eq!(auth.clock_offset(), None);
}

/// `Date` of the Unix second `t`, written by the dev server's independent
/// formatter (so that it also cross-checks the parser).
fn http_date(t: u64) -> String {
    nhc_devserver::imf_fixdate(t)
}

#[test]
fn the_dev_server_date_formatter_agrees_with_the_parser() {
    for t in [0, TIME, 1_795_867_200, 951_782_400] {
        assert_eq!(parse_http_date(&http_date(t)), Some(t), "{}", http_date(t));
    }
}

#[test]
fn a_refusal_from_a_server_ahead_moves_the_signing_time_forward_and_sticks() {
    let now = Arc::new(AtomicU64::new(TIME));
    let auth = Nh1Auth::with_clock(vector_secret(), fixed_clock(&now)).expect("valid");
    assert!(
        auth.refused(Some(&http_date(TIME + 600))),
        "news: retry soon"
    );
    assert_eq!(auth.clock_offset(), Some(600));
    assert_eq!(signed_time(&auth.headers(None)), TIME + 600 - 5);
    // Kept while the device clock runs on, also when the socket passes the
    // date it already reported to `headers` again.
    now.store(TIME + 100, Ordering::SeqCst);
    assert_eq!(
        signed_time(&auth.headers(Some(&http_date(TIME + 600)))),
        TIME + 700 - 5
    );
    // A second refusal within the same second is learned again: the device
    // clock may have jumped in between.
    now.store(TIME - 600, Ordering::SeqCst);
    assert!(auth.refused(Some(&http_date(TIME + 600))));
    assert_eq!(auth.clock_offset(), Some(1200));
}

#[test]
fn a_refusal_from_a_server_behind_moves_the_signing_time_back() {
    let now = Arc::new(AtomicU64::new(TIME));
    let auth = Nh1Auth::with_clock(vector_secret(), fixed_clock(&now)).expect("valid");
    assert!(auth.refused(Some(&http_date(TIME - 600))));
    assert_eq!(auth.clock_offset(), Some(-600));
    assert_eq!(signed_time(&auth.headers(None)), TIME - 600 - 5);
}

#[test]
fn a_refusal_that_confirms_the_estimate_is_no_news() {
    let now = Arc::new(AtomicU64::new(TIME));
    let auth = Nh1Auth::with_clock(vector_secret(), fixed_clock(&now)).expect("valid");
    // A right clock refused for another reason (wrong secret): slow retry.
    assert!(!auth.refused(Some(&http_date(TIME + 1))));
    assert!(
        !auth.refused(Some(&http_date(TIME - 1))),
        "2 s from the last estimate"
    );
    assert!(auth.refused(Some(&http_date(TIME + 300))));
    assert!(!auth.refused(Some(&http_date(TIME + 302))));
    // The device clock jumped (NTP): the next refusal replaces the estimate.
    now.store(TIME + 300, Ordering::SeqCst);
    assert!(auth.refused(Some(&http_date(TIME + 303))));
    assert_eq!(auth.clock_offset(), Some(3));
    assert!(!auth.refused(None));
    assert!(!auth.refused(Some("not a date")));
    assert_eq!(auth.clock_offset(), Some(3));
}

#[test]
fn a_date_passed_to_headers_alone_is_learned_too() {
    let now = Arc::new(AtomicU64::new(TIME));
    let auth = Nh1Auth::with_clock(vector_secret(), fixed_clock(&now)).expect("valid");
    let t = signed_time(&auth.headers(Some(&http_date(TIME - 120))));
    assert_eq!(t, TIME - 125);
    assert_eq!(signed_time(&auth.headers(Some("not a date"))), TIME - 125);
}

#[test]
fn an_offset_clock_shifts_the_system_clock() {
    let system = offset_clock(0)();
    let ahead = offset_clock(600)();
    assert!((600..=601).contains(&(ahead - system)), "{system} {ahead}");
    assert_eq!(offset_clock(i64::MIN)(), 0);
}
