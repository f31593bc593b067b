//! The few typed commands the engine and the adapters use themselves
//! (negotiation, the guest agent resync, descriptor passing). Every QMP
//! and guest agent command of QEMU 7.2 through 10.0 is typed in the
//! `qmp-qapi` crate; the untyped `serde_json::Value` path always works.

pub mod qga;
pub mod qmp;
