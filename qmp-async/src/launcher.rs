//! Launching QEMU from an async runtime: the builder, the process, its
//! stderr and its signals are `qmp_os::launch`'s, shared with qmp-std;
//! this file connects on the runtime and waits without blocking it.

use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;
use std::process::ExitStatus;
use std::time::{Duration, Instant as StdInstant};

use futures_lite::future;
use log::{debug, warn};
use qmp_os::launch::{self, EXIT_GRACE, Endpoint, Launcher, Process, Started, StderrTail};
use qmp_os::{Error, Options};

use crate::driver::Driver;
use crate::qmp::Qmp;
use crate::runtime::Runtime;
use crate::transport::Transport;

/// How often a launcher looks whether QEMU has exited while it waits.
const EXIT_POLL: Duration = Duration::from_millis(5);

/// Configures and starts a [`Qemu`] on the runtime `R`: the same builder
/// as qmp-std's, whose `launch()` is a future of the running QEMU and the
/// [`Driver`] of its QMP connection (spawn the driver, as for any
/// connection).
///
/// ```no_run
/// # async fn f<R: qmp_async::Runtime>() -> Result<(), qmp_async::Error> {
/// let (qemu, driver) = qmp_async::Qemu::<R>::builder()
///     .args(["-S"])
///     .launch()
///     .await?;
/// # Ok(()) }
/// ```
pub type QemuBuilder<R> = launch::QemuBuilder<OnRuntime<R>>;

/// The async way of launching on the runtime `R`, which
/// [`QemuBuilder::launch`](qmp_os::launch::QemuBuilder::launch) uses.
pub struct OnRuntime<R>(PhantomData<fn() -> R>);

impl<R> fmt::Debug for OnRuntime<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnRuntime")
    }
}

/// What launching on a runtime gives: the running QEMU and its driver.
pub type Launched<R> = Result<(Qemu<R>, Driver<R>), Error>;

impl<R: Runtime> Launcher for OnRuntime<R> {
    type Output = Pin<Box<dyn Future<Output = Launched<R>> + Send>>;

    fn launch(builder: QemuBuilder<R>) -> Self::Output {
        Box::pin(start(builder))
    }
}

async fn start<R: Runtime>(builder: QemuBuilder<R>) -> Launched<R> {
    let prepared = builder.prepare()?;
    // Bound before QEMU starts: QEMU connects as soon as it runs.
    let listener = match &prepared.endpoint {
        Endpoint::Listen(path, _) => match R::bind(path) {
            Ok(l) => Some(l),
            Err(e) => return Err(prepared.error(Error::Io(e))),
        },
        _ => None,
    };
    let (mut started, endpoint) = prepared.spawn()?;
    let options = builder.get_options().clone();
    let connected = match (endpoint, listener) {
        (Endpoint::Pair(ours), _) => Qmp::from_unix_stream(ours, options).await,
        (Endpoint::Listen(_, dir), Some(listener)) => {
            let accepted = accept_from_child::<R>(&listener, &mut started.process, &options).await;
            drop(dir);
            match accepted {
                Ok(socket) => Qmp::establish(Transport::Unix(socket), &options).await,
                Err(e) => Err(e),
            }
        }
        _ => unreachable!("every endpoint is handled"),
    };
    match connected {
        Ok((qmp, driver)) => {
            if let Some(g) = qmp.greeting() {
                debug!("QEMU {} running as pid {}", g.version, started.process.id());
            }
            let qemu = Qemu {
                qmp,
                pid: started.process.id(),
                process: started.process,
                program: started.program,
                stderr: started.stderr,
                stop_timeout: builder.get_stop_timeout(),
            };
            Ok((qemu, driver))
        }
        Err(cause) => {
            // Give a failing QEMU a moment to exit and say why; one that
            // hangs instead is killed, with its process group.
            let status = wait_exit::<R>(&mut started.process, EXIT_GRACE)
                .await
                .ok()
                .flatten();
            Err(Started::failure(started, cause, status))
        }
    }
}

/// Waits at most `timeout` for QEMU to exit, reaping it, without blocking
/// the runtime.
async fn wait_exit<R: Runtime>(
    process: &mut Process,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let deadline = StdInstant::now() + timeout;
    loop {
        if let Some(status) = process.try_reap()? {
            return Ok(Some(status));
        }
        let now = StdInstant::now();
        if now >= deadline {
            return Ok(None);
        }
        R::sleep_until((now + EXIT_POLL).min(deadline)).await;
    }
}

