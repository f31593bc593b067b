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
use crate::complete::{ShellHelper, Words};
use crate::history;
use crate::output::{self, EventPrinter};
use crate::peer::{Listener, Peer};
use crate::record::{self, Log};
use crate::schema::Known;
use crate::syntax::{Parsed, Parser, to_request};
use crate::worker::{Connection, Setup};

type ShellEditor = Editor<ShellHelper, FileHistory>;

/// Runs the shell until Ctrl-D, or until the connection closes.
pub(crate) fn run(
    mut peer: Peer,
    args: &Args,
    log: Option<Log>,
    listener: Option<Listener>,
) -> Status {
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
    let history = history::load(&mut editor, history::Mode::of(args));
    let printer = match editor.create_external_printer() {
        Ok(p) => EventPrinter::AbovePrompt(Box::new(p)),
        Err(_) => EventPrinter::Plain,
    };
    let setup = Setup {
        printer,
        timeout: args.timeout,
        pretty: args.pretty,
        listener,
    };
    let connection = match Connection::start(peer, setup) {
        Ok(connection) => connection,
        Err(e) => {
            output::failure(format!("cannot start a thread: {e}"));
            return Status::Failure;
        }
    };
    output::greeting(&banner);
    let mut session = Session {
        connection,
        args,
        log,
    };
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
        known: Known::default(),
    }));
    Ok(editor)
}

/// The editor's side: reads lines, has the worker run them, prints
/// results.
struct Session<'a> {
    connection: Connection,
    args: &'a Args,
    /// The `-l` file.
    log: Option<Log>,
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
            if !self.args.hmp
                && !parser.in_transaction()
                && let Some(topic) = help_topic(&line)
            {
                if let Some(h) = editor.helper() {
                    output::text(&h.words.schema.help(topic));
                }
                continue;
            }
            match parser.feed(&line) {
                Ok(Parsed::Nothing) => {}
                Ok(Parsed::Request(value)) => {
                    // A raw JSON request is sent as typed, unchecked.
                    let checked = !line.trim_start().starts_with('{');
                    self.run_line(editor, &value, checked);
                }
                Err(e) => output::syntax_error(&e),
            }
        }
    }

    /// Runs a parsed line; after `-N` and a typed `qmp_capabilities`
    /// every command can run, so completion then offers them all.
    fn run_line(&mut self, editor: &mut ShellEditor, value: &Value, checked: bool) {
        let Some(h) = editor.helper_mut() else {
            return;
        };
        if checked && let Err(why) = h.words.schema.check(value) {
            output::refused(&why);
            return;
        }
        if self.run(value, &mut h.known) == Ran::Negotiated {
            h.words = self.schema_words().unwrap_or_default();
        }
    }

    /// Completion words from the schema, asked now.
    fn schema_words(&self) -> Option<Words> {
        let answer = self.connection.call(Request::new("query-qmp-schema"))?;
        Some(Words::from_schema_reply(answer.result.ok()?))
    }

    /// Runs a request and prints its result, then the events that came
    /// meanwhile.
    fn run(&mut self, value: &Value, known: &mut Known) -> Ran {
        let request = match to_request(value) {
            Ok(r) => r,
            Err(e) => {
                output::syntax_error(&e);
                return Ran::Other;
            }
        };
        let name = request.name().to_owned();
        let is_quit = quits(value);
        let negotiates = name == "qmp_capabilities" && self.args.skip_negotiation;
        self.connection.expect_end(is_quit);
        let Some(answer) = self.connection.call(request) else {
            return Ran::Other;
        };
        if let Some(log) = &mut self.log {
            log.record(value, &answer.result);
        }
        let whole = self.args.whole.then(|| record::response(&answer.result));
        match (&answer.result, whole) {
            (_, Some(Some(response))) => output::whole(&response, true),
            (Ok(result), _) => {
                known.learn(&name, result);
                // HMP's answer is text, shown as text.
                output::result(result, name == "human-monitor-command", true);
            }
            (Err(e), _) => output::prompt_error(e),
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

/// `help` or `help COMMAND [key=value ...]`: `Some(what follows)`;
/// `None` for any other line.
fn help_topic(line: &str) -> Option<Option<&str>> {
    let line = line.trim();
    let rest = line.strip_prefix("help")?;
    if rest.is_empty() {
        return Some(None);
    }
    rest.starts_with(char::is_whitespace)
        .then(|| Some(rest.trim()))
}

/// Whether `request` asks QEMU to quit (`quit`, or HMP's `quit`/`q`),
/// after which QEMU closes the connection.
fn quits(request: &Value) -> bool {
    match request.get("execute").and_then(Value::as_str) {
        Some("quit") => true,
        Some("human-monitor-command") => matches!(
            request["arguments"]["command-line"].as_str().map(str::trim),
            Some("quit" | "q")
        ),
        _ => false,
    }
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
        ask(peer, "query-qmp-schema", None).map(Words::from_schema_reply)
    }
}
