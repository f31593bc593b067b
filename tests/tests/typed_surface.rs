//! The generated typed surface (`qmp-qapi`) against a real QEMU and a real
//! qemu-ga: argument-free queries, the block and net queries of a PC
//! machine, a block job, device hot-unplug, migration to a file, the guest
//! agent's file and exec commands, the live-schema check, and coverage.
//!
//! Every event a test meets is decoded as its generated type. Each QEMU is
//! a `QemuServer`, killed and reaped when dropped, also on a panic.
#![allow(clippy::std_instead_of_core)]

use std::collections::BTreeSet;
use std::time::Duration;

use qmp_core::introspect::{CheckError, SchemaIndex};
use qmp_core::{Command, Event};
use qmp_qapi::{CommandSpec, CommandVisitor, qga, qmp};
use qmp_std::{Agent, Error, Options, Qmp};
use serde_json::json;
use tests::{AgentServer, QemuServer, TempDir, within};

const LIMIT: Duration = Duration::from_secs(180);

fn connect(server: &QemuServer) -> Qmp {
    let opts = Options::new().timeout(Duration::from_secs(30));
    Qmp::connect_unix(&server.socket, opts).expect("connect to QEMU")
}

/// The commands the server offers, asked typed.
fn offered(qmp: &mut Qmp) -> BTreeSet<String> {
    let list = qmp.call(&qmp::QueryCommands).expect("query-commands");
    list.into_iter().map(|c| c.name).collect()
}

/// Decodes `event` as its generated type; panics naming it when that
/// fails or the event has no type.
#[track_caller]
fn decode_typed(event: &Event) {
    let spec = qmp::EVENTS
        .iter()
        .find(|e| e.name == event.name)
        .unwrap_or_else(|| panic!("event {} has no generated type", event.name));
    if let Err(e) = (spec.check)(event) {
        panic!("event {} does not decode typed: {e}", event.to_value());
    }
}

/// Takes every queued event, checking each decodes typed; returns them.
fn drain_typed(qmp: &mut Qmp) -> Vec<Event> {
    let events = qmp.drain_events();
    events.iter().for_each(decode_typed);
    events
}

/// Calls every argument-free `query-*` command the server offers, typed.
struct QueryAll<'a> {
    qmp: &'a mut Qmp,
    offered: BTreeSet<String>,
    typed: Vec<&'static str>,
    refused: Vec<String>,
    broken: Vec<String>,
}

impl CommandVisitor for QueryAll<'_> {
    fn visit<C: Command + Default + 'static>(&mut self, spec: &'static CommandSpec) {
        if !spec.name.starts_with("query-") || !self.offered.contains(spec.name) {
            return;
        }
        match self.qmp.call(&C::default()) {
            Ok(_) => self.typed.push(spec.name),
            // The server ran it and said it does not apply here (no such
            // device on this machine, a feature not built in): not ours.
            Err(Error::Server(e)) => self.refused.push(format!("{}: {e}", spec.name)),
            Err(e) => self.broken.push(format!("{}: {e}", spec.name)),
        }
    }
}

fn query_all(qmp: &mut Qmp) -> Vec<&'static str> {
    let offered = offered(qmp);
    let mut v = QueryAll {
        qmp,
        offered,
        typed: Vec::new(),
        refused: Vec::new(),
        broken: Vec::new(),
    };
    qmp::visit_commands_without_arguments(&mut v);
    println!("typed and decoded: {} queries", v.typed.len());
    for r in &v.refused {
        println!("refused by the server: {r}");
    }
    assert!(v.broken.is_empty(), "typed queries failed: {:#?}", v.broken);
    let typed = v.typed;
    drain_typed(v.qmp);
    typed
}

#[test]
fn argument_free_queries_decode_typed_on_machine_none() {
    within(LIMIT, "queries on -machine none", || {
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        let typed = query_all(&mut qmp);
        for must in [
            "query-status",
            "query-version",
            "query-commands",
            "query-qmp-schema",
        ] {
            assert!(typed.contains(&must), "{must} not among {typed:?}");
        }
        assert!(typed.len() >= 30, "only {} queries ran typed", typed.len());
    });
}

