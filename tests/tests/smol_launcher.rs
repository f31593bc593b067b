//! `qmp_smol::Qemu`: the shared async launcher suite
//! (`async_launcher/mod.rs`) on smol.

mod async_launcher;

async_launcher::suite!(tests::exec::Smol);
