//! The signing callback `nhc_sign_closure`: TLS client signatures made by
//! the application (a secure element's SDK: cryptoauthlib, the SE050
//! middleware), and its owned Rust side, a core `KeySigner`.

use std::ffi::c_void;
use std::sync::Mutex;

use nerves_hub_channel::{KeyAlgorithm, KeySigner, SignRequest, SignatureAlgorithm};

use crate::boundary::guard_callback;
use crate::closure::{Closure, Owned};

/// What a signature is requested for (`nhc_sign_closure.call`'s `algorithm`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_sign_algorithm {
    /// ECDSA P-256 with SHA-256: sign `digest` (or hash `message` yourself)
    /// and write raw `r || s`, 64 bytes, as secure elements return it.
    NHC_SIGN_ECDSA_P256_SHA256 = 1,
    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message` (TLS 1.2 only).
    NHC_SIGN_RSA_PKCS1_SHA256 = 2,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt over `message`.
    NHC_SIGN_RSA_PSS_SHA256 = 3,
}

/// The kind of key behind `nhc_key_options.sign` (`sign_key_type`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_key_type {
    /// No signing callback (the default).
    NHC_KEY_NONE = 0,
    /// An EC P-256 key: the callback gets NHC_SIGN_ECDSA_P256_SHA256.
    NHC_KEY_EC_P256 = 1,
    /// An RSA key (2048 bits or more): the callback gets
    /// NHC_SIGN_RSA_PSS_SHA256 or NHC_SIGN_RSA_PKCS1_SHA256.
    NHC_KEY_RSA = 2,
}

/// Signs the TLS client handshake with a key the library never sees.
///
/// `call` runs on a library helper thread, never on an I/O thread, so it
/// may block (a secure element takes 50-200 ms) without stalling other
/// sockets; calls for one socket never overlap. It gets the algorithm, the
/// `message` TLS signs and its SHA-256 `digest` (valid during the call
/// only), writes the signature into `signature` (capacity
/// `*signature_len`, 1024 bytes) and sets `*signature_len` to its length.
/// It returns 0 on success; anything else, or no answer within
/// `nhc_key_options.sign_timeout_ms`, fails that connection attempt with a
/// TLS error (the socket retries with its backoff). A late answer is
/// discarded. `drop` runs once, after the last `call` returned, when the
/// socket is freed (or in a failing `nhc_socket_new`).
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_sign_closure {
    /// Handed back to `call` and `drop` untouched.
    pub context: *mut c_void,
    /// Makes one signature; returns 0 on success.
    pub call: Option<
        unsafe extern "C" fn(
            algorithm: nhc_sign_algorithm,
            message: *const u8,
            message_len: usize,
            digest: *const u8,
            digest_len: usize,
            signature: *mut u8,
            signature_len: *mut usize,
            context: *mut c_void,
        ) -> i32,
    >,
    /// Releases `context`; called exactly once.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

impl nhc_sign_closure {
    pub(crate) fn none() -> nhc_sign_closure {
        nhc_sign_closure {
            context: std::ptr::null_mut(),
            call: None,
            drop: None,
        }
    }
}

impl Closure for nhc_sign_closure {
    const NAME: &'static str = "sign";
    fn context(&self) -> *mut c_void {
        self.context
    }
    fn drop_fn(&self) -> Option<unsafe extern "C" fn(*mut c_void)> {
        self.drop
    }
}

/// Room for an RSA-8192 signature.
const SIGNATURE_CAPACITY: usize = 1024;

/// The core's view of a C signing callback.
pub(crate) struct CSigner {
    /// Held while calling: calls never overlap, even when a timed-out call
    /// is still running as the next attempt starts.
    closure: Mutex<Owned<nhc_sign_closure>>,
    algorithm: KeyAlgorithm,
}

impl CSigner {
    pub(crate) fn new(closure: Owned<nhc_sign_closure>, algorithm: KeyAlgorithm) -> CSigner {
        CSigner {
            closure: Mutex::new(closure),
            algorithm,
        }
    }
}

impl KeySigner for CSigner {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn describe(&self) -> String {
        "the signing callback".into()
    }

    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, String> {
        let closure = self.closure.lock().unwrap_or_else(|p| p.into_inner());
        let Some(call) = closure.raw().call else {
            return Err("the signing callback has no call".into());
        };
        let algorithm = match request.algorithm {
            SignatureAlgorithm::EcdsaP256Sha256 => nhc_sign_algorithm::NHC_SIGN_ECDSA_P256_SHA256,
            SignatureAlgorithm::RsaPkcs1Sha256 => nhc_sign_algorithm::NHC_SIGN_RSA_PKCS1_SHA256,
            SignatureAlgorithm::RsaPssSha256 => nhc_sign_algorithm::NHC_SIGN_RSA_PSS_SHA256,
        };
        let mut signature = vec![0u8; SIGNATURE_CAPACITY];
        let mut len = SIGNATURE_CAPACITY;
        let mut rc = -1;
        let context = closure.raw().context;
        guard_callback("sign", || {
            // SAFETY: the caller gave us this function and context; the buffers are valid for the
            // lengths passed during the call.
            rc = unsafe {
                call(
                    algorithm,
                    request.message.as_ptr(),
                    request.message.len(),
                    request.digest.as_ptr(),
                    request.digest.len(),
                    signature.as_mut_ptr(),
                    &mut len,
                    context,
                )
            };
        });
        if rc != 0 {
            return Err(format!("the callback returned {rc}"));
        }
        if len == 0 || len > SIGNATURE_CAPACITY {
            return Err(format!(
                "the callback set signature_len to {len} (expected 1..={SIGNATURE_CAPACITY})"
            ));
        }
        signature.truncate(len);
        Ok(signature)
    }
}
