//! `nhc agent` run as a process against the in-process dev server, with NH1
//! on /device-socket and one identifier per test: an update through a
//! command sink then the reboot command, a reboot asked by the server, a
//! bad configuration file, SIGTERM in the middle of a (throttled) download
//! then a restart that resumes the download with a Range request, a console session,
//! firmware_validated from a check command, a failing install command, and
//! `nhc device --json --duration`, `--help` on every subcommand.
//! Every wait is on an output line or a message the server received.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use nerves_hub_channel::Payload;
use nhc_devserver::{Config, DevServer, FirmwareFaults, SharedSecretEntry};
use serde_json::{json, Value};

const KEY: &str = "nhp_cli_agent_product_key";
const SECRET: &str = "cli-agent-test-secret";
const WAIT: Duration = Duration::from_secs(30);

async fn server() -> DevServer {
    let server = DevServer::start(Config::default()).await.unwrap();
    server
        .add_shared_secret(SharedSecretEntry::new(KEY, SECRET, None))
        .unwrap();
    server
}

/// NervesHub's partial checksum granularity: what a resume keeps.
const PART_SIZE: u64 = 1 << 20;

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nhc-agent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `[server]` for this identifier, then `rest`; written to `<dir>/agent.toml`.
fn config(server: &DevServer, dir: &Path, identifier: &str, rest: &str) -> PathBuf {
    let url = server
        .ws_url()
        .replace("/socket/websocket", "/device-socket/websocket");
    std::fs::write(dir.join("secret"), format!("{SECRET}\n")).unwrap();
    let text = format!(
        "output = \"json\"\n\n[server]\nurl = \"{url}\"\nidentifier = \"{identifier}\"\n\
         shared_secret_key = \"{KEY}\"\nshared_secret_file = \"{}\"\n\n\
         [metadata.static]\nnerves_fw_version = \"1.0.0\"\nnerves_fw_uuid = \"old-uuid\"\n\n{rest}",
        dir.join("secret").display()
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The running agent and its events (one JSON object per stdout line).
struct Agent {
    /// Taken by `exit_code`.
    child: Option<Child>,
    events: Receiver<Value>,
    seen: Vec<Value>,
}

impl Agent {
    fn start(config: &Path) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nhc"))
            .args(["agent", "--config"])
            .arg(config)
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Agent {
            child: Some(child),
            events,
            seen: Vec::new(),
        }
    }

    /// The first event (from now on) that `wanted` accepts.
    fn wait(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if wanted(&event) {
                        return event;
                    }
                }
                Err(_) => panic!("no {what} event; saw {:#?}", self.seen),
            }
        }
    }

    fn wait_event(&mut self, name: &str) -> Value {
        self.wait(name, |e| e["event"] == name)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Its exit code, once it exited (bounded: killed after WAIT).
    async fn exit_code(mut self) -> Option<i32> {
        let pid = self.pid().to_string();
        let mut child = self.child.take().unwrap();
        let waiting = tokio::task::spawn_blocking(move || child.wait().unwrap().code());
        match tokio::time::timeout(WAIT, waiting).await {
            Ok(code) => code.unwrap(),
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                panic!("the agent did not exit; saw {:#?}", self.seen);
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Agent {
    /// SIGTERM, then exit code 0.
    async fn stop(self) {
        self.signal("-TERM");
        assert_eq!(self.exit_code().await, Some(0));
    }
}

/// Starts the agent and waits until it said it joined and the server
/// counted `joins` joins of `topic`.
async fn start_joined(server: &DevServer, path: &Path, topic: &str, joins: usize) -> Agent {
    let (agent, _) = wait_event(Agent::start(path), "joined").await;
    server
        .control()
        .wait_joined(topic, joins, WAIT)
        .await
        .unwrap();
    agent
}

/// Waits in a blocking thread so the server keeps running.
async fn wait_event(agent: Agent, name: &'static str) -> (Agent, Value) {
    tokio::task::spawn_blocking(move || {
        let mut agent = agent;
        let event = agent.wait_event(name);
        (agent, event)
    })
    .await
    .unwrap()
}

async fn statuses(server: &DevServer, identity: &str) -> Vec<String> {
    server
        .control()
        .received()
        .await
        .into_iter()
        .filter(|r| r.identity.as_deref() == Some(identity))
        .filter(|r| r.message.topic == "device" && r.message.event == "status_update")
        .filter_map(|r| r.message.payload.to_value())
        .filter_map(|v| v["status"].as_str().map(str::to_owned))
        .collect()
}

/// The first `status_update` the server received with this status.
async fn loop_until_status(server: &DevServer, status: &str) -> Value {
    for count in 1.. {
        let all = server
            .control()
            .wait_for("device", "status_update", count, WAIT)
            .await
            .unwrap();
        if let Some(found) = all
            .iter()
            .filter_map(|r| r.message.payload.to_value())
            .find(|v| v["status"] == status)
        {
            return found;
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread")]
async fn applies_an_update_through_a_command_sink_then_reboots() {
    let server = server().await;
    let dir = scratch("command");
    let image = nhc_devserver::random_image(1_500_000, 19);
    let offer = server.firmware().add("agent.fw", image.clone()).unwrap();
    let written = dir.join("written.img");
    let rebooted = dir.join("rebooted");
    let path = config(
        &server,
        &dir,
        "agent-command",
        &format!(
            "[update]\nsink = \"command\"\ncommand = [\"sh\", \"-c\", \"cat > '{}'\"]\n\
             reboot_command = [\"touch\", \"{}\"]\n",
            written.display(),
            rebooted.display()
        ),
    );
    let agent = start_joined(&server, &path, "device", 1).await;
    let update = Payload::json(&offer["update"]);
    assert_eq!(server.control().push("device", "update", update).await, 1);
    let (agent, progress) = wait_event(agent, "update_progress").await;
    assert!(progress["percent"].as_u64().is_some(), "{progress}");
    let (agent, finished) = wait_event(agent, "update_finished").await;
    assert_eq!(finished["ok"], true, "{finished}");
    let (agent, rebooting) = wait_event(agent, "rebooting").await;
    assert_eq!(rebooting["command"][0], "touch");
    assert_eq!(agent.exit_code().await, Some(0));
    assert!(rebooted.exists(), "the reboot command did not run");
    assert!(
        std::fs::read(&written).unwrap() == image,
        "the command got other bytes than the served image"
    );
    let statuses = statuses(&server, "agent-command").await;
    assert!(
        statuses.starts_with(&["received".into()]) && statuses.ends_with(&["completed".into()]),
        "{statuses:?}"
    );
    server
        .control()
        .wait_for("device", "rebooting", 1, WAIT)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reboot_asked_by_the_server_runs_the_reboot_command() {
    let server = server().await;
    let dir = scratch("reboot");
    let rebooted = dir.join("rebooted");
    let path = config(
        &server,
        &dir,
        "agent-reboot",
        &format!(
            "[update]\nreboot_command = [\"touch\", \"{}\"]\n",
            rebooted.display()
        ),
    );
    let agent = start_joined(&server, &path, "device", 1).await;
    assert_eq!(
        server
            .control()
            .push("device", "reboot", Payload::json(&json!({})))
            .await,
        1
    );
    let (agent, _) = wait_event(agent, "reboot_requested").await;
    let (agent, _) = wait_event(agent, "rebooting").await;
    assert_eq!(agent.exit_code().await, Some(0));
    assert!(rebooted.exists(), "the reboot command did not run");
    server
        .control()
        .wait_for("device", "rebooting", 1, WAIT)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_file_names_the_line_and_the_key_and_exits_with_2() {
    let dir = scratch("bad");
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        "[server]\nurl = \"wss://h/device-socket/websocket\"\n\n[update]\nsink = \"fwup\"\nfwup_tsk = \"upgrade\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nhc"))
        .args(["agent", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("line 6, key `update.fwup_tsk`") && stderr.contains("unknown field"),
        "{stderr}"
    );
    // A combination serde accepts but the agent cannot run.
    std::fs::write(&path, "[update]\nsink = \"fwup\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nhc"))
        .args(["agent", "--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 1, key `update.fwup_device`: sink \"fwup\" needs fwup_device"),
        "{stderr}"
    );
    // A good file, checked only; the URL comes from the environment.
    std::fs::write(
        &path,
        "[update]\nsink = \"file\"\nfirmware_dir = \"/tmp\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nhc"))
        .args(["agent", "--check", "--config"])
        .arg(&path)
        .env("NHC_URL", "wss://h/socket/websocket")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_download_keeps_the_partial_file_and_a_restart_resumes_it() {
    let server = server().await;
    let dir = scratch("sigterm");
    let image = nhc_devserver::random_image(3_000_000, 23);
    let offer = server.firmware().add("slow.fw", image.clone()).unwrap();
    server
        .firmware()
        .set_faults(
            "slow.fw",
            FirmwareFaults {
                bytes_per_second: Some(300_000),
                ..FirmwareFaults::default()
            },
        )
        .unwrap();
    let fw_dir = dir.join("firmware");
    let path = config(
        &server,
        &dir,
        "agent-sigterm",
        &format!(
            "[update]\nsink = \"file\"\nfirmware_dir = \"{}\"\n",
            fw_dir.display()
        ),
    );
    let agent = start_joined(&server, &path, "device", 1).await;
    let update = Payload::json(&offer["update"]);
    assert_eq!(
        server
            .control()
            .push("device", "update", update.clone())
            .await,
        1
    );
    // Past 60% (1.8 MB of 3 MB) the first 1 MiB part was verified and
    // written: the partial file then has a whole part to keep.
    let mut agent = agent;
    loop {
        let (a, progress) = wait_event(agent, "update_progress").await;
        agent = a;
        assert_eq!(progress["stage"], "downloading");
        if progress["percent"].as_u64().unwrap_or(0) >= 60 {
            break;
        }
    }
    agent.signal("-TERM");
    let (agent, stopping) = wait_event(agent, "stopping").await;
    assert_eq!(stopping["reason"], "SIGTERM");
    assert_eq!(stopping["update_in_progress"], true, "{stopping}");
    assert_eq!(agent.exit_code().await, Some(0));
    let statuses = statuses(&server, "agent-sigterm").await;
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("failed"),
        "{statuses:?}"
    );

    let uuid = offer["update"]["firmware_meta"]["uuid"].as_str().unwrap();
    let partial = fw_dir.join(format!("{uuid}.fw.partial"));
    let kept = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    assert!(kept >= PART_SIZE, "{} kept {kept} bytes", partial.display());
    let first_run = server.firmware().requests("slow.fw").unwrap().len();

    // The restart joins again; the update, offered again with the same
    // URL, continues after the stored whole parts and completes.
    server
        .firmware()
        .set_faults("slow.fw", FirmwareFaults::default())
        .unwrap();
    let agent = start_joined(&server, &path, "device", 2).await;
    assert_eq!(server.control().push("device", "update", update).await, 1);
    let (agent, finished) = wait_event(agent, "update_finished").await;
    assert_eq!(finished["ok"], true, "{finished}");
    assert!(std::fs::read(fw_dir.join(format!("{uuid}.fw"))).unwrap() == image);
    assert!(!partial.exists());
    // One request, for the rest only: it starts at a part boundary after
    // byte 0, at most where the kept file ended.
    let second_run = server.firmware().requests("slow.fw").unwrap()[first_run..].to_vec();
    assert_eq!(second_run.len(), 1, "{second_run:?}");
    assert_eq!(second_run[0].status, 206, "{second_run:?}");
    let from: u64 = second_run[0]
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no open Range in {second_run:?}"));
    assert!(
        from > 0 && from % PART_SIZE == 0 && from <= kept,
        "from {from}, kept {kept}"
    );
    agent.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_session_runs_the_configured_shell() {
    let server = server().await;
    let dir = scratch("console");
    let path = config(
        &server,
        &dir,
        "agent-console",
        "[console]\nenabled = true\nshell = [\"/bin/sh\"]\n",
    );
    let agent = start_joined(&server, &path, "console", 1).await;
    // Uploads are declined: the UI must not offer them (it does from 2.0.0).
    let joins = server
        .control()
        .wait_for("console", "phx_join", 1, WAIT)
        .await
        .unwrap();
    let join = joins[0].message.payload.to_value().unwrap();
    assert_eq!(join["console_version"], "1.0.0", "{join}");
    let input = Payload::json(&json!({"data": "echo agent-$((6*7))\n"}));
    assert_eq!(server.control().push("console", "dn", input).await, 1);
    // The output comes in pieces: wait until one says 42.
    let deadline = Instant::now() + WAIT;
    for count in 1.. {
        let left = deadline.saturating_duration_since(Instant::now());
        let ups = server
            .control()
            .wait_for("console", "up", count, left)
            .await
            .unwrap();
        let text: String = ups
            .iter()
            .filter_map(|r| r.message.payload.to_value())
            .filter_map(|v| v["data"].as_str().map(str::to_owned))
            .collect();
        if text.contains("agent-42") {
            break;
        }
    }
    agent.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn local_shell_opens_a_shell_on_the_extensions_channel() {
    let server = server().await;
    server
        .control()
        .set_enabled_extensions(vec!["local_shell".into()])
        .await;
    let dir = scratch("local-shell");
    let path = config(
        &server,
        &dir,
        "agent-local-shell",
        "[console]\nlocal_shell = true\nshell = [\"/bin/sh\"]\n",
    );
    let agent = start_joined(&server, &path, "extensions", 1).await;
    let joins = server
        .control()
        .wait_for("extensions", "phx_join", 1, WAIT)
        .await
        .unwrap();
    let join = joins[0].message.payload.to_value().unwrap();
    assert_eq!(join, json!({"local_shell": "0.0.1"}));
    // The server pushed request_shell on attach; the device says it started.
    let status = server
        .control()
        .wait_for("extensions", "local_shell:request_status", 1, WAIT)
        .await
        .unwrap();
    let status = status[0].message.payload.to_value().unwrap();
    assert_eq!(status, json!({"status": "started"}));
    let input = Payload::json(&json!({"data": "echo local-$((6*7))\n"}));
    let pushed = server
        .control()
        .push("extensions", "local_shell:shell_input", input)
        .await;
    assert_eq!(pushed, 1);
    let deadline = Instant::now() + WAIT;
    for count in 1.. {
        let left = deadline.saturating_duration_since(Instant::now());
        let out = server
            .control()
            .wait_for("extensions", "local_shell:shell_output", count, left)
            .await
            .unwrap();
        let text: String = out
            .iter()
            .filter_map(|r| r.message.payload.to_value())
            .filter_map(|v| v["data"].as_str().map(str::to_owned))
            .collect();
        if text.contains("local-42") {
            break;
        }
    }
    agent.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn firmware_validated_is_sent_once_the_check_command_succeeds() {
    let server = server().await;
    let dir = scratch("validate");
    let marker = dir.join("healthy");
    let path = config(
        &server,
        &dir,
        "agent-validate",
        &format!(
            "[device]\nvalidate_command = [\"test\", \"-e\", \"{}\"]\n",
            marker.display()
        ),
    );
    let agent = Agent::start(&path);
    let joins = server
        .control()
        .wait_for("device", "phx_join", 1, WAIT)
        .await
        .unwrap();
    let join = joins[0].message.payload.to_value().unwrap();
    assert_eq!(join["meta"]["firmware_validated"], false, "{join}");
    std::fs::write(&marker, "").unwrap();
    server
        .control()
        .wait_for("device", "firmware_validated", 1, WAIT)
        .await
        .unwrap();
    agent.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_install_command_fails_the_update_with_its_message() {
    let server = server().await;
    let dir = scratch("install");
    let offer = server
        .firmware()
        .add("install.fw", nhc_devserver::random_image(200_000, 31))
        .unwrap();
    let path = config(
        &server,
        &dir,
        "agent-install",
        &format!(
            "[update]\nsink = \"file\"\nfirmware_dir = \"{}\"\n\
             install_command = [\"sh\", \"-c\", \"echo no space left >&2; exit 3\"]\n",
            dir.join("fw").display()
        ),
    );
    let agent = start_joined(&server, &path, "device", 1).await;
    let update = Payload::json(&offer["update"]);
    assert_eq!(server.control().push("device", "update", update).await, 1);
    let (agent, finished) = wait_event(agent, "update_finished").await;
    assert_eq!(finished["ok"], false, "{finished}");
    let reason = finished["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no space left"), "{finished}");
    // The server hears `failed` with the command's message.
    let failed = loop_until_status(&server, "failed").await;
    let said = failed["reason"].as_str().unwrap_or_default();
    assert!(said.contains("no space left"), "{failed}");
    agent.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn device_json_prints_one_object_per_event_and_honours_duration() {
    let server = server().await;
    let url = server
        .ws_url()
        .replace("/socket/websocket", "/device-socket/websocket");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_nhc"))
            .args(["device", "--json", "--duration", "2", "--url", &url])
            .args(["--identifier", "device-json"])
            .env("NHC_SHARED_SECRET", format!("{KEY}:{SECRET}"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "joined" && e["topic"] == "device"),
        "{stdout}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "stopping" && e["reason"] == "duration"),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET));
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["agent", "device", "simulate"] {
        let out = Command::new(env!("CARGO_BIN_EXE_nhc"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{sub}: {stdout}");
        assert!(stdout.contains(&format!("Usage: nhc {sub}")), "{stdout}");
        assert!(stdout.contains("--url"), "{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn under_journald_events_are_priority_prefixed_log_lines_on_stderr() {
    let server = server().await;
    let dir = scratch("journald");
    let path = config(&server, &dir, "agent-journald", "");
    // Without `output` in the file: JOURNAL_STREAM picks the log output.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("output = \"json\"\n", "");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nhc"))
        .args(["agent", "--config"])
        .arg(&path)
        .env("JOURNAL_STREAM", "8:12345")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let line = tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .find(|l| l.contains("Joined") && l.contains("device"))
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .expect("no joined line on stderr");
    assert!(line.starts_with("<6>"), "{line}");
    let _ = child.kill();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let _ = child.wait();
    assert_eq!(stdout, "", "nothing on stdout under journald");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shipped unit's own command lines, with the binary and config paths
/// replaced by this build's: `systemd-analyze verify` accepts the unit,
/// `ExecStartPre` passes a good file and fails a bad one with the status
/// the unit does not restart on, `ExecStart` joins, and the unit's
/// `KillSignal` stops it with status 0 before `TimeoutStopSec`.
#[tokio::test(flavor = "multi_thread")]
async fn the_systemd_units_commands_check_run_and_stop_the_agent() {
    let unit_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/agent/nerves-hub-agent.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let setting = |key: &str| -> String {
        let prefix = format!("{key}=");
        let mut lines = unit.lines().filter(|l| l.starts_with(&prefix));
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the unit has no {key}"));
        assert!(lines.next().is_none(), "the unit has more than one {key}");
        line[prefix.len()..].to_owned()
    };
    const BIN: &str = "/usr/bin/nhc";
    const CONF: &str = "/etc/nerves-hub/agent.toml";

    let server = server().await;
    let dir = scratch("unit");
    let good = config(&server, &dir, "cli-agent-unit", "");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[server]\nurl = 5\n").unwrap();
    let nhc = env!("CARGO_BIN_EXE_nhc");
    let argv = |key: &str, conf: &Path| -> Vec<String> {
        setting(key)
            .split_whitespace()
            .map(|word| match word {
                BIN => nhc.to_owned(),
                CONF => conf.display().to_string(),
                other => other.to_owned(),
            })
            .collect()
    };
    let run = |argv: &[String]| Command::new(&argv[0]).args(&argv[1..]).output().unwrap();

    if let Ok(out) = Command::new("systemd-analyze").arg("--version").output() {
        assert!(out.status.success());
        let copy = dir.join("nerves-hub-agent.service");
        std::fs::write(
            &copy,
            unit.replace(BIN, nhc)
                .replace(CONF, &good.display().to_string()),
        )
        .unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs systemd-analyze (scripts/setup.sh installs it)"
        );
        eprintln!("systemd-analyze is not installed: the unit is not verified");
    }

    let out = run(&argv("ExecStartPre", &good));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&argv("ExecStartPre", &bad));
    let no_restart: i32 = setting("RestartPreventExitStatus").parse().unwrap();
    assert_eq!(
        out.status.code(),
        Some(no_restart),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Agent::start runs exactly this command line.
    let start = argv("ExecStart", &good);
    let expected = [
        nhc.to_owned(),
        "agent".into(),
        "--config".into(),
        good.display().to_string(),
    ];
    assert_eq!(start, expected);
    let agent = start_joined(&server, &good, "device", 1).await;
    let stop_limit = Duration::from_secs(setting("TimeoutStopSec").parse().unwrap());
    let signal = setting("KillSignal");
    let signal = signal.strip_prefix("SIG").unwrap_or(&signal);
    agent.signal(&format!("-{signal}"));
    let stopping = Instant::now();
    assert_eq!(agent.exit_code().await, Some(0));
    assert!(
        stopping.elapsed() < stop_limit,
        "stopped after {:?}",
        stopping.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
