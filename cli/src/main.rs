//! `nhc`: a NervesHub device from the command line.
//!
//! `nhc agent --config FILE` is the daemon that makes a Linux board a
//! NervesHub device; `nhc device ...` runs one device in the foreground,
//! printing its events; `nhc simulate --devices N ...` runs N devices with
//! distinct identities in one process, for load-testing a server.

mod agent;
mod agent_config;
mod args;
mod behaviour;
mod connection;
mod device_cmd;
mod device_runner;
mod event_output;
mod file_command_sink;
mod fleet_device;
mod fleet_metrics;
mod logger;
mod metrics;
mod metrics_http;
mod shard;
mod signals;
mod simulate;
mod uboot_env;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "nhc",
    version,
    about = "A NervesHub device from the command line"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The daemon: a NervesHub device configured by a TOML file
    Agent(agent::AgentArgs),
    /// One device in the foreground, printing its events and applying updates
    Device(args::DeviceArgs),
    /// N devices with distinct identities in one process, for load tests
    Simulate(args::SimulateArgs),
}

fn main() -> ExitCode {
    // Usage errors exit with 2, `--help` and `--version` with 0.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(a) => match agent::run(a) {
            Ok(()) => Ok(()),
            Err(agent::AgentError::Config(e)) => Err((2, e)),
            Err(agent::AgentError::Run(e)) => Err((1, e)),
        },
        Command::Device(d) => {
            logger::init(log::LevelFilter::Warn);
            device_cmd::run(d).map_err(|e| (2, e))
        }
        Command::Simulate(s) => {
            logger::init(log::LevelFilter::Warn);
            simulate::run(s).map_err(|e| (2, e))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("nhc: {e}");
            ExitCode::from(code)
        }
    }
}
