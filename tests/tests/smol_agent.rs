//! `qmp_smol::Agent` against a real qemu-ga: the shared async suite
//! (`async_agent/mod.rs`) on smol.

mod async_agent;

async_agent::suite!(tests::exec::Smol);
