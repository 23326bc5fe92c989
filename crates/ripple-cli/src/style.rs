//! Colours for terminal output: only when writing to a terminal, never when `NO_COLOR` is set
//! (<https://no-color.org>).

use std::io::IsTerminal;

/// Whether and how to colour the markers and status lines (message text is never coloured).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Style {
    colour: bool,
}

impl Style {
    /// Colours when stdout is a terminal and `NO_COLOR` is unset or empty.
    pub(crate) fn for_stdout() -> Self {
        Self::new(
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR"),
        )
    }

    /// Colours when stderr is a terminal and `NO_COLOR` is unset or empty.
    pub(crate) fn for_stderr() -> Self {
        Self::new(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        )
    }

    /// No colours.
    pub(crate) const fn plain() -> Self {
        Self { colour: false }
    }

    fn new(terminal: bool, no_color: Option<std::ffi::OsString>) -> Self {
        let disabled = no_color.is_some_and(|v| !v.is_empty());
        Self {
            colour: terminal && !disabled,
        }
    }

    /// The `<` marker of a received message.
    pub(crate) fn incoming(self) -> String {
        self.paint("32", "<")
    }

    /// Status lines: connected, RTT, closed.
    pub(crate) fn info(self, text: &str) -> String {
        self.paint("2", text)
    }

    /// Errors.
    pub(crate) fn error(self, text: &str) -> String {
        self.paint("31", text)
    }

    /// Warnings: reconnect attempts, dropped input.
    pub(crate) fn warning(self, text: &str) -> String {
        self.paint("33", text)
    }

    fn paint(self, sgr: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{sgr}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert_eq!(Style::new(false, None).incoming(), "<");
        assert_eq!(Style::new(true, None).incoming(), "\x1b[32m<\x1b[0m");
        assert_eq!(Style::new(true, Some("1".into())).info("x"), "x");
        // An empty NO_COLOR does not count (no-color.org).
        assert_eq!(
            Style::new(true, Some("".into())).error("x"),
            "\x1b[31mx\x1b[0m"
        );
    }
}
