//! Guest agent (qemu-ga) commands.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::Command;
use crate::command::{Empty, open_enum, unit_command};

/// Whether the agent never answers the named command: it shuts down or
/// suspends the guest before it could.
pub(crate) fn never_replies(name: &str) -> bool {
    matches!(
        name,
        "guest-shutdown" | "guest-suspend-disk" | "guest-suspend-ram" | "guest-suspend-hybrid"
    )
}

/// `guest-sync`: echo `id` back (the engine's resync uses the delimited form).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GuestSync {
    /// The value to echo.
    pub id: i64,
}

impl Command for GuestSync {
    const NAME: &'static str = "guest-sync";
    type Returns = i64;
}

/// `guest-sync-delimited`: like `guest-sync`, with a 0xFF byte before the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GuestSyncDelimited {
    /// The value to echo.
    pub id: i64,
}

impl Command for GuestSyncDelimited {
    const NAME: &'static str = "guest-sync-delimited";
    type Returns = i64;
}

unit_command!(
    /// `guest-ping`: is the agent alive?
    GuestPing = "guest-ping" -> Empty
);

/// One command the agent knows.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestAgentCommandInfo {
    /// Its name.
    pub name: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Whether it answers on success.
    #[serde(default = "yes")]
    pub success_response: bool,
}

fn yes() -> bool {
    true
}

/// What `guest-info` returns.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestAgentInfo {
    /// The agent's version.
    pub version: String,
    /// The commands it knows (sent as `supported_commands`, unlike the
    /// kebab-case of everything else).
    #[serde(rename = "supported_commands")]
    pub supported_commands: Vec<GuestAgentCommandInfo>,
}

unit_command!(
    /// `guest-info`: the agent's version and commands.
    GuestInfo = "guest-info" -> GuestAgentInfo
);

/// What `guest-get-osinfo` returns; every member is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestOsInfo {
    /// Kernel release (`uname -r`).
    #[serde(default)]
    pub kernel_release: Option<String>,
    /// Kernel version (`uname -v`).
    #[serde(default)]
    pub kernel_version: Option<String>,
    /// Machine (`uname -m`).
    #[serde(default)]
    pub machine: Option<String>,
    /// OS id, e.g. `debian`.
    #[serde(default)]
    pub id: Option<String>,
    /// OS name.
    #[serde(default)]
    pub name: Option<String>,
    /// Pretty OS name.
    #[serde(default)]
    pub pretty_name: Option<String>,
    /// OS version.
    #[serde(default)]
    pub version: Option<String>,
    /// OS version id.
    #[serde(default)]
    pub version_id: Option<String>,
    /// Variant.
    #[serde(default)]
    pub variant: Option<String>,
    /// Variant id.
    #[serde(default)]
    pub variant_id: Option<String>,
}

unit_command!(
    /// `guest-get-osinfo`: the guest operating system.
    GuestGetOsinfo = "guest-get-osinfo" -> GuestOsInfo
);
unit_command!(
    /// `guest-get-time`: the guest's clock, in nanoseconds since the epoch.
    GuestGetTime = "guest-get-time" -> i64
);

/// What `guest-get-host-name` returns.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestHostName {
    /// The guest's host name.
    pub host_name: String,
}

unit_command!(
    /// `guest-get-host-name`: the guest's host name.
    GuestGetHostName = "guest-get-host-name" -> GuestHostName
);

/// `guest-exec`: start a program in the guest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestExec {
    /// The program.
    pub path: String,
    /// Its arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arg: Option<Vec<String>>,
    /// Its environment, as `NAME=value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Standard input, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_data: Option<String>,
    /// Capture standard output and error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_output: Option<bool>,
}

/// What `guest-exec` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct GuestExecInfo {
    /// The process id in the guest.
    pub pid: i64,
}

impl Command for GuestExec {
    const NAME: &'static str = "guest-exec";
    type Returns = GuestExecInfo;
}

