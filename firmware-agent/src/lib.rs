//! A firmware-side QMP agent: the logic a guest's early boot code or a
//! microcontroller would run, written against `embedded-io` and a clock
//! only, with no operating system and no std.
//!
//! [`run`] connects, queries the run state, resumes the VM, asks it to
//! stop and handles the `STOP` event, then queries again: the round trip
//! a watchdog or supervisor agent makes.

#![no_std]
#![forbid(unsafe_code)]

use core::time::Duration;

use embedded_io::{Read, Write};
use qmp_core::commands::qmp::{Cont, QueryStatus, RunState, Stop};
use qmp_core::driver::{Clock, DriverError, EmbeddedDriver};
use qmp_core::{Config, Timestamp};

/// The small configuration: 16 KiB messages, 8 queued events, 4 open
/// requests. It runs in a 64 KiB heap.
pub fn config() -> Config {
    Config::qmp()
        .max_message_size(16 * 1024)
        .max_in_flight(2)
        .max_queued_events(8)
        .max_open_requests(4)
}

/// The driver the agent runs, over any port and clock.
pub type AgentDriver<P, C> = EmbeddedDriver<P, C>;

/// What the agent saw.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    /// The QEMU version from the greeting.
    pub version: (u32, u32, u32),
    /// The run state before the agent did anything.
    pub initial: RunState,
    /// When the `STOP` event says the VM stopped.
    pub stopped_at: Option<Timestamp>,
    /// The run state after the `STOP` event.
    pub after_stop: RunState,
}

/// Runs the agent over `port` with `timeout` for each step.
pub fn run<P: Read + Write, C: Clock>(
    port: P,
    clock: C,
    timeout: Duration,
) -> Result<Report, DriverError<P::Error>> {
    let mut qmp = AgentDriver::connect(port, clock, config(), timeout)?;
    let version = qmp
        .client()
        .greeting()
        .map(|g| (g.version.major, g.version.minor, g.version.micro))
        .unwrap_or_default();
    let initial = qmp.call(&QueryStatus)?.status;
    qmp.call(&Cont)?;
    qmp.call(&Stop)?;
    let stop = qmp.wait_event(|e| e.name == "STOP", timeout)?;
    let after_stop = qmp.call(&QueryStatus)?.status;
    Ok(Report {
        version,
        initial,
        stopped_at: stop.timestamp,
        after_stop,
    })
}
