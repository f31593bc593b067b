//! The socket under a connection: a Unix stream (which can carry file
//! descriptors) or any async byte stream.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use async_io::Async;
use futures_lite::{AsyncRead, AsyncWrite};

/// Any stream a connection can run over.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> Stream for T {}

pub(crate) enum Transport {
    Unix(Async<UnixStream>),
    /// Any other stream, with what to call it in errors ("TCP").
    Other(Pin<Box<dyn Stream>>, &'static str),
}

impl Transport {
    /// `None` when descriptors can be passed, else what the stream is.
    pub(crate) fn without_fds(&self) -> Option<&'static str> {
        match self {
            Transport::Unix(_) => None,
            Transport::Other(_, kind) => Some(kind),
        }
    }

    /// Ready once the socket may have bytes to read, without a system call
    /// while it is known to have none. Other streams are always "ready":
    /// their `poll_read` does the waiting.
    pub(crate) fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Transport::Unix(s) => s.poll_readable(cx),
            Transport::Other(..) => Poll::Ready(Ok(())),
        }
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Transport::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Other(s, _) => s.as_mut().poll_read(cx, buf),
        }
    }

    /// Writes a prefix of `bytes`; `fds`, when not empty, go with its
    /// first byte.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Poll<io::Result<usize>> {
        match self {
            Transport::Unix(s) => loop {
                // MSG_NOSIGNAL: a peer that went away is an error to
                // report, not a signal that kills the process.
                let sent = if fds.is_empty() {
                    qmp_os::send(s.get_ref().as_fd(), bytes)
                } else {
                    qmp_os::send_with_fds(s.get_ref().as_fd(), bytes, fds)
                };
                match sent {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(s.poll_writable(cx))?,
                    other => return Poll::Ready(other),
                }
            },
            Transport::Other(s, _) => {
                if !fds.is_empty() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "file descriptors need a Unix socket",
                    )));
                }
                s.as_mut().poll_write(cx, bytes)
            }
        }
    }

    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            // Unix sockets are written directly; nothing is buffered.
            Transport::Unix(_) => Poll::Ready(Ok(())),
            Transport::Other(s, _) => s.as_mut().poll_flush(cx),
        }
    }
}
