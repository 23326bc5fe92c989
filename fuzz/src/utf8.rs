//! [`Utf8Validator`] against `std::str::from_utf8`.

use ripple_proto::utf8::Utf8Validator;

/// Input layout: `[piece count k] [k piece lengths] [text …]`. The text is fed in pieces of
/// those lengths (the last piece takes the rest).
///
/// Asserts:
/// - (every `feed` is `Ok` and `finish` is `Ok`) == `std::str::from_utf8(text).is_ok()`;
/// - fail-fast, as documented: each `feed` is `Ok` exactly when the text fed so far is a prefix
///   of some valid UTF-8 (std reports no error, or only an incomplete sequence at the end);
/// - `is_complete()` after a successful `feed` exactly when the text so far is valid UTF-8.
pub fn differential(data: &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 16).min(rest.len());
    let (lengths, text) = rest.split_at(count);
    let whole = std::str::from_utf8(text).is_ok();

    let mut validator = Utf8Validator::new();
    let mut fed = 0;
    let mut all_ok = true;
    let pieces = lengths
        .iter()
        .map(|&len| usize::from(len))
        .chain([usize::MAX]);
    for len in pieces {
        let end = fed + len.min(text.len() - fed);
        let ok = validator.feed(&text[fed..end]).is_ok();
        fed = end;
        assert_eq!(ok, is_valid_prefix(&text[..fed]), "feed up to {fed}");
        if !ok {
            all_ok = false;
            break;
        }
        let valid_so_far = std::str::from_utf8(&text[..fed]).is_ok();
        assert_eq!(
            validator.is_complete(),
            valid_so_far,
            "is_complete at {fed}"
        );
    }
    let ok = all_ok && validator.finish().is_ok();
    assert_eq!(ok, whole);
}

/// Whether some continuation could make `bytes` valid UTF-8.
fn is_valid_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(err) => err.error_len().is_none(),
    }
}
