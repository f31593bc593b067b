//! The async adapters against a real QEMU: pipelining, out-of-band calls,
//! events, cancellation, closing, accept mode, TCP and file descriptor
//! passing. One source for every runtime: each case is generic over
//! [`Exec`], and [`suite!`] makes one `#[test]` of each for a runtime
//! (`smol_client.rs`, `tokio_client.rs`).

#![allow(clippy::std_instead_of_core)]

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_lite::{StreamExt, future};
use qmp_async::{
    CloseCause, Error, Event, EventFilter, Listener, Options, Qmp, Runtime, Subscription,
};
// The adapters' `add_fd` takes the engine's own `add-fd` type.
use qmp_core::commands::qmp::AddFd;
use qmp_core::{CloseReason, ErrorClass, Request};
use qmp_qapi::qmp::{Cont, HumanMonitorCommand, QueryFdsets, QueryStatus, Quit, RunState, Stop};
use serde_json::{Value, json};
use tests::exec::{Exec, Task};
use tests::{ChildGuard, QemuServer, TempDir};

/// Generous limits: a loaded machine can be slow to start QEMU, and a
/// hang is caught by `run` anyway.
fn options() -> Options {
    Options::default()
        .socket_wait(Duration::from_secs(20))
        .handshake_timeout(Duration::from_secs(60))
}

fn null() -> Value {
    Value::Null
}

pub(crate) fn typed_events_and_the_session_state<E: Exec>() {
    use qmp_qapi::qmp::{Resume, StopEvent};
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("typed events", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let driver = E::spawn(driver);
        assert_eq!(qmp.state(), qmp_core::SessionState::Running);
        let resumed = qmp.wait_typed_event::<Resume>(Duration::from_secs(30));
        let stopped = qmp.wait_typed_event::<StopEvent>(Duration::from_secs(30));
        qmp.call(&Cont).await.unwrap();
        qmp.execute("stop", Value::Null).await.unwrap();
        resumed.await.unwrap();
        stopped.await.unwrap();
        qmp.disconnect();
        driver.await;
        assert_eq!(qmp.state(), qmp_core::SessionState::Closed);
    });
}

/// `Options::check_schema`: a request the live schema refuses fails
/// before it is sent, naming the nearest name; good calls run.
pub(crate) fn the_live_schema_check_refuses_before_sending<E: Exec>() {
    use qmp_core::introspect::CheckError;
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("schema check", async move {
        let sent = Arc::new(AtomicUsize::new(0));
        let bad = sent.clone();
        let opts = options().check_schema(true).on_traffic(move |_, t| {
            let text = String::from_utf8_lossy(&t.bytes);
            if text.contains("qeury") || text.contains("sise") {
                bad.fetch_add(1, Ordering::Relaxed);
            }
        });
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, opts).await.unwrap();
        let driver = E::spawn(driver);
        let err = qmp.execute("qeury-status", null()).await.unwrap_err();
        assert!(
            matches!(&err, Error::Schema(CheckError::UnknownCommand { suggestion: Some(s), .. }) if s == "query-status"),
            "{err}"
        );
        let sise = json!({"driver": "null-co", "node-name": "n0", "sise": 1});
        let err = qmp.execute("blockdev-add", sise).await.unwrap_err();
        assert!(
            matches!(&err, Error::Schema(CheckError::UnknownArgument { suggestion: Some(s), .. }) if s == "size"),
            "{err}"
        );
        assert_eq!(sent.load(Ordering::Relaxed), 0, "nothing refused was sent");
        let typed = qmp.call(&QueryStatus).await.unwrap();
        assert_eq!(typed.status, RunState::Prelaunch);
        qmp.disconnect();
        driver.await;
    });
}

