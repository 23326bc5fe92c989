//! `echo-load`: the load generator of `scripts/bench-compare.sh`.
//!
//! `echo` mode measures messages per second and, crucially, the *server's* CPU time per message,
//! read from `/proc/PID/stat` before and after the measured phase. `idle` mode measures the
//! server's resident memory per idle connection. The client is Ripple itself (one runtime
//! thread), identical for every server, so only the server side differs between runs.

mod args;
mod payload;
mod procfs;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::SinkExt;
use ripple::{ClientBuilder, CloseCode, Config, Reader, WebSocket, Writer};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::{Mode, Options, USAGE};
use crate::payload::Payloads;
use crate::procfs::{CpuSample, vm_rss_kib};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The largest message the client accepts (the peers' limit too).
const MAX_MESSAGE: usize = 64 << 20;
/// How long closing the echo connections may take at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("echo-load: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let run = async {
        match options.mode {
            Mode::Echo => run_echo(&options).await,
            Mode::Idle => run_idle(&options).await,
        }
    };
    match tokio::time::timeout(options.timeout, run).await {
        Ok(Ok(result)) => {
            println!("{result}");
            ExitCode::SUCCESS
        }
        Ok(Err(err)) => {
            eprintln!("echo-load: {}: {err}", options.label);
            ExitCode::FAILURE
        }
        Err(_) => {
            let secs = options.timeout.as_secs_f64();
            eprintln!(
                "echo-load: {}: gave up after {secs} s (--timeout)",
                options.label
            );
            ExitCode::from(3)
        }
    }
}

/// Warm up, then measure one phase of pipelined echoes on every connection.
async fn run_echo(o: &Options) -> Result<String, BoxError> {
    let sockets = connect_all(o).await?;
    let conns = sockets
        .into_iter()
        .enumerate()
        .map(|(i, ws)| Conn::new(i, ws, o))
        .collect();
    let (conns, _) = run_phase(conns, o.warmup, None, o.pipeline).await?;
    let server_before = server_sample(o)?;
    let client_before = CpuSample::read("self")?;
    let start = Instant::now();
    let stop = o.duration.map(|d| start + d);
    let (conns, msgs) = run_phase(conns, o.messages, stop, o.pipeline).await?;
    let secs = start.elapsed().as_secs_f64();
    let server_after = server_sample(o)?;
    let client_after = CpuSample::read("self")?;
    close_all(conns).await;
    if msgs == 0 {
        return Err("no message was echoed in the measured phase".into());
    }
    let per_msg = |seconds: f64| seconds * 1e6 / msgs as f64;
    let secs_of = |ticks: u64| ticks as f64 / o.clk_tck;
    let ticks = |a: CpuSample, b: CpuSample| secs_of(b.ticks() - a.ticks());
    let sched = |a: CpuSample, b: CpuSample| (b.sched_ns - a.sched_ns) as f64 / 1e9;
    let mut line = format!(
        "RESULT mode=echo label={} conns={} pipeline={} size={} binary={} msgs={msgs} secs={secs:.4} \
         msgs_per_s={:.1} mb_per_s={:.2} client_cpu_us_per_msg={:.3}",
        o.label,
        o.connections,
        o.pipeline,
        o.size,
        u8::from(o.binary),
        msgs as f64 / secs,
        (msgs as f64 * o.size as f64) / 1e6 / secs,
        per_msg(ticks(client_before, client_after)),
    );
    if let (Some(a), Some(b)) = (server_before, server_after) {
        let cpu = ticks(a, b);
        line += &format!(
            " server_cpu_s={cpu:.2} server_cpu_us_per_msg={:.3} server_user_us_per_msg={:.3} \
             server_sys_us_per_msg={:.3} server_sched_us_per_msg={:.3} server_util={:.2}",
            per_msg(cpu),
            per_msg(secs_of(b.user_ticks - a.user_ticks)),
            per_msg(secs_of(b.system_ticks - a.system_ticks)),
            per_msg(sched(a, b)),
            cpu / secs,
        );
    }
    Ok(line)
}

/// Opens idle connections and reports how much the server's resident memory grew.
async fn run_idle(o: &Options) -> Result<String, BoxError> {
    let pid = o
        .server_pid
        .as_deref()
        .ok_or("idle mode needs --server-pid")?;
    let rss_before = vm_rss_kib(pid)?;
    let cpu_before = CpuSample::read(pid)?;
    let start = Instant::now();
    let sockets = connect_all(o).await?;
    let connect_secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(o.settle).await;
    let rss_after = vm_rss_kib(pid)?;
    let cpu_after = CpuSample::read(pid)?;
    let conns = sockets.len() as f64;
    let handshake_cpu = (cpu_after.ticks() - cpu_before.ticks()) as f64 / o.clk_tck;
    let line = format!(
        "RESULT mode=idle label={} conns={} rss_before_kib={rss_before} rss_after_kib={rss_after} \
         kib_per_conn={:.3} connect_secs={connect_secs:.2} server_cpu_us_per_handshake={:.1}",
        o.label,
        sockets.len(),
        (rss_after as f64 - rss_before as f64) / conns,
        handshake_cpu * 1e6 / conns,
    );
    // Dropping the sockets ends the TCP connections; the script stops the server next.
    drop(sockets);
    Ok(line)
}

