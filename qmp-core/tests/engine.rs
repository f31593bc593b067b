//! The engine driven without sockets: a scripted peer, a virtual clock,
//! and transcripts recorded from a real QEMU 7.2 and qemu-ga
//! (`scripts/record-transcripts.py` regenerates them).

use std::collections::HashSet;
use std::time::Duration;

use qmp_core::serde_json::{self, Value, json};
use qmp_core::{
    Capability, Client, CloseReason, Config, ErrorClass, Event, Instant, Output, Request,
    RequestError, RequestId, SessionState, SubmitError,
};

/// One side of a recorded exchange.
enum Step {
    Send(Vec<u8>),
    Recv(Vec<u8>),
}

fn transcript(name: &str) -> Vec<Step> {
    let path = format!("{}/tests/transcripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let steps: Vec<serde_json::Map<String, Value>> = serde_json::from_str(&text).unwrap();
    // Transcripts store bytes as latin-1 text so that 0xFF survives.
    let bytes = |v: &Value| {
        v.as_str()
            .unwrap()
            .chars()
            .map(|c| c as u32 as u8)
            .collect()
    };
    steps
        .iter()
        .map(|s| match (s.get("send"), s.get("recv")) {
            (Some(v), None) => Step::Send(bytes(v)),
            (None, Some(v)) => Step::Recv(bytes(v)),
            _ => panic!("bad step in {name}"),
        })
        .collect()
}

fn server_bytes(steps: &[Step]) -> Vec<u8> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Recv(b) => Some(b.as_slice()),
            Step::Send(_) => None,
        })
        .collect::<Vec<_>>()
        .concat()
}

/// The client's side of a scripted exchange, with a virtual clock.
struct Harness {
    client: Client,
    now: Instant,
    sent: Vec<u8>,
    outputs: Vec<Output>,
    events: Vec<Event>,
    ended: HashSet<RequestId>,
    /// Each ended request's result, its reply decoded untyped.
    results: std::collections::HashMap<RequestId, Result<Value, RequestError>>,
    /// Every request submitted through `exec`.
    issued: Vec<RequestId>,
    /// The wire id each request was written with.
    wires: std::collections::HashMap<RequestId, u64>,
}

impl Harness {
    fn new(config: Config) -> Self {
        let mut h = Harness {
            client: Client::new(Instant::ZERO, config),
            now: Instant::ZERO,
            sent: Vec::new(),
            outputs: Vec::new(),
            events: Vec::new(),
            ended: HashSet::new(),
            results: Default::default(),
            issued: Vec::new(),
            wires: Default::default(),
        };
        h.drain();
        h
    }

    /// A QMP session past negotiation, with or without `oob`.
    fn running(oob: bool) -> Self {
        let mut h = Harness::new(Config::qmp());
        h.feed(&greeting(oob));
        h.feed(br#"{"return": {}, "id": 0}"#);
        assert_eq!(h.client.state(), SessionState::Running);
        h.take_sent();
        h
    }

    /// Pulls everything the engine has to say, checking that no request
    /// ends twice.
    #[track_caller]
    fn drain(&mut self) {
        while let Some(tx) = self.client.poll_transmit() {
            let n = tx.bytes.len();
            self.sent.extend_from_slice(tx.bytes);
            self.client.consume_transmit(n);
        }
        for id in &self.issued {
            if let Some(wire) = self.client.wire_id(*id) {
                let known = *self.wires.entry(*id).or_insert(wire);
                assert_eq!(known, wire, "request {id} changed its wire id");
            }
        }
        while let Some(out) = self.client.poll_output() {
            if let Output::Reply { id, result } = &out {
                assert!(self.ended.insert(*id), "request {id} ended twice");
                let value = result.clone().and_then(|r| r.value());
                self.results.insert(*id, value);
            }
            self.outputs.push(out);
        }
        while let Some(e) = self.client.poll_event() {
            self.events.push(e);
        }
    }

    #[track_caller]
    fn feed(&mut self, bytes: &[u8]) {
        self.client.handle_input(self.now, bytes);
        self.drain();
    }

    #[track_caller]
    fn exec(&mut self, req: Request) -> RequestId {
        let id = self.client.execute(self.now, req).expect("submit");
        self.issued.push(id);
        self.drain();
        id
    }

    /// The `id` request `id` was written with.
    #[track_caller]
    fn wire(&self, id: RequestId) -> u64 {
        *self
            .wires
            .get(&id)
            .unwrap_or_else(|| panic!("request {id} was not written"))
    }

    /// Feeds the server's reply to `id`, returning `ret`.
    #[track_caller]
    fn answer(&mut self, id: RequestId, ret: &str) {
        let bytes = format!("{{\"return\": {ret}, \"id\": {}}}\r\n", self.wire(id));
        self.feed(bytes.as_bytes());
    }

    /// Moves the clock forward, firing deadlines on the way like a driver
    /// that sleeps until `poll_timeout`.
    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        while let Some(deadline) = self.client.poll_timeout() {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            self.client.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
        self.client.handle_timeout(self.now);
        self.drain();
    }

    fn eof(&mut self) {
        self.client.handle_eof(self.now);
        self.drain();
    }

    fn take_sent(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.sent)
    }

    /// Requests sent so far, parsed (the engine sends no separators).
    fn sent_requests(&mut self) -> Vec<Value> {
        let bytes = self.take_sent();
        serde_json::Deserializer::from_slice(&bytes)
            .into_iter::<Value>()
            .map(|v| v.unwrap())
            .collect()
    }

    fn result(&self, id: RequestId) -> &Result<Value, RequestError> {
        self.results
            .get(&id)
            .unwrap_or_else(|| panic!("request {id} has not ended"))
    }

    /// The reply that ended `id`, undecoded.
    fn reply(&self, id: RequestId) -> &qmp_core::Reply {
        self.outputs
            .iter()
            .find_map(|o| match o {
                Output::Reply {
                    id: i,
                    result: Ok(r),
                } if *i == id => Some(r),
                _ => None,
            })
            .unwrap_or_else(|| panic!("request {id} has no reply"))
    }

    fn closed(&self) -> Option<&CloseReason> {
        self.outputs.iter().find_map(|o| match o {
            Output::Closed(r) => Some(r),
            _ => None,
        })
    }
}

