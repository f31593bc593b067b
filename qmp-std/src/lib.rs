#![doc = include_str!("../README.md")]
// The one `unsafe` block of the launcher (the parent-death signal between
// fork and exec) lives in `qmp_os::launch`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// The lint guards the no_std engine; this crate is std by nature.
#![allow(clippy::std_instead_of_core)]

mod agent;
mod launcher;
mod qmp;
mod stream;
mod wire;

pub use agent::Agent;
pub use launcher::{
    Blocking, DEFAULT_ARGS, DEFAULT_PROGRAM, DEFAULT_STDERR_TAIL, Qemu, QemuBuilder, QmpSocket,
};
pub use qmp::{Qmp, UnixAcceptor, WithTimeout};
pub use qmp_os::{CloseCause, Error, LaunchError, Options, TrafficHook};
pub use stream::{Polled, Socket, Stream};

/// The engine, re-exported. Typed commands: the `qmp-qapi` crate has
/// every one; [`qmp_core::commands`] the few the engine uses itself.
pub use qmp_core;
pub use qmp_core::serde_json;
pub use qmp_core::{
    CloseReason, Command, Config, Direction, ErrorClass, Event, EventQueue, ExecuteError, Greeting,
    Request, RequestError, RequestId, SessionState, Stats, SubmitError, Traffic, Version, commands,
};
