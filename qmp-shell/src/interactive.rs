//! Interactive mode: line editing, history, completion, and events shown
//! the moment they arrive (a worker thread owns the connection meanwhile,
//! see [`crate::worker`]). The editor's thread only reads lines and
//! prints results.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use qmp_std::serde_json::{Value, json};
use qmp_std::{Error, Request};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor};

use crate::batch::Status;
use crate::cli::Args;
use crate::complete::{ShellHelper, Words, schema_entries};
use crate::history;
use crate::output::{self, EventPrinter};
use crate::peer::Peer;
use crate::syntax::{Parsed, Parser, to_request};
use crate::worker::Connection;

type ShellEditor = Editor<ShellHelper, FileHistory>;

/// Runs the shell until Ctrl-D, or until the connection closes.
pub(crate) fn run(mut peer: Peer, args: &Args) -> Status {
    let banner = peer.describe();
    let words = load_words(&mut peer, args);
    let mut editor = match editor(args, words) {
        Ok(editor) => editor,
        Err(e) => {
            output::failure(format!("cannot set up the terminal: {e}"));
            let _ = peer.close();
            return Status::Failure;
        }
    };
    let history = history::load(&mut editor);
    let printer = match editor.create_external_printer() {
        Ok(p) => EventPrinter::AbovePrompt(Box::new(p)),
        Err(_) => EventPrinter::Plain,
    };
    let connection = match Connection::start(peer, printer, args.timeout, args.pretty) {
        Ok(connection) => connection,
        Err(e) => {
            output::failure(format!("cannot start a thread: {e}"));
            return Status::Failure;
        }
    };
    output::greeting(&banner);
    let mut session = Session { connection, args };
    session.prompt_loop(&mut editor, history.as_deref());
    match session.connection.stop() {
        Some(peer) => {
            if let Err(e) = peer.close() {
                output::failure(format!("while closing: {e}"));
            }
        }
        None => output::failure("the connection's thread panicked"),
    }
    Status::Ok
}

/// The line editor, with completion from `words`.
fn editor(args: &Args, words: Words) -> rustyline::Result<ShellEditor> {
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .max_history_size(1000)?
        .history_ignore_dups(true)?
        .build();
    let mut editor = ShellEditor::with_config(config)?;
    editor.set_helper(Some(ShellHelper {
        words,
        in_transaction: false,
        hmp: args.hmp,
    }));
    Ok(editor)
}

/// The editor's side: reads lines, has the worker run them, prints
/// results.
struct Session<'a> {
    connection: Connection,
    args: &'a Args,
}

