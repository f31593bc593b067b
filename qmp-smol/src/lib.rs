#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// A std-only adapter: `core` paths would add nothing but noise here.
#![allow(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

mod runtime;

pub use qmp_async::{
    DEFAULT_ARGS, DEFAULT_PROGRAM, DEFAULT_STDERR_TAIL, DEFAULT_SUBSCRIPTION_CAPACITY, EventFilter,
    Events, QmpSocket, Runstates, Subscription,
};
pub use qmp_os::{CloseCause, Error, Options, TrafficHook};
pub use runtime::Smol;

/// A cloneable handle to one QMP connection, driven on smol.
pub type Qmp = qmp_async::Qmp<Smol>;
/// A cloneable handle to a guest agent connection, driven on smol.
pub type Agent = qmp_async::Agent<Smol>;
/// The future that drives one connection; spawn it with `smol::spawn`.
pub type Driver = qmp_async::Driver<Smol>;
/// A listening Unix socket that QEMU connects to.
pub type Listener = qmp_async::Listener<Smol>;
/// A QEMU started by [`QemuBuilder::launch`], with its QMP handle.
pub type Qemu = qmp_async::Qemu<Smol>;
/// Configures and starts a [`Qemu`]: the same builder as qmp-std's.
pub type QemuBuilder = qmp_async::QemuBuilder<Smol>;

/// The engine this crate drives, re-exported so callers use the same
/// version (`Request`, `Event`, `Greeting`, typed `commands`, errors).
pub use qmp_core;
/// `serde_json`, as the engine uses it.
pub use qmp_core::serde_json;
pub use qmp_core::{Direction, Event, Greeting, Request, SessionState, Traffic};
