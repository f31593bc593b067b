//! The async adapters against a scripted server on a socket pair: what
//! QEMU never does on purpose (garbage, truncated and reordered replies,
//! floods of events, a peer that stops reading). One source for every
//! runtime: [`suite!`] makes one `#[test]` of each case for a runtime
//! (`smol_faults.rs`, `tokio_faults.rs`).

#![allow(clippy::std_instead_of_core)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_lite::{StreamExt, future};
use qmp_async::{CloseCause, Driver, Error, EventFilter, Options, Qmp};
use qmp_core::CloseReason;
use serde_json::{Value, json};
use tests::exec::Exec;

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "scripted"}, "capabilities": ["oob"]}}"#;

/// The server's end of the pair, driven by a script on a thread.
struct Peer {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Peer {
    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    /// The next request, whatever its framing.
    fn recv(&mut self) -> Value {
        tests::read_json(&mut self.stream, &mut self.buf)
            .expect("a request from the client")
            .expect("the client closed the connection")
    }

    /// Greets and accepts the negotiation.
    fn handshake(&mut self) {
        self.send(GREETING);
        let caps = self.recv();
        assert_eq!(caps["execute"], "qmp_capabilities");
        assert_eq!(caps["arguments"]["enable"], json!(["oob"]));
        self.reply(&caps, json!({}));
    }

    fn reply(&mut self, request: &Value, value: Value) {
        let msg = json!({"return": value, "id": request["id"]});
        self.send(&format!("{msg}\r\n"));
    }

    fn event(&mut self, name: &str, data: Value) {
        let msg =
            json!({"event": name, "data": data, "timestamp": {"seconds": 1, "microseconds": 2}});
        self.send(&format!("{msg}\r\n"));
    }
}

/// A handle and its driver on the runtime `R`.
type Connected<R> = (Qmp<R>, Driver<R>);

/// A connected client and a server running `script`.
fn scripted<E: Exec>(
    options: Options,
    script: impl FnOnce(&mut Peer) + Send + 'static,
) -> (
    impl Future<Output = Result<Connected<E::R>, Error>>,
    JoinHandle<()>,
) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || {
        let mut peer = Peer {
            stream: theirs,
            buf: Vec::new(),
        };
        script(&mut peer);
        // Keep the connection until the client closes it.
        let mut sink = Vec::new();
        let _ = peer.stream.read_to_end(&mut sink);
    });
    (Qmp::from_unix_stream(ours, options), server)
}

pub(crate) fn events_during_the_handshake_and_pretty_printed_replies<E: Exec>() {
    let (connect, server) = scripted::<E>(Options::default(), |peer| {
        peer.event("EARLY", json!({}));
        peer.send(GREETING);
        peer.event("DURING", json!({}));
        let caps = peer.recv();
        peer.event("DURING", json!({}));
        peer.reply(&caps, json!({}));
        let req = peer.recv();
        peer.event("LATER", json!({"n": 1}));
        let id = req["id"].clone();
        peer.send(&format!(
            "{{\n    \"return\": {{\n        \"status\": \"running\",\n        \"running\": true\n    }},\n    \"id\": {id}\n}}\n"
        ));
    });
    E::run("pretty", async move {
        let (qmp, driver) = connect.await.unwrap();
        let later = qmp.wait_event("LATER", Duration::from_secs(10));
        // Events that arrived during the handshake wait for the driver's
        // first turn: a subscriber made before it sees them too.
        let all = qmp.subscribe(EventFilter::all());
        let driver = E::spawn(driver);
        assert_eq!(qmp.greeting().unwrap().package, "scripted");
        let status = qmp.execute("query-status", Value::Null).await.unwrap();
        assert_eq!(status["status"], "running");
        assert_eq!(later.await.unwrap().data().unwrap()["n"], 1);
        qmp.disconnect();
        driver.await;
        let names: Vec<_> = all.map(|e| e.name).collect().await;
        assert_eq!(names, ["EARLY", "DURING", "DURING", "LATER"]);
    });
    server.join().unwrap();
}

