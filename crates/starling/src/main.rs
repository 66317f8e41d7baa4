//! `starling`: the MQTT broker and its tools, one binary with a subcommand each.

mod broker;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Starling: an MQTT 3.1, 3.1.1 and 5.0 broker and its tools.
#[derive(Debug, Parser)]
#[command(name = "starling", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker (Mosquitto-compatible flags and configuration).
    Broker(broker::BrokerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Broker(args) => broker::main(args),
    }
}
