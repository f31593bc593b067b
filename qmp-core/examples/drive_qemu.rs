//! Drives the engine by hand against a real QEMU over a Unix socket: the
//! reference for embedding `qmp-core` in an event loop of your own.
//!
//! It starts `qemu-system-x86_64 -machine none -nodefaults -display none -S`
//! (or `$QEMU`) on a private socket, prints the greeting, queries the
//! status, resumes the VM and prints the `RESUME` event, then quits.
//!
//! ```sh
//! cargo run -p qmp-core --example drive_qemu
//! ```

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant as StdInstant};

use qmp_core::{Client, Config, Instant, Output, Request, RequestId};

/// The engine's clock: microseconds since this program started.
fn now(origin: StdInstant) -> Instant {
    Instant::from_micros(origin.elapsed().as_micros() as u64)
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Starts a paused QEMU connected to a socket of ours.
fn launch_qemu() -> Result<(Child, UnixStream)> {
    let dir = std::env::temp_dir().join(format!("qmp-drive-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("qmp.sock");
    // Listen first and let QEMU connect to us: no race with its start-up.
    let listener = UnixListener::bind(&path)?;
    let qemu = std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into());
    let child = Command::new(&qemu)
        .args(["-machine", "none", "-nodefaults", "-display", "none", "-S"])
        .arg("-qmp")
        .arg(format!("unix:{},server=off", path.display()))
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {qemu}: {e}"))?;
    let (sock, _) = listener.accept()?;
    std::fs::remove_dir_all(&dir)?;
    Ok((child, sock))
}

fn main() -> Result<()> {
    let origin = StdInstant::now();
    let (mut child, mut sock) = launch_qemu()?;

    let mut client = Client::new(
        now(origin),
        Config::qmp().handshake_timeout(Duration::from_secs(5)),
    );
    let timeout = Duration::from_secs(5);
    let status = client.execute(now(origin), Request::new("query-status").timeout(timeout))?;
    let mut resume: Option<RequestId> = None;
    let mut quit: Option<RequestId> = None;
    let mut buf = [0u8; 4096];

    loop {
        // 1. Write whatever the engine wants sent.
        while let Some(tx) = client.poll_transmit() {
            let n = sock.write(tx.bytes)?;
            client.consume_transmit(n);
        }
        // 2. Act on what it has to say.
        while let Some(out) = client.poll_output() {
            match out {
                Output::Greeting(g) => println!(
                    "greeting: QEMU {} ({}), capabilities {:?}",
                    g.version,
                    g.package.trim(),
                    g.capabilities
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                ),
                Output::Ready => println!("negotiated (oob: {})", client.oob_enabled()),
                Output::Reply { id, result } if id == status => {
                    println!("query-status -> {}", result?);
                    resume =
                        Some(client.execute(now(origin), Request::new("cont").timeout(timeout))?);
                }
                Output::Reply { id, result } if Some(id) == resume => {
                    println!("cont -> {}", result?);
                }
                Output::Reply { id, result } if Some(id) == quit => {
                    println!("quit -> {}", result?);
                }
                Output::Reply { id, result } => println!("{id} -> {result:?}"),
                Output::Closed(reason) => {
                    println!("closed: {reason}");
                    let exit = child.wait()?;
                    println!("QEMU exited: {exit}");
                    return Ok(());
                }
                _ => {}
            }
        }
        while let Some(event) = client.poll_event() {
            println!("event {}", event.to_value());
            if event.name == "RESUME" && quit.is_none() {
                quit = Some(client.execute(now(origin), Request::new("quit").timeout(timeout))?);
            }
        }
        if client.poll_transmit().is_some() {
            continue;
        }
        // 3. Sleep until the socket has data or the next deadline passes.
        wait_and_feed(&mut client, &mut sock, &mut buf, origin)?;
    }
}

/// Sleeps until `sock` has data or the engine's next deadline passes, and
/// hands the engine what happened: bytes, end of file, or the time.
fn wait_and_feed(
    client: &mut Client,
    sock: &mut UnixStream,
    buf: &mut [u8],
    origin: StdInstant,
) -> Result<()> {
    let wait = client.poll_timeout().map(|d| {
        d.saturating_duration_since(now(origin))
            .max(Duration::from_millis(1))
    });
    sock.set_read_timeout(wait)?;
    match sock.read(buf) {
        Ok(0) => client.handle_eof(now(origin)),
        Ok(n) => {
            client.handle_input(now(origin), &buf[..n]);
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            client.handle_timeout(now(origin));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
