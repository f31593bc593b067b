//! The guest agent handle: the QGA dialect over the same driver.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use qmp_core::serde_json::Value;
use qmp_core::{Command as TypedCommand, Request};

use qmp_os::{CloseCause, Error, Options, seed};

use crate::driver::Driver;
use crate::link::{self, Instruction, Link};
use crate::runtime::{Runtime, WrapStream};
use crate::transport::Transport;

/// A cloneable handle to a guest agent (qemu-ga) connection.
///
/// On connect the driver resynchronises with the agent (a 0xFF byte and
/// `guest-sync-delimited` with an id no earlier client used), so whatever
/// an earlier client left behind (half a request, unread replies) is
/// discarded. A call that times out triggers another resync before the
/// next one. [`Options::handshake_timeout`] limits each resync, so an agent
/// that is not running gives a clear error instead of a hang.
///
/// ```
/// use std::time::Duration;
/// use qmp_async::{Agent, Options, Runtime};
/// use qmp_qapi::qga::GuestGetHostName;
///
/// async fn host_name<R: Runtime>() -> Result<String, qmp_async::Error> {
///     let options = Options::default()
///         .socket_wait(Duration::from_secs(5))
///         .timeout(Duration::from_secs(10));
///     let (agent, driver) = Agent::<R>::connect_unix("/run/qga.sock", options).await?;
///     // Polled in the same task here; spawning it works as well.
///     let work = async {
///         let name = agent.call(&GuestGetHostName).await;
///         agent.disconnect();
///         name
///     };
///     let (name, _cause) = futures_lite::future::zip(work, driver).await;
///     Ok(name?.host_name)
/// }
/// ```
pub struct Agent<R> {
    link: Link<R>,
}

impl<R> Clone for Agent<R> {
    fn clone(&self) -> Self {
        Agent {
            link: self.link.clone(),
        }
    }
}

impl<R: Runtime> Agent<R> {
    async fn establish(io: Transport<R>, options: &Options) -> Result<(Self, Driver<R>), Error> {
        let (link, driver) =
            Link::establish(io, options.qga_config(seed()), options, "QGA").await?;
        Ok((Agent { link }, driver))
    }

    /// Connects to the agent's socket at `path` (`qemu-ga -m unix-listen`,
    /// or a QEMU chardev bound to the guest's virtio-serial port) and
    /// resynchronises. Retries for up to [`Options::socket_wait`] while
    /// the socket does not exist yet or refuses connections.
    pub async fn connect_unix(
        path: impl AsRef<Path>,
        options: Options,
    ) -> Result<(Self, Driver<R>), Error> {
        let wait = options.socket_wait_or(options.connect_timeout);
        let io = link::connect_unix_path::<R>(path.as_ref(), wait, options.connect_timeout).await?;
        Self::establish(io, &options).await
    }

    /// Speaks to the agent over a stream you already have.
    pub async fn from_stream<S>(stream: S, options: Options) -> Result<(Self, Driver<R>), Error>
    where
        R: WrapStream<S>,
    {
        let io = Transport::Other(R::wrap(stream), "a generic stream");
        Self::establish(io, &options).await
    }

    /// Runs `name` with `args` (a JSON object, or `None`).
    /// Commands the agent never answers (`guest-shutdown`,
    /// `guest-suspend-*`) complete with `Null` once written.
    pub async fn execute(
        &self,
        name: &str,
        args: impl Into<Option<Value>>,
    ) -> Result<Value, Error> {
        self.link
            .call(link::request(name, args.into()), Vec::new())
            .await
    }

    /// Runs a prepared [`Request`].
    pub async fn execute_with(&self, request: Request) -> Result<Value, Error> {
        self.link.call(request, Vec::new()).await
    }

    /// Sends a whole request object as you wrote it, with any `id` you
    /// choose (not a non-negative integer, nor one in flight), and returns
    /// the whole reply object, an error reply as data; see
    /// [`Qmp::execute_raw`](crate::Qmp::execute_raw).
    pub async fn execute_raw(&self, message: Value) -> Result<Value, Error> {
        self.link.call_raw(message).await
    }

    /// Runs a typed command (see the `qmp-qapi` crate) and decodes its reply.
    pub async fn call<C: TypedCommand>(&self, cmd: &C) -> Result<C::Returns, Error> {
        self.link.call_typed(cmd).await
    }

    /// The engine's counters (late replies dropped, output discarded
    /// during resyncs...) as of the driver's last turn.
    pub fn stats(&self) -> qmp_core::Stats {
        self.link.stats()
    }

    /// Resynchronises with the agent before the next request.
    pub fn resync(&self) {
        self.link.send(Instruction::Resync);
    }

    /// A handle to the same connection whose calls time out after
    /// `timeout` (`Duration::MAX`: never).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        let mut link = self.link.clone();
        link.timeout = timeout;
        Agent { link }
    }

    /// This handle's call timeout.
    pub fn timeout(&self) -> Duration {
        self.link.timeout
    }

    /// Closes the connection: pending calls end with [`Error::Interrupted`] at
    /// once; the socket itself closes once the replies the agent still owes
    /// were read (at most 2 s), since qemu-ga dies of SIGPIPE when a client
    /// closes before it could answer.
    pub fn disconnect(&self) {
        self.link.disconnect();
    }

    /// Completes once the connection has closed, with why.
    pub fn closed(&self) -> impl Future<Output = CloseCause> + Send + 'static {
        self.link.closed()
    }

    /// Whether the connection has closed (or is closing).
    pub fn is_closed(&self) -> bool {
        self.link.is_closed()
    }

    /// Where the session stands, as of the driver's last turn: running,
    /// disconnecting (a guest agent's linger), closed.
    pub fn state(&self) -> qmp_core::SessionState {
        self.link.state()
    }

    /// The session's runstates: syncing, running, syncing again after each
    /// [`resync`](Self::resync)..., ending after `Closed`; see
    /// [`Runstates`](crate::Runstates).
    pub fn runstates(&self) -> crate::Runstates {
        self.link.runstates()
    }

    /// Why the connection closed, once it has.
    pub fn close_cause(&self) -> Option<CloseCause> {
        self.link.close_cause()
    }
}

impl<R: Runtime> fmt::Debug for Agent<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("timeout", &self.timeout())
            .field("closed", &self.close_cause())
            .finish()
    }
}
