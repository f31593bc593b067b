//! The clients under test, with the calls each scenario makes.

use std::future::Future;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use qmp_qapi::qmp::QueryStatus;
use qmp_smol::CloseCause;
use smol::{LocalExecutor, Task};

use crate::measure::Result;

/// Generous limits: a loaded machine can be slow to start QEMU.
const SOCKET_WAIT: Duration = Duration::from_secs(60);
const HANDSHAKE: Duration = Duration::from_secs(60);
/// Bounds every call, so that a wedged run fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A `qmp-std` connection.
pub(crate) struct StdClient(qmp_std::Qmp);

impl StdClient {
    /// Connects and negotiates (with `oob`).
    pub(crate) fn connect(path: &Path) -> Result<StdClient> {
        let options = qmp_std::Options::new()
            .socket_wait(SOCKET_WAIT)
            .handshake_timeout(HANDSHAKE)
            .timeout(CALL_TIMEOUT);
        let qmp = qmp_std::Qmp::connect_unix(path, options)?;
        if !qmp.oob_enabled() {
            return Err("qmp-std: oob was not negotiated".into());
        }
        Ok(StdClient(qmp))
    }

    /// `n` calls of `name`, one after another.
    pub(crate) fn serial(&mut self, name: &str, n: u64) -> Result<()> {
        for _ in 0..n {
            self.0.execute(name, None)?;
        }
        Ok(())
    }

    /// `n` typed `query-status` calls, one after another.
    pub(crate) fn serial_typed(&mut self, n: u64) -> Result<()> {
        for _ in 0..n {
            std::hint::black_box(self.0.call(&QueryStatus)?);
        }
        Ok(())
    }

    /// The client itself.
    pub(crate) fn inner(&mut self) -> &mut qmp_std::Qmp {
        &mut self.0
    }
}

/// The calls every async client makes, whatever its runtime.
pub(crate) trait AsyncCalls {
    /// `n` calls of `name`, one after another.
    fn serial(&self, name: &str, n: u64) -> Result<()>;
    /// `n` typed `query-status` calls, one after another.
    fn serial_typed(&self, n: u64) -> Result<()>;
    /// `n` calls of `name`, `window` in flight.
    fn pipelined(&self, name: &str, n: u64, window: u64) -> Result<()>;
}

impl AsyncCalls for SmolClient {
    fn serial(&self, name: &str, n: u64) -> Result<()> {
        SmolClient::serial(self, name, n)
    }
    fn serial_typed(&self, n: u64) -> Result<()> {
        SmolClient::serial_typed(self, n)
    }
    fn pipelined(&self, name: &str, n: u64, window: u64) -> Result<()> {
        SmolClient::pipelined(self, name, n, window)
    }
}

impl AsyncCalls for TokioClient {
    fn serial(&self, name: &str, n: u64) -> Result<()> {
        TokioClient::serial(self, name, n)
    }
    fn serial_typed(&self, n: u64) -> Result<()> {
        TokioClient::serial_typed(self, n)
    }
    fn pipelined(&self, name: &str, n: u64, window: u64) -> Result<()> {
        TokioClient::pipelined(self, name, n, window)
    }
}

/// Where a `qmp-smol` connection's driver runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// On the caller's thread: one `LocalExecutor` runs the driver and the
    /// calling tasks, and `block_on` polls the reactor itself.
    SameThread,
    /// On smol's global executor (`smol::spawn`), another thread: every
    /// call crosses threads twice.
    Spawned,
}

/// A `qmp-smol` connection and the executor that drives it.
pub(crate) struct SmolClient {
    ex: Rc<LocalExecutor<'static>>,
    placement: Placement,
    qmp: qmp_smol::Qmp,
    driver: Option<Task<CloseCause>>,
}

/// `qmp-smol` options with the same limits as the others.
pub(crate) fn smol_options() -> qmp_smol::Options {
    qmp_smol::Options::default()
        .socket_wait(SOCKET_WAIT)
        .handshake_timeout(HANDSHAKE)
        .timeout(CALL_TIMEOUT)
}

impl SmolClient {
    /// Connects, negotiates (with `oob`) and starts the driver.
    pub(crate) fn connect(path: &Path, placement: Placement) -> Result<SmolClient> {
        let ex = Rc::new(LocalExecutor::new());
        let (qmp, driver) =
            smol::block_on(ex.run(qmp_smol::Qmp::connect_unix(path, smol_options())))?;
        if !qmp.oob_enabled() {
            return Err("qmp-smol: oob was not negotiated".into());
        }
        let driver = match placement {
            Placement::SameThread => ex.spawn(driver),
            Placement::Spawned => smol::spawn(driver),
        };
        Ok(SmolClient {
            ex,
            placement,
            qmp,
            driver: Some(driver),
        })
    }

    /// The handle.
    pub(crate) fn qmp(&self) -> &qmp_smol::Qmp {
        &self.qmp
    }

