//! What every handle holds: the way to the driver, and how a call waits
//! for its reply without ever leaving the connection out of step.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant as StdInstant};

use futures_lite::{StreamExt, future};
use qmp_core::serde_json::Value;
use qmp_core::{
    Command as TypedCommand, Config, Dialect, Event, Greeting, Instant, Reply, Request,
    SessionState,
};
use qmp_os::{
    CloseCause, Conn, ConnectAttempts, Error, Options, SCHEMA_COMMAND, SchemaCheck,
    connect_unix_nonblocking, deadline_after, reply_returns, reply_value,
};

use crate::driver::{Driver, Steer};
use crate::events::{EventFilter, Events, Subscription};
use crate::hub::{Hub, Limits, Runstates};
use crate::runtime::Runtime;
use crate::transport::{MAX_EVENTS_PER_READ, Transport};

/// What a call sends.
pub(crate) enum Body {
    Request(Request),
    /// A whole message object, sent as given; its result is the whole reply.
    Raw(Value),
}

/// A call handed to the driver.
pub(crate) struct Submission {
    /// The call's handle for [`Instruction::Cancel`]: the inbox numbers
    /// calls in the order it queues them, so the driver meets them in
    /// increasing order.
    pub(crate) token: u64,
    pub(crate) body: Body,
    pub(crate) deadline: Option<Instant>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) reply: ReplySender,
}

/// What handles tell the driver.
pub(crate) enum Instruction {
    Execute(Submission),
    /// The caller went away: never send it, or drop its late reply.
    Cancel(u64),
    Close,
    Resync,
}

/// What the handles keep of a connection once it runs.
pub(crate) struct Handshake {
    pub(crate) greeting: Option<qmp_core::Greeting>,
    pub(crate) oob: bool,
    pub(crate) clock: qmp_os::StdClock,
    pub(crate) name: Arc<str>,
}

/// What a handshake waits for, to word its failure.
pub(crate) struct Awaited {
    pub(crate) what: &'static str,
    /// A QMP handshake: its failure says whether the greeting arrived.
    pub(crate) qmp: bool,
    pub(crate) timeout: Duration,
}

pub(crate) struct Shared {
    inbox: Arc<Inbox>,
    /// Lets a call drive the connection while it waits for its reply; gone
    /// with the driver, so that the socket closes when the driver ends.
    steer: std::sync::Weak<dyn Steer>,
    hub: Arc<Hub>,
    handshake: Handshake,
    /// Set when descriptors cannot be passed: what the stream is.
    without_fds: Option<&'static str>,
    /// The calls' own timers (`Spare<R>`), kept between calls (see [`Guard`]).
    spare_timers: Mutex<Vec<Box<dyn Any + Send>>>,
    /// The live-schema check (QMP, when the options ask for it).
    schema: std::sync::Mutex<SchemaCheck>,
    /// A handle asked to disconnect: calls made since fail as closed,
    /// even before the driver has acted on it.
    closing: std::sync::atomic::AtomicBool,
}

/// The handle core shared by [`Qmp`](crate::Qmp) and [`Agent`](crate::Agent).
pub(crate) struct Link<R> {
    shared: Arc<Shared>,
    pub(crate) timeout: Duration,
    runtime: PhantomData<fn() -> R>,
}

impl<R> Clone for Link<R> {
    fn clone(&self) -> Self {
        Link {
            shared: self.shared.clone(),
            timeout: self.timeout,
            runtime: PhantomData,
        }
    }
}

/// Completes at `limit`, or never when there is none. The timer lives in
/// the waiting future itself: no allocation.
async fn expiry<R: Runtime>(limit: Option<StdInstant>) {
    match limit {
        Some(at) => {
            R::sleep_until(at).await;
        }
        None => future::pending().await,
    }
}

