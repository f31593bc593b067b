//! tokio's side of a connection: its `UnixStream`, `UnixListener` and
//! `Sleep`, lent to the driver in `qmp-async`.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant as StdInstant};

use qmp_async::runtime::{ByteStream, ConnectTcp, Runtime, WrapStream, send_now};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, ToSocketAddrs, UnixListener, UnixStream};
use tokio::time::{Instant, Sleep};

/// The tokio runtime (its reactor and timer wheel): the `R` in
/// `qmp_async::Qmp<R>` behind this crate's [`Qmp`](crate::Qmp).
///
/// Sockets register with the tokio runtime current when they are made:
/// connect, accept and bind from within one (with its I/O and time
/// drivers enabled, `enable_all()`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

/// How far off "never" is: far enough, and well within tokio's timer range.
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

impl Runtime for Tokio {
    const LOG_TARGET: &'static str = "qmp_tokio";
    type Timer = Sleep;
    type Socket = UnixStream;
    type Listener = UnixListener;

    fn sleep_until(at: StdInstant) -> Sleep {
        tokio::time::sleep_until(Instant::from_std(at))
    }

    fn reset(timer: Pin<&mut Sleep>, at: Option<StdInstant>) {
        // A timer that is never polled again cannot wake anyone.
        timer.reset(at.map_or_else(|| Instant::now() + NEVER, Instant::from_std));
    }

    fn socket(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        UnixStream::from_std(stream)
    }

    fn poll_readable(socket: &mut UnixStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        socket.poll_read_ready(cx)
    }

    fn poll_read(
        socket: &mut UnixStream,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        ready!(Pin::new(socket).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(buf.filled().len()))
    }

    fn poll_send(
        socket: &mut UnixStream,
        cx: &mut Context<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(socket.poll_write_ready(cx))?;
            // `try_io` clears the readiness when the send would block.
            match socket.try_io(Interest::WRITABLE, || send_now(socket.as_fd(), bytes, fds)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn bind(path: &Path) -> io::Result<UnixListener> {
        UnixListener::bind(path)
    }

    async fn accept(listener: &UnixListener) -> io::Result<UnixStream> {
        Ok(listener.accept().await?.0)
    }
}

/// A tokio stream as the driver uses it.
struct Stream<S>(Pin<Box<S>>);

impl<S: AsyncRead + AsyncWrite + Send> ByteStream for Stream<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        ready!(self.0.as_mut().poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(buf.filled().len()))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.0.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_flush(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> WrapStream<S> for Tokio {
    fn wrap(stream: S) -> Box<dyn ByteStream> {
        Box::new(Stream(Box::pin(stream)))
    }
}

impl<A: ToSocketAddrs + fmt::Debug + Send> ConnectTcp<A> for Tokio {
    async fn connect_tcp(addr: A) -> io::Result<Box<dyn ByteStream>> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Tokio::wrap(stream))
    }
}