pub(crate) fn greeting_untyped_and_typed_calls<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("basic calls", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let driver = E::spawn(driver);
        let greeting = qmp.greeting().expect("a greeting");
        assert_eq!(
            greeting.version.to_string(),
            tests::dotted(tests::qemu_version())
        );
        assert!(qmp.oob_enabled());
        assert!(qmp.can_pass_fds());

        let raw = qmp.execute("query-status", null()).await.unwrap();
        assert_eq!(raw["status"], "prelaunch");
        let typed = qmp.call(&QueryStatus).await.unwrap();
        assert_eq!(typed.status, RunState::Prelaunch);
        assert!(!typed.running);
        let hmp = qmp
            .call(&HumanMonitorCommand {
                command_line: "info version".into(),
                cpu_index: None,
            })
            .await
            .unwrap();
        assert!(
            hmp.starts_with(&tests::dotted(tests::qemu_version())),
            "{hmp:?}"
        );
        let with_args = qmp
            .execute("qom-get", json!({"path": "/machine", "property": "type"}))
            .await
            .unwrap();
        assert_eq!(with_args, "none-machine");

        let err = qmp.execute("no-such-command", null()).await.unwrap_err();
        let server_err = err.server_error().expect("a server error");
        assert_eq!(server_err.class, ErrorClass::CommandNotFound);
        assert!(server_err.desc.contains("no-such-command"), "{err}");
        let err = qmp
            .execute("qom-get", json!({"path": "/nowhere", "property": "x"}))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Server(_)), "{err:?}");
        // The connection is still in step.
        assert_eq!(
            qmp.call(&QueryStatus).await.unwrap().status,
            RunState::Prelaunch
        );

        qmp.disconnect();
        let cause = driver.await;
        assert!(
            matches!(cause, CloseCause::Session(CloseReason::Local)),
            "{cause:?}"
        );
    });
}

/// Calls that each get a reply only they can get: an unknown command's
/// error names the command.
async fn unique_call<R: Runtime>(qmp: &Qmp<R>, tag: &str) {
    let name = format!("no-such-command-{tag}");
    let err = qmp.execute(&name, null()).await.unwrap_err();
    let desc = &err
        .server_error()
        .unwrap_or_else(|| panic!("{name}: {err}"))
        .desc;
    assert!(
        desc.contains(&format!("{name} ")) || desc.ends_with(&name),
        "{name} got {desc:?}"
    );
}