/// `guest-exec-status`: the state of a process started by `guest-exec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GuestExecStatus {
    /// The process id.
    pub pid: i64,
}

/// What `guest-exec-status` returns.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestExecStatusInfo {
    /// Whether it has ended.
    pub exited: bool,
    /// Its exit code, once ended normally.
    #[serde(default)]
    pub exitcode: Option<i64>,
    /// The signal that ended it.
    #[serde(default)]
    pub signal: Option<i64>,
    /// Captured standard output, base64.
    #[serde(default)]
    pub out_data: Option<String>,
    /// Captured standard error, base64.
    #[serde(default)]
    pub err_data: Option<String>,
    /// Output was cut short.
    #[serde(default)]
    pub out_truncated: Option<bool>,
    /// Error output was cut short.
    #[serde(default)]
    pub err_truncated: Option<bool>,
}

impl Command for GuestExecStatus {
    const NAME: &'static str = "guest-exec-status";
    type Returns = GuestExecStatusInfo;
}

/// `guest-file-open`: open a file in the guest; returns a handle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GuestFileOpen {
    /// The path.
    pub path: String,
    /// An `fopen` mode such as `r` or `w+`; `r` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl Command for GuestFileOpen {
    const NAME: &'static str = "guest-file-open";
    type Returns = i64;
}

/// `guest-file-read`: read from an open file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GuestFileRead {
    /// The handle.
    pub handle: i64,
    /// Bytes to read at most (the agent's default is 4 KiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

/// What `guest-file-read` returns.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestFileReadResult {
    /// Bytes read.
    pub count: i64,
    /// The bytes, base64.
    pub buf_b64: String,
    /// End of file reached.
    pub eof: bool,
}

impl Command for GuestFileRead {
    const NAME: &'static str = "guest-file-read";
    type Returns = GuestFileReadResult;
}

/// `guest-file-write`: write to an open file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestFileWrite {
    /// The handle.
    pub handle: i64,
    /// The bytes, base64.
    pub buf_b64: String,
    /// How many of the decoded bytes to write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

/// What `guest-file-write` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct GuestFileWriteResult {
    /// Bytes written.
    pub count: i64,
    /// End of file reached.
    pub eof: bool,
}

impl Command for GuestFileWrite {
    const NAME: &'static str = "guest-file-write";
    type Returns = GuestFileWriteResult;
}

/// `guest-file-close`: close an open file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GuestFileClose {
    /// The handle.
    pub handle: i64,
}

impl Command for GuestFileClose {
    const NAME: &'static str = "guest-file-close";
    type Returns = Empty;
}

/// `guest-shutdown`: power down, halt or reboot the guest. Never answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GuestShutdown {
    /// `powerdown` (default), `halt` or `reboot`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl Command for GuestShutdown {
    const NAME: &'static str = "guest-shutdown";
    type Returns = Empty;
    const NO_REPLY: bool = true;
}

open_enum!(
    /// The guest's file system freeze state.
    FsfreezeStatus {
        /// `thawed`
        Thawed = "thawed",
        /// `frozen`
        Frozen = "frozen",
    }
);

unit_command!(
    /// `guest-fsfreeze-status`: whether the guest's file systems are frozen.
    GuestFsfreezeStatus = "guest-fsfreeze-status" -> FsfreezeStatus
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_agent_replies() {
        // As qemu-ga 7.2 sends it.
        let info = GuestInfo::decode(json!({"version": "7.2.22", "supported_commands": [
            {"enabled": true, "name": "guest-ping", "success-response": true}
        ]}));
        assert_eq!(info.unwrap().supported_commands[0].name, "guest-ping");
        let st =
            GuestExecStatus::decode(json!({"exited": true, "exitcode": 0, "out-data": "aGkK"}))
                .unwrap();
        assert_eq!(st.out_data.as_deref(), Some("aGkK"));
        assert_eq!(
            GuestFsfreezeStatus::decode(json!("thawed")).unwrap(),
            FsfreezeStatus::Thawed
        );
    }
}
