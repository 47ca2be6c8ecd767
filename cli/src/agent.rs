//! `nhc agent`: the daemon that makes a Linux board a NervesHub device,
//! configured by a TOML file (`agent_config`) that flags and `NHC_*`
//! environment variables override, running the same loop as `nhc device`
//! (`device_runner`) with the configured sink and reboot command.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use log::LevelFilter;
use nerves_hub_channel::nerves_hub::console::ShellOptions;
use nerves_hub_channel::nerves_hub::update::{SinkSpec, UpdateOptions};
use nerves_hub_channel::nerves_hub::{Device, FirmwareMetadata, UpdatePolicy};

use crate::agent_config::{self, AgentConfig, LogLevel, OutputKind, SecsOrNever, SinkKind};
use crate::args::{ConnectionArgs, DeviceKnobs, Rejoin, SharedSecretArg, UbootEnv};
use crate::connection::{
    console_options, detect_fwup_version, device_config, file_transfer, pkcs11_signer,
};
use crate::device_cmd::fwup_sink;
use crate::device_runner::{self, Plan};
use crate::event_output::Output;
use crate::file_command_sink::FileThenCommand;

/// `nhc agent`.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The configuration file
    #[arg(
        long,
        value_name = "FILE",
        env = "NHC_CONFIG",
        default_value = "/etc/nerves-hub/agent.toml"
    )]
    pub config: PathBuf,
    /// Check the configuration file and exit (0: good, 2: bad)
    #[arg(long)]
    pub check: bool,
    /// Overrides log_level
    #[arg(long, value_enum, env = "NHC_LOG_LEVEL")]
    pub log_level: Option<LogLevel>,
    /// Overrides output: json (stdout) or log (stderr; the default under systemd)
    #[arg(long, value_enum, env = "NHC_OUTPUT")]
    pub output: Option<OutputKind>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// A bad configuration (exit code 2) or a failure while running (1).
pub enum AgentError {
    Config(String),
    Run(String),
}

pub fn run(a: AgentArgs) -> Result<(), AgentError> {
    let file = agent_config::load(&a.config).map_err(|e| AgentError::Config(e.0))?;
    let level = a.log_level.or(file.log_level).unwrap_or(LogLevel::Info);
    crate::logger::init(level_filter(level));
    let built = build(&a, &file).map_err(AgentError::Config)?;
    if a.check {
        println!("{}: ok", a.config.display());
        return Ok(());
    }
    let output = match a.output.or(file.output) {
        Some(OutputKind::Json) => Output::Json,
        Some(OutputKind::Log) => Output::Log,
        None if crate::logger::under_journald() => Output::Log,
        None => Output::Json,
    };
    crate::signals::install();
    let device = Device::new(built.config).map_err(|e| AgentError::Config(e.to_string()))?;
    let plan = Plan {
        output,
        firmware_dir: None,
        ignore_offers: built.no_sink,
        exit_after_update: false,
        deadline: None,
        reboot_command: file.update.reboot_command.clone(),
    };
    device_runner::run(&device, &plan).map_err(AgentError::Run)
}

struct Built {
    config: nerves_hub_channel::nerves_hub::DeviceConfig,
    no_sink: bool,
}

fn build(a: &AgentArgs, file: &AgentConfig) -> Result<Built, String> {
    let connection = connection(&a.connection, file)?;
    let d = &file.device;
    let knobs = DeviceKnobs {
        device_api_version: d.api_version.clone(),
        fwup_version: d.fwup_version.clone(),
        console: false,
        console_shell: None,
        local_shell: false,
        console_upload_dir: None,
        console_max_upload_size: None,
        scripts: d.scripts,
        extensions: d.extensions.clone(),
        backoff_initial: file.backoff.initial,
        backoff_max: file.backoff.max,
        backoff_jitter: file.backoff.jitter,
    };
    // The token key is opened here, so a bad pkcs11 setting names its key.
    let signer = pkcs11_signer(&connection, None)
        .map_err(|e| format!("key `server.{}`: {}", e.setting, e.message))?;
    let plain = ConnectionArgs {
        pkcs11_uri: None,
        pkcs11_module: None,
        pkcs11_pin_file: None,
        pkcs11_pin_env: None,
        ..connection
    };
    let mut config = device_config(&plain, &knobs, None, None)?;
    config.socket.tls.client_signer = signer;
    let c = &file.console;
    // The console shell and the local_shell extension run the same command.
    let mut shell = ShellOptions::default();
    if let Some(command) = &c.shell {
        shell.command = command.clone();
    }
    if let Some(secs) = c.inactivity_timeout {
        shell.inactivity_timeout = Duration::from_secs(secs);
    }
    if c.local_shell {
        config
            .extensions
            .get_or_insert_with(Default::default)
            .local_shell = Some(shell.clone());
    }
    if c.enabled {
        let upload = file_transfer(c.upload_dir.as_deref(), c.max_upload_size);
        config.console = Some(console_options(&config.device_api_version, shell, upload));
    }
    metadata(&mut config, file)?;
    if let Some(command) = &d.validate_command {
        config.firmware_validated = Some(validate_by_command(command.clone()));
    }
    let u = &file.update;
    let fwup = u.fwup.clone().unwrap_or_else(|| "fwup".into());
    if config.fwup_version.is_none() {
        config.fwup_version = detect_fwup_version(&fwup);
    }
    config.fwup_public_keys = u.fwup_public_keys.clone();
    config.allow_unverified_firmware = u.allow_unverified_firmware;
    let sink = match u.sink {
        None => None,
        Some(SinkKind::Fwup) => {
            let disk = u
                .fwup_device
                .as_ref()
                .ok_or("update.fwup_device is missing")?;
            let task = u.fwup_task.as_deref().unwrap_or("upgrade");
            Some(fwup_sink(fwup, &disk.display().to_string(), task))
        }
        Some(SinkKind::File) => {
            let dir = u
                .firmware_dir
                .as_ref()
                .ok_or("update.firmware_dir is missing")?;
            let install = u.install_command.clone().unwrap_or_default();
            Some(SinkSpec::Custom(Arc::new(FileThenCommand::new(
                dir, install,
            ))))
        }
        Some(SinkKind::Command) => {
            let command = u.command.as_ref().ok_or("update.command is missing")?;
            let (program, args) = command.split_first().ok_or("update.command is empty")?;
            Some(SinkSpec::Fwup {
                command: program.clone(),
                args: args.to_vec(),
            })
        }
    };
    let no_sink = sink.is_none();
    if let Some(sink) = sink {
        config.update_policy = UpdatePolicy::Auto(UpdateOptions::new(sink));
    }
    Ok(Built { config, no_sink })
}

