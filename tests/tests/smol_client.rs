//! `qmp-smol` against a real QEMU: the shared async suite
//! (`async_client/mod.rs`) on smol.

mod async_client;

async_client::suite!(tests::exec::Smol);
