//! The live-schema check ([`Options::check_schema`](crate::Options::check_schema)):
//! requests are checked against the connected server's own
//! `query-qmp-schema` before they are sent. The adapters fetch the schema
//! once, when the first request is made, and ask this type; the checking
//! itself is `qmp_core::introspect`'s.

use log::info;
use qmp_core::Request;
use qmp_core::introspect::SchemaIndex;
use qmp_core::serde_json::Value;

use crate::error::Error;

/// The command that fetches the schema.
pub const SCHEMA_COMMAND: &str = "query-qmp-schema";

/// Where one connection's schema check stands.
#[derive(Debug)]
pub struct SchemaCheck {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Switched off, or the server has no schema to give.
    Off,
    /// On, and the schema not fetched yet.
    Unfetched,
    /// On, with the server's schema.
    Ready(Box<SchemaIndex>),
}

impl SchemaCheck {
    /// A check that is `on` or not.
    pub fn new(on: bool) -> Self {
        let state = if on { State::Unfetched } else { State::Off };
        SchemaCheck { state }
    }

    /// Whether the schema must be fetched before a request to `command`
    /// is checked (never for the fetch itself).
    pub fn needs_schema(&self, command: &str) -> bool {
        matches!(self.state, State::Unfetched) && command != SCHEMA_COMMAND
    }

    /// Takes the reply to [`SCHEMA_COMMAND`]. A server that refuses the
    /// command, or whose schema is unreadable, leaves nothing to check
    /// against: the check is then off (and says so in the log) rather
    /// than refusing every request.
    pub fn set_schema(&mut self, reply: Result<Value, Error>) -> Result<(), Error> {
        let schema = match reply {
            Ok(schema) => schema,
            Err(Error::Server(e)) => {
                info!("no schema check: {SCHEMA_COMMAND} failed: {e}");
                self.state = State::Off;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.state = match SchemaIndex::from_value(&schema) {
            Ok(index) => State::Ready(Box::new(index)),
            Err(e) => {
                info!("no schema check: {e}");
                State::Off
            }
        };
        Ok(())
    }

    /// Checks `request` against the schema, when there is one.
    pub fn check(&self, request: &Request) -> Result<(), Error> {
        match &self.state {
            State::Ready(index) => index
                .check(request.name(), request.arguments_value().as_ref())
                .map_err(Error::Schema),
            _ => Ok(()),
        }
    }

    /// Checks a whole request object (`execute` or `exec-oob`, and
    /// `arguments`), when there is a schema.
    pub fn check_raw(&self, message: &Value) -> Result<(), Error> {
        let State::Ready(index) = &self.state else {
            return Ok(());
        };
        match raw_command_name(message) {
            Some(name) => index
                .check(name, message.get("arguments"))
                .map_err(Error::Schema),
            // Not a request: the engine refuses it with its own error.
            None => Ok(()),
        }
    }
}

/// The command a whole request object names (its `execute` or
/// `exec-oob` member), if it names one.
pub fn raw_command_name(message: &Value) -> Option<&str> {
    message
        .get("execute")
        .or_else(|| message.get("exec-oob"))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_core::introspect::CheckError;
    use qmp_core::serde_json::json;

    fn schema() -> Value {
        json!([
            {"name": "query-status", "meta-type": "command", "arg-type": "0", "ret-type": "0"},
            {"name": "getfd", "meta-type": "command", "arg-type": "1", "ret-type": "0"},
            {"name": "0", "meta-type": "object", "members": []},
            {"name": "1", "meta-type": "object", "members": [{"name": "fdname", "type": "str"}]},
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
        ])
    }

    #[test]
    fn checks_only_once_it_has_the_schema() {
        let mut check = SchemaCheck::new(true);
        assert!(check.needs_schema("getfd") && !check.needs_schema(SCHEMA_COMMAND));
        assert!(check.check(&Request::new("nope")).is_ok());
        check.set_schema(Ok(schema())).unwrap();
        assert!(!check.needs_schema("getfd"));
        let err = check.check(&Request::new("query-stauts")).unwrap_err();
        assert!(
            matches!(&err, Error::Schema(CheckError::UnknownCommand { suggestion: Some(s), .. }) if s == "query-status"),
            "{err}"
        );
        assert!(err.to_string().contains("query-status"), "{err}");
        let missing = check.check(&Request::new("getfd")).unwrap_err();
        assert!(missing.to_string().contains("fdname"), "{missing}");
        let raw = json!({"execute": "getfd", "arguments": {"fdnme": "x"}});
        assert!(
            check
                .check_raw(&raw)
                .unwrap_err()
                .to_string()
                .contains("fdname")
        );
        assert!(SchemaCheck::new(false).check(&Request::new("nope")).is_ok());
    }
}
