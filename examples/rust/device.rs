//! A NervesHub device: connects over wss with a client certificate, joins
//! "device" with its firmware metadata, applies the update the server offers
//! into a file (download, per-MiB and whole-file verification, progress),
//! reports completed, and "reboots" by exiting.
//!
//! cargo run --example device -- --url wss://localhost:4001/socket/websocket \
//!     --ca ca.pem --cert device.pem --key device-key.pem --out /tmp/fw

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use nerves_hub_channel::nerves_hub::update::{SinkSpec, UpdateOptions};
use nerves_hub_channel::nerves_hub::{Device, DeviceConfig, DeviceEvent, FirmwareMetadata};
use nerves_hub_channel::{Event, PemSource, SocketConfig};

struct Args {
    url: String,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        ca: None,
        cert: None,
        key: None,
        out: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--ca" => args.ca = Some(value()?.into()),
            "--cert" => args.cert = Some(value()?.into()),
            "--key" => args.key = Some(value()?.into()),
            "--out" => args.out = value()?.into(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.url.is_empty() {
        return Err(
            "usage: device --url URL [--ca CA.pem] [--cert CERT.pem --key KEY.pem] [--out DIR]"
                .into(),
        );
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
    let mut socket = SocketConfig::new(&args.url);
    socket.tls.ca = args.ca.map(PemSource::File);
    socket.tls.client_cert = args.cert.map(PemSource::File);
    socket.tls.client_key = args.key.map(PemSource::File);
    let mut config = DeviceConfig::new(socket);
    config.metadata = FirmwareMetadata::from_pairs([
        ("nerves_fw_uuid", "00000000-0000-4000-8000-000000000001"),
        ("nerves_fw_product", "nhc-demo"),
        ("nerves_fw_version", "1.0.0"),
        ("nerves_fw_architecture", "generic"),
        ("nerves_fw_platform", "host"),
    ]);
    config.fwup_version = Some("1.13.2".into());
    config.firmware_validated = Some(std::sync::Arc::new(|| Some(true)));
    let device = Device::new(config).map_err(|e| e.to_string())?;
    device.connect().map_err(|e| e.to_string())?;

    let image = args.out.join("nhc-demo-next.fw");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let event = tokio::time::timeout_at(deadline, device.next_event())
            .await
            .map_err(|_| "nothing finished within 120 s".to_owned())?
            .ok_or("the connection closed")?;
        match event {
            DeviceEvent::Socket(Event::Connecting { attempt }) => {
                println!("device: connecting (attempt {attempt})")
            }
            DeviceEvent::Socket(Event::Connected) => println!("device: connected to {}", args.url),
            DeviceEvent::Socket(Event::Joined { topic, .. }) => {
                println!("device: joined {topic:?}")
            }
            DeviceEvent::Socket(Event::AuthError { error, .. }) => return Err(error.to_string()),
            DeviceEvent::Socket(Event::Disconnected { reason, .. }) => {
                println!("device: disconnected: {reason}")
            }
            DeviceEvent::Socket(_) => {}
            DeviceEvent::UpdateAvailable(info) => {
                println!(
                    "device: update offered: firmware {} ({} bytes, {} MiB parts to verify)",
                    info.firmware_meta.uuid,
                    info.size.unwrap_or(0),
                    info.partials_checksums.len()
                );
                println!("device: applying it into {}", image.display());
                let options = UpdateOptions::new(SinkSpec::File(image.clone()));
                device
                    .apply_update(&info, options)
                    .map_err(|e| e.to_string())?;
            }
            DeviceEvent::UpdateProgress { stage, percent } => {
                println!("device: {} {percent}%", stage.as_str())
            }
            DeviceEvent::UpdateFinished { ok: true, .. } => {
                println!("device: update completed and verified; rebooting (the demo exits)");
                device.close();
                return Ok(());
            }
            DeviceEvent::UpdateFinished { ok: false, reason } => {
                return Err(format!("update failed: {}", reason.unwrap_or_default()));
            }
            DeviceEvent::Reboot => {
                println!("device: the server asked for a reboot (the demo exits)");
                device.close();
                return Ok(());
            }
            DeviceEvent::Other {
                topic,
                event,
                payload,
            } => println!(
                "server -> device: {topic} {event} {}",
                payload.json_text().unwrap_or("<binary>")
            ),
            other => println!("device: {other:?}"),
        }
    }
}
