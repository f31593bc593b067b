//! `qmp-tokio` against a scripted server on a socket pair: the shared
//! async suite (`async_faults/mod.rs`) on both of tokio's schedulers.

mod async_faults;

/// Every task, the drivers included, on the thread that blocks.
mod current_thread {
    crate::async_faults::suite!(tests::exec::TokioCurrent);
}

/// Tasks spread over two worker threads.
mod multi_thread {
    crate::async_faults::suite!(tests::exec::TokioMulti);
}
