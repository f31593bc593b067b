//! The blocking guest agent client against a real `qemu-ga -m unix-listen`.
#![allow(clippy::std_instead_of_core)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use qmp_qapi::qga::{
    GuestExecCommand as GuestExec, GuestExecStatusCommand as GuestExecStatus, GuestFileClose,
    GuestFileOpen, GuestFileReadCommand as GuestFileRead, GuestFileWriteCommand as GuestFileWrite,
    GuestGetHostName, GuestPing,
};
use qmp_std::{Agent, Error, Options};
use serde_json::json;
use tests::{AgentServer, TempDir, base64_decode, base64_encode, within};

const LIMIT: Duration = Duration::from_secs(60);

fn opts() -> Options {
    Options::new().timeout(Duration::from_secs(20))
}

fn connect(server: &AgentServer) -> Agent {
    Agent::connect_unix(&server.socket, opts()).expect("connect to qemu-ga")
}

/// qemu-ga dies of SIGPIPE if a client closes before reading a reply: it
/// must still be running after each test.
#[track_caller]
fn assert_alive(server: &mut AgentServer) {
    assert!(server.child.try_wait().unwrap().is_none(), "qemu-ga exited");
}

#[test]
fn ping_info_and_host_name() {
    within(LIMIT, "ping", || {
        let mut server = AgentServer::start();
        let mut agent = connect(&server);
        assert_eq!(agent.execute("guest-ping", None).unwrap(), json!({}));
        agent.call(&GuestPing).unwrap();
        // Untyped: qemu-ga spells the member `supported_commands`, which
        // the typed `GuestInfo` does not accept yet.
        let info = agent.execute("guest-info", None).unwrap();
        assert_eq!(
            info["version"],
            tests::dotted(tests::qemu_ga_version()),
            "{info}"
        );
        let commands = info["supported_commands"]
            .as_array()
            .expect("supported_commands");
        assert!(
            commands
                .iter()
                .any(|c| c["name"] == "guest-exec" && c["enabled"] == true),
            "{info}"
        );
        let host = agent.call(&GuestGetHostName).unwrap();
        let expected = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(host.host_name, expected.trim());
        // A typed error from the agent.
        let e = agent.execute("guest-no-such-command", None).unwrap_err();
        let err = e.server_error().expect("server error");
        assert_eq!(err.class, qmp_core::ErrorClass::CommandNotFound);
        agent.disconnect();
        assert_alive(&mut server);
    });
}