impl<R: Runtime> Link<R> {
    /// Runs the handshake over `io` and builds a handle and its driver.
    pub(crate) async fn establish(
        io: Transport<R>,
        config: Config,
        options: &Options,
        default_name: &str,
    ) -> Result<(Link<R>, Driver<R>), Error> {
        let without_fds = io.without_fds();
        let check_schema = options.check_schema && config.dialect == Dialect::Qmp;
        let what = match config.dialect {
            Dialect::Qga => "the guest agent to answer guest-sync-delimited",
            _ => "the QMP greeting and capability negotiation",
        };
        let qmp = config.dialect == Dialect::Qmp;
        let staging = config.max_queued_events.max(MAX_EVENTS_PER_READ);
        let conn = Conn::new(
            config.max_queued_events(staging),
            options,
            default_name,
            R::LOG_TARGET,
            without_fds,
        );
        let inbox = Arc::new(Inbox::default());
        let hub = Arc::new(Hub::new(Limits::from_options(options)));
        let awaited = Awaited {
            what,
            qmp,
            timeout: options.handshake_timeout,
        };
        let (driver, handshake) =
            Driver::establish(conn, io, hub.clone(), inbox.clone(), awaited).await?;
        let shared = Shared {
            inbox,
            steer: driver.steer(),
            hub,
            handshake,
            without_fds,
            spare_timers: Mutex::new(Vec::new()),
            schema: std::sync::Mutex::new(SchemaCheck::new(check_schema)),
            closing: std::sync::atomic::AtomicBool::new(false),
        };
        let link = Link {
            shared: Arc::new(shared),
            timeout: options.timeout,
            runtime: PhantomData,
        };
        Ok((link, driver))
    }

    pub(crate) fn greeting(&self) -> Option<&Greeting> {
        self.shared.handshake.greeting.as_ref()
    }

    pub(crate) fn oob_enabled(&self) -> bool {
        self.shared.handshake.oob
    }

    pub(crate) fn name(&self) -> &str {
        &self.shared.handshake.name
    }

    pub(crate) fn fd_passing(&self) -> bool {
        self.shared.without_fds.is_none()
    }

    pub(crate) fn stats(&self) -> qmp_core::Stats {
        self.shared.hub.stats()
    }

    pub(crate) fn state(&self) -> SessionState {
        match self.shared.hub.state() {
            Some(state) => state,
            // Before the driver's first turn the handshake has just ended.
            None if self.close_cause().is_none() => SessionState::Running,
            None => SessionState::Closed,
        }
    }

    pub(crate) fn close_cause(&self) -> Option<CloseCause> {
        self.shared.hub.cause()
    }

    /// Whether the connection has closed, or a handle asked it to.
    pub(crate) fn is_closed(&self) -> bool {
        self.close_cause().is_some() || self.shared.closing.load(Ordering::Acquire)
    }

    fn cause(&self) -> CloseCause {
        self.close_cause().unwrap_or(CloseCause::DriverDropped)
    }

    /// Sends `request` and waits for its reply, at most the handle's
    /// timeout even when the driver is not polled. Dropping the future at
    /// any point cancels the call in the driver: a call not yet sent never
    /// is, a sent one's reply is dropped when it comes.
    pub(crate) async fn call(&self, request: Request, fds: Vec<OwnedFd>) -> Result<Value, Error> {
        reply_value(&self.call_reply(request, fds).await?)
    }

    /// [`call`](Self::call), its reply undecoded: the caller decodes it on
    /// its own task, typed or not.
    pub(crate) async fn call_reply(
        &self,
        request: Request,
        fds: Vec<OwnedFd>,
    ) -> Result<Reply, Error> {
        self.fetch_schema_once(request.name()).await?;
        self.schema().check(&request)?;
        let name = request.name().to_owned();
        self.submit(Body::Request(request), name, fds).await
    }

    /// Sends a whole message object and waits for the whole reply.
    pub(crate) async fn call_raw(&self, message: Value) -> Result<Value, Error> {
        let name = qmp_os::raw_command_name(&message)
            .unwrap_or("a raw request")
            .to_owned();
        self.fetch_schema_once(&name).await?;
        self.schema().check_raw(&message)?;
        reply_value(&self.submit(Body::Raw(message), name, Vec::new()).await?)
    }

