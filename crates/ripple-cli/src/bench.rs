//! `ripple bench URL`: a load generator whose every reply is checked.
//!
//! Modes: `echo` (C connections x pipeline P x size S), `broadcast` (publishers -> subscribers
//! on a broadcast endpoint, or on a channel of `ripple serve` over WebSocket, SSE or
//! long-polling) and `connect` (handshakes per second, server memory per connection). Each
//! opens its connections first, then measures; the summary is words or one JSON object.

mod broadcast;
mod channel;
mod connect;
mod connections;
mod echo;
mod http;
mod output;
mod payload;
mod poll;
mod procfs;
mod schedule;
mod sse;
mod stats;
mod subscriber;
mod target;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use ripple::proto::frame::MAX_HEADER_LEN;
use ripple::{ClientBuilder, Config};
use tokio::task::JoinSet;
use tokio::time::Instant;
use url::Url;

use crate::client_options::{ClientArgs, parse_url, with_compression};
use crate::units::{parse_duration, parse_size};
use connections::Opener;
use http::HttpTarget;
use output::{Progress, Report, progress_wanted};
use payload::Verify;
use schedule::Schedule;
use stats::{Counter, Errors};

/// Exit statuses of `ripple bench`.
mod exit {
    /// The run completed without an error.
    pub(super) const OK: u8 = 0;
    /// Errors: lost, reordered or corrupted replies, failed connections.
    pub(super) const ERRORS: u8 = 1;
    /// Bad command line, or a non-loopback target without --allow-remote.
    pub(super) const USAGE: u8 = 2;
}

/// The run length when neither --duration nor --count is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// The most bytes the generator reads at once.
const READ_CHUNK: usize = 256 * 1024;
/// The same in echo mode: with 256 KiB, the read buffers of many connections fell out of the
/// cache and a 64 KiB echo cost the generator about 2 % more CPU.
const ECHO_READ_CHUNK: usize = 64 * 1024;
/// The most bytes of a window an echo connection writes at once: four 64 KiB messages. A
/// larger window is written in pieces, so that the masked copies it waits in stay bounded.
const ECHO_WRITE_BATCH: usize = 4 * (64 * 1024 + MAX_HEADER_LEN);
/// How often the progress bar moves.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

const BENCH_HELP: &str = "\
Modes:
  echo       -c connections, each with -p messages in flight, of -s bytes; every echo is
             checked (type, length, order, and every byte unless --verify stamp). Latency:
             send to echo.
  broadcast  --subscribers connect first, then --publishers; every published message must
             reach every subscriber (in order, intact). -p is each publisher's window of
             messages not yet received by all. Works on a raw broadcast endpoint such as the
             chat_server example, which may prefix each message (e.g. '[12:00:00] '), or,
             with --channel NAME, on `ripple serve`'s /ws channel protocol (subscribe and
             publish commands; deliveries are `message` pushes, whose offsets must follow
             each other). --transport sse or poll: subscribers use /sse (Server-Sent Events)
             or /poll (long-polling) instead, publishers stay on /ws. --rate R: publish R
             messages/s in all; a message held back by a full window counts from when
             it was due.
             Latency: send to each receive. messages = deliveries.
  connect    opens -c connections (-p connections handshaking at once); handshakes/s,
             handshake latency, and with --server-pid the server's memory per connection.

The run measures for --duration (default 10 s when no --count) and/or --count messages,
after --warmup. Only loopback targets unless --allow-remote. One tokio worker thread unless
--threads. With --server-pid the server's CPU time per message is read from /proc and shown
beside the generator's own.

Exit status: 0 no errors, 1 errors (lost/reordered/corrupted replies, failed connections),
2 usage error or refused target.";

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    Echo,
    Broadcast,
    Connect,
}

/// How broadcast subscribers receive a channel's messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Transport {
    /// WebSocket: `/ws`, `subscribe` command
    #[default]
    Ws,
    /// Server-Sent Events: a `GET /sse?channel=NAME` stream each
    Sse,
    /// Long-polling: `GET /poll?channel=NAME&cursor=C` in a loop on a kept-alive connection
    Poll,
}

impl Transport {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Sse => "sse",
            Self::Poll => "poll",
        }
    }
}

/// Arguments of `ripple bench`.
#[derive(Args, Debug)]
#[command(after_help = BENCH_HELP)]
pub(crate) struct BenchArgs {
    /// ws:// or wss:// URL of the server (ws:// is assumed when there is no scheme)
    #[arg(value_parser = parse_url)]
    url: Url,

    /// What to measure
    #[arg(short, long, value_enum, default_value_t = Mode::Echo)]
    mode: Mode,

    /// Connections (echo, connect)
    #[arg(short = 'c', long, default_value_t = 50)]
    connections: usize,

    /// Messages in flight per connection (echo), per publisher (broadcast); handshakes in
    /// flight (connect)
    #[arg(short, long, default_value_t = 16)]
    pipeline: usize,

