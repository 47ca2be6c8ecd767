//! The agent's configuration file (TOML; see `examples/agent/agent.toml`),
//! checked whole before anything starts. A bad file gets one message naming
//! the file, the line and the key, and exit code 2.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::args::Extension;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// off, error, warn, info, debug or trace (default info).
    pub log_level: Option<LogLevel>,
    /// json (one object per event on stdout) or log (records on stderr,
    /// the default under systemd).
    pub output: Option<OutputKind>,
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub backoff: BackoffSection,
    #[serde(default)]
    pub device: DeviceSection,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub update: Update,
    #[serde(default)]
    pub console: ConsoleSection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    Json,
    Log,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub url: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The key on a PKCS#11 token instead of `key` (no PIN value here: a
    /// file or an environment variable holds it).
    pub pkcs11_uri: Option<String>,
    pub pkcs11_module: Option<PathBuf>,
    pub pkcs11_pin_file: Option<PathBuf>,
    pub pkcs11_pin_env: Option<String>,
    pub identifier: Option<String>,
    /// The NH1 key (`nhp_...` product key or device key).
    pub shared_secret_key: Option<String>,
    /// The NH1 secret, or the file holding it (keeps it out of this file).
    pub shared_secret: Option<String>,
    pub shared_secret_file: Option<PathBuf>,
    pub clock_offset: Option<i64>,
    pub stable_after: Option<u64>,
    /// Seconds, or "never".
    pub device_rejoin_after_close: Option<SecsOrNever>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SecsOrNever {
    Secs(u64),
    Word(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffSection {
    pub initial: Option<f64>,
    pub max: Option<f64>,
    pub jitter: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSection {
    pub api_version: Option<String>,
    /// Default: `fwup --version` when fwup runs.
    pub fwup_version: Option<String>,
    #[serde(default)]
    pub scripts: bool,
    #[serde(default)]
    pub extensions: Vec<Extension>,
    /// Exit status 0 means the running firmware is good: `firmware_validated`
    /// is sent. Polled while it fails.
    pub validate_command: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Run this `fw_printenv` (a command, e.g. "fw_printenv").
    pub fw_printenv: Option<String>,
    /// A file of `fw_printenv` output.
    pub file: Option<PathBuf>,
    /// A binary U-Boot environment (with `uboot_env_size`).
    pub uboot_env: Option<PathBuf>,
    pub uboot_env_offset: Option<u64>,
    pub uboot_env_size: Option<usize>,
    #[serde(default)]
    pub uboot_env_redundant: bool,
    /// Keys added or overriding the source's (or the only source).
    #[serde(default, rename = "static")]
    pub static_values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Fwup,
    File,
    Command,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// fwup, file or command; no sink: updates are ignored.
    pub sink: Option<SinkKind>,
    /// fwup: the binary (default "fwup").
    pub fwup: Option<String>,
    pub fwup_device: Option<PathBuf>,
    pub fwup_task: Option<String>,
    #[serde(default)]
    pub fwup_public_keys: Vec<String>,
    #[serde(default)]
    pub allow_unverified_firmware: bool,
    /// file: where `<uuid>.fw` is stored.
    pub firmware_dir: Option<PathBuf>,
    /// file: run with the file's path as last argument (optional).
    pub install_command: Option<Vec<String>>,
    /// command: reads the image on its stdin.
    pub command: Option<Vec<String>>,
    /// After a successful update (once `rebooting` is sent) and when the
    /// server asks for a reboot.
    pub reboot_command: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    #[serde(default)]
    pub enabled: bool,
    pub shell: Option<Vec<String>>,
    pub inactivity_timeout: Option<u64>,
    /// Offer the local_shell extension (NervesHub's Local Shell tab), with
    /// `shell` and `inactivity_timeout`; independent of `enabled`.
    #[serde(default)]
    pub local_shell: bool,
    /// Console file transfer: browser uploads land here (off when unset).
    pub upload_dir: Option<std::path::PathBuf>,
    /// Largest upload in bytes (default 10 MiB, as the download limit).
    pub max_upload_size: Option<u64>,
}

/// A bad configuration: where and why.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads and checks the file.
pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

pub fn parse(text: &str, name: &str) -> Result<AgentConfig, ConfigError> {
    let config: AgentConfig = toml::from_str(text).map_err(|e| {
        let message = e.message().trim_end().to_owned();
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                let key = key_at(text, line)
                    .map(|k| format!(", key `{k}`"))
                    .unwrap_or_default();
                ConfigError(format!("{name}: line {line}{key}: {message}"))
            }
            None => ConfigError(format!("{name}: {message}")),
        }
    })?;
    config.check().map_err(|(key, message)| {
        let section = key.rsplit_once('.').map(|(s, _)| s);
        let line = line_of(text, key)
            .or_else(|| section.and_then(|s| line_of(text, s)))
            .map(|l| format!(" line {l},"))
            .unwrap_or_default();
        ConfigError(format!("{name}:{line} key `{key}`: {message}"))
    })?;
    Ok(config)
}

/// The dotted key set on `line` (1-based), from the section header above it.
fn key_at(text: &str, line: usize) -> Option<String> {
    let mut section = String::new();
    for (n, l) in text.lines().enumerate() {
        let l = l.trim();
        if let Some(name) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            if n + 1 == line {
                return Some(section);
            }
        } else if n + 1 == line {
            let key = l.split('=').next()?.trim();
            if key.is_empty() || key.starts_with('#') {
                return None;
            }
            return Some(match section.as_str() {
                "" => key.to_owned(),
                s => format!("{s}.{key}"),
            });
        }
    }
    None
}

