//! Command-line options shared by the commands, parsed with clap. The same
//! structures are what the agent's TOML file fills (see `agent_config`), so
//! `nhc device`, `nhc simulate` and `nhc agent` build their devices with one
//! function (`connection::device_config`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// How the device reaches and authenticates to the server.
#[derive(Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// Device socket URL (wss://HOST/socket/websocket for mutual TLS,
    /// wss://HOST/device-socket/websocket for a shared secret)
    #[arg(long, env = "NHC_URL")]
    pub url: Option<String>,
    /// CA bundle (PEM) the server certificate must chain to
    #[arg(long, value_name = "FILE", env = "NHC_CA")]
    pub ca: Option<PathBuf>,
    /// Device certificate (mutual TLS)
    #[arg(long, value_name = "FILE", env = "NHC_CERT")]
    pub cert: Option<PathBuf>,
    /// Device private key (mutual TLS)
    #[arg(long, value_name = "FILE", env = "NHC_KEY")]
    pub key: Option<PathBuf>,
    /// The private key (with --cert) on a PKCS#11 token instead of --key,
    /// e.g. pkcs11:token=device;object=nerves-hub (RFC 7512)
    #[arg(long, value_name = "URI", conflicts_with = "key")]
    pub pkcs11_uri: Option<String>,
    /// The token's PKCS#11 module (or the URI's module-path)
    #[arg(long, value_name = "FILE", requires = "pkcs11_uri")]
    pub pkcs11_module: Option<PathBuf>,
    /// The user PIN, from a file (or the URI's pin-source); there is no flag
    /// for the PIN itself, since `ps` shows every argument
    #[arg(long, value_name = "FILE", requires = "pkcs11_uri")]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// The user PIN, from this environment variable
    #[arg(
        long,
        value_name = "NAME",
        requires = "pkcs11_uri",
        conflicts_with = "pkcs11_pin_file"
    )]
    pub pkcs11_pin_env: Option<String>,
    /// NH1 shared secret (product key nhp_... or device key); never printed
    #[arg(long, value_name = "KEY:SECRET", value_parser = shared_secret, env = "NHC_SHARED_SECRET", hide_env_values = true)]
    pub shared_secret: Option<SharedSecretArg>,
    /// Device identifier signed with the shared secret
    #[arg(long, value_name = "ID", env = "NHC_IDENTIFIER")]
    pub identifier: Option<String>,
    /// NH1: seconds added to the system clock when signing (negative: it is
    /// ahead); a refusal's Date corrects the rest
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub clock_offset: Option<i64>,
    /// A connection joined this long restarts the reconnect backoff (default 120);
    /// shorter ones escalate it
    #[arg(long, value_name = "SECS")]
    pub stable_after: Option<u64>,
    /// Rejoin `device` SECS after the server closed it (default 5), or never
    #[arg(long, value_name = "SECS|never", value_parser = rejoin)]
    pub device_rejoin_after_close: Option<Rejoin>,
}

/// `KEY:SECRET`, split; the secret is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecretArg {
    pub key: String,
    pub secret: String,
}

impl std::fmt::Debug for SharedSecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedSecretArg({}:***)", self.key)
    }
}

/// `--device-rejoin-after-close`: a delay, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejoin {
    After(Duration),
    Never,
}

