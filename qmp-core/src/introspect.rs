//! Checking requests against the connected server's own schema, as
//! `query-qmp-schema` describes it, before they are sent.
//!
//! [`SchemaIndex`] is built once from that command's reply. It answers
//! whether a command exists, whether its arguments name only members the
//! server knows and include every required one (following flat unions to
//! the branch their discriminator picks), and what a `help` screen needs:
//! the argument tree with types, enum values and union branches. Pure
//! data, no I/O: an adapter or a shell fetches the schema and asks.
//!
//! ```
//! use qmp_core::introspect::{CheckError, SchemaIndex};
//! use serde_json::json;
//! let schema = json!([
//!     {"name": "query-status", "meta-type": "command", "arg-type": "0", "ret-type": "0"},
//!     {"name": "0", "meta-type": "object", "members": []},
//! ]);
//! let index = SchemaIndex::from_value(&schema).unwrap();
//! assert!(index.check("query-status", None).is_ok());
//! let err = index.check("query-stauts", None).unwrap_err();
//! assert!(matches!(err, CheckError::UnknownCommand { ref suggestion, .. }
//!     if suggestion.as_deref() == Some("query-status")));
//! ```

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use serde::Deserialize;
use serde_json::{Map, Value};

/// One entry of `query-qmp-schema`: its name, meta-type and the
/// meta-type's own members, kept as JSON (for a shell's completion, or
/// anything that walks the schema itself).
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

/// The server's schema, indexed by name.
#[derive(Clone, Debug, Default)]
pub struct SchemaIndex {
    commands: BTreeMap<String, CommandEntry>,
    events: BTreeMap<String, String>,
    types: BTreeMap<String, Meta>,
}

#[derive(Clone, Debug)]
struct CommandEntry {
    arg_type: String,
    ret_type: String,
    allow_oob: bool,
}

#[derive(Clone, Debug)]
struct MemberInfo {
    name: String,
    ty: String,
    optional: bool,
}

#[derive(Clone, Debug)]
enum Meta {
    Builtin(String),
    Enum(Vec<String>),
    Array(String),
    Object {
        members: Vec<MemberInfo>,
        tag: Option<String>,
        variants: Vec<(String, String)>,
    },
    Alternate(Vec<String>),
}

/// The schema reply could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError {
    /// What was wrong, and where.
    pub detail: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unreadable query-qmp-schema reply: {}", self.detail)
    }
}

impl core::error::Error for SchemaError {}

/// Why a request does not fit the server's schema.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckError {
    /// The server has no such command.
    UnknownCommand {
        /// The name asked for.
        name: String,
        /// The server's closest command name, if one is close.
        suggestion: Option<String>,
    },
    /// An argument the command does not take.
    UnknownArgument {
        /// The command.
        command: String,
        /// The argument, dotted for nested members (`file.filename`).
        path: String,
        /// The closest member name there, if one is close.
        suggestion: Option<String>,
    },
    /// A required argument is missing.
    MissingArgument {
        /// The command.
        command: String,
        /// The argument, dotted for nested members.
        path: String,
    },
    /// Where an object is expected, something else was given.
    NotAnObject {
        /// The command.
        command: String,
        /// Where (empty for the arguments themselves).
        path: String,
    },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = |s: &Option<String>| match s {
            Some(s) => format!(" (did you mean `{s}`?)"),
            None => String::new(),
        };
        match self {
            CheckError::UnknownCommand { name, suggestion } => {
                write!(f, "the server has no command `{name}`{}", hint(suggestion))
            }
            CheckError::UnknownArgument {
                command,
                path,
                suggestion,
            } => write!(
                f,
                "`{command}` takes no argument `{path}`{}",
                hint(suggestion)
            ),
            CheckError::MissingArgument { command, path } => {
                write!(f, "`{command}` needs the argument `{path}`")
            }
            CheckError::NotAnObject { command, path } if path.is_empty() => {
                write!(f, "the arguments of `{command}` must be a JSON object")
            }
            CheckError::NotAnObject { command, path } => {
                write!(f, "`{path}` of `{command}` must be a JSON object")
            }
        }
    }
}

impl core::error::Error for CheckError {}

fn text(v: &Value, key: &str) -> Result<String, SchemaError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| SchemaError {
            detail: format!("an entry without a string `{key}`: {v}"),
        })
}

