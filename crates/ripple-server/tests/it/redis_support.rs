//! A real `redis-server` per test, on its own free port on 127.0.0.1, without persistence
//! (`--save '' --appendonly no`), started and stopped by its PID; and Ripple nodes that share
//! it, each `ripple_server::run` on its own runtime so that a node can be killed outright.
//!
//! A test that needs Redis fails (it does not skip) when `redis-server` cannot be had: if it is
//! not on PATH, `scripts/install/redis.sh` installs Debian's package first.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ripple_server::Config;
use ripple_server::broker::Broker;
use ripple_server::broker::redis::{RedisBroker, RedisOptions};
use ripple_server::config::BrokerConfig;
use ripple_server::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::support::{WAIT, http_get};

/// A `redis-server` child process.
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts an empty Redis on a free port and waits until it answers PING.
    pub(crate) async fn start() -> Self {
        ensure_installed();
        for _ in 0..5 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("ripple-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let mut server = Self {
                port,
                child: None,
                dir,
            };
            if server.spawn().await {
                return server;
            }
        }
        panic!("redis-server did not start on a free port in 5 tries");
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the process (SIGKILL, by its PID) and waits for it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty (nothing was saved).
    pub(crate) async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + WAIT;
        while !self.spawn().await {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs one command with `redis-cli`-free RESP over TCP; returns the raw reply.
    pub(crate) async fn command(&self, args: &[&str]) -> String {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut reply = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut reply))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }

    async fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/install/redis.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.answers_ping().await {
                return true;
            }
            if let Some(child) = &mut self.child
                && child.try_wait().ok().flatten().is_some()
            {
                self.child = None;
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
        false
    }

    async fn answers_ping(&self) -> bool {
        let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if tcp.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), tcp.read_exact(&mut reply)).await,
            Ok(Ok(_)) if &reply == b"+PONG\r\n"
        )
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `scripts/install/redis.sh` when `redis-server` is not on PATH (once per process; the
/// script serializes concurrent runs itself).
fn ensure_installed() {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed || on_path("redis-server") {
        *installed = true;
        return;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install/redis.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .expect("bash runs scripts/install/redis.sh");
    assert!(
        status.success() && on_path("redis-server"),
        "redis-server is not installed and {} failed ({status})",
        script.display()
    );
    *installed = true;
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A Redis broker on `redis` with the suite's settings.
pub(crate) async fn redis_broker(
    redis: &RedisServer,
    history_size: usize,
    metrics: Arc<Metrics>,
) -> Arc<dyn Broker> {
    let options = RedisOptions {
        history_size,
        history_ttl: Duration::from_secs(3600),
        ..RedisOptions::new(redis.url())
    };
    Arc::new(RedisBroker::connect(options, metrics).await.unwrap())
}

// --- nodes -------------------------------------------------------------------------------------

/// How long a killed node's clients stay in presence in these tests.
pub(crate) const PRESENCE_TTL_SECS: u64 = 2;

/// The configuration of a node on `redis`: the HTTP API on, presence expiring quickly.
pub(crate) fn node_config(redis: &RedisServer) -> Config {
    Config {
        broker: BrokerConfig::Redis(redis.url()),
        api_key: Some(crate::support::API_KEY.into()),
        presence_ttl_secs: PRESENCE_TTL_SECS,
        history_size: 1000,
        // The cluster tests publish thousands of messages as fast as they can.
        publish_rate: 0,
        ..Config::default()
    }
}

/// `ripple_server::run` on 127.0.0.1:0 on a runtime of its own: [`Node::kill`] drops every
/// task of it at once, sockets and Redis connections included, as if the process died.
pub(crate) struct Node {
    pub(crate) addr: SocketAddr,
    runtime: Option<Runtime>,
    stop: Option<oneshot::Sender<()>>,
}

impl Node {
    /// Starts a node and waits until `/healthz` answers 200.
    pub(crate) async fn start(config: Config) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let (failed_tx, failed) = oneshot::channel::<String>();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(err) = ripple_server::run(listener, config, shutdown).await {
                let _ = failed_tx.send(err.to_string());
            }
        });
        let node = Self {
            addr,
            runtime: Some(runtime),
            stop: Some(stop),
        };
        let ready = tokio::time::timeout(WAIT, async {
            loop {
                if node.healthy().await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        tokio::select! {
            ready = ready => ready.expect("the node is healthy within the bound"),
            Ok(err) = failed => panic!("the node did not start: {err}"),
        }
        node
    }

    /// `ws://addr/ws`.
    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Whether `/healthz` answers 200 (a refused connection counts as not).
    pub(crate) async fn healthy(&self) -> bool {
        let Ok(tcp) = TcpStream::connect(self.addr).await else {
            return false;
        };
        drop(tcp);
        http_get(self.addr, "/healthz", &[]).await.status == 200
    }

    /// Drops the node's runtime: every connection and task ends at once, nothing is cleaned
    /// up (its presence entries stay until they expire).
    pub(crate) fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.stop.take());
        self.kill();
    }
}
