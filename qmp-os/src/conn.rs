//! One connection's engine with everything about it that is not the
//! socket: its clock, its name in logs, the descriptors its requests
//! carry, and how it failed. Adapters own a `Conn` and a socket, and only
//! move bytes between the two.

use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use log::{Level, debug, info, log_enabled, trace};
use qmp_core::serde_json::Value;
use qmp_core::{
    Client, Command, Config, Direction, Event, EventQueue, Greeting, Instant, Output, Reply,
    Request, RequestError, RequestId, SessionState, Stats, Traffic,
};

use crate::clock::StdClock;
use crate::error::{CloseCause, Error};
use crate::fds::duplicate;
use crate::options::{Options, TrafficHook, request_limit};

/// The engine of one connection, plus what every adapter keeps beside it.
///
/// The driving loop an adapter runs: [`received`](Self::received) what it
/// read (or [`received_eof`](Self::received_eof)), write
/// [`transmit`](Self::transmit) and report [`transmitted`](Self::transmitted),
/// call [`tick`](Self::tick) once [`next_deadline`](Self::next_deadline)
/// passes, and hand [`poll_output`](Self::poll_output) and
/// [`poll_event`](Self::poll_event) to its callers, after every one of
/// these steps.
pub struct Conn {
    engine: Client,
    clock: StdClock,
    name: Arc<str>,
    hook: Option<TrafficHook>,
    /// Duplicates of descriptors for requests not yet written; dropped
    /// when written or when the request ends, whichever comes first.
    fds: Vec<(RequestId, Vec<OwnedFd>)>,
    /// `None` when descriptors can be passed, else what the stream is.
    without_fds: Option<&'static str>,
    failure: Option<Arc<io::Error>>,
    greeting: Option<Greeting>,
    /// Counters as last logged, to report new unknown or late replies.
    logged: Stats,
    /// The log target: the adapter's crate, so that users filter logs by
    /// the crate they use.
    target: &'static str,
    /// Recent events, whoever takes them (none unless asked for).
    history: EventQueue,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("name", &self.name)
            .field("state", &self.engine.state())
            .field("open_requests", &self.engine.open_requests())
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection whose session starts now. `default_name` names it in
    /// logs unless [`Options::name`] does ("QMP"), `target` is the log
    /// target (the adapter's crate), and `without_fds` names the stream
    /// when it cannot carry file descriptors ("TCP").
    pub fn new(
        config: Config,
        options: &Options,
        default_name: &str,
        target: &'static str,
        without_fds: Option<&'static str>,
    ) -> Self {
        let clock = StdClock::new();
        // Copies of the traffic only when someone will look at them.
        let record = options.on_traffic.is_some() || log_enabled!(target: target, Level::Debug);
        let config = config.record_traffic(record);
        let mut conn = Conn {
            engine: Client::new(clock.now(), config),
            clock,
            name: options.name_or(default_name),
            hook: options.on_traffic.clone(),
            fds: Vec::new(),
            without_fds,
            failure: None,
            greeting: None,
            logged: Stats::default(),
            target,
            history: EventQueue::new(0),
        };
        conn.after_step();
        conn
    }

    /// The connection's name in logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The engine.
    pub fn engine(&self) -> &Client {
        &self.engine
    }

    /// The engine, mutably, for what `Conn` does not wrap.
    pub fn engine_mut(&mut self) -> &mut Client {
        &mut self.engine
    }

    /// The clock that feeds the engine.
    pub fn clock(&self) -> StdClock {
        self.clock
    }

    /// The engine's time now.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The server's greeting, once received.
    pub fn greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    /// The error for a handshake that ended with `cause` while waiting for
    /// `what`. A QMP handshake (`qmp`) that timed out also says
    /// how far it got: whether the greeting had arrived, and whether
    /// `qmp_capabilities` went out.
    pub fn handshake_error(
        &self,
        cause: CloseCause,
        what: &str,
        timeout: Duration,
        qmp: bool,
    ) -> Error {
        let what = match (qmp, self.greeting.is_some()) {
            (false, _) => what.to_owned(),
            (true, false) => format!("{what} (no greeting arrived)"),
            (true, true) if self.engine.stats().bytes_sent == 0 => {
                format!("{what} (the greeting arrived; `qmp_capabilities` was not sent)")
            }
            (true, true) => {
                format!("{what} (the greeting arrived; `qmp_capabilities` was sent, not answered)")
            }
        };
        Error::from_handshake(cause, &what, timeout)
    }

