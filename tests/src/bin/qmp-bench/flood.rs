//! Event flood memory: a scripted QMP server on a thread of this process
//! answers the client's first call only after a long burst of events that
//! nobody drains. The client's memory must stay bounded by its queues.
//!
//! It runs in a child process of its own (`--child flood-std` or
//! `flood-smol`), so that the peak resident set (`VmHWM`) is this
//! scenario's alone: a fresh process, not one whose allocator kept the
//! pages of earlier scenarios.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::thread::JoinHandle;
use std::time::Instant;

use qmp_smol::EventFilter;
use serde_json::{Value, json};
use tests::TempDir;

use crate::clients::{Placement, SmolClient, StdClient};
use crate::measure::{Result, peak_rss_kib, rss_kib};

const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"flood\"}, \"capabilities\": [\"oob\"]}}\r\n";

/// A realistic event of 190 bytes, as QEMU formats them.
fn event(i: u64) -> String {
    format!(
        "{{\"timestamp\": {{\"seconds\": {}, \"microseconds\": {}}}, \"event\": \"BLOCK_JOB_READY\", \"data\": {{\"device\": \"drive{}\", \"len\": 1073741824, \"offset\": 1073741824, \"speed\": 0, \"type\": \"mirror\"}}}}\r\n",
        1_700_000_000 + i / 1_000_000,
        i % 1_000_000,
        i % 100
    )
}

/// Reads complete JSON values from a blocking stream.
struct Requests {
    sock: UnixStream,
    buf: Vec<u8>,
}

impl Requests {
    /// The next request, or `None` at end of file.
    fn next(&mut self) -> Result<Option<Value>> {
        tests::read_json(&mut self.sock, &mut self.buf)
            .map_err(|e| format!("flood server: {e}").into())
    }
}

fn reply(id: &Value) -> Vec<u8> {
    let mut r = serde_json::to_vec(
        &json!({"return": {"status": "running", "singlestep": false, "running": true}, "id": id}),
    )
    .unwrap_or_default();
    r.extend_from_slice(b"\r\n");
    r
}

/// Serves one client: greeting, `qmp_capabilities`, then, on the first
/// call, `events` events followed by the call's reply.
fn serve(listener: UnixListener, events: u64) -> Result<()> {
    let (sock, _) = listener.accept()?;
    let mut out = sock.try_clone()?;
    let mut requests = Requests {
        sock,
        buf: Vec::new(),
    };
    out.write_all(GREETING)?;
    let caps = requests
        .next()?
        .ok_or("flood server: no qmp_capabilities")?;
    out.write_all(&reply(&caps["id"]))?;
    let call = requests.next()?.ok_or("flood server: no call")?;
    // 256 distinct events, written over and over.
    let block: Vec<u8> = (0..256).flat_map(|i| event(i).into_bytes()).collect();
    let per_block = 256;
    for _ in 0..events / per_block {
        out.write_all(&block)?;
    }
    for i in 0..events % per_block {
        out.write_all(event(i).as_bytes())?;
    }
    out.write_all(&reply(&call["id"]))?;
    // Until the client hangs up.
    while requests.next()?.is_some() {}
    Ok(())
}

/// Which client the child process floods.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Client {
    Std,
    Smol,
}

/// The child's work: flood one client, print its figures as JSON.
pub(crate) fn child(client: Client, events: u64) -> Result<Value> {
    let dir = TempDir::new("flood");
    let path = dir.join("qmp.sock");
    let listener = UnixListener::bind(&path)?;
    let server: JoinHandle<Result<()>> = std::thread::spawn(move || serve(listener, events));
    let (baseline, elapsed, lost, queued) = match client {
        Client::Std => {
            let mut c = StdClient::connect(&path)?;
            let baseline = rss_kib()?;
            let start = Instant::now();
            c.serial("query-status", 1)?;
            let elapsed = start.elapsed();
            let queue = c.inner().events();
            let (lost, queued) = (queue.lagged_total(), queue.len() as u64);
            drop(c);
            (baseline, elapsed, lost, queued)
        }
        Client::Smol => {
            let c = SmolClient::connect(&path, Placement::SameThread)?;
            // A subscriber to every event that never reads one.
            let sub = c.qmp().subscribe(EventFilter::all());
            let baseline = rss_kib()?;
            let start = Instant::now();
            c.serial("query-status", 1)?;
            let elapsed = start.elapsed();
            let (lost, queued) = (sub.lagged(), sub.len() as u64);
            drop(sub);
            c.close();
            (baseline, elapsed, lost, queued)
        }
    };
    let peak = peak_rss_kib()?;
    server.join().map_err(|_| "flood server panicked")??;
    if lost + queued != events {
        return Err(format!(
            "flood: {events} events sent, {queued} queued and {lost} counted as lost"
        )
        .into());
    }
    Ok(json!({
        "peak_rss_kib": peak,
        "baseline_rss_kib": baseline,
        "events": events,
        "events_lost": lost,
        "events_queued": queued,
        "events_per_s": events as f64 / elapsed.as_secs_f64().max(1e-9),
    }))
}
