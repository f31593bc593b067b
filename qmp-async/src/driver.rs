//! The loop that moves a connection's bytes, and who runs it.
//!
//! The loop: take the handles' instructions → read → write → fire the
//! engine's deadline → hand replies and events out, until nothing moves;
//! then sleep on the socket, the handles' instruction queue and one timer,
//! which is re-armed only when the engine's deadline moves earlier. Every
//! protocol decision is the engine's: this file only moves bytes and
//! results.
//!
//! The driver task runs it, and so does a call waiting for its reply when
//! nobody else is running it: that call then sends its own request and
//! reads its own reply on its own task. Whoever runs it holds the
//! connection's lock; whoever finds it held leaves a flag that makes the
//! holder take another turn, so no wake-up is lost. Every wake-up the loop
//! asks for goes through one relay waker to the call running it (the
//! pilot) or else to the driver task.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant as StdInstant};

use qmp_core::{CloseReason, Event, Output, RequestId, SessionState};
use qmp_os::{CloseCause, Conn, Error};

use crate::events::Shared;
use crate::hub::Hub;
use crate::link::{Awaited, Body, Handshake, Inbox, Instruction, ReplySender};
use crate::runtime::Runtime;
use crate::transport::{Alarm, Pipe, Transport};

/// Loop turns per poll before yielding to other tasks.
const BUDGET: usize = 64;

/// How long the driver waits for a subscriber whose queue is full to read
/// before it leaves it behind (drops its oldest events).
const PATIENCE: Duration = Duration::from_millis(250);

/// Drives one connection: the engine, the socket, the timer, every call's
/// reply and every subscriber's events. While it is not polled, a call
/// waiting for its reply drives the connection itself, and a call whose
/// deadline passes ends with a timeout all the same; events wait for the
/// driver or the next call.
///
/// It is a future: spawn it on the runtime's executor (`smol::spawn`,
/// `tokio::spawn`), or poll it yourself next to your own work, in the same
/// task. It completes when the connection closes and returns why.
///
/// ```
/// use futures_lite::future;
/// use qmp_async::{Driver, Qmp, Runtime};
///
/// async fn status<R: Runtime>(qmp: Qmp<R>, driver: Driver<R>) -> Result<(), qmp_async::Error> {
///     // Polled alongside the work, in the same task.
///     let work = async {
///         let status = qmp.execute("query-status", None).await;
///         qmp.disconnect();
///         status
///     };
///     let (status, cause) = future::zip(work, driver).await;
///     println!("{} then {cause}", status?);
///     Ok(())
/// }
/// ```
///
/// Dropping the driver closes the connection: pending calls end with
/// [`CloseCause::DriverDropped`].
#[must_use = "the connection makes no progress unless its driver is polled"]
pub struct Driver<R: Runtime> {
    core: Arc<Core<R>>,
}

/// The connection's state, driven by whoever gets to it: the driver task,
/// or a caller waiting for its reply (see [`Steer`]).
struct Core<R: Runtime> {
    inner: Mutex<Box<Inner<R>>>,
    /// Set by every party that wants a turn; whoever holds `inner` takes
    /// another turn when it finds it set after letting go.
    again: AtomicBool,
    relay: Arc<Relay>,
    /// `relay` as a waker: every registration a turn makes (socket, timers,
    /// instructions, subscribers) is made with it.
    relay_waker: Waker,
}

/// A caller's way to drive the connection from its own task while it
/// waits for its reply: its reply is then read by the task that waits for
/// it, with no wake-up of the driver task and no hand-over between tasks
/// (each costs a reactor pass or a cross-thread wake-up).
pub(crate) trait Steer: Send + Sync {
    /// Takes turns as call `token`, woken by `waker` for what the
    /// connection waits on. `false`: someone else is taking a turn and
    /// will take another.
    fn drive(&self, token: u64, waker: &Waker) -> bool;
    /// Call `token` has its reply or went away: wake-ups go back to the
    /// driver task.
    fn release(&self, token: u64);
}

