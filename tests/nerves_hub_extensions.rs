//! Extensions (health, geo, logging, local_shell) driven from a plain core Socket, as the
//! Device drives them: `on_extensions_get` then every socket event through
//! `Extensions::handle`.

mod common;

use std::sync::Arc;

use nerves_hub_channel::message::Reply;
use nerves_hub_channel::nerves_hub::console::ShellOptions;
use nerves_hub_channel::nerves_hub::extensions::{
    Check, ExtensionEvent, Extensions, ExtensionsOptions, GeoProvider, HealthOptions, Location,
    LogLevel,
};
use nerves_hub_channel::{Event, Socket};
use nhc_devserver::{Control, DevServer, Received};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use common::{device_socket_config, fast_config, json, server, WAIT};

fn pump(sock: &Socket, ext: Extensions) -> mpsc::UnboundedReceiver<ExtensionEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    let sock = sock.clone();
    tokio::spawn(async move {
        while let Some(event) = sock.next_event().await {
            if let Some(e) = ext.handle(&event) {
                if tx.send(e).is_err() {
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

async fn next_where(
    rx: &mut mpsc::UnboundedReceiver<ExtensionEvent>,
    what: &str,
    pred: impl Fn(&ExtensionEvent) -> bool,
) -> ExtensionEvent {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(e)) => seen.push(e),
            Ok(None) => panic!("pump ended waiting for {what}; saw {seen:?}"),
            Err(_) => panic!("timed out waiting for {what}; saw {seen:?}"),
        }
    }
}

fn gps() -> Location {
    Location {
        latitude: 52.52,
        longitude: 13.405,
        source: "gps".into(),
        accuracy: Some(12),
    }
}

fn all_options() -> ExtensionsOptions {
    let provider = || Ok(gps());
    ExtensionsOptions {
        health: Some(HealthOptions::default()),
        geo: Some(Arc::new(provider) as Arc<dyn GeoProvider>),
        logging: true,
        local_shell: None,
    }
}

struct Setup {
    _server: DevServer,
    control: Control,
    _sock: Socket,
    ext: Extensions,
    rx: mpsc::UnboundedReceiver<ExtensionEvent>,
}

/// Connects, makes the server attach `reply` on join, and negotiates.
async fn negotiated(opts: ExtensionsOptions, reply: Value) -> Setup {
    let server = server().await;
    let control = server.control();
    control
        .set_join_reply(
            "extensions",
            Some(Reply {
                status: "ok".into(),
                response: json(reply),
            }),
        )
        .await;
    let sock = Socket::new(device_socket_config(&server, "nhc-extensions-device")).expect("config");
    let ext = Extensions::new(&sock, opts).expect("extensions");
    let mut rx = pump(&sock, ext.clone());
    sock.connect().expect("connect");
    ext.on_extensions_get().expect("join");
    next_where(&mut rx, "negotiation", |e| {
        matches!(e, ExtensionEvent::Negotiated { .. })
    })
    .await;
    Setup {
        _server: server,
        control,
        _sock: sock,
        ext,
        rx,
    }
}

async fn sent(control: &Control, event: &str, count: usize) -> Vec<Received> {
    control
        .wait_for("extensions", event, count, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn payload(r: &Received) -> Value {
    r.message.payload.to_value().unwrap_or(Value::Null)
}

#[tokio::test]
async fn negotiation_attaches_what_we_implement_and_refuses_the_rest() {
    let server = server().await;
    let control = server.control();
    control
        .set_join_reply(
            "extensions",
            Some(Reply {
                status: "ok".into(),
                response: json(json!(["health", "geo", "nope"])),
            }),
        )
        .await;
    let sock = Socket::new(device_socket_config(&server, "nhc-extensions-device")).expect("config");
    let ext = Extensions::new(&sock, all_options()).expect("extensions");
    let mut rx = pump(&sock, ext.clone());
    sock.connect().expect("connect");
    ext.on_extensions_get().expect("join");
    let got = next_where(&mut rx, "negotiation", |e| {
        matches!(e, ExtensionEvent::Negotiated { .. })
    })
    .await;
    assert_eq!(
        got,
        ExtensionEvent::Negotiated {
            attached: vec!["health".into(), "geo".into()],
            rejected: vec!["nope".into()],
        }
    );
    let join = sent(&control, "phx_join", 1).await;
    assert_eq!(
        payload(&join[0]),
        json!({"health": "0.0.1", "geo": "0.0.1", "logging": "0.0.1"})
    );
    sent(&control, "health:attached", 1).await;
    sent(&control, "geo:attached", 1).await;
    let error = sent(&control, "nope:error", 1).await;
    assert_eq!(payload(&error[0]), json!({"reason": "unknown_extension"}));
    assert_eq!(ext.attached(), ["geo", "health"]);
    assert!(!ext.is_attached("logging"));
}

#[tokio::test]
async fn health_check_sends_a_report_with_system_and_user_metrics() {
    let mut s = negotiated(all_options(), json!(["health"])).await;
    s.ext.report_metric("queue_depth", 4.0);
    s.ext.set_alarm("BatteryLow", "below 90 %");
    s.ext.set_alarm("Gone", "cleared before the report");
    assert!(s.ext.clear_alarm("Gone"));
    assert!(!s.ext.clear_alarm("Gone"), "already cleared");
    s.ext.set_check(
        "modem",
        Check {
            pass: false,
            note: "no SIM".into(),
        },
    );
    s.ext.set_check(
        "gone",
        Check {
            pass: true,
            note: String::new(),
        },
    );
    assert!(s.ext.clear_check("gone"));
    s.control
        .push("extensions", "health:check", json(json!({})))
        .await;
    next_where(&mut s.rx, "the check", |e| {
        *e == ExtensionEvent::HealthCheck
    })
    .await;
    let report = sent(&s.control, "health:report", 1).await;
    let value = &payload(&report[0])["value"];
    for key in [
        "timestamp",
        "metadata",
        "alarms",
        "metrics",
        "checks",
        "connectivity",
    ] {
        assert!(value.get(key).is_some(), "{key} missing from {value}");
    }
    let ts = value["timestamp"].as_str().unwrap_or("");
    assert!(ts.ends_with('Z') && ts.len() == 27, "ISO-8601 UTC: {ts}");
    assert_eq!(value["alarms"], json!({"BatteryLow": "below 90 %"}));
    assert_eq!(
        value["checks"],
        json!({"modem": {"pass": false, "note": "no SIM"}})
    );
    let metrics = &value["metrics"];
    assert_eq!(metrics["queue_depth"], 4.0);
    if cfg!(target_os = "linux") {
        for key in [
            "cpu_usage_percent",
            "load_1min",
            "load_5min",
            "load_15min",
            "mem_size_mb",
            "mem_used_mb",
            "mem_used_percent",
            "disk_total_kb",
            "disk_available_kb",
            "disk_used_percentage",
        ] {
            assert!(metrics[key].is_number(), "{key} missing from {metrics}");
        }
    }
}

#[tokio::test]
async fn geo_request_is_answered_by_the_provider() {
    let mut s = negotiated(all_options(), json!(["geo"])).await;
    s.control
        .push("extensions", "geo:location:request", json(json!({})))
        .await;
    next_where(&mut s.rx, "the request", |e| {
        *e == ExtensionEvent::LocationRequest
    })
    .await;
    let update = sent(&s.control, "geo:location:update", 1).await;
    assert_eq!(
        payload(&update[0]),
        json!({"latitude": 52.52, "longitude": 13.405, "source": "gps", "accuracy": 12})
    );
}

#[tokio::test]
async fn geo_request_without_a_provider_gets_no_provider() {
    let opts = ExtensionsOptions {
        health: Some(HealthOptions::default()),
        ..ExtensionsOptions::default()
    };
    let s = negotiated(opts, json!(["health"])).await;
    s.control
        .push("extensions", "geo:location:request", json(json!({})))
        .await;
    let update = sent(&s.control, "geo:location:update", 1).await;
    assert_eq!(payload(&update[0])["error_code"], "no_provider");
}

#[tokio::test]
async fn attach_and_detach_from_the_server() {
    let mut s = negotiated(all_options(), json!(["health", "geo"])).await;
    s.control
        .push(
            "extensions",
            "detach",
            json(json!({"extensions": ["health"]})),
        )
        .await;
    let got = next_where(&mut s.rx, "detach", |e| {
        matches!(e, ExtensionEvent::Detached { .. })
    })
    .await;
    assert_eq!(
        got,
        ExtensionEvent::Detached {
            names: vec!["health".into()]
        }
    );
    sent(&s.control, "health:detached", 1).await;
    assert_eq!(s.ext.attached(), ["geo"]);

    // NervesHub attaches one extension per push, as a list; never "all".
    s.control
        .push(
            "extensions",
            "attach",
            json(json!({"extensions": ["health"]})),
        )
        .await;
    let got = next_where(&mut s.rx, "attach", |e| {
        matches!(e, ExtensionEvent::Attached { .. })
    })
    .await;
    assert_eq!(
        got,
        ExtensionEvent::Attached {
            names: vec!["health".into()]
        }
    );
    sent(&s.control, "health:attached", 2).await;
    assert_eq!(s.ext.attached(), ["geo", "health"]);

    s.control
        .push("extensions", "detach", json(json!({"extensions": "geo"})))
        .await;
    sent(&s.control, "geo:detached", 1).await;
}

#[tokio::test]
async fn every_rejoin_renegotiates() {
    let mut s = negotiated(all_options(), json!(["health"])).await;
    s.control.crash_channel("extensions").await;
    let got = next_where(&mut s.rx, "detach on error", |e| {
        matches!(e, ExtensionEvent::Detached { .. })
    })
    .await;
    assert_eq!(
        got,
        ExtensionEvent::Detached {
            names: vec!["health".into()]
        }
    );
    next_where(&mut s.rx, "renegotiation", |e| {
        matches!(e, ExtensionEvent::Negotiated { .. })
    })
    .await;
    sent(&s.control, "health:attached", 2).await;
    assert!(s.ext.is_attached("health"));
    // A second extensions:get while joined changes nothing.
    s.ext.on_extensions_get().expect("no-op join");
    assert!(s.ext.is_attached("health"));
}

#[tokio::test]
async fn logging_is_rate_limited_and_summarised() {
    let opts = ExtensionsOptions {
        logging: true,
        ..ExtensionsOptions::default()
    };
    let server = server().await;
    let control = server.control();
    control
        .set_join_reply(
            "extensions",
            Some(Reply {
                status: "ok".into(),
                response: json(json!(["logging"])),
            }),
        )
        .await;
    let sock = Socket::new(device_socket_config(&server, "nhc-extensions-device")).expect("config");
    let ext = Extensions::new(&sock, opts).expect("extensions");
    // Not attached yet: accepted and dropped.
    ext.log(LogLevel::Info, "before attach", &[])
        .expect("dropped quietly");
    let mut rx = pump(&sock, ext.clone());
    sock.connect().expect("connect");
    ext.on_extensions_get().expect("join");
    next_where(&mut rx, "negotiation", |e| {
        matches!(e, ExtensionEvent::Negotiated { .. })
    })
    .await;

    for i in 0..30 {
        let n = i.to_string();
        ext.log(
            LogLevel::Warning,
            &format!("line {i}"),
            &[("n", n.as_str())],
        )
        .expect("log");
    }
    // Wait for the summary line; the lines before it are the ones admitted.
    let mut count = 11;
    let lines = loop {
        let got = sent(&control, "logging:send", count).await;
        if got
            .iter()
            .any(|l| payload(l)["meta"].get("dropped").is_some())
        {
            break got;
        }
        count = got.len() + 1;
    };
    let first = payload(&lines[0]);
    assert_eq!(first["message"], "line 0");
    assert_eq!(first["level"], "warning");
    assert_eq!(first["meta"]["n"], "0");
    let micros = first["meta"]["time"].as_str().unwrap_or("");
    assert!(
        micros.len() >= 16 && micros.bytes().all(|b| b.is_ascii_digit()),
        "meta.time is a string of microseconds: {micros:?}"
    );
    assert!(first["timestamp"].is_string());
    let admitted = lines.len() - 1;
    // The burst is 10; a slow machine may refill a token or two meanwhile.
    assert!((10..=12).contains(&admitted), "{admitted} lines admitted");
    for (i, line) in lines.iter().take(admitted).enumerate() {
        assert_eq!(payload(line)["message"], format!("line {i}"));
    }
    let summary = payload(&lines[admitted]);
    assert_eq!(summary["level"], "warning");
    assert_eq!(
        summary["meta"]["dropped"],
        (30 - admitted).to_string(),
        "summary: {summary}"
    );
    assert!(lines
        .iter()
        .all(|l| payload(l)["message"] != "before attach"));
}

#[tokio::test]
async fn log_without_the_logging_extension_is_an_error() {
    let server = server().await;
    let sock = Socket::new(device_socket_config(&server, "nhc-extensions-device")).expect("config");
    let ext = Extensions::new(&sock, ExtensionsOptions::default()).expect("extensions");
    let err = ext.log(LogLevel::Info, "x", &[]).expect_err("not enabled");
    assert_eq!(err.kind(), "invalid_argument");
    assert!(ext.offered().is_empty());
}

#[cfg(target_os = "linux")]
fn local_shell_options() -> ExtensionsOptions {
    ExtensionsOptions {
        health: Some(HealthOptions::default()),
        local_shell: Some(ShellOptions {
            command: vec!["/bin/sh".into()],
            ..ShellOptions::default()
        }),
        ..ExtensionsOptions::default()
    }
}

#[cfg(target_os = "linux")]
/// Waits until the shell's output so far contains `needle`; returns it.
async fn shell_output(control: &Control, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut count = 1;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let got = control
            .wait_for("extensions", "local_shell:shell_output", count, left)
            .await
            .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}"));
        let text: String = got
            .iter()
            .filter_map(|r| payload(r)["data"].as_str().map(str::to_owned))
            .collect();
        if text.contains(needle) {
            return text;
        }
        count = got.len() + 1;
    }
}

#[cfg(target_os = "linux")]
async fn shell_input(control: &Control, line: &str) {
    control
        .push(
            "extensions",
            "local_shell:shell_input",
            json(json!({ "data": line })),
        )
        .await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn local_shell_opens_on_attach_runs_input_and_takes_the_window_size() {
    let mut s = negotiated(local_shell_options(), json!(["local_shell"])).await;
    let join = sent(&s.control, "phx_join", 1).await;
    assert_eq!(
        payload(&join[0]),
        json!({"health": "0.0.1", "local_shell": "0.0.1"})
    );
    // The server answers `local_shell:attached` with `request_shell`, as web does.
    sent(&s.control, "local_shell:attached", 1).await;
    let got = next_where(&mut s.rx, "request_shell", |e| {
        matches!(e, ExtensionEvent::LocalShell { .. })
    })
    .await;
    assert_eq!(
        got,
        ExtensionEvent::LocalShell {
            event: "request_shell".into()
        }
    );
    let status = sent(&s.control, "local_shell:request_status", 1).await;
    assert_eq!(payload(&status[0]), json!({"status": "started"}));
    s.control
        .push(
            "extensions",
            "local_shell:window_size",
            json(json!({"rows": 37, "cols": 111})),
        )
        .await;
    // The arithmetic makes the output differ from the echoed input.
    shell_input(&s.control, "echo ls-$((6*7))\n").await;
    shell_output(&s.control, "ls-42").await;
    shell_input(&s.control, "stty size\n").await;
    shell_output(&s.control, "37 111").await;
    // kill_shell stops it; the next request starts a new shell.
    s.control
        .push("extensions", "local_shell:kill_shell", json(json!({})))
        .await;
    next_where(
        &mut s.rx,
        "kill_shell",
        |e| matches!(e, ExtensionEvent::LocalShell { event } if event == "kill_shell"),
    )
    .await;
    s.control
        .push("extensions", "local_shell:request_shell", json(json!({})))
        .await;
    sent(&s.control, "local_shell:request_status", 2).await;
    shell_input(&s.control, "echo again-$((2+3))\n").await;
    shell_output(&s.control, "again-5").await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn local_shell_is_off_by_default_and_refused_when_attached() {
    let opts = ExtensionsOptions {
        health: Some(HealthOptions::default()),
        ..ExtensionsOptions::default()
    };
    let mut s = negotiated(opts, json!(["health", "local_shell"])).await;
    let join = sent(&s.control, "phx_join", 1).await;
    assert_eq!(payload(&join[0]), json!({"health": "0.0.1"}));
    let error = sent(&s.control, "local_shell:error", 1).await;
    assert_eq!(payload(&error[0]), json!({"reason": "unknown_extension"}));
    // A server that asks anyway gets no shell: the messages are passed on
    // as unknown, and nothing is started. The health report that follows
    // shows the device handled them (messages are handled in order).
    s.control
        .push("extensions", "local_shell:request_shell", json(json!({})))
        .await;
    shell_input(&s.control, "echo nope\n").await;
    s.control
        .push("extensions", "health:check", json(json!({})))
        .await;
    next_where(&mut s.rx, "the request passed on", |e| {
        matches!(e, ExtensionEvent::Other { event, .. } if event == "local_shell:request_shell")
    })
    .await;
    sent(&s.control, "health:report", 1).await;
    let received = s.control.received().await;
    assert!(
        !received.iter().any(
            |r| r.message.event.starts_with("local_shell:request_status")
                || r.message.event == "local_shell:shell_output"
        ),
        "no shell was started: {received:?}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_local_shell_without_a_command_is_refused() {
    let sock = Socket::new(fast_config("ws://127.0.0.1:9/socket/websocket")).expect("config");
    let opts = ExtensionsOptions {
        local_shell: Some(ShellOptions {
            command: vec![],
            ..ShellOptions::default()
        }),
        ..ExtensionsOptions::default()
    };
    let err = Extensions::new(&sock, opts).expect_err("no program");
    assert!(err.to_string().contains("command"), "{err}");
}
