//! The state machine: where a reply is matched and an event is queued.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec::Vec;
use serde_json::Value;

use crate::config::{Config, Dialect};
use crate::deque::remove_at;
use crate::error::{CloseReason, RequestError, SubmitError};
use crate::event::{Event, EventQueue};
use crate::framing::{Frame, FrameError, Framer};
use crate::greeting::{Capability, Greeting};
use crate::message::{Incoming, ReplyId, decode, decode_prefix};
use crate::request::{Request, RequestId, write_u64};
use crate::time::Instant;

/// Where the session stands.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runstate {
    /// Waiting for the server's greeting (QMP).
    AwaitingGreeting,
    /// `qmp_capabilities` sent, waiting for its reply (QMP).
    Negotiating,
    /// Resynchronising with the guest agent (QGA).
    Syncing,
    /// Requests flow.
    Running,
    /// The session has ended; see [`Client::close_reason`].
    Closed,
}

/// Something the engine tells its driver, pulled with [`Client::poll_output`].
#[non_exhaustive]
#[derive(Debug)]
pub enum Output {
    /// The server's greeting arrived.
    Greeting(Greeting),
    /// The session entered [`Runstate::Running`]: negotiation or a guest
    /// agent resync finished.
    Ready,
    /// A request ended: with its reply, the server's error, a timeout, or
    /// an interruption. Every request ends exactly once, unless cancelled.
    Reply {
        /// The request.
        id: RequestId,
        /// The `return` value, or why there is none.
        result: Result<Value, RequestError>,
    },
    /// The session ended. This is the last output.
    Closed(CloseReason),
}

/// Bytes for the driver to write, from [`Client::poll_transmit`].
#[derive(Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The bytes; write any prefix, then report it to
    /// [`Client::consume_transmit`].
    pub bytes: &'a [u8],
    /// When set, `bytes` begins with this request, which carries file
    /// descriptors: send them with the first byte (SCM_RIGHTS), and write
    /// at least one byte in that call. `bytes` then ends before the next
    /// request with descriptors, so two sets never share a write.
    pub fds: Option<RequestId>,
}

/// Counters for what the engine met and dealt with quietly.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes received.
    pub bytes_received: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Replies whose id matched no request (dropped).
    pub unknown_replies: u64,
    /// Replies to requests that had timed out or were cancelled (dropped).
    pub late_replies: u64,
    /// Events dropped because the queue was full.
    pub events_lagged: u64,
    /// Objects that were neither a reply, an event nor a greeting (dropped).
    pub unrecognized: u64,
    /// Bytes and messages (stale replies, the parse error a 0xFF provokes)
    /// discarded while resynchronising with the guest agent.
    pub discarded_during_sync: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting inside the engine; not yet in the transmit buffer.
    Queued,
    /// In the transmit buffer or on the wire; a reply is due.
    Sent,
    /// Its caller gave up (timeout or cancel) after it was sent; the reply,
    /// if it comes, is dropped. It still occupies a server queue slot.
    Abandoned,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    state: State,
    deadline: Option<Instant>,
    oob: bool,
    no_reply: bool,
    /// `quit`: the server closing the connection counts as success.
    eof_ok: bool,
    fds: bool,
    /// The encoded request while queued.
    bytes: Vec<u8>,
}

impl Pending {
    /// Whether it occupies one of the server's in-band queue slots.
    fn holds_slot(&self) -> bool {
        !self.oob && !self.no_reply && self.state != State::Queued
    }
}

#[derive(Debug)]
enum MarkKind {
    /// A request with file descriptors starts here.
    Fds,
    /// A request that gets no reply ends here.
    Written,
}

#[derive(Debug)]
struct Mark {
    /// Position in the outgoing stream.
    at: u64,
    kind: MarkKind,
    id: u64,
}

#[derive(Debug)]
struct Sync {
    token: u64,
    deadline: Option<Instant>,
    /// The agent's 0xFF has been seen; messages are read again.
    delimited: bool,
}

