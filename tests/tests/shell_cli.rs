//! `qmp-shell` one-shot mode, through the built binary, against a real
//! QEMU (`--launch`) and a real qemu-ga: results, exit statuses, errors,
//! events, the argument syntax.
#![allow(clippy::std_instead_of_core)]

mod shell_common;

use std::os::unix::net::UnixListener;
use std::time::Duration;

use qmp_std::{Options, Qmp};
use serde_json::{Value, json};
use shell_common::{run, run_with, shell};
use tests::{AgentServer, QemuServer, TempDir};

#[test]
fn a_query_prints_one_line_of_json_and_exits_0() {
    let r = run(&["--launch", "-c", "query-status"]);
    assert_eq!(r.code(), 0, "{r:#?}");
    assert_eq!(r.lines().len(), 1, "{r:#?}");
    assert_eq!(r.json_lines()[0]["status"], "running", "{r:#?}");
    assert!(r.stderr.is_empty(), "{r:#?}");

    // QEMU_ARGS after `--` reach QEMU: -S leaves it in prelaunch.
    let r = run(&["--launch", "-c", "query-status", "--", "-S"]);
    assert_eq!(r.code(), 0, "{r:#?}");
    assert_eq!(r.json_lines()[0]["status"], "prelaunch", "{r:#?}");
}

#[test]
fn commands_run_in_order_and_pretty_indents() {
    let r = run(&[
        "--launch",
        "-c",
        "stop",
        "-c",
        "query-status",
        "-c",
        "cont",
        "-c",
        "query-status",
    ]);
    assert_eq!(r.code(), 0, "{r:#?}");
    let out = r.json_lines();
    assert_eq!(out.len(), 4, "{r:#?}");
    assert_eq!(out[0], json!({}));
    assert_eq!(out[1]["status"], "paused");
    assert_eq!(out[2], json!({}));
    assert_eq!(out[3]["status"], "running");

    let r = run(&["--launch", "--pretty", "-c", "query-status"]);
    assert_eq!(r.code(), 0, "{r:#?}");
    assert!(r.lines().len() > 3, "{r:#?}");
    let v: Value = serde_json::from_str(&r.stdout).expect("one indented JSON value");
    assert_eq!(v["status"], "running");
}

#[test]
fn a_qemu_error_exits_1_with_class_and_desc_and_stops_there() {
    let r = run(&[
        "--launch",
        "-c",
        "query-status",
        "-c",
        "device_del id=nope",
        "-c",
        "stop",
    ]);
    assert_eq!(r.code(), 1, "{r:#?}");
    assert_eq!(
        r.stderr, "DeviceNotFound: Device 'nope' not found\n",
        "{r:#?}"
    );
    // query-status ran, stop did not.
    assert_eq!(r.lines().len(), 1, "{r:#?}");

    let r = run(&["--launch", "-c", "no-such-command"]);
    assert_eq!(r.code(), 1, "{r:#?}");
    assert_eq!(
        r.stderr, "CommandNotFound: The command no-such-command has not been found\n",
        "{r:#?}"
    );
}

#[test]
fn events_after_the_commands_until_the_timeout() {
    let r = run(&[
        "--launch",
        "-c",
        "stop",
        "-c",
        "cont",
        "--events",
        "--timeout",
        "2",
    ]);
    assert_eq!(r.code(), 0, "{r:#?}");
    let out = r.json_lines();
    assert_eq!(&out[..2], &[json!({}), json!({})], "{r:#?}");
    let names: Vec<&str> = out[2..]
        .iter()
        .map(|e| e["event"].as_str().expect("an event name"))
        .collect();
    assert_eq!(names, ["STOP", "RESUME"], "{r:#?}");
    assert!(out[2]["timestamp"]["seconds"].is_u64(), "{r:#?}");
    // Two seconds with no event after the last one, then a clean exit.
    assert!(r.took >= Duration::from_secs(2), "{r:#?}");
    assert!(r.took < Duration::from_secs(8), "{r:#?}");
}

