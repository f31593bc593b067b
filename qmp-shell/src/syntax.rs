//! What a typed line means: `name key=value a.b=value ...`, a raw JSON
//! request, an HMP line, or a line of a `transaction(` ... `)` block.
//!
//! Values: a double-quoted value is a JSON string (JSON escapes apply), a
//! single-quoted one is taken literally, an unquoted one is JSON when it
//! parses as JSON (numbers, `true`, `false`, `null`, objects, arrays) and a
//! plain string otherwise. Inside `{...}` and `[...]` spaces do not end the
//! value, so `props={"a": 1, "b": "x y"}` is one argument. Dotted keys build
//! nested objects, each from the root: `a.b=1 c=2` is `{"a":{"b":1},"c":2}`.
//!
//! Nesting is limited to [`MAX_DEPTH`] levels (dotted keys and brackets
//! together), checked as the line is parsed, before anything that deep
//! is built: any line, however long or deep, is a request or a syntax
//! error, never a stack overflow.

use std::borrow::Cow;
use std::fmt;

use qmp_std::Request;
use qmp_std::serde_json::{self, Map, Value};

/// Why a line could not be understood; the shell reports it and goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError(String);

/// How deeply a command's arguments may nest: dotted-key levels plus
/// bracket levels of the value (`a.b=[{}]` is 4), and bracket levels of
/// a raw JSON request.
pub(crate) const MAX_DEPTH: usize = 64;

/// The error for nesting deeper than [`MAX_DEPTH`].
fn too_deep(what: &str) -> SyntaxError {
    SyntaxError::new(format!("{what} nests deeper than {MAX_DEPTH} levels"))
}

/// At most the first 60 characters of `text`, for a message about it.
fn shown(text: &str) -> Cow<'_, str> {
    const SHOWN: usize = 60;
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => Cow::Owned(format!("{}...", &text[..at])),
        None => Cow::Borrowed(text),
    }
}

impl SyntaxError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        SyntaxError(message.into())
    }

    /// The error, saying which line it is about (its start, when long).
    pub(crate) fn context(self, line: &str) -> Self {
        SyntaxError(format!("in `{}`: {}", shown(line.trim()), self.0))
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SyntaxError {}

/// One whitespace-separated word: a bare word (a command name, `)`) or a
/// `key=value` argument.
#[derive(Clone, Debug, PartialEq)]
enum Word {
    Bare(String),
    Arg { key: String, value: Value },
}

/// A piece of a word, as it was quoted.
#[derive(Debug)]
enum Piece {
    /// Unquoted text, as typed (backslash escapes removed).
    Plain(String),
    /// `'...'`: literal text.
    Single(String),
    /// `"..."`: a JSON string, decoded.
    Double(String),
}

impl Piece {
    fn text(&self) -> &str {
        match self {
            Piece::Plain(s) | Piece::Single(s) | Piece::Double(s) => s,
        }
    }
}

/// The characters of a line, with their byte offsets.
type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Splits `line` into words, honouring quotes and brackets.
fn words(line: &str) -> Result<Vec<Word>, SyntaxError> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        out.push(word(&mut chars)?);
    }
}

/// Reads one word: up to whitespace that is neither quoted nor inside
/// brackets.
fn word(chars: &mut Chars<'_>) -> Result<Word, SyntaxError> {
    let mut parts = WordParts::default();
    while let Some((at, c)) = chars.next() {
        if !parts.depth.is_empty() {
            parts.bracketed(c, at, chars)?;
            continue;
        }
        match c {
            c if c.is_whitespace() => break,
            '=' if parts.key.is_none() => parts.end_key(),
            '{' | '[' => parts.open(c)?,
            '\'' => {
                let text = single_quoted(chars, at)?;
                parts.piece(Piece::Single(text));
            }
            '"' => {
                let text = double_quoted(chars, at)?;
                parts.piece(Piece::Double(text));
            }
            '\\' => parts.plain.push(chars.next().map_or('\\', |(_, c)| c)),
            c => parts.plain.push(c),
        }
    }
    parts.finish()
}

