//! The console channel driven from a plain core Socket, as the Device drives
//! it: every socket event goes through `Console::handle`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::nerves_hub::console::{
    Console, ConsoleEvent, ConsoleOptions, ShellOptions,
};
use nerves_hub_channel::nerves_hub::file_transfer::FileTransferOptions;
use nerves_hub_channel::{Event, Socket};
use nhc_devserver::{Control, DevServer};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use common::{device_socket_config, json, server, WAIT};

/// Feeds every socket event to the console; console events come out.
fn pump(sock: &Socket, console: Arc<Console>) -> mpsc::UnboundedReceiver<ConsoleEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    let sock = sock.clone();
    tokio::spawn(async move {
        while let Some(event) = sock.next_event().await {
            if let Some(ce) = console.handle(&event) {
                if tx.send(ce).is_err() {
                    return;
                }
            }
            if matches!(event, Event::Closed) {
                return;
            }
        }
    });
    rx
}

async fn next(rx: &mut mpsc::UnboundedReceiver<ConsoleEvent>, what: &str) -> ConsoleEvent {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("event pump ended while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

async fn start(
    opts: ConsoleOptions,
) -> (
    DevServer,
    Control,
    Socket,
    Arc<Console>,
    mpsc::UnboundedReceiver<ConsoleEvent>,
) {
    let server = server().await;
    let control = server.control();
    let sock = Socket::new(device_socket_config(&server, "nhc-console-device")).expect("config");
    let console = Arc::new(Console::new(&sock, opts).expect("console"));
    let rx = pump(&sock, console.clone());
    sock.connect().expect("connect");
    console.join().expect("join");
    control
        .wait_joined("console", 1, WAIT)
        .await
        .expect("console joined");
    (server, control, sock, console, rx)
}

fn data(v: &Value) -> &str {
    v["data"].as_str().unwrap_or("")
}

/// Waits until the `up` pushes, concatenated, contain `needle`; returns them.
async fn wait_output(control: &Control, needle: &str) -> String {
    let mut count = 1;
    loop {
        let got = control
            .wait_for("console", "up", count, WAIT)
            .await
            .unwrap_or_else(|e| panic!("waiting for {needle:?} in the output: {e}"));
        let text: String = got
            .iter()
            .filter_map(|r| r.message.payload.to_value())
            .map(|v| data(&v).to_owned())
            .collect();
        if text.contains(needle) {
            return text;
        }
        count = got.len() + 1;
    }
}

#[tokio::test]
async fn joins_with_console_and_api_versions_reevaluated_on_rejoin() {
    let (_server, control, _sock, console, _rx) = start(ConsoleOptions::default()).await;
    let joins = control
        .wait_for("console", "phx_join", 1, WAIT)
        .await
        .expect("join received");
    assert_eq!(
        joins[0].message.payload.to_value(),
        Some(json!({"console_version": "1.0.0", "device_api_version": "2.3.0"}))
    );
    console.set_device_api_version("2.4.0");
    control.crash_channel("console").await;
    let joins = control
        .wait_for("console", "phx_join", 2, WAIT)
        .await
        .expect("rejoin received");
    assert_eq!(
        joins[1].message.payload.to_value(),
        Some(json!({"console_version": "1.0.0", "device_api_version": "2.4.0"}))
    );
}

#[tokio::test]
async fn server_events_map_to_console_events_in_order() {
    let (_server, control, _sock, _console, mut rx) = start(ConsoleOptions::default()).await;
    control
        .push("console", "dn", json(json!({"data": "ls\r"})))
        .await;
    control
        .push(
            "console",
            "window_size",
            json(json!({"height": 40, "width": 120})),
        )
        .await;
    control.push("console", "restart", json(json!({}))).await;
    control
        .push("console", "browser_extra", json(json!({"x": 1})))
        .await;
    assert_eq!(
        next(&mut rx, "dn").await,
        ConsoleEvent::Input("ls\r".into())
    );
    assert_eq!(
        next(&mut rx, "window_size").await,
        ConsoleEvent::WindowSize {
            width: 120,
            height: 40
        }
    );
    assert_eq!(next(&mut rx, "restart").await, ConsoleEvent::Restart);
    assert_eq!(
        next(&mut rx, "the unknown event").await,
        ConsoleEvent::Other {
            event: "browser_extra".into(),
            payload: json(json!({"x": 1}))
        }
    );
}

#[tokio::test]
async fn send_output_pushes_up() {
    let (_server, control, _sock, console, _rx) = start(ConsoleOptions::default()).await;
    console.send_output("hello\r\n").expect("sent");
    let got = control
        .wait_for("console", "up", 1, WAIT)
        .await
        .expect("up received");
    assert_eq!(
        got[0].message.payload.to_value(),
        Some(json!({"data": "hello\r\n"}))
    );
}

#[tokio::test]
async fn file_uploads_are_declined_with_a_notice_and_still_reported() {
    let (_server, control, _sock, _console, mut rx) = start(ConsoleOptions::default()).await;
    let start = json!({"filename": "fw.bin", "uploaded_by": 7});
    control
        .push("console", "file-data/start", json(start.clone()))
        .await;
    assert_eq!(
        next(&mut rx, "file-data/start").await,
        ConsoleEvent::File {
            event: "file-data/start".into(),
            payload: start
        }
    );
    let text = wait_output(&control, "not supported").await;
    assert!(text.contains("fw.bin"), "notice names the file: {text:?}");
}

/// A fresh upload directory (not created: the console creates it).
fn upload_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nhc-upload-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn transfers(dir: &std::path::Path, max: u64) -> ConsoleOptions {
    ConsoleOptions {
        file_transfer: Some(FileTransferOptions {
            upload_dir: dir.to_owned(),
            max_upload_size: max,
        }),
        ..ConsoleOptions::default()
    }
}

#[tokio::test]
async fn with_transfers_the_console_announces_2_0_0_and_stores_uploads() {
    let dir = upload_dir("store");
    let (_server, control, _sock, _console, _rx) = start(transfers(&dir, 1 << 20)).await;
    let joins = control
        .wait_for("console", "phx_join", 1, WAIT)
        .await
        .expect("join received");
    assert_eq!(
        joins[0].message.payload.to_value().unwrap()["console_version"],
        "2.0.0"
    );
    let content: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(control.upload_file("notes.bin", &content).await, 1);
    let text = wait_output(&control, "Saved").await;
    assert!(text.contains("3000 bytes"), "{text:?}");
    assert_eq!(std::fs::read(dir.join("notes.bin")).unwrap(), content);
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn traversal_and_oversize_uploads_are_refused_on_the_terminal() {
    let dir = upload_dir("refuse");
    let parent_file = dir
        .parent()
        .unwrap()
        .join(format!("evil-{}", std::process::id()));
    let (_server, control, _sock, _console, _rx) = start(transfers(&dir, 2048)).await;
    let name = format!("../{}", parent_file.file_name().unwrap().to_str().unwrap());
    control.upload_file(&name, b"owned").await;
    let text = wait_output(&control, "Upload refused").await;
    assert!(text.contains("path separator"), "{text:?}");
    assert!(
        !parent_file.exists(),
        "nothing written outside the directory"
    );
    control.upload_file("big.bin", &[0u8; 3000]).await;
    let text = wait_output(&control, "larger than 2048 bytes").await;
    assert!(text.contains("big.bin"), "{text:?}");
    assert!(!dir.join("big.bin").exists());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "partial removed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn send_file_downloads_to_the_browser_in_1024_byte_chunks() {
    let dir = upload_dir("download");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("report.txt");
    let content: Vec<u8> = (0..2500u32).map(|i| (i % 97) as u8).collect();
    std::fs::write(&path, &content).unwrap();
    let (_server, control, _sock, console, _rx) = start(transfers(&dir, 1 << 20)).await;
    let sender = console.clone();
    let p = path.clone();
    tokio::task::spawn_blocking(move || sender.send_file(&p))
        .await
        .unwrap()
        .expect("sent");
    assert_eq!(
        control.downloaded_file("report.txt", WAIT).await.unwrap(),
        content
    );
    let chunks = control
        .wait_for("console", "file-data", 3, WAIT)
        .await
        .unwrap();
    assert_eq!(chunks.len(), 3);
    assert_eq!(
        chunks[2].message.payload.to_value().unwrap()["chunk"],
        json!(2)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn send_file_needs_transfers_enabled() {
    let (_server, _control, _sock, console, _rx) = start(ConsoleOptions::default()).await;
    let err = console
        .send_file(std::path::Path::new("/etc/hostname"))
        .unwrap_err();
    assert!(err.to_string().contains("not enabled"), "{err}");
}

#[cfg(target_os = "linux")]
fn shell(timeout: Duration) -> ConsoleOptions {
    ConsoleOptions {
        shell: Some(ShellOptions {
            command: vec!["/bin/sh".into()],
            inactivity_timeout: timeout,
            ..ShellOptions::default()
        }),
        ..ConsoleOptions::default()
    }
}

#[cfg(target_os = "linux")]
async fn type_line(control: &Control, line: &str) {
    control
        .push("console", "dn", json(json!({ "data": line })))
        .await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn pty_shell_runs_commands_resizes_and_restarts() {
    let (_server, control, _sock, _console, _rx) = start(shell(Duration::from_secs(60))).await;
    control
        .push(
            "console",
            "window_size",
            json(json!({"height": 33, "width": 101})),
        )
        .await;
    // The arithmetic makes the output differ from the echoed input.
    type_line(&control, "echo hi-$((6*7))\n").await;
    wait_output(&control, "hi-42").await;
    type_line(&control, "stty size\n").await;
    wait_output(&control, "33 101").await;
    control.push("console", "restart", json(json!({}))).await;
    wait_output(&control, "Restarting shell").await;
    type_line(&control, "echo again-$((2+3))\n").await;
    wait_output(&control, "again-5").await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn pty_shell_stops_after_inactivity_and_restarts_on_input() {
    let (_server, control, _sock, _console, _rx) = start(shell(Duration::from_secs(1))).await;
    type_line(&control, "echo up-$((1+1))\n").await;
    wait_output(&control, "up-2").await;
    wait_output(&control, "Session timeout due to inactivity").await;
    type_line(&control, "echo back-$((3+3))\n").await;
    wait_output(&control, "back-6").await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn pty_shell_exit_is_reported_and_the_next_input_starts_a_new_one() {
    let (_server, control, _sock, _console, _rx) = start(shell(Duration::from_secs(60))).await;
    type_line(&control, "exit 3\n").await;
    wait_output(&control, "Shell exited (exit status: 3)").await;
    type_line(&control, "echo new-$((4+4))\n").await;
    wait_output(&control, "new-8").await;
}

#[tokio::test]
async fn an_empty_shell_command_is_refused() {
    let server = server().await;
    let sock = Socket::new(device_socket_config(&server, "nhc-console-device")).expect("config");
    for command in [vec![], vec![String::new(), "-l".into()]] {
        let opts = ConsoleOptions {
            shell: Some(ShellOptions {
                command: command.clone(),
                ..ShellOptions::default()
            }),
            ..ConsoleOptions::default()
        };
        let err = Console::new(&sock, opts).expect_err("refused");
        assert_eq!(err.kind(), "invalid_argument", "{command:?}");
        assert!(err.to_string().contains("no program"), "{err}");
    }
}
