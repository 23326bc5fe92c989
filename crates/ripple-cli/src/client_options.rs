//! The options every client subcommand shares: URL, headers, subprotocol, token, origin, TLS
//! trust and compression, turned into a [`ripple::ClientBuilder`].

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ripple::{ClientBuilder, Config};
use url::Url;

/// Request and TLS options for opening connections.
#[derive(Args, Clone, Debug)]
pub(crate) struct ClientArgs {
    /// Extra request header, `Name: value` (repeatable)
    #[arg(short = 'H', long = "header", value_name = "K:V", value_parser = parse_header)]
    pub(crate) headers: Vec<(String, String)>,

    /// Offer this subprotocol (repeatable; in order of preference)
    #[arg(long = "subprotocol", value_name = "NAME")]
    pub(crate) subprotocols: Vec<String>,

    /// Send `Authorization: Bearer TOKEN`
    #[arg(
        long,
        value_name = "TOKEN",
        env = "RIPPLE_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,

    /// Set the Origin header
    #[arg(long, value_name = "ORIGIN")]
    pub(crate) origin: Option<String>,

    /// wss: accept any server certificate (tests only)
    #[arg(short = 'k', long)]
    pub(crate) insecure: bool,

    /// wss: also trust the CA certificates in this PEM file
    #[arg(long, value_name = "FILE")]
    pub(crate) cacert: Option<PathBuf>,

    /// Offer permessage-deflate compression (connect: the default; bench: off unless given)
    #[arg(long, overrides_with = "no_compress")]
    pub(crate) compress: bool,

    /// Do not offer compression
    #[arg(long, overrides_with = "compress")]
    pub(crate) no_compress: bool,
}

impl ClientArgs {
    /// Whether to offer compression: the flag given last, else `default`.
    pub(crate) fn compression(&self, default: bool) -> bool {
        match (self.compress, self.no_compress) {
            (true, _) => true,
            (_, true) => false,
            _ => default,
        }
    }

    /// A builder for `url` with these options and `config` (whose compression setting the
    /// caller has already chosen).
    pub(crate) fn builder(&self, url: &Url, config: Config) -> anyhow::Result<ClientBuilder> {
        let mut builder = ClientBuilder::new(url.as_str()).config(config);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        for protocol in &self.subprotocols {
            builder = builder.protocol(protocol);
        }
        if let Some(token) = &self.token {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(origin) = &self.origin {
            builder = builder.origin(origin);
        }
        if let Some(path) = &self.cacert {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading --cacert {}", path.display()))?;
            builder = builder.root_ca_pem(pem);
        }
        Ok(builder.danger_accept_invalid_certs(self.insecure))
    }
}

/// Applies the compression choice to a config.
pub(crate) fn with_compression(config: Config, compress: bool) -> Config {
    if compress {
        config.compression(Some(ripple::DeflateConfig::default()))
    } else {
        config.compression(None)
    }
}

/// Parses a WebSocket URL; `host:port/path` without a scheme means `ws://`.
pub(crate) fn parse_url(text: &str) -> Result<Url, String> {
    let full = if text.contains("://") {
        text.to_owned()
    } else {
        format!("ws://{text}")
    };
    let url = Url::parse(&full).map_err(|err| format!("{text:?} is not a URL: {err}"))?;
    match url.scheme() {
        "ws" | "wss" => {}
        other => return Err(format!("{text:?}: scheme {other:?} is not ws or wss")),
    }
    if url.host().is_none() {
        return Err(format!("{text:?} has no host"));
    }
    Ok(url)
}

/// Parses `Name: value` (or `Name:value`).
fn parse_header(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once(':') else {
        return Err(format!("{text:?} is not `Name: value`"));
    };
    let name = name.trim();
    let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token_char) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("X-Test: a: b "),
            Ok(("X-Test".into(), "a: b".into()))
        );
        assert_eq!(parse_header("k:v"), Ok(("k".into(), "v".into())));
        assert!(parse_header("novalue").is_err());
        assert!(parse_header(": v").is_err());
        assert!(parse_header("bad name: v").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("127.0.0.1:8765/echo").unwrap().as_str(),
            "ws://127.0.0.1:8765/echo"
        );
        assert_eq!(parse_url("wss://example.com/").unwrap().scheme(), "wss");
        assert!(parse_url("http://example.com/").is_err());
        assert!(parse_url("ws://").is_err());
    }
}