/// The protocol engine for one connection. See the [crate docs](crate)
/// for the driving loop.
///
/// `EVENTS` bounds the event queue and `REQUESTS` the table of requests
/// not yet ended (queued, in flight, or abandoned but unanswered); both
/// live inside the `Client`, so its memory is fixed apart from the
/// messages themselves, which `Config::max_message_size` bounds.
#[derive(Debug)]
pub struct Client<const EVENTS: usize = 64, const REQUESTS: usize = 64> {
    config: Config,
    runstate: Runstate,
    framer: Framer,
    greeting: Option<Greeting>,
    oob: bool,
    oob_requested: bool,
    next_id: u64,
    negotiation_id: Option<u64>,
    handshake_deadline: Option<Instant>,
    sync: Option<Sync>,
    needs_sync: bool,
    rng: u64,
    /// Open requests in id order (sent, abandoned and queued ones mixed).
    pending: heapless::Deque<Pending, REQUESTS>,
    in_flight: usize,
    /// Requests in `pending` still waiting to be sent.
    queued: usize,
    tx: Vec<u8>,
    tx_head: usize,
    tx_sent: u64,
    marks: VecDeque<Mark>,
    outputs: VecDeque<Output>,
    events: EventQueue<EVENTS>,
    close_reason: Option<CloseReason>,
    stats: Stats,
}

impl Client {
    /// A client with the default capacities (64 queued events, 64 open
    /// requests). Use [`Client::sized`] to choose them.
    pub fn new(now: Instant, config: Config) -> Self {
        Client::sized(now, config)
    }
}

impl<const EVENTS: usize, const REQUESTS: usize> Client<EVENTS, REQUESTS> {
    /// A client with the capacities given by the type parameters:
    /// `Client::<16, 8>::sized(now, config)`.
    pub fn sized(now: Instant, config: Config) -> Self {
        let mut c = Client {
            framer: Framer::new(config.max_message_size),
            runstate: Runstate::Running,
            greeting: None,
            oob: false,
            oob_requested: false,
            next_id: 0,
            negotiation_id: None,
            handshake_deadline: None,
            sync: None,
            needs_sync: false,
            rng: config.sync_seed ^ 0x5851_f42d_4c95_7f2d,
            pending: heapless::Deque::new(),
            in_flight: 0,
            queued: 0,
            tx: Vec::new(),
            tx_head: 0,
            tx_sent: 0,
            marks: VecDeque::new(),
            outputs: VecDeque::new(),
            events: EventQueue::new(),
            close_reason: None,
            stats: Stats::default(),
            config,
        };
        match c.config.dialect {
            Dialect::Qmp => {
                c.handshake_deadline = c.config.handshake_timeout.map(|t| now + t);
                if c.config.negotiate {
                    // Id 0 is kept for `qmp_capabilities`, so request ids
                    // do not depend on when the greeting arrives.
                    c.negotiation_id = Some(0);
                    c.next_id = 1;
                }
                if c.config.await_greeting {
                    c.runstate = Runstate::AwaitingGreeting;
                } else if c.config.negotiate {
                    c.start_negotiation();
                } else {
                    c.become_running(now);
                }
            }
            Dialect::Qga => {
                if c.config.sync_on_start {
                    c.start_sync(now);
                } else {
                    c.become_running(now);
                }
            }
        }
        c
    }

    // ----- inputs -------------------------------------------------------