pub(crate) fn replies_out_of_order_reach_their_callers_and_unknown_ids_are_dropped<E: Exec>() {
    let (connect, server) = scripted::<E>(Options::default(), |peer| {
        peer.handshake();
        let reqs: Vec<Value> = (0..8).map(|_| peer.recv()).collect();
        peer.send("{\"return\": \"stray\", \"id\": 999999}\r\n");
        peer.send("{\"return\": \"foreign\", \"id\": \"not-ours\"}\r\n");
        for r in reqs.iter().rev() {
            let name = r["execute"].as_str().unwrap().to_owned();
            peer.reply(r, json!(name));
        }
    });
    E::run("reordered", async move {
        let (qmp, driver) = connect.await.unwrap();
        let driver = E::spawn(driver);
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let qmp = qmp.clone();
                E::spawn(async move {
                    let name = format!("cmd-{i}");
                    let got = qmp.execute(&name, Value::Null).await.unwrap();
                    assert_eq!(got, json!(name));
                })
            })
            .collect();
        for c in calls {
            c.await;
        }
        qmp.disconnect();
        driver.await;
        assert_eq!(qmp.stats().unknown_replies, 2, "{:?}", qmp.stats());
    });
    server.join().unwrap();
}

/// The cause in a call's error: `Interrupted` for a call that was
/// waiting when the connection ended, `Closed` for one made afterwards.
fn cause_of(r: Result<Value, Error>, was_waiting: bool) -> CloseCause {
    match r {
        Err(Error::Interrupted(c)) if was_waiting => c,
        Err(Error::Closed(c)) if !was_waiting => c,
        other => panic!("expected the connection's end (waiting: {was_waiting}), got {other:?}"),
    }
}

pub(crate) fn garbage_truncation_and_id_less_errors_close_with_the_reason<E: Exec>() {
    type Check = fn(&CloseCause) -> bool;
    let cases: [(&str, Check); 3] = [
        ("this is not json\r\n", |c| {
            matches!(c, CloseCause::Session(CloseReason::Malformed { .. }))
        }),
        ("{\"return\": {\"status\": \"run", |c| {
            matches!(c, CloseCause::Session(CloseReason::UnexpectedEof { .. }))
        }),
        (
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\r\n",
            |c| matches!(c, CloseCause::Session(CloseReason::ServerParseError(_))),
        ),
    ];
    for (bytes, check) in cases {
        let (connect, server) = scripted::<E>(Options::default(), move |peer| {
            peer.handshake();
            let _ = peer.recv();
            peer.send(bytes);
            peer.stream.shutdown(std::net::Shutdown::Write).unwrap();
        });
        E::run("fault", async move {
            let (qmp, driver) = connect.await.unwrap();
            let mut sub = qmp.subscribe(EventFilter::all());
            let driver = E::spawn(driver);
            let cause = cause_of(qmp.execute("query-status", None).await, true);
            assert!(check(&cause), "{bytes:?} closed with {cause:?}");
            assert!(sub.next().await.is_none());
            let from_driver = driver.await;
            assert!(check(&from_driver), "{from_driver:?}");
            assert_eq!(from_driver.to_string(), cause.to_string());
            let later = cause_of(qmp.execute("query-status", None).await, false);
            assert!(check(&later), "{later:?}");
        });
        server.join().unwrap();
    }
}

