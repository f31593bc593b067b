//! A firmware-side QMP agent: the logic a guest's early boot code or a
//! microcontroller would run, written against `embedded-io` and a clock
//! only, with no operating system and no std.
//!
//! [`run`] connects, queries the run state, resumes the VM, asks it to
//! stop and handles the `STOP` event, then queries again: the round trip
//! a watchdog or supervisor agent makes.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use core::time::Duration;

use embedded_io::{Read, Write};
use qmp_core::driver::{Clock, DriverError, EmbeddedDriver};
use qmp_core::{Command, Config, Empty, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};

/// A VM run state as `query-status` reports it: the ones the agent tells
/// apart, and any other by its name. (The firmware declares the three
/// commands it runs itself; the generated `qmp-qapi` surface is for
/// hosts.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    /// `prelaunch`: not started yet (`-S`).
    Prelaunch,
    /// `running`.
    Running,
    /// `paused`.
    Paused,
    /// Any other state, as sent.
    Other(String),
}

impl<'de> Deserialize<'de> for RunState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match name.as_str() {
            "prelaunch" => RunState::Prelaunch,
            "running" => RunState::Running,
            "paused" => RunState::Paused,
            _ => RunState::Other(name),
        })
    }
}

/// What `query-status` returns (members it does not name are ignored).
#[derive(Debug, Deserialize)]
pub struct StatusInfo {
    /// The run state.
    pub status: RunState,
}

/// `query-status`.
#[derive(Debug, Serialize)]
pub struct QueryStatus;

impl Command for QueryStatus {
    const NAME: &'static str = "query-status";
    type Returns = StatusInfo;
}

/// `cont`: resume the VM.
#[derive(Debug, Serialize)]
pub struct Cont;

impl Command for Cont {
    const NAME: &'static str = "cont";
    type Returns = Empty;
}

/// `stop`: pause the VM.
#[derive(Debug, Serialize)]
pub struct Stop;

impl Command for Stop {
    const NAME: &'static str = "stop";
    type Returns = Empty;
}

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
