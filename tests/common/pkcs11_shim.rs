//! The fault-injecting PKCS#11 module (tests/fixtures/pkcs11_fault_shim.c),
//! compiled with the system C compiler (`cc`, or `$CC`) into a temporary
//! directory, forwarding to the SoftHSM2 module: a token that a test can
//! pull out and put back by rewriting a control file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct FaultShim {
    /// The module to load instead of SoftHSM2's.
    pub module: PathBuf,
    control: PathBuf,
    removals: std::cell::Cell<u64>,
}

impl FaultShim {
    /// Builds the shim in `dir` and points it at `target`. The shim reads its
    /// target and control file from the environment, so there is one shim
    /// per test process.
    pub fn build(dir: &Path, target: &Path) -> FaultShim {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let source = ["tests/fixtures", "../tests/fixtures"]
            .iter()
            .map(|d| root.join(d).join("pkcs11_fault_shim.c"))
            .find(|p| p.is_file())
            .expect("tests/fixtures/pkcs11_fault_shim.c");
        let module = dir.join("libnhc_pkcs11_fault_shim.so");
        let control = dir.join("token-removed");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = Command::new(&cc)
            .args(["-shared", "-fPIC", "-Wall", "-Werror", "-o"])
            .arg(&module)
            .arg(&source)
            .args(["-ldl", "-lpthread"])
            .output()
            .unwrap_or_else(|e| panic!("{cc}: {e} (a C compiler builds the PKCS#11 shim)"));
        assert!(
            out.status.success(),
            "building the PKCS#11 shim failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::env::set_var("NHC_PKCS11_SHIM_TARGET", target);
        std::env::set_var("NHC_PKCS11_SHIM_CONTROL", &control);
        FaultShim {
            module,
            control,
            removals: std::cell::Cell::new(0),
        }
    }

    /// From the next PKCS#11 call on, the token is gone.
    pub fn remove_token(&self) {
        self.removals.set(self.removals.get() + 1);
        std::fs::write(&self.control, "removed\n").expect("control file");
    }

    /// From the next PKCS#11 call on, the token is back (old sessions stay invalid).
    pub fn insert_token(&self) {
        let present = format!("present {}\n", self.removals.get());
        std::fs::write(&self.control, present).expect("control file");
    }
}
