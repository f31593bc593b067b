//! The socket under a connection: a Unix stream (which can carry file
//! descriptors) or any async byte stream.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use async_io::Async;
use futures_lite::{AsyncRead, AsyncWrite};
use rustix::io::Errno;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

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
                    rustix::net::send(s.get_ref(), bytes, SendFlags::NOSIGNAL)
                } else {
                    send_with_fds(s.get_ref(), bytes, fds)
                };
                match sent {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    Err(Errno::INTR) => continue,
                    Err(Errno::AGAIN) => ready!(s.poll_writable(cx))?,
                    Err(e) => return Poll::Ready(Err(e.into())),
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

/// One `sendmsg` with the descriptors as SCM_RIGHTS.
fn send_with_fds(sock: &UnixStream, bytes: &[u8], fds: &[OwnedFd]) -> Result<usize, Errno> {
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    let mut space =
        vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(borrowed.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
        return Err(Errno::NOBUFS);
    }
    rustix::net::sendmsg(
        sock,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
}