fn greeting(oob: bool) -> Vec<u8> {
    let caps = if oob { r#"["oob"]"# } else { "[]" };
    format!(
        r#"{{"QMP": {{"version": {{"qemu": {{"micro": 0, "minor": 2, "major": 7}}, "package": ""}}, "capabilities": {caps}}}}}"#
    )
    .into_bytes()
}

/// Replays a recorded QEMU session with the server's bytes cut as `cuts`
/// says, and checks every outcome.
fn replay_session(name: &str, cuts: &[usize]) {
    let steps = transcript(name);
    let server = server_bytes(&steps);
    let recorded_sends: Vec<Value> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Send(b) => Some(serde_json::from_slice(b).unwrap()),
            Step::Recv(_) => None,
        })
        .collect();

    let mut h = Harness::new(Config::qmp());
    let status = h.exec(Request::new("query-status"));
    let missing = h.exec(Request::new("no-such-command"));
    let cont = h.exec(Request::new("cont"));
    let stop = h.exec(Request::new("stop"));
    let quit = h.exec(Request::new("quit"));
    assert!(h.sent.is_empty(), "nothing may be sent before the greeting");

    let mut start = 0;
    for &cut in cuts.iter().chain([&server.len()]) {
        h.feed(&server[start..cut]);
        start = cut;
    }
    h.eof();

    let g = h.client.greeting().expect("greeting");
    // The version the recording's greeting carries, read back as sent.
    let recorded: Value = serde_json::Deserializer::from_slice(&server)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        Value::from(g.version.major),
        recorded["QMP"]["version"]["qemu"]["major"]
    );
    assert_eq!(
        Value::from(g.version.minor),
        recorded["QMP"]["version"]["qemu"]["minor"]
    );
    assert!(g.package.starts_with("Debian"), "{}", g.package);
    assert_eq!(g.capabilities, [Capability::Oob]);
    assert!(h.client.oob_enabled());
    // What the engine sent is what the real QEMU accepted.
    assert_eq!(h.sent_requests(), recorded_sends);

    let s = h.result(status).as_ref().unwrap();
    assert_eq!(s["status"], "prelaunch");
    match h.result(missing) {
        Err(RequestError::Server(e)) => {
            assert_eq!(e.class, ErrorClass::CommandNotFound);
            assert!(e.desc.contains("no-such-command"), "{}", e.desc);
        }
        other => panic!("{other:?}"),
    }
    for id in [cont, stop, quit] {
        assert_eq!(h.result(id), &Ok(json!({})));
    }
    let names: Vec<_> = h.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["RESUME", "STOP", "SHUTDOWN"]);
    assert_eq!(h.events[2].data().unwrap()["reason"], "host-qmp-quit");
    assert!(h.events[0].timestamp.unwrap().seconds > 1_600_000_000);
    assert_eq!(h.closed(), Some(&CloseReason::Eof));
    assert_eq!(h.client.stats().unknown_replies, 0);
}

#[test]
fn real_session_whole() {
    replay_session("qemu-session.json", &[]);
}

#[test]
fn real_session_split_at_every_byte() {
    let len = server_bytes(&transcript("qemu-session.json")).len();
    for cut in 0..=len {
        replay_session("qemu-session.json", &[cut]);
    }
}

#[test]
fn real_session_one_byte_at_a_time() {
    let len = server_bytes(&transcript("qemu-session.json")).len();
    replay_session("qemu-session.json", &(1..len).collect::<Vec<_>>());
}

#[test]
fn real_pretty_printed_session() {
    let server = server_bytes(&transcript("qemu-session-pretty.json"));
    assert!(
        server.windows(2).filter(|w| w == b"\n ").count() > 10,
        "not pretty-printed"
    );
    replay_session("qemu-session-pretty.json", &[]);
    for cut in (0..server.len()).step_by(7) {
        replay_session("qemu-session-pretty.json", &[cut]);
    }
}

#[test]
fn real_schema_reply_decodes() {
    let server = server_bytes(&transcript("qemu-schema.json"));
    assert!(server.len() > 150_000);
    let mut h = Harness::new(Config::qmp().enable_oob(false));
    let id = h.exec(Request::new("query-qmp-schema"));
    for chunk in server.chunks(4096) {
        h.feed(chunk);
    }
    let schema = h.result(id).as_ref().unwrap().as_array().unwrap();
    assert!(schema.iter().any(|e| e["name"] == "query-status"));
}

