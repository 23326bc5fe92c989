//! Payload masking (RFC 6455 §5.3).
//!
//! Masking XORs the payload with a 4-byte key, cycling from `offset`. The bulk runs one `u64`
//! word at a time over `chunks_exact_mut`, which the compiler vectorises; no `unsafe` needed.
//! `benches/mask.rs` measures it against the byte-at-a-time loop. [`mask_into`] masks while it
//! copies, for a sender that must mask what it sends (RFC 6455 §5.3: a client masks every frame).

/// XORs `buf` with `key`, as if `buf` started `offset` bytes into the masked payload.
///
/// Masking and unmasking are the same operation, and a payload may be processed in pieces:
/// passing the number of bytes already processed as `offset` keeps the key aligned.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let rotated = rotate_key(key, offset);
    let word = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // Each whole word advanced the key by a multiple of 4, so the tail starts at `rotated[0]`.
    for (byte, k) in chunks
        .into_remainder()
        .iter_mut()
        .zip(rotated.iter().cycle())
    {
        *byte ^= k;
    }
}

/// Writes `src` masked with `key` into `dst`, in one pass: the copy and the XOR of
/// [`apply_mask`] fused. `dst` and `src` must have the same length (checked in debug builds;
/// otherwise the bytes past the shorter one's last whole word may be left out).
pub fn mask_into(dst: &mut [u8], src: &[u8], key: [u8; 4]) {
    debug_assert_eq!(dst.len(), src.len(), "mask_into needs equal lengths");
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut out = dst.chunks_exact_mut(8);
    let mut input = src.chunks_exact(8);
    for (out, input) in (&mut out).zip(&mut input) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(input);
        out.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // As in `apply_mask`: whole words leave the key where it started.
    for ((out, byte), k) in out
        .into_remainder()
        .iter_mut()
        .zip(input.remainder())
        .zip(key.iter().cycle())
    {
        *out = byte ^ k;
    }
}

/// The plain byte-at-a-time loop, kept as the reference the fast version is tested against.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}

fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut rotated = key;
    rotated.rotate_left(offset % 4);
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_5_7_masked_hello() {
        // "A single-frame masked text message" from RFC 6455 §5.7.
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn matches_bytewise_for_every_length_and_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..70 {
            for offset in 0..8 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = data.clone();
                let mut slow = data.clone();
                apply_mask(&mut fast, key, offset);
                apply_mask_bytewise(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn mask_into_equals_copy_then_mask() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..70 {
            let src: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
            let mut expected = src.clone();
            apply_mask_bytewise(&mut expected, key, 0);
            let mut dst = vec![0xee; len];
            mask_into(&mut dst, &src, key);
            assert_eq!(dst, expected, "len {len}");
        }
    }

    #[test]
    fn pieces_with_offsets_equal_one_pass() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = data.clone();
        let (a, rest) = pieces.split_at_mut(13);
        let (b, c) = rest.split_at_mut(30);
        apply_mask(a, key, 0);
        apply_mask(b, key, 13);
        apply_mask(c, key, 43);
        assert_eq!(whole, pieces);
    }
}
