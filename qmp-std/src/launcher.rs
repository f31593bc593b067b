//! Starting QEMU with a private QMP socket, and stopping it for sure.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant as StdInstant};

use log::{debug, warn};

use crate::qmp::{Qmp, accept_unix_within};
use crate::stream::Socket;
use qmp_os::{Error, LaunchError, Options};

/// The binary started when neither [`QemuBuilder::program`] nor `$QEMU` says otherwise.
pub const DEFAULT_PROGRAM: &str = "qemu-system-x86_64";

/// The arguments every launch starts with unless
/// [`QemuBuilder::no_default_args`]: no machine, no devices, no display.
pub const DEFAULT_ARGS: &[&str] = &["-machine", "none", "-nodefaults", "-display", "none"];

/// The chardev id of the private QMP monitor.
const CHARDEV_ID: &str = "qmp-std";

/// How QEMU's private QMP connection is made. Neither way has a race
/// with QEMU's start-up: the socket exists before QEMU does.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QmpSocket {
    /// A socketpair: QEMU's end is its stdin, opened as
    /// `-chardev socket,fd=0`. No file is created. QEMU's stdin is then
    /// taken: use [`QmpSocket::Listen`] with `stdio` chardevs.
    #[default]
    Pair,
    /// A Unix socket listening in a private directory; QEMU connects to it
    /// (`-chardev socket,path=...,server=off`). The socket file and the
    /// directory are removed as soon as QEMU has connected.
    Listen,
}

/// Configures and starts a [`Qemu`].
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
#[derive(Clone, Debug)]
pub struct QemuBuilder {
    program: Option<OsString>,
    default_args: bool,
    args: Vec<OsString>,
    options: Options,
    socket: QmpSocket,
    stderr_lines: usize,
    stop_timeout: Duration,
}

impl Default for QemuBuilder {
    fn default() -> Self {
        QemuBuilder {
            program: None,
            default_args: true,
            args: Vec::new(),
            options: Options::default(),
            socket: QmpSocket::default(),
            stderr_lines: 20,
            stop_timeout: Duration::from_secs(5),
        }
    }
}

