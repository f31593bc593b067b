//! The blocking client against a real QEMU (and a few scripted servers for
//! what QEMU never does on purpose).
#![allow(clippy::std_instead_of_core)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Stdio;
use std::time::Duration;

// The adapters' `add_fd` takes the engine's own `add-fd` type.
use qmp_core::commands::qmp::AddFd;
use qmp_core::{Capability, ErrorClass};
use qmp_qapi::qmp::{QueryFdsets, QueryStatus, QueryVersion, RemoveFd, RunState, Stop};
use qmp_std::{Error, Options, Qmp, Socket};
use serde_json::{Value, json};
use tests::{ChildGuard, QEMU_ARGS, QemuServer, TempDir, command, qemu_binary, within};

/// Generous: only a hang trips it.
const LIMIT: Duration = Duration::from_secs(60);

fn opts() -> Options {
    Options::new().timeout(Duration::from_secs(20))
}

/// Connects to the server's socket. QEMU creates the socket file before it
/// listens on it, so a refused connection right after start is retried.
fn connect(server: &QemuServer) -> Qmp {
    Qmp::connect_unix(&server.socket, opts().socket_wait(Duration::from_secs(10)))
        .expect("connect to QEMU")
}

#[test]
fn greeting_reports_the_real_version_and_oob_is_negotiated() {
    within(LIMIT, "greeting", || {
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        let g = qmp.greeting().cloned().expect("a greeting");
        assert_eq!(
            g.version.to_string(),
            tests::dotted(tests::qemu_version()),
            "greeting: {g:?}"
        );
        assert!(g.offers(&Capability::Oob));
        assert!(qmp.oob_enabled());
        let v = qmp.call(&QueryVersion).unwrap();
        assert_eq!(
            (v.qemu.major, v.qemu.minor, v.qemu.micro),
            (
                i64::from(g.version.major),
                i64::from(g.version.minor),
                i64::from(g.version.micro)
            )
        );
        assert_eq!(v.package, g.package);
        qmp.disconnect();
    });
}

#[test]
fn typed_and_untyped_queries() {
    within(LIMIT, "queries", || {
        let server = QemuServer::start(&["-name", "qmp-std-test"]);
        let mut qmp = connect(&server);
        let status = qmp.execute("query-status", None).unwrap();
        assert_eq!(status["status"], "prelaunch");
        assert_eq!(status["running"], false);
        let typed = qmp.call(&QueryStatus).unwrap();
        assert_eq!(typed.status, RunState::Prelaunch);
        assert!(!typed.running);
        let name = qmp.execute("query-name", json!({})).unwrap();
        assert_eq!(name, json!({"name": "qmp-std-test"}));
        let out = qmp
            .execute(
                "human-monitor-command",
                json!({"command-line": "print 6*7"}),
            )
            .unwrap();
        assert_eq!(out, Value::String("0x2a\r\n".into()));
        let typed = qmp
            .call(&qmp_qapi::qmp::HumanMonitorCommand {
                command_line: "print 1+1".into(),
                cpu_index: None,
            })
            .unwrap();
        assert_eq!(typed, "0x2\r\n");
        // A per-call timeout and a prepared request.
        let v = qmp
            .with_timeout(Duration::from_secs(30))
            .execute_with(qmp_core::Request::new("query-kvm"))
            .unwrap();
        assert!(v.get("present").is_some());
    });
}

