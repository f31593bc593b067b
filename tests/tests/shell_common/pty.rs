//! Driving `qmp-shell` on a pseudo-terminal: start it, wait for text on
//! the screen (escape sequences removed), type keys.

use std::path::Path;

use rexpect::process::wait::WaitStatus;
use rexpect::reader::Options as PtyOptions;
use rexpect::session::{PtySession, spawn_with_options};

use super::qmp_shell;

/// Starts `qmp-shell args` on a pseudo-terminal with its history in
/// `history` and `env` set; every wait gives up after 20 s.
pub(crate) fn start(args: &[&str], history: &Path, env: &[(&str, &str)]) -> PtySession {
    let mut cmd = tests::command(qmp_shell());
    cmd.args(args)
        .env("QMP_SHELL_HISTFILE", history)
        .env("TERM", "xterm")
        .env_remove("RUST_LOG")
        .env_remove("QMP_SOCKET");
    for (name, value) in env {
        cmd.env(name, value);
    }
    let options = PtyOptions::new()
        .timeout_ms(Some(20_000))
        .strip_ansi_escape_codes(true);
    spawn_with_options(cmd, options).expect("start qmp-shell on a pty")
}

/// [`start`], then waits for the greeting and `prompt`.
pub(crate) fn spawn(args: &[&str], history: &Path, prompt: &str) -> PtySession {
    let mut p = start(args, history, &[]);
    expect(&mut p, "Connected to ");
    expect(&mut p, prompt);
    p
}

/// Waits for `text`; what came before it. Fails the test otherwise.
#[track_caller]
pub(crate) fn expect(p: &mut PtySession, text: &str) -> String {
    match p.exp_string(text) {
        Ok(before) => before,
        Err(e) => panic!("expected {text:?} on the screen: {e}"),
    }
}

/// Types `keys`.
#[track_caller]
pub(crate) fn send(p: &mut PtySession, keys: &str) {
    p.send(keys).expect("type on the pty");
    p.flush().expect("flush the pty");
}

/// Ctrl-D at the prompt: the shell leaves with status 0.
#[track_caller]
pub(crate) fn leave(mut p: PtySession) {
    p.send_control('d').expect("Ctrl-D");
    p.exp_eof().expect("the shell leaves");
    assert_exited_0(&p);
}

/// The shell exited with status 0.
#[track_caller]
pub(crate) fn assert_exited_0(p: &PtySession) {
    let status = p.process().wait().expect("wait for qmp-shell");
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "qmp-shell ended with {status:?}"
    );
}
