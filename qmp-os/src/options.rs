//! How a connection behaves: the same settings, names and defaults in
//! every adapter.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use qmp_core::{Config, Traffic};

/// Called with the connection's name and each whole message sent or
/// received, as on the wire (a shell's `-v`, a protocol log).
pub type TrafficHook = Arc<dyn Fn(&str, &Traffic) + Send + Sync>;

/// Settings for one QMP or guest agent connection. Every wait is bounded
/// by default; a huge value such as `Duration::MAX` means no limit.
///
/// ```
/// use std::time::Duration;
/// let options = qmp_os::Options::new()
///     .name("vm1")
///     .timeout(Duration::from_secs(60))
///     .handshake_timeout(Duration::from_secs(5));
/// assert_eq!(options.timeout, Duration::from_secs(60));
/// ```
#[non_exhaustive]
#[derive(Clone)]
pub struct Options {
    /// Names the connection in every log line and in the traffic hook.
    /// Default: "QMP" or "QGA".
    pub name: Option<Arc<str>>,
    /// Bounds connecting (or accepting QEMU's connection). Default 10 s.
    pub connect_timeout: Duration,
    /// How long a Unix socket path that does not exist yet or refuses
    /// connections (a QEMU or an agent still starting) is retried.
    /// Default: not at all for QMP, the connect timeout for the guest
    /// agent (`None`).
    pub socket_wait: Option<Duration>,
    /// Bounds the greeting plus `qmp_capabilities` (QMP) or each resync
    /// (guest agent). Default 10 s.
    pub handshake_timeout: Duration,
    /// The default bound of each call and each event wait, counted from
    /// the call. Default 30 s; one call can override it with
    /// `with_timeout`.
    pub timeout: Duration,
    /// In-band requests on the wire at once; the rest wait in the engine.
    /// Default 8, QEMU's own queue limit with `oob`.
    pub max_in_flight: usize,
    /// Negotiate out-of-band execution when QEMU offers it. Default on.
    pub enable_oob: bool,
    /// Wait for the server's greeting before anything else (QMP). Default on.
    pub await_greeting: bool,
    /// Send `qmp_capabilities` before any request (QMP). Default on.
    pub negotiate: bool,
    /// The largest message accepted from the server. Default 10 MiB.
    pub max_message_size: usize,
    /// The most memory one message may take decoded, estimated before
    /// decoding; a reply over it fails its call with `Error::TooLarge`, an
    /// event over it is dropped and counted. Default: 4 × the message cap.
    pub max_decoded_size: Option<usize>,
    /// Requests open at once (queued, in flight, or given up on but still
    /// owed a reply); a call beyond it fails with `Error::Submit`.
    /// Default 65,536.
    pub max_open_requests: usize,
    /// Events kept for the caller (blocking client), or in the default
    /// queue of events no subscription took (async); the oldest are
    /// dropped and counted. Default 256.
    pub max_queued_events: usize,
    /// The bytes those events may take, as the text received, and the
    /// bytes each async subscription may hold; past it the oldest are
    /// dropped and counted. Default 16 MiB.
    pub max_queued_event_bytes: usize,
    /// Recent events kept per connection for "did it already happen?"
    /// questions (`history`, `happened`), whether or not anyone took them;
    /// the oldest are forgotten. Default 0: no history.
    pub event_history: usize,
    /// The bytes the history may take decoded, estimated. Default 1 MiB.
    pub event_history_bytes: usize,
    /// How long closing waits for replies the server still owes. Default:
    /// the engine's (2 s for the guest agent, which dies of SIGPIPE when it
    /// answers a closed socket; none for QMP).
    pub close_linger: Option<Duration>,
    /// Sees every message sent and received.
    pub on_traffic: Option<TrafficHook>,
    /// Check each QMP request against the connected QEMU's own schema
    /// (`query-qmp-schema`, fetched once, before the first request) and
    /// fail one whose command does not exist there, or whose arguments
    /// name an unknown member or miss a required one, before it is sent,
    /// with [`Error::Schema`](crate::Error::Schema) naming the problem and
    /// the closest name. Default off.
    pub check_schema: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name: None,
            connect_timeout: Duration::from_secs(10),
            socket_wait: None,
            handshake_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_in_flight: 8,
            enable_oob: true,
            await_greeting: true,
            negotiate: true,
            max_message_size: 10 * 1024 * 1024,
            max_decoded_size: None,
            max_open_requests: 65_536,
            max_queued_events: 256,
            max_queued_event_bytes: 16 * 1024 * 1024,
            event_history: 0,
            event_history_bytes: 1024 * 1024,
            close_linger: None,
            on_traffic: None,
            check_schema: false,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("name", &self.name)
            .field("connect_timeout", &self.connect_timeout)
            .field("socket_wait", &self.socket_wait)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("enable_oob", &self.enable_oob)
            .field("await_greeting", &self.await_greeting)
            .field("negotiate", &self.negotiate)
            .field("max_message_size", &self.max_message_size)
            .field("max_decoded_size", &self.max_decoded_size)
            .field("max_open_requests", &self.max_open_requests)
            .field("max_queued_events", &self.max_queued_events)
            .field("max_queued_event_bytes", &self.max_queued_event_bytes)
            .field("event_history", &self.event_history)
            .field("event_history_bytes", &self.event_history_bytes)
            .field("close_linger", &self.close_linger)
            .field("on_traffic", &self.on_traffic.is_some())
            .field("check_schema", &self.check_schema)
            .finish()
    }
}

