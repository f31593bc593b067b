//! Shared support for the end-to-end suites: finding and starting a real
//! QEMU and a real qemu-ga, and private temporary directories.
//!
//! Tests that need QEMU **fail** when it is missing: `scripts/test.sh`
//! installs it, and a silent skip would hide a broken setup.
//!
//! `$QEMU` and `$QEMU_GA` choose the binaries; `scripts/test.sh` runs the
//! suites once with the system's QEMU and once with a second version.
//! Every process a test starts is owned by a [`ChildGuard`]: killed and
//! reaped when the test ends, whether it passed or panicked, and killed by
//! the kernel if the test process itself dies.

pub mod exec;

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::ops::{Deref, DerefMut};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The QEMU binary: `$QEMU`, or `qemu-system-x86_64` on `PATH`.
pub fn qemu_binary() -> String {
    std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into())
}

/// The guest agent binary: `$QEMU_GA`, or `qemu-ga` on `PATH` (Debian puts
/// it in `/usr/sbin`, which is checked too).
pub fn qemu_ga_binary() -> String {
    if let Ok(p) = std::env::var("QEMU_GA") {
        return p;
    }
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join("qemu-ga");
        if p.exists() {
            return p.display().to_string();
        }
    }
    "qemu-ga".into()
}

/// Arguments for a minimal, paused QEMU with no devices and no display.
pub const QEMU_ARGS: &[&str] = &["-machine", "none", "-nodefaults", "-display", "none", "-S"];

/// A QEMU version: major, minor, micro.
pub type Version = (u32, u32, u32);

/// `major.minor.micro`, as QEMU prints its version.
pub fn dotted((major, minor, micro): Version) -> String {
    format!("{major}.{minor}.{micro}")
}

/// The first `N.N.N` in `text`.
fn parse_version(text: &str) -> Option<Version> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|word| {
            let mut parts = word.split('.').map(|p| p.parse::<u32>().ok());
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(Some(a)), Some(Some(b)), Some(Some(c)), None) => Some((a, b, c)),
                _ => None,
            }
        })
}

/// What `program --version` reports, e.g. `QEMU emulator version
/// 10.0.2 (Debian ...)`; panics when it cannot run or says no version.
fn reported_version(program: &str) -> Version {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} --version: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text)
        .unwrap_or_else(|| panic!("{program} --version reported no version: {text:?}"))
}

/// The version of [`qemu_binary`], as its `--version` reports it: what a
/// greeting is compared with, so that no test pins a version.
pub fn qemu_version() -> Version {
    static V: OnceLock<Version> = OnceLock::new();
    *V.get_or_init(|| reported_version(&qemu_binary()))
}

/// The version of [`qemu_ga_binary`], as its `--version` reports it.
pub fn qemu_ga_version() -> Version {
    static V: OnceLock<Version> = OnceLock::new();
    *V.get_or_init(|| reported_version(&qemu_ga_binary()))
}

/// A command that runs `program` under `setpriv --pdeathsig KILL`: the
/// kernel kills it when the thread that spawned it exits, and so when the
/// test process dies, however it dies. Spawn it with [`ChildGuard::spawn`]
/// from the thread that owns the guard, never from a short-lived helper
/// thread (its exit would kill the child).
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(setpriv());
    cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
    cmd
}

/// util-linux's `setpriv`; panics when it is missing (`scripts/test.sh`
/// checks for it).
fn setpriv() -> &'static str {
    static PATH: OnceLock<&'static str> = OnceLock::new();
    PATH.get_or_init(|| {
        ["/usr/bin/setpriv", "/bin/setpriv", "/usr/local/bin/setpriv"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("setpriv (util-linux) is needed to tie test processes to the test")
    })
}

/// A child process owned by a test: killed (SIGKILL) and reaped when
/// dropped, so a passing, failing or panicking test leaves nothing behind.
/// Dereferences to the [`Child`].
#[derive(Debug)]
pub struct ChildGuard(Child);

impl ChildGuard {
    /// Spawns `cmd`, best made with [`command`].
    pub fn spawn(cmd: &mut Command) -> io::Result<ChildGuard> {
        cmd.spawn().map(ChildGuard)
    }
}

