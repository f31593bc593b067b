//! A `#![no_std]` program's view of qmp-core: its own panic handler, its
//! own fixed-size heap, and a whole QMP session driven through the engine.
//!
//! Nothing here may use std; the crate exists so that the build breaks if
//! the engine ever needs it.

#![no_std]
// The global allocator's heap is a static buffer handed over once.
#![allow(unsafe_code)]

use core::mem::MaybeUninit;
use linked_list_allocator::LockedHeap;
use qmp_core::{Client, CloseReason, Config, Instant, Output, Request, SessionState};

/// Bytes of heap the session may use.
pub const HEAP_SIZE: usize = 64 * 1024;

#[cfg_attr(feature = "proof", global_allocator)]
static HEAP: LockedHeap = LockedHeap::empty();

static mut HEAP_MEMORY: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];

#[cfg(feature = "proof")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Hands the static buffer to the allocator; call once, first.
pub fn init_heap() {
    // SAFETY: called once before any allocation; the buffer is only ever
    // reached through the allocator afterwards.
    unsafe {
        let start = core::ptr::addr_of_mut!(HEAP_MEMORY).cast::<u8>();
        HEAP.lock().init(start, HEAP_SIZE);
    }
}

/// What went wrong in [`run_session`].
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// A step did not produce what a real QEMU session produces.
    Step(&'static str),
}

/// Drives a scripted QEMU session (greeting, negotiation with oob, a query,
/// an event, the server closing) through the engine, with a small
/// configuration, and checks each outcome.
pub fn run_session() -> Result<(), Failure> {
    let config = Config::qmp()
        .max_message_size(16 * 1024)
        .max_queued_events(8)
        .max_open_requests(4);
    let mut c = Client::new(Instant::ZERO, config);
    let id = c
        .execute(Instant::ZERO, Request::new("query-status"))
        .map_err(|_| Failure::Step("submit"))?;
    let server: [&[u8]; 4] = [
        b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n",
        b"{\"return\": {}, \"id\": 0}\r\n",
        b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n",
        b"{\"return\": {\"status\": \"paused\", \"singlestep\": false, \"running\": false}, \"id\": 1}\r\n",
    ];
    let mut now = Instant::ZERO;
    for chunk in server {
        now = Instant::from_micros(now.as_micros() + 1000);
        // Byte by byte, as from a UART.
        for b in chunk.chunks(1) {
            c.handle_input(now, b);
            if c.state() == SessionState::Closed {
                return Err(Failure::Step("input"));
            }
            while let Some(tx) = c.poll_transmit() {
                let n = tx.bytes.len();
                c.consume_transmit(n);
            }
        }
    }
    if c.state() != SessionState::Running || !c.oob_enabled() {
        return Err(Failure::Step("negotiation"));
    }
    let mut replied = false;
    while let Some(out) = c.poll_output() {
        if let Output::Reply { id: done, result } = out {
            let value = result
                .and_then(|r| r.value())
                .map_err(|_| Failure::Step("reply"))?;
            replied = done == id && value["status"] == "paused";
        }
    }
    let event = c.poll_event().ok_or(Failure::Step("event"))?;
    if !replied || event.name != "STOP" {
        return Err(Failure::Step("outcome"));
    }
    c.handle_eof(now);
    match c.close_reason() {
        Some(CloseReason::Eof) => Ok(()),
        _ => Err(Failure::Step("close")),
    }
}
