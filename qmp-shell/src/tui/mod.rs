//! Full-screen mode (`--tui`): a scrolling pane of every message sent
//! and received, a status bar, an input line with the line mode's syntax,
//! history and completion, a multi-line JSON editor, and reconnection when
//! the peer goes away.
//!
//! Three threads feed one channel that the screen's thread reads: the
//! connection's ([`link`]: requests, events, reconnecting, and every
//! message through the traffic hook), the keyboard's (crossterm's
//! blocking `read`), and the signals' (SIGINT, SIGTERM, SIGHUP). The
//! screen's thread redraws after each batch of what came, and never waits
//! on the connection: a slow command leaves the screen alive.

mod app;
mod input;
mod link;
mod log;
mod pane;
mod view;

use std::process::ExitCode;
use std::sync::mpsc::{self, Sender};
use std::thread;

use ratatui::crossterm::event::{self, DisableBracketedPaste, EnableBracketedPaste};
use ratatui::crossterm::execute;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::batch::Status;
use crate::cli::Args;
use crate::output;
use crate::peer::Peer;

use self::app::App;
use self::link::{Link, Note};

/// What the screen's thread is told.
#[derive(Debug)]
pub(crate) enum Input {
    /// A key, a resize, ... from the terminal.
    Terminal(event::Event),
    /// The terminal cannot be read any more.
    TerminalGone(String),
    /// A signal that ends the shell.
    Signal(i32),
    /// From the connection's thread.
    Note(Note),
}

/// Runs the full-screen mode until Esc, Ctrl-D or a signal; the exit
/// status is 0, or 128 + the signal's number.
pub(crate) fn run(args: &Args) -> ExitCode {
    let (screen, inputs) = mpsc::channel();
    let (jobs, job_rx) = mpsc::channel();
    let link = Link::new(args, job_rx, screen.clone());
    // A QEMU of our own starts before the screen, so that a failure to
    // start it is told plainly.
    let first = if args.launch {
        match Peer::open_with(args, Some(link.hook())) {
            Ok(peer) => Some(peer),
            Err(e) => {
                output::failure(e);
                return Status::Failure.into();
            }
        }
    } else {
        None
    };
    let mut app = App::new(args, jobs);
    if let Err(e) = watch_signals(screen.clone()) {
        output::failure(format!("cannot watch for signals: {e}"));
        return close(first);
    }
    let mut terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(e) => {
            let _ = ratatui::try_restore();
            output::failure(format!("cannot set up the terminal: {e}"));
            return close(first);
        }
    };
    // A paste comes whole (a JSON request of several lines goes to the
    // editor); not worth failing for.
    let _ = execute!(std::io::stdout(), EnableBracketedPaste);
    read_keys(screen);
    let (ended, worker) = thread::scope(|scope| {
        let worker = scope.spawn(move || link.run(first));
        let ended = app.run(&mut terminal, &inputs);
        let _ = terminal.show_cursor();
        let _ = execute!(std::io::stdout(), DisableBracketedPaste);
        let _ = ratatui::try_restore();
        if let Some(why) = app.farewell.take() {
            output::failure(why);
        }
        // Hanging up ends the connection's thread (within --timeout).
        drop(app);
        (ended, worker.join())
    });
    if worker.is_err() {
        output::failure("the connection's thread panicked");
    }
    match ended {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            output::failure(format!("the terminal failed: {e}"));
            Status::Failure.into()
        }
    }
}

/// Stops a QEMU started for a screen that could not open.
fn close(peer: Option<Peer>) -> ExitCode {
    if let Some(peer) = peer {
        let _ = peer.close();
    }
    Status::Failure.into()
}

/// Keys and resizes, from a thread of their own (it blocks in `read`
/// until the process ends).
fn read_keys(screen: Sender<Input>) {
    let reader = move || {
        loop {
            let input = match event::read() {
                Ok(ev) => Input::Terminal(ev),
                Err(e) => Input::TerminalGone(e.to_string()),
            };
            let gone = matches!(input, Input::TerminalGone(_));
            if screen.send(input).is_err() || gone {
                return;
            }
        }
    };
    if let Err(e) = thread::Builder::new()
        .name("qmp-shell-keys".into())
        .spawn(reader)
    {
        output::failure(format!("cannot start a thread: {e}"));
    }
}

/// SIGINT, SIGTERM and SIGHUP become [`Input::Signal`], so the shell
/// restores the terminal before it leaves.
fn watch_signals(screen: Sender<Input>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    thread::Builder::new()
        .name("qmp-shell-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if screen.send(Input::Signal(signal)).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
