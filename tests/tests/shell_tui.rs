//! `qmp-shell --tui` on a pseudo-terminal against a real QEMU, read as a
//! person would read it: the pty's output goes through a terminal
//! emulator (`vt100`) and each check waits until the emulated screen
//! shows what it looks for (a generous deadline is only a hang guard).
//!
//! The shell runs under `sh`, which sets the terminal's size first and,
//! once the shell has left, prints its exit status and `stty -a`: so the
//! screen also shows whether the terminal was given back in its normal
//! (canonical) mode.
#![allow(clippy::std_instead_of_core)]

#[allow(dead_code, unused_imports, unused_macros)]
mod fault;
mod shell_common;

use std::fs::File;
use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use fault::{FaultServer, Script};
use rexpect::process::PtyProcess;
use shell_common::qmp_shell;
use tests::{ChildGuard, TempDir};

const ROWS: u16 = 40;
const COLS: u16 = 120;

/// How long any one thing may take to appear on the screen.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// A QEMU serving QMP at `socket` (not paused: it runs).
fn qemu_at(socket: &Path) -> ChildGuard {
    ChildGuard::spawn(
        tests::command(tests::qemu_binary())
            .args(["-machine", "none", "-nodefaults", "-display", "none"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap_or_else(|e| panic!("cannot start {}: {e}", tests::qemu_binary()))
}

/// `qmp-shell --tui` on a pty, and the screen it draws.
struct Screen {
    process: PtyProcess,
    keys: File,
    output: Receiver<Vec<u8>>,
    parser: vt100::Parser,
    /// Every byte the terminal was sent.
    raw: Vec<u8>,
}

impl Screen {
    /// Starts `qmp-shell --tui ARGS` with its history in `dir`.
    fn start(args: &[&str], dir: &Path) -> Screen {
        let script = format!(
            "stty rows {ROWS} cols {COLS} && \"$0\" \"$@\"; echo \"qmp-shell exited $?\"; stty -a"
        );
        let mut cmd = tests::command("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(qmp_shell())
            .arg("--tui")
            .args(args)
            .env("QMP_SHELL_HISTFILE", dir.join("history"))
            .env("TERM", "xterm-256color")
            .env_remove("RUST_LOG");
        let mut process = PtyProcess::new(cmd).expect("start qmp-shell on a pty");
        process.set_kill_timeout(Some(5_000));
        let keys = process.get_file_handle().expect("the pty");
        let mut from_pty = process.get_file_handle().expect("the pty");
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0; 8192];
            // A read fails (EIO) once everything on the pty has gone.
            while let Ok(n @ 1..) = from_pty.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        let size = |n| NonZeroU16::new(n).expect("a size");
        Screen {
            process,
            keys,
            output,
            parser: vt100::Parser::new(size(ROWS), size(COLS), 0),
            raw: Vec::new(),
        }
    }

    fn screen(&self) -> &vt100::Screen {
        self.parser.screen()
    }

    fn contents(&self) -> String {
        self.screen().contents()
    }

    /// Waits until the screen satisfies `done` (`what` describes it);
    /// fails the test with the screen as it is after [`HANG_GUARD`].
    #[track_caller]
    fn wait_for(&mut self, what: &str, done: impl Fn(&vt100::Screen) -> bool) {
        let deadline = Instant::now() + HANG_GUARD;
        while !done(self.screen()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => {
                    self.parser.process(&bytes);
                    self.raw.extend_from_slice(&bytes);
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {what} on the screen:\n{}", self.contents())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the pty closed before {what}:\n{}", self.contents())
                }
            }
        }
    }

    /// Waits until `text` is on the screen.
    #[track_caller]
    fn expect(&mut self, text: &str) {
        self.wait_for(&format!("{text:?}"), |s| s.contents().contains(text));
    }

    /// Waits until the status bar (the row above the input line) shows
    /// `text`.
    #[track_caller]
    fn expect_status(&mut self, text: &str) {
        let row = ROWS - 2;
        self.wait_for(&format!("{text:?} in the status bar"), |s| {
            row_text(s, row).contains(text)
        });
    }

    /// Types `keys`.
    #[track_caller]
    fn send(&mut self, keys: &str) {
        self.keys
            .write_all(keys.as_bytes())
            .expect("type on the pty");
        self.keys.flush().expect("flush the pty");
    }

    /// Waits for the shell to leave with `status`, and checks that it
    /// left the alternate screen and gave the terminal back in canonical
    /// mode with signals on (as `stty -a` then says).
    #[track_caller]
    fn expect_left(&mut self, status: i32) {
        let said = format!("qmp-shell exited {status}");
        self.wait_for("the exit status and stty's report", |s| {
            s.contents().contains(&said) && s.contents().contains("icanon")
        });
        let screen = self.screen();
        assert!(!screen.alternate_screen(), "{}", self.contents());
        assert!(!screen.hide_cursor(), "the cursor is still hidden");
        assert!(!screen.bracketed_paste(), "bracketed paste is still on");
        let contents = self.contents();
        let words: Vec<&str> = contents.split_whitespace().collect();
        for mode in ["icanon", "isig"] {
            assert!(
                words.contains(&mode),
                "the terminal is not back to {mode}:\n{contents}"
            );
        }
    }

    /// The pid of qmp-shell itself (the child of `sh`).
    fn shell_pid(&self) -> i32 {
        let sh = self.process.child_pid.as_raw();
        let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children"))
            .expect("the children of sh");
        children
            .split_whitespace()
            .next()
            .and_then(|pid| pid.parse().ok())
            .expect("qmp-shell runs under sh")
    }
}

/// The text of screen row `row`.
fn row_text(screen: &vt100::Screen, row: u16) -> String {
    screen
        .rows(0, COLS)
        .nth(usize::from(row))
        .unwrap_or_default()
}

#[test]
fn a_command_its_reply_and_an_event_on_the_screen() {
    let dir = TempDir::new("tui-screen");
    let socket = dir.join("qmp.sock");
    let _qemu = qemu_at(&socket);
    let log = dir.join("log");
    let socket_arg = socket.to_str().expect("a UTF-8 path");
    let log_arg = log.to_str().expect("a UTF-8 path");
    let mut s = Screen::start(
        &[socket_arg, "--retry-delay", "0.1", "--tui-log", log_arg],
        dir.path(),
    );
    s.expect_status("| running");
    s.expect_status("connected");
    // Completion as in the line mode, then the reply in the pane.
    s.send("qom-get pa\t");
    s.expect("(QEMU) qom-get path=");
    s.send("/machine property=type\r");
    s.expect("<- {\"return\": \"none-machine\"");
    // An event is marked as one, and the run state follows it.
    s.send("stop\r");
    s.expect("-> {\"execute\":\"stop\"");
    s.expect("<- EVENT STOP {");
    s.expect_status("| paused");
    // A syntax error is reported and nothing is sent.
    s.send("cont a=1 a=2\r");
    s.expect("!! syntax error: `a` is given twice");
    s.expect_status("last error: syntax error");
    // Up recalls the line; Ctrl-U clears it.
    s.send("\x1b[A");
    s.expect("(QEMU) cont a=1 a=2");
    s.send("\x15");
    s.wait_for("an empty input line", |s| {
        row_text(s, ROWS - 1).trim_end() == "(QEMU)"
    });
    // The JSON editor: Ctrl-O takes the line as JSON, Alt-Enter sends.
    s.send("query-status\x0f");
    s.expect("JSON request");
    s.expect("\"execute\": \"query-status\"");
    s.send("\x1b\r");
    s.expect("\"status\": \"paused\"");
    // A pasted request of several lines lands in the editor.
    s.send("\x1b[200~{\"execute\":\n  \"qom-list\", \"arguments\": {\"path\": \"/\"}}\x1b[201~");
    s.expect("  \"qom-list\", \"arguments\"");
    s.send("\x1b\r");
    s.expect("-> {\"execute\":\"qom-list\",\"arguments\":{\"path\":\"/\"}");
    s.expect("\"type\": \"child<none-machine>\"");
    s.send("\x1b");
    s.expect_left(0);

    let log = std::fs::read_to_string(&log).expect("the log file");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["sent"]["execute"] == "stop"),
        "{log}"
    );
    assert!(
        lines.iter().any(|l| l["received"]["event"] == "STOP"),
        "{log}"
    );
    // The line with the syntax error was never sent.
    assert!(
        !lines.iter().any(|l| l["sent"]["execute"] == "cont"),
        "{log}"
    );
}