    /// With the live-schema check on, fetches the server's schema before
    /// the first request (never for the fetch itself).
    async fn fetch_schema_once(&self, command: &str) -> Result<(), Error> {
        if !self.schema().needs_schema(command) {
            return Ok(());
        }
        let fetch = Body::Request(Request::new(SCHEMA_COMMAND));
        let schema = self
            .submit(fetch, SCHEMA_COMMAND.to_owned(), Vec::new())
            .await
            .and_then(|r| reply_value(&r));
        self.schema().set_schema(schema)
    }

    fn schema(&self) -> std::sync::MutexGuard<'_, SchemaCheck> {
        // Held only for a check, never across a wait.
        self.shared
            .schema
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn submit(&self, body: Body, name: String, fds: Vec<OwnedFd>) -> Result<Reply, Error> {
        if let Some(cause) = self.close_cause() {
            return Err(Error::Closed(cause));
        }
        if self.shared.closing.load(Ordering::Acquire) {
            return Err(Error::Closed(CloseCause::Session(
                qmp_core::CloseReason::Local,
            )));
        }
        if let Some(transport) = self.shared.without_fds.filter(|_| !fds.is_empty()) {
            return Err(Error::FdPassingUnsupported { transport });
        }
        let timeout = self.timeout;
        let (reply, result) = reply_slot();
        let limit = deadline_after(timeout);
        let deadline = limit.map(|at| self.shared.handshake.clock.from_std(at));
        // Nobody is woken: the call drives the connection itself, or
        // finds someone doing so who will take its instruction.
        let queued = self.shared.inbox.execute_quietly(|token| Submission {
            token,
            body,
            deadline,
            fds,
            reply,
        });
        let Some(token) = queued else {
            return Err(Error::Closed(self.cause()));
        };
        let mut guard = CancelOnDrop {
            token,
            inbox: &self.shared.inbox,
            armed: true,
        };
        let answer = async {
            let answer = Answer {
                slot: result,
                token,
                steer: &self.shared.steer,
                piloting: false,
            };
            Some(answer.await)
        };
        let expire = async {
            match limit {
                Some(at) => Guard::<R>::new(&self.shared.spare_timers, at).await,
                None => future::pending().await,
            }
            None
        };
        let outcome = future::or(answer, expire).await;
        let timed_out = || Error::Timeout {
            waiting_for: format!("the reply to `{name}`"),
            after: timeout,
        };
        match outcome {
            // The guard cancels the call in the driver.
            None => Err(timed_out()),
            Some(received) => {
                guard.armed = false;
                match received {
                    Some(Err(Error::Timeout { .. })) => Err(timed_out()),
                    Some(r) => r,
                    None => Err(Error::Interrupted(self.cause())),
                }
            }
        }
    }

    pub(crate) async fn call_typed<C: TypedCommand>(&self, cmd: &C) -> Result<C::Returns, Error> {
        let reply = self.call_reply(Request::command(cmd)?, Vec::new()).await?;
        reply_returns::<C>(&reply)
    }

    pub(crate) fn send(&self, instruction: Instruction) {
        let _ = self.shared.inbox.send(instruction);
    }

    /// Asks the driver to close the connection; calls made from now on
    /// fail as closed at once.
    pub(crate) fn disconnect(&self) {
        self.shared.closing.store(true, Ordering::Release);
        self.send(Instruction::Close);
    }

    pub(crate) fn subscribe<const N: usize>(
        &self,
        filter: EventFilter,
        replay: bool,
    ) -> Subscription<N> {
        self.shared.hub.subscribe(filter, replay)
    }

    pub(crate) fn events(&self) -> Events {
        self.shared.hub.events()
    }

    pub(crate) fn runstates(&self) -> Runstates {
        Runstates::new(self.shared.hub.clone())
    }

    pub(crate) fn history(&self) -> Vec<Event> {
        self.shared.hub.history()
    }

