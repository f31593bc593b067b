//! The table of requests not yet ended: where a reply finds its request,
//! and which queued request may be written next.
//!
//! The table owns its counters: every change of a request's state goes
//! through one method here, so "in flight" and "queued" cannot drift from
//! what the table holds.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::collections::{BinaryHeap, VecDeque};
use alloc::vec::Vec;
use core::cmp::Reverse;

use crate::request::close_request;
use crate::time::Instant;
use serde_json::Value;

/// Where one request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Waiting inside the engine; not yet in the transmit queue.
    Queued,
    /// In the transmit queue or on the wire; a reply is due.
    Sent,
    /// Its caller gave up (timeout, cancel, close) after it was sent; the
    /// reply, if it comes, is dropped. It still holds a server queue slot.
    Abandoned,
}

/// One request the engine still tracks.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Its handle ([`RequestId`](crate::RequestId)): ids only grow.
    pub(crate) id: u64,
    /// The engine writes its `id` when it sends it: `bytes` then lack the
    /// id and the closing brace.
    pub(crate) numbered: bool,
    /// The `id` it carries on the wire, once sent (numbered ones only).
    pub(crate) wire: Option<u64>,
    /// The command, for the errors that answer it.
    pub(crate) name: Cow<'static, str>,
    /// A raw request (its whole reply is its result): the id its caller
    /// chose, `Null` when the engine numbered it.
    pub(crate) raw: Option<Box<Value>>,
    pub(crate) state: State,
    pub(crate) deadline: Option<Instant>,
    pub(crate) oob: bool,
    pub(crate) no_reply: bool,
    /// `quit`: the server closing the connection counts as success.
    pub(crate) eof_ok: bool,
    /// It carries file descriptors.
    pub(crate) fds: bool,
    /// An in-band reply to a later request came: QEMU runs in-band
    /// commands in order, so this one has run and its descriptors are
    /// consumed even if its own (abandoned) reply has not arrived.
    pub(crate) ran: bool,
    /// The encoded request while queued.
    pub(crate) bytes: Vec<u8>,
    /// Where its last byte is in the stream of bytes written, once it is
    /// in the transmit queue: no server can answer it before reading that
    /// far (its id comes last).
    pub(crate) ends_at: u64,
}

impl Pending {
    /// Whether it occupies one of the server's in-band queue slots.
    fn holds_slot(&self) -> bool {
        !self.oob && !self.no_reply && self.state != State::Queued
    }

    /// Whether its descriptors may still be waiting in the server.
    fn fds_unconsumed(&self) -> bool {
        self.fds && self.state != State::Queued && !self.ran
    }
}

/// The `id`s on the wire: each written request gets the smallest number
/// that no other request still holds, so ids stay one or two digits long
/// (QEMU reads requests a byte at a time: a digit is CPU time). A number
/// is free again once its reply came; a request let go before then
/// (written without waiting for a reply, or forgotten by a resync)
/// retires its number and every one below it for good, so a reply can
/// never reach a later request by mistake.
#[derive(Debug)]
struct WireIds {
    /// `(wire id, handle)` of every request holding one, by wire id; a
    /// deque, as the smallest is most often the one to go.
    held: VecDeque<(u64, u64)>,
    /// The smallest number that may be handed out.
    floor: u64,
}

