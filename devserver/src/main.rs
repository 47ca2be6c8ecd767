//! `nhc-devserver`: prints one JSON line (URLs and PKI paths) on stdout,
//! then logs to stderr and serves until SIGINT/SIGTERM.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use nhc_devserver::{Config, DevServer, SharedSecretEntry};

mod logger;

const USAGE: &str =
    "usage: nhc-devserver [--pki-dir DIR] [--idle-timeout-ms N] [--demo] [--ready-file PATH]
                     [--shared-secret KEY:SECRET[:IDENTIFIER]]...

  --pki-dir DIR         PKI directory (default ./nhc-devserver-pki); an existing CA there is reused
  --idle-timeout-ms N   close connections silent for N ms (default 60000)
  --demo                greet devices joining \"device\" and print what they send
  --ready-file PATH     also write the JSON ready line to PATH
  --shared-secret KEY:SECRET[:IDENTIFIER]
                        accept NH1 signatures made with this secret (repeatable). An nhp_ key
                        (product) takes any identifier and no IDENTIFIER; other keys (device)
                        need the IDENTIFIER of their device
Log level: NHC_LOG=error|warn|info|debug|trace (default info).";

struct Args {
    config: Config,
    ready_file: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut config = Config {
        pki_dir: Some(PathBuf::from("nhc-devserver-pki")),
        ..Config::default()
    };
    let mut ready_file = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--pki-dir" => config.pki_dir = Some(PathBuf::from(value("--pki-dir")?)),
            "--idle-timeout-ms" => {
                let v = value("--idle-timeout-ms")?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("--idle-timeout-ms: not a number: {v}"))?;
                config.idle_timeout = Duration::from_millis(ms);
            }
            "--demo" => config.demo = true,
            "--shared-secret" => config
                .shared_secrets
                .push(SharedSecretEntry::parse_cli(&value("--shared-secret")?)?),
            "--ready-file" => ready_file = Some(PathBuf::from(value("--ready-file")?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(Args { config, ready_file })
}

/// Written beside the target and renamed, so a watcher never reads half a line.
fn write_ready_file(path: &PathBuf, line: &str) -> std::io::Result<()> {
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{line}\n"))?;
    std::fs::rename(&tmp, path)
}

async fn until_signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> ExitCode {
    logger::init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("nhc-devserver: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match DevServer::start(args.config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("nhc-devserver: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let line = server.info().to_string();
    // The file first: whoever has read the stdout line may rely on it.
    if let Some(path) = &args.ready_file {
        if let Err(e) = write_ready_file(path, &line) {
            eprintln!("nhc-devserver: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            log::warn!("stdout is closed; the ready line went nowhere");
        }
    }
    until_signalled().await;
    log::info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}
