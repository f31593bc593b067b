//! The blocking driving loop shared by the QMP and guest agent clients:
//! where bytes are written and read, and where deadlines are enforced.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant as StdInstant};

use log::{debug, trace, warn};
use qmp_core::serde_json::Value;
use qmp_core::{
    Client, CloseReason, Config, Greeting, Instant, Output, Request, RequestError, RequestId,
    Runstate,
};

use crate::error::Error;
use crate::stream::Stream;

/// The read buffer size: big replies arrive in a few reads.
const READ_CHUNK: usize = 64 * 1024;

/// The most descriptors one message can carry (Linux's SCM_MAX_FD).
const MAX_FDS: usize = 253;

/// The longest one write may block, and the longest a read waits while
/// bytes are still waiting to be written: a peer that stops reading must
/// not stop this side from reading its replies and events.
const WRITE_SLICE: Duration = Duration::from_millis(20);

/// What the connection died of on this side (I/O errors are not
/// `Clone`, so the facts are kept to build a fresh error per call).
#[derive(Debug)]
struct Failure {
    kind: ErrorKind,
    message: String,
}

/// How long one read may wait.
#[derive(Clone, Copy, Debug)]
enum Wait {
    /// Take what has already arrived, do not wait.
    Poll,
    /// Wait at most this long (`None`: until data or EOF).
    For(Option<Duration>),
}

/// One connection: the engine, its stream and the clock that feeds it.
#[derive(Debug)]
pub(crate) struct Conn<S> {
    pub(crate) stream: S,
    pub(crate) client: Client,
    origin: StdInstant,
    buf: Box<[u8]>,
    /// Duplicates of descriptors for requests not yet written.
    fds: Vec<(RequestId, Vec<OwnedFd>)>,
    /// Requests that ended, not yet collected by their caller.
    done: VecDeque<(RequestId, Result<Value, RequestError>)>,
    greeting: Option<Greeting>,
    ready: bool,
    failure: Option<Failure>,
    write_timeout: Option<Duration>,
    /// The read timeout last set on the stream (`None`: not set yet).
    read_timeout: Option<Option<Duration>>,
    /// "QMP" or "QGA", for logs.
    label: &'static str,
}

impl<S: Stream> Conn<S> {
    pub(crate) fn new(stream: S, config: Config, label: &'static str) -> Self {
        let origin = StdInstant::now();
        Conn {
            stream,
            client: Client::new(Instant::ZERO, config),
            origin,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            fds: Vec::new(),
            done: VecDeque::new(),
            greeting: None,
            ready: false,
            failure: None,
            write_timeout: None,
            read_timeout: None,
            label,
        }
    }

