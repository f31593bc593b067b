//! Fan-out: one thread, one smol executor, K QEMU instances at once, every
//! instance answering M calls.
//!
//! It runs in a child process of its own (`--child fanout`), so that the
//! resident memory it adds per connection is measured from a fresh
//! process's baseline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smol::LocalExecutor;

use crate::clients::smol_options;
use crate::measure::{Result, rss_kib};
use crate::qemu::Qemu;

/// The child's work: start `instances` QEMUs, connect to all of them from
/// one executor, make `calls` calls on each, all connections at once.
pub(crate) fn child(instances: usize, calls: u64) -> Result<Value> {
    crate::scale::raise_fd_limit(4 * instances as u64)?;
    let start = Instant::now();
    let mut qemus = Vec::with_capacity(instances);
    for _ in 0..instances {
        qemus.push(Qemu::spawn(1)?);
    }
    for q in &mut qemus {
        q.wait_ready(Duration::from_secs(120))?;
    }
    let launched = start.elapsed();
    let baseline = rss_kib()?;

    let ex = LocalExecutor::new();
    let sockets: Vec<_> = qemus.iter().map(|q| q.sockets[0].clone()).collect();
    let run = smol::block_on(ex.run(fan_out(&ex, sockets, calls)));
    let (connected, after) = (run.connected?, run.after?);
    for q in &mut qemus {
        q.kill();
    }
    drop(qemus);
    let total = run.ok as u64 * calls;
    let per_conn = |rss: u64| rss.saturating_sub(baseline) as f64 / instances.max(1) as f64;
    Ok(json!({
        "fanout_instances": instances,
        "fanout_connected": run.ok,
        "fanout_conns": run.ok,
        "fanout_calls_per_instance": calls,
        "fanout_calls_per_s": total as f64 / run.elapsed.as_secs_f64().max(1e-9),
        "fanout_errors": run.errors,
        "fanout_rss_kib_per_connection": per_conn(after),
        "fanout_rss_kib_per_connection_idle": per_conn(connected),
        "fanout_rss_kib_baseline": baseline,
        "fanout_launch_s": launched.as_secs_f64(),
        "fanout_qemu": run.version,
    }))
}

/// What one fan-out run measured.
struct FanOut {
    /// Connections made.
    ok: usize,
    /// The QEMU version the first greeting announced.
    version: String,
    /// Failed connects and calls.
    errors: u64,
    /// The time all the calls took.
    elapsed: Duration,
    /// Resident memory once connected, and after the calls.
    connected: Result<u64>,
    after: Result<u64>,
}

/// Connects to every socket, then makes `calls` calls on each
/// connection, all at once, on `ex`.
async fn fan_out(ex: &LocalExecutor<'_>, sockets: Vec<PathBuf>, calls: u64) -> FanOut {
    let connecting: Vec<_> = sockets
        .into_iter()
        .map(|path| ex.spawn(qmp_smol::Qmp::connect_unix(path, smol_options())))
        .collect();
    let (mut handles, mut drivers, mut errors) = (Vec::new(), Vec::new(), 0u64);
    for c in connecting {
        match c.await {
            Ok((qmp, driver)) => {
                drivers.push(ex.spawn(driver));
                handles.push(qmp);
            }
            Err(e) => {
                eprintln!("fan-out: connect failed: {e}");
                errors += 1;
            }
        }
    }
    let connected = rss_kib();
    let version = handles
        .first()
        .and_then(|q| q.greeting())
        .map_or_else(String::new, |g| g.version.to_string());
    let t0 = Instant::now();
    errors += call_all(ex, &handles, calls).await;
    let elapsed = t0.elapsed();
    let after = rss_kib();
    for qmp in &handles {
        qmp.disconnect();
    }
    for d in drivers {
        d.await;
    }
    FanOut {
        ok: handles.len(),
        version,
        errors,
        elapsed,
        connected,
        after,
    }
}

/// `calls` calls on each connection, the connections side by side; the
/// number that failed.
async fn call_all(ex: &LocalExecutor<'_>, handles: &[qmp_smol::Qmp], calls: u64) -> u64 {
    let workers: Vec<_> = handles
        .iter()
        .cloned()
        .map(|qmp| {
            ex.spawn(async move {
                let mut failed = 0u64;
                for _ in 0..calls {
                    if let Err(e) = qmp.execute("query-status", None).await {
                        if failed == 0 {
                            eprintln!("fan-out: call failed: {e}");
                        }
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let mut errors = 0;
    for w in workers {
        errors += w.await;
    }
    errors
}
