//! Fault injection: a scripted misbehaving QMP server, and the matrix of
//! cases every client adapter must survive.
//!
//! The server listens on a Unix socket in a private temporary directory and
//! plays a [`Script`] on a thread: send bytes (whole, or a byte at a time
//! with pauses), pause, read requests, stop reading, close. Each case in the
//! matrix runs one script against one adapter through the [`Adapter`]
//! trait, and asserts the exact outcome (the typed error, normalised into
//! [`Got`], or the correct value) and that it came within a generous bound:
//! the point is that nothing hangs, not how fast it is.
//!
//! `fault_std.rs` implements [`Adapter`] for the blocking client,
//! `fault_async/mod.rs` once for both async ones; `fault_std.rs`,
//! `fault_smol.rs` and `fault_tokio.rs` expand [`fault_matrix!`] into one
//! `#[test]` per case.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use qmp_core::{CloseReason, ErrorClass, Event};
// One error type for both adapters: `qmp_smol::Error` is this same type.
use qmp_std::{CloseCause, Error};
use serde_json::{Value, json};
use tests::{QemuServer, TempDir};

/// The greeting of a QEMU 7.2 that offers `oob`.
pub(crate) const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "scripted"}, "capabilities": ["oob"]}}"#;

/// The reply to `qmp_capabilities`, which always has id 0.
const CAPS_REPLY: &str = "{\"return\": {}, \"id\": 0}\r\n";

/// Stream offset of the first byte after a plain handshake.
const AFTER_HANDSHAKE: u64 = (GREETING.len() + 2 + CAPS_REPLY.len()) as u64;

/// The default maximum message size of both adapters.
const TEN_MIB: usize = 10 * 1024 * 1024;

/// Bound on how long any case may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(60);

/// How a call, a connect or a wait ended, in terms common to every adapter.
/// Each adapter checks its own typed error before mapping it here.
#[derive(Debug, PartialEq)]
pub(crate) enum Got {
    /// The call's `return` value.
    Value(Value),
    /// QEMU's own error.
    Server(ErrorClass, String),
    /// The call's (or the wait's) deadline passed.
    Timeout,
    /// The greeting and negotiation did not finish in time; `sent`: the
    /// error said the greeting had arrived and `qmp_capabilities` was
    /// sent, not answered.
    HandshakeTimeout { sent: bool },
    /// The session ended for this engine reason.
    Closed(CloseReason),
    /// The socket failed with this kind of error.
    Io(ErrorKind),
    /// The reply was neither a return nor an error: the message received.
    BadReply(String),
    /// The reply would take more than this many bytes decoded.
    TooLarge(usize),
    /// Anything else, described.
    Other(String),
}

impl Got {
    /// How a call ended, the same for every adapter: they share one
    /// error type.
    pub(crate) fn from_result(r: Result<Value, Error>) -> Got {
        match r {
            Ok(v) => Got::Value(v),
            Err(e) => Got::from_error(e),
        }
    }

    /// How a call, a connect or a wait failed.
    pub(crate) fn from_error(e: Error) -> Got {
        match e {
            Error::Server(e) => Got::Server(e.class, e.desc),
            Error::BadReply { message } => Got::BadReply(message),
            Error::TooLarge { limit, .. } => Got::TooLarge(limit),
            // The only wait of a connect, after the socket, is the handshake.
            Error::Timeout { waiting_for, .. } if waiting_for.contains("greeting") => {
                Got::HandshakeTimeout {
                    sent: waiting_for.contains("the greeting arrived; `qmp_capabilities` was sent"),
                }
            }
            Error::Timeout { .. } => Got::Timeout,
            // A call cut short and a call made afterwards carry the same cause.
            Error::Interrupted(c) | Error::Closed(c) => match c {
                CloseCause::Session(r) => Got::Closed(r),
                CloseCause::Io(e) => Got::Io(e.kind()),
                other => Got::Other(format!("{other:?}")),
            },
            Error::Io(e) => Got::Io(e.kind()),
            other => Got::Other(format!("{other:?}")),
        }
    }

    /// Whether this is how a call ends when the peer dies: an end of file
    /// (clean or mid-message) or a reset socket.
    pub(crate) fn is_peer_gone(&self) -> bool {
        matches!(
            self,
            Got::Closed(CloseReason::Eof | CloseReason::UnexpectedEof { .. })
                | Got::Io(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
        )
    }
}

/// Client settings for one case.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Opts {
    /// The default call timeout.
    pub(crate) call: Duration,
    /// The greeting plus negotiation timeout.
    pub(crate) handshake: Duration,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            call: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
        }
    }
}

/// One client adapter, driven synchronously by the cases.
pub(crate) trait Adapter: Sized {
    /// Calls the adapter puts on the wire at once when many are made
    /// ([`calls`](Self::calls)): 1 for a blocking client, the engine's
    /// in-flight cap for a pipelining one.
    const DEPTH: usize;

    /// Connects to `path` and negotiates.
    fn connect(path: &Path, opts: Opts) -> Result<Self, Got>;
    /// One call with the default timeout.
    fn call(&mut self, name: &str, args: Value) -> Got;
    /// One call with its own timeout.
    fn call_within(&mut self, name: &str, args: Value, timeout: Duration) -> Got;
    /// `n` calls of `name`, concurrently where the adapter can.
    fn calls(&mut self, n: usize, name: &str) -> Vec<Got>;
    /// Like [`calls`](Self::calls), but an adapter that makes them one
    /// after another stops starting new ones once `window` has passed.
    /// `first_reply` runs once, as soon as the first call has succeeded:
    /// what a test does to the server mid-burst, at a point that does not
    /// depend on how fast the machine is.
    fn burst(
        &mut self,
        n: usize,
        name: &str,
        window: Duration,
        first_reply: &mut dyn FnMut(),
    ) -> Vec<Got>;
    /// Waits for the next event named `name`.
    fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Event, Got>;
    /// The events received and not yet taken.
    fn events(&mut self) -> Vec<Event>;
    /// Events held in memory right now, waiting to be taken.
    fn queued_events(&mut self) -> usize;
    /// The most events the adapter holds at once.
    fn event_capacity(&self) -> usize;
    /// Events dropped so far because the queue was full.
    fn lagged(&mut self) -> u64;
    /// Closes the connection and waits until the client let go of it.
    fn close(self);
}

