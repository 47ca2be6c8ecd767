//! `nhc`: a NervesHub device from the command line.
//!
//! `nhc device ...` runs one device that prints its events and applies
//! updates into a directory; `nhc simulate --devices N ...` runs N devices
//! with distinct identities in one process, for load-testing a server.

mod args;
mod connection;
mod device_cmd;
mod simulate;

use std::process::ExitCode;

const USAGE: &str = "\
usage:
  nhc device   --url URL [connection options] [--firmware-dir DIR] [--metadata-file FILE]
               [--meta KEY=VALUE]... [--exit-after-update]
  nhc simulate --url URL --devices N [connection options] [--prefix NAME] [--duration SECS]
               [--workers N] [--exit-when-joined]

connection options:
  --ca FILE                      CA bundle (PEM) the server certificate must chain to
  --cert FILE --key FILE         device certificate and key (mutual TLS)
  --cert-dir DIR                 simulate: DIR/<identity>.pem and DIR/<identity>-key.pem
  --shared-secret KEY:SECRET     NH1 shared secret (product key nhp_... or device key)
  --identifier ID                device identifier signed with the shared secret
  --device-rejoin-after-close SECS|never
                                 rejoin `device` SECS after the server closed it (default 5),
                                 or never
  --clock-offset SECS            NH1: seconds added to the system clock when signing
                                 (negative: it is ahead); a refusal's Date corrects the rest
  --stable-after SECS            a connection joined this long restarts the reconnect
                                 backoff (default 120); shorter ones escalate it
";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = match argv.first().map(String::as_str) {
        Some("device") => args::parse(&argv[1..]).and_then(device_cmd::run),
        Some("simulate") => args::parse(&argv[1..]).and_then(simulate::run),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("expected a command\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nhc: {e}");
            ExitCode::from(2)
        }
    }
}
