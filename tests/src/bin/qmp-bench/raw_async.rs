//! Each async runtime's floor: [`Raw`]'s loop written on the runtime's own
//! socket, so that what a runtime costs can be told from what an adapter
//! adds on top of it.
//!
//! Like [`Raw`], these loops write precomputed request bytes, parse no
//! JSON and only count message ends. Unlike it, they are bounded by a
//! timer of the runtime, as every wait of an adapter is: a client that
//! cannot hang keeps one pending in the reactor. One timer bounds a whole
//! loop of calls, armed once: an adapter's alarm is likewise re-armed only
//! when it comes due, not for every call (arming a timer per call would
//! cost smol's reactor an extra wake-up per call). A loop makes no read
//! that would only fail with `EAGAIN`: after writing a request it waits
//! for the socket to be readable (async-io), or reads through tokio's
//! `poll_read`, which forgets the readiness after a short read.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::pin::Pin;
use std::task::{Poll, ready};
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::{AsyncWriteExt, FutureExt};
use tokio::io::{AsyncRead, ReadBuf};

use crate::clients::{Flavor, runtime};
use crate::measure::Result;
use crate::raw::{Raw, message_ends};

/// Bounds every call, as the clients' own timeout does; a loop of `n`
/// calls gets `n` times this.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a loop of `n` calls may take.
fn loop_timeout(n: u64) -> Duration {
    CALL_TIMEOUT.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
}

/// What a loop reports when a call outlives [`CALL_TIMEOUT`].
fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no reply within the call timeout")
}

/// Checks that one read's worth of replies answered one request.
fn one_reply(ends: u64) -> Result<()> {
    match ends {
        1 => Ok(()),
        n => Err(format!("raw: {n} messages for one request").into()),
    }
}

/// The raw loop on async-io's `Async<UnixStream>`, run by `smol::block_on`
/// on the calling thread (whose reactor it then polls itself).
pub(crate) struct RawSmol {
    sock: Async<UnixStream>,
    buf: Box<[u8]>,
}

impl RawSmol {
    /// Connects and negotiates as [`Raw`] does, then hands the socket to
    /// async-io.
    pub(crate) fn connect(path: &Path) -> Result<RawSmol> {
        let sock = Async::new(Raw::connect(path)?.into_socket())?;
        Ok(RawSmol {
            sock,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
        })
    }

    /// `n` round trips of `request`, one after another.
    pub(crate) fn serial(&mut self, request: &[u8], n: u64) -> Result<()> {
        let calls = async {
            for _ in 0..n {
                one_reply(self.call(request).await?)?;
            }
            Ok(())
        };
        smol::block_on(calls.or(async {
            Timer::after(loop_timeout(n)).await;
            Err(timed_out().into())
        }))
    }

    /// Writes `request` and reads until at least one message has ended.
    async fn call(&mut self, request: &[u8]) -> io::Result<u64> {
        self.sock.write_all(request).await?;
        loop {
            self.sock.readable().await?;
            match self.sock.get_ref().read(&mut self.buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => match message_ends(&self.buf[..n]) {
                    0 => continue,
                    ends => return Ok(ends),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The raw loop on tokio's `UnixStream`, in `Runtime::block_on` on the
/// calling thread, with either scheduler (as [`TokioClient`] runs them:
/// two workers for the multi-thread one).
///
/// [`TokioClient`]: crate::clients::TokioClient
pub(crate) struct RawTokio {
    rt: tokio::runtime::Runtime,
    sock: tokio::net::UnixStream,
    buf: Box<[u8]>,
}

impl RawTokio {
    /// Connects and negotiates as [`Raw`] does, then hands the socket to
    /// a new runtime of `flavor`.
    pub(crate) fn connect(path: &Path, flavor: Flavor) -> Result<RawTokio> {
        let rt = runtime(flavor)?;
        let std_sock = Raw::connect(path)?.into_socket();
        std_sock.set_nonblocking(true)?;
        let sock = {
            let _entered = rt.enter();
            tokio::net::UnixStream::from_std(std_sock)?
        };
        Ok(RawTokio {
            rt,
            sock,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
        })
    }

    /// `n` round trips of `request`, one after another.
    pub(crate) fn serial(&mut self, request: &[u8], n: u64) -> Result<()> {
        let RawTokio { rt, sock, buf } = self;
        let calls = async {
            for _ in 0..n {
                one_reply(tokio_call(sock, buf, request).await?)?;
            }
            Ok(())
        };
        rt.block_on(async {
            tokio::time::timeout(loop_timeout(n), calls)
                .await
                .map_err(|_| timed_out())?
        })
    }
}

/// Writes `request` on `sock` and reads until at least one message has
/// ended.
async fn tokio_call(
    sock: &mut tokio::net::UnixStream,
    buf: &mut [u8],
    request: &[u8],
) -> io::Result<u64> {
    let mut sent = 0;
    while sent < request.len() {
        match sock.try_write(&request[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.writable().await?,
            Err(e) => return Err(e),
        }
    }
    loop {
        let n = std::future::poll_fn(|cx| {
            let mut filled = ReadBuf::new(buf);
            ready!(Pin::new(&mut *sock).poll_read(cx, &mut filled))?;
            Poll::Ready(Ok::<_, io::Error>(filled.filled().len()))
        })
        .await?;
        match (n, message_ends(&buf[..n])) {
            (0, _) => return Err(io::ErrorKind::UnexpectedEof.into()),
            (_, 0) => continue,
            (_, ends) => return Ok(ends),
        }
    }
}
