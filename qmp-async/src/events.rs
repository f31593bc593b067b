//! Event fan-out: filters, subscriptions, and the hub the driver
//! publishes to.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use qmp_core::{Event, EventQueue};

use qmp_os::CloseCause;

/// The queue size of [`Qmp::subscribe`](crate::Qmp::subscribe).
pub const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 256;

/// Which events a subscriber wants.
///
/// ```
/// use qmp_async::EventFilter;
/// let stop = EventFilter::name("STOP");
/// let run_state = EventFilter::names(["STOP", "RESUME"]);
/// let shutdowns = EventFilter::predicate(|e| e.name == "SHUTDOWN" && e.data().is_ok_and(|d| d["guest"] == true));
/// let from_str: EventFilter = "RESUME".into();
/// # let _ = (stop, run_state, shutdowns, from_str);
/// ```
#[derive(Clone, Default)]
pub struct EventFilter(Kind);

#[derive(Clone, Default)]
enum Kind {
    #[default]
    All,
    Names(Vec<String>),
    Predicate(Arc<dyn Fn(&Event) -> bool + Send + Sync>),
}

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        EventFilter(Kind::All)
    }

    /// Events with this name, e.g. `STOP`.
    pub fn name(name: impl Into<String>) -> Self {
        EventFilter(Kind::Names(vec![name.into()]))
    }

    /// Events with any of these names.
    pub fn names<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        EventFilter(Kind::Names(names.into_iter().map(Into::into).collect()))
    }

    /// Events for which `f` holds. It runs on the driver for every event,
    /// so keep it quick and never block in it.
    pub fn predicate(f: impl Fn(&Event) -> bool + Send + Sync + 'static) -> Self {
        EventFilter(Kind::Predicate(Arc::new(f)))
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        match &self.0 {
            Kind::All => true,
            Kind::Names(names) => names.contains(&event.name),
            Kind::Predicate(f) => f(event),
        }
    }
}

impl fmt::Debug for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::All => f.write_str("EventFilter::all()"),
            Kind::Names(n) => write!(f, "EventFilter::names({n:?})"),
            Kind::Predicate(_) => f.write_str("EventFilter::predicate(..)"),
        }
    }
}

impl From<&str> for EventFilter {
    fn from(name: &str) -> Self {
        EventFilter::name(name)
    }
}

impl From<String> for EventFilter {
    fn from(name: String) -> Self {
        EventFilter::name(name)
    }
}

impl<const K: usize> From<[&str; K]> for EventFilter {
    fn from(names: [&str; K]) -> Self {
        EventFilter::names(names)
    }
}

impl From<Option<&str>> for EventFilter {
    /// `None` means every event.
    fn from(name: Option<&str>) -> Self {
        name.map_or_else(EventFilter::all, EventFilter::name)
    }
}

/// What the hub needs from a subscription, whatever its capacity.
pub(crate) trait Sink: Send + Sync {
    fn offer(&self, event: &Event);
    /// Events the subscriber never saw because the engine's own queue
    /// overflowed.
    fn missed(&self, n: u64);
    fn end(&self);
}

struct State<const N: usize> {
    queue: EventQueue,
    /// Losses that happened before the events reached this queue.
    missed: u64,
    missed_total: u64,
    waker: Option<Waker>,
    ended: bool,
}

struct Shared<const N: usize> {
    filter: EventFilter,
    state: Mutex<State<N>>,
}

