//! A TPM 2.0 key through tpm2-pkcs11: a software TPM (`swtpm`) on local TCP
//! ports, reached over the swtpm TCTI, a tpm2-pkcs11 store in a temporary
//! directory, a token and an EC P-256 key generated in the TPM with
//! pkcs11-tool, and a CSR signed by the library's own PKCS#11 code (the key
//! never leaves the TPM): the TPM walk-through of docs/hardware-keys.md.
//!
//! There is no resource manager (tpm2-abrmd would need D-Bus), so one
//! process at a time uses the TPM: the provisioning tools run one after the
//! other, then the test process. swtpm lives as long as the test process: a
//! shell starts it and stops it when its stdin (held by this process) closes.
//! Without the tools (scripts/setup.sh installs them) a test fails in CI
//! (`CI=true`) and is skipped, saying so, elsewhere.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use nerves_hub_channel::{KeySigner, Pkcs11KeyOptions, Pkcs11Pin, SignRequest, SignatureAlgorithm};

pub const TPM_TOKEN: &str = "nhc-tpm";
pub const TPM_PIN: &str = "2468";
pub const TPM_KEY: &str = "device-tpm";

const MODULE_CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib64/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib/pkcs11/libtpm2_pkcs11.so",
];
const TCTI_CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0",
    "/usr/lib/aarch64-linux-gnu/libtss2-tcti-swtpm.so.0",
    "/usr/lib64/libtss2-tcti-swtpm.so.0",
];

pub struct Tpm {
    pub module: PathBuf,
    pub dir: PathBuf,
    /// The shell that owns swtpm; kept so its stdin stays open.
    _swtpm: Mutex<Child>,
}

static FIXTURE: OnceLock<Option<Tpm>> = OnceLock::new();

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn run(cmd: &mut Command) {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two free ports in a row: the swtpm TCTI finds the control port at the
/// TPM port + 1.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = first.local_addr().expect("its address").port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two free ports in a row");
}

/// The TPM token for this process, or `None` (skip) outside CI when swtpm,
/// tpm2-pkcs11, the swtpm TCTI or pkcs11-tool is missing.
pub fn tpm() -> Option<&'static Tpm> {
    FIXTURE.get_or_init(setup).as_ref()
}

