//! Run with: cargo run --release -p ripple-proto --example deflate_memory
//!
//! Memory per connection of permessage-deflate, by setting: 1,000 server connections each
//! receive one compressed message and send one (so inflater and, with context takeover,
//! compressor exist), and the process's resident memory growth is divided by 1,000. Linux only
//! (reads /proc/self/statm). The table in docs/design.md comes from this program.

use std::time::Instant;

use ripple_proto::extension::deflate::{Agreed, Deflate, DeflateConfig};
use ripple_proto::{Config, Connection, Role};

const CONNECTIONS: usize = 1000;

fn main() {
    let settings: [(&str, Agreed); 6] = [
        (
            "no compression",
            Agreed {
                send_no_context: true,
                send_window: 0,
                recv_no_context: true,
                recv_window: 0,
            },
        ),
        (
            "default: server no context, client window 12",
            agreed(true, 15, false, 12),
        ),
        (
            "server no context, client window 15 (client did not offer a limit)",
            agreed(true, 15, false, 15),
        ),
        (
            "server no context, client window 9",
            agreed(true, 15, false, 9),
        ),
        (
            "context takeover both ways, windows 15/15",
            agreed(false, 15, false, 15),
        ),
        (
            "context takeover both ways, windows 12/12",
            agreed(false, 12, false, 12),
        ),
    ];
    // Each setting is measured in a fresh process: freed memory is not returned to the system,
    // so measuring one after another in the same process would undercount.
    if let Some(index) = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<usize>().ok())
    {
        let Some((_, agreed)) = settings.get(index) else {
            return;
        };
        let message =
            "{\"user\":\"alice\",\"text\":\"hello, everyone in the room\",\"ts\":1}".repeat(20);
        let before = rss_kib();
        let connections: Vec<Connection> = (0..CONNECTIONS)
            .map(|_| exercise(*agreed, &message))
            .collect();
        let after = rss_kib();
        print!(
            "{:.1}",
            after.saturating_sub(before) as f64 / CONNECTIONS as f64
        );
        drop(connections);
        return;
    }
    let Ok(program) = std::env::current_exe() else {
        return;
    };
    println!("| setting | KiB per connection |\n| --- | --- |");
    for (index, (name, _)) in settings.iter().enumerate() {
        let output = std::process::Command::new(&program)
            .arg(index.to_string())
            .output();
        let figure = output
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        println!("| {name} | {figure} |");
    }
}

fn agreed(
    send_no_context: bool,
    send_window: u8,
    recv_no_context: bool,
    recv_window: u8,
) -> Agreed {
    Agreed {
        send_no_context,
        send_window,
        recv_no_context,
        recv_window,
    }
}

/// A server connection that received one compressed message and sent one.
fn exercise(agreed: Agreed, message: &str) -> Connection {
    let config = DeflateConfig::default();
    let mut server = if agreed.send_window == 0 {
        Connection::new(Role::Server, Config::default(), Instant::now())
    } else {
        Connection::with_extension(
            Role::Server,
            Config::default(),
            Box::new(Deflate::new(agreed, &config)),
            Instant::now(),
        )
    };
    let peer = Agreed {
        send_no_context: agreed.recv_no_context,
        send_window: agreed.recv_window,
        recv_no_context: agreed.send_no_context,
        recv_window: agreed.send_window,
    };
    let mut client = if agreed.send_window == 0 {
        Connection::new(Role::Client, Config::default().mask_seed(1), Instant::now())
    } else {
        Connection::with_extension(
            Role::Client,
            Config::default().mask_seed(1),
            Box::new(Deflate::new(peer, &config)),
            Instant::now(),
        )
    };
    let _ = client.send_text(message);
    while let Some(bytes) = client.poll_transmit() {
        server.receive(&bytes);
    }
    while server.poll_event().is_some() {}
    let _ = server.send_text(message);
    while server.poll_transmit().is_some() {}
    server.release_buffers();
    server
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}
