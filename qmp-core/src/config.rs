//! How a session behaves, and how much memory it may use.

use core::time::Duration;

/// Which protocol the peer speaks.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The QEMU Machine Protocol: greeting, negotiation, events.
    Qmp,
    /// The guest agent protocol: no greeting, resync with a 0xFF delimiter.
    Qga,
}

/// Session settings. Start from [`Config::qmp`] or [`Config::qga`].
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Config {
    /// The protocol spoken.
    pub dialect: Dialect,
    /// The largest message accepted from the server, in bytes. A larger
    /// one closes the session with `MessageTooLarge`. Default 10 MiB.
    pub max_message_size: usize,
    /// The most memory one message may take decoded as a
    /// `serde_json::Value`, estimated from its shape before decoding. A
    /// hostile peer's 10 MiB `[0,0,0,…]` would take some 170 MiB; over
    /// this budget `Reply::value` fails with `RequestError::TooLarge` (the
    /// reply itself is kept as its text and still decodes typed), an event
    /// or an error reply is not kept (dropped and counted, or the request
    /// ends with `TooLarge`), and the session goes on. Default: 4 × the
    /// message cap (40 MiB).
    pub max_decoded_size: usize,
    /// Wait for the server's greeting before anything else (QMP).
    pub await_greeting: bool,
    /// Send `qmp_capabilities` before any request (QMP).
    pub negotiate: bool,
    /// Ask for out-of-band execution when the server offers it.
    pub enable_oob: bool,
    /// In-band requests sent but not answered at most; the rest wait in
    /// the engine. QEMU stops reading after 8 queued commands.
    pub max_in_flight: usize,
    /// Deadline for greeting plus negotiation, from the client's creation.
    /// Default 10 s; `None` waits as long as the connection lives.
    pub handshake_timeout: Option<Duration>,
    /// Deadline for each guest agent resync. Default 10 s.
    pub sync_timeout: Option<Duration>,
    /// Deadline for a request that sets none of its own, counted from its
    /// submission. Default 30 s, so that no request waits forever for a
    /// reply that never comes; `None` (or a huge value such as
    /// `Duration::MAX`) means no limit.
    pub request_timeout: Option<Duration>,
    /// Requests the engine tracks at once: queued, in flight, or given up
    /// on but still owed a reply by the server. A request beyond it is
    /// refused with `SubmitError::TooManyRequests`. Default 65,536. The
    /// table grows with use; an idle client holds none of it.
    pub max_open_requests: usize,
    /// Events kept until taken; when full, the oldest is dropped and
    /// counted. Default 256.
    pub max_queued_events: usize,
    /// The bytes the queued events may take, their text as received
    /// ([`Event::size`](crate::Event::size)); past it the oldest are
    /// dropped and counted, and an event larger than all of it is dropped
    /// itself. Default 16 MiB.
    pub max_queued_event_bytes: usize,
    /// How long [`Client::close`](crate::Client::close) keeps reading so
    /// that replies the server still owes arrive before the connection
    /// closes. A guest agent dies of SIGPIPE when it writes a reply to a
    /// closed socket, so the guest agent default is 2 s; QMP's is zero.
    pub close_linger: Duration,
    /// Keep a copy of every whole message received and every request
    /// written, for [`Client::poll_traffic`](crate::Client::poll_traffic)
    /// (logging, `-v` in a shell). Off by default: it costs a copy.
    pub record_traffic: bool,
    /// Resync with the guest agent as soon as the client is created.
    pub sync_on_start: bool,
    /// Seed for the guest agent's sync ids; give each connection a
    /// different one (time, process id, a counter) so a stale answer to an
    /// earlier client's sync is never taken for ours.
    pub sync_seed: u64,
}

impl Config {
    /// Defaults for QMP: await the greeting, negotiate, enable `oob`.
    pub fn qmp() -> Self {
        Config {
            dialect: Dialect::Qmp,
            max_message_size: 10 * 1024 * 1024,
            max_decoded_size: 40 * 1024 * 1024,
            await_greeting: true,
            negotiate: true,
            enable_oob: true,
            max_in_flight: 8,
            handshake_timeout: Some(Duration::from_secs(10)),
            sync_timeout: Some(Duration::from_secs(10)),
            request_timeout: Some(Duration::from_secs(30)),
            max_open_requests: 65_536,
            max_queued_events: 256,
            max_queued_event_bytes: 16 * 1024 * 1024,
            close_linger: Duration::ZERO,
            record_traffic: false,
            sync_on_start: false,
            sync_seed: 0,
        }
    }

    /// Defaults for the guest agent: no greeting, resync on start.
    pub fn qga() -> Self {
        Config {
            dialect: Dialect::Qga,
            await_greeting: false,
            negotiate: false,
            enable_oob: false,
            sync_on_start: true,
            close_linger: Duration::from_secs(2),
            ..Config::qmp()
        }
    }

    /// Sets [`max_message_size`](Self::max_message_size), and
    /// [`max_decoded_size`](Self::max_decoded_size) to 4 × that.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self.max_decoded_size = bytes.saturating_mul(4);
        self
    }

    /// Sets [`max_decoded_size`](Self::max_decoded_size).
    pub fn max_decoded_size(mut self, bytes: usize) -> Self {
        self.max_decoded_size = bytes;
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

    /// Sets [`enable_oob`](Self::enable_oob).
    pub fn enable_oob(mut self, yes: bool) -> Self {
        self.enable_oob = yes;
        self
    }

    /// Sets [`max_in_flight`](Self::max_in_flight) (at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    pub fn handshake_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.handshake_timeout = timeout.into();
        self
    }

    /// Sets [`sync_timeout`](Self::sync_timeout).
    pub fn sync_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.sync_timeout = timeout.into();
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn request_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.request_timeout = timeout.into();
        self
    }

    /// Sets [`max_open_requests`](Self::max_open_requests) (at least 1).
    pub fn max_open_requests(mut self, n: usize) -> Self {
        self.max_open_requests = n.max(1);
        self
    }

    /// Sets [`max_queued_event_bytes`](Self::max_queued_event_bytes).
    pub fn max_queued_event_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_event_bytes = bytes;
        self
    }

    /// Sets [`max_queued_events`](Self::max_queued_events).
    pub fn max_queued_events(mut self, n: usize) -> Self {
        self.max_queued_events = n;
        self
    }

    /// Sets [`close_linger`](Self::close_linger).
    pub fn close_linger(mut self, linger: Duration) -> Self {
        self.close_linger = linger;
        self
    }

    /// Sets [`record_traffic`](Self::record_traffic).
    pub fn record_traffic(mut self, yes: bool) -> Self {
        self.record_traffic = yes;
        self
    }

    /// Sets [`sync_on_start`](Self::sync_on_start).
    pub fn sync_on_start(mut self, yes: bool) -> Self {
        self.sync_on_start = yes;
        self
    }

    /// Sets [`sync_seed`](Self::sync_seed).
    pub fn sync_seed(mut self, seed: u64) -> Self {
        self.sync_seed = seed;
        self
    }
}
