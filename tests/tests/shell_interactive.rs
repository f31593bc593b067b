//! `qmp-shell`'s interactive mode through a pseudo-terminal, against a
//! real QEMU (`--launch`): completion from the server's schema, history
//! across sessions, an event shown while the shell waits for a key,
//! transactions, syntax errors, `quit` and Ctrl-D.
#![allow(clippy::std_instead_of_core)]

mod shell_common;

use std::path::Path;
use std::time::Duration;

use qmp_std::{Options, Qmp};
use rexpect::process::wait::WaitStatus;
use rexpect::reader::Options as PtyOptions;
use rexpect::session::{PtySession, spawn_with_options};
use shell_common::qmp_shell;
use tests::TempDir;

const PROMPT: &str = "(QEMU) ";

/// Starts `qmp-shell args` on a pseudo-terminal with its history in
/// `history`; output is read with escape sequences removed, and every
/// wait gives up after 10 s.
fn spawn(args: &[&str], history: &Path) -> PtySession {
    spawn_with_prompt(args, history, PROMPT)
}

fn spawn_with_prompt(args: &[&str], history: &Path, prompt: &str) -> PtySession {
    let mut cmd = tests::command(qmp_shell());
    cmd.args(args)
        .env("QMP_SHELL_HISTFILE", history)
        .env("TERM", "xterm")
        .env_remove("RUST_LOG");
    let options = PtyOptions::new()
        .timeout_ms(Some(10_000))
        .strip_ansi_escape_codes(true);
    let mut p = spawn_with_options(cmd, options).expect("start qmp-shell on a pty");
    expect(&mut p, "Connected to ");
    expect(&mut p, prompt);
    p
}

/// Waits for `text`; fails the test with what came instead.
#[track_caller]
fn expect(p: &mut PtySession, text: &str) -> String {
    match p.exp_string(text) {
        Ok(before) => before,
        Err(e) => panic!("expected {text:?} on the screen: {e}"),
    }
}

#[track_caller]
fn send(p: &mut PtySession, keys: &str) {
    p.send(keys).expect("type on the pty");
    p.flush().expect("flush the pty");
}

/// Ctrl-D at the prompt: the shell leaves with status 0.
#[track_caller]
fn leave(mut p: PtySession) {
    p.send_control('d').expect("Ctrl-D");
    p.exp_eof().expect("the shell leaves");
    assert_exited_0(&p);
}

#[track_caller]
fn assert_exited_0(p: &PtySession) {
    let status = p.process().wait().expect("wait for qmp-shell");
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "qmp-shell ended with {status:?}"
    );
}

#[test]
fn tab_completes_commands_and_arguments_from_the_schema() {
    let dir = TempDir::new("shell-complete");
    let mut p = spawn(&["--launch"], &dir.join("history"));
    // Two tabs list the candidates (query-stats, query-stats-schemas,
    // query-status); one more letter makes it unique.
    send(&mut p, "query-sta\t\t");
    expect(&mut p, "query-status");
    send(&mut p, "u\t\r");
    expect(&mut p, "\"status\": \"running\"");
    expect(&mut p, PROMPT);

    // Argument names of the current command, nested ones too.
    send(&mut p, "qom-get pa\t");
    expect(&mut p, "path=");
    send(&mut p, "/machine prop\t");
    expect(&mut p, "property=");
    send(&mut p, "type\r");
    expect(&mut p, "\"none-machine\"");
    expect(&mut p, PROMPT);
    send(&mut p, "blockdev-add cache.no-fl\t");
    expect(&mut p, "cache.no-flush=");
    // Ctrl-C drops the line.
    p.send_control('c').unwrap();
    expect(&mut p, PROMPT);
    leave(p);
}

#[test]
fn history_recalls_a_command_of_an_earlier_session() {
    let dir = TempDir::new("shell-history");
    let history = dir.join("history");
    let mut p = spawn(&["--launch"], &history);
    send(&mut p, "query-version\r");
    expect(&mut p, "\"qemu\"");
    expect(&mut p, PROMPT);
    leave(p);
    let saved = std::fs::read_to_string(&history).expect("the history file");
    assert!(saved.contains("query-version"), "{saved:?}");

    let mut p = spawn(&["--launch"], &history);
    send(&mut p, "\x1b[A");
    expect(&mut p, "query-version");
    send(&mut p, "\r");
    expect(&mut p, "\"qemu\"");
    expect(&mut p, PROMPT);
    leave(p);
}

