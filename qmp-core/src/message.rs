//! Decoding one framed message into what it means.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{CloseReason, ErrorClass, ExecuteError};
use crate::event::{Event, Timestamp};
use crate::plain::{PlainReply, Stop, plain_reply};

/// The members of a server message this crate looks at; the rest are
/// skipped without being built. A reply's `return` and an event's `data`
/// are kept as their text, decoded when their caller takes them.
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "QMP", default, deserialize_with = "present")]
    greeting: Option<Value>,
    #[serde(rename = "return", default, deserialize_with = "present_raw")]
    ret: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default, deserialize_with = "present_raw")]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    timestamp: Option<Timestamp>,
}

/// Distinguishes `"return": null` from a missing member.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Distinguishes `"return": null` from a missing member, as text.
fn present_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// The id a reply echoes back.
#[derive(Debug, PartialEq)]
pub(crate) enum ReplyId {
    /// No `id` member.
    Missing,
    /// A non-negative integer id, as this engine sends.
    Number(u64),
    /// Any other id: not one of ours, unless a raw request chose it.
    Foreign(Value),
}

/// Why a reply carries no `return` value.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The server's error object, well formed.
    Server(ExecuteError),
    /// A reply that is neither a return nor a well-formed error (both, or
    /// an error without a string `class`, or an id alone): the message as
    /// received.
    Bad(String),
    /// Too large to decode: its size and the estimate.
    TooLarge { bytes: usize, estimate: usize },
}

/// One decoded message.
#[derive(Debug)]
pub(crate) enum Incoming {
    Greeting(Value),
    Reply {
        id: ReplyId,
        /// The `return` value's text, or why there is none.
        result: Result<Box<str>, Fault>,
        /// The whole message's text, kept only while a raw request is open.
        whole: Option<Box<str>>,
    },
    Event(Event),
    /// An event too large to decode within the budget.
    Oversized,
    /// A JSON object that is none of the above.
    Unrecognized,
}

/// How many bytes a decoded `serde_json::Value` may take per byte of JSON
/// at the most (a member `"":0,` is 5 bytes and costs a key, a value and a
/// map slot; an element `0,` is 2 bytes and costs a value): messages this
/// many times smaller than the budget need no estimate.
const WORST_AMPLIFICATION: usize = 24;

/// The memory a `serde_json::Value` decoded from `bytes` takes, roughly:
/// 32 bytes a value, 72 more a member (its key and its map slot), and the
/// text itself. One pass over the bytes, only for large messages.
pub(crate) fn decoded_estimate(bytes: &[u8]) -> usize {
    let (mut values, mut members) = (1usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' | b'[' | b'{' => values += 1,
            b':' => members += 1,
            _ => {}
        }
    }
    values
        .saturating_mul(32)
        .saturating_add(members.saturating_mul(72))
        .saturating_add(bytes.len())
}

/// Messages up to this size are decoded without an estimate: the most one
/// can take decoded is about 1.5 MiB, and the budget guards against the
/// large ones.
const ALWAYS_DECODED: usize = 64 * 1024;

/// Whether a window this long may be decoded without an estimate.
pub(crate) fn small_enough(len: usize, budget: usize) -> bool {
    len <= ALWAYS_DECODED || len.saturating_mul(WORST_AMPLIFICATION) <= budget
}

/// The members that say what a message is, without decoding its values:
/// for a message too large to decode.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "QMP", default)]
    greeting: Option<serde::de::IgnoredAny>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default)]
    event: Option<String>,
    #[serde(rename = "return", default, deserialize_with = "skipped")]
    ret: bool,
    #[serde(default, deserialize_with = "skipped")]
    error: bool,
}

