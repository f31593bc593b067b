//! Starting QEMU with a private QMP socket, and stopping it for sure. The
//! builder, the process and its stderr are `qmp_os::launch`'s, shared
//! with the async launchers; this file connects and waits, blocking.

use std::ffi::OsString;
use std::ops::{Deref, DerefMut};
use std::os::unix::net::UnixListener;
use std::process::ExitStatus;
use std::time::{Duration, Instant as StdInstant};

use log::{debug, warn};
use qmp_os::Error;
use qmp_os::launch::{self, EXIT_GRACE, Endpoint, Launcher, Process, Started, StderrTail};

use crate::qmp::{Qmp, accept_unix_within};
use crate::stream::Socket;

pub use qmp_os::launch::{DEFAULT_ARGS, DEFAULT_PROGRAM, DEFAULT_STDERR_TAIL, QmpSocket};

/// Configures and starts a [`Qemu`]; `launch()` blocks until QEMU serves QMP.
///
/// ```no_run
/// # fn main() -> Result<(), qmp_std::Error> {
/// let qemu = qmp_std::Qemu::builder()
///     .program("qemu-system-aarch64")
///     .args(["-machine", "virt", "-S"])
///     .no_default_args()
///     .launch()?;
/// # Ok(()) }
/// ```
pub type QemuBuilder = launch::QemuBuilder<Blocking>;

/// The blocking way of launching, which [`QemuBuilder::launch`] uses.
#[derive(Debug)]
pub struct Blocking;

impl Launcher for Blocking {
    type Output = Result<Qemu, Error>;

    fn launch(builder: QemuBuilder) -> Result<Qemu, Error> {
        let prepared = builder.prepare()?;
        // Bound before QEMU starts: QEMU connects as soon as it runs.
        let listener = match &prepared.endpoint {
            Endpoint::Listen(path, _) => match UnixListener::bind(path) {
                Ok(l) => Some(l),
                Err(e) => return Err(prepared.error(Error::Io(e))),
            },
            _ => None,
        };
        let (mut started, endpoint) = prepared.spawn()?;
        let options = builder.get_options();
        let connected = match (endpoint, listener) {
            (Endpoint::Pair(ours), _) => Qmp::from_stream(Socket::Unix(ours), options.clone()),
            (Endpoint::Listen(_, dir), Some(listener)) => {
                let accepted =
                    accept_from_child(&listener, &mut started.process, options.connect_timeout);
                drop(dir);
                accepted.and_then(|s| Qmp::from_stream(Socket::Unix(s), options.clone()))
            }
            _ => unreachable!("every endpoint is handled"),
        };
        match connected {
            Ok(qmp) => {
                if let Some(g) = qmp.greeting() {
                    debug!("QEMU {} running as pid {}", g.version, started.process.id());
                }
                Ok(Qemu {
                    qmp,
                    pid: started.process.id(),
                    process: started.process,
                    program: started.program,
                    stderr: started.stderr,
                    stop_timeout: builder.get_stop_timeout(),
                })
            }
            Err(cause) => {
                // Give a failing QEMU a moment to exit and say why; one
                // that hangs instead is killed, with its process group.
                let status = started.process.wait_timeout(EXIT_GRACE).ok().flatten();
                Err(Started::failure(started, cause, status))
            }
        }
    }
}

/// A running QEMU with a connected QMP client.
///
/// `Qemu` dereferences to its [`Qmp`] client, so `qemu.call(&QueryStatus)`
/// works directly. [`shutdown`](Self::shutdown) stops it with bounded
/// escalation: `quit`, then SIGTERM, then SIGKILL, waiting at most the
/// stop timeout at each stage; the child is always reaped. Dropping a
/// `Qemu` does the same.
///
/// QEMU leads a process group of its own: the signals go to the whole
/// group, so they reach whatever QEMU started too, and whatever is left
/// in the group when QEMU has exited is killed before QEMU is reaped.
/// On Linux QEMU is also killed (SIGKILL) when the process that launched
/// it dies, however it dies: see [the crate docs](crate#notes).
#[derive(Debug)]
pub struct Qemu {
    qmp: Qmp,
    process: Process,
    pid: u32,
    program: String,
    stderr: StderrTail,
    stop_timeout: Duration,
}

