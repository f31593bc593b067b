//! `--tui-log FILE`: every message sent and received, and the shell's
//! remarks on the connection, appended to a file as JSON lines:
//!
//! ```text
//! {"time":1767000000.25,"sent":{"execute":"stop"}}
//! {"time":1767000000.26,"received":{"return":{}}}
//! {"time":1767000001.00,"note":"the connection closed: ..."}
//! ```
//!
//! A message that is not JSON is logged as a string.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use qmp_std::Direction;
use qmp_std::serde_json::{self, Map, Value};

/// The open log file.
#[derive(Debug)]
pub(crate) struct Log(File);

impl Log {
    /// Opens `path` for appending, creating it.
    pub(crate) fn open(path: &Path) -> io::Result<Log> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Log(file))
    }

    /// Logs a message as it was on the wire.
    pub(crate) fn message(&mut self, direction: Direction, bytes: &[u8]) -> io::Result<()> {
        let value = serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()));
        let key = match direction {
            Direction::Received => "received",
            Direction::Sent => "sent",
        };
        self.line(key, value)
    }

    /// Logs a remark of the shell's own.
    pub(crate) fn note(&mut self, text: &str) -> io::Result<()> {
        self.line("note", Value::String(text.to_owned()))
    }

    fn line(&mut self, key: &str, value: Value) -> io::Result<()> {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |t| t.as_secs_f64());
        let mut line = Map::new();
        line.insert("time".into(), time.into());
        line.insert(key.into(), value);
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        // One write per line, so lines of two shells never interleave.
        self.0.write_all(text.as_bytes())
    }
}
