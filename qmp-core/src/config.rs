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
    pub handshake_timeout: Option<Duration>,
    /// Deadline for each guest agent resync.
    pub sync_timeout: Option<Duration>,
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
            await_greeting: true,
            negotiate: true,
            enable_oob: true,
            max_in_flight: 8,
            handshake_timeout: None,
            sync_timeout: None,
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
            ..Config::qmp()
        }
    }

    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
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
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// Sets [`sync_timeout`](Self::sync_timeout).
    pub fn sync_timeout(mut self, timeout: Duration) -> Self {
        self.sync_timeout = Some(timeout);
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
