//! Server configuration: defaults that need no outside service, overridden by a TOML file,
//! then environment variables, then flags (the command line applies those in that order).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// Everything `ripple serve` can be told.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address (default 127.0.0.1:8765).
    pub bind: SocketAddr,
    /// HS256 secret for client JWTs. `None` runs in anonymous mode (logged as a warning).
    pub jwt_secret: Option<String>,
    /// Key for the HTTP API (`Authorization: Bearer <key>`). `None` disables the API.
    pub api_key: Option<String>,
    /// Browser origins allowed to open WebSockets; empty allows any.
    pub allowed_origins: Vec<String>,
    /// Connections accepted at once (default 10,000); more get HTTP 503.
    pub max_connections: usize,
    /// Largest WebSocket message accepted (default 64 KiB); larger ones close with 1009.
    pub max_message_size: usize,
    /// Subscriptions per connection (default 128).
    pub max_subscriptions: usize,
    /// Publishes per second per connection, and per user or client address on `/rpc`;
    /// 0 = unlimited (default 50: see docs/design.md, "Hostile clients: answers and history").
    pub publish_rate: u32,
    /// Bytes queued for one client before it counts as a slow consumer and is disconnected
    /// (default 1 MiB, as Centrifugo).
    pub client_queue_bytes: usize,
    /// Messages kept per channel for history and recovery (default 100).
    pub history_size: usize,
    /// How long a message stays in history, in seconds (default 300).
    pub history_ttl_secs: u64,
    /// Send join/leave pushes (default true). The `presence` command answers either way.
    pub presence: bool,
    /// Time a client has to send `auth` when its handshake carried no token, in seconds
    /// (default 10).
    pub auth_timeout_secs: u64,
    /// WebSocket keepalive ping interval in seconds; 0 turns it off (default 20).
    pub ping_interval_secs: u64,
    /// Drain time on shutdown, in seconds (default 5).
    pub shutdown_timeout_secs: u64,
    /// Where channels, history and presence live: `"memory"` (default, this process only) or
    /// `redis://HOST:PORT/DB`, shared by every node on that Redis.
    pub broker: BrokerConfig,
    /// Redis broker: how long a node's clients stay in presence after the node stopped
    /// heartbeating (it heartbeats every third of it), in seconds (default 10).
    pub presence_ttl_secs: u64,
    /// Longest a `/poll` request waits for a message, in seconds (default 25, below the usual
    /// 30–60 s proxy idle timeouts).
    pub poll_timeout_secs: u64,
    /// Time between two `/sse` heartbeat comments, in seconds (default 15).
    pub sse_heartbeat_secs: u64,
    /// A client that reads nothing of a response for this long loses its connection, in
    /// seconds (default 30); bounds what a stuck SSE or long-poll reader holds.
    pub send_timeout_secs: u64,
    /// A connection must deliver a whole request head within this many seconds of the server
    /// starting to wait for one: a new connection, or a keep-alive one after its last response
    /// (default 10). Bounds slow heads and idle keep-alive connections alike.
    pub header_timeout_secs: u64,
    /// A request body must arrive in full within this many seconds of its head (default 10).
    pub body_timeout_secs: u64,
    /// `SO_SNDBUF` of every accepted socket, in bytes: the kernel memory a client that stops
    /// reading can pin (default 64 KiB; the kernel doubles it for bookkeeping). 0 leaves the
    /// kernel's autotuning, which grows to several MiB per socket.
    pub send_buffer_bytes: usize,

    // Hostile clients: what answers and history may hold (docs/design.md).
    /// Most bytes of messages in one answer: a `history` reply (`/ws`, `/rpc`, the `/api`
    /// history) or a `/poll` answer (default 256 KiB). An answer holds at least one message;
    /// the rest comes with the next request (`since`, or the poll's cursor).
    pub history_page_bytes: usize,
    /// Bytes held at once, across the process, in `/rpc`, `/poll` and `/api` history answers
    /// that their clients have not read yet (default 64 MiB). An answer that does not fit waits
    /// a second, then is refused with 503 `unavailable`.
    pub answer_budget_bytes: usize,
    /// In-memory broker: bytes of history kept across every channel (default 64 MiB); past
    /// it the oldest messages of channels without subscribers go first, then the oldest of
    /// all. (Redis: the memory is Redis's own, bounded by its `maxmemory`.)
    pub history_max_bytes: usize,
    /// In-memory broker: channels at once (default 100,000); publishing or subscribing to a
    /// new channel past it is refused (`too_many_channels`).
    pub max_channels: usize,
    /// Deepest nesting of arrays and objects in published `data` (default 64); deeper data is
    /// refused (`too_deep`).
    pub max_json_depth: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8765)),
            jwt_secret: None,
            api_key: None,
            allowed_origins: Vec::new(),
            max_connections: 10_000,
            max_message_size: 64 * 1024,
            max_subscriptions: 128,
            publish_rate: 50,
            client_queue_bytes: 1 << 20,
            history_size: 100,
            history_ttl_secs: 300,
            presence: true,
            auth_timeout_secs: 10,
            ping_interval_secs: 20,
            shutdown_timeout_secs: 5,
            broker: BrokerConfig::Memory,
            presence_ttl_secs: 10,
            poll_timeout_secs: 25,
            sse_heartbeat_secs: 15,
            send_timeout_secs: 30,
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            send_buffer_bytes: 64 * 1024,
            history_page_bytes: 256 * 1024,
            answer_budget_bytes: 64 << 20,
            history_max_bytes: 64 << 20,
            max_channels: 100_000,
            max_json_depth: 64,
        }
    }
}

