//! What `ripple bench` shows: a progress bar while it runs (on a terminal only), then a
//! summary in words or, with `--json`, one JSON object.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::stats::LatencySummary;
use crate::units::{format_micros, format_size};

/// The result of one run. `--json` prints it as is.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) mode: &'static str,
    pub(crate) url: String,
    pub(crate) threads: usize,
    pub(crate) connections: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pipeline: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) binary: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) publishers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) subscribers: Option<usize>,
    /// Broadcast on a channel: how subscribers receive (`ws`, `sse` or `poll`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) transport: Option<&'static str>,
    /// Broadcast: the publishers' target rate in messages per second (`--rate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) publish_rate: Option<f64>,
    /// Length of the measured window, in seconds.
    pub(crate) duration_secs: f64,
    /// Messages received and checked in the measured window (broadcast: deliveries).
    pub(crate) messages: u64,
    pub(crate) messages_per_sec: f64,
    /// Payload megabytes (10^6) of those messages per second.
    pub(crate) mb_per_sec: f64,
    /// Broadcast: messages the publishers sent in the measured window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) published: Option<u64>,
    /// Connect: opening handshakes completed per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) handshakes_per_sec: Option<f64>,
    /// Message round trips (echo), send-to-receive times (broadcast) or handshake times
    /// (connect), in microseconds.
    pub(crate) latency_us: LatencySummary,
    /// Lost, reordered or corrupted messages, and failed connections.
    pub(crate) errors: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) error_samples: Vec<String>,
    /// Broadcast: received messages that were not the benchmark's (another client's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) foreign_messages: Option<u64>,
    /// This generator's CPU time (user + system) per measured message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_cpu_us_per_msg: Option<f64>,
    /// The server's CPU time per measured message (`--server-pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) server_cpu_us_per_msg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_cpu_us_per_handshake: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) server_cpu_us_per_handshake: Option<f64>,
    /// Generator CPU ÷ server CPU over the measured window: per message (or handshake), since
    /// both count the same ones. Above 1 the generator costs more than the server it measures.
    /// Needs `--server-pid` and a server CPU time of at least one clock tick.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_ratio: Option<f64>,
    /// Connect: growth of the server's resident memory per open connection (`--server-pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) server_rss_kib_per_conn: Option<f64>,
}

impl Report {
    /// Sets the CPU figures from CPU times spent over `operations` messages or handshakes.
    pub(crate) fn set_cpu(
        &mut self,
        (own, server): (Option<Duration>, Option<Duration>),
        operations: u64,
        handshakes: bool,
    ) {
        if operations == 0 {
            return;
        }
        let per =
            |cpu: Option<Duration>| cpu.map(|c| round3(c.as_secs_f64() * 1e6 / operations as f64));
        self.cpu_ratio = match (own, server) {
            (Some(own), Some(server)) if !server.is_zero() => {
                Some(round3(own.as_secs_f64() / server.as_secs_f64()))
            }
            _ => None,
        };
        if handshakes {
            self.client_cpu_us_per_handshake = per(own);
            self.server_cpu_us_per_handshake = per(server);
        } else {
            self.client_cpu_us_per_msg = per(own);
            self.server_cpu_us_per_msg = per(server);
        }
    }

