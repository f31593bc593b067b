//! Where bytes enter: splitting the stream into JSON objects.
//!
//! QEMU ends each message with CRLF, but pretty-printing monitors emit
//! multi-line JSON, a peer may send no newline at all, and the guest agent
//! uses bare LF and a 0xFF delimiter. So messages are framed by JSON value
//! boundaries: the brace depth outside strings, with escapes honoured. The
//! scanner state persists across chunks, so every byte is examined once
//! however the stream is cut, and a message that arrives whole inside one
//! chunk is handed out without being copied.

use alloc::vec::Vec;

/// One unit the framer found in the stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A complete top-level object, from its `{` to its `}`; `offset` is the
    /// stream position of the `{`.
    Message { bytes: &'a [u8], offset: u64 },
    /// A 0xFF byte between messages (the guest agent's sync delimiter).
    Delimiter,
    /// A whole message that the caller's fast path took directly from
    /// the input (see [`Framer::next`]).
    Taken,
}

/// Why the stream cannot be framed any further.
/// What lies before the next message.
enum Gap {
    /// The message starts at this index.
    Start(usize),
    /// A 0xFF byte (the guest agent's delimiter).
    Delimiter,
    /// A byte that cannot start a message.
    NotAnObject { offset: u64, byte: u8 },
    /// The input ended first.
    End,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A message grew past the limit before it ended.
    TooLarge { limit: usize },
    /// A byte other than whitespace or `{` where a message must start.
    NotAnObject { offset: u64, byte: u8 },
}

/// Incremental splitter of a byte stream into top-level JSON objects.
#[derive(Debug)]
pub(crate) struct Framer {
    /// Bytes of a message that began in an earlier chunk.
    buf: Vec<u8>,
    /// `buf` holds a message already handed out; clear it on the next call.
    handed_out: bool,
    in_message: bool,
    in_string: bool,
    escape: bool,
    depth: u32,
    limit: usize,
    /// Stream position of the next byte not yet consumed.
    offset: u64,
    /// Stream position of the current message's `{`.
    start: u64,
}

impl Framer {
    pub(crate) fn new(limit: usize) -> Self {
        Framer {
            buf: Vec::new(),
            handed_out: false,
            in_message: false,
            in_string: false,
            escape: false,
            depth: 0,
            limit,
            offset: 0,
            start: 0,
        }
    }

    /// True while part of a message has been seen but not its end.
    pub(crate) fn mid_message(&self) -> bool {
        self.in_message
    }

    /// Bytes of the unfinished message held so far.
    pub(crate) fn buffered(&self) -> usize {
        if self.handed_out { 0 } else { self.buf.len() }
    }

