//! `nhc`: a NervesHub device from the command line.
//!
//! `nhc device ...` runs one device that prints its events and applies
//! updates into a directory; `nhc simulate --devices N ...` runs N devices
//! with distinct identities in one process, for load-testing a server.

mod args;
mod connection;
mod device_cmd;
mod simulate;
mod uboot_env;

use std::process::ExitCode;

const USAGE: &str = "\
usage:
  nhc device   --url URL [connection options] [sink options] [metadata options]
               [--exit-after-update]
  nhc simulate --url URL --devices N [connection options] [--prefix NAME] [--duration SECS]
               [--workers N] [--exit-when-joined]

connection options:
  --ca FILE                      CA bundle (PEM) the server certificate must chain to
  --cert FILE --key FILE         device certificate and key (mutual TLS)
  --cert-dir DIR                 simulate: DIR/<identity>.pem and DIR/<identity>-key.pem
  --pkcs11-uri URI               the key (with --cert) on a PKCS#11 token instead of --key,
                                 e.g. pkcs11:token=device;object=nerves-hub (RFC 7512)
  --pkcs11-module FILE           the token's PKCS#11 module (or the URI's module-path)
  --pkcs11-pin-file FILE         the user PIN, from a file (or the URI's pin-source)
  --pkcs11-pin-env NAME          the user PIN, from an environment variable
  --shared-secret KEY:SECRET     NH1 shared secret (product key nhp_... or device key)
  --identifier ID                device identifier signed with the shared secret
  --device-rejoin-after-close SECS|never
                                 rejoin `device` SECS after the server closed it (default 5),
                                 or never
  --clock-offset SECS            NH1: seconds added to the system clock when signing
                                 (negative: it is ahead); a refusal's Date corrects the rest
  --stable-after SECS            a connection joined this long restarts the reconnect
                                 backoff (default 120); shorter ones escalate it

sink options (device; one of):
  --firmware-dir DIR             store each update as DIR/<uuid>.fw (default: .); its fwup
                                 signature is not checked
  --fwup-device PATH             apply each update with fwup to PATH (disk image or block
                                 device), checking its signature
    --fwup-task TASK             the fwup task (default upgrade)
    --fwup PATH                  the fwup binary (default fwup on PATH)
    --fwup-public-key KEY        a firmware signing key (base64, fwup-key.pub), repeatable;
                                 without one the keys come from the server (fwup_public_keys)
    --allow-unverified-firmware  apply firmware while no key is known (fwup then checks no
                                 signature); by default such updates are refused

metadata options (device):
  --metadata-file FILE           fw_printenv output
  --uboot-env PATH --uboot-env-size BYTES [--uboot-env-offset BYTES] [--uboot-env-redundant]
                                 a binary U-Boot environment (fw_env.config's device, offset
                                 and size), also read for nerves_fw_validated
  --meta KEY=VALUE               add or override a key (repeatable)
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
