//! Every way a request or a session can end badly, as typed values.

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;
use serde_json::Value;

use crate::request::RequestId;

crate::command::open_enum!(
    /// The class of an error QEMU returned, an open set.
    ///
    /// QEMU reports a handful of classes; anything else (a newer QEMU, a
    /// different server) is kept verbatim in [`ErrorClass::Other`].
    ErrorClass {
        /// `GenericError`: almost every error QEMU reports today.
        GenericError = "GenericError",
        /// `CommandNotFound`: the command does not exist or is not enabled.
        CommandNotFound = "CommandNotFound",
        /// `DeviceNotActive`: a device exists but is not active.
        DeviceNotActive = "DeviceNotActive",
        /// `DeviceNotFound`: the named device does not exist.
        DeviceNotFound = "DeviceNotFound",
        /// `KVMMissingCap`: KVM lacks a required capability.
        KvmMissingCap = "KVMMissingCap",
    }
);

/// An error the server returned for a request: `{"error": {"class", "desc"}}`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct ExecuteError {
    /// The error class.
    pub class: ErrorClass,
    /// The human-readable description, verbatim.
    pub desc: String,
    /// The request it answers, when it answers one of ours.
    pub request: Option<RequestId>,
    /// That request's command name.
    pub command: Option<String>,
    /// The `error` object as received, members this crate does not read
    /// included (boxed: errors are rare, and every result carries room for
    /// one).
    pub raw: Box<Value>,
}

impl ExecuteError {
    /// An error of `class` saying `desc`, for no request in particular.
    pub fn new(class: ErrorClass, desc: impl Into<String>) -> Self {
        let desc = desc.into();
        ExecuteError {
            raw: Box::new(serde_json::json!({"class": class.as_str(), "desc": desc})),
            class,
            desc,
            request: None,
            command: None,
        }
    }

    /// The same error with `raw` as the object received.
    pub fn with_raw(mut self, raw: Value) -> Self {
        self.raw = Box::new(raw);
        self
    }

    /// The same error, said of request `id` running `command`.
    pub fn for_request(mut self, id: RequestId, command: impl Into<String>) -> Self {
        self.request = Some(id);
        self.command = Some(command.into());
        self
    }
}

impl fmt::Display for ExecuteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.desc)
    }
}

impl core::error::Error for ExecuteError {}

/// Why the greeting could not be understood.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GreetingError {
    /// A field the greeting must have is missing or has the wrong type.
    Invalid {
        /// Which part of the greeting is wrong, e.g. `QMP.version.qemu.major`.
        field: &'static str,
    },
}

impl fmt::Display for GreetingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GreetingError::Invalid { field } => {
                write!(f, "greeting has a missing or invalid `{field}`")
            }
        }
    }
}

impl core::error::Error for GreetingError {}

/// Why a session ended. Every request still pending at that moment ends
/// with [`RequestError::Interrupted`] carrying the same reason.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum CloseReason {
    /// The peer closed the connection between messages.
    Eof,
    /// The peer closed the connection in the middle of a message.
    UnexpectedEof {
        /// Bytes of the unfinished message that had arrived.
        buffered: usize,
    },
    /// A message grew past the configured maximum size.
    MessageTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The stream held something that is not a JSON object, or invalid JSON
    /// or UTF-8.
    Malformed {
        /// Stream position (bytes since the session began) of the fault.
        offset: u64,
        /// What was wrong there.
        detail: String,
    },
    /// The greeting could not be understood.
    Greeting(GreetingError),
    /// A second greeting arrived in a running session: the peer restarted
    /// its side of the protocol, and nothing it says now can be matched
    /// with what was asked before. (One repeated during the negotiation is
    /// dropped: QEMU greets twice a client that connects while its monitor
    /// is being set up.)
    UnexpectedGreeting,
    /// A reply the session cannot go on without (to `qmp_capabilities`,
    /// or without an id) was neither a return nor a well-formed error.
    BadReply {
        /// The message as received.
        message: String,
    },
    /// `qmp_capabilities` failed.
    Negotiation(ExecuteError),
    /// The server sent an error without an id while no request without an
    /// id was pending: it could not parse something we sent, so the stream
    /// is out of step.
    ServerParseError(ExecuteError),
    /// The greeting or the negotiation did not finish before its deadline.
    HandshakeTimeout,
    /// The guest agent did not answer a resync before its deadline.
    SyncTimeout,
    /// The session was closed on this side.
    Local,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Eof => f.write_str("the server closed the connection"),
            CloseReason::UnexpectedEof { buffered } => write!(
                f,
                "the server closed the connection in the middle of a message ({buffered} bytes received)"
            ),
            CloseReason::MessageTooLarge { limit } => {
                write!(
                    f,
                    "a message from the server exceeds the {limit}-byte limit"
                )
            }
            CloseReason::Malformed { offset, detail } => {
                write!(
                    f,
                    "malformed input at byte {offset} of the stream: {detail}"
                )
            }
            CloseReason::Greeting(e) => write!(f, "bad greeting: {e}"),
            CloseReason::BadReply { message } => {
                write!(
                    f,
                    "a reply that is neither a return nor an error: {message}"
                )
            }
            CloseReason::UnexpectedGreeting => {
                f.write_str("the server greeted again in the middle of the session")
            }
            CloseReason::Negotiation(e) => write!(f, "capability negotiation failed: {e}"),
            CloseReason::ServerParseError(e) => write!(
                f,
                "the server could not parse a request and the stream is out of step: {e}"
            ),
            CloseReason::HandshakeTimeout => {
                f.write_str("timed out waiting for the greeting and capability negotiation")
            }
            CloseReason::SyncTimeout => {
                f.write_str("timed out waiting for the guest agent to answer a resync")
            }
            CloseReason::Local => f.write_str("the session was closed by the client"),
        }
    }
}