impl WireIds {
    /// Hands the smallest free number at or above the floor to `id`.
    fn take(&mut self, id: u64) -> u64 {
        let first = self.held.partition_point(|&(w, _)| w < self.floor);
        // The numbers held from the floor up are distinct and sorted, so
        // the `k`th of them is `floor + k` up to the first gap and larger
        // after it: the gap is found by bisection, not by a walk.
        let (mut lo, mut hi) = (first, self.held.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.held[mid].0 == self.floor + (mid - first) as u64 {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let wire = self.floor + (lo - first) as u64;
        self.held.insert(lo, (wire, id));
        wire
    }

    fn position(&self, wire: u64) -> Option<usize> {
        self.held.binary_search_by_key(&wire, |&(w, _)| w).ok()
    }

    /// The handle of the request holding `wire`.
    fn holder(&self, wire: u64) -> Option<u64> {
        Some(self.held.get(self.position(wire)?)?.1)
    }

    /// Frees `wire`, or with `retire` makes sure no request gets it again.
    fn release(&mut self, wire: u64, retire: bool) {
        if let Some(i) = self.position(wire) {
            self.held.remove(i);
        }
        if retire {
            self.floor = self.floor.max(wire.saturating_add(1));
        }
    }
}

/// What [`RequestTable::cancel`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// Nothing open under that id.
    NotOpen,
    /// It had not been sent: it never will be.
    Unsent,
    /// It was sent; its reply will be dropped. `reply_due` when the server
    /// will still answer it.
    Sent { reply_due: bool },
}

/// Open requests in id order, with their counters.
///
/// Lookups by id are binary searches (ids only grow), and deadlines sit in
/// a min-heap, so a table holding tens of thousands of queued requests
/// costs a logarithm per reply and per deadline, not a scan.
#[derive(Debug)]
pub(crate) struct RequestTable {
    items: VecDeque<Pending>,
    /// No request before this index is queued: where the search for the
    /// next one to send starts, so that sending stays constant time
    /// however many requests are on the wire.
    unqueued: usize,
    wires: WireIds,
    /// `(deadline, id)` of waiting requests. Entries of requests that
    /// ended or changed deadline are dropped lazily: the top is always
    /// current, and the heap is rebuilt when stale entries pile up.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    capacity: usize,
    in_flight: usize,
    queued: usize,
    /// Requests with descriptors in the table.
    with_fds: usize,
    /// Raw requests in the table.
    raw: usize,
}

impl RequestTable {
    /// A table of up to `capacity` requests whose wire ids start at
    /// `first_wire`.
    pub(crate) fn new(capacity: usize, first_wire: u64) -> Self {
        RequestTable {
            items: VecDeque::new(),
            unqueued: 0,
            wires: WireIds {
                held: VecDeque::new(),
                floor: first_wire,
            },
            deadlines: BinaryHeap::new(),
            capacity,
            in_flight: 0,
            queued: 0,
            with_fds: 0,
            raw: 0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= self.capacity
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Adds a new, queued request (ids only grow, so order is kept).
    pub(crate) fn push(&mut self, p: Pending) {
        debug_assert_eq!(p.state, State::Queued);
        self.queued += 1;
        self.with_fds += usize::from(p.fds);
        self.raw += usize::from(p.raw.is_some());
        if let Some(d) = p.deadline {
            self.deadlines.push(Reverse((d, p.id)));
            if self.deadlines.len() > 2 * self.items.len() + 64 {
                self.rebuild_deadlines();
            }
        }
        self.items.push_back(p);
    }

    fn rebuild_deadlines(&mut self) {
        self.deadlines = self
            .items
            .iter()
            .filter_map(|p| Some(Reverse((p.deadline?, p.id))))
            .collect();
    }

    /// Drops heap entries that no longer describe a waiting request, so
    /// that the top is current.
    fn tidy(&mut self) {
        while let Some(&Reverse((d, id))) = self.deadlines.peek() {
            let current = self
                .position(id)
                .and_then(|i| self.items.get(i))
                .is_some_and(|p| p.deadline == Some(d));
            if current {
                break;
            }
            self.deadlines.pop();
        }
    }

    pub(crate) fn get(&self, index: usize) -> Option<&Pending> {
        self.items.get(index)
    }

    fn position(&self, id: u64) -> Option<usize> {
        self.items.binary_search_by_key(&id, |p| p.id).ok()
    }

    /// Whether `id` is open and its caller still waits.
    pub(crate) fn is_live(&self, id: u64) -> bool {
        self.position(id)
            .and_then(|i| self.items.get(i))
            .is_some_and(|p| p.state != State::Abandoned)
    }

    /// The handle of the sent request whose wire id is `wire`.
    pub(crate) fn by_wire(&self, wire: u64) -> Option<u64> {
        self.wires.holder(wire)
    }

    /// The wire id of the request `id`, once sent.
    pub(crate) fn wire_of(&self, id: u64) -> Option<u64> {
        self.items.get(self.position(id)?)?.wire
    }

    /// Moves the queued request at `index` to `Sent`, numbering it, and
    /// hands its bytes out for the transmit queue.
    pub(crate) fn mark_sent(&mut self, index: usize) -> Option<(u64, Vec<u8>, bool, bool)> {
        let p = self.items.get_mut(index)?;
        if p.state != State::Queued {
            return None;
        }
        if p.numbered {
            let wire = self.wires.take(p.id);
            close_request(Some(wire), &mut p.bytes);
            p.wire = Some(wire);
        }
        p.state = State::Sent;
        self.queued -= 1;
        if p.holds_slot() {
            self.in_flight += 1;
        }
        Some((p.id, core::mem::take(&mut p.bytes), p.fds, p.no_reply))
    }

    /// Records where the request at `index` ends in the stream written.
    pub(crate) fn set_ends_at(&mut self, index: usize, at: u64) {
        if let Some(p) = self.items.get_mut(index) {
            p.ends_at = at;
        }
    }

    /// Removes the request at `index`, keeping the counters right. Its
    /// wire id is freed when its reply came, else retired.
    fn remove_at(&mut self, index: usize, answered: bool) -> Option<Pending> {
        let p = self.items.remove(index)?;
        if index < self.unqueued {
            self.unqueued -= 1;
        }
        if let Some(wire) = p.wire {
            self.wires.release(wire, !answered);
        }
        match p.state {
            State::Queued => self.queued -= 1,
            _ if p.holds_slot() => self.in_flight -= 1,
            _ => {}
        }
        self.with_fds -= usize::from(p.fds);
        self.raw -= usize::from(p.raw.is_some());
        Some(p)
    }

    /// Takes the sent (or abandoned) request a reply with `id` answers,
    /// `written` bytes being reported written so far. A reply that came
    /// before the request's last byte was reported written retires its
    /// wire id rather than freeing it: the report may simply be late (a
    /// completion-based driver can see the read complete first), but the
    /// reply may also be a peer's guess, and the server's answer to the
    /// bytes still to come must then reach nobody. An in-band reply also
    /// proves every earlier in-band request ran.
    pub(crate) fn take_answered(&mut self, id: u64, written: u64) -> Option<Pending> {
        let index = self
            .position(id)
            .filter(|&i| self.items.get(i).is_some_and(|p| p.state != State::Queued))?;
        let wholly_written = self.items.get(index)?.ends_at <= written;
        let p = self.remove_at(index, wholly_written)?;
        if !p.oob && self.with_fds > 0 {
            for q in self.items.iter_mut().take_while(|q| q.id < id) {
                if !q.oob && q.state != State::Queued {
                    q.ran = true;
                }
            }
        }
        self.tidy();
        Some(p)
    }

    /// The id of the open raw request whose caller chose `id`.
    pub(crate) fn raw_with(&self, id: &Value) -> Option<u64> {
        self.items
            .iter()
            .find(|p| p.raw.as_deref() == Some(id))
            .map(|p| p.id)
    }

    /// Whether any raw request is open (its reply must be decoded whole).
    pub(crate) fn has_raw(&self) -> bool {
        self.raw > 0
    }

    /// Takes a request the server never answers once its bytes are written.
    pub(crate) fn take_written(&mut self, id: u64) -> Option<Pending> {
        let index = self.position(id)?;
        let p = self.remove_at(index, false);
        self.tidy();
        p
    }

    /// Gives up on `id` without an output for it.
    pub(crate) fn cancel(&mut self, id: u64) -> Cancelled {
        let Some(index) = self.position(id) else {
            return Cancelled::NotOpen;
        };
        let Some(p) = self.items.get_mut(index) else {
            return Cancelled::NotOpen;
        };
        let outcome = match p.state {
            State::Queued => {
                self.remove_at(index, false);
                Cancelled::Unsent
            }
            State::Sent => {
                p.state = State::Abandoned;
                p.deadline = None;
                Cancelled::Sent {
                    reply_due: !p.no_reply,
                }
            }
            State::Abandoned => Cancelled::NotOpen,
        };
        self.tidy();
        outcome
    }

    /// Ends every request whose deadline is at or before `now`: queued
    /// ones leave the table, sent ones are abandoned. `ended` hears each
    /// id with whether the server may still answer it.
    pub(crate) fn expire(&mut self, now: Instant, mut ended: impl FnMut(u64, bool)) {
        while let Some(&Reverse((d, id))) = self.deadlines.peek() {
            if d > now {
                break;
            }
            self.deadlines.pop();
            let Some(index) = self.position(id) else {
                continue;
            };
            let Some(p) = self.items.get_mut(index).filter(|p| p.deadline == Some(d)) else {
                continue;
            };
            p.deadline = None;
            match p.state {
                State::Queued => {
                    self.remove_at(index, false);
                    ended(id, false);
                }
                State::Sent => {
                    p.state = State::Abandoned;
                    ended(id, !p.no_reply);
                }
                State::Abandoned => {}
            }
        }
        self.tidy();
    }

    /// The earliest deadline of a request whose caller still waits.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|r| r.0.0)
    }

    /// Whether the queued request at `index` may go on the wire now.
    ///
    /// QEMU stops reading once its in-band queue is full, and keeps only
    /// the descriptors of the latest message that carried any: a second
    /// set sent before the first command ran would replace the first. So
    /// one request with descriptors at a time.
    pub(crate) fn may_send(&self, index: usize, max_in_flight: usize) -> bool {
        let Some(p) = self.items.get(index) else {
            return false;
        };
        if !p.oob && !p.no_reply && self.in_flight >= max_in_flight {
            return false;
        }
        !(p.fds && self.with_fds > 1 && self.items.iter().any(Pending::fds_unconsumed))
    }

    /// The index of the first queued request, if any may be considered.
    pub(crate) fn first_queued(&mut self) -> Option<usize> {
        if self.queued == 0 {
            return None;
        }
        let start = self.unqueued.min(self.items.len());
        let found = start
            + self
                .items
                .range(start..)
                .position(|p| p.state == State::Queued)?;
        self.unqueued = found;
        Some(found)
    }

    /// Whether a request the server will still answer is on the wire with
    /// a caller waiting for it.
    pub(crate) fn live_reply_due(&self) -> bool {
        self.items
            .iter()
            .any(|p| p.state == State::Sent && !p.no_reply)
    }

    /// Whether any sent request (abandoned or not) still expects a reply.
    pub(crate) fn any_reply_due(&self) -> bool {
        self.items
            .iter()
            .any(|p| p.state != State::Queued && !p.no_reply)
    }

    /// Forgets abandoned requests: a guest agent resync discards their
    /// replies with everything else before its delimiter.
    pub(crate) fn forget_abandoned(&mut self) {
        let mut i = 0;
        while let Some(p) = self.items.get(i) {
            if p.state == State::Abandoned {
                self.remove_at(i, false);
            } else {
                i += 1;
            }
        }
        self.tidy();
    }

    /// Abandons every sent request and removes the queued ones; `ended`
    /// hears each request whose caller was still waiting, with whether it
    /// was sent.
    pub(crate) fn abandon_all(&mut self, mut ended: impl FnMut(&Pending)) {
        let mut i = 0;
        while let Some(p) = self.items.get_mut(i) {
            match p.state {
                State::Queued => {
                    if let Some(p) = self.remove_at(i, false) {
                        ended(&p);
                    }
                    continue;
                }
                State::Sent => {
                    ended(p);
                    p.state = State::Abandoned;
                    p.deadline = None;
                }
                State::Abandoned => {}
            }
            i += 1;
        }
        self.tidy();
    }

    /// Empties the table, handing out each request.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Pending> + '_ {
        self.deadlines.clear();
        self.raw = 0;
        self.in_flight = 0;
        self.queued = 0;
        self.with_fds = 0;
        self.wires.held.clear();
        self.unqueued = 0;
        self.items.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: u64, fds: bool) -> Pending {
        Pending {
            id,
            numbered: false,
            wire: None,
            name: Cow::Borrowed("test"),
            raw: None,
            state: State::Queued,
            deadline: None,
            oob: false,
            no_reply: false,
            eof_ok: false,
            fds,
            ran: false,
            bytes: Vec::new(),
            ends_at: 0,
        }
    }

