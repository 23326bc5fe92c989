//! What the benchmark runs against: a `redis-server` child on a free port, and Ripple nodes,
//! each `ripple_server::run` on a runtime of its own (one worker thread named `node-N`, so its
//! CPU time can be told apart from the load generator's).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ripple_server::Config;
use ripple_server::config::BrokerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::BoxError;

/// A `redis-server` without persistence, stopped (by its PID) when dropped.
pub(crate) struct Redis {
    pub(crate) port: u16,
    child: Child,
}

impl Redis {
    pub(crate) async fn start() -> Result<Self, BoxError> {
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server ({e}): run scripts/install/redis.sh"))?;
        let redis = Self { port, child };
        let deadline = Instant::now() + Duration::from_secs(5);
        while redis.command(&["PING"]).await.ok().as_deref() != Some("+PONG\r\n") {
            if Instant::now() > deadline {
                return Err(format!("redis-server did not answer on port {port}").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(redis)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One command over RESP; the raw reply (up to 64 KiB).
    pub(crate) async fn command(&self, args: &[&str]) -> Result<String, BoxError> {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        tcp.write_all(request.as_bytes()).await?;
        let mut reply = vec![0; 64 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut reply)).await??;
        Ok(String::from_utf8_lossy(&reply[..n]).into_owned())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Ripple node on 127.0.0.1:0.
pub(crate) struct Node {
    pub(crate) addr: SocketAddr,
    runtime: Option<Runtime>,
    stop: Option<oneshot::Sender<()>>,
}

impl Node {
    /// Starts node `index` with `broker` and waits until it accepts connections.
    pub(crate) async fn start(index: usize, broker: BrokerConfig) -> Result<Self, BoxError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("node-{index}"))
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let config = Config {
            broker,
            // Big enough that no subscriber of the bench is cut off as a slow consumer.
            client_queue_bytes: 64 << 20,
            presence: false,
            ..Config::default()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready) = oneshot::channel::<Result<(), String>>();
        runtime.spawn(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(err) => {
                    let _ = ready_tx.send(Err(err.to_string()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(err) = ripple_server::run(listener, config, shutdown).await {
                eprintln!("scale-bench: node {index}: {err}");
            }
        });
        ready.await.map_err(|_| "node task ended")??;
        let node = Self {
            addr,
            runtime: Some(runtime),
            stop: Some(stop),
        };
        node.wait_healthy().await?;
        Ok(node)
    }

    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    async fn wait_healthy(&self) -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut tcp) = TcpStream::connect(self.addr).await {
                let request = format!(
                    "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                let mut reply = Vec::new();
                if tcp.write_all(request.as_bytes()).await.is_ok()
                    && tcp.read_to_end(&mut reply).await.is_ok()
                    && reply.starts_with(b"HTTP/1.1 200")
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("node {} not healthy within 10 s", self.addr).into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
