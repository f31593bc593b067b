//! One error type for everything a call, a connect, a launch or a driver
//! can report, the same in every adapter.

use std::fmt;
use std::io;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use qmp_core::introspect::CheckError;
use qmp_core::{CloseReason, CodecError, ExecuteError, RequestError, SubmitError};

/// Why a connection ended: what every call still waiting at that moment
/// reports inside [`Error::Interrupted`], and every later call inside
/// [`Error::Closed`].
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum CloseCause {
    /// The engine ended the session: the server closed the connection,
    /// sent something it could not accept, the handshake failed, or it was
    /// closed on this side ([`CloseReason::Local`]).
    Session(CloseReason),
    /// Reading from or writing to the socket failed.
    Io(Arc<io::Error>),
    /// The async driver was dropped before the session ended.
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

    /// Whether the connection was closed on this side.
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

impl From<CloseReason> for CloseCause {
    fn from(r: CloseReason) -> Self {
        CloseCause::Session(r)
    }
}

/// Why a call, a connect or a launch failed.
///
/// When the connection ends during a call, that call fails with
/// [`Error::Interrupted`] and every later call fails at once with
/// [`Error::Closed`], both carrying the same [`CloseCause`].
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The server answered the command with an error: class and desc, the
    /// request's id and command, and the error object as received.
    Server(ExecuteError),
    /// The reply would take more memory decoded than
    /// [`Config::max_decoded_size`](qmp_core::Config::max_decoded_size)
    /// allows; it was not decoded. Only this call failed.
    TooLarge {
        /// The reply's size on the wire, in bytes.
        bytes: usize,
        /// The memory it would take decoded, estimated.
        estimate: usize,
        /// The limit.
        limit: usize,
    },
    /// The reply was neither a return nor a well-formed error; only this
    /// call failed, the connection goes on.
    BadReply {
        /// The message as received.
        message: String,
    },
    /// Nothing came before the deadline; a late reply is dropped.
    Timeout {
        /// What was awaited, e.g. "the reply to `query-status`".
        waiting_for: String,
        /// How long was waited.
        after: Duration,
    },
    /// The connection ended while the call was waiting.
    Interrupted(CloseCause),
    /// The connection had already ended (or was closing) when the call was
    /// made.
    Closed(CloseCause),
    /// The engine refused the request: too many open requests, or `oob`
    /// not negotiated.
    Submit(SubmitError),
    /// Typed arguments or a typed return value did not convert.
    Codec(CodecError),
    /// With [`Options::check_schema`](crate::Options::check_schema): the
    /// connected server's schema has no such command, or the arguments
    /// name a member it does not know or miss a required one. Nothing was
    /// sent.
    Schema(CheckError),
    /// Connecting to (or accepting a connection from) the server failed.
    Connect {
        /// The path or address.
        target: String,
        /// How long connecting was tried before giving up.
        waited: Duration,
        /// The last error; `TimedOut` when time ran out.
        source: io::Error,
    },
    /// File descriptors can only travel over a Unix socket.
    FdPassingUnsupported {
        /// The kind of connection in use, e.g. "TCP".
        transport: &'static str,
    },
    /// QEMU could not be started, or exited before it served QMP.
    Launch(LaunchError),
    /// Any other I/O error (e.g. too many descriptors for one message).
    Io(io::Error),
}

