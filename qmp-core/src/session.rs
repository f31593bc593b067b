//! The state machine: where a byte enters, where a reply is matched and an
//! event is queued, and where the session's phase changes.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec::Vec;
use serde_json::Value;

use crate::config::{Config, Dialect};
use crate::error::{CloseReason, RequestError, SubmitError};
use crate::event::{Event, EventQueue};
use crate::framing::{Frame, FrameError, Framer};
use crate::greeting::{Capability, Greeting};
use crate::message::{Fault, Incoming, ReplyId, decode, decode_prefix};
use crate::reply::Reply;
use crate::request::{Request, RequestId, close_request, request_fields, write_u64};
use crate::table::{Cancelled, Pending, RequestTable, State};
use crate::time::Instant;
use crate::transmit::{Transmit, TransmitQueue};

/// The id `qmp_capabilities` is sent with; when the engine negotiates,
/// requests are numbered from 1, so their ids do not depend on when the
/// greeting arrives.
const NEGOTIATION_ID: u64 = 0;

/// Where the session stands, as [`Client::state`] reports it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Waiting for the server's greeting (QMP).
    AwaitingGreeting,
    /// `qmp_capabilities` sent, waiting for its reply (QMP).
    Negotiating,
    /// Resynchronising with the guest agent (QGA).
    Syncing,
    /// Requests flow.
    Running,
    /// Closing from this side: reading the replies the server still owes
    /// for at most [`Config::close_linger`].
    Disconnecting,
    /// The session has ended; see [`Client::close_reason`].
    Closed,
}

/// Something the engine tells its driver, pulled with [`Client::poll_output`].
#[non_exhaustive]
#[derive(Debug)]
pub enum Output {
    /// The server's greeting arrived.
    Greeting(Greeting),
    /// The session entered [`SessionState::Running`]: negotiation or a
    /// guest agent resync finished.
    Ready,
    /// A request ended: with its reply, the server's error, a timeout, or
    /// an interruption. Every request ends exactly once, unless cancelled.
    Reply {
        /// The request.
        id: RequestId,
        /// The `return` value as received (for a raw request, the whole
        /// reply), or why there is none.
        result: Result<Reply, RequestError>,
    },
    /// The session ended. This is the last output, and the only place the
    /// end is reported.
    Closed(CloseReason),
}

/// Which way a message went, in a [`Traffic`] record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the server.
    Received,
    /// To the server.
    Sent,
}

/// A copy of one whole message, kept when [`Config::record_traffic`] is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traffic {
    /// Which way it went.
    pub direction: Direction,
    /// Its bytes as on the wire (a guest agent resync's leading 0xFF
    /// excluded).
    pub bytes: Vec<u8>,
}

/// Counters for what the engine met and dealt with quietly.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes received.
    pub bytes_received: u64,
    /// Bytes written (reported through
    /// [`consume_transmit`](Client::consume_transmit)).
    pub bytes_sent: u64,
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
    /// Events and unanswerable replies not decoded because they would
    /// take more than `Config::max_decoded_size` (dropped).
    pub oversized: u64,
}

/// A guest agent resync in progress.
#[derive(Debug)]
struct Sync {
    token: u64,
    deadline: Option<Instant>,
    /// The agent's 0xFF has been seen; messages are read again.
    delimited: bool,
}

/// The session's phase, with the data that only that phase has.
#[derive(Debug)]
enum Phase {
    AwaitingGreeting {
        deadline: Option<Instant>,
    },
    Negotiating {
        deadline: Option<Instant>,
        oob_requested: bool,
    },
    Syncing(Sync),
    Running {
        /// A guest agent request was given up on while the agent may still
        /// answer it: the stream is in doubt until a resync, which starts
        /// once no live request awaits a reply.
        resync_due: bool,
    },
    Disconnecting {
        until: Instant,
        /// A resync the agent is still answering.
        sync: Option<Sync>,
    },
    Closed(CloseReason),
}