#[test]
fn qemu_errors_come_back_typed() {
    within(LIMIT, "errors", || {
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        let e = qmp.execute("no-such-command", None).unwrap_err();
        let Error::Server(err) = &e else {
            panic!("expected a server error, got {e:?}")
        };
        assert_eq!(err.class, ErrorClass::CommandNotFound);
        assert!(err.desc.contains("no-such-command"), "{err}");
        assert!(e.to_string().contains("CommandNotFound"), "{e}");

        let e = qmp
            .execute("device_del", json!({"id": "nope"}))
            .unwrap_err();
        let err = e.server_error().expect("server error");
        assert_eq!(err.class, ErrorClass::DeviceNotFound);
        assert_eq!(err.desc, "Device 'nope' not found");

        let e = qmp
            .execute("closefd", json!({"fdname": "nope"}))
            .unwrap_err();
        let err = e.server_error().expect("server error");
        assert_eq!(err.class, ErrorClass::GenericError);
        assert!(err.desc.contains("nope"), "{err}");

        // The session is still fine.
        qmp.call(&QueryStatus).unwrap();
    });
}

#[test]
fn out_of_band_execution() {
    within(LIMIT, "oob", || {
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        // migrate-pause allows oob; outside postcopy QEMU refuses it, which
        // proves the exec-oob request and its reply were matched.
        let e = qmp.execute_oob("migrate-pause", None).unwrap_err();
        let err = e.server_error().expect("server error");
        assert_eq!(err.class, ErrorClass::GenericError);
        assert!(err.desc.contains("postcopy"), "{err}");
        // A command without oob support says so.
        let e = qmp.execute_oob("query-status", None).unwrap_err();
        assert!(
            e.server_error().expect("server error").desc.contains("OOB"),
            "{e}"
        );
        qmp.call(&QueryStatus).unwrap();
    });
}

#[test]
fn stop_and_cont_events_are_found_while_others_stay_queued() {
    within(LIMIT, "events", || {
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        qmp.execute("cont", None).unwrap();
        qmp.call(&Stop).unwrap();
        qmp.execute("cont", None).unwrap();
        assert_eq!(qmp.call(&QueryStatus).unwrap().status, RunState::Running);
        // Queued in order while the replies were awaited.
        let names: Vec<_> = qmp.events().iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["RESUME", "STOP", "RESUME"]);

        let stop = qmp.wait_event("STOP").unwrap();
        assert_eq!(stop.name, "STOP");
        assert!(stop.timestamp.is_some_and(|t| t.seconds > 0));
        // The non-matching events are still there, in order.
        let names: Vec<_> = qmp.events().iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["RESUME", "RESUME"]);

        // A predicate; then an event that is not queued yet.
        let resume = qmp.wait_event_where(|e| e.name == "RESUME").unwrap();
        assert_eq!(resume.name, "RESUME");
        qmp.execute("stop", None).unwrap();
        let stop = qmp
            .with_timeout(Duration::from_secs(10))
            .wait_event("STOP")
            .unwrap();
        assert_eq!(stop.name, "STOP");

        // Waiting for an event that never comes times out and loses nothing.
        let e = qmp
            .with_timeout(Duration::from_millis(200))
            .wait_event("NEVER")
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        let left: Vec<_> = qmp.drain_events().into_iter().map(|e| e.name).collect();
        assert_eq!(left, ["RESUME"]);
        assert!(qmp.drain_events().is_empty());
        assert_eq!(qmp.events().take_lagged(), 0);
    });
}

#[test]
fn a_thousand_sequential_commands_are_answered_in_order() {
    within(Duration::from_secs(120), "1000 commands", || {
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        // 1..=1000: HMP prints 0 without the 0x prefix.
        for i in 1..=1000u32 {
            let out = qmp
                .execute(
                    "human-monitor-command",
                    json!({"command-line": format!("print {i}")}),
                )
                .unwrap();
            assert_eq!(out, Value::String(format!("{i:#x}\r\n")), "reply {i}");
        }
        let stats = qmp.stats();
        assert_eq!(stats.unknown_replies, 0);
        assert_eq!(stats.late_replies, 0);
    });
}

