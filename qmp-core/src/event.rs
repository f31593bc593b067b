//! Asynchronous events and the bounded queue that holds them.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use core::fmt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::command::EventData;
use crate::reply::decode_text;

/// When the server says an event happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Seconds since the Unix epoch (-1 when the server could not tell).
    pub seconds: i64,
    /// Microseconds within the second.
    pub microseconds: i64,
}

/// An event: `{"event": NAME, "data": {...}, "timestamp": {...}}`.
///
/// Names are an open set: a newer QEMU's events arrive like any other.
/// The `data` member is kept as the JSON text received, so a queued event
/// costs its size; it is decoded when asked for, typed with
/// [`decode`](Self::decode) or untyped with [`data`](Self::data).
#[derive(Clone, Debug)]
pub struct Event {
    /// The event name, e.g. `STOP`.
    pub name: String,
    /// The `data` member as received; `None` when absent or `null`.
    data: Option<Box<RawValue>>,
    /// The `timestamp` member, when present and well formed.
    pub timestamp: Option<Timestamp>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.data_text() == other.data_text()
            && self.timestamp == other.timestamp
    }
}

impl Event {
    /// An event named `name` with `data` (`Null` for none) and no
    /// timestamp, e.g. for tests.
    pub fn new(name: impl Into<String>, data: &Value) -> Self {
        let data = match data {
            Value::Null => None,
            // Encoding a `Value` cannot fail.
            data => serde_json::value::to_raw_value(data).ok(),
        };
        Event {
            name: name.into(),
            data,
            timestamp: None,
        }
    }

    /// An event from its members as received.
    pub(crate) fn received(
        name: String,
        data: Option<Box<RawValue>>,
        timestamp: Option<Timestamp>,
    ) -> Self {
        let data = data.filter(|d| d.get() != "null");
        Event {
            name,
            data,
            timestamp,
        }
    }

    /// The memory this event takes: its name, the text of its data, and
    /// the event itself. What the event queues' byte budgets count.
    pub fn size(&self) -> usize {
        core::mem::size_of::<Event>() + self.name.len() + self.data_text().map_or(0, str::len)
    }

    /// The `data` member as the JSON text received, `None` when absent.
    pub fn data_text(&self) -> Option<&str> {
        self.data.as_deref().map(RawValue::get)
    }

    /// Decodes the `data` member as a `serde_json::Value` (`Null` when
    /// absent). It fails only for data nested deeper than serde_json's
    /// 128 levels; events too large to decode never reach a queue.
    pub fn data(&self) -> Result<Value, EventDecodeError> {
        match self.data_text() {
            None => Ok(Value::Null),
            Some(text) => decode_text(text).map_err(|e| EventDecodeError::Data {
                event: "(untyped)",
                detail: e.to_string(),
            }),
        }
    }

    /// Decodes the `data` of this event as `T`, straight from its text,
    /// after checking that the event is `T`'s. An event without `data`
    /// decodes as an empty object, and members `T` does not know are
    /// ignored (as `T`'s derive allows).
    pub fn decode<T: EventData>(&self) -> Result<T, EventDecodeError> {
        if self.name != T::NAME {
            return Err(EventDecodeError::OtherEvent {
                expected: T::NAME,
                found: self.name.clone(),
            });
        }
        decode_text(self.data_text().unwrap_or("{}")).map_err(|e| EventDecodeError::Data {
            event: T::NAME,
            detail: e.to_string(),
        })
    }

    /// Whether this event is `T`'s (by name).
    pub fn is<T: EventData>(&self) -> bool {
        self.name == T::NAME
    }

    /// The event as QEMU would send it, e.g. for printing. Data that
    /// cannot be decoded (see [`data`](Self::data)) shows as `null`.
    pub fn to_value(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert("event".into(), Value::String(self.name.clone()));
        if self.data.is_some() {
            map.insert("data".into(), self.data().unwrap_or(Value::Null));
        }
        if let Some(ts) = self.timestamp {
            map.insert(
                "timestamp".into(),
                serde_json::json!({"seconds": ts.seconds, "microseconds": ts.microseconds}),
            );
        }
        Value::Object(map)
    }
}

