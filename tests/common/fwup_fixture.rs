//! The real fwup and the update-chain fixtures (issue 22), made by
//! tests/fixtures/fwup-fixture.sh from tests/fixtures/fwup.conf: a signing
//! key pair, signed `.fw` files, an unsigned one, one signed with another
//! key, and a disk image with slot `a` active.
//!
//! fwup is `$NHC_FWUP` (scripts/test.sh sets it) or the one scripts/setup.sh
//! built into target/tools/fwup. Without it a test fails in CI (`CI=true`)
//! and is skipped, saying so, elsewhere.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use nerves_hub_channel::nerves_hub::uboot_env;
use nerves_hub_channel::nerves_hub::UbootEnvLayout;

/// The U-Boot environment's size in tests/fixtures/fwup.conf (16 blocks),
/// at the start of the disk image.
pub const ENV_SIZE: usize = 8192;

/// The repository's root: this file is also compiled into the tests of
/// workspace members (cli/), whose manifest directory is one level down.
fn repo_root() -> &'static Path {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("tests/fixtures/fwup-fixture.sh").is_file())
        .unwrap_or(manifest)
}

/// The fwup to use, or `None` (skip) outside CI when there is none.
pub fn fwup() -> Option<PathBuf> {
    let from_env = std::env::var_os("NHC_FWUP").map(PathBuf::from);
    let cached = repo_root().join("target/tools/fwup/bin/fwup");
    let found = from_env
        .clone()
        .or(Some(cached.clone()))
        .filter(|p| p.is_file());
    if found.is_none() {
        let why = format!(
            "fwup not found (NHC_FWUP={from_env:?}, {}): run scripts/setup.sh",
            cached.display()
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIPPED: {why}");
    }
    found
}

/// One test's fixtures in their own directory.
pub struct FwupFixture {
    pub fwup: PathBuf,
    pub dir: PathBuf,
}

impl FwupFixture {
    /// Builds the fixtures for the test `name`; `None` when skipped (see [`fwup`]).
    pub fn new(name: &str) -> Option<FwupFixture> {
        let fwup = fwup()?;
        let dir = std::env::temp_dir().join(format!("nhc-fwup-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = repo_root().join("tests/fixtures/fwup-fixture.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&fwup)
            .arg(&dir)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(FwupFixture { fwup, dir })
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn bytes(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    /// The content of `key.pub` (or `other.pub`): base64 of 32 bytes.
    pub fn public_key(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.pub")))
            .expect("public key")
            .trim()
            .to_owned()
    }

    /// The disk image the updates are applied to.
    pub fn disk(&self) -> PathBuf {
        self.path("disk.img")
    }

    /// The disk's U-Boot environment, read with the library's own reader.
    pub fn env(&self) -> BTreeMap<String, String> {
        uboot_env::read(self.disk(), ENV_SIZE, UbootEnvLayout::Single).expect("U-Boot env")
    }

    /// `fwup -m`'s meta-uuid of a `.fw` file.
    pub fn uuid(&self, file: &str) -> String {
        let out = Command::new(&self.fwup)
            .args(["-m", "--metadata-key", "meta-uuid", "-i"])
            .arg(self.path(file))
            .output()
            .expect("fwup runs");
        assert!(out.status.success(), "fwup -m {file}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs the archive's `validate` task on the disk, as the new firmware
    /// does once it works (nerves_fw_validated=1).
    pub fn validate(&self, file: &str) {
        let status = Command::new(&self.fwup)
            .args(["-a", "-q", "-U", "-t", "validate", "-d"])
            .arg(self.disk())
            .arg("-i")
            .arg(self.path(file))
            .status()
            .expect("fwup runs");
        assert!(status.success(), "fwup -t validate");
    }

    /// The sink arguments that apply an update to the disk (the keys are
    /// added by the device).
    pub fn apply_args(&self) -> Vec<String> {
        vec![
            "--apply".into(),
            "--no-unmount".into(),
            "-d".into(),
            self.disk().display().to_string(),
            "--task".into(),
            "upgrade".into(),
        ]
    }
}

impl Drop for FwupFixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