    /// Capacity of the reassembly buffer (for memory accounting).
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Stream position of the next unconsumed byte.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Takes the next frame from `input`, advancing it past what was used.
    ///
    /// When a message starts inside `input`, `fast` is first offered the
    /// input from its `{` (at most `limit` bytes) and its stream offset; if
    /// it can take the whole message it returns the length and the framer
    /// skips it without scanning ([`Frame::Taken`]). Otherwise the scanner
    /// runs and buffers as needed.
    ///
    /// Returns `None` once `input` is used up without completing a frame;
    /// the partial message is kept for the next call.
    #[inline]
    pub(crate) fn next<'s, 'a: 's>(
        &'s mut self,
        input: &mut &'a [u8],
        fast: impl FnOnce(&'a [u8], u64) -> Option<usize>,
    ) -> Option<Result<Frame<'s>, FrameError>> {
        if self.handed_out {
            self.buf.clear();
            self.handed_out = false;
        }
        let data: &'a [u8] = input;
        let mut i = 0;
        if !self.in_message {
            i = match self.skip_gap(input) {
                Gap::Start(i) => i,
                Gap::Delimiter => return Some(Ok(Frame::Delimiter)),
                Gap::NotAnObject { offset, byte } => {
                    return Some(Err(FrameError::NotAnObject { offset, byte }));
                }
                Gap::End => return None,
            };
            let start = self.offset + i as u64;
            let window = &data[i..data.len().min(i + self.limit)];
            // A window of a few bytes rarely holds a whole message, and a
            // failed attempt costs more than scanning them.
            if window.len() >= 16
                && let Some(len) = fast(window, start)
            {
                self.consume(input, i + len);
                return Some(Ok(Frame::Taken));
            }
            self.in_message = true;
            self.depth = 0;
            self.start = start;
        }
        let begin = i;
        // Never look further than the limit allows, so an endless message
        // costs no more than `limit` bytes of scanning or buffering.
        let room = self.limit - self.buf.len();
        let window = &data[begin..data.len().min(begin + room)];
        match self.scan(window) {
            Some(len) => {
                let end = begin + len;
                self.in_message = false;
                let offset = self.start;
                self.consume(input, end);
                if self.buf.is_empty() {
                    Some(Ok(Frame::Message {
                        bytes: &data[begin..end],
                        offset,
                    }))
                } else {
                    self.buf.extend_from_slice(&data[begin..end]);
                    self.handed_out = true;
                    Some(Ok(Frame::Message {
                        bytes: &self.buf,
                        offset,
                    }))
                }
            }
            None if window.len() < data.len() - begin => {
                Some(Err(FrameError::TooLarge { limit: self.limit }))
            }
            None => {
                if window.len() < 16 {
                    // Byte-at-a-time feeding: cheaper than a memcpy call.
                    for &b in window {
                        self.buf.push(b);
                    }
                } else {
                    self.buf.extend_from_slice(window);
                }
                self.consume(input, data.len());
                None
            }
        }
    }

    /// Skips the whitespace between messages. Anything but the `{` that
    /// starts the next message is consumed and reported.
    #[inline(always)]
    fn skip_gap(&mut self, input: &mut &[u8]) -> Gap {
        let data: &[u8] = input;
        let mut i = 0;
        loop {
            let Some(&byte) = data.get(i) else {
                self.consume(input, i);
                return Gap::End;
            };
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b'{' => return Gap::Start(i),
                0xFF => {
                    self.consume(input, i + 1);
                    return Gap::Delimiter;
                }
                byte => {
                    let offset = self.offset + i as u64;
                    self.consume(input, i + 1);
                    return Gap::NotAnObject { offset, byte };
                }
            }
        }
    }

    /// Takes one byte of a message already begun when it neither ends the
    /// message nor passes the limit, and returns whether it did; otherwise
    /// changes nothing. Byte-at-a-time input (a UART interrupt per byte)
    /// costs a few instructions per byte this way.
    #[inline]
    pub(crate) fn take_inner_byte(&mut self, b: u8) -> bool {
        if !self.in_message || self.buf.len() >= self.limit || self.closes(b) {
            return false;
        }
        self.step(b);
        self.buf.push(b);
        self.offset += 1;
        true
    }

    /// Whether `b` is the brace that ends the current message.
    #[inline]
    fn closes(&self, b: u8) -> bool {
        b == b'}' && !self.in_string && self.depth == 1
    }

    /// Moves the scanner over one byte.
    #[inline]
    fn step(&mut self, b: u8) {
        if self.in_string {
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_string = false;
            }
        } else {
            match b {
                b'"' => self.in_string = true,
                b'{' => self.depth += 1,
                b'}' => self.depth -= 1,
                _ => {}
            }
        }
    }

    /// Discards input up to and including the next 0xFF byte, dropping any
    /// partial message. Returns whether a delimiter was found.
    pub(crate) fn skip_to_delimiter(&mut self, input: &mut &[u8]) -> bool {
        self.reset();
        match memchr::memchr(0xFF, input) {
            Some(pos) => {
                self.consume(input, pos + 1);
                true
            }
            None => {
                self.consume(input, input.len());
                false
            }
        }
    }

    /// Forgets any partial message and starts looking for a new one.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.handed_out = false;
        self.in_message = false;
        self.in_string = false;
        self.escape = false;
        self.depth = 0;
    }

    #[inline]
    fn consume(&mut self, input: &mut &[u8], n: usize) {
        *input = &input[n..];
        self.offset += n as u64;
    }

    /// [`scan`](Self::scan) for a few bytes, where setting up a vector
    /// search costs more than looking at each byte.
    #[inline]
    fn scan_short(&mut self, data: &[u8]) -> Option<usize> {
        for (i, &b) in data.iter().enumerate() {
            let last = self.closes(b);
            self.step(b);
            if last {
                return Some(i + 1);
            }
        }
        None
    }

    /// Advances the scanner over `data`; returns the length up to and
    /// including the closing brace when the message ends inside it.
    #[inline]
    fn scan(&mut self, data: &[u8]) -> Option<usize> {
        if data.len() < 16 {
            return self.scan_short(data);
        }
        let mut i = 0;
        while i < data.len() {
            if self.in_string {
                if self.escape {
                    self.escape = false;
                    i += 1;
                    continue;
                }
                i += memchr::memchr2(b'"', b'\\', &data[i..])?;
                if data[i] == b'"' {
                    self.in_string = false;
                } else {
                    self.escape = true;
                }
            } else {
                i += memchr::memchr3(b'"', b'{', b'}', &data[i..])?;
                match data[i] {
                    b'"' => self.in_string = true,
                    b'{' => self.depth += 1,
                    _ => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            return Some(i + 1);
                        }
                    }
                }
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn frames(framer: &mut Framer, mut input: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut out = vec![];
        while let Some(f) = framer.next(&mut input, |_, _| None) {
            match f {
                Ok(Frame::Message { bytes, .. }) => out.push(Ok(bytes.to_vec())),
                Ok(Frame::Taken) => unreachable!(),
                Ok(Frame::Delimiter) => out.push(Ok(vec![0xFF])),
                Err(e) => {
                    out.push(Err(e));
                    break;
                }
            }
        }
        out
    }

    fn split_all(stream: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let mut f = Framer::new(1 << 20);
        let mut out = vec![];
        for c in stream.chunks(chunk) {
            out.extend(frames(&mut f, c).into_iter().map(|r| r.unwrap()));
        }
        out
    }

    const STREAM: &[u8] = b"{\"a\": \"}{\\\"\\\\\"}\r\n{\"b\":\n  {\"c\": [1, {\"d\": \"\\u007b\"}]}\n}  \n\t{}{\"e\":\"\\\\\"}";

    #[test]
    fn splits_at_value_boundaries_whatever_the_chunking() {
        let whole = split_all(STREAM, STREAM.len());
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[0], b"{\"a\": \"}{\\\"\\\\\"}");
        assert_eq!(whole[2], b"{}");
        assert_eq!(whole[3], b"{\"e\":\"\\\\\"}");
        for chunk in 1..STREAM.len() {
            assert_eq!(split_all(STREAM, chunk), whole, "chunk size {chunk}");
        }
    }

    #[test]
    fn reports_garbage_with_its_offset() {
        let mut f = Framer::new(100);
        let out = frames(&mut f, b"{} \r\n[1]");
        assert_eq!(
            out[1],
            Err(FrameError::NotAnObject {
                offset: 5,
                byte: b'['
            })
        );
    }

    #[test]
    fn stops_at_the_limit_without_buffering_past_it() {
        let mut f = Framer::new(8);
        assert_eq!(
            frames(&mut f, b"{\"a\":12}"),
            vec![Ok(b"{\"a\":12}".to_vec())]
        );
        let mut f = Framer::new(8);
        assert_eq!(frames(&mut f, b"{\"a\":1"), vec![]);
        assert_eq!(
            frames(&mut f, b"23}"),
            vec![Err(FrameError::TooLarge { limit: 8 })]
        );
        assert!(f.buffered() <= 8);
    }

    #[test]
    fn delimiter_only_between_messages() {
        let mut f = Framer::new(100);
        let out = frames(&mut f, b"\xff{\"x\":\"\xff\"}\n");
        assert_eq!(out, vec![Ok(vec![0xFF]), Ok(b"{\"x\":\"\xff\"}".to_vec())]);
        let mut input: &[u8] = b"{\"half\": \"str\xff{\"return\": 1}";
        assert!(f.skip_to_delimiter(&mut input));
        assert_eq!(frames(&mut f, input), vec![Ok(b"{\"return\": 1}".to_vec())]);
    }
}
