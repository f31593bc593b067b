//! The connection's own thread, for interactive mode.
//!
//! The blocking client cannot wait for an event and for a key at once, so
//! a worker thread owns the connection: it runs the commands the editor
//! sends it over a channel and, between them, waits for events in short
//! slices, printing each one above the prompt.

use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use qmp_std::serde_json::Value;
use qmp_std::{Error, Event, Request};

use crate::output::EventPrinter;
use crate::peer::{Ended, Listener, Peer, Waited};

/// How long the worker waits for an event before looking for a command.
const SLICE: Duration = Duration::from_millis(50);

/// A command's result, with the events that came while it ran (printed
/// after it, in order).
pub(crate) struct Answer {
    pub(crate) result: Result<Value, Error>,
    pub(crate) events: Vec<Event>,
}

/// The editor's handle on the worker.
pub(crate) struct Connection {
    jobs: Sender<Job>,
    ending: Arc<Mutex<Ending>>,
    thread: JoinHandle<Peer>,
    /// `--listen`: an unexpected end is followed by a new connection.
    relistens: bool,
}

/// What the worker is given to start.
pub(crate) struct Setup {
    /// Where events and the end of the session are printed.
    pub(crate) printer: EventPrinter,
    /// The bound of each call.
    pub(crate) timeout: Duration,
    /// Events are indented.
    pub(crate) pretty: bool,
    /// `--listen`: the socket QEMU connects to again after it went away.
    pub(crate) listener: Option<Listener>,
}

impl Connection {
    /// Starts the worker on `peer`.
    pub(crate) fn start(peer: Peer, setup: Setup) -> std::io::Result<Connection> {
        let ending = Arc::new(Mutex::new(Ending::default()));
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let relistens = setup.listener.is_some();
        let worker = Worker {
            peer,
            jobs: job_rx,
            printer: setup.printer,
            ending: Arc::clone(&ending),
            timeout: setup.timeout,
            pretty: setup.pretty,
            listener: setup.listener,
        };
        let thread = thread::Builder::new()
            .name("qmp-shell-connection".into())
            .spawn(move || worker.run())?;
        Ok(Connection {
            jobs,
            ending,
            thread,
            relistens,
        })
    }

    /// Why the session ended, once it has. With `--listen` only the end
    /// the user asked for (`quit`) counts: after any other, the worker
    /// waits for QEMU to connect again.
    pub(crate) fn ended(&self) -> Option<Ended> {
        let ending = lock(&self.ending);
        if self.relistens && !ending.expected {
            return None;
        }
        ending.reason.clone()
    }

    /// Whether the next end of the session is the user's doing (`quit`),
    /// which the editor reports itself.
    pub(crate) fn expect_end(&self, expected: bool) {
        lock(&self.ending).expected = expected;
    }

    /// Has the worker run `request`; `None` once it is gone.
    pub(crate) fn call(&self, request: Request) -> Option<Answer> {
        let (reply, answer) = mpsc::channel();
        self.jobs.send(Job { request, reply }).ok()?;
        answer.recv().ok()
    }

    /// Stops the worker and takes the connection back, to be closed;
    /// `None` when the worker panicked.
    pub(crate) fn stop(self) -> Option<Peer> {
        drop(self.jobs);
        self.thread.join().ok()
    }
}

/// A command for the worker, and where its answer goes.
struct Job {
    request: Request,
    reply: Sender<Answer>,
}

/// What both threads know of the connection's end.
#[derive(Debug, Default)]
struct Ending {
    /// Why the connection closed, once it has.
    reason: Option<Ended>,
    /// The editor sent `quit` and waits for the close: it says so itself.
    expected: bool,
    /// `--listen`: the user was told that QEMU went away.
    announced: bool,
}

/// What the worker does next.
enum Next {
    Job(Job),
    /// Nothing to run: watch for events.
    Idle,
    /// The editor hung up.
    Hangup,
}

/// The worker's side: owns the connection until the editor hangs up.
struct Worker {
    peer: Peer,
    jobs: Receiver<Job>,
    printer: EventPrinter,
    ending: Arc<Mutex<Ending>>,
    timeout: Duration,
    pretty: bool,
    listener: Option<Listener>,
}

impl Worker {
    /// Runs commands and shows events until the editor hangs up, then
    /// hands the connection back.
    fn run(mut self) -> Peer {
        loop {
            match self.next() {
                Next::Job(job) => self.answer(job),
                Next::Idle => self.watch(),
                Next::Hangup => return self.peer,
            }
        }
    }

    fn next(&self) -> Next {
        match self.jobs.try_recv() {
            Ok(job) => Next::Job(job),
            Err(TryRecvError::Disconnected) => Next::Hangup,
            // Nothing more will come from the server: only answer.
            Err(TryRecvError::Empty) if self.has_ended() && !self.relistens() => {
                self.jobs.recv().map_or(Next::Hangup, Next::Job)
            }
            Err(TryRecvError::Empty) => Next::Idle,
        }
    }

    fn answer(&mut self, job: Job) {
        let result = self.peer.execute(job.request, self.timeout);
        let events = drain(&mut self.peer);
        self.note_end();
        let _ = job.reply.send(Answer { result, events });
    }

    /// Waits one slice for an event and prints it, or notices the end
    /// (with `--listen`, waits one slice for QEMU to connect again).
    fn watch(&mut self) {
        if self.has_ended() && self.relistens() {
            return self.reconnect();
        }
        match self.peer.next_event(SLICE) {
            Waited::Event(event) => self.printer.event(&event, self.pretty),
            Waited::Nothing => {}
            Waited::Closed(ended) => {
                self.note_end();
                let expected = {
                    let mut ending = lock(&self.ending);
                    ending.reason.get_or_insert(ended.clone());
                    ending.expected
                };
                if !expected && self.listener.is_none() {
                    // The editor is waiting for a line: tell the user now.
                    self.printer.closed(&ended);
                }
            }
        }
    }

    /// Whether an end is followed by waiting for QEMU again: with
    /// `--listen`, unless the user asked QEMU to quit.
    fn relistens(&self) -> bool {
        self.listener.is_some() && !lock(&self.ending).expected
    }

    /// Waits one slice for QEMU to connect again; takes the new
    /// connection when it does.
    fn reconnect(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        let gone = {
            let mut ending = lock(&self.ending);
            let first = !ending.announced;
            ending.announced = true;
            ending.reason.clone().filter(|_| first)
        };
        if let Some(ended) = gone {
            // However the end was noticed, the user hears of it once.
            self.printer.gone(&ended, listener.path());
        }
        match listener.accept(SLICE) {
            Ok(Some(mut peer)) => {
                let banner = peer.describe();
                let old = std::mem::replace(&mut self.peer, peer);
                let _ = old.close();
                *lock(&self.ending) = Ending::default();
                self.printer.connected(&banner);
            }
            Ok(None) => {}
            Err(e) => {
                self.printer.failed(&e);
                thread::sleep(SLICE);
            }
        }
    }

    fn has_ended(&self) -> bool {
        lock(&self.ending).reason.is_some()
    }

    /// Records the end of the session, if it has ended.
    fn note_end(&mut self) {
        if let Some(ended) = self.peer.ended() {
            lock(&self.ending).reason.get_or_insert(ended);
        }
    }
}

/// Events already queued (none for the guest agent).
fn drain(peer: &mut Peer) -> Vec<Event> {
    let mut events = Vec::new();
    while let Waited::Event(e) = peer.next_event(Duration::ZERO) {
        events.push(e);
    }
    events
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
