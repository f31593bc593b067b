//! What every handle holds: the way to the driver, and how a call waits
//! for its reply without ever leaving the connection out of step.

use std::future::Future;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as StdInstant};

use async_channel::{Receiver, Sender};
use futures_lite::{StreamExt, future};
use qmp_core::serde_json::Value;
use qmp_core::{
    Command as TypedCommand, Config, Dialect, Event, Greeting, Instant, Reply, Request,
    SessionState,
};
use qmp_os::{
    CloseCause, Conn, ConnectAttempts, Error, Options, SCHEMA_COMMAND, SchemaCheck,
    connect_unix_nonblocking, deadline_after, reply_returns, reply_value,
};

use crate::driver::Driver;
use crate::events::{EventFilter, Events, Subscription};
use crate::hub::{Hub, Limits, Runstates};
use crate::runtime::Runtime;
use crate::transport::{MAX_EVENTS_PER_READ, Transport};

/// What a call sends.
pub(crate) enum Body {
    Request(Request),
    /// A whole message object, sent as given; its result is the whole reply.
    Raw(Value),
}

/// A call handed to the driver.
pub(crate) struct Submission {
    pub(crate) token: u64,
    pub(crate) body: Body,
    pub(crate) deadline: Option<Instant>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) reply: Sender<Result<Reply, Error>>,
}

/// What handles tell the driver.
pub(crate) enum Instruction {
    Execute(Submission),
    /// The caller went away: never send it, or drop its late reply.
    Cancel(u64),
    Close,
    Resync,
}

/// What the handles keep of a connection once it runs.
pub(crate) struct Handshake {
    pub(crate) greeting: Option<qmp_core::Greeting>,
    pub(crate) oob: bool,
    pub(crate) clock: qmp_os::StdClock,
    pub(crate) name: Arc<str>,
}

pub(crate) struct Shared {
    instructions: Sender<Instruction>,
    /// Fails (never yields) once the driver has finished.
    closed: Receiver<()>,
    hub: Arc<Hub>,
    next_token: AtomicU64,
    handshake: Handshake,
    /// Set when descriptors cannot be passed: what the stream is.
    without_fds: Option<&'static str>,
    /// The live-schema check (QMP, when the options ask for it).
    schema: std::sync::Mutex<SchemaCheck>,
}

/// The handle core shared by [`Qmp`](crate::Qmp) and [`Agent`](crate::Agent).
pub(crate) struct Link<R> {
    shared: Arc<Shared>,
    pub(crate) timeout: Duration,
    runtime: PhantomData<fn() -> R>,
}

impl<R> Clone for Link<R> {
    fn clone(&self) -> Self {
        Link {
            shared: self.shared.clone(),
            timeout: self.timeout,
            runtime: PhantomData,
        }
    }
}

/// Completes at `limit`, or never when there is none. The timer lives in
/// the waiting future itself: no allocation.
async fn expiry<R: Runtime>(limit: Option<StdInstant>) {
    match limit {
        Some(at) => {
            R::sleep_until(at).await;
        }
        None => future::pending().await,
    }
}

impl<R: Runtime> Link<R> {
    /// Runs the handshake over `io` and builds a handle and its driver.
    pub(crate) async fn establish(
        io: Transport<R>,
        config: Config,
        options: &Options,
        default_name: &str,
    ) -> Result<(Link<R>, Driver<R>), Error> {
        let without_fds = io.without_fds();
        let check_schema = options.check_schema && config.dialect == Dialect::Qmp;
        let what = match config.dialect {
            Dialect::Qga => "the guest agent to answer guest-sync-delimited",
            _ => "the QMP greeting and capability negotiation",
        };
        let staging = config.max_queued_events.max(MAX_EVENTS_PER_READ);
        let conn = Conn::new(
            config.max_queued_events(staging),
            options,
            default_name,
            R::LOG_TARGET,
            without_fds,
        );
        let (instructions, rx) = async_channel::unbounded();
        let (closed_tx, closed) = async_channel::bounded(1);
        let hub = Arc::new(Hub::new(Limits::from_options(options)));
        let (driver, handshake) = Driver::establish(conn, io, hub.clone(), rx, closed_tx)
            .await
            .map_err(|e| match e {
                Error::Closed(cause) => {
                    Error::from_handshake(cause, what, options.handshake_timeout)
                }
                e => e,
            })?;
        let shared = Shared {
            instructions,
            closed,
            hub,
            next_token: AtomicU64::new(0),
            handshake,
            without_fds,
            schema: std::sync::Mutex::new(SchemaCheck::new(check_schema)),
        };
        let link = Link {
            shared: Arc::new(shared),
            timeout: options.timeout,
            runtime: PhantomData,
        };
        Ok((link, driver))
    }