#[test]
fn an_event_shows_while_the_shell_waits_for_a_key() {
    let dir = TempDir::new("shell-event");
    let side = dir.join("side.sock");
    let side_arg = format!("unix:{},server=on,wait=off", side.display());
    // QEMU gets a second QMP monitor: the test stops the guest there, and
    // the STOP event goes to every monitor, the shell's included.
    let mut p = spawn(&["--launch", "--", "-qmp", &side_arg], &dir.join("history"));
    let options = Options::new()
        .socket_wait(Duration::from_secs(10))
        .timeout(Duration::from_secs(10));
    let mut qmp = Qmp::connect_unix(&side, options.clone()).expect("connect to the second monitor");
    qmp.execute("stop", None).expect("stop");
    // No key pressed: the event appears above the prompt.
    expect(&mut p, "\"event\":\"STOP\"");
    expect(&mut p, PROMPT);
    qmp.execute("cont", None).expect("cont");
    expect(&mut p, "\"event\":\"RESUME\"");
    qmp.disconnect();
    // The line being typed survives an event.
    send(&mut p, "query-sta");
    let mut qmp = Qmp::connect_unix(&side, options).expect("connect again");
    qmp.execute("stop", None).expect("stop");
    expect(&mut p, "\"event\":\"STOP\"");
    send(&mut p, "tus\r");
    expect(&mut p, "\"status\": \"paused\"");
    qmp.disconnect();
    expect(&mut p, PROMPT);
    leave(p);
}

#[test]
fn transactions_errors_and_quit() {
    let dir = TempDir::new("shell-quit");
    let mut p = spawn(
        &["--launch", "--", "-blockdev", "null-co,node-name=n0"],
        &dir.join("history"),
    );
    send(&mut p, "transaction(\r");
    expect(&mut p, "(QEMU) ... ");
    send(
        &mut p,
        "block-dirty-bitmap-add node=n0 name=b0 persistent=false\r",
    );
    expect(&mut p, "(QEMU) ... ");
    send(&mut p, ")\r");
    expect(&mut p, "{}");
    expect(&mut p, PROMPT);
    send(&mut p, "query-named-block-nodes\r");
    expect(&mut p, "\"name\": \"b0\"");
    expect(&mut p, PROMPT);
    // Bad input is reported and the shell goes on.
    send(&mut p, "stop a=1 a=2\r");
    expect(&mut p, "syntax error: `a` is given twice");
    expect(&mut p, PROMPT);
    send(&mut p, "device_del id=nope\r");
    expect(&mut p, "DeviceNotFound: Device 'nope' not found");
    expect(&mut p, PROMPT);
    // quit is sent like any command; the shell leaves when QEMU closes.
    send(&mut p, "quit\r");
    expect(&mut p, "SHUTDOWN");
    expect(&mut p, "The connection closed");
    p.exp_eof().expect("the shell leaves after quit");
    assert_exited_0(&p);
}

#[test]
fn negotiating_by_hand_then_completing_everything() {
    let dir = TempDir::new("shell-negotiate");
    let mut p = spawn(&["--launch", "-N"], &dir.join("history"));
    send(&mut p, "query-status\r");
    expect(&mut p, "CommandNotFound");
    expect(&mut p, PROMPT);
    send(&mut p, "qmp_cap\t");
    expect(&mut p, "qmp_capabilities");
    send(&mut p, "\r");
    expect(&mut p, "{}");
    expect(&mut p, PROMPT);
    send(&mut p, "query-statu\t\r");
    expect(&mut p, "\"status\": \"running\"");
    expect(&mut p, PROMPT);
    leave(p);
}

#[test]
fn hmp_mode_completes_and_prints_text() {
    let dir = TempDir::new("shell-hmp");
    let mut p = spawn_with_prompt(&["--launch", "-H"], &dir.join("history"), "(HMP) ");
    send(&mut p, "info versi\t");
    expect(&mut p, "info version");
    send(&mut p, "\r");
    // The text HMP printed, e.g. `7.2.22Debian ...`: the version of the
    // QEMU that `$QEMU` names.
    let version = expect(&mut p, "(HMP) ");
    let expected = tests::dotted(tests::qemu_version());
    assert!(version.contains(&expected), "{version:?}, not {expected}");
    send(&mut p, "stop\r");
    expect(&mut p, "\"event\":\"STOP\"");
    send(&mut p, "info status\r");
    expect(&mut p, "VM status: paused");
    expect(&mut p, "(HMP) ");
    leave(p);
}
