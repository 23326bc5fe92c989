//! Limits, timers and options of an open connection.

use std::time::Duration;

/// Options for a [`Connection`](crate::Connection). Every limit protects the endpoint from its
/// peer and can be changed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest message, after reassembly and decompression. Larger ones fail the connection
    /// with 1009. Default 1 MiB, as python-websockets.
    pub max_message_size: usize,
    /// The largest single frame. Default: the message limit.
    pub max_frame_size: usize,
    /// The most frames one incoming message may arrive in. More fail the connection with 1009,
    /// so that a peer cannot keep a message open forever with empty continuation frames, which
    /// the byte limit never sees. Default 131,072 (2^17): twice the 65,536 frames of the
    /// Autobahn TestSuite's largest fragmented case (a 4 MiB message in 64-byte fragments).
    pub max_message_frames: usize,
    /// Seed for the masking-key generator (clients only). `None` seeds from the OS; a fixed seed
    /// makes tests repeatable and must not be used in production (RFC 6455 §5.3: keys MUST be
    /// unpredictable).
    pub mask_seed: Option<u64>,
    /// Send a keepalive ping this long after the previous one (or after the connection opened);
    /// `None` turns keepalive off. Default 20 s, as python-websockets. The caller's clock drives
    /// it: see [`Connection::handle_timeout`](crate::Connection::handle_timeout).
    pub ping_interval: Option<Duration>,
    /// Fail the connection with 1011 "keepalive ping timeout" when a keepalive ping has had no
    /// pong for this long; `None` keeps sending pings but never gives up. Default 20 s, as
    /// python-websockets. Only a pong counts: other data from the peer does not answer a ping.
    pub ping_timeout: Option<Duration>,
    /// Time allowed for the closing handshake, from the moment the connection stops being open
    /// (this end's close, the peer's, a failure, the end of the transport) until the transport
    /// can be dropped. Default 10 s, as python-websockets.
    pub close_timeout: Duration,
}

impl Config {
    /// The default message limit: 1 MiB.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

    /// The default frame-count limit per message: 131,072.
    pub const DEFAULT_MAX_MESSAGE_FRAMES: usize = 1 << 17;

    /// The default keepalive interval: 20 s.
    pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);

    /// The default time a keepalive ping waits for its pong: 20 s.
    pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(20);

    /// The default closing-handshake timeout: 10 s.
    pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

    /// Sets both the message and the frame limit.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self.max_frame_size = bytes;
        self
    }

    /// Sets the frame limit alone.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets the most frames one incoming message may arrive in.
    pub fn max_message_frames(mut self, frames: usize) -> Self {
        self.max_message_frames = frames;
        self
    }

    /// Sets the keepalive interval and ping timeout; an interval of `None` turns keepalive off.
    pub fn keepalive(mut self, interval: Option<Duration>, timeout: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self.ping_timeout = timeout;
        self
    }

    /// Sets the closing-handshake timeout.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Fixes the masking-key seed (tests only).
    pub fn mask_seed(mut self, seed: u64) -> Self {
        self.mask_seed = Some(seed);
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            max_frame_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            max_message_frames: Self::DEFAULT_MAX_MESSAGE_FRAMES,
            mask_seed: None,
            ping_interval: Some(Self::DEFAULT_PING_INTERVAL),
            ping_timeout: Some(Self::DEFAULT_PING_TIMEOUT),
            close_timeout: Self::DEFAULT_CLOSE_TIMEOUT,
        }
    }
}
