//! Everything the shell prints: results and events on stdout, errors on
//! stderr, the greeting and the end of a session, and the `-v` echo of
//! the messages on the wire. The other modules decide what to say; this
//! one decides how it looks.
//!
//! The peer is not trusted: its text (error classes and descriptions,
//! the greeting, HMP output, guest-agent strings, event names) could
//! carry escape sequences that retitle a terminal, clear it or worse.
//! Everything printed passes through [`escape_controls`], so no control
//! character but newline and tab reaches the terminal raw.

use std::borrow::Cow;
use std::fmt::Display;
use std::io::Write;

use qmp_std::serde_json::{self, Value};
use qmp_std::{Direction, Error, Event, Traffic};
use rustyline::ExternalPrinter;

use crate::peer::Ended;
use crate::syntax::SyntaxError;

/// A failure of the shell itself (connecting, the protocol, a timeout,
/// bad input), on one line of stderr.
pub(crate) fn failure(what: impl Display) {
    eprintln!("qmp-shell: {}", visible(&one_line(&what.to_string())));
}

/// Connecting or launching failed, on one line of stderr. A QEMU that
/// could not start is reported with its own message after a colon, as it
/// wrote it (its lines joined by `; `), not wrapped in ours.
pub(crate) fn open_failure(e: &Error) {
    let Error::Launch(launch) = e else {
        return failure(e);
    };
    let how = match launch.status {
        Some(status) => status.to_string(),
        None => one_line(&launch.cause.to_string()),
    };
    let own = one_line(&launch.stderr);
    let mut line = format!("cannot launch {} ({how})", launch.program);
    if !own.is_empty() {
        line = format!("{line}: {own}");
    }
    failure(line);
}

/// A request the schema check refused: nothing was sent.
pub(crate) fn refused(why: &str) {
    eprintln!("error: {} (not sent)", visible(why));
}

/// Text of several lines (a help screen), on stdout.
pub(crate) fn text(text: &str) {
    stdout_line(&visible(text));
}

/// A response as the server wrote it (`--whole`), on stdout.
pub(crate) fn whole(response: &Value, pretty: bool) {
    stdout_line(&format_json(response, pretty));
}

/// A failed call in one-shot mode: `Class: desc` for QEMU's own errors,
/// a [`failure`] otherwise.
pub(crate) fn call_error(e: &Error) {
    match e {
        Error::Server(e) => eprintln!("{}", visible(&e.to_string())),
        e => failure(e),
    }
}

/// A failed call at the prompt: `Class: desc` for QEMU's own errors,
/// `error: ...` otherwise.
pub(crate) fn prompt_error(e: &Error) {
    match e {
        Error::Server(e) => eprintln!("{}", visible(&e.to_string())),
        e => eprintln!("error: {}", visible(&one_line(&e.to_string()))),
    }
}

/// A line the shell could not understand, at the prompt.
pub(crate) fn syntax_error(e: &SyntaxError) {
    eprintln!("syntax error: {}", visible(&e.to_string()));
}

/// Completion could not be set up; the shell goes on without it.
pub(crate) fn no_completion(e: &Error) {
    eprintln!(
        "qmp-shell: no completion: {}",
        visible(&one_line(&e.to_string()))
    );
}

/// A command's result: text for HMP output, JSON otherwise. Nothing at
/// all for an empty HMP answer (HMP commands often print nothing).
pub(crate) fn result(value: &Value, hmp: bool, pretty: bool) {
    let text = format_result(value, hmp, pretty);
    if !text.is_empty() {
        stdout_line(&text);
    }
}

/// An event, as JSON on its own line.
pub(crate) fn event(event: &Event, pretty: bool) {
    stdout_line(&format_event(event, pretty));
}

/// The first lines of an interactive session.
pub(crate) fn greeting(peer: &str) {
    println!("Connected to {}.", visible(peer));
    println!("Tab completes, Up recalls history, Ctrl-D leaves.");
}

/// `--listen`: the shell waits for QEMU to connect to `path`.
pub(crate) fn waiting(path: &std::path::Path) {
    println!(
        "Waiting for QEMU to connect to {} (-qmp unix:{},server=off).",
        visible(&path.display().to_string()),
        visible(&path.display().to_string())
    );
}

/// The session ended while the prompt was being shown.
pub(crate) fn closed(ended: &Ended) {
    println!("The connection closed: {}.", visible(&ended.to_string()));
}

/// One message sent (`->`) or received (`<-`), for `--verbose`, one line
/// of stderr per line of the message (a pretty-printing monitor sends
/// several).
pub(crate) fn wire(traffic: &Traffic) {
    let arrow = match traffic.direction {
        Direction::Received => "<-",
        _ => "->",
    };
    let text = String::from_utf8_lossy(&traffic.bytes);
    let mut err = std::io::stderr().lock();
    for line in text.split(['\n', '\r']).filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(err, "{arrow} {}", visible(line.trim_end()));
    }
}

