//! A SoftHSM2 token with an EC P-256 and an RSA-2048 key generated on the
//! token (pkcs11-tool), CSRs signed through the token (OpenSSL's pkcs11
//! engine), and device certificates issued from them by a dev server's CA:
//! the provisioning walk-through of docs/hardware-keys.md, run for real.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once per process, so each test binary
//! gets one token directory, set up before its first PKCS#11 use. Without
//! the tools (scripts/setup.sh installs them) a test fails in CI
//! (`CI=true`) and is skipped, saying so, elsewhere.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::fixture_tools::{all_present, have, run};

use nerves_hub_channel::{Pkcs11KeyOptions, Pkcs11Pin};
use nhc_devserver::Pki;

pub const TOKEN: &str = "nhc-test";
pub const PIN: &str = "4711";
pub const SO_PIN: &str = "87654321";
pub const EC_LABEL: &str = "device-ec";
pub const RSA_LABEL: &str = "device-rsa";
/// A second token that no test logs in to successfully: PKCS#11 login state
/// is per process and token, so a wrong PIN is only noticed on a token this
/// process is not logged in to yet.
pub const LOCKED_TOKEN: &str = "nhc-not-logged-in";

/// Where Debian and Fedora put the SoftHSM2 module.
const MODULE_CANDIDATES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
];

pub struct SoftHsm {
    pub module: PathBuf,
    pub dir: PathBuf,
}

static FIXTURE: OnceLock<Option<SoftHsm>> = OnceLock::new();

fn engine_available() -> bool {
    Command::new("openssl")
        .args(["engine", "pkcs11"])
        .env("OPENSSL_CONF", "/dev/null")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The token for this process, or `None` (skip) outside CI when SoftHSM2,
/// OpenSC or OpenSSL's pkcs11 engine is missing.
pub fn softhsm() -> Option<&'static SoftHsm> {
    FIXTURE.get_or_init(setup).as_ref()
}

fn setup() -> Option<SoftHsm> {
    let module = MODULE_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    let present = all_present(
        "SoftHSM2",
        &[
            ("libsofthsm2.so (softhsm2)", module.is_some()),
            ("softhsm2-util (softhsm2)", have("softhsm2-util")),
            ("pkcs11-tool (opensc)", have("pkcs11-tool")),
            ("openssl", have("openssl")),
            (
                "OpenSSL pkcs11 engine (libengine-pkcs11-openssl)",
                engine_available(),
            ),
        ],
    );
    if !present {
        return None;
    }
    let module = module?;
    let dir = std::env::temp_dir().join(format!("nhc-softhsm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tokens")).expect("token dir");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = true\n",
            dir.join("tokens").display()
        ),
    )
    .expect("softhsm2.conf");
    // Set before this process loads the module (the first Pkcs11Key::open),
    // and for the tools below.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    run(Command::new("softhsm2-util").args([
        "--init-token",
        "--free",
        "--label",
        TOKEN,
        "--so-pin",
        SO_PIN,
        "--pin",
        PIN,
    ]));
    for (label, id, kind) in [
        (EC_LABEL, "01", "EC:prime256v1"),
        (RSA_LABEL, "02", "rsa:2048"),
    ] {
        run(Command::new("pkcs11-tool").args([
            "--module",
            &module.to_string_lossy(),
            "--token-label",
            TOKEN,
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            kind,
            "--label",
            label,
            "--id",
            id,
        ]));
    }
    // OpenSSL's pkcs11 engine, pointed at this module.
    std::fs::write(
        dir.join("openssl.cnf"),
        format!(
            "openssl_conf = init\n[init]\nengines = engines\n[engines]\npkcs11 = pkcs11\n[pkcs11]\nMODULE_PATH = {}\n",
            module.display()
        ),
    )
    .expect("openssl.cnf");
    let hsm = SoftHsm { module, dir };
    // The CSRs are made while the test token is the only one: libp11 0.4.12
    // (OpenSSL's pkcs11 engine) fails to find a key on any token but the
    // first slot, and SoftHSM2 orders slots by a random serial.
    for label in [EC_LABEL, RSA_LABEL] {
        hsm.make_csr(label);
    }
    run(Command::new("softhsm2-util").args([
        "--init-token",
        "--free",
        "--label",
        LOCKED_TOKEN,
        "--so-pin",
        SO_PIN,
        "--pin",
        PIN,
    ]));
    Some(hsm)
}

impl SoftHsm {
    /// Options selecting `label` on the test token with the right PIN.
    pub fn key(&self, label: &str) -> Pkcs11KeyOptions {
        Pkcs11KeyOptions {
            module: Some(self.module.clone()),
            uri: format!("pkcs11:token={TOKEN};object={label};type=private"),
            pin: Some(Pkcs11Pin::Value(PIN.into())),
        }
    }

    /// The common name of the certificate for `label`.
    pub fn cn(label: &str) -> String {
        format!("nhc-hsm-{label}")
    }

    /// A CSR signed on the token (the key never leaves it), as a device
    /// makes during provisioning.
    fn make_csr(&self, label: &str) {
        let cn = SoftHsm::cn(label);
        let out = self.dir.join(format!("{label}.csr"));
        run(Command::new("openssl")
            .env("OPENSSL_CONF", self.dir.join("openssl.cnf"))
            .args([
                "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key",
            ])
            .arg(format!(
                "pkcs11:token={TOKEN};object={label};type=private;pin-value={PIN}"
            ))
            .args(["-subj", &format!("/CN={cn}"), "-out"])
            .arg(&out));
    }

    /// The device certificate for `label`'s key (CN `SoftHsm::cn(label)`),
    /// issued by `pki`'s CA from the CSR made on the token.
    pub fn device_cert(&self, pki: &Pki, label: &str) -> PathBuf {
        let csr =
            std::fs::read_to_string(self.dir.join(format!("{label}.csr"))).expect("CSR written");
        pki.issue_device_for_csr(&SoftHsm::cn(label), &csr)
            .expect("the dev CA signs the CSR")
    }

    pub fn token_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.join("tokens"))
            .expect("token dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