/// Why [`Event::decode`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventDecodeError {
    /// The event is another one than the type asked for.
    OtherEvent {
        /// The name the type stands for.
        expected: &'static str,
        /// The event's name.
        found: String,
    },
    /// The event is the right one but its `data` does not fit the type.
    Data {
        /// The event's name.
        event: &'static str,
        /// What serde reported.
        detail: String,
    },
}

impl fmt::Display for EventDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventDecodeError::OtherEvent { expected, found } => {
                write!(f, "expected event `{expected}`, got `{found}`")
            }
            EventDecodeError::Data { event, detail } => {
                write!(f, "event `{event}`: its data does not decode: {detail}")
            }
        }
    }
}

impl core::error::Error for EventDecodeError {}

/// A bounded FIFO of events that drops the oldest when full and counts
/// what it dropped, so a slow consumer learns how much it missed and
/// memory never grows with the event rate. It is bounded twice: in events,
/// and in the bytes they take as received ([`Event::size`]).
#[derive(Debug, Default)]
pub struct EventQueue {
    events: VecDeque<(Event, usize)>,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    lagged: u64,
    lagged_total: u64,
}

impl EventQueue {
    /// An empty queue holding at most `capacity` events, of any size.
    pub const fn new(capacity: usize) -> Self {
        EventQueue::bounded(capacity, usize::MAX)
    }

    /// An empty queue holding at most `capacity` events and `max_bytes`
    /// of them.
    pub const fn bounded(capacity: usize, max_bytes: usize) -> Self {
        EventQueue {
            events: VecDeque::new(),
            capacity,
            max_bytes,
            bytes: 0,
            lagged: 0,
            lagged_total: 0,
        }
    }

    /// Appends `event`, dropping the oldest ones while the queue would hold
    /// too many or too many bytes. An event larger than the whole byte
    /// budget is dropped itself.
    pub fn push(&mut self, event: Event) {
        let size = event.size();
        if self.capacity == 0 || size > self.max_bytes {
            self.lose(1);
            return;
        }
        while self.events.len() >= self.capacity || self.bytes + size > self.max_bytes {
            self.pop();
            self.lose(1);
        }
        self.bytes += size;
        self.events.push_back((event, size));
    }

    fn lose(&mut self, n: u64) {
        self.lagged += n;
        self.lagged_total += n;
    }

    /// Takes the oldest event.
    pub fn pop(&mut self) -> Option<Event> {
        let (event, size) = self.events.pop_front()?;
        self.bytes -= size;
        Some(event)
    }

    /// Takes the first event for which `matches` holds, keeping the others
    /// in order.
    pub fn take_first(&mut self, mut matches: impl FnMut(&Event) -> bool) -> Option<Event> {
        let pos = self.events.iter().position(|(e, _)| matches(e))?;
        let (event, size) = self.events.remove(pos)?;
        self.bytes -= size;
        Some(event)
    }