/// The file's `[server]`, each field replaced by its flag or variable when given.
fn connection(flags: &ConnectionArgs, file: &AgentConfig) -> Result<ConnectionArgs, String> {
    let s = &file.server;
    let secret = match (&s.shared_secret, &s.shared_secret_file) {
        (Some(secret), _) => Some(secret.clone()),
        (None, Some(path)) => Some(read_secret(path)?),
        (None, None) => None,
    };
    let from_file = match (&s.shared_secret_key, secret) {
        (Some(key), Some(secret)) => Some(SharedSecretArg {
            key: key.clone(),
            secret,
        }),
        (None, None) => None,
        _ => {
            return Err(
                "key `server.shared_secret_key`: give it together with shared_secret or shared_secret_file"
                    .into(),
            )
        }
    };
    let rejoin = match &s.device_rejoin_after_close {
        Some(SecsOrNever::Secs(n)) => Some(Rejoin::After(Duration::from_secs(*n))),
        Some(SecsOrNever::Word(_)) => Some(Rejoin::Never),
        None => None,
    };
    let url = flags.url.clone().or_else(|| s.url.clone());
    if url.is_none() {
        return Err("key `server.url` is missing (or give --url / NHC_URL)".into());
    }
    Ok(ConnectionArgs {
        url,
        ca: flags.ca.clone().or_else(|| s.ca.clone()),
        cert: flags.cert.clone().or_else(|| s.cert.clone()),
        key: flags.key.clone().or_else(|| s.key.clone()),
        pkcs11_uri: flags.pkcs11_uri.clone().or_else(|| s.pkcs11_uri.clone()),
        pkcs11_module: flags
            .pkcs11_module
            .clone()
            .or_else(|| s.pkcs11_module.clone()),
        pkcs11_pin_file: flags
            .pkcs11_pin_file
            .clone()
            .or_else(|| s.pkcs11_pin_file.clone()),
        pkcs11_pin_env: flags
            .pkcs11_pin_env
            .clone()
            .or_else(|| s.pkcs11_pin_env.clone()),
        shared_secret: flags.shared_secret.clone().or(from_file),
        identifier: flags.identifier.clone().or_else(|| s.identifier.clone()),
        clock_offset: flags.clock_offset.or(s.clock_offset),
        stable_after: flags.stable_after.or(s.stable_after),
        device_rejoin_after_close: flags.device_rejoin_after_close.or(rejoin),
    })
}

fn read_secret(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "key `server.shared_secret_file`: cannot read {}: {e}",
            path.display()
        )
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!(
            "key `server.shared_secret_file`: {} is empty",
            path.display()
        ));
    }
    Ok(secret.to_owned())
}

/// `[metadata]`: one source (or none), then the static values on top.
fn metadata(
    config: &mut nerves_hub_channel::nerves_hub::DeviceConfig,
    file: &AgentConfig,
) -> Result<(), String> {
    let m = &file.metadata;
    let mut metadata = if let Some(command) = &m.fw_printenv {
        let text = run_fw_printenv(command)?;
        let cmd = command.clone();
        config.firmware_validated = Some(Arc::new(move || {
            let text = run_fw_printenv(&cmd).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("nerves_fw_validated="))
                .map(|v| v.trim() == "1")
        }));
        FirmwareMetadata::parse_env(&text)
            .map_err(|e| format!("key `metadata.fw_printenv`: {command}: {e}"))?
    } else if let Some(path) = &m.file {
        FirmwareMetadata::from_env_file(path)
            .map_err(|e| format!("key `metadata.file`: {}: {e}", path.display()))?
    } else if let (Some(path), Some(size)) = (&m.uboot_env, m.uboot_env_size) {
        let env = UbootEnv {
            path: path.clone(),
            offset: m.uboot_env_offset.unwrap_or(0),
            size,
            redundant: m.uboot_env_redundant,
        };
        config.firmware_validated = Some(env.validated_fn());
        env.metadata()
            .map_err(|e| format!("key `metadata.uboot_env`: {e}"))?
    } else {
        FirmwareMetadata::new()
    };
    for (k, v) in &m.static_values {
        metadata.set(k.clone(), v.clone());
    }
    config.metadata = metadata;
    Ok(())
}

fn run_fw_printenv(command: &str) -> Result<String, String> {
    let out = Command::new(command)
        .output()
        .map_err(|e| format!("key `metadata.fw_printenv`: cannot run {command}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "key `metadata.fw_printenv`: {command} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Validated once the command exits 0 (polled by the library while it does not).
fn validate_by_command(
    command: Vec<String>,
) -> nerves_hub_channel::nerves_hub::FirmwareValidatedFn {
    Arc::new(move || {
        let (program, args) = command.split_first()?;
        let status = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .ok()?;
        Some(status.success())
    })
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Off => LevelFilter::Off,
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    }
}