#[test]
fn the_shell_reconnects_when_qemu_restarts_on_the_same_socket() {
    let dir = TempDir::new("tui-reconnect");
    let socket = dir.join("qmp.sock");
    let mut qemu = qemu_at(&socket);
    let socket_arg = socket.to_str().expect("a UTF-8 path");
    let mut s = Screen::start(
        &[socket_arg, "--retries", "300", "--retry-delay", "0.1"],
        dir.path(),
    );
    s.expect_status("| running");
    s.expect_status("reconnects: 0");
    s.send("stop\r");
    s.expect_status("| paused");

    qemu.kill().expect("kill QEMU");
    qemu.wait().expect("reap QEMU");
    s.expect("!! the connection closed");
    s.expect_status("reconnecting");

    let _qemu = qemu_at(&socket);
    s.expect_status("reconnects: 1");
    s.expect_status("| connected");
    s.expect("-- reconnected to QEMU");
    // The new QEMU runs; the old one's pause is gone from the bar.
    s.expect_status("| running");
    s.send("qom-get path=/machine property=type\r");
    s.expect("<- {\"return\": \"none-machine\"");
    // Ctrl-D on an empty line leaves.
    s.send("\x04");
    s.expect_left(0);
}

#[test]
fn sigterm_and_sigint_leave_and_restore_the_terminal() {
    use rustix::process::{Pid, Signal, kill_process};
    let dir = TempDir::new("tui-signals");
    let socket = dir.join("qmp.sock");
    let _qemu = qemu_at(&socket);
    let socket_arg = socket.to_str().expect("a UTF-8 path");
    // 128 + the signal's number, as a shell reports a death by signal.
    for (signal, status) in [(Signal::TERM, 143), (Signal::INT, 130)] {
        let mut s = Screen::start(&[socket_arg, "--retry-delay", "0.1"], dir.path());
        s.expect_status("| running");
        s.send("query-na");
        s.expect("(QEMU) query-na");
        let pid = Pid::from_raw(s.shell_pid()).expect("a pid");
        kill_process(pid, signal).expect("signal qmp-shell");
        s.expect_left(status);
    }
}

