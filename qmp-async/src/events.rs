//! Event fan-out: filters, subscriptions and the default queue.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use qmp_core::{Event, EventQueue};

use qmp_os::CloseCause;

use crate::hub::{Hub, Listening};

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

/// One subscriber's queue, as the hub and the subscriber share it.
pub(crate) struct Shared {
    filter: EventFilter,
    state: Mutex<State>,
}

struct State {
    queue: EventQueue,
    /// Losses that happened before the events reached this queue.
    missed: u64,
    missed_total: u64,
    waker: Option<Waker>,
    ended: bool,
    /// The subscriber let its queue stay full longer than the driver
    /// waits: from now on its oldest events are dropped, until it has read
    /// its queue empty.
    slow: bool,
    /// The driver, waiting for this subscriber to make room.
    driver: Option<Waker>,
    /// The queue's byte budget.
    max_bytes: usize,
}

impl State {
    /// Whether `size` more bytes fit without dropping anything.
    fn fits(&self, size: usize) -> bool {
        self.queue.len() < self.queue.capacity() && self.queue.bytes() + size <= self.max_bytes()
    }

    fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Whether the queue is at most half full, in events and in bytes.
    fn has_room(&self) -> bool {
        self.queue.len() <= self.queue.capacity() / 2 && self.queue.bytes() <= self.max_bytes() / 2
    }

    /// Takes the oldest event, waking the driver once there is room.
    fn pop(&mut self) -> Option<Event> {
        let event = self.queue.pop();
        if self.queue.is_empty() {
            self.slow = false;
        }
        if self.driver.is_some()
            && self.has_room()
            && let Some(driver) = self.driver.take()
        {
            driver.wake();
        }
        event
    }
}