#[test]
fn accept_mode_qemu_connects_to_us() {
    within(LIMIT, "accept", || {
        let dir = TempDir::new("std-accept");
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let child = ChildGuard::spawn(
            command(qemu_binary())
                .args(QEMU_ARGS)
                .arg("-qmp")
                .arg(format!("unix:{},server=off", path.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("start QEMU");
        let result = Qmp::accept_unix(&listener, opts()).and_then(|mut qmp| {
            assert_eq!(
                qmp.greeting().unwrap().version.to_string(),
                tests::dotted(tests::qemu_version())
            );
            let status = qmp.call(&QueryStatus)?;
            assert_eq!(status.status, RunState::Prelaunch);
            qmp.execute("quit", None)
        });
        drop(child);
        result.unwrap();
    });
}

#[test]
fn accept_mode_times_out_when_nobody_connects() {
    within(LIMIT, "accept timeout", || {
        let dir = TempDir::new("std-accept-timeout");
        let path = dir.join("qmp.sock");
        let e = Qmp::accept_unix(&path, opts().connect_timeout(Duration::from_millis(200)))
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        assert!(!path.exists(), "the socket file was left behind");
    });
}

#[test]
fn tcp_connections_work_and_refuse_fds() {
    within(LIMIT, "tcp", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let child = ChildGuard::spawn(
            command(qemu_binary())
                .args(QEMU_ARGS)
                .arg("-qmp")
                .arg(format!("tcp:127.0.0.1:{port},server=off"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("start QEMU");
        let result = Qmp::accept_tcp(&listener, opts()).and_then(|mut qmp| {
            assert!(matches!(qmp.get_ref(), Socket::Tcp(_)));
            let file = std::fs::File::open("/dev/null")?;
            let e = qmp.getfd("nope", file.as_fd()).unwrap_err();
            assert!(
                matches!(e, Error::FdPassingUnsupported { transport: "TCP" }),
                "{e:?}"
            );
            assert!(e.to_string().contains("Unix socket"), "{e}");
            // Nothing was sent: the session goes on.
            qmp.call(&QueryStatus)
        });
        drop(child);
        assert_eq!(result.unwrap().status, RunState::Prelaunch);
    });
}

#[test]
fn tcp_connect_to_a_listening_qemu() {
    within(LIMIT, "tcp connect", || {
        // Pick a free port, then let QEMU listen on it; retry if another
        // process took it in between.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let server =
                QemuServer::start(&["-qmp", &format!("tcp:127.0.0.1:{port},server=on,wait=off")]);
            let mut qmp = None;
            for _ in 0..200 {
                match Qmp::connect_tcp(("127.0.0.1", port), opts()) {
                    Ok(q) => {
                        qmp = Some(q);
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            let Some(mut qmp) = qmp else {
                drop(server);
                continue;
            };
            assert_eq!(qmp.call(&QueryStatus).unwrap().status, RunState::Prelaunch);
            return;
        }
        panic!("could not reach QEMU over TCP");
    });
}

#[test]
fn from_stream_takes_any_connected_stream() {
    within(LIMIT, "from_stream", || {
        let server = QemuServer::start(&[]);
        connect(&server).disconnect();
        // A second connection, made by hand (the first proved it listens).
        let stream = UnixStream::connect(&server.socket).unwrap();
        let mut qmp = Qmp::from_stream(stream, opts()).unwrap();
        assert_eq!(qmp.call(&QueryStatus).unwrap().status, RunState::Prelaunch);
        let stream: UnixStream = qmp.into_inner();
        drop(stream);
    });
}

#[test]
fn add_fd_is_seen_in_query_fdsets() {
    within(LIMIT, "add-fd", || {
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        let dir = TempDir::new("std-addfd");
        let file = std::fs::File::create(dir.join("disk.img")).unwrap();
        let info = qmp
            .add_fd(
                file.as_fd(),
                &AddFd {
                    fdset_id: None,
                    opaque: Some("qmp-std test".into()),
                },
            )
            .unwrap();
        let sets = qmp.call(&QueryFdsets).unwrap();
        let set = sets
            .iter()
            .find(|s| s.fdset_id == info.fdset_id)
            .expect("the new fd set");
        let fd = set
            .fds
            .iter()
            .find(|f| f.fd == info.fd)
            .expect("the added fd");
        assert_eq!(fd.opaque.as_deref(), Some("qmp-std test"));
        // A second descriptor into the same set, untyped.
        let second = std::fs::File::open(dir.join("disk.img")).unwrap();
        let v = qmp
            .execute_with_fds(
                qmp_core::Request::new("add-fd").arguments(json!({"fdset-id": info.fdset_id})),
                &[second.as_fd()],
            )
            .unwrap();
        assert_eq!(v["fdset-id"], info.fdset_id);
        let sets = qmp.call(&QueryFdsets).unwrap();
        let set = sets.iter().find(|s| s.fdset_id == info.fdset_id).unwrap();
        assert_eq!(set.fds.len(), 2);
        qmp.call(&RemoveFd {
            fdset_id: info.fdset_id,
            fd: None,
        })
        .unwrap();
    });
}

#[test]
fn getfd_then_closefd() {
    within(LIMIT, "getfd", || {
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        let (a, _b) = UnixStream::pair().unwrap();
        qmp.getfd("test-fd", a.as_fd()).unwrap();
        // Our descriptor is still ours.
        drop(a);
        qmp.closefd("test-fd").unwrap();
        // Closed, so a second close fails with QEMU's own error.
        let e = qmp.closefd("test-fd").unwrap_err();
        assert!(
            e.server_error()
                .expect("server error")
                .desc
                .contains("test-fd"),
            "{e}"
        );
    });
}

#[test]
fn sigkill_mid_call_interrupts_promptly_and_later_calls_fail_at_once() {
    within(LIMIT, "sigkill", || {
        let mut server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        qmp.call(&QueryStatus).unwrap();
        let pid = rustix::process::Pid::from_raw(server.child.id() as i32).unwrap();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        });
        // Waiting for an event that would only come much later: the kill
        // interrupts the wait long before its 50 s timeout.
        let e = qmp
            .with_timeout(Duration::from_secs(50))
            .wait_event("NEVER")
            .unwrap_err();
        killer.join().unwrap();
        assert!(
            matches!(e.close_reason(), Some(qmp_core::CloseReason::Eof)),
            "{e:?}"
        );
        assert!(e.to_string().contains("closed the connection"), "{e}");
        // Every later call fails at once with the same cause.
        for _ in 0..3 {
            let e = qmp.execute("query-status", None).unwrap_err();
            assert!(
                matches!(&e, Error::Closed(c) if c.reason() == Some(&qmp_core::CloseReason::Eof)),
                "{e:?}"
            );
        }
        assert!(qmp.is_closed());
        server.kill();
    });
}

#[test]
fn sigkill_before_a_command_gives_an_interrupted_command() {
    within(LIMIT, "sigkill command", || {
        let mut server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        server.kill();
        let _ = server.child.wait();
        // The client has not noticed yet: the command is sent (or its
        // write fails) and the end of the stream interrupts it.
        let e = qmp.execute("query-status", None).unwrap_err();
        assert!(matches!(e, Error::Interrupted(_)), "{e:?}");
        let e = qmp.execute("query-status", None).unwrap_err();
        assert!(matches!(e, Error::Closed(_)), "{e:?}");
        assert_eq!(
            e.close_reason(),
            qmp.close_cause().as_ref().and_then(|c| c.reason())
        );
    });
}

#[test]
fn a_silent_server_times_out_the_handshake() {
    within(LIMIT, "silent server", || {
        let dir = TempDir::new("std-silent");
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let holder = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // Accept and say nothing until the client gives up.
            let mut buf = [0u8; 64];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        });
        let e = Qmp::connect_unix(&path, opts().handshake_timeout(Duration::from_millis(300)))
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        assert!(e.to_string().contains("greeting"), "{e}");
        holder.join().unwrap();
    });
}

/// A scripted QMP server on one end of a socketpair: greets, accepts
/// negotiation, then answers each command with `{"command": name}`. A
/// command for which `held(name)` is true is answered late: only once the
/// next request has arrived, so the client has given up on it by then,
/// however slow the machine.
fn scripted_server(
    mut s: UnixStream,
    held: impl Fn(&str) -> bool + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let greeting = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "scripted"}, "capabilities": []}}"#;
        s.write_all(greeting.as_bytes()).unwrap();
        s.write_all(b"\r\n").unwrap();
        let mut pending = Vec::new();
        let mut late: Option<String> = None;
        let mut buf = [0u8; 4096];
        loop {
            let n = match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            let mut requests = Vec::new();
            while let Ok(Some(v)) = tests::take_json(&mut pending) {
                requests.push(v);
            }
            for req in requests {
                let name = req["execute"].as_str().unwrap_or_default().to_owned();
                let reply = json!({"return": {"command": name}, "id": req["id"]});
                let mut out = late.take().unwrap_or_default();
                if held(&name) {
                    late = Some(format!("{reply}\r\n"));
                } else {
                    out.push_str(&format!("{reply}\r\n"));
                }
                if s.write_all(out.as_bytes()).is_err() {
                    return;
                }
            }
        }
    })
}

