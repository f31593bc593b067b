//! `--verbose`: the JSON sent and received, echoed on stderr as `-> ...`
//! for what was sent and `<- ...` for what was received.
//!
//! The messages are learnt from qmp-std's `trace` log records, which
//! carry every byte it writes and reads; [`wire_message`] is the one place
//! that knows their text.

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::output;

struct Echo;

impl Log for Echo {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() == Level::Trace && metadata.target().starts_with("qmp_std")
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        if let Some((arrow, bytes)) = wire_message(&text) {
            output::wire(arrow, bytes);
        }
    }

    fn flush(&self) {}
}

/// The direction (`->` sent, `<-` received) and the bytes of a log line
/// that records a message on the wire; `None` for any other line.
fn wire_message(text: &str) -> Option<(&'static str, &str)> {
    ["QMP -> ", "QMP <- ", "QGA -> ", "QGA <- "]
        .iter()
        .find_map(|p| text.strip_prefix(p).map(|rest| (&p[4..6], rest)))
}

/// Installs the echo (once, at start).
pub(crate) fn install() {
    static ECHO: Echo = Echo;
    if log::set_logger(&ECHO).is_ok() {
        log::set_max_level(LevelFilter::Trace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_lines_and_others() {
        assert_eq!(
            wire_message("QMP -> {\"execute\":\"stop\"}"),
            Some(("->", "{\"execute\":\"stop\"}"))
        );
        assert_eq!(wire_message("QGA <- {}"), Some(("<-", "{}")));
        assert_eq!(wire_message("connected to /tmp/q"), None);
    }
}
