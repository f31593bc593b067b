//! Functions the generated code calls; not part of the API.

use alloc::string::String;
use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The members of a branch's data, as an object.
pub fn members_of<T: Serialize>(data: &T) -> Result<Map<String, Value>, serde_json::Error> {
    match serde_json::to_value(data)? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(<serde_json::Error as serde::ser::Error>::custom(
            alloc::format!("a union branch must be an object, not {other}"),
        )),
    }
}

/// Writes a union branch: the discriminator (unless it was absent, an
/// empty tag), then the branch's members.
pub fn serialize_branch<S: Serializer>(
    s: S,
    discriminator: &str,
    tag: &str,
    members: &Map<String, Value>,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(members.len() + 1))?;
    if !tag.is_empty() {
        map.serialize_entry(discriminator, tag)?;
    }
    for (k, v) in members {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// Reads a union branch: the discriminator's value and the other members.
pub fn split_branch<'de, D: Deserializer<'de>>(
    d: D,
    discriminator: &'static str,
) -> Result<(String, Map<String, Value>), D::Error> {
    let mut members = Map::<String, Value>::deserialize(d)?;
    match members.remove(discriminator) {
        Some(Value::String(tag)) => Ok((tag, members)),
        Some(other) => Err(D::Error::custom(alloc::format!(
            "`{discriminator}` must be a string, not {other}"
        ))),
        // An older QEMU that sent this as a plain object, before it became
        // a union: no branch, the members kept in `Other`.
        None => Ok((String::new(), members)),
    }
}

/// Decodes a branch's members as its type.
pub fn branch<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    members: Map<String, Value>,
) -> Result<T, E> {
    serde_json::from_value(Value::Object(members)).map_err(E::custom)
}

/// Turns a serde_json error into another serializer's error.
pub fn ser_error<E: serde::ser::Error>(e: serde_json::Error) -> E {
    E::custom(e)
}

/// Decodes `event` as `T`, keeping only whether it worked.
pub fn check_event<T: qmp_core::EventData>(
    event: &qmp_core::Event,
) -> Result<(), qmp_core::EventDecodeError> {
    event.decode::<T>().map(|_| ())
}
