//! The fault matrix (see `fault/mod.rs`) against the async `qmp-tokio`
//! client (`fault_async/mod.rs`), its driver on a multi-thread tokio
//! runtime: it runs while the test thread waits for the scripted server.

mod fault;
mod fault_async;

fault::fault_matrix!(fault_async::AsyncClient<tests::exec::TokioMulti>);
