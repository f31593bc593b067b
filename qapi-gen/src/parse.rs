//! Reads QEMU's QAPI schema dialect: JSON objects with single-quoted
//! strings, `#` comments and `include` directives, one definition per
//! top-level object.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A value in the schema dialect (no numbers or null occur in it).
#[derive(Clone, Debug, PartialEq)]
pub enum J {
    /// A string.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// A list.
    List(Vec<J>),
    /// An object, members in source order.
    Obj(Vec<(String, J)>),
}

impl J {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            J::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// One top-level definition with where it came from.
#[derive(Clone, Debug)]
pub struct Expr {
    /// The definition.
    pub value: J,
    /// The first word of the last `Since:` line of its doc comment.
    pub since: Option<String>,
    /// The schema file's stem (`block-core`), QEMU's module name.
    pub module: String,
}

/// Loads `path` and every file it includes (each once), in order.
pub fn load(path: &Path) -> Result<Vec<Expr>, String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    load_into(path, &mut seen, &mut out)?;
    Ok(out)
}

fn load_into(path: &Path, seen: &mut BTreeSet<PathBuf>, out: &mut Vec<Expr>) -> Result<(), String> {
    let canon = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !seen.insert(canon) {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let module = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let exprs = parse_str(&text, &module).map_err(|e| format!("{}: {e}", path.display()))?;
    for e in exprs {
        if let Some(inc) = e.value.get("include").and_then(J::as_str) {
            let dir = path.parent().unwrap_or(Path::new("."));
            load_into(&dir.join(inc), seen, out)?;
        } else {
            out.push(e);
        }
    }
    Ok(())
}

/// Parses one file's text; `include` directives are returned as they are.
pub fn parse_str(text: &str, module: &str) -> Result<Vec<Expr>, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        comments: Vec::new(),
    };
    let mut out = Vec::new();
    loop {
        p.skip_space();
        if p.i >= p.s.len() {
            return Ok(out);
        }
        let since = p.take_since();
        let value = p.value()?;
        out.push(Expr {
            value,
            since,
            module: module.to_string(),
        });
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    comments: Vec<String>,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.i < self.s.len() {
            match self.s[self.i] {
                b' ' | b'\t' | b'\n' | b'\r' => self.i += 1,
                b'#' => {
                    let start = self.i;
                    while self.i < self.s.len() && self.s[self.i] != b'\n' {
                        self.i += 1;
                    }
                    let line = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                    self.comments.push(line);
                }
                _ => return,
            }
        }
    }

    /// The version of the last `Since:` line in the comments read since the
    /// previous definition.
    fn take_since(&mut self) -> Option<String> {
        let comments = std::mem::take(&mut self.comments);
        comments.iter().rev().find_map(|line| {
            let rest = line.trim_start_matches('#').trim_start();
            let rest = rest.strip_prefix("Since:")?;
            let word = rest.split_whitespace().next()?;
            Some(word.trim_end_matches(['.', ',', ')']).to_string())
        })
    }

    fn err(&self, what: &str) -> String {
        let line = self.s[..self.i.min(self.s.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        format!("line {line}: {what}")
    }

    fn value(&mut self) -> Result<J, String> {
        self.skip_space();
        match self.s.get(self.i) {
            Some(b'{') => self.object(),
            Some(b'[') => self.list(),
            Some(b'\'') => self.string().map(J::Str),
            Some(b't') if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(J::Bool(true))
            }
            Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(J::Bool(false))
            }
            _ => Err(self.err("expected a value")),
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_space();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected `{}`", c as char)))
        }
    }

    /// Consumes `close` if it comes next, else a `,` (tolerating none
    /// before `close`).
    fn next_or_close(&mut self, close: u8) -> Result<bool, String> {
        self.skip_space();
        match self.s.get(self.i) {
            Some(&c) if c == close => {
                self.i += 1;
                Ok(true)
            }
            Some(b',') => {
                self.i += 1;
                self.skip_space();
                if self.s.get(self.i) == Some(&close) {
                    self.i += 1;
                    return Ok(true);
                }
                Ok(false)
            }
            _ => Err(self.err(&format!("expected `,` or `{}`", close as char))),
        }
    }

    fn object(&mut self) -> Result<J, String> {
        self.expect(b'{')?;
        let mut members = Vec::new();
        self.skip_space();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(J::Obj(members));
        }
        loop {
            self.skip_space();
            let key = self.string()?;
            self.expect(b':')?;
            let v = self.value()?;
            members.push((key, v));
            if self.next_or_close(b'}')? {
                return Ok(J::Obj(members));
            }
        }
    }

    fn list(&mut self) -> Result<J, String> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_space();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(J::List(items));
        }
        loop {
            items.push(self.value()?);
            if self.next_or_close(b']')? {
                return Ok(J::List(items));
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'\'') {
            return Err(self.err("expected a string"));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.i) {
                None | Some(b'\n') => return Err(self.err("unterminated string")),
                Some(b'\'') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|_| self.err("string is not UTF-8"));
                }
                Some(b'\\') => {
                    let c = *self
                        .s
                        .get(self.i + 1)
                        .ok_or_else(|| self.err("bad escape"))?;
                    out.push(c);
                    self.i += 2;
                }
                Some(&c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_dialect() {
        let src = b"# x\n##\n# Since: 7.1\n##\n{ 'struct': 'A', 'data': { '*b': ['int'], 'c': { 'type': 'str', 'if': 'X' } }, 'x': true, }";
        let mut p = Parser {
            s: src,
            i: 0,
            comments: Vec::new(),
        };
        p.skip_space();
        assert_eq!(p.take_since().as_deref(), Some("7.1"));
        let v = p.value().unwrap();
        assert_eq!(v.get("struct").and_then(J::as_str), Some("A"));
        assert_eq!(v.get("x"), Some(&J::Bool(true)));
        let data = v.get("data").unwrap();
        assert_eq!(data.get("*b"), Some(&J::List(vec![J::Str("int".into())])));
    }
}
