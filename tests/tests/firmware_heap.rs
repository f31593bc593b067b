//! The firmware agent's small configuration (16 KiB messages, 8 events,
//! 4 requests) running a real session within a 64 KiB heap: a counting
//! allocator measures the peak heap the session adds.
//!
//! One test in its own binary, so nothing else allocates meanwhile.

// Implementing `GlobalAlloc` is unsafe by definition; this only counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant as StdInstant};

use embedded_io_adapters::std::FromStd;
use firmware_agent::RunState;
use qmp_core::Instant;
use tests::{QemuServer, SerialPort};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn small_configuration_stays_within_64_kib_of_heap() {
    const BUDGET: usize = 64 * 1024;
    let qemu = QemuServer::start(&[]);
    let sock = UnixStream::connect(&qemu.socket).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let port = FromStd::new(SerialPort(sock));
    let origin = StdInstant::now();
    let clock = move || Instant::from_micros(origin.elapsed().as_micros() as u64);

    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let report = firmware_agent::run(port, clock, Duration::from_secs(5)).expect("agent run");
    let peak = PEAK.load(Ordering::Relaxed) - base;

    assert_eq!(report.after_stop, RunState::Paused);
    println!("peak heap of a whole session in the small configuration: {peak} bytes");
    assert!(
        peak < BUDGET,
        "peak heap {peak} bytes exceeds the {BUDGET}-byte budget"
    );
}
