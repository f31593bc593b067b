//! System calls per serial call, counted by `strace -f -c` around a
//! `--profile` run of this program (every thread of it, QEMU excluded: it
//! runs outside, started here). Each client runs twice, with one call and
//! with one more than `calls`; the difference, divided by `calls`, leaves
//! out the connection's setup and teardown.
//!
//! `strace` stops the client at every system call, which slows it down
//! enough to change what an event-driven client does: a reply may already
//! be there when it reads, or two readiness events may arrive as one. So
//! where `perf` can count the `raw_syscalls:sys_enter` tracepoint (which
//! does not stop anything), the same runs are counted untraced too.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use crate::measure::Result;

/// The clients counted, by their `--profile` name and their figure's
/// (`syscalls_per_call_smol` and `_tokio` are the worse of each adapter's
/// two placements).
pub(crate) const COUNTED: &[(&str, &str)] = &[
    ("raw", "raw"),
    ("std", "std"),
    ("smol", "smol_local"),
    ("smol-spawned", "smol_spawned"),
    ("tokio", "tokio_ct"),
    ("tokio-mt", "tokio_mt"),
    ("raw-smol", "raw_smol"),
    ("raw-tokio", "raw_tokio_ct"),
    ("raw-tokio-mt", "raw_tokio_mt"),
];

/// Whether `strace` can be run.
pub(crate) fn available() -> bool {
    std::process::Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `perf` can count system calls here (it is installed and the
/// kernel lets this process read the tracepoint).
pub(crate) fn perf_available() -> bool {
    std::process::Command::new("perf")
        .args(["stat", "-x,", "-e", TRACEPOINT, "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The tracepoint `perf` counts: every system call's entry.
const TRACEPOINT: &str = "raw_syscalls:sys_enter";

/// System calls per call of the client `profile` talking to `socket`,
/// counted by `perf stat` instead of `strace`: the client runs at full
/// speed.
pub(crate) fn per_call_untraced(profile: &str, socket: &Path, calls: u64) -> Result<f64> {
    let setup = perf_count(profile, socket, 1)?;
    let all = perf_count(profile, socket, calls + 1)?;
    Ok(all.saturating_sub(setup) as f64 / calls as f64)
}

/// `perf stat` of one `--profile` run of `calls` calls: its system calls,
/// every thread's.
fn perf_count(profile: &str, socket: &Path, calls: u64) -> Result<u64> {
    let tool = ["perf", "stat", "-x,", "-e", TRACEPOINT];
    let text = counted_run(&tool, &["--"], profile, socket, calls)?;
    parse_perf(&text).ok_or_else(|| format!("no {TRACEPOINT} count in: {text}").into())
}

/// Runs `tool -o FILE after` over one `--profile` run of this program
/// making `calls` calls to `socket`, and returns what the tool wrote to
/// FILE.
fn counted_run(
    tool: &[&str],
    after: &[&str],
    profile: &str,
    socket: &Path,
    calls: u64,
) -> Result<String> {
    let dir = ::tests::TempDir::new("counts");
    let out = dir.join("counts");
    let status = ::tests::command(tool[0])
        .args(&tool[1..])
        .arg("-o")
        .arg(&out)
        .args(after)
        .arg(std::env::current_exe()?)
        .args(["--profile", profile, "--rounds", "1", "--serial"])
        .arg(calls.to_string())
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("{} of --profile {profile} failed ({status})", tool[0]).into());
    }
    Ok(std::fs::read_to_string(out)?)
}

/// The count of a `perf stat -x,` output: the first field of the line
/// that names the tracepoint.
fn parse_perf(text: &str) -> Option<u64> {
    text.lines()
        .find(|line| line.contains(TRACEPOINT))?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// System calls per call of the client `profile` talking to the QMP
/// socket `socket`: the total, and each system call's share.
pub(crate) fn per_call(
    profile: &str,
    socket: &Path,
    calls: u64,
) -> Result<(f64, BTreeMap<String, f64>)> {
    let setup = counts(profile, socket, 1)?;
    let all = counts(profile, socket, calls + 1)?;
    let mut per = BTreeMap::new();
    for (name, n) in &all {
        let d = n.saturating_sub(setup.get(name).copied().unwrap_or(0));
        per.insert(name.clone(), d as f64 / calls as f64);
    }
    let total = per.remove("total").unwrap_or(f64::NAN);
    Ok((total, per))
}

/// `strace -f -c` of one `--profile` run of `calls` calls: calls per
/// system call name, and `total`.
fn counts(profile: &str, socket: &Path, calls: u64) -> Result<BTreeMap<String, u64>> {
    let text = counted_run(&["strace", "-f", "-c"], &[], profile, socket, calls)?;
    Ok(parse(&text))
}

/// The call counts of an `strace -c` summary: its rows are `% time,
/// seconds, usecs/call, calls, [errors,] syscall`, the last one `total`.
fn parse(summary: &str) -> BTreeMap<String, u64> {
    summary
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let name = cells.last()?;
            let calls = cells.get(3)?.parse().ok()?;
            cells[0].parse::<f64>().ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// The largest shares, `name=share` with the biggest first.
pub(crate) fn breakdown(per: &BTreeMap<String, f64>) -> String {
    let mut v: Vec<(&String, &f64)> = per.iter().filter(|(_, n)| **n >= 0.05).collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1));
    v.iter()
        .map(|(k, n)| format!("{k} {n:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_summary() {
        let summary = "% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 40.00    0.000400           2       200           recvfrom
 30.00    0.000300           1       200        12 epoll_ctl
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           2       400        12 total
";
        let c = parse(summary);
        assert_eq!(c["recvfrom"], 200);
        assert_eq!(c["epoll_ctl"], 200);
        assert_eq!(c["total"], 400);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn reads_a_perf_count() {
        let text = "# started on Mon Nov 30 23:40:00 2026\n\n12003,,raw_syscalls:sys_enter,1520016,100.00,,\n";
        assert_eq!(parse_perf(text), Some(12003));
        assert_eq!(
            parse_perf("<not counted>,,raw_syscalls:sys_enter,0,0.00,,\n"),
            None
        );
        assert_eq!(parse_perf("nothing here\n"), None);
    }
}
