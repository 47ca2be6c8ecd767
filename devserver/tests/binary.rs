//! The `nhc-devserver` binary: its ready line and ready file.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prints_one_json_line_and_writes_the_ready_file() {
    let dir = std::env::temp_dir().join(format!("nhc-devserver-bin-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ready = dir.join("ready");
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_nhc-devserver"))
            .args([
                "--pki-dir",
                dir.join("pki").to_str().unwrap(),
                "--ready-file",
                ready.to_str().unwrap(),
            ])
            .args(["--idle-timeout-ms", "5000", "--demo"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    for key in ["ws_url", "wss_url", "control_url"] {
        assert!(info[key].is_string(), "{key} in {line}");
    }
    for key in ["pki_dir", "ca", "device_cert", "device_key"] {
        let path = std::path::Path::new(info[key].as_str().unwrap());
        assert!(path.is_absolute() && path.exists(), "{key} in {line}");
    }
    // The ready file is written (atomically) before the line is printed.
    let written = std::fs::read_to_string(&ready).unwrap();
    assert_eq!(written, line);
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rejects_unknown_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_nhc-devserver"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}
