//! `/echo` and `/chat`, the tutorials' endpoints.

use std::sync::atomic::Ordering;

use ripple::{CloseCode, Message, WebSocket};
use ripple_server::Config;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::support::{WAIT, closed, small_window_ws, start, start_default};

const SLOW_CONSUMER: CloseCode = CloseCode(4008);

#[tokio::test]
async fn echo_returns_text_and_binary_unchanged() {
    let server = start_default().await;
    let mut ws = ripple::connect(&server.url("/echo")).await.unwrap();
    for message in [
        Message::from("héllo ✓"),
        Message::Binary(vec![0, 1, 2, 255].into()),
        Message::from(""),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Some(message));
    }
    let big = Message::from("z".repeat(60_000));
    ws.send(big.clone()).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(big));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
}

/// Splits `[HH:MM:SS] text` into its time of day and text, checking the format by hand.
fn parse_chat_line(line: &str) -> ((u8, u8, u8), &str) {
    let bytes = line.as_bytes();
    assert!(bytes.len() >= 11, "too short for `[HH:MM:SS] `: {line:?}");
    assert_eq!(
        (bytes[0], bytes[3], bytes[6], bytes[9], bytes[10]),
        (b'[', b':', b':', b']', b' '),
        "{line:?}"
    );
    let two = |at: usize| -> u8 {
        assert!(
            bytes[at].is_ascii_digit() && bytes[at + 1].is_ascii_digit(),
            "digits at {at} in {line:?}"
        );
        (bytes[at] - b'0') * 10 + (bytes[at + 1] - b'0')
    };
    let time = (two(1), two(4), two(7));
    assert!(
        time.0 < 24 && time.1 < 60 && time.2 < 60,
        "a time of day: {line:?}"
    );
    (time, &line[11..])
}

/// The next chat line's text (after the time stamp), within the bound.
async fn next_line<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> String {
    let received = tokio::time::timeout(WAIT, ws.recv())
        .await
        .expect("a chat line within the bound");
    let Ok(Some(Message::Text(line))) = received else {
        panic!("expected a text line, got {received:?}");
    };
    parse_chat_line(line.as_str()).1.to_owned()
}

/// Joins `/chat` and waits until the server has the client in the room: the client sees its
/// own line come back.
async fn join_chat(url: &str, name: &str) -> WebSocket {
    let mut ws = ripple::connect(url).await.unwrap();
    let hello = format!("{name} joined");
    ws.send(hello.as_str()).await.unwrap();
    while next_line(&mut ws).await != hello {}
    ws
}

#[test]
fn chat_line_parser_accepts_the_format_and_rejects_others() {
    assert_eq!(
        parse_chat_line("[09:05:59] hi there"),
        ((9, 5, 59), "hi there")
    );
    assert_eq!(parse_chat_line("[23:59:00] "), ((23, 59, 0), ""));
    for bad in [
        "09:05:59 hi",
        "[9:05:59] hi",
        "[09:05:59]hi",
        "[24:00:00] x",
        "[ab:cd:ef] x",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_chat_line(bad)).is_err(),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn chat_delivers_time_stamped_lines_to_every_client() {
    let server = start_default().await;
    let url = server.url("/chat");
    let mut a = join_chat(&url, "a").await;
    let mut b = join_chat(&url, "b").await;
    assert_eq!(next_line(&mut a).await, "b joined");
    let mut c = join_chat(&url, "c").await;
    for ws in [&mut a, &mut b] {
        assert_eq!(next_line(ws).await, "c joined");
    }

    a.send("hello, [everyone] ✓").await.unwrap();
    for ws in [&mut a, &mut b, &mut c] {
        let received = ws.recv().await.unwrap();
        let Some(Message::Text(line)) = received else {
            panic!("{received:?}")
        };
        let (time, text) = parse_chat_line(line.as_str());
        assert_eq!(text, "hello, [everyone] ✓");
        let now = chrono::Local::now();
        let now = chrono::Timelike::num_seconds_from_midnight(&now);
        let stamped = u32::from(time.0) * 3600 + u32::from(time.1) * 60 + u32::from(time.2);
        let skew = (now + 86_400 - stamped) % 86_400;
        assert!(
            skew <= 5,
            "stamped with the server's local time of day: {line} (now {now} s)"
        );
    }
}

#[tokio::test]
async fn chat_ignores_binary_messages() {
    let server = start_default().await;
    let url = server.url("/chat");
    let mut a = join_chat(&url, "a").await;
    a.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    a.send("text").await.unwrap();
    assert_eq!(
        next_line(&mut a).await,
        "text",
        "the binary message was not broadcast"
    );
}

#[tokio::test]
async fn chat_client_that_never_reads_is_disconnected_and_the_others_keep_receiving() {
    const MAX_LINES: usize = 5000;
    const LINES_AFTER: usize = 200;
    let server = start(Config {
        client_queue_bytes: 16 * 1024,
        ..Config::default()
    })
    .await;
    let url = server.url("/chat");
    let mut talker = join_chat(&url, "talker").await;
    let mut listener = join_chat(&url, "listener").await;
    assert_eq!(next_line(&mut talker).await, "listener joined");

    // The sleeper never reads (until the end); its own line reaching the others shows it is in
    // the room.
    let mut sleeper = small_window_ws(&url, server.addr).await;
    sleeper.send("sleeper joined").await.unwrap();
    for ws in [&mut talker, &mut listener] {
        assert_eq!(next_line(ws).await, "sleeper joined");
    }

    let listening = tokio::spawn(async move {
        let mut count = 0;
        loop {
            let text = next_line(&mut listener).await;
            if text == "done" {
                return count;
            }
            assert_eq!(
                text.split_once(' ').map(|(n, _)| n),
                Some(count.to_string().as_str()),
                "in order, none lost"
            );
            count += 1;
        }
    });
    let padding = "p".repeat(2000);
    let slow_consumers = &server.state.metrics.slow_consumers;
    let mut say = async |n: usize| {
        // One line at a time: the talker reads its own line back before sending the next, so
        // the readers are never far behind.
        let line = format!("{n} {padding}");
        talker.send(line.as_str()).await.unwrap();
        assert_eq!(next_line(&mut talker).await, line);
    };
    let mut sent = 0;
    while slow_consumers.load(Ordering::Relaxed) == 0 {
        assert!(
            sent < MAX_LINES,
            "the sleeper was not cut off after {sent} lines"
        );
        say(sent).await;
        sent += 1;
    }
    // Reading now, the sleeper finds the close frame behind what its socket held.
    assert_eq!(
        closed(&mut sleeper).await,
        SLOW_CONSUMER,
        "cut off after {sent} lines"
    );
    for n in sent..sent + LINES_AFTER {
        say(n).await;
    }
    talker.send("done").await.unwrap();
    assert_eq!(
        listening.await.unwrap(),
        sent + LINES_AFTER,
        "the listener got every line"
    );
    assert_eq!(
        slow_consumers.load(Ordering::Relaxed),
        1,
        "only the sleeper was cut off"
    );
}
