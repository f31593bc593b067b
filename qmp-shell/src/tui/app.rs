//! The screen's state and what each key and each note from the
//! connection does to it.

use std::io;
use std::sync::mpsc::{Receiver, Sender};

use qmp_std::serde_json::{self, Value};
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::cli::Args;
use crate::complete::ShellHelper;
use crate::history;
use crate::syntax::{self, Parsed, Parser, to_request};

use super::Input;
use super::input::{JsonEdit, LineEdit, Recall};
use super::link::{Job, Note};
use super::log::Log;
use super::pane::Pane;
use super::view;

/// At most this many inputs are taken between two redraws.
const BATCH: usize = 256;

/// What the JSON editor starts with when there is nothing better.
const TEMPLATE: &str = "{\n  \"execute\": \"\",\n  \"arguments\": {}\n}";

/// The connection, as the status bar tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkState {
    Connecting {
        attempt: u32,
        of: u32,
    },
    Connected,
    /// Lost, and about to try again.
    Lost,
    /// No more attempts until Ctrl-R.
    GaveUp,
}

/// What the status bar shows.
#[derive(Debug)]
pub(crate) struct Bar {
    pub(crate) address: String,
    /// "QEMU 7.2.0 (...)", once connected.
    pub(crate) peer: String,
    pub(crate) runstate: String,
    pub(crate) link: LinkState,
    /// Connections made after the first.
    pub(crate) reconnects: u32,
    pub(crate) last_error: Option<String>,
    /// Requests sent and not answered yet.
    pub(crate) waiting: usize,
    connected_once: bool,
}

/// Everything on the screen, and where requests go.
pub(crate) struct App<'a> {
    pub(crate) args: &'a Args,
    jobs: Sender<Job>,
    pub(crate) pane: Pane,
    pub(crate) bar: Bar,
    pub(crate) line: LineEdit,
    /// The JSON editor, while open.
    pub(crate) json: Option<JsonEdit>,
    /// What the JSON editor held when it was closed without sending.
    json_draft: Option<String>,
    /// The candidates of an ambiguous Tab, shown above the status bar.
    pub(crate) shown: Vec<String>,
    /// The pane's height when last drawn (a page, for PageUp).
    pub(crate) page: usize,
    recall: Recall,
    pub(crate) parser: Parser,
    helper: ShellHelper,
    log: Option<Log>,
    quit: Option<u8>,
    /// Why the shell leaves, when it is not the user's doing; told once
    /// the terminal is restored.
    pub(crate) farewell: Option<String>,
}