const PC: &[&str] = &[
    "-machine",
    "pc",
    "-blockdev",
    "driver=null-co,node-name=null0,size=1048576",
    "-device",
    "virtio-blk-pci,drive=null0,id=disk0",
    "-netdev",
    "user,id=net0",
    "-device",
    "virtio-net-pci,netdev=net0,id=nic0",
    "-device",
    "qemu-xhci,id=usb0",
];

#[test]
fn block_and_net_queries_decode_typed_on_a_pc_machine() {
    within(LIMIT, "queries on -machine pc", || {
        let server = QemuServer::start(PC);
        let mut qmp = connect(&server);
        let typed = query_all(&mut qmp);
        for must in [
            "query-block",
            "query-named-block-nodes",
            "query-blockstats",
            "query-pci",
        ] {
            assert!(typed.contains(&must), "{must} not among {typed:?}");
        }
        let nodes = qmp.call(&qmp::QueryNamedBlockNodes::default()).unwrap();
        assert!(
            nodes
                .iter()
                .any(|n| n.node_name.as_deref() == Some("null0")),
            "{nodes:?}"
        );
        let filter = qmp::QueryRxFilter {
            name: Some("nic0".into()),
        };
        let filters = qmp.call(&filter).expect("query-rx-filter nic0");
        assert_eq!(filters.len(), 1);
        let buses = qmp.call(&qmp::QueryPci).unwrap();
        let devices: Vec<_> = buses.iter().flat_map(|b| &b.devices).collect();
        assert!(devices.iter().any(|d| d.qdev_id == "nic0"), "{devices:?}");
        // Run control, typed, and its events decoded typed.
        qmp.call(&qmp::Cont).unwrap();
        qmp.wait_event(<qmp::Resume as qmp_core::EventData>::NAME)
            .unwrap();
        qmp.call(&qmp::Stop).unwrap();
        let stop = qmp.wait_event("STOP").unwrap();
        stop.decode::<qmp::StopEvent>().unwrap();
        drain_typed(&mut qmp);
    });
}

#[test]
fn a_block_job_runs_typed_end_to_end() {
    within(LIMIT, "block job", || {
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        for node in ["src0", "dst0"] {
            let opts: qmp::BlockdevOptions = serde_json::from_value(
                json!({"driver": "null-co", "node-name": node, "size": 4194304}),
            )
            .unwrap();
            qmp.call(&qmp::BlockdevAdd(opts)).unwrap();
        }
        let backup: qmp::BlockdevBackupCommand = serde_json::from_value(
            json!({"job-id": "job0", "device": "src0", "target": "dst0", "sync": "full"}),
        )
        .unwrap();
        assert_eq!(backup.sync, qmp::MirrorSyncMode::Full);
        qmp.call(&backup).unwrap();
        let done = qmp.wait_event("BLOCK_JOB_COMPLETED").unwrap();
        let done = done.decode::<qmp::BlockJobCompleted>().unwrap();
        assert_eq!(done.device, "job0");
        assert_eq!(done.type_, qmp::JobType::Backup);
        assert_eq!(done.error, None);
        assert_eq!(done.offset, done.len);
        let jobs = qmp.call(&qmp::QueryBlockJobs).unwrap();
        assert!(
            jobs.iter().all(|j| j.device != "job0"),
            "auto-dismissed: {jobs:?}"
        );
        let events = drain_typed(&mut qmp);
        assert!(
            events.iter().any(|e| e.name == "JOB_STATUS_CHANGE"),
            "{events:?}"
        );
    });
}