    /// Runs `fut` to completion, driving the connection meanwhile.
    pub(crate) fn run<T>(&self, fut: impl Future<Output = T>) -> T {
        smol::block_on(self.ex.run(fut))
    }

    fn spawn<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Task<T> {
        match self.placement {
            Placement::SameThread => self.ex.spawn(fut),
            Placement::Spawned => smol::spawn(fut),
        }
    }

    /// `n` calls of `name`, one after another.
    pub(crate) fn serial(&self, name: &str, n: u64) -> Result<()> {
        self.run(async {
            for _ in 0..n {
                self.qmp.execute(name, None).await?;
            }
            Ok(())
        })
    }

    /// `n` typed `query-status` calls, one after another.
    pub(crate) fn serial_typed(&self, n: u64) -> Result<()> {
        self.run(async {
            for _ in 0..n {
                std::hint::black_box(self.qmp.call(&QueryStatus).await?);
            }
            Ok(())
        })
    }

    /// `n` calls of `name` from `window` tasks, each making its next call
    /// as soon as its previous one returns: `window` calls in flight.
    pub(crate) fn pipelined(&self, name: &str, n: u64, window: u64) -> Result<()> {
        let left = Arc::new(AtomicU64::new(n));
        let workers: Vec<Task<Result<()>>> = (0..window)
            .map(|_| {
                let (qmp, left, name) = (self.qmp.clone(), left.clone(), name.to_owned());
                self.spawn(async move {
                    while left
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1))
                        .is_ok()
                    {
                        qmp.execute(&name, None).await?;
                    }
                    Ok(())
                })
            })
            .collect();
        self.run(async {
            for w in workers {
                w.await?;
            }
            Ok(())
        })
    }

    /// Disconnects and waits for the driver to finish.
    pub(crate) fn close(mut self) {
        self.qmp.disconnect();
        if let Some(driver) = self.driver.take() {
            self.run(driver);
        }
    }
}

/// Which tokio scheduler a `qmp-tokio` connection runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `new_current_thread`: the driver and the caller share one thread.
    CurrentThread,
    /// `new_multi_thread` with two workers: the driver is spawned on a
    /// worker, the caller runs in `block_on` on this thread.
    MultiThread,
}

/// A tokio runtime of `flavor`, with its I/O and time drivers; two
/// workers for the multi-thread one.
pub(crate) fn runtime(flavor: Flavor) -> Result<tokio::runtime::Runtime> {
    let mut builder = match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Flavor::MultiThread => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
    };
    Ok(builder.enable_all().build()?)
}

/// A `qmp-tokio` connection and the runtime that drives it.
pub(crate) struct TokioClient {
    rt: tokio::runtime::Runtime,
    qmp: qmp_tokio::Qmp,
    /// Cancelled with the runtime when the client is dropped.
    _driver: tokio::task::JoinHandle<qmp_tokio::CloseCause>,
}

impl TokioClient {
    /// Connects, negotiates (with `oob`) and spawns the driver.
    pub(crate) fn connect(path: &Path, flavor: Flavor) -> Result<TokioClient> {
        let rt = runtime(flavor)?;
        let options = qmp_tokio::Options::default()
            .socket_wait(SOCKET_WAIT)
            .handshake_timeout(HANDSHAKE)
            .timeout(CALL_TIMEOUT);
        let (qmp, driver) = rt.block_on(qmp_tokio::Qmp::connect_unix(path, options))?;
        if !qmp.oob_enabled() {
            return Err("qmp-tokio: oob was not negotiated".into());
        }
        let driver = rt.spawn(driver);
        Ok(TokioClient {
            rt,
            qmp,
            _driver: driver,
        })
    }

    /// `n` calls of `name`, one after another.
    pub(crate) fn serial(&self, name: &str, n: u64) -> Result<()> {
        self.rt.block_on(async {
            for _ in 0..n {
                self.qmp.execute(name, None).await?;
            }
            Ok(())
        })
    }

    /// `n` typed `query-status` calls, one after another.
    pub(crate) fn serial_typed(&self, n: u64) -> Result<()> {
        self.rt.block_on(async {
            for _ in 0..n {
                std::hint::black_box(self.qmp.call(&QueryStatus).await?);
            }
            Ok(())
        })
    }

    /// `n` calls of `name` from `window` tasks: `window` calls in flight.
    pub(crate) fn pipelined(&self, name: &str, n: u64, window: u64) -> Result<()> {
        let left = Arc::new(AtomicU64::new(n));
        self.rt.block_on(async {
            let workers: Vec<_> = (0..window)
                .map(|_| {
                    let (qmp, left, name) = (self.qmp.clone(), left.clone(), name.to_owned());
                    tokio::spawn(async move {
                        while left
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                                l.checked_sub(1)
                            })
                            .is_ok()
                        {
                            qmp.execute(&name, None).await?;
                        }
                        Ok::<_, qmp_tokio::Error>(())
                    })
                })
                .collect();
            for w in workers {
                w.await??;
            }
            Ok(())
        })
    }
}