impl Deref for ChildGuard {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory removed (with its contents) when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty, private directory under the system's temp dir.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("qmp-rs-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A QEMU process that serves QMP on a Unix socket; killed and reaped on drop.
#[derive(Debug)]
pub struct QemuServer {
    /// The child process.
    pub child: ChildGuard,
    /// The QMP socket path (QEMU listens, tests connect).
    pub socket: PathBuf,
    _dir: TempDir,
}

impl QemuServer {
    /// Starts `qemu-system-x86_64` with [`QEMU_ARGS`] plus `extra`, serving
    /// QMP at a socket in a private directory, and returns once a probe
    /// has negotiated with it and QEMU has closed the probe's connection.
    /// Panics with QEMU's stderr if it does not start.
    ///
    /// The probe is there because QEMU 7.2 now and then never answers the
    /// first `qmp_capabilities` of a fresh monitor: about once in a
    /// thousand connections made under load, from every client, the
    /// request proven sent. A QEMU that does so is replaced (at most
    /// twice, said on stderr), so that the suites test the clients, not
    /// that defect. QEMU 10.0 was never seen to do it.
    pub fn start(extra: &[&str]) -> QemuServer {
        for attempt in 1.. {
            let server = QemuServer::spawn(extra);
            match probe(&server.socket) {
                Ok(()) => {
                    server.wait_unconnected();
                    return server;
                }
                Err(e) if attempt < 3 => {
                    eprintln!(
                        "QEMU at {:?} failed its probe ({e}); starting another",
                        server.socket
                    );
                }
                Err(e) => panic!("three QEMUs in a row failed the probe: {e}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Starts QEMU and waits until it listens.
    fn spawn(extra: &[&str]) -> QemuServer {
        let dir = TempDir::new("qemu");
        let socket = dir.join("qmp.sock");
        let mut child = ChildGuard::spawn(
            command(qemu_binary())
                .args(QEMU_ARGS)
                .args(extra)
                .arg("-qmp")
                .arg(format!("unix:{},server=on,wait=off", socket.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        )
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} (run scripts/test.sh to install it): {e}",
                qemu_binary()
            )
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(e) = child.stderr.take() {
                    for line in BufReader::new(e).lines().map_while(Result::ok) {
                        err.push_str(&line);
                        err.push('\n');
                    }
                }
                panic!("QEMU exited ({status}) before serving QMP:\n{err}");
            }
            assert!(
                Instant::now() < deadline,
                "QEMU did not create {socket:?} in 20 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // The socket file appears at bind(), a moment before listen():
        // wait until the kernel lists it as listening. (A probe connection
        // would tell too, but QEMU then tears that client down just as the
        // test's own connects, which was seen to reset the test's
        // connection now and then.)
        while !is_listening(&socket) {
            assert!(
                Instant::now() < deadline,
                "QEMU does not listen on {socket:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        QemuServer {
            child,
            socket,
            _dir: dir,
        }
    }

    /// Waits until QEMU has closed every connection to its socket (the
    /// probe's): a client connecting while QEMU still tears the last one
    /// down can see its own connection reset.
    fn wait_unconnected(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while unix_sockets(&self.socket)
            .iter()
            .any(|flags| flags & 0x10000 == 0)
        {
            assert!(
                Instant::now() < deadline,
                "QEMU kept the probe's connection to {:?}",
                self.socket
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends SIGKILL now (the drop still reaps it).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }
}

/// Whether a Unix socket listens at `path`, as `/proc/net/unix` tells:
/// the `__SO_ACCEPTCON` flag (0x10000) on an entry with that path.
fn is_listening(path: &Path) -> bool {
    unix_sockets(path).iter().any(|flags| flags & 0x10000 != 0)
}

/// The flags of every socket `/proc/net/unix` lists with `path`: the
/// listening one, and the server's end of each connection it accepted.
fn unix_sockets(path: &Path) -> Vec<u32> {
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    let path = path.to_string_lossy();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 8 && fields[7..].join(" ") == path)
                .then(|| u32::from_str_radix(fields[3], 16).ok())
                .flatten()
        })
        .collect()
}

/// A QMP handshake on a plain socket, independent of the clients under
/// test: the greeting, then `qmp_capabilities` and its reply, each
/// within 10 s.
fn probe(socket: &Path) -> io::Result<()> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut next = |stream: &mut UnixStream, what: &str| {
        read_json(stream, &mut buf)
            .and_then(|v| v.ok_or(io::ErrorKind::UnexpectedEof.into()))
            .map_err(|e| io::Error::new(e.kind(), format!("no {what}: {e}")))
    };
    let greeting = next(&mut stream, "greeting")?;
    if greeting.get("QMP").is_none() {
        return Err(io::Error::other(format!("not a greeting: {greeting}")));
    }
    stream.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
    // QEMU greets twice a client that connects while its monitor is still
    // being set up: a second greeting is not the reply.
    let reply = loop {
        let v = next(&mut stream, "reply to qmp_capabilities")?;
        if v.get("QMP").is_none() {
            break v;
        }
    };
    match reply.get("return") {
        Some(_) => Ok(()),
        None => Err(io::Error::other(format!("qmp_capabilities: {reply}"))),
    }
}

/// A host-side `qemu-ga -m unix-listen` serving the guest agent protocol
/// on a socket; killed and reaped on drop.
///
/// qemu-ga 7.2 dies of SIGPIPE when a client closes before reading a
/// reply, so tests must read every reply they cause.
#[derive(Debug)]
pub struct AgentServer {
    /// The child process.
    pub child: ChildGuard,
    /// The agent's socket path.
    pub socket: PathBuf,
    _dir: TempDir,
}

/// The command that runs qemu-ga listening on `socket`, its state and pid
/// files in `dir` (whose `state` directory it creates), quiet.
pub fn qemu_ga_command(dir: &Path, socket: &Path) -> Command {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let mut cmd = command(qemu_ga_binary());
    cmd.args(["-m", "unix-listen", "-p"])
        .arg(socket)
        .arg("-t")
        .arg(&state)
        .arg("-f")
        .arg(dir.join("qga.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

impl AgentServer {
    /// Starts the agent and waits until it listens on its socket.
    pub fn start() -> AgentServer {
        let dir = TempDir::new("qga");
        let socket = dir.join("qga.sock");
        let child =
            ChildGuard::spawn(&mut qemu_ga_command(dir.path(), &socket)).unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (run scripts/test.sh to install it): {e}",
                    qemu_ga_binary()
                )
            });
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_listening(&socket) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{} exited ({status}) before serving", qemu_ga_binary());
            }
            assert!(
                Instant::now() < deadline,
                "qemu-ga does not listen on {socket:?} after 20 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        AgentServer {
            child,
            socket,
            _dir: dir,
        }
    }
}

/// Runs `f` on a thread and fails the test if it takes longer than
/// `limit`: a hang becomes a failure with a message, not a stuck suite. A
/// panic inside `f` (a failed assertion) is re-raised as it is.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    // A roomy stack: large fixed-capacity event queues live on it in
    // debug builds.
    let thread = std::thread::Builder::new()
        .stack_size(32 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn a test thread");
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sent nothing and did not panic"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} hung: not done within {limit:?}")
        }
    }
}