/// The knobs of the device layer, in every command.
#[derive(Args, Debug, Clone, Default)]
pub struct DeviceKnobs {
    /// Sent as device_api_version (default 2.3.0; 2.2.0+ gets extensions, 2.1.0+ scripts)
    #[arg(long, value_name = "VERSION")]
    pub device_api_version: Option<String>,
    /// Sent as fwup_version (default: `fwup --version` when fwup is installed)
    #[arg(long, value_name = "VERSION")]
    pub fwup_version: Option<String>,
    /// Join the remote console with a shell behind it (off by default)
    #[arg(long)]
    pub console: bool,
    /// The console's shell command (default "/bin/sh -l")
    #[arg(long, value_name = "COMMAND", requires = "console")]
    pub console_shell: Option<String>,
    /// Offer the local_shell extension: NervesHub's Local Shell tab gets
    /// "/bin/sh -l" on a pty (off by default)
    #[arg(long)]
    pub local_shell: bool,
    /// Store browser uploads in this directory and announce console file
    /// transfer (console_version 2.0.0; default: no transfers, 1.0.0)
    #[arg(long, value_name = "DIR", requires = "console")]
    pub console_upload_dir: Option<std::path::PathBuf>,
    /// Largest upload in bytes (default 10485760)
    #[arg(long, value_name = "BYTES", requires = "console_upload_dir")]
    pub console_max_upload_size: Option<u64>,
    /// Accept support scripts (scripts/run); they are printed, and answered
    /// as not run by `device`/`simulate`
    #[arg(long)]
    pub scripts: bool,
    /// Extensions offered to the server, comma-separated
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAME,...")]
    pub extensions: Vec<Extension>,
    /// First reconnect delay in seconds (default 1)
    #[arg(long, value_name = "SECS")]
    pub backoff_initial: Option<f64>,
    /// Longest reconnect delay in seconds (default 60)
    #[arg(long, value_name = "SECS")]
    pub backoff_max: Option<f64>,
    /// Random part of each delay, 0..=10 (default 0.5)
    #[arg(long, value_name = "FACTOR")]
    pub backoff_jitter: Option<f64>,
}

/// An extension the CLI can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Extension {
    /// health reports with the Linux system metrics
    Health,
    /// the logging extension (nhc itself sends no lines through it yet)
    Logging,
}

/// Where the running firmware's metadata comes from.
#[derive(Args, Debug, Clone, Default)]
pub struct MetadataArgs {
    /// fw_printenv output
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// A binary U-Boot environment (fw_env.config's device), also read for
    /// nerves_fw_validated
    #[arg(long, value_name = "PATH", requires = "uboot_env_size")]
    pub uboot_env: Option<PathBuf>,
    /// Size of one environment copy
    #[arg(long, value_name = "BYTES", requires = "uboot_env")]
    pub uboot_env_size: Option<usize>,
    /// Offset of the environment in PATH (default 0)
    #[arg(long, value_name = "BYTES", requires = "uboot_env")]
    pub uboot_env_offset: Option<u64>,
    /// CONFIG_ENV_REDUNDANT: two copies
    #[arg(long, requires = "uboot_env")]
    pub uboot_env_redundant: bool,
    /// Add or override a key (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    pub meta: Vec<(String, String)>,
}

/// Where the U-Boot environment is: `fw_env.config`'s device, offset and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UbootEnv {
    pub path: PathBuf,
    pub offset: u64,
    pub size: usize,
    pub redundant: bool,
}

impl MetadataArgs {
    pub fn uboot(&self) -> Option<UbootEnv> {
        Some(UbootEnv {
            path: self.uboot_env.clone()?,
            offset: self.uboot_env_offset.unwrap_or(0),
            size: self.uboot_env_size?,
            redundant: self.uboot_env_redundant,
        })
    }

    pub fn check(&self) -> Result<(), String> {
        if self.uboot_env.is_some() && self.metadata_file.is_some() {
            return Err("--uboot-env and --metadata-file both give the metadata: give one".into());
        }
        Ok(())
    }
}

/// `nhc device`.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub knobs: DeviceKnobs,
    #[command(flatten)]
    pub metadata: MetadataArgs,
    /// Store each update as DIR/<uuid>.fw (default: .); its fwup signature is not checked
    #[arg(long, value_name = "DIR", conflicts_with = "fwup_device")]
    pub firmware_dir: Option<PathBuf>,
    /// Apply each update with fwup to PATH (disk image or block device),
    /// checking its signature
    #[arg(long, value_name = "PATH")]
    pub fwup_device: Option<PathBuf>,
    /// The fwup task
    #[arg(
        long,
        value_name = "TASK",
        default_value = "upgrade",
        requires = "fwup_device"
    )]
    pub fwup_task: String,
    /// The fwup binary (default fwup on PATH)
    #[arg(long, value_name = "PATH", requires = "fwup_device")]
    pub fwup: Option<String>,
    /// A firmware signing key (base64, fwup-key.pub), repeatable; without one
    /// the keys come from the server
    #[arg(long, value_name = "KEY", requires = "fwup_device")]
    pub fwup_public_key: Vec<String>,
    /// Apply firmware while no key is known (fwup then checks no signature)
    #[arg(long, requires = "fwup_device")]
    pub allow_unverified_firmware: bool,
    /// End after the first update (exit code 0 when it succeeded)
    #[arg(long)]
    pub exit_after_update: bool,
    /// Close and exit (code 0) after SECS
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// One JSON object per event on stdout instead of text lines
    #[arg(long)]
    pub json: bool,
}

