//! `qmp-bench --smoke`: every scenario of the benchmark runs at trivial
//! sizes against a real QEMU and reports every figure, so the benchmark
//! cannot rot. Nothing here judges the figures themselves: the benchmark
//! reports, it does not gate.

use std::time::{Duration, Instant};

use serde_json::Value;

/// The figures a script comparing runs relies on.
const KEYS: &[&str] = &[
    "serial_ratio_std",
    "serial_ratio_smol",
    "serial_ratio_smol_local",
    "serial_ratio_smol_spawned",
    "serial_ratio_tokio",
    "serial_ratio_tokio_mt",
    "pipelined_ratio_smol",
    "pipelined_ratio_tokio",
    "schema_ratio_std",
    "cpu_us_per_call_raw",
    "cpu_us_per_call_std",
    "cpu_us_per_call_smol",
    "cpu_us_per_call_tokio",
    "cpu_us_per_call_std_typed",
    "cpu_us_per_call_smol_typed",
    "serial_ratio_raw_smol",
    "serial_ratio_raw_tokio",
    "serial_ratio_raw_tokio_mt",
    "cpu_us_per_call_raw_smol",
    "cpu_us_per_call_raw_tokio",
    "cpu_us_per_call_raw_tokio_mt",
    "serial_ratio_over_floor_smol_local",
    "serial_ratio_over_floor_smol_spawned",
    "serial_ratio_over_floor_tokio",
    "serial_ratio_over_floor_tokio_mt",
    "serial_cpu_ratio_over_floor_smol_local",
    "serial_cpu_ratio_over_floor_tokio",
    "cpu_ratio_std",
    "cpu_ratio_tokio",
    "serial_ratio_over_raw_decode_std",
    "cpu_ratio_over_raw_decode_std",
    "event_flood_peak_rss_mib",
    "fanout_instances",
    "fanout_conns",
    "fanout_calls_per_s",
    "fanout_errors",
    "fanout_rss_kib_per_connection",
    "scale_conns",
    "scale_errors",
    "scale_misrouted",
    "conn_rss_kib",
];

/// The QEMU version each scenario against a real QEMU used.
const VERSIONS: &[&str] = &[
    "serial_qemu",
    "pipelined_qemu",
    "schema_qemu",
    "fanout_qemu",
];

/// The QEMU version of the pinned scenario, which needs two CPUs.
const PINNED_QEMU: &str = "serial_pinned_qemu";

/// The clients whose system calls per call are counted, by their
/// figures' suffixes.
const SYSCALLS: &[&str] = &[
    "raw",
    "smol",
    "smol_local",
    "smol_spawned",
    "tokio",
    "tokio_ct",
    "tokio_mt",
    "raw_smol",
    "raw_tokio_ct",
    "raw_tokio_mt",
];

#[test]
fn every_scenario_reports_every_figure() {
    let start = Instant::now();
    let out = tests::command(env!("CARGO_BIN_EXE_qmp-bench"))
        .args(["--smoke", "--json"])
        .output()
        .expect("run qmp-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "qmp-bench --smoke failed:\n{stderr}");
    let figures: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let figures = figures.as_object().expect("a JSON object");
    for key in KEYS {
        let v = figures
            .get(*key)
            .unwrap_or_else(|| panic!("{key} missing from {figures:?}"))
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number: {figures:?}"));
        assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
    }
    versions_and_system_calls(figures);
    let get = |k: &str| figures[k].as_f64().unwrap();
    for key in [
        "serial_ratio_std",
        "serial_ratio_smol",
        "pipelined_ratio_smol",
        "schema_ratio_std",
        "fanout_calls_per_s",
        "event_flood_peak_rss_mib",
        "fanout_rss_kib_per_connection",
        "serial_ratio_tokio",
        "serial_ratio_tokio_mt",
        "pipelined_ratio_tokio",
    ] {
        assert!(get(key) > 0.0, "{key} = {}", get(key));
    }
    assert_eq!(get("fanout_errors"), 0.0, "{stderr}");
    assert_eq!(get("fanout_instances"), 2.0);
    assert_eq!(get("fanout_connected"), 2.0);
    assert_eq!(get("fanout_conns"), 2.0);
    // Every connection of the scale run made every call, and every reply
    // reached the call that asked for it, events interleaved.
    assert_eq!(get("scale_errors"), 0.0, "{stderr}");
    assert_eq!(get("scale_misrouted"), 0.0, "{stderr}");
    assert_eq!(get("scale_connected"), get("scale_conns"));
    assert!(get("scale_events") > 0.0, "{stderr}");
    // The flood's events were all either queued or counted as lost, and
    // its peak is a resident set, not a runaway.
    assert!(get("event_flood_peak_rss_mib") < 1024.0);
    assert!(get("schema_reply_bytes") > 10_000.0);
    // The table went to stderr.
    assert!(stderr.contains("serial query-status"), "{stderr}");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(120),
        "qmp-bench --smoke took {took:?}"
    );
}

/// The QEMU versions are `major.minor.micro`, the system call figures are
/// numbers (null without strace), and every other figure is a finite
/// number, not only the required ones.
fn versions_and_system_calls(figures: &serde_json::Map<String, Value>) {
    // The pinned scenario needs two CPUs; on one it leaves its ratios null.
    let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let versions = VERSIONS.iter().chain(two_cpus.then_some(&PINNED_QEMU));
    for key in versions {
        let v = figures[*key].as_str().unwrap_or_else(|| panic!("{key}"));
        let parts: Vec<&str> = v.split('.').collect();
        assert!(
            parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
            "{key} = {v:?}"
        );
    }
    if two_cpus {
        for key in [
            "serial_pinned_ratio_smol_local",
            "pipelined_pinned_ratio_tokio",
        ] {
            let ratio = figures[key].as_f64();
            assert!(ratio.is_some_and(|r| r > 0.0), "{key} = {ratio:?}");
        }
    }
    let strace = succeeds("strace", &["-V"]);
    // Counting untraced needs perf and the kernel's leave to read the
    // tracepoint.
    let perf = succeeds(
        "perf",
        &["stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"],
    );
    for (prefix, counted) in [
        ("syscalls_per_call_", strace),
        ("syscalls_per_call_untraced_", perf),
    ] {
        for client in SYSCALLS {
            let key = format!("{prefix}{client}");
            let v = figures
                .get(&key)
                .unwrap_or_else(|| panic!("{key} missing from {figures:?}"));
            match (counted, v.as_f64()) {
                // At least a send and a receive per call.
                (true, Some(v)) => assert!(v >= 1.5, "{key} = {v}"),
                (false, None) => assert!(v.is_null(), "{key} = {v}"),
                (_, v) => panic!("{key} = {v:?} with its counter present: {counted}"),
            }
        }
    }
    for (key, v) in figures {
        if VERSIONS.contains(&key.as_str()) || key == "syscalls_qemu" || key == PINNED_QEMU {
            continue;
        }
        let pinned_ratio =
            key.starts_with("serial_pinned_ratio_") || key.starts_with("pipelined_pinned_ratio_");
        if pinned_ratio && v.is_null() && !two_cpus {
            continue;
        }
        let untraced = key.starts_with("syscalls_per_call_untraced_");
        let traced = !untraced && key.starts_with("syscalls_per_call_");
        if v.is_null() && ((traced && !strace) || (untraced && !perf)) {
            continue;
        }
        let v = v.as_f64().unwrap_or_else(|| panic!("{key} = {v}"));
        assert!(v.is_finite(), "{key} = {v}");
    }
}

/// Whether `program args` runs and exits with success.
fn succeeds(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}