pub(crate) fn thousand_concurrent_calls_from_fifty_tasks<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("1,000 concurrent calls", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let driver = E::spawn(driver);
        let answered = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<Task<()>> = (0..50)
            .map(|t| {
                let qmp = qmp.clone();
                let answered = answered.clone();
                E::spawn(async move {
                    // Each task has its 20 calls in flight at once.
                    let calls: Vec<Task<()>> = (0..20)
                        .map(|i| {
                            let qmp = qmp.clone();
                            let answered = answered.clone();
                            E::spawn(async move {
                                if i % 5 == 4 {
                                    unique_call(&qmp, &format!("{t}-{i}")).await;
                                } else {
                                    let s = qmp.call(&QueryStatus).await.unwrap();
                                    assert_eq!(s.status, RunState::Prelaunch);
                                }
                                answered.fetch_add(1, Ordering::Relaxed);
                            })
                        })
                        .collect();
                    for c in calls {
                        c.await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        assert_eq!(answered.load(Ordering::Relaxed), 1000);
        qmp.disconnect();
        driver.await;
    });
}

pub(crate) fn oob_overtakes_queued_in_band_calls<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("oob", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let driver = E::spawn(driver);
        assert!(qmp.oob_enabled());
        const IN_BAND: usize = 400;
        let done = Arc::new(AtomicUsize::new(0));
        let in_band: Vec<Task<()>> = (0..IN_BAND)
            .map(|_| {
                let qmp = qmp.clone();
                let done = done.clone();
                E::spawn(async move {
                    qmp.call(&QueryStatus).await.unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        // Let every in-band call reach the driver before the oob one.
        while qmp.is_closed() || done.load(Ordering::SeqCst) == 0 {
            future::yield_now().await;
        }
        let yank = qmp.execute_oob("query-yank", null()).await.unwrap();
        let finished_before = done.load(Ordering::SeqCst);
        assert!(yank.is_array(), "{yank}");
        assert!(
            finished_before < IN_BAND,
            "the oob reply came after all {IN_BAND} queued in-band calls"
        );
        // An oob error is answered too, and matched to its call.
        let err = qmp.execute_oob("migrate-pause", null()).await.unwrap_err();
        assert!(
            err.server_error().unwrap().desc.contains("postcopy"),
            "{err}"
        );
        for t in in_band {
            t.await;
        }
        assert_eq!(done.load(Ordering::SeqCst), IN_BAND);
        qmp.disconnect();
        driver.await;
    });
}

pub(crate) fn oob_without_negotiation_is_refused<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("oob refused", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options().enable_oob(false))
            .await
            .unwrap();
        let driver = E::spawn(driver);
        assert!(!qmp.oob_enabled());
        let err = qmp.execute_oob("query-yank", null()).await.unwrap_err();
        assert!(matches!(err, Error::Submit(_)), "{err:?}");
        qmp.call(&QueryStatus).await.unwrap();
        qmp.disconnect();
        driver.await;
    });
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

pub(crate) fn three_subscribers_each_see_their_events_in_order<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("subscribers", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let driver = E::spawn(driver);
        const ROUNDS: usize = 25;
        let stops = qmp.subscribe("STOP");
        let resumes = qmp.subscribe(EventFilter::name("RESUME"));
        let both = qmp.subscribe(EventFilter::predicate(|e| {
            e.name == "STOP" || e.name == "RESUME"
        }));
        // Readers run concurrently with the commands.
        let collect = |s: Subscription| E::spawn(s.collect::<Vec<_>>());
        let (stops, resumes, both) = (collect(stops), collect(resumes), collect(both));
        for _ in 0..ROUNDS {
            qmp.call(&Cont).await.unwrap();
            qmp.call(&Stop).await.unwrap();
        }
        // The last STOP may still be on its way: wait for it, then close.
        let mut last = qmp.subscribe("STOP");
        let stop_seen = qmp.wait_event("STOP", Duration::from_secs(10));
        qmp.call(&Cont).await.unwrap();
        qmp.call(&Stop).await.unwrap();
        stop_seen.await.unwrap();
        last.next().await.unwrap();
        qmp.disconnect();
        driver.await;

        let (stops, resumes, both) = (stops.await, resumes.await, both.await);
        let n = ROUNDS + 1;
        assert_eq!(names(&stops), vec!["STOP"; n]);
        assert_eq!(names(&resumes), vec!["RESUME"; n]);
        let expected: Vec<&str> = ["RESUME", "STOP"].repeat(n);
        assert_eq!(names(&both), expected);
        // In order: timestamps never go backwards.
        for list in [&stops, &resumes, &both] {
            let ts: Vec<_> = list
                .iter()
                .map(|e| e.timestamp.map(|t| (t.seconds, t.microseconds)))
                .collect();
            assert!(ts.windows(2).all(|w| w[0] <= w[1]), "out of order: {ts:?}");
        }
        // A subscription made after the close ends at once.
        assert!(qmp.subscribe(EventFilter::all()).next().await.is_none());
    });
}

pub(crate) fn a_subscriber_that_never_reads_lags_without_slowing_others<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("slow subscriber", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let driver = E::spawn(driver);
        const ROUNDS: usize = 40;
        let mut sleeper = qmp.subscribe_with_capacity::<4>(EventFilter::all());
        let mut reader = qmp.subscribe(["STOP", "RESUME"]);
        let mut seen = Vec::new();
        for _ in 0..ROUNDS {
            qmp.call(&Cont).await.unwrap();
            seen.push(reader.next().await.unwrap().name);
            qmp.call(&Stop).await.unwrap();
            seen.push(reader.next().await.unwrap().name);
        }
        assert_eq!(seen, ["RESUME", "STOP"].repeat(ROUNDS));
        assert_eq!(sleeper.lagged(), (2 * ROUNDS - 4) as u64);
        assert_eq!(sleeper.len(), 4);
        assert_eq!(sleeper.take_lagged(), (2 * ROUNDS - 4) as u64);
        assert_eq!(sleeper.take_lagged(), 0);
        let kept: Vec<_> = std::iter::from_fn(|| sleeper.try_next())
            .map(|e| e.name)
            .collect();
        assert_eq!(kept, ["RESUME", "STOP", "RESUME", "STOP"]);
        qmp.disconnect();
        driver.await;
        assert!(sleeper.next().await.is_none());
    });
}

pub(crate) fn dropping_calls_at_any_point_keeps_the_connection_in_step<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("dropped calls", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let driver = E::spawn(driver);
        for i in 0..1000u64 {
            let name = format!("no-such-command-dropped-{i}");
            let call = qmp.execute(&name, null());
            match i % 4 {
                // Never polled: nothing reaches the driver.
                0 => drop(call),
                // Polled once: handed to the driver, then dropped.
                1 => {
                    let mut call = Box::pin(call);
                    // Usually pending; a preempted thread may see the reply.
                    let _ = future::poll_once(&mut call).await;
                }
                // Dropped while waiting for the reply, after a short while.
                2 => {
                    let give_up = async {
                        E::sleep(Duration::from_micros(i * 7 % 900)).await;
                        None
                    };
                    let _ = future::or(async { Some(call.await) }, give_up).await;
                }
                // Cancelled by its own deadline.
                _ => {
                    let r = qmp
                        .with_timeout(Duration::from_micros(i % 300))
                        .call(&QueryStatus)
                        .await;
                    assert!(matches!(r, Ok(_) | Err(Error::Timeout { .. })), "{r:?}");
                }
            }
        }
        // Every later call gets its own reply.
        for i in 0..50 {
            unique_call(&qmp, &format!("after-{i}")).await;
            assert_eq!(
                qmp.call(&QueryStatus).await.unwrap().status,
                RunState::Prelaunch
            );
        }
        qmp.disconnect();
        driver.await;
        // Replies to calls dropped after they were sent came, and went
        // nowhere.
        let stats = qmp.stats();
        assert!(stats.late_replies > 0, "{stats:?}");
        assert_eq!(stats.unknown_replies, 0);
    });
}

