//! The interactive history file: where it lives, reading it at start and
//! appending each new line.

use std::path::{Path, PathBuf};

use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Editor, Helper};

use crate::output;

/// Reads the history into `editor`; the file it lives in, if any.
pub(crate) fn load<H: Helper>(editor: &mut Editor<H, FileHistory>) -> Option<PathBuf> {
    let path = path()?;
    if let Err(e) = editor.load_history(&path)
        && !matches!(&e, ReadlineError::Io(io) if io.kind() == std::io::ErrorKind::NotFound)
    {
        output::failure(format!("cannot read the history {}: {e}", path.display()));
    }
    Some(path)
}

/// Appends the new entries to the history file (creating its directory).
pub(crate) fn save<H: Helper>(editor: &mut Editor<H, FileHistory>, path: &Path) {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = editor.append_history(path) {
        output::failure(format!("cannot save the history {}: {e}", path.display()));
    }
}

/// `$QMP_SHELL_HISTFILE`, else `$XDG_STATE_HOME/qmp-shell/history`, else
/// `~/.local/state/qmp-shell/history`.
pub(crate) fn path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(file) = var("QMP_SHELL_HISTFILE") {
        return Some(PathBuf::from(file));
    }
    let state = var("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".local/state")))?;
    Some(state.join("qmp-shell").join("history"))
}