fn members(v: &Value) -> Result<Vec<MemberInfo>, SchemaError> {
    let list = v.get("members").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .map(|m| {
            Ok(MemberInfo {
                name: text(m, "name")?,
                ty: text(m, "type")?,
                optional: m.get("default").is_some(),
            })
        })
        .collect()
}

fn members_names(v: &Value) -> Vec<String> {
    let list = v.get("members").and_then(Value::as_array);
    let names = list.into_iter().flatten().filter_map(|m| m.get("name"));
    names
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn meta(v: &Value, kind: &str) -> Result<Option<Meta>, SchemaError> {
    Ok(Some(match kind {
        "builtin" => Meta::Builtin(text(v, "json-type")?),
        "enum" => {
            // `values` lists the names; newer servers also have `members`
            // (objects with a `name`), which is read when `values` is gone.
            let names: Vec<String> = match v.get("values").and_then(Value::as_array) {
                Some(values) => values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                None => members_names(v),
            };
            Meta::Enum(names)
        }
        "array" => Meta::Array(text(v, "element-type")?),
        "object" => {
            let variants = v.get("variants").and_then(Value::as_array);
            let variants = variants.into_iter().flatten();
            Meta::Object {
                members: members(v)?,
                tag: v.get("tag").and_then(Value::as_str).map(str::to_string),
                variants: variants
                    .map(|b| Ok((text(b, "case")?, text(b, "type")?)))
                    .collect::<Result<_, SchemaError>>()?,
            }
        }
        "alternate" => {
            let list = v.get("members").and_then(Value::as_array);
            let list = list.into_iter().flatten();
            Meta::Alternate(list.map(|m| text(m, "type")).collect::<Result<_, _>>()?)
        }
        _ => return Ok(None),
    }))
}

impl SchemaIndex {
    /// Indexes a `query-qmp-schema` reply (the list of SchemaInfo objects).
    /// Meta-types this code does not know are skipped.
    pub fn from_value(schema: &Value) -> Result<Self, SchemaError> {
        let list = schema.as_array().ok_or_else(|| SchemaError {
            detail: "the reply is not a list".to_string(),
        })?;
        let mut index = SchemaIndex::default();
        for entry in list {
            let name = text(entry, "name")?;
            let kind = text(entry, "meta-type")?;
            match kind.as_str() {
                "command" => {
                    let allow_oob = entry.get("allow-oob") == Some(&Value::Bool(true));
                    let cmd = CommandEntry {
                        arg_type: text(entry, "arg-type")?,
                        ret_type: text(entry, "ret-type")?,
                        allow_oob,
                    };
                    index.commands.insert(name, cmd);
                }
                "event" => {
                    index.events.insert(name, text(entry, "arg-type")?);
                }
                _ => {
                    if let Some(m) = meta(entry, &kind)? {
                        index.types.insert(name, m);
                    }
                }
            }
        }
        Ok(index)
    }

    /// The server's command names, sorted.
    pub fn command_names(&self) -> impl Iterator<Item = &str> {
        self.commands.keys().map(String::as_str)
    }

    /// The server's event names, sorted.
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        self.events.keys().map(String::as_str)
    }

    /// Whether the server has `command`.
    pub fn has_command(&self, command: &str) -> bool {
        self.commands.contains_key(command)
    }

    /// Whether the server lets `command` run out of band.
    pub fn allows_oob(&self, command: &str) -> bool {
        self.commands.get(command).is_some_and(|c| c.allow_oob)
    }

    /// Checks a request before it is sent: the command exists, and its
    /// arguments (`None` or `{}` for none) name only members the server
    /// knows and include every required one, in nested objects and in the
    /// flat-union branch their discriminator picks.
    pub fn check(&self, command: &str, arguments: Option<&Value>) -> Result<(), CheckError> {
        let entry = self.commands.get(command).ok_or_else(|| {
            let names = self.commands.keys().map(String::as_str);
            CheckError::UnknownCommand {
                name: command.to_string(),
                suggestion: closest(command, names),
            }
        })?;
        let empty = Value::Object(Map::new());
        let args = match arguments {
            None | Some(Value::Null) => &empty,
            Some(a) => a,
        };
        let mut ctx = Check {
            index: self,
            command,
            depth: 0,
        };
        ctx.value(&entry.arg_type, args, "")
    }

    /// What `help COMMAND` shows: its arguments as a tree, and whether it
    /// may run out of band. `None` when the server has no such command.
    pub fn help(&self, command: &str) -> Option<CommandHelp> {
        let entry = self.commands.get(command)?;
        let mut stack = Vec::new();
        Some(CommandHelp {
            name: command.to_string(),
            arguments: self.type_help(&entry.arg_type, &mut stack),
            returns: self.type_help(&entry.ret_type, &mut stack),
            allow_oob: entry.allow_oob,
        })
    }

    fn members_of(&self, ty: &str, value: &Map<String, Value>) -> Option<Vec<&MemberInfo>> {
        let Some(Meta::Object {
            members,
            tag,
            variants,
        }) = self.types.get(ty)
        else {
            return None;
        };
        let mut all: Vec<&MemberInfo> = members.iter().collect();
        let chosen = tag
            .as_ref()
            .and_then(|t| value.get(t))
            .and_then(Value::as_str);
        if let Some(case) = chosen
            && let Some((_, branch)) = variants.iter().find(|(c, _)| c == case)
            && let Some(Meta::Object { members: more, .. }) = self.types.get(branch)
        {
            all.extend(more.iter());
        }
        Some(all)
    }

    fn type_help(&self, ty: &str, stack: &mut Vec<String>) -> TypeHelp {
        if stack.iter().any(|t| t == ty) {
            return TypeHelp::Recursive;
        }
        stack.push(ty.to_string());
        let help = match self.types.get(ty) {
            None => TypeHelp::Unknown(ty.to_string()),
            Some(Meta::Builtin(json)) => TypeHelp::Builtin(json.clone()),
            Some(Meta::Enum(values)) => TypeHelp::Enum(values.clone()),
            Some(Meta::Array(elem)) => TypeHelp::Array(Box::new(self.type_help(elem, stack))),
            Some(Meta::Alternate(branches)) => {
                TypeHelp::Alternate(branches.iter().map(|b| self.type_help(b, stack)).collect())
            }
            Some(Meta::Object {
                members,
                tag,
                variants,
            }) => TypeHelp::Object {
                members: self.members_help(members, stack),
                tag: tag.clone(),
                branches: variants
                    .iter()
                    .map(|(case, b)| {
                        let more = match self.types.get(b) {
                            Some(Meta::Object { members, .. }) => self.members_help(members, stack),
                            _ => Vec::new(),
                        };
                        (case.clone(), more)
                    })
                    .collect(),
            },
        };
        stack.pop();
        help
    }

    fn members_help(&self, members: &[MemberInfo], stack: &mut Vec<String>) -> Vec<ArgHelp> {
        members
            .iter()
            .map(|m| ArgHelp {
                name: m.name.clone(),
                required: !m.optional,
                ty: self.type_help(&m.ty, stack),
            })
            .collect()
    }
}