/// The line (1-based) that sets the dotted `key`, when the file sets it.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let mut section = String::new();
    for (n, l) in text.lines().enumerate() {
        let l = l.trim();
        if let Some(name) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            if section == key {
                return Some(n + 1);
            }
            continue;
        }
        if let Some((k, _)) = l.split_once('=') {
            let full = match section.as_str() {
                "" => k.trim().to_owned(),
                s => format!("{s}.{}", k.trim()),
            };
            if full == key {
                return Some(n + 1);
            }
        }
    }
    None
}

type Check = Result<(), (&'static str, String)>;

impl AgentConfig {
    /// What serde cannot say: combinations and values.
    fn check(&self) -> Check {
        let s = &self.server;
        if s.shared_secret.is_some() && s.shared_secret_file.is_some() {
            return Err((
                "server.shared_secret_file",
                "give shared_secret or shared_secret_file, not both".into(),
            ));
        }
        if let Some(SecsOrNever::Word(w)) = &s.device_rejoin_after_close {
            if w != "never" {
                return Err((
                    "server.device_rejoin_after_close",
                    format!("wants seconds or \"never\", got {w:?}"),
                ));
            }
        }
        if let Some(SecsOrNever::Secs(0)) = &s.device_rejoin_after_close {
            return Err((
                "server.device_rejoin_after_close",
                "wants seconds > 0 or \"never\"".into(),
            ));
        }
        let m = &self.metadata;
        let sources = [
            m.fw_printenv.is_some(),
            m.file.is_some(),
            m.uboot_env.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err((
                "metadata",
                "give one of fw_printenv, file and uboot_env".into(),
            ));
        }
        if m.uboot_env.is_some() != m.uboot_env_size.is_some() {
            return Err((
                "metadata.uboot_env_size",
                "uboot_env and uboot_env_size go together".into(),
            ));
        }
        let u = &self.update;
        let non_empty = |c: &Option<Vec<String>>| c.as_ref().is_none_or(|c| !c.is_empty());
        for (key, command) in [
            ("update.install_command", &u.install_command),
            ("update.command", &u.command),
            ("update.reboot_command", &u.reboot_command),
            ("device.validate_command", &self.device.validate_command),
            ("console.shell", &self.console.shell),
        ] {
            if !non_empty(command) {
                return Err((key, "the command is empty".into()));
            }
        }
        match u.sink {
            Some(SinkKind::Fwup) if u.fwup_device.is_none() => {
                return Err((
                    "update.fwup_device",
                    "sink \"fwup\" needs fwup_device".into(),
                ))
            }
            Some(SinkKind::File) if u.firmware_dir.is_none() => {
                return Err((
                    "update.firmware_dir",
                    "sink \"file\" needs firmware_dir".into(),
                ))
            }
            Some(SinkKind::Command) if u.command.is_none() => {
                return Err(("update.command", "sink \"command\" needs command".into()))
            }
            _ => {}
        }
        for key in &u.fwup_public_keys {
            nerves_hub_channel::nerves_hub::fwup_keys::validate_key(key)
                .map_err(|e| ("update.fwup_public_keys", e.to_string()))?;
        }
        if self.console.inactivity_timeout == Some(0) {
            return Err(("console.inactivity_timeout", "wants seconds > 0".into()));
        }
        if self.console.max_upload_size == Some(0) {
            return Err(("console.max_upload_size", "wants bytes > 0".into()));
        }
        if self.console.max_upload_size.is_some() && self.console.upload_dir.is_none() {
            return Err(("console.max_upload_size", "needs upload_dir".into()));
        }
        if self
            .console
            .upload_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(("console.upload_dir", "the directory is empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_section() {
        let c = parse(
            r#"
log_level = "debug"
output = "log"
[server]
url = "wss://h/device-socket/websocket"
identifier = "board-1"
shared_secret_key = "nhp_x"
shared_secret = "s"
device_rejoin_after_close = "never"
[backoff]
initial = 0.5
[device]
extensions = ["health"]
validate_command = ["true"]
[metadata.static]
nerves_fw_version = "1.0.0"
[update]
sink = "command"
command = ["sh", "-c", "cat > /tmp/fw"]
reboot_command = ["true"]
[console]
enabled = true
upload_dir = "/data/nerves-hub"
max_upload_size = 4096
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(
            c.console.upload_dir.as_deref(),
            Some(std::path::Path::new("/data/nerves-hub"))
        );
        assert_eq!(c.console.max_upload_size, Some(4096));
        assert_eq!(c.log_level, Some(LogLevel::Debug));
        assert_eq!(c.update.sink, Some(SinkKind::Command));
        assert_eq!(c.device.extensions, [Extension::Health]);
        assert_eq!(c.metadata.static_values["nerves_fw_version"], "1.0.0");
        assert!(c.console.enabled);
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../../examples/agent/agent.toml");
        let c = parse(text, "agent.toml").unwrap();
        assert_eq!(c.update.sink, Some(SinkKind::Fwup));
        assert_eq!(c.metadata.fw_printenv.as_deref(), Some("fw_printenv"));
    }

    #[test]
    fn a_bad_file_names_the_line_and_the_key() {
        let e = parse("[server]\nurl = \"u\"\nidentifer = \"x\"\n", "a.toml").unwrap_err();
        assert!(
            e.0.starts_with("a.toml: line 3, key `server.identifer`"),
            "{e}"
        );
        assert!(e.0.contains("unknown field"), "{e}");
        let e = parse("[update]\nsink = \"fwup\"\n", "b.toml").unwrap_err();
        assert_eq!(
            e.0,
            "b.toml: line 1, key `update.fwup_device`: sink \"fwup\" needs fwup_device"
        );
        let e = parse("[backoff]\n\ninitial = \"soon\"\n", "c.toml").unwrap_err();
        assert!(
            e.0.starts_with("c.toml: line 3, key `backoff.initial`"),
            "{e}"
        );
        let e = parse("[update]\nreboot_command = []\n", "d.toml").unwrap_err();
        assert!(
            e.0.starts_with("d.toml: line 2, key `update.reboot_command`: the command is empty"),
            "{e}"
        );
        let e = parse("[update]\nsink = \"tape\"\n", "e.toml").unwrap_err();
        assert!(e.0.starts_with("e.toml: line 2, key `update.sink`"), "{e}");
    }
}
