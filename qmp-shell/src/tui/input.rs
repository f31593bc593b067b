//! What the user types: the input line (the line mode's syntax, history,
//! Tab completion from [`crate::complete`]) and the multi-line JSON
//! editor.

use std::path::PathBuf;

use rustyline::history::{FileHistory, History as _};

use crate::complete::ShellHelper;
use crate::history;
use crate::output;

/// A line being edited: its characters and the cursor, a character
/// index.
#[derive(Debug, Default)]
pub(crate) struct LineEdit {
    chars: Vec<char>,
    cursor: usize,
}

impl LineEdit {
    /// The line's text.
    pub(crate) fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// Whether nothing is typed.
    pub(crate) fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The cursor, in characters from the start.
    pub(crate) fn cursor(&self) -> usize {
        self.cursor
    }

    /// Replaces the text; the cursor goes to its end.
    pub(crate) fn set(&mut self, text: &str) {
        self.chars = text.chars().collect();
        self.cursor = self.chars.len();
    }

    /// Takes the text, leaving the line empty.
    pub(crate) fn take(&mut self) -> String {
        let text = self.text();
        self.set("");
        text
    }

    /// Types `c` at the cursor.
    pub(crate) fn insert(&mut self, c: char) {
        self.chars.insert(self.cursor, c);
        self.cursor += 1;
    }

    /// Types `text` at the cursor.
    pub(crate) fn insert_str(&mut self, text: &str) {
        for c in text.chars() {
            self.insert(c);
        }
    }

    /// Backspace: the character before the cursor goes.
    pub(crate) fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            self.chars.remove(self.cursor);
        }
    }

    /// Delete: the character under the cursor goes.
    pub(crate) fn delete(&mut self) {
        if self.cursor < self.chars.len() {
            self.chars.remove(self.cursor);
        }
    }

    /// Moves the cursor by `by` characters, within the line.
    pub(crate) fn step(&mut self, by: isize) {
        self.cursor = self.cursor.saturating_add_signed(by).min(self.chars.len());
    }

    /// The cursor to the start.
    pub(crate) fn home(&mut self) {
        self.cursor = 0;
    }

    /// The cursor to the end.
    pub(crate) fn end(&mut self) {
        self.cursor = self.chars.len();
    }

    /// Ctrl-U: everything before the cursor goes.
    pub(crate) fn kill_before(&mut self) {
        self.chars.drain(..self.cursor);
        self.cursor = 0;
    }

    /// Ctrl-K: everything from the cursor on goes.
    pub(crate) fn kill_after(&mut self) {
        self.chars.truncate(self.cursor);
    }

    /// Ctrl-W: the word before the cursor goes.
    pub(crate) fn kill_word(&mut self) {
        let mut start = self.cursor;
        while start > 0 && self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        while start > 0 && !self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        self.chars.drain(start..self.cursor);
        self.cursor = start;
    }

    /// Tab: completes the word before the cursor as the line mode does.
    /// One candidate is put in; several put in what they share and are
    /// returned, to be shown.
    pub(crate) fn complete(&mut self, helper: &ShellHelper) -> Vec<String> {
        let text = self.text();
        let pos = self.chars[..self.cursor].iter().map(|c| c.len_utf8()).sum();
        let (start, mut pairs) = helper.candidates(&text, pos);
        // The names come from the server: none that could steer the
        // terminal.
        pairs.retain(|p| !p.replacement.chars().any(output::is_unsafe));
        let typed = &text[start..pos];
        let shared = match pairs.as_slice() {
            [] => return Vec::new(),
            [only] => only.replacement.clone(),
            [first, rest @ ..] => rest.iter().fold(first.replacement.clone(), |acc, p| {
                common_prefix(&acc, &p.replacement).to_owned()
            }),
        };
        if let Some(more) = shared.strip_prefix(typed) {
            self.insert_str(more);
        }
        if pairs.len() == 1 {
            return Vec::new();
        }
        pairs.into_iter().map(|p| p.display).collect()
    }
}

fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let len = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((at, _), _)| at);
    &a[..len]
}

/// The input history: the line mode's file, read at start and appended
/// to after each line; Up and Down walk it.
pub(crate) struct Recall {
    lines: FileHistory,
    file: Option<PathBuf>,
    /// The entry shown, counted from the newest (None: the new line).
    at: Option<usize>,
    /// The line being typed before walking the history.
    draft: String,
}

impl Recall {
    /// Reads the history file; a problem with it is returned, to be shown.
    pub(crate) fn load(mode: history::Mode) -> (Recall, Option<String>) {
        let config = rustyline::Config::builder()
            .max_history_size(1000)
            .and_then(|b| b.history_ignore_dups(true))
            .map(|b| b.build())
            .unwrap_or_default();
        let mut recall = Recall {
            lines: FileHistory::with_config(&config),
            file: history::path(mode),
            at: None,
            draft: String::new(),
        };
        let mut problem = None;
        if let Some(path) = &recall.file
            && path.exists()
            && let Err(e) = recall.lines.load(path)
        {
            problem = Some(format!("cannot read the history {}: {e}", path.display()));
        }
        (recall, problem)
    }

    /// Adds a line (and appends it to the file); a problem, to be shown.
    pub(crate) fn add(&mut self, line: &str) -> Option<String> {
        self.at = None;
        if line.trim().is_empty() || !self.lines.add(line).unwrap_or(false) {
            return None;
        }
        let path = self.file.as_ref()?;
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        let e = self.lines.append(path).err()?;
        Some(format!("cannot save the history {}: {e}", path.display()))
    }

