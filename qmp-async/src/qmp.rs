//! The QMP handle: connect, call, subscribe, disconnect.

use std::fmt;
use std::future::Future;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qmp_core::commands::qmp::{AddFd, AddfdInfo, Closefd, Getfd};
use qmp_core::serde_json::Value;
use qmp_core::{Command as TypedCommand, Event, Greeting, Request};

use qmp_os::{CloseCause, ConnectAttempts, Error, Options};

use crate::driver::Driver;
use crate::events::{EventFilter, Events, Subscription};
use crate::hub::Runstates;
use crate::link::{self, Link};
use crate::runtime::{ConnectTcp, Runtime, WrapStream};
use crate::transport::Transport;

/// A cloneable handle to one QMP connection on the runtime `R`.
///
/// Every clone talks to the same [`Driver`]; calls from many tasks are
/// pipelined and each gets its own reply. See the [crate docs](crate).
pub struct Qmp<R> {
    link: Link<R>,
}

impl<R> Clone for Qmp<R> {
    fn clone(&self) -> Self {
        Qmp {
            link: self.link.clone(),
        }
    }
}

impl<R: Runtime> Qmp<R> {
    pub(crate) async fn establish(
        io: Transport<R>,
        options: &Options,
    ) -> Result<(Self, Driver<R>), Error> {
        let (link, driver) = Link::establish(io, options.qmp_config(), options, "QMP").await?;
        Ok((Qmp { link }, driver))
    }

    /// Connects to QEMU's QMP socket at `path` (`-qmp unix:PATH,server=on`)
    /// and negotiates capabilities. Retries for up to
    /// [`Options::socket_wait`] while the socket does not exist yet.
    pub async fn connect_unix(
        path: impl AsRef<Path>,
        options: Options,
    ) -> Result<(Self, Driver<R>), Error> {
        let wait = options.socket_wait_or(Duration::ZERO);
        let io = link::connect_unix_path::<R>(path.as_ref(), wait, options.connect_timeout).await?;
        Self::establish(io, &options).await
    }

    /// Connects to QEMU's QMP port (`-qmp tcp:HOST:PORT,server=on`).
    /// File descriptors cannot be passed over it.
    pub async fn connect_tcp<A>(addr: A, options: Options) -> Result<(Self, Driver<R>), Error>
    where
        A: fmt::Debug,
        R: ConnectTcp<A>,
    {
        let attempts =
            ConnectAttempts::new(format!("{addr:?}"), Duration::ZERO, options.connect_timeout);
        let stream = link::limit::<R, _>(&attempts, options.connect_timeout, async {
            R::connect_tcp(addr).await.map_err(|e| attempts.give_up(e))
        })
        .await?;
        Self::establish(Transport::Other(stream, "TCP"), &options).await
    }

    /// Runs QMP over a stream you already have (a pipe pair, a TLS stream,
    /// a test double). File descriptors cannot be passed over it; use
    /// [`from_unix_stream`](Self::from_unix_stream) for a Unix socket.
    pub async fn from_stream<S>(stream: S, options: Options) -> Result<(Self, Driver<R>), Error>
    where
        R: WrapStream<S>,
    {
        let io = Transport::Other(R::wrap(stream), "a generic stream");
        Self::establish(io, &options).await
    }

    /// Runs QMP over a connected Unix socket, e.g. one end of a socket
    /// pair whose other end QEMU got with `-qmp` on an inherited fd.
    /// File descriptors can be passed.
    pub async fn from_unix_stream(
        stream: UnixStream,
        options: Options,
    ) -> Result<(Self, Driver<R>), Error> {
        Self::establish(Transport::Unix(R::socket(stream)?), &options).await
    }

    /// Waits for QEMU to connect to `listener`
    /// (`-qmp unix:PATH,server=off`) and negotiates capabilities.
    /// [`Options::connect_timeout`] limits the wait.
    pub async fn accept_unix(
        listener: &Listener<R>,
        options: Options,
    ) -> Result<(Self, Driver<R>), Error> {
        let attempts = ConnectAttempts::new(
            listener.path.display().to_string(),
            Duration::ZERO,
            options.connect_timeout,
        );
        let stream = link::limit::<R, _>(&attempts, options.connect_timeout, async {
            R::accept(&listener.inner)
                .await
                .map_err(|e| attempts.give_up(e))
        })
        .await?;
        Self::establish(Transport::Unix(stream), &options).await
    }