#[test]
fn a_usb_device_is_added_and_deleted_typed() {
    within(LIMIT, "device_add / device_del", || {
        let server = QemuServer::start(&["-machine", "pc", "-device", "qemu-xhci,id=usb0"]);
        let mut qmp = connect(&server);
        let add = qmp::DeviceAdd {
            driver: "usb-tablet".into(),
            bus: None,
            id: Some("tablet0".into()),
        };
        qmp.call(&add).unwrap();
        qmp.call(&qmp::DeviceDel {
            id: "tablet0".into(),
        })
        .unwrap();
        let deleted = qmp
            .wait_event_where(|e| {
                e.decode::<qmp::DeviceDeleted>()
                    .is_ok_and(|d| d.device.as_deref() == Some("tablet0"))
            })
            .unwrap();
        let deleted = deleted.decode::<qmp::DeviceDeleted>().unwrap();
        assert_eq!(deleted.path, "/machine/peripheral/tablet0");
        drain_typed(&mut qmp);
    });
}

#[test]
fn migration_to_a_file_reports_typed_events() {
    within(LIMIT, "migrate to a file", || {
        let server = QemuServer::start(&[]);
        let dir = TempDir::new("migrate");
        let mut qmp = connect(&server);
        let caps = qmp::MigrateSetCapabilities {
            capabilities: vec![qmp::MigrationCapabilityStatus {
                capability: qmp::MigrationCapability::Events,
                state: true,
            }],
        };
        qmp.call(&caps).unwrap();
        let target = dir.join("state.bin");
        let migrate = qmp::Migrate {
            uri: Some(format!("exec:cat > {}", target.display())),
            ..Default::default()
        };
        qmp.call(&migrate).unwrap();
        let done = qmp
            .wait_event_where(|e| {
                e.decode::<qmp::Migration>().is_ok_and(|m| {
                    matches!(
                        m.status,
                        qmp::MigrationStatus::Completed | qmp::MigrationStatus::Failed
                    )
                })
            })
            .unwrap();
        let status = done.decode::<qmp::Migration>().unwrap().status;
        assert_eq!(status, qmp::MigrationStatus::Completed);
        let info = qmp.call(&qmp::QueryMigrate).unwrap();
        assert_eq!(info.status, Some(qmp::MigrationStatus::Completed));
        // QEMU is done once `cat` has the stream; `cat` writes it to the
        // file on its own time: wait for that, within a hang guard.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&target).map_or(0, |m| m.len()) == 0 {
            assert!(std::time::Instant::now() < deadline, "cat wrote nothing");
            std::thread::sleep(Duration::from_millis(5));
        }
        drain_typed(&mut qmp);
    });
}

#[test]
fn the_live_schema_check_names_the_problem_and_the_nearest_name() {
    within(LIMIT, "live schema check", || {
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        let schema = qmp.execute("query-qmp-schema", None).unwrap();
        let index = SchemaIndex::from_value(&schema).expect("QEMU's schema indexes");
        // The typed schema decodes too.
        let typed = qmp.call(&qmp::QueryQmpSchema).unwrap();
        assert_eq!(typed.len(), schema.as_array().unwrap().len());

        let err = index.check("qeury-status", None).unwrap_err();
        assert!(
            matches!(&err, CheckError::UnknownCommand { suggestion: Some(s), .. } if s == "query-status"),
            "{err}"
        );
        let null = json!({"driver": "null-co", "node-name": "n0", "sise": 1});
        let err = index.check("blockdev-add", Some(&null)).unwrap_err();
        assert!(
            matches!(&err, CheckError::UnknownArgument { path, suggestion: Some(s), .. }
                if path == "sise" && s == "size"),
            "{err}"
        );
        let file = json!({"driver": "file", "node-name": "f0"});
        let err = index.check("blockdev-add", Some(&file)).unwrap_err();
        assert!(
            matches!(&err, CheckError::MissingArgument { path, .. } if path == "filename"),
            "{err}"
        );
        // What passes the check, the server accepts.
        let good = json!({"driver": "null-co", "node-name": "n0", "size": 1});
        index.check("blockdev-add", Some(&good)).unwrap();
        qmp.execute("blockdev-add", good).unwrap();
        let help = index.help("blockdev-add").unwrap().to_string();
        assert!(help.contains("when driver = null-co:"), "{help}");
        // Every command the server offers is in the index, and typed.
        let names: Vec<&str> = index.command_names().collect();
        assert_eq!(names.len(), offered(&mut qmp).len());
    });
}