impl QemuBuilder {
    /// The binary to run; by default `$QEMU`, else [`DEFAULT_PROGRAM`].
    pub fn program(mut self, program: impl Into<OsString>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// Adds one argument after [`DEFAULT_ARGS`].
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments after [`DEFAULT_ARGS`].
    pub fn args<I: IntoIterator<Item = A>, A: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Leaves out [`DEFAULT_ARGS`]; only your arguments (and the QMP
    /// socket's) are passed.
    pub fn no_default_args(mut self) -> Self {
        self.default_args = false;
        self
    }

    /// Options of the QMP connection. Its handshake timeout bounds QEMU's
    /// start-up; in [`QmpSocket::Listen`] mode, its connect timeout bounds
    /// the wait for QEMU to connect.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// How the QMP socket is made (default [`QmpSocket::Pair`]).
    pub fn socket(mut self, socket: QmpSocket) -> Self {
        self.socket = socket;
        self
    }

    /// How many of QEMU's last stderr lines to keep for error messages
    /// (default 20).
    pub fn stderr_lines(mut self, lines: usize) -> Self {
        self.stderr_lines = lines.max(1);
        self
    }

    /// The bound of each shutdown stage: `quit`, then SIGTERM, then
    /// SIGKILL (default 5 s each).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// The program that would run.
    pub fn get_program(&self) -> OsString {
        self.program
            .clone()
            .or_else(|| std::env::var_os("QEMU"))
            .unwrap_or_else(|| DEFAULT_PROGRAM.into())
    }

    /// Starts QEMU and connects to its QMP monitor.
    ///
    /// When QEMU exits or fails to serve QMP, the error is
    /// [`Error::Launch`] with its exit status and the last lines it wrote
    /// to stderr; no process is left behind.
    pub fn launch(self) -> Result<Qemu, Error> {
        let program = self.get_program();
        let shown = program.to_string_lossy().into_owned();
        let launch_error = |cause: Error, status, stderr: String| {
            Error::Launch(LaunchError {
                program: shown.clone(),
                status,
                stderr,
                cause: Box::new(cause),
            })
        };
        let mut cmd = Command::new(&program);
        if self.default_args {
            cmd.args(DEFAULT_ARGS);
        }
        cmd.args(&self.args);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let endpoint = Endpoint::attach(self.socket, &mut cmd)
            .map_err(|e| launch_error(e, None, String::new()))?;
        debug!("launching {cmd:?}");
        let spawned = cmd.spawn();
        // The command holds QEMU's end of the socketpair: close our copy so
        // QEMU's exit is seen as the end of the stream.
        drop(cmd);
        let mut child = spawned.map_err(|e| {
            let e = std::io::Error::new(e.kind(), format!("cannot start {shown}: {e}"));
            launch_error(Error::Io(e), None, String::new())
        })?;
        let tail = Arc::new((Mutex::new(Tail::default()), Condvar::new()));
        if let Some(stderr) = child.stderr.take() {
            spawn_reader(stderr, child.id(), self.stderr_lines, Arc::clone(&tail));
        }
        match endpoint.connect(&mut child, &self.options) {
            Ok(qmp) => {
                if let Some(g) = qmp.greeting() {
                    debug!("QEMU {} running as pid {}", g.version, child.id());
                }
                Ok(Qemu {
                    qmp,
                    pid: child.id(),
                    child,
                    reaped: None,
                    program: shown,
                    tail,
                    stop_timeout: self.stop_timeout,
                })
            }
            Err(cause) => {
                // Give a failing QEMU a moment to exit and say why; one
                // that hangs instead is killed. Either way it is reaped.
                let status = wait_exit(&mut child, Duration::from_secs(2)).ok().flatten();
                if status.is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                let stderr = tail_text(&tail, Duration::from_secs(1));
                Err(launch_error(cause, status, stderr))
            }
        }
    }
}

/// Our end of QEMU's QMP socket while QEMU starts.
enum Endpoint {
    /// One end of a socketpair; QEMU has the other as its stdin.
    Pair(UnixStream),
    /// A listener QEMU connects to, in a private directory.
    Listen(UnixListener, PrivateDir),
}

impl Endpoint {
    /// Makes the socket and adds the arguments that hand it to QEMU.
    fn attach(kind: QmpSocket, cmd: &mut Command) -> Result<Endpoint, Error> {
        let (endpoint, chardev) = match kind {
            QmpSocket::Pair => {
                let (ours, theirs) = UnixStream::pair()?;
                cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
                (Endpoint::Pair(ours), format!("socket,id={CHARDEV_ID},fd=0"))
            }
            QmpSocket::Listen => {
                let dir = PrivateDir::new()?;
                let path = dir.path.join("qmp.sock");
                let listener = UnixListener::bind(&path)?;
                let Some(text) = path.to_str() else {
                    return Err(Error::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("the socket path {} is not UTF-8", path.display()),
                    )));
                };
                // QEMU's option syntax escapes a comma by doubling it.
                let text = text.replace(',', ",,");
                cmd.stdin(Stdio::null());
                let chardev = format!("socket,id={CHARDEV_ID},path={text},server=off");
                (Endpoint::Listen(listener, dir), chardev)
            }
        };
        cmd.arg("-chardev").arg(chardev);
        cmd.arg("-mon")
            .arg(format!("chardev={CHARDEV_ID},mode=control"));
        Ok(endpoint)
    }

