//! Peak memory against a hostile peer, measured where nothing else runs:
//! the scripted server lives in this test process, the client in a child
//! process (this test binary run again), whose `VmHWM` is read at the end.
//! The bound is the one the project promises: 4 × the message cap (10 MiB)
//! plus 16 MiB.

#[allow(dead_code, unused_imports, unused_macros)]
mod fault;

use std::process::Command;
use std::time::Duration;

use fault::{FaultServer, Script};
use qmp_std::{Error, Options};
use serde_json::Value;
use tests::within;

/// Tells the child which client to run, and where the server listens.
const CASE: &str = "QMP_RS_HOSTILE_CASE";
const SOCKET: &str = "QMP_RS_HOSTILE_SOCKET";
const BOUND_KIB: u64 = (4 * 10 + 16) * 1024;

fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// In the child, with the blocking client: a call answered only after a
/// flood of events of 9 MiB each that nobody takes.
fn flooded_client(socket: &str) {
    let options = Options::new().timeout(Duration::from_secs(30));
    let mut qmp = qmp_std::Qmp::connect_unix(socket, options).unwrap();
    assert_eq!(qmp.execute("query-status", None).unwrap(), "after");
    assert!(qmp.stats().events_lagged >= 6, "{:?}", qmp.stats());
    qmp.disconnect();
    println!("peak {} KiB", peak_kib());
}

/// The amplifying reply's command, typed: its return decodes straight
/// from the text into bytes, with no `Value` to amplify.
#[derive(serde::Serialize)]
struct Zeros;

impl qmp_std::Command for Zeros {
    const NAME: &'static str = "query-qmp-schema";
    type Returns = Vec<u8>;
}

/// In the child, with the blocking client: the amplifying reply decoded
/// typed succeeds, over the budget an untyped decoding has.
fn typed_client(socket: &str) {
    let options = Options::new().timeout(Duration::from_secs(30));
    let mut qmp = qmp_std::Qmp::connect_unix(socket, options).unwrap();
    let zeros = qmp.call(&Zeros).unwrap();
    assert!(zeros.len() > 4 << 20 && zeros.iter().all(|&z| z == 0));
    assert_eq!(qmp.execute("query-status", None).unwrap(), "after");
    qmp.disconnect();
    println!("peak {} KiB", peak_kib());
}

/// In the child: one call that gets the amplifying reply, one after it.
fn client(case: &str, socket: &str) {
    match case {
        "flood" => return flooded_client(socket),
        "typed" => return typed_client(socket),
        _ => {}
    }
    let options = Options::new().timeout(Duration::from_secs(30));
    let (big, after) = match case {
        "std" => {
            let mut qmp = qmp_std::Qmp::connect_unix(socket, options).unwrap();
            let big = qmp.execute("query-qmp-schema", None);
            let after = qmp.execute("query-status", None).unwrap();
            qmp.disconnect();
            (big, after)
        }
        _ => smol::block_on(async {
            let (qmp, driver) = qmp_smol::Qmp::connect_unix(socket, options).await.unwrap();
            let driver = smol::spawn(driver);
            let big = qmp.execute("query-qmp-schema", None).await;
            let after = qmp.execute("query-status", None).await.unwrap();
            qmp.disconnect();
            driver.await;
            (big, after)
        }),
    };
    assert!(
        matches!(&big, Err(Error::TooLarge { limit, .. }) if *limit == 40 << 20),
        "{big:?}"
    );
    assert_eq!(after, Value::from("after"));
    println!("peak {} KiB", peak_kib());
}

/// Runs `case` in a child process against `server` and returns its peak
/// resident memory, in KiB.
fn peak_of(case: &'static str, test: &str, server: &FaultServer) -> u64 {
    let socket = server.path().display().to_string();
    let test = test.to_owned();
    let out = within(Duration::from_secs(120), "the client process", move || {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &test, "--nocapture", "--test-threads=1"])
            .env(CASE, case)
            .env(SOCKET, socket)
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{case}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak = stdout
        .split("peak ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{case}: no figure in {stdout}"));
    println!("{case}: peak RSS {peak} KiB against a bound of {BOUND_KIB} KiB");
    peak
}

/// Runs the child's side when this process is the child.
fn as_child() -> bool {
    match (std::env::var(CASE), std::env::var(SOCKET)) {
        (Ok(case), Ok(socket)) => {
            client(&case, &socket);
            true
        }
        _ => false,
    }
}

#[test]
fn a_flood_of_large_events_costs_bounded_memory() {
    if as_child() {
        return;
    }
    // Eight events of 9 MiB each before the reply, none taken: 72 MiB held
    // by a queue bounded only in events.
    let text = "x".repeat(9 * 1024 * 1024);
    let event = format!("{{\"event\": \"BIG\", \"data\": {{\"s\": \"{text}\"}}}}\r\n");
    let mut script = Script::new().greet().expect("query-status");
    for _ in 0..8 {
        script = script.send_raw(event.as_bytes().to_vec());
    }
    let server = FaultServer::start(script.reply("\"after\"").drain());
    let peak = peak_of(
        "flood",
        "a_flood_of_large_events_costs_bounded_memory",
        &server,
    );
    assert!(peak < BOUND_KIB, "{peak} KiB");
    server.finish_ok();
}

#[test]
fn an_amplifying_reply_costs_bounded_memory() {
    if as_child() {
        return;
    }
    // 9 MiB of `[0,0,0,…]`: some 150 MiB as a `serde_json::Value`.
    let zeros = "0,".repeat(9 * 1024 * 1024 / 2);
    for case in ["std", "smol", "typed"] {
        let reply = format!("{{\"return\": [{zeros}0], \"id\": $id}}\r\n");
        let server = FaultServer::start(
            Script::new()
                .greet()
                .expect("query-qmp-schema")
                .send(&reply)
                .expect("query-status")
                .reply("\"after\"")
                .drain(),
        );
        let peak = peak_of(case, "an_amplifying_reply_costs_bounded_memory", &server);
        assert!(peak < BOUND_KIB, "{case}: {peak} KiB");
        server.finish_ok();
    }
}
