//! The reply nearly every call gets, `{"return": VALUE, "id": N}`, read
//! without serde: the message decoder tries this first and hands
//! anything else, and any fault, to serde_json.

use core::ops::Range;

/// How deep containers may nest in a plain reply's value: as deep as
/// serde_json lets them inside the message (its limit is 128 levels, and
/// the message itself is one).
const MAX_DEPTH: u32 = 127;

/// The bytes a JSON string holds as they are: all but a quote, a
/// backslash and the control characters.
const AS_IS: [bool; 256] = {
    let mut table = [true; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = false;
        b += 1;
    }
    table[b'"' as usize] = false;
    table[b'\\' as usize] = false;
    table
};

/// A plain reply: the message's length, its id, and where its value's
/// text is.
#[derive(Debug, PartialEq)]
pub(crate) struct PlainReply {
    pub(crate) len: usize,
    pub(crate) id: u64,
    pub(crate) value: Range<usize>,
}

/// Why a window holds no plain reply.
#[derive(Debug, PartialEq)]
pub(crate) enum Stop {
    /// The window ends before it could tell.
    Incomplete,
    /// Some other message, or a fault: the general decoder takes it and
    /// says what it is.
    Other,
}

/// Reads `{"return": VALUE, "id": N}` (QEMU's member order, any
/// whitespace) at the start of `window`, which begins with `{`. VALUE's
/// grammar is checked as serde_json checks it (the general decoder's
/// tests hold the two to the same verdict on every prefix of many
/// messages); UTF-8 is left to the caller, over the whole message.
pub(crate) fn plain_reply(window: &[u8]) -> Result<PlainReply, Stop> {
    let mut scan = Scan {
        bytes: window,
        at: 1,
    };
    scan.token(b"\"return\"")?;
    scan.byte(b':')?;
    scan.skip_whitespace();
    let start = scan.at;
    scan.value()?;
    let value = start..scan.at;
    scan.byte(b',')?;
    scan.token(b"\"id\"")?;
    scan.byte(b':')?;
    scan.skip_whitespace();
    let id = scan.id()?;
    scan.byte(b'}')?;
    Ok(PlainReply {
        len: scan.at,
        id,
        value,
    })
}

/// A read position in a window.
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Result<u8, Stop> {
        self.bytes.get(self.at).copied().ok_or(Stop::Incomplete)
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// Takes `token` after any whitespace.
    fn token<const N: usize>(&mut self, token: &[u8; N]) -> Result<(), Stop> {
        self.skip_whitespace();
        match self.bytes.get(self.at..self.at + N) {
            Some(found) if found == token => {
                self.at += N;
                Ok(())
            }
            Some(_) => Err(Stop::Other),
            // A window that ends early may still hold the token.
            None if token.starts_with(&self.bytes[self.at..]) => Err(Stop::Incomplete),
            None => Err(Stop::Other),
        }
    }

    /// Takes `byte` after any whitespace.
    fn byte(&mut self, byte: u8) -> Result<(), Stop> {
        self.skip_whitespace();
        match self.peek()? {
            b if b == byte => {
                self.at += 1;
                Ok(())
            }
            _ => Err(Stop::Other),
        }
    }

    /// Takes a JSON number that is a `u64`: no sign, fraction, exponent
    /// or leading zero, else `Other`.
    fn id(&mut self) -> Result<u64, Stop> {
        let rest = &self.bytes[self.at..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 1 && rest[0] == b'0' {
            return Err(Stop::Other);
        }
        let after = *rest.get(digits).ok_or(Stop::Incomplete)?;
        if digits == 0 || matches!(after, b'.' | b'e' | b'E') {
            return Err(Stop::Other);
        }
        let mut id = 0u64;
        for &d in &rest[..digits] {
            id = id
                .checked_mul(10)
                .and_then(|id| id.checked_add(u64::from(d - b'0')))
                .ok_or(Stop::Other)?;
        }
        self.at += digits;
        Ok(id)
    }

    /// Skips one value, at the read position.
    fn value(&mut self) -> Result<(), Stop> {
        // One bit per open container, set for an array.
        let mut arrays = 0u128;
        let mut depth = 0;
        loop {
            match self.peek()? {
                open @ (b'[' | b'{') => {
                    if depth == MAX_DEPTH {
                        return Err(Stop::Other);
                    }
                    depth += 1;
                    arrays = arrays << 1 | u128::from(open == b'[');
                    self.at += 1;
                    self.skip_whitespace();
                    let close = if open == b'[' { b']' } else { b'}' };
                    if self.peek()? != close {
                        if open == b'{' {
                            self.key()?;
                        }
                        self.skip_whitespace();
                        continue;
                    }
                    self.at += 1;
                    (depth, arrays) = (depth - 1, arrays >> 1);
                }
                b'"' => self.string()?,
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.token(b"true")?,
                b'f' => self.token(b"false")?,
                b'n' => self.token(b"null")?,
                _ => return Err(Stop::Other),
            }
            // After a value: close containers until one goes on.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                self.skip_whitespace();
                let in_array = arrays & 1 == 1;
                match (self.peek()?, in_array) {
                    (b',', _) => {
                        self.at += 1;
                        if !in_array {
                            self.key()?;
                        }
                        self.skip_whitespace();
                        break;
                    }
                    (b']', true) | (b'}', false) => {
                        self.at += 1;
                        (depth, arrays) = (depth - 1, arrays >> 1);
                    }
                    _ => return Err(Stop::Other),
                }
            }
        }
    }

    /// Takes an object member's name and its colon.
    fn key(&mut self) -> Result<(), Stop> {
        self.skip_whitespace();
        if self.peek()? != b'"' {
            return Err(Stop::Other);
        }
        self.string()?;
        self.byte(b':')
    }

    /// Takes a string, at its opening quote.
    fn string(&mut self) -> Result<(), Stop> {
        let mut at = self.at + 1;
        loop {
            let rest = &self.bytes[at..];
            at += rest.iter().take_while(|&&b| AS_IS[usize::from(b)]).count();
            self.at = at + 1;
            match self.bytes.get(at) {
                Some(b'"') => return Ok(()),
                Some(b'\\') => self.escape()?,
                Some(_) => return Err(Stop::Other),
                None => return Err(Stop::Incomplete),
            }
            at = self.at;
        }
    }

    /// Takes what follows a backslash.
    fn escape(&mut self) -> Result<(), Stop> {
        match self.peek()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
            b'u' => {
                let hex = self
                    .bytes
                    .get(self.at + 1..self.at + 5)
                    .ok_or(Stop::Incomplete)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(Stop::Other);
                }
                self.at += 5;
            }
            _ => return Err(Stop::Other),
        }
        Ok(())
    }

    /// Takes a number: `-`, an integer without leading zeros, then a
    /// fraction and an exponent, each with at least one digit.
    fn number(&mut self) -> Result<(), Stop> {
        if self.peek()? == b'-' {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => {
                self.at += 1;
                if self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
                    return Err(Stop::Other);
                }
            }
            b'1'..=b'9' => self.digits()?,
            _ => return Err(Stop::Other),
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            self.digits()?;
        }
        Ok(())
    }

    /// Takes one digit or more.
    fn digits(&mut self) -> Result<(), Stop> {
        if !self.peek()?.is_ascii_digit() {
            return Err(Stop::Other);
        }
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        Ok(())
    }
}