    /// Connects to the QEMU `child` just started and negotiates.
    fn connect(self, child: &mut Child, options: &Options) -> Result<Qmp, Error> {
        match self {
            Endpoint::Pair(ours) => Qmp::from_stream(Socket::Unix(ours), options.clone()),
            Endpoint::Listen(listener, dir) => {
                let accepted = accept_from_child(&listener, child, options.connect_timeout);
                drop(listener);
                drop(dir);
                accepted.and_then(|s| Qmp::from_stream(Socket::Unix(s), options.clone()))
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
#[derive(Debug)]
pub struct Qemu {
    qmp: Qmp,
    child: Child,
    pid: u32,
    reaped: Option<ExitStatus>,
    program: String,
    tail: Arc<(Mutex<Tail>, Condvar)>,
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

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The program that was started.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The last lines QEMU wrote to stderr so far.
    pub fn stderr(&self) -> String {
        let tail = lock(&self.tail.0);
        tail.lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// QEMU's exit status if it has exited (reaping it).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        if self.reaped.is_none() {
            self.reaped = self.child.try_wait()?;
        }
        Ok(self.reaped)
    }

    /// Waits at most `timeout` for QEMU to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, Error> {
        if self.reaped.is_none() {
            self.reaped = wait_exit(&mut self.child, timeout)?;
        }
        Ok(self.reaped)
    }

    /// Stops QEMU: `quit`, then SIGTERM, then SIGKILL, each stage bounded
    /// by the stop timeout. Returns how it exited.
    pub fn shutdown(mut self) -> Result<ExitStatus, Error> {
        self.stop()
    }

    /// Kills QEMU with SIGKILL at once and reaps it.
    pub fn kill(mut self) -> Result<ExitStatus, Error> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        self.child.kill()?;
        let status = self.child.wait()?;
        self.reaped = Some(status);
        self.qmp.abandon();
        Ok(status)
    }

    fn stop(&mut self) -> Result<ExitStatus, Error> {
        if let Some(status) = self.try_wait()? {
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
        if let Some(status) = self.wait_timeout(t)? {
            return Ok(status);
        }
        warn!(
            "QEMU pid {} still runs {t:?} after quit; sending SIGTERM",
            self.pid
        );
        if let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if let Some(status) = self.wait_timeout(t)? {
            return Ok(status);
        }
        warn!(
            "QEMU pid {} ignored SIGTERM for {t:?}; sending SIGKILL",
            self.pid
        );
        let _ = self.child.kill();
        let status = self.child.wait()?;
        self.reaped = Some(status);
        Ok(status)
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
        if self.reaped.is_none()
            && let Err(e) = self.stop()
        {
            warn!("stopping QEMU pid {}: {e}", self.pid);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits at most `timeout` for the child to exit, reaping it.
fn wait_exit(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = StdInstant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if StdInstant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Accepts QEMU's connection, giving up early when QEMU exits first.
fn accept_from_child(
    listener: &UnixListener,
    child: &mut Child,
    timeout: Duration,
) -> Result<UnixStream, Error> {
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
        if let Some(status) = child.try_wait()? {
            return Err(Error::Io(std::io::Error::other(format!(
                "QEMU exited ({status}) before connecting to its QMP socket"
            ))));
        }
        if StdInstant::now() >= deadline {
            return Err(Error::Timeout {
                waiting_for: "QEMU to connect to its QMP socket".into(),
                after: timeout,
            });
        }
    }
}

/// The last lines of QEMU's stderr, and whether the pipe has closed.
#[derive(Debug, Default)]
struct Tail {
    lines: VecDeque<String>,
    closed: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads QEMU's stderr on a thread: logged line by line, the last `keep`
/// lines kept for error messages. The thread ends when QEMU (and anything
/// that inherited the pipe) has closed it.
fn spawn_reader(stderr: ChildStderr, pid: u32, keep: usize, tail: Arc<(Mutex<Tail>, Condvar)>) {
    let spawned = std::thread::Builder::new()
        .name(format!("qemu-{pid}-stderr"))
        .spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                        debug!("qemu[{pid}] stderr: {text}");
                        let mut t = lock(&tail.0);
                        if t.lines.len() == keep {
                            t.lines.pop_front();
                        }
                        t.lines.push_back(text);
                    }
                }
            }
            lock(&tail.0).closed = true;
            tail.1.notify_all();
        });
    if let Err(e) = spawned {
        warn!("cannot start a thread to read QEMU's stderr: {e}");
    }
}

/// QEMU's last stderr lines, once the pipe closed or `timeout` passed.
fn tail_text(tail: &Arc<(Mutex<Tail>, Condvar)>, timeout: Duration) -> String {
    let deadline = StdInstant::now() + timeout;
    let mut t = lock(&tail.0);
    while !t.closed {
        let left = deadline.saturating_duration_since(StdInstant::now());
        if left.is_zero() {
            break;
        }
        t = tail
            .1
            .wait_timeout(t, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    t.lines.iter().map(|l| format!("{l}\n")).collect()
}

/// A private (0700) directory for a socket file, removed on drop.
#[derive(Debug)]
struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    fn new() -> std::io::Result<Self> {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("qmp-std-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
