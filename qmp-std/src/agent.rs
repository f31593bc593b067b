//! The blocking guest agent (QGA) client.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::debug;
use qmp_core::serde_json::Value;
use qmp_core::{CloseReason, Command, Config, Dialect, Request, Stats};

use crate::conn::Conn;
use crate::error::Error;
use crate::options::Options;
use crate::qmp::{WithTimeout, connect_unix_waiting, request};
use crate::stream::{Socket, Stream};

/// A blocking client for the QEMU guest agent (`qemu-ga`).
///
/// On connecting it resynchronises with the agent (a 0xFF byte, then
/// `guest-sync-delimited` with a fresh id), so whatever an earlier client
/// left half-written or unread does not confuse this one. After a call
/// times out it resynchronises again before the next request.
///
/// qemu-ga may die of SIGPIPE when a client closes its socket before
/// reading a reply; [`disconnect`](Self::disconnect) therefore waits (up
/// to a second) for replies still due before closing.
#[derive(Debug)]
pub struct Agent<S = Socket> {
    conn: Conn<S>,
    timeout: Duration,
}

/// A seed for the sync ids that differs per connection and per process.
fn sync_seed() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ N.fetch_add(1, Ordering::Relaxed).rotate_left(17)
}

impl Agent<Socket> {
    /// Connects to the agent's Unix socket (e.g. a virtio-serial chardev
    /// of QEMU, or `qemu-ga -m unix-listen -p PATH`), waiting for the
    /// socket to appear and accept at most [`Options::socket_wait`]
    /// (default: the connect timeout), then resynchronises.
    pub fn connect_unix(path: impl AsRef<Path>, options: Options) -> Result<Self, Error> {
        let path = path.as_ref();
        let wait = options.socket_wait.unwrap_or(options.connect_timeout);
        let stream =
            connect_unix_waiting(path, options.connect_timeout, wait).map_err(|e| match e {
                Error::Timeout { waiting_for, after } => Error::Timeout {
                    waiting_for: format!("the guest agent socket {waiting_for}"),
                    after,
                },
                e => e,
            })?;
        debug!("QGA: connected to {}", path.display());
        Agent::from_stream(Socket::Unix(stream), options)
    }
}

impl<S: Stream> Agent<S> {
    /// Speaks the guest agent protocol over a stream you already have,
    /// resynchronising first (at most [`Options::handshake_timeout`]).
    pub fn from_stream(stream: S, options: Options) -> Result<Self, Error> {
        let mut config = options.engine_config(|| Config::qga().sync_seed(sync_seed()));
        if config.dialect != Dialect::Qga {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Agent needs a guest agent engine configuration (Config::qga())",
            )));
        }
        if config.sync_timeout.is_none() {
            // An agent that stops answering ends the session instead of
            // holding every later request back.
            config.sync_timeout = Some(options.handshake_timeout);
        }
        let mut conn = Conn::new(stream, config, "QGA");
        conn.handshake(
            options.handshake_timeout,
            "the guest agent to answer guest-sync-delimited",
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
        let value = self.run(Request::command(cmd)?, t)?;
        Ok(C::decode(value)?)
    }

    /// Resynchronises with the agent now (0xFF + `guest-sync-delimited`),
    /// waiting at most the call timeout for its answer.
    pub fn resync(&mut self) -> Result<(), Error> {
        if let Some(e) = self.conn.dead() {
            return Err(e);
        }
        let now = self.conn.now();
        self.conn.client.resync(now);
        let t = self.timeout;
        self.conn.wait_for(
            t,
            || "the guest agent to answer guest-sync-delimited".into(),
            |c| (c.client.runstate() == qmp_core::Runstate::Running).then_some(()),
        )
    }

    fn run(&mut self, request: Request, timeout: Duration) -> Result<Value, Error> {
        let result = self.conn.call(request, timeout, &[]);
        if matches!(result, Err(Error::Timeout { .. })) {
            // A reply may still come: resync before the next request, so
            // it can never be taken for that request's.
            let now = self.conn.now();
            self.conn.client.resync(now);
        }
        result
    }

    /// Counters: bytes and messages received, late replies dropped, stale
    /// output discarded while resynchronising.
    pub fn stats(&self) -> Stats {
        self.conn.client.stats()
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.conn.client.close_reason()
    }

    /// Whether the session has ended (calls now fail at once).
    pub fn is_closed(&self) -> bool {
        self.conn.dead().is_some()
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

    /// Closes the session, first giving replies still due up to one second
    /// to arrive; returns the stream, shut down.
    pub fn into_inner(mut self) -> S {
        self.conn.close(Duration::from_secs(1).min(self.timeout));
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
        let value = self.inner.run(Request::command(cmd)?, self.timeout)?;
        Ok(C::decode(value)?)
    }
}
