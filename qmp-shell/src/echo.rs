//! `--verbose`: the JSON sent and received, echoed on stderr.
//!
//! qmp-std logs every byte it writes and reads at `trace` level; this
//! logger shows those records, one line per message, as `-> ...` for what
//! was sent and `<- ...` for what was received, and drops the rest.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

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
        let Some((arrow, bytes)) = ["QMP -> ", "QMP <- ", "QGA -> ", "QGA <- "]
            .iter()
            .find_map(|p| text.strip_prefix(p).map(|rest| (&p[4..6], rest)))
        else {
            return;
        };
        let mut err = std::io::stderr().lock();
        for line in bytes.split(['\n', '\r']).filter(|l| !l.trim().is_empty()) {
            // The guest agent's resync uses a 0xFF byte: show it, not U+FFFD.
            let line = line.replace('\u{fffd}', "<0xff>");
            let _ = writeln!(err, "{arrow} {}", line.trim_end());
        }
    }

    fn flush(&self) {}
}

/// Installs the echo (once, at start).
pub(crate) fn install() {
    static ECHO: Echo = Echo;
    if log::set_logger(&ECHO).is_ok() {
        log::set_max_level(LevelFilter::Trace);
    }
}