impl<const N: usize> Shared<N> {
    fn lock(&self) -> MutexGuard<'_, State<N>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<const N: usize> Sink for Shared<N> {
    fn offer(&self, event: &Event) {
        if !self.filter.matches(event) {
            return;
        }
        let mut s = self.lock();
        s.queue.push(event.clone());
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    fn missed(&self, n: u64) {
        let mut s = self.lock();
        s.missed += n;
        s.missed_total += n;
    }

    fn end(&self) {
        let mut s = self.lock();
        s.ended = true;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

/// A stream of the events that pass one filter, from
/// [`Qmp::subscribe`](crate::Qmp::subscribe).
///
/// Events queue here (at most `N`) until read; when the queue is full the
/// oldest is dropped and counted ([`lagged`](Self::lagged)), so a
/// subscriber that falls behind never holds up replies or other
/// subscribers. The stream ends (yields `None`) once the connection has
/// closed and every queued event was read. Read it with
/// [`futures_lite::StreamExt::next`] or any `Stream` combinator.
///
/// The queue grows as events arrive, up to `N`; an idle subscription
/// holds none.
pub struct Subscription<const N: usize = DEFAULT_SUBSCRIPTION_CAPACITY> {
    shared: Arc<Shared<N>>,
    hub: Arc<Hub>,
}

impl<const N: usize> Subscription<N> {
    /// The oldest queued event, without waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        self.shared.lock().queue.pop()
    }

    /// Events dropped so far because this subscriber fell behind.
    pub fn lagged(&self) -> u64 {
        let s = self.shared.lock();
        s.queue.lagged_total() + s.missed_total
    }

    /// Events dropped since the last call of this method.
    pub fn take_lagged(&mut self) -> u64 {
        let mut s = self.shared.lock();
        s.queue.take_lagged() + std::mem::take(&mut s.missed)
    }

    /// Events waiting to be read.
    pub fn len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the connection has closed (queued events may remain).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().ended
    }

    /// Why the connection closed, once it has.
    pub fn close_cause(&self) -> Option<CloseCause> {
        self.hub.cause()
    }

    /// The filter.
    pub fn filter(&self) -> &EventFilter {
        &self.shared.filter
    }
}

impl<const N: usize> Stream for Subscription<N> {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let mut s = self.shared.lock();
        if let Some(e) = s.queue.pop() {
            return Poll::Ready(Some(e));
        }
        if s.ended {
            return Poll::Ready(None);
        }
        match &mut s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), None)
    }
}

impl<const N: usize> fmt::Debug for Subscription<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("Subscription")
            .field("filter", &self.shared.filter)
            .field("capacity", &N)
            .field("queued", &s.queue.len())
            .field("lagged", &(s.queue.lagged_total() + s.missed_total))
            .field("closed", &s.ended)
            .finish()
    }
}

/// What handles, subscriptions and the driver share: the close cause and
/// the subscribers.
#[derive(Default)]
pub(crate) struct Hub {
    inner: Mutex<HubInner>,
}

#[derive(Default)]
struct HubInner {
    cause: Option<CloseCause>,
    subscribers: Vec<Weak<dyn Sink>>,
    /// The engine's counters as of the driver's last turn.
    stats: qmp_core::Stats,
    /// Where the session stood at the driver's last turn.
    state: Option<qmp_core::SessionState>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HubInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn cause(&self) -> Option<CloseCause> {
        self.lock().cause.clone()
    }

    pub(crate) fn stats(&self) -> qmp_core::Stats {
        self.lock().stats
    }

    pub(crate) fn state(&self) -> Option<qmp_core::SessionState> {
        self.lock().state
    }

    /// Records the engine's counters and phase after a driver turn.
    pub(crate) fn set_view(&self, stats: qmp_core::Stats, state: qmp_core::SessionState) {
        let mut inner = self.lock();
        inner.stats = stats;
        inner.state = Some(state);
    }

    pub(crate) fn subscribe<const N: usize>(
        self: &Arc<Self>,
        filter: EventFilter,
    ) -> Subscription<N> {
        let shared = Arc::new(Shared {
            filter,
            state: Mutex::new(State {
                queue: EventQueue::new(N),
                missed: 0,
                missed_total: 0,
                waker: None,
                ended: false,
            }),
        });
        let mut hub = self.lock();
        if hub.cause.is_some() {
            shared.lock().ended = true;
        } else {
            hub.subscribers.retain(|w| w.strong_count() > 0);
            let sink: Arc<dyn Sink> = shared.clone();
            hub.subscribers.push(Arc::downgrade(&sink));
        }
        drop(hub);
        Subscription {
            shared,
            hub: self.clone(),
        }
    }