fn server_sample(o: &Options) -> Result<Option<CpuSample>, BoxError> {
    let Some(pid) = &o.server_pid else {
        return Ok(None);
    };
    Ok(Some(CpuSample::read(pid)?))
}

/// Opens `o.connections` connections, at most `o.concurrency` handshakes at a time.
async fn connect_all(o: &Options) -> Result<Vec<WebSocket>, BoxError> {
    let mut config = Config::default()
        .max_message_size(MAX_MESSAGE)
        .keepalive(None, None);
    if !o.deflate {
        // The peers do not implement permessage-deflate: offering it would make only the
        // Ripple server compress.
        config = config.compression(None);
    }
    let mut sockets = Vec::with_capacity(o.connections);
    let mut pending = JoinSet::new();
    let mut started = 0;
    while sockets.len() < o.connections {
        while started < o.connections && pending.len() < o.concurrency {
            let builder = ClientBuilder::new(o.url.clone()).config(config.clone());
            pending.spawn(builder.connect());
            started += 1;
        }
        let Some(joined) = pending.join_next().await else {
            break;
        };
        let ws = joined?.map_err(|err| format!("connection {}: {err}", sockets.len()))?;
        sockets.push(ws);
    }
    Ok(sockets)
}

/// Runs `count` echoes (or until `stop`) on every connection at once; returns the connections
/// and the number of messages echoed.
async fn run_phase(
    conns: Vec<Conn>,
    count: u64,
    stop: Option<Instant>,
    pipeline: usize,
) -> Result<(Vec<Conn>, u64), BoxError> {
    let mut tasks = JoinSet::new();
    for conn in conns {
        tasks.spawn(conn.exchange(count, stop, pipeline));
    }
    let mut conns = Vec::with_capacity(tasks.len());
    let mut total = 0;
    while let Some(joined) = tasks.join_next().await {
        let (conn, echoed) = joined??;
        conns.push(conn);
        total += echoed;
    }
    Ok((conns, total))
}

/// Closes every connection (close handshake), bounded by [`CLOSE_GRACE`].
async fn close_all(conns: Vec<Conn>) {
    let mut tasks = JoinSet::new();
    for mut conn in conns {
        tasks.spawn(async move {
            let _ = conn.writer.close(CloseCode::NORMAL, "").await;
            while let Ok(Some(_)) = conn.reader.recv().await {}
        });
    }
    let all = async { while tasks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(CLOSE_GRACE, all).await;
}

/// One client connection, split so that sending and receiving overlap.
struct Conn {
    reader: Reader,
    writer: Writer,
    payloads: Payloads,
    /// Sequence number of the next message; every earlier one has been echoed.
    next_seq: u64,
}

impl Conn {
    fn new(index: usize, ws: WebSocket, o: &Options) -> Self {
        let (reader, writer) = ws.split();
        Self {
            reader,
            writer,
            payloads: Payloads::new(index, o.size, !o.binary),
            next_seq: 0,
        }
    }

    /// Sends `count` messages (fewer if `stop` passes first) with at most `pipeline` unanswered,
    /// and checks every echo. Returns the connection and the number of messages echoed.
    async fn exchange(
        mut self,
        count: u64,
        stop: Option<Instant>,
        pipeline: usize,
    ) -> Result<(Self, u64), BoxError> {
        let first = self.next_seq;
        let window = Semaphore::new(pipeline);
        let sent = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        let wake = Notify::new();
        let Self {
            reader,
            writer,
            payloads,
            ..
        } = &mut self;
        let sending = async {
            let mut n = 0;
            while n < count && stop.is_none_or(|s| Instant::now() < s) {
                window.acquire().await?.forget();
                // Queue every message the window allows, then write them with one flush.
                loop {
                    writer.feed(payloads.message(first + n)).await?;
                    n += 1;
                    let Ok(permit) = window.try_acquire() else {
                        break;
                    };
                    if n == count {
                        break;
                    }
                    permit.forget();
                }
                writer.flush().await?;
            }
            sent.store(n, Ordering::Release);
            done.store(true, Ordering::Release);
            wake.notify_one();
            Ok::<u64, BoxError>(n)
        };
        let receiving = async {
            let mut got = 0;
            while got < count
                && !(done.load(Ordering::Acquire) && got == sent.load(Ordering::Acquire))
            {
                let received = match stop {
                    // Only a timed phase can end with nothing in flight while we wait here.
                    Some(_) => tokio::select! {
                        biased;
                        received = reader.recv() => received?,
                        () = wake.notified() => continue,
                    },
                    None => reader.recv().await?,
                };
                let Some(message) = received else {
                    return Err(format!("server closed the connection after {got} echoes").into());
                };
                payloads.check(first + got, &message)?;
                got += 1;
                window.add_permits(1);
            }
            Ok::<u64, BoxError>(got)
        };
        let (n, got) = tokio::try_join!(sending, receiving)?;
        debug_assert_eq!(n, got);
        self.next_seq = first + got;
        Ok((self, got))
    }
}
