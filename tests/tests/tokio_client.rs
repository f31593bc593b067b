//! `qmp-tokio` against a real QEMU: the shared async suite
//! (`async_client/mod.rs`) on both of tokio's schedulers.

mod async_client;

/// Every task, the drivers included, on the thread that blocks.
mod current_thread {
    crate::async_client::suite!(tests::exec::TokioCurrent);
}

/// Tasks spread over two worker threads.
mod multi_thread {
    crate::async_client::suite!(tests::exec::TokioMulti);
}
