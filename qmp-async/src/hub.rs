//! What handles, subscriptions and the driver share: the close cause, the
//! subscribers, the default queue, the event history and the session's
//! runstate log.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use qmp_core::{Event, EventQueue, SessionState};
use qmp_os::{CloseCause, Options};

use crate::events::{EventFilter, Events, Shared, Subscription};

/// The most runstate changes a connection remembers (a guest agent
/// resyncs many times; the oldest are forgotten).
const RUNSTATE_LOG: usize = 64;

/// Where the hub's queues stop growing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Each subscription's byte budget.
    pub(crate) subscriber_bytes: usize,
    /// The default queue's size, in events and in bytes.
    pub(crate) unclaimed: (usize, usize),
    /// The history's size, in events and in bytes (0 events: none kept).
    pub(crate) history: (usize, usize),
}

impl Limits {
    pub(crate) fn from_options(options: &Options) -> Self {
        Limits {
            subscriber_bytes: options.max_queued_event_bytes,
            unclaimed: (options.max_queued_events, options.max_queued_event_bytes),
            history: (options.event_history, options.event_history_bytes),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_options(&Options::default())
    }
}

/// The hub itself.
pub(crate) struct Hub {
    limits: Limits,
    unclaimed: Arc<Shared>,
    inner: Mutex<HubInner>,
    /// How many [`Listening`] handles exist.
    listeners: AtomicUsize,
}

/// The hub as a subscription, the default queue or a run-state stream
/// holds it: counted while it lives (see [`Hub::has_listeners`]).
pub(crate) struct Listening(Arc<Hub>);

impl Listening {
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        hub.listeners.fetch_add(1, Ordering::Relaxed);
        Listening(hub)
    }
}

impl std::ops::Deref for Listening {
    type Target = Hub;