/// Whether a member is present, without building its value.
fn skipped<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// Decodes the bytes of one framed object that began at stream `offset`;
/// one whose decoded form would exceed `budget` is reported, not decoded,
/// unless it is a successful reply: its `return` is only kept as text, and
/// the budget applies when its caller asks for a `Value`.
pub(crate) fn decode(bytes: &[u8], offset: u64, budget: usize) -> Result<Incoming, CloseReason> {
    if !small_enough(bytes.len(), budget) {
        let estimate = decoded_estimate(bytes);
        if estimate > budget {
            return too_large(bytes, offset, estimate);
        }
    }
    decode_whole(bytes, offset)
}

/// What an over-budget message is, from its head alone.
fn too_large(bytes: &[u8], offset: u64, estimate: usize) -> Result<Incoming, CloseReason> {
    let head: Head = serde_json::from_slice(bytes).map_err(|e| malformed(bytes, offset, &e))?;
    if head.greeting.is_some() {
        return Err(CloseReason::MessageTooLarge { limit: bytes.len() });
    }
    if head.event.is_some() {
        return Ok(Incoming::Oversized);
    }
    if head.ret && !head.error {
        return decode_whole(bytes, offset);
    }
    let id = reply_id(head.id);
    let result = Err(Fault::TooLarge {
        bytes: bytes.len(),
        estimate,
    });
    Ok(Incoming::Reply {
        id,
        result,
        whole: None,
    })
}

fn decode_whole(bytes: &[u8], offset: u64) -> Result<Incoming, CloseReason> {
    // Validating the whole message up front also covers members that are
    // skipped unread. It is decoded from the slice like a message read
    // in place ([`decode_prefix`], which cannot check UTF-8 first: it does
    // not know yet where the message ends), so that both share one copy of
    // the classifying decoder.
    if let Err(e) = core::str::from_utf8(bytes) {
        return Err(CloseReason::Malformed {
            offset: offset + e.valid_up_to() as u64,
            detail: String::from("invalid UTF-8"),
        });
    }
    let wire: Wire = match serde_json::from_slice(bytes) {
        Ok(wire) => wire,
        Err(e) => match replace_lone_surrogates(bytes) {
            Some(fixed) => {
                serde_json::from_slice(&fixed).map_err(|e| malformed(&fixed, offset, &e))?
            }
            None => return Err(malformed(bytes, offset, &e)),
        },
    };
    Ok(classify(wire, bytes))
}

/// Decodes the object at the start of `window` (which begins with `{`)
/// when it is complete there, without a separate framing pass: the common
/// case of a message that arrives inside one read. Returns its length and
/// what it means, or `None` when the window ends before the object does.
pub(crate) fn decode_prefix(
    window: &[u8],
    offset: u64,
    budget: usize,
) -> Option<(usize, Result<Incoming, CloseReason>)> {
    // A window that could hold a message over the budget goes through the
    // framer, which finds its end so that it can be weighed first.
    if !small_enough(window.len(), budget) {
        return None;
    }
    let first = decode_prefix_as_is(window, offset);
    if let Some((_, Err(CloseReason::Malformed { .. }))) = first
        && let Some(fixed) = replace_lone_surrogates(window)
    {
        return decode_prefix_as_is(&fixed, offset);
    }
    first
}

fn decode_prefix_as_is(
    window: &[u8],
    offset: u64,
) -> Option<(usize, Result<Incoming, CloseReason>)> {
    match plain_reply(window) {
        Ok(PlainReply { len, id, value }) => match core::str::from_utf8(&window[..len]) {
            Ok(text) => Some((len, Ok(plain(id, &text[value])))),
            // The general reader says where, as for any other message.
            Err(_) => decode_prefix_general(window, offset),
        },
        Err(Stop::Incomplete) => None,
        Err(Stop::Other) => decode_prefix_general(window, offset),
    }
}

