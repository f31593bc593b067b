//! Typed definitions of common commands. Every return type ignores
//! members it does not know, so a newer QEMU never breaks decoding; for
//! anything not here, the untyped `serde_json::Value` path always works.

pub mod qga;
pub mod qmp;
