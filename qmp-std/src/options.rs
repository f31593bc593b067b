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
    pub(crate) config: Option<Config>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            config: None,
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

    /// The engine's settings (message size cap, `oob`, requests in flight).
    /// Without this, `Config::qmp()` or `Config::qga()` is used.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
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
