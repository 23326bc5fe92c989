//! `ripple connect URL`: an interactive client on a terminal, a line-per-message filter in a
//! pipe.

mod commands;
mod link;
mod pipe;
mod reconnect;
mod render;
mod repl;

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use ripple::{ClientBuilder, Config, WebSocket};
use tokio::time::Instant;
use url::Url;

use crate::client_options::{ClientArgs, parse_url, with_compression};
use crate::failure::describe_open_error;
use crate::units::{parse_duration, parse_size};
use link::Ending;
use reconnect::Backoff;

/// Exit statuses of `ripple connect`.
pub(crate) mod exit {
    /// The connection closed cleanly: we closed it, or the server did with 1000 (or no code).
    pub(crate) const OK: u8 = 0;
    /// The connection could not be opened: refused, DNS, TLS, handshake rejected or timed out.
    pub(crate) const CONNECT: u8 = 1;
    /// Bad command line.
    pub(crate) const USAGE: u8 = 2;
    /// The server closed with another code, or the connection failed (1006, protocol error,
    /// keepalive timeout).
    pub(crate) const CLOSED: u8 = 3;
}

const EXIT_STATUS_HELP: &str = "\
Interactive when stdin is a terminal (type /help there); otherwise each input line is sent as
one message and each received message is printed as one line (text with line breaks escaped
as \\n, binary as hex). At the end of input: wait for the server's pong and then until it has
been quiet for --linger, close with 1000 and wait for the server's close.

Exit status:
  0  closed cleanly: by us (end of input, /close, /quit), or by the server with 1000
  1  could not connect: refused, DNS, TLS failure, handshake rejected (the HTTP status and body
     are printed), timeout
  2  usage error
  3  closed by the server with another code (printed), or the connection failed (abnormal
     closure 1006, protocol error, keepalive timeout)";

/// Arguments of `ripple connect`.
#[derive(Args, Debug)]
#[command(after_help = EXIT_STATUS_HELP)]
pub(crate) struct ConnectArgs {
    /// ws:// or wss:// URL (ws:// is assumed when there is no scheme)
    #[arg(value_parser = parse_url)]
    url: Url,

    #[command(flatten)]
    client: ClientArgs,

    /// Send input lines as binary messages (the line's bytes)
    #[arg(long)]
    binary: bool,

    /// Largest message accepted from the server (e.g. 64k, 16MiB)
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "16MiB")]
    max_size: usize,

    /// Keepalive: ping this often, give up when no pong comes within the same time (0: off)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "20s")]
    ping_interval: Duration,

    /// Reconnect with backoff (0.5 s doubling to 30 s) when the connection fails or the server
    /// closes it
    #[arg(long)]
    reconnect: bool,

    /// Pipe mode: at the end of input, wait until the server has been quiet this long (0: close
    /// at once)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "100ms")]
    linger: Duration,

    /// Interactive mode: start with JSON pretty-printing on (toggle with /json)
    #[arg(long)]
    json: bool,
}

/// Runs `ripple connect`; returns the exit status.
pub(crate) fn run(args: ConnectArgs) -> anyhow::Result<u8> {
    let connector = match Connector::new(&args) {
        Ok(connector) => connector,
        Err(err) => {
            eprintln!("ripple: {err:#}");
            return Ok(exit::USAGE);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let interactive = std::io::stdin().is_terminal();
    let code = runtime.block_on(async {
        if interactive {
            repl::run(&args, &connector).await
        } else {
            pipe::run(&args, &connector).await
        }
    });
    // Nothing left to wait for (a blocked stdin read, for one).
    runtime.shutdown_background();
    code
}

/// Opens connections with the command line's options.
pub(crate) struct Connector {
    url: Url,
    builder: ClientBuilder,
    close_timeout: Duration,
}

impl Connector {
    fn new(args: &ConnectArgs) -> anyhow::Result<Self> {
        let keepalive = (!args.ping_interval.is_zero()).then_some(args.ping_interval);
        let config = Config::default()
            .max_message_size(args.max_size)
            .keepalive(keepalive, keepalive);
        let config = with_compression(config, args.client.compression(true));
        let close_timeout = config.close_timeout;
        Ok(Self {
            url: args.url.clone(),
            builder: args.client.builder(&args.url, config)?,
            close_timeout,
        })
    }

    async fn open(&self) -> Result<WebSocket, String> {
        self.builder
            .clone()
            .connect()
            .await
            .map_err(|err| describe_open_error(&self.target(), &err))
    }

    /// `host:port`, for messages.
    fn target(&self) -> String {
        let host = self.url.host_str().unwrap_or("?");
        match self.url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

/// What differs between the interactive and the pipe client.
pub(crate) trait Mode {
    /// Runs one open connection until it ends.
    async fn session(&mut self, ws: WebSocket, attempt: u32) -> Ending;
    /// Tells the user something went wrong (or what happens next).
    async fn report(&mut self, text: String);
    /// Waits before reconnecting; `false` when the user chose to stop meanwhile.
    async fn pause(&mut self, delay: Duration) -> bool;
}

/// Connects, runs sessions, and with `--reconnect` starts over after each that the user did
/// not end. Returns the exit status.
pub(crate) async fn run_sessions(
    mode: &mut impl Mode,
    connector: &Connector,
    reconnect: bool,
) -> u8 {
    let mut backoff = Backoff::default();
    let mut attempt = 1;
    loop {
        let status = match connector.open().await {
            Ok(ws) => {
                let started = Instant::now();
                let ending = mode.session(ws, attempt).await;
                if !ending.chosen() {
                    mode.report(ending.describe()).await;
                }
                if ending.chosen() || !reconnect {
                    return ending.exit_code();
                }
                if started.elapsed() >= reconnect::HEALTHY {
                    backoff.reset();
                }
                ending.exit_code()
            }
            Err(why) => {
                mode.report(why).await;
                if !reconnect {
                    return exit::CONNECT;
                }
                exit::CONNECT
            }
        };
        let (delay, next) = backoff.next_delay();
        let seconds = delay.as_secs_f64();
        mode.report(format!("reconnecting in {seconds:.1} s (attempt {next})"))
            .await;
        if !mode.pause(delay).await {
            return status;
        }
        attempt = next;
    }
}
