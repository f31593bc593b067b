//! The guest agent (qemu-ga) commands the engine itself knows: the resync
//! pair and which commands are never answered. Every other command is
//! typed in the `qmp-qapi` crate.

use serde::Serialize;

use crate::Command;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resync_command_echoes_its_id() {
        let mut out = alloc::vec::Vec::new();
        crate::Request::command(&GuestSyncDelimited { id: 7 })
            .unwrap()
            .encode(None, &mut out);
        assert_eq!(
            out,
            br#"{"execute":"guest-sync-delimited","arguments":{"id":7}}"#
        );
        assert!(never_replies("guest-shutdown") && !never_replies("guest-ping"));
    }
}
