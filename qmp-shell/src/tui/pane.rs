//! The scrolling pane of messages: every message sent and received, JSON
//! highlighted, events marked, and the shell's own remarks between them.
//!
//! The peer's text is untrusted: every message passes through
//! [`output::visible`] before it becomes a line, so no control character
//! reaches the terminal (see `crate::output`).

use std::collections::VecDeque;

use qmp_std::Direction;
use qmp_std::serde_json::{self, Value};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

use crate::output;

/// How many entries the pane keeps; older ones are dropped.
const MAX_ENTRIES: usize = 2000;

/// How many characters of one message are shown; the log file has all.
const MAX_SHOWN: usize = 4000;

/// As many, of a message the shell exchanged for itself.
const MAX_SHOWN_OWN: usize = 160;

/// The pane: entries, oldest first, and how far it is scrolled back.
#[derive(Debug, Default)]
pub(crate) struct Pane {
    entries: VecDeque<Entry>,
    /// Rows scrolled back from the newest (0: following new messages).
    back: usize,
    /// The width last drawn at: rows added while scrolled back are
    /// counted at it, so that what is shown stays put.
    width: Option<u16>,
}

/// One message or remark: its lines, and those lines wrapped for the
/// last width drawn.
#[derive(Debug)]
struct Entry {
    lines: Vec<Line<'static>>,
    wrapped: Option<(u16, Vec<Line<'static>>)>,
}

/// What a message was, as far as the pane marks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Sent,
    /// The greeting, a reply that returned, anything else received.
    Received,
    /// An error reply.
    Error,
    /// An event, with its name.
    Event(String),
}

impl Pane {
    /// Adds a message as it was on the wire, dimmed and cut short when
    /// the shell sent or was answered for itself; what kind it was.
    pub(crate) fn message(&mut self, direction: Direction, bytes: &[u8], own: bool) -> Kind {
        let kind = kind(direction, bytes);
        let (arrow, arrow_style) = match kind {
            Kind::Sent => ("-> ", Style::new().fg(Color::Blue).bold()),
            Kind::Error => ("<- ", Style::new().fg(Color::Red).bold()),
            _ => ("<- ", Style::new().fg(Color::Green).bold()),
        };
        let mut head = vec![Span::styled(arrow, arrow_style)];
        match &kind {
            Kind::Event(name) => {
                let mark = format!("EVENT {}", output::visible(name));
                head.push(Span::styled(mark, Style::new().black().on_yellow().bold()));
                head.push(Span::raw(" "));
            }
            Kind::Error => head.push(Span::styled("ERROR ", Style::new().fg(Color::Red).bold())),
            _ => {}
        }
        let limit = if own { MAX_SHOWN_OWN } else { MAX_SHOWN };
        let mut lines = Vec::new();
        for (i, text) in shown_lines(bytes, limit).iter().enumerate() {
            let mut spans = if i == 0 {
                std::mem::take(&mut head)
            } else {
                vec![Span::raw("   ")]
            };
            spans.extend(highlight(text));
            if own {
                spans = spans
                    .into_iter()
                    .map(|s| s.add_modifier(Modifier::DIM))
                    .collect();
            }
            lines.push(Line::from(spans));
        }
        self.push(lines);
        kind
    }

    /// A remark of the shell's own (connected, reconnecting, ...).
    pub(crate) fn note(&mut self, text: &str) {
        self.remark("-- ", text, Style::new().fg(Color::Cyan));
    }

    /// A problem: a syntax error, a failed call, a lost connection.
    pub(crate) fn problem(&mut self, text: &str) {
        self.remark("!! ", text, Style::new().fg(Color::Red));
    }

    /// Text of the peer's shown as it is (HMP output), made visible.
    pub(crate) fn text(&mut self, text: &str) {
        let lines = output::visible(text)
            .replace('\t', "    ")
            .lines()
            .map(|l| Line::from(format!("   {l}")))
            .collect();
        self.push(lines);
    }

    fn remark(&mut self, mark: &'static str, text: &str, style: Style) {
        let text = output::visible(text).replace(['\n', '\t'], " ");
        self.push(vec![Line::from(vec![
            Span::styled(mark, style.bold()),
            Span::styled(text, style),
        ])]);
    }

    fn push(&mut self, lines: Vec<Line<'static>>) {
        if self.entries.len() == MAX_ENTRIES {
            self.entries.pop_front();
        }
        let mut entry = Entry {
            lines,
            wrapped: None,
        };
        if let (1.., Some(width)) = (self.back, self.width) {
            self.back += entry.wrapped(width).len();
        }
        self.entries.push_back(entry);
    }