    /// Up (`older`) or Down: the entry to show instead of `line`.
    pub(crate) fn walk(&mut self, line: &mut LineEdit, older: bool) {
        let len = self.lines.len();
        let next = match (self.at, older) {
            (None, true) if len > 0 => Some(0),
            (Some(i), true) if i + 1 < len => Some(i + 1),
            (Some(i), true) => Some(i),
            (Some(0), false) | (None, false) => None,
            (Some(i), false) => Some(i - 1),
            (None, true) => None,
        };
        if self.at.is_none() {
            self.draft = line.text();
        }
        self.at = next;
        match next {
            Some(i) => line.set(&self.lines[len - 1 - i]),
            None => line.set(&std::mem::take(&mut self.draft)),
        }
    }
}

/// The multi-line editor for a whole JSON request: lines of characters
/// and a cursor (row, column in characters).
#[derive(Debug)]
pub(crate) struct JsonEdit {
    pub(crate) lines: Vec<Vec<char>>,
    pub(crate) row: usize,
    pub(crate) col: usize,
}

impl JsonEdit {
    /// An editor holding `text`, the cursor at its end.
    pub(crate) fn new(text: &str) -> JsonEdit {
        let lines: Vec<Vec<char>> = text.split('\n').map(|l| l.chars().collect()).collect();
        let row = lines.len() - 1;
        let col = lines[row].len();
        JsonEdit { lines, row, col }
    }

    /// The whole text, lines joined by newlines.
    pub(crate) fn text(&self) -> String {
        let lines: Vec<String> = self.lines.iter().map(|l| l.iter().collect()).collect();
        lines.join("\n")
    }

    /// Types `c` at the cursor.
    pub(crate) fn insert(&mut self, c: char) {
        self.lines[self.row].insert(self.col, c);
        self.col += 1;
    }

    /// Enter: the line is split at the cursor.
    pub(crate) fn newline(&mut self) {
        let rest = self.lines[self.row].split_off(self.col);
        self.row += 1;
        self.lines.insert(self.row, rest);
        self.col = 0;
    }

    /// Backspace: the character before the cursor goes, or the line
    /// joins the one above.
    pub(crate) fn backspace(&mut self) {
        if self.col > 0 {
            self.col -= 1;
            self.lines[self.row].remove(self.col);
        } else if self.row > 0 {
            let line = self.lines.remove(self.row);
            self.row -= 1;
            self.col = self.lines[self.row].len();
            self.lines[self.row].extend(line);
        }
    }

    /// Delete: the character under the cursor goes, or the next line
    /// joins this one.
    pub(crate) fn delete(&mut self) {
        if self.col < self.lines[self.row].len() {
            self.lines[self.row].remove(self.col);
        } else if self.row + 1 < self.lines.len() {
            let line = self.lines.remove(self.row + 1);
            self.lines[self.row].extend(line);
        }
    }

    /// Moves the cursor by whole rows, keeping the column where it can.
    pub(crate) fn rows(&mut self, by: isize) {
        self.row = self.row.saturating_add_signed(by).min(self.lines.len() - 1);
        self.col = self.col.min(self.lines[self.row].len());
    }

    /// Moves the cursor by characters, across line ends.
    pub(crate) fn step(&mut self, forward: bool) {
        match forward {
            true if self.col < self.lines[self.row].len() => self.col += 1,
            true if self.row + 1 < self.lines.len() => (self.row, self.col) = (self.row + 1, 0),
            false if self.col > 0 => self.col -= 1,
            false if self.row > 0 => {
                self.row -= 1;
                self.col = self.lines[self.row].len();
            }
            _ => {}
        }
    }

    /// The cursor to the start of its line.
    pub(crate) fn home(&mut self) {
        self.col = 0;
    }

    /// The cursor to the end of its line.
    pub(crate) fn end(&mut self) {
        self.col = self.lines[self.row].len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::complete::Words;

    #[test]
    fn editing_a_line() {
        let mut line = LineEdit::default();
        line.insert_str("query-stat");
        line.step(-4);
        line.backspace();
        line.insert('Y');
        assert_eq!(line.text(), "queryYstat");
        line.kill_word();
        assert_eq!((line.text().as_str(), line.cursor()), ("stat", 0));
        line.end();
        line.insert_str(" a=1");
        line.kill_word();
        assert_eq!(line.text(), "stat ");
    }

    #[test]
    fn tab_uses_the_line_modes_completion() {
        let helper = ShellHelper {
            words: Words::from_names(["query-status".into(), "query-stats".into(), "stop".into()]),
            in_transaction: false,
            hmp: false,
            known: Default::default(),
        };
        let mut line = LineEdit::default();
        line.insert_str("query-s");
        let shown = line.complete(&helper);
        assert_eq!(line.text(), "query-stat");
        assert_eq!(shown, ["query-stats", "query-status"]);
        line.insert('u');
        assert!(line.complete(&helper).is_empty());
        assert_eq!(line.text(), "query-status ");
        let mut line = LineEdit::default();
        line.insert_str("st");
        line.complete(&helper);
        assert_eq!(line.text(), "stop ");
    }

    #[test]
    fn editing_json() {
        let mut edit = JsonEdit::new("{\n  \"execute\": \"\"\n}");
        assert_eq!((edit.row, edit.col), (2, 1));
        edit.rows(-1);
        edit.end();
        edit.step(false);
        for c in "stop".chars() {
            edit.insert(c);
        }
        edit.end();
        edit.newline();
        edit.backspace();
        assert_eq!(edit.text(), "{\n  \"execute\": \"stop\"\n}");
        edit.delete();
        assert_eq!(edit.text(), "{\n  \"execute\": \"stop\"}");
    }
}
