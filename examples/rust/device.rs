//! A minimal device: connects over wss with a client certificate, joins
//! "device", answers the first server event with a push, and exits.
//!
//! cargo run --example device -- --url wss://localhost:4001/socket/websocket \
//!     --ca ca.pem --cert device.pem --key device-key.pem

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use nerves_hub_channel::{
    Event, JoinParams, Payload, PemSource, PushOutcome, Socket, SocketConfig,
};
use serde_json::json;

struct Args {
    url: String,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        ca: None,
        cert: None,
        key: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--ca" => args.ca = Some(value()?.into()),
            "--cert" => args.cert = Some(value()?.into()),
            "--key" => args.key = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.url.is_empty() {
        return Err("usage: device --url URL [--ca CA.pem] [--cert CERT.pem --key KEY.pem]".into());
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("device: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    let mut config = SocketConfig::new(&args.url);
    config.tls.ca = args.ca.map(PemSource::File);
    config.tls.client_cert = args.cert.map(PemSource::File);
    config.tls.client_key = args.key.map(PemSource::File);
    let socket = Socket::new(config).map_err(|e| e.to_string())?;
    let params = JoinParams::Static(Payload::json(&json!({
        "device_api_version": "2.3.0",
        "nerves_fw_version": "1.0.0",
    })));
    let device = socket
        .channel("device", params)
        .map_err(|e| e.to_string())?;
    socket.connect().map_err(|e| e.to_string())?;
    device.join().map_err(|e| e.to_string())?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline, socket.next_event())
            .await
            .map_err(|_| "no event from the server within 30 s".to_owned())?
            .ok_or("the socket closed")?;
        match event {
            Event::Connecting { attempt } => println!("device: connecting (attempt {attempt})"),
            Event::Connected => println!("device: connected to {}", args.url),
            Event::Joined { topic, .. } => println!("device: joined {topic:?}"),
            Event::Message {
                topic,
                event,
                payload,
                ..
            } => {
                println!(
                    "server -> device: {topic} {event} {}",
                    payload.json_text().unwrap_or("<binary>")
                );
                let answer = Payload::json(&json!({"received": event, "status": "ok"}));
                println!(
                    "device -> server: {topic} hello_back {}",
                    answer.json_text().unwrap_or("")
                );
                let reply = device
                    .push("hello_back", answer)
                    .map_err(|e| e.to_string())?;
                match reply.await.map_err(|e| e.to_string())? {
                    PushOutcome::Ok(response) => {
                        println!(
                            "server replied ok: {}",
                            response.json_text().unwrap_or("<binary>")
                        );
                        socket.close();
                        return Ok(());
                    }
                    other => return Err(format!("push failed: {other:?}")),
                }
            }
            Event::AuthError { error, .. } => return Err(error.to_string()),
            Event::Disconnected { reason, .. } => println!("device: disconnected: {reason}"),
            other => println!("device: {other:?}"),
        }
    }
}
