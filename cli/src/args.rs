//! Command-line options shared by the commands (no parser crate: a handful
//! of flags does not justify the dependency in a firmware tool).

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Options {
    pub url: String,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub cert_dir: Option<PathBuf>,
    /// (key, secret); the secret is never printed.
    pub shared_secret: Option<(String, String)>,
    pub identifier: Option<String>,
    /// Seconds added to the system clock for NH1 signatures.
    pub clock_offset: i64,
    /// `--stable-after`: how long a connection must stay joined to restart the backoff.
    pub stable_after: Option<Duration>,
    pub firmware_dir: Option<PathBuf>,
    pub metadata_file: Option<PathBuf>,
    pub meta: Vec<(String, String)>,
    pub exit_after_update: bool,
    /// `--fwup-device`: updates are applied by fwup to this disk (image).
    pub fwup_device: Option<PathBuf>,
    pub fwup_task: String,
    /// `--fwup`: the fwup binary (default: `fwup` on PATH).
    pub fwup: Option<String>,
    pub fwup_public_keys: Vec<String>,
    pub allow_unverified_firmware: bool,
    /// `--uboot-env`: metadata (and validation) from a binary U-Boot environment.
    pub uboot_env: Option<UbootEnv>,
    pub devices: usize,
    pub prefix: String,
    pub duration: Option<Duration>,
    pub workers: usize,
    pub exit_when_joined: bool,
    /// `--device-rejoin-after-close`: `Some(None)` for "never"; `None`: the library's default.
    pub device_rejoin_after_close: Option<Option<Duration>>,
    /// `--pkcs11-*`: the client key on a PKCS#11 token (the PIN from a file
    /// or an environment variable, never from the command line, which `ps` shows).
    pub pkcs11: Option<nerves_hub_channel::Pkcs11KeyOptions>,
}

/// Where the U-Boot environment is: `fw_env.config`'s device, offset and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UbootEnv {
    pub path: PathBuf,
    pub offset: u64,
    pub size: usize,
    pub redundant: bool,
}

