//! `ripple`: the Ripple WebSocket toolkit's command line.
//!
//! Each subcommand lives in its own module with its own clap `Args`; this file only routes.

mod bench;
mod client_options;
mod connect;
mod failure;
mod hex;
mod logging;
mod style;
mod units;

use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};

/// Ripple: WebSocket client, load generator and (soon) server.
#[derive(Parser, Debug)]
#[command(name = "ripple", version, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides it
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open a WebSocket connection: interactive on a terminal, one line per message in a pipe
    Connect(connect::ConnectArgs),
    /// Load-test a WebSocket server: echo, broadcast fan-out or handshakes, with checked replies
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    let result = match cli.command {
        Command::Connect(args) => connect::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("ripple: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
