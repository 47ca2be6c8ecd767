//! `nhc device` and `nhc agent` on real networks, against the in-process dev
//! server: through its CONNECT proxy with basic credentials (from
//! `NHC_PROXY`, from the agent file's `[server] proxy`), refused with wrong
//! ones; through `https_proxy` unless `--no-proxy-env`; behind a load
//! balancer redirecting the upgrade twice (`/lb/2/...`), refusing a third
//! redirect and one from wss to ws (`/lb-plain/...`); other URL paths are
//! refused. The proxy password never appears in what the process prints
//! (the agent logs at trace).
//! Every wait is on an output line or on what the server saw.

#[path = "common/nh1_server.rs"]
mod nh1_server;
#[path = "common/stdout_lines.rs"]
mod stdout_lines;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use nhc_devserver::{DevServer, ProxyRules};
use serde_json::Value;
use stdout_lines::StdoutLines;

const KEY: &str = "nhp_cli_networks_product_key";
const SECRET: &str = "cli-networks-test-secret";
const WAIT: Duration = Duration::from_secs(30);

const PROXY_USER: &str = "nhc-user";
const PROXY_PASSWORD: &str = "pr0xy-Pa55word";
const WRONG_PASSWORD: &str = "wr0ng-Pa55word";
/// `Proxy-Authorization: Basic` of `nhc-user:pr0xy-Pa55word`.
const PROXY_BASIC: &str = "bmhjLXVzZXI6cHIweHktUGE1NXdvcmQ=";

/// Variables that would choose a proxy for the child besides the test's.
const PROXY_VARS: [&str; 7] = [
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "no_proxy",
    "NO_PROXY",
    "NHC_PROXY",
    "NHC_URL",
];

async fn server() -> DevServer {
    nh1_server::with_product_key(KEY, SECRET).await
}

/// The dev server's proxy URL with these credentials.
fn with_credentials(server: &DevServer, password: &str) -> String {
    server
        .proxy()
        .url()
        .replacen("http://", &format!("http://{PROXY_USER}:{password}@"), 1)
}

fn require_credentials(server: &DevServer) {
    server.proxy().set_rules(ProxyRules {
        credentials: Some(format!("{PROXY_USER}:{PROXY_PASSWORD}")),
        ..ProxyRules::default()
    });
}

/// `url` with its socket path behind the dev server's load balancer prefix.
fn behind(url: &str, prefix: &str) -> String {
    url.replacen("/device-socket/", &format!("/{prefix}/device-socket/"), 1)
        .replacen(
            "/socket/websocket",
            &format!("/{prefix}/socket/websocket"),
            1,
        )
}

/// `nhc device --json` signing NH1 as `identifier`, at `url`, then `more`.
fn nh1_device(url: &str, identifier: &str, more: &[&str]) -> Vec<String> {
    let secret = format!("{KEY}:{SECRET}");
    let mut args = vec!["device", "--json", "--duration", "120", "--url", url];
    args.extend(["--identifier", identifier, "--shared-secret", &secret]);
    args.extend(more);
    args.into_iter().map(str::to_owned).collect()
}