impl<'a> App<'a> {
    /// The screen before anything is connected; requests go to `jobs`.
    pub(crate) fn new(args: &'a Args, jobs: Sender<Job>) -> App<'a> {
        let (recall, problem) = Recall::load(history::Mode::of(args));
        let address = match &args.address {
            Some(address) => address.clone(),
            None => "launched QEMU".into(),
        };
        let mut app = App {
            args,
            jobs,
            pane: Pane::default(),
            bar: Bar {
                address,
                peer: String::new(),
                runstate: String::new(),
                link: LinkState::Connecting { attempt: 1, of: 1 },
                reconnects: 0,
                last_error: None,
                waiting: 0,
                connected_once: false,
            },
            line: LineEdit::default(),
            json: None,
            json_draft: None,
            shown: Vec::new(),
            page: 10,
            recall,
            parser: Parser::new(args.hmp),
            helper: ShellHelper {
                hmp: args.hmp,
                ..ShellHelper::default()
            },
            log: None,
            quit: None,
            farewell: None,
        };
        app.pane.note(
            "Enter sends, Tab completes, Up/Down recall, Ctrl-O opens the JSON editor, \
             PageUp/PageDown scroll, Ctrl-R reconnects, Esc or Ctrl-D leaves.",
        );
        if let Some(problem) = problem {
            app.problem(problem);
        }
        if let Some(path) = &args.tui_log {
            match Log::open(path) {
                Ok(log) => app.log = Some(log),
                Err(e) => app.problem(format!("cannot open the log {}: {e}", path.display())),
            }
        }
        app
    }

    /// Draws and handles inputs until the user or a signal ends it; the
    /// exit status.
    pub(crate) fn run(
        &mut self,
        terminal: &mut DefaultTerminal,
        inputs: &Receiver<Input>,
    ) -> io::Result<u8> {
        loop {
            terminal.draw(|frame| view::draw(self, frame))?;
            let Ok(first) = inputs.recv() else {
                return Ok(0);
            };
            self.handle(first);
            for input in inputs.try_iter().take(BATCH) {
                if self.quit.is_some() {
                    break;
                }
                self.handle(input);
            }
            if let Some(code) = self.quit {
                return Ok(code);
            }
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Terminal(Event::Key(key)) if key.kind != KeyEventKind::Release => {
                if self.json.is_some() {
                    self.json_key(key);
                } else {
                    self.line_key(key);
                }
            }
            Input::Terminal(Event::Paste(text)) => self.paste(&text),
            Input::Terminal(_) => {}
            Input::TerminalGone(why) => {
                self.farewell = Some(format!("cannot read the terminal: {why}"));
                self.quit = Some(2);
            }
            // 128 + the signal, as a shell reports a death by signal.
            Input::Signal(signal) => self.quit = Some(128 + (signal & 0x7f) as u8),
            Input::Note(note) => self.note(note),
        }
    }

    /// Pasted text: into the JSON editor when it is open or the text has
    /// several lines, else into the line.
    fn paste(&mut self, text: &str) {
        let text = text
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .replace('\t', "  ");
        if self.json.is_none() && text.trim_end().contains('\n') {
            self.json = Some(JsonEdit::new(""));
        }
        match self.json.as_mut() {
            Some(edit) => {
                for c in text.chars() {
                    match c {
                        '\n' => edit.newline(),
                        c => edit.insert(c),
                    }
                }
            }
            None => self.line.insert_str(text.trim_end_matches('\n')),
        }
    }

    /// A key on the input line.
    fn line_key(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if key.code != KeyCode::Tab {
            self.shown.clear();
        }
        match key.code {
            KeyCode::Esc => self.quit = Some(0),
            KeyCode::Char('d') if ctrl && self.line.is_empty() => self.quit = Some(0),
            KeyCode::Char('d') if ctrl => self.line.delete(),
            KeyCode::Char('c') if ctrl => self.interrupt(),
            KeyCode::Char('o') if ctrl => self.open_json(),
            KeyCode::Char('r') if ctrl => self.job(Job::Reconnect),
            KeyCode::Char('l') if ctrl => self.pane.follow(),
            KeyCode::Char('a') if ctrl => self.line.home(),
            KeyCode::Char('e') if ctrl => self.line.end(),
            KeyCode::Char('u') if ctrl => self.line.kill_before(),
            KeyCode::Char('k') if ctrl => self.line.kill_after(),
            KeyCode::Char('w') if ctrl => self.line.kill_word(),
            KeyCode::Char(_) if ctrl => {}
            KeyCode::Char(c) => self.line.insert(c),
            KeyCode::Enter => self.submit(),
            KeyCode::Tab => {
                self.helper.in_transaction = self.parser.in_transaction();
                self.shown = self.line.complete(&self.helper);
            }
            KeyCode::Backspace => self.line.backspace(),
            KeyCode::Delete => self.line.delete(),
            KeyCode::Left => self.line.step(-1),
            KeyCode::Right => self.line.step(1),
            KeyCode::Home => self.line.home(),
            KeyCode::End => self.line.end(),
            KeyCode::Up => self.recall.walk(&mut self.line, true),
            KeyCode::Down => self.recall.walk(&mut self.line, false),
            KeyCode::PageUp => self.pane.scroll(self.page_rows()),
            KeyCode::PageDown => self.pane.scroll(-self.page_rows()),
            _ => {}
        }
    }

    fn page_rows(&self) -> isize {
        isize::try_from(self.page.saturating_sub(1).max(1)).unwrap_or(1)
    }

    /// Ctrl-C: drops the line and an open block; on an empty line, leaves.
    fn interrupt(&mut self) {
        if self.line.is_empty() && !self.parser.in_transaction() {
            self.quit = Some(0);
            return;
        }
        self.line.take();
        self.parser.abort();
    }

    /// Enter: the line is run as the line mode runs it.
    fn submit(&mut self) {
        let text = self.line.take();
        self.pane.follow();
        if let Some(problem) = self.recall.add(&text) {
            self.problem(problem);
        }
        match self.parser.feed(&text) {
            Ok(Parsed::Nothing) => {}
            Ok(Parsed::Request(value)) => self.send(&value),
            Err(e) => self.problem(format!("syntax error: {e}")),
        }
    }

    /// Has the connection's thread run `value`, a request object.
    fn send(&mut self, value: &Value) {
        match to_request(value) {
            Ok(request) => self.job(Job::Run(request)),
            Err(e) => self.problem(format!("syntax error: {e}")),
        }
    }

    fn job(&mut self, job: Job) {
        let runs = matches!(job, Job::Run(_));
        if self.jobs.send(job).is_err() {
            self.problem("the connection's thread has ended".into());
        } else if runs {
            self.bar.waiting += 1;
        }
    }

    /// Ctrl-O: the JSON editor, holding the line's request when it is
    /// one, else what it held before.
    fn open_json(&mut self) {
        let parsed = if self.args.hmp {
            None
        } else {
            syntax::parse_command(&self.line.text()).ok().flatten()
        };
        let text = match parsed {
            Some(value) => {
                self.line.take();
                serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
            }
            None => self.json_draft.take().unwrap_or_else(|| TEMPLATE.into()),
        };
        self.json = Some(JsonEdit::new(&text));
    }

    /// A key in the JSON editor.
    fn json_key(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let Some(edit) = self.json.as_mut() else {
            return;
        };
        match key.code {
            KeyCode::Enter if alt => self.send_json(),
            KeyCode::Char('s') if ctrl => self.send_json(),
            KeyCode::Esc => self.close_json(),
            KeyCode::Char('c') if ctrl => self.close_json(),
            KeyCode::Char(_) if ctrl => {}
            KeyCode::Char(c) => edit.insert(c),
            KeyCode::Enter => edit.newline(),
            KeyCode::Tab => {
                edit.insert(' ');
                edit.insert(' ');
            }
            KeyCode::Backspace => edit.backspace(),
            KeyCode::Delete => edit.delete(),
            KeyCode::Left => edit.step(false),
            KeyCode::Right => edit.step(true),
            KeyCode::Up => edit.rows(-1),
            KeyCode::Down => edit.rows(1),
            KeyCode::Home => edit.home(),
            KeyCode::End => edit.end(),
            _ => {}
        }
    }

    /// Esc in the JSON editor: closes it, keeping its text for Ctrl-O.
    fn close_json(&mut self) {
        self.json_draft = self.json.take().map(|edit| edit.text());
    }

    /// Alt-Enter in the JSON editor: sends it when it is a request.
    fn send_json(&mut self) {
        let Some(text) = self.json.as_ref().map(JsonEdit::text) else {
            return;
        };
        match syntax::parse_command(&text) {
            Ok(Some(value)) => {
                self.json = None;
                self.pane.follow();
                if let Some(problem) = self.recall.add(&value.to_string()) {
                    self.problem(problem);
                }
                self.send(&value);
            }
            Ok(None) => self.problem("the editor holds no request".into()),
            Err(e) => self.problem(format!("syntax error: {e}")),
        }
    }

    /// What the connection's thread says.
    fn note(&mut self, note: Note) {
        match note {
            Note::Traffic {
                direction,
                bytes,
                own,
            } => {
                self.pane.message(direction, &bytes, own);
                self.log_with(|log| log.message(direction, &bytes));
            }
            Note::Connecting { attempt, of } => {
                self.bar.link = LinkState::Connecting { attempt, of };
            }
            Note::Connected(peer) => self.connected(peer),
            Note::Words(words) => self.helper.words = words,
            Note::Runstate(state) => self.bar.runstate = state,
            Note::Failed(why) => self.bar.last_error = Some(why),
            Note::Lost(why) => {
                self.bar.link = LinkState::Lost;
                self.bar.runstate.clear();
                self.remark(format!("the connection closed: {why}"), true);
                self.bar.last_error = Some(why);
            }
            Note::GaveUp => {
                self.bar.link = LinkState::GaveUp;
                self.remark(
                    "not connected; Ctrl-R tries again, Esc leaves".into(),
                    false,
                );
            }
            Note::Answer(answer) => {
                self.bar.waiting = self.bar.waiting.saturating_sub(1);
                self.answered(answer);
            }
        }
    }

    /// The outcome of a request of the user's.
    fn answered(&mut self, answer: Result<Value, String>) {
        match answer {
            Ok(value) => self.hmp_text(&value),
            Err(why) => {
                self.pane.problem(&format!("error: {why}"));
                self.bar.last_error = Some(why);
            }
        }
    }

    fn connected(&mut self, peer: String) {
        let again = std::mem::replace(&mut self.bar.connected_once, true);
        if again {
            self.bar.reconnects += 1;
        }
        let what = if again { "reconnected" } else { "connected" };
        let at = match &self.args.address {
            Some(address) => format!("at {address}"),
            None => "launched for this shell".into(),
        };
        self.remark(format!("{what} to {peer}, {at}"), false);
        self.bar.peer = peer;
        self.bar.link = LinkState::Connected;
    }

    /// A result: the pane already shows the reply; HMP's text is shown
    /// as text too.
    fn hmp_text(&mut self, value: &Value) {
        if let (true, Value::String(text)) = (self.args.hmp, value) {
            let text = text.replace("\r\n", "\n");
            if !text.trim().is_empty() {
                self.pane.text(text.trim_end());
            }
        }
    }

    /// A problem shown in the pane and the status bar.
    fn problem(&mut self, text: String) {
        self.pane.problem(&text);
        self.bar.last_error = Some(text);
    }

    /// A remark in the pane and the log.
    fn remark(&mut self, text: String, bad: bool) {
        if bad {
            self.pane.problem(&text);
        } else {
            self.pane.note(&text);
        }
        self.log_with(|log| log.note(&text));
    }

    fn log_with(&mut self, write: impl FnOnce(&mut Log) -> io::Result<()>) {
        if let Some(log) = self.log.as_mut()
            && let Err(e) = write(log)
        {
            self.log = None;
            self.problem(format!("cannot write the log, no longer logging: {e}"));
        }
    }
}