// ----- the scripted server ----------------------------------------------

enum Step {
    /// Bytes to send; `$id` stands for the id of the last request read.
    Send(Vec<u8>),
    /// Bytes to send verbatim.
    SendRaw(Vec<u8>),
    /// Bytes sent `size` at a time with a pause after each write.
    Chunked {
        bytes: Vec<u8>,
        size: usize,
        pause: Duration,
    },
    Pause(Duration),
    /// Read one request and check its command name (and arguments).
    Expect {
        name: String,
        args: Option<Value>,
    },
    /// Read `n` requests, whatever they are.
    ExpectN(usize),
    /// Answer every request read and not yet answered, in reverse order,
    /// all in one write, with events between them.
    ReplyAll,
    /// Send `count` events, pausing `pause` after every tenth, without
    /// reading anything.
    Flood {
        count: usize,
        pause: Duration,
    },
    /// Wait until the test calls [`FaultServer::release`].
    Hold,
    /// Take what the client already sent, then close the connection.
    Close,
    /// Read and discard everything until the client closes.
    Drain,
}

/// What the server does, step by step.
#[derive(Default)]
pub(crate) struct Script {
    steps: Vec<Step>,
}

impl Script {
    /// An empty script.
    pub(crate) fn new() -> Self {
        Script::default()
    }

    /// The usual opening: greeting, `qmp_capabilities` with `oob`, its reply.
    pub(crate) fn greet(self) -> Self {
        self.send(&format!("{GREETING}\r\n"))
            .expect_args("qmp_capabilities", json!({"enable": ["oob"]}))
            // The same bytes as CAPS_REPLY, since the id is 0.
            .send("{\"return\": {}, \"id\": $id}\r\n")
    }

    /// Sends `text`, with `$id` replaced by the id of the last request read.
    pub(crate) fn send(mut self, text: &str) -> Self {
        self.steps.push(Step::Send(text.as_bytes().to_vec()));
        self
    }

    /// Sends `bytes` as they are.
    pub(crate) fn send_raw(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.steps.push(Step::SendRaw(bytes.into()));
        self
    }

    /// Sends `text` (with `$id` replaced) `size` bytes per write, pausing
    /// after each.
    pub(crate) fn send_chunked(mut self, text: &str, size: usize, pause: Duration) -> Self {
        self.steps.push(Step::Chunked {
            bytes: text.as_bytes().to_vec(),
            size,
            pause,
        });
        self
    }

    /// Sends an event.
    pub(crate) fn event(self, name: &str) -> Self {
        self.send(&format!(
            "{{\"event\": \"{name}\", \"data\": {{}}, \"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}}}\r\n"
        ))
    }

    /// Answers the last request read with `value`.
    pub(crate) fn reply(self, value: &str) -> Self {
        self.send(&format!("{{\"return\": {value}, \"id\": $id}}\r\n"))
    }

    /// Does nothing for `d`.
    pub(crate) fn pause(mut self, d: Duration) -> Self {
        self.steps.push(Step::Pause(d));
        self
    }

    /// Reads a request and checks that it runs `name`.
    pub(crate) fn expect(mut self, name: &str) -> Self {
        self.steps.push(Step::Expect {
            name: name.into(),
            args: None,
        });
        self
    }

    /// Reads a request and checks its name and arguments.
    pub(crate) fn expect_args(mut self, name: &str, args: Value) -> Self {
        self.steps.push(Step::Expect {
            name: name.into(),
            args: Some(args),
        });
        self
    }

    /// Reads `n` requests.
    pub(crate) fn expect_n(mut self, n: usize) -> Self {
        self.steps.push(Step::ExpectN(n));
        self
    }

    /// Answers every request read so far and not yet answered (in reverse
    /// order, one event between replies, all in one write): the reply to
    /// request `N` is `{"n": N}`.
    pub(crate) fn reply_all(mut self) -> Self {
        self.steps.push(Step::ReplyAll);
        self
    }

    /// Sends `count` `FLOOD` events (data `{"i": I}`) without reading.
    pub(crate) fn flood(mut self, count: usize, pause: Duration) -> Self {
        self.steps.push(Step::Flood { count, pause });
        self
    }

    /// Stops until the test releases the server: no reading, no writing.
    pub(crate) fn hold(mut self) -> Self {
        self.steps.push(Step::Hold);
        self
    }

    /// Closes the connection.
    pub(crate) fn close(mut self) -> Self {
        self.steps.push(Step::Close);
        self
    }

    /// Reads and discards until the client closes.
    pub(crate) fn drain(mut self) -> Self {
        self.steps.push(Step::Drain);
        self
    }
}

/// What the server saw.
#[derive(Debug, Default)]
pub(crate) struct Transcript {
    /// Every request read, in order.
    pub(crate) requests: Vec<Value>,
    /// Why the script stopped early, if a step's check failed.
    pub(crate) failure: Option<String>,
}

/// A scripted server on a Unix socket in a private directory.
pub(crate) struct FaultServer {
    path: PathBuf,
    release: mpsc::Sender<()>,
    done: mpsc::Receiver<Transcript>,
    thread: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl FaultServer {
    /// Binds the socket and starts playing `script` for the first client.
    pub(crate) fn start(script: Script) -> FaultServer {
        let dir = TempDir::new("fault");
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).expect("bind the fault server socket");
        let (release, released) = mpsc::channel();
        let (tx, done) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let transcript = match accept(&listener) {
                Some(stream) => play(stream, script, &released),
                None => Transcript {
                    failure: Some("no client connected within 20 s".into()),
                    ..Transcript::default()
                },
            };
            let _ = tx.send(transcript);
        });
        FaultServer {
            path,
            release,
            done,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// The socket's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Lets a [`Script::hold`] step go on.
    pub(crate) fn release(&self) {
        let _ = self.release.send(());
    }

    /// Waits for the script to end and returns what the server saw.
    #[track_caller]
    pub(crate) fn finish(mut self) -> Transcript {
        self.release();
        let transcript = self
            .done
            .recv_timeout(Duration::from_secs(30))
            .expect("the scripted server did not finish within 30 s");
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        transcript
    }

    /// Waits for the script to end and checks that every step passed.
    #[track_caller]
    pub(crate) fn finish_ok(self) -> Transcript {
        let t = self.finish();
        assert!(t.failure.is_none(), "server script: {:?}", t.failure);
        t
    }
}

