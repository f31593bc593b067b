//! One error type for everything a blocking call can run into.

use std::fmt;
use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use qmp_core::{CloseReason, CodecError, ExecuteError, RequestError, SubmitError};

/// Why a call failed.
///
/// Engine errors, I/O errors and timeouts all land here; `From`
/// conversions let `?` work on every one of them. When the connection
/// ends during a call, that call fails with [`Error::Interrupted`] and
/// every later call fails at once with [`Error::Closed`] carrying the same
/// [`CloseReason`].
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The server answered the command with an error (class and desc).
    Server(ExecuteError),
    /// Nothing came before the deadline.
    Timeout {
        /// What was awaited, e.g. "the reply to `query-status`".
        waiting_for: String,
        /// How long was waited, when known.
        after: Option<Duration>,
    },
    /// The connection ended while the call was waiting.
    Interrupted(CloseReason),
    /// The connection had already ended when the call was made.
    Closed(CloseReason),
    /// The engine refused the request (too many open requests, or `oob`
    /// not negotiated).
    Submit(SubmitError),
    /// Typed arguments or a typed return value did not convert.
    Codec(CodecError),
    /// A socket or process operation failed.
    Io(io::Error),
    /// File descriptors can only travel over a Unix socket.
    FdPassingUnsupported {
        /// The kind of connection in use, e.g. "TCP".
        transport: &'static str,
    },
    /// QEMU could not be started, or exited before it served QMP.
    Launch(LaunchError),
}

/// Why [`Qemu`](crate::Qemu) could not start QEMU.
#[derive(Debug)]
pub struct LaunchError {
    /// The program that was run.
    pub program: String,
    /// Its exit status, when it exited.
    pub status: Option<ExitStatus>,
    /// The last lines QEMU wrote to stderr (its own explanation).
    pub stderr: String,
    /// What went wrong on this side (spawn failure, handshake failure).
    pub cause: Box<Error>,
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot launch {}: ", self.program)?;
        match self.status {
            Some(status) => write!(f, "it exited with {status}")?,
            None => write!(f, "{}", self.cause)?,
        }
        let stderr = self.stderr.trim_end();
        if !stderr.is_empty() {
            write!(f, "; its stderr ends with:\n{stderr}")?;
        }
        Ok(())
    }
}

impl Error {
    /// Whether this is a timeout: a reply, an event, a connection or the
    /// handshake that did not come in time.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            Error::Interrupted(r) | Error::Closed(r) => {
                matches!(r, CloseReason::HandshakeTimeout | CloseReason::SyncTimeout)
            }
            _ => false,
        }
    }

    /// Why the session ended, for [`Error::Interrupted`] and [`Error::Closed`].
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match self {
            Error::Interrupted(r) | Error::Closed(r) => Some(r),
            Error::Submit(SubmitError::Closed(r)) => Some(r),
            _ => None,
        }
    }

    /// The server's error, for [`Error::Server`].
    pub fn server_error(&self) -> Option<&ExecuteError> {
        match self {
            Error::Server(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Server(e) => write!(f, "the server returned an error: {e}"),
            Error::Timeout {
                waiting_for,
                after: Some(after),
            } => {
                write!(f, "timed out after {after:?} waiting for {waiting_for}")
            }
            Error::Timeout {
                waiting_for,
                after: None,
            } => write!(f, "timed out waiting for {waiting_for}"),
            Error::Interrupted(r) => write!(f, "interrupted: {r}"),
            Error::Closed(r) => write!(f, "the connection is closed: {r}"),
            Error::Submit(e) => write!(f, "request refused: {e}"),
            Error::Codec(e) => write!(f, "cannot convert JSON: {e}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::FdPassingUnsupported { transport } => write!(
                f,
                "file descriptors can only be passed over a Unix socket, and this connection is {transport}"
            ),
            Error::Launch(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Server(e) => Some(e),
            Error::Interrupted(e) | Error::Closed(e) => Some(e),
            Error::Submit(e) => Some(e),
            Error::Codec(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Launch(e) => Some(&*e.cause),
            Error::Timeout { .. } | Error::FdPassingUnsupported { .. } => None,
        }
    }
}

impl From<ExecuteError> for Error {
    fn from(e: ExecuteError) -> Self {
        Error::Server(e)
    }
}

impl From<CloseReason> for Error {
    fn from(r: CloseReason) -> Self {
        Error::Closed(r)
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Server(e) => Error::Server(e),
            RequestError::Interrupted(r) => Error::Interrupted(r),
            // `RequestError` is open: anything else is the engine's timeout.
            _ => Error::Timeout {
                waiting_for: "a reply".into(),
                after: None,
            },
        }
    }
}

impl From<SubmitError> for Error {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Closed(r) => Error::Closed(r),
            e => Error::Submit(e),
        }
    }
}

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        Error::Codec(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<LaunchError> for Error {
    fn from(e: LaunchError) -> Self {
        Error::Launch(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Io(inner) => inner.kind(),
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::Interrupted(_) | Error::Closed(_) => io::ErrorKind::ConnectionAborted,
            Error::FdPassingUnsupported { .. } => io::ErrorKind::Unsupported,
            Error::Codec(_) => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        match e {
            Error::Io(inner) => inner,
            e => io::Error::new(kind, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_core::ErrorClass;

    fn server_error() -> ExecuteError {
        ExecuteError {
            class: ErrorClass::DeviceNotFound,
            desc: "Device 'x' not found".into(),
        }
    }

    #[test]
    fn engine_errors_convert() {
        let e = Error::from(RequestError::Server(server_error()));
        assert_eq!(e.server_error(), Some(&server_error()));
        assert_eq!(
            e.to_string(),
            "the server returned an error: DeviceNotFound: Device 'x' not found"
        );

        let e = Error::from(RequestError::Interrupted(CloseReason::Eof));
        assert!(matches!(e, Error::Interrupted(CloseReason::Eof)));
        assert_eq!(
            e.to_string(),
            "interrupted: the server closed the connection"
        );
        assert_eq!(e.close_reason(), Some(&CloseReason::Eof));

        let e = Error::from(RequestError::Timeout);
        assert!(e.is_timeout());

        let e = Error::from(SubmitError::Closed(CloseReason::Eof));
        assert!(matches!(e, Error::Closed(CloseReason::Eof)));
        let e = Error::from(SubmitError::OobNotNegotiated);
        assert!(matches!(e, Error::Submit(_)));
        assert!(Error::from(CloseReason::HandshakeTimeout).is_timeout());
    }

    #[test]
    fn io_round_trip_keeps_the_kind() {
        let e = Error::from(io::Error::new(io::ErrorKind::BrokenPipe, "gone"));
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
        let io: io::Error = Error::Timeout {
            waiting_for: "x".into(),
            after: Some(Duration::from_secs(1)),
        }
        .into();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        assert!(
            io.to_string().contains("timed out after 1s waiting for x"),
            "{io}"
        );
    }

    #[test]
    fn errors_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }
}
