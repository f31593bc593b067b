//! Interactive mode: line editing, history, completion, and events shown
//! the moment they arrive.
//!
//! The blocking client cannot wait for an event and for a key at once, so
//! a worker thread owns the connection: it runs the commands the editor
//! sends it over a channel and, between them, waits for events in short
//! slices, printing each one above the prompt through rustyline's
//! external printer. The editor's thread only reads lines and prints
//! results.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use qmp_std::serde_json::{Value, json};
use qmp_std::{Error, Event, Request};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor, ExternalPrinter};

use crate::batch::{Status, format_json, format_result, report_failure, to_request};
use crate::cli::Args;
use crate::complete::{ShellHelper, Words, schema_entries};
use crate::link::{Link, Waited};
use crate::syntax::{Parsed, Parser};

/// How long the worker waits for an event before looking for a command.
const SLICE: Duration = Duration::from_millis(50);

/// A command for the worker, and where its answer goes.
struct Job {
    request: Request,
    reply: Sender<Answer>,
}

/// A command's result, with the events that came while it ran (printed
/// after it, in order).
struct Answer {
    result: Result<Value, Error>,
    events: Vec<Event>,
}

/// What both threads know of the connection's end.
#[derive(Debug, Default)]
struct Ending {
    /// Why the connection closed, once it has.
    reason: Option<String>,
    /// The editor sent `quit` and waits for the close: it says so itself.
    expected: bool,
}

/// [`Ending`], shared by the editor and the worker.
type SharedEnding = Arc<Mutex<Ending>>;

/// Where the worker prints events: above the prompt, or plainly when
/// the output is not a terminal.
enum Printer {
    External(Box<dyn ExternalPrinter + Send>),
    Plain,
}

impl Printer {
    fn print(&mut self, text: String) {
        match self {
            Printer::External(p) => {
                if p.print(format!("{text}\n")).is_ok() {
                    return;
                }
            }
            Printer::Plain => {}
        }
        println!("{text}");
    }
}

/// Runs the shell until Ctrl-D, or until the connection closes.
pub(crate) fn run(mut link: Link, args: &Args) -> Status {
    let banner = link.describe();
    let words = load_words(&mut link, args);
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .max_history_size(1000)
        .and_then(|b| b.history_ignore_dups(true))
        .map(|b| b.build());
    let editor = config.and_then(Editor::<ShellHelper, FileHistory>::with_config);
    let mut editor = match editor {
        Ok(editor) => editor,
        Err(e) => {
            report_failure(format!("cannot set up the terminal: {e}"));
            let _ = link.close();
            return Status::Failure;
        }
    };
    editor.set_helper(Some(ShellHelper {
        words,
        in_transaction: false,
        hmp: args.hmp,
    }));
    let history = history_path();
    if let Some(path) = &history
        && let Err(e) = editor.load_history(path)
        && !matches!(&e, ReadlineError::Io(io) if io.kind() == std::io::ErrorKind::NotFound)
    {
        eprintln!("qmp-shell: cannot read the history {}: {e}", path.display());
    }
    let printer = match editor.create_external_printer() {
        Ok(p) => Printer::External(Box::new(p)),
        Err(_) => Printer::Plain,
    };

    let closed: SharedEnding = Arc::new(Mutex::new(Ending::default()));
    let (jobs, job_rx) = mpsc::channel::<Job>();
    let worker = {
        let closed = Arc::clone(&closed);
        let (timeout, pretty) = (args.timeout, args.pretty);
        thread::Builder::new()
            .name("qmp-shell-connection".into())
            .spawn(move || work(link, job_rx, printer, closed, timeout, pretty))
    };
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            report_failure(format!("cannot start a thread: {e}"));
            return Status::Failure;
        }
    };

    println!("Connected to {banner}.");
    println!("Tab completes, Up recalls history, Ctrl-D leaves.");
    let mut parser = Parser::new(args.hmp);
    let mut session = Session { jobs, closed, args };
    loop {
        if let Some(reason) = session.closed() {
            println!("The connection closed: {reason}.");
            break;
        }
        if let Some(h) = editor.helper_mut() {
            h.in_transaction = parser.in_transaction();
        }
        let prompt = prompt(args, parser.in_transaction());
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                // Ctrl-C: forget the line and any open block.
                parser.abort();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                report_failure(format!("cannot read the terminal: {e}"));
                break;
            }
        };
        if !line.trim().is_empty() {
            let _ = editor.add_history_entry(line.as_str());
            if let Some(path) = &history {
                save_history(&mut editor, path);
            }
        }
        match parser.feed(&line) {
            Ok(Parsed::Nothing) => {}
            Ok(Parsed::Request(value)) => {
                if session.run(&value) == Ran::Negotiated
                    && let Some(h) = editor.helper_mut()
                {
                    // After `-N` and a typed qmp_capabilities, every
                    // command can run: complete them all.
                    h.words = session.schema_words().unwrap_or_default();
                }
            }
            Err(e) => eprintln!("syntax error: {e}"),
        }
    }
    drop(session);
    match worker.join() {
        Ok(link) => {
            if let Err(e) = link.close() {
                report_failure(format!("while closing: {e}"));
            }
        }
        Err(_) => report_failure("the connection's thread panicked"),
    }
    Status::Ok
}

/// The editor's side: sends commands to the worker and prints results.
struct Session<'a> {
    jobs: Sender<Job>,
    closed: SharedEnding,
    args: &'a Args,
}

