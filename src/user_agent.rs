//! The `User-Agent` the library sends on HTTP requests it makes itself
//! (proxy `CONNECT`s, firmware downloads). It lives in the core because the
//! proxy tunnel, which is core, sends it too; the device layer reuses it.

/// `nerves_hub_channel/<version>`.
pub const USER_AGENT: &str = concat!("nerves_hub_channel/", env!("CARGO_PKG_VERSION"));