/// A word being read.
#[derive(Debug, Default)]
struct WordParts {
    /// The pieces before the first unquoted `=`, once there was one.
    key: Option<Vec<Piece>>,
    /// The pieces of the key until then, of the value after.
    pieces: Vec<Piece>,
    /// Unquoted text not yet made a piece.
    plain: String,
    /// The closing brackets still owed, innermost last.
    depth: Vec<char>,
}

impl WordParts {
    fn flush(&mut self) {
        if !self.plain.is_empty() {
            self.pieces
                .push(Piece::Plain(std::mem::take(&mut self.plain)));
        }
    }

    fn piece(&mut self, piece: Piece) {
        self.flush();
        self.pieces.push(piece);
    }

    /// The first unquoted `=`: what came before is the key.
    fn end_key(&mut self) {
        self.flush();
        self.key = Some(std::mem::take(&mut self.pieces));
    }

    fn open(&mut self, bracket: char) -> Result<(), SyntaxError> {
        if self.depth.len() == MAX_DEPTH {
            return Err(too_deep("a value"));
        }
        self.plain.push(bracket);
        self.depth.push(if bracket == '{' { '}' } else { ']' });
        Ok(())
    }

    /// A character inside brackets: kept as typed, so the value can be
    /// parsed as JSON; strings keep their quotes.
    fn bracketed(&mut self, c: char, at: usize, chars: &mut Chars<'_>) -> Result<(), SyntaxError> {
        match c {
            '{' | '[' => self.open(c)?,
            '}' | ']' if self.depth.last() == Some(&c) => {
                self.plain.push(c);
                self.depth.pop();
            }
            '}' | ']' => {
                return Err(SyntaxError::new(format!(
                    "unexpected `{c}` at column {}",
                    at + 1
                )));
            }
            '"' => {
                self.plain.push(c);
                quoted_raw(chars, &mut self.plain, at, '"')?;
            }
            '\'' => {
                // A Python string: kept as typed, converted with the rest.
                self.plain.push(c);
                quoted_raw(chars, &mut self.plain, at, '\'')?;
            }
            c => self.plain.push(c),
        }
        Ok(())
    }

    /// The word read: bare, or `key=value` with a typed value.
    fn finish(mut self) -> Result<Word, SyntaxError> {
        if let Some(close) = self.depth.last() {
            return Err(SyntaxError::new(format!(
                "a bracket is never closed (missing `{close}`); quote a value \
                 with brackets in it if it is not JSON"
            )));
        }
        self.flush();
        Ok(match self.key {
            None => Word::Bare(self.pieces.iter().map(Piece::text).collect()),
            Some(key) => {
                let key: String = key.iter().map(Piece::text).collect();
                let value = typed_value(&key, self.pieces)?;
                Word::Arg { key, value }
            }
        })
    }
}

/// The text of a `'...'` piece whose opening quote is at column `at`.
fn single_quoted(chars: &mut Chars<'_>, at: usize) -> Result<String, SyntaxError> {
    let mut text = String::new();
    loop {
        match chars.next() {
            Some((_, '\'')) => return Ok(text),
            Some((_, c)) => text.push(c),
            None => {
                return Err(SyntaxError::new(format!(
                    "the single quote at column {} is never closed",
                    at + 1
                )));
            }
        }
    }
}

/// The decoded text of a `"..."` piece whose opening quote is at column
/// `at`.
fn double_quoted(chars: &mut Chars<'_>, at: usize) -> Result<String, SyntaxError> {
    let mut raw = String::from("\"");
    quoted_raw(chars, &mut raw, at, '"')?;
    serde_json::from_str(&raw).map_err(|e| {
        SyntaxError::new(format!(
            "the string at column {} is not a valid JSON string: {e}",
            at + 1
        ))
    })
}