#[test]
fn a_late_reply_is_dropped_and_the_next_call_gets_its_own() {
    within(LIMIT, "late reply", || {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let server = scripted_server(theirs, |name| name == "slow");
        let mut qmp = Qmp::from_stream(ours, opts()).unwrap();
        assert!(!qmp.oob_enabled());
        let e = qmp
            .with_timeout(Duration::from_millis(100))
            .execute("slow", None)
            .unwrap_err();
        assert!(
            matches!(&e, Error::Timeout { waiting_for, .. } if waiting_for.contains("slow")),
            "{e:?}"
        );
        let v = qmp.execute("fast", None).unwrap();
        assert_eq!(v, json!({"command": "fast"}));
        assert_eq!(qmp.stats().late_replies, 1);
        // The client's own default timeout also applies.
        qmp.set_timeout(Duration::from_millis(100));
        assert!(qmp.execute("slow", None).unwrap_err().is_timeout());
        qmp.set_timeout(Duration::from_secs(20));
        assert_eq!(
            qmp.execute("fast", None).unwrap(),
            json!({"command": "fast"})
        );
        assert_eq!(qmp.stats().late_replies, 2);
        qmp.disconnect();
        server.join().unwrap();
    });
}

#[test]
fn a_late_reply_from_qemu_is_dropped() {
    within(LIMIT, "late reply from QEMU", || {
        let server = QemuServer::start(&["-name", "late"]);
        let mut qmp = connect(&server);
        // A zero timeout: the request is written and the call gives up at
        // once; QEMU's reply comes later and must not reach the next call.
        let e = qmp
            .with_timeout(Duration::ZERO)
            .call(&QueryStatus)
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        assert_eq!(
            qmp.execute("query-name", None).unwrap(),
            json!({"name": "late"})
        );
        assert_eq!(qmp.call(&QueryStatus).unwrap().status, RunState::Prelaunch);
        assert_eq!(qmp.stats().late_replies, 1);
    });
}

