//! QEMU Machine Protocol commands.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Command;
use crate::command::{Empty, open_enum, unit_command};

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

/// What `query-version` returns.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct VersionInfo {
    /// The QEMU version.
    pub qemu: crate::Version,
    /// The package string.
    #[serde(default)]
    pub package: String,
}

unit_command!(
    /// `query-version`: the QEMU version.
    QueryVersion = "query-version" -> VersionInfo
);

open_enum!(
    /// A VM run state, as `query-status` and the `STOP`/`RESUME` family report it.
    RunState {
        /// `debug`
        Debug = "debug",
        /// `inmigrate`
        InMigrate = "inmigrate",
        /// `internal-error`
        InternalError = "internal-error",
        /// `io-error`
        IoError = "io-error",
        /// `paused`
        Paused = "paused",
        /// `postmigrate`
        PostMigrate = "postmigrate",
        /// `prelaunch`: not started yet (`-S`).
        Prelaunch = "prelaunch",
        /// `finish-migrate`
        FinishMigrate = "finish-migrate",
        /// `restore-vm`
        RestoreVm = "restore-vm",
        /// `running`
        Running = "running",
        /// `save-vm`
        SaveVm = "save-vm",
        /// `shutdown`
        Shutdown = "shutdown",
        /// `suspended`
        Suspended = "suspended",
        /// `watchdog`
        Watchdog = "watchdog",
        /// `guest-panicked`
        GuestPanicked = "guest-panicked",
        /// `colo`
        Colo = "colo",
    }
);

/// What `query-status` returns.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct StatusInfo {
    /// Whether the guest's CPUs run.
    pub running: bool,
    /// The run state.
    pub status: RunState,
    /// Whether single-stepping is on (absent in newer QEMU).
    #[serde(default)]
    pub singlestep: Option<bool>,
}

unit_command!(
    /// `query-status`: the VM's run state.
    QueryStatus = "query-status" -> StatusInfo
);

/// One entry of `query-commands`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CommandInfo {
    /// The command name.
    pub name: String,
}

unit_command!(
    /// `query-commands`: every command the server accepts.
    QueryCommands = "query-commands" -> Vec<CommandInfo>
);

/// One entry of `query-qmp-schema`: its name, meta-type and the
/// meta-type's own members, kept as JSON.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SchemaInfo {
    /// The entity's (often masked) name.
    pub name: String,
    /// `builtin`, `enum`, `array`, `object`, `alternate`, `command` or `event`.
    #[serde(rename = "meta-type")]
    pub meta_type: String,
    /// The other members (`members`, `arg-type`, `ret-type`, ...).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

unit_command!(
    /// `query-qmp-schema`: the server's whole schema, typed by entry.
    QueryQmpSchema = "query-qmp-schema" -> Vec<SchemaInfo>
);

/// `query-qmp-schema` as raw JSON, when only a few parts are needed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueryQmpSchemaRaw;

impl Command for QueryQmpSchemaRaw {
    const NAME: &'static str = "query-qmp-schema";
    type Returns = Value;
}

unit_command!(
    /// `stop`: pause the guest's CPUs (emits `STOP`).
    Stop = "stop" -> Empty
);
unit_command!(
    /// `cont`: resume the guest's CPUs (emits `RESUME`).
    Cont = "cont" -> Empty
);
unit_command!(
    /// `system_reset`: reset the machine.
    SystemReset = "system_reset" -> Empty
);
unit_command!(
    /// `system_powerdown`: ask the guest to power down (ACPI).
    SystemPowerdown = "system_powerdown" -> Empty
);
unit_command!(
    /// `quit`: end QEMU. The engine counts the connection closing before
    /// the reply arrives as success.
    Quit = "quit" -> Empty
);

/// `human-monitor-command`: run an HMP command line, return its output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HumanMonitorCommand {
    /// The HMP command line, e.g. `info registers`.
    pub command_line: String,
    /// The CPU to run it on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_index: Option<i64>,
}

impl HumanMonitorCommand {
    /// Runs `line` on the default CPU.
    pub fn new(line: impl Into<String>) -> Self {
        HumanMonitorCommand {
            command_line: line.into(),
            cpu_index: None,
        }
    }
}