/// Why a launcher could not start QEMU.
#[derive(Debug)]
pub struct LaunchError {
    /// The program that was run.
    pub program: String,
    /// Its exit status, when it exited.
    pub status: Option<ExitStatus>,
    /// The end of what QEMU wrote to stderr (its own explanation), at most
    /// the launcher's stderr tail.
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
        match self {
            Error::Submit(SubmitError::Closed(r)) => Some(r),
            _ => self.close_cause().and_then(CloseCause::reason),
        }
    }

    /// Whether something did not come in time: a reply, an event, the
    /// connection, or the handshake.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Connect { source, .. } => source.kind() == io::ErrorKind::TimedOut,
            Error::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            _ => matches!(
                self.close_reason(),
                Some(CloseReason::HandshakeTimeout | CloseReason::SyncTimeout)
            ),
        }
    }

    /// The server's error, for [`Error::Server`].
    pub fn server_error(&self) -> Option<&ExecuteError> {
        match self {
            Error::Server(e) => Some(e),
            _ => None,
        }
    }

    /// The error for a handshake (greeting and negotiation, or the first
    /// resync) that the session's end cut short: a timeout says what was
    /// awaited and for how long.
    pub fn from_handshake(cause: CloseCause, what: &str, timeout: Duration) -> Self {
        match cause.reason() {
            Some(CloseReason::HandshakeTimeout | CloseReason::SyncTimeout) => Error::Timeout {
                waiting_for: what.into(),
                after: timeout,
            },
            _ => Error::Interrupted(cause),
        }
    }

    /// The error for a request that ended badly in the engine: `what` is
    /// what was waited for and `timeout` how long.
    pub fn from_request(e: RequestError, what: impl FnOnce() -> String, timeout: Duration) -> Self {
        match e {
            RequestError::Server(e) => Error::Server(e),
            RequestError::Interrupted(r) => Error::Interrupted(CloseCause::Session(r)),
            RequestError::BadReply { message } => Error::BadReply { message },
            RequestError::TooLarge {
                bytes,
                estimate,
                limit,
            } => Error::TooLarge {
                bytes,
                estimate,
                limit,
            },
            RequestError::Timeout => Error::Timeout {
                waiting_for: what(),
                after: timeout,
            },
            // `RequestError` is open: keep whatever a newer engine says.
            other => Error::Io(io::Error::other(other.to_string())),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Server(e) => write!(f, "the server returned an error: {e}"),
            Error::BadReply { message } => {
                write!(f, "the reply is neither a return nor an error: {message}")
            }
            Error::TooLarge {
                bytes,
                estimate,
                limit,
            } => write!(
                f,
                "a {bytes}-byte reply would take about {estimate} bytes decoded, over the {limit}-byte limit (Options::max_decoded_size)"
            ),
            Error::Timeout { waiting_for, after } => {
                write!(f, "timed out after {after:?} waiting for {waiting_for}")
            }
            Error::Interrupted(c) => write!(f, "interrupted: {c}"),
            Error::Closed(c) => write!(f, "the connection is closed: {c}"),
            Error::Submit(e) => write!(f, "request refused: {e}"),
            Error::Codec(e) => write!(f, "cannot convert JSON: {e}"),
            Error::Schema(e) => write!(f, "not sent, the server's schema refuses it: {e}"),
            Error::Connect {
                target,
                waited,
                source,
            } if waited.is_zero() => write!(f, "cannot connect to {target}: {source}"),
            Error::Connect {
                target,
                waited,
                source,
            } => write!(
                f,
                "cannot connect to {target} (tried for {waited:?}): {source}"
            ),
            Error::FdPassingUnsupported { transport } => write!(
                f,
                "file descriptors can only be passed over a Unix socket, and this connection is {transport}"
            ),
            Error::Launch(e) => fmt::Display::fmt(e, f),
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
            Error::Schema(e) => Some(e),
            Error::Connect { source, .. } => Some(source),
            Error::Launch(e) => Some(&*e.cause),
            Error::Io(e) => Some(e),
            Error::Timeout { .. }
            | Error::FdPassingUnsupported { .. }
            | Error::BadReply { .. }
            | Error::TooLarge { .. } => None,
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

impl From<qmp_core::EventDecodeError> for Error {
    fn from(e: qmp_core::EventDecodeError) -> Self {
        let command: &str = match &e {
            qmp_core::EventDecodeError::OtherEvent { expected, .. } => expected,
            qmp_core::EventDecodeError::Data { event, .. } => event,
            _ => "an event",
        };
        Error::Codec(CodecError {
            command: command.to_owned(),
            detail: e.to_string(),
        })
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

impl From<LaunchError> for Error {
    fn from(e: LaunchError) -> Self {
        Error::Launch(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Io(inner) => inner.kind(),
            Error::Connect { source, .. } => source.kind(),
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::Interrupted(_) | Error::Closed(_) => io::ErrorKind::ConnectionAborted,
            Error::FdPassingUnsupported { .. } => io::ErrorKind::Unsupported,
            Error::Schema(_) => io::ErrorKind::InvalidInput,
            Error::Codec(_) | Error::BadReply { .. } | Error::TooLarge { .. } => {
                io::ErrorKind::InvalidData
            }
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

    #[test]
    fn conversions_keep_the_facts() {
        let server = ExecuteError::new(
            ErrorClass::CommandNotFound,
            "The command x has not been found",
        );
        let what = || "the reply to `x`".to_string();
        let t = Duration::from_secs(1);
        let e = Error::from_request(RequestError::Server(server.clone()), what, t);
        assert_eq!(e.server_error(), Some(&server));
        let e = Error::from_request(RequestError::Timeout, what, t);
        assert!(e.is_timeout());
        assert_eq!(
            e.to_string(),
            "timed out after 1s waiting for the reply to `x`"
        );
        let e = Error::from_request(RequestError::Interrupted(CloseReason::Eof), what, t);
        assert_eq!(e.close_reason(), Some(&CloseReason::Eof));
        let e = Error::from(SubmitError::Closed(CloseReason::Local));
        assert!(e.close_cause().unwrap().is_local());
        assert!(Error::from(CloseReason::HandshakeTimeout).is_timeout());
        let io: io::Error = Error::Timeout {
            waiting_for: "x".into(),
            after: t,
        }
        .into();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        let e = Error::Connect {
            target: "/run/qmp.sock".into(),
            waited: Duration::ZERO,
            source: io::ErrorKind::TimedOut.into(),
        };
        assert!(e.is_timeout());
        let cause = CloseCause::Io(Arc::new(io::ErrorKind::ConnectionReset.into()));
        assert!(cause.to_string().starts_with("socket error"), "{cause}");
    }

    #[test]
    fn errors_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
        check::<CloseCause>();
    }
}
