//! The interactive history files, one per mode (QMP, HMP, guest agent):
//! where they live, reading one at start and appending each new line.

use std::path::{Path, PathBuf};

use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Editor, Helper};

use crate::cli::Args;
use crate::output;

/// Which kind of lines a history holds: each mode has its own file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// QMP commands.
    Qmp,
    /// HMP command lines (`-H`).
    Hmp,
    /// Guest agent commands (`--agent`).
    Agent,
}

impl Mode {
    /// The mode the command line asks for.
    pub(crate) fn of(args: &Args) -> Mode {
        if args.agent {
            Mode::Agent
        } else if args.hmp {
            Mode::Hmp
        } else {
            Mode::Qmp
        }
    }

    /// What the mode adds to the QMP file's name.
    fn suffix(self) -> &'static str {
        match self {
            Mode::Qmp => "",
            Mode::Hmp => "-hmp",
            Mode::Agent => "-qga",
        }
    }
}

/// Reads the history into `editor`; the file it lives in, if any.
pub(crate) fn load<H: Helper>(editor: &mut Editor<H, FileHistory>, mode: Mode) -> Option<PathBuf> {
    let path = path(mode)?;
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

/// QMP's file is `$QMP_SHELL_HISTFILE`, else
/// `$XDG_STATE_HOME/qmp-shell/history`, else
/// `~/.local/state/qmp-shell/history`; HMP's and the guest agent's have
/// `-hmp` and `-qga` added to its name. A `$QMP_SHELL_HISTFILE` that is
/// not a plain file (`/dev/null`) serves every mode.
pub(crate) fn path(mode: Mode) -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let qmp = match var("QMP_SHELL_HISTFILE") {
        Some(file) => {
            let file = PathBuf::from(file);
            if file.exists() && !file.is_file() {
                return Some(file);
            }
            file
        }
        None => var("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".local/state")))?
            .join("qmp-shell")
            .join("history"),
    };
    for_mode(&qmp, mode)
}

/// The file of `mode`'s history, given QMP's.
fn for_mode(qmp: &Path, mode: Mode) -> Option<PathBuf> {
    let mut name = qmp.file_name()?.to_os_string();
    name.push(mode.suffix());
    Some(qmp.with_file_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_has_its_own_file() {
        let qmp = Path::new("/state/qmp-shell/history");
        assert_eq!(for_mode(qmp, Mode::Qmp).unwrap(), qmp);
        assert_eq!(
            for_mode(qmp, Mode::Hmp).unwrap(),
            Path::new("/state/qmp-shell/history-hmp")
        );
        assert_eq!(
            for_mode(qmp, Mode::Agent).unwrap(),
            Path::new("/state/qmp-shell/history-qga")
        );
    }
}
