//! smol's side of a connection: `async_io::Async` sockets and
//! `async_io::Timer`, lent to the driver in `qmp-async`.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant as StdInstant;

use async_io::{Async, Timer};
use async_net::AsyncToSocketAddrs;
use futures_lite::{AsyncRead, AsyncWrite};
use qmp_async::runtime::{ByteStream, ConnectTcp, Runtime, WrapStream, send_now};

/// The smol runtime (`async-io`'s reactor and timers): the `R` in
/// `qmp_async::Qmp<R>` behind this crate's [`Qmp`](crate::Qmp).
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

impl Runtime for Smol {
    const LOG_TARGET: &'static str = "qmp_smol";
    type Timer = Timer;
    type Socket = Async<UnixStream>;
    type Listener = Async<UnixListener>;

    fn sleep_until(at: StdInstant) -> Timer {
        Timer::at(at)
    }

    fn reset(timer: Pin<&mut Timer>, at: Option<StdInstant>) {
        let timer = timer.get_mut();
        match at {
            Some(at) => timer.set_at(at),
            // Unregisters it from the reactor.
            None => *timer = Timer::never(),
        }
    }

    fn socket(stream: UnixStream) -> io::Result<Async<UnixStream>> {
        Async::new(stream)
    }

    fn poll_readable(socket: &mut Self::Socket, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        socket.poll_readable(cx)
    }

    fn poll_read(
        socket: &mut Self::Socket,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(socket).poll_read(cx, buf)
    }

    fn poll_send(
        socket: &mut Self::Socket,
        cx: &mut Context<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Poll<io::Result<usize>> {
        loop {
            match send_now(socket.get_ref().as_fd(), bytes, fds) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(socket.poll_writable(cx))?
                }
                other => return Poll::Ready(other),
            }
        }
    }

    fn bind(path: &Path) -> io::Result<Async<UnixListener>> {
        Async::<UnixListener>::bind(path)
    }

    async fn accept(listener: &Async<UnixListener>) -> io::Result<Async<UnixStream>> {
        Ok(listener.accept().await?.0)
    }
}

/// A `futures-io` stream as the driver uses it.
struct Stream<S>(Pin<Box<S>>);

impl<S: AsyncRead + AsyncWrite + Send> ByteStream for Stream<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.0.as_mut().poll_read(cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.0.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_flush(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> WrapStream<S> for Smol {
    fn wrap(stream: S) -> Box<dyn ByteStream> {
        Box::new(Stream(Box::pin(stream)))
    }
}

impl<A> ConnectTcp<A> for Smol
where
    A: AsyncToSocketAddrs + fmt::Debug + Send,
    A::Iter: Send,
{
    async fn connect_tcp(addr: A) -> io::Result<Box<dyn ByteStream>> {
        let stream = async_net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Smol::wrap(stream))
    }
}
