//! The fault matrix (see `fault/mod.rs`) against the async `qmp-smol`
//! client (`fault_async/mod.rs`), its driver on smol's executor.

mod fault;
mod fault_async;

fault::fault_matrix!(fault_async::AsyncClient<tests::exec::Smol>);