impl core::error::Error for CloseReason {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            CloseReason::Greeting(e) => Some(e),
            CloseReason::Negotiation(e) | CloseReason::ServerParseError(e) => Some(e),
            _ => None,
        }
    }
}

/// How a request ended when it did not succeed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum RequestError {
    /// The server answered with an error.
    Server(ExecuteError),
    /// The request's deadline passed first; a late reply will be dropped.
    Timeout,
    /// The reply would take more memory decoded as a `Value` than
    /// [`Config::max_decoded_size`](crate::Config::max_decoded_size)
    /// allows; it was not decoded (a successful reply's text still
    /// decodes typed, see [`Reply`](crate::Reply)). The session goes on.
    TooLarge {
        /// The size on the wire, in bytes, of the reply's `return` text
        /// (of the whole reply, for an error).
        bytes: usize,
        /// The memory it would take decoded, estimated.
        estimate: usize,
        /// The limit.
        limit: usize,
    },
    /// The reply was neither a return nor a well-formed error (both
    /// members, an error that is not an object with a string `class`, or
    /// an id alone), or its return cannot be a `Value` (nested deeper
    /// than 128 levels). The session goes on.
    BadReply {
        /// The message as received.
        message: String,
    },
    /// The session closed before the reply came.
    Interrupted(CloseReason),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Server(e) => fmt::Display::fmt(e, f),
            RequestError::Timeout => f.write_str("timed out waiting for the reply"),
            RequestError::BadReply { message } => {
                write!(f, "the reply is neither a return nor an error: {message}")
            }
            RequestError::TooLarge {
                bytes,
                estimate,
                limit,
            } => write!(
                f,
                "a {bytes}-byte reply would take about {estimate} bytes decoded, over the {limit}-byte limit"
            ),
            RequestError::Interrupted(why) => write!(f, "interrupted: {why}"),
        }
    }
}

impl core::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            RequestError::Server(e) => Some(e),
            RequestError::Interrupted(e) => Some(e),
            RequestError::Timeout
            | RequestError::BadReply { .. }
            | RequestError::TooLarge { .. } => None,
        }
    }
}

/// Why the engine refused to take a request.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum SubmitError {
    /// The session has ended.
    Closed(CloseReason),
    /// An out-of-band request, but `oob` was not negotiated (or the
    /// session is not running yet, so it is not known to be).
    OobNotNegotiated,
    /// Every slot of the request table is taken.
    TooManyRequests {
        /// The table's capacity.
        capacity: usize,
    },
    /// A raw message is not a request object: what is wrong with it.
    NotARequest {
        /// What is wrong.
        detail: &'static str,
    },
    /// A raw message's `id` is a non-negative integer, which the engine
    /// uses for its own requests, or is the id of a request still open.
    IdUnavailable {
        /// The id, as JSON.
        id: String,
    },
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Closed(why) => write!(f, "the session is closed: {why}"),
            SubmitError::OobNotNegotiated => f.write_str(
                "out-of-band execution needs the `oob` capability, which this session has not negotiated",
            ),
            SubmitError::NotARequest { detail } => {
                write!(f, "not a request object: {detail}")
            }
            SubmitError::IdUnavailable { id } => write!(
                f,
                "the id {id} is taken: non-negative integers are the engine's, and an open request has it"
            ),
            SubmitError::TooManyRequests { capacity } => {
                write!(f, "all {capacity} request slots are in use")
            }
        }
    }
}

impl core::error::Error for SubmitError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            SubmitError::Closed(e) => Some(e),
            _ => None,
        }
    }
}

/// A typed value could not be converted to or from JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError {
    /// The command whose arguments or return value failed.
    pub command: String,
    /// What serde reported.
    pub detail: String,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.command, self.detail)
    }
}

impl core::error::Error for CodecError {}
