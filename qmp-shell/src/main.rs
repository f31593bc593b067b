//! `qmp-shell`: an interactive and scriptable shell for QEMU's machine
//! protocol (QMP) and guest agent (QGA).
//!
//! ```text
//! qmp-shell [OPTIONS] [ADDRESS] [-- QEMU_ARGS...]
//! ```
//!
//! See `qmp-shell --help` and this crate's README for the command syntax
//! and the exit statuses.

#![forbid(unsafe_code)]

mod batch;
mod cli;
mod complete;
mod history;
mod interactive;
mod output;
mod peer;
mod record;
mod schema;
mod syntax;
mod tui;
mod worker;

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::batch::Status;
use crate::cli::Args;
use crate::peer::{Listener, Peer};

fn main() -> ExitCode {
    let args = Args::parse_checked();
    if args.tui {
        return tui::run(&args);
    }
    // A typo in a -c command runs nothing (and starts no QEMU).
    let commands = match batch::parse_commands(&args) {
        Ok(commands) => commands,
        Err(e) => {
            output::failure(e);
            return Status::Failure.into();
        }
    };
    let mut log = match record::open_log(args.log.as_deref()) {
        Ok(log) => log,
        Err(e) => {
            output::failure(e);
            return Status::Failure.into();
        }
    };
    let scripted = !args.commands.is_empty() || args.events;
    let interactive = !scripted && std::io::stdin().is_terminal();
    let listener = match &args.listen {
        Some(path) => match Listener::bind(path, peer::options(&args)) {
            Ok(listener) => Some(listener),
            Err(e) => {
                output::failure(e);
                return Status::Failure.into();
            }
        },
        None => None,
    };
    let opened = match &listener {
        Some(listener) => {
            if interactive {
                output::waiting(listener.path());
            }
            // At the prompt, wait as long as it takes (Ctrl-C gives up).
            listener.first((!interactive).then_some(args.timeout))
        }
        None => Peer::open(&args),
    };
    let mut peer = match opened {
        Ok(peer) => peer,
        Err(e) => {
            output::open_failure(&e);
            return Status::Failure.into();
        }
    };
    if interactive {
        return interactive::run(peer, &args, log, listener).into();
    }
    let status = if scripted {
        batch::run(&mut peer, &args, &mut log, &commands)
    } else {
        batch::run_stdin(&mut peer, &args, &mut log)
    };
    if let Err(e) = peer.close() {
        output::failure(format!("while closing: {e}"));
    }
    status.into()
}