/// [`decode_prefix_as_is`] for any message: serde_json reads it.
fn decode_prefix_general(
    window: &[u8],
    offset: u64,
) -> Option<(usize, Result<Incoming, CloseReason>)> {
    let mut stream = serde_json::Deserializer::from_slice(window).into_iter::<Wire>();
    match stream.next()? {
        Ok(wire) => {
            let len = stream.byte_offset();
            // serde_json checks the strings it reads; members it skips
            // must be valid UTF-8 too.
            if let Err(e) = core::str::from_utf8(&window[..len]) {
                let err = CloseReason::Malformed {
                    offset: offset + e.valid_up_to() as u64,
                    detail: String::from("invalid UTF-8"),
                };
                return Some((len, Err(err)));
            }
            Some((len, Ok(classify(wire, &window[..len]))))
        }
        Err(e) if e.is_eof() || cut_in_a_number(window) => None,
        Err(e) => {
            let err = malformed(window, offset, &e);
            // Consume only up to the fault, so a resync can still find a
            // delimiter behind it.
            let len = match &err {
                CloseReason::Malformed { offset: at, .. } => (at - offset) as usize + 1,
                _ => window.len(),
            };
            Some((len.min(window.len()), Err(err)))
        }
    }
}

/// Whether serde_json's fault in `window` is only that the window ends
/// inside a number, after `-`, `.`, `e` or its sign: serde_json reports
/// that as an invalid number, not as the end of its input, but the next
/// read may well complete it. With a digit added such a window reads on
/// to its end, while a real fault stays where it is. Only on that fault's
/// path, so the copy costs nothing otherwise.
fn cut_in_a_number(window: &[u8]) -> bool {
    if !matches!(window.last(), Some(b'-' | b'+' | b'.' | b'e' | b'E')) {
        return false;
    }
    let mut longer = Vec::with_capacity(window.len() + 1);
    longer.extend_from_slice(window);
    longer.push(b'0');
    let mut stream = serde_json::Deserializer::from_slice(&longer).into_iter::<Wire>();
    matches!(stream.next(), Some(Err(e)) if e.is_eof())
}

/// The reply [`plain_reply`] found, with its value's text.
fn plain(id: u64, value: &str) -> Incoming {
    Incoming::Reply {
        id: ReplyId::Number(id),
        result: Ok(Box::from(value)),
        whole: None,
    }
}

/// Rewrites every `\uXXXX` escape of an unpaired UTF-16 surrogate inside a
/// string as `\uFFFD`, or returns `None` when there is none.
///
/// Such escapes are valid JSON, but not text a `String` can hold, and
/// serde_json refuses them. One odd string in one reply must not end the
/// session (and interrupt every other request), so it is delivered with
/// U+FFFD instead, as QEMU itself does with text it cannot represent. The
/// replacement has the same length, so stream offsets still hold.
pub(crate) fn replace_lone_surrogates(bytes: &[u8]) -> Option<Vec<u8>> {
    let unit = |at: usize| {
        let hex = core::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
        u16::from_str_radix(hex, 16).ok()
    };
    let mut fixed: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (_, b'"') => in_string = !in_string,
            (true, b'\\') if bytes.get(i + 1) == Some(&b'u') => {
                let lone = match unit(i + 2) {
                    Some(0xD800..=0xDBFF) => {
                        let paired = bytes.get(i + 6..i + 8) == Some(b"\\u")
                            && matches!(unit(i + 8), Some(0xDC00..=0xDFFF));
                        if paired {
                            i += 12;
                            continue;
                        }
                        true
                    }
                    Some(0xDC00..=0xDFFF) => true,
                    _ => false,
                };
                if lone {
                    fixed.get_or_insert_with(|| bytes.to_vec())[i + 2..i + 6]
                        .copy_from_slice(b"FFFD");
                }
                i += 6;
                continue;
            }
            // Any other escape: skip the escaped byte.
            (true, b'\\') => i += 1,
            _ => {}
        }
        i += 1;
    }
    fixed
}