/// `Some(t)` unless `t` is so large that it means "no limit".
fn limit(t: Duration) -> Option<Duration> {
    // Past a century, a deadline cannot be represented on some clocks.
    (t < Duration::from_secs(100 * 365 * 24 * 3600)).then_some(t)
}

impl Options {
    /// The defaults.
    pub fn new() -> Self {
        Options::default()
    }

    /// Sets [`name`](Self::name).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`socket_wait`](Self::socket_wait).
    pub fn socket_wait(mut self, wait: Duration) -> Self {
        self.socket_wait = Some(wait);
        self
    }

    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`check_schema`](Self::check_schema).
    pub fn check_schema(mut self, on: bool) -> Self {
        self.check_schema = on;
        self
    }

    /// Sets [`timeout`](Self::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
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

    /// Sets [`await_greeting`](Self::await_greeting).
    pub fn await_greeting(mut self, yes: bool) -> Self {
        self.await_greeting = yes;
        self
    }

    /// Sets [`negotiate`](Self::negotiate).
    pub fn negotiate(mut self, yes: bool) -> Self {
        self.negotiate = yes;
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`max_decoded_size`](Self::max_decoded_size).
    pub fn max_decoded_size(mut self, bytes: usize) -> Self {
        self.max_decoded_size = Some(bytes);
        self
    }

    /// Sets [`max_open_requests`](Self::max_open_requests) (at least 1).
    pub fn max_open_requests(mut self, n: usize) -> Self {
        self.max_open_requests = n.max(1);
        self
    }

    /// Sets [`max_queued_events`](Self::max_queued_events).
    pub fn max_queued_events(mut self, n: usize) -> Self {
        self.max_queued_events = n;
        self
    }

    /// Sets [`max_queued_event_bytes`](Self::max_queued_event_bytes).
    pub fn max_queued_event_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_event_bytes = bytes;
        self
    }

    /// Sets [`event_history`](Self::event_history).
    pub fn event_history(mut self, events: usize) -> Self {
        self.event_history = events;
        self
    }

    /// Sets [`event_history_bytes`](Self::event_history_bytes).
    pub fn event_history_bytes(mut self, bytes: usize) -> Self {
        self.event_history_bytes = bytes;
        self
    }

    /// Sets [`close_linger`](Self::close_linger).
    pub fn close_linger(mut self, linger: Duration) -> Self {
        self.close_linger = Some(linger);
        self
    }

    /// Sets [`on_traffic`](Self::on_traffic).
    pub fn on_traffic(mut self, hook: impl Fn(&str, &Traffic) + Send + Sync + 'static) -> Self {
        self.on_traffic = Some(Arc::new(hook));
        self
    }

    /// The socket wait for a client whose default is `default`.
    pub fn socket_wait_or(&self, default: Duration) -> Duration {
        self.socket_wait.unwrap_or(default)
    }

    /// The engine configuration for QMP.
    pub fn qmp_config(&self) -> Config {
        self.apply(Config::qmp())
            .await_greeting(self.await_greeting)
            .negotiate(self.negotiate)
            .enable_oob(self.enable_oob)
            .handshake_timeout(limit(self.handshake_timeout))
    }

    /// The engine configuration for the guest agent; `seed` picks its sync
    /// ids (see [`seed`](crate::seed)).
    pub fn qga_config(&self, seed: u64) -> Config {
        self.apply(Config::qga())
            .sync_timeout(limit(self.handshake_timeout))
            .sync_seed(seed)
    }

    fn apply(&self, base: Config) -> Config {
        let linger = self.close_linger.unwrap_or(base.close_linger);
        let base = base.max_message_size(self.max_message_size);
        let decoded = self.max_decoded_size.unwrap_or(base.max_decoded_size);
        base.max_in_flight(self.max_in_flight)
            .max_decoded_size(decoded)
            .max_open_requests(self.max_open_requests)
            .max_queued_events(self.max_queued_events)
            .max_queued_event_bytes(self.max_queued_event_bytes)
            .request_timeout(limit(self.timeout))
            .close_linger(linger)
    }

    /// The name for logs: [`name`](Self::name) or `default`.
    pub fn name_or(&self, default: &str) -> Arc<str> {
        self.name.clone().unwrap_or_else(|| Arc::from(default))
    }
}

/// `timeout` as a deadline bound for a request: `None` when it means no
/// limit.
pub(crate) fn request_limit(timeout: Duration) -> Option<Duration> {
    limit(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bound_every_wait_and_huge_values_mean_none() {
        let o = Options::new();
        let c = o.qmp_config();
        assert_eq!(c.request_timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.handshake_timeout, Some(Duration::from_secs(10)));
        let c = Options::new()
            .timeout(Duration::MAX)
            .handshake_timeout(Duration::MAX)
            .qga_config(1);
        assert_eq!(c.request_timeout, None);
        assert_eq!(c.sync_timeout, None);
        assert_eq!(c.close_linger, Config::qga().close_linger);
    }
}
