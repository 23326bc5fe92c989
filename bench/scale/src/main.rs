//! `scale-bench`: the scale-out benchmark of issue 10, side by side in one run:
//!
//! 1. one node, in-memory broker;
//! 2. one node, Redis broker;
//! 3. three nodes, Redis broker (subscribers and publishers spread over them).
//!
//! Every setup gets the same load on one channel, in two phases: a fixed publication rate
//! (latency), then publishers with a window of publications in flight (throughput). Printed:
//! deliveries per second, latency percentiles (publication → subscriber), and where the CPU
//! went per publication: the nodes' threads, `redis-server`, the load generator. Nodes run in
//! this process, each on its own one-thread runtime; everything is on 127.0.0.1.
//!
//! usage: scale-bench [--seconds S] [--rate R] [--window W] [--subscribers N]
//!                    [--publishers P] [--only memory|redis1|redis3] [--quick]
//! Needs `redis-server` on PATH (scripts/install/redis.sh); scripts/cluster.sh bench runs it.

mod cluster;
mod cpu;
mod load;

use std::process::ExitCode;
use std::time::Duration;

use ripple_server::config::BrokerConfig;

use crate::cluster::{Node, Redis};
use crate::load::{Outcome, Pace};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: scale-bench [--seconds S] [--rate R] [--window W] \
                     [--subscribers N] [--publishers P] [--only memory|redis1|redis3] [--quick]";

/// The load, the same for every setup.
#[derive(Clone, Copy, Debug)]
struct Options {
    seconds: u64,
    rate: u64,
    window: usize,
    subscribers: usize,
    publishers: usize,
    /// Run only this setup (for profiling one).
    only: Option<&'static str>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Self {
            seconds: 5,
            rate: 2_000,
            window: 32,
            subscribers: 30,
            publishers: 3,
            only: None,
        };
        while let Some(arg) = args.next() {
            if arg == "--quick" {
                options = Self {
                    seconds: 1,
                    rate: 500,
                    window: 8,
                    subscribers: 6,
                    publishers: 3,
                    only: options.only,
                };
                continue;
            }
            let value = args.next().ok_or(format!("{arg} needs a value"))?;
            let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{arg} {v}: {e}"));
            match arg.as_str() {
                "--seconds" => options.seconds = number(&value)?.max(1),
                "--rate" => options.rate = number(&value)?.max(1),
                "--window" => options.window = number(&value)?.max(1) as usize,
                "--subscribers" => options.subscribers = number(&value)?.max(1) as usize,
                "--publishers" => options.publishers = number(&value)?.max(1) as usize,
                "--only" => {
                    let known = ["memory", "redis1", "redis3"];
                    let Some(setup) = known.into_iter().find(|k| *k == value) else {
                        return Err(format!("--only {value}: one of {known:?}"));
                    };
                    options.only = Some(setup);
                }
                _ => return Err(format!("unknown argument {arg}")),
            }
        }
        Ok(options)
    }
}

/// One row of the report.
struct Row {
    setup: &'static str,
    phase: &'static str,
    outcome: Outcome,
}

fn main() -> ExitCode {
    let _ = load::clock();
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("scale-bench: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("load")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("scale-bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(rows) => {
            print!("{}", report(&options, &rows));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("scale-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<Vec<Row>, BoxError> {
    let redis = Redis::start().await?;
    let mut rows = Vec::new();
    let setups: [(&'static str, &str, usize, bool); 3] = [
        ("1 node, memory", "memory", 1, false),
        ("1 node, Redis", "redis1", 1, true),
        ("3 nodes, Redis", "redis3", 3, true),
    ];
    for (setup, key, count, on_redis) in setups {
        if options.only.is_some_and(|only| only != key) {
            continue;
        }
        let broker = if on_redis {
            redis.command(&["FLUSHALL"]).await?;
            BrokerConfig::Redis(redis.url())
        } else {
            BrokerConfig::Memory
        };
        let mut nodes = Vec::new();
        for index in 0..count {
            nodes.push(Node::start(index, broker.clone()).await?);
        }
        let seconds = Duration::from_secs(options.seconds);
        for (phase, pace, channel) in [
            ("fixed rate", Pace::Rate(options.rate), "bench:rate"),
            ("max", Pace::Window(options.window), "bench:max"),
        ] {
            eprintln!("scale-bench: {setup}: {phase} for {seconds:?}");
            let outcome = load::phase(
                &nodes,
                channel,
                options.subscribers,
                options.publishers,
                pace,
                seconds,
                on_redis.then_some(&redis),
            )
            .await?;
            rows.push(Row {
                setup,
                phase,
                outcome,
            });
        }
        drop(nodes);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(rows)
}

fn report(options: &Options, rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nscale-bench: {} subscribers and {} publishers on one channel, spread over the nodes; \
         fixed rate {} publications/s, max = {} in flight per publisher; {} s per phase\n",
        options.subscribers, options.publishers, options.rate, options.window, options.seconds
    );
    let _ = writeln!(
        out,
        "| setup | phase | publications/s | deliveries/s | p50 ms | p99 ms | max ms | lost | \
         node CPU µs/pub | Redis CPU µs/pub | script µs | load CPU µs/pub |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in rows {
        let o = &row.outcome;
        let secs = o.elapsed.as_secs_f64().max(1e-9);
        let per_pub = |ns: u64| ns as f64 / 1e3 / (o.published.max(1) as f64);
        let ms = |q: f64| o.latency.value_at_quantile(q) as f64 / 1e3;
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.1} | {:.1} | {} | {:.1} |",
            row.setup,
            row.phase,
            o.published as f64 / secs,
            o.deliveries as f64 / secs,
            ms(0.5),
            ms(0.99),
            o.latency.max() as f64 / 1e3,
            o.expected.saturating_sub(o.deliveries) + o.refused,
            per_pub(o.cpu.nodes),
            per_pub(o.cpu.redis),
            o.script_us.map_or("-".into(), |us| format!("{us:.1}")),
            per_pub(o.cpu.load),
        );
    }
    let find = |setup: &str| {
        rows.iter()
            .find(|r| r.setup == setup && r.phase == "fixed rate")
            .map(|r| &r.outcome)
    };
    if let (Some(memory), Some(redis)) = (find("1 node, memory"), find("1 node, Redis")) {
        let cpu =
            |o: &Outcome| (o.cpu.nodes + o.cpu.redis) as f64 / 1e3 / o.published.max(1) as f64;
        let p50 = |o: &Outcome| o.latency.value_at_quantile(0.5) as f64 / 1e3;
        let _ = writeln!(
            out,
            "\nThe Redis hop at the fixed rate, one node: +{:.1} µs of CPU per publication \
             (node + redis-server: {:.1} vs {:.1} in memory), +{:.2} ms at p50.",
            cpu(redis) - cpu(memory),
            cpu(redis),
            cpu(memory),
            p50(redis) - p50(memory),
        );
    }
    out
}