pub(crate) fn qemu_killed_mid_burst_ends_every_call_and_stream<E: Exec>() {
    // The first reply stops QEMU, but on a loaded machine the task that
    // gets it may run only once the driver has finished the whole burst:
    // then nothing was pending at the kill, and the case is set up again.
    for _ in 0..5 {
        let (failed, cause, elapsed) = killed_mid_burst::<E>();
        if failed == 0 {
            continue;
        }
        assert!(
            matches!(
                cause,
                CloseCause::Session(CloseReason::Eof | CloseReason::UnexpectedEof { .. })
                    | CloseCause::Io(_)
            ),
            "{cause:?}"
        );
        assert!(
            elapsed < Duration::from_secs(1),
            "calls and streams took {elapsed:?} to end"
        );
        return;
    }
    panic!("the burst finished before QEMU died, five times");
}

/// One burst with QEMU killed in its middle: how many calls were
/// interrupted, why the driver ended, and how long after the kill.
fn killed_mid_burst<E: Exec>() -> (usize, CloseCause, Duration) {
    let mut server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    let (started_tx, started_rx) = mpsc::channel();
    let (killed_tx, killed_rx) = mpsc::channel::<Instant>();
    let pid = rustix::process::Pid::from_raw(server.child.id() as i32).unwrap();
    // The first reply of the burst stops QEMU, so that calls are still
    // pending when it is killed, however fast or busy the machine is.
    let started_tx = Arc::new(std::sync::Mutex::new(Some(started_tx)));
    let outcome = std::thread::spawn(move || {
        E::new().block_on(async move {
            let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
            let driver = E::spawn(driver);
            let mut subs = vec![
                qmp.subscribe(EventFilter::all()),
                qmp.subscribe("STOP"),
                qmp.subscribe("NEVER"),
            ];
            // Small replies, so that what QEMU wrote before dying is
            // read quickly and the time measured is the client's own.
            let calls = stopping_burst::<E>(&qmp, pid, &started_tx);
            let killed_at = E::unblock(move || killed_rx.recv().unwrap()).await;
            let mut failed = 0;
            for call in calls {
                match call.await {
                    Ok(_) => {}
                    Err(Error::Interrupted(_)) => failed += 1,
                    // A task the executor had not run yet when the
                    // connection ended makes its call afterwards.
                    Err(Error::Closed(_)) => {}
                    Err(e) => panic!("a pending call ended with {e:?} instead of Interrupted"),
                }
            }
            for sub in &mut subs {
                while sub.next().await.is_some() {}
            }
            let cause = driver.await;
            let elapsed = killed_at.elapsed();
            // New calls fail at once.
            let late = qmp.call(&QueryStatus).await.unwrap_err();
            assert!(matches!(late, Error::Closed(_)), "{late:?}");
            (failed, cause, elapsed)
        })
    });
    started_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("burst started");
    server.kill();
    let _ = server.child.wait();
    killed_tx.send(Instant::now()).unwrap();
    join_within(outcome, Duration::from_secs(30), "the calls after the kill")
}

/// 5,000 calls at once; the first to succeed stops QEMU (`pid`) and says
/// so on `started`.
fn stopping_burst<E: Exec>(
    qmp: &Qmp<E::R>,
    pid: rustix::process::Pid,
    started: &Arc<std::sync::Mutex<Option<mpsc::Sender<()>>>>,
) -> Vec<Task<Result<Value, Error>>> {
    (0..5000)
        .map(|_| {
            let qmp = qmp.clone();
            let started = started.clone();
            E::spawn(async move {
                let result = qmp.execute("query-status", Value::Null).await;
                let first = result.is_ok().then(|| started.lock().unwrap().take());
                if let Some(Some(tx)) = first {
                    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
                    tx.send(()).unwrap();
                }
                result
            })
        })
        .collect()
}

/// Joins `thread`, failing the test when it has not ended `limit` from
/// now.
#[track_caller]
fn join_within<T>(thread: std::thread::JoinHandle<T>, limit: Duration, what: &str) -> T {
    let deadline = Instant::now() + limit;
    while !thread.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what} did not end within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