/// Whom the connection's wake-ups go to: the call driving it (the pilot),
/// else the driver task (home). While anyone else waits on the connection
/// (another call, a subscriber, a watcher of its state or its end), home
/// is woken as well: the pilot is woken only for its own reply, and a
/// call future kept but no longer polled must not hold up the others.
struct Relay {
    crew: Mutex<Crew>,
    hub: Arc<Hub>,
    inbox: Arc<Inbox>,
    /// More than one call waits for a reply (as of the last turn).
    others: AtomicBool,
}

#[derive(Default)]
struct Crew {
    home: Option<Waker>,
    pilot: Option<(u64, Waker)>,
    /// The pilot was woken and has not taken a turn since: a second
    /// wake-up goes home too, so that a call future kept but no longer
    /// polled never holds the connection up.
    woken: bool,
}

impl Relay {
    fn crew(&self) -> std::sync::MutexGuard<'_, Crew> {
        self.crew
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether anyone but the pilot may be waiting on the connection.
    fn crowded(&self) -> bool {
        self.others.load(Ordering::Relaxed) || self.hub.has_listeners() || self.inbox.watched()
    }

    fn set_home(&self, waker: &Waker) {
        let mut crew = self.crew();
        if !crew.home.as_ref().is_some_and(|h| h.will_wake(waker)) {
            crew.home = Some(waker.clone());
        }
    }

    fn board(&self, token: u64, waker: &Waker) {
        let mut crew = self.crew();
        crew.woken = false;
        match &mut crew.pilot {
            Some((t, w)) if *t == token && w.will_wake(waker) => {}
            pilot => *pilot = Some((token, waker.clone())),
        }
    }

    fn leave(&self, token: u64) {
        let mut crew = self.crew();
        if crew.pilot.as_ref().is_none_or(|(t, _)| *t != token) {
            return;
        }
        crew.pilot = None;
        // A wake-up the pilot took but will not act on goes home.
        let home = std::mem::take(&mut crew.woken).then(|| crew.home.clone());
        drop(crew);
        if let Some(Some(w)) = home {
            w.wake();
        }
    }

    fn wake_home(&self) {
        let home = self.crew().home.clone();
        if let Some(w) = home {
            w.wake();
        }
    }
}

impl std::task::Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let crowded = self.crowded();
        let mut crew = self.crew();
        let (pilot, home) = match &crew.pilot {
            Some((_, pilot)) => {
                let pilot = pilot.clone();
                let slow = std::mem::replace(&mut crew.woken, true);
                (
                    Some(pilot),
                    (slow || crowded).then(|| crew.home.clone()).flatten(),
                )
            }
            None => (None, crew.home.clone()),
        };
        drop(crew);
        pilot.into_iter().chain(home).for_each(Waker::wake);
    }
}

