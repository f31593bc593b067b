//! Calls that carry file descriptors and time out close the duplicates
//! they made, in every adapter. The process's open descriptors are counted
//! in `/proc/self/fd`, so this file holds one test: nothing else in the
//! process opens or closes descriptors meanwhile.

#[allow(dead_code, unused_imports, unused_macros)]
mod fault;

use std::fs::File;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use fault::{FaultServer, Script};
use qmp_async::Qmp;
use qmp_std::{Error, Options};
use tests::exec::{Exec, Smol, TokioMulti};
use tests::within;

const CALLS: usize = 50;
const SHORT: Duration = Duration::from_millis(20);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits until the count of open descriptors is back to `expected`: a
/// driver on another thread may still be closing the last duplicate when
/// the call returns. A leak never gets there and fails after the guard.
fn settles_at(expected: usize) {
    let guard = Instant::now() + Duration::from_secs(10);
    loop {
        let now = open_fds();
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < guard,
            "{now} descriptors open, {expected} before the calls"
        );
        std::thread::yield_now();
    }
}

#[track_caller]
fn assert_timeout(r: Result<(), Error>) {
    assert!(
        matches!(&r, Err(Error::Timeout { .. })),
        "expected a timeout: {r:?}"
    );
}

#[test]
fn timed_out_getfd_calls_leave_no_descriptor_behind() {
    within(Duration::from_secs(120), "fd leak", || {
        let file = File::open("/dev/null").unwrap();
        // The blocking client.
        let server = FaultServer::start(Script::new().greet().drain());
        let mut qmp = qmp_std::Qmp::connect_unix(server.path(), Options::new()).unwrap();
        qmp.set_timeout(SHORT);
        let before = open_fds();
        for _ in 0..CALLS {
            assert_timeout(qmp.getfd("f", file.as_fd()));
        }
        settles_at(before);
        qmp.disconnect();
        server.finish_ok();

        // The async clients, each driver spawned on its runtime.
        async_calls_leave_nothing::<Smol>(&file);
        async_calls_leave_nothing::<TokioMulti>(&file);
    });
}

/// `CALLS` timed-out `getfd` calls on the runtime `E`, whose driver runs
/// on its own while the test thread counts.
fn async_calls_leave_nothing<E: Exec>(file: &File) {
    let server = FaultServer::start(Script::new().greet().drain());
    let exec = E::new();
    let (qmp, driver) = exec
        .block_on(Qmp::<E::R>::connect_unix(server.path(), Options::new()))
        .unwrap();
    let driver = exec.spawn_here(driver);
    let short = qmp.with_timeout(SHORT);
    let before = open_fds();
    for _ in 0..CALLS {
        assert_timeout(exec.block_on(short.getfd("f", file.as_fd())));
    }
    settles_at(before);
    qmp.disconnect();
    exec.block_on(driver);
    server.finish_ok();
}
