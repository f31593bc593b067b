#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod command;
pub mod commands;
mod config;
#[cfg(feature = "embedded-io")]
#[cfg_attr(docsrs, doc(cfg(feature = "embedded-io")))]
pub mod driver;
mod error;
mod event;
mod framing;
mod greeting;
pub mod introspect;
mod message;
mod plain;
mod reply;
mod request;
mod session;
mod table;
mod time;
mod transmit;

pub use command::{Command, Empty, EventData};
pub use config::{Config, Dialect};
pub use error::{
    CloseReason, CodecError, ErrorClass, ExecuteError, GreetingError, RequestError, SubmitError,
};
pub use event::{Event, EventDecodeError, EventQueue, Timestamp};
pub use greeting::{Capability, Greeting, Version};
pub use reply::Reply;
pub use request::{Request, RequestId};
pub use session::{Client, Direction, Output, SessionState, Stats, Traffic};
pub use time::Instant;
pub use transmit::Transmit;

/// `serde_json`, re-exported so callers use the same version.
pub use serde_json;