#[test]
fn connecting_to_a_listener_with_a_full_backlog_times_out() {
    use rustix::net::{
        AddressFamily, SocketAddrUnix, SocketFlags, SocketType, bind, connect, listen, socket_with,
    };
    within(LIMIT, "full backlog", || {
        let dir = TempDir::new("std-backlog");
        let path = dir.join("qmp.sock");
        let addr = SocketAddrUnix::new(&path).unwrap();
        let listener = socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        bind(&listener, &addr).unwrap();
        listen(&listener, 0).unwrap();
        // Fill the backlog: nobody ever accepts.
        let mut held = Vec::new();
        loop {
            let fd = socket_with(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                None,
            )
            .unwrap();
            match connect(&fd, &addr) {
                Ok(()) => held.push(fd),
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => panic!("connect: {e}"),
            }
            assert!(held.len() < 1000, "the backlog never filled");
        }
        let e = Qmp::connect_unix(&path, opts().connect_timeout(Duration::from_millis(200)))
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        drop(held);
    });
}

#[test]
fn an_overflowing_event_queue_drops_the_oldest_and_counts_them() {
    within(LIMIT, "event lag", || {
        let server = QemuServer::start(&[]);
        let options = opts()
            .socket_wait(Duration::from_secs(10))
            .max_queued_events(64);
        let mut qmp = Qmp::connect_unix(&server.socket, options).expect("connect to QEMU");
        // 40 cont/stop pairs: 80 events into a queue of 64.
        for _ in 0..40 {
            qmp.execute("cont", None).unwrap();
            qmp.execute("stop", None).unwrap();
        }
        assert_eq!(qmp.events().take_lagged(), 16);
        assert_eq!(qmp.stats().events_lagged, 16);
        let events = qmp.drain_events();
        assert_eq!(events.len(), 64);
        // The newest survive, in order.
        assert_eq!(events.first().unwrap().name, "RESUME");
        assert_eq!(events.last().unwrap().name, "STOP");
        assert!(events.windows(2).all(|w| w[0].name != w[1].name));
    });
}

