//! The QEMU launcher: start, talk, stop, and leave nothing behind.
#![allow(clippy::std_instead_of_core)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use qmp_qapi::qmp::{QueryStatus, RunState};
use qmp_std::{Error, Options, Qemu, QmpSocket};
use rustix::process::{Pid, Signal, kill_process, test_kill_process};
use tests::{qemu_binary, within};

const LIMIT: Duration = Duration::from_secs(60);

fn builder() -> qmp_std::QemuBuilder {
    Qemu::builder()
        .program(qemu_binary())
        .options(Options::new().timeout(Duration::from_secs(20)))
}

fn pid_of(qemu: &Qemu) -> Pid {
    Pid::from_raw(qemu.pid() as i32).expect("a positive pid")
}

/// The process is gone: no `/proc` entry and `kill(pid, 0)` fails.
/// (The launcher reaps its child, so not even a zombie remains.)
#[track_caller]
fn assert_gone(pid: Pid) {
    assert!(
        !Path::new(&format!("/proc/{}", pid.as_raw_nonzero())).exists(),
        "process {pid:?} still exists"
    );
    assert_eq!(
        test_kill_process(pid),
        Err(rustix::io::Errno::SRCH),
        "process {pid:?} still exists"
    );
}

/// Private socket directories this process's launcher has made.
fn launcher_dirs() -> Vec<String> {
    let prefix = format!("qmp-std-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

#[test]
fn launch_query_wait_for_an_event_and_shut_down() {
    within(LIMIT, "launch", || {
        let mut qemu = builder().arg("-S").launch().unwrap();
        let pid = pid_of(&qemu);
        assert_eq!(
            qemu.greeting().unwrap().version.to_string(),
            tests::dotted(tests::qemu_version())
        );
        assert!(qemu.oob_enabled());
        assert_eq!(qemu.call(&QueryStatus).unwrap().status, RunState::Prelaunch);
        qemu.execute("cont", None).unwrap();
        assert_eq!(qemu.wait_event("RESUME").unwrap().name, "RESUME");
        let status = qemu.shutdown().unwrap();
        assert!(status.success(), "{status:?}");
        assert_gone(pid);
    });
}

#[test]
fn listen_mode_leaves_no_socket_file_behind() {
    within(LIMIT, "listen mode", || {
        let mut qemu = builder()
            .socket(QmpSocket::Listen)
            .arg("-S")
            .launch()
            .unwrap();
        // The socket and its directory are removed once QEMU connected.
        assert_eq!(launcher_dirs(), Vec::<String>::new());
        let pid = pid_of(&qemu);
        assert_eq!(qemu.call(&QueryStatus).unwrap().status, RunState::Prelaunch);
        drop(qemu);
        assert_gone(pid);
        assert_eq!(launcher_dirs(), Vec::<String>::new());

        // A failing launch in listen mode cleans up too.
        let e = builder()
            .socket(QmpSocket::Listen)
            .arg("-no-such-option")
            .launch()
            .unwrap_err();
        assert!(matches!(e, Error::Launch(_)), "{e:?}");
        assert_eq!(launcher_dirs(), Vec::<String>::new());
    });
}

#[test]
fn a_bad_argument_reports_qemu_s_own_error() {
    within(LIMIT, "bad argument", || {
        let e = builder().arg("-no-such-option").launch().unwrap_err();
        let Error::Launch(launch) = &e else {
            panic!("expected a launch error, got {e:?}")
        };
        let status = launch.status.expect("QEMU exited");
        assert!(!status.success());
        assert!(
            launch.stderr.contains("-no-such-option: invalid option"),
            "stderr: {:?}",
            launch.stderr
        );
        let text = e.to_string();
        assert!(text.contains("invalid option"), "{text}");
        assert!(text.contains("exit status: 1"), "{text}");
    });
}

#[test]
fn a_bad_property_reports_qemu_s_own_error() {
    within(LIMIT, "bad property", || {
        let e = builder()
            .args(["-device", "no-such-device"])
            .launch()
            .unwrap_err();
        let Error::Launch(launch) = &e else {
            panic!("expected a launch error, got {e:?}")
        };
        assert!(
            launch.stderr.contains("no-such-device"),
            "stderr: {:?}",
            launch.stderr
        );
    });
}

#[test]
fn a_missing_binary_is_a_launch_error() {
    within(LIMIT, "missing binary", || {
        let e = Qemu::builder()
            .program("/nonexistent/qemu-system-x86_64")
            .launch()
            .unwrap_err();
        let Error::Launch(launch) = &e else {
            panic!("expected a launch error, got {e:?}")
        };
        assert!(launch.status.is_none());
        assert!(
            matches!(&*launch.cause, Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("/nonexistent/qemu-system-x86_64"),
            "{e}"
        );
    });
}

#[test]
fn dropping_the_launcher_stops_and_reaps_qemu() {
    within(LIMIT, "drop", || {
        let mut qemu = builder().launch().unwrap();
        let pid = pid_of(&qemu);
        qemu.call(&QueryStatus).unwrap();
        drop(qemu);
        assert_gone(pid);
    });
}

#[test]
fn shutdown_escalates_when_quit_is_ignored() {
    within(LIMIT, "escalation", || {
        let qemu = builder()
            .stop_timeout(Duration::from_millis(300))
            .launch()
            .unwrap();
        let pid = pid_of(&qemu);
        // A stopped process answers neither `quit` nor SIGTERM; SIGKILL
        // still ends it.
        kill_process(pid, Signal::STOP).unwrap();
        let status = qemu.shutdown().unwrap();
        assert_eq!(status.signal(), Some(Signal::KILL.as_raw()), "{status:?}");
        assert_gone(pid);
    });
}

#[test]
fn sigkill_mid_call_interrupts_and_shutdown_still_reaps() {
    within(LIMIT, "sigkill", || {
        let mut qemu = builder().launch().unwrap();
        let pid = pid_of(&qemu);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            kill_process(pid, Signal::KILL).unwrap();
        });
        let e = qemu
            .with_timeout(Duration::from_secs(50))
            .wait_event("NEVER")
            .unwrap_err();
        killer.join().unwrap();
        assert!(matches!(e, Error::Interrupted(_)), "{e:?}");
        let e = qemu.execute("query-status", None).unwrap_err();
        assert!(matches!(e, Error::Closed(_)), "{e:?}");
        let status = qemu.shutdown().unwrap();
        assert_eq!(status.signal(), Some(Signal::KILL.as_raw()));
        assert_gone(pid);
    });
}

#[test]
fn qemu_stderr_is_captured() {
    within(LIMIT, "stderr", || {
        // An unknown -global property only warns; QEMU runs on.
        let mut qemu = builder()
            .args(["-S", "-global", "nonexistent-driver.prop=1"])
            .launch()
            .unwrap();
        qemu.call(&QueryStatus).unwrap();
        let pid = pid_of(&qemu);
        // The reader thread may lag a little behind QEMU.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !qemu.stderr().contains("invalid class name") {
            assert!(
                std::time::Instant::now() < deadline,
                "stderr: {:?}",
                qemu.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            qemu.stderr().contains("nonexistent-driver.prop"),
            "{}",
            qemu.stderr()
        );
        qemu.shutdown().unwrap();
        assert_gone(pid);
    });
}

/// Run only as a child of `the_qemu_variable_is_honoured`, with `$QEMU` set.
#[test]
#[ignore = "run by the_qemu_variable_is_honoured with $QEMU set"]
fn qemu_variable_probe() {
    let expected = std::env::var("QEMU").expect("$QEMU is set by the parent test");
    assert_eq!(
        Qemu::builder().get_program(),
        std::ffi::OsString::from(&expected)
    );
    let e = Qemu::builder().launch().unwrap_err();
    assert!(e.to_string().contains(&expected), "{e}");
}

#[test]
fn the_qemu_variable_is_honoured() {
    within(LIMIT, "$QEMU", || {
        let out = tests::command(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "qemu_variable_probe",
                "--ignored",
                "--test-threads=1",
            ])
            .env("QEMU", "/nonexistent/qemu-from-env")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "{text}");
    });
}
