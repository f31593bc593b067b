//! Connects to a QEMU already serving QMP on a Unix socket, runs one
//! command given on the command line and prints the events that arrived.
//!
//! ```sh
//! qemu-system-x86_64 -machine none -display none -qmp unix:/tmp/qmp.sock,server=on,wait=off &
//! cargo run -p qmp-std --example connect -- /tmp/qmp.sock query-status
//! cargo run -p qmp-std --example connect -- /tmp/qmp.sock human-monitor-command '{"command-line": "info version"}'
//! ```

use std::process::ExitCode;

use qmp_std::{Options, Qmp, serde_json};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, command, rest @ ..] = args.as_slice() else {
        eprintln!("usage: connect SOCKET COMMAND [JSON-ARGUMENTS]");
        return ExitCode::from(2);
    };
    let arguments = match rest
        .first()
        .map(|a| serde_json::from_str::<serde_json::Value>(a))
    {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            eprintln!("bad JSON arguments: {e}");
            return ExitCode::from(2);
        }
    };
    let result = Qmp::connect_unix(path, Options::new()).and_then(|mut qmp| {
        if let Some(g) = qmp.greeting() {
            eprintln!("connected to QEMU {} {}", g.version, g.package);
        }
        let value = qmp.execute(command, arguments)?;
        for event in qmp.drain_events() {
            eprintln!("event: {}", event.to_value());
        }
        qmp.disconnect();
        Ok(value)
    });
    match result {
        Ok(value) => {
            println!("{value:#}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
