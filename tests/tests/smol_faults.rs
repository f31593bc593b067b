//! `qmp-smol` against a scripted server on a socket pair: the shared
//! async suite (`async_faults/mod.rs`) on smol.

mod async_faults;

async_faults::suite!(tests::exec::Smol);