/// `nhc simulate`.
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub knobs: DeviceKnobs,
    /// Each device uses DIR/<identity>.pem and DIR/<identity>-key.pem
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// How many devices
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub devices: u32,
    /// Identities are <prefix><n>
    #[arg(long, value_name = "NAME", default_value = "nhc-sim-")]
    pub prefix: String,
    /// Stop after SECS
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// I/O threads
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: u32,
    /// Stop once every device has joined (exit code 0)
    #[arg(long)]
    pub exit_when_joined: bool,
}

fn shared_secret(v: &str) -> Result<SharedSecretArg, String> {
    v.split_once(':')
        .filter(|(k, s)| !k.is_empty() && !s.is_empty())
        .map(|(key, secret)| SharedSecretArg {
            key: key.to_owned(),
            secret: secret.to_owned(),
        })
        .ok_or_else(|| "wants KEY:SECRET".into())
}

pub fn rejoin(v: &str) -> Result<Rejoin, String> {
    match v {
        "never" => Ok(Rejoin::Never),
        secs => match secs.parse::<u64>() {
            Ok(0) | Err(_) => Err(format!("wants SECS > 0 or never, got {v:?}")),
            Ok(n) => Ok(Rejoin::After(Duration::from_secs(n))),
        },
    }
}

