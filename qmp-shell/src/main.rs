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
mod echo;
mod interactive;
mod link;
mod syntax;

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::batch::{Status, report_failure};
use crate::cli::Args;
use crate::link::Link;

fn main() -> ExitCode {
    let args = Args::parse_checked();
    if args.verbose {
        echo::install();
    }
    // A typo in a -c command runs nothing (and starts no QEMU).
    let commands = match batch::parse_commands(&args) {
        Ok(commands) => commands,
        Err(e) => {
            report_failure(e);
            return Status::Failure.into();
        }
    };
    let scripted = !args.commands.is_empty() || args.events;
    let interactive = !scripted && std::io::stdin().is_terminal();
    let mut link = match Link::open(&args) {
        Ok(link) => link,
        Err(e) => {
            report_failure(e);
            return Status::Failure.into();
        }
    };
    if interactive {
        return interactive::run(link, &args).into();
    }
    let status = if scripted {
        batch::run(&mut link, &args, &commands)
    } else {
        batch::run_stdin(&mut link, &args)
    };
    if let Err(e) = link.close() {
        report_failure(format!("while closing: {e}"));
    }
    status.into()
}
