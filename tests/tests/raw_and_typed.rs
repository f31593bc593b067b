//! Against a real QEMU: whole request objects with ids of the caller's
//! choosing (the reply comes back whole, errors as data, and the ids the
//! client cannot honour are refused before anything is sent), and events
//! waited for by their generated type.

use std::time::Duration;

use qmp_std::serde_json::json;
use qmp_std::{Error, Options, Qmp, SubmitError};
use tests::{QemuServer, within};

const LIMIT: Duration = Duration::from_secs(60);

fn connect(server: &QemuServer) -> Qmp {
    let options = Options::new().socket_wait(Duration::from_secs(10));
    Qmp::connect_unix(&server.socket, options).expect("connect to QEMU")
}

#[test]
fn a_raw_request_keeps_its_string_id_and_its_reply_whole() {
    within(LIMIT, "raw round trip", || {
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        let reply = qmp
            .execute_raw(json!({"execute": "query-status", "id": "mine"}))
            .unwrap();
        assert_eq!(reply["id"], "mine");
        assert_eq!(reply["return"]["status"], "prelaunch");

        // An error is data here, not a failure.
        let reply = qmp
            .execute_raw(json!({"execute": "no-such-command", "id": ["a", 1]}))
            .unwrap();
        assert_eq!(reply["id"], json!(["a", 1]));
        assert_eq!(reply["error"]["class"], "CommandNotFound");

        // No id: the client numbers it and still returns the whole reply.
        let reply = qmp
            .execute_raw(json!({"execute": "query-name", "arguments": {}}))
            .unwrap();
        assert!(
            reply["id"].is_u64() && reply["return"].is_object(),
            "{reply}"
        );

        // The client's own id space is refused, and the session goes on.
        let e = qmp
            .execute_raw(json!({"execute": "query-status", "id": 3}))
            .unwrap_err();
        assert!(
            matches!(e, Error::Submit(SubmitError::IdUnavailable { .. })),
            "{e:?}"
        );
        qmp.execute("query-status", None).unwrap();
        qmp.disconnect();
    });
}

#[test]
fn a_typed_event_is_waited_for_by_its_type() {
    use qmp_qapi::qmp::{Resume, StopEvent};
    within(LIMIT, "typed event", || {
        let server = QemuServer::start(&[]);
        let mut qmp = connect(&server);
        qmp.execute("cont", None).unwrap();
        qmp.execute("stop", None).unwrap();
        // Both events are queued; the typed wait takes its own and leaves
        // the other.
        let _stopped: StopEvent = qmp.wait_typed_event().unwrap();
        let _resumed: Resume = qmp
            .with_timeout(Duration::from_secs(5))
            .wait_typed_event()
            .unwrap();
        qmp.disconnect();
    });
}
