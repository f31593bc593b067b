//! What every adapter's QEMU launcher shares: the builder, the command
//! line, the private QMP socket, starting QEMU in a process group of its
//! own that dies with its parent, the bounded tail of its stderr, and the
//! signals that stop it. The adapters add only the connecting and the
//! waiting, each in its own way (blocking, or on an async runtime).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant as StdInstant};

use log::{debug, warn};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process_group, waitid};

use crate::error::{Error, LaunchError};
use crate::options::Options;

/// The binary started when neither [`QemuBuilder::program`] nor `$QEMU` says otherwise.
pub const DEFAULT_PROGRAM: &str = "qemu-system-x86_64";

/// The arguments every launch starts with unless
/// [`QemuBuilder::no_default_args`]: no machine, no devices, no display.
pub const DEFAULT_ARGS: &[&str] = &["-machine", "none", "-nodefaults", "-display", "none"];

/// How much of the end of QEMU's stderr is kept unless
/// [`QemuBuilder::stderr_tail`] says otherwise: 64 KiB.
pub const DEFAULT_STDERR_TAIL: usize = 64 * 1024;

/// The chardev id of the private QMP monitor.
const CHARDEV_ID: &str = "qmp-std";

/// How long a QEMU that failed to serve QMP is given to exit and say why
/// before it is killed.
pub const EXIT_GRACE: Duration = Duration::from_secs(2);

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

/// An adapter's way of launching: what [`QemuBuilder::launch`] does with
/// the settings (blocking, or a future on an async runtime).
pub trait Launcher: Sized {
    /// What `launch` returns.
    type Output;
    /// Starts QEMU as `builder` says and connects to it.
    fn launch(builder: QemuBuilder<Self>) -> Self::Output;
}

/// Configures and starts a QEMU; the same builder in every adapter
/// (`qmp_std::QemuBuilder`, `qmp_smol::QemuBuilder`,
/// `qmp_tokio::QemuBuilder`), whose `launch` the adapter's `L` provides.
pub struct QemuBuilder<L> {
    program: Option<OsString>,
    default_args: bool,
    args: Vec<OsString>,
    options: Options,
    socket: QmpSocket,
    stderr_tail: usize,
    stop_timeout: Duration,
    launcher: PhantomData<fn() -> L>,
}

impl<L> Clone for QemuBuilder<L> {
    fn clone(&self) -> Self {
        QemuBuilder {
            program: self.program.clone(),
            default_args: self.default_args,
            args: self.args.clone(),
            options: self.options.clone(),
            socket: self.socket,
            stderr_tail: self.stderr_tail,
            stop_timeout: self.stop_timeout,
            launcher: PhantomData,
        }
    }
}

impl<L> fmt::Debug for QemuBuilder<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QemuBuilder")
            .field("program", &self.get_program())
            .field("default_args", &self.default_args)
            .field("args", &self.args)
            .field("options", &self.options)
            .field("socket", &self.socket)
            .field("stderr_tail", &self.stderr_tail)
            .field("stop_timeout", &self.stop_timeout)
            .finish()
    }
}

impl<L> Default for QemuBuilder<L> {
    fn default() -> Self {
        QemuBuilder {
            program: None,
            default_args: true,
            args: Vec::new(),
            options: Options::default(),
            socket: QmpSocket::default(),
            stderr_tail: DEFAULT_STDERR_TAIL,
            stop_timeout: Duration::from_secs(5),
            launcher: PhantomData,
        }
    }
}

impl<L: Launcher> QemuBuilder<L> {
    /// Starts QEMU and connects to its QMP monitor.
    ///
    /// When QEMU exits or fails to serve QMP, the error is
    /// [`Error::Launch`] with its exit status and the end of what it wrote
    /// to stderr; no process is left behind.
    pub fn launch(self) -> L::Output {
        L::launch(self)
    }
}

impl<L> QemuBuilder<L> {
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

