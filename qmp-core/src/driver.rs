//! A blocking driver over any `embedded_io::Read + Write` port, for
//! firmware and other places without an operating system.
//!
//! The port's `read` must come back within a bounded time when no byte
//! arrives, with an error whose kind is [`ErrorKind::TimedOut`] (a UART
//! receive timeout, a poll interval): that is when the driver checks its
//! deadlines. A port whose `read` can block forever cannot time out.

use core::fmt;
use core::time::Duration;

use embedded_io::{Error as _, ErrorKind, Read, Write};
use serde_json::Value;

use crate::{
    Client, CloseReason, CodecError, Command, Config, Event, Instant, Output, Reply, Request,
    RequestError, SessionState, SubmitError,
};

/// Where the driver gets the time: a hardware timer, a tick counter.
pub trait Clock {
    /// The current time, on any fixed origin, never going backwards.
    fn now(&mut self) -> Instant;
}

impl<F: FnMut() -> Instant> Clock for F {
    fn now(&mut self) -> Instant {
        self()
    }
}

/// Why a driver call failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum DriverError<E> {
    /// The port failed.
    Io(E),
    /// The request ended without a value: the server's error, a timeout,
    /// or the session closing.
    Request(RequestError),
    /// The engine refused the request.
    Submit(SubmitError),
    /// The session ended (while connecting, or before the call).
    Closed(CloseReason),
    /// A typed value could not be converted.
    Codec(CodecError),
    /// Nothing matched before the deadline (connecting, waiting for an event).
    Timeout,
}

