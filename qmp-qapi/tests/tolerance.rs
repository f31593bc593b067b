//! What keeps the typed surface from breaking on a QEMU it was not
//! generated from: open enums, open union tags, ignored members, and types
//! that changed shape between versions.

use qmp_core::{Command, Event, EventData};
use qmp_qapi::{qga, qmp};
use serde_json::json;

#[test]
fn enums_keep_values_they_do_not_know() {
    let s: qmp::RunState = serde_json::from_value(json!("running")).unwrap();
    assert_eq!(s, qmp::RunState::Running);
    let s: qmp::RunState = serde_json::from_value(json!("hibernating-on-mars")).unwrap();
    assert_eq!(s, qmp::RunState::Other("hibernating-on-mars".into()));
    assert_eq!(
        serde_json::to_value(&s).unwrap(),
        json!("hibernating-on-mars")
    );
    assert_eq!(s.to_string(), "hibernating-on-mars");
}

#[test]
fn unknown_members_are_ignored() {
    let info: qmp::StatusInfo = serde_json::from_value(json!({
        "running": true, "singlestep": false, "status": "running", "from-the-future": [1, 2]
    }))
    .unwrap();
    assert!(info.running);
    assert_eq!(info.status, qmp::RunState::Running);
}

#[test]
fn a_union_tag_not_known_here_keeps_its_members() {
    let v = json!({"driver": "quantum-disk", "node-name": "n0", "qubits": 7});
    let opts: qmp::BlockdevOptions = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(opts.node_name.as_deref(), Some("n0"));
    match &opts.driver {
        qmp::BlockdevOptionsBranch::Other { tag, members } => {
            assert_eq!(tag, "quantum-disk");
            assert_eq!(members["qubits"], json!(7));
        }
        other => panic!("expected Other, got {other:?}"),
    }
    assert_eq!(opts.driver.tag(), "quantum-disk");
    assert_eq!(serde_json::to_value(&opts).unwrap(), v);
}

#[test]
fn a_known_union_tag_decodes_its_branch() {
    let v = json!({"driver": "null-co", "node-name": "null0", "size": 1048576});
    let cmd: qmp::BlockdevAdd = serde_json::from_value(v.clone()).unwrap();
    let qmp::BlockdevOptionsBranch::NullCo(null) = &cmd.0.driver else {
        panic!("expected the null-co branch, got {:?}", cmd.0.driver);
    };
    assert_eq!(null.size, Some(1048576));
    assert_eq!(serde_json::to_value(&cmd).unwrap(), v);
}

#[test]
fn a_plain_object_that_later_became_a_union_still_decodes() {
    // QEMU 7.2's SevInfo has no `sev-type`; 10.0's is a union on it.
    let old = json!({"enabled": false, "api-major": 0, "api-minor": 0, "build-id": 0,
                     "policy": 0, "state": "uninit", "handle": 0});
    let info: qmp::SevInfo = serde_json::from_value(old).unwrap();
    assert_eq!(info.sev_type.tag(), "");
    assert_eq!(info.state, qmp::SevState::Uninit);
}

#[test]
fn members_only_one_version_has_are_optional() {
    // `guest-exec`'s `capture-output` changed type between the versions;
    // both forms are accepted.
    for capture in [json!(true), json!("merged")] {
        let cmd: qga::GuestExecCommand =
            serde_json::from_value(json!({"path": "/bin/true", "capture-output": capture}))
                .unwrap();
        assert!(cmd.capture_output.is_some());
    }
}

#[test]
fn commands_say_their_name_oob_and_availability() {
    assert_eq!(qmp::QueryStatus::NAME, "query-status");
    const {
        assert!(!qmp::QueryStatus::ALLOW_OOB);
        assert!(qmp::MigrateRecover::ALLOW_OOB);
        assert!(qga::GuestShutdown::NO_REPLY);
        let a = qmp::QueryStatus::AVAILABILITY;
        assert!(a.qemu_7_2 && a.qemu_10_0);
        assert!(a.since.is_some());
    }
    let info = qmp::COMMANDS
        .iter()
        .find(|c| c.name == "blockdev-add")
        .unwrap();
    assert!(info.needs_arguments);
    // The QAPI struct and the command of the same name stay apart.
    assert_eq!(qmp::BlockdevBackupCommand::NAME, "blockdev-backup");
    let names: std::collections::BTreeSet<_> = qmp::COMMANDS.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), qmp::COMMANDS.len(), "command names are unique");
}

#[test]
fn events_decode_through_the_engine_trait() {
    let ev = Event::new(
        "BLOCK_JOB_COMPLETED",
        &json!({"type": "backup", "device": "job0", "len": 10, "offset": 10, "speed": 0}),
    );
    assert_eq!(qmp::BlockJobCompleted::NAME, "BLOCK_JOB_COMPLETED");
    let done = ev.decode::<qmp::BlockJobCompleted>().unwrap();
    assert_eq!(done.device, "job0");
    assert_eq!(done.type_, qmp::JobType::Backup);
    assert!(ev.decode::<qmp::StopEvent>().is_err());
    let info = qmp::EVENTS.iter().find(|e| e.name == ev.name).unwrap();
    assert!((info.check)(&ev).is_ok());
    let stop = Event::new("STOP", &serde_json::Value::Null);
    assert!(stop.decode::<qmp::StopEvent>().is_ok());
}
