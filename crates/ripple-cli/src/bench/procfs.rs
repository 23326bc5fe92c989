//! CPU time and resident memory of processes: this one (getrusage) and the server under test
//! (`/proc/PID/stat` and `/proc/PID/status`).

use std::fs;
use std::io;
use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};
use nix::unistd::{SysconfVar, sysconf};

/// User plus system CPU time this process has used.
pub(crate) fn own_cpu() -> io::Result<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_SELF).map_err(io::Error::from)?;
    let micros = |tv: nix::sys::time::TimeVal| {
        u64::try_from(tv.tv_sec()).unwrap_or(0) * 1_000_000
            + u64::try_from(tv.tv_usec()).unwrap_or(0)
    };
    Ok(Duration::from_micros(
        micros(usage.user_time()) + micros(usage.system_time()),
    ))
}

/// User plus system CPU time process `pid` has used (clock-tick resolution, usually 10 ms).
pub(crate) fn process_cpu(pid: u32) -> io::Result<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = stat_cpu_ticks(&stat)?;
    let per_second = sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&hz| hz > 0)
        .unwrap_or(100);
    Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// `VmRSS` of process `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_field_kib(&status, "VmRSS:")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/PID/status"))
}

/// `utime + stime` from the text of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn stat_cpu_ticks(stat: &str) -> io::Result<u64> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected /proc/PID/stat format",
        )
    };
    let rest = stat.rsplit_once(')').ok_or_else(bad)?.1;
    // After the name, field 3 (state) is index 0: utime (14) is 11, stime (15) is 12.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> io::Result<u64> {
        fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(bad)
    };
    Ok(field(11)? + field(12)?)
}

/// A `Name:   1234 kB` line of `/proc/PID/status`.
fn status_field_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// CPU used by this process and, when known, the server, over one phase.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuMark {
    own: Option<Duration>,
    server: Option<Duration>,
}

impl CpuMark {
    pub(crate) fn now(server_pid: Option<u32>) -> Self {
        Self {
            own: own_cpu().ok(),
            server: server_pid.and_then(|pid| process_cpu(pid).ok()),
        }
    }

    /// CPU used since `self` by (this process, the server).
    pub(crate) fn since(self, later: Self) -> (Option<Duration>, Option<Duration>) {
        let diff = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
        (diff(self.own, later.own), diff(self.server, later.server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_the_name() {
        let stat = "4242 (echo (x) y) S 1 4242 4242 0 -1 4194560 150 0 0 0 37 12 0 0 20 0 1 0";
        assert_eq!(stat_cpu_ticks(stat).unwrap(), 49);
        assert!(stat_cpu_ticks("1 (x) S 1 2").is_err());
    }

    #[test]
    fn vm_rss() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t1\n";
        assert_eq!(status_field_kib(status, "VmRSS:"), Some(5120));
        assert_eq!(status_field_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_is_readable() {
        let pid = std::process::id();
        assert!(process_cpu(pid).is_ok());
        assert!(rss_kib(pid).unwrap() > 0);
        let before = CpuMark::now(Some(pid));
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let (own, server) = before.since(CpuMark::now(Some(pid)));
        assert!(own.is_some() && server.is_some());
    }
}