fn accept(listener: &UnixListener) -> Option<UnixStream> {
    listener.set_nonblocking(true).ok()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok()?;
                // No step may wait forever, whatever the client does.
                s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
                s.set_write_timeout(Some(Duration::from_secs(20))).ok()?;
                return Some(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return None,
        }
    }
    None
}

/// Why a script stopped.
enum Stop {
    /// The client closed the connection: the normal end of most scripts.
    PeerGone,
    /// A check failed.
    Fail(String),
}

struct Player {
    stream: UnixStream,
    buf: Vec<u8>,
    last_id: Value,
    unanswered: Vec<Value>,
    transcript: Transcript,
}

fn play(stream: UnixStream, script: Script, released: &mpsc::Receiver<()>) -> Transcript {
    let mut p = Player {
        stream,
        buf: Vec::new(),
        last_id: Value::Null,
        unanswered: Vec::new(),
        transcript: Transcript::default(),
    };
    for step in script.steps {
        match p.step(step, released) {
            Ok(()) => {}
            Err(Stop::PeerGone) => break,
            Err(Stop::Fail(why)) => {
                p.transcript.failure = Some(why);
                break;
            }
        }
    }
    p.transcript
}

fn io_stop(e: std::io::Error) -> Stop {
    match e.kind() {
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof => {
            Stop::PeerGone
        }
        _ => Stop::Fail(format!("socket error: {e}")),
    }
}

impl Player {
    fn step(&mut self, step: Step, released: &mpsc::Receiver<()>) -> Result<(), Stop> {
        match step {
            Step::Send(bytes) => {
                let bytes = self.substitute(&bytes);
                self.write(&bytes)
            }
            Step::SendRaw(bytes) => self.write(&bytes),
            Step::Chunked { bytes, size, pause } => {
                let bytes = self.substitute(&bytes);
                for chunk in bytes.chunks(size) {
                    self.write(chunk)?;
                    std::thread::sleep(pause);
                }
                Ok(())
            }
            Step::Pause(d) => {
                std::thread::sleep(d);
                Ok(())
            }
            Step::Expect { name, args } => self.expect(&name, args),
            Step::ExpectN(n) => {
                for _ in 0..n {
                    self.read_request()?;
                }
                Ok(())
            }
            Step::ReplyAll => self.reply_all(),
            Step::Flood { count, pause } => self.flood(count, pause),
            Step::Hold => {
                // A hang guard longer than any client's default timeout.
                let _ = released.recv_timeout(Duration::from_secs(60));
                Ok(())
            }
            Step::Close => self.close(),
            Step::Drain => self.drain(),
        }
    }

    /// Reads a request and checks its name, and its arguments if given.
    fn expect(&mut self, name: &str, args: Option<Value>) -> Result<(), Stop> {
        let req = self.read_request()?;
        let got = req
            .get("execute")
            .or_else(|| req.get("exec-oob"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if got != name {
            return Err(Stop::Fail(format!("expected `{name}`, got {req}")));
        }
        if let Some(args) = args
            && req.get("arguments") != Some(&args)
        {
            return Err(Stop::Fail(format!("expected arguments {args}, got {req}")));
        }
        Ok(())
    }

    /// Answers every unanswered request, newest first, with an event
    /// between replies.
    fn reply_all(&mut self) -> Result<(), Stop> {
        let mut out = Vec::new();
        for id in self.unanswered.drain(..).rev() {
            out.extend_from_slice(
                format!("{{\"return\": {{\"n\": {id}}}, \"id\": {id}}}\r\n").as_bytes(),
            );
            out.extend_from_slice(b"{\"event\": \"BETWEEN\"}\r\n");
        }
        self.write(&out)
    }

    /// `count` events, with a pause after every ten.
    fn flood(&mut self, count: usize, pause: Duration) -> Result<(), Stop> {
        for i in 0..count {
            let ev = format!(
                "{{\"event\": \"FLOOD\", \"data\": {{\"i\": {i}}}, \"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}}}\r\n"
            );
            self.write(ev.as_bytes())?;
            if i % 10 == 9 {
                std::thread::sleep(pause);
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), Stop> {
        // Closing with unread bytes makes the client's read fail
        // with ECONNRESET instead of end of file: take them first.
        let _ = self.stream.set_nonblocking(true);
        let mut sink = [0u8; 65536];
        while matches!(self.stream.read(&mut sink), Ok(n) if n > 0) {}
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        Err(Stop::PeerGone)
    }

    /// Reads and drops everything until the client closes.
    fn drain(&mut self) -> Result<(), Stop> {
        let mut sink = [0u8; 65536];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return Err(Stop::PeerGone),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_stop(e)),
            }
        }
    }

    /// Replaces `$id` with the last request's id, which then counts as
    /// answered.
    fn substitute(&mut self, bytes: &[u8]) -> Vec<u8> {
        if bytes.windows(3).any(|w| w == b"$id") {
            let last = &self.last_id;
            self.unanswered.retain(|id| id != last);
        }
        let id = self.last_id.to_string();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i..].starts_with(b"$id") {
                out.extend_from_slice(id.as_bytes());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        self.stream.write_all(bytes).map_err(io_stop)
    }

    /// The next request, however the client framed it.
    fn read_request(&mut self) -> Result<Value, Stop> {
        let v = match tests::read_json(&mut self.stream, &mut self.buf) {
            Ok(Some(v)) => v,
            Ok(None) => return Err(Stop::Fail("the client closed before a request".into())),
            Err(e) if e.kind() == ErrorKind::InvalidData => {
                return Err(Stop::Fail(format!("the client sent bad JSON: {e}")));
            }
            Err(e) => return Err(Stop::Fail(format!("reading a request: {e}"))),
        };
        self.last_id = v.get("id").cloned().unwrap_or(Value::Null);
        if v.get("id").is_some() {
            self.unanswered.push(self.last_id.clone());
        }
        self.transcript.requests.push(v.clone());
        Ok(v)
    }
}

// ----- helpers for the cases --------------------------------------------

/// Runs `f` on its own thread; a hang fails the test, a panic is re-raised
/// as it was.
pub(crate) fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG) {
        Ok(v) => {
            let _ = thread.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the case sent nothing and did not panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} hung: not done within {HANG:?}"),
    }
}

