//! `qmp-shell` at the prompt, through a pseudo-terminal, against a real
//! QEMU: `help` from the live schema, completion of values and of a
//! union branch's members, the check that refuses a mistyped command
//! without sending it, HMP text, `cpu N` and `quit` in HMP mode, and
//! `--listen` taking QEMU again after it was killed and restarted.
#![allow(clippy::std_instead_of_core)]

mod shell_common;

use std::process::Stdio;

use serde_json::Value;
use shell_common::pty::{assert_exited_0, expect, leave, send, spawn, start};
use tests::{ChildGuard, TempDir};

const PROMPT: &str = "(QEMU) ";

#[test]
fn help_lists_commands_and_shows_an_argument_tree() {
    let dir = TempDir::new("shell-help");
    let mut p = spawn(&["--launch"], &dir.join("history"), PROMPT);
    send(&mut p, "help\r");
    expect(&mut p, "query-status");
    expect(&mut p, "`help COMMAND` describes");
    expect(&mut p, PROMPT);
    send(&mut p, "help blockdev-add\r");
    expect(&mut p, "blockdev-add");
    // The discriminator, with its enum values, then the common members,
    // then each driver's own.
    let driver = expect(&mut p, "node-name: optional string");
    assert!(driver.contains("driver: required one of"), "{driver}");
    assert!(driver.contains("null-co"), "{driver}");
    expect(&mut p, "when driver = null-co:");
    expect(&mut p, "read-zeroes: optional boolean");
    expect(&mut p, PROMPT);
    // Arguments pick the branch shown.
    send(&mut p, "help blockdev-add driver=null-co\r");
    let one = expect(&mut p, "when driver = null-co:");
    assert!(!one.contains("when driver = file:"), "{one}");
    expect(&mut p, "read-zeroes: optional boolean");
    expect(&mut p, PROMPT);
    send(&mut p, "help query-status\r");
    expect(&mut p, "(no arguments)");
    expect(&mut p, PROMPT);
    send(&mut p, "help qom-ge\t");
    expect(&mut p, "qom-get ");
    send(&mut p, "\r");
    expect(&mut p, "property: required string");
    expect(&mut p, PROMPT);
    send(&mut p, "help query-stauts\r");
    expect(&mut p, "did you mean `query-status`?");
    expect(&mut p, PROMPT);
    leave(p);
}

#[test]
fn values_complete_from_the_schema_and_earlier_results() {
    let dir = TempDir::new("shell-values");
    let mut p = spawn(
        &["--launch", "--", "-blockdev", "null-co,node-name=disk0"],
        &dir.join("history"),
        PROMPT,
    );
    // The discriminator's values, then the members of the branch chosen.
    send(&mut p, "blockdev-add driver=null-c\t");
    expect(&mut p, "driver=null-co");
    send(&mut p, "read-z\t");
    expect(&mut p, "read-zeroes=");
    send(&mut p, "t\t");
    expect(&mut p, "read-zeroes=true");
    send(&mut p, "node-name=disk1\r");
    expect(&mut p, "{}");
    expect(&mut p, PROMPT);
    // A node name from an earlier query.
    send(&mut p, "query-named-block-nodes\r");
    expect(&mut p, "\"node-name\": \"disk1\"");
    expect(&mut p, PROMPT);
    send(&mut p, "block-dirty-bitmap-add name=b0 node=disk\t\t");
    expect(&mut p, "disk0");
    send(&mut p, "1\r");
    expect(&mut p, "{}");
    expect(&mut p, PROMPT);
    send(&mut p, "query-named-block-nodes\r");
    expect(&mut p, "\"name\": \"b0\"");
    expect(&mut p, PROMPT);
    leave(p);
}

