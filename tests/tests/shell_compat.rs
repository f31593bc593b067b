//! `qmp-shell` options that QEMU's own qmp-shell users expect, and
//! launching, through the built binary against a real QEMU: `-l`,
//! `-p`, `--whole`, Python literals, `$QMP_SOCKET`, `cpu N`, `--qemu`,
//! the launch defaults giving way, a failed launch, `--listen`.
#![allow(clippy::std_instead_of_core)]

mod shell_common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use shell_common::{run, run_with, shell};
use tests::{ChildGuard, QemuServer, TempDir};

#[test]
fn the_log_has_each_command_and_its_response() {
    let dir = TempDir::new("shell-log");
    let log = dir.join("qmp.log");
    std::fs::write(&log, "{\"earlier\":1}\n").unwrap();
    let log_arg = log.to_str().unwrap();
    let r = run(&[
        "--launch",
        "-l",
        log_arg,
        "-c",
        "query-status",
        "-c",
        "device_del id=nope",
    ]);
    assert_eq!(r.code(), 1, "{r:#?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    // Appended to what was there.
    assert_eq!(lines[0], json!({"earlier": 1}));
    assert_eq!(lines[1], json!({"execute": "query-status"}));
    assert_eq!(lines[2]["return"]["status"], "running");
    assert_eq!(
        lines[3],
        json!({"execute": "device_del", "arguments": {"id": "nope"}})
    );
    assert_eq!(lines[4]["error"]["class"], "DeviceNotFound", "{text}");
}

#[test]
fn whole_responses_and_pretty() {
    let r = run(&[
        "--launch",
        "-w",
        "-c",
        "query-status",
        "-c",
        "device_del id=nope",
    ]);
    assert_eq!(r.code(), 1, "{r:#?}");
    let out = r.json_lines();
    assert_eq!(out[0]["return"]["status"], "running", "{r:#?}");
    assert_eq!(out[1]["error"]["class"], "DeviceNotFound", "{r:#?}");
    let r = run(&["--launch", "-p", "-c", "query-status"]);
    assert!(r.lines().len() > 3, "{r:#?}");
}

#[test]
fn python_literals_are_taken() {
    let r = run(&[
        "--launch",
        "-c",
        "object-add qom-type=secret id=s0 data=abc format=None",
    ]);
    // `format=None` is null, which QEMU refuses for a string: it was
    // sent as null, not as the text "None".
    assert_eq!(r.code(), 1, "{r:#?}");
    assert!(
        r.stderr.contains("Invalid parameter type for 'format'"),
        "{r:#?}"
    );
    let r = run(&[
        "--launch",
        "-c",
        "qom-set path=/machine property=graphics value=False",
        "-c",
        "qom-get path=/machine property=graphics",
        "-c",
        "qom-set path=/machine property=graphics value=True",
        "-c",
        "qom-get path=/machine property=graphics",
        "-c",
        "transaction actions=[{'type': 'abort', 'data': {}}]",
    ]);
    assert_eq!(r.code(), 1, "{r:#?}");
    let out = r.json_lines();
    assert_eq!(out[1], json!(false), "{r:#?}");
    assert_eq!(out[3], json!(true), "{r:#?}");
    // The single-quoted action reached QEMU: it ran and aborted.
    assert!(r.stderr.contains("abort"), "{r:#?}");
}

#[test]
fn qmp_socket_is_the_default_address() {
    let qemu = QemuServer::start(&[]);
    let mut cmd = shell(&["-c", "query-status"]);
    cmd.env("QMP_SOCKET", &qemu.socket);
    let r = run_with(cmd, None, Duration::from_secs(15));
    assert_eq!(r.code(), 0, "{r:#?}");
    assert_eq!(r.json_lines()[0]["status"], "prelaunch", "{r:#?}");
    let mut cmd = shell(&["-c", "query-status"]);
    cmd.env_remove("QMP_SOCKET");
    let r = run_with(cmd, None, Duration::from_secs(15));
    assert_eq!(r.code(), 2, "{r:#?}");
    assert!(r.stderr.contains("QMP_SOCKET"), "{r:#?}");
}

#[test]
fn hmp_cpu_picks_the_cpu_in_one_shot_mode_too() {
    let r = run(&[
        "--launch",
        "-H",
        "-c",
        "cpu 1",
        "-c",
        "info cpus",
        "--",
        "-M",
        "pc",
        "-smp",
        "2",
        "-S",
    ]);
    assert_eq!(r.code(), 0, "{r:#?}");
    assert!(r.stdout.contains("* CPU #1"), "{r:#?}");
    assert!(!r.stdout.contains("* CPU #0"), "{r:#?}");
}

#[test]
fn launching_names_the_program_and_lets_the_user_choose_the_machine() {
    let qemu = tests::qemu_binary();
    let r = run(&[
        "--launch",
        "--qemu",
        &qemu,
        "-c",
        "qom-get path=/machine property=type",
    ]);
    assert_eq!(r.code(), 0, "{r:#?}");
    assert_eq!(r.json_lines()[0], json!("none-machine"), "{r:#?}");
    // A machine named by the user replaces `-machine none`.
    let r = run(&[
        "--launch",
        "-c",
        "qom-get path=/machine property=type",
        "--",
        "-M",
        "pc",
        "-S",
    ]);
    assert_eq!(r.code(), 0, "{r:#?}");
    let machine = r.json_lines()[0].as_str().unwrap_or_default().to_owned();
    assert!(machine.starts_with("pc-i440fx"), "{r:#?}");
    // A program that is not there.
    let r = run(&["--launch", "--qemu", "/nonexistent/qemu", "-c", "stop"]);
    assert_eq!(r.code(), 2, "{r:#?}");
    assert!(r.stderr.contains("/nonexistent/qemu"), "{r:#?}");
}

#[test]
fn a_failed_launch_shows_qemus_own_message() {
    let r = run(&["--launch", "-c", "stop", "--", "-no-such-option"]);
    assert_eq!(r.code(), 2, "{r:#?}");
    // One line: ours, then QEMU's own message as QEMU wrote it.
    assert_eq!(r.stderr.lines().count(), 1, "{r:#?}");
    let line = r.stderr.trim_end();
    assert!(line.starts_with("qmp-shell: cannot launch "), "{r:#?}");
    assert!(line.contains("(exit status: 1): "), "{r:#?}");
    assert!(
        line.ends_with(": -no-such-option: invalid option"),
        "{r:#?}"
    );
}

#[test]
fn listen_runs_commands_for_a_qemu_that_connects() {
    let dir = TempDir::new("shell-listen-batch");
    let socket = dir.join("qmp.sock");
    let mut shell_cmd = shell(&[
        "--listen",
        socket.to_str().unwrap(),
        "-c",
        "query-status",
        "--timeout",
        "20",
    ]);
    shell_cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(&mut shell_cmd).expect("start qmp-shell");
    // The shell makes the socket; QEMU connects to it once it is there.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no socket at {socket:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let _qemu = ChildGuard::spawn(
        tests::command(tests::qemu_binary())
            .args(tests::QEMU_ARGS)
            .arg("-qmp")
            .arg(format!("unix:{},server=off", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    )
    .expect("start QEMU");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().expect("wait for qmp-shell");
    assert!(status.success(), "{status:?} {out}");
    let v: Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(v["status"], "prelaunch");
    assert!(!socket.exists(), "the socket file is removed");
}
