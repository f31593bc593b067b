//! Interactive mode.

use crate::batch::Status;
use crate::cli::Args;
use crate::link::Link;

/// Runs the interactive shell until Ctrl-D or the connection closes.
pub(crate) fn run(mut link: Link, args: &Args) -> Status {
    let status = crate::batch::run_stdin(&mut link, args);
    let _ = link.close();
    status
}