/// Connects, failing the test with the outcome when that fails.
#[track_caller]
fn connect<A: Adapter>(server: &FaultServer, opts: Opts) -> A {
    match A::connect(server.path(), opts) {
        Ok(a) => a,
        Err(got) => panic!("connect failed: {got:?}"),
    }
}

/// Asserts that `elapsed` is within `[min, max]`.
#[track_caller]
fn took(elapsed: Duration, min: Duration, max: Duration) {
    assert!(
        elapsed >= min && elapsed <= max,
        "took {elapsed:?}, expected between {min:?} and {max:?}"
    );
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

fn short() -> Opts {
    Opts {
        call: Duration::from_millis(300),
        handshake: Duration::from_millis(300),
    }
}

// ----- the matrix -------------------------------------------------------

/// Events before the greeting and between `qmp_capabilities` and its reply
/// do not disturb the handshake; the adapters that keep them deliver them
/// in order.
pub(crate) fn events_around_the_handshake<A: Adapter>() {
    let server = FaultServer::start(
        Script::new()
            .event("EARLY")
            .send(&format!("{GREETING}\r\n"))
            .expect("qmp_capabilities")
            .event("NEGOTIATING")
            .send(CAPS_REPLY)
            .expect("query-status")
            .event("AFTER")
            .reply(r#"{"status": "running", "running": true}"#)
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    assert_eq!(
        c.call("query-status", Value::Null),
        Got::Value(json!({"status": "running", "running": true}))
    );
    // Events from before the session ran are kept for whoever asks first.
    assert_eq!(names(&c.events()), ["EARLY", "NEGOTIATING", "AFTER"]);
    c.close();
    server.finish_ok();
}

/// Capabilities and members this client does not know are ignored; only
/// `oob` is asked for.
pub(crate) fn greeting_with_unknown_capabilities_and_fields<A: Adapter>() {
    let greeting = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 99}, "package": "v99", "vendor": "x"}, "capabilities": ["oob", "time-travel"], "motd": "hi"}, "extra": [1, 2]}"#;
    let server = FaultServer::start(
        Script::new()
            .send(&format!("{greeting}\r\n"))
            .expect_args("qmp_capabilities", json!({"enable": ["oob"]}))
            .send(CAPS_REPLY)
            .expect("query-name")
            .reply("{}")
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    assert_eq!(c.call("query-name", Value::Null), Got::Value(json!({})));
    c.close();
    server.finish_ok();
}

/// A server that never greets: the handshake times out, on time, and
/// says no greeting came.
pub(crate) fn no_greeting<A: Adapter>() {
    handshake_times_out::<A>(Script::new().drain(), false);
}

/// A server that greets but never answers `qmp_capabilities`: the
/// timeout says the greeting came and the request went out.
pub(crate) fn greeting_but_no_negotiation<A: Adapter>() {
    let script = Script::new()
        .send(&format!("{GREETING}\r\n"))
        .expect("qmp_capabilities")
        .drain();
    handshake_times_out::<A>(script, true);
}

fn handshake_times_out<A: Adapter>(script: Script, sent: bool) {
    let server = FaultServer::start(script);
    let started = Instant::now();
    match A::connect(server.path(), short()) {
        Err(Got::HandshakeTimeout { sent: s }) if s == sent => {}
        Err(other) => panic!("expected a handshake timeout, got {other:?}"),
        Ok(_) => panic!("connected without a greeting"),
    }
    took(
        started.elapsed(),
        Duration::from_millis(250),
        Duration::from_secs(5),
    );
    server.finish_ok();
}

/// A greeting that is not JSON closes the session at byte 0.
pub(crate) fn greeting_not_json<A: Adapter>() {
    let server = FaultServer::start(Script::new().send("Welcome to the monitor!\r\n").drain());
    let started = Instant::now();
    match A::connect(server.path(), Opts::default()) {
        Err(Got::Closed(CloseReason::Malformed { offset: 0, detail })) => {
            assert!(detail.contains("0x57"), "{detail}");
        }
        Err(other) => panic!("expected Malformed at 0, got {other:?}"),
        Ok(_) => panic!("connected to garbage"),
    }
    took(started.elapsed(), Duration::ZERO, Duration::from_secs(5));
    // A truncated JSON greeting followed by garbage: the fault's offset.
    let server = FaultServer::start(Script::new().send("{\"QMP\": tru}\r\n").drain());
    match A::connect(server.path(), Opts::default()) {
        Err(Got::Closed(CloseReason::Malformed { offset, .. })) => {
            assert!((8..=11).contains(&offset), "{offset}")
        }
        other => panic!("expected Malformed, got {:?}", other.err()),
    }
    server.finish_ok();
}

/// Replies pretty-printed over many lines, as `pretty=on` monitors send.
pub(crate) fn pretty_printed_replies<A: Adapter>() {
    let value = json!({"status": "paused", "nested": {"list": [1, {"a": "}{"}], "s": "x\ny"}});
    let pretty = serde_json::to_string_pretty(&json!({"return": value, "id": 123456})).unwrap();
    let pretty = pretty.replace("123456", "$id").replace('\n', "\r\n");
    let greeting =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(GREETING).unwrap()).unwrap();
    let server = FaultServer::start(
        Script::new()
            .send(&format!("{greeting}\n"))
            .expect("qmp_capabilities")
            .send("{\n    \"return\": {\n    },\n    \"id\": 0\n}\n")
            .expect("query-status")
            .send(&format!("{pretty}\r\n"))
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    assert_eq!(c.call("query-status", Value::Null), Got::Value(value));
    c.close();
    server.finish_ok();
}

/// CRLF, LF and no terminator at all: each reply is taken as soon as its
/// closing brace arrives.
pub(crate) fn crlf_lf_and_no_terminator<A: Adapter>() {
    let server = FaultServer::start(
        Script::new()
            .greet()
            .expect("a")
            .send("{\"return\": 1, \"id\": $id}\r\n")
            .expect("b")
            .send("{\"return\": 2, \"id\": $id}\n")
            .expect("c")
            .send("{\"return\": 3, \"id\": $id}")
            .expect("d")
            .send("{\"return\": 4, \"id\": $id}")
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    for (name, n) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
        let started = Instant::now();
        assert_eq!(c.call(name, Value::Null), Got::Value(json!(n)));
        // Without a terminator the reply must not wait for more bytes.
        took(started.elapsed(), Duration::ZERO, Duration::from_secs(5));
    }
    c.close();
    server.finish_ok();
}