#[test]
fn the_servers_escape_sequences_are_shown_not_obeyed() {
    // A greeting whose package retitles the window and clears the
    // screen, a run state that clears it, raw DEL and C1 controls, an
    // error and an event with escape sequences.
    let greeting = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "pkg\u001b]0;TITLE\u0007\u001b[2J"}, "capabilities": []}}"#;
    let status = "{\"return\": {\"status\": \"x\\u001b[2J\", \"raw\": \"del\u{7f} csi\u{9b}2J\"}, \"id\": $id}";
    let error = r#"{"error": {"class": "GenericError\u001b[5m", "desc": "bad\u001b]0;TITLE\u0007"}, "id": $id}"#;
    let server = FaultServer::start(
        Script::new()
            .send(&format!("{greeting}\r\n"))
            .expect("qmp_capabilities")
            .reply("{}")
            .expect("query-qmp-schema")
            .reply("[]")
            .expect("query-status")
            .send(&format!("{status}\r\n"))
            .expect("stop")
            .send(&format!("{error}\r\n"))
            .event(r"EVIL\u001b]0;TITLE\u0007")
            .drain(),
    );
    let dir = TempDir::new("tui-hostile");
    let path = server.path().to_str().expect("a UTF-8 path");
    let mut s = Screen::start(&[path, "--retries", "0"], dir.path());
    s.expect("-- connected to QEMU 7.2.0 (pkg^[]0;TITLE^G^[[2J)");
    s.expect_status("| x^[[2J");
    s.expect("\"raw\": \"del^? csi\\u009b2J\"");
    s.send("stop\r");
    s.expect("!! error: GenericError^[[5m: bad^[]0;TITLE^G");
    s.expect("<- EVENT EVIL^[]0;TITLE^G {");
    s.send("\x1b");
    s.expect_left(0);
    server.finish_ok();
    let raw = String::from_utf8_lossy(&s.raw);
    assert!(!raw.contains("\x1b]0;"), "the title was set: {raw:?}");
    assert!(
        !raw.contains(['\u{7f}', '\u{9b}']),
        "raw DEL or CSI: {raw:?}"
    );
}
