//! One error type for everything a call, a connect or the driver can report.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use qmp_core::{CloseReason, CodecError, ExecuteError, RequestError, SubmitError};

/// Why a connection ended: what the [`Driver`](crate::Driver) returns, and
/// what every call still waiting at that moment reports inside
/// [`Error::Closed`].
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum CloseCause {
    /// The engine ended the session: the server closed the connection, sent
    /// something it could not accept, the handshake failed, or
    /// [`Qmp::disconnect`](crate::Qmp::disconnect) was called
    /// ([`CloseReason::Local`]).
    Session(CloseReason),
    /// Reading from or writing to the socket failed.
    Io(Arc<io::Error>),
    /// The [`Driver`](crate::Driver) was dropped before the session ended.
    DriverDropped,
}

impl CloseCause {
    /// The engine's reason, when the session ended in the engine.
    pub fn reason(&self) -> Option<&CloseReason> {
        match self {
            CloseCause::Session(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the connection was closed on this side (`disconnect`, every
    /// handle dropped, or the driver dropped).
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            CloseCause::Session(CloseReason::Local) | CloseCause::DriverDropped
        )
    }
}

impl fmt::Display for CloseCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseCause::Session(r) => fmt::Display::fmt(r, f),
            CloseCause::Io(e) => write!(f, "socket error: {e}"),
            CloseCause::DriverDropped => f.write_str("the connection's driver was dropped"),
        }
    }
}

impl std::error::Error for CloseCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CloseCause::Session(r) => Some(r),
            CloseCause::Io(e) => Some(&**e),
            CloseCause::DriverDropped => None,
        }
    }
}

/// Everything that can go wrong in this crate.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The server answered the command with an error.
    Server(ExecuteError),
    /// No reply came within the call's timeout; a late reply is dropped.
    Timeout,
    /// The connection ended while the call was waiting; says why.
    Interrupted(CloseCause),
    /// The connection had already ended (or was closing) when the call was
    /// made; says why.
    Closed(CloseCause),
    /// The engine refused the request, e.g. out-of-band execution was not
    /// negotiated.
    Submit(SubmitError),
    /// Typed arguments or a typed return value did not convert.
    Codec(CodecError),
    /// Connecting to (or accepting) the server failed.
    Connect {
        /// The path or address.
        target: String,
        /// How long the socket was waited for before giving up.
        waited: Duration,
        /// The last error.
        source: io::Error,
    },
    /// Connecting (or accepting) did not finish in time.
    ConnectTimeout {
        /// The path or address.
        target: String,
        /// The limit.
        timeout: Duration,
    },
    /// File descriptors can only travel over a Unix socket.
    FdPassingUnsupported {
        /// The kind of connection in use, e.g. "TCP".
        transport: &'static str,
    },
    /// Any other I/O error.
    Io(io::Error),
}

impl Error {
    /// Why the connection ended, for [`Error::Interrupted`] and
    /// [`Error::Closed`].
    pub fn close_cause(&self) -> Option<&CloseCause> {
        match self {
            Error::Interrupted(c) | Error::Closed(c) => Some(c),
            _ => None,
        }
    }

    /// The engine's reason the session ended, when it ended there.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.close_cause().and_then(CloseCause::reason)
    }

    /// Whether something did not come in time: a reply, an event, the
    /// connection, or the handshake.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout | Error::ConnectTimeout { .. })
            || matches!(
                self.close_reason(),
                Some(CloseReason::HandshakeTimeout | CloseReason::SyncTimeout)
            )
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
            Error::Timeout => f.write_str("timed out waiting for the reply"),
            Error::Interrupted(c) => write!(f, "the connection ended before the reply came: {c}"),
            Error::Closed(c) => write!(f, "the connection is closed: {c}"),
            Error::Submit(e) => write!(f, "request refused: {e}"),
            Error::Codec(e) => write!(f, "cannot convert typed value: {e}"),
            Error::Connect {
                target,
                waited,
                source,
            } if waited.is_zero() => {
                write!(f, "cannot connect to {target}: {source}")
            }
            Error::Connect {
                target,
                waited,
                source,
            } => {
                write!(
                    f,
                    "cannot connect to {target} (waited {waited:?} for it): {source}"
                )
            }
            Error::ConnectTimeout { target, timeout } => {
                write!(
                    f,
                    "connecting to {target} did not finish within {timeout:?}"
                )
            }
            Error::FdPassingUnsupported { transport } => write!(
                f,
                "file descriptors can only be passed over a Unix socket, not over {transport}"
            ),
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Server(e) => Some(e),
            Error::Interrupted(c) | Error::Closed(c) => Some(c),
            Error::Submit(e) => Some(e),
            Error::Codec(e) => Some(e),
            Error::Connect { source, .. } => Some(source),
            Error::Io(e) => Some(e),
            Error::Timeout | Error::ConnectTimeout { .. } | Error::FdPassingUnsupported { .. } => {
                None
            }
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<ExecuteError> for Error {
    fn from(e: ExecuteError) -> Self {
        Error::Server(e)
    }
}

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        Error::Codec(e)
    }
}

impl From<CloseReason> for Error {
    fn from(r: CloseReason) -> Self {
        Error::Closed(CloseCause::Session(r))
    }
}

impl From<CloseCause> for Error {
    fn from(c: CloseCause) -> Self {
        Error::Closed(c)
    }
}

impl From<SubmitError> for Error {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Closed(r) => Error::Closed(CloseCause::Session(r)),
            other => Error::Submit(other),
        }
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Server(e) => Error::Server(e),
            RequestError::Timeout => Error::Timeout,
            RequestError::Interrupted(r) => Error::Interrupted(CloseCause::Session(r)),
            // `RequestError` is non-exhaustive: keep whatever a newer
            // engine reports, worded as it words it.
            other => Error::Io(io::Error::other(other.to_string())),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            Error::Timeout | Error::ConnectTimeout { .. } => {
                io::Error::new(io::ErrorKind::TimedOut, e)
            }
            Error::Interrupted(_) | Error::Closed(_) => {
                io::Error::new(io::ErrorKind::ConnectionAborted, e)
            }
            other => io::Error::other(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_core::ErrorClass;

    #[test]
    fn conversions_keep_the_facts() {
        let server = ExecuteError {
            class: ErrorClass::CommandNotFound,
            desc: "The command x has not been found".into(),
        };
        let e = Error::from(RequestError::Server(server.clone()));
        assert_eq!(e.server_error(), Some(&server));
        assert!(e.to_string().contains("has not been found"));
        assert!(Error::from(RequestError::Timeout).is_timeout());
        let e = Error::from(RequestError::Interrupted(CloseReason::Eof));
        assert!(matches!(
            e,
            Error::Interrupted(CloseCause::Session(CloseReason::Eof))
        ));
        assert_eq!(e.close_reason(), Some(&CloseReason::Eof));
        let e = Error::from(SubmitError::Closed(CloseReason::Local));
        assert!(matches!(e, Error::Closed(_)));
        assert!(e.close_cause().unwrap().is_local());
        assert!(Error::from(CloseReason::HandshakeTimeout).is_timeout());
        let io: io::Error = Error::Timeout.into();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        let e = Error::FdPassingUnsupported { transport: "TCP" };
        assert!(e.to_string().ends_with("not over TCP"), "{e}");
        let cause = CloseCause::Io(Arc::new(io::Error::from(io::ErrorKind::ConnectionReset)));
        assert!(cause.to_string().starts_with("socket error"), "{cause}");
        assert!(std::error::Error::source(&cause).is_some());
    }
}
