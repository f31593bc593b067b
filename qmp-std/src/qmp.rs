//! The blocking QMP client.

use std::fmt;
use std::io;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant as StdInstant};

use log::debug;
use qmp_core::commands::qmp::{AddFd, AddfdInfo, Closefd, Getfd};
use qmp_core::serde_json::Value;
use qmp_core::{Command, Event, EventData, EventQueue, Greeting, Request, SessionState, Stats};
use qmp_os::{
    CloseCause, Conn, ConnectAttempts, Error, Options, connect_unix_nonblocking, reply_returns,
};

use crate::stream::{Socket, Stream, wait_readable};
use crate::wire::Wire;

/// A blocking QMP client.
///
/// Each call drives the connection until its own reply arrives; events met
/// on the way are queued (bounded: the oldest are dropped and counted) for
/// [`wait_event`](Self::wait_event) and [`drain_events`](Self::drain_events).
/// Every wait is bounded by the client's timeout ([`Options::timeout`]), or
/// by the one given to [`with_timeout`](Self::with_timeout) for one call.
///
/// `S` is the stream: [`Socket`] for the connections this crate makes, or
/// any [`Stream`] given to [`from_stream`](Self::from_stream).
#[derive(Debug)]
pub struct Qmp<S = Socket> {
    conn: Wire<S>,
    timeout: Duration,
}

/// Where [`Qmp::accept_unix`] listens: a listener you bound, or a path to
/// bind (the socket file is removed once QEMU has connected).
#[derive(Debug)]
pub enum UnixAcceptor<'a> {
    /// An existing listener.
    Listener(&'a UnixListener),
    /// A path to bind a listener at.
    Path(&'a Path),
}

impl<'a> From<&'a UnixListener> for UnixAcceptor<'a> {
    fn from(l: &'a UnixListener) -> Self {
        UnixAcceptor::Listener(l)
    }
}

impl<'a> From<&'a Path> for UnixAcceptor<'a> {
    fn from(p: &'a Path) -> Self {
        UnixAcceptor::Path(p)
    }
}

impl<'a> From<&'a PathBuf> for UnixAcceptor<'a> {
    fn from(p: &'a PathBuf) -> Self {
        UnixAcceptor::Path(p)
    }
}

impl<'a> From<&'a str> for UnixAcceptor<'a> {
    fn from(p: &'a str) -> Self {
        UnixAcceptor::Path(Path::new(p))
    }
}

/// Connects to `path`, retrying as [`ConnectAttempts`] says.
pub(crate) fn connect_unix_retrying(
    path: &Path,
    socket_wait: Duration,
    connect_timeout: Duration,
) -> Result<UnixStream, Error> {
    let attempts = ConnectAttempts::new(path.display().to_string(), socket_wait, connect_timeout);
    loop {
        match connect_unix_nonblocking(path) {
            Ok(stream) => {
                stream
                    .set_nonblocking(false)
                    .map_err(|e| attempts.give_up(e))?;
                return Ok(stream);
            }
            Err(e) => std::thread::sleep(attempts.after_failure(e)?),
        }
    }
}

/// Accepts one connection on `listener` within `timeout`.
pub(crate) fn accept_unix_within(
    listener: &UnixListener,
    target: &str,
    timeout: Duration,
) -> Result<UnixStream, Error> {
    let attempts = ConnectAttempts::new(target, Duration::ZERO, timeout);
    if !wait_readable(listener.as_fd(), timeout).map_err(|e| attempts.give_up(e))? {
        return Err(attempts.timed_out());
    }
    let (stream, _) = listener.accept().map_err(|e| attempts.give_up(e))?;
    Ok(stream)
}

impl Qmp<Socket> {
    /// Connects to a QEMU serving QMP on a Unix socket
    /// (`-qmp unix:PATH,server=on,wait=off`) and negotiates. A missing
    /// socket or a refused connection is retried for
    /// [`Options::socket_wait`] (default: not at all); a listener whose
    /// backlog stays full gives up after [`Options::connect_timeout`].
    pub fn connect_unix(path: impl AsRef<Path>, options: Options) -> Result<Self, Error> {
        let path = path.as_ref();
        let wait = options.socket_wait_or(Duration::ZERO);
        let stream = connect_unix_retrying(path, wait, options.connect_timeout)?;
        debug!("QMP: connected to {}", path.display());
        Qmp::from_stream(Socket::Unix(stream), options)
    }

