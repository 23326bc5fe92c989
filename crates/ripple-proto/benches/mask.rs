//! Payload masking (RFC 6455 §5.3): the word-at-a-time [`apply_mask`] against the byte-at-a-time
//! [`apply_mask_bytewise`] it is tested against, from a chat message to a large binary frame.
//!
//! `cargo bench -p ripple-proto --bench mask`; throughput is payload bytes per second.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ripple_proto::mask::{apply_mask, apply_mask_bytewise};

/// The masking key of the RFC 6455 §5.7 examples.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

const SIZES: [(&str, usize); 4] = [
    ("32B", 32),
    ("1KiB", 1 << 10),
    ("64KiB", 64 << 10),
    ("1MiB", 1 << 20),
];

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for (label, size) in SIZES {
        let mut payload = vec![0x5a_u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("apply_mask", label), |b| {
            b.iter(|| apply_mask(black_box(&mut payload[..]), black_box(KEY), 0));
        });
        group.bench_function(BenchmarkId::new("apply_mask_bytewise", label), |b| {
            b.iter(|| apply_mask_bytewise(black_box(&mut payload[..]), black_box(KEY), 0));
        });
    }
    group.finish();
}

criterion_group!(benches, mask);
criterion_main!(benches);
