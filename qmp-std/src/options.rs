//! How a connection behaves: timeouts and the engine's settings.

use std::time::Duration;

use qmp_core::Config;

/// Settings for a [`Qmp`](crate::Qmp) or [`Agent`](crate::Agent)
/// connection. Every wait is bounded; the defaults suit a local QEMU.
///
/// ```
/// use std::time::Duration;
/// let opts = qmp_std::Options::new()
///     .timeout(Duration::from_secs(60))
///     .handshake_timeout(Duration::from_secs(5));
/// assert_eq!(opts.get_timeout(), Duration::from_secs(60));
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) connect_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) socket_wait: Option<Duration>,
    pub(crate) config: Option<Config>,
    max_in_flight: Option<usize>,
    enable_oob: Option<bool>,
    max_message_size: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            socket_wait: None,
            config: None,
            max_in_flight: None,
            enable_oob: None,
            max_message_size: None,
        }
    }
}

impl Options {
    /// The defaults: 10 s to connect, 10 s for the handshake, 30 s per call.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bounds connecting (TCP), accepting a connection, and waiting for a
    /// guest agent socket to appear.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bounds the greeting plus `qmp_capabilities` (QMP) or the first
    /// resync (guest agent).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The default bound for each call and each event wait; one call can
    /// override it with `with_timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Another name for [`timeout`](Self::timeout), as the async adapter
    /// spells it.
    pub fn call_timeout(self, timeout: Duration) -> Self {
        self.timeout(timeout)
    }

    /// How long `connect_unix` keeps retrying a path that does not exist
    /// yet or refuses connections (a QEMU or an agent still starting).
    /// Default: one attempt for [`Qmp`](crate::Qmp), the connect timeout
    /// for [`Agent`](crate::Agent).
    pub fn socket_wait(mut self, wait: Duration) -> Self {
        self.socket_wait = Some(wait);
        self
    }

    /// The engine's settings. Without this, `Config::qmp()` or
    /// `Config::qga()` is used; the three setters below apply on top.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// In-band requests on the wire at once (default 8, QEMU's own limit
    /// with `oob`); only matters when calls time out and leave requests
    /// unanswered.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = Some(n.max(1));
        self
    }

    /// Negotiate out-of-band execution when QEMU offers it (default on).
    pub fn enable_oob(mut self, yes: bool) -> Self {
        self.enable_oob = Some(yes);
        self
    }

    /// The largest message accepted from the server (default 10 MiB); a
    /// larger one closes the session.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = Some(bytes);
        self
    }

    /// The engine configuration: the given one or `default`, with the
    /// setters applied.
    pub(crate) fn engine_config(&self, default: impl FnOnce() -> Config) -> Config {
        let mut config = self.config.clone().unwrap_or_else(default);
        if let Some(n) = self.max_in_flight {
            config = config.max_in_flight(n);
        }
        if let Some(yes) = self.enable_oob {
            config = config.enable_oob(yes);
        }
        if let Some(bytes) = self.max_message_size {
            config = config.max_message_size(bytes);
        }
        config
    }

    /// The connect timeout.
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The handshake timeout.
    pub fn get_handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The default call timeout.
    pub fn get_timeout(&self) -> Duration {
        self.timeout
    }
}
