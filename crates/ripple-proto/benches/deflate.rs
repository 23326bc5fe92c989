//! permessage-deflate throughput: a server connection compressing what it sends, and a client
//! connection inflating what it receives, for JSON-like text of 1 KiB and 64 KiB (the kind of
//! payload chat and dashboards send). Throughput is uncompressed bytes per second.
//!
//! `cargo bench -p ripple-proto --bench deflate`.

// A benchmark that cannot set itself up has nothing to measure: failing loudly is right.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ripple_proto::extension::deflate::{
    DeflateConfig, accept_offer, accept_response, client_offer,
};
use ripple_proto::{Config, Connection, Event, Role};

/// A client and a server that negotiated the default settings.
fn pair() -> (Connection, Connection) {
    let config = DeflateConfig::default();
    let offer = client_offer(&config);
    let (answer, server_ext) =
        accept_offer(&[offer.as_bytes()], &config).expect("the default offer is accepted");
    let client_ext = accept_response(&answer, &config).expect("the server's answer is valid");
    let client = Connection::with_extension(
        Role::Client,
        Config::default().mask_seed(1),
        Box::new(client_ext),
        Instant::now(),
    );
    let server = Connection::with_extension(
        Role::Server,
        Config::default(),
        Box::new(server_ext),
        Instant::now(),
    );
    (client, server)
}

fn payload(len: usize) -> String {
    let mut text = String::with_capacity(len + 100);
    let mut i = 0u64;
    while text.len() < len {
        text.push_str(&format!(
            r#"{{"id":{i},"user":"user{}","price":{}.{:02},"side":"buy"}},"#,
            i % 97,
            100 + i % 13,
            i % 100
        ));
        i += 1;
    }
    text.truncate(len);
    text
}

fn drain(conn: &mut Connection) -> Vec<u8> {
    std::iter::from_fn(|| conn.poll_transmit())
        .flat_map(|b| b.to_vec())
        .collect()
}

fn compress(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate_send");
    for len in [1024, 64 * 1024] {
        let text = payload(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(len), &text, |b, text| {
            let (_, mut server) = pair();
            b.iter(|| {
                server.send_text(text).expect("open");
                black_box(drain(&mut server));
            });
        });
    }
    group.finish();
}

fn decompress(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate_receive");
    for len in [1024, 64 * 1024] {
        let text = payload(len);
        let (_, mut server) = pair();
        server.send_text(&text).expect("open");
        let wire = drain(&mut server);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(len), &wire, |b, wire| {
            b.iter_batched(
                || pair().0,
                |mut client| {
                    client.receive(wire);
                    assert!(matches!(client.poll_event(), Some(Event::Message(_))));
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, compress, decompress);
criterion_main!(benches);