    /// How many bytes of the end of QEMU's stderr to keep for error
    /// messages (default [`DEFAULT_STDERR_TAIL`], at least 1). Memory is
    /// bounded by this, whatever QEMU writes: a line longer than the tail
    /// keeps only its end.
    pub fn stderr_tail(mut self, bytes: usize) -> Self {
        self.stderr_tail = bytes.max(1);
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

    /// The connection's options.
    pub fn get_options(&self) -> &Options {
        &self.options
    }

    /// The bound of each shutdown stage.
    pub fn get_stop_timeout(&self) -> Duration {
        self.stop_timeout
    }

    /// The command line and the private socket, ready to
    /// [`spawn`](Prepared::spawn) (for an adapter's `launch`).
    pub fn prepare(&self) -> Result<Prepared, Error> {
        let program = self.get_program();
        let shown = program.to_string_lossy().into_owned();
        let mut cmd = Command::new(&program);
        if self.default_args {
            cmd.args(DEFAULT_ARGS);
        }
        cmd.args(&self.args);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let endpoint = Endpoint::attach(self.socket, &mut cmd)
            .map_err(|e| launch_error(&shown, e, None, String::new()))?;
        Ok(Prepared {
            cmd,
            endpoint,
            program: shown,
            stderr_tail: self.stderr_tail,
        })
    }
}

fn launch_error(program: &str, cause: Error, status: Option<ExitStatus>, stderr: String) -> Error {
    Error::Launch(LaunchError {
        program: program.into(),
        status,
        stderr,
        cause: Box::new(cause),
    })
}

/// A QEMU about to start: its command line and our end of its socket.
#[derive(Debug)]
pub struct Prepared {
    cmd: Command,
    /// Our end of QEMU's QMP socket. For [`Endpoint::Listen`], bind the
    /// listener before [`spawn`](Self::spawn).
    pub endpoint: Endpoint,
    program: String,
    stderr_tail: usize,
}

impl Prepared {
    /// The launch error for `cause`, met before QEMU started (binding the
    /// listener failed, say).
    pub fn error(&self, cause: Error) -> Error {
        launch_error(&self.program, cause, None, String::new())
    }

    /// Starts QEMU: in a process group of its own, killed (SIGKILL) when
    /// this process ends (Linux), its stderr read on a thread into a
    /// bounded tail. The endpoint is handed back for connecting.
    pub fn spawn(self) -> Result<(Started, Endpoint), Error> {
        let Prepared {
            cmd,
            endpoint,
            program,
            stderr_tail,
        } = self;
        debug!("launching {cmd:?}");
        // The command holds QEMU's end of the socketpair; the spawner
        // drops it once QEMU runs, so QEMU's exit is seen as the end of
        // the stream.
        let mut child = spawner::spawn(cmd).map_err(|e| {
            let e = std::io::Error::new(e.kind(), format!("cannot start {program}: {e}"));
            launch_error(&program, Error::Io(e), None, String::new())
        })?;
        let stderr = StderrTail(Arc::new((
            Mutex::new(Tail::new(stderr_tail)),
            Condvar::new(),
        )));
        if let Some(pipe) = child.stderr.take() {
            spawn_reader(pipe, child.id(), stderr.0.clone());
        }
        let started = Started {
            process: Process::new(child),
            stderr,
            program,
        };
        Ok((started, endpoint))
    }
}

/// The end of what QEMU wrote to stderr, kept by a reader thread: at
/// most the builder's [`stderr_tail`](QemuBuilder::stderr_tail) bytes.
#[derive(Clone, Debug)]
pub struct StderrTail(Arc<(Mutex<Tail>, Condvar)>);

impl StderrTail {
    /// The text so far, starting at a line's start unless one line is
    /// longer than the tail.
    pub fn text(&self) -> String {
        lock(&self.0.0).text()
    }