impl Session<'_> {
    /// Reads and runs lines until Ctrl-D or the end of the session.
    fn prompt_loop(&mut self, editor: &mut ShellEditor, history: Option<&Path>) {
        let mut parser = Parser::new(self.args.hmp);
        loop {
            if let Some(ended) = self.connection.ended() {
                output::closed(&ended);
                return;
            }
            if let Some(h) = editor.helper_mut() {
                h.in_transaction = parser.in_transaction();
            }
            let line = match editor.readline(prompt(self.args, parser.in_transaction())) {
                Ok(line) => line,
                Err(ReadlineError::Interrupted) => {
                    // Ctrl-C: forget the line and any open block.
                    parser.abort();
                    continue;
                }
                Err(ReadlineError::Eof) => return,
                Err(e) => {
                    output::failure(format!("cannot read the terminal: {e}"));
                    return;
                }
            };
            remember(editor, &line, history);
            match parser.feed(&line) {
                Ok(Parsed::Nothing) => {}
                Ok(Parsed::Request(value)) => self.run_line(editor, &value),
                Err(e) => output::syntax_error(&e),
            }
        }
    }

    /// Runs a parsed line; after `-N` and a typed `qmp_capabilities`
    /// every command can run, so completion then offers them all.
    fn run_line(&mut self, editor: &mut ShellEditor, value: &Value) {
        if self.run(value) == Ran::Negotiated
            && let Some(h) = editor.helper_mut()
        {
            h.words = self.schema_words().unwrap_or_default();
        }
    }

    /// Completion words from the schema, asked now.
    fn schema_words(&self) -> Option<Words> {
        let answer = self.connection.call(Request::new("query-qmp-schema"))?;
        Some(Words::from_schema(&schema_entries(answer.result.ok()?)))
    }

    /// Runs a request and prints its result, then the events that came
    /// meanwhile.
    fn run(&mut self, value: &Value) -> Ran {
        let request = match to_request(value) {
            Ok(r) => r,
            Err(e) => {
                output::syntax_error(&e);
                return Ran::Other;
            }
        };
        let is_quit = request.name() == "quit";
        let negotiates = request.name() == "qmp_capabilities" && self.args.skip_negotiation;
        self.connection.expect_end(is_quit);
        let Some(answer) = self.connection.call(request) else {
            return Ran::Other;
        };
        match &answer.result {
            Ok(result) => output::result(result, self.args.hmp, true),
            Err(e) => output::prompt_error(e),
        }
        for event in &answer.events {
            output::event(event, self.args.pretty);
        }
        if is_quit && answer.result.is_ok() {
            // QEMU closes the connection right after answering.
            self.wait_for_end();
        }
        if negotiates && answer.result.is_ok() {
            Ran::Negotiated
        } else {
            Ran::Other
        }
    }

    /// Waits (at most `--timeout`) for the session to end.
    fn wait_for_end(&self) {
        let deadline = Instant::now() + self.args.timeout;
        while self.connection.ended().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// What running a command changed.
#[derive(Debug, PartialEq, Eq)]
enum Ran {
    /// `qmp_capabilities` succeeded after `-N`.
    Negotiated,
    Other,
}

/// Adds a non-blank line to the history, and to its file.
fn remember(editor: &mut ShellEditor, line: &str, history: Option<&Path>) {
    if line.trim().is_empty() {
        return;
    }
    let _ = editor.add_history_entry(line);
    if let Some(path) = history {
        history::save(editor, path);
    }
}

fn prompt(args: &Args, in_transaction: bool) -> &'static str {
    match (args.agent, args.hmp, in_transaction) {
        (true, _, _) => "(QGA) ",
        (_, true, _) => "(HMP) ",
        (_, _, true) => "(QEMU) ... ",
        _ => "(QEMU) ",
    }
}

/// What completion offers, asked of the server itself; without
/// completion when that fails.
fn load_words(peer: &mut Peer, args: &Args) -> Words {
    ask_words(peer, args).unwrap_or_else(|e| {
        output::no_completion(&e);
        Words::default()
    })
}

/// What completion offers, asked of the server itself.
pub(crate) fn ask_words(peer: &mut Peer, args: &Args) -> Result<Words, Error> {
    let ask = |peer: &mut Peer, name: &str, arguments: Option<Value>| {
        let mut request = Request::new(name.to_owned());
        if let Some(a) = arguments {
            request = request.arguments(a);
        }
        peer.execute(request, args.timeout)
    };
    if peer.is_agent() {
        ask(peer, "guest-info", None).map(|info| Words::from_guest_info(&info))
    } else if args.hmp {
        let mut help = |line: &str| {
            ask(
                peer,
                "human-monitor-command",
                Some(json!({ "command-line": line })),
            )
            .map(|text| text.as_str().unwrap_or_default().to_owned())
        };
        help("help").and_then(|all| Ok(Words::from_hmp_help(&all, &help("help info")?)))
    } else if args.skip_negotiation {
        // Nothing but qmp_capabilities runs before negotiation.
        Ok(Words::from_names(["qmp_capabilities".to_owned()]))
    } else {
        ask(peer, "query-qmp-schema", None).map(|s| Words::from_schema(&schema_entries(s)))
    }
}