/// The same check built into the client (`Options::check_schema`): a bad
/// request fails before it is sent, naming the problem and the nearest
/// name, the schema is fetched once, and good requests run as before.
#[test]
fn the_client_checks_requests_against_the_live_schema_before_sending() {
    within(LIMIT, "client-side schema check", || {
        let server = QemuServer::start(&[]);
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let log = sent.clone();
        let opts = Options::new()
            .timeout(Duration::from_secs(30))
            .check_schema(true)
            .on_traffic(move |_, t| {
                if t.direction == qmp_std::Direction::Sent {
                    log.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&t.bytes).into_owned());
                }
            });
        let mut qmp = Qmp::connect_unix(&server.socket, opts).expect("connect to QEMU");
        let sent_with = |word: &str| {
            sent.lock()
                .unwrap()
                .iter()
                .filter(|m| m.contains(word))
                .count()
        };

        let err = qmp.execute("qeury-status", None).unwrap_err();
        assert!(
            matches!(&err, Error::Schema(CheckError::UnknownCommand { suggestion: Some(s), .. }) if s == "query-status"),
            "{err}"
        );
        assert!(err.to_string().contains("query-status"), "{err}");
        let sise = json!({"driver": "null-co", "node-name": "n0", "sise": 1});
        let err = qmp.execute("blockdev-add", sise).unwrap_err();
        assert!(
            matches!(&err, Error::Schema(CheckError::UnknownArgument { path, suggestion: Some(s), .. })
                if path == "sise" && s == "size"),
            "{err}"
        );
        let raw =
            json!({"execute": "blockdev-add", "arguments": {"driver": "file", "node-name": "f0"}});
        let err = qmp.execute_raw(raw).unwrap_err();
        assert!(
            matches!(&err, Error::Schema(CheckError::MissingArgument { path, .. }) if path == "filename"),
            "{err}"
        );
        assert_eq!(
            sent_with("qeury-status") + sent_with("blockdev-add"),
            0,
            "nothing bad was sent"
        );

        // Good requests, untyped and typed, run as before.
        qmp.execute(
            "blockdev-add",
            json!({"driver": "null-co", "node-name": "n0", "size": 1}),
        )
        .unwrap();
        qmp.call(&qmp::QueryStatus).unwrap();
        assert_eq!(sent_with("blockdev-add"), 1);
        assert_eq!(
            sent_with("query-qmp-schema"),
            1,
            "the schema is fetched once"
        );
        qmp.disconnect();
    });
}

