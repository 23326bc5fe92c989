//! Which servers `ripple bench` may load: this machine's loopback addresses, unless
//! `--allow-remote` says otherwise.

use std::net::IpAddr;

use url::{Host, Url};

/// Refuses a URL whose host is not (or does not resolve only to) a loopback address.
pub(crate) async fn check_loopback(url: &Url) -> Result<(), String> {
    let port = url.port_or_known_default().unwrap_or(80);
    let addresses: Vec<IpAddr> = match url.host() {
        Some(Host::Ipv4(ip)) => vec![ip.into()],
        Some(Host::Ipv6(ip)) => vec![ip.into()],
        Some(Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|err| format!("cannot resolve {name}: {err}"))?
            .map(|addr| addr.ip())
            .collect(),
        None => return Err(format!("{url} has no host")),
    };
    if addresses.is_empty() {
        return Err(format!("{url}: the host resolves to no address"));
    }
    if let Some(remote) = addresses.iter().find(|ip| !is_loopback(**ip)) {
        return Err(format!(
            "{url} is not on this machine ({remote} is not a loopback address); \
             load-test only servers you run, and say so with --allow-remote"
        ));
    }
    Ok(())
}

/// 127.0.0.0/8, ::1, and IPv4-mapped loopback (::ffff:127.x.y.z).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str) -> Result<(), String> {
        let url = Url::parse(url).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(check_loopback(&url))
    }

    #[test]
    fn loopback_literals_pass() {
        assert!(check("ws://127.0.0.1:1/").is_ok());
        assert!(check("ws://127.1.2.3:1/").is_ok());
        assert!(check("ws://[::1]:1/").is_ok());
        assert!(check("ws://[::ffff:127.0.0.1]:1/").is_ok());
        assert!(check("ws://localhost:1/").is_ok());
    }

    #[test]
    fn others_are_refused() {
        for url in [
            "ws://10.0.0.1/",
            "ws://192.168.1.1/",
            "wss://[2001:db8::1]/",
            "ws://0.0.0.0/",
        ] {
            let err = check(url).unwrap_err();
            assert!(err.contains("--allow-remote"), "{url}: {err}");
        }
    }
}