#[test]
fn a_mistyped_command_is_refused_with_the_closest_name_and_not_sent() {
    let dir = TempDir::new("shell-check");
    let log = dir.join("log");
    let log_arg = log.to_str().unwrap();
    let mut p = spawn(&["--launch", "-l", log_arg], &dir.join("history"), PROMPT);
    send(&mut p, "query-stauts\r");
    expect(
        &mut p,
        "the server has no command `query-stauts` (did you mean `query-status`?) (not sent)",
    );
    expect(&mut p, PROMPT);
    send(&mut p, "blockdev-add driver=null-co node-nme=x\r");
    expect(
        &mut p,
        "takes no argument `node-nme` (did you mean `node-name`?)",
    );
    expect(&mut p, PROMPT);
    send(&mut p, "blockdev-add driver=file node-name=x\r");
    expect(&mut p, "`blockdev-add` needs the argument `filename`");
    expect(&mut p, PROMPT);
    send(&mut p, "query-status\r");
    expect(&mut p, "\"status\": \"running\"");
    expect(&mut p, PROMPT);
    leave(p);
    // The log has the one command that was sent, and its response.
    let text = std::fs::read_to_string(&log).expect("the log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], serde_json::json!({"execute": "query-status"}));
    assert_eq!(lines[1]["return"]["status"], "running", "{text}");
}

#[test]
fn hmp_text_cpu_selection_and_quit() {
    let dir = TempDir::new("shell-hmp-text");
    // In QMP mode, human-monitor-command's answer is shown as text.
    let mut p = spawn(&["--launch"], &dir.join("history"), PROMPT);
    send(&mut p, "human-monitor-command command-line='info status'\r");
    let before = expect(&mut p, "VM status: running");
    assert!(!before.trim_end().ends_with('"'), "{before:?}");
    let after = expect(&mut p, PROMPT);
    assert!(
        !after.contains("\\r\\n") && !after.contains('"'),
        "{after:?}"
    );
    leave(p);

    // In HMP mode, `cpu N` picks the CPU of the commands after it, and
    // `quit` leaves at once.
    let args = ["--launch", "-H", "--", "-M", "pc", "-smp", "2", "-S"];
    let mut p = spawn(&args, &dir.join("history"), "(HMP) ");
    send(&mut p, "info cpus\r");
    expect(&mut p, "* CPU #0");
    expect(&mut p, "(HMP) ");
    send(&mut p, "cpu 1\r");
    expect(&mut p, "(HMP) ");
    send(&mut p, "info cpus\r");
    expect(&mut p, "* CPU #1");
    expect(&mut p, "(HMP) ");
    send(&mut p, "quit\r");
    p.exp_eof()
        .expect("the shell leaves after quit, with no key");
    assert_exited_0(&p);
    // Each mode has its own history.
    let qmp = std::fs::read_to_string(dir.join("history")).unwrap();
    let hmp = std::fs::read_to_string(dir.join("history-hmp")).unwrap();
    assert!(
        qmp.contains("human-monitor-command") && !qmp.contains("cpu 1"),
        "{qmp}"
    );
    assert!(
        hmp.contains("cpu 1") && !hmp.contains("human-monitor-command"),
        "{hmp}"
    );
}

/// Starts a QEMU that connects to the shell at `socket`.
fn qemu_connecting_to(socket: &std::path::Path, extra: &[&str]) -> ChildGuard {
    ChildGuard::spawn(
        tests::command(tests::qemu_binary())
            .args(["-machine", "none", "-nodefaults", "-display", "none"])
            .args(extra)
            .arg("-qmp")
            .arg(format!("unix:{},server=off", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    )
    .expect("start QEMU")
}

#[test]
fn listen_takes_qemu_again_after_it_was_killed() {
    let dir = TempDir::new("shell-listen");
    let socket = dir.join("qmp.sock");
    let mut p = start(
        &["--listen", socket.to_str().unwrap()],
        &dir.join("history"),
        &[],
    );
    expect(&mut p, "Waiting for QEMU to connect");
    let mut qemu = qemu_connecting_to(&socket, &[]);
    expect(&mut p, "Connected to QEMU");
    expect(&mut p, PROMPT);
    send(&mut p, "query-status\r");
    expect(&mut p, "\"status\": \"running\"");
    expect(&mut p, PROMPT);

    qemu.kill().expect("kill QEMU");
    qemu.wait().expect("reap QEMU");
    expect(&mut p, "again.");
    // Meanwhile a command fails, and the shell goes on waiting.
    send(&mut p, "query-status\r");
    expect(&mut p, "error: ");
    expect(&mut p, PROMPT);
    // A QEMU started anew (paused this time) is taken at once.
    let _qemu = qemu_connecting_to(&socket, &["-S"]);
    expect(&mut p, "Connected to QEMU");
    send(&mut p, "query-status\r");
    expect(&mut p, "\"status\": \"prelaunch\"");
    expect(&mut p, PROMPT);
    leave(p);
    assert!(!socket.exists(), "the socket file is removed on exit");
}