pub(crate) fn a_stopped_qemu_times_calls_out_and_the_connection_recovers<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    let pid = rustix::process::Pid::from_raw(server.child.id() as i32).unwrap();
    E::run("stopped QEMU", async move {
        // Everything goes on the wire at once, so that timed-out calls
        // fill the engine's table and later ones wait in the driver.
        let opts = options().max_in_flight(4096);
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, opts).await.unwrap();
        let driver = E::spawn(driver);
        qmp.call(&QueryStatus).await.unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
        let quick = qmp.with_timeout(Duration::from_millis(300));
        let calls: Vec<_> = (0..1200)
            .map(|_| {
                let quick = quick.clone();
                E::spawn(async move { quick.call(&QueryStatus).await })
            })
            .collect();
        for c in calls {
            let r = c.await;
            assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
        }
        rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
        // The late replies are dropped as they come; new calls wait for
        // room and are answered.
        for i in 0..20 {
            unique_call(&qmp, &format!("resumed-{i}")).await;
        }
        qmp.disconnect();
        driver.await;
    });
}

pub(crate) fn disconnect_ends_pending_calls_and_streams_and_later_calls_fail<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("disconnect", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let driver = E::spawn(driver);
        let mut sub = qmp.subscribe(EventFilter::all());
        let waiting = qmp.wait_event("NEVER", Duration::from_secs(60));
        let calls: Vec<_> = (0..100)
            .map(|_| {
                let qmp = qmp.clone();
                E::spawn(async move { qmp.execute("query-qmp-schema", Value::Null).await })
            })
            .collect();
        qmp.call(&QueryStatus).await.unwrap();
        qmp.disconnect();
        let closed = qmp.closed().await;
        assert!(closed.is_local(), "{closed:?}");
        for c in calls {
            match c.await {
                Ok(_) => {}
                Err(Error::Interrupted(CloseCause::Session(CloseReason::Local))) => {}
                // A task the executor had not run yet makes its call after
                // the disconnect, and that call fails as closed.
                Err(Error::Closed(CloseCause::Session(CloseReason::Local))) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(sub.next().await.is_none());
        assert!(matches!(waiting.await, Err(Error::Interrupted(_))));
        assert!(matches!(
            driver.await,
            CloseCause::Session(CloseReason::Local)
        ));
        assert!(qmp.is_closed());
        let err = qmp.execute("query-status", Value::Null).await.unwrap_err();
        assert!(
            matches!(err, Error::Closed(CloseCause::Session(CloseReason::Local))),
            "{err:?}"
        );
        assert!(err.to_string().contains("closed by the client"), "{err}");
    });
}

pub(crate) fn quit_closes_with_eof_and_dropping_every_handle_closes<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("quit", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let driver = E::spawn(driver);
        qmp.call(&Quit).await.unwrap();
        let cause = driver.await;
        assert!(
            matches!(cause, CloseCause::Session(CloseReason::Eof)),
            "{cause:?}"
        );
        let err = qmp.call(&QueryStatus).await.unwrap_err();
        assert!(err.to_string().contains("closed the connection"), "{err}");
    });
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("dropped handles", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let sub = qmp.subscribe(EventFilter::all());
        let driver = E::spawn(driver);
        qmp.call(&QueryStatus).await.unwrap();
        drop(qmp);
        assert!(driver.await.is_local());
        assert!(sub.collect::<Vec<_>>().await.is_empty());
    });
}

pub(crate) fn timeouts_on_calls_events_handshake_and_accept<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("timeouts", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let driver = E::spawn(driver);
        let quick = qmp.with_timeout(Duration::from_micros(1));
        assert!(matches!(
            quick.execute("query-qmp-schema", Value::Null).await,
            Err(Error::Timeout { .. })
        ));
        let r = qmp
            .execute_with(Request::new("query-qmp-schema").timeout(Duration::from_micros(1)))
            .await;
        assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
        assert!(matches!(
            qmp.wait_event("NEVER", Duration::from_millis(50)).await,
            Err(Error::Timeout { .. })
        ));
        // The late replies are dropped; the next call is answered.
        assert_eq!(
            qmp.call(&QueryStatus).await.unwrap().status,
            RunState::Prelaunch
        );
        assert_eq!(
            qmp.with_timeout(Duration::from_secs(30)).timeout(),
            Duration::from_secs(30)
        );
        qmp.disconnect();
        driver.await;

        // A server that accepts but never greets.
        let dir = TempDir::new("async-silent");
        let path = dir.join("silent.sock");
        let silent = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let opts = Options::default().handshake_timeout(Duration::from_millis(200));
        let err = Qmp::<E::R>::connect_unix(&path, opts).await.unwrap_err();
        assert!(
            matches!(err, Error::Timeout { .. }) && err.is_timeout(),
            "{err:?}"
        );
        drop(silent);

        // Nobody connects to our listener.
        let listener = Listener::<E::R>::bind(dir.join("accept.sock")).unwrap();
        let opts = Options::default().connect_timeout(Duration::from_millis(100));
        let err = Qmp::<E::R>::accept_unix(&listener, opts).await.unwrap_err();
        assert!(
            matches!(err, Error::Connect { .. }) && err.is_timeout(),
            "{err:?}"
        );

        // Nothing at the path: a clear error after the wait, no hang.
        let missing = dir.join("missing.sock");
        let opts = Options::default().socket_wait(Duration::from_millis(100));
        let err = Qmp::<E::R>::connect_unix(&missing, opts).await.unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.sock"), "{err}");
    });
}

