//! `nhc_key_options`: a TLS client key that never leaves its chip, either
//! on a PKCS#11 token or behind a signing callback. Part of
//! `nhc_socket_options` (and so of a device's `socket`).

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::{
    ExternalKey, KeyAlgorithm, Pkcs11Key, Pkcs11KeyOptions, Pkcs11Pin, TlsOptions,
};

use crate::args::opt_str_arg;
use crate::closure::Owned;
use crate::error::{invalid, FfiResult};
use crate::sign_closure::{nhc_key_type, nhc_sign_closure, CSigner};

/// Where the TLS client key is when it is not a PEM key (`key_file` /
/// `key_pem` must then be unset; `cert_file` / `cert_pem` still give the
/// device certificate and any signer certificates). All zero (the default
/// from `nhc_socket_options_default`): no such key. Set the PKCS#11 fields
/// or `sign`, not both. See docs/hardware-keys.md.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_key_options {
    /// The PKCS#11 module (`.so`), e.g. "/usr/lib/softhsm/libsofthsm2.so";
    /// NULL: the URI's `module-path`.
    pub pkcs11_module: *const c_char,
    /// RFC 7512 URI selecting token and key, e.g.
    /// "pkcs11:token=device;object=nerves-hub". Setting it selects PKCS#11.
    pub pkcs11_uri: *const c_char,
    /// The user PIN (never logged). Set at most one of `pkcs11_pin`,
    /// `pkcs11_pin_file` and `pkcs11_pin_env`; none: the URI's `pin-value`
    /// or `pin-source`, else no login.
    pub pkcs11_pin: *const c_char,
    /// A file holding the PIN (one trailing newline ignored).
    pub pkcs11_pin_file: *const c_char,
    /// The name of an environment variable holding the PIN.
    pub pkcs11_pin_env: *const c_char,
    /// A signing callback; with a `call`, `sign_key_type` is required.
    /// Moved into the socket like `on_state`.
    pub sign: nhc_sign_closure,
    /// An `nhc_key_type` value: the kind of key `sign` signs with.
    pub sign_key_type: i32,
    /// Longest wait for one signature (callback or token) before the
    /// connection attempt fails; 0: 10000.
    pub sign_timeout_ms: u32,
}

impl nhc_key_options {
    pub(crate) fn none() -> nhc_key_options {
        nhc_key_options {
            pkcs11_module: std::ptr::null(),
            pkcs11_uri: std::ptr::null(),
            pkcs11_pin: std::ptr::null(),
            pkcs11_pin_file: std::ptr::null(),
            pkcs11_pin_env: std::ptr::null(),
            sign: nhc_sign_closure::none(),
            sign_key_type: 0,
            sign_timeout_ms: 0,
        }
    }
}

/// Sets `tls.client_signer` from `o`. The sign closure is owned first, so
/// its `drop` runs exactly once whatever fails.
///
/// # Safety
/// The pointers in `o` are NULL or valid as documented on the struct; `o`
/// is not used for its closure again.
pub(crate) unsafe fn apply(o: &nhc_key_options, tls: &mut TlsOptions) -> FfiResult {
    // SAFETY: the caller hands the closure over; `o` is a private copy never dropped as a closure.
    let sign = Owned::new(unsafe { std::ptr::read(&o.sign) });
    // SAFETY: the string pointers are NULL or NUL-terminated (the caller's contract).
    let uri = unsafe { opt_str_arg(o.pkcs11_uri, "key.pkcs11_uri") }?;
    let has_call = sign.raw().call.is_some();
    let timeout = match o.sign_timeout_ms {
        0 => ExternalKey::DEFAULT_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)),
    };
    let signer: Arc<dyn nerves_hub_channel::KeySigner> = match (uri, has_call) {
        (Some(_), true) => return Err(invalid("set key.pkcs11_uri or key.sign, not both")),
        (None, false) => return Ok(()),
        (Some(uri), false) => {
            // SAFETY: as above.
            let pin = unsafe { pin(o) }?;
            // SAFETY: as above.
            let module = unsafe { opt_str_arg(o.pkcs11_module, "key.pkcs11_module") }?;
            Pkcs11Key::open(&Pkcs11KeyOptions {
                module: module.map(PathBuf::from),
                uri: uri.to_owned(),
                pin,
            })?
        }
        (None, true) => {
            let algorithm = match o.sign_key_type {
                x if x == nhc_key_type::NHC_KEY_EC_P256 as i32 => KeyAlgorithm::EcdsaP256,
                x if x == nhc_key_type::NHC_KEY_RSA as i32 => KeyAlgorithm::Rsa,
                other => {
                    return Err(invalid(format!(
                        "key.sign_key_type {other} is not NHC_KEY_EC_P256 or NHC_KEY_RSA"
                    )))
                }
            };
            Arc::new(CSigner::new(sign, algorithm))
        }
    };
    tls.client_signer = Some(ExternalKey { signer, timeout });
    Ok(())
}

unsafe fn pin(o: &nhc_key_options) -> FfiResult<Option<Pkcs11Pin>> {
    // SAFETY: the string pointers are NULL or NUL-terminated (the caller's contract).
    let value = unsafe { opt_str_arg(o.pkcs11_pin, "key.pkcs11_pin") }?;
    // SAFETY: as above.
    let file = unsafe { opt_str_arg(o.pkcs11_pin_file, "key.pkcs11_pin_file") }?;
    // SAFETY: as above.
    let env = unsafe { opt_str_arg(o.pkcs11_pin_env, "key.pkcs11_pin_env") }?;
    match (value, file, env) {
        (None, None, None) => Ok(None),
        (Some(v), None, None) => Ok(Some(Pkcs11Pin::Value(v.to_owned()))),
        (None, Some(f), None) => Ok(Some(Pkcs11Pin::File(PathBuf::from(f)))),
        (None, None, Some(e)) => Ok(Some(Pkcs11Pin::Env(e.to_owned()))),
        _ => Err(invalid(
            "set at most one of key.pkcs11_pin, key.pkcs11_pin_file and key.pkcs11_pin_env",
        )),
    }
}