impl<R: Runtime> Core<R> {
    fn new(inner: Box<Inner<R>>) -> Self {
        let relay = Arc::new(Relay {
            crew: Mutex::default(),
            hub: inner.hub.clone(),
            inbox: inner.inbox.clone(),
            others: AtomicBool::new(false),
        });
        Core {
            inner: Mutex::new(inner),
            again: AtomicBool::new(false),
            relay_waker: Waker::from(relay.clone()),
            relay,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<Inner<R>>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes turns until nobody else asked for one meanwhile. `None`:
    /// someone else holds the connection and will take another turn.
    fn turns(&self, before: impl Fn()) -> Option<Poll<CloseCause>> {
        let mut last = None;
        loop {
            self.again.store(true, Ordering::SeqCst);
            let mut inner = match self.inner.try_lock() {
                Ok(inner) => inner,
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return last,
            };
            self.again.store(false, Ordering::SeqCst);
            before();
            let mut cx = Context::from_waker(&self.relay_waker);
            let poll = inner.poll(&mut cx);
            let others = inner.waiters.len() > 1;
            self.relay.others.store(others, Ordering::Relaxed);
            drop(inner);
            if poll.is_ready() {
                // The driver task returns the cause.
                self.relay.wake_home();
                return Some(poll);
            }
            last = Some(poll);
            if !self.again.load(Ordering::SeqCst) {
                return last;
            }
        }
    }
}

impl<R: Runtime> Steer for Core<R> {
    fn drive(&self, token: u64, waker: &Waker) -> bool {
        self.turns(|| self.relay.board(token, waker)).is_some()
    }

    fn release(&self, token: u64) {
        self.relay.leave(token);
    }
}

struct Inner<R: Runtime> {
    conn: Conn,
    pipe: Pipe<R>,
    alarm: Alarm<R>,
    hub: Arc<Hub>,
    /// What the handles ask; told when the driver finishes.
    inbox: Arc<Inbox>,
    waiters: Waiters<RequestId, ReplySender>,
    /// An event a subscriber has no room for yet, the subscriber, and how
    /// long the driver waits for it: nothing more is read meanwhile.
    held: Option<Held>,
    /// The phase last published to the hub.
    noted: Option<SessionState>,
    /// Made at the first wait for a subscriber, then reset.
    patience: Option<Pin<Box<R::Timer>>>,
    done: Option<CloseCause>,
}

impl<R: Runtime> Driver<R> {
    /// Runs the handshake over `io`, then returns the driver.
    pub(crate) async fn establish(
        conn: Conn,
        io: Transport<R>,
        hub: Arc<Hub>,
        inbox: Arc<Inbox>,
        awaited: Awaited,
    ) -> Result<(Driver<R>, Handshake), Error> {
        let mut inner = Box::new(Inner {
            conn,
            pipe: Pipe::new(io),
            alarm: Alarm::default(),
            hub,
            inbox,
            waiters: Waiters::default(),
            held: None,
            noted: None,
            patience: None,
            done: None,
        });
        inner.note_state();
        let handshake = std::future::poll_fn(|cx| inner.poll_handshake(cx)).await;
        if let Err(Error::Closed(cause)) = handshake {
            let conn = &inner.conn;
            return Err(conn.handshake_error(cause, awaited.what, awaited.timeout, awaited.qmp));
        }
        handshake?;
        let handshake = Handshake {
            greeting: inner.conn.greeting().cloned(),
            oob: inner.conn.engine().oob_enabled(),
            clock: inner.conn.clock(),
            name: inner.conn.name().into(),
        };
        let core = Arc::new(Core::new(inner));
        Ok((Driver { core }, handshake))
    }

    /// The callers' way to drive the connection.
    pub(crate) fn steer(&self) -> std::sync::Weak<dyn Steer> {
        let core: Arc<dyn Steer> = self.core.clone();
        Arc::downgrade(&core)
    }

    /// Whether the driver has finished.
    pub fn is_finished(&self) -> bool {
        self.core.lock().done.is_some()
    }
}

impl<R: Runtime> fmt::Debug for Driver<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.core.lock();
        f.debug_struct("Driver")
            .field("conn", &inner.conn)
            .field("waiting", &inner.waiters.len())
            .field("done", &inner.done)
            .finish()
    }
}

impl<R: Runtime> Future for Driver<R> {
    type Output = CloseCause;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CloseCause> {
        let core = &self.core;
        core.relay.set_home(cx.waker());
        // Someone else holding the connection takes another turn, and
        // wakes this task when the connection ends.
        core.turns(|| ()).unwrap_or(Poll::Pending)
    }
}

impl<R: Runtime> Drop for Driver<R> {
    fn drop(&mut self) {
        let mut inner = self.core.lock();
        if inner.done.is_none() {
            inner.finish(CloseCause::DriverDropped);
        }
    }
}

/// An event waiting for a subscriber to make room.
struct Held {
    event: Event,
    subscriber: Arc<Shared>,
    since: StdInstant,
}

