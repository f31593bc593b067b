//! What the client asks: requests, their ids and their encoding.

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use serde_json::Value;

use crate::command::Command;
use crate::error::CodecError;
use crate::time::Instant;

/// The engine's handle for one request; unique within a [`Client`](crate::Client).
///
/// It is not the `id` on the wire: the engine numbers a request when it
/// writes it with the smallest number no reply is still due for, because
/// QEMU reads a request a byte at a time and every digit costs it time.
/// [`Client::wire_id`](crate::Client::wire_id) tells the one from the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The number behind the handle: handles of one client count up from
    /// 0 or 1 and never repeat.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A command to run, with its options.
///
/// ```
/// use qmp_core::Request;
/// use core::time::Duration;
/// let r = Request::new("human-monitor-command")
///     .arguments(serde_json::json!({"command-line": "info version"}))
///     .timeout(Duration::from_secs(5));
/// assert_eq!(r.name(), "human-monitor-command");
/// ```
#[derive(Clone, Debug)]
pub struct Request {
    name: Cow<'static, str>,
    arguments: Option<Vec<u8>>,
    pub(crate) oob: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) fds: bool,
    pub(crate) no_reply: bool,
}

impl Request {
    /// A request to run `name` without arguments.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        let no_reply = crate::commands::qga::never_replies(&name);
        Request {
            name,
            arguments: None,
            oob: false,
            timeout: None,
            deadline: None,
            fds: false,
            no_reply,
        }
    }

    /// A request for the typed command `cmd`; its fields become the arguments.
    pub fn command<C: Command>(cmd: &C) -> Result<Self, CodecError> {
        let args = serde_json::to_vec(cmd).map_err(|e| CodecError {
            command: C::NAME.to_string(),
            detail: e.to_string(),
        })?;
        let mut req = Request::new(C::NAME);
        if args != b"null" {
            req.arguments = Some(args);
        }
        req.no_reply = C::NO_REPLY;
        Ok(req)
    }

    /// A request from a whole JSON request object, as a user might type it:
    /// `{"execute": NAME, "arguments": {...}}` or with `exec-oob`. Any `id`
    /// in it is ignored, since the engine gives every request its own.
    pub fn from_value(value: &Value) -> Result<Self, CodecError> {
        let bad = |detail: &str| CodecError {
            command: String::from("(request object)"),
            detail: detail.to_string(),
        };
        let obj = value
            .as_object()
            .ok_or_else(|| bad("a request must be a JSON object"))?;
        let (name, oob) = request_fields(obj).map_err(bad)?;
        for key in obj.keys() {
            if !matches!(key.as_str(), "execute" | "exec-oob" | "arguments" | "id") {
                return Err(bad(&alloc::format!("unknown member `{key}` in a request")));
            }
        }
        let mut req = Request::new(name.to_string());
        if let Some(args) = obj.get("arguments") {
            req = req.arguments(args.clone());
        }
        req.oob = oob;
        Ok(req)
    }

    /// Sets the arguments (a JSON object).
    pub fn arguments(mut self, args: Value) -> Self {
        // Serializing a `Value` cannot fail: its map keys are strings.
        self.arguments = serde_json::to_vec(&args).ok();
        self
    }

    /// Sends the request out of band (`exec-oob`), overtaking queued
    /// in-band requests. Needs the `oob` capability.
    pub fn oob(mut self) -> Self {
        self.oob = true;
        self
    }

    /// Ends the request with [`RequestError::Timeout`](crate::RequestError::Timeout)
    /// when no reply came within `timeout` of being submitted.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Like [`timeout`](Self::timeout), with an absolute deadline.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Marks the request as carrying file descriptors: the engine reports
    /// its first byte in [`Transmit::fds`](crate::Transmit::fds) so the
    /// driver can send them in the same `sendmsg`.
    pub fn with_fds(mut self) -> Self {
        self.fds = true;
        self
    }

    /// Marks the request as one the server never answers (e.g.
    /// `guest-shutdown`): it completes once written. Set automatically for
    /// the guest agent's commands that behave so.
    pub fn no_reply(mut self) -> Self {
        self.no_reply = true;
        self
    }

    /// The relative timeout set with [`timeout`](Self::timeout), if any.
    pub fn timeout_setting(&self) -> Option<Duration> {
        self.timeout
    }

    /// The absolute deadline set with [`deadline`](Self::deadline), if any.
    pub fn deadline_setting(&self) -> Option<Instant> {
        self.deadline
    }

    /// The arguments, decoded from their encoded form (`None` without).
    pub fn arguments_value(&self) -> Option<Value> {
        serde_json::from_slice(self.arguments.as_deref()?).ok()
    }

    /// The command name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command name, taken out of the request.
    pub(crate) fn into_name(self) -> Cow<'static, str> {
        self.name
    }

    /// Whether this is an out-of-band request.
    pub fn is_oob(&self) -> bool {
        self.oob
    }

    /// The bytes of this request with `id`, as sent.
    pub(crate) fn encode(&self, id: Option<u64>, out: &mut Vec<u8>) {
        self.encode_open(out);
        close_request(id, out);
    }

    /// The bytes of this request up to where its `id` goes: the engine
    /// numbers it only when it is written.
    pub(crate) fn encode_open(&self, out: &mut Vec<u8>) {
        // Room for the whole request, its id and closing brace included
        // ([`close_request`]), so that it is written without growing.
        const AROUND: usize = r#"{"exec-oob":"","id":18446744073709551615}"#.len();
        const ARGUMENTS: usize = r#","arguments":"#.len();
        let arguments = self.arguments.as_ref().map_or(0, |a| ARGUMENTS + a.len());
        out.reserve(AROUND + self.name.len() + arguments);
        out.extend_from_slice(if self.oob {
            b"{\"exec-oob\":"
        } else {
            b"{\"execute\":"
        });
        write_json_string(&self.name, out);
        if let Some(args) = &self.arguments {
            out.extend_from_slice(b",\"arguments\":");
            out.extend_from_slice(args);
        }
    }
}