    /// Hands each event to every live subscriber whose filter it passes.
    pub(crate) fn publish(&self, events: &[Event], missed: u64) {
        let mut hub = self.lock();
        hub.subscribers.retain(|w| match w.upgrade() {
            Some(sink) => {
                if missed > 0 {
                    sink.missed(missed);
                }
                for e in events {
                    sink.offer(e);
                }
                true
            }
            None => false,
        });
    }

    /// Records why the connection closed; the first cause wins. From now on
    /// calls fail at once.
    pub(crate) fn set_cause(&self, cause: CloseCause) {
        let mut hub = self.lock();
        if hub.cause.is_none() {
            hub.cause = Some(cause);
        }
    }

    /// Ends every subscription.
    pub(crate) fn end_all(&self) {
        let subs = std::mem::take(&mut self.lock().subscribers);
        for sink in subs.iter().filter_map(Weak::upgrade) {
            sink.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::StreamExt;
    use qmp_core::serde_json::json;

    fn ev(name: &str, n: u64) -> Event {
        Event::new(name, &json!({ "n": n }))
    }

    #[test]
    fn filters_match_names_and_predicates() {
        let e = ev("STOP", 1);
        assert!(EventFilter::all().matches(&e));
        assert!(EventFilter::from("STOP").matches(&e));
        assert!(!EventFilter::name("RESUME").matches(&e));
        assert!(EventFilter::from(["RESUME", "STOP"]).matches(&e));
        assert!(EventFilter::from(None::<&str>).matches(&e));
        assert!(EventFilter::predicate(|e| e.data().unwrap()["n"] == 1).matches(&e));
        assert!(!EventFilter::predicate(|e| e.data().unwrap()["n"] == 2).matches(&e));
        assert_eq!(
            format!("{:?}", EventFilter::name("X")),
            r#"EventFilter::names(["X"])"#
        );
    }

    #[test]
    fn each_subscriber_gets_its_own_bounded_queue() {
        let hub = Arc::new(Hub::default());
        let mut all = hub.subscribe::<8>(EventFilter::all());
        let mut small = hub.subscribe::<2>(EventFilter::name("A"));
        let gone = hub.subscribe::<2>(EventFilter::all());
        drop(gone);
        let batch: Vec<Event> = (0..5)
            .map(|n| ev(if n % 2 == 0 { "A" } else { "B" }, n))
            .collect();
        hub.publish(&batch, 0);
        assert_eq!(
            hub.lock().subscribers.len(),
            2,
            "dropped subscriptions are pruned"
        );
        assert_eq!(all.len(), 5);
        assert_eq!(all.lagged(), 0);
        // A: 0, 2, 4 into a queue of 2: the oldest went.
        assert_eq!(small.lagged(), 1);
        assert_eq!(small.try_next().unwrap().data().unwrap()["n"], 2);
        // Losses before the queues count too.
        hub.publish(&[], 3);
        assert_eq!(small.take_lagged(), 4);
        assert_eq!(small.take_lagged(), 0);
        assert_eq!(all.lagged(), 3);

        hub.set_cause(CloseCause::DriverDropped);
        hub.end_all();
        assert!(all.is_closed());
        let names: Vec<_> = std::iter::from_fn(|| all.try_next())
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            ["A", "B", "A", "B", "A"],
            "queued events stay readable"
        );
        assert!(futures_lite::future::block_on(all.next()).is_none());
        assert!(
            futures_lite::future::block_on(small.next())
                .unwrap()
                .data()
                .unwrap()["n"]
                == 4
        );
        assert!(futures_lite::future::block_on(small.next()).is_none());
        // Subscribing after the close gives an ended stream.
        let mut late = hub.subscribe::<4>(EventFilter::all());
        assert!(late.is_closed());
        assert!(futures_lite::future::block_on(late.next()).is_none());
        assert!(matches!(
            late.close_cause(),
            Some(CloseCause::DriverDropped)
        ));
    }
}
