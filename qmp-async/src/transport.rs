//! The socket under a connection (a Unix stream, which can carry file
//! descriptors, or any other byte stream), its timer, and the moving of
//! bytes between them and the engine's connection.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant as StdInstant;

use qmp_core::SessionState;
use qmp_os::Conn;

use crate::runtime::{ByteStream, Runtime};

/// The most one read takes: the read buffer starts at [`FIRST_READ`] and
/// doubles up to this whenever a read fills it, so that the thousands of
/// idle connections a process may hold keep a small buffer each.
const READ_CHUNK: usize = 8 * 1024;
const FIRST_READ: usize = 512;
/// The most events one read can complete: the smallest event,
/// `{"event":""}`, is 12 bytes, plus one that began in an earlier read.
/// The engine's queue holds at least this many, so that events are lost
/// only to subscribers' own queues, never between a read and its drain.
pub(crate) const MAX_EVENTS_PER_READ: usize = READ_CHUNK / 12 + 1;

/// One timer for the engine's next deadline, armed no later than that
/// deadline but re-armed only when the deadline moves earlier: each call
/// pushes the deadline a little later, and re-arming for every call would
/// cost the reactor a wake-up per call (smol's reactor is notified of
/// every new timer). An alarm that goes off early costs one spurious turn
/// (the engine ignores a deadline that is not due) and is then re-armed
/// for the real deadline. Made at the first deadline, then reset.
pub(crate) struct Alarm<R: Runtime> {
    timer: Option<Pin<Box<R::Timer>>>,
    /// When the timer goes off; `None`: it is not armed.
    at: Option<StdInstant>,
    /// The waker the armed timer holds. Polling it again with the same
    /// waker would only read the clock once more, so it is not.
    waker: Option<Waker>,
}

impl<R: Runtime> Default for Alarm<R> {
    fn default() -> Self {
        Alarm {
            timer: None,
            at: None,
            waker: None,
        }
    }
}

impl<R: Runtime> Alarm<R> {
    /// Makes sure the timer goes off by `next` (`None`: no deadline) and
    /// wakes this task when it does; `now` is the time the caller just
    /// read. Reports whether the timer went off while being polled.
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        next: Option<StdInstant>,
        now: StdInstant,
    ) -> bool {
        // Past its time, the timer has gone off or is about to: a wake it
        // may still send costs one spurious turn. Re-arm it if needed.
        if self.at.is_some_and(|at| at <= now) {
            self.at = None;
        }
        if let Some(due) = next
            && self.at.is_none_or(|at| at > due)
        {
            match &mut self.timer {
                Some(timer) => R::reset(timer.as_mut(), Some(due)),
                None => self.timer = Some(Box::pin(R::sleep_until(due))),
            }
            self.at = Some(due);
            self.waker = None;
        }
        // Without a deadline an armed timer is left to go off once: cheaper
        // than disarming it and arming it again for the next call.
        let (Some(_), Some(timer)) = (self.at, &mut self.timer) else {
            return false;
        };
        if self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return false;
        }
        if timer.as_mut().poll(cx).is_ready() {
            // A fired timer stays silent until re-armed: force that.
            self.at = None;
            self.waker = None;
            return true;
        }
        self.waker = Some(cx.waker().clone());
        false
    }
}

/// The socket with its read buffer and what is known of its readiness.
pub(crate) struct Pipe<R: Runtime> {
    io: Transport<R>,
    buf: Box<[u8]>,
    /// The socket may have bytes: cleared by a short read, set again by
    /// the reactor (waiting for readiness saves a system call per turn).
    readable: bool,
    /// Bytes were written to a stream that may buffer them.
    unflushed: bool,
    /// The last read found the socket empty and left the task registered
    /// for the next bytes: until they come, reading has nothing to do.
    parked: bool,
    /// When the last read that brought bytes returned, until taken: the
    /// turn's timers use it instead of reading the clock again.
    read_at: Option<StdInstant>,
}

impl<R: Runtime> Pipe<R> {
    pub(crate) fn new(io: Transport<R>) -> Self {
        Pipe {
            io,
            buf: vec![0; FIRST_READ].into_boxed_slice(),
            readable: true,
            unflushed: false,
            parked: false,
            read_at: None,
        }
    }