#[test]
fn a_reply_before_its_request_is_written_retires_its_id() {
    let mut h = Harness::running(true);
    // In the transmit queue, not yet reported written.
    let a = h.client.execute(h.now, Request::new("x")).unwrap();
    let wire = h.client.wire_id(a).unwrap();
    // A completion-based driver may see the read finish before the
    // write: the reply is delivered...
    let first = format!(r#"{{"return": {{"n": 1}}, "id": {wire}}}"#);
    h.client.handle_input(h.now, first.as_bytes());
    match h.client.poll_output() {
        Some(Output::Reply { id, result }) => {
            assert_eq!(id, a);
            assert_eq!(result.unwrap().value().unwrap(), json!({"n": 1}));
        }
        other => panic!("{other:?}"),
    }
    h.drain();
    // ...but it may also have been a peer's guess: the id is not handed
    // out again, so the server's answer to the bytes just written reaches
    // nobody.
    let b = h.exec(Request::new("x"));
    assert_ne!(h.wire(b), wire);
    h.feed(format!(r#"{{"return": {{"n": 2}}, "id": {wire}}}"#).as_bytes());
    assert!(!h.ended.contains(&b));
    assert_eq!(h.client.stats().unknown_replies, 1);
    h.answer(b, "{}");
    assert_eq!(h.result(b), &Ok(json!({})));
}

#[test]
fn a_read_may_end_inside_a_number() {
    // serde_json calls a number cut after `-`, `.`, `e` or its sign
    // invalid rather than unfinished; the next read finishes it. The
    // numbers are written out (serialized, they would have no exponent),
    // in messages that serde_json reads: an event, and a reply with its
    // id first (the plain reader takes only `{"return": V, "id": N}`).
    let numbers = r#"{"offset": -1, "ratio": 2.5, "big": 3e7, "small": -4.5E-2, "n": 5e+1}"#;
    let value = json!({"offset": -1, "ratio": 2.5, "big": 3e7, "small": -4.5E-2, "n": 5e+1});
    let event = format!(
        r#"{{"event": "X", "data": {numbers}, "timestamp": {{"seconds": 1, "microseconds": 2}}}}"#
    );
    let reply = format!(r#"{{"id": 1, "return": {numbers}}}"#);
    for cut in 1..reply.len().max(event.len()) {
        let mut h = Harness::running(true);
        let id = h.exec(Request::new("x"));
        assert_eq!(h.wire(id), 1);
        for text in [&event, &reply] {
            let cut = cut.min(text.len() - 1);
            h.feed(&text.as_bytes()[..cut]);
            h.feed(&text.as_bytes()[cut..]);
        }
        assert_eq!(h.closed(), None, "cut at {cut}");
        assert_eq!(h.events.len(), 1, "cut at {cut}");
        assert_eq!(h.events[0].data().ok(), Some(value.clone()), "cut at {cut}");
        assert_eq!(h.result(id), &Ok(value.clone()), "cut at {cut}");
    }
}

#[test]
fn lf_crlf_no_terminator_and_whitespace_between_messages() {
    let mut h = Harness::running(true);
    let ids: Vec<_> = (0..4).map(|_| h.exec(Request::new("query-name"))).collect();
    let stream = format!(
        "{{\"return\": 1, \"id\": {}}}\n{{\"return\": 2, \"id\": {}}}\r\n \t\r\n{{\"return\": 3,\n \"id\": {}}}{{\"return\": 4, \"id\": {}}}",
        h.wire(ids[0]),
        h.wire(ids[1]),
        h.wire(ids[2]),
        h.wire(ids[3])
    );
    h.feed(stream.as_bytes());
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(h.result(*id), &Ok(json!(i + 1)));
    }
}

#[test]
fn strings_with_braces_quotes_and_escapes() {
    let mut h = Harness::running(true);
    let id = h.exec(Request::new("human-monitor-command"));
    let body = format!(
        r#"{{"return": "a }} {{ \" \\ \u007b \ud83d\ude00 \n", "id": {}}}"#,
        h.wire(id)
    );
    for cut in 0..body.len() {
        let mut h2 = Harness::running(true);
        let id2 = h2.exec(Request::new("human-monitor-command"));
        h2.feed(&body.as_bytes()[..cut]);
        h2.feed(&body.as_bytes()[cut..]);
        assert_eq!(h2.result(id2), &Ok(json!("a } { \" \\ { 😀 \n")));
    }
    h.feed(body.as_bytes());
    assert!(h.result(id).is_ok());
}

#[test]
fn events_before_the_greeting_and_during_negotiation_are_kept() {
    let mut h = Harness::new(Config::qmp());
    h.feed(br#"{"event": "EARLY", "data": {"x": 1}}"#);
    h.feed(&greeting(true));
    h.feed(br#"{"event": "NEGOTIATING", "timestamp": {"seconds": 5, "microseconds": 6}}"#);
    h.feed(br#"{"return": {}, "id": 0}"#);
    assert_eq!(h.client.state(), SessionState::Running);
    let names: Vec<_> = h.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["EARLY", "NEGOTIATING"]);
    assert_eq!(h.events[0].data().unwrap(), json!({"x": 1}));
    assert!(h.closed().is_none());
}

#[test]
fn requests_wait_for_negotiation() {
    let mut h = Harness::new(Config::qmp());
    let id = h.exec(Request::new("query-status"));
    h.feed(&greeting(true));
    let sent = h.sent_requests();
    assert_eq!(
        sent,
        [json!({"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": 0})]
    );
    h.feed(br#"{"return": {}, "id": 0}"#);
    assert_eq!(
        h.sent_requests(),
        [json!({"execute": "query-status", "id": h.wire(id)})]
    );
}

#[test]
fn no_oob_when_not_offered_or_not_wanted() {
    let mut h = Harness::new(Config::qmp());
    h.feed(&greeting(false));
    assert_eq!(
        h.sent_requests(),
        [json!({"execute": "qmp_capabilities", "id": 0})]
    );
    h.feed(br#"{"return": {}, "id": 0}"#);
    assert_eq!(
        h.client.execute(h.now, Request::new("migrate-pause").oob()),
        Err(SubmitError::OobNotNegotiated)
    );
    let mut h = Harness::new(Config::qmp().enable_oob(false));
    h.feed(&greeting(true));
    assert_eq!(
        h.sent_requests(),
        [json!({"execute": "qmp_capabilities", "id": 0})]
    );
}

#[test]
fn skipping_greeting_and_negotiation() {
    let mut h = Harness::new(Config::qmp().await_greeting(false).negotiate(false));
    assert_eq!(h.client.state(), SessionState::Running);
    let id = h.exec(Request::new("query-status"));
    assert_eq!(
        h.sent_requests(),
        [json!({"execute": "query-status", "id": h.wire(id)})]
    );
    // A greeting that arrives anyway is reported, not an error.
    h.feed(&greeting(true));
    assert!(h.client.greeting().is_some());
    let mut h = Harness::new(Config::qmp().await_greeting(false));
    assert_eq!(h.client.state(), SessionState::Negotiating);
    assert_eq!(
        h.sent_requests(),
        [json!({"execute": "qmp_capabilities", "id": 0})]
    );
}

#[test]
fn failed_negotiation_carries_the_server_error() {
    let mut h = Harness::new(Config::qmp());
    let id = h.exec(Request::new("query-status"));
    h.feed(&greeting(true));
    h.feed(br#"{"id": 0, "error": {"class": "GenericError", "desc": "Capability 'oob' not available"}}"#);
    match h.closed() {
        Some(CloseReason::Negotiation(e)) => assert!(e.desc.contains("oob")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        h.result(id),
        Err(RequestError::Interrupted(CloseReason::Negotiation(_)))
    ));
}

#[test]
fn a_previous_clients_replies_around_the_greeting_are_dropped() {
    // QEMU finishes what the last client left running and writes the
    // reply (or a parse error) to whoever connects next.
    let mut h = Harness::new(Config::qmp());
    let id = h.exec(Request::new("query-status"));
    h.feed(br#"{"return": {}, "id": 1}"#);
    h.feed(&greeting(true));
    h.feed(br#"{"error": {"class": "GenericError", "desc": "JSON parse error"}}"#);
    h.feed(br#"{"return": {"status": "running"}, "id": 1}"#);
    h.feed(br#"{"return": {}, "id": 0}"#);
    assert_eq!(h.client.state(), SessionState::Running);
    assert!(h.closed().is_none());
    assert_eq!(h.client.stats().unknown_replies, 3);
    assert_eq!(
        h.sent_requests()[1],
        json!({"execute": "query-status", "id": h.wire(id)})
    );
    h.answer(id, r#""mine""#);
    assert_eq!(h.result(id), &Ok(json!("mine")));
}

#[test]
fn bad_greetings() {
    let mut h = Harness::new(Config::qmp());
    h.feed(br#"{"QMP": {"version": {"qemu": {"major": 7}}}}"#);
    assert!(
        matches!(h.closed(), Some(CloseReason::Greeting(_))),
        "{:?}",
        h.closed()
    );
    let mut h = Harness::new(Config::qmp());
    h.feed(b"Welcome to the monitor\r\n");
    assert!(matches!(
        h.closed(),
        Some(CloseReason::Malformed { offset: 0, .. })
    ));
}

#[test]
fn handshake_deadline() {
    let mut h = Harness::new(Config::qmp().handshake_timeout(Duration::from_secs(3)));
    let id = h.exec(Request::new("query-status"));
    assert_eq!(h.client.poll_timeout(), Some(Instant::from_millis(3000)));
    h.advance(Duration::from_millis(2999));
    assert!(h.closed().is_none());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.closed(), Some(&CloseReason::HandshakeTimeout));
    assert_eq!(
        h.result(id),
        &Err(RequestError::Interrupted(CloseReason::HandshakeTimeout))
    );
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn replies_match_by_id_in_any_order_and_unknown_ids_are_dropped() {
    let mut h = Harness::running(true);
    let a = h.exec(Request::new("a"));
    let b = h.exec(Request::new("b"));
    h.feed(br#"{"return": "stray", "id": 999}"#);
    h.feed(br#"{"return": "foreign", "id": "libvirt-1"}"#);
    h.answer(b, r#""B""#);
    h.answer(a, r#""A""#);
    assert_eq!(h.result(a), &Ok(json!("A")));
    assert_eq!(h.result(b), &Ok(json!("B")));
    assert_eq!(h.client.stats().unknown_replies, 2);
    // A reply for a request that already ended is unknown too: never
    // delivered twice.
    h.answer(a, "1");
    assert_eq!(h.client.stats().unknown_replies, 3);
}

#[test]
fn idless_error_is_fatal_and_interrupts_everything() {
    let mut h = Harness::running(true);
    let a = h.exec(Request::new("a"));
    h.feed(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, invalid keyword 'x'\"}}\r\n");
    match h.closed() {
        Some(CloseReason::ServerParseError(e)) => assert!(e.desc.contains("parse")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        h.result(a),
        Err(RequestError::Interrupted(CloseReason::ServerParseError(_)))
    ));
    assert!(matches!(
        h.client.execute(h.now, Request::new("b")),
        Err(SubmitError::Closed(_))
    ));
}

#[test]
fn oob_overtakes_queued_in_band_requests() {
    let mut h = Harness::running(true);
    let inband: Vec<_> = (0..9)
        .map(|_| h.exec(Request::new("query-status")))
        .collect();
    assert_eq!(h.sent_requests().len(), 8, "the ninth waits for a slot");
    let oob = h.exec(Request::new("migrate-pause").oob());
    let sent = h.sent_requests();
    assert_eq!(
        sent,
        [json!({"exec-oob": "migrate-pause", "id": h.wire(oob)})]
    );
    h.feed(br#"{"id": 9, "error": {"class": "GenericError", "desc": "migrate-pause is currently only supported during postcopy-active state"}}"#);
    assert!(matches!(h.result(oob), Err(RequestError::Server(_))));
    h.answer(inband[0], "{}");
    assert_eq!(
        h.sent_requests(),
        [json!({"execute": "query-status", "id": h.wire(inband[8])})]
    );
}

#[test]
fn twenty_requests_through_a_cap_of_eight() {
    let mut h = Harness::running(true);
    let ids: Vec<_> = (0..20)
        .map(|_| h.exec(Request::new("query-status")))
        .collect();
    let mut answered = 0;
    let mut on_wire: Vec<Value> = h.sent_requests();
    assert_eq!(on_wire.len(), 8);
    while answered < 20 {
        assert!(on_wire.len() <= 8);
        let req = on_wire.remove(0);
        let id = req["id"].as_u64().unwrap();
        h.feed(format!("{{\"return\": {id}, \"id\": {id}}}").as_bytes());
        answered += 1;
        on_wire.extend(h.sent_requests());
    }
    for id in ids {
        assert_eq!(h.result(id), &Ok(json!(h.wire(id))));
    }
    assert_eq!(h.client.open_requests(), 0);
}

/// The ids of the requests written since the last call.
fn sent_ids(h: &mut Harness) -> Vec<u64> {
    h.sent_requests()
        .iter()
        .map(|r| r["id"].as_u64().expect("a numeric id"))
        .collect()
}

#[test]
fn serial_requests_all_carry_the_smallest_id() {
    let mut h = Harness::running(true);
    let before = h.client.stats().bytes_sent;
    for _ in 0..1000 {
        let id = h.exec(Request::new("query-status"));
        assert_eq!(h.take_sent(), br#"{"execute":"query-status","id":1}"#);
        h.answer(id, "{}");
        assert!(h.result(id).is_ok());
    }
    assert_eq!(h.client.stats().bytes_sent, before + 1000 * 33);
    // Without negotiation, 0 is free too.
    let mut h = Harness::new(Config::qmp().await_greeting(false).negotiate(false));
    let id = h.exec(Request::new("query-status"));
    assert_eq!(h.wire(id), 0);
}

#[test]
fn an_id_is_reused_only_once_its_reply_came() {
    let mut h = Harness::running(true);
    let a = h.exec(Request::new("a"));
    let b = h.exec(Request::new("b"));
    let c = h.exec(Request::new("c"));
    assert_eq!(sent_ids(&mut h), [1, 2, 3]);
    h.answer(b, "2");
    let d = h.exec(Request::new("d"));
    assert_eq!(sent_ids(&mut h), [2], "the smallest free id");
    // `a`'s caller gives up: its reply may still come, so 1 stays taken.
    h.client.cancel(a);
    let e = h.exec(Request::new("e"));
    assert_eq!(sent_ids(&mut h), [4]);
    h.answer(a, r#""late""#);
    assert_eq!(h.client.stats().late_replies, 1);
    assert!(
        !h.results.contains_key(&a),
        "a cancelled request stays silent"
    );
    let f = h.exec(Request::new("f"));
    assert_eq!(sent_ids(&mut h), [1], "free once the late reply came");
    for (id, ret) in [(c, "3"), (d, "4"), (e, "5"), (f, "6")] {
        h.answer(id, ret);
        assert_eq!(h.result(id), &Ok(json!(ret.parse::<u64>().unwrap())));
    }
    assert_eq!(h.client.stats().unknown_replies, 0);
    assert_eq!(h.client.open_requests(), 0);
}

#[test]
fn an_id_let_go_before_its_reply_is_never_reused() {
    let mut h = Harness::running(true);
    // QEMU answers every command, but this caller chose not to wait.
    let fire = h.exec(Request::new("system_reset").no_reply());
    assert_eq!(sent_ids(&mut h), [1]);
    assert!(h.result(fire).is_ok(), "done once written");
    let next = h.exec(Request::new("query-status"));
    assert_eq!(sent_ids(&mut h), [2], "1 is retired");
    h.feed(b"{\"return\": \"for the first\", \"id\": 1}\r\n");
    assert_eq!(h.client.stats().unknown_replies, 1);
    assert!(h.client.is_open(next), "not taken by a reply to another");
    h.answer(next, "{}");
    let after = h.exec(Request::new("query-status"));
    assert_eq!(
        sent_ids(&mut h),
        [2],
        "ids above the retired one are reused"
    );
    h.answer(after, "{}");
}

#[test]
fn an_agent_resync_retires_the_ids_it_forgets() {
    let mut h = Harness::new(Config::qga().sync_on_start(false));
    let slow = h.exec(Request::new("guest-fsfreeze-freeze").timeout(Duration::from_secs(1)));
    assert_eq!(h.wire(slow), 0);
    h.take_sent();
    h.advance(Duration::from_secs(1));
    let token = sync_token(&h.take_sent());
    let answer = format!("{{\"return\": {token}}}\n");
    let next = h.exec(Request::new("guest-ping"));
    h.feed(&[b"\xff".as_slice(), answer.as_bytes()].concat());
    assert_eq!(h.wire(next), 1, "the forgotten request's id is not reused");
    h.answer(next, "{}");
    assert!(h.result(next).is_ok());
}

#[test]
fn timeouts_then_late_replies() {
    let mut h = Harness::running(true);
    let slow = h.exec(Request::new("slow").timeout(Duration::from_secs(1)));
    let fine = h.exec(Request::new("fine").timeout(Duration::from_secs(10)));
    assert_eq!(
        h.client.poll_timeout(),
        Some(h.now + Duration::from_secs(1))
    );
    // A spurious wake-up changes nothing.
    let before = h.outputs.len();
    h.client.handle_timeout(h.now);
    h.drain();
    assert_eq!(h.outputs.len(), before);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.result(slow), &Err(RequestError::Timeout));
    h.answer(slow, r#""late""#);
    assert_eq!(h.client.stats().late_replies, 1);
    h.answer(fine, r#""mine""#);
    assert_eq!(h.result(fine), &Ok(json!("mine")));
    let next = h.exec(Request::new("next"));
    h.answer(next, "3");
    assert_eq!(h.result(next), &Ok(json!(3)));
}

#[test]
fn a_timed_out_request_keeps_its_server_slot_until_answered() {
    let mut h = Harness::running(true);
    let first: Vec<_> = (0..8)
        .map(|_| h.exec(Request::new("x").timeout(Duration::from_secs(1))))
        .collect();
    let queued = h.exec(Request::new("y").timeout(Duration::from_secs(5)));
    h.take_sent();
    h.advance(Duration::from_secs(1));
    // QEMU still holds the eight: sending more would overfill its queue.
    assert!(h.sent.is_empty());
    h.answer(first[0], "{}");
    assert_eq!(
        h.sent_requests(),
        [json!({"execute": "y", "id": h.wire(queued)})]
    );
    h.advance(Duration::from_secs(5));
    assert_eq!(h.result(queued), &Err(RequestError::Timeout));
}

#[test]
fn queued_request_timeout_is_never_sent() {
    let mut h = Harness::new(Config::qmp());
    let id = h.exec(Request::new("x").timeout(Duration::from_millis(10)));
    h.advance(Duration::from_millis(10));
    assert_eq!(h.result(id), &Err(RequestError::Timeout));
    h.feed(&greeting(false));
    h.feed(br#"{"return": {}, "id": 0}"#);
    assert_eq!(
        h.sent_requests(),
        [json!({"execute": "qmp_capabilities", "id": 0})]
    );
}

#[test]
fn cancel_before_and_after_sending() {
    let mut h = Harness::new(Config::qmp());
    let never = h.exec(Request::new("never"));
    assert!(h.client.cancel(never));
    h.feed(&greeting(false));
    h.feed(br#"{"return": {}, "id": 0}"#);
    assert_eq!(h.sent_requests().len(), 1, "only qmp_capabilities");
    let sent = h.exec(Request::new("sent"));
    assert!(h.client.cancel(sent));
    assert!(!h.client.cancel(sent));
    h.answer(sent, "{}");
    assert_eq!(h.client.stats().late_replies, 1);
    assert!(h.outputs.iter().all(|o| !matches!(o, Output::Reply { .. })));
}

#[test]
fn eof_mid_reply_interrupts_every_pending_request() {
    let mut h = Harness::running(true);
    let ids: Vec<_> = (0..20).map(|_| h.exec(Request::new("q"))).collect();
    h.feed(br#"{"return": {"sta"#);
    h.eof();
    let reason = CloseReason::UnexpectedEof { buffered: 16 };
    assert_eq!(h.closed(), Some(&reason));
    for id in ids {
        assert_eq!(
            h.result(id),
            &Err(RequestError::Interrupted(reason.clone()))
        );
    }
    assert!(
        matches!(h.outputs.last(), Some(Output::Closed(_))),
        "Closed comes last"
    );
    assert_eq!(h.client.state(), SessionState::Closed);
    // Input after the close changes nothing and reports nothing again.
    let before = h.outputs.len();
    h.feed(b"{}");
    assert_eq!(h.outputs.len(), before);
}

#[test]
fn quit_counts_as_done_when_the_close_overtakes_its_reply() {
    let mut h = Harness::running(true);
    let other = h.exec(Request::new("query-status"));
    let quit = h.exec(Request::new("quit"));
    h.eof();
    assert_eq!(h.result(quit), &Ok(json!({})));
    assert_eq!(
        h.result(other),
        &Err(RequestError::Interrupted(CloseReason::Eof))
    );
}

#[test]
fn oversized_message_is_refused_before_it_is_buffered() {
    let limit = 1024;
    for chunk in [1, 100, 4096] {
        let mut h = Harness::new(Config::qmp().max_message_size(limit));
        h.feed(&greeting(true));
        h.feed(br#"{"return": {}, "id": 0}"#);
        let id = h.exec(Request::new("big"));
        let mut msg = format!("{{\"return\": \"{}\", \"id\": 1}}", "x".repeat(limit));
        msg.truncate(limit + 1);
        for part in msg.as_bytes().chunks(chunk) {
            h.feed(part);
            assert!(
                h.client.buffered_bytes() <= 2 * limit,
                "buffer grew past the limit"
            );
        }
        assert_eq!(h.closed(), Some(&CloseReason::MessageTooLarge { limit }));
        assert!(matches!(h.result(id), Err(RequestError::Interrupted(_))));
    }
    // Exactly at the limit is fine.
    let size = 200;
    let mut h = Harness::new(Config::qmp().max_message_size(size));
    let id = h.exec(Request::new("x"));
    h.feed(&greeting(false));
    h.feed(br#"{"return": {}, "id": 0}"#);
    let head = format!("{{\"id\": {}, \"return\": \"", h.wire(id));
    let msg = format!("{head}{}\"}}", "y".repeat(size - head.len() - 2));
    assert_eq!(msg.len(), size);
    h.feed(msg.as_bytes());
    assert_eq!(h.result(id), &Ok(json!("y".repeat(size - head.len() - 2))));
}

#[test]
fn malformed_input_says_where() {
    let cases: [(&[u8], u64); 4] = [
        (b"[1, 2]", 0),
        (b"  {\"return\": tru}", 16),
        (b"{\"return\": \"\xc3\x28\"}", 12),
        (b"{} }", 3),
    ];
    for (bytes, offset) in cases {
        let mut h = Harness::running(true);
        let id = h.exec(Request::new("x"));
        let base = h.client.stats().bytes_received;
        h.feed(bytes);
        match h.closed() {
            Some(CloseReason::Malformed { offset: at, detail }) => {
                assert_eq!(
                    *at - base,
                    offset,
                    "{detail} in {:?}",
                    String::from_utf8_lossy(bytes)
                );
            }
            other => panic!("{other:?} for {bytes:?}"),
        }
        assert!(matches!(h.result(id), Err(RequestError::Interrupted(_))));
    }
}

#[test]
fn event_queue_drops_the_oldest_and_counts() {
    let mut h = Harness::running(true);
    let capacity = h.client.config().max_queued_events;
    for i in 0..capacity + 36 {
        h.client
            .handle_input(h.now, format!("{{\"event\": \"E{i}\"}}").as_bytes());
    }
    assert_eq!(h.client.events().len(), capacity);
    assert_eq!(h.client.events().take_lagged(), 36);
    assert_eq!(h.client.poll_event().unwrap().name, "E36");
    assert_eq!(h.client.stats().events_lagged, 36);
}

#[test]
fn unrecognized_objects_are_counted_not_fatal() {
    let mut h = Harness::running(true);
    h.feed(br#"{"something": "new"}"#);
    assert_eq!(h.client.stats().unrecognized, 1);
    assert!(h.closed().is_none());
}

#[test]
fn fds_are_announced_with_the_first_byte_of_their_request() {
    let mut h = Harness::running(true);
    let _plain = h.client.execute(h.now, Request::new("a")).unwrap();
    let with = h
        .client
        .execute(h.now, Request::new("getfd").with_fds())
        .unwrap();
    let tx = h.client.poll_transmit().unwrap();
    assert_eq!(tx.fds, None);
    assert_eq!(
        tx.bytes, br#"{"execute":"a","id":1}"#,
        "stops before the fd request"
    );
    h.client.consume_transmit(5);
    let n = h.client.poll_transmit().unwrap().bytes.len();
    h.client.consume_transmit(n);
    let tx = h.client.poll_transmit().unwrap();
    assert_eq!(tx.fds, Some(with));
    assert_eq!(tx.bytes, br#"{"execute":"getfd","id":2}"#);
    h.client.consume_transmit(1);
    assert_eq!(
        h.client.poll_transmit().unwrap().fds,
        None,
        "sent with the first byte"
    );
}

#[test]
fn one_request_with_fds_on_the_wire_at_a_time() {
    let mut h = Harness::running(true);
    let first = h.exec(Request::new("add-fd").with_fds());
    let plain = h.exec(Request::new("query-fdsets"));
    let second = h.exec(Request::new("add-fd").with_fds());
    let after = h.exec(Request::new("query-status"));
    // The second set of descriptors would replace the first inside QEMU
    // before the first command ran: it waits, and so does what follows it.
    let sent: Vec<u64> = h
        .sent_requests()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(sent, [h.wire(first), h.wire(plain)]);
    h.answer(first, "{}");
    let sent: Vec<u64> = h
        .sent_requests()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(sent, [h.wire(second), h.wire(after)]);
}

// ----- the guest agent dialect ------------------------------------------

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let pos = haystack
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern");
    [&haystack[..pos], to, &haystack[pos + from.len()..]].concat()
}

/// The sync token the engine chose, read from what it sent.
fn sync_token(sent: &[u8]) -> u64 {
    assert_eq!(sent[0], 0xFF, "a resync starts with 0xFF");
    let v: Value = serde_json::Deserializer::from_slice(&sent[1..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(v["execute"], "guest-sync-delimited");
    assert!(v.get("id").is_none());
    v["arguments"]["id"].as_u64().unwrap()
}

#[test]
fn real_agent_session_with_a_dead_clients_half_request() {
    let steps = transcript("qga-session.json");
    let mut server = server_bytes(&steps);
    let mut h = Harness::new(Config::qga().sync_seed(42));
    assert_eq!(h.client.state(), SessionState::Syncing);
    let ping = h.exec(Request::new("guest-ping"));
    let info = h.exec(Request::new("guest-info"));
    let host = h.exec(Request::new("guest-get-host-name"));
    let sent = h.take_sent();
    let token = sync_token(&sent);
    assert!(sent.ends_with(b"}}"), "requests wait for the sync");
    // The recording used token 123456789; put ours in its place.
    server = replace_bytes(&server, b"123456789", token.to_string().as_bytes());
    for cut in [0, 1, 50, server.len() / 2] {
        let mut h2 = Harness::new(Config::qga().sync_seed(42));
        let ids = [
            h2.exec(Request::new("guest-ping")),
            h2.exec(Request::new("guest-info")),
            h2.exec(Request::new("guest-get-host-name")),
        ];
        h2.feed(&server[..cut]);
        h2.feed(&server[cut..]);
        assert_eq!(h2.client.state(), SessionState::Running);
        assert_eq!(h2.result(ids[0]), &Ok(json!({})));
        assert!(h2.closed().is_none());
    }
    h.feed(&server);
    assert_eq!(h.client.state(), SessionState::Running);
    assert!(h.outputs.iter().any(|o| matches!(o, Output::Ready)));
    let sent = h.sent_requests();
    assert_eq!(sent.len(), 3, "released after the sync");
    assert_eq!(h.result(ping), &Ok(json!({})));
    assert_eq!(h.result(info).as_ref().unwrap()["version"], "7.2.22");
    assert!(h.result(host).as_ref().unwrap()["host-name"].is_string());
    assert!(
        h.client.stats().discarded_during_sync >= 1,
        "the parse error before 0xFF"
    );
}

#[test]
fn agent_discards_stale_output_before_the_delimiter() {
    let mut h = Harness::new(Config::qga().sync_seed(7));
    let ping = h.exec(Request::new("guest-ping"));
    let token = sync_token(&h.take_sent());
    // Half a reply left by an earlier client, a stale sync answer, an
    // error provoked by our 0xFF, then the delimiter and our answer.
    let stale = "uest-info\", \"re{\"return\": 5, \"id\": 0}\n\u{0}{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\n";
    h.feed(stale.as_bytes());
    assert_eq!(h.client.state(), SessionState::Syncing);
    h.feed(b"\xff{\"return\": 1}\n");
    assert_eq!(
        h.client.state(),
        SessionState::Syncing,
        "an old sync's answer is not ours"
    );
    h.feed(
        &[
            b"\xff".as_slice(),
            format!("{{\"return\": {token}}}\n").as_bytes(),
        ]
        .concat(),
    );
    assert_eq!(h.client.state(), SessionState::Running);
    h.feed(br#"{"return": {}, "id": 12345}"#);
    assert_eq!(h.client.stats().unknown_replies, 1);
    let sent = h.sent_requests();
    assert_eq!(sent, [json!({"execute": "guest-ping", "id": h.wire(ping)})]);
    h.answer(ping, "{}");
    assert_eq!(h.result(ping), &Ok(json!({})));
}

#[test]
fn agent_sync_timeout_is_clear() {
    let mut h = Harness::new(Config::qga().sync_timeout(Duration::from_secs(2)));
    let ping = h.exec(Request::new("guest-ping"));
    h.advance(Duration::from_secs(2));
    assert_eq!(h.closed(), Some(&CloseReason::SyncTimeout));
    assert_eq!(
        h.result(ping),
        &Err(RequestError::Interrupted(CloseReason::SyncTimeout))
    );
}

#[test]
fn agent_resyncs_after_a_timeout_and_on_demand() {
    let mut h = Harness::new(Config::qga().sync_on_start(false));
    assert_eq!(h.client.state(), SessionState::Running);
    let slow = h.exec(Request::new("guest-fsfreeze-freeze").timeout(Duration::from_secs(1)));
    h.take_sent();
    h.advance(Duration::from_secs(1));
    assert_eq!(h.result(slow), &Err(RequestError::Timeout));
    let sent = h.take_sent();
    let token = sync_token(&sent);
    let next = h.exec(Request::new("guest-ping"));
    assert!(h.sent.is_empty(), "held until the resync completes");
    // The late reply comes before the delimiter and is discarded with it.
    let late = format!("{{\"return\": 3, \"id\": {}}}\n", h.wire(slow));
    let answer = format!("{{\"return\": {token}}}\n");
    h.feed(&[late.as_bytes(), b"\xff", answer.as_bytes()].concat());
    assert_eq!(
        h.sent_requests(),
        [json!({"execute": "guest-ping", "id": h.wire(next)})]
    );
    h.answer(next, "{}");
    assert!(h.result(next).is_ok());

    h.client.resync(h.now);
    h.drain();
    let again = sync_token(&h.take_sent());
    assert_ne!(again, token, "every sync has a fresh id");
}

#[test]
fn agent_shutdown_completes_when_written() {
    let mut h = Harness::new(Config::qga().sync_on_start(false));
    let id = h
        .client
        .execute(h.now, Request::new("guest-shutdown"))
        .unwrap();
    let tx = h.client.poll_transmit().unwrap();
    let len = tx.bytes.len();
    assert!(
        !tx.bytes.windows(4).any(|w| w == b"\"id\""),
        "no id: no reply will come"
    );
    h.client.consume_transmit(len - 1);
    assert!(h.client.poll_output().is_none());
    h.client.consume_transmit(1);
    h.drain();
    assert_eq!(h.result(id), &Ok(Value::Null));
}

#[test]
fn agent_event_shaped_messages_are_handled() {
    let mut h = Harness::new(Config::qga().sync_on_start(false));
    h.feed(b"{\"event\": \"SOMETHING\"}\n");
    assert_eq!(h.events.len(), 1);
    assert!(h.closed().is_none());
}

#[test]
fn every_request_has_a_deadline_by_default_and_huge_ones_mean_none() {
    let mut h = Harness::running(true);
    let plain = h.exec(Request::new("query-status"));
    let forever = h.exec(Request::new("query-name").timeout(Duration::MAX));
    h.advance(Duration::from_secs(30));
    assert_eq!(h.result(plain), &Err(RequestError::Timeout));
    assert!(h.client.is_open(forever), "Duration::MAX never expires");
    let mut h = Harness::new(Config::qmp().request_timeout(None));
    h.feed(&greeting(true));
    h.feed(br#"{"return": {}, "id": 0}"#);
    let id = h.exec(Request::new("query-status"));
    h.advance(Duration::from_secs(3600));
    assert!(h.client.is_open(id));
}

#[test]
fn a_second_greeting_ends_the_session() {
    let mut h = Harness::running(true);
    let id = h.exec(Request::new("query-status"));
    h.feed(&greeting(true));
    assert_eq!(h.closed(), Some(&CloseReason::UnexpectedGreeting));
    assert!(matches!(h.result(id), Err(RequestError::Interrupted(_))));
}

#[test]
fn a_greeting_repeated_during_the_negotiation_is_dropped() {
    let mut h = Harness::new(Config::qmp());
    h.feed(&greeting(true));
    h.feed(&greeting(true));
    h.feed(br#"{"return": {}, "id": 0}"#);
    assert_eq!(h.client.state(), SessionState::Running);
    assert_eq!(h.closed(), None);
    assert_eq!(h.client.stats().unrecognized, 1);
}

#[test]
fn a_greeting_not_waited_for_is_recorded_once() {
    let mut h = Harness::new(Config::qmp().await_greeting(false));
    assert_eq!(h.client.state(), SessionState::Negotiating);
    h.feed(&greeting(true));
    assert!(h.client.greeting().is_some());
    assert_eq!(h.closed(), None);
    h.feed(br#"{"return": {}, "id": 0}"#);
    assert_eq!(h.client.state(), SessionState::Running);
}

#[test]
fn closing_an_agent_reads_the_replies_it_still_owes() {
    let mut h = Harness::new(Config::qga().sync_on_start(false));
    let slow = h.exec(Request::new("guest-info"));
    h.take_sent();
    h.client.close(h.now);
    h.drain();
    assert_eq!(
        h.result(slow),
        &Err(RequestError::Interrupted(CloseReason::Local)),
        "the caller does not wait for the linger"
    );
    assert_eq!(h.client.state(), SessionState::Disconnecting);
    assert!(h.closed().is_none());
    assert!(h.client.execute(h.now, Request::new("guest-ping")).is_err());
    h.feed(format!(r#"{{"return": {{}}, "id": {}}}"#, h.wire(slow)).as_bytes());
    assert_eq!(h.closed(), Some(&CloseReason::Local));
    assert_eq!(h.client.stats().late_replies, 1);
}

#[test]
fn the_linger_is_bounded() {
    let mut h = Harness::new(Config::qga().sync_on_start(false));
    h.exec(Request::new("guest-info"));
    h.client.close(h.now);
    h.drain();
    h.advance(Config::qga().close_linger);
    assert_eq!(h.closed(), Some(&CloseReason::Local));
    // A QMP session owes nothing worth waiting for: it closes at once.
    let mut h = Harness::running(true);
    h.exec(Request::new("query-status"));
    h.client.close(h.now);
    h.drain();
    assert_eq!(h.closed(), Some(&CloseReason::Local));
}

#[test]
fn traffic_is_recorded_when_asked() {
    let mut h = Harness::new(Config::qmp().record_traffic(true));
    h.feed(&greeting(true));
    h.feed(br#"{"return": {}, "id": 0}"#);
    h.exec(Request::new("query-status"));
    let log: Vec<_> = std::iter::from_fn(|| h.client.poll_traffic()).collect();
    let dirs: Vec<_> = log.iter().map(|t| t.direction).collect();
    use qmp_core::Direction::{Received, Sent};
    assert_eq!(dirs, [Received, Sent, Received, Sent]);
    assert!(
        log[1]
            .bytes
            .starts_with(br#"{"execute":"qmp_capabilities""#)
    );
    assert_eq!(log[3].bytes, br#"{"execute":"query-status","id":1}"#);
    let mut quiet = Harness::running(true);
    quiet.exec(Request::new("query-status"));
    assert!(quiet.client.poll_traffic().is_none());
}

#[test]
fn descriptors_wait_for_the_previous_set_even_when_its_caller_gave_up() {
    let mut h = Harness::running(true);
    let first = h.exec(Request::new("getfd").with_fds());
    let second = h.exec(Request::new("getfd").with_fds());
    assert_eq!(
        h.sent_requests().len(),
        1,
        "one set of descriptors at a time"
    );
    assert!(h.client.cancel(first));
    h.drain();
    assert!(h.sent_requests().is_empty(), "its reply may still be due");
    h.answer(first, "{}");
    assert_eq!(h.sent_requests().len(), 1);
    h.answer(second, "{}");
    assert_eq!(h.result(second), &Ok(json!({})));
}

#[test]
fn a_bad_reply_ends_its_own_request_and_nothing_else() {
    let mut h = Harness::running(true);
    let shapes = [
        r#"{"id": ID}"#,
        r#"{"id": ID, "return": {}, "error": {"class": "GenericError", "desc": "x"}}"#,
        r#"{"id": ID, "error": "not an object"}"#,
        r#"{"id": ID, "error": {"desc": "no class"}}"#,
    ];
    for shape in shapes {
        let bad = h.exec(Request::new("query-status"));
        let good = h.exec(Request::new("query-name"));
        let text = shape.replace("ID", &h.wire(bad).to_string());
        h.feed(text.as_bytes());
        h.answer(good, "{}");
        assert_eq!(
            h.result(bad),
            &Err(RequestError::BadReply { message: text }),
            "{shape}"
        );
        assert_eq!(h.result(good), &Ok(json!({})));
    }
    assert_eq!(h.closed(), None, "the session goes on");
    assert_eq!(h.client.state(), SessionState::Running);
}

#[test]
fn a_server_error_names_its_request_and_keeps_the_object() {
    let mut h = Harness::running(true);
    let id = h.exec(Request::new("device_del"));
    let text = format!(
        r#"{{"id": {}, "error": {{"class": "DeviceNotFound", "desc": "Device 'x' not found", "extra": 1}}}}"#,
        h.wire(id)
    );
    h.feed(text.as_bytes());
    match h.result(id) {
        Err(RequestError::Server(e)) => {
            assert_eq!(e.class, ErrorClass::DeviceNotFound);
            assert_eq!(e.request, Some(id));
            assert_eq!(e.command.as_deref(), Some("device_del"));
            assert_eq!(e.raw["extra"], 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_reply_to_the_negotiation_ends_the_session() {
    let mut h = Harness::new(Config::qmp());
    h.feed(&greeting(true));
    h.feed(br#"{"id": 0, "error": 5}"#);
    assert!(
        matches!(h.closed(), Some(CloseReason::BadReply { message }) if message.contains("\"error\": 5"))
    );
}

#[test]
fn raw_messages_keep_the_callers_id_and_return_the_whole_reply() {
    let mut h = Harness::running(true);
    let mine = h
        .client
        .execute_raw(
            h.now,
            json!({"execute": "query-status", "id": "mine"}),
            None,
        )
        .unwrap();
    let numbered = h
        .client
        .execute_raw(h.now, json!({"execute": "no-such"}), None)
        .unwrap();
    h.issued.push(numbered);
    h.drain();
    let sent = h.sent_requests();
    assert_eq!(sent[0], json!({"execute": "query-status", "id": "mine"}));
    assert_eq!(sent[1]["id"], h.wire(numbered));
    h.feed(br#"{"return": {"status": "running"}, "id": "mine", "extra": 1}"#);
    let err = format!(
        r#"{{"error": {{"class": "CommandNotFound", "desc": "x"}}, "id": {}}}"#,
        h.wire(numbered)
    );
    h.feed(err.as_bytes());
    assert_eq!(
        h.result(mine),
        &Ok(json!({"return": {"status": "running"}, "id": "mine", "extra": 1}))
    );
    let whole = h.result(numbered).as_ref().unwrap();
    assert_eq!(
        whole["error"]["class"], "CommandNotFound",
        "errors are data"
    );
}

#[test]
fn raw_messages_refuse_ids_that_are_taken_and_objects_that_are_not_requests() {
    let mut h = Harness::running(true);
    let open = json!({"execute": "query-status", "id": ["a", 1]});
    h.client.execute_raw(h.now, open.clone(), None).unwrap();
    for (message, what) in [
        (open, "an id in flight"),
        (json!({"execute": "x", "id": 7}), "the engine's id space"),
    ] {
        assert!(
            matches!(
                h.client.execute_raw(h.now, message, None),
                Err(SubmitError::IdUnavailable { .. })
            ),
            "{what}"
        );
    }
    for message in [
        json!([1]),
        json!({"id": "x"}),
        json!({"execute": "a", "exec-oob": "b"}),
        json!({"execute": "a", "arguments": 1}),
    ] {
        assert!(
            matches!(
                h.client.execute_raw(h.now, message.clone(), None),
                Err(SubmitError::NotARequest { .. })
            ),
            "{message}"
        );
    }
    // A negative or fractional id is the caller's to choose.
    assert!(
        h.client
            .execute_raw(h.now, json!({"execute": "x", "id": -1}), None)
            .is_ok()
    );
}

#[test]
fn a_reply_too_large_to_decode_fails_alone_and_an_oversized_event_is_counted() {
    let config = Config::qmp().max_message_size(1 << 20);
    let mut h = Harness::new(config);
    h.feed(&greeting(true));
    h.feed(br#"{"return": {}, "id": 0}"#);
    let big = h.exec(Request::new("query-status"));
    let next = h.exec(Request::new("query-name"));
    // Under the message cap, but some 16 times its size as a Value.
    let zeros = "0,".repeat(400_000);
    let text = format!(r#"{{"return": [{zeros}0], "id": {}}}"#, h.wire(big));
    let event = format!(r#"{{"event": "HUGE", "data": [{zeros}0]}}"#);
    for chunk in text.as_bytes().chunks(64 * 1024) {
        h.feed(chunk);
    }
    h.feed(event.as_bytes());
    h.answer(next, "{}");
    match h.result(big) {
        Err(RequestError::TooLarge { bytes, limit, .. }) => {
            assert_eq!((*bytes, *limit), (zeros.len() + 3, 4 << 20));
        }
        other => panic!("{other:?}"),
    }
    // Kept as its text, it still decodes typed: no `Value` to amplify.
    let typed: Vec<u8> = h.reply(big).decode().unwrap();
    assert_eq!(typed.len(), 400_001);
    assert_eq!(h.result(next), &Ok(json!({})));
    assert!(h.events.is_empty());
    assert_eq!(h.client.stats().oversized, 1);
    assert_eq!(h.closed(), None);
}