pub(crate) fn accept_mode<E: Exec>() {
    let dir = TempDir::new("async-accept");
    let path = dir.join("qmp.sock");
    let mut qemu = E::run("accept", {
        let path = path.clone();
        async move { accept_and_quit::<E>(&path).await }
    });
    let _ = qemu.wait();
    assert!(
        !path.exists(),
        "the listener's socket file is removed on drop"
    );
}

/// Binds a listener at `path` (inside the runtime: tokio registers it
/// there), starts a QEMU that connects to it, talks, quits.
async fn accept_and_quit<E: Exec>(path: &Path) -> ChildGuard {
    let listener = Listener::<E::R>::bind(path).unwrap();
    // Killed and reaped on drop.
    let qemu = ChildGuard::spawn(
        tests::command(tests::qemu_binary())
            .args(tests::QEMU_ARGS)
            .arg("-qmp")
            .arg(format!("unix:{},server=off", path.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    )
    .expect("start QEMU");
    {
        let (qmp, driver) = listener.accept(options()).await.unwrap();
        let driver = E::spawn(driver);
        assert_eq!(
            qmp.greeting().unwrap().version.to_string(),
            tests::dotted(tests::qemu_version())
        );
        assert_eq!(
            qmp.call(&QueryStatus).await.unwrap().status,
            RunState::Prelaunch
        );
        let resumed = qmp.wait_event("RESUME", Duration::from_secs(10));
        qmp.call(&Cont).await.unwrap();
        assert_eq!(resumed.await.unwrap().name, "RESUME");
        qmp.call(&Quit).await.unwrap();
        assert!(matches!(
            driver.await,
            CloseCause::Session(CloseReason::Eof)
        ));
    }
    qemu
}

fn temp_file_fd(dir: &TempDir, name: &str) -> OwnedFd {
    let f = std::fs::File::create(dir.join(name)).unwrap();
    OwnedFd::from(f)
}

pub(crate) fn fd_passing_with_add_fd<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("fd passing", async move {
        let dir = TempDir::new("async-fds");
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let driver = E::spawn(driver);
        let add = AddFd {
            fdset_id: None,
            opaque: Some("note-one".into()),
        };
        let fd = temp_file_fd(&dir, "a");
        let info = qmp.add_fd(fd.as_fd(), &add).await.unwrap();
        let set = info.fdset_id;
        // The descriptor stays ours; QEMU got a copy.
        assert!(rustix::fs::fstat(&fd).is_ok());
        drop(fd);
        // Several at once, pipelined with ordinary calls.
        let many: Vec<_> = (0..8)
            .map(|i| {
                let qmp = qmp.clone();
                let fd = temp_file_fd(&dir, &format!("f{i}"));
                E::spawn(async move {
                    let add = AddFd {
                        fdset_id: Some(set),
                        opaque: Some(format!("note-{i}")),
                    };
                    let status = qmp.call(&QueryStatus);
                    let fds = [fd.as_fd()];
                    let added = qmp.execute_with_fds(Request::command(&add).unwrap(), &fds);
                    let (status, added) = future::zip(status, added).await;
                    status.unwrap();
                    added.unwrap()
                })
            })
            .collect();
        for t in many {
            assert_eq!(t.await["fdset-id"].as_i64(), Some(set));
        }
        drop_fd_calls_half_way::<E>(&qmp, &dir, set).await;
        let sets = qmp.call(&QueryFdsets).await.unwrap();
        let ours = sets.iter().find(|s| s.fdset_id == set).expect("our fd set");
        let all: Vec<_> = ours.fds.iter().filter_map(|f| f.opaque.clone()).collect();
        for i in 0..30 {
            assert!(
                all.contains(&format!("kept-{i}")),
                "kept-{i} missing from {all:?}"
            );
        }
        let mut notes: Vec<_> = all.into_iter().filter(|n| n.starts_with("note-")).collect();
        notes.sort();
        let mut expected: Vec<String> = (0..8).map(|i| format!("note-{i}")).collect();
        expected.push("note-one".into());
        expected.sort();
        assert_eq!(notes, expected);
        // add-fd without a descriptor is QEMU's error, not ours.
        let err = qmp
            .execute_with(Request::command(&add).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Server(_)), "{err:?}");
        qmp.disconnect();
        driver.await;
    });
}