/// Prints typed / total commands and events per schema version from the
/// generated tables, and checks the live server's lists against them.
#[test]
fn coverage_of_the_live_server_is_complete() {
    within(LIMIT, "coverage", || {
        for (label, cmds, events) in [
            ("QMP", qmp::COMMANDS, qmp::EVENTS.len()),
            ("guest agent", qga::COMMANDS, qga::EVENTS.len()),
        ] {
            for (v, pick) in [("7.2", 0), ("10.0", 1)] {
                let have =
                    |a: &qmp_qapi::Availability| if pick == 0 { a.qemu_7_2 } else { a.qemu_10_0 };
                let c = cmds.iter().filter(|c| have(&c.availability)).count();
                let e = if label == "QMP" {
                    qmp::EVENTS.iter().filter(|e| have(&e.availability)).count()
                } else {
                    events
                };
                println!("{label} QEMU {v} schema: {c}/{c} commands typed, {e}/{e} events typed");
            }
        }
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        let schema = qmp.execute("query-qmp-schema", None).unwrap();
        let index = SchemaIndex::from_value(&schema).unwrap();
        let typed_cmds: BTreeSet<&str> = qmp::COMMANDS.iter().map(|c| c.name).collect();
        let typed_events: BTreeSet<&str> = qmp::EVENTS.iter().map(|e| e.name).collect();
        let live_cmds: Vec<&str> = index.command_names().collect();
        let live_events: Vec<&str> = index.event_names().collect();
        let untyped_cmds: Vec<_> = live_cmds
            .iter()
            .filter(|c| !typed_cmds.contains(*c))
            .collect();
        let untyped_events: Vec<_> = live_events
            .iter()
            .filter(|e| !typed_events.contains(*e))
            .collect();
        println!(
            "live QMP server: {}/{} commands typed, {}/{} events typed",
            live_cmds.len() - untyped_cmds.len(),
            live_cmds.len(),
            live_events.len() - untyped_events.len(),
            live_events.len()
        );
        assert!(
            untyped_cmds.is_empty(),
            "untyped commands: {untyped_cmds:?}"
        );
        assert!(
            untyped_events.is_empty(),
            "untyped events: {untyped_events:?}"
        );

        let agent_server = AgentServer::start();
        let mut agent = Agent::connect_unix(&agent_server.socket, Options::new()).unwrap();
        let info = agent.call(&qga::GuestInfo).unwrap();
        let typed: BTreeSet<&str> = qga::COMMANDS.iter().map(|c| c.name).collect();
        let live: Vec<&str> = info
            .supported_commands
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let untyped: Vec<_> = live.iter().filter(|c| !typed.contains(*c)).collect();
        println!(
            "live guest agent: {}/{} commands typed",
            live.len() - untyped.len(),
            live.len()
        );
        assert!(untyped.is_empty(), "untyped agent commands: {untyped:?}");
    });
}

#[test]
fn guest_agent_file_and_exec_calls_are_typed() {
    within(LIMIT, "guest agent", || {
        let server = AgentServer::start();
        let dir = TempDir::new("qga-typed");
        let opts = Options::new().timeout(Duration::from_secs(30));
        let mut agent = Agent::connect_unix(&server.socket, opts).unwrap();
        let info = agent.call(&qga::GuestInfo).unwrap();
        assert!(
            info.supported_commands
                .iter()
                .any(|c| c.name == "guest-exec" && c.enabled)
        );

        let path = dir.join("f.txt").display().to_string();
        let open = qga::GuestFileOpen {
            path: path.clone(),
            mode: Some("w+".into()),
        };
        let handle = agent.call(&open).unwrap();
        let write = qga::GuestFileWriteCommand {
            handle,
            buf_b64: tests::base64_encode(b"typed hello"),
            count: None,
        };
        assert_eq!(agent.call(&write).unwrap().count, 11);
        agent.call(&qga::GuestFileFlush { handle }).unwrap();
        let seek = qga::GuestFileSeekCommand {
            handle,
            offset: 0,
            whence: qga::GuestFileWhence::Name(qga::QGASeek::Set),
        };
        assert_eq!(agent.call(&seek).unwrap().position, 0);
        let read = agent
            .call(&qga::GuestFileReadCommand {
                handle,
                count: Some(64),
            })
            .unwrap();
        assert_eq!(tests::base64_decode(&read.buf_b64), b"typed hello");
        assert!(read.eof);
        agent.call(&qga::GuestFileClose { handle }).unwrap();

        let exec = qga::GuestExecCommand {
            path: "/bin/sh".into(),
            arg: Some(vec!["-c".into(), "printf typed; exit 3".into()]),
            env: None,
            input_data: None,
            capture_output: Some(qga::GuestExecCaptureOutput::Flag(true)),
        };
        let pid = agent.call(&exec).unwrap().pid;
        let status = loop {
            let s = agent.call(&qga::GuestExecStatusCommand { pid }).unwrap();
            if s.exited {
                break s;
            }
            // The agent has no event for process exit: poll, under the
            // test's hang guard.
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.exitcode, Some(3));
        let out = tests::base64_decode(status.out_data.as_deref().unwrap());
        assert_eq!(out, b"typed");
        assert!(server_alive(&server));
    });
}

fn server_alive(server: &AgentServer) -> bool {
    std::path::Path::new(&format!("/proc/{}", server.child.id())).exists()
}