    /// The engine's clock: microseconds since this connection was made.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn to_std(&self, t: Instant) -> StdInstant {
        self.origin + Duration::from_micros(t.as_micros())
    }

    pub(crate) fn greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    /// Waits until the session runs (greeting and negotiation done, or the
    /// agent resynchronised).
    pub(crate) fn handshake(&mut self, timeout: Duration, what: &str) -> Result<(), Error> {
        self.write_timeout(timeout)?;
        let deadline = StdInstant::now() + timeout;
        match self.run(Some(deadline), |c| c.ready.then_some(())) {
            Ok(Some(())) => Ok(()),
            Ok(None) => Err(Error::Timeout {
                waiting_for: what.into(),
                after: Some(timeout),
            }),
            Err(Error::Closed(CloseReason::HandshakeTimeout | CloseReason::SyncTimeout)) => {
                Err(Error::Timeout {
                    waiting_for: what.into(),
                    after: Some(timeout),
                })
            }
            Err(Error::Closed(reason)) => Err(Error::Interrupted(reason)),
            Err(e) => Err(e),
        }
    }

    /// The error for a call made once the session has ended.
    pub(crate) fn dead(&self) -> Option<Error> {
        if let Some(f) = &self.failure {
            return Some(Error::Io(io::Error::new(
                f.kind,
                format!("the connection failed earlier: {}", f.message),
            )));
        }
        self.client.close_reason().map(|r| Error::Closed(r.clone()))
    }

    /// Submits `request` and waits for its end, at most `timeout`.
    pub(crate) fn call(
        &mut self,
        request: Request,
        timeout: Duration,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Value, Error> {
        if let Some(e) = self.dead() {
            return Err(e);
        }
        let name = request.name().to_owned();
        let mut request = request;
        let mut owned = Vec::new();
        if !fds.is_empty() {
            if !self.stream.can_pass_fds() {
                return Err(Error::FdPassingUnsupported {
                    transport: self.stream.transport(),
                });
            }
            if fds.len() > MAX_FDS {
                return Err(Error::Io(io::Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "{} file descriptors for one command; at most {MAX_FDS} fit",
                        fds.len()
                    ),
                )));
            }
            // Duplicates stay valid even if the call times out before the
            // request is written and the caller closes the originals.
            for fd in fds {
                owned.push(fd.try_clone_to_owned()?);
            }
            request = request.with_fds();
        }
        // One call at a time: anything left here belongs to no caller.
        self.done.clear();
        let now = self.now();
        let id = self
            .client
            .execute(now, request)
            .map_err(|e| self.submit_error(e))?;
        debug!(
            "{} -> {name} {id}{}",
            self.label,
            if owned.is_empty() { "" } else { " (with fds)" }
        );
        if !owned.is_empty() {
            self.fds.push((id, owned));
        }
        self.write_timeout(timeout)?;
        let deadline = StdInstant::now() + timeout;
        let taken = self.run(Some(deadline), |c| c.take_done(id));
        match taken {
            Ok(Some(Ok(value))) => {
                debug!("{} <- {id} {name}: {value}", self.label);
                Ok(value)
            }
            Ok(Some(Err(e))) => {
                debug!("{} <- {id} {name}: {e}", self.label);
                Err(match e {
                    RequestError::Timeout => Error::Timeout {
                        waiting_for: format!("the reply to `{name}`"),
                        after: None,
                    },
                    RequestError::Interrupted(_) if self.failure.is_some() => self
                        .dead()
                        .unwrap_or(Error::Interrupted(CloseReason::Local)),
                    e => Error::from(e),
                })
            }
            Ok(None) => {
                // The engine drops the reply if it comes later.
                self.client.cancel(id);
                debug!("{} timed out waiting for {id} {name}", self.label);
                Err(Error::Timeout {
                    waiting_for: format!("the reply to `{name}`"),
                    after: Some(timeout),
                })
            }
            Err(Error::Closed(reason)) => Err(Error::Interrupted(reason)),
            Err(e) => Err(e),
        }
    }

    fn submit_error(&self, e: qmp_core::SubmitError) -> Error {
        match e {
            qmp_core::SubmitError::Closed(_) => self.dead().unwrap_or(Error::from(e)),
            e => Error::from(e),
        }
    }

    fn take_done(&mut self, id: RequestId) -> Option<Result<Value, RequestError>> {
        let pos = self.done.iter().position(|(i, _)| *i == id)?;
        self.done.remove(pos).map(|(_, r)| r)
    }

    /// Waits, at most `timeout`, until `found` returns something; events
    /// that do not match stay queued. A session that ends during the wait
    /// gives `Interrupted`.
    pub(crate) fn wait_for<T>(
        &mut self,
        timeout: Duration,
        what: impl FnOnce() -> String,
        found: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<T, Error> {
        let was_open = self.dead().is_none();
        if was_open {
            self.write_timeout(timeout)?;
        }
        match self.run(Some(StdInstant::now() + timeout), found) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(Error::Timeout {
                waiting_for: what(),
                after: Some(timeout),
            }),
            Err(Error::Closed(r)) if was_open => Err(Error::Interrupted(r)),
            Err(e) => Err(e),
        }
    }

    /// Reads and processes whatever has already arrived, without waiting.
    pub(crate) fn poll(&mut self) -> Result<(), Error> {
        if self.dead().is_some() {
            return Ok(());
        }
        self.flush()?;
        // Bounded, in case the peer writes faster than this loop reads.
        for _ in 0..64 {
            if !self.read_once(Wait::Poll)? || self.dead().is_some() {
                break;
            }
        }
        self.flush()?;
        self.absorb();
        Ok(())
    }

    /// The driving loop: write, take outputs, check, read until the next
    /// deadline. `Ok(None)` when `deadline` passed first.
    fn run<T>(
        &mut self,
        deadline: Option<StdInstant>,
        mut found: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        loop {
            self.flush()?;
            self.absorb();
            if let Some(t) = found(self) {
                return Ok(Some(t));
            }
            if let Some(e) = self.dead() {
                return Err(e);
            }
            let now = StdInstant::now();
            if deadline.is_some_and(|d| d <= now) {
                return Ok(None);
            }
            let engine = self.client.poll_timeout().map(|t| self.to_std(t));
            let wake = match (deadline, engine) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let mut wait = wake.map(|w| {
                w.saturating_duration_since(now)
                    .max(Duration::from_millis(1))
            });
            if self.client.poll_transmit().is_some() {
                // Come back soon to write the rest.
                wait = Some(wait.map_or(WRITE_SLICE, |w| w.min(WRITE_SLICE)));
            }
            self.read_once(Wait::For(wait))?;
        }
    }

    /// Writes everything the engine has to send. A write that times out
    /// leaves the rest for the next round, after a read.
    fn flush(&mut self) -> Result<(), Error> {
        while let Some(tx) = self.client.poll_transmit() {
            let result = match tx.fds {
                Some(id) => match self.fds.iter().position(|(i, _)| *i == id) {
                    Some(pos) => {
                        let borrowed: Vec<BorrowedFd<'_>> =
                            self.fds[pos].1.iter().map(|fd| fd.as_fd()).collect();
                        self.stream.send_with_fds(tx.bytes, &borrowed)
                    }
                    None => {
                        warn!(
                            "{}: descriptors for {id} are gone; sending it without them",
                            self.label
                        );
                        self.stream.write(tx.bytes)
                    }
                },
                None => self.stream.write(tx.bytes),
            };
            match result {
                Ok(0) => {
                    let e = io::Error::new(ErrorKind::WriteZero, "the stream accepted no bytes");
                    return Err(self.fail(e));
                }
                Ok(n) => {
                    trace!(
                        "{} -> {}",
                        self.label,
                        String::from_utf8_lossy(&tx.bytes[..n])
                    );
                    if let Some(id) = tx.fds {
                        self.fds.retain(|(i, _)| *i != id);
                    }
                    self.client.consume_transmit(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(());
                }
                Err(e) if peer_gone(&e) => {
                    debug!("{}: write failed, the peer is gone: {e}", self.label);
                    let now = self.now();
                    self.client.handle_eof(now);
                    self.fds.clear();
                    return Ok(());
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(())
    }

    fn write_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
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
    fn read_once(&mut self, wait: Wait) -> Result<bool, Error> {
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
        let now = self.now();
        let got = matches!(result, Ok(n) if n > 0);
        match result {
            Ok(0) => {
                debug!("{} <- end of stream", self.label);
                self.client.handle_eof(now);
                self.fds.clear();
            }
            Ok(n) => {
                trace!(
                    "{} <- {}",
                    self.label,
                    String::from_utf8_lossy(&self.buf[..n])
                );
                if let Err(reason) = self.client.handle_input(now, &self.buf[..n]) {
                    debug!("{}: session closed: {reason}", self.label);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                self.client.handle_timeout(now);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if peer_gone(&e) => {
                debug!("{} <- {e}", self.label);
                self.client.handle_eof(now);
                self.fds.clear();
            }
            Err(e) => return Err(self.fail(e)),
        }
        Ok(got)
    }

    /// Moves the engine's outputs where callers look for them.
    fn absorb(&mut self) {
        while let Some(out) = self.client.poll_output() {
            match out {
                Output::Greeting(g) => {
                    debug!(
                        "{} <- greeting: QEMU {} {}",
                        self.label, g.version, g.package
                    );
                    self.greeting = Some(g);
                }
                Output::Ready => {
                    debug!("{}: ready (oob {})", self.label, self.client.oob_enabled());
                    self.ready = true;
                }
                Output::Reply { id, result } => self.done.push_back((id, result)),
                Output::Closed(reason) => debug!("{}: closed: {reason}", self.label),
                other => trace!("{}: {other:?}", self.label),
            }
        }
    }

    /// Records an I/O failure: the session is over, for this call and the next.
    fn fail(&mut self, e: io::Error) -> Error {
        debug!("{}: I/O error, closing: {e}", self.label);
        self.failure = Some(Failure {
            kind: e.kind(),
            message: e.to_string(),
        });
        self.client.close();
        self.fds.clear();
        self.absorb();
        Error::Io(e)
    }

    /// Ends the session from this side, first giving replies still due up
    /// to `linger` to arrive so the peer never writes to a closed socket.
    pub(crate) fn close(&mut self, linger: Duration) {
        // A guest agent resync in progress counts too: its answer comes
        // after any reply still due to an abandoned request.
        fn settled<S>(c: &mut Conn<S>) -> Option<()> {
            (c.client.open_requests() == 0 && c.client.runstate() != Runstate::Syncing)
                .then_some(())
        }
        if self.dead().is_none() && settled(self).is_none() {
            let _ = self.write_timeout(linger);
            let deadline = StdInstant::now() + linger;
            let _ = self.run(Some(deadline), settled);
        }
        self.client.close();
        self.absorb();
        let _ = self.stream.shutdown();
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
