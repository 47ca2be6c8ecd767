//! URL and configuration parsing: an arbitrary URL, header and query
//! parameter through `validate` and `endpoint_url` must give a result or a
//! clear error, never panic; an accepted URL always carries `vsn=2.0.0`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nerves_hub_channel::config::redact_query;
use nerves_hub_channel::SocketConfig;

#[derive(Arbitrary, Debug)]
struct Input {
    url: String,
    header: (String, String),
    param: (String, String),
}

fuzz_target!(|input: Input| {
    let _ = redact_query(&input.url);
    let mut config = SocketConfig::new(input.url);
    config.headers.push(input.header);
    config.params.push(input.param);
    let _ = config.validate();
    if let Ok(url) = config.endpoint_url() {
        assert!(
            url.query_pairs().any(|(k, v)| k == "vsn" && v == "2.0.0"),
            "accepted URL without vsn: {url}"
        );
    }
    let _ = format!("{config:?}");
});