    /// Whether the pane is scrolled back (not following new messages).
    pub(crate) fn is_back(&self) -> bool {
        self.back > 0
    }

    /// Scrolls back (`rows` > 0) or forward; 0 rows back follows new
    /// messages again.
    pub(crate) fn scroll(&mut self, rows: isize) {
        self.back = self.back.saturating_add_signed(rows);
    }

    /// Follows new messages again.
    pub(crate) fn follow(&mut self) {
        self.back = 0;
    }

    /// The rows that fill `height` rows of `width` columns, oldest first.
    pub(crate) fn rows(&mut self, width: u16, height: usize) -> Vec<Line<'static>> {
        self.width = Some(width);
        let wanted = height.saturating_add(self.back);
        let mut newest_first: Vec<Line<'static>> = Vec::with_capacity(wanted);
        'entries: for entry in self.entries.iter_mut().rev() {
            for row in entry.wrapped(width).iter().rev() {
                if newest_first.len() == wanted {
                    break 'entries;
                }
                newest_first.push(row.clone());
            }
        }
        // Scrolled back past the oldest row: stop there.
        self.back = self.back.min(newest_first.len().saturating_sub(height));
        newest_first
            .into_iter()
            .skip(self.back)
            .take(height)
            .rev()
            .collect()
    }
}

impl Entry {
    /// The lines wrapped at `width` columns (worked out once per width).
    fn wrapped(&mut self, width: u16) -> &[Line<'static>] {
        if self.wrapped.as_ref().is_none_or(|(w, _)| *w != width) {
            let rows = self
                .lines
                .iter()
                .flat_map(|l| wrap(l, usize::from(width.max(1))))
                .collect();
            self.wrapped = Some((width, rows));
        }
        self.wrapped.as_ref().map_or(&[], |(_, rows)| rows)
    }
}

/// Messages longer than this are not decoded to find their kind: they
/// are replies with a big result (an event or an error is small), and
/// the screen's thread must not stall on them.
const MAX_INSPECTED: usize = 64 * 1024;

/// What kind of message `bytes` is.
fn kind(direction: Direction, bytes: &[u8]) -> Kind {
    if direction != Direction::Received {
        return Kind::Sent;
    }
    if bytes.len() > MAX_INSPECTED {
        return Kind::Received;
    }
    let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(bytes) else {
        return Kind::Received;
    };
    if let Some(name) = message.get("event") {
        return Kind::Event(name.as_str().unwrap_or("?").to_owned());
    }
    if message.contains_key("error") {
        return Kind::Error;
    }
    Kind::Received
}

/// The message's text made visible, split into lines (a pretty-printing
/// monitor sends several), at most `limit` characters of it.
fn shown_lines(bytes: &[u8], limit: usize) -> Vec<String> {
    // A character takes at most 4 bytes: this head holds more than
    // `limit` of them, and the rest of a big message is never copied.
    let head = &bytes[..bytes.len().min(limit * 4 + 8)];
    let text = String::from_utf8_lossy(head).replace("\r\n", "\n");
    let text = text.trim_end();
    let mut shown: String = text.chars().take(limit).collect();
    if shown.len() < text.len() || head.len() < bytes.len() {
        shown.push_str(&format!(" ... ({} bytes in all)", bytes.len()));
    }
    output::visible(&shown)
        .replace('\t', "    ")
        .split('\n')
        .map(str::to_owned)
        .collect()
}

/// A line of JSON text in colours: keys, strings, numbers, the literal
/// names, punctuation. Text that is not JSON is coloured as well as it
/// goes; nothing is dropped or added.
pub(crate) fn highlight(text: &str) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let len = match c {
            '"' => string_len(rest),
            '-' | '0'..='9' => rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
                .unwrap_or(rest.len()),
            c if c.is_alphabetic() => rest
                .find(|c: char| !c.is_alphanumeric())
                .unwrap_or(rest.len()),
            c => c.len_utf8(),
        };
        let (token, after) = rest.split_at(len);
        let style = match c {
            '"' if after.trim_start().starts_with(':') => Style::new().fg(Color::Cyan),
            '"' => Style::new().fg(Color::Green),
            '-' | '0'..='9' => Style::new().fg(Color::Magenta),
            _ if matches!(token, "true" | "false" | "null") => Style::new().fg(Color::Yellow),
            '{' | '}' | '[' | ']' | ':' | ',' => Style::new().add_modifier(Modifier::DIM),
            _ => Style::new(),
        };
        spans.push(Span::styled(token.to_owned(), style));
        rest = after;
    }
    spans
}