    #[test]
    fn counters_follow_every_transition() {
        let mut t = RequestTable::new(8, 1);
        for id in 1..=3 {
            t.push(pending(id, false));
        }
        assert_eq!((t.queued(), t.in_flight()), (3, 0));
        t.mark_sent(0);
        t.mark_sent(1);
        assert_eq!((t.queued(), t.in_flight()), (1, 2));
        assert_eq!(t.cancel(2), Cancelled::Sent { reply_due: true });
        assert_eq!(
            t.in_flight(),
            2,
            "an abandoned request still holds its slot"
        );
        assert!(t.take_answered(2, u64::MAX).is_some());
        assert_eq!(t.cancel(3), Cancelled::Unsent);
        assert_eq!((t.queued(), t.in_flight(), t.len()), (0, 1, 1));
        t.drain().for_each(drop);
        assert_eq!((t.queued(), t.in_flight(), t.len()), (0, 0, 0));
    }

    #[test]
    fn one_set_of_descriptors_until_a_later_reply_proves_it_ran() {
        let mut t = RequestTable::new(8, 1);
        t.push(pending(1, true));
        t.push(pending(2, false));
        t.push(pending(3, true));
        t.mark_sent(0);
        t.mark_sent(1);
        assert!(!t.may_send(2, 8));
        // The first call's caller gave up; its reply may never come, but
        // the answer to the call after it shows it ran.
        t.cancel(1);
        assert!(!t.may_send(2, 8));
        assert!(t.take_answered(2, u64::MAX).is_some());
        assert!(t.may_send(1, 8));
    }