#[test]
fn guest_exec_and_its_output() {
    within(LIMIT, "guest-exec", || {
        let mut server = AgentServer::start();
        let mut agent = connect(&server);
        let started = agent
            .call(&GuestExec {
                path: "/bin/echo".into(),
                arg: Some(vec!["hello".into(), "agent".into()]),
                env: None,
                input_data: None,
                capture_output: Some(qmp_qapi::qga::GuestExecCaptureOutput::Flag(true)),
            })
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            let s = agent.call(&GuestExecStatus { pid: started.pid }).unwrap();
            if s.exited {
                break s;
            }
            assert!(Instant::now() < deadline, "/bin/echo did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.exitcode, Some(0));
        let out = base64_decode(status.out_data.as_deref().expect("captured output"));
        assert_eq!(String::from_utf8(out).unwrap(), "hello agent\n");
        agent.disconnect();
        assert_alive(&mut server);
    });
}

#[test]
fn a_file_written_and_read_back() {
    within(LIMIT, "guest-file", || {
        let mut server = AgentServer::start();
        let mut agent = connect(&server);
        let dir = TempDir::new("std-agent-file");
        let path = dir.join("note.txt").display().to_string();
        let text = "written through the guest agent\nline two\n";

        let handle = agent
            .call(&GuestFileOpen {
                path: path.clone(),
                mode: Some("w".into()),
            })
            .unwrap();
        let wrote = agent
            .call(&GuestFileWrite {
                handle,
                buf_b64: base64_encode(text.as_bytes()),
                count: None,
            })
            .unwrap();
        assert_eq!(wrote.count, text.len() as i64);
        agent.call(&GuestFileClose { handle }).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

        let handle = agent
            .call(&GuestFileOpen {
                path,
                mode: Some("r".into()),
            })
            .unwrap();
        let read = agent
            .call(&GuestFileRead {
                handle,
                count: Some(4096),
            })
            .unwrap();
        assert_eq!(read.count, text.len() as i64);
        assert_eq!(base64_decode(&read.buf_b64), text.as_bytes());
        agent.call(&GuestFileClose { handle }).unwrap();
        agent.disconnect();
        assert_alive(&mut server);
    });
}

#[test]
fn a_half_request_from_an_earlier_client_does_not_break_the_next() {
    within(LIMIT, "half request", || {
        let mut server = AgentServer::start();
        {
            let mut s = UnixStream::connect(&server.socket).unwrap();
            s.write_all(br#"{"execute": "guest-info", "argu"#).unwrap();
        }
        let mut agent = connect(&server);
        agent.call(&GuestPing).unwrap();
        let info = agent.execute("guest-info", None).unwrap();
        assert_eq!(
            info["version"],
            tests::dotted(tests::qemu_ga_version()),
            "{info}"
        );
        agent.disconnect();
        // And once more, after a clean client.
        let mut agent = connect(&server);
        agent.call(&GuestPing).unwrap();
        agent.disconnect();
        assert_alive(&mut server);
    });
}

#[test]
fn a_late_reply_is_dropped_after_a_resync() {
    within(LIMIT, "late reply", || {
        let mut server = AgentServer::start();
        let mut agent = connect(&server);
        // A zero timeout: the request is written, the call gives up at
        // once, and the agent's reply arrives later.
        let e = agent
            .with_timeout(Duration::ZERO)
            .call(&GuestGetHostName)
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        // The next calls get their own replies, not the host name.
        assert_eq!(agent.execute("guest-ping", None).unwrap(), json!({}));
        let host = agent.call(&GuestGetHostName).unwrap();
        assert!(!host.host_name.is_empty());
        assert_eq!(agent.execute("guest-ping", None).unwrap(), json!({}));
        agent.disconnect();
        assert_alive(&mut server);
    });
}

#[test]
fn waiting_for_a_socket_that_never_appears_times_out() {
    within(LIMIT, "no socket", || {
        let dir = TempDir::new("std-agent-missing");
        let path = dir.join("qga.sock");
        let wait = Duration::from_millis(200);
        let e = Agent::connect_unix(&path, opts().connect_timeout(wait)).unwrap_err();
        // The agent's socket is waited for (the connect timeout by default).
        assert!(
            matches!(&e, Error::Connect { waited, .. } if *waited >= wait),
            "{e:?}"
        );
        assert!(e.to_string().contains("qga.sock"), "{e}");
    });
}

/// A minimal agent: answers the resync and then `guest-ping`s.
fn scripted_agent(listener: UnixListener) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut pending = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // 0xFF resets the parser, as in qemu-ga.
            for b in &buf[..n] {
                if *b == 0xFF {
                    pending.clear();
                } else {
                    pending.push(*b);
                }
            }
            let mut requests = Vec::new();
            while let Ok(Some(v)) = tests::take_json(&mut pending) {
                requests.push(v);
            }
            for req in requests {
                let reply = match req["execute"].as_str() {
                    Some("guest-sync-delimited") => {
                        format!("\u{ff}{}\n", json!({"return": req["arguments"]["id"]}))
                    }
                    _ => format!("{}\n", json!({"return": {}, "id": req["id"]})),
                };
                // The delimiter is a raw 0xFF byte, not UTF-8.
                let bytes: Vec<u8> = reply
                    .chars()
                    .flat_map(|c| {
                        if c == '\u{ff}' {
                            vec![0xFF]
                        } else {
                            c.to_string().into_bytes()
                        }
                    })
                    .collect();
                if s.write_all(&bytes).is_err() {
                    return;
                }
            }
        }
    })
}

#[test]
fn connect_waits_for_the_socket_to_appear() {
    within(LIMIT, "socket appears", || {
        let dir = TempDir::new("std-agent-late");
        let path = dir.join("qga.sock");
        let bind_at = path.clone();
        let server = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            scripted_agent(UnixListener::bind(&bind_at).unwrap())
                .join()
                .unwrap();
        });
        let mut agent =
            Agent::connect_unix(&path, opts().connect_timeout(Duration::from_secs(20))).unwrap();
        agent.call(&GuestPing).unwrap();
        assert!(agent.stats().messages_received >= 2);
        agent.disconnect();
        server.join().unwrap();
    });
}

#[test]
fn a_silent_agent_times_out_the_resync() {
    within(LIMIT, "silent agent", || {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let holder = std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while matches!(theirs.read(&mut buf), Ok(n) if n > 0) {}
        });
        let e = Agent::from_stream(ours, opts().handshake_timeout(Duration::from_millis(300)))
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
        holder.join().unwrap();
    });
}

#[test]
fn disconnecting_with_a_reply_still_due_does_not_kill_the_agent() {
    within(LIMIT, "disconnect with a reply due", || {
        let mut server = AgentServer::start();
        for _ in 0..3 {
            let mut agent = connect(&server);
            let e = agent
                .with_timeout(Duration::ZERO)
                .call(&GuestGetHostName)
                .unwrap_err();
            assert!(e.is_timeout(), "{e:?}");
            // The reply is still on its way: disconnect reads it first.
            agent.disconnect();
        }
        let mut agent = connect(&server);
        agent.call(&GuestPing).unwrap();
        agent.disconnect();
        assert_alive(&mut server);
    });
}
