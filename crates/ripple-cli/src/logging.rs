//! Log output on stderr through `tracing`: warnings by default (info for `serve`, a server's
//! operator wants its start-up settings and refusals), more with `-v`, and `RUST_LOG` wins.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber; `verbosity` counts `-v` flags.
pub(crate) fn init(verbosity: u8, server: bool) {
    let default = match verbosity {
        0 if server => "info",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::style::Style::for_stderr() != crate::style::Style::plain())
        .with_target(false)
        .try_init();
}
