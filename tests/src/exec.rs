//! The async runtimes the shared async suites run on: one trait over
//! "block on a future / spawn a task / sleep / a runtime's own stream",
//! implemented for smol and for tokio's current-thread and multi-thread
//! schedulers. A suite written against [`Exec`] runs on each of them from
//! one source.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use qmp_async::runtime::{ConnectTcp, Runtime, WrapStream};

/// A spawned task's result, whatever the runtime.
pub type Task<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One async runtime as the suites use it.
pub trait Exec: Sized + 'static {
    /// The adapter's runtime type: `qmp_async::Qmp<Self::R>` is the
    /// adapter's `Qmp`.
    type R: Runtime + WrapStream<Self::Stream> + ConnectTcp<String>;
    /// The runtime's own connected Unix stream, used as a plain byte stream.
    type Stream: Send + 'static;
    /// For test names and messages.
    const NAME: &'static str;

    /// A fresh runtime (sockets made inside `block_on` belong to it).
    fn new() -> Self;
    /// Runs `fut` to completion on this runtime.
    fn block_on<T>(&self, fut: impl Future<Output = T>) -> T;
    /// Spawns `fut` on the current runtime; call it from inside `block_on`.
    fn spawn<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Task<T>;
    /// Spawns `fut` on this runtime from outside it: the task keeps
    /// running while the caller does not block on the runtime (on smol
    /// and the multi-thread scheduler; the current-thread one runs it
    /// only inside `block_on`).
    fn spawn_here<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Task<T> {
        // The task is handed out, not awaited: spawning only needs the
        // runtime's context.
        #[allow(clippy::async_yields_async)]
        let task = self.block_on(async { Self::spawn(fut) });
        task
    }

    /// Runs blocking `f` on a thread where it may block.
    fn unblock<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Task<T>;
    /// Completes after `d`.
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send;
    /// Connects a runtime stream to the Unix socket at `path`.
    fn connect_stream(path: &Path) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Runs `fut` on a fresh runtime on its own thread, under
    /// [`within`](crate::within) with a generous 120 s hang guard.
    fn run<T: Send + 'static>(what: &str, fut: impl Future<Output = T> + Send + 'static) -> T {
        crate::within(Duration::from_secs(120), what, move || {
            Self::new().block_on(fut)
        })
    }
}

/// smol: `smol::block_on`, tasks on smol's global executor.
#[derive(Debug)]
pub struct Smol;

impl Exec for Smol {
    type R = qmp_smol::Smol;
    type Stream = async_net::unix::UnixStream;
    const NAME: &'static str = "smol";

    fn new() -> Self {
        Smol
    }

    fn block_on<T>(&self, fut: impl Future<Output = T>) -> T {
        smol::block_on(fut)
    }

    fn spawn<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Task<T> {
        Box::pin(smol::spawn(fut))
    }

    fn unblock<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Task<T> {
        Box::pin(smol::unblock(f))
    }

    async fn sleep(d: Duration) {
        async_io::Timer::after(d).await;
    }

    async fn connect_stream(path: &Path) -> io::Result<Self::Stream> {
        async_net::unix::UnixStream::connect(path).await
    }
}

/// tokio's current-thread scheduler: every task, the drivers included,
/// runs on the thread that blocks on the runtime.
#[derive(Debug)]
pub struct TokioCurrent(tokio::runtime::Runtime);

/// tokio's multi-thread scheduler, with two workers.
#[derive(Debug)]
pub struct TokioMulti(tokio::runtime::Runtime);

fn tokio_spawn<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Task<T> {
    let handle = tokio::spawn(fut);
    Box::pin(async move {
        handle
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    })
}

fn tokio_unblock<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Task<T> {
    let handle = tokio::task::spawn_blocking(f);
    Box::pin(async move {
        handle
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    })
}

macro_rules! tokio_exec {
    ($name:ident, $label:literal, $builder:expr) => {
        impl Exec for $name {
            type R = qmp_tokio::Tokio;
            type Stream = tokio::net::UnixStream;
            const NAME: &'static str = $label;

            fn new() -> Self {
                $name($builder.enable_all().build().expect("a tokio runtime"))
            }

            fn block_on<T>(&self, fut: impl Future<Output = T>) -> T {
                self.0.block_on(fut)
            }

            fn spawn<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Task<T> {
                tokio_spawn(fut)
            }

            fn unblock<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Task<T> {
                tokio_unblock(f)
            }

            async fn sleep(d: Duration) {
                tokio::time::sleep(d).await;
            }

            async fn connect_stream(path: &Path) -> io::Result<Self::Stream> {
                tokio::net::UnixStream::connect(path).await
            }
        }
    };
}

tokio_exec!(
    TokioCurrent,
    "tokio current-thread",
    tokio::runtime::Builder::new_current_thread()
);
tokio_exec!(
    TokioMulti,
    "tokio multi-thread",
    tokio::runtime::Builder::new_multi_thread().worker_threads(2)
);