impl<R: Runtime> Inner<R> {
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        for _ in 0..BUDGET {
            let progress = self.turn(cx);
            self.note_state();
            while let Some(out) = self.conn.poll_output() {
                match out {
                    Output::Ready => return Poll::Ready(Ok(())),
                    Output::Closed(reason) => {
                        let cause = self
                            .conn
                            .close_cause()
                            .unwrap_or(CloseCause::Session(reason));
                        return Poll::Ready(Err(Error::Closed(cause)));
                    }
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

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<CloseCause> {
        if let Some(cause) = &self.done {
            return Poll::Ready(cause.clone());
        }
        for _ in 0..BUDGET {
            let mut progress = self.take_instructions(cx);
            progress |= self.turn(cx);
            progress |= self.forward(cx);
            self.note_change();
            if self.conn.state() == SessionState::Closed {
                let cause = self
                    .conn
                    .close_cause()
                    .unwrap_or(CloseCause::Session(CloseReason::Local));
                self.finish(cause.clone());
                return Poll::Ready(cause);
            }
            if !progress || self.settled() {
                self.note_state();
                return Poll::Pending;
            }
        }
        self.note_state();
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Whether another pass, right after one that moved something, would
    /// find nothing to do, every source of work having registered this
    /// task: the instructions (polled until pending), the socket (reading
    /// waits for the reactor), the alarm (armed every turn), and nothing
    /// left to write or to hand to a subscriber. It saves a serial call
    /// two of its four turns.
    fn settled(&self) -> bool {
        self.pipe.idle() && self.held.is_none() && self.conn.transmit().is_none()
    }

    /// Publishes the engine's counters and phase to the handles.
    fn note_state(&mut self) {
        let state = self.conn.state();
        self.noted = Some(state);
        self.hub.set_view(self.conn.engine().stats(), state);
    }

    /// Publishes them if the phase changed since they last were: within a
    /// poll, so that the log of phases misses none; the counters follow
    /// when the poll ends.
    fn note_change(&mut self) {
        if self.noted != Some(self.conn.state()) {
            self.note_state();
        }
    }

    /// One read (none while an event waits for a subscriber), the writes,
    /// and the timer. Returns whether anything moved.
    fn turn(&mut self, cx: &mut Context<'_>) -> bool {
        let read = self.held.is_none();
        let (pipe, conn) = (&mut self.pipe, &mut self.conn);
        let io = if read {
            pipe.read(cx, conn)
        } else {
            pipe.skip_read();
            Ok(false)
        };
        let io = io.and_then(|r| Ok(r | pipe.write(cx, conn)?));
        let progress = io.unwrap_or_else(|e| {
            self.conn.failed(e);
            true
        });
        progress | self.timers(cx)
    }

    /// Fires the engine's deadline when due and arms the alarm for the next.
    fn timers(&mut self, cx: &mut Context<'_>) -> bool {
        let now = self.pipe.take_read_time().unwrap_or_else(StdInstant::now);
        let fired = self.conn.tick_at(now);
        self.alarm.poll(cx, self.conn.next_deadline(), now) | fired
    }

    fn take_instructions(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            match self.inbox.poll_next(cx) {
                Poll::Ready(Some(i)) => self.obey(i),
                // Every handle is gone: nobody can call or disconnect.
                Poll::Ready(None) if self.conn.state() == SessionState::Running => {
                    self.conn.close()
                }
                Poll::Ready(None) | Poll::Pending => return progress,
            }
            progress = true;
        }
    }

    fn obey(&mut self, instruction: Instruction) {
        match instruction {
            Instruction::Execute(s) => match self.submit(s.body, s.deadline, s.fds) {
                Ok(id) => self.waiters.push(id, s.token, s.reply),
                Err(e) => s.reply.send(Err(e)),
            },
            Instruction::Cancel(token) => {
                if let Some(id) = self.waiters.cancel(token) {
                    self.conn.cancel(id);
                }
            }
            Instruction::Close => self.conn.close(),
            Instruction::Resync => {
                let now = self.conn.now();
                self.conn.engine_mut().resync(now);
            }
        }
    }

    fn submit(
        &mut self,
        body: Body,
        deadline: Option<qmp_core::Instant>,
        fds: Vec<std::os::fd::OwnedFd>,
    ) -> Result<RequestId, Error> {
        match body {
            Body::Request(request) => self.conn.submit_owned(request, deadline, fds),
            Body::Raw(message) => {
                let now = self.conn.now();
                let timeout = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
                self.conn.submit_raw(message, timeout)
            }
        }
    }

    /// Hands events to the subscribers, then replies to their callers: one
    /// read's events came before or with its replies, so a caller finds
    /// the events that preceded its reply already in its subscriptions.
    /// While a subscriber has no room for the next event, neither moves.
    fn forward(&mut self, cx: &mut Context<'_>) -> bool {
        let missed = self.conn.engine_mut().events().take_lagged();
        if missed > 0 {
            self.hub.missed(missed);
        }
        let (published, all_out) = self.publish(cx);
        let mut progress = published || missed > 0;
        if !all_out {
            return progress;
        }
        while let Some(out) = self.conn.poll_output() {
            progress = true;
            if let Output::Reply { id, result } = out
                && let Some(reply) = self.waiters.take(id)
            {
                // The caller words a timeout with its own command and limit.
                let result = self.conn.result(result, String::new, Default::default());
                reply.send(result);
            }
        }
        progress
    }

    /// Publishes the events read so far. Returns whether any moved, and
    /// whether all are out (none waits for a subscriber to make room).
    fn publish(&mut self, cx: &mut Context<'_>) -> (bool, bool) {
        let mut progress = false;
        if let Some(held) = self.held.take() {
            if !held.subscriber.wait_for_room(cx.waker()) {
                progress = true;
            } else if self.patience_ran_out(cx, held.since) {
                held.subscriber.give_up_on();
                progress = true;
            } else {
                self.held = Some(held);
                return (false, false);
            }
            if let Err(again) = self.offer(held.event, cx) {
                return (progress, !again);
            }
        }
        while let Some(event) = self.conn.poll_event() {
            progress = true;
            if let Err(again) = self.offer(event, cx) {
                return (progress, !again);
            }
        }
        (progress, true)
    }

    /// Publishes one event, or holds it for a subscriber without room
    /// (`Err(true)`: the driver waits).
    fn offer(&mut self, event: Event, cx: &mut Context<'_>) -> Result<(), bool> {
        let (event, subscriber) = match self.hub.publish(event, false) {
            Ok(()) => return Ok(()),
            Err(held) => held,
        };
        if !subscriber.wait_for_room(cx.waker()) {
            // It read meanwhile: there is room now.
            let _ = self.hub.publish(event, true);
            return Ok(());
        }
        let since = StdInstant::now();
        self.held = Some(Held {
            event,
            subscriber,
            since,
        });
        // Arms the timer; it may be due already on a stalled machine.
        let _ = self.patience_ran_out(cx, since);
        Err(true)
    }

    /// Whether the wait that began `since` has lasted [`PATIENCE`]; if not,
    /// the timer wakes the driver when it has.
    fn patience_ran_out(&mut self, cx: &mut Context<'_>, since: StdInstant) -> bool {
        let at = since + PATIENCE;
        if StdInstant::now() >= at {
            return true;
        }
        let timer = match &mut self.patience {
            Some(timer) => {
                R::reset(timer.as_mut(), Some(at));
                timer
            }
            None => self.patience.insert(Box::pin(R::sleep_until(at))),
        };
        timer.as_mut().poll(cx).is_ready()
    }

    /// Ends everything: pending calls, queued instructions, subscriptions.
    fn finish(&mut self, cause: CloseCause) {
        if self.conn.state() != SessionState::Closed {
            self.conn.abort();
        }
        // Nothing more will come: every event read goes out, room or not.
        let held = self.held.take().map(|h| h.event);
        for event in held
            .into_iter()
            .chain(std::iter::from_fn(|| self.conn.poll_event()))
        {
            let _ = self.hub.publish(event, true);
        }
        self.done = Some(cause.clone());
        self.hub
            .set_view(self.conn.engine().stats(), self.conn.state());
        self.hub.set_cause(cause.clone());
        self.hub.end_all();
        let err = || Err(Error::Interrupted(cause.clone()));
        for i in self.inbox.finish() {
            if let Instruction::Execute(s) = i {
                s.reply.send(err());
            }
        }
        for waiter in std::mem::take(&mut self.waiters.0) {
            waiter.reply.send(err());
        }
    }
}

/// A call waiting for its reply.
struct Waiter<I, T> {
    id: I,
    token: u64,
    reply: T,
}

/// The calls waiting for their replies, oldest first. The inbox numbers
/// calls in the order the driver takes them and the engine numbers
/// requests in the order they are submitted, so both `id` and `token`
/// increase from front to back: either finds its call by bisection, and
/// a reply to the oldest call (the usual case) at the front. Nothing is
/// allocated per call, unlike a map.
struct Waiters<I, T>(VecDeque<Waiter<I, T>>);

impl<I, T> Default for Waiters<I, T> {
    fn default() -> Self {
        Waiters(VecDeque::new())
    }
}

impl<I: Ord + Copy, T> Waiters<I, T> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn push(&mut self, id: I, token: u64, reply: T) {
        debug_assert!(
            self.0.back().is_none_or(|w| w.id < id && w.token < token),
            "calls reach the driver in order"
        );
        self.0.push_back(Waiter { id, token, reply });
    }

    /// The call waiting for request `id`'s reply, removed.
    fn take(&mut self, id: I) -> Option<T> {
        let at = match self.0.front() {
            Some(w) if w.id == id => 0,
            _ => self.0.binary_search_by_key(&id, |w| w.id).ok()?,
        };
        self.0.remove(at).map(|w| w.reply)
    }

    /// Forgets the call `token`; returns its request's id.
    fn cancel(&mut self, token: u64) -> Option<I> {
        let at = self.0.binary_search_by_key(&token, |w| w.token).ok()?;
        self.0.remove(at).map(|w| w.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for the engine's request ids, which only it makes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Id(u64);

    /// Calls with ids 10, 12, 14… and tokens 0, 1, 2… (ids skip numbers,
    /// as when submissions fail or other requests come between).
    fn waiters(n: u64) -> Waiters<Id, u64> {
        let mut w = Waiters::default();
        for token in 0..n {
            w.push(Id(10 + 2 * token), token, token);
        }
        w
    }

    #[test]
    fn replies_and_cancellations_find_their_call_in_any_order() {
        let mut w = waiters(1000);
        // Replies in order, from the front.
        for token in 0..10 {
            assert_eq!(w.take(Id(10 + 2 * token)), Some(token));
        }
        // Out of order (out-of-band replies), and ids nobody waits for.
        assert_eq!(w.take(Id(10 + 2 * 500)), Some(500));
        assert_eq!(w.take(Id(10 + 2 * 500)), None);
        assert_eq!(w.take(Id(11)), None);
        assert_eq!(w.take(Id(10)), None);
        // Cancellations by token, from the back, the middle, the front.
        assert_eq!(w.cancel(999), Some(Id(10 + 2 * 999)));
        assert_eq!(w.cancel(400), Some(Id(10 + 2 * 400)));
        assert_eq!(w.cancel(10), Some(Id(30)));
        assert_eq!(w.cancel(10), None);
        assert_eq!(w.cancel(500), None);
        assert_eq!(w.len(), 1000 - 10 - 1 - 3);
        // Every other call is still found, each exactly once.
        for token in (11..999).filter(|t| ![400, 500].contains(t)) {
            let id = Id(10 + 2 * token);
            if token % 2 == 0 {
                assert_eq!(w.take(id), Some(token));
            } else {
                assert_eq!(w.cancel(token), Some(id));
            }
        }
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn calls_pushed_after_others_ended_keep_the_order() {
        let mut w = waiters(3);
        assert_eq!(w.take(Id(12)), Some(1));
        w.push(Id(20), 7, 7);
        assert_eq!(w.cancel(7), Some(Id(20)));
        assert_eq!(w.take(Id(14)), Some(2));
        assert_eq!(w.take(Id(10)), Some(0));
        assert_eq!(w.len(), 0);
    }
}