/// The protocol engine for one connection. See the [crate docs](crate)
/// for the driving loop.
///
/// Its memory is bounded by its [`Config`]: the message cap bounds the
/// receive buffer, `max_open_requests` the request table and
/// `max_queued_events` and `max_queued_event_bytes` the event queue, and
/// `max_decoded_size` each decoded message. Nothing is allocated up front.
#[derive(Debug)]
pub struct Client {
    config: Config,
    phase: Phase,
    framer: Framer,
    greeting: Option<Greeting>,
    oob: bool,
    next_id: u64,
    rng: u64,
    requests: RequestTable,
    transmit: TransmitQueue,
    outputs: VecDeque<Output>,
    events: EventQueue,
    traffic: VecDeque<Traffic>,
    stats: Stats,
}

impl Client {
    /// A client whose session starts at `now`: it waits for the greeting
    /// (QMP) or starts a resync (guest agent) as `config` says.
    pub fn new(now: Instant, config: Config) -> Self {
        // `qmp_capabilities` is sent as id 0; numbers start after it.
        let first = u64::from(config.dialect == Dialect::Qmp && config.negotiate);
        let mut c = Client {
            framer: Framer::new(config.max_message_size),
            phase: Phase::Running { resync_due: false },
            greeting: None,
            oob: false,
            next_id: first,
            rng: config.sync_seed ^ 0x5851_f42d_4c95_7f2d,
            requests: RequestTable::new(config.max_open_requests, first),
            transmit: TransmitQueue::default(),
            outputs: VecDeque::new(),
            events: EventQueue::bounded(config.max_queued_events, config.max_queued_event_bytes),
            traffic: VecDeque::new(),
            stats: Stats::default(),
            config,
        };
        match c.config.dialect {
            Dialect::Qmp => {
                let deadline = c.config.handshake_timeout.map(|t| now + t);
                if c.config.await_greeting {
                    c.phase = Phase::AwaitingGreeting { deadline };
                } else if c.config.negotiate {
                    c.start_negotiation(deadline);
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

    /// Feeds bytes received from the server, in any chunking. Whatever
    /// they cause is pulled with the `poll_*` methods; a fatal input ends
    /// the session with [`Output::Closed`].
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.stats.bytes_received += data.len() as u64;
        if let [byte] = data
            && !self.in_sync()
            && self.framer.take_inner_byte(*byte)
        {
            return;
        }
        let mut rest = data;
        while !self.is_closed() {
            if let Some(sync) = self.sync_mut()
                && !sync.delimited
            {
                if !self.skip_to_delimiter(&mut rest) {
                    break;
                }
                continue;
            }
            let Some(step) = self.next_message(&mut rest) else {
                break;
            };
            match step {
                Ok(Some(msg)) => {
                    self.stats.messages_received += 1;
                    self.dispatch(now, msg);
                }
                Ok(None) => {}
                Err(reason) => match self.sync_mut() {
                    // While resyncing, junk is expected: look for the next
                    // delimiter instead of giving up.
                    Some(sync) => {
                        sync.delimited = false;
                        self.stats.discarded_during_sync += 1;
                        self.framer.reset();
                    }
                    None => self.close_with(reason),
                },
            }
        }
        self.settle(now);
    }

    /// The server closed the connection (read returned 0 bytes).
    pub fn handle_eof(&mut self, _now: Instant) {
        let reason = match &self.phase {
            Phase::Closed(_) => return,
            Phase::Disconnecting { .. } => CloseReason::Local,
            _ if self.framer.mid_message() && !self.in_sync() => CloseReason::UnexpectedEof {
                buffered: self.framer.buffered(),
            },
            _ => CloseReason::Eof,
        };
        self.close_with(reason);
    }

    /// Ends whatever is due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        let expired = match &self.phase {
            Phase::Closed(_) => return,
            Phase::AwaitingGreeting { deadline } | Phase::Negotiating { deadline, .. } => {
                due(*deadline).then_some(CloseReason::HandshakeTimeout)
            }
            Phase::Syncing(sync) => due(sync.deadline).then_some(CloseReason::SyncTimeout),
            Phase::Disconnecting { until, .. } => due(Some(*until)).then_some(CloseReason::Local),
            Phase::Running { .. } => None,
        };
        if let Some(reason) = expired {
            self.close_with(reason);
            return;
        }
        let qga = self.config.dialect == Dialect::Qga;
        let mut doubt = false;
        let outputs = &mut self.outputs;
        self.requests.expire(now, |id, reply_due| {
            doubt |= qga && reply_due;
            outputs.push_back(Output::Reply {
                id: RequestId(id),
                result: Err(RequestError::Timeout),
            });
        });
        if doubt {
            self.mark_resync_due();
        }
        self.settle(now);
    }

    /// Submits a request. It is sent as soon as the session runs and, for
    /// an in-band request, a server queue slot is free. Its deadline is
    /// the request's own, else [`Config::request_timeout`] from `now`.
    pub fn execute(&mut self, now: Instant, request: Request) -> Result<RequestId, SubmitError> {
        self.check_submit(request.oob)?;
        let id = self.next_id;
        self.next_id += 1;
        let mut bytes = Vec::new();
        let numbered = !(request.no_reply && self.config.dialect == Dialect::Qga);
        request.encode_open(&mut bytes);
        if !numbered {
            close_request(None, &mut bytes);
        }
        let relative = request.timeout.or(self.config.request_timeout);
        let deadline = match (request.deadline, relative) {
            (Some(d), Some(t)) if request.timeout.is_some() => Some(d.min(now + t)),
            (Some(d), _) => Some(d),
            (None, t) => t.map(|t| now + t),
        };
        let eof_ok = self.config.dialect == Dialect::Qmp && request.name() == "quit";
        let (oob, no_reply, fds) = (request.oob, request.no_reply, request.fds);
        self.enqueue(
            now,
            Pending {
                id,
                numbered,
                wire: None,
                name: request.into_name(),
                raw: None,
                state: State::Queued,
                deadline,
                oob,
                no_reply,
                eof_ok,
                fds,
                ran: false,
                bytes,
                ends_at: 0,
            },
        );
        Ok(RequestId(id))
    }

    /// Submits a whole request object as given (`execute` or `exec-oob`,
    /// `arguments`, and any `id` its caller chooses); its result is the
    /// whole reply object, an error reply included, as data. Without an
    /// `id` the engine adds its own. An `id` that is a non-negative
    /// integer (the engine's own ids) or that an open request has is
    /// refused. The deadline is `timeout` from `now`, else
    /// [`Config::request_timeout`].
    pub fn execute_raw(
        &mut self,
        now: Instant,
        message: Value,
        timeout: Option<core::time::Duration>,
    ) -> Result<RequestId, SubmitError> {
        let (obj, name, oob) = raw_request(message)?;
        let chosen = obj.get("id").cloned();
        if let Some(v) = &chosen
            && (v.as_u64().is_some() || self.requests.raw_with(v).is_some())
        {
            return Err(SubmitError::IdUnavailable {
                id: alloc::string::ToString::to_string(v),
            });
        }
        self.check_submit(oob)?;
        let id = self.next_id;
        self.next_id += 1;
        let mut bytes = serde_json::to_vec(&Value::Object(obj)).unwrap_or_default();
        // Without an id of its caller's, the engine numbers it when written.
        let numbered = chosen.is_none() && bytes.pop() == Some(b'}');
        self.enqueue(
            now,
            Pending {
                id,
                numbered,
                wire: None,
                eof_ok: self.config.dialect == Dialect::Qmp && name == "quit",
                name: name.into(),
                raw: Some(alloc::boxed::Box::new(chosen.unwrap_or(Value::Null))),
                state: State::Queued,
                deadline: timeout.or(self.config.request_timeout).map(|t| now + t),
                oob,
                no_reply: false,
                fds: false,
                ran: false,
                bytes,
                ends_at: 0,
            },
        );
        Ok(RequestId(id))
    }

    /// Whether a request may be submitted now.
    fn check_submit(&self, oob: bool) -> Result<(), SubmitError> {
        match &self.phase {
            Phase::Closed(reason) => return Err(SubmitError::Closed(reason.clone())),
            Phase::Disconnecting { .. } => return Err(SubmitError::Closed(CloseReason::Local)),
            _ => {}
        }
        if oob && !(self.oob && self.state() == SessionState::Running) {
            return Err(SubmitError::OobNotNegotiated);
        }
        if self.requests.is_full() {
            return Err(SubmitError::TooManyRequests {
                capacity: self.requests.capacity(),
            });
        }
        Ok(())
    }

    /// Adds a new request to the table and sends what may go.
    fn enqueue(&mut self, now: Instant, p: Pending) {
        let oob = p.oob;
        self.requests.push(p);
        if oob {
            // Accepted only while running: it overtakes everything queued.
            self.release(self.requests.len() - 1);
        } else {
            self.pump(now);
        }
    }

    /// Gives up on a request without an output for it. A queued request is
    /// never sent; a sent one's reply is dropped when it comes (for the
    /// guest agent, a resync then runs before the next request is sent).
    /// Returns whether the request was still open.
    pub fn cancel(&mut self, id: RequestId) -> bool {
        match self.requests.cancel(id.0) {
            Cancelled::NotOpen => false,
            Cancelled::Unsent => true,
            Cancelled::Sent { reply_due } => {
                if reply_due && self.config.dialect == Dialect::Qga {
                    self.mark_resync_due();
                }
                true
            }
        }
    }

    /// Resynchronises with the guest agent (QGA only; ignored for QMP):
    /// as soon as no live request is in flight, send 0xFF and
    /// `guest-sync-delimited`, discard everything up to the agent's 0xFF,
    /// and hold new requests until the agent answers.
    pub fn resync(&mut self, now: Instant) {
        if self.config.dialect == Dialect::Qga {
            self.mark_resync_due();
            self.pump(now);
        }
    }

    /// Closes the session from this side, gracefully: every request still
    /// waiting ends at once with `Interrupted(Local)`; the engine then keeps
    /// reading, for at most [`Config::close_linger`], until the server has
    /// sent the replies it still owes (a guest agent writing a reply to a
    /// closed socket dies of SIGPIPE), and [`Output::Closed`] follows.
    pub fn close(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Closed(_) | Phase::Disconnecting { .. }) {
            return;
        }
        let outputs = &mut self.outputs;
        self.requests.abandon_all(|p| {
            outputs.push_back(Output::Reply {
                id: RequestId(p.id),
                result: Err(RequestError::Interrupted(CloseReason::Local)),
            });
        });
        if self.config.close_linger.is_zero() {
            self.close_with(CloseReason::Local);
            return;
        }
        let sync = match core::mem::replace(&mut self.phase, Phase::Closed(CloseReason::Local)) {
            Phase::Syncing(sync) => Some(sync),
            _ => None,
        };
        self.phase = Phase::Disconnecting {
            until: now + self.config.close_linger,
            sync,
        };
        self.settle(now);
    }

