//! Where the CPU time goes: nanoseconds on a CPU (`/proc/PID/task/TID/schedstat`) summed over
//! this process's node threads (`node-N`), its other threads (the load generator), and the
//! `redis-server` process.

use std::fs;

/// CPU time so far, in nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cpu {
    /// The Ripple nodes' worker threads.
    pub(crate) nodes: u64,
    /// Every other thread of this process: the load generator (and Redis client tasks'
    /// blocking helpers, if any).
    pub(crate) load: u64,
    /// The `redis-server` process, if there is one.
    pub(crate) redis: u64,
}

impl Cpu {
    /// Reads the counters now.
    pub(crate) fn now(redis_pid: Option<u32>) -> Self {
        let mut cpu = Self::default();
        for (name, ns) in threads("self") {
            if name.starts_with("node-") {
                cpu.nodes += ns;
            } else {
                cpu.load += ns;
            }
        }
        if let Some(pid) = redis_pid {
            cpu.redis = threads(&pid.to_string()).iter().map(|(_, ns)| ns).sum();
        }
        cpu
    }

    /// What was spent since `earlier`.
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        Self {
            nodes: self.nodes.saturating_sub(earlier.nodes),
            load: self.load.saturating_sub(earlier.load),
            redis: self.redis.saturating_sub(earlier.redis),
        }
    }
}

/// `(thread name, ns on a CPU)` for every thread of `pid`.
fn threads(pid: &str) -> Vec<(String, u64)> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let name = fs::read_to_string(path.join("comm")).ok()?;
            let stat = fs::read_to_string(path.join("schedstat")).ok()?;
            let ns = stat.split_whitespace().next()?.parse().ok()?;
            Some((name.trim().to_owned(), ns))
        })
        .collect()
}
