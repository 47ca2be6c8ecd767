//! A TLS client key on a PKCS#11 token (HSM, TPM 2.0 via tpm2-pkcs11,
//! ATECC608 via cryptoauthlib, SoftHSM2), through the `cryptoki` crate.
//!
//! The session is opened once, logged in once, and reused for every
//! handshake. When the token goes away (removed, reset, session closed) the
//! next signature drops the session and reopens it, at most once per backoff
//! step (1 s doubling to 30 s); meanwhile connection attempts fail with a TLS
//! error that says the token is unavailable and why.
//!
//! A wrong or locked PIN is never retried on its own: tokens lock the user
//! PIN after a few failures, so retrying would brick the device's identity.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use once_cell::sync::Lazy;

use super::pkcs11_uri::{hex, Pkcs11Uri};
use super::signer::{KeyAlgorithm, KeySigner, SignRequest, SignatureAlgorithm};
use crate::error::{Error, Result};

/// Where the user PIN comes from. Its value never appears in Debug output,
/// logs or error messages.
#[derive(Clone)]
pub enum Pkcs11Pin {
    Value(String),
    /// A file holding the PIN (one trailing newline is ignored).
    File(PathBuf),
    /// The name of an environment variable holding the PIN.
    Env(String),
}

impl fmt::Debug for Pkcs11Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkcs11Pin::Value(_) => f.write_str("Value(<hidden>)"),
            Pkcs11Pin::File(path) => f.debug_tuple("File").field(path).finish(),
            Pkcs11Pin::Env(name) => f.debug_tuple("Env").field(name).finish(),
        }
    }
}

/// How to find a key on a PKCS#11 token.
#[derive(Clone)]
pub struct Pkcs11KeyOptions {
    /// The PKCS#11 module (`.so`); may instead be given as the URI's `module-path`.
    pub module: Option<PathBuf>,
    /// RFC 7512 URI selecting token and key, e.g. `pkcs11:token=device;object=nerves-hub`.
    pub uri: String,
    /// The user PIN; may instead be the URI's `pin-value` / `pin-source`.
    /// `None` and no PIN in the URI: no login (tokens that need none).
    pub pin: Option<Pkcs11Pin>,
}

// The URI may carry the PIN (`pin-value`); Debug never shows it.
impl fmt::Debug for Pkcs11KeyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11KeyOptions")
            .field("module", &self.module)
            .field("uri", &super::pkcs11_uri::redacted(&self.uri))
            .field("pin", &self.pin)
            .finish()
    }
}

/// One initialised context per module: C_Initialize may run once per process.
static MODULES: Lazy<Mutex<HashMap<PathBuf, Pkcs11>>> = Lazy::new(|| Mutex::new(HashMap::new()));

