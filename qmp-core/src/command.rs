//! Typed commands: a name, serializable arguments, a return type.

use alloc::string::ToString;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CodecError;

/// A command with typed arguments (the implementing type's fields) and a
/// typed return value.
///
/// ```
/// use qmp_core::{Command, Request};
/// #[derive(serde::Serialize)]
/// #[serde(rename_all = "kebab-case")]
/// struct HumanMonitorCommand {
///     command_line: String,
/// }
/// impl Command for HumanMonitorCommand {
///     const NAME: &'static str = "human-monitor-command";
///     type Returns = String;
/// }
/// let cmd = HumanMonitorCommand { command_line: "info version".into() };
/// let req = Request::command(&cmd).unwrap();
/// assert_eq!(req.name(), HumanMonitorCommand::NAME);
/// ```
///
/// The `qmp-qapi` crate types every command of QEMU 7.2 through 10.0.
pub trait Command: Serialize {
    /// The command name on the wire.
    const NAME: &'static str;
    /// What a successful reply's `return` member decodes to.
    type Returns: DeserializeOwned;
    /// The server never answers this command (e.g. `guest-shutdown`).
    const NO_REPLY: bool = false;
    /// The server may run this command out of band (`exec-oob`), when the
    /// `oob` capability was negotiated.
    const ALLOW_OOB: bool = false;

    /// Decodes a reply's `return` text into [`Self::Returns`], straight
    /// from the text.
    fn decode_reply(reply: &crate::Reply) -> Result<Self::Returns, CodecError> {
        reply.decode_returns::<Self>()
    }

    /// Decodes a `return` value already decoded as a `Value` into
    /// [`Self::Returns`].
    fn decode(value: Value) -> Result<Self::Returns, CodecError> {
        serde_json::from_value(value).map_err(|e| CodecError {
            command: Self::NAME.to_string(),
            detail: e.to_string(),
        })
    }
}

/// The typed `data` of one event, named by its wire name.
///
/// ```
/// use qmp_core::{Event, EventData};
/// #[derive(serde::Deserialize)]
/// struct Stop {}
/// impl EventData for Stop {
///     const NAME: &'static str = "STOP";
/// }
/// let ev = Event::new("STOP", &serde_json::Value::Null);
/// assert!(ev.decode::<Stop>().is_ok());
/// ```
pub trait EventData: DeserializeOwned {
    /// The event name on the wire, e.g. `BLOCK_JOB_COMPLETED`.
    const NAME: &'static str;
}

/// The return type of commands that return nothing useful (`{}`).
/// Accepts any value, so a server that returns more is not an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Empty {})
    }
}

/// Declares a string-valued enum that keeps unknown values.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$meta])*
        #[non_exhaustive]
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this crate does not know, as sent.
            Other(alloc::string::String),
        }

        impl $name {
            /// The value as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)*
                    $name::Other(s) => s,
                }
            }

            /// The value for a name as sent; never fails.
            pub fn from_wire(s: alloc::string::String) -> Self {
                match s.as_str() {
                    $($wire => $name::$variant,)*
                    _ => $name::Other(s),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                alloc::string::String::deserialize(d).map($name::from_wire)
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use open_enum;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Request;
    use serde_json::json;

    #[test]
    fn empty_accepts_anything() {
        for v in [json!({}), json!(null), json!({"new": [1]})] {
            assert_eq!(serde_json::from_value::<Empty>(v).unwrap(), Empty {});
        }
    }

    #[test]
    fn unit_commands_send_no_arguments() {
        let mut out = alloc::vec::Vec::new();
        #[derive(serde::Serialize)]
        struct Stop;
        impl Command for Stop {
            const NAME: &'static str = "stop";
            type Returns = Empty;
        }
        Request::command(&Stop).unwrap().encode(Some(1), &mut out);
        assert_eq!(out, br#"{"execute":"stop","id":1}"#);
    }
}