fn key_value(v: &str) -> Result<(String, String), String> {
    v.split_once('=')
        .map(|(k, val)| (k.to_owned(), val.to_owned()))
        .ok_or_else(|| format!("wants KEY=VALUE, got {v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;

    fn parse(items: &[&str]) -> Result<crate::Command, String> {
        Cli::try_parse_from(std::iter::once("nhc").chain(items.iter().copied()))
            .map(|c| c.command)
            .map_err(|e| e.to_string())
    }

    fn device(items: &[&str]) -> DeviceArgs {
        match parse(&[&["device"][..], items].concat()) {
            Ok(crate::Command::Device(d)) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_every_kind_of_option() {
        let d = device(&[
            "--url",
            "wss://h/socket/websocket",
            "--shared-secret",
            "nhp_k:s3:cret",
            "--meta",
            "nerves_fw_version=1.2.3",
            "--device-rejoin-after-close",
            "never",
            "--extensions",
            "health,logging",
            "--console",
            "--json",
        ]);
        let c = &d.connection;
        assert_eq!(c.device_rejoin_after_close, Some(Rejoin::Never));
        assert_eq!(
            c.shared_secret,
            Some(SharedSecretArg {
                key: "nhp_k".into(),
                secret: "s3:cret".into()
            })
        );
        assert!(!format!("{c:?}").contains("s3:cret"));
        assert_eq!(
            d.metadata.meta,
            [("nerves_fw_version".to_owned(), "1.2.3".to_owned())]
        );
        assert_eq!(d.knobs.extensions, [Extension::Health, Extension::Logging]);
        assert!(d.knobs.console && d.json);
        assert_eq!(d.fwup_device, None);
        assert_eq!(d.fwup_task, "upgrade");
        let thirty = device(&["--url", "u", "--device-rejoin-after-close", "30"]);
        assert_eq!(
            thirty.connection.device_rejoin_after_close,
            Some(Rejoin::After(Duration::from_secs(30)))
        );
        let sim = match parse(&[
            "simulate",
            "--url",
            "u",
            "--devices",
            "7",
            "--exit-when-joined",
        ]) {
            Ok(crate::Command::Simulate(s)) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(sim.devices, 7);
        assert!(sim.exit_when_joined);
    }

    #[test]
    fn parses_the_fwup_sink_and_the_uboot_environment() {
        let d = device(&[
            "--url",
            "u",
            "--fwup-device",
            "/dev/mmcblk0",
            "--fwup-task",
            "upgrade.b",
            "--fwup",
            "/opt/bin/fwup",
            "--fwup-public-key",
            "K1",
            "--fwup-public-key",
            "K2",
            "--allow-unverified-firmware",
            "--uboot-env",
            "/dev/mmcblk0",
            "--uboot-env-offset",
            "2048",
            "--uboot-env-size",
            "8192",
            "--uboot-env-redundant",
        ]);
        assert_eq!(d.fwup_device, Some(PathBuf::from("/dev/mmcblk0")));
        assert_eq!(d.fwup_task, "upgrade.b");
        assert_eq!(d.fwup.as_deref(), Some("/opt/bin/fwup"));
        assert_eq!(d.fwup_public_key, ["K1", "K2"]);
        assert!(d.allow_unverified_firmware);
        assert_eq!(
            d.metadata.uboot(),
            Some(UbootEnv {
                path: "/dev/mmcblk0".into(),
                offset: 2048,
                size: 8192,
                redundant: true,
            })
        );
        let plain = device(&["--url", "u", "--uboot-env", "e", "--uboot-env-size", "64"]);
        assert_eq!(
            plain.metadata.uboot().map(|e| (e.offset, e.redundant)),
            Some((0, false))
        );
    }

    #[test]
    fn pkcs11_flags_name_a_token_key_and_refuse_a_pem_key_beside_it() {
        let base = [
            "--url",
            "x",
            "--cert",
            "c.pem",
            "--pkcs11-uri",
            "pkcs11:object=k",
        ];
        let d = device(
            &[
                &base[..],
                &["--pkcs11-module", "/m.so", "--pkcs11-pin-env", "PIN"],
            ]
            .concat(),
        );
        let c = &d.connection;
        assert_eq!(c.pkcs11_uri.as_deref(), Some("pkcs11:object=k"));
        assert_eq!(c.pkcs11_module, Some(PathBuf::from("/m.so")));
        assert_eq!(c.pkcs11_pin_env.as_deref(), Some("PIN"));
        let err = |a: &[&str]| parse(&[&["device"][..], a].concat()).unwrap_err();
        assert!(err(&[&base[..], &["--key", "k.pem"]].concat()).contains("cannot be used"));
        assert!(err(&["--url", "x", "--pkcs11-module", "/m.so"]).contains("--pkcs11-uri"));
        let both_pins = ["--pkcs11-pin-env", "P", "--pkcs11-pin-file", "f"];
        assert!(err(&[&base[..], &both_pins[..]].concat()).contains("cannot be used"));
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        let err = |a: &[&str]| parse(a).unwrap_err();
        assert!(err(&["device", "--url", "x", "--duration", "long"]).contains("--duration"));
        assert!(err(&["simulate", "--url", "x", "--devices", "many"]).contains("--devices"));
        assert!(err(&["simulate", "--url", "x", "--devices", "0"]).contains("--devices"));
        assert!(
            err(&["device", "--url", "x", "--shared-secret", "nosecret"]).contains("KEY:SECRET")
        );
        assert!(err(&["device", "--url", "x", "--bogus"]).contains("--bogus"));
        assert!(err(&["device", "--url"]).contains("a value is required"));
        assert!(
            err(&["device", "--url", "x", "--device-rejoin-after-close", "0"]).contains("or never")
        );
        assert!(err(&[
            "device",
            "--url",
            "x",
            "--device-rejoin-after-close",
            "soon"
        ])
        .contains("or never"));
        let fwup = ["device", "--url", "x", "--fwup-device", "d"];
        assert!(err(&[&fwup[..], &["--firmware-dir", "f"]].concat()).contains("cannot be used"));
        assert!(err(&["device", "--url", "x", "--fwup-public-key", "K"]).contains("--fwup-device"));
        assert!(
            err(&["device", "--url", "x", "--allow-unverified-firmware"]).contains("--fwup-device")
        );
        assert!(err(&["device", "--url", "x", "--uboot-env", "e"]).contains("--uboot-env-size"));
        assert!(err(&["device", "--url", "x", "--uboot-env-size", "64"]).contains("--uboot-env"));
        assert!(parse(&[&fwup[..], &["--uboot-env-offset", "-1"]].concat()).is_err());
        let both = device(&[
            "--url",
            "x",
            "--uboot-env",
            "e",
            "--uboot-env-size",
            "64",
            "--metadata-file",
            "m",
        ]);
        assert!(both.metadata.check().unwrap_err().contains("give one"));
    }
}
