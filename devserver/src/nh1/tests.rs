//! Verification against tokens computed outside this crate: the §1.5 vector
//! (accepted by a running NervesHub) and vectors re-derived with Python's
//! hashlib/hmac for the lowercase alg, SHA-384 and SHA-512.

use std::num::NonZeroU32;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::{hmac, pbkdf2};
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderValue};

use super::etf::{self, Term};
use super::*;

const TIME: i64 = 1_787_120_842;
const SIGNED_MS: i64 = TIME * 1000;
const UPPER_TOKEN: &str =
    "SFMyNTY.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.9qXfZC7_ENQyT5_LZc6LsXd_uEoUB2V-IZDqcmNd7gQ";
const LOWER_TOKEN: &str =
    "SFMyNTY.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.Kzk1TAVMDm7D7CWWnFSR2AIxgZNLWPjSKtTJmuDLnBA";
const SHA384_TOKEN: &str =
    "SFMyNTY.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.nEKnvFIE13yhZg51HJaZK0mXakWiKJRaX0TYGJSCJXU";
const SHA512_TOKEN: &str =
    "SFMyNTY.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.UNwo4R1sab_EOti3CWx55-pGgGgCwKIP3wmvuGmL0U4";

fn headers(alg: &str, key: &str, time: &str, token: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in [
        ("x-nh-alg", alg),
        ("x-nh-key", key),
        ("x-nh-time", time),
        ("x-nh-signature", token),
    ] {
        map.append(name, HeaderValue::from_str(value).expect("header value"));
    }
    map
}

fn product_store() -> Nh1Store {
    Nh1Store::new(&[SharedSecretEntry::new("nhp_abc123", "s3cret-value", None)]).expect("valid")
}

fn device_store(identifier: &str) -> Nh1Store {
    Nh1Store::new(&[SharedSecretEntry::new(
        "nhd_dev",
        "s3cret-value",
        Some(identifier.into()),
    )])
    .expect("valid")
}

fn upper() -> HeaderMap {
    headers(
        "NH1-HMAC-SHA256-1000-32",
        "nhp_abc123",
        "1787120842",
        UPPER_TOKEN,
    )
}

#[test]
fn accepts_the_server_verified_vector_and_the_lowercase_alg() {
    let store = product_store();
    assert_eq!(
        store.verify(&upper(), SIGNED_MS + 5_000),
        Ok("my-device".into())
    );
    let lower = headers(
        "NH1-HMAC-sha256-1000-32",
        "nhp_abc123",
        "1787120842",
        LOWER_TOKEN,
    );
    assert_eq!(store.verify(&lower, SIGNED_MS), Ok("my-device".into()));
}

#[test]
fn the_window_is_the_last_90_seconds_of_the_server_clock() {
    let store = product_store();
    assert_eq!(
        store.verify(&upper(), SIGNED_MS + MAX_AGE_MS),
        Ok("my-device".into())
    );
    assert_eq!(
        store.verify(&upper(), SIGNED_MS + MAX_AGE_MS + 1),
        Err(Refusal::Expired)
    );
    assert_eq!(
        store.verify(&upper(), SIGNED_MS - 1),
        Err(Refusal::FromTheFuture)
    );
}