/// Formats a result: text for HMP output, JSON otherwise.
pub(crate) fn format_result(value: &Value, hmp: bool, pretty: bool) -> String {
    if hmp && let Value::String(text) = value {
        let text = text.replace("\r\n", "\n");
        return visible(text.trim_end_matches('\n')).into_owned();
    }
    format_json(value, pretty)
}

/// Compact or indented JSON. serde_json escapes the controls below
/// U+0020; DEL and the C1 controls, which it leaves raw, are escaped here
/// the JSON way, so the text still decodes to the same value.
pub(crate) fn format_json(value: &Value, pretty: bool) -> String {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .unwrap_or_else(|_| value.to_string());
    match escape_controls(&text, Escaped::Json) {
        Cow::Borrowed(_) => text,
        Cow::Owned(escaped) => escaped,
    }
}

/// How [`escape_controls`] writes a control character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escaped {
    /// For text: `^[` for ESC, `^M` for CR, `^?` for DEL (caret
    /// notation), `\u009b` for a C1 control.
    Text,
    /// Inside JSON text: `\u001b`, a JSON escape of the same character.
    Json,
}

/// Whether `c` can steer a terminal: a control character (C0, DEL, C1)
/// other than newline and tab.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// `text` with every control character but newline and tab made
/// visible, so that no escape sequence from the peer reaches the
/// terminal. The one place where this is decided.
pub(crate) fn escape_controls(text: &str, how: Escaped) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !is_unsafe(c) {
            out.push(c);
            continue;
        }
        let code = u32::from(c);
        match how {
            Escaped::Text if code < 0x20 || code == 0x7f => {
                out.push('^');
                out.push(char::from((code as u8) ^ 0x40));
            }
            _ => out.push_str(&format!("\\u{code:04x}")),
        }
    }
    Cow::Owned(out)
}

/// `text` made safe for the terminal ([`Escaped::Text`]).
pub(crate) fn visible(text: &str) -> Cow<'_, str> {
    escape_controls(text, Escaped::Text)
}

fn format_event(event: &Event, pretty: bool) -> String {
    format_json(&event.to_value(), pretty)
}

/// A message of several lines as one: its non-blank lines joined by `; `.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes `text` and a newline to stdout at once. A closed stdout is not
/// worth failing for: the exit status still tells how the commands went.
fn stdout_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Where the connection's thread prints what arrives while the user
/// types: above the prompt, or plainly when the output is not a terminal.
pub(crate) enum EventPrinter {
    /// Rustyline's printer, which redraws the prompt below the text.
    AbovePrompt(Box<dyn ExternalPrinter + Send>),
    /// Plain lines on stdout.
    Plain,
}

impl EventPrinter {
    /// An event that came between two commands.
    pub(crate) fn event(&mut self, event: &Event, pretty: bool) {
        self.line(format_event(event, pretty));
    }

    /// The session ended while the user was typing.
    pub(crate) fn closed(&mut self, ended: &Ended) {
        self.line(format!(
            "The connection closed: {}. Press Enter to leave.",
            visible(&ended.to_string())
        ));
    }

    /// `--listen`: QEMU went away; the shell waits for it again.
    pub(crate) fn gone(&mut self, ended: &Ended, path: &std::path::Path) {
        self.line(format!(
            "The connection closed: {}. Waiting for QEMU to connect to {} again.",
            visible(&ended.to_string()),
            visible(&path.display().to_string())
        ));
    }

    /// `--listen`: a QEMU that connected could not be taken.
    pub(crate) fn failed(&mut self, e: &Error) {
        self.line(format!("error: {}", visible(&one_line(&e.to_string()))));
    }

    /// `--listen`: QEMU connected again.
    pub(crate) fn connected(&mut self, peer: &str) {
        self.line(format!("Connected to {}.", visible(peer)));
    }

    fn line(&mut self, text: String) {
        if let EventPrinter::AbovePrompt(p) = self
            && p.print(format!("{text}\n")).is_ok()
        {
            return;
        }
        stdout_line(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_std::serde_json::json;

    #[test]
    fn controls_are_made_visible() {
        assert_eq!(visible("plain\ttext\n"), "plain\ttext\n");
        assert!(matches!(visible("plain"), Cow::Borrowed(_)));
        assert_eq!(
            visible("GenericError\x1b[5m: bad\x1b]0;TITLE\x07\x1b[2J\r"),
            "GenericError^[[5m: bad^[]0;TITLE^G^[[2J^M"
        );
        assert_eq!(
            visible("\0 \x7f \u{9b}31m \u{85}"),
            "^@ ^? \\u009b31m \\u0085"
        );
        // Other text, including non-ASCII, is kept.
        assert_eq!(visible("caf\u{e9} \u{2192}"), "caf\u{e9} \u{2192}");
    }

    #[test]
    fn json_output_has_no_raw_controls_and_the_same_value() {
        let value = json!({"desc": "\x1b[2J \x7f \u{9b}2J \u{85} ok"});
        for pretty in [false, true] {
            let text = format_json(&value, pretty);
            assert!(!text.chars().any(is_unsafe), "{text:?}");
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, value);
        }
        let hmp = format_result(&json!("info\x1b[2J\r\n"), true, false);
        assert_eq!(hmp, "info^[[2J");
    }
}
