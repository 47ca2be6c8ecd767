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
    pub devices: usize,
    pub prefix: String,
    pub duration: Option<Duration>,
    pub workers: usize,
    pub exit_when_joined: bool,
    /// `--device-rejoin-after-close`: `Some(None)` for "never"; `None`: the library's default.
    pub device_rejoin_after_close: Option<Option<Duration>>,
}

pub fn parse(argv: &[String]) -> Result<Options, String> {
    let mut o = Options {
        devices: 1,
        prefix: "nhc-sim-".into(),
        workers: 1,
        ..Options::default()
    };
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
            other => return Err(format!("unknown option {other:?} (see nhc --help)")),
        }
    }
    if o.url.is_empty() {
        return Err("--url is required".into());
    }
    if o.devices == 0 || o.workers == 0 {
        return Err("--devices and --workers must be at least 1".into());
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
    }
}
