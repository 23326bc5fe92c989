//! `ripple token`: mints a development token signed with the server's secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use ripple_server::auth::{Claims, mint};

/// Options of `ripple token`.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The user (the token's `sub`)
    #[arg(long)]
    pub(crate) sub: String,
    /// Channel patterns the user may use, e.g. 'room:*' (repeatable or comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub(crate) channels: Vec<String>,
    /// Lifetime in seconds
    #[arg(long, default_value_t = 3600)]
    pub(crate) ttl: u64,
    /// The server's HS256 secret
    #[arg(long, env = "RIPPLE_JWT_SECRET", hide_env_values = true)]
    pub(crate) jwt_secret: String,
}

/// Prints the token on stdout.
pub(crate) fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?;
    let exp = (now + Duration::from_secs(args.ttl)).as_secs();
    let claims = Claims {
        sub: args.sub.clone(),
        exp,
        channels: args.channels.clone(),
    };
    println!("{}", mint(&claims, &args.jwt_secret)?);
    Ok(())
}
