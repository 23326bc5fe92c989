//! What a line typed at the interactive prompt means: a message to send or a `/command`.

use ripple::{CloseCode, CloseFrame};

use crate::hex;

/// The commands, as `/help` shows them.
pub(crate) const HELP: &str = "\
commands:
  /ping                  send a ping and print the round-trip time
  /close [code] [reason] close the connection (default 1000) and exit
  /binary <hex>          send a binary message, e.g. /binary 68 65 6c 6c 6f
  /json                  pretty-print JSON messages on/off
  /help                  this text
  /quit, exit            close with 1000 and exit (so do Ctrl-D and Ctrl-C)
any other line is sent as a message; start it with // to send a leading /";

/// One line of interactive input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// An empty line: nothing to do.
    Nothing,
    /// A line to send as a message.
    Message(String),
    /// `/binary <hex>`.
    Binary(Vec<u8>),
    /// `/ping`.
    Ping,
    /// `/close [code] [reason]`.
    Close(CloseFrame),
    /// `/json`.
    ToggleJson,
    /// `/help`.
    Help,
    /// `/quit` or `exit`.
    Quit,
}

/// Reads one line of interactive input.
pub(crate) fn parse(line: &str) -> Result<Input, String> {
    if line.is_empty() {
        return Ok(Input::Nothing);
    }
    if line.trim() == "exit" {
        return Ok(Input::Quit);
    }
    if let Some(escaped) = line.strip_prefix("//") {
        return Ok(Input::Message(format!("/{escaped}")));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Input::Message(line.to_owned()));
    };
    let (name, rest) = command
        .split_once(char::is_whitespace)
        .unwrap_or((command, ""));
    let rest = rest.trim();
    let no_arguments = |input: Input| {
        if rest.is_empty() {
            Ok(input)
        } else {
            Err(format!("/{name} takes no arguments"))
        }
    };
    match name {
        "ping" => no_arguments(Input::Ping),
        "close" => parse_close(rest).map(Input::Close),
        "binary" => hex::decode(rest)
            .map(Input::Binary)
            .map_err(|why| format!("/binary: {why}")),
        "json" => no_arguments(Input::ToggleJson),
        "help" | "?" => Ok(Input::Help),
        "quit" | "exit" | "q" => no_arguments(Input::Quit),
        _ => Err(format!(
            "unknown command /{name} (/help lists them; start a message with // to send a leading /)"
        )),
    }
}

/// `[code] [reason]`: the code defaults to 1000; a first word that is not a number starts the
/// reason.
fn parse_close(args: &str) -> Result<CloseFrame, String> {
    let (first, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    let (code, reason) = match first.parse::<u16>() {
        Ok(code) => (CloseCode(code), rest.trim()),
        Err(_) if first.chars().all(|c| c.is_ascii_digit()) && !first.is_empty() => {
            return Err(format!("/close: {first} is not a close code"));
        }
        Err(_) => (CloseCode::NORMAL, args),
    };
    // RFC 6455 §7.4.1: 1005, 1006 and 1015 MUST NOT be sent; 1004 is reserved.
    if !code.is_sendable() {
        return Err(format!(
            "/close: {code} cannot be sent (use 1000-1003, 1007-1014 or 3000-4999)"
        ));
    }
    if reason.len() > CloseFrame::MAX_REASON {
        return Err(format!(
            "/close: the reason is {} bytes; a close frame holds at most {}",
            reason.len(),
            CloseFrame::MAX_REASON
        ));
    }
    Ok(CloseFrame::new(code, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_escapes() {
        assert_eq!(parse(""), Ok(Input::Nothing));
        assert_eq!(parse("hello"), Ok(Input::Message("hello".into())));
        assert_eq!(parse(" /ping"), Ok(Input::Message(" /ping".into())));
        assert_eq!(parse("//ping"), Ok(Input::Message("/ping".into())));
        assert_eq!(parse("exit"), Ok(Input::Quit));
    }

    #[test]
    fn commands() {
        assert_eq!(parse("/ping"), Ok(Input::Ping));
        assert_eq!(parse("/json"), Ok(Input::ToggleJson));
        assert_eq!(parse("/help"), Ok(Input::Help));
        assert_eq!(parse("/quit"), Ok(Input::Quit));
        assert_eq!(parse("/binary 68 69"), Ok(Input::Binary(b"hi".to_vec())));
        assert!(parse("/binary 6").unwrap_err().starts_with("/binary:"));
        assert!(parse("/ping now").is_err());
        assert!(
            parse("/nope")
                .unwrap_err()
                .contains("unknown command /nope")
        );
    }

    #[test]
    fn close_arguments() {
        let close = |code, reason: &str| Ok(Input::Close(CloseFrame::new(CloseCode(code), reason)));
        assert_eq!(parse("/close"), close(1000, ""));
        assert_eq!(parse("/close 4000 bye"), close(4000, "bye"));
        assert_eq!(parse("/close 4000 bye  now"), close(4000, "bye  now"));
        assert_eq!(parse("/close going home"), close(1000, "going home"));
        assert!(parse("/close 1005").unwrap_err().contains("cannot be sent"));
        assert!(
            parse("/close 99999")
                .unwrap_err()
                .contains("not a close code")
        );
        assert!(parse(&format!("/close 1000 {}", "x".repeat(124))).is_err());
    }
}
