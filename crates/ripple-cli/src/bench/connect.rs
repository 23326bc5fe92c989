//! Connect mode: open N connections (`--pipeline` handshakes at a time) and keep them open;
//! handshakes per second, handshake latency, and with `--server-pid` the server's resident
//! memory per connection.

use anyhow::Context as _;
use tokio::time::Instant;

use super::Plan;
use super::connections::close_sockets;
use super::output::{Progress, Report};
use super::procfs::{CpuMark, rss_kib};
use super::stats::Latencies;

/// Runs connect mode.
pub(super) async fn run(plan: &Plan) -> anyhow::Result<Report> {
    let n = plan.count.map_or(plan.connections, |c| {
        usize::try_from(c).unwrap_or(usize::MAX)
    });
    let rss_before = plan
        .server_pid
        .map(rss_kib)
        .transpose()
        .context("reading the server's memory (--server-pid)")?;
    let progress = Progress::new(plan.show_progress, n as u64);
    let latencies = Latencies::new();
    let cpu_start = CpuMark::now(plan.server_pid);
    let start = Instant::now();
    // Bounds the opening phase (10 s unless --duration).
    let deadline = plan.duration.map(|d| start + d);
    let opened = plan
        .opener(&progress, plan.pipeline)
        .open(n, deadline, Some(&latencies))
        .await;
    let seconds = start.elapsed().as_secs_f64().max(1e-3);
    let cpu = cpu_start.since(CpuMark::now(plan.server_pid));
    progress.finish();
    let open = opened.sockets.len();
    let mut report = Report {
        connections: open,
        duration_secs: seconds,
        handshakes_per_sec: Some(open as f64 / seconds),
        latency_us: latencies.summary(),
        errors: opened.failed,
        error_samples: opened.failures,
        ..plan.report("connect")
    };
    report.set_cpu(cpu, open as u64, true);
    if let (Some(pid), Some(before)) = (plan.server_pid, rss_before) {
        tokio::time::sleep(plan.settle).await;
        let after = rss_kib(pid).context("reading the server's memory (--server-pid)")?;
        if open > 0 {
            let per = (after as f64 - before as f64) / open as f64;
            report.server_rss_kib_per_conn = Some((per * 1000.0).round() / 1000.0);
        }
    }
    close_sockets(opened.sockets).await;
    Ok(report)
}