    #[test]
    fn wire_ids_fill_the_first_gap_above_the_floor() {
        let mut ids = WireIds {
            held: VecDeque::new(),
            floor: 1,
        };
        // Number 1..=40, free every third, retire below 10, then hand out
        // more: each must be the smallest free number at or above the floor,
        // as a walk over all numbers finds it.
        for id in 0..40 {
            assert_eq!(ids.take(id), id + 1);
        }
        for wire in (3..=40).step_by(3) {
            ids.release(wire, false);
        }
        ids.release(4, true);
        for id in 100..130 {
            let expected = (ids.floor..).find(|w| ids.position(*w).is_none()).unwrap();
            assert_eq!(ids.take(id), expected);
            assert!(expected > 4);
        }
        let wires: Vec<u64> = ids.held.iter().map(|&(w, _)| w).collect();
        assert!(wires.windows(2).all(|w| w[0] < w[1]), "{wires:?}");
    }

    #[test]
    fn the_next_request_to_send_is_found_after_removals() {
        let mut t = RequestTable::new(64, 1);
        for id in 1..=10 {
            t.push(pending(id, false));
        }
        for _ in 0..6 {
            let i = t.first_queued().unwrap();
            t.mark_sent(i);
        }
        assert_eq!(t.first_queued(), Some(6));
        // Removing sent requests before it moves it down.
        assert!(t.take_answered(1, u64::MAX).is_some());
        assert!(t.take_answered(4, u64::MAX).is_some());
        assert_eq!(t.first_queued(), Some(4));
        // So does removing queued ones, and it is found past them.
        assert_eq!(t.cancel(7), Cancelled::Unsent);
        let next = t.first_queued().unwrap();
        assert_eq!(t.get(next).unwrap().id, 8);
        t.push(pending(11, false));
        while let Some(i) = t.first_queued() {
            t.mark_sent(i);
        }
        assert_eq!(t.queued(), 0);
        t.drain().for_each(drop);
        t.push(pending(12, false));
        assert_eq!(t.first_queued(), Some(0));
    }
}