pub(crate) fn a_flood_of_events_reaches_a_large_subscriber_whole_and_in_order<E: Exec>() {
    const EVENTS: u64 = 4_000;
    let (connect, server) = scripted::<E>(Options::default(), |peer| {
        peer.handshake();
        let go = peer.recv();
        // All at once, in as few writes as possible.
        let mut flood = String::new();
        for n in 0..EVENTS {
            flood.push_str(&format!("{{\"event\":\"T\",\"data\":{{\"n\":{n}}}}}"));
        }
        peer.send(&flood);
        peer.reply(&go, json!({}));
    });
    E::run("flood", async move {
        let (qmp, driver) = connect.await.unwrap();
        let mut whole = qmp.subscribe_with_capacity::<4096>("T");
        let mut small = qmp.subscribe_with_capacity::<16>("T");
        let mut odd = qmp.subscribe(EventFilter::predicate(|e| {
            e.data().unwrap()["n"].as_u64().is_some_and(|n| n % 2 == 1)
        }));
        let driver = E::spawn(driver);
        let odd_reader = E::spawn(async move {
            // It may fall behind (and lose the oldest), never reorder.
            let mut seen = 0;
            let mut last = None;
            while let Some(e) = odd.next().await {
                let n = e.data().unwrap()["n"].as_u64().unwrap();
                assert_eq!(n % 2, 1);
                assert!(last.is_none_or(|l| n > l), "{n} after {last:?}");
                last = Some(n);
                seen += 1;
            }
            (seen, odd.lagged())
        });
        qmp.execute("go", Value::Null).await.unwrap();
        let mut n = 0;
        while n < EVENTS {
            let e = whole.next().await.unwrap();
            assert_eq!(e.data().unwrap()["n"].as_u64(), Some(n));
            n += 1;
        }
        assert_eq!(whole.lagged(), 0);
        // The small one kept the newest 16 and counted the rest.
        assert_eq!(small.lagged(), EVENTS - 16);
        let kept: Vec<u64> = std::iter::from_fn(|| small.try_next())
            .map(|e| e.data().unwrap()["n"].as_u64().unwrap())
            .collect();
        assert_eq!(kept, (EVENTS - 16..EVENTS).collect::<Vec<_>>());
        qmp.disconnect();
        driver.await;
        let (seen, lagged) = odd_reader.await;
        assert_eq!(seen + lagged, EVENTS / 2);
    });
    server.join().unwrap();
}

pub(crate) fn a_server_that_stops_reading_holds_writes_back_without_losing_any<E: Exec>() {
    const CALLS: usize = 64;
    let big = "x".repeat(64 * 1024);
    let (connect, server) = scripted::<E>(Options::default().max_in_flight(CALLS), move |peer| {
        peer.handshake();
        // Let the client fill the socket buffers first.
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..CALLS {
            let r = peer.recv();
            assert_eq!(r["arguments"]["blob"].as_str().unwrap().len(), 64 * 1024);
            let tag = r["arguments"]["tag"].clone();
            peer.reply(&r, tag);
        }
    });
    E::run("backpressure", async move {
        let (qmp, driver) = connect.await.unwrap();
        let driver = E::spawn(driver);
        let calls: Vec<_> = (0..CALLS)
            .map(|i| {
                let qmp = qmp.clone();
                let big = big.clone();
                E::spawn(async move {
                    let got = qmp
                        .execute("echo", json!({"tag": i, "blob": big}))
                        .await
                        .unwrap();
                    assert_eq!(got, json!(i));
                })
            })
            .collect();
        for c in calls {
            c.await;
        }
        qmp.disconnect();
        driver.await;
    });
    server.join().unwrap();
}