/// Copies a string's raw text (after its opening `quote`, already in
/// `out`) up to and including the closing quote: `"` for JSON, `'` for
/// Python's literals.
fn quoted_raw(
    chars: &mut Chars<'_>,
    out: &mut String,
    at: usize,
    quote: char,
) -> Result<(), SyntaxError> {
    loop {
        match chars.next() {
            Some((_, c)) if c == quote => {
                out.push(quote);
                return Ok(());
            }
            Some((_, '\\')) => {
                out.push('\\');
                if let Some((_, c)) = chars.next() {
                    out.push(c);
                }
            }
            Some((_, c)) => out.push(c),
            None => {
                let which = if quote == '"' { "double" } else { "single" };
                return Err(SyntaxError::new(format!(
                    "the {which} quote at column {} is never closed",
                    at + 1
                )));
            }
        }
    }
}

/// Python literal text (`{'a': True, 'b': None}`, as QEMU's qmp-shell
/// takes it) as JSON text: single-quoted strings become JSON strings,
/// `True`, `False` and `None` become `true`, `false` and `null`.
fn python_to_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push(c);
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                out.push('"');
                while let Some(c) = chars.next() {
                    match c {
                        '\'' => break,
                        '"' => out.push_str("\\\""),
                        '\\' => match chars.next() {
                            Some('\'') => out.push('\''),
                            Some(e) => {
                                out.push('\\');
                                out.push(e);
                            }
                            None => out.push_str("\\\\"),
                        },
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut word = String::from(c);
                while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    word.push(c);
                }
                out.push_str(match word.as_str() {
                    "True" => "true",
                    "False" => "false",
                    "None" => "null",
                    other => other,
                });
            }
            c => out.push(c),
        }
    }
    out
}

/// The value of `key=...`, from how its pieces were quoted.
fn typed_value(key: &str, pieces: Vec<Piece>) -> Result<Value, SyntaxError> {
    match pieces.as_slice() {
        [] => Ok(Value::String(String::new())),
        [Piece::Double(s)] => Ok(Value::String(s.clone())),
        [Piece::Plain(raw)] => match serde_json::from_str::<Value>(raw) {
            Ok(v) => Ok(v),
            // Python's literals, as QEMU's qmp-shell takes them.
            Err(_) if raw == "True" => Ok(Value::Bool(true)),
            Err(_) if raw == "False" => Ok(Value::Bool(false)),
            Err(_) if raw == "None" => Ok(Value::Null),
            Err(e) if raw.starts_with(['{', '[']) => {
                match serde_json::from_str(&python_to_json(raw)) {
                    Ok(v) => Ok(v),
                    Err(_) => Err(SyntaxError::new(format!(
                        "the value of `{key}` is not valid JSON ({e}); quote it with '...' \
                     to send it as a string"
                    ))),
                }
            }
            Err(_) => Ok(Value::String(raw.clone())),
        },
        pieces => Ok(Value::String(pieces.iter().map(Piece::text).collect())),
    }
}

/// Puts `value` at the dotted path `key` in `root`, starting from the root.
fn insert(root: &mut Map<String, Value>, key: &str, value: Value) -> Result<(), SyntaxError> {
    let levels = key.bytes().filter(|&b| b == b'.').count() + 1;
    if levels + value_depth(&value) > MAX_DEPTH {
        return Err(too_deep(&format!("`{}`", shown(key))));
    }
    let parts: Vec<&str> = key.split('.').collect();
    let key = shown(key);
    if parts.iter().any(|p| p.is_empty()) {
        return Err(SyntaxError::new(format!(
            "`{key}=` has an empty name (check the dots)"
        )));
    }
    let (last, parents) = parts.split_last().expect("split gives at least one part");
    let mut map = root;
    for (i, part) in parents.iter().enumerate() {
        let entry = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        map = match entry {
            Value::Object(m) => m,
            _ => {
                return Err(SyntaxError::new(format!(
                    "`{}` already has a value that is not an object, so `{key}` cannot go in it",
                    shown(&parts[..=i].join("."))
                )));
            }
        };
    }
    if map.contains_key(*last) {
        return Err(SyntaxError::new(format!("`{key}` is given twice")));
    }
    map.insert((*last).to_owned(), value);
    Ok(())
}