/// Commands whose schema lists only some of the arguments they take:
/// `device_add` takes every property of the device as an argument.
const OPEN_ARGUMENTS: &[&str] = &["device_add"];

/// Nesting past this is not checked (the server still is).
const MAX_DEPTH: usize = 32;

struct Check<'a> {
    index: &'a SchemaIndex,
    command: &'a str,
    depth: usize,
}

impl Check<'_> {
    fn value(&mut self, ty: &str, v: &Value, path: &str) -> Result<(), CheckError> {
        if self.depth > MAX_DEPTH {
            return Ok(());
        }
        match (self.index.types.get(ty), v) {
            (Some(Meta::Object { .. }), Value::Object(map)) => self.object(ty, map, path),
            (Some(Meta::Object { .. }), _) => Err(CheckError::NotAnObject {
                command: self.command.to_string(),
                path: path.to_string(),
            }),
            (Some(Meta::Array(elem)), Value::Array(items)) => {
                let elem = elem.clone();
                items.iter().try_for_each(|i| self.value(&elem, i, path))
            }
            (Some(Meta::Alternate(branches)), Value::Object(_)) => {
                // Only an object branch can take an object; check it when
                // there is exactly one.
                let mut objects = branches.iter().filter(|b| {
                    matches!(self.index.types.get(b.as_str()), Some(Meta::Object { .. }))
                });
                match (objects.next(), objects.next()) {
                    (Some(b), None) => self.value(&b.clone(), v, path),
                    _ => Ok(()),
                }
            }
            // Scalars and type mismatches are the server's to judge.
            _ => Ok(()),
        }
    }

    fn object(&mut self, ty: &str, map: &Map<String, Value>, path: &str) -> Result<(), CheckError> {
        let members = self.index.members_of(ty, map).unwrap_or_default();
        let open = path.is_empty() && OPEN_ARGUMENTS.contains(&self.command);
        let join = |name: &str| {
            if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            }
        };
        for key in map.keys() {
            if !open && !members.iter().any(|m| &m.name == key) {
                return Err(CheckError::UnknownArgument {
                    command: self.command.to_string(),
                    path: join(key),
                    suggestion: closest(key, members.iter().map(|m| m.name.as_str())),
                });
            }
        }
        for m in &members {
            match map.get(&m.name) {
                None if !m.optional => {
                    return Err(CheckError::MissingArgument {
                        command: self.command.to_string(),
                        path: join(&m.name),
                    });
                }
                None => {}
                Some(v) => {
                    self.depth += 1;
                    let r = self.value(&m.ty, v, &join(&m.name));
                    self.depth -= 1;
                    r?;
                }
            }
        }
        Ok(())
    }
}