/// Calls with descriptors dropped half-way never let their descriptors
/// be taken by, or take those of, the next such call (`kept-N` notes
/// that the caller checks in the fd set).
async fn drop_fd_calls_half_way<E: Exec>(qmp: &Qmp<E::R>, dir: &TempDir, set: i64) {
    for i in 0..30u64 {
        let add = AddFd {
            fdset_id: Some(set),
            opaque: Some(format!("dropped-{i}")),
        };
        let fd = temp_file_fd(dir, "d");
        let fds = [fd.as_fd()];
        let call = qmp.execute_with_fds(Request::command(&add).unwrap(), &fds);
        let mut call = Box::pin(call);
        if i % 3 == 0 {
            let _ = future::poll_once(&mut call).await;
        } else {
            let wait = E::sleep(Duration::from_micros(i * 37 % 500));
            let _ = future::or(async { Some(call.await) }, async {
                wait.await;
                None
            })
            .await;
        }
        let keep = AddFd {
            fdset_id: Some(set),
            opaque: Some(format!("kept-{i}")),
        };
        let fd = temp_file_fd(dir, "k");
        qmp.call_with_fds(&keep, &[fd.as_fd()])
            .await
            .unwrap_or_else(|e| panic!("kept-{i}: {e}"));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn tcp_and_any_stream_work_but_cannot_pass_fds<E: Exec>() {
    let port = free_port();
    let tcp = format!("tcp:127.0.0.1:{port},server=on,wait=off");
    let server = QemuServer::start(&["-qmp", &tcp]);
    let socket = server.socket.clone();
    E::run("tcp", async move {
        let dir = TempDir::new("async-tcp");
        let deadline = Instant::now() + Duration::from_secs(20);
        let (qmp, driver) = loop {
            match Qmp::<E::R>::connect_tcp(format!("127.0.0.1:{port}"), options()).await {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    E::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        let driver = E::spawn(driver);
        assert!(!qmp.can_pass_fds());
        assert_eq!(
            qmp.call(&QueryStatus).await.unwrap().status,
            RunState::Prelaunch
        );
        let fd = temp_file_fd(&dir, "t");
        let err = qmp.add_fd(fd.as_fd(), &AddFd::default()).await.unwrap_err();
        assert!(matches!(err, Error::FdPassingUnsupported { .. }), "{err:?}");
        assert!(err.to_string().ends_with("this connection is TCP"), "{err}");
        qmp.call(&QueryStatus).await.unwrap();
        qmp.disconnect();
        driver.await;

        // Any AsyncRead + AsyncWrite: here a Unix stream seen only as bytes.
        let stream = E::connect_stream(&socket).await.unwrap();
        let (qmp, driver) = Qmp::<E::R>::from_stream(stream, options()).await.unwrap();
        let driver = E::spawn(driver);
        assert_eq!(
            qmp.call(&QueryStatus).await.unwrap().status,
            RunState::Prelaunch
        );
        let fds = [fd.as_fd()];
        let err = qmp
            .execute_with_fds(Request::command(&AddFd::default()).unwrap(), &fds)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::FdPassingUnsupported { .. }), "{err:?}");
        qmp.disconnect();
        driver.await;
    });
}

pub(crate) fn driver_polled_by_hand_in_the_same_task<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("hand-polled driver", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let work = async {
            let a = qmp.call(&QueryStatus);
            let b = qmp.execute("query-name", Value::Null);
            let (a, b) = future::zip(a, b).await;
            qmp.disconnect();
            (a.unwrap(), b.unwrap())
        };
        let ((status, name), cause) = future::zip(work, driver).await;
        assert_eq!(status.status, RunState::Prelaunch);
        assert!(name.is_object());
        assert!(cause.is_local());
    });
}