impl Session<'_> {
    fn closed(&self) -> Option<String> {
        lock(&self.closed).reason.clone()
    }

    /// Has the worker run `request`; `None` once it is gone.
    fn call(&self, request: Request) -> Option<Answer> {
        let (reply, answer) = mpsc::channel();
        self.jobs.send(Job { request, reply }).ok()?;
        answer.recv().ok()
    }

    /// Completion words from the schema, asked now.
    fn schema_words(&self) -> Option<Words> {
        let answer = self.call(Request::new("query-qmp-schema"))?;
        Some(Words::from_schema(&schema_entries(answer.result.ok()?)))
    }

    /// Runs a request and prints its result, then the events that came
    /// meanwhile.
    fn run(&mut self, value: &Value) -> Ran {
        let request = match to_request(value) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("syntax error: {e}");
                return Ran::Other;
            }
        };
        let is_quit = request.name() == "quit";
        let negotiates = request.name() == "qmp_capabilities" && self.args.skip_negotiation;
        lock(&self.closed).expected = is_quit;
        let Some(answer) = self.call(request) else {
            return Ran::Other;
        };
        match &answer.result {
            Ok(result) => {
                let text = format_result(result, self.args.hmp, true);
                if !text.is_empty() {
                    println!("{text}");
                }
            }
            Err(Error::Server(e)) => eprintln!("{e}"),
            Err(e) => eprintln!("error: {}", one_line(&e.to_string())),
        }
        for event in &answer.events {
            println!("{}", format_json(&event.to_value(), self.args.pretty));
        }
        if is_quit && answer.result.is_ok() {
            // QEMU closes the connection right after answering.
            let deadline = Instant::now() + self.args.timeout;
            while self.closed().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
        }
        if negotiates && answer.result.is_ok() {
            Ran::Negotiated
        } else {
            Ran::Other
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

/// The worker: owns the connection until the editor hangs up, then hands
/// it back to be closed.
fn work(
    mut link: Link,
    jobs: Receiver<Job>,
    mut printer: Printer,
    closed: SharedEnding,
    timeout: Duration,
    pretty: bool,
) -> Link {
    let mark_closed = |link: &mut Link| {
        let reason = link.closed();
        if let Some(reason) = &reason {
            lock(&closed).reason.get_or_insert_with(|| reason.clone());
        }
        reason.is_some()
    };
    loop {
        let job = match jobs.try_recv() {
            Ok(job) => Some(job),
            Err(TryRecvError::Disconnected) => return link,
            Err(TryRecvError::Empty) if lock(&closed).reason.is_some() => {
                // Nothing more will come from the server: only answer.
                match jobs.recv() {
                    Ok(job) => Some(job),
                    Err(_) => return link,
                }
            }
            Err(TryRecvError::Empty) => None,
        };
        if let Some(job) = job {
            let result = link.execute(job.request, timeout);
            let events = drain(&mut link);
            mark_closed(&mut link);
            let _ = job.reply.send(Answer { result, events });
            continue;
        }
        if lock(&closed).reason.is_some() {
            continue;
        }
        match link.next_event(SLICE) {
            Waited::Event(event) => printer.print(format_json(&event.to_value(), pretty)),
            Waited::Nothing => {}
            Waited::Closed(reason) => {
                mark_closed(&mut link);
                let expected = {
                    let mut ending = lock(&closed);
                    ending.reason.get_or_insert(reason.clone());
                    ending.expected
                };
                if !expected {
                    // The editor is waiting for a line: tell the user now.
                    printer.print(format!(
                        "The connection closed: {reason}. Press Enter to leave."
                    ));
                }
            }
        }
    }
}

/// Events already queued (none for the guest agent).
fn drain(link: &mut Link) -> Vec<Event> {
    let mut events = Vec::new();
    while let Waited::Event(e) = link.next_event(Duration::ZERO) {
        events.push(e);
    }
    events
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn prompt(args: &Args, in_transaction: bool) -> &'static str {
    match (args.agent, args.hmp, in_transaction) {
        (true, _, _) => "(QGA) ",
        (_, true, _) => "(HMP) ",
        (_, _, true) => "(QEMU) ... ",
        _ => "(QEMU) ",
    }
}

/// What completion offers, asked of the server itself.
fn load_words(link: &mut Link, args: &Args) -> Words {
    let ask = |link: &mut Link, name: &str, arguments: Option<Value>| {
        let mut request = Request::new(name.to_owned());
        if let Some(a) = arguments {
            request = request.arguments(a);
        }
        link.execute(request, args.timeout)
    };
    let found = if link.is_agent() {
        ask(link, "guest-info", None).map(|info| Words::from_guest_info(&info))
    } else if args.hmp {
        let mut help = |line: &str| {
            ask(
                link,
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
        ask(link, "query-qmp-schema", None).map(|s| Words::from_schema(&schema_entries(s)))
    };
    found.unwrap_or_else(|e| {
        eprintln!("qmp-shell: no completion: {}", one_line(&e.to_string()));
        Words::default()
    })
}

/// `$QMP_SHELL_HISTFILE`, else `$XDG_STATE_HOME/qmp-shell/history`, else
/// `~/.local/state/qmp-shell/history`.
fn history_path() -> Option<PathBuf> {
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

/// Appends the new entries to the history file (creating its directory).
fn save_history(editor: &mut Editor<ShellHelper, FileHistory>, path: &std::path::Path) {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = editor.append_history(path) {
        eprintln!("qmp-shell: cannot save the history {}: {e}", path.display());
    }
}
