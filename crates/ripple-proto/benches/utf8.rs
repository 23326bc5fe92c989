//! Incremental UTF-8 validation (RFC 6455 §8.1): [`Utf8Validator`] in one piece and in 1 KiB
//! pieces (which split code points in the multi-byte text) against `std::str::from_utf8`, on
//! ASCII and on multi-byte text.
//!
//! `cargo bench -p ripple-proto --bench utf8`; throughput is text bytes per second.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ripple_proto::utf8::Utf8Validator;

/// The longest prefix of `pattern` repeated that fits in `len` bytes, cut on a character
/// boundary.
fn text(pattern: &str, len: usize) -> Vec<u8> {
    let mut text = pattern.repeat(len / pattern.len() + 1);
    let mut end = len;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.into_bytes()
}

/// Feeds `pieces` and finishes, as a connection does for one text message.
fn validate<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut validator = Utf8Validator::new();
    for piece in pieces {
        if validator.feed(piece).is_err() {
            return false;
        }
    }
    validator.finish().is_ok()
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for (kind, pattern) in [("ascii", "ripple websocket "), ("multibyte", "κόσμε €𝄞 ")] {
        for (size, len) in [("32B", 32), ("64KiB", 64 << 10)] {
            let input = text(pattern, len);
            let label = format!("{kind}_{size}");
            group.throughput(Throughput::Bytes(input.len() as u64));
            group.bench_function(BenchmarkId::new("validator_one_piece", &label), |b| {
                b.iter(|| assert!(validate(std::iter::once(black_box(&input[..])))));
            });
            // At 32 B, 1 KiB pieces would be the one piece again.
            if input.len() > 1 << 10 {
                group.bench_function(BenchmarkId::new("validator_1KiB_pieces", &label), |b| {
                    b.iter(|| assert!(validate(black_box(&input[..]).chunks(1 << 10))));
                });
            }
            group.bench_function(BenchmarkId::new("std_from_utf8", &label), |b| {
                b.iter(|| assert!(std::str::from_utf8(black_box(&input[..])).is_ok()));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, utf8);
criterion_main!(benches);
