//! Calls that carry file descriptors and time out close the duplicates
//! they made, in both adapters. The process's open descriptors are counted
//! in `/proc/self/fd`, so this file holds one test: nothing else in the
//! process opens or closes descriptors meanwhile.

#[allow(dead_code, unused_imports, unused_macros)]
mod fault;

use std::fs::File;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use fault::{FaultServer, Script};
use qmp_std::{Error, Options};
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

        // The async client, its driver on a thread of its own.
        let server = FaultServer::start(Script::new().greet().drain());
        let (qmp, driver) =
            smol::block_on(qmp_smol::Qmp::connect_unix(server.path(), Options::new())).unwrap();
        let driver = std::thread::spawn(move || smol::block_on(driver));
        let short = qmp.with_timeout(SHORT);
        let before = open_fds();
        for _ in 0..CALLS {
            assert_timeout(smol::block_on(short.getfd("f", file.as_fd())));
        }
        settles_at(before);
        qmp.disconnect();
        driver.join().unwrap();
        server.finish_ok();
    });
}