pub(crate) fn handshake_variants<E: Exec>() {
    // No oob offered: calls work, oob calls are refused.
    let (connect, server) = scripted::<E>(Options::default(), |peer| {
        peer.send(r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 6}, "package": ""}, "capabilities": []}}"#);
        let caps = peer.recv();
        assert!(caps.get("arguments").is_none(), "{caps}");
        peer.reply(&caps, json!({}));
        let r = peer.recv();
        peer.reply(&r, json!(1));
    });
    E::run("no oob", async move {
        let (qmp, driver) = connect.await.unwrap();
        let driver = E::spawn(driver);
        assert!(!qmp.oob_enabled());
        assert!(matches!(
            qmp.execute_oob("x", Value::Null).await,
            Err(Error::Submit(_))
        ));
        assert_eq!(qmp.execute("y", Value::Null).await.unwrap(), json!(1));
        qmp.disconnect();
        driver.await;
    });
    server.join().unwrap();

    // The negotiation fails: connecting fails with the server's words.
    let (connect, server) = scripted::<E>(Options::default(), |peer| {
        peer.send(GREETING);
        let caps = peer.recv();
        let msg =
            json!({"error": {"class": "GenericError", "desc": "not today"}, "id": caps["id"]});
        peer.send(&msg.to_string());
    });
    let err = E::run("negotiation", async move { connect.await.unwrap_err() });
    assert!(
        matches!(
            err,
            Error::Interrupted(CloseCause::Session(CloseReason::Negotiation(_)))
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("not today"), "{err}");
    server.join().unwrap();

    // The peer goes away before greeting.
    let (connect, server) = scripted::<E>(Options::default(), |peer| {
        peer.stream.shutdown(std::net::Shutdown::Both).unwrap();
    });
    let err = E::run("no greeting", async move { connect.await.unwrap_err() });
    assert!(
        matches!(
            err,
            Error::Interrupted(CloseCause::Session(CloseReason::Eof))
        ),
        "{err:?}"
    );
    server.join().unwrap();
}

/// A flood of small events, as one string.
fn flood(events: u64) -> String {
    let mut flood = String::with_capacity(40 * events as usize);
    for n in 0..events {
        flood.push_str(&format!("{{\"event\":\"T\",\"data\":{{\"n\":{n}}}}}"));
    }
    flood
}

pub(crate) fn a_prompt_subscriber_sees_a_whole_flood_and_a_slow_one_lags<E: Exec>() {
    const EVENTS: u64 = 200_000;
    let text = flood(EVENTS);
    let (connect, server) = scripted::<E>(Options::default(), move |peer| {
        peer.handshake();
        let go = peer.recv();
        peer.send(&text);
        peer.reply(&go, json!({}));
    });
    E::run("fair flood", async move {
        let (qmp, driver) = connect.await.unwrap();
        // Default-sized queues: 256 events each.
        let mut prompt = qmp.subscribe("T");
        let slow = qmp.subscribe("T");
        let driver = E::spawn(driver);
        let reader = E::spawn(async move {
            let mut n = 0;
            while n < EVENTS {
                let e = prompt.next().await.expect("the stream ended early");
                assert_eq!(e.data().unwrap()["n"].as_u64(), Some(n));
                n += 1;
            }
            prompt.lagged()
        });
        let started = std::time::Instant::now();
        qmp.execute("go", Value::Null).await.unwrap();
        assert_eq!(reader.await, 0, "a prompt subscriber lost events");
        eprintln!("{EVENTS} events in {:?}", started.elapsed());
        // The slow one never read: it kept the newest and counted the rest.
        assert_eq!(slow.len(), 256);
        assert_eq!(slow.lagged(), EVENTS - 256);
        qmp.disconnect();
        driver.await;
    });
    server.join().unwrap();
}

