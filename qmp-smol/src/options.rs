//! Connection settings shared by [`Qmp`](crate::Qmp) and [`Agent`](crate::Agent).

use std::time::Duration;

use qmp_core::Config;

/// How to connect and how long to wait.
///
/// ```
/// use std::time::Duration;
/// let options = qmp_smol::Options::default()
///     .connect_timeout(Duration::from_secs(2))
///     .call_timeout(Duration::from_secs(30));
/// assert_eq!(options.call_timeout, Some(Duration::from_secs(30)));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Options {
    /// Limit for opening the socket (or accepting QEMU's connection).
    /// Default 10 s.
    pub connect_timeout: Option<Duration>,
    /// Limit for the greeting and capability negotiation (QMP) or for each
    /// guest agent resync (QGA). Default 10 s.
    pub handshake_timeout: Option<Duration>,
    /// Default limit for every call made through the handle, counted from
    /// the call; `None` (the default) waits as long as the connection
    /// lives. [`Qmp::with_timeout`](crate::Qmp::with_timeout) changes it
    /// for one handle.
    pub call_timeout: Option<Duration>,
    /// How long to keep retrying a Unix path that does not exist yet or
    /// refuses connections (a QEMU or an agent still starting). Default 0:
    /// one attempt.
    pub socket_wait: Duration,
    /// In-band requests on the wire at once; the rest wait in the engine.
    /// Default 8, QEMU's own queue limit with `oob`.
    pub max_in_flight: usize,
    /// Negotiate out-of-band execution when QEMU offers it. Default on.
    pub enable_oob: bool,
    /// Largest message accepted from the server. Default 10 MiB.
    pub max_message_size: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Some(Duration::from_secs(10)),
            handshake_timeout: Some(Duration::from_secs(10)),
            call_timeout: None,
            socket_wait: Duration::ZERO,
            max_in_flight: 8,
            enable_oob: true,
            max_message_size: 10 * 1024 * 1024,
        }
    }
}

impl Options {
    /// The defaults.
    pub fn new() -> Self {
        Options::default()
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// Sets [`call_timeout`](Self::call_timeout).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = Some(timeout);
        self
    }

    /// Same as [`call_timeout`](Self::call_timeout), as `qmp-std` names it.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.call_timeout(timeout)
    }

    /// Sets [`socket_wait`](Self::socket_wait).
    pub fn socket_wait(mut self, wait: Duration) -> Self {
        self.socket_wait = wait;
        self
    }

    /// Sets [`max_in_flight`](Self::max_in_flight) (at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Sets [`enable_oob`](Self::enable_oob).
    pub fn enable_oob(mut self, yes: bool) -> Self {
        self.enable_oob = yes;
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    pub(crate) fn qmp_config(&self) -> Config {
        let mut c = Config::qmp()
            .max_in_flight(self.max_in_flight)
            .enable_oob(self.enable_oob)
            .max_message_size(self.max_message_size);
        c.handshake_timeout = self.handshake_timeout;
        c
    }

    pub(crate) fn qga_config(&self, seed: u64) -> Config {
        let mut c = Config::qga()
            .max_in_flight(self.max_in_flight)
            .max_message_size(self.max_message_size)
            .sync_seed(seed);
        c.sync_timeout = self.handshake_timeout;
        c
    }
}
