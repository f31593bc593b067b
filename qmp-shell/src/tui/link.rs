//! The connection's own thread in full-screen mode: it connects (again
//! and again when the peer goes away, as `--retries` and `--retry-delay`
//! allow), runs the requests the screen sends it and watches for events
//! between them. Everything it has to say goes to the screen's channel as
//! a [`Note`]; the messages themselves go there from the traffic hook.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use qmp_std::serde_json::Value;
use qmp_std::{Direction, Error, Event, Request, TrafficHook};

use crate::cli::Args;
use crate::complete::{Words, schema_entries};
use crate::interactive::ask_words;
use crate::peer::{Peer, Waited};

use super::Input;

/// How long the thread waits for an event before looking for a request.
const SLICE: Duration = Duration::from_millis(50);

/// What the screen asks of the connection's thread.
#[derive(Debug)]
pub(crate) enum Job {
    /// Run this request; its outcome comes back as [`Note::Answer`].
    Run(Request),
    /// After giving up: try to connect again.
    Reconnect,
}

/// What the connection's thread tells the screen.
#[derive(Debug)]
pub(crate) enum Note {
    /// A whole message, as on the wire.
    Traffic {
        direction: Direction,
        bytes: Vec<u8>,
        /// Sent or answered for the shell's own needs (completion, the
        /// run state), not the user's.
        own: bool,
    },
    /// Connection attempt `attempt` of at most `of` begins.
    Connecting { attempt: u32, of: u32 },
    /// Connected (again) to this peer ("QEMU 10.0.2").
    Connected(String),
    /// The names completion offers on this connection.
    Words(Words),
    /// The guest's run state (`running`, `paused`, ...).
    Runstate(String),
    /// A connection attempt failed.
    Failed(String),
    /// The connection ended, for this reason.
    Lost(String),
    /// No more attempts; [`Job::Reconnect`] starts again.
    GaveUp,
    /// The outcome of a [`Job::Run`]: the result, or what went wrong.
    Answer(Result<Value, String>),
}

/// The thread's state: what it needs to (re)connect and whom it tells.
pub(crate) struct Link<'a> {
    args: &'a Args,
    jobs: Receiver<Job>,
    screen: Sender<Input>,
    hook: TrafficHook,
    /// Set while the shell asks for itself: the traffic is marked so.
    own: Arc<AtomicBool>,
}

/// How serving a connection ended.
enum Served {
    /// The screen hung up: the shell is leaving.
    Hangup,
    /// The connection ended, for this reason.
    Lost(String),
}

impl<'a> Link<'a> {
    /// Connects as `args` say, takes requests from `jobs` and tells
    /// `screen` everything (the messages through its traffic hook).
    pub(crate) fn new(args: &'a Args, jobs: Receiver<Job>, screen: Sender<Input>) -> Self {
        let to_screen = screen.clone();
        let own = Arc::new(AtomicBool::new(false));
        let is_own = Arc::clone(&own);
        let hook: TrafficHook = Arc::new(move |_, traffic| {
            let _ = to_screen.send(Input::Note(Note::Traffic {
                direction: traffic.direction,
                bytes: traffic.bytes.clone(),
                own: is_own.load(Ordering::Relaxed),
            }));
        });
        Link {
            args,
            jobs,
            screen,
            hook,
            own,
        }
    }

    /// The traffic hook the first connection (a launched QEMU) needs.
    pub(crate) fn hook(&self) -> TrafficHook {
        Arc::clone(&self.hook)
    }

    /// Serves `first` (a QEMU launched before the screen opened) or what
    /// it connects to, until the screen hangs up; closes the connection.
    pub(crate) fn run(self, first: Option<Peer>) {
        let mut next = first;
        loop {
            let peer = match next.take() {
                Some(peer) => peer,
                None => match self.connect() {
                    Some(peer) => peer,
                    None => return,
                },
            };
            match self.serve(peer) {
                Served::Hangup => return,
                Served::Lost(why) => self.note(Note::Lost(why)),
            }
            if self.args.launch || self.args.retries == 0 {
                // Nothing to reconnect to: wait for Ctrl-R or the end.
                self.note(Note::GaveUp);
                if !self.wait_for_reconnect() {
                    return;
                }
            }
        }
    }

    fn note(&self, note: Note) {
        let _ = self.screen.send(Input::Note(note));
    }

    /// Connects, trying up to `--retries` more times `--retry-delay`
    /// apart; `None` when the screen hung up meanwhile.
    fn connect(&self) -> Option<Peer> {
        let of = self.args.retries.saturating_add(1);
        let mut attempt = 1;
        loop {
            self.note(Note::Connecting { attempt, of });
            match Peer::open_with(self.args, Some(self.hook())) {
                Ok(peer) => return Some(peer),
                Err(e) => self.note(Note::Failed(e.to_string())),
            }
            if attempt >= of {
                self.note(Note::GaveUp);
                if !self.wait_for_reconnect() {
                    return None;
                }
                attempt = 1;
                continue;
            }
            attempt += 1;
            if !self.pause(self.args.retry_delay) {
                return None;
            }
        }
    }