#[test]
fn the_alg_header_is_signed_verbatim() {
    // The uppercase token under a lowercase header: same digest, different salt.
    let swapped = headers(
        "NH1-HMAC-sha256-1000-32",
        "nhp_abc123",
        "1787120842",
        UPPER_TOKEN,
    );
    assert_eq!(
        product_store().verify(&swapped, SIGNED_MS),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn the_time_header_is_read_as_an_elixir_integer() {
    // Integer.parse("+1787120842") is 1787120842, and the salt uses the integer.
    let plus = headers(
        "NH1-HMAC-SHA256-1000-32",
        "nhp_abc123",
        "+1787120842",
        UPPER_TOKEN,
    );
    assert_eq!(
        product_store().verify(&plus, SIGNED_MS),
        Ok("my-device".into())
    );
    for bad in ["", "17871208420x", "1.5", " 1787120842"] {
        let h = headers("NH1-HMAC-SHA256-1000-32", "nhp_abc123", bad, UPPER_TOKEN);
        assert_eq!(
            product_store().verify(&h, SIGNED_MS),
            Err(Refusal::MissingHeader("x-nh-time")),
            "{bad:?}"
        );
    }
}

#[test]
fn sha384_and_sha512_device_keys() {
    let store = device_store("my-device");
    let h384 = headers(
        "NH1-HMAC-sha384-2000-48",
        "nhd_dev",
        "1787120842",
        SHA384_TOKEN,
    );
    assert_eq!(store.verify(&h384, SIGNED_MS), Ok("my-device".into()));
    let h512 = headers(
        "NH1-HMAC-SHA512-500-64",
        "nhd_dev",
        "1787120842",
        SHA512_TOKEN,
    );
    // The digest's case is in the salt; only the lowercase one was signed.
    assert_eq!(store.verify(&h512, SIGNED_MS), Err(Refusal::BadSignature));
    let h512 = headers(
        "NH1-HMAC-sha512-500-64",
        "nhd_dev",
        "1787120842",
        SHA512_TOKEN,
    );
    assert_eq!(store.verify(&h512, SIGNED_MS), Ok("my-device".into()));
}

#[test]
fn a_device_key_checks_the_identifier() {
    let h = headers(
        "NH1-HMAC-sha384-2000-48",
        "nhd_dev",
        "1787120842",
        SHA384_TOKEN,
    );
    assert_eq!(
        device_store("another-device").verify(&h, SIGNED_MS),
        Err(Refusal::BadIdentifier)
    );
}

#[test]
fn wrong_secret_unknown_key_and_missing_headers() {
    let wrong =
        Nh1Store::new(&[SharedSecretEntry::new("nhp_abc123", "other", None)]).expect("valid");
    assert_eq!(
        wrong.verify(&upper(), SIGNED_MS),
        Err(Refusal::BadSignature)
    );
    assert_eq!(
        Nh1Store::default().verify(&upper(), SIGNED_MS),
        Err(Refusal::UnknownKey)
    );
    for missing in ["x-nh-alg", "x-nh-key", "x-nh-time", "x-nh-signature"] {
        let mut h = upper();
        h.remove(missing);
        assert_eq!(
            product_store().verify(&h, SIGNED_MS),
            Err(Refusal::MissingHeader(missing))
        );
    }
}

#[test]
fn the_last_of_repeated_headers_counts() {
    let mut h = headers(
        "NH1-HMAC-SHA256-1000-32",
        "nhp_abc123",
        "1787120842",
        "junk",
    );
    h.append("x-nh-signature", HeaderValue::from_static(UPPER_TOKEN));
    assert_eq!(
        product_store().verify(&h, SIGNED_MS),
        Ok("my-device".into())
    );
}

#[test]
fn malformed_algs_are_refused() {
    for alg in [
        "NH1-HMAC-md5-1000-32",
        "NH1-HMAC-sha256-0-32",
        "NH1-HMAC-sha256-1000-0",
        "NH1-HMAC-sha256-1000",
        "NH1-HMAC-sha256-1000-32-1",
        "NH1-HMAC-sha256-1000-2048",
        "NH1-HMAC-sha256-99999999-32",
        "NH2-HMAC-sha256-1000-32",
        "nh1-hmac-sha256-1000-32",
    ] {
        let h = headers(alg, "nhp_abc123", "1787120842", UPPER_TOKEN);
        assert_eq!(
            product_store().verify(&h, SIGNED_MS),
            Err(Refusal::BadAlg),
            "{alg}"
        );
    }
}

#[test]
fn malformed_tokens_are_refused() {
    for token in [
        "",
        "SFMyNTY",
        "SFMyNTY.g2gD",
        "SFMyNTY.g2gD.!!",
        "SFMyNTY.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.9qXfZC7_ENQyT5_LZc6LsXd_uEoUB2V-IZDqcmNd7gQ.x",
        "SFMyNTY=.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.9qXfZC7_ENQyT5_LZc6LsXd_uEoUB2V-IZDqcmNd7gQ",
        "SFMyNTI.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.9qXfZC7_ENQyT5_LZc6LsXd_uEoUB2V-IZDqcmNd7gQ",
    ] {
        let h = headers("NH1-HMAC-SHA256-1000-32", "nhp_abc123", "1787120842", token);
        assert!(product_store().verify(&h, SIGNED_MS).is_err(), "{token:?}");
    }
}

/// Signs `payload` the way Plug.Crypto would, with the §1.5 salt and secret.
fn sign_payload(protected: &str, algorithm: hmac::Algorithm, payload: &[u8]) -> String {
    let salt = format!(
        "{SALT_PREFIX}x-nh-alg=NH1-HMAC-SHA256-1000-32\nx-nh-key=nhp_abc123\nx-nh-time={TIME}\n"
    );
    let mut key = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(1000).expect("nonzero"),
        salt.as_bytes(),
        b"s3cret-value",
        &mut key,
    );
    let plain = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(protected),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mac = hmac::sign(&hmac::Key::new(algorithm, &key), plain.as_bytes());
    format!("{plain}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
}

fn verify_payload(
    protected: &str,
    algorithm: hmac::Algorithm,
    payload: &[u8],
) -> Result<String, Refusal> {
    let token = sign_payload(protected, algorithm, payload);
    let h = headers(
        "NH1-HMAC-SHA256-1000-32",
        "nhp_abc123",
        "1787120842",
        &token,
    );
    product_store().verify(&h, SIGNED_MS)
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `{"my-device", 1787120842000` then the rest.
const DATA_SIGNED: &str = "6d000000096d792d6465766963656e060010f5b318a001";

#[test]
fn legacy_payload_shapes_and_other_macs() {
    // {data, signed}
    let two = hex(&format!("836802{DATA_SIGNED}"));
    assert_eq!(
        verify_payload("HS256", hmac::HMAC_SHA256, &two),
        Ok("my-device".into())
    );
    // %{data: ..., signed: ...} with SMALL_ATOM_UTF8_EXT keys, signed first.
    let data = "6d000000096d792d646576696365";
    let signed = "6e060010f5b318a001";
    let map = hex(&format!(
        "83740000000277067369676e6564{signed}770464617461{data}"
    ));
    assert_eq!(
        verify_payload("HS256", hmac::HMAC_SHA256, &map),
        Ok("my-device".into())
    );
    // Plug.Crypto.MessageVerifier also accepts HS384 and HS512 tokens.
    let three = hex(&format!("836803{DATA_SIGNED}6200015180"));
    assert_eq!(
        verify_payload("HS384", hmac::HMAC_SHA384, &three),
        Ok("my-device".into())
    );
    assert_eq!(
        verify_payload("HS512", hmac::HMAC_SHA512, &three),
        Ok("my-device".into())
    );
}

#[test]
fn unusable_payloads_are_refused() {
    for payload in [
        // A list, not a tuple.
        "836a".to_owned(),
        // A 4-tuple.
        format!("836804{DATA_SIGNED}61006100"),
        // An atom as the identifier.
        "8368027703666f6f6e060010f5b318a001".to_owned(),
        // Trailing garbage.
        format!("836802{DATA_SIGNED}00"),
        // Not UTF-8.
        "8368026d00000001ff6e060010f5b318a001".to_owned(),
        // Compressed.
        "8350000000".to_owned(),
    ] {
        assert_eq!(
            verify_payload("HS256", hmac::HMAC_SHA256, &hex(&payload)),
            Err(Refusal::BadPayload),
            "{payload}"
        );
    }
}

#[test]
fn etf_integers_and_limits() {
    let int = |text: &str| etf::decode(&hex(text));
    assert_eq!(int("8361ff"), Some(Term::Int(255)));
    assert_eq!(int("8362ffffffff"), Some(Term::Int(-1)));
    assert_eq!(
        int("836e0401000000 80".replace(' ', "").as_str()),
        Some(Term::Int(-(1 << 31)))
    );
    assert_eq!(int("836f00000002000001"), Some(Term::Int(256)));
    // Bignums beyond i128 and a truncated input.
    assert_eq!(int(&format!("836e1100{}", "ff".repeat(17))), None);
    assert_eq!(int("836e0800ff"), None);
    // Deep nesting stops at the limit instead of recursing.
    let deep = format!("83{}6a", "6801".repeat(64));
    assert_eq!(int(&deep), None);
}

#[test]
fn entries_are_validated_and_debug_hides_the_secret() {
    assert!(SharedSecretEntry::new("nhp_x", "s", Some("id".into()))
        .validate()
        .is_err());
    assert!(SharedSecretEntry::new("nhd_x", "s", None)
        .validate()
        .is_err());
    assert!(SharedSecretEntry::new("nhd_x", "", Some("id".into()))
        .validate()
        .is_err());
    assert!(SharedSecretEntry::new("nh x", "s", None)
        .validate()
        .is_err());
    let entry = SharedSecretEntry::parse_cli("nhd_k:hidden-value:dev:1").expect("valid");
    assert_eq!(entry.identifier.as_deref(), Some("dev:1"));
    assert!(!format!("{entry:?}").contains("hidden-value"));
    assert!(!format!("{entry:?}").contains("nhd_k"));
    let err = SharedSecretEntry::parse_cli("nhd_k:hidden-value").expect_err("needs id");
    assert!(!err.contains("hidden-value"), "{err}");
    assert!(SharedSecretEntry::parse_cli("just-a-key").is_err());
}
