//! The shapes the generated code repeats, written once.

/// A string enum that keeps values it does not know in `Other`.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value not known here, as sent.
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
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = alloc::string::String::deserialize(d)?;
                Ok(match s.as_str() {
                    $($wire => $name::$variant,)*
                    _ => $name::Other(s),
                })
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// The branches of a flat union, chosen by the discriminator's value; an
/// unknown value keeps the members that came with it in `Other`.
macro_rules! flat_branches {
    ($(#[$meta:meta])* $name:ident = $disc:literal;
     data { $($(#[$dmeta:meta])* $dv:ident($dt:ty) = $dtag:literal,)* }
     unit { $($(#[$umeta:meta])* $uv:ident = $utag:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$dmeta])* $dv($dt),)*
            $($(#[$umeta])* $uv,)*
            /// A discriminator value not known here.
            Other {
                /// The discriminator's value, as sent.
                tag: alloc::string::String,
                /// The members that came with it.
                members: serde_json::Map<alloc::string::String, serde_json::Value>,
            },
        }

        impl $name {
            /// The discriminator's value.
            pub fn tag(&self) -> &str {
                match self {
                    $($name::$dv(_) => $dtag,)*
                    $($name::$uv => $utag,)*
                    $name::Other { tag, .. } => tag,
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let members = match self {
                    $($name::$dv(d) => $crate::support::members_of(d)
                        .map_err($crate::support::ser_error::<S::Error>)?,)*
                    $($name::$uv => serde_json::Map::new(),)*
                    $name::Other { members, .. } => members.clone(),
                };
                $crate::support::serialize_branch(s, $disc, self.tag(), &members)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let (tag, members) = $crate::support::split_branch(d, $disc)?;
                Ok(match tag.as_str() {
                    $($dtag => $name::$dv($crate::support::branch(members)?),)*
                    $($utag => $name::$uv,)*
                    _ => $name::Other { tag, members },
                })
            }
        }
    };
}

/// A command's `Command` impl and its availability.
macro_rules! command {
    ($name:ident = $wire:literal -> $ret:ty; oob: $oob:literal, no_reply: $nr:literal, $avail:expr) => {
        impl qmp_core::Command for $name {
            const NAME: &'static str = $wire;
            type Returns = $ret;
            const NO_REPLY: bool = $nr;
            const ALLOW_OOB: bool = $oob;
        }

        impl $name {
            /// Which QEMU versions have this command, and since when.
            pub const AVAILABILITY: $crate::Availability = $avail;
        }
    };
}

/// An event's `EventData` impl and its availability.
macro_rules! event {
    ($name:ident = $wire:literal, $avail:expr) => {
        impl qmp_core::EventData for $name {
            const NAME: &'static str = $wire;
        }

        impl $name {
            /// Which QEMU versions have this event, and since when.
            pub const AVAILABILITY: $crate::Availability = $avail;
        }
    };
}
