//! The blocking guest agent (QGA) client.

use std::path::Path;
use std::time::Duration;

use log::debug;
use qmp_core::serde_json::Value;
use qmp_core::{Command, Request, SessionState, Stats};
use qmp_os::{CloseCause, Conn, Error, Options, reply_returns, seed};

use crate::qmp::{WithTimeout, connect_unix_retrying, request};
use crate::stream::{Socket, Stream};
use crate::wire::Wire;

/// A blocking client for the QEMU guest agent (`qemu-ga`).
///
/// On connecting it resynchronises with the agent (a 0xFF byte, then
/// `guest-sync-delimited` with a fresh id), so whatever an earlier client
/// left half-written or unread does not confuse this one. After a call
/// times out it resynchronises again before the next request.
///
/// qemu-ga may die of SIGPIPE when a client closes its socket before
/// reading a reply; [`disconnect`](Self::disconnect) therefore waits (up
/// to [`Options::close_linger`]) for replies still due before closing.
#[derive(Debug)]
pub struct Agent<S = Socket> {
    conn: Wire<S>,
    timeout: Duration,
}

impl Agent<Socket> {
    /// Connects to the agent's Unix socket (e.g. a virtio-serial chardev
    /// of QEMU, or `qemu-ga -m unix-listen -p PATH`), waiting for the
    /// socket to appear and accept at most [`Options::socket_wait`]
    /// (default: the connect timeout), then resynchronises.
    pub fn connect_unix(path: impl AsRef<Path>, options: Options) -> Result<Self, Error> {
        let path = path.as_ref();
        let wait = options.socket_wait_or(options.connect_timeout);
        let stream = connect_unix_retrying(path, wait, options.connect_timeout)?;
        debug!("QGA: connected to {}", path.display());
        Agent::from_stream(Socket::Unix(stream), options)
    }
}

impl<S: Stream> Agent<S> {
    /// Speaks the guest agent protocol over a stream you already have,
    /// resynchronising first (at most [`Options::handshake_timeout`]).
    pub fn from_stream(stream: S, options: Options) -> Result<Self, Error> {
        let without_fds = (!stream.can_pass_fds()).then(|| stream.transport());
        let conn = Conn::new(
            options.qga_config(seed()),
            &options,
            "QGA",
            "qmp_std",
            without_fds,
        );
        let mut conn = Wire::new(stream, conn);
        conn.handshake(
            options.handshake_timeout,
            "the guest agent to answer guest-sync-delimited",
            false,
        )?;
        Ok(Agent {
            conn,
            timeout: options.timeout,
        })
    }

    /// The default timeout of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the default timeout of each call.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Overrides the timeout for the calls made through the returned value.
    pub fn with_timeout(&mut self, timeout: Duration) -> WithTimeout<'_, Self> {
        WithTimeout {
            inner: self,
            timeout,
        }
    }

    /// Runs `name` with `args` (a JSON object, or `None`) and returns its
    /// `return` value (`null` for commands that never reply, such as
    /// `guest-shutdown`, once they are written).
    pub fn execute(&mut self, name: &str, args: impl Into<Option<Value>>) -> Result<Value, Error> {
        let t = self.timeout;
        self.run(request(name, args.into()), t)
    }

    /// Runs a prepared [`Request`].
    pub fn execute_with(&mut self, request: Request) -> Result<Value, Error> {
        let t = self.timeout;
        self.run(request, t)
    }

    /// Runs a typed command and decodes its reply.
    pub fn call<C: Command>(&mut self, cmd: &C) -> Result<C::Returns, Error> {
        let t = self.timeout;
        let reply = self.conn.call_reply(Request::command(cmd)?, t, &[])?;
        reply_returns::<C>(&reply)
    }

    /// Resynchronises with the agent now (0xFF + `guest-sync-delimited`),
    /// waiting at most the call timeout for its answer.
    pub fn resync(&mut self) -> Result<(), Error> {
        if let Some(cause) = self.conn.close_cause() {
            return Err(Error::Closed(cause));
        }
        let now = self.conn.conn.now();
        self.conn.conn.engine_mut().resync(now);
        let t = self.timeout;
        self.conn.wait_for(
            t,
            || "the guest agent to answer guest-sync-delimited".into(),
            |c| (c.conn.state() == SessionState::Running).then_some(()),
        )
    }

    /// A call; after a timeout the engine resynchronises before the next
    /// request, so a late reply is never taken for another's.
    fn run(&mut self, request: Request, timeout: Duration) -> Result<Value, Error> {
        self.conn.call(request, timeout, &[])
    }

    /// Counters: bytes and messages received, late replies dropped, stale
    /// output discarded while resynchronising.
    pub fn stats(&self) -> Stats {
        self.conn.conn.engine().stats()
    }

    /// Where the session stands.
    pub fn state(&self) -> SessionState {
        self.conn.conn.state()
    }

    /// Why the session ended, once it has.
    pub fn close_cause(&self) -> Option<CloseCause> {
        self.conn.close_cause()
    }

    /// Whether the session has ended (calls now fail at once).
    pub fn is_closed(&self) -> bool {
        self.conn.close_cause().is_some()
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.conn.stream
    }

    /// The stream, mutably (reading or writing it directly desynchronises
    /// the session until the next resync).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.conn.stream
    }

    /// Closes the session, first reading the replies still owed for at
    /// most [`Options::close_linger`] (qemu-ga dies of SIGPIPE when it
    /// answers a closed socket); returns the stream, shut down.
    pub fn into_inner(mut self) -> S {
        self.conn.close();
        self.conn.stream
    }

    /// Closes the session and the connection.
    pub fn disconnect(self) {
        drop(self.into_inner());
    }
}

impl<S: Stream> WithTimeout<'_, Agent<S>> {
    /// [`Agent::execute`] with this timeout.
    pub fn execute(self, name: &str, args: impl Into<Option<Value>>) -> Result<Value, Error> {
        self.inner.run(request(name, args.into()), self.timeout)
    }

    /// [`Agent::execute_with`] with this timeout.
    pub fn execute_with(self, request: Request) -> Result<Value, Error> {
        self.inner.run(request, self.timeout)
    }

    /// [`Agent::call`] with this timeout.
    pub fn call<C: Command>(self, cmd: &C) -> Result<C::Returns, Error> {
        let reply = self
            .inner
            .conn
            .call_reply(Request::command(cmd)?, self.timeout, &[])?;
        reply_returns::<C>(&reply)
    }
}
