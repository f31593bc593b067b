//! Connecting, with the one retry policy every adapter follows.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant as StdInstant};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType, connect, socket_with};

use crate::error::Error;

/// The pause between two attempts.
const PAUSE: Duration = Duration::from_millis(10);

/// The attempts to connect to one target: which failures are worth another
/// try, how long to pause, and when to give up.
///
/// A socket path that does not exist yet or refuses connections (a QEMU
/// or an agent still starting) is retried for the socket wait; a listener
/// whose backlog is full (a QEMU serving another client) for the connect
/// timeout. Anything else fails at once.
#[derive(Debug)]
pub struct ConnectAttempts {
    target: String,
    started: StdInstant,
    socket_wait: Duration,
    connect_timeout: Duration,
}

impl ConnectAttempts {
    /// Starts counting now.
    pub fn new(
        target: impl Into<String>,
        socket_wait: Duration,
        connect_timeout: Duration,
    ) -> Self {
        ConnectAttempts {
            target: target.into(),
            started: StdInstant::now(),
            socket_wait,
            connect_timeout,
        }
    }

    /// The path or address, as errors name it.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// How long the attempts have taken so far.
    pub fn waited(&self) -> Duration {
        self.started.elapsed()
    }

    /// After an attempt failed with `e`: how long to pause before the
    /// next one, or the error to give up with.
    pub fn after_failure(&self, e: io::Error) -> Result<Duration, Error> {
        let window = match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => self.socket_wait,
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => self.connect_timeout,
            _ => return Err(self.give_up(e)),
        };
        let waited = self.waited();
        if waited >= window {
            let e = match e.kind() {
                io::ErrorKind::WouldBlock => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the listener's backlog stayed full for {waited:?}"),
                ),
                _ => e,
            };
            return Err(self.give_up(e));
        }
        Ok((window - waited).min(PAUSE))
    }

    /// The error for a failure that ends the attempts.
    pub fn give_up(&self, source: io::Error) -> Error {
        Error::Connect {
            target: self.target.clone(),
            waited: self.waited(),
            source,
        }
    }

    /// The error for attempts that ran out of time (`connect_timeout`
    /// elapsed while a connect was in progress).
    pub fn timed_out(&self) -> Error {
        self.give_up(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no connection within {:?}", self.connect_timeout),
        ))
    }
}

/// One attempt to connect to a Unix socket without blocking: a listener
/// whose backlog is full answers `WouldBlock` at once instead of blocking
/// (a plain `connect` would). The stream returned is non-blocking.
pub fn connect_unix_nonblocking(path: &Path) -> io::Result<UnixStream> {
    let addr = SocketAddrUnix::new(path)?;
    let fd = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    match connect(&fd, &addr) {
        Ok(()) => Ok(UnixStream::from(fd)),
        Err(Errno::AGAIN) => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_what_may_come_and_gives_up_with_the_facts() {
        let a = ConnectAttempts::new("/nowhere", Duration::from_secs(1), Duration::ZERO);
        assert!(a.after_failure(io::ErrorKind::NotFound.into()).is_ok());
        let e = a
            .after_failure(io::ErrorKind::PermissionDenied.into())
            .unwrap_err();
        assert!(matches!(&e, Error::Connect { target, .. } if target == "/nowhere"));
        let once = ConnectAttempts::new("/nowhere", Duration::ZERO, Duration::ZERO);
        let e = once
            .after_failure(io::ErrorKind::NotFound.into())
            .unwrap_err();
        assert!(e.to_string().contains("/nowhere"), "{e}");
        let e = connect_unix_nonblocking(Path::new("/nonexistent/qmp.sock")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