    fn deref(&self) -> &Hub {
        &self.0
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct HubInner {
    cause: Option<CloseCause>,
    subscribers: Vec<Weak<Shared>>,
    /// Scratch for one event's recipients.
    matched: Vec<Arc<Shared>>,
    history: EventQueue,
    /// The engine's counters as of the driver's last turn.
    stats: qmp_core::Stats,
    /// The runstates the session went through, oldest first.
    states: VecDeque<SessionState>,
    /// How many were forgotten from the front of `states`.
    states_forgotten: usize,
    state_watchers: Vec<Waker>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(Limits::default())
    }
}

impl Hub {
    pub(crate) fn new(limits: Limits) -> Self {
        let (n, bytes) = limits.unclaimed;
        Hub {
            limits,
            unclaimed: Arc::new(Shared::new(EventFilter::all(), n, bytes, true)),
            inner: Mutex::new(HubInner {
                history: EventQueue::bounded(limits.history.0, limits.history.1),
                ..HubInner::default()
            }),
            listeners: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn cause(&self) -> Option<CloseCause> {
        self.lock().cause.clone()
    }

    pub(crate) fn stats(&self) -> qmp_core::Stats {
        self.lock().stats
    }

    pub(crate) fn state(&self) -> Option<SessionState> {
        self.lock().states.back().copied()
    }

    /// Records the engine's counters and phase after a driver turn.
    pub(crate) fn set_view(&self, stats: qmp_core::Stats, state: SessionState) {
        let mut inner = self.lock();
        inner.stats = stats;
        if inner.states.back() != Some(&state) {
            if inner.states.len() == RUNSTATE_LOG {
                inner.states.pop_front();
                inner.states_forgotten += 1;
            }
            inner.states.push_back(state);
            inner.state_watchers.drain(..).for_each(Waker::wake);
        }
    }

    pub(crate) fn subscribe<const N: usize>(
        self: &Arc<Self>,
        filter: EventFilter,
        replay: bool,
    ) -> Subscription<N> {
        let shared = Arc::new(Shared::new(filter, N, self.limits.subscriber_bytes, false));
        let mut hub = self.lock();
        if replay {
            for e in hub.history.iter().filter(|e| shared.matches(e)) {
                shared.offer(e.clone());
            }
        }
        if hub.cause.is_some() {
            shared.end();
        } else {
            hub.subscribers.retain(|w| w.strong_count() > 0);
            hub.subscribers.push(Arc::downgrade(&shared));
        }
        drop(hub);
        Subscription::new(shared, self.clone())
    }

    /// Whether anyone may be waiting for events or for the session's
    /// state: a subscription, a handle on the default queue or a stream
    /// of run states exists. Takes no lock: the driver's wakers ask.
    pub(crate) fn has_listeners(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn events(self: &Arc<Self>) -> Events {
        Events::new(self.unclaimed.clone(), self.clone())
    }

    /// The history, oldest first.
    pub(crate) fn history(&self) -> Vec<Event> {
        self.lock().history.iter().cloned().collect()
    }

    /// The latest event in the history that passes `filter`.
    pub(crate) fn happened(&self, filter: &EventFilter) -> Option<Event> {
        let hub = self.lock();
        hub.history
            .iter()
            .filter(|e| filter.matches(e))
            .last()
            .cloned()
    }

    /// Counts events lost before they reached any queue.
    pub(crate) fn missed(&self, n: u64) {
        let mut hub = self.lock();
        hub.subscribers.retain(|w| match w.upgrade() {
            Some(sub) => {
                sub.missed(n);
                true
            }
            None => false,
        });
        if hub.subscribers.is_empty() {
            self.unclaimed.missed(n);
        }
    }

    /// Hands `event` to every subscriber whose filter it passes, or to the
    /// default queue when none does. Unless `force`, a subscriber that
    /// would lose an event it still means to read holds it back: the event
    /// is given back with that subscriber, and nobody got it.
    pub(crate) fn publish(&self, event: Event, force: bool) -> Result<(), (Event, Arc<Shared>)> {
        let mut guard = self.lock();
        let hub = &mut *guard;
        hub.matched.clear();
        let size = event.size();
        let mut pruned = false;
        for weak in &hub.subscribers {
            match weak.upgrade() {
                Some(sub) if sub.matches(&event) => {
                    if !force && sub.would_lose(size) {
                        hub.matched.clear();
                        return Err((event, sub));
                    }
                    hub.matched.push(sub);
                }
                Some(_) => {}
                None => pruned = true,
            }
        }
        if pruned {
            hub.subscribers.retain(|w| w.strong_count() > 0);
        }
        if hub.history.capacity() > 0 {
            hub.history.push(event.clone());
        }
        match hub.matched.split_last() {
            None => self.unclaimed.offer(event),
            Some((last, others)) => {
                for sub in others {
                    sub.offer(event.clone());
                }
                last.offer(event);
            }
        }
        hub.matched.clear();
        Ok(())
    }

    /// Records why the connection closed; the first cause wins. From now on
    /// calls fail at once.
    pub(crate) fn set_cause(&self, cause: CloseCause) {
        let mut hub = self.lock();
        if hub.cause.is_none() {
            hub.cause = Some(cause);
        }
        hub.state_watchers.drain(..).for_each(Waker::wake);
    }

    /// Ends every subscription and the default queue.
    pub(crate) fn end_all(&self) {
        let subs = std::mem::take(&mut self.lock().subscribers);
        for sink in subs.iter().filter_map(Weak::upgrade) {
            sink.end();
        }
        self.unclaimed.end();
    }

    #[cfg(test)]
    pub(crate) fn subscribers(&self) -> usize {
        self.lock().subscribers.len()
    }
}

/// The session's runstates as they change, from
/// [`Qmp::runstates`](crate::Qmp::runstates): first every state the
/// session has been in since it was made (awaiting the greeting,
/// negotiating or syncing, running...), then each new one as the driver
/// sees it. The stream ends after [`SessionState::Closed`]; then
/// [`close_cause`](Self::close_cause) says why.
///
/// ```no_run
/// # async fn f<R: qmp_async::Runtime>(qmp: qmp_async::Qmp<R>) {
/// use futures_lite::StreamExt;
/// let mut states = qmp.runstates();
/// while let Some(state) = states.next().await {
///     println!("now {state:?}");
/// }
/// println!("closed: {:?}", states.close_cause());
/// # }
/// ```
pub struct Runstates {
    hub: Listening,
    /// The index of the next state to yield, counted from the first.
    next: usize,
}

impl Runstates {
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Runstates {
            hub: Listening::new(hub),
            next: 0,
        }
    }

    /// Why the connection closed, once it has.
    pub fn close_cause(&self) -> Option<CloseCause> {
        self.hub.cause()
    }

    /// The latest runstate the driver saw.
    pub fn current(&self) -> Option<SessionState> {
        self.hub.state()
    }
}

impl Stream for Runstates {
    type Item = SessionState;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SessionState>> {
        let mut hub = self.hub.lock();
        let index = self.next.max(hub.states_forgotten);
        if let Some(state) = hub.states.get(index - hub.states_forgotten).copied() {
            drop(hub);
            self.next = index + 1;
            return Poll::Ready(Some(state));
        }
        // The end comes with the cause, which the driver records just
        // after it saw the session close.
        if hub.states.back() == Some(&SessionState::Closed) && hub.cause.is_some() {
            return Poll::Ready(None);
        }
        if !hub.state_watchers.iter().any(|w| w.will_wake(cx.waker())) {
            hub.state_watchers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl fmt::Debug for Runstates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runstates")
            .field("next", &self.next)
            .field("current", &self.current())
            .finish()
    }
}