impl Command for HumanMonitorCommand {
    const NAME: &'static str = "human-monitor-command";
    type Returns = String;
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

/// `remove-fd`: remove a descriptor, or a whole set, from the fd sets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RemoveFd {
    /// The set.
    pub fdset_id: i64,
    /// One descriptor in it; all of them when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i64>,
}

impl Command for RemoveFd {
    const NAME: &'static str = "remove-fd";
    type Returns = Empty;
}

/// One descriptor inside an fd set.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FdsetFdInfo {
    /// The descriptor's number inside QEMU.
    pub fd: i64,
    /// The note given to `add-fd`.
    #[serde(default)]
    pub opaque: Option<String>,
}

/// One fd set.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FdsetInfo {
    /// The set's id.
    pub fdset_id: i64,
    /// Its descriptors.
    pub fds: Vec<FdsetFdInfo>,
}

unit_command!(
    /// `query-fdsets`: the fd sets and their descriptors.
    QueryFdsets = "query-fdsets" -> Vec<FdsetInfo>
);

/// What `query-name` returns.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct NameInfo {
    /// The `-name` given to QEMU, if any.
    #[serde(default)]
    pub name: Option<String>,
}

unit_command!(
    /// `query-name`: the VM's name.
    QueryName = "query-name" -> NameInfo
);

/// What `query-kvm` returns.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct KvmInfo {
    /// KVM is in use.
    pub enabled: bool,
    /// KVM is available.
    pub present: bool,
}

unit_command!(
    /// `query-kvm`: whether KVM is present and in use.
    QueryKvm = "query-kvm" -> KvmInfo
);

/// One CPU from `query-cpus-fast`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CpuInfoFast {
    /// The CPU index.
    pub cpu_index: i64,
    /// Its QOM path.
    pub qom_path: String,
    /// The host thread running it.
    pub thread_id: i64,
    /// The target architecture (`target` member), e.g. `x86_64`.
    #[serde(default)]
    pub target: Option<String>,
    /// Topology properties (socket, core, thread ids), as JSON.
    #[serde(default)]
    pub props: Option<Value>,
}

unit_command!(
    /// `query-cpus-fast`: the CPUs, without interrupting them.
    QueryCpusFast = "query-cpus-fast" -> Vec<CpuInfoFast>
);

/// One block device from `query-block`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BlockInfo {
    /// The device (drive) name; may be empty for `-blockdev` devices.
    pub device: String,
    /// The guest device's QOM path or id.
    #[serde(default)]
    pub qdev: Option<String>,
    /// Whether the medium can be removed.
    pub removable: bool,
    /// Whether the medium is locked.
    pub locked: bool,
    /// The inserted medium, as JSON (absent when empty).
    #[serde(default)]
    pub inserted: Option<Value>,
    /// Whether the tray is open (removable devices).
    #[serde(default, rename = "tray_open")]
    pub tray_open: Option<bool>,
    /// The I/O status, when tracked.
    #[serde(default, rename = "io-status")]
    pub io_status: Option<String>,
}

unit_command!(
    /// `query-block`: the block devices.
    QueryBlock = "query-block" -> Vec<BlockInfo>
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn returns_tolerate_new_fields() {
        let s = QueryStatus::decode(json!({"status": "prelaunch", "running": false, "new": 1}))
            .unwrap();
        assert_eq!(s.status, RunState::Prelaunch);
        assert_eq!(s.singlestep, None);
        let s = QueryStatus::decode(json!({"status": "teleporting", "running": true})).unwrap();
        assert_eq!(s.status, RunState::Other("teleporting".into()));
        let v = QueryVersion::decode(
            json!({"qemu": {"major": 7, "minor": 2, "micro": 18}, "package": "x", "extra": {}}),
        )
        .unwrap();
        assert_eq!(v.qemu.minor, 2);
        let e = QueryKvm::decode(json!({"enabled": "yes"})).unwrap_err();
        assert_eq!(e.command, "query-kvm");
    }

    #[test]
    fn arguments_use_wire_names() {
        let v = serde_json::to_value(AddFd {
            fdset_id: Some(3),
            opaque: None,
        })
        .unwrap();
        assert_eq!(v, json!({"fdset-id": 3}));
        let v = serde_json::to_value(HumanMonitorCommand::new("info cpus")).unwrap();
        assert_eq!(v, json!({"command-line": "info cpus"}));
    }
}