    /// Connects to a QEMU serving QMP over TCP (`-qmp tcp:HOST:PORT,server=on`),
    /// trying each address within [`Options::connect_timeout`].
    pub fn connect_tcp(
        addr: impl ToSocketAddrs + fmt::Debug,
        options: Options,
    ) -> Result<Self, Error> {
        let attempts =
            ConnectAttempts::new(format!("{addr:?}"), Duration::ZERO, options.connect_timeout);
        let mut last = io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        );
        for a in addr.to_socket_addrs().map_err(|e| attempts.give_up(e))? {
            match TcpStream::connect_timeout(&a, options.connect_timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    debug!("QMP: connected to {a}");
                    return Qmp::from_stream(Socket::Tcp(stream), options);
                }
                Err(e) => last = e,
            }
        }
        Err(attempts.give_up(last))
    }

    /// Waits, at most [`Options::connect_timeout`], for QEMU to connect
    /// (`-qmp unix:PATH,server=off`), then negotiates. Given a path, binds
    /// it first and removes the socket file once QEMU has connected.
    pub fn accept_unix<'a>(
        on: impl Into<UnixAcceptor<'a>>,
        options: Options,
    ) -> Result<Self, Error> {
        let stream = match on.into() {
            UnixAcceptor::Listener(l) => {
                let target = l
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                    .unwrap_or_else(|| "a listening socket".into());
                accept_unix_within(l, &target, options.connect_timeout)?
            }
            UnixAcceptor::Path(p) => {
                let target = p.display().to_string();
                let listener = UnixListener::bind(p).map_err(|source| Error::Connect {
                    target: target.clone(),
                    waited: Duration::ZERO,
                    source,
                })?;
                let accepted = accept_unix_within(&listener, &target, options.connect_timeout);
                let _ = std::fs::remove_file(p);
                accepted?
            }
        };
        debug!("QMP: accepted a connection");
        Qmp::from_stream(Socket::Unix(stream), options)
    }

    /// Waits, at most [`Options::connect_timeout`], for QEMU to connect
    /// over TCP (`-qmp tcp:HOST:PORT,server=off`), then negotiates.
    pub fn accept_tcp(listener: &TcpListener, options: Options) -> Result<Self, Error> {
        let target = listener
            .local_addr()
            .map_or_else(|_| "a TCP listener".into(), |a| a.to_string());
        let attempts = ConnectAttempts::new(target, Duration::ZERO, options.connect_timeout);
        if !wait_readable(listener.as_fd(), options.connect_timeout)
            .map_err(|e| attempts.give_up(e))?
        {
            return Err(attempts.timed_out());
        }
        let (stream, peer) = listener.accept().map_err(|e| attempts.give_up(e))?;
        stream.set_nodelay(true)?;
        debug!("QMP: accepted a connection from {peer}");
        Qmp::from_stream(Socket::Tcp(stream), options)
    }
}

impl<S: Stream> Qmp<S> {
    /// Runs QMP over a stream you already have (a `UnixStream`, one end of
    /// a socketpair, a `TcpStream`, ...): waits for the greeting and
    /// negotiates capabilities (with `oob` when offered), at most
    /// [`Options::handshake_timeout`].
    pub fn from_stream(stream: S, options: Options) -> Result<Self, Error> {
        let without_fds = (!stream.can_pass_fds()).then(|| stream.transport());
        let conn = Conn::new(
            options.qmp_config(),
            &options,
            "QMP",
            "qmp_std",
            without_fds,
        );
        let mut conn = Wire::new(stream, conn);
        conn.schema = qmp_os::SchemaCheck::new(options.check_schema);
        if options.event_history > 0 {
            conn.conn
                .keep_history(options.event_history, options.event_history_bytes);
        }
        if options.await_greeting || options.negotiate {
            conn.handshake(
                options.handshake_timeout,
                "the QMP greeting and capability negotiation",
                true,
            )?;
        }
        Ok(Qmp {
            conn,
            timeout: options.timeout,
        })
    }

    /// The server's greeting (version and capabilities); `None` when
    /// [`Options::await_greeting`] was off and none has arrived yet.
    pub fn greeting(&self) -> Option<&Greeting> {
        self.conn.conn.greeting()
    }

    /// Whether out-of-band execution was negotiated.
    pub fn oob_enabled(&self) -> bool {
        self.conn.conn.engine().oob_enabled()
    }

    /// Whether file descriptors can be passed (a Unix socket).
    pub fn can_pass_fds(&self) -> bool {
        self.conn.conn.can_pass_fds()
    }

    /// Where the session stands.
    pub fn state(&self) -> SessionState {
        self.conn.conn.state()
    }

    /// The connection's name in logs ([`Options::name`]).
    pub fn name(&self) -> &str {
        self.conn.conn.name()
    }

