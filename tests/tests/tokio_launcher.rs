//! `qmp_tokio::Qemu`: the shared async launcher suite
//! (`async_launcher/mod.rs`) on both of tokio's schedulers.

mod async_launcher;

/// Every task, the drivers included, on the thread that blocks.
mod current_thread {
    crate::async_launcher::suite!(tests::exec::TokioCurrent);
}

/// Tasks spread over two worker threads.
mod multi_thread {
    crate::async_launcher::suite!(tests::exec::TokioMulti);
}