    /// The text once QEMU (and whatever inherited its stderr) closed the
    /// pipe, or once `timeout` passed (blocking).
    pub fn text_when_closed(&self, timeout: Duration) -> String {
        tail_text(&self.0, timeout)
    }
}

/// A QEMU just started: its process, its stderr, its program's name.
#[derive(Debug)]
pub struct Started {
    /// The process.
    pub process: Process,
    /// The end of its stderr.
    pub stderr: StderrTail,
    /// The program, as shown in messages.
    pub program: String,
}

impl Started {
    /// The error for a launch that failed with `cause` on this side, once
    /// QEMU's exit `status` is known (`None`: it was killed): QEMU's own
    /// words (the end of its stderr) included. Kills and reaps QEMU if
    /// it still runs.
    pub fn failure(mut self, cause: Error, status: Option<ExitStatus>) -> Error {
        let status = status.or_else(|| self.process.try_reap().ok().flatten());
        if status.is_none() {
            let _ = self.process.kill();
        }
        let stderr = self.stderr.text_when_closed(Duration::from_secs(1));
        launch_error(&self.program, cause, status, stderr)
    }
}

/// Our end of QEMU's QMP socket while QEMU starts.
#[derive(Debug)]
#[non_exhaustive]
pub enum Endpoint {
    /// One end of a socketpair; QEMU has the other as its stdin.
    Pair(UnixStream),
    /// The path QEMU connects to, in a private directory that is removed
    /// when the [`PrivateDir`] is dropped.
    Listen(PathBuf, PrivateDir),
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
                (Endpoint::Listen(path, dir), chardev)
            }
        };
        cmd.arg("-chardev").arg(chardev);
        cmd.arg("-mon")
            .arg(format!("chardev={CHARDEV_ID},mode=control"));
        Ok(endpoint)
    }
}

/// The error for a QEMU that exited with `status` before connecting.
pub fn exited_before_connecting(status: ExitStatus) -> Error {
    Error::Io(std::io::Error::other(format!(
        "QEMU exited ({status}) before connecting to its QMP socket"
    )))
}

/// The error for a QEMU that did not connect within `after`.
pub fn did_not_connect(after: Duration) -> Error {
    Error::Timeout {
        waiting_for: "QEMU to connect to its QMP socket".into(),
        after,
    }
}
/// QEMU's process, which leads its own process group.
///
/// The group is signalled only while QEMU is not yet reaped: until then
/// its pid, which is the group's id, cannot name anything else.
#[derive(Debug)]
pub struct Process {
    child: Child,
    reaped: Option<ExitStatus>,
}

impl Process {
    pub(crate) fn new(child: Child) -> Self {
        Process {
            child,
            reaped: None,
        }
    }