    /// Whether file descriptors can be passed.
    pub fn can_pass_fds(&self) -> bool {
        self.without_fds.is_none()
    }

    /// Where the session stands.
    pub fn state(&self) -> SessionState {
        self.engine.state()
    }

    /// Why the connection ended, once it has.
    pub fn close_cause(&self) -> Option<CloseCause> {
        if let Some(e) = &self.failure {
            return Some(CloseCause::Io(e.clone()));
        }
        self.engine
            .close_reason()
            .map(|r| CloseCause::Session(r.clone()))
    }

    /// Submits `request`, which ends `timeout` from now unless it has a
    /// shorter deadline of its own, with copies of `fds` sent with its
    /// first byte.
    pub fn submit(
        &mut self,
        request: Request,
        timeout: Duration,
        fds: &[BorrowedFd<'_>],
    ) -> Result<RequestId, Error> {
        self.submit_at(StdInstant::now(), request, timeout, fds)
    }

    /// Like [`submit`](Self::submit), at `now`, a time the caller just
    /// read (and may use again for its own wait, sparing a clock read).
    pub fn submit_at(
        &mut self,
        now: StdInstant,
        request: Request,
        timeout: Duration,
        fds: &[BorrowedFd<'_>],
    ) -> Result<RequestId, Error> {
        let owned = if fds.is_empty() {
            Vec::new()
        } else {
            self.check_fds()?;
            duplicate(fds)?
        };
        let now = self.clock.from_std(now);
        let deadline = request_limit(timeout).map(|t| now + t);
        self.submit_owned_at(now, request, deadline, owned)
    }

    /// Like [`submit`](Self::submit), with an absolute deadline (`None`:
    /// the engine's default) and descriptors already duplicated.
    pub fn submit_owned(
        &mut self,
        request: Request,
        deadline: Option<Instant>,
        fds: Vec<OwnedFd>,
    ) -> Result<RequestId, Error> {
        self.submit_owned_at(self.now(), request, deadline, fds)
    }

    fn submit_owned_at(
        &mut self,
        now: Instant,
        mut request: Request,
        deadline: Option<Instant>,
        fds: Vec<OwnedFd>,
    ) -> Result<RequestId, Error> {
        if let Some(cause) = self.close_cause() {
            return Err(Error::Closed(cause));
        }
        if !fds.is_empty() {
            self.check_fds()?;
            request = request.with_fds();
        }
        if let Some(d) = deadline
            && request.deadline_setting().is_none_or(|own| own > d)
        {
            request = request.deadline(d);
        }
        let name_for_log =
            log_enabled!(target: self.target, Level::Trace).then(|| request.name().to_owned());
        let id = self.engine.execute(now, request)?;
        if let Some(name) = name_for_log {
            trace!(target: self.target, "{}: {name} is {id}", self.name);
        }
        if !fds.is_empty() {
            self.fds.push((id, fds));
        }
        self.after_step();
        Ok(id)
    }

    /// Submits a whole request object as given (see
    /// [`Client::execute_raw`]): its result is the whole reply.
    pub fn submit_raw(&mut self, message: Value, timeout: Duration) -> Result<RequestId, Error> {
        if let Some(cause) = self.close_cause() {
            return Err(Error::Closed(cause));
        }
        let id = self
            .engine
            .execute_raw(self.now(), message, request_limit(timeout))?;
        self.after_step();
        Ok(id)
    }

    fn check_fds(&self) -> Result<(), Error> {
        match self.without_fds {
            Some(transport) => Err(Error::FdPassingUnsupported { transport }),
            None => Ok(()),
        }
    }

    /// Gives up on a request (its caller went away): never sent if it was
    /// not yet, its reply dropped otherwise, its descriptors closed.
    pub fn cancel(&mut self, id: RequestId) {
        self.engine.cancel(id);
        self.forget_fds(id);
        self.after_step();
    }

    /// Keeps copies of the last `events` events that arrive (at most
    /// `bytes` of them), whoever takes them, for [`history`](Self::history).
    pub fn keep_history(&mut self, events: usize, bytes: usize) {
        self.history = EventQueue::bounded(events, bytes);
    }

    /// The recent events kept since [`keep_history`](Self::keep_history),
    /// oldest first.
    pub fn history(&self) -> &EventQueue {
        &self.history
    }

    /// Feeds bytes read from the socket.
    pub fn received(&mut self, bytes: &[u8]) {
        self.received_at(bytes, StdInstant::now());
    }

    /// Feeds bytes read from the socket at `now`, a time the caller just
    /// read (and may use again for [`tick_at`](Self::tick_at)).
    pub fn received_at(&mut self, bytes: &[u8], now: StdInstant) {
        let now = self.clock.from_std(now);
        if self.history.capacity() == 0 {
            self.engine.handle_input(now, bytes);
        } else {
            // New events are the queue's newest: those it gained, plus
            // those it dropped to make room for them.
            let count = |q: &EventQueue| q.len() as u64 + q.lagged_total();
            let before = count(self.engine.events());
            self.engine.handle_input(now, bytes);
            let queue = self.engine.events();
            let new = (count(queue) - before).min(queue.len() as u64) as usize;
            for event in queue.iter().skip(queue.len() - new) {
                self.history.push(event.clone());
            }
        }
        self.after_step();
    }

    /// The peer closed the connection.
    pub fn received_eof(&mut self) {
        debug!(target: self.target, "{} <- end of stream", self.name);
        self.engine.handle_eof(self.clock.now());
        self.after_step();
    }

    /// Reading or writing failed: the session is over.
    pub fn failed(&mut self, e: io::Error) {
        debug!(target: self.target, "{}: I/O error, closing: {e}", self.name);
        self.failure.get_or_insert_with(|| Arc::new(e));
        self.engine.abort();
        self.fds.clear();
    }

    /// Closes gracefully: see [`Client::close`].
    pub fn close(&mut self) {
        self.engine.close(self.clock.now());
        self.after_step();
    }

    /// Closes at once.
    pub fn abort(&mut self) {
        self.engine.abort();
        self.after_step();
    }

    /// Ends what is due now. Returns whether anything was.
    pub fn tick(&mut self) -> bool {
        self.tick_at(StdInstant::now())
    }

    /// Ends what is due at `now`, a time the caller just read. Returns
    /// whether anything was.
    pub fn tick_at(&mut self, now: StdInstant) -> bool {
        let Some(due) = self.engine.poll_timeout() else {
            return false;
        };
        let now = self.clock.from_std(now);
        if due <= now {
            self.engine.handle_timeout(now);
            self.after_step();
            return true;
        }
        false
    }

    /// When [`tick`](Self::tick) is next due (`None`: no deadline, or one
    /// too far away to represent).
    pub fn next_deadline(&self) -> Option<StdInstant> {
        self.engine
            .poll_timeout()
            .and_then(|d| self.clock.to_std(d))
    }

    /// The next bytes to write, and the descriptors to send with their
    /// first byte (empty for most writes).
    pub fn transmit(&self) -> Option<(&[u8], &[OwnedFd])> {
        let tx = self.engine.poll_transmit()?;
        let fds = tx
            .fds
            .and_then(|id| self.fds.iter().find(|(i, _)| *i == id))
            .map_or(&[][..], |(_, fds)| fds.as_slice());
        Some((tx.bytes, fds))
    }

    /// Reports that `n` bytes of the last [`transmit`](Self::transmit) were
    /// written (with its descriptors, if any).
    pub fn transmitted(&mut self, n: usize) {
        if n > 0
            && let Some(id) = self.engine.poll_transmit().and_then(|tx| tx.fds)
        {
            // Sent: the server has its own copies now.
            self.forget_fds(id);
        }
        self.engine.consume_transmit(n);
        self.after_step();
    }

    /// The next output for the adapter to act on.
    pub fn poll_output(&mut self) -> Option<Output> {
        let out = self.engine.poll_output()?;
        match &out {
            Output::Greeting(g) => {
                info!(
                    target: self.target,
                    "{} <- greeting: QEMU {} {}",
                    self.name, g.version, g.package
                );
                self.greeting = Some(g.clone());
            }
            Output::Ready => {
                info!(target: self.target, "{}: ready (oob {})", self.name, self.engine.oob_enabled())
            }
            Output::Reply { id, result } => {
                self.forget_fds(*id);
                if let Err(e) = result {
                    debug!(target: self.target, "{}: {id} ended: {e}", self.name);
                }
            }
            Output::Closed(reason) => {
                self.fds.clear();
                info!(target: self.target, "{}: closed: {reason}", self.name);
            }
            _ => {}
        }
        Some(out)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.engine.poll_event()
    }

    /// The error a caller gets for a request that ended badly: `what` it
    /// waited for, `timeout` how long it could.
    pub fn request_error(
        &self,
        e: RequestError,
        what: impl FnOnce() -> String,
        timeout: Duration,
    ) -> Error {
        match (e, &self.failure) {
            (RequestError::Interrupted(_), Some(io)) => {
                Error::Interrupted(CloseCause::Io(io.clone()))
            }
            (e, _) => Error::from_request(e, what, timeout),
        }
    }

    /// A request's result as a caller gets it, its reply still undecoded.
    pub fn result(
        &self,
        result: Result<Reply, RequestError>,
        what: impl FnOnce() -> String,
        timeout: Duration,
    ) -> Result<Reply, Error> {
        result.map_err(|e| self.request_error(e, what, timeout))
    }

    fn forget_fds(&mut self, id: RequestId) {
        if !self.fds.is_empty() {
            self.fds.retain(|(i, _)| *i != id);
        }
    }

    /// Logs and hands out what the engine recorded, after any step.
    fn after_step(&mut self) {
        while let Some(t) = self.engine.poll_traffic() {
            self.record(&t);
        }
        let stats = self.engine.stats();
        if stats.unknown_replies != self.logged.unknown_replies
            || stats.late_replies != self.logged.late_replies
        {
            info!(
                target: self.target,
                "{}: dropped {} replies nobody waits for and {} late replies so far",
                self.name, stats.unknown_replies, stats.late_replies
            );
            self.logged = stats;
        }
    }

    fn record(&self, t: &Traffic) {
        let arrow = match t.direction {
            Direction::Received => "<-",
            _ => "->",
        };
        debug!(
            target: self.target,
            "{} {arrow} {}",
            self.name,
            String::from_utf8_lossy(&t.bytes)
        );
        if let Some(hook) = &self.hook {
            hook(&self.name, t);
        }
    }
}

/// A reply decoded untyped, within the session's decoding budget: a reply
/// over it fails with [`Error::TooLarge`].
pub fn reply_value(reply: &Reply) -> Result<Value, Error> {
    reply
        .value()
        .map_err(|e| Error::from_request(e, String::new, Duration::ZERO))
}

/// A reply decoded as `C`'s return type, straight from its text.
pub fn reply_returns<C: Command>(reply: &Reply) -> Result<C::Returns, Error> {
    Ok(C::decode_reply(reply)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_timed_out_request_closes_its_descriptors() {
        let (keep, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut conn = Conn::new(Config::qmp(), &Options::new(), "QMP", "test", None);
        use std::os::fd::AsFd;
        let id = conn
            .submit(Request::new("getfd"), Duration::ZERO, &[keep.as_fd()])
            .unwrap();
        assert_eq!(conn.fds.len(), 1);
        std::thread::sleep(Duration::from_millis(1));
        assert!(conn.tick());
        let ended = std::iter::from_fn(|| conn.poll_output())
            .any(|o| matches!(o, Output::Reply { id: i, .. } if i == id));
        assert!(ended);
        assert!(conn.fds.is_empty(), "the duplicate is closed");
    }

    #[test]
    fn the_hook_sees_each_message_with_the_connection_name() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let options = Options::new().name("vm1").on_traffic(move |name, t| {
            log.lock()
                .unwrap()
                .push((name.to_owned(), t.direction, t.bytes.clone()));
        });
        let mut conn = Conn::new(options.qmp_config(), &options, "QMP", "test", Some("TCP"));
        conn.received(br#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 10}, "package": ""}, "capabilities": []}}"#);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, "vm1");
        assert_eq!(seen[0].1, Direction::Received);
        assert!(seen[1].2.starts_with(br#"{"execute":"qmp_capabilities""#));
        let e = conn
            .submit_owned(
                Request::new("x"),
                None,
                vec![OwnedFd::from(std::fs::File::open("/dev/null").unwrap())],
            )
            .unwrap_err();
        assert!(matches!(
            e,
            Error::FdPassingUnsupported { transport: "TCP" }
        ));
    }
}
