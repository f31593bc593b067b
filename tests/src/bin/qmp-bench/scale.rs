//! Scale: one process, one thread, a thousand connections at once.
//!
//! The peers are scripted (`--child serve-peers`, this program run again):
//! one process serving one Unix socket per connection, speaking the
//! greeting, `qmp_capabilities` and `query-status`, with an event before
//! every third reply. Each reply names its peer and counts the requests
//! of its connection, so the client can tell that every reply reached the
//! call that asked for it. The client (`--child scale`) connects to every
//! socket from one smol executor on one thread, measures its resident
//! memory per idle connection, then makes its calls on all of them at once.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde_json::{Value, json};
use smol::{Async, LocalExecutor};

use crate::clients::smol_options;
use crate::measure::{Result, rss_kib};

/// What the peers say first.
const GREETING: &str = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 0}, \"package\": \"scripted\"}, \"capabilities\": [\"oob\"]}}\r\n";

/// Raises this process's open-file limit so that `fds` more descriptors
/// fit (up to the hard limit).
pub(crate) fn raise_fd_limit(fds: u64) -> Result<()> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let want = (fds + 256).max(soft).min(hard);
    if want > soft {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard)?;
    }
    if want < fds + 64 {
        return Err(format!("the open-file limit ({hard}) is too low for {fds} sockets").into());
    }
    Ok(())
}

/// `--child serve-peers`: binds `count` sockets in `dir`, says `ready` on
/// stdout, and serves them until stdin closes.
pub(crate) fn serve(count: usize, dir: &Path) -> Result<Value> {
    raise_fd_limit(2 * count as u64)?;
    let ex = LocalExecutor::new();
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let listener = Async::new(UnixListener::bind(dir.join(format!("p{i}.sock")))?)?;
        tasks.push(ex.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = peer(stream, i).await;
            }
        }));
    }
    println!("ready");
    std::io::stdout().flush()?;
    // The parent closes our stdin when it is done (or dies).
    let stdin = smol::Unblock::new(std::io::stdin());
    smol::block_on(ex.run(async move {
        let mut stdin = stdin;
        let mut sink = Vec::new();
        let _ = stdin.read_to_end(&mut sink).await;
    }));
    drop(tasks);
    Ok(json!({}))
}

/// Serves one connection: the greeting, then a reply per request.
async fn peer(stream: Async<UnixStream>, index: usize) -> std::io::Result<()> {
    let mut stream = stream;
    stream.write_all(GREETING.as_bytes()).await?;
    let mut buf = vec![0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    let mut seq = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&buf[..n]);
        let mut out = Vec::new();
        while let Some(end) = object_end(&pending) {
            let request: Value = serde_json::from_slice(&pending[..end]).unwrap_or(Value::Null);
            pending.drain(..end);
            answer(&request, index, &mut seq, &mut out);
        }
        stream.write_all(&out).await?;
    }
}

