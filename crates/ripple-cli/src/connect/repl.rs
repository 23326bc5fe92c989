//! Interactive mode: a line editor with history on one thread, messages printed above the
//! prompt (rustyline's external printer) without disturbing the line being typed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::termios::{self, SetArg, Termios};
use ripple::{CloseCode, CloseFrame, Message, WebSocket};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Config, Editor, ExternalPrinter as _};
use tokio::sync::{mpsc, oneshot};

use super::commands::{self, HELP, Input};
use super::link::{Ending, Link, MessageSink};
use super::{ConnectArgs, Connector, Mode, render, run_sessions};
use crate::failure::describe_failure;
use crate::style::Style;
use crate::units::format_duration;

/// The prompt; a sent line stays on screen behind it, which makes it the `>` marker.
const PROMPT: &str = "> ";
/// How long `/ping` waits for its pong.
const PING_WAIT: Duration = Duration::from_secs(10);
/// Entries kept in the history file.
const HISTORY_SIZE: usize = 1000;

/// Runs interactive mode; returns the exit status.
pub(super) async fn run(args: &ConnectArgs, connector: &Connector) -> anyhow::Result<u8> {
    // Restored on the way out: the editor may still be in raw mode when the server ends the
    // session.
    let terminal = TerminalGuard::save();
    let style = Style::for_stdout();
    let mut editor = new_editor()?;
    let print = printer_for(&mut editor);
    let (printer, printer_thread) = spawn_printer(print)?;
    let (input, editor_thread) = spawn_editor(editor)?;
    let mut repl = Repl {
        input,
        printer,
        style,
        json: Arc::new(AtomicBool::new(args.json)),
        binary: args.binary,
        close_timeout: connector.close_timeout,
        url: connector.url.to_string(),
    };
    let code = run_sessions(&mut repl, connector, args.reconnect).await;
    drop(repl);
    wait_for(&printer_thread, Duration::from_secs(1)).await;
    drop(terminal);
    if !editor_thread.is_finished() {
        // The prompt is still on screen; let the shell start on a line of its own.
        println!();
    }
    Ok(code)
}

/// A line from the editor, with the channel on which it waits for "go on" (`true`) or "stop".
enum Event {
    Line(String, oneshot::Sender<bool>),
    /// Ctrl-D, Ctrl-C, or the terminal failed.
    End,
}

struct Repl {
    input: mpsc::Receiver<Event>,
    printer: mpsc::Sender<String>,
    style: Style,
    json: Arc<AtomicBool>,
    binary: bool,
    close_timeout: Duration,
    url: String,
}

impl Mode for Repl {
    async fn session(&mut self, ws: WebSocket, _attempt: u32) -> Ending {
        self.say(self.style.info(&connected(&self.url, &ws))).await;
        let sink = Prompt {
            printer: self.printer.clone(),
            json: Arc::clone(&self.json),
            style: self.style,
        };
        let mut link = Link::start(ws, sink, self.close_timeout);
        loop {
            tokio::select! {
                event = self.input.recv() => {
                    let Some(Event::Line(line, go_on)) = event else {
                        return self.close(link, CloseFrame::new(CloseCode::NORMAL, "")).await;
                    };
                    if let Some(frame) = self.handle(&line, &mut link).await {
                        let ending = self.close(link, frame).await;
                        let _ = go_on.send(false);
                        return ending;
                    }
                    let _ = go_on.send(true);
                }
                ending = link.ended() => return ending,
            }
        }
    }

    async fn report(&mut self, text: String) {
        self.say(self.style.error(&text)).await;
    }

    async fn pause(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                event = self.input.recv() => {
                    let Some(Event::Line(line, go_on)) = event else {
                        return false;
                    };
                    if matches!(commands::parse(&line), Ok(Input::Quit | Input::Close(_))) {
                        let _ = go_on.send(false);
                        return false;
                    }
                    self.say(self.style.warning("not connected (reconnecting; /quit to stop)"))
                        .await;
                    let _ = go_on.send(true);
                }
            }
        }
    }
}

impl Repl {
    /// Carries out one line; returns the close frame to send when the line ends the session.
    async fn handle(&mut self, line: &str, link: &mut Link) -> Option<CloseFrame> {
        let input = match commands::parse(line) {
            Ok(input) => input,
            Err(why) => {
                self.say(self.style.error(&why)).await;
                return None;
            }
        };
        match input {
            Input::Nothing => {}
            Input::Message(text) if self.binary => self.send(link, text.into_bytes().into()).await,
            Input::Message(text) => self.send(link, text.into()).await,
            Input::Binary(bytes) => self.send(link, bytes.into()).await,
            Input::Ping => self.ping(link).await,
            Input::ToggleJson => {
                let on = !self.json.fetch_xor(true, Ordering::Relaxed);
                let state = if on { "on" } else { "off" };
                self.say(self.style.info(&format!("JSON pretty-printing {state}")))
                    .await;
            }
            Input::Help => self.say(self.style.info(HELP)).await,
            Input::Close(frame) => return Some(frame),
            Input::Quit => return Some(CloseFrame::new(CloseCode::NORMAL, "")),
        }
        None
    }

