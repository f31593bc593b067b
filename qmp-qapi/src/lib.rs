#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

#[macro_use]
mod macros;
#[doc(hidden)]
pub mod support;

#[allow(clippy::large_enum_variant, clippy::doc_markdown)]
pub mod qga;
#[allow(clippy::large_enum_variant, clippy::doc_markdown)]
pub mod qmp;

use qmp_core::Command;

/// Which QEMU versions have a command or event, and since which version
/// QEMU's schema says it exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Availability {
    /// QEMU 7.2 has it.
    pub qemu_7_2: bool,
    /// QEMU 10.0 has it.
    pub qemu_10_0: bool,
    /// The "Since:" version of its schema documentation, when given.
    pub since: Option<&'static str>,
}

impl Availability {
    /// Availability from its parts.
    pub const fn new(qemu_7_2: bool, qemu_10_0: bool, since: Option<&'static str>) -> Self {
        Availability {
            qemu_7_2,
            qemu_10_0,
            since,
        }
    }
}

/// What the schema says about a command, as data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// The wire name.
    pub name: &'static str,
    /// It may run out of band.
    pub allow_oob: bool,
    /// The server never answers it.
    pub no_reply: bool,
    /// It has a required argument (otherwise its type is `Default`).
    pub needs_arguments: bool,
    /// Which versions have it.
    pub availability: Availability,
}

/// What the schema says about an event, as data, and a check that an
/// event's data decodes as its type.
#[derive(Clone, Copy, Debug)]
pub struct EventSpec {
    /// The wire name.
    pub name: &'static str,
    /// Which versions have it.
    pub availability: Availability,
    /// Decodes an event of this name into its type, reporting only whether
    /// that worked.
    pub check: fn(&qmp_core::Event) -> Result<(), qmp_core::EventDecodeError>,
}

/// Receives commands one type at a time (see
/// [`qmp::visit_commands_without_arguments`]).
pub trait CommandVisitor {
    /// Called once per command type.
    fn visit<C: Command + Default + 'static>(&mut self, info: &'static CommandSpec);
}
