//! The blocking driving loop shared by the QMP and guest agent clients:
//! it moves bytes between the stream and the engine's [`Conn`], and waits.
//! Every protocol decision (deadlines, resync, flow control, the close)
//! is the engine's.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant as StdInstant};

use qmp_core::serde_json::Value;
use qmp_core::{CloseReason, Output, Reply, Request, RequestError, RequestId, SessionState};
use qmp_os::{CloseCause, Conn, Error, SCHEMA_COMMAND, SchemaCheck, reply_value};

use crate::stream::Stream;

/// The read buffer size: big replies arrive in a few reads.
const READ_CHUNK: usize = 64 * 1024;

/// The longest one write may block, and the longest a read waits while
/// bytes are still waiting to be written: a peer that stops reading must
/// not stop this side from reading its replies and events.
const WRITE_SLICE: Duration = Duration::from_millis(20);

/// How long one read may wait.
#[derive(Clone, Copy, Debug)]
enum Wait {
    /// Take what has already arrived, do not wait.
    Poll,
    /// Wait at most this long (`None`: until data or EOF).
    For(Option<Duration>),
}

/// One connection: its stream and its engine.
#[derive(Debug)]
pub(crate) struct Wire<S> {
    pub(crate) stream: S,
    pub(crate) conn: Conn,
    buf: Box<[u8]>,
    /// Requests that ended, not yet collected by their caller.
    done: VecDeque<(RequestId, Result<Reply, RequestError>)>,
    ready: bool,
    write_timeout: Option<Duration>,
    /// The read timeout last set on the stream (`None`: not set yet).
    read_timeout: Option<Option<Duration>>,
    /// The live-schema check (QMP, when the options ask for it).
    pub(crate) schema: SchemaCheck,
    /// The name of the command a call waits for, for its timeout error:
    /// one buffer for every call, not an allocation each.
    calling: String,
    /// When the last read returned: the time its bytes and the deadlines
    /// checked after it are judged by, one clock read per read.
    read_at: StdInstant,
}

impl<S: Stream> Wire<S> {
    pub(crate) fn new(stream: S, conn: Conn) -> Self {
        Wire {
            stream,
            conn,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            done: VecDeque::new(),
            ready: false,
            write_timeout: None,
            read_timeout: None,
            schema: SchemaCheck::new(false),
            calling: String::new(),
            read_at: StdInstant::now(),
        }
    }

    /// Waits until the session runs (greeting and negotiation done, or the
    /// agent resynchronised); the engine bounds it by its handshake timeout.
    /// `qmp`: a QMP handshake, whose timeout says whether the greeting
    /// had arrived.
    pub(crate) fn handshake(
        &mut self,
        timeout: Duration,
        what: &str,
        qmp: bool,
    ) -> Result<(), Error> {
        self.set_write_timeout(timeout)?;
        let cause = match self.run_within(timeout, |w| w.ready.then_some(())) {
            Ok(Some(())) => return Ok(()),
            Ok(None) => CloseCause::Session(CloseReason::HandshakeTimeout),
            Err(Error::Closed(cause)) => cause,
            Err(e) => return Err(e),
        };
        Err(self.conn.handshake_error(cause, what, timeout, qmp))
    }

