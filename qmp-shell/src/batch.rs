//! One-shot mode: run commands in order, one line of JSON per result,
//! then optionally print events; the exit status says how it went.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use qmp_std::serde_json::{self, Value};
use qmp_std::{Error, Request};

use crate::cli::Args;
use crate::link::{Link, Waited};
use crate::syntax::{Parsed, Parser, SyntaxError};

/// The exit statuses of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Everything succeeded.
    Ok = 0,
    /// QEMU returned an error.
    Server = 1,
    /// Connecting, the protocol or a timeout failed (also bad input).
    Failure = 2,
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> ExitCode {
        ExitCode::from(s as u8)
    }
}

/// Prints a reason for a failure on stderr, on one line.
pub(crate) fn report_failure(what: impl std::fmt::Display) {
    let text = what.to_string();
    let one_line: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    eprintln!("qmp-shell: {}", one_line.join("; "));
}

/// Prints a failed call's error: `Class: desc` for QEMU's own errors.
/// Returns the status it means.
pub(crate) fn report_error(e: &Error) -> Status {
    match e {
        Error::Server(e) => {
            eprintln!("{e}");
            Status::Server
        }
        e => {
            report_failure(e);
            Status::Failure
        }
    }
}

/// A request object as a request for the client.
pub(crate) fn to_request(value: &Value) -> Result<Request, SyntaxError> {
    Request::from_value(value).map_err(|e| SyntaxError::new(e.detail))
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

/// Parses every `-c` command first, so a typo runs nothing.
pub(crate) fn parse_commands(args: &Args) -> Result<Vec<Value>, SyntaxError> {
    let mut parser = Parser::new(args.hmp);
    let mut out = Vec::new();
    for cmd in &args.commands {
        match parser.feed(cmd).map_err(|e| e.context(cmd))? {
            Parsed::Request(v) => {
                to_request(&v).map_err(|e| e.context(cmd))?;
                out.push(v);
            }
            Parsed::Nothing => {}
        }
    }
    parser.finish()?;
    Ok(out)
}

/// Runs one request and prints its result; `Err` with the status to exit
/// with when it failed.
fn run_one(link: &mut Link, args: &Args, value: &Value) -> Result<(), Status> {
    let request = to_request(value).map_err(|e| {
        report_failure(e);
        Status::Failure
    })?;
    match link.execute(request, args.timeout) {
        Ok(result) => {
            let mut out = std::io::stdout().lock();
            let text = format_result(&result, args.hmp, args.pretty);
            // HMP commands often print nothing; no empty line for them.
            if !(args.hmp && text.is_empty()) {
                let _ = writeln!(out, "{text}");
            }
            let _ = out.flush();
            Ok(())
        }
        Err(e) => Err(report_error(&e)),
    }
}

/// Runs the `-c` commands, then the events when asked.
pub(crate) fn run(link: &mut Link, args: &Args, commands: &[Value]) -> Status {
    for value in commands {
        if let Err(status) = run_one(link, args, value) {
            return status;
        }
    }
    finish(link, args)
}

/// Reads commands from stdin, one per line (blocks across lines), running
/// each as it comes.
pub(crate) fn run_stdin(link: &mut Link, args: &Args) -> Status {
    let mut parser = Parser::new(args.hmp);
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                report_failure(format!("cannot read stdin: {e}"));
                return Status::Failure;
            }
        };
        match parser.feed(&line) {
            Ok(Parsed::Nothing) => {}
            Ok(Parsed::Request(v)) => {
                if let Err(status) = run_one(link, args, &v) {
                    return status;
                }
            }
            Err(e) => {
                report_failure(e.context(&line));
                return Status::Failure;
            }
        }
    }
    if let Err(e) = parser.finish() {
        report_failure(e);
        return Status::Failure;
    }
    finish(link, args)
}

/// `--events`: print events until the connection closes or the timeout
/// passes with none.
fn finish(link: &mut Link, args: &Args) -> Status {
    if !args.events {
        return Status::Ok;
    }
    if link.is_agent() {
        report_failure("the guest agent sends no events");
        return Status::Failure;
    }
    loop {
        match link.next_event(args.timeout) {
            Waited::Event(event) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", format_json(&event.to_value(), args.pretty));
                let _ = out.flush();
            }
            Waited::Nothing | Waited::Closed(_) => return Status::Ok,
        }
    }
}
