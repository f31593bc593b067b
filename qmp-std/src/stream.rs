//! The byte streams a connection runs over, and how descriptors travel.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A connected byte stream the client can drive: `Read + Write` plus the
/// few socket controls a blocking client needs to bound its waits.
///
/// Implemented for [`UnixStream`], [`TcpStream`] and [`Socket`]. For a
/// stream of your own, `set_read_timeout` should make a read give up with
/// [`io::ErrorKind::WouldBlock`] or [`io::ErrorKind::TimedOut`]; a stream
/// that cannot do that can make a blocked read wait forever, since no
/// other thread is there to interrupt it.
pub trait Stream: Read + Write {
    /// Bounds the next reads (`None`: block until data or EOF).
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Bounds the next writes (`None`: block).
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let _ = timeout;
        Ok(())
    }

    /// Switches non-blocking mode, used to take what has already arrived
    /// without waiting. Streams that cannot are read with a 1 ms timeout.
    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        let _ = nonblocking;
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Whether [`send_with_fds`](Self::send_with_fds) works.
    fn can_pass_fds(&self) -> bool {
        false
    }

    /// Writes a prefix of `bytes` with `fds` attached (SCM_RIGHTS).
    fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        let _ = (bytes, fds);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this stream cannot carry file descriptors",
        ))
    }

    /// A short name for error messages: "Unix socket", "TCP", ...
    fn transport(&self) -> &'static str {
        "a stream"
    }

    /// Closes both directions, where that means something.
    fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        UnixStream::set_nonblocking(self, nonblocking)
    }

    fn can_pass_fds(&self) -> bool {
        true
    }

    fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        send_with_fds(self.as_fd(), bytes, fds)
    }

    fn transport(&self) -> &'static str {
        "a Unix socket"
    }

    fn shutdown(&mut self) -> io::Result<()> {
        UnixStream::shutdown(self, Shutdown::Both)
    }
}

impl Stream for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        TcpStream::set_nonblocking(self, nonblocking)
    }

    fn transport(&self) -> &'static str {
        "TCP"
    }

    fn shutdown(&mut self) -> io::Result<()> {
        TcpStream::shutdown(self, Shutdown::Both)
    }
}

fn send_with_fds(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    qmp_os::send_with_fds(socket, bytes, fds)
}

/// The sockets this crate connects itself: Unix or TCP.
#[derive(Debug)]
#[non_exhaustive]
pub enum Socket {
    /// A Unix domain stream socket (file descriptors can be passed).
    Unix(UnixStream),
    /// A TCP connection.
    Tcp(TcpStream),
}

impl From<UnixStream> for Socket {
    fn from(s: UnixStream) -> Self {
        Socket::Unix(s)
    }
}

impl From<TcpStream> for Socket {
    fn from(s: TcpStream) -> Self {
        Socket::Tcp(s)
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Unix(s) => s.read(buf),
            Socket::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Unix(s) => s.write(buf),
            Socket::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for Socket {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Socket::Unix(s) => Stream::set_read_timeout(s, timeout),
            Socket::Tcp(s) => Stream::set_read_timeout(s, timeout),
        }
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Socket::Unix(s) => Stream::set_write_timeout(s, timeout),
            Socket::Tcp(s) => Stream::set_write_timeout(s, timeout),
        }
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        match self {
            Socket::Unix(s) => Stream::set_nonblocking(s, nonblocking),
            Socket::Tcp(s) => Stream::set_nonblocking(s, nonblocking),
        }
    }

    fn can_pass_fds(&self) -> bool {
        matches!(self, Socket::Unix(_))
    }

    fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        match self {
            Socket::Unix(s) => Stream::send_with_fds(s, bytes, fds),
            Socket::Tcp(s) => Stream::send_with_fds(s, bytes, fds),
        }
    }

    fn transport(&self) -> &'static str {
        match self {
            Socket::Unix(s) => Stream::transport(s),
            Socket::Tcp(s) => Stream::transport(s),
        }
    }

    fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Socket::Unix(s) => Stream::shutdown(s),
            Socket::Tcp(s) => Stream::shutdown(s),
        }
    }
}

impl<S: Stream + ?Sized> Stream for Box<S> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_write_timeout(timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        (**self).set_nonblocking(nonblocking)
    }

    fn can_pass_fds(&self) -> bool {
        (**self).can_pass_fds()
    }

    fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        (**self).send_with_fds(bytes, fds)
    }

    fn transport(&self) -> &'static str {
        (**self).transport()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        (**self).shutdown()
    }
}

/// Any `Read + Write` file descriptor (a character device, a pipe-like
/// chardev, a socket made elsewhere) as a [`Stream`] whose waits are
/// bounded with `poll(2)` before each read and write, so even a stream
/// with no timeouts of its own never blocks a call past its deadline.
///
/// ```no_run
/// # fn main() -> Result<(), qmp_std::Error> {
/// use std::os::unix::net::UnixStream;
/// let stream = UnixStream::connect("/tmp/qmp.sock")?;
/// let qmp = qmp_std::Qmp::from_stream(qmp_std::Polled::new(stream), qmp_std::Options::new())?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Polled<T> {
    inner: T,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    nonblocking: bool,
}

impl<T: Read + Write + AsFd> Polled<T> {
    /// Wraps `inner`; waits are unbounded until a timeout is set.
    pub fn new(inner: T) -> Self {
        Polled {
            inner,
            read_timeout: None,
            write_timeout: None,
            nonblocking: false,
        }
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    fn limit(&self, timeout: Option<Duration>) -> Option<Duration> {
        if self.nonblocking {
            Some(Duration::ZERO)
        } else {
            timeout
        }
    }
}

impl<T: Read + Write + AsFd> Read for Polled<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(t) = self.limit(self.read_timeout)
            && !wait_ready(self.inner.as_fd(), rustix::event::PollFlags::IN, t)?
        {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.inner.read(buf)
    }
}

impl<T: Read + Write + AsFd> Write for Polled<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(t) = self.limit(self.write_timeout)
            && !wait_ready(self.inner.as_fd(), rustix::event::PollFlags::OUT, t)?
        {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<T: Read + Write + AsFd> Stream for Polled<T> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout = timeout;
        Ok(())
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_timeout = timeout;
        Ok(())
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        self.nonblocking = nonblocking;
        Ok(())
    }

    fn transport(&self) -> &'static str {
        "a polled stream"
    }
}

/// Waits until `fd` is readable (a connection to accept, data to read),
/// at most `timeout`. Returns whether it is.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    wait_ready(fd, rustix::event::PollFlags::IN, timeout)
}

/// Waits until `fd` is ready for `events`, at most `timeout`.
fn wait_ready(
    fd: BorrowedFd<'_>,
    events: rustix::event::PollFlags,
    timeout: Duration,
) -> io::Result<bool> {
    use rustix::event::{PollFd, Timespec, poll};
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ts = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::from_borrowed_fd(fd, events)];
        match poll(&mut fds, Some(&ts)) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) if !left.is_zero() => continue,
            Err(rustix::io::Errno::INTR) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}