    /// Runs `name` with `args` (a JSON object, or `None`) and returns the
    /// `return` value.
    ///
    /// Dropping the future cancels the call: if it was not sent yet it never
    /// is, otherwise its reply is dropped when it comes.
    ///
    /// ```no_run
    /// # async fn f<R: qmp_async::Runtime>(qmp: qmp_async::Qmp<R>) -> Result<(), qmp_async::Error> {
    /// let status = qmp.execute("query-status", None).await?;
    /// let kind = qmp.execute("qom-get", serde_json::json!({"path": "/machine", "property": "type"})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn execute(
        &self,
        name: &str,
        args: impl Into<Option<Value>>,
    ) -> Result<Value, Error> {
        self.link
            .call(link::request(name, args.into()), Vec::new())
            .await
    }

    /// Runs a prepared [`Request`] (its own `timeout` applies too).
    pub async fn execute_with(&self, request: Request) -> Result<Value, Error> {
        self.link.call(request, Vec::new()).await
    }

    /// Sends a whole request object as you wrote it, with any `id` you
    /// choose (a string, an array...; not a non-negative integer, which
    /// the client uses itself, nor one still in flight: those fail with
    /// [`Error::Submit`]), and returns the whole reply object:
    /// `{"return": ..., "id": ...}`, or an error reply as data. Without an
    /// `id` the client adds its own. Dropping the future cancels the call
    /// as for [`execute`](Self::execute).
    ///
    /// ```no_run
    /// # async fn f<R: qmp_async::Runtime>(qmp: qmp_async::Qmp<R>) -> Result<(), qmp_async::Error> {
    /// use qmp_async::serde_json::json;
    /// let reply = qmp.execute_raw(json!({"execute": "query-status", "id": "mine"})).await?;
    /// assert_eq!(reply["id"], "mine");
    /// # Ok(()) }
    /// ```
    pub async fn execute_raw(&self, message: Value) -> Result<Value, Error> {
        self.link.call_raw(message).await
    }

    /// Runs `name` out of band (`exec-oob`): it overtakes queued in-band
    /// calls. Needs the `oob` capability (see [`oob_enabled`](Self::oob_enabled))
    /// and a command QEMU allows out of band.
    pub async fn execute_oob(
        &self,
        name: &str,
        args: impl Into<Option<Value>>,
    ) -> Result<Value, Error> {
        self.link
            .call(link::request(name, args.into()).oob(), Vec::new())
            .await
    }

    /// Runs `request` with `fds` attached (SCM_RIGHTS, in the same
    /// `sendmsg` as its first byte), as `getfd` and `add-fd` need. Only
    /// over a Unix socket; elsewhere [`Error::FdPassingUnsupported`]. The
    /// descriptors stay yours: they are duplicated for the call.
    ///
    /// Calls with descriptors go out one at a time, since QEMU keeps only
    /// the descriptors of the latest message that carried some.
    pub async fn execute_with_fds(
        &self,
        request: Request,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Value, Error> {
        if fds.is_empty() {
            return self.link.call(request, Vec::new()).await;
        }
        let owned = fds
            .iter()
            .map(|fd| fd.try_clone_to_owned())
            .collect::<Result<Vec<OwnedFd>, _>>()?;
        self.link.call(request.with_fds(), owned).await
    }

    /// A typed command with `fds` attached; see [`execute_with_fds`](Self::execute_with_fds).
    pub async fn call_with_fds<C: TypedCommand>(
        &self,
        cmd: &C,
        fds: &[BorrowedFd<'_>],
    ) -> Result<C::Returns, Error> {
        let value = self.execute_with_fds(Request::command(cmd)?, fds).await?;
        Ok(C::decode(value)?)
    }

    /// `getfd`: hands `fd` to QEMU under `name`.
    pub async fn getfd(&self, name: &str, fd: BorrowedFd<'_>) -> Result<(), Error> {
        self.call_with_fds(
            &Getfd {
                fdname: name.into(),
            },
            &[fd],
        )
        .await
        .map(|_| ())
    }

    /// `closefd`: closes the descriptor QEMU holds under `name`.
    pub async fn closefd(&self, name: &str) -> Result<(), Error> {
        self.call(&Closefd {
            fdname: name.into(),
        })
        .await
        .map(|_| ())
    }

    /// `add-fd`: adds `fd` to an fd set (a new one unless `args.fdset_id`).
    pub async fn add_fd(&self, fd: BorrowedFd<'_>, args: &AddFd) -> Result<AddfdInfo, Error> {
        self.call_with_fds(args, &[fd]).await
    }

    /// Runs a typed command and decodes its reply.
    ///
    /// ```no_run
    /// use qmp_qapi::qmp::QueryStatus;
    /// # async fn f<R: qmp_async::Runtime>(qmp: qmp_async::Qmp<R>) -> Result<(), qmp_async::Error> {
    /// let status = qmp.call(&QueryStatus).await?;
    /// println!("running: {}", status.running);
    /// # Ok(()) }
    /// ```
    pub async fn call<C: TypedCommand>(&self, cmd: &C) -> Result<C::Returns, Error> {
        self.link.call_typed(cmd).await
    }

    /// A stream of the events that pass `filter`, from now on, with a queue
    /// of [`DEFAULT_SUBSCRIPTION_CAPACITY`](crate::DEFAULT_SUBSCRIPTION_CAPACITY).
    pub fn subscribe(&self, filter: impl Into<EventFilter>) -> Subscription {
        self.link.subscribe(filter.into(), false)
    }

    /// Like [`subscribe`](Self::subscribe), with a queue of `N` events.
    pub fn subscribe_with_capacity<const N: usize>(
        &self,
        filter: impl Into<EventFilter>,
    ) -> Subscription<N> {
        self.link.subscribe(filter.into(), false)
    }

    /// Like [`subscribe`](Self::subscribe), but the stream first yields
    /// the events in the history ([`Options::event_history`]) that pass
    /// `filter`, oldest first: with nothing missed in between, it answers
    /// "did it happen already, or when it does?" without a race.
    pub fn subscribe_with_history(&self, filter: impl Into<EventFilter>) -> Subscription {
        self.link.subscribe(filter.into(), true)
    }

    /// The default queue: the events no subscription took, those that
    /// arrived before the session ran included (see [`Events`]).
    ///
    /// ```no_run
    /// # async fn f<R: qmp_async::Runtime>(qmp: qmp_async::Qmp<R>) {
    /// let early = qmp.events().clear();
    /// # }
    /// ```
    pub fn events(&self) -> Events {
        self.link.events()
    }

    /// The recent events, oldest first, whether or not anyone took them:
    /// the last [`Options::event_history`] of them (none by default).
    pub fn history(&self) -> Vec<Event> {
        self.link.history()
    }

    /// The newest event in the history that passes `filter`, if any: "did
    /// it happen already?". To also wait for it when it has not, without a
    /// race, use [`wait_happened`](Self::wait_happened).
    pub fn happened(&self, filter: impl Into<EventFilter>) -> Option<Event> {
        self.link.happened(&filter.into())
    }

    /// The oldest event in the history that passes `filter`, or else the
    /// next one to arrive, waiting up to `timeout`. Like
    /// [`wait_event`](Self::wait_event) it looks when called, not when
    /// first polled.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn f<R: qmp_async::Runtime>(qmp: qmp_async::Qmp<R>) -> Result<(), qmp_async::Error> {
    /// // Whether QEMU stopped before this line or stops after it.
    /// let stop = qmp.wait_happened("STOP", Duration::from_secs(5)).await?;
    /// # Ok(()) }
    /// ```
    pub fn wait_happened(
        &self,
        filter: impl Into<EventFilter>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Event, Error>> + Send + 'static {
        self.link.wait_event(filter.into(), true, timeout)
    }

    /// The session's runstates: those it went through so far, then each
    /// change as it happens, ending after `Closed` (see [`Runstates`]).
    pub fn runstates(&self) -> Runstates {
        self.link.runstates()
    }

    /// Waits up to `timeout` for the next event that passes `filter`.
    ///
    /// It subscribes when called, not when first polled, so an event
    /// caused after this call is never missed:
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn f<R: qmp_async::Runtime>(qmp: qmp_async::Qmp<R>) -> Result<(), qmp_async::Error> {
    /// let resumed = qmp.wait_event("RESUME", Duration::from_secs(5));
    /// qmp.execute("cont", None).await?;
    /// let event = resumed.await?;
    /// # Ok(()) }
    /// ```
    pub fn wait_event(
        &self,
        filter: impl Into<EventFilter>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Event, Error>> + Send + 'static {
        self.link.wait_event(filter.into(), false, timeout)
    }

    /// Waits up to `timeout` for the next event of type `E` and decodes its
    /// data; like [`wait_event`](Self::wait_event) it subscribes when
    /// called, so an event caused after this call is never missed.
    pub fn wait_typed_event<E: qmp_core::EventData + 'static>(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<E, Error>> + Send + 'static {
        let wait = self.wait_event(E::NAME, timeout);
        async move { Ok(wait.await?.decode::<E>()?) }
    }

    /// The server's greeting (version and capabilities); `None` when
    /// [`Options::await_greeting`] was off and none had arrived when the
    /// session started.
    pub fn greeting(&self) -> Option<&Greeting> {
        self.link.greeting()
    }

    /// The connection's name in logs ([`Options::name`]).
    pub fn name(&self) -> &str {
        self.link.name()
    }

    /// Whether out-of-band execution was negotiated.
    pub fn oob_enabled(&self) -> bool {
        self.link.oob_enabled()
    }

    /// The engine's counters (late and unknown replies dropped, events
    /// lost before any subscriber saw them...) as of the driver's last turn.
    pub fn stats(&self) -> qmp_core::Stats {
        self.link.stats()
    }

    /// Whether file descriptors can be passed (a Unix socket).
    pub fn can_pass_fds(&self) -> bool {
        self.link.fd_passing()
    }

    /// A handle to the same connection whose calls time out after
    /// `timeout` (counted from each call; `Duration::MAX`: never).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        let mut link = self.link.clone();
        link.timeout = timeout;
        Qmp { link }
    }

    /// This handle's call timeout.
    pub fn timeout(&self) -> Duration {
        self.link.timeout
    }

    /// Closes the connection: every pending call ends with
    /// [`Error::Interrupted`], every subscription ends, the driver returns
    /// [`CloseReason::Local`](qmp_core::CloseReason::Local). Await
    /// [`closed`](Self::closed) to know it is done.
    pub fn disconnect(&self) {
        self.link.disconnect();
    }

    /// Completes once the connection has closed, with why.
    pub fn closed(&self) -> impl Future<Output = CloseCause> + Send + 'static {
        self.link.closed()
    }

    /// Whether the connection has closed (or is closing); calls then fail at once.
    pub fn is_closed(&self) -> bool {
        self.link.is_closed()
    }

    /// Where the session stands, as of the driver's last turn: running,
    /// disconnecting (a guest agent's linger), closed.
    pub fn state(&self) -> qmp_core::SessionState {
        self.link.state()
    }

    /// Why the connection closed, once it has.
    pub fn close_cause(&self) -> Option<CloseCause> {
        self.link.close_cause()
    }
}

impl<R: Runtime> fmt::Debug for Qmp<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Qmp")
            .field("name", &self.name())
            .field("version", &self.greeting().map(|g| g.version))
            .field("oob", &self.oob_enabled())
            .field("timeout", &self.timeout())
            .field("closed", &self.close_cause())
            .finish()
    }
}

/// A listening Unix socket that QEMU connects to
/// (`-qmp unix:PATH,server=off`): bind it before starting QEMU, then
/// [`Qmp::accept_unix`]. The socket file is removed on drop.
pub struct Listener<R: Runtime> {
    inner: R::Listener,
    path: PathBuf,
}

impl<R: Runtime> Listener<R> {
    /// Binds a new socket at `path` (on tokio, from within the runtime).
    pub fn bind(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        Ok(Listener {
            inner: R::bind(&path)?,
            path,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Same as [`Qmp::accept_unix`].
    pub async fn accept(&self, options: Options) -> Result<(Qmp<R>, Driver<R>), Error> {
        Qmp::accept_unix(self, options).await
    }
}

impl<R: Runtime> fmt::Debug for Listener<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("inner", &self.inner)
            .field("path", &self.path)
            .finish()
    }
}

impl<R: Runtime> Drop for Listener<R> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
