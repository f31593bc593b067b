#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// A std-only crate: `core` paths would add nothing but noise here.
#![allow(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

mod agent;
mod driver;
mod events;
mod hub;
mod launcher;
mod link;
mod qmp;
pub mod runtime;
mod transport;

pub use agent::Agent;
pub use driver::Driver;
pub use events::{DEFAULT_SUBSCRIPTION_CAPACITY, EventFilter, Events, Subscription};
pub use hub::Runstates;
pub use launcher::{Launched, OnRuntime, Qemu, QemuBuilder};
pub use qmp::{Listener, Qmp};
pub use qmp_os::launch::{DEFAULT_ARGS, DEFAULT_PROGRAM, DEFAULT_STDERR_TAIL, QmpSocket};
pub use qmp_os::{CloseCause, Error, Options, TrafficHook};
pub use runtime::Runtime;

/// The engine this crate drives, re-exported so callers use the same
/// version (`Request`, `Event`, `Greeting`, typed `commands`, errors).
pub use qmp_core;
/// `serde_json`, as the engine uses it.
pub use qmp_core::serde_json;
pub use qmp_core::{Direction, Event, Greeting, Request, SessionState, Traffic};