/// Runs `fut` to completion on its own thread and smol executor, under
/// [`within`] with a generous 120 s hang guard.
pub fn block_on<T: Send + 'static>(
    what: &str,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    within(Duration::from_secs(120), what, move || smol::block_on(fut))
}

/// A Unix socket standing in for a serial port: its read timeout surfaces
/// as `TimedOut` (std reports it as `WouldBlock`, for which embedded-io has
/// no kind), the cue for an embedded-io driver to check its deadlines, as
/// a UART's receive timeout would be.
#[derive(Debug)]
pub struct SerialPort(pub UnixStream);

impl SerialPort {
    /// Wraps `sock`, giving its reads a `timeout`.
    pub fn new(sock: UnixStream, timeout: Duration) -> io::Result<SerialPort> {
        sock.set_read_timeout(Some(timeout))?;
        Ok(SerialPort(sock))
    }
}

impl Read for SerialPort {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => io::Error::from(io::ErrorKind::TimedOut),
            _ => e,
        })
    }
}

impl Write for SerialPort {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Base64 (standard alphabet, padded) as the guest agent uses for file and
/// process data.
pub fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes the guest agent's base64; panics on malformed input (a test
/// failure).
pub fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("valid base64 from the agent")
}

/// The next JSON value from `stream`, however it is framed, `buf` holding
/// what was read beyond it; `None` at the end of the stream. Bytes that
/// cannot be JSON are an `InvalidData` error. What the scripted servers
/// read requests with.
pub fn read_json(
    stream: &mut impl Read,
    buf: &mut Vec<u8>,
) -> io::Result<Option<serde_json::Value>> {
    loop {
        if let Some(v) =
            take_json(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        {
            return Ok(Some(v));
        }
        let mut chunk = [0u8; 65536];
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Takes the first whole JSON value off the front of `buf`, however it is
/// framed: `Ok(None)` while it is still incomplete, an error when the
/// bytes cannot be JSON.
pub fn take_json(buf: &mut Vec<u8>) -> Result<Option<serde_json::Value>, serde_json::Error> {
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    match values.next() {
        Some(Ok(value)) => {
            let used = values.byte_offset();
            buf.drain(..used);
            Ok(Some(value))
        }
        Some(Err(e)) if !e.is_eof() => Err(e),
        _ => Ok(None),
    }
}