    /// Ends the session from this side at once: every open request ends
    /// with `Interrupted(Local)` and [`Output::Closed`] follows.
    pub fn abort(&mut self) {
        self.close_with(CloseReason::Local);
    }

    // ----- outputs ------------------------------------------------------

    /// The next bytes to write, if any.
    pub fn poll_transmit(&self) -> Option<Transmit<'_>> {
        self.transmit.poll()
    }

    /// Reports that the first `n` bytes of the last
    /// [`poll_transmit`](Self::poll_transmit) were written.
    pub fn consume_transmit(&mut self, n: usize) {
        let (requests, outputs) = (&mut self.requests, &mut self.outputs);
        self.transmit.consume(n, |id| {
            if let Some(p) = requests.take_written(id)
                && p.state == State::Sent
            {
                outputs.push_back(Output::Reply {
                    id: RequestId(id),
                    result: Ok(Reply::from_text("null")),
                });
            }
        });
        if let Phase::Disconnecting { until, .. } = self.phase {
            self.settle(until);
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

    /// The next recorded message, when [`Config::record_traffic`] is on.
    pub fn poll_traffic(&mut self) -> Option<Traffic> {
        self.traffic.pop_front()
    }

    /// The event queue itself, e.g. to take the first event that matches
    /// while leaving the others queued.
    pub fn events(&mut self) -> &mut EventQueue {
        &mut self.events
    }

    /// The earliest deadline the engine is waiting for; call
    /// [`handle_timeout`](Self::handle_timeout) once it has passed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Closed(_) => return None,
            Phase::AwaitingGreeting { deadline } | Phase::Negotiating { deadline, .. } => *deadline,
            Phase::Syncing(sync) => sync.deadline,
            Phase::Disconnecting { until, .. } => Some(*until),
            Phase::Running { .. } => None,
        };
        [phase, self.requests.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    // ----- state --------------------------------------------------------

    /// Where the session stands.
    pub fn state(&self) -> SessionState {
        match &self.phase {
            Phase::AwaitingGreeting { .. } => SessionState::AwaitingGreeting,
            Phase::Negotiating { .. } => SessionState::Negotiating,
            Phase::Syncing(_) => SessionState::Syncing,
            Phase::Running { .. } => SessionState::Running,
            Phase::Disconnecting { .. } => SessionState::Disconnecting,
            Phase::Closed(_) => SessionState::Closed,
        }
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
        match &self.phase {
            Phase::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    /// Whether the request is still open (queued, in flight).
    pub fn is_open(&self, id: RequestId) -> bool {
        self.requests.is_live(id.0)
    }

    /// The `id` the request carries on the wire, once written and until it
    /// ends (its reply came, or it left the engine): a number no other
    /// open request holds, reused after its reply, so that requests stay
    /// short. `None` for a request not yet written, already ended, or sent
    /// without an engine id (a raw request with its caller's own id, or a
    /// guest agent command that never replies).
    pub fn wire_id(&self, id: RequestId) -> Option<u64> {
        self.requests.wire_of(id.0)
    }

    /// Requests not yet ended, including abandoned ones awaiting a reply.
    pub fn open_requests(&self) -> usize {
        self.requests.len()
    }

    /// Counters of what was dropped or discarded.
    pub fn stats(&self) -> Stats {
        Stats {
            events_lagged: self.events.lagged_total(),
            bytes_sent: self.transmit.sent(),
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
        self.framer.buffer_capacity() + self.transmit.capacity()
    }

    // ----- internals ----------------------------------------------------

    fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed(_))
    }

    fn in_sync(&self) -> bool {
        matches!(
            self.phase,
            Phase::Syncing(_) | Phase::Disconnecting { sync: Some(_), .. }
        )
    }

    fn sync_mut(&mut self) -> Option<&mut Sync> {
        match &mut self.phase {
            Phase::Syncing(sync) => Some(sync),
            Phase::Disconnecting { sync, .. } => sync.as_mut(),
            _ => None,
        }
    }

    /// Skips input up to the guest agent's 0xFF. Returns whether it came.
    fn skip_to_delimiter(&mut self, rest: &mut &[u8]) -> bool {
        let before = rest.len();
        let found = self.framer.skip_to_delimiter(rest);
        self.stats.discarded_during_sync += (before - rest.len() - usize::from(found)) as u64;
        if found && let Some(sync) = self.sync_mut() {
            sync.delimited = true;
        }
        found
    }

    /// Frames and decodes the next message in `rest`. `None` once `rest`
    /// is used up; `Ok(None)` for a frame that carries no message.
    fn next_message(&mut self, rest: &mut &[u8]) -> Option<Result<Option<Incoming>, CloseReason>> {
        let record = self.config.record_traffic;
        let raw = self.requests.has_raw();
        let budget = self.config.max_decoded_size;
        let mut taken = None;
        let mut seen: Option<&[u8]> = None;
        let fast = |window, offset| {
            let (len, msg) = decode_prefix(window, offset, budget)?;
            taken = Some(msg);
            if record || raw {
                seen = window.get(..len);
            }
            Some(len)
        };
        let step = match self.framer.next(rest, fast)? {
            Ok(Frame::Taken) => taken
                .map(|m| m.map(|m| Some(with_whole(m, raw, seen))))
                .unwrap_or(Ok(None)),
            Ok(Frame::Message { bytes, offset }) => {
                if record {
                    self.traffic.push_back(Traffic {
                        direction: Direction::Received,
                        bytes: bytes.to_vec(),
                    });
                }
                decode(bytes, offset, budget).map(|m| Some(with_whole(m, raw, Some(bytes))))
            }
            Ok(Frame::Delimiter) => match self.config.dialect {
                Dialect::Qga => Ok(None),
                Dialect::Qmp => Err(CloseReason::Malformed {
                    offset: self.framer.offset() - 1,
                    detail: "unexpected byte 0xff between messages".into(),
                }),
            },
            Err(FrameError::TooLarge { limit }) => Err(CloseReason::MessageTooLarge { limit }),
            Err(FrameError::NotAnObject { offset, byte }) => Err(CloseReason::Malformed {
                offset,
                detail: format!("expected '{{' to start a message, found byte 0x{byte:02x}"),
            }),
        };
        if let Some(bytes) = seen.filter(|_| record) {
            self.traffic.push_back(Traffic {
                direction: Direction::Received,
                bytes: bytes.to_vec(),
            });
        }
        Some(step)
    }

    fn dispatch(&mut self, now: Instant, msg: Incoming) {
        match msg {
            Incoming::Greeting(body) => self.on_greeting(now, &body),
            Incoming::Event(event) => self.events.push(event),
            // Nothing of ours is on the wire before the greeting. QEMU hands
            // a new client the reply to a command the previous client left
            // running; drop it like any reply nobody is waiting for.
            Incoming::Reply { .. } if matches!(self.phase, Phase::AwaitingGreeting { .. }) => {
                self.stats.unknown_replies += 1;
            }
            Incoming::Reply {
                id: ReplyId::Number(n),
                result,
                whole,
            } => match self.phase {
                Phase::Negotiating { oob_requested, .. } if n == NEGOTIATION_ID => {
                    self.on_negotiated(now, oob_requested, result);
                }
                _ => match self.requests.by_wire(n) {
                    Some(id) => self.on_reply(id, result, whole),
                    None => self.stats.unknown_replies += 1,
                },
            },
            Incoming::Reply {
                id: ReplyId::Foreign(v),
                result,
                whole,
            } => match self.requests.raw_with(&v) {
                Some(n) => self.on_reply(n, result, whole),
                None => self.stats.unknown_replies += 1,
            },
            Incoming::Reply {
                id: ReplyId::Missing,
                result,
                ..
            } => self.on_idless_reply(now, result),
            Incoming::Unrecognized => self.stats.unrecognized += 1,
            Incoming::Oversized => self.stats.oversized += 1,
        }
    }

    fn on_greeting(&mut self, now: Instant, body: &Value) {
        let parsed = Greeting::from_value(body);
        if let Phase::AwaitingGreeting { deadline } = self.phase {
            match parsed {
                Ok(greeting) => {
                    self.outputs.push_back(Output::Greeting(greeting.clone()));
                    self.greeting = Some(greeting);
                    if self.config.negotiate {
                        self.start_negotiation(deadline);
                    } else {
                        self.become_running(now);
                    }
                }
                Err(e) => self.close_with(CloseReason::Greeting(e)),
            }
        } else if self.greeting.is_some() && matches!(self.phase, Phase::Negotiating { .. }) {
            // QEMU greets twice a client that connects while its monitor
            // is still being set up; nothing was asked of it yet.
            self.stats.unrecognized += 1;
        } else if self.greeting.is_some() {
            self.close_with(CloseReason::UnexpectedGreeting);
        } else if let Ok(greeting) = parsed {
            // Not waited for, but welcome: it tells the server's version.
            self.outputs.push_back(Output::Greeting(greeting.clone()));
            self.greeting = Some(greeting);
        } else {
            self.stats.unrecognized += 1;
        }
    }

    /// The answer to `qmp_capabilities`.
    fn on_negotiated(
        &mut self,
        now: Instant,
        oob_requested: bool,
        result: Result<Box<str>, Fault>,
    ) {
        match result {
            Ok(_) => {
                self.oob = oob_requested;
                self.become_running(now);
            }
            Err(Fault::Server(e)) => self.close_with(CloseReason::Negotiation(e)),
            Err(Fault::Bad(message)) => self.close_with(CloseReason::BadReply { message }),
            Err(Fault::TooLarge { .. }) => self.close_with(CloseReason::MessageTooLarge {
                limit: self.config.max_decoded_size,
            }),
        }
    }

    /// A reply to the request `n` (its handle).
    fn on_reply(&mut self, n: u64, result: Result<Box<str>, Fault>, whole: Option<Box<str>>) {
        let id = RequestId(n);
        let limit = self.config.max_decoded_size;
        match self.requests.take_answered(n, self.transmit.sent()) {
            None => self.stats.unknown_replies += 1,
            Some(p) if p.state == State::Abandoned => self.stats.late_replies += 1,
            // A raw request's result is the whole reply, errors included.
            Some(p) if p.raw.is_some() && whole.is_some() => {
                self.outputs.push_back(Output::Reply {
                    id,
                    result: Ok(Reply::with_limit(whole.unwrap_or_default(), limit)),
                })
            }
            Some(p) => self.outputs.push_back(Output::Reply {
                id,
                result: result
                    .map(|text| Reply::with_limit(text, limit))
                    .map_err(|fault| match fault {
                        Fault::Server(e) => RequestError::Server(e.for_request(id, p.name)),
                        Fault::Bad(message) => RequestError::BadReply { message },
                        Fault::TooLarge { bytes, estimate } => RequestError::TooLarge {
                            bytes,
                            estimate,
                            limit,
                        },
                    }),
            }),
        }
    }

    fn on_idless_reply(&mut self, now: Instant, result: Result<Box<str>, Fault>) {
        let negotiating = matches!(self.phase, Phase::Negotiating { .. });
        let Some(sync) = self.sync_mut() else {
            match result {
                Ok(_) => self.stats.unknown_replies += 1,
                // While negotiating, only our own well-formed
                // `qmp_capabilities` is on the wire: an id-less error then
                // is a previous client's, handed to us by QEMU.
                Err(_) if negotiating => self.stats.unknown_replies += 1,
                Err(Fault::Server(e)) => self.close_with(CloseReason::ServerParseError(e)),
                Err(Fault::Bad(message)) => self.close_with(CloseReason::BadReply { message }),
                Err(Fault::TooLarge { .. }) => self.stats.oversized += 1,
            }
            return;
        };
        let token = result
            .ok()
            .and_then(|t| serde_json::from_str::<u64>(&t).ok());
        if token != Some(sync.token) {
            self.stats.discarded_during_sync += 1;
            return;
        }
        match &mut self.phase {
            Phase::Disconnecting { sync, .. } => *sync = None,
            _ => self.become_running(now),
        }
    }

    fn start_negotiation(&mut self, deadline: Option<Instant>) {
        let oob_requested = self.config.enable_oob
            && self
                .greeting
                .as_ref()
                .is_some_and(|g| g.offers(&Capability::Oob));
        let mut req = Request::new("qmp_capabilities");
        if oob_requested {
            req = req.arguments(serde_json::json!({"enable": ["oob"]}));
        }
        let mut bytes = Vec::new();
        req.encode(Some(NEGOTIATION_ID), &mut bytes);
        self.send_own(bytes, 0);
        self.phase = Phase::Negotiating {
            deadline,
            oob_requested,
        };
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
        self.send_own(bytes, 1);
        // Replies still due to abandoned requests arrive before the
        // agent's delimiter and are discarded with everything else there.
        self.requests.forget_abandoned();
        self.phase = Phase::Syncing(Sync {
            token,
            deadline: self.config.sync_timeout.map(|t| now + t),
            delimited: false,
        });
    }

    /// Queues bytes the engine sends on its own behalf; `skip` leading
    /// bytes (the 0xFF) are left out of the traffic record.
    fn send_own(&mut self, bytes: Vec<u8>, skip: usize) {
        if self.config.record_traffic {
            self.traffic.push_back(Traffic {
                direction: Direction::Sent,
                bytes: bytes.get(skip..).unwrap_or_default().to_vec(),
            });
        }
        self.transmit.push(bytes);
    }

    fn become_running(&mut self, now: Instant) {
        self.phase = Phase::Running { resync_due: false };
        self.outputs.push_back(Output::Ready);
        self.pump(now);
    }

    fn mark_resync_due(&mut self) {
        if let Phase::Running { resync_due } = &mut self.phase {
            *resync_due = true;
        }
    }

    /// After an input: send what may go, and finish a graceful close once
    /// nothing is owed any more.
    fn settle(&mut self, now: Instant) {
        match &self.phase {
            Phase::Running { .. } => self.pump(now),
            Phase::Disconnecting { sync, .. }
                if sync.is_none() && !self.requests.any_reply_due() =>
            {
                self.close_with(CloseReason::Local);
            }
            _ => {}
        }
    }

    /// Moves queued requests into the transmit queue as the rules allow.
    fn pump(&mut self, now: Instant) {
        let Phase::Running { resync_due } = self.phase else {
            return;
        };
        if resync_due {
            if !self.requests.live_reply_due() {
                self.start_sync(now);
            }
            return;
        }
        let Some(mut i) = self.requests.first_queued() else {
            return;
        };
        while self.requests.queued() > 0
            && let Some(p) = self.requests.get(i)
        {
            if p.state == State::Queued {
                if !self.requests.may_send(i, self.config.max_in_flight) {
                    // First in, first out: nothing behind it may pass.
                    // (Out-of-band requests never queue: see `execute`.)
                    break;
                }
                self.release(i);
            }
            i += 1;
        }
    }

    /// Moves the queued request at `index` into the transmit queue.
    fn release(&mut self, index: usize) {
        if let Some((id, bytes, fds, no_reply)) = self.requests.mark_sent(index) {
            if self.config.record_traffic {
                self.traffic.push_back(Traffic {
                    direction: Direction::Sent,
                    bytes: bytes.clone(),
                });
            }
            let ends_at = self.transmit.push_request(id, bytes, fds, no_reply);
            self.requests.set_ends_at(index, ends_at);
        }
    }

    fn close_with(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        let peer_closed = matches!(reason, CloseReason::Eof | CloseReason::UnexpectedEof { .. });
        for p in self.requests.drain() {
            let result = match p.state {
                State::Abandoned => continue,
                // `quit` makes QEMU close the connection, and that close
                // can overtake the reply.
                State::Sent if p.eof_ok && peer_closed => Ok(Reply::from_text("{}")),
                _ => Err(RequestError::Interrupted(reason.clone())),
            };
            self.outputs.push_back(Output::Reply {
                id: RequestId(p.id),
                result,
            });
        }
        self.transmit.clear();
        self.outputs.push_back(Output::Closed(reason.clone()));
        self.phase = Phase::Closed(reason);
    }
}

/// Decodes the whole message too, when a raw request is open and this is a
/// reply within the decoding budget.
fn with_whole(msg: Incoming, raw: bool, bytes: Option<&[u8]>) -> Incoming {
    match (msg, raw, bytes) {
        (
            msg @ Incoming::Reply {
                result: Err(Fault::TooLarge { .. }),
                ..
            },
            ..,
        ) => msg,
        (Incoming::Reply { id, result, .. }, true, Some(bytes)) => Incoming::Reply {
            id,
            result,
            // Decoding checked that the message is UTF-8.
            whole: core::str::from_utf8(bytes).ok().map(Box::from),
        },
        (msg, ..) => msg,
    }
}

/// Checks a raw request object: its fields, its command name, and whether
/// it runs out of band.
fn raw_request(
    message: Value,
) -> Result<
    (
        serde_json::Map<alloc::string::String, Value>,
        alloc::string::String,
        bool,
    ),
    SubmitError,
> {
    let bad = |detail| SubmitError::NotARequest { detail };
    let Value::Object(obj) = message else {
        return Err(bad("a request must be a JSON object"));
    };
    let (name, oob) = request_fields(&obj).map_err(bad)?;
    let name = alloc::string::String::from(name);
    Ok((obj, name, oob))
}