fn reply_id(id: Option<Value>) -> ReplyId {
    match id {
        None => ReplyId::Missing,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) => ReplyId::Number(n),
            None => ReplyId::Foreign(Value::Number(n)),
        },
        Some(other) => ReplyId::Foreign(other),
    }
}

fn classify(wire: Wire, bytes: &[u8]) -> Incoming {
    let id = reply_id(wire.id);
    if let Some(body) = wire.greeting {
        return Incoming::Greeting(body);
    }
    if let Some(name) = wire.event {
        return Incoming::Event(Event::received(name, wire.data, wire.timestamp));
    }
    // Only a fault's path copies the message.
    let bad = || Fault::Bad(String::from_utf8_lossy(bytes).into_owned());
    let result = match (wire.ret, wire.error) {
        (Some(ret), None) => Ok(ret.into()),
        (None, Some(err)) => Err(server_error(err).map_or_else(bad, Fault::Server)),
        (Some(_), Some(_)) => Err(bad()),
        (None, None) if id != ReplyId::Missing => Err(bad()),
        (None, None) => return Incoming::Unrecognized,
    };
    Incoming::Reply {
        id,
        result,
        whole: None,
    }
}

/// The server's error, when `err` is an object with a string `class`.
fn server_error(err: Value) -> Option<ExecuteError> {
    let class = err.get("class")?.as_str()?;
    let desc = match err.get("desc") {
        None => String::new(),
        Some(Value::String(desc)) => desc.clone(),
        Some(_) => return None,
    };
    let class = ErrorClass::from_wire(String::from(class));
    Some(ExecuteError::new(class, desc).with_raw(err))
}