pub(crate) fn dropping_the_driver_ends_calls<E: Exec>() {
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    let pid = server.child.id().to_string();
    let signal = move |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, pid.as_str()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig}");
    };
    E::run("dropped driver", async move {
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options()).await.unwrap();
        let mut sub = qmp.subscribe(EventFilter::all());
        // A stopped QEMU answers nothing: the call, which sends itself
        // when nothing else drives the connection, waits.
        signal("-STOP");
        let mut pending = Box::pin(qmp.call(&QueryStatus));
        assert!(future::poll_once(&mut pending).await.is_none());
        drop(driver);
        signal("-CONT");
        let err = pending.await.unwrap_err();
        assert!(
            matches!(err, Error::Interrupted(CloseCause::DriverDropped)),
            "{err:?}"
        );
        let err = qmp.call(&QueryStatus).await.unwrap_err();
        assert!(
            matches!(err, Error::Closed(CloseCause::DriverDropped)),
            "{err:?}"
        );
        assert!(sub.next().await.is_none());
        assert!(matches!(qmp.closed().await, CloseCause::DriverDropped));
    });
}

pub(crate) fn raw_messages_runstates_and_unclaimed_events<E: Exec>() {
    use qmp_core::SessionState::{AwaitingGreeting, Closed, Negotiating, Running};
    let server = QemuServer::start(&[]);
    let socket = server.socket.clone();
    E::run("raw, runstates, default queue", async move {
        let options = options().event_history(16);
        let (qmp, driver) = Qmp::<E::R>::connect_unix(&socket, options).await.unwrap();
        let mut states = qmp.runstates();
        let driver = E::spawn(driver);
        for expected in [AwaitingGreeting, Negotiating, Running] {
            assert_eq!(states.next().await, Some(expected));
        }
        let reply = qmp
            .execute_raw(json!({"execute": "query-status", "id": "mine"}))
            .await
            .unwrap();
        assert_eq!(reply["id"], "mine");
        assert_eq!(reply["return"]["status"], "prelaunch");
        let error = qmp
            .execute_raw(json!({"execute": "no-such-command", "id": {"a": [1]}}))
            .await
            .unwrap();
        assert_eq!(error["id"], json!({"a": [1]}));
        assert_eq!(error["error"]["class"], "CommandNotFound");
        // Nobody subscribed: the events wait in the default queue.
        qmp.call(&Cont).await.unwrap();
        qmp.call(&Stop).await.unwrap();
        let mut events = qmp.events();
        let resume = events.next().await.unwrap();
        assert_eq!(resume.name, "RESUME");
        let stop = events.next().await.unwrap();
        assert_eq!(stop.name, "STOP");
        assert_eq!(qmp.happened("RESUME"), Some(resume));
        assert_eq!(names(&qmp.history()), ["RESUME", "STOP"]);
        qmp.call(&Quit).await.unwrap();
        let mut rest = Vec::new();
        while let Some(state) = states.next().await {
            rest.push(state);
        }
        assert_eq!(rest.last(), Some(&Closed));
        assert!(
            matches!(
                states.close_cause(),
                Some(CloseCause::Session(CloseReason::Eof))
            ),
            "{:?}",
            states.close_cause()
        );
        driver.await;
    });
}

/// One `#[test]` per case above, on the runtime `$exec` (a [`Exec`]).
macro_rules! suite {
    ($exec:ty) => {
        $crate::async_client::suite!(@ $exec;
            greeting_untyped_and_typed_calls,
            the_live_schema_check_refuses_before_sending,
            typed_events_and_the_session_state,
            thousand_concurrent_calls_from_fifty_tasks,
            oob_overtakes_queued_in_band_calls,
            oob_without_negotiation_is_refused,
            three_subscribers_each_see_their_events_in_order,
            a_subscriber_that_never_reads_lags_without_slowing_others,
            dropping_calls_at_any_point_keeps_the_connection_in_step,
            qemu_killed_mid_burst_ends_every_call_and_stream,
            a_stopped_qemu_times_calls_out_and_the_connection_recovers,
            disconnect_ends_pending_calls_and_streams_and_later_calls_fail,
            quit_closes_with_eof_and_dropping_every_handle_closes,
            timeouts_on_calls_events_handshake_and_accept,
            accept_mode,
            fd_passing_with_add_fd,
            tcp_and_any_stream_work_but_cannot_pass_fds,
            driver_polled_by_hand_in_the_same_task,
            dropping_the_driver_ends_calls,
            raw_messages_runstates_and_unclaimed_events
        );
    };
    (@ $exec:ty; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                $crate::async_client::$case::<$exec>();
            }
        )*
    };
}
pub(crate) use suite;
