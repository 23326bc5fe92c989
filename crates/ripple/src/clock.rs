//! The clock the protocol core's timers run on.

/// Now, by tokio's clock, as the `std` instant the core takes: tests that pause tokio's time
/// pause the core's keepalive and close timers with it.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
