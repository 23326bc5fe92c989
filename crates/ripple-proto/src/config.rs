//! Limits and options of an open connection.

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
    /// Seed for the masking-key generator (clients only). `None` seeds from the OS; a fixed seed
    /// makes tests repeatable and must not be used in production (RFC 6455 §5.3: keys MUST be
    /// unpredictable).
    pub mask_seed: Option<u64>,
}

impl Config {
    /// The default message limit: 1 MiB.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

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
            mask_seed: None,
        }
    }
}