impl Shared {
    pub(crate) fn new(filter: EventFilter, capacity: usize, max_bytes: usize, slow: bool) -> Self {
        Shared {
            filter,
            state: Mutex::new(State {
                queue: EventQueue::bounded(capacity, max_bytes),
                missed: 0,
                missed_total: 0,
                waker: None,
                ended: false,
                slow,
                driver: None,
                max_bytes,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn matches(&self, event: &Event) -> bool {
        self.filter.matches(event)
    }

    /// Whether offering an event of `size` bytes would drop an event this
    /// subscriber has not given up on reading.
    pub(crate) fn would_lose(&self, size: usize) -> bool {
        let s = self.lock();
        !s.slow && !s.ended && !s.fits(size)
    }

    pub(crate) fn offer(&self, event: Event) {
        let mut s = self.lock();
        s.queue.push(event);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    /// Events the subscriber never saw because the engine's own queue
    /// overflowed.
    pub(crate) fn missed(&self, n: u64) {
        let mut s = self.lock();
        s.missed += n;
        s.missed_total += n;
    }

    pub(crate) fn end(&self) {
        let mut s = self.lock();
        s.ended = true;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    /// Has `driver` woken once this subscriber has read enough to make
    /// room; `false` (and no wake) when there is room already.
    pub(crate) fn wait_for_room(&self, driver: &Waker) -> bool {
        let mut s = self.lock();
        if s.has_room() || s.slow || s.ended {
            s.driver = None;
            return false;
        }
        match &mut s.driver {
            Some(w) if w.will_wake(driver) => {}
            slot => *slot = Some(driver.clone()),
        }
        true
    }

    /// The driver waited long enough: the subscriber now loses its oldest
    /// events instead of holding the others up.
    pub(crate) fn give_up_on(&self) {
        let mut s = self.lock();
        s.slow = true;
        s.driver = None;
    }

    fn clear(&self) -> Vec<Event> {
        let mut s = self.lock();
        let events = s.queue.clear();
        s.slow = false;
        if let Some(driver) = s.driver.take() {
            driver.wake();
        }
        events
    }

    fn lagged(&self) -> u64 {
        let s = self.lock();
        s.queue.lagged_total() + s.missed_total
    }

    fn take_lagged(&self) -> u64 {
        let mut s = self.lock();
        s.queue.take_lagged() + std::mem::take(&mut s.missed)
    }

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let mut s = self.lock();
        if let Some(e) = s.pop() {
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

    fn describe(&self, f: &mut fmt::DebugStruct<'_, '_>) {
        let s = self.lock();
        f.field("filter", &self.filter)
            .field("capacity", &s.queue.capacity())
            .field("queued", &s.queue.len())
            .field("lagged", &(s.queue.lagged_total() + s.missed_total))
            .field("closed", &s.ended);
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Shared");
        self.describe(&mut d);
        d.finish()
    }
}

/// A stream of the events that pass one filter, from
/// [`Qmp::subscribe`](crate::Qmp::subscribe).
///
/// Events queue here (at most `N`, and at most
/// [`Options::max_queued_event_bytes`](qmp_os::Options::max_queued_event_bytes)
/// of them) until read. A subscriber that reads as fast as events come
/// loses none: when its queue fills, the driver waits for it to read
/// before it reads more from the socket. A subscriber that does not make
/// room within a quarter of a second is left behind instead: its oldest
/// events are dropped and counted ([`lagged`](Self::lagged)) until it has
/// read its queue empty, so it never holds up replies or other
/// subscribers for long. The stream ends (yields `None`) once the
/// connection has closed and every queued event was read. Read it with
/// [`futures_lite::StreamExt::next`] or any `Stream` combinator.
///
/// The queue grows as events arrive, up to `N`; an idle subscription
/// holds none.
pub struct Subscription<const N: usize = DEFAULT_SUBSCRIPTION_CAPACITY> {
    shared: Arc<Shared>,
    hub: Listening,
}

/// The methods every event queue a handle reads has.
macro_rules! queue_methods {
    () => {
        /// The oldest queued event, without waiting.
        pub fn try_next(&mut self) -> Option<Event> {
            self.shared.lock().pop()
        }

        /// Takes every queued event, oldest first, without waiting.
        pub fn clear(&mut self) -> Vec<Event> {
            self.shared.clear()
        }

        /// Events dropped so far because this queue fell behind.
        pub fn lagged(&self) -> u64 {
            self.shared.lagged()
        }

        /// Events dropped since the last call of this method.
        pub fn take_lagged(&mut self) -> u64 {
            self.shared.take_lagged()
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
    };
}

impl<const N: usize> Subscription<N> {
    queue_methods!();

    /// The filter.
    pub fn filter(&self) -> &EventFilter {
        &self.shared.filter
    }
}

impl<const N: usize> Stream for Subscription<N> {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.shared.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), None)
    }
}

impl<const N: usize> Drop for Subscription<N> {
    fn drop(&mut self) {
        // A driver waiting for this one to read would wait in vain.
        let mut s = self.shared.lock();
        s.slow = true;
        if let Some(driver) = s.driver.take() {
            driver.wake();
        }
    }
}

impl<const N: usize> fmt::Debug for Subscription<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Subscription");
        self.shared.describe(&mut d);
        d.finish()
    }
}

/// The connection's default queue, from [`Qmp::events`](crate::Qmp::events):
/// every event that no [`Subscription`] took when it arrived, those that
/// came before the session ran included. It is bounded by
/// [`Options::max_queued_events`](qmp_os::Options::max_queued_events) and
/// [`Options::max_queued_event_bytes`](qmp_os::Options::max_queued_event_bytes);
/// the oldest are dropped and counted when it is full (it never holds the
/// connection up). Every `Events` of a connection reads the same queue;
/// read it from one task at a time.
pub struct Events {
    shared: Arc<Shared>,
    hub: Listening,
}

impl Events {
    queue_methods!();
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.shared.poll_next(cx)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Events");
        self.shared.describe(&mut d);
        d.finish()
    }
}

impl<const N: usize> Subscription<N> {
    pub(crate) fn new(shared: Arc<Shared>, hub: Arc<Hub>) -> Self {
        Subscription {
            shared,
            hub: Listening::new(hub),
        }
    }
}

impl Events {
    pub(crate) fn new(shared: Arc<Shared>, hub: Arc<Hub>) -> Self {
        Events {
            shared,
            hub: Listening::new(hub),
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

    fn n(e: &Event) -> u64 {
        e.data().unwrap()["n"].as_u64().unwrap()
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
    fn a_full_subscriber_holds_events_back_until_given_up_on() {
        let hub = Arc::new(Hub::default());
        let all = hub.subscribe::<8>(EventFilter::all(), false);
        let mut small = hub.subscribe::<2>(EventFilter::name("A"), false);
        let gone = hub.subscribe::<2>(EventFilter::all(), false);
        drop(gone);
        let mut events = hub.events();
        hub.publish(ev("A", 0), false).unwrap();
        hub.publish(ev("B", 1), false).unwrap();
        hub.publish(ev("A", 2), false).unwrap();
        assert_eq!(hub.subscribers(), 2, "dropped subscriptions are pruned");
        // The small one is full: the next A waits for it, nobody has it.
        let (held, sub) = hub.publish(ev("A", 3), false).unwrap_err();
        let waker = futures_lite::future::block_on(futures_lite::future::poll_fn(|cx| {
            Poll::Ready(cx.waker().clone())
        }));
        assert!(sub.wait_for_room(&waker));
        assert_eq!(all.len(), 3);
        assert_eq!(n(&small.try_next().unwrap()), 0);
        // Reading made room: the driver need not wait any more.
        assert!(!sub.wait_for_room(&waker));
        hub.publish(held, false).unwrap();
        hub.publish(ev("A", 4), false).unwrap_err();
        sub.give_up_on();
        hub.publish(ev("A", 4), false).unwrap();
        assert_eq!(small.lagged(), 1, "the oldest went");
        assert_eq!(small.clear().iter().map(n).collect::<Vec<_>>(), [3, 4]);
        // Events nobody subscribed to wait in the default queue.
        hub.publish(ev("B", 5), true).unwrap();
        assert_eq!(all.len(), 6);
        assert!(events.is_empty());
        drop(all);
        hub.publish(ev("B", 6), true).unwrap();
        assert_eq!(n(&events.try_next().unwrap()), 6);
        hub.missed(3);
        assert_eq!(small.take_lagged(), 4);
        assert_eq!(small.take_lagged(), 0);
    }

    #[test]
    fn closing_ends_streams_after_their_queued_events() {
        let hub = Arc::new(Hub::default());
        let mut all = hub.subscribe::<8>(EventFilter::all(), false);
        hub.publish(ev("A", 0), false).unwrap();
        hub.publish(ev("B", 1), false).unwrap();
        hub.set_cause(CloseCause::DriverDropped);
        hub.end_all();
        assert!(all.is_closed());
        let names: Vec<_> = std::iter::from_fn(|| all.try_next())
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["A", "B"], "queued events stay readable");
        assert!(futures_lite::future::block_on(all.next()).is_none());
        // Subscribing after the close gives an ended stream.
        let mut late = hub.subscribe::<4>(EventFilter::all(), false);
        assert!(late.is_closed());
        assert!(futures_lite::future::block_on(late.next()).is_none());
        assert!(matches!(
            late.close_cause(),
            Some(CloseCause::DriverDropped)
        ));
    }

    #[test]
    fn the_history_replays_into_new_subscriptions() {
        let limits = crate::hub::Limits {
            history: (2, usize::MAX),
            ..Default::default()
        };
        let hub = Arc::new(Hub::new(limits));
        for i in 0..3 {
            hub.publish(ev(if i == 1 { "B" } else { "A" }, i), false)
                .unwrap();
        }
        assert_eq!(hub.history().iter().map(n).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(hub.happened(&"A".into()).map(|e| n(&e)), Some(2));
        assert!(hub.happened(&"C".into()).is_none());
        let mut b = hub.subscribe::<4>("B".into(), true);
        assert_eq!(b.clear().iter().map(n).collect::<Vec<_>>(), [1]);
    }
}