    /// Takes every waiting event, oldest first.
    pub fn clear(&mut self) -> alloc::vec::Vec<Event> {
        self.bytes = 0;
        self.events.drain(..).map(|(e, _)| e).collect()
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// The bytes the waiting events take.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The most events it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes how many events it holds, dropping (and counting) the
    /// oldest when it now holds too many.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.events.len() > capacity {
            self.pop();
            self.lose(1);
        }
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Iterates over the waiting events, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().map(|(e, _)| e)
    }

    /// How many events were dropped since the last call, resetting the count.
    pub fn take_lagged(&mut self) -> u64 {
        core::mem::take(&mut self.lagged)
    }

    /// How many events were dropped in all.
    pub fn lagged_total(&self) -> u64 {
        self.lagged_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;

    fn ev(i: usize) -> Event {
        Event::new(format!("E{i}"), &Value::Null)
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct JobDone {
        id: String,
        #[serde(default)]
        len: Option<u64>,
    }

    impl EventData for JobDone {
        const NAME: &'static str = "JOB_DONE";
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Stop {}

    impl EventData for Stop {
        const NAME: &'static str = "STOP";
    }

    fn named(name: &str, data: Value) -> Event {
        Event::new(name, &data)
    }

    #[test]
    fn decode_checks_the_name_and_ignores_unknown_members() {
        let ev = named("JOB_DONE", serde_json::json!({"id": "j0", "new": [1]}));
        assert!(ev.is::<JobDone>());
        assert_eq!(
            ev.decode::<JobDone>().unwrap(),
            JobDone {
                id: "j0".into(),
                len: None
            }
        );
        let err = ev.decode::<Stop>().unwrap_err();
        assert_eq!(
            err,
            EventDecodeError::OtherEvent {
                expected: "STOP",
                found: "JOB_DONE".into()
            }
        );
        assert!(err.to_string().contains("`STOP`"), "{err}");
    }

    #[test]
    fn decode_reports_bad_data_and_accepts_missing_data() {
        let err = named("JOB_DONE", serde_json::json!({"len": 3}))
            .decode::<JobDone>()
            .unwrap_err();
        assert!(
            matches!(&err, EventDecodeError::Data { event: "JOB_DONE", detail } if detail.contains("id")),
            "{err:?}"
        );
        assert_eq!(
            named("STOP", Value::Null).decode::<Stop>().unwrap(),
            Stop {}
        );
        assert_eq!(
            named("STOP", serde_json::json!({}))
                .decode::<Stop>()
                .unwrap(),
            Stop {}
        );
    }

    #[test]
    fn data_is_the_text_received_decoded_on_demand() {
        let ev = named("JOB_DONE", serde_json::json!({"id": "j0", "n": [1, 2]}));
        assert_eq!(ev.data_text(), Some(r#"{"id":"j0","n":[1,2]}"#));
        assert_eq!(ev.data().unwrap()["n"][1], 2);
        assert_eq!(ev.size(), core::mem::size_of::<Event>() + 8 + 21);
        let none = named("STOP", Value::Null);
        assert_eq!(
            (none.data_text(), none.data().unwrap()),
            (None, Value::Null)
        );
        let deep = alloc::format!("{}{}", "[".repeat(200), "]".repeat(200));
        let deep = Event::received("X".into(), RawValue::from_string(deep).ok(), None);
        assert!(deep.data().is_err(), "too deep for a Value, yet queued");
        assert_eq!(deep.to_value()["data"], Value::Null);
    }

    #[test]
    fn a_byte_budget_drops_the_oldest_and_refuses_the_oversized() {
        let big = |i: usize| Event::new(format!("B{i}"), &Value::String("x".repeat(1000)));
        let one = big(0).size();
        let mut q = EventQueue::bounded(100, 3 * one);
        for i in 0..5 {
            q.push(big(i));
        }
        assert_eq!(q.len(), 3);
        assert!(q.bytes() <= 3 * one);
        assert_eq!(q.take_lagged(), 2);
        assert_eq!(q.pop().unwrap().name, "B2");
        q.push(Event::new("HUGE", &Value::String("x".repeat(10 * one))));
        assert_eq!(q.len(), 2, "too large for the whole budget: dropped alone");
        assert_eq!(q.take_lagged(), 1);
        q.clear();
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn drops_oldest_and_counts() {
        let mut q = EventQueue::new(3);
        for i in 0..5 {
            q.push(ev(i));
        }
        assert_eq!(q.take_lagged(), 2);
        assert_eq!(q.take_lagged(), 0);
        assert_eq!(q.lagged_total(), 2);
        let names: Vec<_> = core::iter::from_fn(|| q.pop()).map(|e| e.name).collect();
        assert_eq!(names, ["E2", "E3", "E4"]);
    }

    #[test]
    fn take_first_keeps_the_rest_in_order() {
        let mut q = EventQueue::new(4);
        for i in 0..4 {
            q.push(ev(i));
        }
        assert_eq!(q.take_first(|e| e.name == "E2").unwrap().name, "E2");
        assert!(q.take_first(|e| e.name == "nope").is_none());
        let names: Vec<_> = q.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["E0", "E1", "E3"]);
    }
}
