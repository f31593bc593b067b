//! The async launchers (`qmp_smol::Qemu`, `qmp_tokio::Qemu`): start a real
//! QEMU, talk to it, stop it, and report QEMU's own words when it fails.
//! One source for every runtime: [`suite!`] makes one `#[test]` of each
//! case for a runtime (`smol_launcher.rs`, `tokio_launcher.rs`).

#![allow(clippy::std_instead_of_core)]

use std::path::Path;
use std::time::Duration;

use qmp_async::{Error, Options, Qemu, QemuBuilder, QmpSocket};
use qmp_qapi::qmp::{QueryStatus, RunState};
use tests::exec::Exec;

fn builder<E: Exec>() -> QemuBuilder<E::R> {
    Qemu::<E::R>::builder()
        .program(tests::qemu_binary())
        .options(Options::new().timeout(Duration::from_secs(20)))
}

/// Whether process `pid` is gone (reaped: not even a zombie remains).
fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Held by the cases that launch in listen mode and look for leftover
/// socket directories: the tests of one binary run in parallel.
static LISTEN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn listen_lock() -> std::sync::MutexGuard<'static, ()> {
    LISTEN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Private socket directories this process's launchers have made.
fn launcher_dirs() -> Vec<String> {
    let prefix = format!("qmp-std-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

pub(crate) fn launch_query_and_shut_down<E: Exec>() {
    let _listen = listen_lock();
    for socket in [QmpSocket::Pair, QmpSocket::Listen] {
        E::run("launch", async move {
            let (qemu, driver) = builder::<E>()
                .socket(socket)
                .arg("-S")
                .launch()
                .await
                .unwrap();
            let driver = E::spawn(driver);
            let pid = qemu.pid();
            assert!(!gone(pid));
            assert_eq!(
                qemu.greeting().unwrap().version.to_string(),
                tests::dotted(tests::qemu_version())
            );
            assert_eq!(
                qemu.call(&QueryStatus).await.unwrap().status,
                RunState::Prelaunch
            );
            let resumed = qemu.wait_event("RESUME", Duration::from_secs(20));
            qemu.execute("cont", None).await.unwrap();
            resumed.await.unwrap();
            let status = qemu.shutdown().await.unwrap();
            assert!(status.success(), "{status:?}");
            assert!(gone(pid), "QEMU {pid} is still there");
            driver.await;
        });
    }
    assert_eq!(launcher_dirs(), Vec::<String>::new());
}

pub(crate) fn dropping_the_launcher_kills_and_reaps_qemu<E: Exec>() {
    E::run("drop", async move {
        let (qemu, driver) = builder::<E>().launch().await.unwrap();
        let driver = E::spawn(driver);
        let pid = qemu.pid();
        let qmp = qemu.qmp().clone();
        drop(qemu);
        assert!(gone(pid), "QEMU {pid} is still there");
        // The connection ends with it.
        driver.await;
        assert!(qmp.is_closed());
    });
}

pub(crate) fn a_launch_failure_carries_qemu_s_own_error<E: Exec>() {
    let listen = listen_lock();
    for socket in [QmpSocket::Pair, QmpSocket::Listen] {
        let e = E::run("bad argument", async move {
            builder::<E>()
                .socket(socket)
                .arg("-no-such-option")
                .launch()
                .await
                .unwrap_err()
        });
        let Error::Launch(launch) = &e else {
            panic!("expected a launch error, got {e:?}")
        };
        assert!(!launch.status.expect("QEMU exited").success());
        assert!(
            launch.stderr.contains("-no-such-option: invalid option"),
            "stderr: {:?}",
            launch.stderr
        );
        assert!(e.to_string().contains("invalid option"), "{e}");
    }
    assert_eq!(launcher_dirs(), Vec::<String>::new());
    drop(listen);
    let e = E::run("missing binary", async move {
        Qemu::<E::R>::builder()
            .program("/nonexistent/qemu-system-x86_64")
            .launch()
            .await
            .unwrap_err()
    });
    assert!(matches!(e, Error::Launch(_)), "{e:?}");
    assert!(e.to_string().contains("/nonexistent"), "{e}");
}

/// One `#[test]` per case above, on the runtime `$exec` (a [`Exec`]).
macro_rules! suite {
    ($exec:ty) => {
        $crate::async_launcher::suite!(@ $exec;
            launch_query_and_shut_down,
            dropping_the_launcher_kills_and_reaps_qemu,
            a_launch_failure_carries_qemu_s_own_error
        );
    };
    (@ $exec:ty; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                $crate::async_launcher::$case::<$exec>();
            }
        )*
    };
}
pub(crate) use suite;