    /// Message size (e.g. 32, 64k)
    #[arg(short, long, value_name = "BYTES", value_parser = parse_size, default_value = "32")]
    size: usize,

    /// Binary messages (default: text)
    #[arg(long)]
    binary: bool,

    /// Measure this long: 3, 500ms, 2m (default 10s unless --count)
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,

    /// Measure this many messages in all (connect: connections)
    #[arg(short = 'n', long)]
    count: Option<u64>,

    /// Echo: compare every byte of each echo (full), or its type, length, stamp and last
    /// bytes only (stamp)
    #[arg(long, value_enum, default_value_t = Verify::Full)]
    verify: Verify,

    /// Run unmeasured for this long first
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    warmup: Duration,

    /// Broadcast: subscribing connections
    #[arg(long, default_value_t = 50)]
    subscribers: usize,

    /// Broadcast: publishing connections
    #[arg(long, default_value_t = 1)]
    publishers: usize,

    /// Broadcast through `ripple serve`'s channel protocol (the /ws endpoint): subscribe to and
    /// publish on this channel instead of using a raw broadcast endpoint
    #[arg(long, value_name = "NAME")]
    channel: Option<String>,

    /// Broadcast on a channel: how subscribers receive (publishers always use /ws)
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    transport: Transport,

    /// Broadcast: publish this many messages per second in all (default: as fast as the
    /// windows allow)
    #[arg(long, value_name = "PER_SEC")]
    rate: Option<f64>,

    /// Read the server's CPU time (and, in connect mode, memory) from /proc/PID
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,

    /// Connect: wait this long after opening before reading the server's memory
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    settle: Duration,

    /// Tokio worker threads of the generator
    #[arg(short, long, default_value_t = 1)]
    threads: usize,

    /// Allow a target that is not on this machine
    #[arg(long)]
    allow_remote: bool,

    /// Print one JSON object instead of the summary
    #[arg(long)]
    json: bool,