impl<E: fmt::Debug> fmt::Display for DriverError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Io(e) => write!(f, "port error: {e:?}"),
            DriverError::Request(e) => fmt::Display::fmt(e, f),
            DriverError::Submit(e) => fmt::Display::fmt(e, f),
            DriverError::Closed(e) => fmt::Display::fmt(e, f),
            DriverError::Codec(e) => fmt::Display::fmt(e, f),
            DriverError::Timeout => f.write_str("timed out"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for DriverError<E> {}

impl<E> From<RequestError> for DriverError<E> {
    fn from(e: RequestError) -> Self {
        DriverError::Request(e)
    }
}

impl<E> From<SubmitError> for DriverError<E> {
    fn from(e: SubmitError) -> Self {
        DriverError::Submit(e)
    }
}

impl<E> From<CodecError> for DriverError<E> {
    fn from(e: CodecError) -> Self {
        DriverError::Codec(e)
    }
}

/// Bytes read from the port at a time; lives inside the driver.
const READ_CHUNK: usize = 256;

/// A blocking QMP or guest agent session over an `embedded-io` port.
///
/// ```no_run
/// # fn demo<P: embedded_io::Read + embedded_io::Write>(port: P, mut ticks: impl FnMut() -> u64) {
/// use core::time::Duration;
/// use qmp_core::{Config, Instant, Request, driver::EmbeddedDriver};
///
/// let clock = move || Instant::from_micros(ticks());
/// let timeout = Duration::from_secs(2);
/// let config = Config::qmp().max_queued_events(8).max_open_requests(4);
/// let mut qmp = EmbeddedDriver::connect(port, clock, config, timeout).unwrap();
/// let status = qmp.execute(Request::new("query-status")).unwrap();
/// if let Some(event) = qmp.next_event() { /* ... */ }
/// # }
/// ```
pub struct EmbeddedDriver<P, C> {
    port: P,
    clock: C,
    client: Client,
    timeout: Duration,
    buf: [u8; READ_CHUNK],
}

impl<P, C> fmt::Debug for EmbeddedDriver<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedDriver")
            .field("client", &self.client)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<P: Read + Write, C: Clock> EmbeddedDriver<P, C> {
    /// Starts a session on `port` and waits until it runs: greeting and
    /// negotiation for QMP, the resync for the guest agent. `timeout`
    /// bounds that wait and is the default for every later call.
    pub fn connect(
        port: P,
        mut clock: C,
        config: Config,
        timeout: Duration,
    ) -> Result<Self, DriverError<P::Error>> {
        let now = clock.now();
        let mut driver = EmbeddedDriver {
            client: Client::new(now, config),
            port,
            clock,
            timeout,
            buf: [0; READ_CHUNK],
        };
        let deadline = now + timeout;
        loop {
            driver.step(Some(deadline))?;
            match driver.client.state() {
                SessionState::Running => return Ok(driver),
                SessionState::Closed => return Err(driver.closed()),
                _ if driver.clock.now() >= deadline => return Err(DriverError::Timeout),
                _ => {}
            }
        }
    }

    /// Runs `request` and waits for its end; a request without its own
    /// timeout gets the driver's. Events met meanwhile stay queued.
    pub fn execute(&mut self, request: Request) -> Result<Value, DriverError<P::Error>> {
        let reply = self.execute_reply(request)?;
        reply.value().map_err(DriverError::Request)
    }

    /// Runs `request` and waits for its end, like [`execute`](Self::execute),
    /// handing out the reply undecoded.
    pub fn execute_reply(&mut self, mut request: Request) -> Result<Reply, DriverError<P::Error>> {
        if request.timeout.is_none() && request.deadline.is_none() {
            request = request.timeout(self.timeout);
        }
        let now = self.clock.now();
        let id = self.client.execute(now, request)?;
        loop {
            // Replies for other requests (none, in this one-at-a-time
            // driver, unless the caller used `client()` directly) are
            // skipped; the engine guarantees ours comes exactly once.
            while let Some(out) = self.client.poll_output() {
                if let Output::Reply { id: done, result } = out
                    && done == id
                {
                    return result.map_err(DriverError::Request);
                }
            }
            self.step(None)?;
        }
    }

    /// Runs a typed command.
    pub fn call<T: Command>(&mut self, command: &T) -> Result<T::Returns, DriverError<P::Error>> {
        let reply = self.execute_reply(Request::command(command)?)?;
        Ok(T::decode_reply(&reply)?)
    }

    /// The oldest queued event, without waiting.
    pub fn next_event(&mut self) -> Option<Event> {
        self.client.poll_event()
    }

    /// Waits up to `timeout` for the first event that `matches`, leaving
    /// the others queued in order.
    pub fn wait_event(
        &mut self,
        mut matches: impl FnMut(&Event) -> bool,
        timeout: Duration,
    ) -> Result<Event, DriverError<P::Error>> {
        let deadline = self.clock.now() + timeout;
        loop {
            if let Some(event) = self.client.events().take_first(&mut matches) {
                return Ok(event);
            }
            if self.client.state() == SessionState::Closed {
                return Err(self.closed());
            }
            if self.clock.now() >= deadline {
                return Err(DriverError::Timeout);
            }
            self.step(Some(deadline))?;
        }
    }

    /// The engine, for anything the driver does not wrap.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The port.
    pub fn get_ref(&self) -> &P {
        &self.port
    }

    /// The port, mutably (writing to it directly desynchronises the session).
    pub fn get_mut(&mut self) -> &mut P {
        &mut self.port
    }

    /// Gives the port back.
    pub fn into_inner(self) -> P {
        self.port
    }

    fn closed(&self) -> DriverError<P::Error> {
        DriverError::Closed(
            self.client
                .close_reason()
                .cloned()
                .unwrap_or(CloseReason::Local),
        )
    }

    /// Writes what is pending, then reads once (or notes that the port's
    /// read timed out) and lets the engine act on the time.
    fn step(&mut self, deadline: Option<Instant>) -> Result<(), DriverError<P::Error>> {
        let mut wrote = false;
        while let Some(tx) = self.client.poll_transmit() {
            let n = self.port.write(tx.bytes).map_err(DriverError::Io)?;
            self.client.consume_transmit(n);
            wrote = true;
        }
        if wrote {
            self.port.flush().map_err(DriverError::Io)?;
        }
        if self.client.state() == SessionState::Closed {
            return Ok(());
        }
        match self.port.read(&mut self.buf) {
            Ok(0) => {
                let now = self.clock.now();
                self.client.handle_eof(now);
            }
            Ok(n) => {
                let now = self.clock.now();
                self.client.handle_input(now, &self.buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => return Err(DriverError::Io(e)),
        }
        let now = self.clock.now();
        let due = self.client.poll_timeout().into_iter().chain(deadline).min();
        if due.is_some_and(|d| d <= now) {
            self.client.handle_timeout(now);
        }
        Ok(())
    }
}
