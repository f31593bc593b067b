#![doc = include_str!("../README.md")]
// `deny`, not `forbid`: the launcher allows it on one function (the
// parent-death signal between fork and exec, `launch::spawner`).
#![deny(unsafe_code)]
#![deny(missing_docs)]
// A std-only crate: `core` paths would add nothing but noise here.
#![allow(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

mod clock;
mod conn;
mod connect;
mod error;
mod fds;
pub mod launch;
mod options;
mod schema;

pub use clock::{StdClock, deadline_after, seed};
pub use conn::{Conn, reply_returns, reply_value};
pub use connect::{ConnectAttempts, connect_unix_nonblocking};
pub use error::{CloseCause, Error, LaunchError};
pub use fds::{MAX_FDS, send, send_with_fds};
pub use options::{Options, TrafficHook};
pub use schema::{SCHEMA_COMMAND, SchemaCheck, raw_command_name};