pub(crate) fn raw_messages_keep_their_ids_and_taken_ids_are_refused<E: Exec>() {
    let (connect, server) = scripted::<E>(Options::default(), |peer| {
        peer.handshake();
        let first = peer.recv();
        assert_eq!(first["id"], "mine");
        assert_eq!(first["arguments"], json!({"a": 1}));
        // The refused ones never reach the server: the next is this.
        let release = peer.recv();
        assert_eq!(release["execute"], "release");
        let error = json!({"error": {"class": "GenericError", "desc": "no"}, "id": ["x", 2]});
        let second = peer.recv();
        assert_eq!(second["id"], json!(["x", 2]));
        peer.send(&format!("{error}\r\n"));
        peer.reply(&release, json!({}));
        peer.send(&format!(
            "{}\r\n",
            json!({"return": {"ok": true}, "id": "mine"})
        ));
    });
    E::run("raw", async move {
        let (qmp, driver) = connect.await.unwrap();
        let driver = E::spawn(driver);
        // Polled once: handed to the driver, ahead of the next call.
        let mut mine =
            Box::pin(qmp.execute_raw(json!({"execute": "x", "arguments": {"a": 1}, "id": "mine"})));
        assert!(future::poll_once(&mut mine).await.is_none());
        let refused = qmp
            .execute_raw(json!({"execute": "y", "id": "mine"}))
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::Submit(_)), "{refused:?}");
        assert!(refused.to_string().contains("\"mine\""), "{refused}");
        let numeric = qmp.execute_raw(json!({"execute": "y", "id": 5})).await;
        assert!(matches!(numeric, Err(Error::Submit(_))), "{numeric:?}");
        let release = qmp.execute("release", Value::Null);
        let second = qmp.execute_raw(json!({"execute": "z", "id": ["x", 2]}));
        let (release, second) = future::zip(release, second).await;
        release.unwrap();
        // An error reply is data.
        assert_eq!(second.unwrap()["error"]["desc"], "no");
        let mine = mine.await.unwrap();
        assert_eq!(mine, json!({"return": {"ok": true}, "id": "mine"}));
        qmp.disconnect();
        driver.await;
    });
    server.join().unwrap();
}

pub(crate) fn unclaimed_events_wait_in_the_default_queue<E: Exec>() {
    let (connect, server) = scripted::<E>(Options::default(), |peer| {
        peer.event("EARLY", json!({}));
        peer.handshake();
        let r = peer.recv();
        peer.event("LATER", json!({}));
        peer.reply(&r, json!({}));
        let r = peer.recv();
        peer.event("X", json!({"n": 1}));
        peer.event("Y", json!({}));
        peer.event("X", json!({"n": 2}));
        peer.reply(&r, json!({}));
    });
    E::run("default queue", async move {
        let (qmp, driver) = connect.await.unwrap();
        let driver = E::spawn(driver);
        qmp.execute("a", Value::Null).await.unwrap();
        let mut events = qmp.events();
        let names: Vec<_> = events.clear().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["EARLY", "LATER"]);
        assert!(events.is_empty());
        let mut x = qmp.subscribe("X");
        qmp.execute("b", Value::Null).await.unwrap();
        // A subscriber's events are its own; the rest stay unclaimed.
        let ns: Vec<_> = x
            .clear()
            .into_iter()
            .map(|e| e.data().unwrap()["n"].clone())
            .collect();
        assert_eq!(ns, [json!(1), json!(2)]);
        assert!(x.clear().is_empty());
        assert_eq!(events.next().await.unwrap().name, "Y");
        assert_eq!(events.lagged(), 0);
        qmp.disconnect();
        driver.await;
        assert!(
            events.next().await.is_none(),
            "the queue ends with the connection"
        );
    });
    server.join().unwrap();
}

