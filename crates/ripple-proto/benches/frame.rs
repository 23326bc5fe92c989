//! Frame headers (RFC 6455 §5.2) and a server connection receiving frames.
//!
//! - `frame_header/parse` and `frame_header/encode` for each length encoding: 7-bit, 16-bit and
//!   64-bit, masked as a client sends them;
//! - `encode_masked`: a whole masked frame as a client sends it, by [`encode_frame`] (above 128
//!   bytes, the copy and the mask in one pass) and by `copy_then_mask` (the copy, then the mask
//!   over the copy: what `encode_frame` did before), from a chat message to a 64 KiB payload;
//! - `connection_receive`: a fresh server [`Connection`] receives a read's worth of frames and
//!   every event is drained: 1000 masked 32-byte text frames, then one masked 64 KiB binary
//!   frame. Throughput is wire bytes per second.
//!
//! `cargo bench -p ripple-proto --bench frame`.

use std::hint::black_box;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ripple_proto::frame::encode_frame;
use ripple_proto::mask::apply_mask;
use ripple_proto::{Config, Connection, Event, FrameHeader, OpCode, Role};

/// The masking key of the RFC 6455 §5.7 examples.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn header(payload_len: u64) -> FrameHeader {
    FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask: Some(KEY),
        payload_len,
    }
}

const LENGTHS: [(&str, u64); 3] = [("7bit", 32), ("16bit", 1 << 10), ("64bit", 1 << 20)];

fn frame_header(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_header");
    for (label, len) in LENGTHS {
        let mut wire = BytesMut::new();
        header(len).encode(&mut wire);
        group.bench_function(BenchmarkId::new("parse", label), |b| {
            b.iter(|| FrameHeader::parse(black_box(&wire[..])));
        });
        let header = header(len);
        let mut out = BytesMut::with_capacity(16);
        group.bench_function(BenchmarkId::new("encode", label), |b| {
            b.iter(|| {
                out.clear();
                black_box(&header).encode(&mut out);
                black_box(&out);
            });
        });
    }
    group.finish();
}

/// `encode_frame` as it was before the copy and the mask were fused: the copy, then the mask
/// over the copy. Not inlined, as `encode_frame` is not into this crate.
#[inline(never)]
fn copy_then_mask(
    dst: &mut BytesMut,
    opcode: OpCode,
    fin: bool,
    rsv: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) {
    let header = FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    dst.reserve(header.encoded_len() + payload.len());
    header.encode(dst);
    let start = dst.len();
    dst.put_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut dst[start..], key, 0);
    }
}

const PAYLOADS: [(&str, usize); 5] = [
    ("32B", 32),
    ("125B", 125),
    ("256B", 256),
    ("1KiB", 1 << 10),
    ("64KiB", 64 << 10),
];

fn encode_masked(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_masked");
    for (label, size) in PAYLOADS {
        let payload = vec![0x5a_u8; size];
        let mut out = BytesMut::with_capacity(size + 16);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("encode_frame", label), |b| {
            b.iter(|| {
                out.clear();
                encode_frame(
                    &mut out,
                    OpCode::Binary,
                    true,
                    0,
                    Some(KEY),
                    black_box(&payload),
                );
                black_box(&out);
            });
        });
        group.bench_function(BenchmarkId::new("copy_then_mask", label), |b| {
            b.iter(|| {
                out.clear();
                copy_then_mask(
                    &mut out,
                    OpCode::Binary,
                    true,
                    0,
                    Some(KEY),
                    black_box(&payload),
                );
                black_box(&out);
            });
        });
    }
    group.finish();
}

/// `count` frames of `payload`, masked, as one client would send them.
fn masked_frames(opcode: OpCode, payload: &[u8], count: usize) -> Vec<u8> {
    let mut wire = BytesMut::new();
    for _ in 0..count {
        encode_frame(&mut wire, opcode, true, 0, Some(KEY), payload);
    }
    wire.to_vec()
}

fn connection_receive(c: &mut Criterion) {
    let inputs = [
        (
            "1000x32B_text",
            masked_frames(OpCode::Text, b"0123456789abcdef0123456789abcdef", 1000),
            1000,
        ),
        (
            "64KiB_binary",
            masked_frames(OpCode::Binary, &vec![0xa5; 64 << 10], 1),
            1,
        ),
    ];
    let mut group = c.benchmark_group("connection_receive");
    for (label, wire, messages) in &inputs {
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(*label, |b| {
            b.iter_batched(
                || Connection::new(Role::Server, Config::default(), Instant::now()),
                |mut conn| {
                    conn.receive(black_box(wire));
                    let mut received = 0;
                    while let Some(event) = conn.poll_event() {
                        if let Event::Message(message) = event {
                            received += 1;
                            black_box(message);
                        }
                    }
                    assert_eq!(received, *messages, "{:?}", conn.failure());
                    conn
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, frame_header, encode_masked, connection_receive);
criterion_main!(benches);
