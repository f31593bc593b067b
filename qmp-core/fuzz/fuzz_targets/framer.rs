//! The framer, through the engine's public API: arbitrary bytes fed whole
//! and in arbitrary chunks must give the same messages and the same
//! events, end the same way, and never hold more than the message size
//! limit.
//!
//! Two differences are allowed, both in when a fault is found, never in
//! what is delivered. A message that arrives whole is parsed straight
//! from the input, so a syntax error is found where it is; fed in pieces,
//! the same bytes go through the brace scanner first, and an error that
//! confuses it (a stray quote) is found only once the scanner thinks the
//! message ended, or when it reaches the size limit. So where the whole
//! stream ends `Malformed`, the chunked one may also still be waiting for
//! the rest of that message, or end `MessageTooLarge`; and two
//! `Malformed` ends may name different bytes of the same message. The
//! other way round, where the stream stops inside a message that is
//! already sure to be malformed (a number where a string must be), a
//! piece that ends right after the number lets serde_json read it whole
//! and say so, while the whole stream ends inside the number (`-5` and
//! then `e`) and waits: the chunked stream may end `Malformed` where the
//! whole one still waits. The messages and events delivered must match
//! either way.
//!
//! The first two bytes seed the chunk sizes; the rest is the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qmp_core::{Client, CloseReason, Config, Instant, Output};

const LIMIT: usize = 4096;

/// What a session made of the stream.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<(String, Option<String>)>,
    messages: u64,
    unknown: u64,
    unrecognized: u64,
    close: Option<CloseReason>,
}

fn session(chunks: &mut dyn Iterator<Item = &[u8]>) -> Outcome {
    let config = Config::qmp()
        .await_greeting(false)
        .negotiate(false)
        .max_message_size(LIMIT)
        // Room for every event one input can hold, so none is dropped.
        .max_queued_events(1024)
        .max_open_requests(4);
    let mut c = Client::new(Instant::ZERO, config);
    let mut events = Vec::new();
    let mut close = None;
    for chunk in chunks {
        c.handle_input(Instant::ZERO, chunk);
        assert!(
            c.buffered_bytes() <= 2 * LIMIT,
            "{} bytes buffered",
            c.buffered_bytes()
        );
        while let Some(e) = c.poll_event() {
            // Decoding never panics; the text must not depend on chunking.
            let _ = e.data();
            events.push((e.name.clone(), e.data_text().map(String::from)));
        }
        while let Some(out) = c.poll_output() {
            if let Output::Closed(r) = out {
                close = Some(r);
            }
        }
    }
    let stats = c.stats();
    Outcome {
        events,
        messages: stats.messages_received,
        unknown: stats.unknown_replies,
        unrecognized: stats.unrecognized,
        close: close.map(|r| match r {
            // Where a fault is reported must not depend on the chunking;
            // serde's wording of it may.
            CloseReason::Malformed { offset, .. } => CloseReason::Malformed {
                offset,
                detail: String::new(),
            },
            r => r,
        }),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let mut seed = u32::from(data[0]) << 8 | u32::from(data[1]) | 1;
    let stream = &data[2..];
    let whole = session(&mut std::iter::once(stream));
    let mut rest = stream;
    let mut chunks = std::iter::from_fn(|| {
        if rest.is_empty() {
            return None;
        }
        // xorshift: sizes from 1 byte to a few hundred, mostly small.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = match seed % 4 {
            0 => 1,
            1 => (seed >> 8) as usize % 8 + 1,
            2 => (seed >> 8) as usize % 64 + 1,
            _ => (seed >> 8) as usize % 512 + 1,
        };
        let (a, b) = rest.split_at(n.min(rest.len()));
        rest = b;
        Some(a)
    });
    let chunked = session(&mut chunks);
    let same = match (&whole.close, &chunked.close) {
        (Some(CloseReason::Malformed { .. }), None | Some(CloseReason::MessageTooLarge { .. })) => {
            true
        }
        (Some(CloseReason::Malformed { .. }), Some(CloseReason::Malformed { .. })) => true,
        (None, Some(CloseReason::Malformed { .. })) => true,
        (a, b) => a == b,
    };
    assert!(
        same && whole.events == chunked.events
            && (whole.messages, whole.unknown, whole.unrecognized)
                == (chunked.messages, chunked.unknown, chunked.unrecognized),
        "the chunking changed the outcome:\n whole:   {whole:?}\n chunked: {chunked:?}"
    );
});
