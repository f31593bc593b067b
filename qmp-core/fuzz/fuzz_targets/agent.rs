//! A guest agent session (0xFF resyncs, requests without replies, stale
//! output before the delimiter) driven by an arbitrary sequence of
//! operations. See `src/lib.rs` for the invariants.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qmp_core_fuzz::{Harness, decode, qga_config};

fuzz_target!(|data: &[u8]| {
    let (config, ops) = decode(data);
    Harness::new(qga_config(config)).run(&ops);
});
