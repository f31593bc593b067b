//! The bytes waiting to be written, and the marks that say where a request
//! with file descriptors starts and where a request that gets no reply ends.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::request::RequestId;

/// Bytes for the driver to write, from [`Client::poll_transmit`](crate::Client::poll_transmit).
#[derive(Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The bytes; write any prefix, then report it to
    /// [`Client::consume_transmit`](crate::Client::consume_transmit).
    pub bytes: &'a [u8],
    /// When set, `bytes` begins with this request, which carries file
    /// descriptors: send them with the first byte (SCM_RIGHTS), and write
    /// at least one byte in that call. `bytes` then ends before the next
    /// request with descriptors, so two sets never share a write.
    pub fds: Option<RequestId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkKind {
    /// A request with file descriptors starts here.
    Fds,
    /// A request that gets no reply ends here.
    Written,
}

#[derive(Debug)]
struct Mark {
    /// Position in the outgoing stream.
    at: u64,
    kind: MarkKind,
    id: u64,
}

/// The outgoing byte stream.
#[derive(Debug, Default)]
pub(crate) struct TransmitQueue {
    buf: Vec<u8>,
    head: usize,
    /// Bytes written since the session began.
    sent: u64,
    marks: VecDeque<Mark>,
}

impl TransmitQueue {
    /// Appends bytes that belong to no request the caller tracks (the
    /// negotiation, a resync).
    pub(crate) fn push(&mut self, bytes: Vec<u8>) {
        if self.buf.is_empty() {
            self.buf = bytes;
        } else {
            self.buf.extend_from_slice(&bytes);
        }
    }

    /// Appends request `id`'s bytes, marking where its descriptors go and,
    /// when it gets no reply, where it ends. Returns where it ends in the
    /// stream of bytes written (see [`sent`](Self::sent)).
    pub(crate) fn push_request(
        &mut self,
        id: u64,
        bytes: Vec<u8>,
        fds: bool,
        no_reply: bool,
    ) -> u64 {
        let start = self.sent + (self.buf.len() - self.head) as u64;
        if fds {
            self.marks.push_back(Mark {
                at: start,
                kind: MarkKind::Fds,
                id,
            });
        }
        let len = bytes.len() as u64;
        self.push(bytes);
        if no_reply {
            self.marks.push_back(Mark {
                at: start + len,
                kind: MarkKind::Written,
                id,
            });
        }
        start + len
    }

    /// How many bytes were written since the session began.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head == self.buf.len()
    }

    /// Bytes waiting to be written.
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub(crate) fn poll(&self) -> Option<Transmit<'_>> {
        if self.is_empty() {
            return None;
        }
        let mut end = self.buf.len();
        let mut fds = None;
        for m in self.marks.iter().filter(|m| m.kind == MarkKind::Fds) {
            if m.at == self.sent {
                fds = Some(RequestId(m.id));
            } else {
                end = self.head + (m.at - self.sent) as usize;
                break;
            }
        }
        Some(Transmit {
            bytes: &self.buf[self.head..end],
            fds,
        })
    }

    /// Records that `n` bytes were written; `written` hears each request
    /// that gets no reply and is now wholly on the wire.
    pub(crate) fn consume(&mut self, n: usize, mut written: impl FnMut(u64)) {
        let n = n.min(self.len());
        self.head += n;
        self.sent += n as u64;
        while let Some(m) = self.marks.front() {
            let done = match m.kind {
                MarkKind::Fds => m.at < self.sent,
                MarkKind::Written => m.at <= self.sent,
            };
            if !done {
                break;
            }
            if let Some(Mark {
                kind: MarkKind::Written,
                id,
                ..
            }) = self.marks.pop_front()
            {
                written(id);
            }
        }
        if self.is_empty() {
            self.buf.clear();
            self.head = 0;
        } else if self.head >= 64 * 1024 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }

    /// Forgets everything not yet written.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
        self.marks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn descriptors_never_share_a_write() {
        let mut q = TransmitQueue::default();
        q.push_request(1, b"aaaa".to_vec(), false, false);
        q.push_request(2, b"bbbb".to_vec(), true, false);
        q.push_request(3, b"cc".to_vec(), true, true);
        let t = q.poll().unwrap();
        assert_eq!((t.bytes, t.fds), (&b"aaaa"[..], None));
        q.consume(4, |_| unreachable!());
        let t = q.poll().unwrap();
        assert_eq!((t.bytes, t.fds), (&b"bbbb"[..], Some(RequestId(2))));
        q.consume(1, |_| unreachable!());
        assert_eq!(
            q.poll().unwrap().fds,
            None,
            "the fds went with the first byte"
        );
        q.consume(3, |_| unreachable!());
        let mut written = vec![];
        q.consume(2, |id| written.push(id));
        assert_eq!(written, [3]);
        assert!(q.poll().is_none());
    }
}
