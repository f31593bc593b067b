//! Every message in and out is visible through the `log` facade.
#![allow(clippy::std_instead_of_core)]

use std::sync::Mutex;
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};
use qmp_std::{Options, Qmp};
use tests::{QemuServer, within};

/// Keeps every record from qmp-std.
struct Capture(Mutex<Vec<(Level, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        if record.target().starts_with("qmp_std") {
            self.0
                .lock()
                .unwrap()
                .push((record.level(), record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn requests_replies_events_and_raw_bytes_are_logged() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(LevelFilter::Trace);
    within(Duration::from_secs(60), "logging", || {
        let server = QemuServer::start(&[]);
        let options = Options::new().socket_wait(Duration::from_secs(10));
        let qmp = Qmp::connect_unix(&server.socket, options);
        let mut qmp = qmp.expect("connect to QEMU");
        qmp.execute("query-status", None).unwrap();
        qmp.execute("cont", None).unwrap();
        qmp.wait_event("RESUME").unwrap();
        qmp.disconnect();
    });
    let records = LOGGER.0.lock().unwrap().clone();
    let has = |level: Level, needle: &str| {
        records
            .iter()
            .any(|(l, m)| *l == level && m.contains(needle))
    };
    // The session's milestones at a level users see, each message at debug.
    let greeting = format!(
        "QMP <- greeting: QEMU {}",
        tests::dotted(tests::qemu_version())
    );
    assert!(has(Level::Info, &greeting), "{records:#?}");
    assert!(has(Level::Info, "QMP: ready"), "{records:#?}");
    assert!(has(Level::Info, "QMP: closed"), "{records:#?}");
    assert!(
        has(Level::Debug, r#"QMP -> {"execute":"query-status","id":"#),
        "{records:#?}"
    );
    assert!(
        has(Level::Debug, r#"QMP <- {"return": {"status": "prelaunch""#),
        "{records:#?}"
    );
    assert!(has(Level::Debug, r#""event": "RESUME""#), "{records:#?}");
}
