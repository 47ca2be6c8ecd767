//! What the token fixtures (SoftHSM2, TPM 2.0) share: looking for the
//! tools a fixture needs, the rule for when they are missing (skip on a
//! developer's machine, fail in CI, where scripts/setup.sh installs them),
//! and running a set-up command that must succeed.

use std::process::Command;

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether every check passed; otherwise says which failed and skips
/// (`false`), or fails when `CI=true`.
pub fn all_present(fixture: &str, checks: &[(&str, bool)]) -> bool {
    let missing: Vec<&str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{fixture} tests need {}: run scripts/setup.sh",
        missing.join(", ")
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("SKIPPED: {why}");
    false
}

pub fn run(cmd: &mut Command) {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
