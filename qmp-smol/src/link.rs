//! What every handle holds: the way to the driver, and how a call waits
//! for its reply without ever leaving the connection out of step.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as StdInstant};

use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use futures_lite::{AsyncRead, AsyncWrite, StreamExt, future};
use qmp_core::serde_json::Value;
use qmp_core::{Command as TypedCommand, Config, Event, Greeting, Request};

use crate::driver::{Clock, Command, Driver, Submission};
use crate::error::{CloseCause, Error};
use crate::events::{EventFilter, Hub, Subscription};
use crate::transport::Transport;

pub(crate) struct Shared {
    commands: Sender<Command>,
    /// Fails (never yields) once the driver has finished.
    closed: Receiver<()>,
    hub: Arc<Hub>,
    next_token: AtomicU64,
    clock: Clock,
    greeting: Option<Greeting>,
    oob: bool,
    /// Set when descriptors cannot be passed: what the stream is.
    without_fds: Option<&'static str>,
}

/// The handle core shared by [`Qmp`](crate::Qmp) and [`Agent`](crate::Agent).
#[derive(Clone)]
pub(crate) struct Link {
    shared: Arc<Shared>,
    pub(crate) timeout: Option<Duration>,
}

impl Link {
    /// Runs the handshake over `io` and builds a handle and its driver.
    pub(crate) async fn establish(
        io: Transport,
        config: Config,
        timeout: Option<Duration>,
    ) -> Result<(Link, Driver), Error> {
        let without_fds = io.without_fds();
        let (commands, rx) = async_channel::unbounded();
        let (closed_tx, closed) = async_channel::bounded(1);
        let hub = Arc::new(Hub::default());
        let (driver, greeting, oob, clock) =
            Driver::establish(io, config, hub.clone(), rx, closed_tx).await?;
        let shared = Shared {
            commands,
            closed,
            hub,
            next_token: AtomicU64::new(0),
            clock,
            greeting,
            oob,
            without_fds,
        };
        Ok((
            Link {
                shared: Arc::new(shared),
                timeout,
            },
            driver,
        ))
    }

    pub(crate) fn greeting(&self) -> Option<&Greeting> {
        self.shared.greeting.as_ref()
    }

    pub(crate) fn oob_enabled(&self) -> bool {
        self.shared.oob
    }

    pub(crate) fn fd_passing(&self) -> bool {
        self.shared.without_fds.is_none()
    }

    pub(crate) fn stats(&self) -> qmp_core::Stats {
        self.shared.hub.stats()
    }

    pub(crate) fn close_cause(&self) -> Option<CloseCause> {
        self.shared.hub.cause()
    }

    fn cause(&self) -> CloseCause {
        self.close_cause().unwrap_or(CloseCause::DriverDropped)
    }

    /// Sends `request` and waits for its reply. Dropping the future at any
    /// point cancels the call in the driver: a call not yet sent never is,
    /// a sent one's reply is dropped when it comes.
    pub(crate) async fn call(&self, request: Request, fds: Vec<OwnedFd>) -> Result<Value, Error> {
        if let Some(cause) = self.close_cause() {
            return Err(Error::Closed(cause));
        }
        if let Some(transport) = self.shared.without_fds.filter(|_| !fds.is_empty()) {
            return Err(Error::FdPassingUnsupported { transport });
        }
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        let (reply, result) = async_channel::bounded(1);
        let sub = Submission {
            token,
            request,
            deadline: self.timeout.map(|t| self.shared.clock.now() + t),
            fds,
            reply,
        };
        if self
            .shared
            .commands
            .try_send(Command::Execute(sub))
            .is_err()
        {
            return Err(Error::Closed(self.cause()));
        }
        let mut guard = CancelOnDrop {
            token,
            commands: &self.shared.commands,
            armed: true,
        };
        let outcome = result.recv().await;
        guard.armed = false;
        outcome.unwrap_or_else(|_| Err(Error::Interrupted(self.cause())))
    }

    pub(crate) async fn call_typed<C: TypedCommand>(&self, cmd: &C) -> Result<C::Returns, Error> {
        let value = self.call(Request::command(cmd)?, Vec::new()).await?;
        Ok(C::decode(value)?)
    }

    pub(crate) fn send(&self, cmd: Command) {
        let _ = self.shared.commands.try_send(cmd);
    }

    pub(crate) fn subscribe<const N: usize>(&self, filter: EventFilter) -> Subscription<N> {
        self.shared.hub.subscribe(filter)
    }

    pub(crate) fn wait_event(
        &self,
        filter: EventFilter,
        timeout: Duration,
    ) -> impl Future<Output = Result<Event, Error>> + Send + 'static {
        let mut sub = self.subscribe::<{ crate::DEFAULT_SUBSCRIPTION_CAPACITY }>(filter);
        let deadline = StdInstant::now() + timeout;
        async move {
            let next = async { Ok(sub.next().await) };
            let expire = async {
                Timer::at(deadline).await;
                Err(Error::Timeout)
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

/// Tells the driver to forget a call whose future was dropped.
struct CancelOnDrop<'a> {
    token: u64,
    commands: &'a Sender<Command>,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Unbounded: never blocks, fails only once the driver is gone.
            let _ = self.commands.try_send(Command::Cancel(self.token));
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

/// Runs `f` with `timeout` as a limit, failing with `ConnectTimeout`.
pub(crate) async fn limit<T>(
    timeout: Option<Duration>,
    target: &str,
    f: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match timeout {
        None => f.await,
        Some(t) => {
            let expire = async {
                Timer::after(t).await;
                Err(Error::ConnectTimeout {
                    target: target.to_owned(),
                    timeout: t,
                })
            };
            future::or(f, expire).await
        }
    }
}

/// Connects to a Unix path, retrying for up to `wait` while it does not
/// exist or refuses connections.
pub(crate) async fn connect_unix_path(
    path: &Path,
    wait: Duration,
    timeout: Option<Duration>,
) -> Result<Transport, Error> {
    let target = path.display().to_string();
    let start = StdInstant::now();
    loop {
        let attempt = limit(timeout, &target, async {
            Ok(Async::<UnixStream>::connect(path).await)
        })
        .await?;
        match attempt {
            Ok(s) => return Ok(Transport::Unix(s)),
            Err(e) => {
                let waited = start.elapsed();
                let retry = matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                );
                if !retry || waited >= wait {
                    return Err(Error::Connect {
                        target,
                        waited,
                        source: e,
                    });
                }
                Timer::after((wait - waited).min(Duration::from_millis(20))).await;
            }
        }
    }
}

pub(crate) fn from_std_unix(stream: UnixStream) -> Result<Transport, Error> {
    Ok(Transport::Unix(Async::new(stream)?))
}

pub(crate) fn from_stream<S>(stream: S, kind: &'static str) -> Transport
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    Transport::Other(Box::pin(stream), kind)
}
