//! `qmp_tokio::Agent` against a real qemu-ga: the shared async suite
//! (`async_agent/mod.rs`) on both of tokio's schedulers.

mod async_agent;

/// Every task, the drivers included, on the thread that blocks.
mod current_thread {
    crate::async_agent::suite!(tests::exec::TokioCurrent);
}

/// Tasks spread over two worker threads.
mod multi_thread {
    crate::async_agent::suite!(tests::exec::TokioMulti);
}
