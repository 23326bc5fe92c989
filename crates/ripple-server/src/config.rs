//! Server configuration: defaults that need no outside service, overridden by a TOML file,
//! then environment variables, then flags (the command line applies those in that order).

use std::net::SocketAddr;
use std::path::Path;
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
    /// Publishes per second per connection; 0 = unlimited (default, as Centrifugo).
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
            publish_rate: 0,
            client_queue_bytes: 1 << 20,
            history_size: 100,
            history_ttl_secs: 300,
            presence: true,
            auth_timeout_secs: 10,
            ping_interval_secs: 20,
            shutdown_timeout_secs: 5,
        }
    }
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
}