#[test]
fn a_polled_stream_is_bounded_by_poll() {
    within(LIMIT, "polled", || {
        let server = QemuServer::start(&[]);
        connect(&server).disconnect();
        let stream = UnixStream::connect(&server.socket).unwrap();
        let mut qmp = Qmp::from_stream(qmp_std::Polled::new(stream), opts()).unwrap();
        assert_eq!(qmp.call(&QueryStatus).unwrap().status, RunState::Prelaunch);
        let e = qmp
            .with_timeout(Duration::from_millis(100))
            .wait_event("NEVER")
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        qmp.execute("cont", None).unwrap();
        assert_eq!(qmp.drain_events().len(), 1);

        // A silent peer: the handshake still times out.
        let (ours, theirs) = UnixStream::pair().unwrap();
        let e = Qmp::from_stream(
            qmp_std::Polled::new(ours),
            opts().handshake_timeout(Duration::from_millis(200)),
        )
        .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        drop(theirs);
    });
}

#[test]
fn oob_can_be_declined() {
    within(LIMIT, "no oob", || {
        let server = QemuServer::start(&[]);
        let mut qmp = Qmp::connect_unix(
            &server.socket,
            opts()
                .socket_wait(Duration::from_secs(10))
                .enable_oob(false)
                .max_in_flight(1),
        )
        .unwrap();
        assert!(qmp.greeting().unwrap().offers(&Capability::Oob));
        assert!(!qmp.oob_enabled());
        assert!(qmp.can_pass_fds());
        let e = qmp.execute_oob("migrate-pause", None).unwrap_err();
        assert!(
            matches!(e, Error::Submit(qmp_core::SubmitError::OobNotNegotiated)),
            "{e:?}"
        );
        qmp.call(&QueryStatus).unwrap();
    });
}

#[test]
fn a_missing_socket_fails_at_once_or_after_socket_wait() {
    within(LIMIT, "missing socket", || {
        let dir = TempDir::new("std-missing");
        let path = dir.join("none.sock");
        let e = Qmp::connect_unix(&path, opts()).unwrap_err();
        assert!(
            matches!(&e, Error::Connect { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{e:?}"
        );
        assert!(e.to_string().contains("none.sock"), "{e}");
        let wait = Duration::from_millis(100);
        let e = Qmp::connect_unix(&path, opts().socket_wait(wait)).unwrap_err();
        assert!(
            matches!(&e, Error::Connect { source, waited, .. }
                if source.kind() == std::io::ErrorKind::NotFound && *waited >= wait),
            "{e:?}"
        );
    });
}
