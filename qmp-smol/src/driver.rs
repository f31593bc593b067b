//! The one task that owns the engine and the socket.
//!
//! Its loop: take the handles' commands → feed input → flush transmits →
//! check the deadline → forward outputs, until nothing moves; then sleep
//! on the socket, the command channel and one timer, which is re-armed
//! only when the engine's deadline changes.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant as StdInstant};

use async_channel::{Receiver, Sender};
use async_io::Timer;
use futures_core::Stream as _;
use qmp_core::serde_json::Value;
use qmp_core::{
    Client, CloseReason, Dialect, Greeting, Instant, Output, Request, RequestError, RequestId,
    Runstate,
};

use crate::error::{CloseCause, Error};
use crate::events::Hub;
use crate::transport::Transport;

/// Events the engine may hold between two drains. One read is at most
/// [`READ_CHUNK`] bytes and the smallest event, `{"event":""}`, is 12, so a
/// single read can never overflow it: subscribers lose events only to
/// their own queues.
const ENGINE_EVENTS: usize = 1024;
const READ_CHUNK: usize = 8 * 1024;
/// Requests the engine tracks at once (queued, in flight, or abandoned and
/// awaiting a late reply). Calls beyond it wait in the driver's backlog.
pub(crate) const MAX_OPEN_REQUESTS: usize = 1024;
/// How long a guest agent connection keeps reading after `disconnect` so
/// that replies still due are read: qemu-ga dies of SIGPIPE when a client
/// closes before it could write a reply.
const AGENT_LINGER: Duration = Duration::from_secs(2);
/// Loop turns per poll before yielding to other tasks.
const BUDGET: usize = 64;

type Engine = Client<ENGINE_EVENTS, MAX_OPEN_REQUESTS>;

/// The engine's clock: microseconds since the connection was made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock(StdInstant);

impl Clock {
    pub(crate) fn new() -> Self {
        Clock(StdInstant::now())
    }

    pub(crate) fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn to_std(self, at: Instant) -> Option<StdInstant> {
        self.0.checked_add(Duration::from_micros(at.as_micros()))
    }
}

/// A call handed to the driver.
pub(crate) struct Submission {
    pub(crate) token: u64,
    pub(crate) request: Request,
    pub(crate) deadline: Option<Instant>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) reply: Sender<Result<Value, Error>>,
}

/// What handles tell the driver.
pub(crate) enum Command {
    Execute(Submission),
    /// The caller went away: never send it, or drop its late reply.
    Cancel(u64),
    Close,
    Resync,
}

/// The engine and the socket, driven together.
struct Core {
    engine: Box<Engine>,
    io: Transport,
    clock: Clock,
    buf: Box<[u8]>,
    eof: bool,
    /// The socket may have bytes to read. Cleared by a read that did not
    /// fill the buffer, set again by the reactor: waiting for readiness
    /// instead of reading until `EAGAIN` saves a system call per turn.
    readable: bool,
    timer: Timer,
    timer_at: Option<Instant>,
    /// Descriptors to send with their request's first byte.
    fds: HashMap<RequestId, Vec<OwnedFd>>,
    /// The agent's linger after `disconnect`.
    linger_until: Option<Instant>,
    /// No later than the earliest deadline of a call in the driver's
    /// backlog; recomputed when reached.
    backlog_deadline: Option<Instant>,
    /// Bytes were written to a stream that may buffer them.
    unflushed: bool,
}

impl Core {
    fn new(engine: Engine, io: Transport, clock: Clock) -> Self {
        Core {
            engine: Box::new(engine),
            io,
            clock,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            eof: false,
            readable: true,
            timer: Timer::never(),
            timer_at: None,
            fds: HashMap::new(),
            linger_until: None,
            backlog_deadline: None,
            unflushed: false,
        }
    }

