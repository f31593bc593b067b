//! What an async runtime lends a connection: a timer, a Unix socket that
//! can carry file descriptors, a listener, and a way to wrap its own byte
//! streams. Everything else (the driver loop, the handles, the
//! subscribers) is written once, in this crate, over these traits.
//!
//! The shape follows quinn's `Runtime` (a timer factory and an I/O trait
//! with `poll_*` methods), as static types rather than trait objects: a
//! timer is a plain value, which a connection keeps and re-arms rather
//! than building a new one per call.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;

/// An async runtime a connection can run on: a zero-sized marker type
/// (`qmp_smol::Smol`, `qmp_tokio::Tokio`) naming its timer and sockets,
/// with the few operations the driver needs on them.
pub trait Runtime: Sized + Send + Sync + 'static {
    /// The `log` target of this runtime's connections, e.g. `"qmp_smol"`.
    const LOG_TARGET: &'static str;
    /// The runtime's timer; its output is ignored.
    type Timer: Future + Send + 'static;
    /// A connected Unix stream socket registered with the runtime.
    type Socket: Send + 'static;
    /// A listening Unix socket registered with the runtime.
    type Listener: Send + Sync + fmt::Debug + 'static;

    /// A timer that goes off at `at`.
    fn sleep_until(at: StdInstant) -> Self::Timer;

    /// Makes `timer` go off at `at` instead (`None`: never), without
    /// building a new one.
    fn reset(timer: Pin<&mut Self::Timer>, at: Option<StdInstant>);

    /// Registers a connected Unix socket (made non-blocking here).
    fn socket(stream: UnixStream) -> io::Result<Self::Socket>;

    /// Ready once `socket` may have bytes to read (or has failed),
    /// without a system call while it is known to have none.
    fn poll_readable(socket: &mut Self::Socket, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Reads into `buf`; `Ok(0)` is the end of the stream.
    fn poll_read(
        socket: &mut Self::Socket,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>>;

    /// Writes a prefix of `bytes`; `fds`, when not empty, go with its
    /// first byte ([`send_now`] does the system call).
    fn poll_send(
        socket: &mut Self::Socket,
        cx: &mut Context<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Poll<io::Result<usize>>;

    /// Binds a listening Unix socket at `path`.
    fn bind(path: &Path) -> io::Result<Self::Listener>;

    /// Waits for the next connection on `listener`.
    fn accept(listener: &Self::Listener) -> impl Future<Output = io::Result<Self::Socket>> + Send;
}

/// Any other byte stream (TCP, a pipe pair, TLS, a test double), which
/// cannot carry file descriptors.
pub trait ByteStream: Send {
    /// Reads into `buf`; `Ok(0)` is the end of the stream.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    /// Writes a prefix of `buf`.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    /// Pushes out what the stream buffered.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// The runtime's own stream types `S` that a connection can run over.
pub trait WrapStream<S>: Runtime {
    /// `stream` as the driver uses it.
    fn wrap(stream: S) -> Box<dyn ByteStream>;
}

/// Connecting over TCP to an address of type `A`, as the runtime resolves it.
pub trait ConnectTcp<A>: Runtime {
    /// Connects (with `TCP_NODELAY`: requests are small and wait for replies).
    fn connect_tcp(addr: A) -> impl Future<Output = io::Result<Box<dyn ByteStream>>> + Send;
}

/// One non-blocking send of a prefix of `bytes` on a Unix socket, with
/// `fds` (when not empty) attached to its first byte. `MSG_NOSIGNAL`: a
/// peer that went away is an error to report, not a signal that kills the
/// process. `WouldBlock` means: wait until writable, then try again.
pub fn send_now(socket: BorrowedFd<'_>, bytes: &[u8], fds: &[OwnedFd]) -> io::Result<usize> {
    if fds.is_empty() {
        qmp_os::send(socket, bytes)
    } else {
        qmp_os::send_with_fds(socket, bytes, fds)
    }
}