/// The length of the JSON string at the start of `text`, its quotes
/// included (to the end of the line when it is not closed).
fn string_len(text: &str) -> usize {
    let mut escaped = false;
    for (at, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return at + 1,
            _ => {}
        }
    }
    text.len()
}

/// `line` cut into rows of at most `width` columns.
fn wrap(line: &Line<'static>, width: usize) -> Vec<Line<'static>> {
    let mut rows = Vec::new();
    let mut row: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for span in &line.spans {
        let mut piece = String::new();
        for c in span.content.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > width && used > 0 {
                if !piece.is_empty() {
                    row.push(Span::styled(std::mem::take(&mut piece), span.style));
                }
                rows.push(Line::from(std::mem::take(&mut row)));
                used = 0;
            }
            piece.push(c);
            used += w;
        }
        if !piece.is_empty() {
            row.push(Span::styled(piece, span.style));
        }
    }
    rows.push(Line::from(row));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn messages_are_marked_and_made_visible() {
        let mut pane = Pane::default();
        let event =
            br#"{"event": "STOP", "data": {}, "timestamp": {"seconds": 1, "microseconds": 2}}"#;
        assert_eq!(
            pane.message(Direction::Received, event, false),
            Kind::Event("STOP".into())
        );
        let error = b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"bad\"}}\r\n";
        assert_eq!(pane.message(Direction::Received, error, false), Kind::Error);
        // Not JSON, and a terminal's escape sequence: shown, not obeyed.
        let garbage = b"\x1b]0;TITLE\x07\x1b[2Jhello";
        assert_eq!(
            pane.message(Direction::Received, garbage, false),
            Kind::Received
        );
        assert_eq!(
            pane.message(Direction::Sent, br#"{"execute": "stop"}"#, false),
            Kind::Sent
        );
        let rows = plain(&pane.rows(200, 10));
        assert!(rows[0].starts_with("<- EVENT STOP {\"event\""), "{rows:?}");
        assert_eq!(
            rows[1],
            "<- ERROR {\"error\": {\"class\": \"GenericError\", \"desc\": \"bad\"}}"
        );
        assert_eq!(rows[2], "<- ^[]0;TITLE^G^[[2Jhello");
        assert_eq!(rows[3], "-> {\"execute\": \"stop\"}");
    }

    #[test]
    fn long_lines_wrap_and_the_pane_scrolls() {
        let mut pane = Pane::default();
        for i in 0..10 {
            pane.note(&format!("note {i} {}", "x".repeat(20)));
        }
        // Each note takes two rows of 20 columns.
        let rows = plain(&pane.rows(20, 4));
        assert_eq!(rows[0], "-- note 8 xxxxxxxxxx");
        assert_eq!(rows[3], "xxxxxxxxxx");
        pane.scroll(2);
        assert_eq!(plain(&pane.rows(20, 4))[0], "-- note 7 xxxxxxxxxx");
        pane.scroll(1000);
        assert_eq!(plain(&pane.rows(20, 4))[0], "-- note 0 xxxxxxxxxx");
        pane.scroll(-1000);
        assert_eq!(plain(&pane.rows(20, 4))[0], "-- note 8 xxxxxxxxxx");
        assert!(!pane.is_back());
        // Scrolled back, what is shown stays put as notes come.
        pane.scroll(2);
        pane.note("new");
        assert!(pane.is_back());
        assert_eq!(plain(&pane.rows(20, 4))[0], "-- note 7 xxxxxxxxxx");
        pane.follow();
        assert_eq!(plain(&pane.rows(20, 4))[3], "-- new");
    }

    #[test]
    fn highlighting_keeps_every_character() {
        let text = r#"{"a": [1, -2.5e3, true, null], "b\"c": "d e"} tail"#;
        let joined: String = highlight(text).iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(joined, text);
        let key = highlight(text)
            .into_iter()
            .find(|s| s.content == "\"b\\\"c\"")
            .unwrap();
        assert_eq!(key.style.fg, Some(Color::Cyan));
    }

    #[test]
    fn long_messages_are_cut() {
        let big = format!("{{\"return\": \"{}\"}}", "y".repeat(10_000));
        let lines = shown_lines(big.as_bytes(), MAX_SHOWN);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].ends_with(" ... (10014 bytes in all)"),
            "{}",
            &lines[0][3990..]
        );
    }
}