pub fn parse(argv: &[String]) -> Result<Options, String> {
    let mut o = Options {
        devices: 1,
        prefix: "nhc-sim-".into(),
        workers: 1,
        fwup_task: "upgrade".into(),
        ..Options::default()
    };
    let (mut env_path, mut env_offset, mut env_size, mut env_redundant) = (None, None, None, false);
    let (mut pkcs11_uri, mut pkcs11_module, mut pkcs11_pin) = (None, None, None);
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => o.url = value()?,
            "--ca" => o.ca = Some(value()?.into()),
            "--cert" => o.cert = Some(value()?.into()),
            "--key" => o.key = Some(value()?.into()),
            "--cert-dir" => o.cert_dir = Some(value()?.into()),
            "--shared-secret" => {
                let v = value()?;
                let (key, secret) = v
                    .split_once(':')
                    .filter(|(k, s)| !k.is_empty() && !s.is_empty())
                    .ok_or("--shared-secret wants KEY:SECRET")?;
                o.shared_secret = Some((key.to_owned(), secret.to_owned()));
            }
            "--identifier" => o.identifier = Some(value()?),
            "--clock-offset" => {
                let v = value()?;
                o.clock_offset = v
                    .parse()
                    .map_err(|_| format!("--clock-offset wants whole seconds, got {v:?}"))?;
            }
            "--stable-after" => {
                o.stable_after = Some(Duration::from_secs(
                    number(&value()?, "--stable-after")? as u64
                ))
            }
            "--firmware-dir" => o.firmware_dir = Some(value()?.into()),
            "--metadata-file" => o.metadata_file = Some(value()?.into()),
            "--meta" => {
                let v = value()?;
                let (k, val) = v
                    .split_once('=')
                    .ok_or(format!("--meta wants KEY=VALUE, got {v:?}"))?;
                o.meta.push((k.to_owned(), val.to_owned()));
            }
            "--exit-after-update" => o.exit_after_update = true,
            "--fwup-device" => o.fwup_device = Some(value()?.into()),
            "--fwup-task" => o.fwup_task = value()?,
            "--fwup" => o.fwup = Some(value()?),
            "--fwup-public-key" => o.fwup_public_keys.push(value()?),
            "--allow-unverified-firmware" => o.allow_unverified_firmware = true,
            "--uboot-env" => env_path = Some(PathBuf::from(value()?)),
            "--uboot-env-offset" => env_offset = Some(number(&value()?, "--uboot-env-offset")?),
            "--uboot-env-size" => env_size = Some(number(&value()?, "--uboot-env-size")?),
            "--uboot-env-redundant" => env_redundant = true,
            "--devices" => o.devices = number(&value()?, "--devices")?,
            "--prefix" => o.prefix = value()?,
            "--duration" => {
                o.duration = Some(Duration::from_secs(number(&value()?, "--duration")? as u64))
            }
            "--workers" => o.workers = number(&value()?, "--workers")?,
            "--exit-when-joined" => o.exit_when_joined = true,
            "--device-rejoin-after-close" => {
                o.device_rejoin_after_close = Some(match value()?.as_str() {
                    "never" => None,
                    secs => match number(secs, "--device-rejoin-after-close")? {
                        0 => {
                            return Err("--device-rejoin-after-close wants SECS > 0 or never".into())
                        }
                        n => Some(Duration::from_secs(n as u64)),
                    },
                })
            }
            "--pkcs11-uri" => pkcs11_uri = Some(value()?),
            "--pkcs11-module" => pkcs11_module = Some(PathBuf::from(value()?)),
            "--pkcs11-pin-file" => {
                pkcs11_pin = Some(nerves_hub_channel::Pkcs11Pin::File(value()?.into()))
            }
            "--pkcs11-pin-env" => pkcs11_pin = Some(nerves_hub_channel::Pkcs11Pin::Env(value()?)),
            other => return Err(format!("unknown option {other:?} (see nhc --help)")),
        }
    }
    if o.url.is_empty() {
        return Err("--url is required".into());
    }
    o.pkcs11 = match pkcs11_uri {
        Some(_) if o.key.is_some() || o.cert_dir.is_some() => {
            return Err("--pkcs11-uri replaces --key and --cert-dir: give one".into())
        }
        Some(uri) => Some(nerves_hub_channel::Pkcs11KeyOptions {
            module: pkcs11_module,
            uri,
            pin: pkcs11_pin,
        }),
        None if pkcs11_module.is_some() || pkcs11_pin.is_some() => {
            return Err(
                "--pkcs11-module, --pkcs11-pin-file and --pkcs11-pin-env need --pkcs11-uri".into(),
            )
        }
        None => None,
    };
    if o.devices == 0 || o.workers == 0 {
        return Err("--devices and --workers must be at least 1".into());
    }
    if o.fwup_device.is_some() && o.firmware_dir.is_some() {
        return Err("--fwup-device and --firmware-dir are two different sinks: give one".into());
    }
    if o.fwup_device.is_none()
        && (o.fwup.is_some()
            || !o.fwup_public_keys.is_empty()
            || o.allow_unverified_firmware
            || o.fwup_task != "upgrade")
    {
        return Err(
            "--fwup, --fwup-task, --fwup-public-key and --allow-unverified-firmware \
                    need --fwup-device"
                .into(),
        );
    }
    o.uboot_env = match (env_path, env_size) {
        (Some(path), Some(size)) => Some(UbootEnv {
            path,
            offset: env_offset.unwrap_or(0) as u64,
            size,
            redundant: env_redundant,
        }),
        (Some(_), None) => return Err("--uboot-env needs --uboot-env-size BYTES".into()),
        (None, _) if env_size.is_some() || env_offset.is_some() || env_redundant => {
            return Err(
                "--uboot-env-size, --uboot-env-offset and --uboot-env-redundant \
                        need --uboot-env PATH"
                    .into(),
            )
        }
        (None, _) => None,
    };
    if o.uboot_env.is_some() && o.metadata_file.is_some() {
        return Err("--uboot-env and --metadata-file both give the metadata: give one".into());
    }
    Ok(o)
}