/// How many levels of brackets `value` has (0 for a scalar). Values
/// come from the user's brackets, already limited to [`MAX_DEPTH`], so
/// the recursion is bounded.
fn value_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        Value::Object(members) => 1 + members.values().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Checks that the JSON text `line` nests at most [`MAX_DEPTH`] levels,
/// before it is parsed.
fn check_json_depth(line: &str) -> Result<(), SyntaxError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in line.bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            b'{' | b'[' if !in_string => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep("the JSON"));
                }
            }
            b'}' | b']' if !in_string => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Builds an arguments object from `key=value` words.
fn arguments(words: &[Word]) -> Result<Map<String, Value>, SyntaxError> {
    let mut args = Map::new();
    for word in words {
        match word {
            Word::Arg { key, value } => insert(&mut args, key, value.clone())?,
            Word::Bare(w) => {
                return Err(SyntaxError::new(format!(
                    "expected `key=value`, found `{}`",
                    shown(w)
                )));
            }
        }
    }
    Ok(args)
}

/// A request object as a request for the client.
pub(crate) fn to_request(value: &Value) -> Result<Request, SyntaxError> {
    Request::from_value(value).map_err(|e| SyntaxError::new(e.detail))
}

/// A request object `{"execute": name, "arguments": {...}}`.
pub(crate) fn request(name: &str, args: Map<String, Value>) -> Value {
    let mut obj = Map::new();
    obj.insert("execute".into(), Value::String(name.to_owned()));
    if !args.is_empty() {
        obj.insert("arguments".into(), Value::Object(args));
    }
    Value::Object(obj)
}

/// The request that runs an HMP command line, on CPU `cpu` when given.
pub(crate) fn hmp_request(line: &str, cpu: Option<i64>) -> Value {
    let mut args = Map::new();
    args.insert("command-line".into(), Value::String(line.to_owned()));
    if let Some(cpu) = cpu {
        args.insert("cpu-index".into(), Value::from(cpu));
    }
    request("human-monitor-command", args)
}

/// A whole JSON object typed on one line.
fn raw_json(line: &str, what: &str) -> Result<Value, SyntaxError> {
    check_json_depth(line)?;
    let value: Value = serde_json::from_str(line)
        .map_err(|e| SyntaxError::new(format!("not a valid JSON {what}: {e}")))?;
    if !value.is_object() {
        return Err(SyntaxError::new(format!("a JSON {what} must be an object")));
    }
    Ok(value)
}

/// Checks the shape of a raw JSON request, as QMP wants it.
fn check_request(value: &Value) -> Result<(), SyntaxError> {
    let obj = value.as_object().expect("checked by raw_json");
    let name = obj.get("execute").or_else(|| obj.get("exec-oob"));
    if !matches!(name, Some(Value::String(_)))
        || (obj.contains_key("execute") && obj.contains_key("exec-oob"))
    {
        return Err(SyntaxError::new(
            "a JSON request needs exactly one of \"execute\" or \"exec-oob\", a string",
        ));
    }
    if let Some(key) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "execute" | "exec-oob" | "arguments" | "id"))
    {
        return Err(SyntaxError::new(format!(
            "a JSON request has no member \"{key}\""
        )));
    }
    if obj.get("arguments").is_some_and(|a| !a.is_object()) {
        return Err(SyntaxError::new(
            "the \"arguments\" of a request must be an object",
        ));
    }
    Ok(())
}

/// Parses one command line (not HMP, not in a block) into a request object.
/// `Ok(None)` for a blank line or a `#` comment.
pub(crate) fn parse_command(line: &str) -> Result<Option<Value>, SyntaxError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if line.starts_with('{') {
        let value = raw_json(line, "request")?;
        check_request(&value)?;
        return Ok(Some(value));
    }
    let words = words(line)?;
    let (name, rest) = command_name(&words)?;
    Ok(Some(request(name, arguments(rest)?)))
}

fn command_name(words: &[Word]) -> Result<(&str, &[Word]), SyntaxError> {
    match words.split_first() {
        Some((Word::Bare(name), rest)) if !name.is_empty() => Ok((name, rest)),
        Some((Word::Arg { key, .. }, _)) => Err(SyntaxError::new(format!(
            "a line starts with a command name, not `{}=...`",
            shown(key)
        ))),
        _ => Err(SyntaxError::new("a line starts with a command name")),
    }
}

