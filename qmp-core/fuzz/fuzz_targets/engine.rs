//! A QMP session driven by an arbitrary sequence of operations: server
//! bytes (raw and well formed), end of file, time passing, new requests
//! (in band, out of band, with descriptors, without reply), cancels,
//! closes and stalled writes. See `src/lib.rs` for the invariants.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qmp_core_fuzz::{Harness, decode, qmp_config};

fuzz_target!(|data: &[u8]| {
    let (config, ops) = decode(data);
    Harness::new(qmp_config(config)).run(&ops);
});
