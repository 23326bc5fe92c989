//! `ripple serve`: the real-time server. Configuration comes from defaults, then a TOML file
//! (`--config`), then environment variables, then flags — each later source wins — and is
//! logged at start.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ripple_server::Config;
use ripple_server::config::BrokerConfig;

/// Options of `ripple serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8765]
    #[arg(long, env = "RIPPLE_BIND")]
    pub(crate) bind: Option<SocketAddr>,
    /// TOML configuration file (keys as in docs/operations.md)
    #[arg(long, env = "RIPPLE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// HS256 secret for client tokens; without one the server runs in anonymous mode
    #[arg(long, env = "RIPPLE_JWT_SECRET", hide_env_values = true)]
    pub(crate) jwt_secret: Option<String>,
    /// Key for the HTTP API (Authorization: Bearer <key>); without one the API answers 401
    #[arg(long, env = "RIPPLE_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// Browser origin allowed to connect (repeatable); none listed allows any
    #[arg(
        long = "allowed-origin",
        env = "RIPPLE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub(crate) allowed_origins: Vec<String>,
    /// Most connections at once
    #[arg(long, env = "RIPPLE_MAX_CONNECTIONS")]
    pub(crate) max_connections: Option<usize>,
    /// Largest message accepted, in bytes
    #[arg(long, env = "RIPPLE_MAX_MESSAGE_SIZE")]
    pub(crate) max_message_size: Option<usize>,
    /// Messages kept per channel for history and recovery
    #[arg(long, env = "RIPPLE_HISTORY_SIZE")]
    pub(crate) history_size: Option<usize>,
    /// Seconds a message stays in history
    #[arg(long, env = "RIPPLE_HISTORY_TTL")]
    pub(crate) history_ttl: Option<u64>,
    /// Publishes per second per connection, or per user or address on /rpc (0 = unlimited)
    /// [default: 50]
    #[arg(long, env = "RIPPLE_PUBLISH_RATE")]
    pub(crate) publish_rate: Option<u32>,
    /// Bytes queued per client before it is disconnected as a slow consumer
    #[arg(long, env = "RIPPLE_CLIENT_QUEUE_BYTES")]
    pub(crate) client_queue_bytes: Option<usize>,
    /// Bytes of history kept across every channel, in-memory broker [default: 64 MiB]
    #[arg(long, env = "RIPPLE_HISTORY_MAX_BYTES")]
    pub(crate) history_max_bytes: Option<usize>,
    /// Channels kept at once, in-memory broker [default: 100000]
    #[arg(long, env = "RIPPLE_MAX_CHANNELS")]
    pub(crate) max_channels: Option<usize>,
    /// Bytes held in HTTP answers not yet read, across the process [default: 64 MiB]
    #[arg(long, env = "RIPPLE_ANSWER_BUDGET_BYTES")]
    pub(crate) answer_budget_bytes: Option<usize>,
    /// Where channels, history and presence live: "memory" (this process) or
    /// redis://HOST:PORT/DB (shared by every node on that Redis) [default: memory]
    #[arg(long, env = "RIPPLE_BROKER", hide_env_values = true)]
    pub(crate) broker: Option<BrokerConfig>,
}

impl ServeArgs {
    /// The configuration: file first, then environment and flags (clap already merged those).
    pub(crate) fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        set(&mut config.bind, self.bind);
        set(&mut config.jwt_secret, self.jwt_secret.clone().map(Some));
        set(&mut config.api_key, self.api_key.clone().map(Some));
        if !self.allowed_origins.is_empty() {
            config.allowed_origins.clone_from(&self.allowed_origins);
        }
        set(&mut config.max_connections, self.max_connections);
        set(&mut config.max_message_size, self.max_message_size);
        set(&mut config.history_size, self.history_size);
        set(&mut config.history_ttl_secs, self.history_ttl);
        set(&mut config.publish_rate, self.publish_rate);
        set(&mut config.client_queue_bytes, self.client_queue_bytes);
        set(&mut config.history_max_bytes, self.history_max_bytes);
        set(&mut config.max_channels, self.max_channels);
        set(&mut config.answer_budget_bytes, self.answer_budget_bytes);
        set(&mut config.broker, self.broker.clone());
        Ok(config)
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// Runs the server on a multi-threaded runtime (one worker per core) until SIGINT or SIGTERM.
pub(crate) fn main(args: ServeArgs) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))?;
    Ok(0)
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    raise_fd_limit(config.max_connections);
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    eprintln!(
        "ripple serve: listening on http://{} (ws://{}/ws)",
        listener.local_addr()?,
        listener.local_addr()?
    );
    ripple_server::run(listener, config, shutdown_signal()).await?;
    Ok(())
}

/// Descriptors the server needs besides its clients' sockets: the listener, the runtime, logs,
/// a broker's connections.
const FD_HEADROOM: u64 = 128;

/// Raises the soft limit on open files to the hard one: every connection is a descriptor, and
/// the usual soft limit (1,024) is far below the default `max_connections`. Logs both limits,
/// and warns when `max_connections` still cannot be reached (accept would then fail with
/// "Too many open files" before the server refuses anyone with 503).
fn raise_fd_limit(max_connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let now = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    tracing::info!(soft, hard, now, "open-file limit (RLIMIT_NOFILE)");
    let needed = (max_connections as u64).saturating_add(FD_HEADROOM);
    if needed > now {
        tracing::warn!(
            "max_connections ({max_connections}) needs about {needed} file descriptors but the \
             limit is {now}: raise it (ulimit -n, LimitNOFILE=) or lower max_connections"
        );
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut terminate) = signal(SignalKind::terminate()) else {
            let _ = interrupt.await;
            return;
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: closing every connection with 1001");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("ripple-serve-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ripple.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:9100\"\nhistory_size = 7\napi_key = \"from-file\"\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "x",
            "--config",
            file.to_str().unwrap(),
            "--history-size",
            "9",
            "--max-channels",
            "5",
        ]);
        let config = cli.serve.config().unwrap();
        assert_eq!(config.bind.port(), 9100);
        assert_eq!(config.history_size, 9);
        assert_eq!(config.max_channels, 5);
        assert_eq!(config.history_max_bytes, 64 << 20, "the default");
        assert_eq!(config.api_key.as_deref(), Some("from-file"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn broker_comes_from_the_file_then_the_flag() {
        let dir = std::env::temp_dir().join(format!("ripple-broker-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ripple.toml");
        std::fs::write(&file, "broker = \"redis://127.0.0.1:6379/1\"\n").unwrap();
        let path = file.to_str().unwrap();
        let from_file = Cli::parse_from(["x", "--config", path])
            .serve
            .config()
            .unwrap();
        assert_eq!(
            from_file.broker,
            BrokerConfig::Redis("redis://127.0.0.1:6379/1".into())
        );
        let flag = Cli::parse_from(["x", "--config", path, "--broker", "memory"]);
        assert_eq!(flag.serve.config().unwrap().broker, BrokerConfig::Memory);
        assert!(Cli::try_parse_from(["x", "--broker", "redis:/oops"]).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