fn number(text: &str, flag: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("{flag} wants a whole number, got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_every_kind_of_option() {
        let o = parse(&argv(&[
            "--url",
            "wss://h/socket/websocket",
            "--shared-secret",
            "nhp_k:s3:cret",
            "--meta",
            "nerves_fw_version=1.2.3",
            "--devices",
            "7",
            "--exit-when-joined",
            "--device-rejoin-after-close",
            "never",
        ]))
        .unwrap();
        assert_eq!(o.device_rejoin_after_close, Some(None));
        let thirty = parse(&argv(&["--url", "u", "--device-rejoin-after-close", "30"])).unwrap();
        assert_eq!(
            thirty.device_rejoin_after_close,
            Some(Some(Duration::from_secs(30)))
        );
        assert_eq!(
            parse(&argv(&["--url", "u"]))
                .unwrap()
                .device_rejoin_after_close,
            None
        );
        assert_eq!(o.shared_secret, Some(("nhp_k".into(), "s3:cret".into())));
        assert_eq!(
            o.meta,
            [("nerves_fw_version".to_owned(), "1.2.3".to_owned())]
        );
        assert_eq!(o.devices, 7);
        assert!(o.exit_when_joined);
        assert_eq!(o.fwup_device, None);
        assert_eq!(o.fwup_task, "upgrade");
    }

    #[test]
    fn parses_the_fwup_sink_and_the_uboot_environment() {
        let o = parse(&argv(&[
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
        ]))
        .unwrap();
        assert_eq!(o.fwup_device, Some(PathBuf::from("/dev/mmcblk0")));
        assert_eq!(o.fwup_task, "upgrade.b");
        assert_eq!(o.fwup.as_deref(), Some("/opt/bin/fwup"));
        assert_eq!(o.fwup_public_keys, ["K1", "K2"]);
        assert!(o.allow_unverified_firmware);
        assert_eq!(
            o.uboot_env,
            Some(UbootEnv {
                path: "/dev/mmcblk0".into(),
                offset: 2048,
                size: 8192,
                redundant: true,
            })
        );
        let plain = parse(&argv(&[
            "--url",
            "u",
            "--uboot-env",
            "e",
            "--uboot-env-size",
            "64",
        ]));
        assert_eq!(
            plain.unwrap().uboot_env.map(|e| (e.offset, e.redundant)),
            Some((0, false))
        );
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        let err = |a: &[&str]| parse(&argv(a)).unwrap_err();
        assert!(err(&[]).contains("--url"));
        assert!(err(&["--url", "x", "--devices", "many"]).contains("whole number"));
        assert!(err(&["--url", "x", "--shared-secret", "nosecret"]).contains("KEY:SECRET"));
        assert!(err(&["--url", "x", "--bogus"]).contains("unknown option"));
        assert!(err(&["--url"]).contains("needs a value"));
        assert!(err(&["--url", "x", "--device-rejoin-after-close", "0"]).contains("or never"));
        assert!(
            err(&["--url", "x", "--device-rejoin-after-close", "soon"]).contains("whole number")
        );
        let fwup = ["--url", "x", "--fwup-device", "d"];
        assert!(err(&[&fwup[..], &["--firmware-dir", "f"]].concat()).contains("give one"));
        assert!(err(&["--url", "x", "--fwup-public-key", "K"]).contains("need --fwup-device"));
        assert!(err(&["--url", "x", "--allow-unverified-firmware"]).contains("need --fwup-device"));
        assert!(err(&["--url", "x", "--uboot-env", "e"]).contains("--uboot-env-size"));
        assert!(err(&["--url", "x", "--uboot-env-size", "64"]).contains("need --uboot-env"));
        let env = ["--uboot-env", "e", "--uboot-env-size", "64"];
        assert!(err(&[&fwup[..], &env, &["--metadata-file", "m"]].concat()).contains("give one"));
        assert!(err(&[&fwup[..], &["--uboot-env-offset", "-1"]].concat()).contains("whole number"));
    }

    #[test]
    fn pkcs11_flags_make_a_token_key_and_refuse_a_pem_key_beside_it() {
        let base = [
            "--url",
            "x",
            "--cert",
            "c.pem",
            "--pkcs11-uri",
            "pkcs11:object=k",
        ];
        let o = parse(&argv(
            &[
                &base[..],
                &["--pkcs11-module", "/m.so", "--pkcs11-pin-env", "PIN"],
            ]
            .concat(),
        ))
        .unwrap();
        let p11 = o.pkcs11.expect("a token key");
        assert_eq!(p11.uri, "pkcs11:object=k");
        assert_eq!(p11.module, Some(PathBuf::from("/m.so")));
        assert!(matches!(p11.pin, Some(nerves_hub_channel::Pkcs11Pin::Env(ref n)) if n == "PIN"));
        let err = |a: &[&str]| parse(&argv(a)).unwrap_err();
        assert!(err(&[&base[..], &["--key", "k.pem"]].concat()).contains("give one"));
        assert!(err(&["--url", "x", "--pkcs11-module", "/m.so"]).contains("need --pkcs11-uri"));
    }
}