/// Turns serde's line and column into a stream offset.
fn malformed(bytes: &[u8], offset: u64, err: &serde_json::Error) -> CloseReason {
    let mut line = 1;
    let mut pos = 0;
    while line < err.line() && pos < bytes.len() {
        if bytes[pos] == b'\n' {
            line += 1;
        }
        pos += 1;
    }
    let within = (pos + err.column().saturating_sub(1)).min(bytes.len().saturating_sub(1));
    let detail = format!("{err}");
    // serde appends " at line L column C"; the offset says that better.
    let detail = match detail.rfind(" at line ") {
        Some(cut) => String::from(&detail[..cut]),
        None => detail,
    };
    CloseReason::Malformed {
        offset: offset + within as u64,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode_t(bytes: &[u8], offset: u64) -> Result<Incoming, CloseReason> {
        decode(bytes, offset, usize::MAX)
    }

    #[test]
    fn the_estimate_follows_the_shape() {
        let zeros = [b"[".as_slice(), &b"0,".repeat(100_000), b"0]"].concat();
        let estimate = decoded_estimate(&zeros);
        assert!(estimate > 100_000 * 32, "{estimate}");
        let text = br#"{"s": "a,b:c[{\"", "n": [1, 2]}"#;
        // Two members; five values counted (one to start, the object's
        // brace, each comma and the bracket), nothing inside the string.
        assert_eq!(decoded_estimate(text), 5 * 32 + 2 * 72 + text.len());
        let event = [br#"{"event": "X", "data": "#.as_slice(), &zeros, b"}"].concat();
        match decode(&event, 0, 1024 * 1024).unwrap() {
            Incoming::Oversized => {}
            other => panic!("{other:?}"),
        }
        // A return is kept as its text: the budget applies when it is
        // decoded untyped.
        let reply = [br#"{"id": 7, "return": "#.as_slice(), &zeros, b"}"].concat();
        match decode(&reply, 0, 1024 * 1024).unwrap() {
            Incoming::Reply {
                id: ReplyId::Number(7),
                result: Ok(text),
                ..
            } => assert_eq!(text.len(), zeros.len()),
            other => panic!("{:.200?}", alloc::format!("{other:?}")),
        }
        let error = [
            br#"{"id": 7, "error": {"class": "X", "a": "#.as_slice(),
            &zeros,
            b"}}",
        ]
        .concat();
        match decode(&error, 0, 1024 * 1024).unwrap() {
            Incoming::Reply {
                id: ReplyId::Number(7),
                result: Err(Fault::TooLarge { bytes, estimate }),
                ..
            } => assert!(bytes == error.len() && estimate > 1024 * 1024),
            other => panic!("{:.200?}", alloc::format!("{other:?}")),
        }
    }

    #[test]
    fn classifies() {
        let r = decode_t(br#"{"return": {}, "id": 3}"#, 0).unwrap();
        assert!(matches!(
            r,
            Incoming::Reply {
                id: ReplyId::Number(3),
                result: Ok(_),
                ..
            }
        ));
        let r = decode_t(br#"{"return": null}"#, 0).unwrap();
        assert!(matches!(
            r,
            Incoming::Reply {
                id: ReplyId::Missing,
                result: Ok(ref text),
                ..
            } if &**text == "null"
        ));
        let r = decode_t(
            br#"{"id": "x", "error": {"class": "Nope", "desc": "d"}}"#,
            0,
        )
        .unwrap();
        match r {
            Incoming::Reply {
                id: ReplyId::Foreign(_),
                result: Err(Fault::Server(e)),
                ..
            } => {
                assert_eq!(e.class, ErrorClass::Other("Nope".into()));
                assert_eq!(e.desc, "d");
                assert_eq!(*e.raw, json!({"class": "Nope", "desc": "d"}));
            }
            other => panic!("{other:?}"),
        }
        let r = decode_t(
            br#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP", "new": 1}"#,
            0,
        )
        .unwrap();
        match r {
            Incoming::Event(e) => {
                assert_eq!(e.name, "STOP");
                assert_eq!(e.data().unwrap(), Value::Null);
                assert_eq!(
                    e.timestamp,
                    Some(Timestamp {
                        seconds: 1,
                        microseconds: 2
                    })
                );
                assert_eq!(
                    e.to_value(),
                    json!({"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}})
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_t(b"{}", 0).unwrap(),
            Incoming::Unrecognized
        ));
    }

    #[test]
    fn bad_replies_keep_the_message() {
        for text in [
            r#"{"id": 4}"#,
            r#"{"id": 4, "return": {}, "error": {"class": "X", "desc": ""}}"#,
            r#"{"id": 4, "error": "oops"}"#,
            r#"{"id": 4, "error": {"desc": "no class"}}"#,
            r#"{"id": 4, "error": {"class": 7}}"#,
            r#"{"id": 4, "error": null}"#,
        ] {
            match decode_t(text.as_bytes(), 0).unwrap() {
                Incoming::Reply {
                    id: ReplyId::Number(4),
                    result: Err(Fault::Bad(m)),
                    ..
                } => assert_eq!(m, text),
                other => panic!("{text}: {other:?}"),
            }
        }
        // A well-formed error without `desc` is still the server's error.
        let r = decode_t(br#"{"id": 4, "error": {"class": "GenericError"}}"#, 0).unwrap();
        assert!(matches!(
            r,
            Incoming::Reply {
                result: Err(Fault::Server(_)),
                ..
            }
        ));
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let text = br#"{"return": ["\ud800", "x\udc00y", "\ud800\u0041", "\udbff\udbff\udfff", "\\ud800", "\ud83d\ude00"], "id": 1}"#;
        let want = json!([
            "\u{fffd}",
            "x\u{fffd}y",
            "\u{fffd}A",
            "\u{fffd}\u{10ffff}",
            "\\ud800",
            "😀"
        ]);
        match decode_t(text, 0).unwrap() {
            Incoming::Reply { result: Ok(v), .. } => {
                assert_eq!(crate::Reply::from_text(v).value().unwrap(), want)
            }
            other => panic!("{other:?}"),
        }
        // The same through the fast path, with the next message behind it.
        let mut window = text.to_vec();
        window.extend_from_slice(br#"{"event": "\udfff"}"#);
        let (len, msg) = decode_prefix(&window, 0, usize::MAX).unwrap();
        assert_eq!(len, text.len());
        match msg.unwrap() {
            Incoming::Reply { result: Ok(v), .. } => {
                assert_eq!(crate::Reply::from_text(v).value().unwrap(), want)
            }
            other => panic!("{other:?}"),
        }
        assert!(replace_lone_surrogates(br#"{"a": "\ud83d\ude00 \\udc00"}"#).is_none());
        // Outside strings nothing is touched, and real faults stay faults.
        assert!(decode_t(br#"{"a": "\ud800", "b": tru}"#, 0).is_err());
    }

    /// Both readers' verdict on every prefix of `text`, as text; on the
    /// whole of it only when it is not UTF-8: the general reader finds
    /// bad UTF-8 in a return value as soon as it has read the value, the
    /// plain one when it has read the message, and then hands it over.
    fn both_readers(text: &[u8]) {
        let first = match core::str::from_utf8(text) {
            Ok(_) => 1,
            Err(_) => text.len(),
        };
        for end in first..=text.len() {
            let window = &text[..end];
            let fast = decode_prefix_as_is(window, 10);
            let general = decode_prefix_general(window, 10);
            assert_eq!(
                alloc::format!("{fast:?}"),
                alloc::format!("{general:?}"),
                "{:?}",
                String::from_utf8_lossy(window)
            );
        }
    }

    #[test]
    fn the_plain_reply_reader_agrees_with_serde() {
        let next = r#"{"event": "STOP"}"#;
        for text in [
            r#"{"return": {"status": "running", "singlestep": false, "running": true}, "id": 1}"#,
            "{ \"return\" :\t[1, -2.5e3, \"a\\\"}\", null, {}] ,\r\n\"id\" : 18446744073709551615 }",
            r#"{"return": {}, "id": 0}"#,
            r#"{"return": "\ud800", "id": 7}"#,
            // Not plain: the general reader decides.
            r#"{"return": {}, "id": 18446744073709551616}"#,
            r#"{"return": {}, "id": 01}"#,
            r#"{"return": {}, "id": 1.0}"#,
            r#"{"return": {}, "id": 1e2}"#,
            r#"{"return": {}, "id": -1}"#,
            r#"{"return": {}, "id": "x"}"#,
            r#"{"return": {}, "id": 1, "return": 2}"#,
            r#"{"return": {}}"#,
            r#"{"return": tru, "id": 1}"#,
            r#"{"return": {"a" 1}, "id": 1}"#,
            r#"{"return": {}, "id": 1 "x"}"#,
            r#"{"id": 1, "return": {}}"#,
            r#"{"returns": {}, "id": 1}"#,
            r#"{"error": {"class": "GenericError", "desc": "x"}, "id": 2}"#,
        ] {
            both_readers(text.as_bytes());
            both_readers(alloc::format!("{text}{next}").as_bytes());
            both_readers(alloc::format!("{text}\n").as_bytes());
        }
        // Found plain, then left to the general reader, which says where
        // the fault is (sooner, in a window that ends inside the message).
        let invalid = b"{\"return\": \"\xff\", \"id\": 3}";
        assert_eq!(
            alloc::format!("{:?}", decode_prefix_as_is(invalid, 10)),
            alloc::format!("{:?}", decode_prefix_general(invalid, 10)),
        );
        assert_eq!(
            plain_reply(invalid),
            Ok(PlainReply {
                len: invalid.len(),
                id: 3,
                value: 11..14
            })
        );
    }

    /// splitmix64: the same sequence on every run.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as usize % n
        }

        /// A well-formed JSON value, with whitespace here and there.
        fn value(&mut self, depth: u32, out: &mut String) {
            const SCALARS: [&str; 14] = [
                "\"a\"",
                "\"\\u12aF\"",
                "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"",
                "\"\u{e9}\"",
                "-0",
                "0",
                "7",
                "-12.5e+3",
                "1.5",
                "3E-7",
                "true",
                "false",
                "null",
                "\"\"",
            ];
            let space = [" ", "", "\n", "\t", "\r\n"];
            out.push_str(space[self.below(space.len())]);
            match (self.below(if depth > 3 { 1 } else { 3 }), self.below(4)) {
                (0, _) => out.push_str(SCALARS[self.below(SCALARS.len())]),
                (kind, n) => {
                    out.push(if kind == 1 { '[' } else { '{' });
                    for i in 0..n {
                        if i > 0 {
                            out.push(',');
                        }
                        if kind == 2 {
                            out.push_str(" \"k\" :");
                        }
                        self.value(depth + 1, out);
                    }
                    out.push(if kind == 1 { ']' } else { '}' });
                }
            }
            out.push_str(space[self.below(space.len())]);
        }
    }

    #[test]
    fn the_plain_reply_reader_agrees_with_serde_on_any_value() {
        let mut rng = Rng(0x1234_5678);
        let mut plain = 0;
        for case in 0..3000 {
            let mut value = String::new();
            rng.value(0, &mut value);
            let mut text = alloc::format!(r#"{{"return": {value}, "id": 1}}"#).into_bytes();
            // Two cases in three with a byte changed: faults of every kind.
            if case % 3 > 0 {
                let faults = b"{}[],:\" \\-.+0e1tnx\t\x01";
                // Not the first: a window starts with `{`.
                let at = 1 + rng.below(text.len() - 1);
                text[at] = faults[rng.below(faults.len())];
            }
            both_readers(&text);
            plain += usize::from(plain_reply(&text).is_ok());
        }
        // Enough of them plain for the agreement to mean something.
        assert!(plain > 1000, "{plain}");
        let mut deepest = 0;
        for depth in 124..=130 {
            let arrays = alloc::format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let objects = alloc::format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
            for value in [arrays, objects] {
                let text = alloc::format!(r#"{{"return": {value}, "id": 1}}"#);
                both_readers(text.as_bytes());
                if plain_reply(text.as_bytes()).is_ok() {
                    deepest = deepest.max(depth);
                }
            }
        }
        assert_eq!(deepest, 127);
    }

    #[test]
    fn a_window_may_end_inside_a_number() {
        let reply = br#"{"return": [-1, 2.5, 3e7, 4E-2, 5e+1], "id": 1}"#;
        let event = br#"{"event": "X", "data": {"a": -1.5e-3}, "timestamp": {"seconds": 1, "microseconds": 2}}"#;
        for text in [&reply[..], event] {
            for end in 1..text.len() {
                let window = &text[..end];
                assert!(
                    decode_prefix(window, 0, usize::MAX).is_none(),
                    "{:?}",
                    String::from_utf8_lossy(window)
                );
            }
            assert!(matches!(
                decode_prefix(text, 0, usize::MAX),
                Some((_, Ok(_)))
            ));
        }
        // A real fault in a number is still one.
        for bad in [
            &br#"{"return": -x"#[..],
            br#"{"return": 1.e"#,
            br#"{"return": 01"#,
        ] {
            assert!(
                matches!(decode_prefix(bad, 0, usize::MAX), Some((_, Err(_)))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn says_where_the_fault_is() {
        let err = decode_t(b"{\"a\":\n  tru }", 100).unwrap_err();
        match err {
            CloseReason::Malformed { offset, detail } => {
                assert!((107..=111).contains(&offset), "{offset}");
                assert!(detail.contains("expected"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        let err = decode_t(b"{\"a\": \"\xff\"}", 0).unwrap_err();
        assert_eq!(
            err,
            CloseReason::Malformed {
                offset: 7,
                detail: "invalid UTF-8".into()
            }
        );
    }
}
