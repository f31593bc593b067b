//! The QEMU Machine Protocol commands the engine and the adapters use
//! themselves: negotiation and descriptor passing. Every other command is
//! typed in the `qmp-qapi` crate.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::Command;
use crate::command::Empty;

/// `qmp_capabilities`: leave capability negotiation mode. The engine sends
/// this itself unless negotiation is switched off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QmpCapabilities {
    /// Capabilities to enable, e.g. `["oob"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable: Option<Vec<String>>,
}

impl Command for QmpCapabilities {
    const NAME: &'static str = "qmp_capabilities";
    type Returns = Empty;
}

/// `getfd`: take the file descriptor sent with this command under a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Getfd {
    /// The name to give it.
    pub fdname: String,
}

impl Command for Getfd {
    const NAME: &'static str = "getfd";
    type Returns = Empty;
}

/// `closefd`: close a descriptor received with `getfd`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Closefd {
    /// Its name.
    pub fdname: String,
}

impl Command for Closefd {
    const NAME: &'static str = "closefd";
    type Returns = Empty;
}

/// `add-fd`: add the descriptor sent with this command to an fd set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AddFd {
    /// The set to add to; a new set when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fdset_id: Option<i64>,
    /// A free-form note stored with the descriptor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
}

/// What `add-fd` returns.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AddfdInfo {
    /// The set the descriptor went into.
    pub fdset_id: i64,
    /// The descriptor's number inside QEMU.
    pub fd: i64,
}

impl Command for AddFd {
    const NAME: &'static str = "add-fd";
    type Returns = AddfdInfo;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_use_wire_names() {
        let v = serde_json::to_value(AddFd {
            fdset_id: Some(3),
            opaque: None,
        })
        .unwrap();
        assert_eq!(v, json!({"fdset-id": 3}));
        let info = AddFd::decode(json!({"fdset-id": 1, "fd": 9, "new": 0})).unwrap();
        assert_eq!((info.fdset_id, info.fd), (1, 9));
    }
}
