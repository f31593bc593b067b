//! Responses as the server wrote them (`{"return": ...}` or
//! `{"error": ...}`), for `--whole` and for the `-l` log, where each
//! command and its response are appended as JSON lines.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use qmp_std::Error;
use qmp_std::serde_json::{Value, json};

use crate::output;

/// The response a call's outcome stands for; `None` when no response
/// came (a timeout, a closed connection).
pub(crate) fn response(result: &Result<Value, Error>) -> Option<Value> {
    match result {
        Ok(value) => Some(json!({ "return": value })),
        Err(Error::Server(e)) => Some(json!({ "error": e.raw })),
        Err(_) => None,
    }
}

/// The `-l` file, appended to.
#[derive(Debug)]
pub(crate) struct Log(File);

impl Log {
    /// Opens (creating) `path` for appending.
    pub(crate) fn open(path: &Path) -> std::io::Result<Log> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Log(file))
    }

    /// Appends `request` and the response to it, one JSON line each.
    pub(crate) fn record(&mut self, request: &Value, result: &Result<Value, Error>) {
        let mut text = format!("{}\n", output::format_json(request, false));
        if let Some(response) = response(result) {
            text.push_str(&output::format_json(&response, false));
            text.push('\n');
        }
        if let Err(e) = self.0.write_all(text.as_bytes()) {
            output::failure(format!("cannot write the log: {e}"));
        }
    }
}

/// The `-l` file the command line names, if any; an error message when
/// it cannot be opened.
pub(crate) fn open_log(path: Option<&Path>) -> Result<Option<Log>, String> {
    path.map(|p| Log::open(p).map_err(|e| format!("cannot open the log {}: {e}", p.display())))
        .transpose()
}