    /// The default timeout of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the default timeout of each call.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Overrides the timeout for the calls made through the returned value:
    /// `qmp.with_timeout(Duration::from_secs(120)).execute("query-qmp-schema", None)`.
    pub fn with_timeout(&mut self, timeout: Duration) -> WithTimeout<'_, Self> {
        WithTimeout {
            inner: self,
            timeout,
        }
    }

    /// Runs `name` with `args` (a JSON object, or `None`) and returns its
    /// `return` value.
    pub fn execute(&mut self, name: &str, args: impl Into<Option<Value>>) -> Result<Value, Error> {
        let t = self.timeout;
        self.conn.call(request(name, args.into()), t, &[])
    }

    /// Runs a prepared [`Request`]. A timeout set on the request applies
    /// when it is shorter than the client's.
    pub fn execute_with(&mut self, request: Request) -> Result<Value, Error> {
        let t = self.timeout;
        self.conn.call(request, t, &[])
    }

    /// Sends a whole request object as you wrote it, with any `id` you
    /// choose (a string, an array...; not a non-negative integer, which
    /// the client uses, nor one still in flight), and returns the whole
    /// reply object: `{"return": ..., "id": ...}`, or an error reply as
    /// data. Without an `id` the client adds its own.
    ///
    /// ```no_run
    /// # fn f(qmp: &mut qmp_std::Qmp) -> Result<(), qmp_std::Error> {
    /// use qmp_std::serde_json::json;
    /// let reply = qmp.execute_raw(json!({"execute": "query-status", "id": "mine"}))?;
    /// assert_eq!(reply["id"], "mine");
    /// # Ok(()) }
    /// ```
    pub fn execute_raw(&mut self, message: Value) -> Result<Value, Error> {
        let t = self.timeout;
        self.conn.call_raw(message, t)
    }

    /// Runs a typed command and decodes its reply.
    pub fn call<C: Command>(&mut self, cmd: &C) -> Result<C::Returns, Error> {
        let t = self.timeout;
        let reply = self.conn.call_reply(Request::command(cmd)?, t, &[])?;
        reply_returns::<C>(&reply)
    }

    /// Runs `name` out of band (`exec-oob`): it overtakes in-band commands
    /// QEMU has queued. Needs the `oob` capability.
    pub fn execute_oob(
        &mut self,
        name: &str,
        args: impl Into<Option<Value>>,
    ) -> Result<Value, Error> {
        let t = self.timeout;
        self.conn.call(request(name, args.into()).oob(), t, &[])
    }

    /// Runs `request` with `fds` attached (SCM_RIGHTS) to the same
    /// `sendmsg` as its first byte, as `getfd` and `add-fd` need. Only over
    /// a Unix socket; elsewhere [`Error::FdPassingUnsupported`]. The
    /// descriptors stay yours; QEMU receives copies.
    pub fn execute_with_fds(
        &mut self,
        request: Request,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Value, Error> {
        let t = self.timeout;
        self.conn.call(request, t, fds)
    }

    /// A typed command with `fds` attached; see [`execute_with_fds`](Self::execute_with_fds).
    pub fn call_with_fds<C: Command>(
        &mut self,
        cmd: &C,
        fds: &[BorrowedFd<'_>],
    ) -> Result<C::Returns, Error> {
        let t = self.timeout;
        let reply = self.conn.call_reply(Request::command(cmd)?, t, fds)?;
        reply_returns::<C>(&reply)
    }

    /// `getfd`: hands `fd` to QEMU under `name`.
    pub fn getfd(&mut self, name: &str, fd: BorrowedFd<'_>) -> Result<(), Error> {
        self.call_with_fds(
            &Getfd {
                fdname: name.into(),
            },
            &[fd],
        )
        .map(|_| ())
    }

    /// `closefd`: closes the descriptor QEMU holds under `name`.
    pub fn closefd(&mut self, name: &str) -> Result<(), Error> {
        self.call(&Closefd {
            fdname: name.into(),
        })
        .map(|_| ())
    }

    /// `add-fd`: adds `fd` to an fd set (a new one unless `args.fdset_id`).
    pub fn add_fd(&mut self, fd: BorrowedFd<'_>, args: &AddFd) -> Result<AddfdInfo, Error> {
        self.call_with_fds(args, &[fd])
    }

    /// Waits for the first event named `name` (queued or yet to come); the
    /// others stay queued.
    pub fn wait_event(&mut self, name: &str) -> Result<Event, Error> {
        let t = self.timeout;
        wait_event_where(&mut self.conn, t, Some(name), |_| true)
    }

    /// Waits for the first event of type `E` (queued or yet to come) and
    /// decodes its data; the other events stay queued.
    ///
    /// ```no_run
    /// # fn f(qmp: &mut qmp_std::Qmp) -> Result<(), qmp_std::Error> {
    /// # #[derive(serde::Deserialize)] struct Resume {}
    /// # impl qmp_std::qmp_core::EventData for Resume { const NAME: &'static str = "RESUME"; }
    /// qmp.execute("cont", None)?;
    /// let _resumed: Resume = qmp.wait_typed_event()?;
    /// # Ok(()) }
    /// ```
    pub fn wait_typed_event<E: EventData>(&mut self) -> Result<E, Error> {
        Ok(self.wait_event(E::NAME)?.decode::<E>()?)
    }

    /// Waits for the first event for which `pred` holds; the others stay queued.
    pub fn wait_event_where(&mut self, pred: impl FnMut(&Event) -> bool) -> Result<Event, Error> {
        let t = self.timeout;
        wait_event_where(&mut self.conn, t, None, pred)
    }

    /// Takes every queued event, after reading what has already arrived
    /// (without waiting). A connection failure found on the way is
    /// reported by the next call.
    pub fn drain_events(&mut self) -> Vec<Event> {
        self.conn.poll();
        self.events().clear()
    }

    /// The queue of events not yet taken, to inspect or take from
    /// selectively; also says how many were dropped when it overflowed.
    pub fn events(&mut self) -> &mut EventQueue {
        self.conn.conn.engine_mut().events()
    }

    /// The recent events, oldest first, whether or not they were taken: the
    /// last [`Options::event_history`] of them (none by default), after
    /// reading what has already arrived (without waiting).
    pub fn history(&mut self) -> Vec<Event> {
        self.conn.poll();
        self.conn.conn.history().iter().cloned().collect()
    }

    /// The newest event named `name` in the [`history`](Self::history),
    /// if any: "did it happen already?", whether or not it was taken.
    pub fn happened(&mut self, name: &str) -> Option<Event> {
        self.happened_where(|e| e.name == name)
    }

    /// The newest event in the [`history`](Self::history) for which
    /// `pred` holds.
    pub fn happened_where(&mut self, mut pred: impl FnMut(&Event) -> bool) -> Option<Event> {
        self.conn.poll();
        self.conn
            .conn
            .history()
            .iter()
            .filter(|e| pred(e))
            .last()
            .cloned()
    }

    /// Counters: bytes and messages received, late replies dropped, events lost.
    pub fn stats(&self) -> Stats {
        self.conn.conn.engine().stats()
    }

    /// Why the session ended, once it has.
    pub fn close_cause(&self) -> Option<CloseCause> {
        self.conn.close_cause()
    }

    /// Whether the session has ended (calls now fail at once).
    pub fn is_closed(&self) -> bool {
        self.conn.close_cause().is_some()
    }

    /// The engine's current time, for [`Request::deadline`].
    pub fn now(&self) -> qmp_core::Instant {
        self.conn.conn.now()
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.conn.stream
    }

    /// The stream, mutably (reading or writing it directly desynchronises
    /// the session).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.conn.stream
    }

    /// Closes the session (the engine first reads the replies still owed,
    /// for at most [`Options::close_linger`]), shuts the stream down and
    /// returns it.
    pub fn into_inner(mut self) -> S {
        self.conn.close();
        self.conn.stream
    }

    /// Ends the session now, without waiting for anything.
    pub(crate) fn abandon(&mut self) {
        self.conn.abort();
    }

    /// Closes the session and the connection; QEMU keeps running.
    pub fn disconnect(self) {
        drop(self.into_inner());
    }
}

