//! Binary payloads as hexadecimal text: how binary messages are shown and how `/binary` reads
//! them.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex, two digits a byte, no separators.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Reads hex digits; whitespace between them and a leading `0x` are allowed
/// (`68656c6c6f`, `68 65 6c`, `0xFF00`).
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim();
    let body = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let digits: Vec<u8> = body
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| {
            c.to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
                .ok_or_else(|| format!("{c:?} is not a hex digit"))
        })
        .collect::<Result<_, _>>()?;
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "odd number of hex digits ({}): each byte takes two",
            digits.len()
        ));
    }
    Ok(digits
        .chunks(2)
        .map(|pair| pair[0] << 4 | pair[1])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xfe, 0xff];
        assert_eq!(encode(&bytes), "00017f80feff");
        assert_eq!(decode(&encode(&bytes)), Ok(bytes.to_vec()));
        assert_eq!(encode(b""), "");
        assert_eq!(decode(""), Ok(vec![]));
    }

    #[test]
    fn separators_prefix_and_case() {
        assert_eq!(decode("68 65 6c 6C 6f"), Ok(b"hello".to_vec()));
        assert_eq!(decode("0xFF00"), Ok(vec![0xff, 0]));
        assert_eq!(decode("  de ad\tbe ef "), Ok(vec![0xde, 0xad, 0xbe, 0xef]));
    }

    #[test]
    fn bad_hex() {
        assert!(decode("abc").unwrap_err().contains("odd"));
        assert!(decode("zz").unwrap_err().contains("'z'"));
        assert!(decode("0x0g").is_err());
    }
}