/// A command's arguments and return type, for a help screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandHelp {
    /// The command.
    pub name: String,
    /// Its arguments (an object, usually).
    pub arguments: TypeHelp,
    /// What it returns.
    pub returns: TypeHelp,
    /// It may run out of band.
    pub allow_oob: bool,
}

/// One member of an object, for a help screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgHelp {
    /// Its name.
    pub name: String,
    /// It must be given.
    pub required: bool,
    /// Its type.
    pub ty: TypeHelp,
}

/// A type, for a help screen (the schema's type names are opaque, so
/// types are described by their shape).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypeHelp {
    /// A built-in JSON type: `string`, `int`, `number`, `boolean`,
    /// `null`, `value` (anything).
    Builtin(String),
    /// A string from this list.
    Enum(Vec<String>),
    /// A list of this.
    Array(Box<TypeHelp>),
    /// An object; `tag` names the member whose value picks one of
    /// `branches`, each adding its members.
    Object {
        /// Members always allowed.
        members: Vec<ArgHelp>,
        /// The discriminator of a flat union.
        tag: Option<String>,
        /// Discriminator value to its extra members.
        branches: Vec<(String, Vec<ArgHelp>)>,
    },
    /// One of these.
    Alternate(Vec<TypeHelp>),
    /// A type already being described further up (a recursive type).
    Recursive,
    /// A type name the schema does not define.
    Unknown(String),
}

impl fmt::Display for CommandHelp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if self.allow_oob {
            write!(f, " (may run out of band)")?;
        }
        writeln!(f)?;
        write_type(f, &self.arguments, 1)
    }
}

fn write_members(f: &mut fmt::Formatter<'_>, members: &[ArgHelp], depth: usize) -> fmt::Result {
    for m in members {
        let req = if m.required { "required" } else { "optional" };
        write!(f, "{:1$}{2}: {3} ", "", depth * 2, m.name, req)?;
        write_type(f, &m.ty, depth + 1)?;
    }
    Ok(())
}

fn write_type(f: &mut fmt::Formatter<'_>, ty: &TypeHelp, depth: usize) -> fmt::Result {
    match ty {
        TypeHelp::Builtin(b) => writeln!(f, "{b}"),
        TypeHelp::Enum(v) => writeln!(f, "one of {}", v.join(", ")),
        TypeHelp::Array(t) => {
            write!(f, "list of ")?;
            write_type(f, t, depth)
        }
        TypeHelp::Object {
            members,
            tag,
            branches,
        } => {
            writeln!(f, "object")?;
            write_members(f, members, depth)?;
            for (case, more) in branches {
                let tag = tag.as_deref().unwrap_or("?");
                writeln!(f, "{:1$}when {2} = {3}:", "", depth * 2, tag, case)?;
                write_members(f, more, depth + 1)?;
            }
            Ok(())
        }
        TypeHelp::Alternate(b) => {
            writeln!(f, "one of {} forms:", b.len())?;
            for t in b {
                write!(f, "{:1$}- ", "", depth * 2)?;
                write_type(f, t, depth + 1)?;
            }
            Ok(())
        }
        TypeHelp::Recursive => writeln!(f, "(recursive)"),
        TypeHelp::Unknown(t) => writeln!(f, "(undefined type {t})"),
    }
}