    pub(crate) fn greeting(&self) -> Option<&Greeting> {
        self.shared.handshake.greeting.as_ref()
    }

    pub(crate) fn oob_enabled(&self) -> bool {
        self.shared.handshake.oob
    }

    pub(crate) fn name(&self) -> &str {
        &self.shared.handshake.name
    }

    pub(crate) fn fd_passing(&self) -> bool {
        self.shared.without_fds.is_none()
    }

    pub(crate) fn stats(&self) -> qmp_core::Stats {
        self.shared.hub.stats()
    }

    pub(crate) fn state(&self) -> SessionState {
        match self.shared.hub.state() {
            Some(state) => state,
            // Before the driver's first turn the handshake has just ended.
            None if self.close_cause().is_none() => SessionState::Running,
            None => SessionState::Closed,
        }
    }

    pub(crate) fn close_cause(&self) -> Option<CloseCause> {
        self.shared.hub.cause()
    }

    fn cause(&self) -> CloseCause {
        self.close_cause().unwrap_or(CloseCause::DriverDropped)
    }

    /// Sends `request` and waits for its reply, at most the handle's
    /// timeout even when the driver is not polled. Dropping the future at
    /// any point cancels the call in the driver: a call not yet sent never
    /// is, a sent one's reply is dropped when it comes.
    pub(crate) async fn call(&self, request: Request, fds: Vec<OwnedFd>) -> Result<Value, Error> {
        reply_value(&self.call_reply(request, fds).await?)
    }

    /// [`call`](Self::call), its reply undecoded: the caller decodes it on
    /// its own task, typed or not.
    pub(crate) async fn call_reply(
        &self,
        request: Request,
        fds: Vec<OwnedFd>,
    ) -> Result<Reply, Error> {
        self.fetch_schema_once(request.name()).await?;
        self.schema().check(&request)?;
        let name = request.name().to_owned();
        self.submit(Body::Request(request), name, fds).await
    }

    /// Sends a whole message object and waits for the whole reply.
    pub(crate) async fn call_raw(&self, message: Value) -> Result<Value, Error> {
        let name = message
            .get("execute")
            .or_else(|| message.get("exec-oob"))
            .and_then(Value::as_str)
            .unwrap_or("a raw request")
            .to_owned();
        self.fetch_schema_once(&name).await?;
        self.schema().check_raw(&message)?;
        reply_value(&self.submit(Body::Raw(message), name, Vec::new()).await?)
    }

    /// With the live-schema check on, fetches the server's schema before
    /// the first request (never for the fetch itself).
    async fn fetch_schema_once(&self, command: &str) -> Result<(), Error> {
        if !self.schema().needs_schema(command) {
            return Ok(());
        }
        let fetch = Body::Request(Request::new(SCHEMA_COMMAND));
        let schema = self
            .submit(fetch, SCHEMA_COMMAND.to_owned(), Vec::new())
            .await
            .and_then(|r| reply_value(&r));
        self.schema().set_schema(schema)
    }

    fn schema(&self) -> std::sync::MutexGuard<'_, SchemaCheck> {
        // Held only for a check, never across a wait.
        self.shared
            .schema
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn submit(&self, body: Body, name: String, fds: Vec<OwnedFd>) -> Result<Reply, Error> {
        if let Some(cause) = self.close_cause() {
            return Err(Error::Closed(cause));
        }
        if let Some(transport) = self.shared.without_fds.filter(|_| !fds.is_empty()) {
            return Err(Error::FdPassingUnsupported { transport });
        }
        let timeout = self.timeout;
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        let (reply, result) = async_channel::bounded(1);
        let limit = deadline_after(timeout);
        let submission = Submission {
            token,
            body,
            deadline: limit.map(|at| self.shared.handshake.clock.from_std(at)),
            fds,
            reply,
        };
        let sent = self
            .shared
            .instructions
            .try_send(Instruction::Execute(submission));
        if sent.is_err() {
            return Err(Error::Closed(self.cause()));
        }
        let mut guard = CancelOnDrop {
            token,
            instructions: &self.shared.instructions,
            armed: true,
        };
        let answer = async { Some(result.recv().await) };
        let expire = async {
            expiry::<R>(limit).await;
            None
        };
        let outcome = future::or(answer, expire).await;
        let timed_out = || Error::Timeout {
            waiting_for: format!("the reply to `{name}`"),
            after: timeout,
        };
        match outcome {
            // The guard cancels the call in the driver.
            None => Err(timed_out()),
            Some(received) => {
                guard.armed = false;
                match received {
                    Ok(Err(Error::Timeout { .. })) => Err(timed_out()),
                    Ok(r) => r,
                    Err(_) => Err(Error::Interrupted(self.cause())),
                }
            }
        }
    }