impl Qemu {
    /// A builder with the defaults: `$QEMU` or `qemu-system-x86_64`,
    /// [`DEFAULT_ARGS`], a private socketpair.
    pub fn builder() -> QemuBuilder {
        QemuBuilder::default()
    }

    /// Starts QEMU with [`DEFAULT_ARGS`] plus `args`.
    pub fn launch<I: IntoIterator<Item = A>, A: Into<OsString>>(args: I) -> Result<Qemu, Error> {
        Qemu::builder().args(args).launch()
    }

    /// The QMP client.
    pub fn qmp(&mut self) -> &mut Qmp {
        &mut self.qmp
    }

    /// QEMU's process id (also the id of its process group).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The program that was started.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The end of what QEMU wrote to stderr so far: at most
    /// [`QemuBuilder::stderr_tail`] bytes, starting at a line's start
    /// unless one line is longer than that.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// QEMU's exit status if it has exited (reaping it).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        Ok(self.process.try_reap()?)
    }

    /// Waits at most `timeout` for QEMU to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, Error> {
        Ok(self.process.wait_timeout(timeout)?)
    }

    /// Stops QEMU: `quit`, then SIGTERM, then SIGKILL, each stage bounded
    /// by the stop timeout. Returns how it exited.
    pub fn shutdown(mut self) -> Result<ExitStatus, Error> {
        self.stop()
    }

    /// Kills QEMU (and its process group) with SIGKILL at once and reaps it.
    pub fn kill(mut self) -> Result<ExitStatus, Error> {
        let status = self.process.kill()?;
        self.qmp.abandon();
        Ok(status)
    }

    fn stop(&mut self) -> Result<ExitStatus, Error> {
        if let Some(status) = self.process.try_reap()? {
            self.qmp.abandon();
            return Ok(status);
        }
        let t = self.stop_timeout;
        if !self.qmp.is_closed() {
            match self.qmp.with_timeout(t).execute("quit", None) {
                Ok(_) => debug!("QEMU pid {} accepted quit", self.pid),
                Err(e) => debug!("QEMU pid {}: quit failed: {e}", self.pid),
            }
        }
        self.qmp.abandon();
        if let Some(status) = self.process.wait_timeout(t)? {
            return Ok(status);
        }
        warn!(
            "QEMU pid {} still runs {t:?} after quit; sending SIGTERM",
            self.pid
        );
        self.process.terminate();
        if let Some(status) = self.process.wait_timeout(t)? {
            return Ok(status);
        }
        warn!(
            "QEMU pid {} ignored SIGTERM for {t:?}; sending SIGKILL",
            self.pid
        );
        Ok(self.process.kill()?)
    }
}

impl Deref for Qemu {
    type Target = Qmp;

    fn deref(&self) -> &Qmp {
        &self.qmp
    }
}

impl DerefMut for Qemu {
    fn deref_mut(&mut self) -> &mut Qmp {
        &mut self.qmp
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if !self.process.is_reaped()
            && let Err(e) = self.stop()
        {
            warn!("stopping QEMU pid {}: {e}", self.pid);
            let _ = self.process.kill();
        }
    }
}

/// Accepts QEMU's connection, giving up early when QEMU exits first.
fn accept_from_child(
    listener: &UnixListener,
    child: &mut Process,
    timeout: Duration,
) -> Result<std::os::unix::net::UnixStream, Error> {
    let deadline = StdInstant::now() + timeout;
    loop {
        let slice = deadline
            .saturating_duration_since(StdInstant::now())
            .min(Duration::from_millis(50));
        match accept_unix_within(listener, "QEMU's QMP socket", slice) {
            Ok(s) => return Ok(s),
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e),
        }
        if let Some(status) = child.try_reap()? {
            return Err(launch::exited_before_connecting(status));
        }
        if StdInstant::now() >= deadline {
            return Err(launch::did_not_connect(timeout));
        }
    }
}
