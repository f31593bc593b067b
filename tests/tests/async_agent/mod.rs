//! The async adapters' `Agent` against a real `qemu-ga -m unix-listen`,
//! one source for every runtime: [`suite!`] makes one `#[test]` of each
//! case for a runtime (`smol_agent.rs`, `tokio_agent.rs`).
//!
//! qemu-ga 7.2 dies of SIGPIPE when a client closes before reading a
//! reply, so every test reads what it causes and closes with
//! `disconnect`, which waits for the replies still due.

#![allow(clippy::std_instead_of_core)]

use std::io::Write;
use std::time::Duration;

use futures_lite::future;
use qmp_async::{Agent, CloseCause, Error, Options, Runtime};
use qmp_core::CloseReason;
use qmp_qapi::qga::{
    GuestExecCommand as GuestExec, GuestExecStatusCommand as GuestExecStatus, GuestFileClose,
    GuestFileOpen, GuestFileReadCommand as GuestFileRead, GuestFileWriteCommand as GuestFileWrite,
    GuestGetHostName, GuestPing,
};
use serde_json::{Value, json};
use tests::exec::{Exec, Task};
use tests::{AgentServer, ChildGuard, TempDir, base64_decode, base64_encode};

fn options() -> Options {
    Options::default()
        .socket_wait(Duration::from_secs(20))
        .handshake_timeout(Duration::from_secs(60))
        .timeout(Duration::from_secs(60))
}

/// `guest-info`, untyped: its schema names `supported_commands` while
/// some agents send `supported-commands`.
async fn guest_info<R: Runtime>(agent: &Agent<R>) -> Result<Value, Error> {
    agent.execute("guest-info", Value::Null).await
}

/// Closes the connection the way qemu-ga needs, and checks the agent lives.
async fn close<R: Runtime>(agent: Agent<R>, driver: Task<CloseCause>) {
    agent.disconnect();
    let cause = driver.await;
    assert!(cause.is_local(), "{cause:?}");
}

fn assert_alive(server: &mut AgentServer) {
    assert!(server.child.try_wait().unwrap().is_none(), "qemu-ga died");
}

pub(crate) fn ping_info_and_host_name<E: Exec>() {
    let mut server = AgentServer::start();
    let socket = server.socket.clone();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    E::run("agent basics", async move {
        let (agent, driver) = Agent::<E::R>::connect_unix(&socket, options())
            .await
            .unwrap();
        let driver = E::spawn(driver);
        agent.call(&GuestPing).await.unwrap();
        assert_eq!(
            agent.execute("guest-ping", Value::Null).await.unwrap(),
            json!({})
        );
        let info = guest_info(&agent).await.unwrap();
        assert_eq!(
            info["version"],
            tests::dotted(tests::qemu_ga_version()),
            "{info}"
        );
        let commands = info["supported_commands"]
            .as_array()
            .expect("supported_commands");
        assert!(commands.iter().any(|c| c["name"] == "guest-exec"), "{info}");
        let name = agent.call(&GuestGetHostName).await.unwrap();
        assert_eq!(name.host_name, hostname.trim());
        let err = agent
            .execute("guest-no-such-command", Value::Null)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Server(_)), "{err:?}");
        agent.call(&GuestPing).await.unwrap();
        close(agent, driver).await;
    });
    assert_alive(&mut server);
}

pub(crate) fn raw_messages_and_runstates<E: Exec>() {
    use futures_lite::StreamExt;
    use qmp_core::SessionState::{Closed, Running, Syncing};
    let server = AgentServer::start();
    let socket = server.socket.clone();
    E::run("agent raw", async move {
        let (agent, driver) = Agent::<E::R>::connect_unix(&socket, options())
            .await
            .unwrap();
        let mut states = agent.runstates();
        let driver = E::spawn(driver);
        assert_eq!(states.next().await, Some(Syncing));
        assert_eq!(states.next().await, Some(Running));
        let reply = agent
            .execute_raw(json!({"execute": "guest-ping", "id": "mine"}))
            .await
            .unwrap();
        assert_eq!(reply, json!({"return": {}, "id": "mine"}));
        let error = agent
            .execute_raw(json!({"execute": "no-such-command", "id": "e"}))
            .await
            .unwrap();
        assert_eq!(error["id"], "e");
        assert_eq!(error["error"]["class"], "CommandNotFound");
        close(agent, driver).await;
        let mut rest = Vec::new();
        while let Some(state) = states.next().await {
            rest.push(state);
        }
        assert_eq!(rest.last(), Some(&Closed));
    });
}

