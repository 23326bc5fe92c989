//! `ripple`: the Ripple WebSocket toolkit's command line.
//!
//! Each subcommand lives in its own module with its own clap `Args`; this file only routes.

mod bench;
mod client_options;
mod connect;
mod failure;
mod hex;
mod logging;
mod serve;
mod style;
mod token;
mod units;

use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};

/// Ripple: real-time WebSocket server, client and load generator.
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
    /// Run the real-time server: /echo, /chat, /ws channels, HTTP API, metrics, the page
    Serve(serve::ServeArgs),
    /// Mint a development token signed with the server's secret
    Token(token::TokenArgs),
    /// Open a WebSocket connection: interactive on a terminal, one line per message in a pipe
    Connect(connect::ConnectArgs),
    /// Load-test a WebSocket server: echo, broadcast fan-out or handshakes, with checked replies
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, matches!(cli.command, Command::Serve(_)));
    let result = match cli.command {
        Command::Serve(args) => serve::main(args),
        Command::Token(args) => token::run(&args).map(|()| 0),
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
