//! `starling`: the MQTT broker and its tools, one binary with a subcommand each.

mod bench;
mod broker;
mod logging;
mod passwd;
mod process;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc, not the system's malloc: every connection holds a few
/// allocations for its whole life (its task, its socket's readiness, its
/// session), tokio aligns the first two to 128 bytes, and jemalloc serves
/// them at their size where glibc malloc adds a header and alignment padding
/// to each: about 270 bytes less per idle connection (`bench/RESULTS.md`,
/// session 5).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Generate load against an MQTT broker and measure it (`-h` is the host; help is --help).
    Bench(bench::BenchArgs),
    /// Manage password files, as mosquitto_passwd does (`-c`, `-b`, `-D`, `-U`, `-H`, `-I`).
    Passwd(passwd::PasswdArgs),
    /// Publish one message, a file or stdin lines, as mosquitto_pub does (`-h` is the host; help is --help).
    Pub(tools::ToolArgs),
    /// Subscribe and print messages, as mosquitto_sub does (`-h` is the host; help is --help).
    Sub(tools::ToolArgs),
    /// Send a request and print the response, as mosquitto_rr does (`-h` is the host; help is --help).
    Rr(tools::ToolArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Broker(args) => broker::main(args),
        Command::Bench(args) => bench::main(args),
        Command::Passwd(args) => passwd::main(args),
        Command::Pub(args) => tools::pub_main(args),
        Command::Sub(args) => tools::sub_main(args),
        Command::Rr(args) => tools::rr_main(args),
    }
}
