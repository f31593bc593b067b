//! One-shot mode: run commands in order, one line of JSON per result,
//! then optionally print events; the exit status says how it went.

use std::io::BufRead;
use std::process::ExitCode;

use qmp_std::Error;
use qmp_std::serde_json::Value;

use crate::cli::Args;
use crate::output;
use crate::peer::{Peer, Waited};
use crate::record::{self, Log};
use crate::syntax::{Parsed, Parser, SyntaxError, to_request};

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

impl Status {
    /// What a failed call means for the exit status.
    pub(crate) fn of(e: &Error) -> Status {
        match e {
            Error::Server(_) => Status::Server,
            _ => Status::Failure,
        }
    }
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
fn run_one(
    peer: &mut Peer,
    args: &Args,
    log: &mut Option<Log>,
    value: &Value,
) -> Result<(), Status> {
    let request = to_request(value).map_err(|e| {
        output::failure(e);
        Status::Failure
    })?;
    let result = peer.execute(request, args.timeout);
    if let Some(log) = log {
        log.record(value, &result);
    }
    if args.whole
        && let Some(response) = record::response(&result)
    {
        output::whole(&response, args.pretty);
        return result.map(drop).map_err(|e| Status::of(&e));
    }
    match result {
        Ok(result) => {
            output::result(&result, args.hmp, args.pretty);
            Ok(())
        }
        Err(e) => {
            output::call_error(&e);
            Err(Status::of(&e))
        }
    }
}

/// Runs the `-c` commands, then the events when asked.
pub(crate) fn run(
    peer: &mut Peer,
    args: &Args,
    log: &mut Option<Log>,
    commands: &[Value],
) -> Status {
    for value in commands {
        if let Err(status) = run_one(peer, args, log, value) {
            return status;
        }
    }
    finish(peer, args)
}

/// Reads commands from stdin, one per line (blocks across lines), running
/// each as it comes.
pub(crate) fn run_stdin(peer: &mut Peer, args: &Args, log: &mut Option<Log>) -> Status {
    let mut parser = Parser::new(args.hmp);
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                output::failure(format!("cannot read stdin: {e}"));
                return Status::Failure;
            }
        };
        match parser.feed(&line) {
            Ok(Parsed::Nothing) => {}
            Ok(Parsed::Request(v)) => {
                if let Err(status) = run_one(peer, args, log, &v) {
                    return status;
                }
            }
            Err(e) => {
                output::failure(e.context(&line));
                return Status::Failure;
            }
        }
    }
    if let Err(e) = parser.finish() {
        output::failure(e);
        return Status::Failure;
    }
    finish(peer, args)
}

/// `--events`: print events until the connection closes or the timeout
/// passes with none.
fn finish(peer: &mut Peer, args: &Args) -> Status {
    if !args.events {
        return Status::Ok;
    }
    if peer.is_agent() {
        output::failure("the guest agent sends no events");
        return Status::Failure;
    }
    loop {
        match peer.next_event(args.timeout) {
            Waited::Event(event) => output::event(&event, args.pretty),
            Waited::Nothing | Waited::Closed(_) => return Status::Ok,
        }
    }
}
