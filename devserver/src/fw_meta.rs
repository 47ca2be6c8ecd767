//! The `firmware_meta` of a fwup `.fw` archive, read the way NervesHub reads
//! it on upload: `fwup -m` prints the archive's `meta.conf` as
//! `meta-<key>=<value>` lines, and the `update` payload carries them.
//!
//! fwup is `$NHC_FWUP` when set, otherwise `fwup` from PATH.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

/// The fwup the dev server runs.
pub fn fwup_command() -> String {
    std::env::var("NHC_FWUP")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "fwup".into())
}

/// `meta.conf` of the archive in `bytes`, as NervesHub's `firmware_meta`:
/// uuid, product, version, architecture, platform, author, description,
/// vcs_identifier, misc and fwup_version (null when the archive has none).
pub fn read(bytes: &[u8], fwup: &str) -> Result<Value, String> {
    let mut child = Command::new(fwup)
        .args(["-m", "-i", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {fwup} (set NHC_FWUP): {e}"))?;
    let mut stdin = child.stdin.take().ok_or("fwup has no stdin")?;
    // fwup stops reading once it has meta.conf; the rest may not fit the pipe.
    let writer = {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        })
    };
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot wait for {fwup}: {e}"))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!(
            "not a fwup archive: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    meta(&String::from_utf8_lossy(&out.stdout))
}

/// The `firmware_meta` object for `fwup -m` output.
pub fn meta(text: &str) -> Result<Value, String> {
    let mut all = Map::new();
    for line in text.lines() {
        if let Some((key, value)) = line.strip_prefix("meta-").and_then(|l| l.split_once('=')) {
            all.insert(key.replace('-', "_"), json!(unquote(value)));
        }
    }
    if all.get("uuid").is_none_or(|u| u.as_str() == Some("")) {
        return Err("meta.conf has no meta-uuid".into());
    }
    let mut meta = Map::new();
    for key in [
        "uuid",
        "product",
        "version",
        "architecture",
        "platform",
        "author",
        "description",
        "vcs_identifier",
        "misc",
        "fwup_version",
    ] {
        meta.insert(key.into(), all.get(key).cloned().unwrap_or(Value::Null));
    }
    Ok(Value::Object(meta))
}

/// fwup prints values with spaces in double quotes, `"` and `\` escaped.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_lines_become_firmware_meta() {
        let text = "meta-product=\"nhc fixture\"\nmeta-version=2.0.0\n\
                    meta-description=\"say \\\"hi\\\"\"\nmeta-vcs-identifier=abc\n\
                    meta-uuid=\"b1131083-936e-50bd-fafe-339557ffb30f\"\nmeta-nickname=\"x\"\n";
        let m = meta(text).expect("parsed");
        assert_eq!(m["uuid"], "b1131083-936e-50bd-fafe-339557ffb30f");
        assert_eq!(m["product"], "nhc fixture");
        assert_eq!(m["version"], "2.0.0");
        assert_eq!(m["description"], "say \"hi\"");
        assert_eq!(m["vcs_identifier"], "abc");
        assert_eq!(m["misc"], Value::Null);
        assert!(m.get("nickname").is_none());
        assert!(meta("meta-version=1\n").unwrap_err().contains("meta-uuid"));
    }
}