#[test]
fn events_end_when_the_connection_closes() {
    let r = run(&["--launch", "-c", "quit", "--events", "--timeout", "5"]);
    assert_eq!(r.code(), 0, "{r:#?}");
    assert_eq!(r.json_lines()[0], json!({}), "{r:#?}");
    assert!(
        r.stdout.contains(r#""event":"SHUTDOWN""#),
        "QEMU announces its exit: {r:#?}"
    );
    assert!(r.took < Duration::from_secs(4), "{r:#?}");
}

#[test]
fn events_from_a_unix_socket_address_line_by_line() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = TempDir::new("shell-events");
    let side = dir.join("side.sock");
    let side_arg = format!("unix:{},server=on,wait=off", side.display());
    let server = QemuServer::start(&["-qmp", &side_arg]);
    let address = server.socket.to_str().unwrap();
    let mut child = tests::ChildGuard::spawn(
        shell(&[address, "-c", "query-status", "--events", "--timeout", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )
    .expect("start qmp-shell");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || {
        let line = lines.next().expect("a line").expect("read stdout");
        serde_json::from_str::<Value>(&line).expect("a JSON line")
    };
    // The first result says the shell is connected: every event from now
    // on reaches it (QEMU sends events to every monitor).
    assert_eq!(next()["status"], "prelaunch");
    let options = Options::new()
        .socket_wait(Duration::from_secs(10))
        .timeout(Duration::from_secs(10));
    let mut qmp = Qmp::connect_unix(&side, options).expect("connect to the second monitor");
    qmp.execute("cont", None).expect("cont");
    // Printed (and flushed) as it comes, not when the shell exits.
    assert_eq!(next()["event"], "RESUME");
    qmp.execute("stop", None).expect("stop");
    assert_eq!(next()["event"], "STOP");
    qmp.disconnect();
    let status = tests::within(Duration::from_secs(10), "qmp-shell --events", move || {
        child.wait()
    })
    .expect("wait for qmp-shell");
    assert!(status.success(), "{status}");
}

#[test]
fn a_tcp_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let tcp = format!("tcp:127.0.0.1:{port},server=on,wait=off");
    let _server = QemuServer::start(&["-qmp", &tcp]);
    let address = format!("127.0.0.1:{port}");
    let r = run(&[&address, "-c", "query-status"]);
    assert_eq!(r.code(), 0, "{r:#?}");
    // QemuServer starts QEMU with -S.
    assert_eq!(r.json_lines()[0]["status"], "prelaunch", "{r:#?}");
}

#[test]
fn quoted_values_and_hmp_through_human_monitor_command() {
    let r = run(&[
        "--launch",
        "-c",
        r#"human-monitor-command command-line="info version""#,
        "-c",
        "human-monitor-command command-line='info status'",
        "-c",
        "query-version",
    ]);
    assert_eq!(r.code(), 0, "{r:#?}");
    let out = r.json_lines();
    let version = &out[2]["qemu"];
    let text = format!(
        "{}.{}.{}",
        version["major"], version["minor"], version["micro"]
    );
    assert!(
        out[0].as_str().expect("HMP output").starts_with(&text),
        "{r:#?}"
    );
    assert_eq!(out[1], "VM status: running\r\n", "{r:#?}");
}

#[test]
fn nested_keys_and_json_values_reach_qemu() {
    // Each argument starts from the root: node-name after cache.no-flush
    // is a top-level argument, and JSON values keep their types.
    let r = run(&[
        "--launch",
        "-c",
        "blockdev-add driver=null-co cache.no-flush=true node-name=n0 size=4096 read-zeroes=true",
        "-c",
        r#"blockdev-add driver=null-co node-name="n1" cache={"direct": false, "no-flush": false} size=[8192][0]"#,
        "-c",
        "query-named-block-nodes flat=true",
    ]);
    // `size=[8192][0]` is not JSON: a syntax error before anything runs.
    assert_eq!(r.code(), 2, "{r:#?}");
    assert!(r.stderr.contains("size"), "{r:#?}");
    assert!(r.stdout.is_empty(), "{r:#?}");

    let r = run(&[
        "--launch",
        "-c",
        "blockdev-add driver=null-co cache.no-flush=true node-name=n0 size=4096 read-zeroes=true",
        "-c",
        r#"blockdev-add driver=null-co node-name="n1" cache={"direct": false, "no-flush": false} size=8192"#,
        "-c",
        "query-named-block-nodes flat=true",
    ]);
    assert_eq!(r.code(), 0, "{r:#?}");
    let out = r.json_lines();
    assert_eq!(&out[..2], &[json!({}), json!({})], "{r:#?}");
    let nodes = out[2].as_array().expect("a list of nodes");
    let node = |name: &str| {
        nodes
            .iter()
            .find(|n| n["node-name"] == name)
            .unwrap_or_else(|| panic!("no node {name}: {r:#?}"))
    };
    assert_eq!(node("n0")["cache"]["no-flush"], true, "{r:#?}");
    assert_eq!(node("n0")["image"]["virtual-size"], 4096, "{r:#?}");
    assert_eq!(node("n1")["cache"]["no-flush"], false, "{r:#?}");
    assert_eq!(node("n1")["image"]["virtual-size"], 8192, "{r:#?}");
}

#[test]
fn raw_json_requests_and_transactions_from_stdin() {
    let input = "\
# a comment, then a raw request
{\"execute\": \"query-status\"}
transaction(
  abort
)
query-status
";
    let r = run_with(shell(&["--launch"]), Some(input), Duration::from_secs(15));
    assert_eq!(r.code(), 1, "{r:#?}");
    assert_eq!(r.json_lines()[0]["status"], "running", "{r:#?}");
    assert_eq!(
        r.lines().len(),
        1,
        "the command after the error did not run: {r:#?}"
    );
    assert_eq!(
        r.stderr, "GenericError: Transaction aborted using Abort action\n",
        "{r:#?}"
    );

    let r = run(&[
        "--launch",
        "-c",
        "transaction(",
        "-c",
        "block-dirty-bitmap-add node=n0 name=b0",
        "-c",
        ")",
        "-c",
        "query-named-block-nodes",
        "--",
        "-blockdev",
        "null-co,node-name=n0",
    ]);
    assert_eq!(r.code(), 0, "{r:#?}");
    let out = r.json_lines();
    assert_eq!(out[0], json!({}), "{r:#?}");
    assert_eq!(out[1][0]["dirty-bitmaps"][0]["name"], "b0", "{r:#?}");
}

#[test]
fn syntax_errors_exit_2_before_anything_runs() {
    for bad in ["stop a=1 a=2", "stop loose", r#"stop a="open"#, "{not json"] {
        let r = run(&["--launch", "-c", "query-status", "-c", bad]);
        assert_eq!(r.code(), 2, "{bad}: {r:#?}");
        assert!(r.stdout.is_empty(), "{bad}: {r:#?}");
        assert_eq!(r.stderr.lines().count(), 1, "{bad}: {r:#?}");
    }
    let r = run(&["--launch", "-c", "transaction(", "-c", "abort"]);
    assert_eq!(r.code(), 2, "{r:#?}");
    assert!(r.stderr.contains("missing `)`"), "{r:#?}");
}

#[test]
fn hmp_mode_prints_text() {
    let r = run(&[
        "--launch",
        "-H",
        "-c",
        "info status",
        "-c",
        "stop",
        "-c",
        "info status",
    ]);
    assert_eq!(r.code(), 0, "{r:#?}");
    assert_eq!(
        r.stdout, "VM status: running\nVM status: paused\n",
        "{r:#?}"
    );
}

#[test]
fn skip_negotiation_leaves_qmp_capabilities_to_the_user() {
    let r = run(&["--launch", "-N", "-c", "query-status"]);
    assert_eq!(r.code(), 1, "{r:#?}");
    assert!(r.stderr.starts_with("CommandNotFound: "), "{r:#?}");

    let r = run(&[
        "--launch",
        "-N",
        "-c",
        "qmp_capabilities",
        "-c",
        "query-status",
    ]);
    assert_eq!(r.code(), 0, "{r:#?}");
    assert_eq!(r.json_lines()[1]["status"], "running", "{r:#?}");
}

#[test]
fn verbose_echoes_the_json_on_stderr() {
    let r = run(&["--launch", "-v", "-c", "query-status"]);
    assert_eq!(r.code(), 0, "{r:#?}");
    assert_eq!(r.lines().len(), 1, "{r:#?}");
    assert!(r.stderr.contains("<- {\"QMP\""), "{r:#?}");
    assert!(
        r.stderr.contains("-> {\"execute\":\"query-status\""),
        "{r:#?}"
    );
    assert!(
        r.stderr
            .contains("<- {\"return\": {\"status\": \"running\""),
        "{r:#?}"
    );
}

#[test]
fn a_missing_socket_exits_2() {
    let dir = TempDir::new("shell-missing");
    let path = dir.join("nothing.sock");
    let r = run(&[path.to_str().unwrap(), "-c", "query-status"]);
    assert_eq!(r.code(), 2, "{r:#?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:#?}");
    assert!(r.stderr.contains("nothing.sock"), "{r:#?}");
    assert!(r.stdout.is_empty(), "{r:#?}");
}

#[test]
fn a_silent_server_times_out_with_exit_2() {
    let dir = TempDir::new("shell-silent");
    let path = dir.join("silent.sock");
    // Accepts connections (the backlog) but never says a word.
    let _listener = UnixListener::bind(&path).unwrap();
    let r = run(&[
        path.to_str().unwrap(),
        "-c",
        "query-status",
        "--timeout",
        "0.5",
    ]);
    assert_eq!(r.code(), 2, "{r:#?}");
    assert!(r.stderr.contains("timed out"), "{r:#?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:#?}");
    assert!(r.took < Duration::from_secs(3), "{r:#?}");
}

#[test]
fn a_launch_failure_exits_2_with_qemus_reason() {
    let r = run(&["--launch", "-c", "query-status", "--", "-no-such-option"]);
    assert_eq!(r.code(), 2, "{r:#?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:#?}");
    assert!(r.stderr.contains("-no-such-option"), "{r:#?}");
}

#[test]
fn the_guest_agent_with_resync() {
    let mut agent = AgentServer::start();
    let sock = agent.socket.to_str().unwrap().to_owned();
    let r = run(&["--agent", &sock, "-c", "guest-ping", "-c", "guest-info"]);
    assert_eq!(r.code(), 0, "{r:#?}");
    let out = r.json_lines();
    assert_eq!(out[0], json!({}), "{r:#?}");
    assert!(out[1]["version"].is_string(), "{r:#?}");

    let r = run(&[
        "--agent",
        &sock,
        "-c",
        "guest-no-such-command",
        "-c",
        "guest-ping",
    ]);
    assert_eq!(r.code(), 1, "{r:#?}");
    assert!(r.stderr.starts_with("CommandNotFound: "), "{r:#?}");
    assert!(r.stdout.is_empty(), "{r:#?}");

    // Arguments and a second connection that finds the first one's
    // leftovers resynchronised away.
    let r = run(&["--agent", &sock, "-v", "-c", "guest-sync id=12345"]);
    assert_eq!(r.code(), 0, "{r:#?}");
    assert_eq!(r.json_lines(), [json!(12345)], "{r:#?}");
    assert!(r.stderr.contains("guest-sync-delimited"), "{r:#?}");

    // qemu-ga dies of SIGPIPE when a client leaves before reading a reply.
    assert!(agent.child.try_wait().unwrap().is_none(), "qemu-ga exited");
}
