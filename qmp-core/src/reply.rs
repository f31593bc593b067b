//! A successful reply, kept as the JSON text it arrived as until its
//! caller decodes it.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use core::fmt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::command::Command;
use crate::error::{CodecError, RequestError};
use crate::message::{decoded_estimate, replace_lone_surrogates, small_enough};

/// The `return` value of a reply (or, for a raw request, the whole reply
/// object) as the JSON text received: a waiting reply costs its size, and
/// is decoded only when taken, typed ([`decode`](Self::decode)) straight
/// from the text, or untyped ([`value`](Self::value)) within the
/// decoding budget.
///
/// ```
/// use qmp_core::Reply;
/// let reply = Reply::from_text(r#"{"status": "running", "new": 1}"#);
/// assert_eq!(reply.value().unwrap()["status"], "running");
/// #[derive(serde::Deserialize)]
/// struct Status { status: String }
/// assert_eq!(reply.decode::<Status>().unwrap().status, "running");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    text: Box<str>,
    /// What [`value`](Self::value) may take decoded, in bytes.
    limit: usize,
}

impl Reply {
    /// A reply holding `text`, which must be one JSON value (decoding
    /// tells otherwise), without a decoding budget.
    pub fn from_text(text: impl Into<Box<str>>) -> Self {
        Reply::with_limit(text.into(), usize::MAX)
    }

    /// A reply holding `value` as text, without a decoding budget.
    pub fn from_value(value: &Value) -> Self {
        Reply::from_text(value.to_string())
    }

    pub(crate) fn with_limit(text: Box<str>, limit: usize) -> Self {
        Reply { text, limit }
    }

    /// The JSON text as received.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The size of the text, in bytes: what this reply costs while it waits.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether the text is empty (never for a reply the engine made).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Decodes the text as a `serde_json::Value`. A text that would take
    /// more than the session's `Config::max_decoded_size` decoded fails
    /// with [`RequestError::TooLarge`] (`bytes` is the text's size); a
    /// text serde_json cannot represent (nested deeper than 128 levels)
    /// with [`RequestError::BadReply`].
    pub fn value(&self) -> Result<Value, RequestError> {
        if !small_enough(self.len(), self.limit) {
            let estimate = decoded_estimate(self.text.as_bytes());
            if estimate > self.limit {
                return Err(RequestError::TooLarge {
                    bytes: self.len(),
                    estimate,
                    limit: self.limit,
                });
            }
        }
        self.decode().map_err(|e| RequestError::BadReply {
            message: alloc::format!("{e}: {}", self.text),
        })
    }

    /// Decodes the text as `T`, straight from the text. Members `T` does
    /// not know are ignored (as `T`'s derive allows). String escapes of
    /// unpaired UTF-16 surrogates, which no Rust string can hold, decode
    /// as U+FFFD.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        decode_text(&self.text)
    }

    /// Decodes the text as `C`'s return type.
    pub fn decode_returns<C: Command + ?Sized>(&self) -> Result<C::Returns, CodecError> {
        self.decode().map_err(|e| CodecError {
            command: String::from(C::NAME),
            detail: e.to_string(),
        })
    }
}

/// Decodes JSON `text` as `T`, replacing lone surrogate escapes when they
/// are what stops it.
///
/// The text is already known to be UTF-8, so it is read as `&str`: serde
/// then checks no string again (four checks in a `query-status` reply).
pub(crate) fn decode_text<T: DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    match serde_json::from_str(text) {
        Err(e) => match replace_lone_surrogates(text.as_bytes()) {
            // Only ASCII was replaced: still UTF-8.
            Some(fixed) => serde_json::from_str(core::str::from_utf8(&fixed).unwrap_or_default()),
            None => Err(e),
        },
        ok => ok,
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Long replies (a schema is 200 KB) are cut in debug output.
        let cut = self.text.char_indices().nth(200).map(|(i, _)| i);
        match cut {
            Some(i) => write!(f, "Reply({}… {} bytes)", &self.text[..i], self.len()),
            None => write!(f, "Reply({})", self.text),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn untyped_decoding_keeps_to_the_budget_typed_does_not_need_it() {
        let zeros = [b"[".as_slice(), &b"0,".repeat(100_000), b"0]"].concat();
        let text = String::from_utf8(zeros).unwrap();
        let reply = Reply::with_limit(text.clone().into(), 1024 * 1024);
        match reply.value() {
            Err(RequestError::TooLarge {
                bytes,
                estimate,
                limit,
            }) => assert!(bytes == text.len() && estimate > limit && limit == 1024 * 1024),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            reply.decode::<alloc::vec::Vec<u8>>().unwrap().len(),
            100_001
        );
        assert_eq!(Reply::from_text(text).value().unwrap()[7], 0);
    }

    #[test]
    fn too_deep_for_a_value_fails_alone() {
        let deep = alloc::format!("{}{}", "[".repeat(200), "]".repeat(200));
        let err = Reply::from_text(deep).value().unwrap_err();
        assert!(matches!(err, RequestError::BadReply { .. }), "{err:?}");
    }

    #[test]
    fn lone_surrogates_decode_as_replacement_characters() {
        let reply = Reply::from_text(r#"["\ud800", "ok"]"#);
        assert_eq!(reply.value().unwrap(), json!(["\u{fffd}", "ok"]));
        assert_eq!(
            reply.decode::<alloc::vec::Vec<String>>().unwrap(),
            ["\u{fffd}", "ok"]
        );
    }
}
