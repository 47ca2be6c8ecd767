//! `nhc` with its client key on a PKCS#11 token (SoftHSM2, see
//! tests/common/softhsm_fixture.rs): `--cert` plus `--pkcs11-*` joins the
//! dev server over mutual TLS; the PIN comes from a file.

#[path = "../../tests/common/softhsm_fixture.rs"]
mod softhsm_fixture;

use std::process::{Command, Stdio};

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