/// What a line amounted to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Parsed {
    /// Nothing to run (blank line, comment, or a line inside a block).
    Nothing,
    /// A request object to run.
    Request(Value),
}

/// Turns lines into requests, keeping the state of a `transaction(` block.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    hmp: bool,
    /// HMP: the CPU that `cpu N` chose for the commands after it.
    cpu: Option<i64>,
    /// The actions of the open `transaction(` block.
    actions: Option<Vec<Value>>,
}

impl Parser {
    /// A parser for QMP lines, or HMP lines when `hmp`.
    pub(crate) fn new(hmp: bool) -> Self {
        Parser {
            hmp,
            cpu: None,
            actions: None,
        }
    }

    /// Whether a `transaction(` block is open.
    pub(crate) fn in_transaction(&self) -> bool {
        self.actions.is_some()
    }

    /// Drops an open block (Ctrl-C).
    pub(crate) fn abort(&mut self) {
        self.actions = None;
    }

    /// At the end of input: an open block is an error.
    pub(crate) fn finish(&mut self) -> Result<(), SyntaxError> {
        match self.actions.take() {
            Some(_) => Err(SyntaxError::new(
                "the input ended inside a `transaction(` block (missing `)`)",
            )),
            None => Ok(()),
        }
    }

    /// Takes one line. A syntax error inside a block leaves the block open,
    /// so the line can be typed again.
    pub(crate) fn feed(&mut self, line: &str) -> Result<Parsed, SyntaxError> {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(Parsed::Nothing);
        }
        if self.hmp {
            // `cpu N` picks the CPU of the HMP commands that follow, as
            // each command runs on a monitor of its own.
            let mut words = trimmed.split_whitespace();
            if let (Some("cpu"), Some(n), None) = (words.next(), words.next(), words.next()) {
                let n = n
                    .parse::<i64>()
                    .map_err(|_| SyntaxError::new(format!("`cpu {n}`: give a CPU index")))?;
                self.cpu = Some(n);
                return Ok(Parsed::Nothing);
            }
            return Ok(Parsed::Request(hmp_request(trimmed, self.cpu)));
        }
        if self.actions.is_none() {
            if let Some(rest) = trimmed.strip_prefix("transaction(") {
                self.actions = Some(Vec::new());
                return self.feed_block(rest.trim());
            }
            return Ok(parse_command(trimmed)?.map_or(Parsed::Nothing, Parsed::Request));
        }
        self.feed_block(trimmed)
    }

    /// A line inside a block: an action, optionally followed by `)`, or
    /// `)` followed by the transaction's own arguments.
    fn feed_block(&mut self, line: &str) -> Result<Parsed, SyntaxError> {
        if line.is_empty() {
            return Ok(Parsed::Nothing);
        }
        if line.starts_with('{') {
            let action = raw_json(line, "action")?;
            self.push(action);
            return Ok(Parsed::Nothing);
        }
        let mut words = words(line)?;
        let closes = |w: &Word| matches!(w, Word::Bare(b) if b == ")");
        if let Some(at) = words.iter().position(closes) {
            let tail = words.split_off(at + 1);
            words.pop();
            let action = if words.is_empty() {
                None
            } else {
                Some(Self::action(&words)?)
            };
            let properties = arguments(&tail)?;
            let mut actions = self.actions.take().unwrap_or_default();
            actions.extend(action);
            let mut args = properties;
            if args.contains_key("actions") {
                return Err(SyntaxError::new(
                    "`actions` comes from the block; do not give it after `)`",
                ));
            }
            args.insert("actions".into(), Value::Array(actions));
            return Ok(Parsed::Request(request("transaction", args)));
        }
        let action = Self::action(&words)?;
        self.push(action);
        Ok(Parsed::Nothing)
    }

    fn push(&mut self, action: Value) {
        self.actions.get_or_insert_with(Vec::new).push(action);
    }

    /// `name key=value ...` as a transaction action `{"type", "data"}`.
    fn action(words: &[Word]) -> Result<Value, SyntaxError> {
        let (name, rest) = command_name(words)?;
        let mut action = Map::new();
        action.insert("type".into(), Value::String(name.to_owned()));
        action.insert("data".into(), Value::Object(arguments(rest)?));
        Ok(Value::Object(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_std::serde_json::json;

    #[track_caller]
    fn parses(line: &str) -> Value {
        parse_command(line)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .unwrap_or_else(|| panic!("{line}: nothing"))
    }

    #[track_caller]
    fn args(line: &str) -> Value {
        parses(line).get("arguments").cloned().unwrap_or(json!({}))
    }

    #[track_caller]
    fn fails(line: &str) -> String {
        match parse_command(line) {
            Err(e) => e.to_string(),
            Ok(v) => panic!("{line}: parsed as {v:?}"),
        }
    }

    #[test]
    fn a_name_alone() {
        assert_eq!(parses("query-status"), json!({"execute": "query-status"}));
        assert_eq!(parses("  stop  "), json!({"execute": "stop"}));
    }

    #[test]
    fn values_are_json_when_they_parse() {
        assert_eq!(
            args("x n=1 f=2.5 t=true no=false z=null s=hello neg=-3"),
            json!({"n": 1, "f": 2.5, "t": true, "no": false, "z": null, "s": "hello", "neg": -3})
        );
        assert_eq!(
            args(r#"x o={"a": [1, 2], "b": "x y"} l=[1, "two"]"#),
            json!({"o": {"a": [1, 2], "b": "x y"}, "l": [1, "two"]})
        );
        assert_eq!(args("x empty="), json!({"empty": ""}));
        assert_eq!(args("x path=/dev/null"), json!({"path": "/dev/null"}));
        assert_eq!(args("x eq=a=b"), json!({"eq": "a=b"}));
    }

    #[test]
    fn quoting() {
        assert_eq!(
            args(r#"human-monitor-command command-line="info version""#),
            json!({"command-line": "info version"})
        );
        assert_eq!(args("x a='a b'"), json!({"a": "a b"}));
        // Double quotes make a JSON string, so a number stays a string.
        assert_eq!(args(r#"x id="1""#), json!({"id": "1"}));
        assert_eq!(args(r#"x q="say \"hi\"""#), json!({"q": "say \"hi\""}));
        // Single quotes are literal: no escapes, JSON not interpreted.
        assert_eq!(args(r"x a='{\n}'"), json!({"a": "{\\n}"}));
        assert_eq!(args("x a=one\\ two"), json!({"a": "one two"}));
        assert_eq!(args("x a=pre'mid dle'post"), json!({"a": "premid dlepost"}));
        assert_eq!(args("x 'spaced key'=1"), json!({"spaced key": 1}));
    }

    #[test]
    fn dotted_keys_nest_from_the_root() {
        assert_eq!(args("x a.b=1 c=2"), json!({"a": {"b": 1}, "c": 2}));
        assert_eq!(
            args("x a.b.c=1 a.b.d=2 a.e=3 f=4"),
            json!({"a": {"b": {"c": 1, "d": 2}, "e": 3}, "f": 4})
        );
        assert_eq!(
            args(r#"blockdev-add driver=null-co node-name=n0 cache.direct=false"#),
            json!({"driver": "null-co", "node-name": "n0", "cache": {"direct": false}})
        );
    }

    #[test]
    fn raw_json_requests() {
        let line = r#"{"execute": "qom-list", "arguments": {"path": "/"}}"#;
        assert_eq!(
            parses(line),
            json!({"execute": "qom-list", "arguments": {"path": "/"}})
        );
        assert_eq!(
            parses(r#"{"exec-oob": "migrate-pause"}"#),
            json!({"exec-oob": "migrate-pause"})
        );
        assert!(fails(r#"{"execute": "x""#).contains("not a valid JSON request"));
        assert!(fails(r#"{"arguments": {}}"#).contains("exactly one of"));
        assert!(fails(r#"{"execute": "x", "bogus": 1}"#).contains("\"bogus\""));
        assert!(fails(r#"{"execute": "x", "arguments": 1}"#).contains("must be an object"));
    }

    #[test]
    fn blank_and_comments() {
        assert_eq!(parse_command("   ").unwrap(), None);
        assert_eq!(parse_command("# a comment").unwrap(), None);
    }

    #[test]
    fn syntax_errors_say_what_is_wrong() {
        assert!(fails("x a=1 a=2").contains("`a` is given twice"));
        assert!(fails("x a=1 a.b=2").contains("not an object"));
        assert!(fails("x a.b=1 a.b=2").contains("`a.b` is given twice"));
        assert!(fails("x a..b=1").contains("empty name"));
        assert!(fails("x =1").contains("empty name"));
        assert!(fails("x loose").contains("expected `key=value`, found `loose`"));
        assert!(fails("x a='open").contains("never closed"));
        assert!(fails("x a=\"open").contains("never closed"));
        assert!(fails("x a={\"b\": 1").contains("never closed"));
        assert!(fails("x a={b:1}").contains("not valid JSON"));
        assert!(fails("a=1").contains("command name"));
    }

    #[test]
    fn nesting_is_limited() {
        let key = |levels: usize| vec!["a"; levels].join(".");
        let nested = parses(&format!("x {}=1", key(MAX_DEPTH)));
        let mut v = &nested["arguments"];
        for _ in 0..MAX_DEPTH {
            v = &v["a"];
        }
        assert_eq!(v, &json!(1));
        let e = fails(&format!("x {}=1", key(MAX_DEPTH + 1)));
        assert!(e.contains("deeper than 64 levels"), "{e}");
        // Dotted levels and the value's brackets count together.
        let e = fails(&format!("x {}=[[1]]", key(MAX_DEPTH - 1)));
        assert!(e.contains("deeper than 64 levels"), "{e}");
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_command(&format!("x a={}", deep(MAX_DEPTH - 1))).is_ok());
        assert!(fails(&format!("x a={}", deep(MAX_DEPTH + 1))).contains("deeper than"));
        let raw = |n: usize| format!(r#"{{"execute": "x", "arguments": {{"a": {}}}}}"#, deep(n));
        assert!(parse_command(&raw(MAX_DEPTH - 2)).is_ok());
        assert!(fails(&raw(MAX_DEPTH)).contains("deeper than"));
        // Brackets inside strings do not count.
        let quoted = format!(
            r#"{{"execute": "x", "arguments": {{"a": "{}"}}}}"#,
            deep(200)
        );
        assert!(parse_command(&quoted).is_ok());
    }

    #[test]
    fn a_megabyte_of_nesting_is_a_short_syntax_error() {
        let line = format!("qom-list {}=1", vec!["a"; 500_000].join("."));
        let e = SyntaxError::new(fails(&line)).context(&line).to_string();
        assert!(
            e.contains("deeper than 64 levels"),
            "{}",
            &e[..200.min(e.len())]
        );
        assert!(e.len() < 300, "{e}");
        let line = format!("x a={}", "[".repeat(1_000_000));
        assert!(fails(&line).contains("deeper than"));
        let line = format!(
            r#"{{"execute": "x", "arguments": {}"#,
            "{\"a\":".repeat(100_000)
        );
        assert!(fails(&line).contains("deeper than"));
        let mut p = Parser::new(false);
        p.feed("transaction(").unwrap();
        assert!(
            p.feed(&format!("abort {}=1", vec!["a"; 100_000].join(".")))
                .is_err()
        );
    }

    #[test]
    fn python_literals() {
        assert_eq!(
            args("x a=True b=False c=None d=true"),
            json!({"a": true, "b": false, "c": null, "d": true})
        );
        assert_eq!(
            args(r#"x o={'a': 'x y}', "b": True, 'c': [None, False, 'it\'s', 'say "hi"']}"#),
            json!({"o": {"a": "x y}", "b": true, "c": [null, false, "it's", "say \"hi\""]}})
        );
        assert_eq!(args("x l=['a', 1]"), json!({"l": ["a", 1]}));
        // JSON strings keep their text.
        assert_eq!(
            args(r#"x o={"a": "True 'q'"}"#),
            json!({"o": {"a": "True 'q'"}})
        );
        assert!(fails("x o={'a': Nope}").contains("not valid JSON"));
        assert!(fails("x o={'a}").contains("never closed"));
    }

    #[test]
    fn hmp_cpu_picks_the_cpu_of_later_commands() {
        let mut p = Parser::new(true);
        assert_eq!(p.feed("cpu 1").unwrap(), Parsed::Nothing);
        assert_eq!(
            p.feed("info registers").unwrap(),
            Parsed::Request(json!({
                "execute": "human-monitor-command",
                "arguments": {"command-line": "info registers", "cpu-index": 1}
            }))
        );
        assert!(p.feed("cpu x").is_err());
    }

    #[test]
    fn hmp_lines_are_sent_whole() {
        let mut p = Parser::new(true);
        assert_eq!(
            p.feed("info  status").unwrap(),
            Parsed::Request(json!({
                "execute": "human-monitor-command",
                "arguments": {"command-line": "info  status"}
            }))
        );
        assert_eq!(p.feed("").unwrap(), Parsed::Nothing);
    }

    #[test]
    fn transaction_blocks() {
        let mut p = Parser::new(false);
        assert_eq!(p.feed("transaction(").unwrap(), Parsed::Nothing);
        assert!(p.in_transaction());
        assert_eq!(
            p.feed("block-dirty-bitmap-add node=n0 name=b0").unwrap(),
            Parsed::Nothing
        );
        // A bad line is reported and the block stays open.
        assert!(p.feed("abort x").is_err());
        assert!(p.in_transaction());
        assert_eq!(p.feed("abort").unwrap(), Parsed::Nothing);
        assert_eq!(
            p.feed(")").unwrap(),
            Parsed::Request(json!({
                "execute": "transaction",
                "arguments": {"actions": [
                    {"type": "block-dirty-bitmap-add", "data": {"node": "n0", "name": "b0"}},
                    {"type": "abort", "data": {}},
                ]}
            }))
        );
        assert!(!p.in_transaction());
    }

    #[test]
    fn transaction_on_one_line_with_properties() {
        let mut p = Parser::new(false);
        assert_eq!(
            p.feed("transaction( abort ) properties.completion-mode=grouped")
                .unwrap(),
            Parsed::Request(json!({
                "execute": "transaction",
                "arguments": {
                    "actions": [{"type": "abort", "data": {}}],
                    "properties": {"completion-mode": "grouped"},
                }
            }))
        );
        assert_eq!(p.feed("transaction(").unwrap(), Parsed::Nothing);
        assert_eq!(
            p.feed(r#"{"type": "abort", "data": {}}"#).unwrap(),
            Parsed::Nothing
        );
        assert_eq!(
            p.feed("abort )").unwrap(),
            Parsed::Request(json!({
                "execute": "transaction",
                "arguments": {"actions": [
                    {"type": "abort", "data": {}},
                    {"type": "abort", "data": {}},
                ]}
            }))
        );
    }

    #[test]
    fn an_unfinished_block_is_an_error_at_the_end() {
        let mut p = Parser::new(false);
        p.feed("transaction(").unwrap();
        assert!(p.finish().unwrap_err().to_string().contains("missing `)`"));
        p.feed("transaction(").unwrap();
        p.abort();
        assert!(p.finish().is_ok());
    }

    #[test]
    fn never_panics_on_odd_input() {
        for line in [
            "\"",
            "'",
            "{",
            "[",
            "}",
            "]",
            "=",
            "==",
            "a==",
            "a =",
            "\\",
            "x \\",
            "x a=\\",
            "x a={\"\\",
            "x a=[\"]",
            "transaction(",
            ")",
            "x )",
            "x a.=1",
            "x .=1",
            "é=ü",
            "x a=\"\\u12\"",
            "\u{0}",
            "x {",
            "transaction( )",
        ] {
            let _ = parse_command(line);
            let mut p = Parser::new(false);
            let _ = p.feed(line);
            let _ = p.feed(line);
        }
    }
}
