//! The server's first message: version and capabilities.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use serde_json::Value;

use crate::error::GreetingError;

/// A QEMU version triple, as the greeting and `query-version` report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Micro (patch) version.
    pub micro: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

crate::command::open_enum!(
    /// A capability the server offers; the set is open.
    Capability {
        /// Out-of-band command execution (`exec-oob`).
        Oob = "oob",
    }
);

/// The server's greeting: `{"QMP": {"version": ..., "capabilities": [...]}}`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// The QEMU version.
    pub version: Version,
    /// The package string (a distribution's build tag; often empty).
    pub package: String,
    /// Every capability offered, known or not, in the server's order.
    pub capabilities: Vec<Capability>,
}

impl Greeting {
    /// Whether the server offers `cap`.
    pub fn offers(&self, cap: &Capability) -> bool {
        self.capabilities.contains(cap)
    }

    /// Reads the body of the `QMP` member.
    pub(crate) fn from_value(body: &Value) -> Result<Self, GreetingError> {
        let invalid = |field| GreetingError::Invalid { field };
        let version = body.get("version").ok_or(invalid("QMP.version"))?;
        let qemu = version.get("qemu").ok_or(invalid("QMP.version.qemu"))?;
        let part = |name, field| {
            qemu.get(name)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or(invalid(field))
        };
        let version_triple = Version {
            major: part("major", "QMP.version.qemu.major")?,
            minor: part("minor", "QMP.version.qemu.minor")?,
            micro: part("micro", "QMP.version.qemu.micro")?,
        };
        let package = match version.get("package") {
            None => String::new(),
            Some(Value::String(s)) => s.to_string(),
            Some(_) => return Err(invalid("QMP.version.package")),
        };
        let capabilities = match body.get("capabilities") {
            None => Vec::new(),
            Some(Value::Array(caps)) => caps
                .iter()
                .map(|c| match c.as_str() {
                    Some(name) => Ok(Capability::from_wire(name.to_string())),
                    None => Err(invalid("QMP.capabilities")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("QMP.capabilities")),
        };
        Ok(Greeting {
            version: version_triple,
            package,
            capabilities,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_unknown_capabilities_and_ignores_extra_fields() {
        let g = Greeting::from_value(&json!({
            "version": {"qemu": {"micro": 1, "minor": 2, "major": 7}, "package": "Debian", "x": 1},
            "capabilities": ["oob", "frobnicate"],
            "extra": true
        }))
        .unwrap();
        assert_eq!(g.version.to_string(), "7.2.1");
        assert_eq!(g.package, "Debian");
        assert!(g.offers(&Capability::Oob));
        assert_eq!(g.capabilities[1], Capability::Other("frobnicate".into()));
    }

    #[test]
    fn names_the_bad_field() {
        let e = Greeting::from_value(&json!({"version": {"qemu": {"major": "7"}}})).unwrap_err();
        assert_eq!(
            e,
            GreetingError::Invalid {
                field: "QMP.version.qemu.major"
            }
        );
    }
}