    /// Never draw the progress bar
    #[arg(long)]
    no_progress: bool,

    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `ripple bench`; returns the exit status.
pub(crate) fn run(args: BenchArgs) -> anyhow::Result<u8> {
    if let Err(why) = args.check() {
        eprintln!("ripple bench: {why}");
        return Ok(exit::USAGE);
    }
    let runtime = match args.threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    let code = runtime.block_on(async {
        if !args.allow_remote
            && let Err(why) = target::check_loopback(&args.url).await
        {
            eprintln!("ripple bench: {why}");
            return Ok(exit::USAGE);
        }
        raise_descriptor_limit();
        let plan = Plan::new(&args)?;
        let report = match args.mode {
            Mode::Echo => echo::run(&plan).await?,
            Mode::Broadcast => broadcast::run(&plan).await?,
            Mode::Connect => connect::run(&plan).await?,
        };
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", report.text());
        }
        Ok::<u8, anyhow::Error>(if report.errors == 0 {
            exit::OK
        } else {
            exit::ERRORS
        })
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

impl BenchArgs {
    fn check(&self) -> Result<(), String> {
        let positive = [
            ("--connections", self.connections),
            ("--pipeline", self.pipeline),
            ("--threads", self.threads),
            ("--subscribers", self.subscribers),
            ("--publishers", self.publishers),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if self.duration.is_some_and(|d| d.is_zero()) || self.count == Some(0) {
            return Err("--duration and --count must be more than 0".into());
        }
        if self.mode == Mode::Broadcast && self.publishers > u32::MAX as usize {
            return Err("too many publishers".into());
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return Err("--rate must be a positive number of messages per second".into());
        }
        if self.rate.is_some() && self.mode != Mode::Broadcast {
            return Err("--rate applies to broadcast mode".into());
        }
        if self.transport != Transport::Ws {
            if self.mode != Mode::Broadcast || self.channel.is_none() {
                return Err("--transport sse and poll need -m broadcast --channel NAME".into());
            }
            if self.url.scheme() != "ws" {
                return Err("--transport sse and poll speak plain HTTP: give a ws:// URL".into());
            }
        }
        Ok(())
    }
}

/// Everything a mode needs, resolved from the arguments.
pub(crate) struct Plan {
    pub(crate) url: Url,
    pub(crate) target: String,
    pub(crate) builder: ClientBuilder,
    pub(crate) connections: usize,
    pub(crate) pipeline: usize,
    pub(crate) size: usize,
    pub(crate) binary: bool,
    pub(crate) duration: Option<Duration>,
    pub(crate) count: Option<u64>,
    pub(crate) warmup: Duration,
    pub(crate) verify: Verify,
    pub(crate) subscribers: usize,
    pub(crate) publishers: usize,
    pub(crate) channel: Option<String>,
    pub(crate) transport: Transport,
    /// Broadcast: publish this many messages per second in all.
    pub(crate) rate: Option<f64>,
    /// Where SSE and long-poll subscribers send their requests.
    pub(crate) http: Option<Arc<HttpTarget>>,
    pub(crate) server_pid: Option<u32>,
    pub(crate) settle: Duration,
    pub(crate) threads: usize,
    pub(crate) show_progress: bool,
}

impl Plan {
    fn new(args: &BenchArgs) -> anyhow::Result<Self> {
        // Replies are checked by the generator, so keepalive would only add noise; compression
        // is off unless asked for, so that the figures are about framing.
        let mut config = Config::default()
            .max_message_size((args.size + 1024).max(1 << 20))
            .keepalive(None, None);
        config.read_chunk = READ_CHUNK;
        if args.mode == Mode::Echo {
            // Echo connections are never idle for long. Keeping their buffers saves a fresh
            // allocation, and its page faults, per 64 KiB echo (a third of the generator's
            // CPU), and a window of messages goes out in one write, up to ECHO_WRITE_BATCH
            // (the default high-water mark, 32 KiB, flushed after every 64 KiB message).
            let window = args.pipeline.saturating_mul(args.size + MAX_HEADER_LEN);
            let high = window.clamp(config.write_buffer_high, ECHO_WRITE_BATCH);
            config = config.release_idle_buffers(false).write_buffer_high(high);
            config.read_chunk = ECHO_READ_CHUNK;
        }
        let config = with_compression(config, args.client.compression(false));
        let builder = args
            .client
            .builder(&args.url, config)
            .context("building the client")?;
        let duration = match (args.duration, args.count) {
            (None, None) => Some(DEFAULT_DURATION),
            (duration, _) => duration,
        };
        let http = match args.transport {
            Transport::Ws => None,
            Transport::Sse | Transport::Poll => Some(Arc::new(
                HttpTarget::new(&args.url, &args.client).map_err(anyhow::Error::msg)?,
            )),
        };
        let host = args.url.host_str().unwrap_or("?");
        let port = args.url.port_or_known_default().unwrap_or(80);
        Ok(Self {
            url: args.url.clone(),
            target: format!("{host}:{port}"),
            builder,
            connections: args.connections,
            pipeline: args.pipeline,
            size: args.size,
            binary: args.binary && args.channel.is_none(),
            duration,
            count: args.count,
            warmup: args.warmup,
            verify: args.verify,
            subscribers: args.subscribers,
            publishers: args.publishers,
            channel: args.channel.clone(),
            transport: args.transport,
            rate: args.rate,
            http,
            server_pid: args.server_pid,
            settle: args.settle,
            threads: args.threads,
            show_progress: !args.no_progress && progress_wanted(),
        })
    }

    /// An opener for this plan's connections, `concurrency` handshakes at a time.
    pub(crate) fn opener<'a>(&'a self, progress: &'a Progress, concurrency: usize) -> Opener<'a> {
        Opener {
            builder: &self.builder,
            target: &self.target,
            concurrency,
            progress,
        }
    }

    /// The report's fields that come from the plan.
    pub(crate) fn report(&self, mode: &'static str) -> Report {
        Report {
            mode,
            url: self.url.to_string(),
            threads: self.threads,
            ..Report::default()
        }
    }
}

/// Counters a measuring run shares with the progress bar.
pub(crate) struct Live<'a> {
    pub(crate) schedule: &'a Schedule,
    pub(crate) count: Option<u64>,
    pub(crate) messages: &'a Counter,
    pub(crate) errors: &'a Errors,
}

/// Waits for every task, moving the progress bar meanwhile; returns their results in the
/// order they finish (a task that panicked counts as an error).
pub(crate) async fn follow<T: 'static>(
    tasks: &mut JoinSet<T>,
    progress: &Progress,
    live: &Live<'_>,
) -> Vec<T> {
    let length = match (live.count, live.schedule.deadline) {
        (Some(count), _) => count,
        (None, Some(deadline)) => millis(deadline - live.schedule.measure_from),
        (None, None) => 0,
    };
    progress.set_length(length);
    let mut results = Vec::with_capacity(tasks.len());
    let mut tick = tokio::time::interval(PROGRESS_TICK);
    let mut last = (Instant::now(), live.messages.get());
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(result)) => results.push(result),
                Some(Err(err)) => live.errors.add(1, format!("task failed: {err}")),
                None => break,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let messages = live.messages.get();
                let rate = (messages - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
                last = (now, messages);
                let position = match live.count {
                    Some(_) => messages,
                    None => millis(now.saturating_duration_since(live.schedule.measure_from)),
                };
                let phase = if now < live.schedule.measure_from { "warming up, " } else { "" };
                let errors = live.errors.count();
                progress.update(position, format!("{phase}{rate:.0} msg/s, {errors} errors"));
            }
        }
    }
    progress.finish();
    results
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Many connections need many descriptors: raise the soft limit to the hard one.
fn raise_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::debug!("raising the descriptor limit: {err}");
    }
}

/// Seconds from `from` to `to`, at least a millisecond (for rates).
pub(crate) fn seconds_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64().max(1e-3)
}