pub(crate) fn request(name: &str, args: Option<Value>) -> Request {
    let r = Request::new(name.to_owned());
    match args {
        None | Some(Value::Null) => r,
        Some(args) => r.arguments(args),
    }
}

fn wait_event_where<S: Stream>(
    conn: &mut Wire<S>,
    timeout: Duration,
    name: Option<&str>,
    mut pred: impl FnMut(&Event) -> bool,
) -> Result<Event, Error> {
    let what = || match name {
        Some(n) => format!("event {n}"),
        None => "a matching event".into(),
    };
    let started = StdInstant::now();
    let ev = conn.wait_for(timeout, what, |c| {
        c.conn
            .engine_mut()
            .events()
            .take_first(|e| name.is_none_or(|n| e.name == n) && pred(e))
    })?;
    debug!(
        "QMP <- event {} {} after {:?}",
        ev.name,
        ev.data_text().unwrap_or("{}"),
        started.elapsed()
    );
    Ok(ev)
}

/// A client borrowed with another timeout for the calls made through it,
/// from `with_timeout` on [`Qmp`] or [`Agent`](crate::Agent).
#[derive(Debug)]
pub struct WithTimeout<'a, T> {
    pub(crate) inner: &'a mut T,
    pub(crate) timeout: Duration,
}

