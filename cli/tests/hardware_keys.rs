//! `nhc` with its client key on a PKCS#11 token (SoftHSM2, see
//! tests/common/softhsm_fixture.rs): `--cert` plus `--pkcs11-*` joins the
//! dev server over mutual TLS; the PIN comes from a file. `nhc agent` does
//! the same from its configuration file, and names the key of a bad
//! pkcs11 setting.

#[path = "../../tests/common/softhsm_fixture.rs"]
mod softhsm_fixture;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nhc_devserver::{Config, DevServer};
use softhsm_fixture::*;

#[tokio::test(flavor = "multi_thread")]
async fn simulate_joins_with_a_token_key() {
    let Some(hsm) = softhsm() else { return };
    let server = DevServer::start(Config::default()).await.unwrap();
    let cert = hsm.device_cert(server.pki(), EC_LABEL);
    let pin_file = hsm.path("cli-pin");
    std::fs::write(&pin_file, PIN).unwrap();
    let args: Vec<String> = [
        "simulate",
        "--url",
        &server.wss_url(),
        "--ca",
        &server.pki().ca.to_string_lossy(),
        "--cert",
        &cert.to_string_lossy(),
        "--pkcs11-module",
        &hsm.module.to_string_lossy(),
        "--pkcs11-uri",
        &format!("pkcs11:token={TOKEN};object={EC_LABEL}"),
        "--pkcs11-pin-file",
        &pin_file.to_string_lossy(),
        "--devices",
        "1",
        "--exit-when-joined",
        "--duration",
        "60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_nhc"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
}

/// `<dir>/agent-<name>.toml`: `[server]` on the dev server's mutual TLS socket
/// with the token key, plus `pkcs11` lines (`key = value`) appended there.
fn agent_config(
    name: &str,
    server: &DevServer,
    hsm: &SoftHsm,
    cert: &Path,
    pkcs11: &str,
) -> PathBuf {
    let path = hsm.path(&format!("agent-{name}.toml"));
    let text = format!(
        "output = \"json\"\n\n[server]\nurl = \"{}\"\nca = \"{}\"\ncert = \"{}\"\n{pkcs11}\n\n\
         [metadata.static]\nnerves_fw_version = \"1.0.0\"\nnerves_fw_uuid = \"hsm-uuid\"\n",
        server.wss_url(),
        server.pki().ca.display(),
        cert.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_joins_with_a_token_key_from_its_config_file() {
    let Some(hsm) = softhsm() else { return };
    let server = DevServer::start(Config::default()).await.unwrap();
    let cert = hsm.device_cert(server.pki(), EC_LABEL);
    let pin_file = hsm.path("agent-pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let config = agent_config(
        "joins",
        &server,
        hsm,
        &cert,
        &format!(
            "pkcs11_uri = \"pkcs11:token={TOKEN};object={EC_LABEL}\"\npkcs11_module = \"{}\"\n\
             pkcs11_pin_file = \"{}\"",
            hsm.module.display(),
            pin_file.display()
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_nhc"))
        .args(["agent", "--config"])
        .arg(&config)
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let stdout = child.stdout.take().unwrap();
    // The agent prints one JSON event per line; all are read (a closed
    // pipe would end the agent), the names go to `events`.
    let (tx, events) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let _ = tx.send(event["event"].as_str().unwrap_or(&line).to_owned());
        }
    });
    let joined = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        while let Ok(name) = events.recv_timeout(Duration::from_secs(30)) {
            if name == "joined" {
                return Ok(());
            }
            seen.push(name);
        }
        Err(seen)
    })
    .await
    .unwrap();
    if let Err(seen) = joined {
        let _ = child.kill();
        panic!("the agent did not join; saw {seen:?}");
    }
    let connections = server.control().connections().await;
    let cn = SoftHsm::cn(EC_LABEL);
    assert!(
        connections
            .iter()
            .any(|c| c.identity.as_deref() == Some(cn.as_str())),
        "{connections:?}"
    );
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// `nhc agent --check` on a file with these pkcs11 lines: exit code and stderr.
fn check(server: &DevServer, hsm: &SoftHsm, pkcs11: &str) -> (Option<i32>, String) {
    let cert = server.pki().device_cert.clone();
    let config = agent_config("check", server, hsm, &cert, pkcs11);
    let out = Command::new(env!("CARGO_BIN_EXE_nhc"))
        .args(["agent", "--check", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_pkcs11_setting_in_the_agent_config_names_its_key_and_exits_with_2() {
    let Some(hsm) = softhsm() else { return };
    let server = DevServer::start(Config::default()).await.unwrap();
    let uri = format!("pkcs11_uri = \"pkcs11:token={TOKEN};object={EC_LABEL}\"");
    let module = format!("pkcs11_module = \"{}\"", hsm.module.display());
    let cases = [
        (
            format!("{uri}\npkcs11_module = \"/nonexistent/libnothing.so\""),
            "pkcs11_module", "PKCS#11 module /nonexistent/libnothing.so does not exist",
        ),
        (
            format!("{uri}\n{module}\npkcs11_pin_file = \"/nonexistent/pin\""),
            "pkcs11_pin_file", "cannot read the PIN file /nonexistent/pin",
        ),
        (
            format!("pkcs11_uri = \"pkcs11:token={TOKEN};object=no-such-key\"\n{module}\npkcs11_pin_env = \"NHC_TEST_AGENT_PIN\""),
            "pkcs11_uri", "no private key labelled \"no-such-key\"",
        ),
        (
            format!("pkcs11_uri = \"pkcs11:token={TOKEN};label=x\"\n{module}"),
            "pkcs11_uri", "invalid PKCS#11 URI",
        ),
        (
            module.clone(),
            "pkcs11_uri", "pkcs11 module and PIN settings need a pkcs11 URI",
        ),
    ];
    std::env::set_var("NHC_TEST_AGENT_PIN", PIN);
    for (lines, key, message) in cases {
        let (code, stderr) = check(&server, hsm, &lines);
        assert_eq!(code, Some(2), "{lines}: {stderr}");
        assert!(
            stderr.contains(&format!("key `server.{key}`: ")) && stderr.contains(message),
            "{lines}: {stderr}"
        );
        assert!(!stderr.contains(PIN), "{stderr}");
    }
}