    /// Waits `delay`, answering requests meanwhile; false when the screen
    /// hung up.
    fn pause(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match self.jobs.recv_timeout(left) {
                Ok(job) => self.refuse(job),
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Waits for [`Job::Reconnect`] (true) or the screen's hang-up.
    fn wait_for_reconnect(&self) -> bool {
        while let Ok(job) = self.jobs.recv() {
            match job {
                Job::Reconnect => return true,
                job => self.refuse(job),
            }
        }
        false
    }

    fn refuse(&self, job: Job) {
        if let Job::Run(_) = job {
            self.note(Note::Answer(Err("not connected".into())));
        }
    }

    /// Runs requests and watches events on `peer` until it ends or the
    /// screen hangs up; then closes it.
    fn serve(&self, mut peer: Peer) -> Served {
        self.introduce(&mut peer);
        let served = loop {
            match self.jobs.try_recv() {
                Ok(Job::Run(request)) => {
                    if let Some(why) = self.answer(&mut peer, request) {
                        break Served::Lost(why);
                    }
                }
                Ok(Job::Reconnect) => {}
                Err(TryRecvError::Disconnected) => break Served::Hangup,
                Err(TryRecvError::Empty) => match peer.next_event(SLICE) {
                    Waited::Event(event) => self.saw(&event),
                    Waited::Nothing => {}
                    Waited::Closed(ended) => break Served::Lost(ended.to_string()),
                },
            }
        };
        if let Err(e) = peer.close()
            && matches!(served, Served::Hangup)
        {
            self.note(Note::Failed(format!("while closing: {e}")));
        }
        served
    }

    /// Tells the screen whom it talks to, what to complete, and the run
    /// state.
    fn introduce(&self, peer: &mut Peer) {
        self.note(Note::Connected(peer.describe()));
        self.own.store(true, Ordering::Relaxed);
        match ask_words(peer, self.args) {
            Ok(words) => self.note(Note::Words(words)),
            Err(e) => self.note(Note::Failed(format!("no completion: {e}"))),
        }
        if !peer.is_agent() && !self.args.skip_negotiation {
            let status = peer.execute(Request::new("query-status"), self.args.timeout);
            if let Ok(status) = status {
                self.runstate(&status);
            }
        }
        self.own.store(false, Ordering::Relaxed);
    }

    /// Runs a request of the user's; the reason the connection ended,
    /// when it did.
    fn answer(&self, peer: &mut Peer, request: Request) -> Option<String> {
        let asks_status = request.name() == "query-status";
        let negotiates = request.name() == "qmp_capabilities" && self.args.skip_negotiation;
        let result = peer.execute(request, self.args.timeout);
        if let (true, Ok(status)) = (asks_status, &result) {
            self.runstate(status);
        }
        let negotiated = negotiates && result.is_ok();
        self.note(Note::Answer(result.map_err(|e| match e {
            // `Class: desc`, as the line mode says it.
            Error::Server(e) => e.to_string(),
            e => e.to_string(),
        })));
        if negotiated {
            // After -N and a typed qmp_capabilities every command runs.
            self.schema_words(peer);
        }
        while let Waited::Event(event) = peer.next_event(Duration::ZERO) {
            self.saw(&event);
        }
        peer.ended().map(|ended| ended.to_string())
    }

    /// Completion for every command of the schema, asked now.
    fn schema_words(&self, peer: &mut Peer) {
        self.own.store(true, Ordering::Relaxed);
        let schema = peer.execute(Request::new("query-qmp-schema"), self.args.timeout);
        self.own.store(false, Ordering::Relaxed);
        match schema {
            Ok(schema) => self.note(Note::Words(Words::from_schema(&schema_entries(schema)))),
            Err(e) => self.note(Note::Failed(format!("no completion: {e}"))),
        }
    }

    /// An event: the run state follows those that change it.
    fn saw(&self, event: &Event) {
        let state = match event.name.as_str() {
            "STOP" => "paused",
            "RESUME" | "WAKEUP" => "running",
            "SUSPEND" => "suspended",
            "SHUTDOWN" => "shutdown",
            "GUEST_PANICKED" => "guest-panicked",
            _ => return,
        };
        self.note(Note::Runstate(state.into()));
    }

    fn runstate(&self, status: &Value) {
        if let Some(state) = status["status"].as_str() {
            self.note(Note::Runstate(state.into()));
        }
    }
}