/// The reply to `request` (and every third time an event before it).
fn answer(request: &Value, index: usize, seq: &mut u64, out: &mut Vec<u8>) {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let ret = match request["execute"].as_str() {
        Some("qmp_capabilities") => json!({}),
        Some("query-status") => {
            *seq += 1;
            if seq.is_multiple_of(3) {
                let event = json!({"event": "SCALE", "data": {"peer": index, "seq": *seq},
                    "timestamp": {"seconds": 0, "microseconds": 0}});
                out.extend_from_slice(event.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            json!({"status": "running", "running": true, "peer": index, "seq": *seq})
        }
        _ => {
            let reply = json!({"error": {"class": "CommandNotFound", "desc": "unknown"}, "id": id});
            out.extend_from_slice(reply.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
            return;
        }
    };
    let reply = json!({"return": ret, "id": id});
    out.extend_from_slice(reply.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Where the first whole JSON object in `bytes` ends (brace depth outside
/// strings, escapes honoured), or `None` when it is incomplete.
fn object_end(bytes: &[u8]) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// The serving process, stopped (by closing its stdin) and reaped on drop.
struct Peers {
    child: std::process::Child,
    /// Kept open so that the peers' last words never meet a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
    sockets: Vec<PathBuf>,
    _dir: tests::TempDir,
}

impl Peers {
    fn start(count: usize) -> Result<Peers> {
        let dir = tests::TempDir::new("scale");
        let mut child = tests::command(std::env::current_exe()?)
            .args(["--child", "serve-peers", "--instances", &count.to_string()])
            .arg("--peer-dir")
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut stdout = BufReader::new(stdout);
        stdout.read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the scripted peers did not start: {line:?}").into());
        }
        let sockets = (0..count)
            .map(|i| dir.join(&format!("p{i}.sock")))
            .collect();
        Ok(Peers {
            child,
            _stdout: stdout,
            sockets,
            _dir: dir,
        })
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        if !matches!(self.child.wait_timeout(), Ok(true)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waiting a bounded time for a child, which std lacks.
trait WaitTimeout {
    /// Whether the child exited within a few seconds.
    fn wait_timeout(&mut self) -> std::io::Result<bool>;
}

impl WaitTimeout for std::process::Child {
    fn wait_timeout(&mut self) -> std::io::Result<bool> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.try_wait()?.is_some() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(false)
    }
}

/// `--child scale`: `count` connections on one thread, `calls` calls each.
pub(crate) fn child(count: usize, calls: u64) -> Result<Value> {
    raise_fd_limit(count as u64)?;
    let peers = Peers::start(count)?;
    let baseline = rss_kib()?;
    let ex = LocalExecutor::new();
    let run = smol::block_on(ex.run(scale_run(&ex, &peers.sockets, calls)))?;
    let per_conn = |rss: u64| rss.saturating_sub(baseline) as f64 / count.max(1) as f64;
    Ok(json!({
        "scale_conns": count,
        "scale_connected": run.connected,
        "scale_calls_per_conn": calls,
        "scale_calls_per_s": run.calls as f64 / run.elapsed.as_secs_f64().max(1e-9),
        "scale_errors": run.errors,
        "scale_misrouted": run.misrouted,
        "scale_events": run.events,
        "scale_rss_kib_per_conn_fresh": per_conn(run.rss_fresh),
        "conn_rss_kib": per_conn(run.rss_idle),
    }))
}

/// What one scale run saw.
struct ScaleRun {
    connected: usize,
    calls: u64,
    errors: u64,
    misrouted: u64,
    events: u64,
    elapsed: Duration,
    /// Resident memory just after connecting, and once every call is done.
    rss_fresh: u64,
    rss_idle: u64,
}

async fn scale_run(ex: &LocalExecutor<'_>, sockets: &[PathBuf], calls: u64) -> Result<ScaleRun> {
    let mut handles = Vec::with_capacity(sockets.len());
    let mut drivers = Vec::with_capacity(sockets.len());
    let mut errors = 0;
    for path in sockets {
        match qmp_smol::Qmp::connect_unix(path, smol_options()).await {
            Ok((qmp, driver)) => {
                drivers.push(ex.spawn(driver));
                handles.push(qmp);
            }
            Err(e) => {
                eprintln!("scale: connect failed: {e}");
                errors += 1;
            }
        }
    }
    let rss_fresh = rss_kib()?;
    let t0 = Instant::now();
    let workers: Vec<_> = handles
        .iter()
        .enumerate()
        .map(|(i, qmp)| ex.spawn(calls_on(qmp.clone(), i, calls)))
        .collect();
    let (mut misrouted, mut done) = (0, 0);
    for w in workers {
        let (ok, failed, wrong) = w.await;
        done += ok;
        errors += failed;
        misrouted += wrong;
    }
    let elapsed = t0.elapsed();
    let rss_idle = rss_kib()?;
    let events: u64 = handles.iter().map(|q| q.stats().messages_received).sum();
    for qmp in &handles {
        qmp.disconnect();
    }
    for d in drivers {
        d.await;
    }
    Ok(ScaleRun {
        connected: handles.len(),
        calls: done,
        errors,
        misrouted,
        // Messages beyond the replies and the handshake's two.
        events: events.saturating_sub(done + 2 * handles.len() as u64),
        elapsed,
        rss_fresh,
        rss_idle,
    })
}

/// `calls` calls on connection `index`: (answered, failed, misrouted).
async fn calls_on(qmp: qmp_smol::Qmp, index: usize, calls: u64) -> (u64, u64, u64) {
    let (mut ok, mut failed, mut wrong) = (0, 0, 0);
    for k in 1..=calls {
        match qmp.execute("query-status", None).await {
            Ok(v) if v["peer"] == json!(index) && v["seq"] == json!(k) => ok += 1,
            Ok(v) => {
                if wrong == 0 {
                    eprintln!("scale: connection {index}, call {k}: reply {v}");
                }
                wrong += 1;
            }
            Err(e) => {
                if failed == 0 {
                    eprintln!("scale: connection {index}, call {k}: {e}");
                }
                failed += 1;
            }
        }
    }
    (ok, failed, wrong)
}
