//! Asynchronous events and the bounded queue that holds them.

use alloc::collections::VecDeque;
use alloc::string::String;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The event name, e.g. `STOP`.
    pub name: String,
    /// The `data` member, or `Null` when the event has none.
    pub data: Value,
    /// The `timestamp` member, when present and well formed.
    pub timestamp: Option<Timestamp>,
}

impl Event {
    /// The event as QEMU would send it, e.g. for printing.
    pub fn to_value(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert("event".into(), Value::String(self.name.clone()));
        if !self.data.is_null() {
            map.insert("data".into(), self.data.clone());
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

/// A bounded FIFO of events that drops the oldest when full and counts
/// what it dropped, so a slow consumer learns how much it missed and
/// memory never grows with the event rate.
#[derive(Debug, Default)]
pub struct EventQueue {
    events: VecDeque<Event>,
    capacity: usize,
    lagged: u64,
    lagged_total: u64,
}

impl EventQueue {
    /// An empty queue holding at most `capacity` events.
    pub const fn new(capacity: usize) -> Self {
        EventQueue {
            events: VecDeque::new(),
            capacity,
            lagged: 0,
            lagged_total: 0,
        }
    }

    /// Appends `event`, dropping the oldest one when the queue is full.
    pub fn push(&mut self, event: Event) {
        if self.capacity == 0 {
            self.lagged += 1;
            self.lagged_total += 1;
            return;
        }
        if self.events.len() >= self.capacity {
            self.events.pop_front();
            self.lagged += 1;
            self.lagged_total += 1;
        }
        self.events.push_back(event);
    }

    /// Takes the oldest event.
    pub fn pop(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Takes the first event for which `matches` holds, keeping the others
    /// in order.
    pub fn take_first(&mut self, mut matches: impl FnMut(&Event) -> bool) -> Option<Event> {
        let pos = self.events.iter().position(&mut matches)?;
        self.events.remove(pos)
    }

    /// Takes every waiting event, oldest first.
    pub fn clear(&mut self) -> alloc::vec::Vec<Event> {
        self.events.drain(..).collect()
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.events.len()
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
            self.events.pop_front();
            self.lagged += 1;
            self.lagged_total += 1;
        }
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Iterates over the waiting events, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
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
        Event {
            name: format!("E{i}"),
            data: Value::Null,
            timestamp: None,
        }
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
