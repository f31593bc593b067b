//! The firmware agent as a `#![no_std]`, `#![no_main]` program: a fixed
//! 64 KiB heap, its own panic handler, and a "serial port" that is file
//! descriptor 0 (connect it to a QMP socket). Only libc is linked, for
//! start-up, `read`/`write`/`poll` and a monotonic clock, standing in for a
//! UART driver and a hardware timer. Exit status 0 when the agent's round
//! trip succeeded.

#![no_std]
#![no_main]
// A static heap and the C calls that stand in for hardware need unsafe.
#![allow(unsafe_code)]

use core::mem::MaybeUninit;
use core::time::Duration;

use embedded_io::{ErrorKind, ErrorType, Read, Write};
use linked_list_allocator::LockedHeap;
use qmp_core::Instant;

const HEAP_SIZE: usize = 64 * 1024;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();
static mut HEAP_MEMORY: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

#[repr(C)]
struct TimeSpec {
    sec: i64,
    nsec: i64,
}

#[link(name = "c")]
unsafe extern "C" {
    fn read(fd: i32, buf: *mut u8, count: usize) -> isize;
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
    fn poll(fds: *mut PollFd, n: u64, timeout_ms: i32) -> i32;
    fn clock_gettime(clock: i32, ts: *mut TimeSpec) -> i32;
}

const POLLIN: i16 = 1;
const CLOCK_MONOTONIC: i32 = 1;

/// A serial port on a file descriptor, with a receive timeout.
struct Port {
    fd: i32,
    rx_timeout_ms: i32,
}

#[derive(Debug)]
struct PortError(ErrorKind);

impl core::fmt::Display for PortError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl core::error::Error for PortError {}

impl embedded_io::Error for PortError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

impl ErrorType for Port {
    type Error = PortError;
}

impl Read for Port {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, PortError> {
        let mut pfd = PollFd {
            fd: self.fd,
            events: POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        match unsafe { poll(&mut pfd, 1, self.rx_timeout_ms) } {
            0 => return Err(PortError(ErrorKind::TimedOut)),
            n if n < 0 => return Err(PortError(ErrorKind::Interrupted)),
            _ => {}
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { read(self.fd, buf.as_mut_ptr(), buf.len()) };
        usize::try_from(n).map_err(|_| PortError(ErrorKind::Other))
    }
}

impl Write for Port {
    fn write(&mut self, buf: &[u8]) -> Result<usize, PortError> {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { write(self.fd, buf.as_ptr(), buf.len()) };
        usize::try_from(n).map_err(|_| PortError(ErrorKind::BrokenPipe))
    }

    fn flush(&mut self) -> Result<(), PortError> {
        Ok(())
    }
}

fn monotonic() -> Instant {
    let mut ts = TimeSpec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a valid timespec.
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    Instant::from_micros(ts.sec as u64 * 1_000_000 + ts.nsec as u64 / 1000)
}

fn say(msg: &[u8]) {
    // SAFETY: `msg` is valid for `msg.len()` bytes.
    unsafe { write(2, msg.as_ptr(), msg.len()) };
}

/// The C runtime's entry point.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    // SAFETY: once, before any allocation; only the allocator uses it.
    unsafe {
        HEAP.lock()
            .init(core::ptr::addr_of_mut!(HEAP_MEMORY).cast::<u8>(), HEAP_SIZE);
    }
    let port = Port {
        fd: 0,
        rx_timeout_ms: 10,
    };
    match firmware_agent::run(port, monotonic, Duration::from_secs(5)) {
        Ok(report) if report.after_stop == firmware_agent::RunState::Paused => {
            say(b"firmware-agent: STOP handled, VM paused\n");
            0
        }
        Ok(_) => {
            say(b"firmware-agent: unexpected run state\n");
            1
        }
        Err(_) => {
            say(b"firmware-agent: session failed\n");
            1
        }
    }
}

// The precompiled `alloc` was built for unwinding and names these two
// symbols; with panic=abort nothing ever unwinds, so they are never called.

/// Never called: nothing unwinds under panic=abort.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

/// Never called: nothing unwinds under panic=abort.
#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
