//! `qmp-shell` pointed at a hostile peer and fed hostile input, through
//! the built binary: escape sequences in the server's text never reach
//! the terminal raw, and a line nested without end is a syntax error
//! (exit 2), never a crash, in `-c`, on stdin and at the prompt.
#![allow(clippy::std_instead_of_core)]

#[allow(dead_code, unused_imports, unused_macros)]
mod fault;
mod shell_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fault::{FaultServer, Script};
use serde_json::json;
use shell_common::{Run, run_with, shell};
use tests::{TempDir, qemu_binary};

/// The greeting's `package`, as JSON text: retitles the window, clears
/// the screen.
const PACKAGE: &str = r"pkg\u001b]0;TITLE\u0007\u001b[2J";

/// An error class and description with escape sequences, as JSON text.
const ERROR: &str = r#"{"error": {"class": "GenericError\u001b[5m", "desc": "bad\u001b]0;TITLE\u0007\u001b[2J"}, "id": $id}"#;

/// The same, as the shell must print it.
const ERROR_SHOWN: &str = "GenericError^[[5m: bad^[]0;TITLE^G^[[2J";

/// Strings that JSON may carry raw: DEL and C1 controls (U+009B is CSI,
/// which some terminals obey).
const RAW: &str = "del\u{7f} csi\u{9b}2J nel\u{85}";

const LIMIT: Duration = Duration::from_secs(30);

/// Greeting with [`PACKAGE`], no capabilities, negotiation.
fn greet() -> Script {
    let greeting = format!(
        r#"{{"QMP": {{"version": {{"qemu": {{"micro": 0, "minor": 2, "major": 7}}, "package": "{PACKAGE}"}}, "capabilities": []}}}}"#
    );
    Script::new()
        .send(&format!("{greeting}\r\n"))
        .expect("qmp_capabilities")
        .send("{\"return\": {}, \"id\": $id}\r\n")
}

/// Fails when stdout or stderr carries a raw control character but
/// newline and tab (ESC above all).
#[track_caller]
fn assert_no_raw_controls(r: &Run) {
    for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        assert!(!text.contains('\u{1b}'), "ESC on {name}: {r:#?}");
        let bad: Vec<char> = text
            .chars()
            .filter(|&c| c.is_control() && c != '\n' && c != '\t')
            .collect();
        assert!(bad.is_empty(), "raw controls {bad:?} on {name}: {r:#?}");
    }
}