/// Accepts QEMU's connection, giving up early when QEMU exits first.
async fn accept_from_child<R: Runtime>(
    listener: &R::Listener,
    process: &mut Process,
    options: &Options,
) -> Result<R::Socket, Error> {
    let timeout = options.connect_timeout;
    let accept = async { R::accept(listener).await.map_err(Error::Io) };
    let exit = async {
        match wait_exit::<R>(process, timeout).await? {
            Some(status) => Err(launch::exited_before_connecting(status)),
            None => Err(launch::did_not_connect(timeout)),
        }
    };
    future::or(accept, exit).await
}

/// A QEMU started by [`QemuBuilder::launch`](qmp_os::launch::QemuBuilder::launch),
/// with a connected QMP handle (it dereferences to its [`Qmp`]).
///
/// [`shutdown`](Self::shutdown) stops it with bounded escalation: `quit`,
/// then SIGTERM, then SIGKILL, waiting at most the stop timeout at each
/// stage, without blocking the runtime; keep the driver running until it
/// returns. QEMU leads a process group of its own, and on Linux it is
/// killed when the process that launched it dies. Dropping a `Qemu`
/// without `shutdown` kills it (SIGKILL to its group) and reaps it: a
/// destructor cannot wait for `quit`.
pub struct Qemu<R: Runtime> {
    qmp: Qmp<R>,
    process: Process,
    pid: u32,
    program: String,
    stderr: StderrTail,
    stop_timeout: Duration,
}

impl<R: Runtime> Qemu<R> {
    /// A builder with the defaults: `$QEMU` or `qemu-system-x86_64`,
    /// [`DEFAULT_ARGS`](qmp_os::launch::DEFAULT_ARGS), a private socketpair.
    pub fn builder() -> QemuBuilder<R> {
        QemuBuilder::default()
    }

    /// Starts QEMU with the default arguments plus `args`.
    pub async fn launch<I: IntoIterator<Item = A>, A: Into<OsString>>(args: I) -> Launched<R> {
        Qemu::builder().args(args).launch().await
    }

    /// The QMP handle (clone it to share it between tasks).
    pub fn qmp(&self) -> &Qmp<R> {
        &self.qmp
    }

    /// QEMU's process id (also the id of its process group).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The program that was started.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The end of what QEMU wrote to stderr so far, at most the builder's
    /// `stderr_tail` bytes.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// QEMU's exit status if it has exited (reaping it).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        Ok(self.process.try_reap()?)
    }

    /// Waits at most `timeout` for QEMU to exit on its own.
    pub async fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, Error> {
        Ok(wait_exit::<R>(&mut self.process, timeout).await?)
    }

    /// Stops QEMU: `quit`, then SIGTERM, then SIGKILL, each stage bounded
    /// by the stop timeout. Returns how it exited.
    pub async fn shutdown(mut self) -> Result<ExitStatus, Error> {
        if let Some(status) = self.process.try_reap()? {
            self.qmp.disconnect();
            return Ok(status);
        }
        let t = self.stop_timeout;
        if !self.qmp.is_closed() {
            match self.qmp.with_timeout(t).execute("quit", None).await {
                Ok(_) => debug!("QEMU pid {} accepted quit", self.pid),
                Err(e) => debug!("QEMU pid {}: quit failed: {e}", self.pid),
            }
        }
        self.qmp.disconnect();
        if let Some(status) = wait_exit::<R>(&mut self.process, t).await? {
            return Ok(status);
        }
        warn!(
            "QEMU pid {} still runs {t:?} after quit; sending SIGTERM",
            self.pid
        );
        self.process.terminate();
        if let Some(status) = wait_exit::<R>(&mut self.process, t).await? {
            return Ok(status);
        }
        warn!(
            "QEMU pid {} ignored SIGTERM for {t:?}; sending SIGKILL",
            self.pid
        );
        Ok(self.process.kill()?)
    }

    /// Kills QEMU (and its process group) with SIGKILL at once and reaps it.
    pub fn kill(mut self) -> Result<ExitStatus, Error> {
        self.qmp.disconnect();
        Ok(self.process.kill()?)
    }
}

impl<R: Runtime> Deref for Qemu<R> {
    type Target = Qmp<R>;

    fn deref(&self) -> &Qmp<R> {
        &self.qmp
    }
}

impl<R: Runtime> fmt::Debug for Qemu<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Qemu")
            .field("pid", &self.pid)
            .field("program", &self.program)
            .field("qmp", &self.qmp)
            .finish()
    }
}

impl<R: Runtime> Drop for Qemu<R> {
    fn drop(&mut self) {
        if !self.process.is_reaped() {
            self.qmp.disconnect();
            if let Err(e) = self.process.kill() {
                warn!("killing QEMU pid {}: {e}", self.pid);
            }
        }
    }
}