    pub(crate) fn happened(&self, filter: &EventFilter) -> Option<Event> {
        self.shared.hub.happened(filter)
    }

    /// Waits for the next event that passes `filter`; with `replay`, the
    /// oldest such event still in the history counts as next.
    pub(crate) fn wait_event(
        &self,
        filter: EventFilter,
        replay: bool,
        timeout: Duration,
    ) -> impl Future<Output = Result<Event, Error>> + Send + 'static {
        let what = format!("an event matching {filter:?}");
        let mut sub = self.subscribe::<{ crate::DEFAULT_SUBSCRIPTION_CAPACITY }>(filter, replay);
        let limit = deadline_after(timeout);
        async move {
            let next = async { Ok(sub.next().await) };
            let expire = async {
                expiry::<R>(limit).await;
                Err(Error::Timeout {
                    waiting_for: what,
                    after: timeout,
                })
            };
            match future::or(next, expire).await? {
                Some(e) => Ok(e),
                None => Err(Error::Interrupted(
                    sub.close_cause().unwrap_or(CloseCause::DriverDropped),
                )),
            }
        }
    }

    pub(crate) fn closed(&self) -> impl Future<Output = CloseCause> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            shared.inbox.finished().await;
            shared.hub.cause().unwrap_or(CloseCause::DriverDropped)
        }
    }
}

/// Spare call timers kept per connection: enough for a window of
/// pipelined calls.
const SPARE_TIMERS: usize = 16;

/// A timer kept between calls, and when it goes off (`None`: not armed).
struct Spare<R: Runtime> {
    timer: Pin<Box<R::Timer>>,
    at: Option<StdInstant>,
}

/// Completes at `limit`, on a timer borrowed from the connection's spares
/// and given back when done or dropped. A spare armed for an earlier call
/// is kept as it is when it goes off no later than `limit`: going off
/// early only makes the guard look at the clock and re-arm it. So a
/// steady stream of calls arms no timer at all, where a new timer per
/// call would cost smol's reactor a wake-up (two system calls and a
/// turn) every time.
struct Guard<'a, R: Runtime> {
    spares: &'a Mutex<Vec<Box<dyn Any + Send>>>,
    limit: StdInstant,
    spare: Option<Box<Spare<R>>>,
}

impl<'a, R: Runtime> Guard<'a, R> {
    fn new(spares: &'a Mutex<Vec<Box<dyn Any + Send>>>, limit: StdInstant) -> Self {
        Guard {
            spares,
            limit,
            spare: None,
        }
    }
}

impl<R: Runtime> Future for Guard<'_, R> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let limit = this.limit;
        let spares = this.spares;
        let spare = this.spare.get_or_insert_with(|| {
            let kept = spares.lock().ok().and_then(|mut v| v.pop());
            let kept = kept.and_then(|k| k.downcast::<Spare<R>>().ok());
            kept.unwrap_or_else(|| {
                Box::new(Spare {
                    timer: Box::pin(R::sleep_until(limit)),
                    at: Some(limit),
                })
            })
        });
        loop {
            if spare.at.is_none_or(|at| at > limit) {
                R::reset(spare.timer.as_mut(), Some(limit));
                spare.at = Some(limit);
            }
            let armed_for = spare.at;
            if spare.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            spare.at = None;
            // Armed for this very limit, the runtime's clock is trusted
            // (a paused or mocked clock included); armed for an earlier
            // call's, it went off early unless the limit has passed too.
            if armed_for == Some(limit) || StdInstant::now() >= limit {
                return Poll::Ready(());
            }
        }
    }
}

impl<R: Runtime> Drop for Guard<'_, R> {
    fn drop(&mut self) {
        if let Some(spare) = self.spare.take()
            && let Ok(mut spares) = self.spares.lock()
            && spares.len() < SPARE_TIMERS
        {
            spares.push(spare);
        }
    }
}

/// Tells the driver to forget a call whose future was dropped or timed out.
struct CancelOnDrop<'a> {
    token: u64,
    inbox: &'a Inbox,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Never blocks, fails only once the driver is gone.
            let _ = self.inbox.send(Instruction::Cancel(self.token));
        }
    }
}

