//! Runs [`nostd_check::run_session`] as a `#![no_std]`, `#![no_main]`
//! program linked against the C runtime only; exit status 0 on success.

#![no_std]
#![no_main]
#![allow(unsafe_code)]

// The C library provides the start-up code, `memcpy` and friends, and `write`.
#[link(name = "c")]
unsafe extern "C" {
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
}

fn say(msg: &[u8]) {
    // SAFETY: `msg` is a valid buffer of `msg.len()` bytes.
    unsafe {
        write(1, msg.as_ptr(), msg.len());
    }
}

/// The C runtime's entry point.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    nostd_check::init_heap();
    match nostd_check::run_session() {
        Ok(()) => {
            say(b"no_std session: ok\n");
            0
        }
        Err(nostd_check::Failure::Step(step)) => {
            say(b"no_std session failed at: ");
            say(step.as_bytes());
            say(b"\n");
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
