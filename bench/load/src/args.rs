//! The command line of `echo-load`.

use std::time::Duration;

pub(crate) const USAGE: &str = "\
usage: echo-load echo URL [-c CONNS] [-p PIPELINE] [-s SIZE] [-n MESSAGES | -d SECS] [--binary]
                          [-w WARMUP] [--server-pid PID] [--clk-tck HZ] [--timeout SECS] [--label NAME]
                          [--deflate]
       echo-load idle URL [-c CONNS] --server-pid PID [--settle SECS] [--timeout SECS] [--label NAME]
                          [--deflate]

echo  opens CONNS connections (default 50), echoes WARMUP messages per connection (default
      MESSAGES/10, at most 1000), then measures MESSAGES messages per connection (default 4000;
      or as many as fit in -d SECS) of SIZE bytes (default 32), PIPELINE in flight per
      connection (default 16); text unless --binary. Every echo is checked. With --server-pid,
      reports the server's CPU time per message from /proc/PID/stat (HZ = getconf CLK_TCK,
      default 100).
idle  reads the server's VmRSS, opens CONNS connections (default 10000) that stay idle, waits
      SETTLE seconds (default 1), reads VmRSS again and reports KiB per connection.
Both  give up after --timeout SECS (default 120; exit status 3). --concurrency N bounds the
      handshakes in flight (default 64). --deflate offers permessage-deflate (off by default:
      only Ripple's server implements it). The result is one line: RESULT key=value ...";

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Echo,
    Idle,
}

#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) mode: Mode,
    pub(crate) url: String,
    pub(crate) connections: usize,
    pub(crate) pipeline: usize,
    pub(crate) size: usize,
    pub(crate) messages: u64,
    pub(crate) duration: Option<Duration>,
    pub(crate) warmup: u64,
    pub(crate) binary: bool,
    pub(crate) deflate: bool,
    pub(crate) server_pid: Option<String>,
    pub(crate) clk_tck: f64,
    pub(crate) concurrency: usize,
    pub(crate) settle: Duration,
    pub(crate) timeout: Duration,
    pub(crate) label: String,
}

impl Options {
    pub(crate) fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self, String> {
        let mut args = args.into_iter();
        let mode = match args.next().as_deref() {
            Some("echo") => Mode::Echo,
            Some("idle") => Mode::Idle,
            Some(other) => return Err(format!("unknown mode {other:?}")),
            None => return Err("missing mode".into()),
        };
        let url = args.next().ok_or("missing URL")?;
        let mut o = Self::defaults(mode, url);
        let mut warmup = None;
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "-c" | "--connections" => o.connections = number(&flag, &value()?)?,
                "-p" | "--pipeline" => o.pipeline = number(&flag, &value()?)?,
                "-s" | "--size" => o.size = number(&flag, &value()?)?,
                "-n" | "--messages" => o.messages = number(&flag, &value()?)?,
                "-d" | "--duration" => o.duration = Some(seconds(&flag, &value()?)?),
                "-w" | "--warmup" => warmup = Some(number(&flag, &value()?)?),
                "--binary" => o.binary = true,
                "--deflate" => o.deflate = true,
                "--server-pid" => o.server_pid = Some(value()?),
                "--clk-tck" => o.clk_tck = number(&flag, &value()?)?,
                "--concurrency" => o.concurrency = number(&flag, &value()?)?,
                "--settle" => o.settle = seconds(&flag, &value()?)?,
                "--timeout" => o.timeout = seconds(&flag, &value()?)?,
                "--label" => o.label = value()?,
                _ => return Err(format!("unknown option {flag:?}")),
            }
        }
        o.warmup = warmup.unwrap_or((o.messages / 10).min(1000));
        if o.duration.is_some() {
            o.messages = u64::MAX;
        }
        o.check()?;
        Ok(o)
    }

    fn defaults(mode: Mode, url: String) -> Self {
        Self {
            mode,
            url,
            connections: if mode == Mode::Idle { 10_000 } else { 50 },
            pipeline: 16,
            size: 32,
            messages: 4000,
            duration: None,
            warmup: 0,
            binary: false,
            deflate: false,
            server_pid: None,
            clk_tck: 100.0,
            concurrency: 64,
            settle: Duration::from_secs(1),
            timeout: Duration::from_secs(120),
            label: "-".into(),
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.connections == 0 || self.pipeline == 0 || self.concurrency == 0 {
            return Err("connections, pipeline and concurrency must be at least 1".into());
        }
        if self.clk_tck <= 0.0 {
            return Err("--clk-tck must be positive".into());
        }
        if self.mode == Mode::Idle && self.server_pid.is_none() {
            return Err("idle mode needs --server-pid".into());
        }
        Ok(())
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: {value:?} is not a valid number"))
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    let secs: f64 = number(flag, value)?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{flag}: {value:?} is not a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Options, String> {
        Options::parse(line.split_whitespace().map(String::from))
    }

    #[test]
    fn echo_defaults_and_flags() {
        let o = parse("echo ws://127.0.0.1:1 -c 8 -p 4 -s 65536 -n 500 --binary").unwrap();
        assert_eq!(
            (o.mode, o.connections, o.pipeline, o.size),
            (Mode::Echo, 8, 4, 65536)
        );
        assert_eq!((o.messages, o.warmup, o.binary), (500, 50, true));
        let o = parse("echo ws://x -d 2.5").unwrap();
        assert_eq!(o.duration, Some(Duration::from_millis(2500)));
        assert_eq!(o.messages, u64::MAX);
    }

    #[test]
    fn idle_needs_the_server_pid() {
        assert!(parse("idle ws://x").is_err());
        let o = parse("idle ws://x --server-pid 42 --deflate").unwrap();
        assert_eq!((o.connections, o.deflate), (10_000, true));
    }

    #[test]
    fn bad_input() {
        assert!(parse("").is_err());
        assert!(parse("echo").is_err());
        assert!(parse("echo ws://x -c").is_err());
        assert!(parse("echo ws://x -c many").is_err());
        assert!(parse("echo ws://x --nope").is_err());
        assert!(parse("echo ws://x -p 0").is_err());
    }
}