#[test]
fn escapes_in_errors_results_and_the_greeting_are_made_visible() {
    let reply = format!(r#"{{"return": {{"status": "x\u001b[2J", "raw": "{RAW}"}}, "id": $id}}"#);
    let server = FaultServer::start(
        greet()
            .expect("query-status")
            .send(&format!("{reply}\r\n"))
            .expect("stop")
            .send(&format!("{ERROR}\r\n"))
            .drain(),
    );
    let path = server.path().to_str().unwrap();
    // -v echoes every message, the greeting's package included.
    let r = run_with(
        shell(&[path, "-v", "-c", "query-status", "-c", "stop"]),
        None,
        LIMIT,
    );
    server.finish_ok();
    assert_eq!(r.code(), 1, "{r:#?}");
    assert_no_raw_controls(&r);
    // The result is still JSON with the very same strings.
    assert_eq!(
        r.json_lines(),
        [json!({"status": "x\u{1b}[2J", "raw": RAW})],
        "{r:#?}"
    );
    assert!(r.stderr.ends_with(&format!("{ERROR_SHOWN}\n")), "{r:#?}");
    assert!(r.stderr.contains(r"pkg\u001b]0;TITLE"), "{r:#?}");
}

#[test]
fn escapes_in_events_and_hmp_output_are_made_visible() {
    let server = FaultServer::start(
        greet()
            .expect("cont")
            .reply("{}")
            .event(r"EVIL\u001b]0;TITLE\u0007")
            .send(&format!(
                "{{\"event\": \"RAW{RAW}\", \"data\": {{\"s\": \"\\u001b[2J\"}}, \"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}}}\r\n"
            ))
            .close(),
    );
    let path = server.path().to_str().unwrap();
    let r = run_with(
        shell(&[path, "-c", "cont", "--events", "--timeout", "10"]),
        None,
        LIMIT,
    );
    server.finish_ok();
    assert_eq!(r.code(), 0, "{r:#?}");
    assert_no_raw_controls(&r);
    let lines = r.json_lines();
    assert_eq!(lines[1]["event"], "EVIL\u{1b}]0;TITLE\u{7}", "{r:#?}");
    assert_eq!(lines[2]["event"], format!("RAW{RAW}"), "{r:#?}");
    assert_eq!(lines[2]["data"]["s"], "\u{1b}[2J", "{r:#?}");

    let server = FaultServer::start(
        greet()
            .expect("human-monitor-command")
            .reply(&format!(r#""ok\u001b[2J{RAW}\r\n""#))
            .expect("human-monitor-command")
            .send(&format!("{ERROR}\r\n"))
            .drain(),
    );
    let path = server.path().to_str().unwrap();
    let r = run_with(
        shell(&[path, "-H", "-c", "info version", "-c", "info status"]),
        None,
        LIMIT,
    );
    server.finish_ok();
    assert_eq!(r.code(), 1, "{r:#?}");
    assert_no_raw_controls(&r);
    assert_eq!(r.stdout, "ok^[[2Jdel^? csi\\u009b2J nel\\u0085\n", "{r:#?}");
    assert_eq!(r.stderr, format!("{ERROR_SHOWN}\n"), "{r:#?}");
}

// ----- input nested without end --------------------------------------------

/// A `qom-list` line whose one key has `levels` dotted levels.
fn dotted(levels: usize) -> String {
    format!("qom-list {}=1", vec!["a"; levels].join("."))
}

/// A stand-in for `$QEMU` that notes each start (its pid) and runs the
/// real QEMU; the file where the pids go.
fn noting_qemu(dir: &TempDir) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("qemu");
    let pids = dir.join("pids");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ >> '{}'\nexec '{}' \"$@\"\n",
            pids.display(),
            qemu_binary()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, pids)
}

/// The pids `noting_qemu` wrote, none when it never ran.
fn started(pids: &Path) -> Vec<u32> {
    std::fs::read_to_string(pids)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// Whether `pid` is still a running (not zombie) process.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.to_owned()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// Exit 2, one short line saying the nesting is too deep.
#[track_caller]
fn assert_too_deep(r: &Run) {
    assert_eq!(r.code(), 2, "{}", r.stderr);
    assert!(r.stderr.contains("deeper than 64 levels"), "{}", r.stderr);
    assert!(r.stderr.len() < 400, "a short message: {}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn deep_dotted_keys_in_c_start_no_qemu() {
    let dir = TempDir::new("shell-deep");
    let (qemu, pids) = noting_qemu(&dir);
    // One argument may be at most 128 KiB (MAX_ARG_STRLEN): 60,000
    // levels, well past where the stack used to overflow.
    let line = dotted(60_000);
    let mut cmd = shell(&["--launch", "-c", "query-status", "-c", &line]);
    cmd.env("QEMU", &qemu);
    let r = run_with(cmd, None, LIMIT);
    assert_too_deep(&r);
    assert!(r.stdout.is_empty(), "{r:#?}");
    assert_eq!(started(&pids), Vec::<u32>::new(), "QEMU was started");
    // Deep brackets, and a deep raw JSON request, too.
    let deep_value = format!("x a={}", "[".repeat(100_000));
    let deep_json = format!(
        r#"{{"execute": "x", "arguments": {}"#,
        r#"{"a":"#.repeat(20_000)
    );
    for line in [deep_value, deep_json] {
        let mut cmd = shell(&["--launch", "-c", &line]);
        cmd.env("QEMU", &qemu);
        assert_too_deep(&run_with(cmd, None, LIMIT));
    }
    assert_eq!(started(&pids), Vec::<u32>::new(), "QEMU was started");
}

#[test]
fn a_megabyte_of_dotted_keys_on_stdin_is_a_syntax_error_and_qemu_is_stopped() {
    let dir = TempDir::new("shell-deep-stdin");
    let (qemu, pids) = noting_qemu(&dir);
    let line = dotted(500_000);
    assert!(line.len() > 1_000_000);
    let input = format!("query-status\n{line}\nstop\n");
    let mut cmd = shell(&["--launch"]);
    cmd.env("QEMU", &qemu);
    let r = run_with(cmd, Some(&input), Duration::from_secs(60));
    assert_too_deep(&r);
    // The first command ran, the line after the bad one did not.
    assert_eq!(r.json_lines().len(), 1, "{r:#?}");
    assert_eq!(r.json_lines()[0]["status"], "running", "{r:#?}");
    let started = started(&pids);
    assert_eq!(started.len(), 1, "{started:?}");
    assert!(!running(started[0]), "QEMU {} still runs", started[0]);

    // A raw JSON request a megabyte deep, against a scripted server.
    let server = FaultServer::start(greet().drain());
    let path = server.path().to_str().unwrap();
    let deep = format!(
        r#"{{"execute": "x", "arguments": {}"#,
        r#"{"a":"#.repeat(200_000)
    );
    let r = run_with(shell(&[path]), Some(&format!("{deep}\n")), LIMIT);
    server.finish_ok();
    assert_too_deep(&r);
}

// ----- at the prompt -------------------------------------------------------

#[test]
fn at_the_prompt_escapes_are_visible_and_deep_lines_are_syntax_errors() {
    use rexpect::process::wait::WaitStatus;
    use rexpect::reader::Options as PtyOptions;
    use rexpect::session::spawn_with_options;

    // A schema offering a command whose name would clear the screen:
    // completion leaves it out.
    let schema = r#"[{"name": "stop", "meta-type": "command", "arg-type": "0", "ret-type": "0"},
        {"name": "sto\u001b[2J", "meta-type": "command", "arg-type": "0", "ret-type": "0"},
        {"name": "hostile", "meta-type": "command", "arg-type": "1", "ret-type": "0"},
        {"name": "1", "meta-type": "object", "members": [{"name": "mode", "type": "2"}]},
        {"name": "2", "meta-type": "enum", "values": ["ok", "x\u001b[2J"]},
        {"name": "0", "meta-type": "object", "members": []}]"#
        .replace('\n', "");
    let server = FaultServer::start(
        greet()
            .expect("query-qmp-schema")
            .reply(&schema)
            .expect("stop")
            .send(&format!("{ERROR}\r\n"))
            .drain(),
    );
    let dir = TempDir::new("shell-hostile-prompt");
    let mut cmd = std::process::Command::new(shell_common::qmp_shell());
    cmd.arg(server.path())
        .env("QMP_SHELL_HISTFILE", dir.join("history"))
        .env("TERM", "xterm")
        .env_remove("RUST_LOG");
    // Escape sequences the terminal would obey are stripped from what the
    // test reads; the visible forms the shell must print are plain text.
    let options = PtyOptions::new()
        .timeout_ms(Some(10_000))
        .strip_ansi_escape_codes(true);
    let mut p = spawn_with_options(cmd, options).expect("start qmp-shell on a pty");
    let expect = |p: &mut rexpect::session::PtySession, text: &str| {
        if let Err(e) = p.exp_string(text) {
            panic!("expected {text:?} on the screen: {e}")
        }
    };
    expect(&mut p, "(pkg^[]0;TITLE^G^[[2J)");
    expect(&mut p, "(QEMU) ");
    // One candidate left: Tab completes it at once.
    p.send("st\t").unwrap();
    p.flush().unwrap();
    expect(&mut p, "stop ");
    p.send("\r").unwrap();
    p.flush().unwrap();
    expect(&mut p, ERROR_SHOWN);
    expect(&mut p, "(QEMU) ");
    // `help` shows the server's names made visible; completion of
    // values leaves out the one that would steer the terminal.
    p.send("help\r").unwrap();
    p.flush().unwrap();
    expect(&mut p, "sto^[[2J");
    expect(&mut p, "(QEMU) ");
    p.send("help hostile\r").unwrap();
    p.flush().unwrap();
    expect(&mut p, "mode: required one of ok, x^[[2J");
    expect(&mut p, "(QEMU) ");
    p.send("hostile mode=\t").unwrap();
    p.flush().unwrap();
    expect(&mut p, "mode=ok ");
    p.send_control('c').unwrap();
    expect(&mut p, "(QEMU) ");
    p.send(&format!("{}\r", dotted(200))).unwrap();
    p.flush().unwrap();
    expect(&mut p, "deeper than 64 levels");
    expect(&mut p, "(QEMU) ");
    p.send_control('d').unwrap();
    p.exp_eof().expect("the shell leaves");
    let status = p.process().wait().expect("wait for qmp-shell");
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    server.finish_ok();
}