fn setup() -> Option<Tpm> {
    let find = |candidates: &[&str]| candidates.iter().map(PathBuf::from).find(|p| p.is_file());
    let module = find(MODULE_CANDIDATES);
    let missing: Vec<&str> = [
        ("swtpm", have("swtpm")),
        ("libtpm2_pkcs11.so (libtpm2-pkcs11-1)", module.is_some()),
        (
            "the swtpm TCTI (libtss2-tcti-swtpm0)",
            find(TCTI_CANDIDATES).is_some(),
        ),
        ("pkcs11-tool (opensc)", have("pkcs11-tool")),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        let why = format!(
            "TPM 2.0 tests need {}: run scripts/setup.sh",
            missing.join(", ")
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIPPED: {why}");
        return None;
    }
    let module = module?;
    let dir = std::env::temp_dir().join(format!("nhc-tpm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["state", "store"] {
        std::fs::create_dir_all(dir.join(sub)).expect("TPM dirs");
    }
    let port = free_port_pair();
    let ctrl = port + 1;
    // swtpm --daemon returns once it listens; the shell then says "ready"
    // and stops swtpm when this process closes its stdin (also on a crash).
    let script = format!(
        "swtpm socket --tpm2 --tpmstate dir={state} --server type=tcp,port={port},bindaddr=127.0.0.1 \
         --ctrl type=tcp,port={ctrl},bindaddr=127.0.0.1 --flags not-need-init,startup-clear \
         --daemon --pid file={pid} || exit 1; echo ready; read _; kill $(cat {pid})",
        state = dir.join("state").display(),
        pid = dir.join("swtpm.pid").display(),
    );
    let mut shell = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh starts swtpm");
    let mut line = String::new();
    BufReader::new(shell.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("swtpm's shell");
    assert_eq!(line.trim(), "ready", "swtpm did not start");
    // Read by tpm2-pkcs11 in the tools below and in this process.
    std::env::set_var(
        "TPM2_PKCS11_TCTI",
        format!("swtpm:host=127.0.0.1,port={port}"),
    );
    std::env::set_var("TPM2_PKCS11_STORE", dir.join("store"));
    std::env::set_var("TPM2_PKCS11_LOG_LEVEL", "0");
    let tool = |args: &[&str]| {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.arg("--module").arg(&module).args(args);
        run(&mut cmd);
    };
    tool(&["--init-token", "--label", TPM_TOKEN, "--so-pin", "13579"]);
    tool(&[
        "--token-label",
        TPM_TOKEN,
        "--login",
        "--login-type",
        "so",
        "--so-pin",
        "13579",
        "--init-pin",
        "--pin",
        TPM_PIN,
    ]);
    tool(&[
        "--token-label",
        TPM_TOKEN,
        "--login",
        "--pin",
        TPM_PIN,
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        TPM_KEY,
        "--id",
        "01",
    ]);
    tool(&[
        "--token-label",
        TPM_TOKEN,
        "--read-object",
        "--type",
        "pubkey",
        "--label",
        TPM_KEY,
        "--output-file",
        &dir.join("public.der").to_string_lossy(),
    ]);
    Some(Tpm {
        module,
        dir,
        _swtpm: Mutex::new(shell),
    })
}

impl Tpm {
    pub fn key(&self) -> Pkcs11KeyOptions {
        Pkcs11KeyOptions {
            module: Some(self.module.clone()),
            uri: format!("pkcs11:token={TPM_TOKEN};object={TPM_KEY};type=private"),
            pin: Some(Pkcs11Pin::Value(TPM_PIN.into())),
        }
    }

    /// The key's public half (SubjectPublicKeyInfo, DER), read from the token.
    pub fn public_key(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("public.der")).expect("public key read from the token")
    }
}

/// rcgen's view of a P-256 key that signs through a `KeySigner` (the token),
/// so the CSR is signed where the key lives.
pub struct TokenCsrKey<'a> {
    pub signer: &'a dyn KeySigner,
    /// The uncompressed EC point.
    pub point: Vec<u8>,
}

impl<'a> TokenCsrKey<'a> {
    /// From the key's SubjectPublicKeyInfo (P-256: 26 bytes of algorithm
    /// header, then the 65-byte point).
    pub fn new(signer: &'a dyn KeySigner, spki: &[u8]) -> TokenCsrKey<'a> {
        assert_eq!(spki.len(), 91, "a P-256 SubjectPublicKeyInfo");
        TokenCsrKey {
            signer,
            point: spki[26..].to_vec(),
        }
    }

    /// A CSR for `cn`, PEM.
    pub fn csr(&self, cn: &str) -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .serialize_request(self)
            .and_then(|csr| csr.pem())
            .expect("a CSR signed on the token")
    }
}

impl rcgen::PublicKeyData for TokenCsrKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for TokenCsrKey<'_> {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, message);
        let raw = self
            .signer
            .sign(&SignRequest {
                algorithm: SignatureAlgorithm::EcdsaP256Sha256,
                message,
                digest: digest.as_ref(),
            })
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        if raw.len() != 64 {
            return Err(rcgen::Error::RemoteKeyError);
        }
        Ok(ecdsa_der(&raw[..32], &raw[32..]))
    }
}

/// X.509 wants ECDSA signatures as DER `SEQUENCE { r INTEGER, s INTEGER }`;
/// the token gives raw `r || s`.
fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let integer = |v: &[u8]| {
        let v = &v[v.iter().take_while(|b| **b == 0).count().min(v.len() - 1)..];
        let mut out = vec![0x02];
        let pad = v[0] & 0x80 != 0;
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let body = [integer(r), integer(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}