    async fn send(&mut self, link: &mut Link, message: Message) {
        if let Err(err) = link.writer().send(message).await {
            self.say(
                self.style
                    .error(&format!("not sent: {}", describe_failure(&err))),
            )
            .await;
        }
    }

    async fn ping(&mut self, link: &mut Link) {
        let text = match tokio::time::timeout(PING_WAIT, link.writer().ping()).await {
            Ok(Ok(rtt)) => self.style.info(&format!("pong: {}", format_duration(rtt))),
            Ok(Err(err)) => self
                .style
                .error(&format!("ping failed: {}", describe_failure(&err))),
            Err(_) => self.style.error("no pong within 10 s"),
        };
        self.say(text).await;
    }

    async fn close(&mut self, link: Link, frame: CloseFrame) -> Ending {
        let ending = link.close(frame).await;
        if ending.chosen() {
            self.say(self.style.info(&ending.describe())).await;
        }
        ending
    }

    /// Prints a line above the prompt.
    async fn say(&self, mut text: String) {
        text.push('\n');
        let _ = self.printer.send(text).await;
    }
}

/// `connected to URL (subprotocol x, permessage-deflate); /help for commands`.
fn connected(url: &str, ws: &WebSocket) -> String {
    let mut details = Vec::new();
    if let Some(protocol) = ws.protocol() {
        details.push(format!("subprotocol {protocol}"));
    }
    if ws.is_compressed() {
        details.push("permessage-deflate".to_owned());
    }
    let details = if details.is_empty() {
        String::new()
    } else {
        format!(" ({})", details.join(", "))
    };
    format!("connected to {url}{details}; /help for commands")
}

/// Received messages, above the prompt.
struct Prompt {
    printer: mpsc::Sender<String>,
    json: Arc<AtomicBool>,
    style: Style,
}

impl MessageSink for Prompt {
    async fn show(&mut self, message: Message) -> bool {
        let pretty = self.json.load(Ordering::Relaxed);
        let line = render::prompt_line(&message, pretty, self.style);
        self.printer.send(line).await.is_ok()
    }
}

fn new_editor() -> anyhow::Result<Editor<(), FileHistory>> {
    let config = Config::builder()
        .max_history_size(HISTORY_SIZE)
        .context("history size")?
        .history_ignore_dups(true)
        .context("history options")?
        .history_ignore_space(true)
        .auto_add_history(true)
        .build();
    let mut editor = Editor::with_config(config).context("starting the line editor")?;
    if let Some(path) = history_path() {
        // A missing file is the first run.
        let _ = editor.load_history(&path);
    }
    Ok(editor)
}

/// `$XDG_STATE_HOME/ripple/history`, or `~/.local/state/ripple/history`.
fn history_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"))
        })?;
    Some(state.join("ripple").join("history"))
}

type Print = Box<dyn FnMut(String) + Send>;

/// Prints through the editor (above the prompt) when it can, else straight to stdout.
fn printer_for(editor: &mut Editor<(), FileHistory>) -> Print {
    match editor.create_external_printer() {
        Ok(mut printer) => Box::new(move |text| {
            let _ = printer.print(text);
        }),
        Err(err) => {
            tracing::debug!("no external printer ({err}); printing to stdout");
            Box::new(|text| {
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            })
        }
    }
}

/// A thread that prints what it is sent, in order (printing may block on the editor).
fn spawn_printer(mut print: Print) -> anyhow::Result<(mpsc::Sender<String>, JoinHandle<()>)> {
    let (tx, mut rx) = mpsc::channel::<String>(256);
    let thread = std::thread::Builder::new()
        .name("printer".into())
        .spawn(move || {
            while let Some(text) = rx.blocking_recv() {
                print(text);
            }
        })
        .context("starting the printer thread")?;
    Ok((tx, thread))
}

/// The editor's thread: reads lines, hands each over and waits to hear whether to go on.
fn spawn_editor(
    mut editor: Editor<(), FileHistory>,
) -> anyhow::Result<(mpsc::Receiver<Event>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let history = history_path();
    if let Some(dir) = history.as_ref().and_then(|path| path.parent()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let thread = std::thread::Builder::new()
        .name("editor".into())
        .spawn(move || {
            loop {
                let line = match editor.readline(PROMPT) {
                    Ok(line) => line,
                    Err(ReadlineError::Eof | ReadlineError::Interrupted) => break,
                    Err(err) => {
                        tracing::warn!("line editor: {err}");
                        break;
                    }
                };
                if let Some(path) = &history {
                    let _ = editor.append_history(path);
                }
                let (go_on, answer) = oneshot::channel();
                if tx.blocking_send(Event::Line(line, go_on)).is_err() {
                    return;
                }
                if answer.blocking_recv() != Ok(true) {
                    return;
                }
            }
            let _ = tx.blocking_send(Event::End);
        })
        .context("starting the line editor thread")?;
    Ok((rx, thread))
}

async fn wait_for(thread: &JoinHandle<()>, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !thread.is_finished() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The terminal's settings at start, put back on drop.
struct TerminalGuard(Option<Termios>);

impl TerminalGuard {
    fn save() -> Self {
        Self(termios::tcgetattr(std::io::stdin()).ok())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
        }
    }
}
