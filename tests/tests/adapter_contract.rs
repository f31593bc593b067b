//! What every adapter promises about waiting, against a scripted peer:
//! every call has a deadline with the default options, a call ends on time
//! even when nothing drives the connection, and `Duration::MAX` means "no
//! limit", never a panic. (Descriptor leaks are counted in `fd_leak.rs`,
//! alone in its process.)

#[allow(dead_code, unused_imports, unused_macros)]
mod fault;

use std::time::{Duration, Instant};

use fault::{FaultServer, Script};
use qmp_async::Qmp;
use qmp_std::{Error, Options};
use tests::exec::{Exec, Smol, TokioCurrent, TokioMulti};
use tests::within;

/// The default call timeout both adapters document.
const DEFAULT: Duration = Duration::from_secs(30);
/// Generous: a hang guard, not a measurement.
const LIMIT: Duration = Duration::from_secs(90);

/// A server that negotiates, reads one request and answers nothing until
/// released.
fn silent() -> FaultServer {
    FaultServer::start(Script::new().greet().expect("query-status").hold())
}

#[track_caller]
fn assert_timed_out(e: &Error, after: Duration, started: Instant) {
    assert!(
        matches!(e, Error::Timeout { after: a, waiting_for } if *a == after && waiting_for.contains("query-status")),
        "{e:?}"
    );
    assert!(started.elapsed() >= after, "ended early: {e}");
}

fn std_calls_end_with_the_default_timeout() {
    within(LIMIT, "std default timeout", || {
        let server = silent();
        let mut qmp = qmp_std::Qmp::connect_unix(server.path(), Options::new()).unwrap();
        assert_eq!(qmp.timeout(), DEFAULT);
        let started = Instant::now();
        let e = qmp.execute("query-status", None).unwrap_err();
        assert_timed_out(&e, DEFAULT, started);
        server.release();
        qmp.disconnect();
        server.finish_ok();
    });
}

fn async_calls_end_with_the_default_timeout<E: Exec>() {
    within(LIMIT, "async default timeout", || {
        let server = silent();
        E::new().block_on(async {
            let (qmp, driver) = Qmp::<E::R>::connect_unix(server.path(), Options::new())
                .await
                .unwrap();
            let driver = E::spawn(driver);
            assert_eq!(qmp.timeout(), DEFAULT);
            let started = Instant::now();
            let e = qmp.execute("query-status", None).await.unwrap_err();
            assert_timed_out(&e, DEFAULT, started);
            server.release();
            qmp.disconnect();
            driver.await;
        });
        server.finish_ok();
    });
}

fn an_async_call_times_out_while_its_driver_is_not_polled<E: Exec>() {
    within(LIMIT, "unpolled driver", || {
        let server = FaultServer::start(Script::new().greet().expect("query-status").drain());
        E::new().block_on(async {
            let (qmp, driver) = Qmp::<E::R>::connect_unix(server.path(), Options::new())
                .await
                .unwrap();
            // The driver exists but nobody polls it: the call sends itself
            // and waits for its reply, which never comes; it still ends on
            // time.
            let short = Duration::from_millis(200);
            let started = Instant::now();
            let e = qmp
                .with_timeout(short)
                .execute("query-status", None)
                .await
                .unwrap_err();
            assert_timed_out(&e, short, started);
            let driver = E::spawn(driver);
            qmp.disconnect();
            driver.await;
        });
        let seen = server.finish_ok();
        assert_eq!(
            seen.requests.len(),
            2,
            "qmp_capabilities, query-status: {seen:?}"
        );
    });
}

/// A server that answers one call and then sends the event `X`.
fn answers_once() -> FaultServer {
    FaultServer::start(
        Script::new()
            .greet()
            .expect("query-status")
            .reply(r#"{"status": "running", "running": true}"#)
            .event("X")
            .drain(),
    )
}

fn unlimited() -> Options {
    Options::new()
        .connect_timeout(Duration::MAX)
        .handshake_timeout(Duration::MAX)
        .timeout(Duration::MAX)
}

#[test]
fn std_duration_max_means_no_limit() {
    within(LIMIT, "std Duration::MAX", || {
        let server = answers_once();
        let mut qmp = qmp_std::Qmp::connect_unix(server.path(), unlimited()).unwrap();
        let status = qmp.execute("query-status", None).unwrap();
        assert_eq!(status["status"], "running");
        let event = qmp.with_timeout(Duration::MAX).wait_event("X").unwrap();
        assert_eq!(event.name, "X");
        qmp.disconnect();
        server.finish_ok();
    });
}

fn async_duration_max_means_no_limit<E: Exec>() {
    within(LIMIT, "async Duration::MAX", || {
        let server = answers_once();
        E::new().block_on(async {
            let (qmp, driver) = Qmp::<E::R>::connect_unix(server.path(), unlimited())
                .await
                .unwrap();
            let driver = E::spawn(driver);
            let x = qmp.wait_event("X", Duration::MAX);
            let status = qmp.execute("query-status", None).await.unwrap();
            assert_eq!(status["status"], "running");
            assert_eq!(x.await.unwrap().name, "X");
            let forever = qmp.with_timeout(Duration::MAX);
            assert_eq!(forever.timeout(), Duration::MAX);
            qmp.disconnect();
            driver.await;
        });
        server.finish_ok();
    });
}

/// The three adapters wait out their 30 s side by side, not one after
/// the other.
#[test]
fn every_adapter_ends_a_call_with_the_default_timeout() {
    let waits = [
        std::thread::spawn(std_calls_end_with_the_default_timeout),
        std::thread::spawn(async_calls_end_with_the_default_timeout::<Smol>),
        std::thread::spawn(async_calls_end_with_the_default_timeout::<TokioMulti>),
    ];
    for wait in waits {
        if let Err(panic) = wait.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn a_smol_call_times_out_while_its_driver_is_not_polled() {
    an_async_call_times_out_while_its_driver_is_not_polled::<Smol>();
}

/// On the current-thread scheduler nothing else runs at all meanwhile.
#[test]
fn a_tokio_call_times_out_while_its_driver_is_not_polled() {
    an_async_call_times_out_while_its_driver_is_not_polled::<TokioCurrent>();
}

#[test]
fn smol_duration_max_means_no_limit() {
    async_duration_max_means_no_limit::<Smol>();
}

#[test]
fn tokio_duration_max_means_no_limit() {
    async_duration_max_means_no_limit::<TokioCurrent>();
}
