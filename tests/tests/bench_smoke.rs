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
    "pipelined_ratio_smol",
    "schema_ratio_std",
    "cpu_us_per_call_raw",
    "cpu_us_per_call_std",
    "cpu_us_per_call_smol",
    "event_flood_peak_rss_mib",
    "fanout_instances",
    "fanout_calls_per_s",
    "fanout_errors",
    "fanout_rss_kib_per_connection",
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
    // Every figure is a finite number, not only the required ones.
    for (key, v) in figures {
        let v = v.as_f64().unwrap_or_else(|| panic!("{key} = {v}"));
        assert!(v.is_finite(), "{key} = {v}");
    }
    let get = |k: &str| figures[k].as_f64().unwrap();
    for key in [
        "serial_ratio_std",
        "serial_ratio_smol",
        "pipelined_ratio_smol",
        "schema_ratio_std",
        "fanout_calls_per_s",
        "event_flood_peak_rss_mib",
        "fanout_rss_kib_per_connection",
    ] {
        assert!(get(key) > 0.0, "{key} = {}", get(key));
    }
    assert_eq!(get("fanout_errors"), 0.0, "{stderr}");
    assert_eq!(get("fanout_instances"), 2.0);
    assert_eq!(get("fanout_connected"), 2.0);
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