    /// One read fed to `conn`. Returns whether anything arrived.
    pub(crate) fn read(&mut self, cx: &mut Context<'_>, conn: &mut Conn) -> io::Result<bool> {
        self.parked = false;
        if conn.state() == SessionState::Closed {
            return Ok(false);
        }
        if !self.readable && !self.wait_readable(cx)? {
            return Ok(false);
        }
        match self.io.poll_read(cx, &mut self.buf) {
            Poll::Ready(Ok(0)) => conn.received_eof(),
            Poll::Ready(Ok(n)) => {
                // A short read most likely emptied the socket: register
                // for the next bytes now, which the next turn would do,
                // so that it need not be taken.
                let short = n < self.buf.len();
                let now = StdInstant::now();
                self.read_at = Some(now);
                conn.received_at(&self.buf[..n], now);
                if !short && self.buf.len() < READ_CHUNK {
                    self.buf = vec![0; self.buf.len() * 2].into_boxed_slice();
                }
                self.readable = !short || self.wait_readable(cx)?;
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => {
                self.readable = false;
                self.parked = true;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Asks the reactor whether the socket has bytes, registering the task
    /// for them when it has none (then `parked`).
    fn wait_readable(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        match self.io.poll_readable(cx) {
            Poll::Ready(r) => r.map(|()| true),
            Poll::Pending => {
                self.parked = true;
                Ok(false)
            }
        }
    }

    /// When the last read that brought bytes returned, if no one asked
    /// since.
    pub(crate) fn take_read_time(&mut self) -> Option<StdInstant> {
        self.read_at.take()
    }

    /// No read this turn (an event waits for a subscriber): a registration
    /// an earlier turn made may have been used up by the wake-up that
    /// brought this one, so the socket no longer counts as parked.
    pub(crate) fn skip_read(&mut self) {
        self.parked = false;
    }

    /// Whether another turn would find nothing to do on this socket right
    /// now: this turn's read left the task registered for the next bytes,
    /// and nothing is left to flush.
    pub(crate) fn idle(&self) -> bool {
        self.parked && !self.unflushed
    }

    /// Writes what `conn` has to send. Returns whether anything went.
    pub(crate) fn write(&mut self, cx: &mut Context<'_>, conn: &mut Conn) -> io::Result<bool> {
        let mut progress = false;
        while let Some((bytes, fds)) = conn.transmit() {
            match self.io.poll_write(cx, bytes, fds) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    conn.transmitted(n);
                    self.unflushed = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(progress),
            }
        }
        if self.unflushed {
            // Pending registers the waker; the next turn tries again.
            if let Poll::Ready(r) = self.io.poll_flush(cx) {
                r?;
                self.unflushed = false;
            }
        }
        Ok(progress)
    }
}

/// The socket under a connection.
pub(crate) enum Transport<R: Runtime> {
    Unix(R::Socket),
    /// Any other stream, with what to call it in errors ("TCP").
    Other(Box<dyn ByteStream>, &'static str),
}

impl<R: Runtime> Transport<R> {
    /// `None` when descriptors can be passed, else what the stream is.
    pub(crate) fn without_fds(&self) -> Option<&'static str> {
        match self {
            Transport::Unix(_) => None,
            Transport::Other(_, kind) => Some(kind),
        }
    }

    /// Ready once the socket may have bytes to read. Other streams are
    /// always "ready": their `poll_read` does the waiting.
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Transport::Unix(s) => R::poll_readable(s, cx),
            Transport::Other(..) => Poll::Ready(Ok(())),
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            Transport::Unix(s) => R::poll_read(s, cx, buf),
            Transport::Other(s, _) => s.poll_read(cx, buf),
        }
    }

    /// Writes a prefix of `bytes`; `fds`, when not empty, go with its
    /// first byte.
    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Poll<io::Result<usize>> {
        match self {
            Transport::Unix(s) => R::poll_send(s, cx, bytes, fds),
            Transport::Other(_, _) if !fds.is_empty() => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "file descriptors need a Unix socket",
            ))),
            Transport::Other(s, _) => s.poll_write(cx, bytes),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            // Unix sockets are written directly; nothing is buffered.
            Transport::Unix(_) => Poll::Ready(Ok(())),
            Transport::Other(s, _) => s.poll_flush(cx),
        }
    }
}