pub(crate) fn exec_echo_and_read_its_output<E: Exec>() {
    let mut server = AgentServer::start();
    let socket = server.socket.clone();
    E::run("guest-exec", async move {
        let (agent, driver) = Agent::<E::R>::connect_unix(&socket, options())
            .await
            .unwrap();
        let driver = E::spawn(driver);
        let started = agent
            .call(&GuestExec {
                path: "/bin/echo".into(),
                arg: Some(vec!["hello".into(), "qmp".into()]),
                env: None,
                input_data: None,
                capture_output: Some(qmp_qapi::qga::GuestExecCaptureOutput::Flag(true)),
            })
            .await
            .unwrap();
        let status = loop {
            let s = agent
                .call(&GuestExecStatus { pid: started.pid })
                .await
                .unwrap();
            if s.exited {
                break s;
            }
            E::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(status.exitcode, Some(0));
        let out = base64_decode(status.out_data.as_deref().unwrap_or(""));
        assert_eq!(String::from_utf8(out).unwrap(), "hello qmp\n");
        close(agent, driver).await;
    });
    assert_alive(&mut server);
}

pub(crate) fn write_a_file_and_read_it_back<E: Exec>() {
    let mut server = AgentServer::start();
    let socket = server.socket.clone();
    let dir = TempDir::new("async-agent-file");
    let path = dir.join("note.txt");
    let text = "written through the guest agent\nsecond line\n";
    let file = path.display().to_string();
    E::run("guest-file-*", async move {
        let (agent, driver) = Agent::<E::R>::connect_unix(&socket, options())
            .await
            .unwrap();
        let driver = E::spawn(driver);
        let handle = agent
            .call(&GuestFileOpen {
                path: file.clone(),
                mode: Some("w".into()),
            })
            .await
            .unwrap();
        let wrote = agent
            .call(&GuestFileWrite {
                handle,
                buf_b64: base64_encode(text.as_bytes()),
                count: None,
            })
            .await
            .unwrap();
        assert_eq!(wrote.count as usize, text.len());
        agent.call(&GuestFileClose { handle }).await.unwrap();

        let handle = agent
            .call(&GuestFileOpen {
                path: file.clone(),
                mode: Some("r".into()),
            })
            .await
            .unwrap();
        let mut back = Vec::new();
        loop {
            let r = agent
                .call(&GuestFileRead {
                    handle,
                    count: Some(16),
                })
                .await
                .unwrap();
            back.extend(base64_decode(&r.buf_b64));
            if r.eof || r.count == 0 {
                break;
            }
        }
        agent.call(&GuestFileClose { handle }).await.unwrap();
        assert_eq!(String::from_utf8(back).unwrap(), text);
        close(agent, driver).await;
    });
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert_alive(&mut server);
}

pub(crate) fn a_client_that_left_half_a_request_does_not_break_the_next<E: Exec>() {
    let mut server = AgentServer::start();
    {
        let mut rude = std::os::unix::net::UnixStream::connect(&server.socket).unwrap();
        rude.write_all(br#"{"execute": "guest-ping", "argu"#)
            .unwrap();
        // Closed without a reply due: safe for qemu-ga.
    }
    let socket = server.socket.clone();
    E::run("after a half request", async move {
        let (agent, driver) = Agent::<E::R>::connect_unix(&socket, options())
            .await
            .unwrap();
        let driver = E::spawn(driver);
        agent.call(&GuestPing).await.unwrap();
        assert!(!guest_info(&agent).await.unwrap()["version"].is_null());
        close(agent, driver).await;
    });
    assert_alive(&mut server);
    // And a client after that one, too.
    let socket = server.socket.clone();
    E::run("a third client", async move {
        let (agent, driver) = Agent::<E::R>::connect_unix(&socket, options())
            .await
            .unwrap();
        let driver = E::spawn(driver);
        agent.call(&GuestPing).await.unwrap();
        close(agent, driver).await;
    });
    assert_alive(&mut server);
}

pub(crate) fn concurrent_calls_timeouts_and_dropped_calls<E: Exec>() {
    let mut server = AgentServer::start();
    let socket = server.socket.clone();
    E::run("concurrency", async move {
        let (agent, driver) = Agent::<E::R>::connect_unix(&socket, options())
            .await
            .unwrap();
        let driver = E::spawn(driver);
        let tasks: Vec<Task<()>> = (0..20)
            .map(|i| {
                let agent = agent.clone();
                E::spawn(async move {
                    for _ in 0..10 {
                        if i % 2 == 0 {
                            agent.call(&GuestPing).await.unwrap();
                        } else {
                            assert!(
                                !agent
                                    .call(&GuestGetHostName)
                                    .await
                                    .unwrap()
                                    .host_name
                                    .is_empty()
                            );
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        // A call that cannot be answered in time: the engine resyncs
        // before the next one and the late reply is discarded.
        let err = agent
            .with_timeout(Duration::from_micros(1))
            .execute("guest-info", Value::Null)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert!(!guest_info(&agent).await.unwrap()["version"].is_null());
        // Calls dropped half-way.
        for i in 0..100u64 {
            let call = agent.call(&GuestGetHostName);
            let give_up = async {
                E::sleep(Duration::from_micros(i * 13 % 400)).await;
                None
            };
            let _ = future::or(async { Some(call.await) }, give_up).await;
        }
        agent.call(&GuestPing).await.unwrap();
        agent.resync();
        agent.call(&GuestPing).await.unwrap();
        close(agent, driver).await;
    });
    assert_alive(&mut server);
}

pub(crate) fn disconnect_with_calls_pending_leaves_the_agent_alive<E: Exec>() {
    let mut server = AgentServer::start();
    let socket = server.socket.clone();
    E::run("disconnect", async move {
        let (agent, driver) = Agent::<E::R>::connect_unix(&socket, options())
            .await
            .unwrap();
        let driver = E::spawn(driver);
        let calls: Vec<_> = (0..30)
            .map(|_| {
                let agent = agent.clone();
                E::spawn(async move { guest_info(&agent).await.map(|_| ()) })
            })
            .collect();
        agent.call(&GuestPing).await.unwrap();
        agent.disconnect();
        for c in calls {
            match c.await {
                // A task the executor had not run yet makes its call after
                // the disconnect: that call fails as closed.
                Ok(())
                | Err(Error::Interrupted(CloseCause::Session(CloseReason::Local)))
                | Err(Error::Closed(CloseCause::Session(CloseReason::Local))) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        let err = agent.call(&GuestPing).await.unwrap_err();
        assert!(matches!(err, Error::Closed(_)), "{err:?}");
        assert!(driver.await.is_local());
    });
    assert_alive(&mut server);
    let socket = server.socket.clone();
    E::run("next client", async move {
        let (agent, driver) = Agent::<E::R>::connect_unix(&socket, options())
            .await
            .unwrap();
        let driver = E::spawn(driver);
        agent.call(&GuestPing).await.unwrap();
        // Dropping every handle closes the same careful way.
        drop(agent);
        assert!(driver.await.is_local());
    });
    assert_alive(&mut server);
}

pub(crate) fn waits_for_the_socket_and_fails_clearly_without_an_agent<E: Exec>() {
    let dir = TempDir::new("async-agent-wait");
    let socket = dir.join("qga.sock");
    let path = socket.clone();
    let client = std::thread::spawn(move || {
        E::run("late agent", async move {
            let (agent, driver) = Agent::<E::R>::connect_unix(&path, options()).await.unwrap();
            let driver = E::spawn(driver);
            agent.call(&GuestPing).await.unwrap();
            close(agent, driver).await;
        })
    });
    // Let the client start waiting first (it gets there either way). The
    // agent is started from this thread, which outlives it.
    std::thread::sleep(Duration::from_millis(300));
    let mut late =
        ChildGuard::spawn(&mut tests::qemu_ga_command(dir.path(), &socket)).expect("start qemu-ga");
    client
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    assert!(late.try_wait().unwrap().is_none(), "qemu-ga died");

    let missing = dir.join("missing.sock");
    let err = E::run("no agent", async move {
        let opts = Options::default().socket_wait(Duration::from_millis(200));
        Agent::<E::R>::connect_unix(&missing, opts)
            .await
            .unwrap_err()
    });
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.sock"), "{err}");

    // A socket whose other end never answers the resync.
    let mute_path = dir.join("mute.sock");
    let mute = std::os::unix::net::UnixListener::bind(&mute_path).unwrap();
    let err = E::run("mute agent", async move {
        let opts = Options::default().handshake_timeout(Duration::from_millis(200));
        Agent::<E::R>::connect_unix(&mute_path, opts)
            .await
            .unwrap_err()
    });
    assert!(
        matches!(&err, Error::Timeout { waiting_for, .. } if waiting_for.contains("guest-sync")),
        "{err:?}"
    );
    drop(mute);
}

/// One `#[test]` per case above, on the runtime `$exec` (a [`Exec`]).
macro_rules! suite {
    ($exec:ty) => {
        $crate::async_agent::suite!(@ $exec;
            ping_info_and_host_name,
            exec_echo_and_read_its_output,
            write_a_file_and_read_it_back,
            a_client_that_left_half_a_request_does_not_break_the_next,
            concurrent_calls_timeouts_and_dropped_calls,
            disconnect_with_calls_pending_leaves_the_agent_alive,
            waits_for_the_socket_and_fails_clearly_without_an_agent,
            raw_messages_and_runstates
        );
    };
    (@ $exec:ty; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                $crate::async_agent::$case::<$exec>();
            }
        )*
    };
}
pub(crate) use suite;