    /// Feeds bytes received from the server, in any chunking.
    ///
    /// Returns the close reason when the session is (or already was)
    /// closed; the same reason is also reported by [`Output::Closed`].
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), CloseReason> {
        if let Some(reason) = &self.close_reason {
            return Err(reason.clone());
        }
        self.stats.bytes_received += data.len() as u64;
        if let [byte] = data
            && self.sync.is_none()
            && self.framer.take_inner_byte(*byte)
        {
            return Ok(());
        }
        let mut rest = data;
        while self.close_reason.is_none() {
            if let Some(sync) = &mut self.sync
                && !sync.delimited
            {
                let before = rest.len();
                let found = self.framer.skip_to_delimiter(&mut rest);
                self.stats.discarded_during_sync +=
                    (before - rest.len() - usize::from(found)) as u64;
                if !found {
                    break;
                }
                sync.delimited = true;
                continue;
            }
            let mut taken = None;
            let fast = |window, offset| {
                let (len, msg) = decode_prefix(window, offset)?;
                taken = Some(msg);
                Some(len)
            };
            let step = match self.framer.next(&mut rest, fast) {
                None => break,
                Some(Ok(Frame::Taken)) => match taken {
                    Some(msg) => msg,
                    None => continue,
                },
                Some(Ok(Frame::Message { bytes, offset })) => decode(bytes, offset),
                Some(Ok(Frame::Delimiter)) => match self.config.dialect {
                    Dialect::Qga => continue,
                    Dialect::Qmp => Err(CloseReason::Malformed {
                        offset: self.framer.offset() - 1,
                        detail: "unexpected byte 0xff between messages".into(),
                    }),
                },
                Some(Err(FrameError::TooLarge { limit })) => {
                    Err(CloseReason::MessageTooLarge { limit })
                }
                Some(Err(FrameError::NotAnObject { offset, byte })) => {
                    Err(CloseReason::Malformed {
                        offset,
                        detail: format!(
                            "expected '{{' to start a message, found byte 0x{byte:02x}"
                        ),
                    })
                }
            };
            match step {
                Ok(msg) => {
                    self.stats.messages_received += 1;
                    self.dispatch(now, msg);
                }
                Err(reason) => match &mut self.sync {
                    // While resyncing, junk is expected: look for the next
                    // delimiter instead of giving up.
                    Some(sync) => {
                        self.stats.discarded_during_sync += 1;
                        sync.delimited = false;
                        self.framer.reset();
                    }
                    None => self.close_with(reason),
                },
            }
        }
        self.pump(now);
        match &self.close_reason {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    /// The server closed the connection (read returned 0 bytes).
    pub fn handle_eof(&mut self, _now: Instant) {
        if self.close_reason.is_some() {
            return;
        }
        let reason = if self.framer.mid_message() && self.sync.is_none() {
            CloseReason::UnexpectedEof {
                buffered: self.framer.buffered(),
            }
        } else {
            CloseReason::Eof
        };
        self.close_with(reason);
    }

    /// Ends whatever is due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.close_reason.is_some() {
            return;
        }
        if self.handshake_deadline.is_some_and(|d| d <= now) {
            self.close_with(CloseReason::HandshakeTimeout);
            return;
        }
        if self
            .sync
            .as_ref()
            .and_then(|s| s.deadline)
            .is_some_and(|d| d <= now)
        {
            self.close_with(CloseReason::SyncTimeout);
            return;
        }
        let mut i = 0;
        while let Some(p) = self.pending.get_mut(i) {
            if p.deadline.is_none_or(|d| d > now) {
                i += 1;
                continue;
            }
            p.deadline = None;
            let id = RequestId(p.id);
            match p.state {
                State::Queued => {
                    remove_at(&mut self.pending, i);
                    self.queued -= 1;
                    self.finish(id, Err(RequestError::Timeout));
                    continue;
                }
                State::Sent => {
                    p.state = State::Abandoned;
                    // An agent that may still answer leaves the stream in
                    // doubt; resync before the next request.
                    if self.config.dialect == Dialect::Qga && !p.no_reply {
                        self.needs_sync = true;
                    }
                    self.finish(id, Err(RequestError::Timeout));
                }
                State::Abandoned => {}
            }
            i += 1;
        }
        self.pump(now);
    }

    /// Submits a request. It is sent as soon as the session runs and, for
    /// an in-band request, a server queue slot is free.
    pub fn execute(&mut self, now: Instant, request: Request) -> Result<RequestId, SubmitError> {
        if let Some(reason) = &self.close_reason {
            return Err(SubmitError::Closed(reason.clone()));
        }
        if request.oob && !(self.oob && self.runstate == Runstate::Running) {
            return Err(SubmitError::OobNotNegotiated);
        }
        if self.pending.is_full() {
            return Err(SubmitError::TooManyRequests { capacity: REQUESTS });
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut bytes = Vec::new();
        let with_id = !(request.no_reply && self.config.dialect == Dialect::Qga);
        request.encode(with_id.then_some(id), &mut bytes);
        let deadline = match (request.deadline, request.timeout) {
            (Some(d), Some(t)) => Some(d.min(now + t)),
            (d, t) => d.or(t.map(|t| now + t)),
        };
        let pending = Pending {
            id,
            state: State::Queued,
            deadline,
            oob: request.oob,
            no_reply: request.no_reply,
            eof_ok: self.config.dialect == Dialect::Qmp && request.name() == "quit",
            fds: request.fds,
            bytes,
        };
        let oob = pending.oob;
        if self.pending.push_back(pending).is_err() {
            unreachable!("checked for room above");
        }
        self.queued += 1;
        let last = self.pending.len() - 1;
        if oob {
            // Accepted only while running: it overtakes everything queued.
            self.release(last);
        } else if self.queued == 1 && !self.needs_sync {
            // Nothing waits ahead of it: no need to scan the table.
            if self.runstate == Runstate::Running && self.may_send(last) {
                self.release(last);
            }
        } else {
            self.pump(now);
        }
        Ok(RequestId(id))
    }

    /// Gives up on a request without an output for it. A queued request is
    /// never sent; a sent one's reply is dropped when it comes (for the
    /// guest agent, a resync then runs before the next request is sent;
    /// call [`resync`](Self::resync) or submit a request to start it).
    /// Returns whether the request was still open.
    pub fn cancel(&mut self, id: RequestId) -> bool {
        let Some(pos) = self.pending.iter().position(|p| p.id == id.0) else {
            return false;
        };
        let Some(p) = self.pending.get_mut(pos) else {
            return false;
        };
        match p.state {
            State::Queued => {
                remove_at(&mut self.pending, pos);
                self.queued -= 1;
                true
            }
            State::Sent => {
                p.state = State::Abandoned;
                p.deadline = None;
                // As after a timeout: an agent that may still answer
                // leaves the stream in doubt until a resync.
                if self.config.dialect == Dialect::Qga && !p.no_reply {
                    self.needs_sync = true;
                }
                true
            }
            State::Abandoned => false,
        }
    }

    /// Resynchronises with the guest agent (QGA only; ignored for QMP):
    /// as soon as no live request is in flight, send 0xFF and
    /// `guest-sync-delimited`, discard everything up to the agent's 0xFF,
    /// and hold new requests until the agent answers.
    pub fn resync(&mut self, now: Instant) {
        if self.config.dialect == Dialect::Qga && self.close_reason.is_none() && self.sync.is_none()
        {
            self.needs_sync = true;
            self.pump(now);
        }
    }

    /// Ends the session from this side: every open request ends with
    /// `Interrupted(Local)` and [`Output::Closed`] follows.
    pub fn close(&mut self) {
        self.close_with(CloseReason::Local);
    }

    // ----- outputs ------------------------------------------------------

    /// The next bytes to write, if any.
    pub fn poll_transmit(&self) -> Option<Transmit<'_>> {
        if self.tx_head == self.tx.len() {
            return None;
        }
        let mut end = self.tx.len();
        let mut fds = None;
        for m in self
            .marks
            .iter()
            .filter(|m| matches!(m.kind, MarkKind::Fds))
        {
            if m.at == self.tx_sent {
                fds = Some(RequestId(m.id));
            } else {
                end = self.tx_head + (m.at - self.tx_sent) as usize;
                break;
            }
        }
        Some(Transmit {
            bytes: &self.tx[self.tx_head..end],
            fds,
        })
    }

    /// Reports that the first `n` bytes of the last
    /// [`poll_transmit`](Self::poll_transmit) were written.
    pub fn consume_transmit(&mut self, n: usize) {
        let n = n.min(self.tx.len() - self.tx_head);
        self.tx_head += n;
        self.tx_sent += n as u64;
        while let Some(m) = self.marks.front() {
            let done = match m.kind {
                MarkKind::Fds => m.at < self.tx_sent,
                MarkKind::Written => m.at <= self.tx_sent,
            };
            if !done {
                break;
            }
            if let Some(Mark {
                kind: MarkKind::Written,
                id,
                ..
            }) = self.marks.pop_front()
                && let Some(pos) = self.pending.iter().position(|p| p.id == id)
                && let Some(p) = remove_at(&mut self.pending, pos)
                && p.state == State::Sent
            {
                self.finish(RequestId(id), Ok(Value::Null));
            }
        }
        if self.tx_head == self.tx.len() {
            self.tx.clear();
            self.tx_head = 0;
        } else if self.tx_head >= 64 * 1024 {
            self.tx.drain(..self.tx_head);
            self.tx_head = 0;
        }
    }

    /// The next output (greeting, readiness, a request's end, the close).
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The oldest queued event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// The event queue itself, e.g. to take the first event that matches
    /// while leaving the others queued.
    pub fn events(&mut self) -> &mut EventQueue<EVENTS> {
        &mut self.events
    }

    /// The earliest deadline the engine is waiting for; call
    /// [`handle_timeout`](Self::handle_timeout) once it has passed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.close_reason.is_some() {
            return None;
        }
        let sync = self.sync.as_ref().and_then(|s| s.deadline);
        let requests = self.pending.iter().filter_map(|p| p.deadline).min();
        [self.handshake_deadline, sync, requests]
            .into_iter()
            .flatten()
            .min()
    }

    // ----- state --------------------------------------------------------

    /// Where the session stands.
    pub fn runstate(&self) -> Runstate {
        self.runstate
    }

    /// The server's greeting, once received.
    pub fn greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    /// Whether out-of-band execution was negotiated.
    pub fn oob_enabled(&self) -> bool {
        self.oob
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.close_reason.as_ref()
    }

    /// Whether the request is still open (queued, in flight).
    pub fn is_open(&self, id: RequestId) -> bool {
        self.pending
            .iter()
            .any(|p| p.id == id.0 && p.state != State::Abandoned)
    }

    /// Requests not yet ended, including abandoned ones awaiting a reply.
    pub fn open_requests(&self) -> usize {
        self.pending.len()
    }

    /// Counters of what was dropped or discarded.
    pub fn stats(&self) -> Stats {
        Stats {
            events_lagged: self.events.lagged_total(),
            ..self.stats
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Heap bytes held by the engine's own buffers right now (receive
    /// reassembly and transmit), for memory accounting.
    pub fn buffered_bytes(&self) -> usize {
        self.framer.buffer_capacity() + self.tx.capacity()
    }

    // ----- internals ----------------------------------------------------

    fn dispatch(&mut self, now: Instant, msg: Incoming) {
        match msg {
            Incoming::Greeting(body) => match Greeting::from_value(&body) {
                Ok(greeting) => {
                    self.outputs.push_back(Output::Greeting(greeting.clone()));
                    self.greeting = Some(greeting);
                    if self.runstate == Runstate::AwaitingGreeting {
                        if self.config.negotiate {
                            self.start_negotiation();
                        } else {
                            self.become_running(now);
                        }
                    }
                }
                Err(e) if self.runstate == Runstate::AwaitingGreeting => {
                    self.close_with(CloseReason::Greeting(e));
                }
                Err(_) => self.stats.unrecognized += 1,
            },
            Incoming::Event(event) => self.events.push(event),
            // Nothing of ours is on the wire before the greeting. QEMU hands
            // a new client the reply to a command the previous client left
            // running; drop it like any reply nobody is waiting for.
            Incoming::Reply { .. } if self.runstate == Runstate::AwaitingGreeting => {
                self.stats.unknown_replies += 1;
            }
            Incoming::Reply {
                id: ReplyId::Number(n),
                result,
            } => {
                if self.runstate == Runstate::Negotiating && self.negotiation_id == Some(n) {
                    self.negotiation_id = None;
                    match result {
                        Ok(_) => {
                            self.oob = self.oob_requested;
                            self.become_running(now);
                        }
                        Err(e) => self.close_with(CloseReason::Negotiation(e)),
                    }
                    return;
                }
                let found = self
                    .pending
                    .iter()
                    .position(|p| p.id == n && p.state != State::Queued);
                let Some(p) = found.and_then(|pos| remove_at(&mut self.pending, pos)) else {
                    self.stats.unknown_replies += 1;
                    return;
                };
                if p.holds_slot() {
                    self.in_flight -= 1;
                }
                if p.state == State::Abandoned {
                    self.stats.late_replies += 1;
                } else {
                    self.finish(RequestId(n), result.map_err(RequestError::Server));
                }
            }
            Incoming::Reply {
                id: ReplyId::Foreign,
                ..
            } => self.stats.unknown_replies += 1,
            Incoming::Reply {
                id: ReplyId::Missing,
                result,
            } => match (result, &self.sync) {
                (Ok(v), Some(sync)) if v.as_u64() == Some(sync.token) => {
                    self.sync = None;
                    self.become_running(now);
                }
                (_, Some(_)) => self.stats.discarded_during_sync += 1,
                (Ok(_), None) => self.stats.unknown_replies += 1,
                // While negotiating, only our own well-formed
                // `qmp_capabilities` is on the wire: an id-less error then
                // is a previous client's, handed to us by QEMU.
                (Err(_), None) if self.runstate == Runstate::Negotiating => {
                    self.stats.unknown_replies += 1;
                }
                (Err(e), None) => self.close_with(CloseReason::ServerParseError(e)),
            },
            Incoming::Unrecognized => self.stats.unrecognized += 1,
        }
    }

    fn start_negotiation(&mut self) {
        let id = self.negotiation_id.unwrap_or(0);
        self.oob_requested = self.config.enable_oob
            && self
                .greeting
                .as_ref()
                .is_some_and(|g| g.offers(&Capability::Oob));
        let mut req = Request::new("qmp_capabilities");
        if self.oob_requested {
            req = req.arguments(serde_json::json!({"enable": ["oob"]}));
        }
        let mut bytes = Vec::new();
        req.encode(Some(id), &mut bytes);
        self.push_tx(bytes);
        self.runstate = Runstate::Negotiating;
    }

    fn start_sync(&mut self, now: Instant) {
        // splitmix64: ids that look random and never repeat for one seed.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // Within 2^53 so that any JSON implementation keeps it exact.
        let token = (z & ((1 << 53) - 1)).max(1);
        let mut bytes = Vec::with_capacity(64);
        bytes.push(0xFF);
        bytes.extend_from_slice(b"{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":");
        write_u64(token, &mut bytes);
        bytes.extend_from_slice(b"}}");
        self.push_tx(bytes);
        // Replies still due to abandoned requests arrive before the
        // agent's delimiter and are discarded with everything else there.
        for _ in 0..self.pending.len() {
            if let Some(p) = self.pending.pop_front()
                && p.state != State::Abandoned
            {
                let _ = self.pending.push_back(p);
            }
        }
        self.in_flight = self.pending.iter().filter(|p| p.holds_slot()).count();
        self.sync = Some(Sync {
            token,
            deadline: self.config.sync_timeout.map(|t| now + t),
            delimited: false,
        });
        self.needs_sync = false;
        self.runstate = Runstate::Syncing;
    }

    fn become_running(&mut self, now: Instant) {
        self.runstate = Runstate::Running;
        self.handshake_deadline = None;
        self.outputs.push_back(Output::Ready);
        self.pump(now);
    }

    /// Moves queued requests into the transmit buffer as the rules allow.
    #[inline]
    fn pump(&mut self, now: Instant) {
        if (self.queued > 0 || self.needs_sync) && self.runstate == Runstate::Running {
            self.pump_slow(now);
        }
    }

    fn pump_slow(&mut self, now: Instant) {
        if self.needs_sync {
            let live = self
                .pending
                .iter()
                .any(|p| p.state == State::Sent && !p.no_reply);
            if !live {
                self.start_sync(now);
            }
            return;
        }
        let mut i = 0;
        while self.queued > 0
            && let Some(p) = self.pending.get(i)
        {
            if p.state == State::Queued {
                if !self.may_send(i) {
                    // First in, first out: nothing behind it may pass.
                    // (Out-of-band requests never queue: see `execute`.)
                    break;
                }
                self.release(i);
            }
            i += 1;
        }
    }

    /// Whether the queued request at `index` may go on the wire now.
    fn may_send(&self, index: usize) -> bool {
        let Some(p) = self.pending.get(index) else {
            return false;
        };
        if !p.oob && !p.no_reply && self.in_flight >= self.config.max_in_flight {
            return false;
        }
        // QEMU keeps only the descriptors of the latest message that
        // carried any: a second set sent before the first command ran
        // would replace the first. One request with fds at a time.
        !(p.fds
            && self
                .pending
                .iter()
                .any(|q| q.fds && q.state != State::Queued))
    }

    /// Moves the queued request at `index` into the transmit buffer.
    fn release(&mut self, index: usize) {
        let Some(p) = self.pending.get_mut(index) else {
            return;
        };
        if !p.oob && !p.no_reply {
            self.in_flight += 1;
        }
        p.state = State::Sent;
        self.queued -= 1;
        let (id, fds, no_reply) = (p.id, p.fds, p.no_reply);
        let bytes = core::mem::take(&mut p.bytes);
        let start = self.tx_sent + (self.tx.len() - self.tx_head) as u64;
        if fds {
            self.marks.push_back(Mark {
                at: start,
                kind: MarkKind::Fds,
                id,
            });
        }
        let len = bytes.len() as u64;
        self.push_tx(bytes);
        if no_reply {
            self.marks.push_back(Mark {
                at: start + len,
                kind: MarkKind::Written,
                id,
            });
        }
    }

    fn push_tx(&mut self, bytes: Vec<u8>) {
        if self.tx.is_empty() {
            self.tx = bytes;
        } else {
            self.tx.extend_from_slice(&bytes);
        }
    }

    fn finish(&mut self, id: RequestId, result: Result<Value, RequestError>) {
        self.outputs.push_back(Output::Reply { id, result });
    }

    fn close_with(&mut self, reason: CloseReason) {
        if self.close_reason.is_some() {
            return;
        }
        let peer_closed = matches!(reason, CloseReason::Eof | CloseReason::UnexpectedEof { .. });
        while let Some(p) = self.pending.pop_front() {
            let result = match p.state {
                State::Abandoned => continue,
                // `quit` makes QEMU close the connection, and that close
                // can overtake the reply.
                State::Sent if p.eof_ok && peer_closed => Ok(Value::Object(Default::default())),
                _ => Err(RequestError::Interrupted(reason.clone())),
            };
            self.finish(RequestId(p.id), result);
        }
        self.in_flight = 0;
        self.queued = 0;
        self.tx.clear();
        self.tx_head = 0;
        self.marks.clear();
        self.sync = None;
        self.needs_sync = false;
        self.handshake_deadline = None;
        self.negotiation_id = None;
        self.runstate = Runstate::Closed;
        self.outputs.push_back(Output::Closed(reason.clone()));
        self.close_reason = Some(reason);
    }
}