    pub(crate) async fn call_typed<C: TypedCommand>(&self, cmd: &C) -> Result<C::Returns, Error> {
        let reply = self.call_reply(Request::command(cmd)?, Vec::new()).await?;
        reply_returns::<C>(&reply)
    }

    pub(crate) fn send(&self, instruction: Instruction) {
        let _ = self.shared.instructions.try_send(instruction);
    }

    pub(crate) fn subscribe<const N: usize>(
        &self,
        filter: EventFilter,
        replay: bool,
    ) -> Subscription<N> {
        self.shared.hub.subscribe(filter, replay)
    }

    pub(crate) fn events(&self) -> Events {
        self.shared.hub.events()
    }

    pub(crate) fn runstates(&self) -> Runstates {
        Runstates::new(self.shared.hub.clone())
    }

    pub(crate) fn history(&self) -> Vec<Event> {
        self.shared.hub.history()
    }

    pub(crate) fn happened(&self, filter: &EventFilter) -> Option<Event> {
        self.shared.hub.happened(filter)
    }

    /// Waits for the next event that passes `filter`; with `replay`, the
    /// oldest such event still in the history counts as next.
    pub(crate) fn wait_event(
        &self,
        filter: EventFilter,
        replay: bool,
        timeout: Duration,
    ) -> impl Future<Output = Result<Event, Error>> + Send + 'static {
        let what = format!("an event matching {filter:?}");
        let mut sub = self.subscribe::<{ crate::DEFAULT_SUBSCRIPTION_CAPACITY }>(filter, replay);
        let limit = deadline_after(timeout);
        async move {
            let next = async { Ok(sub.next().await) };
            let expire = async {
                expiry::<R>(limit).await;
                Err(Error::Timeout {
                    waiting_for: what,
                    after: timeout,
                })
            };
            match future::or(next, expire).await? {
                Some(e) => Ok(e),
                None => Err(Error::Interrupted(
                    sub.close_cause().unwrap_or(CloseCause::DriverDropped),
                )),
            }
        }
    }

    pub(crate) fn closed(&self) -> impl Future<Output = CloseCause> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            let _ = shared.closed.recv().await;
            shared.hub.cause().unwrap_or(CloseCause::DriverDropped)
        }
    }
}

/// Tells the driver to forget a call whose future was dropped or timed out.
struct CancelOnDrop<'a> {
    token: u64,
    instructions: &'a Sender<Instruction>,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Unbounded: never blocks, fails only once the driver is gone.
            let _ = self.instructions.try_send(Instruction::Cancel(self.token));
        }
    }
}

pub(crate) fn request(name: &str, args: Option<Value>) -> Request {
    let req = Request::new(name.to_owned());
    match args {
        None | Some(Value::Null) => req,
        Some(args) => req.arguments(args),
    }
}

/// Runs `f`, failing once the attempts' connect timeout passes.
pub(crate) async fn limit<R: Runtime, T>(
    attempts: &ConnectAttempts,
    timeout: Duration,
    f: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let expire = async {
        expiry::<R>(deadline_after(timeout)).await;
        Err(attempts.timed_out())
    };
    future::or(f, expire).await
}

/// Connects to a Unix path, retrying as [`ConnectAttempts`] says.
pub(crate) async fn connect_unix_path<R: Runtime>(
    path: &Path,
    socket_wait: Duration,
    connect_timeout: Duration,
) -> Result<Transport<R>, Error> {
    let attempts = ConnectAttempts::new(path.display().to_string(), socket_wait, connect_timeout);
    loop {
        match connect_unix_nonblocking(path) {
            Ok(s) => {
                return Ok(Transport::Unix(
                    R::socket(s).map_err(|e| attempts.give_up(e))?,
                ));
            }
            Err(e) => {
                let pause = attempts.after_failure(e)?;
                expiry::<R>(deadline_after(pause)).await;
            }
        }
    }
}