fn load_module(path: &Path) -> Result<Pkcs11> {
    let mut modules = MODULES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = modules.get(path) {
        return Ok(ctx.clone());
    }
    if !path.exists() {
        return Err(Error::Tls(format!(
            "PKCS#11 module {} does not exist (install the token's PKCS#11 library or fix the path)",
            path.display()
        )));
    }
    let ctx = Pkcs11::new(path).map_err(|e| {
        Error::Tls(format!(
            "cannot load PKCS#11 module {}: {}",
            path.display(),
            ck_detail(&e)
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(Error::Tls(format!(
                "PKCS#11 module {} failed to initialise: {}",
                path.display(),
                ck_detail(&e)
            )))
        }
    }
    modules.insert(path.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// The PKCS#11 return code by its specification name; cryptoki's Display
/// text is a paragraph of the specification.
fn ck_detail(err: &CkError) -> String {
    match err {
        CkError::Pkcs11(rv, function) => format!("{function:?} returned {}", rv_name(*rv)),
        other => other.to_string(),
    }
}

fn rv_name(rv: RvError) -> String {
    let debug = format!("{rv:?}");
    let mut name = String::from("CKR");
    for ch in debug.chars() {
        if ch.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(ch.to_ascii_uppercase());
    }
    name
}

/// Errors after which the session is gone and must be reopened.
fn session_lost(err: &CkError) -> bool {
    matches!(
        err,
        CkError::Pkcs11(
            RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid
                | RvError::SlotIdInvalid
                | RvError::CryptokiNotInitialized,
            _
        )
    )
}

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

struct Live {
    session: Session,
    key: ObjectHandle,
}

enum State {
    Open(Live),
    /// Not open; the next try waits until `retry_at`.
    Closed {
        retry_at: Instant,
        backoff: Duration,
        last_error: String,
    },
    /// A wrong or locked PIN: never retried (it would lock the token).
    Fatal(String),
}

/// A private key on a PKCS#11 token, usable as a TLS client key.
pub struct Pkcs11Key {
    ctx: Pkcs11,
    uri: Pkcs11Uri,
    pin: Option<Pkcs11Pin>,
    algorithm: KeyAlgorithm,
    label: String,
    state: Mutex<State>,
}

impl fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

impl Pkcs11Key {
    /// Loads the module, finds the token, logs in and finds the key now, so
    /// configuration errors (bad URI, missing module, wrong PIN, no such key)
    /// surface when the socket is created.
    pub fn open(options: &Pkcs11KeyOptions) -> Result<Arc<Pkcs11Key>> {
        let uri = Pkcs11Uri::parse(&options.uri)?;
        let module =
            match (&options.module, &uri.module_path) {
                (Some(path), _) => path.clone(),
                (None, Some(path)) => PathBuf::from(path),
                (None, None) => return Err(Error::InvalidArgument(
                    "PKCS#11 key: no module given (set the module path or the URI's module-path)"
                        .into(),
                )),
            };
        let pin = match (&options.pin, &uri.pin_value, &uri.pin_source) {
            (Some(pin), _, _) => Some(pin.clone()),
            (None, Some(value), _) => Some(Pkcs11Pin::Value(value.clone())),
            (None, None, Some(source)) => Some(Pkcs11Pin::File(PathBuf::from(
                source.strip_prefix("file:").unwrap_or(source),
            ))),
            (None, None, None) => None,
        };
        let ctx = load_module(&module)?;
        let label = describe_key(&uri);
        let mut key = Pkcs11Key {
            ctx,
            uri,
            pin,
            algorithm: KeyAlgorithm::EcdsaP256,
            label,
            state: Mutex::new(State::Fatal(String::new())),
        };
        let (live, algorithm) = key.connect().map_err(|e| Error::Tls(e.message))?;
        key.algorithm = algorithm;
        key.state = Mutex::new(State::Open(live));
        Ok(Arc::new(key))
    }

    fn read_pin(&self) -> std::result::Result<Option<AuthPin>, OpenError> {
        let text = match &self.pin {
            None => return Ok(None),
            Some(Pkcs11Pin::Value(v)) => v.clone(),
            Some(Pkcs11Pin::File(path)) => std::fs::read_to_string(path)
                .map_err(|e| {
                    OpenError::fatal(format!(
                        "cannot read the PIN file {}: {}",
                        path.display(),
                        e.kind()
                    ))
                })?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
            Some(Pkcs11Pin::Env(name)) => std::env::var(name).map_err(|_| {
                OpenError::fatal(format!(
                    "the PIN environment variable {name} is not set (or not UTF-8)"
                ))
            })?,
        };
        Ok(Some(AuthPin::new(text.into())))
    }

    fn find_slot(&self) -> std::result::Result<Slot, OpenError> {
        let slots = self
            .ctx
            .get_slots_with_token()
            .map_err(|e| OpenError::transient(format!("cannot list tokens: {}", ck_detail(&e))))?;
        for slot in slots {
            if self.uri.slot_id.is_some_and(|id| id != slot.id()) {
                continue;
            }
            let Ok(info) = self.ctx.get_token_info(slot) else {
                continue;
            };
            let fits = |want: &Option<String>, have: &str| {
                want.as_deref().is_none_or(|w| w == have.trim_end())
            };
            if fits(&self.uri.token, info.label())
                && fits(&self.uri.serial, info.serial_number())
                && fits(&self.uri.manufacturer, info.manufacturer_id())
                && fits(&self.uri.model, info.model())
            {
                return Ok(slot);
            }
        }
        Err(OpenError::transient(format!(
            "no token matching {} is present (is it inserted?)",
            describe_token(&self.uri)
        )))
    }

    /// Opens a session, logs in and finds the key.
    fn connect(&self) -> std::result::Result<(Live, KeyAlgorithm), OpenError> {
        let slot = self.find_slot()?;
        let session = self.ctx.open_ro_session(slot).map_err(|e| {
            OpenError::transient(format!("cannot open a session: {}", ck_detail(&e)))
        })?;
        if let Some(pin) = self.read_pin()? {
            match session.login(UserType::User, Some(&pin)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(CkError::Pkcs11(
                    rv @ (RvError::PinIncorrect
                    | RvError::PinLocked
                    | RvError::PinExpired
                    | RvError::PinInvalid
                    | RvError::PinLenRange),
                    _,
                )) => {
                    return Err(OpenError::fatal(format!(
                        "login to {} refused: {} (wrong or locked PIN; not retried, so the token does not lock)",
                        describe_token(&self.uri),
                        rv_name(rv)
                    )))
                }
                Err(e) => {
                    return Err(OpenError::transient(format!(
                        "login to {} failed: {}",
                        describe_token(&self.uri),
                        ck_detail(&e)
                    )))
                }
            }
        }
        let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
        if let Some(label) = &self.uri.object {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &self.uri.id {
            template.push(Attribute::Id(id.clone()));
        }
        let found = session.find_objects(&template).map_err(|e| {
            OpenError::transient(format!("cannot search for the key: {}", ck_detail(&e)))
        })?;
        let key = match found.as_slice() {
            [key] => *key,
            [] => {
                return Err(OpenError::fatal(format!(
                    "no private key {} on {} (check the object label / id{})",
                    describe_object(&self.uri),
                    describe_token(&self.uri),
                    if self.pin.is_none() {
                        "; private keys are only visible after login, so give the PIN"
                    } else {
                        ""
                    }
                )))
            }
            many => {
                return Err(OpenError::fatal(format!(
                    "{} private keys match {} on {}; add the key's id to the URI",
                    many.len(),
                    describe_object(&self.uri),
                    describe_token(&self.uri)
                )))
            }
        };
        let algorithm = self.key_algorithm(&session, key)?;
        Ok((Live { session, key }, algorithm))
    }

    fn key_algorithm(
        &self,
        session: &Session,
        key: ObjectHandle,
    ) -> std::result::Result<KeyAlgorithm, OpenError> {
        let attrs = session
            .get_attributes(key, &[AttributeType::KeyType])
            .map_err(|e| {
                OpenError::transient(format!("cannot read the key type: {}", ck_detail(&e)))
            })?;
        let key_type = attrs.iter().find_map(|a| match a {
            Attribute::KeyType(t) => Some(*t),
            _ => None,
        });
        match key_type {
            Some(KeyType::RSA) => Ok(KeyAlgorithm::Rsa),
            Some(KeyType::EC) => {
                let params = session
                    .get_attributes(key, &[AttributeType::EcParams])
                    .map_err(|e| {
                        OpenError::transient(format!("cannot read the curve: {}", ck_detail(&e)))
                    })?;
                // DER OID 1.2.840.10045.3.1.7 (prime256v1).
                const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
                let is_p256 = params
                    .iter()
                    .any(|a| matches!(a, Attribute::EcParams(p) if p == P256));
                if is_p256 {
                    Ok(KeyAlgorithm::EcdsaP256)
                } else {
                    Err(OpenError::fatal(format!(
                        "{} is an EC key on a curve other than P-256 (only P-256 is supported)",
                        self.label
                    )))
                }
            }
            other => Err(OpenError::fatal(format!(
                "{} has key type {other:?}; only EC P-256 and RSA keys are supported",
                self.label
            ))),
        }
    }

    fn sign_once(
        &self,
        live: &Live,
        request: &SignRequest<'_>,
    ) -> std::result::Result<Vec<u8>, CkError> {
        match request.algorithm {
            // CKM_ECDSA over our digest: SoftHSM2, tpm2-pkcs11 and cryptoauthlib
            // all have it; CKM_ECDSA_SHA256 is rarer.
            SignatureAlgorithm::EcdsaP256Sha256 => {
                live.session
                    .sign(&Mechanism::Ecdsa, live.key, request.digest)
            }
            SignatureAlgorithm::RsaPkcs1Sha256 => {
                live.session
                    .sign(&Mechanism::Sha256RsaPkcs, live.key, request.message)
            }
            SignatureAlgorithm::RsaPssSha256 => live.session.sign(
                &Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
                    hash_alg: MechanismType::SHA256,
                    mgf: PkcsMgfType::MGF1_SHA256,
                    s_len: 32.into(),
                }),
                live.key,
                request.message,
            ),
        }
    }
}

struct OpenError {
    message: String,
    fatal: bool,
}

impl OpenError {
    fn fatal(message: String) -> OpenError {
        OpenError {
            message,
            fatal: true,
        }
    }
    fn transient(message: String) -> OpenError {
        OpenError {
            message,
            fatal: false,
        }
    }
}

fn describe_token(uri: &Pkcs11Uri) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &uri.token {
        parts.push(format!("token={t:?}"));
    }
    if let Some(s) = &uri.serial {
        parts.push(format!("serial={s:?}"));
    }
    if let Some(m) = &uri.manufacturer {
        parts.push(format!("manufacturer={m:?}"));
    }
    if let Some(m) = &uri.model {
        parts.push(format!("model={m:?}"));
    }
    if let Some(id) = uri.slot_id {
        parts.push(format!("slot-id={id}"));
    }
    if parts.is_empty() {
        "any token".into()
    } else {
        format!("the token with {}", parts.join(", "))
    }
}

fn describe_object(uri: &Pkcs11Uri) -> String {
    match (&uri.object, &uri.id) {
        (Some(label), Some(id)) => format!("labelled {label:?} with id {}", hex(id)),
        (Some(label), None) => format!("labelled {label:?}"),
        (None, Some(id)) => format!("with id {}", hex(id)),
        (None, None) => "(any)".into(),
    }
}

fn describe_key(uri: &Pkcs11Uri) -> String {
    format!(
        "PKCS#11 key {} on {}",
        describe_object(uri),
        describe_token(uri)
    )
}

impl KeySigner for Pkcs11Key {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    fn probe_at_configuration(&self) -> bool {
        true
    }

    fn sign(&self, request: &SignRequest<'_>) -> std::result::Result<Vec<u8>, String> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // One retry: a session lost since the last handshake is reopened at once.
        for _ in 0..2 {
            if let State::Open(live) = &*state {
                match self.sign_once(live, request) {
                    Ok(signature) => return Ok(signature),
                    Err(e) if session_lost(&e) => {
                        log::warn!(
                            "{}: session lost ({}); reopening",
                            self.label,
                            ck_detail(&e)
                        );
                        *state = State::Closed {
                            retry_at: Instant::now(),
                            backoff: BACKOFF_FIRST,
                            last_error: format!("the token went away ({})", ck_detail(&e)),
                        };
                    }
                    Err(e) => return Err(format!("the token refused to sign: {}", ck_detail(&e))),
                }
            }
            match &*state {
                State::Open(_) => {}
                State::Fatal(message) => return Err(message.clone()),
                State::Closed {
                    retry_at,
                    backoff,
                    last_error,
                } => {
                    let now = Instant::now();
                    if now < *retry_at {
                        return Err(format!(
                            "token unavailable: {last_error}; next try in {} s",
                            retry_at.duration_since(now).as_secs().max(1)
                        ));
                    }
                    let backoff = *backoff;
                    match self.connect() {
                        Ok((live, algorithm)) if algorithm == self.algorithm => {
                            log::info!("{}: session reopened", self.label);
                            *state = State::Open(live);
                        }
                        Ok(_) => {
                            *state = State::Fatal(format!(
                                "{} changed key type since the socket was configured",
                                self.label
                            ));
                        }
                        Err(e) if e.fatal => *state = State::Fatal(e.message),
                        Err(e) => {
                            *state = State::Closed {
                                retry_at: now + backoff,
                                backoff: (backoff * 2).min(BACKOFF_MAX),
                                last_error: e.message.clone(),
                            };
                            return Err(format!("token unavailable: {}", e.message));
                        }
                    }
                }
            }
        }
        Err("the token keeps losing its session".into())
    }
}
