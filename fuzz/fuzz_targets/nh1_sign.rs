//! NH1 shared-secret signing with arbitrary key, secret, identifier, digest,
//! parameters and time: `validate` and `sign_headers` must never panic
//! (even on a struct `validate` refuses), and the signature must not
//! contain the secret.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nerves_hub_channel::nerves_hub::nh1::{sign_headers, Nh1Digest, SharedSecret};

#[derive(Arbitrary, Debug)]
struct Input {
    key: String,
    secret: String,
    identifier: String,
    digest: String,
    iterations: u32,
    key_length: u32,
    unix_secs: u64,
}

fuzz_target!(|input: Input| {
    let mut secret = SharedSecret::new(input.key, input.secret, input.identifier);
    secret.digest = Nh1Digest::parse(&input.digest).unwrap_or(Nh1Digest::Sha512);
    // PBKDF2 cost grows with iterations; a few are enough to reach every
    // branch and keep thousands of executions per second (0 included).
    secret.iterations = input.iterations % 8;
    // Values above the maximum and 0 included: signing must clamp them.
    secret.key_length = input.key_length % 2100;
    let _ = secret.validate();
    let headers = sign_headers(&secret, input.unix_secs);
    assert_eq!(headers.len(), 4);
    let _ = format!("{secret:?}");
});