/// A call's reply: taken from its slot, where it is left by whoever reads
/// it; while none is there, the call drives the connection itself when
/// nobody else is, and then reads its own reply.
struct Answer<'a> {
    slot: ReplyReceiver,
    token: u64,
    steer: &'a std::sync::Weak<dyn Steer>,
    /// Wake-ups of the connection come to this call.
    piloting: bool,
}

impl Future for Answer<'_> {
    type Output = Option<Result<Reply, Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // A reply delivered while driving wakes nobody: look before
        // leaving a waker in the slot.
        if let Some(done) = this.slot.take() {
            return Poll::Ready(done);
        }
        if let Some(steer) = this.steer.upgrade()
            && steer.drive(this.token, cx.waker())
        {
            this.piloting = true;
        }
        let poll = Pin::new(&mut this.slot).poll(cx);
        if poll.is_ready() && std::mem::take(&mut this.piloting) {
            release(this.steer, this.token);
        }
        poll
    }
}

/// Hands the connection's wake-ups back, if the driver is still there.
fn release(steer: &std::sync::Weak<dyn Steer>, token: u64) {
    if let Some(steer) = steer.upgrade() {
        steer.release(token);
    }
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        if self.piloting {
            release(self.steer, self.token);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Every handle is gone: nobody can call or disconnect any more.
        self.inbox.abandon();
    }
}

/// Where the handles leave instructions for the driver: a queue that is
/// as long as what waits in it (most of the time one call, or none), and
/// the driver's waker. One per connection, shared by the driver and the
/// handles; lighter than a channel, whose fixed blocks cost kilobytes per
/// connection.
#[derive(Default)]
pub(crate) struct Inbox(Mutex<Post>);

#[derive(Default)]
struct Post {
    queue: VecDeque<Instruction>,
    /// The token of the next call queued.
    next_token: u64,
    /// The driver, waiting for instructions.
    driver: Option<Waker>,
    /// Every handle is gone.
    abandoned: bool,
    /// The driver has finished: nothing is taken any more.
    finished: bool,
    /// Waiting for the driver to finish.
    watchers: Vec<Waker>,
}

impl Inbox {
    fn post(&self) -> MutexGuard<'_, Post> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `instruction` for the driver; `false` (and dropped) once the
    /// driver has finished.
    pub(crate) fn send(&self, instruction: Instruction) -> bool {
        let mut post = self.post();
        if post.finished {
            return false;
        }
        post.queue.push_back(instruction);
        let driver = post.driver.take();
        drop(post);
        if let Some(w) = driver {
            w.wake();
        }
        true
    }

    /// Queues the call that `make` builds around its token, without waking
    /// the driver: for a caller that drives the connection next (see
    /// [`Steer`]). Returns the token; `None` (and nothing built) once the
    /// driver has finished.
    pub(crate) fn execute_quietly(&self, make: impl FnOnce(u64) -> Submission) -> Option<u64> {
        let mut post = self.post();
        if post.finished {
            return None;
        }
        let token = post.next_token;
        post.next_token += 1;
        post.queue.push_back(Instruction::Execute(make(token)));
        Some(token)
    }

