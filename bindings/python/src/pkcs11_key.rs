//! `key=` values for keys that never leave their chip: `Pkcs11Key(...)`
//! (a PKCS#11 token) and `SigningCallback(...)` (a Python callable that
//! signs with a secure element's SDK). Both become the core's
//! `ExternalKey`; the core does the rest.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::{
    ExternalKey, KeyAlgorithm, KeySigner, Pkcs11Key, Pkcs11KeyOptions, Pkcs11Pin, SignRequest,
    TlsOptions,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::duration::seconds;
use crate::errors::{invalid, py_err};

/// A private key on a PKCS#11 token, for ``key=``: the token is opened,
/// logged in to and searched when the socket is created.
#[pyclass(name = "Pkcs11Key", module = "nerves_hub_channel", frozen)]
pub struct PyPkcs11Key {
    options: Pkcs11KeyOptions,
    timeout: Duration,
}

#[pymethods]
impl PyPkcs11Key {
    #[new]
    #[pyo3(signature = (uri, *, module=None, pin=None, pin_file=None, pin_env=None, timeout=10.0))]
    fn new(
        uri: String,
        module: Option<PathBuf>,
        pin: Option<String>,
        pin_file: Option<PathBuf>,
        pin_env: Option<String>,
        timeout: f64,
    ) -> PyResult<PyPkcs11Key> {
        let pin = match (pin, pin_file, pin_env) {
            (None, None, None) => None,
            (Some(v), None, None) => Some(Pkcs11Pin::Value(v)),
            (None, Some(f), None) => Some(Pkcs11Pin::File(f)),
            (None, None, Some(e)) => Some(Pkcs11Pin::Env(e)),
            _ => return Err(invalid("give at most one of pin, pin_file and pin_env")),
        };
        Ok(PyPkcs11Key {
            options: Pkcs11KeyOptions { module, uri, pin },
            timeout: seconds(timeout, "timeout")?,
        })
    }

    // The PIN is never shown (the options' Debug hides it, in the URI too).
    fn __repr__(&self) -> String {
        format!("Pkcs11Key({:?})", self.options)
    }
}

/// A Python callable that makes the TLS client signature, for ``key=``.
///
/// ``sign(algorithm, message, digest) -> bytes`` gets the algorithm name
/// (``"ecdsa_secp256r1_sha256"``, ``"rsa_pss_rsae_sha256"`` or
/// ``"rsa_pkcs1_sha256"``), the bytes TLS signs and their SHA-256, and
/// returns the signature (ECDSA: raw ``r || s``, 64 bytes). It runs on a
/// library thread (it may block); raising, or taking longer than
/// ``timeout`` seconds, fails that connection attempt with a TLS error.
#[pyclass(name = "SigningCallback", module = "nerves_hub_channel", frozen)]
pub struct PySigningCallback {
    sign: Py<PyAny>,
    algorithm: KeyAlgorithm,
    timeout: Duration,
}

#[pymethods]
impl PySigningCallback {
    #[new]
    #[pyo3(signature = (sign, *, key_type, timeout=10.0))]
    fn new(sign: Bound<'_, PyAny>, key_type: &str, timeout: f64) -> PyResult<PySigningCallback> {
        if !sign.is_callable() {
            return Err(invalid(
                "sign must be a callable (algorithm, message, digest) -> bytes",
            ));
        }
        let algorithm = match key_type {
            "ec-p256" => KeyAlgorithm::EcdsaP256,
            "rsa" => KeyAlgorithm::Rsa,
            other => {
                return Err(invalid(format!(
                    "key_type {other:?} is not \"ec-p256\" or \"rsa\""
                )))
            }
        };
        Ok(PySigningCallback {
            sign: sign.unbind(),
            algorithm,
            timeout: seconds(timeout, "timeout")?,
        })
    }
}

struct PySigner {
    sign: Py<PyAny>,
    algorithm: KeyAlgorithm,
}

impl KeySigner for PySigner {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn describe(&self) -> String {
        "the Python signing callback".into()
    }

    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, String> {
        let name = request.algorithm.name();
        Python::attach(|py| {
            let out = self
                .sign
                .bind(py)
                .call1((
                    name,
                    PyBytes::new(py, request.message),
                    PyBytes::new(py, request.digest),
                ))
                .map_err(|e| format!("the callback raised {e}"))?;
            out.extract::<Vec<u8>>()
                .map_err(|_| "the callback did not return bytes".to_owned())
        })
    }
}

/// Sets `tls.client_signer` when `key` is a `Pkcs11Key` or a
/// `SigningCallback`; returns false (nothing set) for PEM values.
pub fn set_external(key: Option<&Bound<'_, PyAny>>, tls: &mut TlsOptions) -> PyResult<bool> {
    let Some(key) = key else {
        return Ok(false);
    };
    let py = key.py();
    if let Ok(p11) = key.cast::<PyPkcs11Key>() {
        let p11 = p11.get();
        let options = p11.options.clone();
        // Loading a module and logging in may take a while: let other threads run.
        let signer = py
            .detach(move || Pkcs11Key::open(&options))
            .map_err(py_err)?;
        tls.client_signer = Some(ExternalKey {
            signer,
            timeout: p11.timeout,
        });
        return Ok(true);
    }
    if let Ok(callback) = key.cast::<PySigningCallback>() {
        let callback = callback.get();
        let signer: Arc<dyn KeySigner> = Arc::new(PySigner {
            sign: callback.sign.clone_ref(py),
            algorithm: callback.algorithm,
        });
        tls.client_signer = Some(ExternalKey {
            signer,
            timeout: callback.timeout,
        });
        return Ok(true);
    }
    Ok(false)
}