pub(crate) fn the_history_answers_whether_an_event_happened<E: Exec>() {
    let (connect, server) = scripted::<E>(Options::default().event_history(2), |peer| {
        peer.handshake();
        let r = peer.recv();
        for name in ["A", "B", "C"] {
            peer.event(name, json!({}));
        }
        peer.reply(&r, json!({}));
        let r = peer.recv();
        peer.event("D", json!({}));
        peer.reply(&r, json!({}));
    });
    E::run("history", async move {
        let (qmp, driver) = connect.await.unwrap();
        let driver = E::spawn(driver);
        let taken = qmp.subscribe(EventFilter::all());
        qmp.execute("a", Value::Null).await.unwrap();
        let names = |v: Vec<qmp_async::Event>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
        // Kept whether or not someone took them; the oldest forgotten.
        assert_eq!(names(qmp.history()), ["B", "C"]);
        assert_eq!(taken.len(), 3);
        assert!(qmp.happened("A").is_none());
        assert_eq!(qmp.happened(["C", "Z"]).unwrap().name, "C");
        let c = qmp
            .wait_happened("C", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(c.name, "C");
        // Not yet happened: waits for it.
        let d = qmp.wait_happened("D", Duration::from_secs(10));
        let mut replay = qmp.subscribe_with_history(["B", "D"]);
        qmp.execute("b", Value::Null).await.unwrap();
        assert_eq!(d.await.unwrap().name, "D");
        assert_eq!(names(replay.clear()), ["B", "D"]);
        qmp.disconnect();
        driver.await;
    });
    server.join().unwrap();
}

pub(crate) fn runstates_are_observed_in_order_with_the_close_cause<E: Exec>() {
    use qmp_core::SessionState::{AwaitingGreeting, Closed, Disconnecting, Negotiating, Running};
    let (connect, server) = scripted::<E>(Options::default(), |peer| {
        peer.handshake();
        let r = peer.recv();
        peer.reply(&r, json!({}));
    });
    E::run("runstates", async move {
        let (qmp, driver) = connect.await.unwrap();
        let mut states = qmp.runstates();
        let driver = E::spawn(driver);
        // What happened before the handle existed is there too.
        assert_eq!(states.next().await, Some(AwaitingGreeting));
        assert_eq!(states.next().await, Some(Negotiating));
        assert_eq!(states.next().await, Some(Running));
        assert!(states.close_cause().is_none());
        let watcher = E::spawn(async move {
            let mut rest = Vec::new();
            while let Some(state) = states.next().await {
                rest.push(state);
            }
            (rest, states.close_cause())
        });
        qmp.execute("a", Value::Null).await.unwrap();
        qmp.disconnect();
        driver.await;
        let (rest, cause) = watcher.await;
        let rest: Vec<_> = rest.into_iter().filter(|s| *s != Disconnecting).collect();
        assert_eq!(rest, [Closed]);
        assert!(
            matches!(cause, Some(CloseCause::Session(CloseReason::Local))),
            "{cause:?}"
        );
        // A late watcher sees the whole story, then the end.
        let all: Vec<_> = qmp.runstates().collect().await;
        assert_eq!(all.first(), Some(&AwaitingGreeting));
        assert_eq!(all.last(), Some(&Closed));
    });
    server.join().unwrap();
}

pub(crate) fn handles_and_futures_are_send_and_sync<E: Exec>() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Qmp<E::R>>();
    send_sync::<qmp_async::Agent<E::R>>();
    send_sync::<qmp_async::Subscription>();
    send_sync::<Error>();
    send_sync::<CloseCause>();
    let (ours, _theirs) = UnixStream::pair().unwrap();
    let connect = Qmp::<E::R>::from_unix_stream(ours, Options::default());
    send(&connect);
    let _: Option<fn(Driver<E::R>)> = Some(|d: Driver<E::R>| {
        fn spawnable<T: Send + 'static>(_: T) {}
        spawnable(d)
    });
    // A call's future can move between threads.
    let _ = |qmp: Qmp<E::R>| {
        let f = async move { qmp.execute("x", Value::Null).await };
        send(&f);
        let _ = future::block_on(future::poll_once(Box::pin(f)));
    };
}

/// A call's timer is kept for the next call, armed for the earlier
/// limit: going off early, it must not end the next call, whose limit is
/// later. (The driver's alarm is kept the same way.)
pub(crate) fn a_call_outlives_the_timer_a_shorter_call_left_armed<E: Exec>() {
    const SLOW: Duration = Duration::from_millis(300);
    let (connect, server) = scripted::<E>(Options::default(), |peer| {
        peer.handshake();
        let quick = peer.recv();
        peer.reply(&quick, json!({"n": 1}));
        let slow = peer.recv();
        // A slow server: well past the first call's limit, so the timers
        // armed for it go off while the second call waits.
        std::thread::sleep(SLOW);
        peer.reply(&slow, json!({"n": 2}));
    });
    E::run("kept timer", async move {
        let (qmp, driver) = connect.await.unwrap();
        let driver = E::spawn(driver);
        let short = qmp.with_timeout(Duration::from_millis(50));
        let quick = short.execute("query-status", Value::Null).await.unwrap();
        assert_eq!(quick["n"], 1);
        let started = std::time::Instant::now();
        let slow = qmp.execute("query-status", Value::Null).await.unwrap();
        assert_eq!(slow["n"], 2);
        assert!(started.elapsed() >= SLOW);
        qmp.disconnect();
        driver.await;
    });
    server.join().unwrap();
}

