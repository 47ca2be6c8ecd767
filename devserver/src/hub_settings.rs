//! What the hub sends that the control API can change (keys, extensions).

/// A dummy fwup public key (base64 of 32 zero bytes), the default answer to
/// `fwup_public_keys: "on_connect"`.
pub const DUMMY_PUBLIC_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// Settings the control API can change; `reset` restores the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HubSettings {
    pub fwup_public_keys: Vec<String>,
    pub archive_public_keys: Vec<String>,
    /// Extensions the "product" has enabled.
    pub extensions: Vec<String>,
}

impl Default for HubSettings {
    fn default() -> HubSettings {
        HubSettings {
            fwup_public_keys: vec![DUMMY_PUBLIC_KEY.into()],
            archive_public_keys: vec![DUMMY_PUBLIC_KEY.into()],
            extensions: ["health", "geo", "logging"].map(String::from).to_vec(),
        }
    }
}