    /// Feeds one read's worth of input: its events must be drained before
    /// the next read, so that the engine's queue never overflows. Returns
    /// whether anything arrived.
    fn read(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        if self.eof || self.engine.runstate() == Runstate::Closed {
            return Ok(false);
        }
        if !self.readable {
            match self.io.poll_readable(cx) {
                Poll::Ready(Ok(())) => self.readable = true,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(false),
            }
        }
        match self.io.poll_read(cx, &mut self.buf) {
            Poll::Ready(Ok(0)) => {
                self.eof = true;
                self.engine.handle_eof(self.clock.now());
                Ok(true)
            }
            Poll::Ready(Ok(n)) => {
                // A short read most likely emptied the socket: wait for the
                // reactor rather than try again. When more was there after
                // all, epoll reports it as soon as interest is registered.
                if n < self.buf.len() {
                    self.readable = false;
                }
                // A fatal input is reported again by `Output::Closed`.
                let _ = self.engine.handle_input(self.clock.now(), &self.buf[..n]);
                Ok(true)
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => {
                // `poll_read` registered for readiness already.
                self.readable = false;
                Ok(false)
            }
        }
    }

    /// Writes what the engine has to send. Returns whether anything went.
    fn write(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let mut progress = false;
        while let Some(tx) = self.engine.poll_transmit() {
            let fds = tx
                .fds
                .and_then(|id| self.fds.get(&id))
                .map_or(&[][..], Vec::as_slice);
            match self.io.poll_write(cx, tx.bytes, fds) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    if let Some(id) = tx.fds {
                        // Sent: the server has its own copies now.
                        self.fds.remove(&id);
                    }
                    self.engine.consume_transmit(n);
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
            match self.io.poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(progress)
    }

    /// Ends what is due and arms the timer for the next deadline. Returns
    /// whether anything was due.
    fn timers(&mut self, cx: &mut Context<'_>) -> bool {
        let now = self.clock.now();
        let mut progress = false;
        if self.engine.poll_timeout().is_some_and(|d| d <= now) {
            self.engine.handle_timeout(now);
            progress = true;
        }
        let next = [
            self.engine.poll_timeout(),
            self.linger_until,
            self.backlog_deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        if next != self.timer_at {
            match next.and_then(|d| self.clock.to_std(d)) {
                Some(at) => self.timer.set_at(at),
                None => self.timer = Timer::never(),
            }
            self.timer_at = next;
        }
        if next.is_some() && Pin::new(&mut self.timer).poll(cx).is_ready() {
            // A fired timer stays silent until re-armed: force that.
            self.timer_at = None;
            progress = true;
        }
        progress
    }

    /// Drives the socket until greeting and negotiation (QMP) or the first
    /// resync (QGA) are done.
    fn poll_handshake(
        &mut self,
        cx: &mut Context<'_>,
        greeting: &mut Option<Greeting>,
    ) -> Poll<Result<(), Error>> {
        for _ in 0..BUDGET {
            let mut progress = self.write(cx)?;
            progress |= self.read(cx)?;
            progress |= self.timers(cx);
            // Nobody could subscribe yet: events from before the session
            // ran go nowhere (QEMU sends none).
            while self.engine.poll_event().is_some() {}
            while let Some(out) = self.engine.poll_output() {
                progress = true;
                match out {
                    Output::Greeting(g) => *greeting = Some(g),
                    Output::Ready => {
                        // Send whatever followed the handshake before
                        // returning; it does no harm if it waits.
                        return Poll::Ready(Ok(()));
                    }
                    Output::Closed(reason) => return Poll::Ready(Err(reason.into())),
                    _ => {}
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

struct Waiter {
    /// `None` for the driver's own barrier request.
    reply: Option<(u64, Sender<Result<Value, Error>>)>,
    oob: bool,
}

/// Drives one connection: the engine, the socket, the timer, every call's
/// reply and every subscriber's events. Nothing moves unless it is polled.
///
/// It is a future: spawn it on an executor, or poll it yourself next to
/// your own work. It completes when the connection closes and returns why.
///
/// ```no_run
/// # smol::block_on(async {
/// let (qmp, driver) = qmp_smol::Qmp::connect_unix("/tmp/qmp.sock", Default::default()).await?;
/// // Either: a task of its own.
/// let driver = smol::spawn(driver);
/// qmp.execute("query-status", None).await?;
/// qmp.disconnect();
/// println!("closed: {}", driver.await);
/// # Ok::<(), qmp_smol::Error>(()) });
/// ```
///
/// ```no_run
/// use futures_lite::future;
/// # smol::block_on(async {
/// let (qmp, driver) = qmp_smol::Qmp::connect_unix("/tmp/qmp.sock", Default::default()).await?;
/// // Or: polled alongside your work, in the same task.
/// let work = async {
///     let status = qmp.execute("query-status", None).await;
///     qmp.disconnect();
///     status
/// };
/// let (status, cause) = future::zip(work, driver).await;
/// println!("{} then {cause}", status?);
/// # Ok::<(), qmp_smol::Error>(()) });
/// ```
///
/// Dropping the driver closes the connection: pending calls end with
/// [`CloseCause::DriverDropped`].
#[must_use = "the connection makes no progress unless its driver is polled"]
pub struct Driver {
    inner: Box<Inner>,
}

struct Inner {
    core: Core,
    hub: Arc<Hub>,
    /// Boxed: a receiver that is waiting is pinned.
    commands: Pin<Box<Receiver<Command>>>,
    /// Out-of-band calls waiting for room in the engine's table; they go
    /// before in-band ones.
    backlog_oob: VecDeque<Submission>,
    backlog: VecDeque<Submission>,
    /// Calls with file descriptors, sent one at a time (see `submit`).
    backlog_fds: VecDeque<Submission>,
    /// The last call with descriptors that QEMU may not have executed yet.
    fd_gate: Option<RequestId>,
    /// A `query-version` sent to learn that an abandoned call with
    /// descriptors was executed: in-band calls run in order.
    barrier: Option<RequestId>,
    waiters: HashMap<RequestId, Waiter>,
    tokens: HashMap<u64, RequestId>,
    /// Set once the connection is closing; later calls fail with it.
    cause: Option<CloseCause>,
    done: bool,
    /// Dropped when the driver finishes; handles wait on its receiver.
    _closed: Option<Sender<()>>,
    events: Vec<qmp_core::Event>,
}

impl Driver {
    /// Runs the handshake on `io` and returns the driver with what the
    /// handles need.
    pub(crate) async fn establish(
        io: Transport,
        config: qmp_core::Config,
        hub: Arc<Hub>,
        commands: Receiver<Command>,
        closed: Sender<()>,
    ) -> Result<(Driver, Option<Greeting>, bool, Clock), Error> {
        let clock = Clock::new();
        let mut core = Core::new(Engine::sized(clock.now(), config), io, clock);
        let mut greeting = None;
        std::future::poll_fn(|cx| core.poll_handshake(cx, &mut greeting)).await?;
        let oob = core.engine.oob_enabled();
        let driver = Driver {
            inner: Box::new(Inner {
                core,
                hub,
                commands: Box::pin(commands),
                backlog_oob: VecDeque::new(),
                backlog: VecDeque::new(),
                backlog_fds: VecDeque::new(),
                fd_gate: None,
                barrier: None,
                waiters: HashMap::new(),
                tokens: HashMap::new(),
                cause: None,
                done: false,
                _closed: Some(closed),
                events: Vec::new(),
            }),
        };
        Ok((driver, greeting, oob, clock))
    }

    /// Whether the driver has finished.
    pub fn is_finished(&self) -> bool {
        self.inner.done
    }
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Driver")
            .field("runstate", &i.core.engine.runstate())
            .field("open_requests", &i.core.engine.open_requests())
            .field(
                "backlog",
                &(i.backlog.len() + i.backlog_oob.len() + i.backlog_fds.len()),
            )
            .field("cause", &i.cause)
            .finish()
    }
}

impl Future for Driver {
    type Output = CloseCause;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CloseCause> {
        self.inner.poll(cx)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.inner.done {
            self.inner.finish(CloseCause::DriverDropped);
        }
    }
}

impl Inner {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<CloseCause> {
        if self.done {
            // Polled again after completion: report the same cause.
            return Poll::Ready(self.cause.clone().unwrap_or(CloseCause::DriverDropped));
        }
        for _ in 0..BUDGET {
            let mut progress = self.take_commands(cx);
            progress |= self.submit();
            let io = (|| -> io::Result<bool> {
                let mut p = self.core.read(cx)?;
                p |= self.core.write(cx)?;
                Ok(p)
            })();
            match io {
                Ok(p) => progress |= p,
                Err(e) => {
                    log::debug!("QMP socket error: {e}");
                    self.cause.get_or_insert(CloseCause::Io(Arc::new(e)));
                    self.core.engine.close();
                    progress = true;
                }
            }
            progress |= self.core.timers(cx);
            progress |= self.forward();
            self.check_linger();
            if self.core.engine.runstate() == Runstate::Closed {
                let cause = self
                    .cause
                    .clone()
                    .or_else(|| {
                        self.core
                            .engine
                            .close_reason()
                            .cloned()
                            .map(CloseCause::Session)
                    })
                    .unwrap_or(CloseCause::Session(CloseReason::Local));
                self.finish(cause.clone());
                return Poll::Ready(cause);
            }
            if !progress {
                self.hub.set_stats(self.core.engine.stats());
                return Poll::Pending;
            }
        }
        self.hub.set_stats(self.core.engine.stats());
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Takes every command waiting in the channel.
    fn take_commands(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            match self.commands.as_mut().poll_next(cx) {
                Poll::Ready(Some(cmd)) => {
                    progress = true;
                    self.command(cmd);
                }
                Poll::Ready(None) => {
                    // Every handle is gone: nobody can call or disconnect.
                    if self.cause.is_none() {
                        self.close();
                        progress = true;
                    }
                    return progress;
                }
                Poll::Pending => return progress,
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Execute(sub) => {
                if let Some(d) = sub.deadline {
                    let next = &mut self.core.backlog_deadline;
                    *next = Some(next.map_or(d, |n| n.min(d)));
                }
                if let Some(cause) = &self.cause {
                    let _ = sub.reply.try_send(Err(Error::Closed(cause.clone())));
                } else if let Some(transport) =
                    self.core.io.without_fds().filter(|_| !sub.fds.is_empty())
                {
                    let _ = sub
                        .reply
                        .try_send(Err(Error::FdPassingUnsupported { transport }));
                } else if !sub.fds.is_empty() {
                    self.backlog_fds.push_back(sub);
                } else if sub.request.is_oob() {
                    self.backlog_oob.push_back(sub);
                } else {
                    self.backlog.push_back(sub);
                }
            }
            Command::Cancel(token) => self.cancel(token),
            Command::Close => self.close(),
            Command::Resync => {
                let now = self.core.clock.now();
                self.core.engine.resync(now);
            }
        }
    }

    fn cancel(&mut self, token: u64) {
        for backlog in [
            &mut self.backlog_oob,
            &mut self.backlog,
            &mut self.backlog_fds,
        ] {
            if let Some(pos) = backlog.iter().position(|s| s.token == token) {
                backlog.remove(pos);
                return;
            }
        }
        if let Some(id) = self.tokens.remove(&token) {
            self.waiters.remove(&id);
            self.core.fds.remove(&id);
            self.core.engine.cancel(id);
        }
    }

    /// Closes from this side. A guest agent gets a short linger first so
    /// the replies it still owes are read before the socket closes.
    fn close(&mut self) {
        if self.cause.is_some() {
            return;
        }
        let cause = CloseCause::Session(CloseReason::Local);
        self.cause = Some(cause.clone());
        self.hub.set_cause(cause.clone());
        if self.core.engine.config().dialect == Dialect::Qga && !self.core.eof {
            let err = || Error::Interrupted(cause.clone());
            for sub in self.drain_backlogs() {
                let _ = sub.reply.try_send(Err(err()));
            }
            for (id, w) in self.waiters.drain() {
                self.core.engine.cancel(id);
                if let Some((_, reply)) = w.reply {
                    let _ = reply.try_send(Err(err()));
                }
            }
            self.tokens.clear();
            self.core.fds.clear();
            self.core.linger_until = Some(self.core.clock.now() + AGENT_LINGER);
            self.check_linger();
        } else {
            self.core.engine.close();
        }
    }

    fn check_linger(&mut self) {
        let Some(until) = self.core.linger_until else {
            return;
        };
        let e = &self.core.engine;
        let settled = e.open_requests() == 0
            && e.runstate() == Runstate::Running
            && e.poll_transmit().is_none();
        if settled || self.core.eof || self.core.clock.now() >= until {
            self.core.linger_until = None;
            self.core.engine.close();
        }
    }

    fn drain_backlogs(&mut self) -> Vec<Submission> {
        let mut all: Vec<Submission> = self.backlog_oob.drain(..).collect();
        all.extend(self.backlog.drain(..));
        all.extend(self.backlog_fds.drain(..));
        all
    }

    /// Moves calls from the backlogs into the engine while it has room.
    ///
    /// Calls with file descriptors go one at a time: QEMU keeps only the
    /// descriptors of the latest message that carried some, so a second
    /// set arriving before the first call ran would replace the first.
    /// The gate opens when that call is answered, or when any in-band call
    /// sent after it is (they run in order).
    fn submit(&mut self) -> bool {
        let mut progress = self.expire_backlog();
        while self.cause.is_none() && self.core.engine.open_requests() < MAX_OPEN_REQUESTS {
            let sub = if let Some(sub) = self.backlog_oob.pop_front() {
                sub
            } else if let Some(sub) = self.backlog.pop_front() {
                sub
            } else if !self.backlog_fds.is_empty() {
                if let Some(gate) = self.fd_gate {
                    let live = self.waiters.get(&gate).is_some_and(|w| w.reply.is_some());
                    if !live && self.barrier.is_none() {
                        self.send_barrier();
                        progress = true;
                    }
                    break;
                }
                match self.backlog_fds.pop_front() {
                    Some(sub) => sub,
                    None => break,
                }
            } else {
                break;
            };
            progress = true;
            self.start(sub);
        }
        progress
    }

    /// Ends backlogged calls whose deadline passed (the engine's table is
    /// full, e.g. of calls a wedged server never answered), and notes the
    /// next such deadline for the timer.
    fn expire_backlog(&mut self) -> bool {
        let now = self.core.clock.now();
        if self.core.backlog_deadline.is_none_or(|d| d > now) {
            return false;
        }
        let mut expired = false;
        let mut next: Option<Instant> = None;
        for backlog in [
            &mut self.backlog_oob,
            &mut self.backlog,
            &mut self.backlog_fds,
        ] {
            backlog.retain(|sub| match sub.deadline {
                Some(d) if d <= now => {
                    let _ = sub.reply.try_send(Err(Error::Timeout));
                    expired = true;
                    false
                }
                Some(d) => {
                    next = Some(next.map_or(d, |n| n.min(d)));
                    true
                }
                None => true,
            });
        }
        self.core.backlog_deadline = next;
        expired
    }

    fn start(&mut self, sub: Submission) {
        let now = self.core.clock.now();
        if sub.deadline.is_some_and(|d| d <= now) {
            let _ = sub.reply.try_send(Err(Error::Timeout));
            return;
        }
        let mut request = sub.request;
        if let Some(d) = sub.deadline {
            request = request.deadline(d);
        }
        let oob = request.is_oob();
        let has_fds = !sub.fds.is_empty();
        if has_fds {
            request = request.with_fds();
        }
        match self.core.engine.execute(now, request) {
            Ok(id) => {
                if has_fds {
                    self.core.fds.insert(id, sub.fds);
                    self.fd_gate = Some(id);
                }
                self.tokens.insert(sub.token, id);
                self.waiters.insert(
                    id,
                    Waiter {
                        reply: Some((sub.token, sub.reply)),
                        oob,
                    },
                );
            }
            Err(e) => {
                let _ = sub.reply.try_send(Err(e.into()));
            }
        }
    }

    fn send_barrier(&mut self) {
        let now = self.core.clock.now();
        if let Ok(id) = self.core.engine.execute(now, Request::new("query-version")) {
            self.barrier = Some(id);
            self.waiters.insert(
                id,
                Waiter {
                    reply: None,
                    oob: false,
                },
            );
        }
    }

    /// Hands replies to their callers and events to the subscribers.
    ///
    /// Events go first: one read's events came before or with its replies,
    /// so a caller whose reply arrives finds the events that preceded it
    /// already in its subscriptions.
    fn forward(&mut self) -> bool {
        let mut progress = false;
        let missed = self.core.engine.events().take_lagged();
        self.events
            .extend(std::iter::from_fn(|| self.core.engine.poll_event()));
        if !self.events.is_empty() || missed > 0 {
            progress = true;
            self.hub.publish(&self.events, missed);
            self.events.clear();
        }
        while let Some(out) = self.core.engine.poll_output() {
            progress = true;
            match out {
                Output::Reply { id, result } => {
                    self.core.fds.remove(&id);
                    let waiter = self.waiters.remove(&id);
                    let answered = matches!(result, Ok(_) | Err(RequestError::Server(_)));
                    let in_band = waiter.as_ref().is_some_and(|w| !w.oob);
                    if answered && in_band && self.fd_gate.is_some_and(|gate| id >= gate) {
                        self.fd_gate = None;
                    }
                    if self.barrier == Some(id) {
                        self.barrier = None;
                    }
                    if let Some((token, reply)) = waiter.and_then(|w| w.reply) {
                        self.tokens.remove(&token);
                        let result = result.map_err(|e| match (e, &self.cause) {
                            (RequestError::Interrupted(_), Some(cause)) => {
                                Error::Interrupted(cause.clone())
                            }
                            (e, _) => e.into(),
                        });
                        let _ = reply.try_send(result);
                    }
                }
                Output::Closed(reason) => {
                    log::debug!("QMP session closed: {reason}");
                    self.cause.get_or_insert(CloseCause::Session(reason));
                }
                _ => {}
            }
        }
        progress
    }

    /// Ends everything: pending calls, queued calls, subscriptions.
    fn finish(&mut self, cause: CloseCause) {
        self.done = true;
        self.hub.set_stats(self.core.engine.stats());
        self.cause.get_or_insert(cause.clone());
        let cause = self.cause.clone().unwrap_or(cause);
        self.hub.set_cause(cause.clone());
        self.hub.end_all();
        self.commands.close();
        let err = || Error::Interrupted(cause.clone());
        while let Ok(cmd) = self.commands.try_recv() {
            if let Command::Execute(sub) = cmd {
                let _ = sub.reply.try_send(Err(err()));
            }
        }
        for sub in self.drain_backlogs() {
            let _ = sub.reply.try_send(Err(err()));
        }
        for (_, w) in self.waiters.drain() {
            if let Some((_, reply)) = w.reply {
                let _ = reply.try_send(Err(err()));
            }
        }
        self.tokens.clear();
        self.core.fds.clear();
        self._closed = None;
    }
}