/// Far shorter than any limit the parked call or the connection set
/// (the handshake's alarm, left armed, goes off after 10 s), and still
/// generous for a loaded machine.
const NOT_HELD_UP: Duration = Duration::from_secs(5);

/// A call whose future was polled once and then kept unpolled leaves its
/// request sent; the connection still reads for everyone else: an event
/// reaches a subscriber and another call gets its reply, long before the
/// parked call's own limit. The parked call gets its reply when polled.
pub(crate) fn a_call_kept_but_not_polled_holds_up_no_one_else<E: Exec>() {
    let (go, went) = std::sync::mpsc::channel::<()>();
    let (connect, server) = scripted::<E>(Options::default(), move |peer| {
        peer.handshake();
        let parked = peer.recv();
        // Only once the parked call's first poll is over.
        went.recv().unwrap();
        peer.event("X", json!({}));
        let other = peer.recv();
        peer.reply(&other, json!({"n": 2}));
        peer.reply(&parked, json!({"n": 1}));
    });
    E::run("parked call", async move {
        let (qmp, driver) = connect.await.unwrap();
        let driver = E::spawn(driver);
        let mut events = qmp.subscribe(EventFilter::all());
        let patient = qmp.with_timeout(Duration::from_secs(600));
        let mut parked = Box::pin(patient.execute("query-status", Value::Null));
        assert!(future::poll_once(&mut parked).await.is_none());
        go.send(()).unwrap();
        let limit = async {
            E::sleep(NOT_HELD_UP).await;
            None
        };
        let event = future::or(events.next(), limit).await;
        assert_eq!(
            event
                .expect("the event, well before the parked call's limit")
                .name,
            "X"
        );
        let other = qmp.execute("query-name", Value::Null);
        let other = future::or(async { Some(other.await) }, async {
            E::sleep(NOT_HELD_UP).await;
            None
        });
        assert_eq!(
            other.await.expect("the other call's reply").unwrap()["n"],
            2
        );
        assert_eq!(parked.await.unwrap()["n"], 1);
        qmp.disconnect();
        driver.await;
    });
    server.join().unwrap();
}

/// One `#[test]` per case above, on the runtime `$exec` (a [`Exec`]).
macro_rules! suite {
    ($exec:ty) => {
        $crate::async_faults::suite!(@ $exec;
            events_during_the_handshake_and_pretty_printed_replies,
            replies_out_of_order_reach_their_callers_and_unknown_ids_are_dropped,
            garbage_truncation_and_id_less_errors_close_with_the_reason,
            a_flood_of_events_reaches_a_large_subscriber_whole_and_in_order,
            a_server_that_stops_reading_holds_writes_back_without_losing_any,
            handshake_variants,
            handles_and_futures_are_send_and_sync,
            a_prompt_subscriber_sees_a_whole_flood_and_a_slow_one_lags,
            raw_messages_keep_their_ids_and_taken_ids_are_refused,
            unclaimed_events_wait_in_the_default_queue,
            the_history_answers_whether_an_event_happened,
            runstates_are_observed_in_order_with_the_close_cause,
            a_call_outlives_the_timer_a_shorter_call_left_armed,
            a_call_kept_but_not_polled_holds_up_no_one_else
        );
    };
    (@ $exec:ty; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                $crate::async_faults::$case::<$exec>();
            }
        )*
    };
}
pub(crate) use suite;