    /// The summary in words.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(self.headline());
        match self.handshakes_per_sec {
            Some(rate) => line(format!(
                "  handshakes  {} in {:.2} s: {rate:.0}/s",
                self.connections, self.duration_secs
            )),
            None => {
                let mut messages = format!(
                    "  messages    {} in {:.2} s: {:.0}/s, {:.2} MB/s",
                    self.messages, self.duration_secs, self.messages_per_sec, self.mb_per_sec
                );
                if let Some(published) = self.published {
                    messages.push_str(&format!(" ({published} published)"));
                }
                line(messages);
            }
        }
        let l = &self.latency_us;
        line(format!(
            "  latency     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            format_micros(l.p50),
            format_micros(l.p90),
            format_micros(l.p99),
            format_micros(l.p999),
            format_micros(l.max)
        ));
        line(format!("  errors      {}", self.errors));
        for sample in &self.error_samples {
            line(format!("    {sample}"));
        }
        if let Some(cpu) = self.cpu_line() {
            line(cpu);
        }
        if let Some(kib) = self.server_rss_kib_per_conn {
            line(format!("  server RSS  {kib:.2} KiB per connection"));
        }
        out
    }

    fn headline(&self) -> String {
        let kind = match self.binary {
            Some(true) => "binary",
            _ => "text",
        };
        let size = self.size.map(format_size).unwrap_or_default();
        match self.mode {
            "echo" => format!(
                "echo {}: {} connections x pipeline {}, {size} {kind}, {} thread(s)",
                self.url,
                self.connections,
                self.pipeline.unwrap_or(1),
                self.threads
            ),
            "broadcast" => {
                let over = self
                    .transport
                    .map(|t| format!(" over {t}"))
                    .unwrap_or_default();
                let rate = self
                    .publish_rate
                    .map(|r| format!(", {r} msg/s"))
                    .unwrap_or_default();
                format!(
                    "broadcast {}: {} publishers -> {} subscribers{over}, window {}{rate}, {size} {kind}, {} thread(s)",
                    self.url,
                    self.publishers.unwrap_or(0),
                    self.subscribers.unwrap_or(0),
                    self.pipeline.unwrap_or(1),
                    self.threads
                )
            }
            _ => format!(
                "connect {}: {} connections, {} thread(s)",
                self.url, self.connections, self.threads
            ),
        }
    }

    fn cpu_line(&self) -> Option<String> {
        let (own, server, unit) =
            match (self.client_cpu_us_per_msg, self.client_cpu_us_per_handshake) {
                (Some(own), _) => (own, self.server_cpu_us_per_msg, "message"),
                (None, Some(own)) => (own, self.server_cpu_us_per_handshake, "handshake"),
                (None, None) => return None,
            };
        let mut text = format!("  cpu/{unit:<9} generator {own:.3} µs");
        if let Some(server) = server {
            text.push_str(&format!(", server {server:.3} µs"));
        }
        if let Some(ratio) = self.cpu_ratio {
            let verdict = if ratio <= 1.0 { "<=" } else { ">" };
            text.push_str(&format!(
                "\n  generator/server CPU per {unit} {ratio:.3} (generator {verdict} server)"
            ));
        }
        Some(text)
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Whether to draw a progress bar: stderr is a terminal and this is not CI.
pub(crate) fn progress_wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

/// A progress bar on stderr, or nothing.
pub(crate) struct Progress(ProgressBar);

impl Progress {
    /// A bar of `length` steps (milliseconds of the run, or messages), hidden unless `show`.
    pub(crate) fn new(show: bool, length: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
        if !show {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let style = ProgressStyle::with_template("{elapsed:>4} [{wide_bar}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        Self(bar)
    }

    pub(crate) fn update(&self, position: u64, message: String) {
        self.0.set_position(position);
        self.0.set_message(message);
    }

    pub(crate) fn set_length(&self, length: u64) {
        self.0.set_length(length);
    }

    pub(crate) fn finish(&self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_promised_fields() {
        let mut report = Report {
            mode: "echo",
            messages: 1000,
            messages_per_sec: 500.0,
            ..Report::default()
        };
        report.set_cpu(
            (
                Some(Duration::from_millis(2)),
                Some(Duration::from_millis(3)),
            ),
            1000,
            false,
        );
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        for key in ["messages_per_sec", "mb_per_sec", "latency_us", "errors"] {
            assert!(json.get(key).is_some(), "{key} missing: {json}");
        }
        for key in ["p50", "p90", "p99", "p999", "max"] {
            assert!(json["latency_us"].get(key).is_some(), "{key}");
        }
        assert_eq!(json["client_cpu_us_per_msg"], 2.0);
        assert_eq!(json["server_cpu_us_per_msg"], 3.0);
        assert_eq!(json["cpu_ratio"], 0.667);
        assert!(json.get("handshakes_per_sec").is_none());
        let text = report.text();
        assert!(
            text.contains("generator 2.000 µs, server 3.000 µs\n"),
            "{text}"
        );
        assert!(
            text.contains("generator/server CPU per message 0.667 (generator <= server)"),
            "{text}"
        );
    }

    #[test]
    fn no_ratio_without_server_cpu() {
        let mut report = Report::default();
        let own = Some(Duration::from_millis(2));
        report.set_cpu((own, None), 1000, false);
        assert_eq!(report.cpu_ratio, None);
        report.set_cpu((own, Some(Duration::ZERO)), 1000, false);
        assert_eq!(report.cpu_ratio, None, "less than a clock tick: unknown");
        let mut report = Report::default();
        report.set_cpu((own, Some(Duration::from_millis(1))), 10, true);
        assert_eq!(report.cpu_ratio, Some(2.0));
        assert!(
            report
                .text()
                .contains("generator/server CPU per handshake 2.000 (generator > server)")
        );
    }
}