impl<S: Stream> WithTimeout<'_, Qmp<S>> {
    /// [`Qmp::execute`] with this timeout.
    pub fn execute(self, name: &str, args: impl Into<Option<Value>>) -> Result<Value, Error> {
        self.inner
            .conn
            .call(request(name, args.into()), self.timeout, &[])
    }

    /// [`Qmp::execute_with`] with this timeout.
    pub fn execute_with(self, request: Request) -> Result<Value, Error> {
        self.inner.conn.call(request, self.timeout, &[])
    }

    /// [`Qmp::execute_raw`] with this timeout.
    pub fn execute_raw(self, message: Value) -> Result<Value, Error> {
        self.inner.conn.call_raw(message, self.timeout)
    }

    /// [`Qmp::call`] with this timeout.
    pub fn call<C: Command>(self, cmd: &C) -> Result<C::Returns, Error> {
        let reply = self
            .inner
            .conn
            .call_reply(Request::command(cmd)?, self.timeout, &[])?;
        reply_returns::<C>(&reply)
    }

    /// [`Qmp::execute_oob`] with this timeout.
    pub fn execute_oob(self, name: &str, args: impl Into<Option<Value>>) -> Result<Value, Error> {
        self.inner
            .conn
            .call(request(name, args.into()).oob(), self.timeout, &[])
    }

    /// [`Qmp::execute_with_fds`] with this timeout.
    pub fn execute_with_fds(
        self,
        request: Request,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Value, Error> {
        self.inner.conn.call(request, self.timeout, fds)
    }

    /// [`Qmp::wait_event`] with this timeout.
    pub fn wait_event(self, name: &str) -> Result<Event, Error> {
        wait_event_where(&mut self.inner.conn, self.timeout, Some(name), |_| true)
    }

    /// [`Qmp::wait_typed_event`] with this timeout.
    pub fn wait_typed_event<E: EventData>(self) -> Result<E, Error> {
        let event = wait_event_where(&mut self.inner.conn, self.timeout, Some(E::NAME), |_| true)?;
        Ok(event.decode::<E>()?)
    }

    /// [`Qmp::wait_event_where`] with this timeout.
    pub fn wait_event_where(self, pred: impl FnMut(&Event) -> bool) -> Result<Event, Error> {
        wait_event_where(&mut self.inner.conn, self.timeout, None, pred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn the_history_keeps_events_whoever_took_them() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || {
            let mut w = theirs.try_clone().unwrap();
            let mut r = theirs;
            let mut buf = Vec::new();
            // The next request object, however it was framed.
            let mut next = move || -> Option<Value> {
                loop {
                    let mut it =
                        qmp_core::serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
                    if let Some(Ok(v)) = it.next() {
                        let used = it.byte_offset();
                        buf.drain(..used);
                        return Some(v);
                    }
                    let mut chunk = [0u8; 4096];
                    match r.read(&mut chunk) {
                        Ok(0) | Err(_) => return None,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            };
            w.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": []}}\r\n").unwrap();
            for events in [&[][..], &["A", "B", "C"], &["D"]] {
                let req = next().unwrap();
                for e in events {
                    write!(w, "{{\"event\": \"{e}\"}}\r\n").unwrap();
                }
                write!(w, "{{\"return\": {{}}, \"id\": {}}}\r\n", req["id"]).unwrap();
            }
            // Until the client closes.
            let _ = next();
        });
        let options = Options::default().event_history(3);
        let mut qmp = Qmp::from_stream(ours, options).unwrap();
        qmp.execute("a", None).unwrap();
        let names = |v: Vec<Event>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
        assert_eq!(names(qmp.history()), ["A", "B", "C"]);
        assert_eq!(names(qmp.drain_events()), ["A", "B", "C"]);
        // Taken, still known; then forgotten when newer ones come.
        assert!(qmp.happened("A").is_some());
        qmp.execute("b", None).unwrap();
        assert!(qmp.happened("A").is_none());
        assert!(qmp.happened_where(|e| e.name == "D").is_some());
        assert_eq!(names(qmp.history()), ["B", "C", "D"]);
        assert_eq!(qmp.events().clear().len(), 1);
        qmp.disconnect();
        server.join().unwrap();
    }
}