/// Ends a request that [`Request::encode_open`] (or a whole object less
/// its closing brace) began, with `id` if any.
pub(crate) fn close_request(id: Option<u64>, out: &mut Vec<u8>) {
    if let Some(id) = id {
        out.extend_from_slice(b",\"id\":");
        write_u64(id, out);
    }
    out.push(b'}');
}

/// The command name of a request object and whether it runs out of band,
/// after checking its `execute`/`exec-oob` and `arguments` members.
pub(crate) fn request_fields(
    obj: &serde_json::Map<String, Value>,
) -> Result<(&str, bool), &'static str> {
    let named = match (obj.get("execute"), obj.get("exec-oob")) {
        (Some(Value::String(n)), None) => (n.as_str(), false),
        (None, Some(Value::String(n))) => (n.as_str(), true),
        _ => return Err("a request needs exactly one of `execute` or `exec-oob`, a string"),
    };
    if obj.get("arguments").is_some_and(|a| !a.is_object()) {
        return Err("`arguments` must be an object");
    }
    Ok(named)
}

fn write_json_string(s: &str, out: &mut Vec<u8>) {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if let Ok(quoted) = serde_json::to_vec(s) {
        out.extend_from_slice(&quoted);
    }
}

pub(crate) fn write_u64(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encoded(r: &Request, id: Option<u64>) -> String {
        let mut v = Vec::new();
        r.encode(id, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn encodes_compactly() {
        assert_eq!(
            encoded(&Request::new("query-status"), Some(0)),
            r#"{"execute":"query-status","id":0}"#
        );
        let r = Request::new("x y\"").arguments(json!({"a": [1]})).oob();
        assert_eq!(
            encoded(&r, Some(18446744073709551615)),
            r#"{"exec-oob":"x y\"","arguments":{"a":[1]},"id":18446744073709551615}"#
        );
    }

    #[test]
    fn from_value_accepts_what_people_type() {
        let r = Request::from_value(&json!({"execute": "stop", "id": "mine"})).unwrap();
        assert_eq!(encoded(&r, Some(4)), r#"{"execute":"stop","id":4}"#);
        let r =
            Request::from_value(&json!({"exec-oob": "migrate-pause", "arguments": {}})).unwrap();
        assert!(r.is_oob());
        assert!(Request::from_value(&json!({"execute": 1})).is_err());
        assert!(Request::from_value(&json!({"execute": "a", "argument": {}})).is_err());
        assert!(Request::from_value(&json!([1])).is_err());
    }

    #[test]
    fn guest_shutdown_never_replies() {
        assert!(Request::new("guest-shutdown").no_reply);
        assert!(!Request::new("guest-ping").no_reply);
    }
}
