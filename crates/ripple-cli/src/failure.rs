//! Errors and close frames in words a person can act on: what happened, and what to try.

use std::io;

use ripple::{CloseCode, CloseFrame, Error};

/// Why a connection could not be opened.
pub(crate) fn describe_open_error(target: &str, err: &Error) -> String {
    match err {
        Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
            format!("connection refused by {target}: is the server running?")
        }
        Error::Io(io) => format!("cannot connect to {target}: {io}"),
        Error::Rejected { status, body, .. } => {
            let mut text = format!(
                "server rejected the WebSocket handshake: HTTP {status} {}",
                reason_phrase(*status)
            );
            let body = String::from_utf8_lossy(body);
            let body = body.trim();
            if !body.is_empty() {
                text.push_str("\n  response body: ");
                text.push_str(&truncate(body, 1000).replace('\n', "\n  "));
            }
            text
        }
        Error::Tls(why) => format!(
            "TLS failure with {target}: {why}\n  (trust a private CA with --cacert FILE; \
             --insecure skips the check, for tests only)"
        ),
        Error::Timeout(what) => format!("{what} with {target} timed out"),
        Error::Handshake(why) => format!("{target} answered with an invalid handshake: {why}"),
        Error::Url(why) => format!("invalid URL: {why}"),
        other => format!("cannot open {target}: {other}"),
    }
}

/// How an open connection ended when the library reports an error.
pub(crate) fn describe_failure(err: &Error) -> String {
    match err {
        Error::AbnormalClosure => {
            "connection lost: the TCP connection ended without a close frame (1006)".into()
        }
        Error::KeepaliveTimeout => {
            "connection closed: the server did not answer pings in time (1011)".into()
        }
        Error::Protocol(why) => format!("connection failed: the server broke the protocol: {why}"),
        Error::Timeout(what) => format!("connection closed: the {what} timed out"),
        Error::Io(io) => format!("connection lost: {io}"),
        Error::Closed(Some(frame)) => format!("closed by the server: {}", describe_frame(frame)),
        other => format!("connection failed: {other}"),
    }
}

/// `4000 "bye"` or `1001 (going away)`.
pub(crate) fn describe_frame(frame: &CloseFrame) -> String {
    let name = code_name(frame.code);
    let mut text = frame.code.0.to_string();
    if let Some(name) = name {
        text.push_str(&format!(" ({name})"));
    }
    if !frame.reason.is_empty() {
        text.push_str(&format!(" {:?}", frame.reason));
    }
    text
}

/// The RFC 6455 §7.4.1 (and IANA) name of a close code.
fn code_name(code: CloseCode) -> Option<&'static str> {
    Some(match code.0 {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "no status",
        1006 => "abnormal closure",
        1007 => "invalid payload data",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "mandatory extension",
        1011 => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        _ => return None,
    })
}

/// The reason phrase of common HTTP statuses.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_shows_status_and_body() {
        let err = Error::Rejected {
            status: 403,
            headers: vec![],
            body: b"no token\n".to_vec(),
        };
        let text = describe_open_error("127.0.0.1:1", &err);
        assert!(text.contains("HTTP 403 Forbidden"), "{text}");
        assert!(text.ends_with("response body: no token"), "{text}");
    }

    #[test]
    fn refused() {
        let err = Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(describe_open_error("127.0.0.1:9", &err).starts_with("connection refused by"));
    }

    #[test]
    fn frames() {
        assert_eq!(
            describe_frame(&CloseFrame::new(CloseCode(4000), "bye")),
            "4000 \"bye\""
        );
        assert_eq!(
            describe_frame(&CloseFrame::new(CloseCode::GOING_AWAY, "")),
            "1001 (going away)"
        );
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        let body = "é".repeat(600);
        let cut = truncate(&body, 1001);
        assert!(cut.ends_with("… (1200 bytes)"));
    }
}