/// The candidate nearest to `word` by edit distance, when it is near
/// enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c.to_string())
}

/// Edit distance by characters, where swapping two neighbours counts as
/// one edit, as typing them in the wrong order is one slip (optimal string
/// alignment).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: two back (for swaps), previous, current.
    let mut back: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i);
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(back[j - 2] + 1);
            }
            cur.push(d);
        }
        back = core::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use serde_json::json;

    /// A small schema shaped like QEMU's: a flat union with two branches,
    /// a command without arguments, a nested object, an alternate, a
    /// recursive type, and device_add's open arguments.
    fn index() -> SchemaIndex {
        let schema = json!([
            {"name": "query-status", "meta-type": "command", "arg-type": "0", "ret-type": "0"},
            {"name": "blockdev-add", "meta-type": "command", "arg-type": "1", "ret-type": "0"},
            {"name": "device_add", "meta-type": "command", "arg-type": "6", "ret-type": "0"},
            {"name": "migrate-pause", "meta-type": "command", "arg-type": "0", "ret-type": "0",
             "allow-oob": true},
            {"name": "STOP", "meta-type": "event", "arg-type": "0"},
            {"name": "0", "meta-type": "object", "members": []},
            {"name": "1", "meta-type": "object", "tag": "driver",
             "members": [{"name": "driver", "type": "2"},
                         {"name": "node-name", "type": "str", "default": null},
                         {"name": "cache", "type": "5", "default": null}],
             "variants": [{"case": "file", "type": "3"}, {"case": "null-co", "type": "4"}]},
            {"name": "2", "meta-type": "enum", "members": [{"name": "file"}, {"name": "null-co"}]},
            {"name": "3", "meta-type": "object",
             "members": [{"name": "filename", "type": "str"},
                         {"name": "backing", "type": "7", "default": null}]},
            {"name": "4", "meta-type": "object", "members": [{"name": "size", "type": "int", "default": null}]},
            {"name": "5", "meta-type": "object", "members": [{"name": "direct", "type": "bool", "default": null}]},
            {"name": "6", "meta-type": "object",
             "members": [{"name": "driver", "type": "str"}, {"name": "id", "type": "str", "default": null}]},
            {"name": "7", "meta-type": "alternate", "members": [{"type": "1"}, {"type": "str"}]},
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
            {"name": "int", "meta-type": "builtin", "json-type": "int"},
            {"name": "bool", "meta-type": "builtin", "json-type": "boolean"},
            {"name": "frobnicate", "meta-type": "some-future-kind"},
        ]);
        SchemaIndex::from_value(&schema).unwrap()
    }

    #[test]
    fn known_requests_pass() {
        let i = index();
        i.check("query-status", None).unwrap();
        i.check("query-status", Some(&json!({}))).unwrap();
        let file = json!({"driver": "file", "node-name": "n", "filename": "/x", "cache": {"direct": true}});
        i.check("blockdev-add", Some(&file)).unwrap();
        i.check(
            "blockdev-add",
            Some(&json!({"driver": "null-co", "size": 1})),
        )
        .unwrap();
        let nested = json!({"driver": "file", "filename": "/x", "backing": {"driver": "null-co"}});
        i.check("blockdev-add", Some(&nested)).unwrap();
        let by_name = json!({"driver": "file", "filename": "/x", "backing": "node0"});
        i.check("blockdev-add", Some(&by_name)).unwrap();
        let dev = json!({"driver": "virtio-net-pci", "id": "n0", "mac": "52:54:00:12:34:56"});
        i.check("device_add", Some(&dev)).unwrap();
        assert!(i.allows_oob("migrate-pause"));
        assert!(!i.allows_oob("query-status"));
        assert_eq!(i.event_names().collect::<Vec<_>>(), ["STOP"]);
        assert!(i.has_command("blockdev-add"));
    }

    #[test]
    fn unknown_command_suggests_the_nearest() {
        let err = index().check("query-stat", None).unwrap_err();
        assert_eq!(
            err,
            CheckError::UnknownCommand {
                name: "query-stat".into(),
                suggestion: Some("query-status".into())
            }
        );
        assert!(
            err.to_string().contains("did you mean `query-status`"),
            "{err}"
        );
        let far = index().check("xyzzy-plugh-frob", None).unwrap_err();
        assert!(matches!(
            far,
            CheckError::UnknownCommand {
                suggestion: None,
                ..
            }
        ));
    }

    #[test]
    fn unknown_arguments_are_named_with_a_suggestion_from_the_chosen_branch() {
        let i = index();
        let err = i
            .check(
                "blockdev-add",
                Some(&json!({"driver": "file", "filenme": "/x"})),
            )
            .unwrap_err();
        assert_eq!(
            err,
            CheckError::UnknownArgument {
                command: "blockdev-add".into(),
                path: "filenme".into(),
                suggestion: Some("filename".into())
            }
        );
        // `size` belongs to the null-co branch, not to file.
        let err = i
            .check(
                "blockdev-add",
                Some(&json!({"driver": "file", "filename": "/x", "size": 1})),
            )
            .unwrap_err();
        assert!(
            matches!(err, CheckError::UnknownArgument { ref path, .. } if path == "size"),
            "{err:?}"
        );
        let err = i
            .check(
                "blockdev-add",
                Some(&json!({"driver": "null-co", "cache": {"drect": true}})),
            )
            .unwrap_err();
        assert_eq!(
            err,
            CheckError::UnknownArgument {
                command: "blockdev-add".into(),
                path: "cache.drect".into(),
                suggestion: Some("direct".into())
            }
        );
        let err = i
            .check("query-status", Some(&json!({"verbose": true})))
            .unwrap_err();
        assert!(matches!(
            err,
            CheckError::UnknownArgument {
                suggestion: None,
                ..
            }
        ));
    }

    #[test]
    fn missing_required_arguments_are_named() {
        let i = index();
        let err = i
            .check("blockdev-add", Some(&json!({"driver": "file"})))
            .unwrap_err();
        assert_eq!(
            err,
            CheckError::MissingArgument {
                command: "blockdev-add".into(),
                path: "filename".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "`blockdev-add` needs the argument `filename`"
        );
        let err = i
            .check("blockdev-add", Some(&json!({"node-name": "n"})))
            .unwrap_err();
        assert!(matches!(err, CheckError::MissingArgument { ref path, .. } if path == "driver"));
        let deep = json!({"driver": "file", "filename": "/x", "backing": {"driver": "file"}});
        let err = i.check("blockdev-add", Some(&deep)).unwrap_err();
        assert!(
            matches!(err, CheckError::MissingArgument { ref path, .. } if path == "backing.filename")
        );
        let err = i
            .check("device_add", Some(&json!({"id": "x"})))
            .unwrap_err();
        assert!(matches!(err, CheckError::MissingArgument { ref path, .. } if path == "driver"));
        let err = i.check("blockdev-add", Some(&json!([1]))).unwrap_err();
        assert!(matches!(err, CheckError::NotAnObject { .. }), "{err:?}");
    }

    #[test]
    fn help_describes_the_argument_tree() {
        let help = index().help("blockdev-add").unwrap();
        let TypeHelp::Object {
            members,
            tag,
            branches,
        } = &help.arguments
        else {
            panic!("arguments are an object: {:?}", help.arguments);
        };
        assert_eq!(tag.as_deref(), Some("driver"));
        assert_eq!(members[0].name, "driver");
        assert!(members[0].required);
        assert_eq!(
            members[0].ty,
            TypeHelp::Enum(vec!["file".into(), "null-co".into()])
        );
        assert!(!members[1].required);
        assert_eq!(branches.len(), 2);
        assert_eq!(branches[0].0, "file");
        // `backing` is an alternate whose object form is the type itself.
        let backing = &branches[0].1[1];
        assert_eq!(backing.name, "backing");
        assert!(
            matches!(&backing.ty, TypeHelp::Alternate(forms) if forms[0] == TypeHelp::Recursive)
        );
        let text = help.to_string();
        assert!(text.contains("when driver = null-co:"), "{text}");
        assert!(text.contains("filename: required string"), "{text}");
        assert!(index().help("nope").is_none());
    }

    #[test]
    fn bad_schemas_are_reported() {
        assert!(SchemaIndex::from_value(&json!({"not": "a list"})).is_err());
        let err = SchemaIndex::from_value(&json!([{"meta-type": "command"}])).unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("qeury", "query"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(
            closest("filenme", ["filename", "node-name"].into_iter()).as_deref(),
            Some("filename")
        );
    }
}