/// `nhc device --json` with the dev device certificate, at `url` (wss).
fn mtls_device(server: &DevServer, url: &str, more: &[&str]) -> Vec<String> {
    let pki = server.pki();
    let mut args: Vec<String> = ["device", "--json", "--duration", "120", "--url", url]
        .into_iter()
        .map(str::to_owned)
        .collect();
    for (flag, path) in [
        ("--ca", &pki.ca),
        ("--cert", &pki.device_cert),
        ("--key", &pki.device_key),
    ] {
        args.push(flag.to_owned());
        args.push(path.display().to_string());
    }
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

/// One `nhc` process: its JSON events, and everything it printed once it
/// ended. Waiting blocks the test's own thread only: the server runs on the
/// runtime's workers (`multi_thread`).
struct Nhc {
    child: Child,
    /// Taken by `finish`.
    events: Option<StdoutLines<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Nhc {
    /// `nhc ARGS` with `env` and none of the caller's proxy variables.
    fn start(args: &[String], env: &[(&str, &str)]) -> Nhc {
        let mut command = Command::new(env!("CARGO_BIN_EXE_nhc"));
        for name in PROXY_VARS {
            command.env_remove(name);
        }
        let mut child = command
            .args(args)
            .env_remove("JOURNAL_STREAM")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let events = StdoutLines::read(child.stdout.take().unwrap(), |line| line);
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Nhc {
            child,
            events: Some(events),
            stderr: Some(stderr),
        }
    }

    /// The first event (from now on) named `name`.
    fn wait_event(&mut self, name: &str) -> Value {
        let events = self.events.as_mut().unwrap();
        let line = events.wait(&format!("{name} event"), WAIT, |line| {
            serde_json::from_str::<Value>(line).is_ok_and(|e| e["event"] == name)
        });
        serde_json::from_str(&line).unwrap()
    }

    /// Kills it: everything it wrote on stdout and stderr.
    fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stdout = self.events.take().unwrap().all().join("\n");
        let stderr = self.stderr.take().unwrap().join().unwrap();
        format!("{stdout}\n{stderr}")
    }
}

impl Drop for Nhc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// It said it joined `device`, and the server counted `joins` joins so far.
async fn joined_device(nhc: &mut Nhc, server: &DevServer, joins: usize) {
    nhc.wait_event("joined");
    server
        .control()
        .wait_joined("device", joins, WAIT)
        .await
        .unwrap();
}

/// Neither proxy password, nor the encoded credentials, in `printed`.
fn assert_no_proxy_secret(printed: &str) {
    for secret in [PROXY_PASSWORD, WRONG_PASSWORD, PROXY_BASIC] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nhc_device_joins_through_a_proxy_with_credentials_from_nhc_proxy() {
    let server = server().await;
    require_credentials(&server);
    let url = server.device_socket_url();

    // Wrong credentials: a proxy error, retried, and nothing joined.
    let wrong = with_credentials(&server, WRONG_PASSWORD);
    let mut nhc = Nhc::start(
        &nh1_device(&url, "net-proxy", &[]),
        &[("NHC_PROXY", &wrong)],
    );
    let failed = nhc.wait_event("disconnected");
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("refused the configured credentials"),
        "{failed}"
    );
    assert!(failed["reconnect_in_ms"].is_u64(), "{failed}");
    assert_no_proxy_secret(&nhc.finish());
    assert!(server.control().connections().await.is_empty());

    // The right ones: joined, through one tunnel to the server's port.
    let good = with_credentials(&server, PROXY_PASSWORD);
    let mut nhc = Nhc::start(&nh1_device(&url, "net-proxy", &[]), &[("NHC_PROXY", &good)]);
    joined_device(&mut nhc, &server, 1).await;
    let granted: Vec<_> = server
        .proxy()
        .tunnels()
        .into_iter()
        .filter(|t| t.status == 200)
        .collect();
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert!(granted[0].credentials_sent && granted[0].to_client > 0);
    assert!(url.contains(&granted[0].target), "{url} {granted:?}");
    assert_no_proxy_secret(&nhc.finish());
}

/// `[server]` of an agent file for this identifier, with `more` keys.
fn agent_file(server: &DevServer, dir: &std::path::Path, identifier: &str, more: &str) -> PathBuf {
    std::fs::write(dir.join("secret"), format!("{SECRET}\n")).unwrap();
    let text = format!(
        "output = \"json\"\nlog_level = \"trace\"\n\n[server]\nurl = \"{}\"\n\
         identifier = \"{identifier}\"\nshared_secret_key = \"{KEY}\"\n\
         shared_secret_file = \"{}\"\n{more}",
        server.device_socket_url(),
        dir.join("secret").display()
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_joins_through_the_proxy_of_its_file_logging_no_password() {
    let server = server().await;
    require_credentials(&server);
    let dir = std::env::temp_dir().join(format!("nhc-networks-agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let proxy = format!(
        "proxy = \"{}\"\n",
        with_credentials(&server, PROXY_PASSWORD)
    );
    let path = agent_file(&server, &dir, "net-agent", &proxy);
    let args = [
        "agent".into(),
        "--config".into(),
        path.display().to_string(),
    ];
    // The environment's proxy is a dead one: the file's wins.
    let mut agent = Nhc::start(&args, &[("http_proxy", "http://127.0.0.1:1")]);
    joined_device(&mut agent, &server, 1).await;
    let tunnels = server.proxy().tunnels();
    assert!(
        tunnels
            .iter()
            .any(|t| t.status == 200 && t.credentials_sent),
        "{tunnels:?}"
    );
    let printed = agent.finish();
    // Trace logging printed something, and no password.
    assert!(!printed.trim().is_empty());
    assert_no_proxy_secret(&printed);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn https_proxy_carries_wss_unless_no_proxy_env() {
    let server = server().await;
    let proxy = server.proxy().url();
    let env = [("https_proxy", proxy.as_str())];
    let url = server.wss_url();

    let mut nhc = Nhc::start(&mtls_device(&server, &url, &[]), &env);
    joined_device(&mut nhc, &server, 1).await;
    let tunnels = server.proxy().tunnels();
    assert_eq!(tunnels.len(), 1, "{tunnels:?}");
    assert!(url.contains(&tunnels[0].target), "{url} {tunnels:?}");
    nhc.finish();

    let mut nhc = Nhc::start(&mtls_device(&server, &url, &["--no-proxy-env"]), &env);
    joined_device(&mut nhc, &server, 2).await;
    assert_eq!(server.proxy().tunnels().len(), 1);
    nhc.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn nhc_device_follows_two_redirects_and_refuses_a_third() {
    let server = server().await;
    let url = behind(&server.device_socket_url(), "lb/2");
    let mut nhc = Nhc::start(&nh1_device(&url, "net-lb-2", &[]), &[]);
    joined_device(&mut nhc, &server, 1).await;
    // NH1-signed on the last hop: the headers followed the redirects.
    let connections = server.control().connections().await;
    assert_eq!(connections[0].identity.as_deref(), Some("net-lb-2"));
    nhc.finish();

    let url = behind(&server.device_socket_url(), "lb/3");
    let mut nhc = Nhc::start(&nh1_device(&url, "net-lb-3", &[]), &[]);
    let failed = nhc.wait_event("disconnected");
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("more than 2 redirects"), "{failed}");
    assert!(failed["reconnect_in_ms"].is_u64(), "{failed}");
    nhc.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn nhc_device_refuses_a_redirect_from_wss_to_ws() {
    let server = server().await;
    let url = behind(&server.wss_url(), "lb-plain");
    let mut nhc = Nhc::start(&mtls_device(&server, &url, &[]), &[]);
    let failed = nhc.wait_event("disconnected");
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("from TLS to plain text"), "{failed}");
    nhc.finish();
    assert!(server.control().connections().await.is_empty());

    // The same server behind one redirect over wss: joined.
    let url = behind(&server.wss_url(), "lb/1");
    let mut nhc = Nhc::start(&mtls_device(&server, &url, &[]), &[]);
    joined_device(&mut nhc, &server, 1).await;
    nhc.finish();
}

/// A path prefix is allowed (above), but the path must still end in a
/// NervesHub socket mount.
#[test]
fn a_device_url_must_end_in_a_socket_mount() {
    for path in ["/socket/websocket/lb", "/lb/2/device-socket", "/lb/2/"] {
        let url = format!("ws://127.0.0.1:1{path}");
        let out = Command::new(env!("CARGO_BIN_EXE_nhc"))
            .args(nh1_device(&url, "net-path", &[]))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path}: {stderr}");
        assert!(
            stderr.contains("a NervesHub device URL ends in") && stderr.contains(path),
            "{path}: {stderr}"
        );
    }
}
