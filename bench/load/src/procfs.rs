//! What the benchmark reads about a process from `/proc`: CPU time and resident memory.

use std::fs;
use std::io;

/// A process's CPU time at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CpuSample {
    /// `utime` from `/proc/PID/stat`: user-mode CPU time, in clock ticks (`getconf CLK_TCK`).
    pub(crate) user_ticks: u64,
    /// `stime`: kernel-mode CPU time (system calls, and the loopback TCP work done in them).
    pub(crate) system_ticks: u64,
    /// Sum over the process's threads of `/proc/PID/task/TID/schedstat`'s first field (time on
    /// a CPU, nanoseconds); 0 where the kernel does not provide it.
    pub(crate) sched_ns: u64,
}

impl CpuSample {
    /// Reads `pid`'s CPU time (`"self"` for this process).
    pub(crate) fn read(pid: &str) -> io::Result<Self> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let (user_ticks, system_ticks) = stat_cpu_ticks(&stat)?;
        Ok(Self {
            user_ticks,
            system_ticks,
            sched_ns: sched_ns(pid).unwrap_or(0),
        })
    }

    /// `utime + stime`, in clock ticks.
    pub(crate) fn ticks(&self) -> u64 {
        self.user_ticks + self.system_ticks
    }
}

/// `(utime, stime)` from the text of `/proc/PID/stat`. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from the last `)`.
pub(crate) fn stat_cpu_ticks(stat: &str) -> io::Result<(u64, u64)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected /proc/PID/stat format",
        )
    };
    let rest = stat.rsplit_once(')').ok_or_else(bad)?.1;
    // After the name: field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> io::Result<u64> {
        fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(bad)
    };
    Ok((field(11)?, field(12)?))
}

/// Nanoseconds on a CPU, summed over every thread of `pid`.
fn sched_ns(pid: &str) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = entry?.path().join("schedstat");
        let text = fs::read_to_string(path)?;
        total += text
            .split_whitespace()
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

/// `VmRSS` of `pid`, in KiB.
pub(crate) fn vm_rss_kib(pid: &str) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_field_kib(&status, "VmRSS:")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/PID/status"))
}

/// A `Name:   1234 kB` line of `/proc/PID/status`.
pub(crate) fn status_field_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_the_name() {
        let stat = "4242 (echo (x) y) S 1 4242 4242 0 -1 4194560 150 0 0 0 37 12 0 0 20 0 1 0";
        assert_eq!(stat_cpu_ticks(stat).unwrap(), (37, 12));
    }

    #[test]
    fn short_stat_is_an_error() {
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
        assert!(CpuSample::read("self").is_ok());
        assert!(vm_rss_kib("self").unwrap() > 0);
    }
}