    /// QEMU's process id (also the id of its process group).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    fn pid(&self) -> Option<Pid> {
        i32::try_from(self.child.id()).ok().and_then(Pid::from_raw)
    }

    /// Whether QEMU has been reaped.
    pub fn is_reaped(&self) -> bool {
        self.reaped.is_some()
    }

    /// Sends `signal` to QEMU's process group, unless QEMU is reaped.
    fn signal_group(&self, signal: Signal) {
        if self.reaped.is_none()
            && let Some(pid) = self.pid()
        {
            let _ = kill_process_group(pid, signal);
        }
    }

    /// Whether QEMU has exited, without reaping it.
    fn has_exited(&self) -> std::io::Result<bool> {
        let Some(pid) = self.pid() else {
            return Ok(true);
        };
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        Ok(waitid(WaitId::Pid(pid), options)?.is_some())
    }

    /// Reaps QEMU if it has exited, killing what it left in its group
    /// first.
    pub fn try_reap(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if self.reaped.is_none() && self.has_exited()? {
            self.signal_group(Signal::KILL);
            self.reaped = Some(self.child.wait()?);
        }
        Ok(self.reaped)
    }

    /// Sends SIGTERM to QEMU's process group, unless QEMU is reaped.
    pub fn terminate(&self) {
        self.signal_group(Signal::TERM);
    }

    /// Waits at most `timeout` for QEMU to exit, reaping it (blocking:
    /// it checks every 5 ms).
    pub fn wait_timeout(&mut self, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
        let deadline = StdInstant::now() + timeout;
        loop {
            if let Some(status) = self.try_reap()? {
                return Ok(Some(status));
            }
            if StdInstant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills QEMU's whole group with SIGKILL and reaps QEMU.
    pub fn kill(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.reaped {
            return Ok(status);
        }
        self.signal_group(Signal::KILL);
        // QEMU itself too, should the group be out of reach: the wait
        // below must not hang.
        let _ = self.child.kill();
        let status = self.child.wait()?;
        self.reaped = Some(status);
        Ok(status)
    }
}

/// The end of QEMU's stderr, bounded in bytes, and whether the pipe has
/// closed.
#[derive(Debug)]
struct Tail {
    bytes: VecDeque<u8>,
    limit: usize,
    /// Whether bytes were dropped from the front.
    cut: bool,
    closed: bool,
}

impl Tail {
    fn new(limit: usize) -> Self {
        Tail {
            bytes: VecDeque::new(),
            limit,
            cut: false,
            closed: false,
        }
    }

    /// Appends `chunk`, dropping the oldest bytes beyond the limit.
    fn push(&mut self, chunk: &[u8]) {
        let chunk = if chunk.len() > self.limit {
            self.cut = true;
            self.bytes.clear();
            &chunk[chunk.len() - self.limit..]
        } else {
            chunk
        };
        let over = (self.bytes.len() + chunk.len()).saturating_sub(self.limit);
        if over > 0 {
            self.cut = true;
            self.bytes.drain(..over);
        }
        self.bytes.extend(chunk);
    }

    /// The kept text. After a cut it starts at the first whole line, or,
    /// when the tail holds no line start, at the first whole character.
    fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut bytes = [a, b].concat();
        if self.cut {
            let start = match bytes.iter().position(|&b| b == b'\n') {
                Some(nl) if nl + 1 < bytes.len() => nl + 1,
                _ => bytes.iter().take_while(|&&b| b & 0xC0 == 0x80).count(),
            };
            bytes.drain(..start);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The most of one stderr line that is logged.
const LOGGED_LINE: usize = 4096;

/// Reads QEMU's stderr on a thread: logged line by line (a long line cut
/// at [`LOGGED_LINE`] bytes), the end kept in `tail` for error messages.
/// Memory stays bounded whatever QEMU writes. The thread ends when QEMU
/// (and anything that inherited the pipe) has closed it.
fn spawn_reader(mut stderr: ChildStderr, pid: u32, tail: Arc<(Mutex<Tail>, Condvar)>) {
    let spawned = std::thread::Builder::new()
        .name(format!("qemu-{pid}-stderr"))
        .spawn(move || {
            let mut chunk = vec![0; 16 * 1024];
            let mut line = Vec::new();
            loop {
                let n = match stderr.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                lock(&tail.0).push(&chunk[..n]);
                if log::log_enabled!(log::Level::Debug) {
                    log_lines(pid, &mut line, &chunk[..n]);
                }
            }
            if !line.is_empty() {
                debug!("qemu[{pid}] stderr: {}", String::from_utf8_lossy(&line));
            }
            lock(&tail.0).closed = true;
            tail.1.notify_all();
        });
    if let Err(e) = spawned {
        warn!("cannot start a thread to read QEMU's stderr: {e}");
    }
}

/// Logs each line `chunk` completes; `line` holds the start of an
/// unfinished one (at most [`LOGGED_LINE`] bytes).
fn log_lines(pid: u32, line: &mut Vec<u8>, chunk: &[u8]) {
    for piece in chunk.split_inclusive(|&b| b == b'\n') {
        let room = LOGGED_LINE.saturating_sub(line.len());
        line.extend_from_slice(&piece[..piece.len().min(room)]);
        if piece.ends_with(b"\n") {
            let text = String::from_utf8_lossy(line);
            debug!("qemu[{pid}] stderr: {}", text.trim_end());
            line.clear();
        }
    }
}

/// The end of QEMU's stderr, once the pipe closed or `timeout` passed.
fn tail_text(tail: &(Mutex<Tail>, Condvar), timeout: Duration) -> String {
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
    t.text()
}

/// A private (0700) directory for a socket file, removed on drop.
#[derive(Debug)]
pub struct PrivateDir {
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

/// Where every QEMU is forked: one thread that lives as long as the
/// process.
///
/// Linux sends the parent-death signal when the *thread* that forked the
/// child ends, not the process. A QEMU forked by a short-lived thread
/// (a worker, a test's own thread) would be killed as that thread ends;
/// one forked here is killed only when the whole process ends.
mod spawner {
    use std::io;
    use std::process::{Child, Command};
    use std::sync::Mutex;
    use std::sync::mpsc::{Sender, channel};

    use rustix::process::{Pid, getpid};

    /// A command to start, and where its child goes.
    type Job = (Command, Sender<io::Result<Child>>);

    /// The spawning thread of process `pid` (a forked copy of this
    /// process has no such thread and starts its own).
    struct Spawner {
        pid: Pid,
        jobs: Sender<Job>,
    }

    static SPAWNER: Mutex<Option<Spawner>> = Mutex::new(None);

    /// Starts `cmd` in a process group of its own, to be killed (SIGKILL)
    /// when this process ends, from the spawning thread. `cmd` is dropped
    /// before this returns.
    pub(super) fn spawn(mut cmd: Command) -> io::Result<Child> {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        die_with_parent(&mut cmd, getpid());
        let (reply, answer) = channel();
        jobs()?
            .send((cmd, reply))
            .map_err(|_| io::Error::other("the launcher's spawning thread is gone"))?;
        answer
            .recv()
            .map_err(|_| io::Error::other("the launcher's spawning thread is gone"))?
    }

    /// The queue of the spawning thread, started on first use.
    fn jobs() -> io::Result<Sender<Job>> {
        let mut spawner = super::lock(&SPAWNER);
        let me = getpid();
        if let Some(s) = spawner.as_ref().filter(|s| s.pid == me) {
            return Ok(s.jobs.clone());
        }
        let (jobs, queue) = channel::<Job>();
        std::thread::Builder::new()
            .name("qemu-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in queue {
                    let child = cmd.spawn();
                    // Close our copies of the child's descriptors (QEMU's
                    // end of the socketpair) before the caller goes on.
                    drop(cmd);
                    let _ = reply.send(child);
                }
            })?;
        *spawner = Some(Spawner {
            pid: me,
            jobs: jobs.clone(),
        });
        Ok(jobs)
    }

    /// Has the child ask for SIGKILL when its parent thread ends, between
    /// fork and exec; when `parent` died before that request took effect,
    /// the child exits instead of running on as an orphan.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn die_with_parent(cmd: &mut Command, parent: Pid) {
        use rustix::process::{Signal, getppid, set_parent_process_death_signal};
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the child between fork and exec,
        // where only async-signal-safe work is allowed. It makes two raw
        // system calls through rustix (prctl(PR_SET_PDEATHSIG) and
        // getppid, no libc state, no lock), compares two integers, and
        // builds its error from a raw errno (`io::Error` from an `Errno`
        // does not allocate). It touches no memory shared with other
        // threads of the parent.
        unsafe {
            cmd.pre_exec(move || {
                set_parent_process_death_signal(Some(Signal::KILL))?;
                if getppid() != Some(parent) {
                    // The parent died between fork and prctl: the signal
                    // will never come, so do not start.
                    return Err(rustix::io::Errno::SRCH.into());
                }
                Ok(())
            });
        }
    }

    /// Elsewhere there is no parent-death signal; the process group is
    /// all there is.
    #[cfg(not(target_os = "linux"))]
    fn die_with_parent(_: &mut Command, _: Pid) {}
}

#[cfg(test)]
mod tests {
    use super::Tail;

    #[test]
    fn the_tail_is_bounded_in_bytes_and_starts_at_a_line() {
        let mut t = Tail::new(8);
        t.push(b"ab\ncd\n");
        assert_eq!(t.text(), "ab\ncd\n");
        // Cut: the partial first line goes.
        t.push(b"ef\ngh\n");
        assert_eq!(t.bytes.len(), 8);
        assert_eq!(t.text(), "ef\ngh\n");
        // A line longer than the tail keeps its end.
        t.push(b"0123456789abcdef");
        assert_eq!(t.text(), "89abcdef");
        t.push(b"\n");
        assert_eq!(t.text(), "9abcdef\n");
        // A cut never leaves half a character.
        let mut t = Tail::new(3);
        t.push("x\u{e9}\u{e9}".as_bytes());
        assert_eq!(t.text(), "\u{e9}");
    }
}
