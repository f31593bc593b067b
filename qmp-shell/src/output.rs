//! Everything the shell prints: results and events on stdout, errors on
//! stderr, the greeting and the end of a session, and the `-v` echo of
//! the messages on the wire. The other modules decide what to say; this
//! one decides how it looks.

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
    eprintln!("qmp-shell: {}", one_line(&what.to_string()));
}

/// A failed call in one-shot mode: `Class: desc` for QEMU's own errors,
/// a [`failure`] otherwise.
pub(crate) fn call_error(e: &Error) {
    match e {
        Error::Server(e) => eprintln!("{e}"),
        e => failure(e),
    }
}

/// A failed call at the prompt: `Class: desc` for QEMU's own errors,
/// `error: ...` otherwise.
pub(crate) fn prompt_error(e: &Error) {
    match e {
        Error::Server(e) => eprintln!("{e}"),
        e => eprintln!("error: {}", one_line(&e.to_string())),
    }
}

/// A line the shell could not understand, at the prompt.
pub(crate) fn syntax_error(e: &SyntaxError) {
    eprintln!("syntax error: {e}");
}

/// Completion could not be set up; the shell goes on without it.
pub(crate) fn no_completion(e: &Error) {
    eprintln!("qmp-shell: no completion: {}", one_line(&e.to_string()));
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
    println!("Connected to {peer}.");
    println!("Tab completes, Up recalls history, Ctrl-D leaves.");
}

/// The session ended while the prompt was being shown.
pub(crate) fn closed(ended: &Ended) {
    println!("The connection closed: {ended}.");
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
        let _ = writeln!(err, "{arrow} {}", line.trim_end());
    }
}

/// Formats a result: text for HMP output, JSON otherwise.
pub(crate) fn format_result(value: &Value, hmp: bool, pretty: bool) -> String {
    if hmp && let Value::String(text) = value {
        let text = text.replace("\r\n", "\n");
        return text.trim_end_matches('\n').to_owned();
    }
    format_json(value, pretty)
}

/// Compact or indented JSON.
pub(crate) fn format_json(value: &Value, pretty: bool) -> String {
    if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .unwrap_or_else(|_| value.to_string())
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
            "The connection closed: {ended}. Press Enter to leave."
        ));
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