/// The greeting and a reply written one byte at a time, with pauses.
pub(crate) fn one_byte_writes_with_pauses<A: Adapter>() {
    let pause = Duration::from_millis(1);
    let server = FaultServer::start(
        Script::new()
            .send_chunked(&format!("{GREETING}\r\n"), 1, pause)
            .expect("qmp_capabilities")
            .send_chunked(CAPS_REPLY, 1, pause)
            .expect("query-status")
            .send_chunked(
                "{\"return\": {\"status\": \"a \\\"}\\\\ b\", \"running\": false}, \"id\": $id}\r\n",
                1,
                pause,
            )
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    assert_eq!(
        c.call("query-status", Value::Null),
        Got::Value(json!({"status": "a \"}\\ b", "running": false}))
    );
    c.close();
    server.finish_ok();
}

/// Many replies (and events) in one write, in reverse order.
pub(crate) fn many_replies_in_one_write<A: Adapter>() {
    let n = A::DEPTH;
    let server = FaultServer::start(
        Script::new()
            .greet()
            .expect_n(n)
            .reply_all()
            .expect("last")
            .reply("\"last\"")
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    let results = c.calls(n, "q");
    // Ids are 1, 2, ... in submission order; each call gets its own reply.
    let want: Vec<Got> = (1..=n).map(|id| Got::Value(json!({"n": id}))).collect();
    assert_eq!(results, want);
    assert_eq!(c.call("last", Value::Null), Got::Value(json!("last")));
    assert_eq!(names(&c.events()), vec!["BETWEEN"; n]);
    c.close();
    server.finish_ok();
}

/// A reply whose id is unknown (a number never used, a foreign string) is
/// dropped; the right one follows and is delivered.
pub(crate) fn unknown_id_then_the_right_one<A: Adapter>() {
    let server = FaultServer::start(
        Script::new()
            .greet()
            .expect("query-status")
            .send("{\"return\": \"stray\", \"id\": 999}\r\n")
            .send("{\"return\": \"foreign\", \"id\": \"libvirt-7\"}\r\n")
            .send("{\"error\": {\"class\": \"GenericError\", \"desc\": \"not yours\"}, \"id\": 998}\r\n")
            .reply("\"mine\"")
            .expect("query-status")
            .reply("\"next\"")
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    assert_eq!(
        c.call("query-status", Value::Null),
        Got::Value(json!("mine"))
    );
    assert_eq!(
        c.call("query-status", Value::Null),
        Got::Value(json!("next"))
    );
    c.close();
    server.finish_ok();
}

/// An error without an id: the server could not parse what we sent, the
/// stream is out of step, the session ends with `ServerParseError`.
pub(crate) fn error_without_an_id<A: Adapter>() {
    let server = FaultServer::start(
        Script::new()
            .greet()
            .expect("query-status")
            .send("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, invalid keyword 'tru'\"}}\r\n")
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    let started = Instant::now();
    let want = Got::Closed(CloseReason::ServerParseError(qmp_core::ExecuteError::new(
        ErrorClass::GenericError,
        "JSON parse error, invalid keyword 'tru'",
    )));
    assert_eq!(c.call("query-status", Value::Null), want);
    took(started.elapsed(), Duration::ZERO, Duration::from_secs(5));
    // Later calls fail at once with the same reason.
    assert_eq!(c.call("query-status", Value::Null), want);
    c.close();
    server.finish_ok();
}

/// Replies that are neither a return nor a well-formed error end their own
/// call with the message received; the session and the next call go on.
pub(crate) fn bad_replies_end_only_their_call<A: Adapter>() {
    const SHAPES: [&str; 4] = [
        r#"{"id": $id}"#,
        r#"{"return": {}, "error": {"class": "GenericError", "desc": "both"}, "id": $id}"#,
        r#"{"error": "not an object", "id": $id}"#,
        r#"{"error": {"desc": "no class"}, "id": $id}"#,
    ];
    let mut script = Script::new().greet();
    for shape in SHAPES {
        script = script
            .expect("query-status")
            .send(&format!("{shape}\r\n"))
            .expect("query-name")
            .reply("{}");
    }
    let server = FaultServer::start(script.drain());
    let mut c: A = connect(&server, Opts::default());
    for shape in SHAPES {
        match c.call("query-status", Value::Null) {
            Got::BadReply(message) => {
                let (head, tail) = shape.split_once("$id").unwrap();
                assert!(
                    message.starts_with(head) && message.ends_with(tail),
                    "{message}"
                );
            }
            other => panic!("{shape}: {other:?}"),
        }
        assert_eq!(c.call("query-name", Value::Null), Got::Value(json!({})));
    }
    c.close();
    server.finish_ok();
}

/// Valid JSON that is not an object (an array, a string, a number):
/// `Malformed` at the byte where it starts.
pub(crate) fn json_that_is_not_an_object<A: Adapter>() {
    for (text, byte) in [("[1, 2, 3]", b'['), ("\"reply\"", b'"'), ("42", b'4')] {
        let server = FaultServer::start(
            Script::new()
                .greet()
                .expect("query-status")
                .send(&format!("  {text}\r\n"))
                .drain(),
        );
        let mut c: A = connect(&server, Opts::default());
        let want = Got::Closed(CloseReason::Malformed {
            offset: AFTER_HANDSHAKE + 2,
            detail: format!("expected '{{' to start a message, found byte 0x{byte:02x}"),
        });
        assert_eq!(c.call("query-status", Value::Null), want, "for {text}");
        c.close();
        server.finish_ok();
    }
}

/// Invalid UTF-8 inside a string: `Malformed` at the bad byte.
pub(crate) fn invalid_utf8<A: Adapter>() {
    let server = FaultServer::start(
        Script::new()
            .greet()
            .expect("query-status")
            .send_raw(&b"{\"return\": \"ok \xc3\x28 bad\", \"id\": 1}\r\n"[..])
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    match c.call("query-status", Value::Null) {
        Got::Closed(CloseReason::Malformed { offset, .. }) => {
            assert_eq!(offset, AFTER_HANDSHAKE + 15, "the offset of byte 0xc3")
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    c.close();
    server.finish_ok();
}

/// A reply of `size` bytes exactly, to request `id`, whose `return` is a
/// string of `x`.
fn sized_reply(size: usize, id: u64) -> (Vec<u8>, usize) {
    let head = format!("{{\"id\": {id}, \"return\": \"");
    let tail = "\"}";
    let fill = size - head.len() - tail.len();
    let mut msg = Vec::with_capacity(size + 2);
    msg.extend_from_slice(head.as_bytes());
    msg.resize(head.len() + fill, b'x');
    msg.extend_from_slice(tail.as_bytes());
    assert_eq!(msg.len(), size);
    msg.extend_from_slice(b"\r\n");
    (msg, fill)
}

/// One byte over the default 10 MiB limit: `MessageTooLarge`, and the
/// client stops reading it there.
pub(crate) fn message_over_ten_mib<A: Adapter>() {
    let (msg, _) = sized_reply(TEN_MIB + 1, 1);
    let server = FaultServer::start(
        Script::new()
            .greet()
            .expect("query-qmp-schema")
            .send_raw(msg)
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    let started = Instant::now();
    assert_eq!(
        c.call("query-qmp-schema", Value::Null),
        Got::Closed(CloseReason::MessageTooLarge { limit: TEN_MIB })
    );
    took(started.elapsed(), Duration::ZERO, Duration::from_secs(20));
    c.close();
    // The server's write fails once the client is gone: that ends it.
    server.finish_ok();
}

/// A 9 MiB reply of `[0,0,0,…]` would take some 150 MiB decoded: its call
/// fails with the limit it would break, and the next call goes on.
pub(crate) fn reply_too_large_to_decode<A: Adapter>() {
    let zeros = "0,".repeat(9 * 1024 * 1024 / 2);
    let server = FaultServer::start(
        Script::new()
            .greet()
            .expect("query-qmp-schema")
            .send(&format!("{{\"return\": [{zeros}0], \"id\": $id}}\r\n"))
            .expect("query-status")
            .reply("\"after\"")
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    assert_eq!(
        c.call("query-qmp-schema", Value::Null),
        Got::TooLarge(4 * TEN_MIB)
    );
    assert_eq!(
        c.call("query-status", Value::Null),
        Got::Value(json!("after"))
    );
    c.close();
    server.finish_ok();
}

/// A 9 MiB reply arrives whole and correct.
pub(crate) fn message_of_nine_mib<A: Adapter>() {
    let (msg, fill) = sized_reply(9 * 1024 * 1024, 1);
    let server = FaultServer::start(
        Script::new()
            .greet()
            .expect("query-qmp-schema")
            .send_raw(msg)
            .expect("query-status")
            .reply("\"after\"")
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    match c.call("query-qmp-schema", Value::Null) {
        Got::Value(Value::String(s)) => {
            assert_eq!(s.len(), fill);
            assert!(s.bytes().all(|b| b == b'x'));
        }
        other => panic!("expected the 9 MiB string, got {:?}", DebugShort(&other)),
    }
    assert_eq!(
        c.call("query-status", Value::Null),
        Got::Value(json!("after"))
    );
    c.close();
    server.finish_ok();
}

/// Debug output cut short, for values of megabytes.
struct DebugShort<'a, T>(&'a T);

impl<T: std::fmt::Debug> std::fmt::Debug for DebugShort<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = format!("{:?}", self.0);
        let end = s.char_indices().nth(200).map_or(s.len(), |(i, _)| i);
        f.write_str(&s[..end])
    }
}

/// The server closes in the middle of a reply with 20 calls pending: every
/// one of them ends with `UnexpectedEof`, and promptly.
pub(crate) fn closed_mid_reply_with_calls_pending<A: Adapter>() {
    let server = FaultServer::start(
        Script::new()
            .greet()
            .expect_n(A::DEPTH)
            .send("{\"return\": {\"sta")
            .pause(Duration::from_millis(50))
            .close(),
    );
    let mut c: A = connect(&server, Opts::default());
    let started = Instant::now();
    let results = c.calls(20, "query-status");
    took(started.elapsed(), Duration::ZERO, Duration::from_secs(5));
    let want = Got::Closed(CloseReason::UnexpectedEof { buffered: 16 });
    assert_eq!(results.len(), 20);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r, &want, "call {i}");
    }
    c.close();
    server.finish_ok();
}

/// The server stops reading (its socket buffer fills with a 4 MiB request)
/// while it keeps sending events: the call times out, events are still
/// read, none is lost beyond the reported lag, and the queue stays within
/// its capacity.
pub(crate) fn server_stops_reading_while_events_flow<A: Adapter>() {
    const FLOOD: usize = 3000;
    let server = FaultServer::start(
        Script::new()
            .greet()
            .expect("query-status")
            .reply("{}")
            .expect("go")
            .reply("{}")
            // From here on nothing is read.
            .flood(FLOOD, Duration::from_millis(1))
            .event("MARK")
            .hold()
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    assert_eq!(c.call("query-status", Value::Null), Got::Value(json!({})));
    assert_eq!(c.call("go", Value::Null), Got::Value(json!({})));
    let big = json!({"blob": "y".repeat(4 << 20)});
    let started = Instant::now();
    assert_eq!(
        c.call_within("big", big, Duration::from_millis(300)),
        Got::Timeout
    );
    took(
        started.elapsed(),
        Duration::from_millis(250),
        Duration::from_secs(10),
    );
    // Events keep being read while the request is stuck behind them.
    let mark = c
        .wait_event("MARK", Duration::from_secs(20))
        .expect("the event after the flood");
    assert_eq!(mark.name, "MARK");
    assert!(c.queued_events() <= c.event_capacity());
    // Another call is stuck behind the first and times out too.
    let started = Instant::now();
    assert_eq!(
        c.call_within("query-status", Value::Null, Duration::from_millis(200)),
        Got::Timeout
    );
    took(
        started.elapsed(),
        Duration::from_millis(150),
        Duration::from_secs(10),
    );
    let rest = c.events();
    let floods = rest.iter().filter(|e| e.name == "FLOOD").count() as u64;
    let lagged = c.lagged();
    // Whatever was not delivered was counted: nothing vanished silently.
    assert_eq!(
        floods + lagged,
        FLOOD as u64,
        "{floods} delivered, {lagged} lagged"
    );
    server.release();
    c.close();
    server.finish_ok();
}

/// A server that reads requests and never answers: each call times out on
/// time, and closing does not hang.
pub(crate) fn server_stalls_forever<A: Adapter>() {
    let server = FaultServer::start(Script::new().greet().drain());
    let mut c: A = connect(&server, short());
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(c.call("query-status", Value::Null), Got::Timeout);
        took(
            started.elapsed(),
            Duration::from_millis(250),
            Duration::from_secs(5),
        );
    }
    let started = Instant::now();
    c.close();
    took(started.elapsed(), Duration::ZERO, Duration::from_secs(5));
    server.finish_ok();
}

/// `quit`: QEMU may close the connection before its reply is written, or
/// in the middle of it. Either way `quit` succeeded.
pub(crate) fn quit_whose_eof_races_its_reply<A: Adapter>() {
    for tail in ["", "{\"return\": {}, \"i"] {
        let server = FaultServer::start(
            Script::new()
                .greet()
                .expect("quit")
                .event("SHUTDOWN")
                .send(tail)
                .close(),
        );
        let mut c: A = connect(&server, Opts::default());
        let started = Instant::now();
        assert_eq!(
            c.call("quit", Value::Null),
            Got::Value(json!({})),
            "tail {tail:?}"
        );
        took(started.elapsed(), Duration::ZERO, Duration::from_secs(5));
        let after = c.call("query-status", Value::Null);
        assert!(after.is_peer_gone(), "after quit: {after:?}");
        c.close();
        server.finish_ok();
    }
}

/// `\u0000`, surrogate pairs and escapes decode to what they mean.
pub(crate) fn nul_and_surrogate_pairs<A: Adapter>() {
    let server = FaultServer::start(
        Script::new()
            .greet()
            .expect("query-name")
            .reply(
                r#"{"name": "a\u0000b", "emoji": "\ud83d\ude00", "mixed": "\u00e9\ud834\udd1e\/"}"#,
            )
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    assert_eq!(
        c.call("query-name", Value::Null),
        Got::Value(json!({"name": "a\u{0}b", "emoji": "😀", "mixed": "é𝄞/"}))
    );
    c.close();
    server.finish_ok();
}

/// Lone surrogates are valid JSON syntax but not Unicode text. The value
/// is delivered with each one replaced by U+FFFD (as QEMU itself does with
/// text it cannot represent), and the session goes on: one odd string in
/// one reply must not interrupt every other call.
pub(crate) fn lone_surrogates<A: Adapter>() {
    let server = FaultServer::start(
        Script::new()
            .greet()
            .expect("guest-info")
            .reply(r#"["\ud800", "x\udc00y", "\ud800\u0041", "\udbff\udbff\udfff", "\\ud800"]"#)
            .event(r"E\udfff")
            .expect("query-status")
            .reply("\"fine\"")
            .drain(),
    );
    let mut c: A = connect(&server, Opts::default());
    assert_eq!(
        c.call("guest-info", Value::Null),
        Got::Value(json!([
            "\u{fffd}",
            "x\u{fffd}y",
            "\u{fffd}A",
            "\u{fffd}\u{10ffff}",
            "\\ud800"
        ]))
    );
    assert_eq!(
        c.call("query-status", Value::Null),
        Got::Value(json!("fine"))
    );
    assert_eq!(names(&c.events()), ["E\u{fffd}"]);
    c.close();
    server.finish_ok();
}

// ----- a real QEMU, killed and stopped ------------------------------------

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid} failed");
}

fn connect_qemu<A: Adapter>(qemu: &QemuServer, opts: Opts) -> A {
    match A::connect(&qemu.socket, opts) {
        Ok(a) => a,
        Err(got) => panic!("connect to QEMU failed: {got:?}"),
    }
}

/// SIGKILL in the middle of a burst of calls: every call ends (a reply, or
/// the peer gone), the burst ends promptly, later calls fail at once.
pub(crate) fn sigkill_real_qemu_mid_burst<A: Adapter>() {
    let qemu = QemuServer::start(&[]);
    let pid = qemu.child.id();
    let mut c: A = connect_qemu(&qemu, Opts::default());
    assert!(matches!(c.call("query-status", Value::Null), Got::Value(_)));
    let started = Instant::now();
    let results = c.burst(20_000, "query-status", Duration::from_secs(2), &mut || {
        signal(pid, "KILL")
    });
    took(started.elapsed(), Duration::ZERO, Duration::from_secs(30));
    let ok = results
        .iter()
        .filter(|r| matches!(r, Got::Value(_)))
        .count();
    let gone = results.iter().filter(|r| r.is_peer_gone()).count();
    assert!(ok > 0, "no call succeeded before the kill");
    assert!(
        gone > 0,
        "the kill did not cut the burst short ({ok} succeeded)"
    );
    assert_eq!(
        ok + gone,
        results.len(),
        "unexpected outcomes: {:?}",
        results
            .iter()
            .filter(|r| !matches!(r, Got::Value(_)) && !r.is_peer_gone())
            .take(3)
            .collect::<Vec<_>>()
    );
    let started = Instant::now();
    assert!(c.call("query-status", Value::Null).is_peer_gone());
    took(started.elapsed(), Duration::ZERO, Duration::from_secs(1));
    c.close();
    drop(qemu);
}

/// SIGSTOP in the middle of a burst: calls time out instead of hanging;
/// after SIGCONT the connection works again (late replies are dropped,
/// never delivered to the wrong call); stopped again and then killed, the
/// client notices at once.
pub(crate) fn sigstop_real_qemu_mid_burst<A: Adapter>() {
    let qemu = QemuServer::start(&[]);
    let pid = qemu.child.id();
    let opts = Opts {
        call: Duration::from_millis(400),
        ..Opts::default()
    };
    let mut c: A = connect_qemu(&qemu, opts);
    assert!(matches!(c.call("query-status", Value::Null), Got::Value(_)));
    let started = Instant::now();
    let results = c.burst(5_000, "query-status", Duration::from_secs(2), &mut || {
        signal(pid, "STOP")
    });
    took(started.elapsed(), Duration::ZERO, Duration::from_secs(30));
    let timeouts = results.iter().filter(|r| **r == Got::Timeout).count();
    assert!(timeouts > 0, "no call timed out while QEMU was stopped");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Got::Value(v) if v["status"] == "prelaunch") || *r == Got::Timeout),
        "unexpected outcomes"
    );
    // Stopped: a call times out on time.
    let started = Instant::now();
    assert_eq!(c.call("query-name", Value::Null), Got::Timeout);
    took(
        started.elapsed(),
        Duration::from_millis(350),
        Duration::from_secs(5),
    );
    signal(pid, "CONT");
    // Running again: the replies owed to timed-out calls come first and are
    // dropped; this call gets its own.
    let got = c.call_within("query-name", Value::Null, Duration::from_secs(10));
    assert_eq!(got, Got::Value(json!({})));
    signal(pid, "STOP");
    assert_eq!(c.call("query-status", Value::Null), Got::Timeout);
    signal(pid, "KILL");
    let started = Instant::now();
    let got = c.call_within("query-status", Value::Null, Duration::from_secs(10));
    assert!(got.is_peer_gone(), "after SIGKILL: {got:?}");
    took(started.elapsed(), Duration::ZERO, Duration::from_secs(5));
    c.close();
    drop(qemu);
}

/// One `#[test]` per case for the adapter type given.
macro_rules! fault_matrix {
    ($adapter:ty) => {
        #[test]
        fn events_around_the_handshake() {
            fault::bounded(
                "events_around_the_handshake",
                fault::events_around_the_handshake::<$adapter>,
            );
        }
        #[test]
        fn greeting_with_unknown_capabilities_and_fields() {
            fault::bounded(
                "greeting_with_unknown_capabilities_and_fields",
                fault::greeting_with_unknown_capabilities_and_fields::<$adapter>,
            );
        }
        #[test]
        fn no_greeting() {
            fault::bounded("no_greeting", fault::no_greeting::<$adapter>);
        }
        #[test]
        fn greeting_but_no_negotiation() {
            fault::bounded(
                "greeting_but_no_negotiation",
                fault::greeting_but_no_negotiation::<$adapter>,
            );
        }
        #[test]
        fn greeting_not_json() {
            fault::bounded("greeting_not_json", fault::greeting_not_json::<$adapter>);
        }
        #[test]
        fn pretty_printed_replies() {
            fault::bounded(
                "pretty_printed_replies",
                fault::pretty_printed_replies::<$adapter>,
            );
        }
        #[test]
        fn crlf_lf_and_no_terminator() {
            fault::bounded(
                "crlf_lf_and_no_terminator",
                fault::crlf_lf_and_no_terminator::<$adapter>,
            );
        }
        #[test]
        fn one_byte_writes_with_pauses() {
            fault::bounded(
                "one_byte_writes_with_pauses",
                fault::one_byte_writes_with_pauses::<$adapter>,
            );
        }
        #[test]
        fn many_replies_in_one_write() {
            fault::bounded(
                "many_replies_in_one_write",
                fault::many_replies_in_one_write::<$adapter>,
            );
        }
        #[test]
        fn unknown_id_then_the_right_one() {
            fault::bounded(
                "unknown_id_then_the_right_one",
                fault::unknown_id_then_the_right_one::<$adapter>,
            );
        }
        #[test]
        fn bad_replies_end_only_their_call() {
            fault::bounded(
                "bad_replies_end_only_their_call",
                fault::bad_replies_end_only_their_call::<$adapter>,
            );
        }
        #[test]
        fn error_without_an_id() {
            fault::bounded(
                "error_without_an_id",
                fault::error_without_an_id::<$adapter>,
            );
        }
        #[test]
        fn json_that_is_not_an_object() {
            fault::bounded(
                "json_that_is_not_an_object",
                fault::json_that_is_not_an_object::<$adapter>,
            );
        }
        #[test]
        fn invalid_utf8() {
            fault::bounded("invalid_utf8", fault::invalid_utf8::<$adapter>);
        }
        #[test]
        fn message_over_ten_mib() {
            fault::bounded(
                "message_over_ten_mib",
                fault::message_over_ten_mib::<$adapter>,
            );
        }
        #[test]
        fn reply_too_large_to_decode() {
            fault::bounded(
                "reply_too_large_to_decode",
                fault::reply_too_large_to_decode::<$adapter>,
            );
        }
        #[test]
        fn message_of_nine_mib() {
            fault::bounded(
                "message_of_nine_mib",
                fault::message_of_nine_mib::<$adapter>,
            );
        }
        #[test]
        fn closed_mid_reply_with_calls_pending() {
            fault::bounded(
                "closed_mid_reply_with_calls_pending",
                fault::closed_mid_reply_with_calls_pending::<$adapter>,
            );
        }
        #[test]
        fn server_stops_reading_while_events_flow() {
            fault::bounded(
                "server_stops_reading_while_events_flow",
                fault::server_stops_reading_while_events_flow::<$adapter>,
            );
        }
        #[test]
        fn server_stalls_forever() {
            fault::bounded(
                "server_stalls_forever",
                fault::server_stalls_forever::<$adapter>,
            );
        }
        #[test]
        fn quit_whose_eof_races_its_reply() {
            fault::bounded(
                "quit_whose_eof_races_its_reply",
                fault::quit_whose_eof_races_its_reply::<$adapter>,
            );
        }
        #[test]
        fn nul_and_surrogate_pairs() {
            fault::bounded(
                "nul_and_surrogate_pairs",
                fault::nul_and_surrogate_pairs::<$adapter>,
            );
        }
        #[test]
        fn lone_surrogates() {
            fault::bounded("lone_surrogates", fault::lone_surrogates::<$adapter>);
        }
        #[test]
        fn sigkill_real_qemu_mid_burst() {
            fault::bounded(
                "sigkill_real_qemu_mid_burst",
                fault::sigkill_real_qemu_mid_burst::<$adapter>,
            );
        }
        #[test]
        fn sigstop_real_qemu_mid_burst() {
            fault::bounded(
                "sigstop_real_qemu_mid_burst",
                fault::sigstop_real_qemu_mid_burst::<$adapter>,
            );
        }
    };
}

pub(crate) use fault_matrix;