    /// Submits `request` and waits for its end, at most `timeout`; its
    /// reply decoded untyped.
    pub(crate) fn call(
        &mut self,
        request: Request,
        timeout: Duration,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Value, Error> {
        reply_value(&self.call_reply(request, timeout, fds)?)
    }

    /// Submits `request` and waits for its end, at most `timeout`; its
    /// reply as received, for a typed decoding.
    pub(crate) fn call_reply(
        &mut self,
        request: Request,
        timeout: Duration,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply, Error> {
        // One call at a time: anything left here belongs to no caller.
        self.done.clear();
        if self.schema.needs_schema(request.name()) {
            self.fetch_schema(timeout)?;
        }
        self.schema.check(&request)?;
        let mut name = core::mem::take(&mut self.calling);
        name.clear();
        name.push_str(request.name());
        // One clock read serves the request's deadline and the wait's.
        let start = StdInstant::now();
        let result = match self.conn.submit_at(start, request, timeout, fds) {
            Ok(id) => self.wait_reply_from(start, id, &name, timeout),
            Err(e) => Err(e),
        };
        self.calling = name;
        result
    }

    /// Submits a whole request object and waits for the whole reply.
    pub(crate) fn call_raw(&mut self, message: Value, timeout: Duration) -> Result<Value, Error> {
        self.done.clear();
        let name = qmp_os::raw_command_name(&message)
            .unwrap_or("a raw request")
            .to_owned();
        if self.schema.needs_schema(&name) {
            self.fetch_schema(timeout)?;
        }
        self.schema.check_raw(&message)?;
        let id = self.conn.submit_raw(message, timeout)?;
        reply_value(&self.wait_reply(id, &name, timeout)?)
    }

    /// Fetches the server's schema for the live-schema check, once.
    fn fetch_schema(&mut self, timeout: Duration) -> Result<(), Error> {
        let id = self
            .conn
            .submit(Request::new(SCHEMA_COMMAND), timeout, &[])?;
        let reply = self
            .wait_reply(id, SCHEMA_COMMAND, timeout)
            .and_then(|r| reply_value(&r));
        self.schema.set_schema(reply)
    }

    /// Waits for request `id`'s end, at most `timeout`.
    fn wait_reply(&mut self, id: RequestId, name: &str, timeout: Duration) -> Result<Reply, Error> {
        self.wait_reply_from(StdInstant::now(), id, name, timeout)
    }

    /// Waits for request `id`'s end, at most `timeout` from `start`.
    fn wait_reply_from(
        &mut self,
        start: StdInstant,
        id: RequestId,
        name: &str,
        timeout: Duration,
    ) -> Result<Reply, Error> {
        self.set_write_timeout(timeout)?;
        let what = || format!("the reply to `{name}`");
        match self.run(start.checked_add(timeout), start, |w| w.take_done(id)) {
            Ok(Some(result)) => self.conn.result(result, what, timeout),
            Ok(None) => {
                // Only when the clock jumped past the engine's own
                // deadline: the engine drops the reply if it comes later.
                self.conn.cancel(id);
                Err(Error::Timeout {
                    waiting_for: what(),
                    after: timeout,
                })
            }
            Err(Error::Closed(cause)) => Err(Error::Interrupted(cause)),
            Err(e) => Err(e),
        }
    }

    fn take_done(&mut self, id: RequestId) -> Option<Result<Reply, RequestError>> {
        let pos = self.done.iter().position(|(i, _)| *i == id)?;
        self.done.remove(pos).map(|(_, r)| r)
    }

    /// Waits, at most `timeout`, until `found` returns something. A
    /// session that ends during the wait gives `Interrupted`.
    pub(crate) fn wait_for<T>(
        &mut self,
        timeout: Duration,
        what: impl FnOnce() -> String,
        found: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<T, Error> {
        let was_open = self.conn.close_cause().is_none();
        if was_open {
            self.set_write_timeout(timeout)?;
        }
        match self.run_within(timeout, found) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(Error::Timeout {
                waiting_for: what(),
                after: timeout,
            }),
            Err(Error::Closed(cause)) if was_open => Err(Error::Interrupted(cause)),
            Err(e) => Err(e),
        }
    }

    /// Reads and processes whatever has already arrived, without waiting.
    pub(crate) fn poll(&mut self) {
        if self.conn.close_cause().is_some() {
            return;
        }
        self.flush();
        // Bounded, in case the peer writes faster than this loop reads.
        for _ in 0..64 {
            if !self.read_once(Wait::Poll) || self.conn.close_cause().is_some() {
                break;
            }
        }
        self.flush();
        self.absorb();
    }

    /// [`run`](Self::run) until `timeout` from now.
    fn run_within<T>(
        &mut self,
        timeout: Duration,
        found: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        let now = StdInstant::now();
        self.run(now.checked_add(timeout), now, found)
    }

    /// The driving loop: write, take outputs, check, read until the next
    /// deadline. `Ok(None)` when `deadline` passed first; `Err(Closed)`
    /// once the session has ended. `now`: a time the caller just read.
    fn run<T>(
        &mut self,
        deadline: Option<StdInstant>,
        mut now: StdInstant,
        mut found: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        loop {
            self.flush();
            self.absorb();
            if let Some(t) = found(self) {
                return Ok(Some(t));
            }
            if let Some(cause) = self.conn.close_cause() {
                return Err(Error::Closed(cause));
            }
            if deadline.is_some_and(|d| d <= now) {
                return Ok(None);
            }
            let wake = [deadline, self.conn.next_deadline()]
                .into_iter()
                .flatten()
                .min();
            let mut wait = wake.map(|w| {
                w.saturating_duration_since(now)
                    .max(Duration::from_millis(1))
            });
            if self.conn.transmit().is_some() {
                // Come back soon to write the rest.
                wait = Some(wait.map_or(WRITE_SLICE, |w| w.min(WRITE_SLICE)));
            }
            self.read_once(Wait::For(wait));
            now = self.read_at;
            self.conn.tick_at(now);
        }
    }

    /// Writes everything the engine has to send. A write that times out
    /// leaves the rest for the next round, after a read.
    fn flush(&mut self) {
        while let Some((bytes, fds)) = self.conn.transmit() {
            let result = if fds.is_empty() {
                self.stream.write(bytes)
            } else {
                let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
                self.stream.send_with_fds(bytes, &borrowed)
            };
            match result {
                Ok(0) => {
                    let e = io::Error::new(ErrorKind::WriteZero, "the stream accepted no bytes");
                    self.conn.failed(e);
                }
                Ok(n) => self.conn.transmitted(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return;
                }
                Err(e) if peer_gone(&e) => self.conn.received_eof(),
                Err(e) => self.conn.failed(e),
            }
        }
    }

    fn set_write_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        let timeout = Some(timeout.clamp(Duration::from_millis(1), WRITE_SLICE));
        if self.write_timeout != timeout {
            self.stream.set_write_timeout(timeout)?;
            self.write_timeout = timeout;
        }
        Ok(())
    }

    /// Bounds the next read by `wait` (`None`: until data comes).
    ///
    /// The stream's timeout is left alone when it is no longer than `wait`
    /// and at least half of it: a read that gives up early just comes
    /// round again with what is left. A new one is set to three quarters
    /// of `wait`, so the calls that follow, each waiting a little less
    /// than the one before, keep it. Setting it for every read cost a
    /// system call per call.
    fn read_within(&mut self, wait: Option<Duration>) -> io::Result<()> {
        let keep = match (self.read_timeout, wait) {
            (Some(None), None) => true,
            (Some(Some(current)), Some(wait)) => current <= wait && current * 2 >= wait,
            _ => false,
        };
        if !keep {
            // `wait` is at least 1 ms (see `run`), so this never exceeds it.
            let t = wait.map(|w| (w * 3 / 4).max(Duration::from_millis(1)).min(w));
            self.stream.set_read_timeout(t)?;
            self.read_timeout = Some(t);
        }
        Ok(())
    }

    /// One read, bounded by `wait`, fed to the engine. Returns whether
    /// bytes came.
    fn read_once(&mut self, wait: Wait) -> bool {
        let result = self.read_raw(wait);
        self.read_at = StdInstant::now();
        let got = matches!(result, Ok(n) if n > 0);
        match result {
            Ok(0) => self.conn.received_eof(),
            Ok(n) => self.conn.received_at(&self.buf[..n], self.read_at),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if peer_gone(&e) => self.conn.received_eof(),
            Err(e) => self.conn.failed(e),
        }
        got
    }

    fn read_raw(&mut self, wait: Wait) -> io::Result<usize> {
        let mut nonblocking = false;
        match wait {
            Wait::Poll => match self.stream.set_nonblocking(true) {
                Ok(()) => nonblocking = true,
                Err(_) => {
                    let t = Some(Duration::from_millis(1));
                    self.stream.set_read_timeout(t)?;
                    self.read_timeout = Some(t);
                }
            },
            Wait::For(t) => self.read_within(t)?,
        }
        let result = self.stream.read(&mut self.buf);
        if nonblocking {
            self.stream.set_nonblocking(false)?;
        }
        result
    }

    /// Moves the engine's outputs where callers look for them.
    fn absorb(&mut self) {
        while let Some(out) = self.conn.poll_output() {
            match out {
                Output::Ready => self.ready = true,
                Output::Reply { id, result } => self.done.push_back((id, result)),
                _ => {}
            }
        }
    }

    /// Ends the session from this side: the engine lingers for replies
    /// still owed (a guest agent), then the stream is shut down.
    pub(crate) fn close(&mut self) {
        if self.conn.close_cause().is_none() {
            self.conn.close();
            let _ = self.run(None, StdInstant::now(), |w| {
                (w.conn.state() == SessionState::Closed).then_some(())
            });
        }
        let _ = self.stream.shutdown();
    }

    /// Ends the session now, without waiting for anything.
    pub(crate) fn abort(&mut self) {
        self.conn.abort();
        self.absorb();
        let _ = self.stream.shutdown();
    }

    /// Why the session ended, once it has.
    pub(crate) fn close_cause(&self) -> Option<CloseCause> {
        self.conn.close_cause()
    }
}

/// Errors that mean the peer closed its end.
fn peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::BrokenPipe
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
    )
}