/// Which broker carries fan-out, history and presence. Parsed from `"memory"` or a
/// `redis://[USER:PASSWORD@]HOST[:PORT][/DB]` URL; shown (`Display`, `Debug`, logs) without
/// the password.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum BrokerConfig {
    /// In this process (the default): one node.
    #[default]
    Memory,
    /// Redis at this URL: many nodes.
    Redis(String),
}

/// A `broker` value that is neither `memory` nor a usable `redis://` URL.
#[derive(Clone, Debug, thiserror::Error)]
#[error("invalid broker {given:?}: {why} (expected \"memory\" or redis://HOST:PORT/DB)")]
pub struct BrokerConfigError {
    given: String,
    why: String,
}

impl FromStr for BrokerConfig {
    type Err = BrokerConfigError;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let error = |why: String| BrokerConfigError {
            given: redact(given),
            why,
        };
        if given == "memory" {
            return Ok(Self::Memory);
        }
        if !given.starts_with("redis://") {
            return Err(error("unknown broker".into()));
        }
        ::redis::Client::open(given).map_err(|err| error(err.to_string()))?;
        Ok(Self::Redis(given.to_owned()))
    }
}

impl TryFrom<String> for BrokerConfig {
    type Error = BrokerConfigError;

    fn try_from(given: String) -> Result<Self, Self::Error> {
        given.parse()
    }
}

impl fmt::Display for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Redis(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The URL with the password of its user-info part replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = rest[..at].find(':') else {
        return url.to_owned();
    };
    format!("{scheme}://{}:***{}", &rest[..colon], &rest[at..])
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid config {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: toml::de::Error,
    },
}

impl Config {
    /// Reads a TOML file; keys not in the file keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: shown,
            source,
        })
    }

    /// History retention.
    pub fn history_ttl(&self) -> Duration {
        Duration::from_secs(self.history_ttl_secs)
    }

    /// How long a silent Redis node's clients stay in presence.
    pub fn presence_ttl(&self) -> Duration {
        Duration::from_secs(self.presence_ttl_secs.max(1))
    }

    /// Longest wait of a `/poll` request.
    pub fn poll_timeout(&self) -> Duration {
        Duration::from_secs(self.poll_timeout_secs)
    }

    /// Time between two `/sse` heartbeats.
    pub fn sse_heartbeat(&self) -> Duration {
        Duration::from_secs(self.sse_heartbeat_secs.max(1))
    }

    /// How long a response may wait on a client that does not read.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.send_timeout_secs.max(1))
    }

    /// Deadline for a request head (and for an idle keep-alive connection).
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs.max(1))
    }

    /// Deadline for a request body.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs.max(1))
    }

    /// The send buffer to set on accepted sockets, if any.
    pub fn send_buffer(&self) -> Option<usize> {
        (self.send_buffer_bytes > 0).then_some(self.send_buffer_bytes)
    }

    /// Deadline for the first `auth` message.
    pub fn auth_timeout(&self) -> Duration {
        Duration::from_secs(self.auth_timeout_secs)
    }

    /// The engine configuration for WebSocket connections.
    pub fn websocket(&self) -> ripple::Config {
        let interval =
            (self.ping_interval_secs > 0).then(|| Duration::from_secs(self.ping_interval_secs));
        ripple::Config::default()
            .max_message_size(self.max_message_size)
            .keepalive(interval, interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults() {
        let config: Config =
            toml::from_str("bind = \"127.0.0.1:9000\"\nhistory_size = 5\n").unwrap();
        assert_eq!(config.bind.port(), 9000);
        assert_eq!(config.history_size, 5);
        assert_eq!(config.max_subscriptions, 128);
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
    }

    #[test]
    fn broker_is_memory_or_a_redis_url() {
        assert_eq!(Config::default().broker, BrokerConfig::Memory);
        let config: Config = toml::from_str("broker = \"redis://127.0.0.1:6380/2\"\n").unwrap();
        assert_eq!(
            config.broker,
            BrokerConfig::Redis("redis://127.0.0.1:6380/2".into())
        );
        assert_eq!(
            "memory".parse::<BrokerConfig>().unwrap(),
            BrokerConfig::Memory
        );
        let err = "nats://x".parse::<BrokerConfig>().unwrap_err().to_string();
        assert!(
            err.contains("nats://x") && err.contains("redis://"),
            "{err}"
        );
        assert!(toml::from_str::<Config>("broker = \"mysql://x\"").is_err());
    }

    #[test]
    fn broker_urls_are_shown_without_their_password() {
        let broker: BrokerConfig = "redis://app:s3cret@10.0.0.5:6379/1".parse().unwrap();
        assert_eq!(broker.to_string(), "redis://app:***@10.0.0.5:6379/1");
        assert_eq!(format!("{broker:?}"), "redis://app:***@10.0.0.5:6379/1");
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://:***@h:1/0");
    }
}