    /// The next instruction; `Ready(None)` once every handle is gone and
    /// nothing is left.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Instruction>> {
        let mut post = self.post();
        if let Some(i) = post.queue.pop_front() {
            return Poll::Ready(Some(i));
        }
        if post.abandoned || post.finished {
            return Poll::Ready(None);
        }
        match &mut post.driver {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Marks the driver finished and returns what was never taken.
    pub(crate) fn finish(&self) -> VecDeque<Instruction> {
        let mut post = self.post();
        post.finished = true;
        post.driver = None;
        let watchers = std::mem::take(&mut post.watchers);
        let rest = std::mem::take(&mut post.queue);
        drop(post);
        watchers.into_iter().for_each(Waker::wake);
        rest
    }

    fn abandon(&self) {
        let mut post = self.post();
        post.abandoned = true;
        let driver = post.driver.take();
        drop(post);
        if let Some(w) = driver {
            w.wake();
        }
    }

    /// Whether anyone waits for the driver to finish.
    pub(crate) fn watched(&self) -> bool {
        !self.post().watchers.is_empty()
    }

    /// Completes once the driver has finished.
    async fn finished(&self) {
        std::future::poll_fn(|cx| {
            let mut post = self.post();
            if post.finished {
                return Poll::Ready(());
            }
            if !post.watchers.iter().any(|w| w.will_wake(cx.waker())) {
                post.watchers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// Where one call's result is left for its caller.
#[derive(Default)]
struct Slot {
    result: Option<Result<Reply, Error>>,
    /// The driver let go of the call without a result.
    dropped: bool,
    waker: Option<Waker>,
}

/// The driver's end of a call's [`Slot`]: dropping it unanswered tells the
/// caller the call was interrupted.
pub(crate) struct ReplySender(Arc<Mutex<Slot>>);

/// The caller's end of a call's [`Slot`]: `None` when it was dropped
/// unanswered.
struct ReplyReceiver(Arc<Mutex<Slot>>);

fn reply_slot() -> (ReplySender, ReplyReceiver) {
    let slot = Arc::new(Mutex::new(Slot::default()));
    (ReplySender(slot.clone()), ReplyReceiver(slot))
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReplySender {
    /// Hands `result` to the caller (a caller that went away drops it).
    pub(crate) fn send(self, result: Result<Reply, Error>) {
        let waker = {
            let mut slot = lock(&self.0);
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Drop for ReplySender {
    fn drop(&mut self) {
        let waker = {
            let mut slot = lock(&self.0);
            slot.dropped = true;
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl ReplyReceiver {
    /// The result, if there is one, without waiting; the waker left by an
    /// earlier poll is taken back (the caller is awake: waking it again
    /// would cost its runtime another pass).
    fn take(&mut self) -> Option<Option<Result<Reply, Error>>> {
        let mut slot = lock(&self.0);
        slot.waker = None;
        slot.outcome()
    }
}

impl Slot {
    /// The result, or `Some(None)` when the call was dropped unanswered.
    fn outcome(&mut self) -> Option<Option<Result<Reply, Error>>> {
        match self.result.take() {
            Some(r) => Some(Some(r)),
            None if self.dropped => Some(None),
            None => None,
        }
    }
}

impl Future for ReplyReceiver {
    type Output = Option<Result<Reply, Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = lock(&self.0);
        if let Some(outcome) = slot.outcome() {
            return Poll::Ready(outcome);
        }
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

pub(crate) fn request(name: &str, args: Option<Value>) -> Request {
    let req = Request::new(name.to_owned());
    match args {
        None | Some(Value::Null) => req,
        Some(args) => req.arguments(args),
    }
}

/// Runs `f`, failing once the attempts' connect timeout passes.
pub(crate) async fn limit<R: Runtime, T>(
    attempts: &ConnectAttempts,
    timeout: Duration,
    f: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let expire = async {
        expiry::<R>(deadline_after(timeout)).await;
        Err(attempts.timed_out())
    };
    future::or(f, expire).await
}

/// Connects to a Unix path, retrying as [`ConnectAttempts`] says.
pub(crate) async fn connect_unix_path<R: Runtime>(
    path: &Path,
    socket_wait: Duration,
    connect_timeout: Duration,
) -> Result<Transport<R>, Error> {
    let attempts = ConnectAttempts::new(path.display().to_string(), socket_wait, connect_timeout);
    loop {
        match connect_unix_nonblocking(path) {
            Ok(s) => {
                return Ok(Transport::Unix(
                    R::socket(s).map_err(|e| attempts.give_up(e))?,
                ));
            }
            Err(e) => {
                let pause = attempts.after_failure(e)?;
                expiry::<R>(deadline_after(pause)).await;
            }
        }
    }
}
