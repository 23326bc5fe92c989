//! Options of a connection: the core's limits and timers, plus buffers and the handshake timeout
//! that need a runtime.

use std::time::Duration;

use proto::extension::deflate::DeflateConfig;

/// Options shared by clients and servers. Every default protects the endpoint; every one can be
/// changed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The protocol core's limits (message and frame size, default 1 MiB; frames per message).
    /// Its keepalive and close timeout are not read: the fields below set them.
    pub protocol: proto::Config,
    /// Send a ping this often (default 20 s, as python-websockets); `None` turns keepalive off.
    /// The core sends the pings; the reader drives its timer (see `proto::Config::ping_interval`).
    pub ping_interval: Option<Duration>,
    /// Close with 1011 when a keepalive ping gets no pong within this time (default 20 s);
    /// `None` keeps sending pings but never gives up.
    pub ping_timeout: Option<Duration>,
    /// Time allowed for the opening handshake (default 10 s).
    pub open_timeout: Duration,
    /// Time allowed for the closing handshake (default 10 s).
    pub close_timeout: Duration,
    /// `send` buffers up to this many bytes before it waits for the socket (default 32 KiB).
    pub write_buffer_high: usize,
    /// The most bytes read from the socket at once (default 64 KiB).
    pub read_chunk: usize,
    /// Drop the read and write buffers whenever a read would wait with nothing buffered, so
    /// that an idle connection holds no buffer memory (default `true`). A connection that is
    /// never idle for long, such as a load generator's, pays for that with an allocation (and
    /// the page faults of fresh memory) per burst of messages; `false` keeps them.
    pub release_idle_buffers: bool,
    /// permessage-deflate (RFC 7692): on by default, with settings that keep memory per
    /// connection small (see `DeflateConfig`); `None` turns it off.
    pub compression: Option<DeflateConfig>,
}

impl Config {
    /// Sets the largest message (and frame) accepted from the peer.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.protocol = self.protocol.max_message_size(bytes);
        self
    }

    /// Sets the most frames one message from the peer may arrive in (default 131,072; see
    /// `proto::Config::max_message_frames`).
    pub fn max_message_frames(mut self, frames: usize) -> Self {
        self.protocol = self.protocol.max_message_frames(frames);
        self
    }

    /// Sets the keepalive interval and timeout; `None` turns keepalive off.
    pub fn keepalive(mut self, interval: Option<Duration>, timeout: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self.ping_timeout = timeout;
        self
    }

    /// Sets the opening-handshake timeout.
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// Sets the closing-handshake timeout.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets compression options; `None` turns permessage-deflate off.
    pub fn compression(mut self, compression: Option<DeflateConfig>) -> Self {
        self.compression = compression;
        self
    }

    /// Sets the write buffer's high-water mark.
    pub fn write_buffer_high(mut self, bytes: usize) -> Self {
        self.write_buffer_high = bytes;
        self
    }

    /// Sets whether an idle connection gives its buffers back (see
    /// [`Config::release_idle_buffers`]).
    pub fn release_idle_buffers(mut self, release: bool) -> Self {
        self.release_idle_buffers = release;
        self
    }

    /// The core's configuration: `protocol` with this config's keepalive and close timeout.
    pub(crate) fn core(&self) -> proto::Config {
        self.protocol
            .clone()
            .keepalive(self.ping_interval, self.ping_timeout)
            .close_timeout(self.close_timeout)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            protocol: proto::Config::default(),
            ping_interval: Some(proto::Config::DEFAULT_PING_INTERVAL),
            ping_timeout: Some(proto::Config::DEFAULT_PING_TIMEOUT),
            open_timeout: Duration::from_secs(10),
            close_timeout: proto::Config::DEFAULT_CLOSE_TIMEOUT,
            write_buffer_high: 32 * 1024,
            read_chunk: 64 * 1024,
            release_idle_buffers: true,
            compression: Some(DeflateConfig::default()),
        }
    }
}
