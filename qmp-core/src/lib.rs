#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod command;
pub mod commands;
mod config;
mod deque;
#[cfg(feature = "embedded-io")]
pub mod driver;
mod error;
mod event;
mod framing;
mod greeting;
pub mod introspect;
mod message;
mod request;
mod session;
mod time;

pub use command::{Command, Empty, EventData};
pub use config::{Config, Dialect};
pub use error::{
    CloseReason, CodecError, ErrorClass, ExecuteError, GreetingError, RequestError, SubmitError,
};
pub use event::{Event, EventDecodeError, EventQueue, Timestamp};
pub use greeting::{Capability, Greeting, Version};
pub use request::{Request, RequestId};
pub use session::{Client, Output, Runstate, Stats, Transmit};
pub use time::Instant;

/// `serde_json`, re-exported so callers use the same version.
pub use serde_json;
