//! How a received message looks: one line in pipe mode, a `<` line (or pretty JSON) at the
//! prompt.

use ripple::Message;

use crate::hex;
use crate::style::Style;

/// The most bytes of a binary message shown at the prompt (the rest is counted, not shown).
const SHOWN_BINARY: usize = 256;

/// Pipe mode: text as is with line breaks escaped (`\n`, `\r`), so that each message is
/// exactly one line; binary as lowercase hex.
pub(crate) fn pipe_line(message: &Message) -> String {
    match message {
        Message::Text(text) => escape_line_breaks(text.as_str()),
        Message::Binary(bytes) => hex::encode(bytes),
    }
}

/// Interactive mode: `< text`, `< {pretty JSON}` or `< [binary, N bytes] hex…`, ending with a
/// newline.
pub(crate) fn prompt_line(message: &Message, pretty_json: bool, style: Style) -> String {
    let marker = style.incoming();
    match message {
        Message::Text(text) => {
            let text = text.as_str();
            match pretty_json.then(|| pretty(text)).flatten() {
                Some(json) => format!("{marker} {json}\n"),
                None => format!("{marker} {text}\n"),
            }
        }
        Message::Binary(bytes) => {
            let shown = &bytes[..bytes.len().min(SHOWN_BINARY)];
            let more = if shown.len() < bytes.len() { "…" } else { "" };
            let label = style.info(&format!("[binary, {} bytes]", bytes.len()));
            format!("{marker} {label} {}{more}\n", hex::encode(shown))
        }
    }
}

/// The text pretty-printed, when it is a JSON object or array.
fn pretty(text: &str) -> Option<String> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    serde_json::to_string_pretty(&value).ok()
}

fn escape_line_breaks(text: &str) -> String {
    if !text.contains(['\n', '\r']) {
        return text.to_owned();
    }
    text.replace('\r', "\\r").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Style = Style::plain();

    #[test]
    fn pipe_lines() {
        assert_eq!(pipe_line(&Message::from("hello")), "hello");
        assert_eq!(pipe_line(&Message::from("a\nb\r\n")), "a\\nb\\r\\n");
        assert_eq!(pipe_line(&Message::from(vec![0u8, 0xff])), "00ff");
    }

    #[test]
    fn prompt_lines() {
        assert_eq!(prompt_line(&Message::from("hi"), false, PLAIN), "< hi\n");
        assert_eq!(
            prompt_line(&Message::from(b"hi".to_vec()), false, PLAIN),
            "< [binary, 2 bytes] 6869\n"
        );
        let long = prompt_line(&Message::from(vec![0u8; 300]), false, PLAIN);
        assert!(long.starts_with("< [binary, 300 bytes] 0000"));
        assert!(long.ends_with("00…\n"));
    }

    #[test]
    fn json_pretty_printing_keeps_key_order() {
        let message = Message::from(r#"{"b":1,"a":[true]}"#);
        assert_eq!(
            prompt_line(&message, true, PLAIN),
            "< {\n  \"b\": 1,\n  \"a\": [\n    true\n  ]\n}\n"
        );
        assert_eq!(
            prompt_line(&message, false, PLAIN),
            "< {\"b\":1,\"a\":[true]}\n"
        );
        // Not JSON, or a bare scalar: shown as is.
        assert_eq!(
            prompt_line(&Message::from("{oops"), true, PLAIN),
            "< {oops\n"
        );
        assert_eq!(prompt_line(&Message::from("42"), true, PLAIN), "< 42\n");
    }
}
