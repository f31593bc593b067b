//! What the shell knows of the server beyond command names: the live
//! schema (`query-qmp-schema`, or the guest agent's `guest-info`) for
//! `help`, for the check before a request is sent and for completing
//! values and a union branch's members; and the block node names and
//! device ids that earlier `query-*` results showed.
//!
//! Plain data and text, no terminal or editor types: any front end can
//! use it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use qmp_std::qmp_core::introspect::{
    ArgHelp, CheckError, CommandHelp, SchemaIndex, TypeHelp, edit_distance,
};
use qmp_std::serde_json::Value;

/// The server's own description of its commands.
#[derive(Debug, Default)]
pub(crate) enum Schema {
    /// Nothing known (HMP, before negotiation, or the server did not say).
    #[default]
    Unknown,
    /// A QMP server's `query-qmp-schema`, indexed.
    Qmp(Box<SchemaIndex>),
    /// The guest agent's commands from `guest-info`: name and whether it
    /// is enabled.
    Agent(BTreeMap<String, bool>),
}

impl Schema {
    /// From a `query-qmp-schema` reply; unknown when unreadable.
    pub(crate) fn from_qmp(reply: &Value) -> Schema {
        SchemaIndex::from_value(reply).map_or(Schema::Unknown, |i| Schema::Qmp(Box::new(i)))
    }

    /// From a `guest-info` reply.
    pub(crate) fn from_guest_info(info: &Value) -> Schema {
        let list = info["supported_commands"].as_array().into_iter().flatten();
        Schema::Agent(
            list.filter_map(|c| Some((c["name"].as_str()?.to_owned(), c["enabled"] != false)))
                .collect(),
        )
    }

    /// The QMP index, when there is one.
    pub(crate) fn index(&self) -> Option<&SchemaIndex> {
        match self {
            Schema::Qmp(i) => Some(i),
            _ => None,
        }
    }

    /// Checks a request object before it is sent: `Err` with what is
    /// wrong (and the closest name) when the server would refuse it.
    /// Nothing is checked when the schema is unknown.
    pub(crate) fn check(&self, request: &Value) -> Result<(), String> {
        let name = request
            .get("execute")
            .or_else(|| request.get("exec-oob"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match self {
            Schema::Unknown => Ok(()),
            Schema::Qmp(index) => match index.check(name, request.get("arguments")) {
                Err(CheckError::UnknownCommand { .. }) => Err(unknown(name, index.command_names())),
                other => other.map_err(|e| e.to_string()),
            },
            Schema::Agent(commands) if commands.contains_key(name) => Ok(()),
            Schema::Agent(commands) => Err(unknown(name, commands.keys().map(String::as_str))),
        }
    }

    /// The text of `help` (every command) or `help COMMAND [key=value
    /// ...]`, where the arguments pick union branches to show alone
    /// (`help blockdev-add driver=file`).
    pub(crate) fn help(&self, topic: Option<&str>) -> String {
        let mut words = topic.unwrap_or_default().split_whitespace();
        let topic = words.next();
        let typed = typed_arguments(words);
        let names: Vec<&str> = match self {
            Schema::Unknown => return "the server did not describe its commands".into(),
            Schema::Qmp(index) => index.command_names().collect(),
            Schema::Agent(commands) => commands.keys().map(String::as_str).collect(),
        };
        let Some(topic) = topic else {
            return format!(
                "{}\n`help COMMAND` describes a command's arguments.",
                columns(&names, 80)
            );
        };
        match self {
            Schema::Qmp(index) => match index.help(topic) {
                Some(help) => render(&help, &typed),
                None => unknown(topic, names.into_iter()),
            },
            Schema::Agent(commands) => match commands.get(topic) {
                Some(true) => {
                    format!("{topic}: enabled (the guest agent does not describe arguments)")
                }
                Some(false) => format!("{topic}: disabled in this guest agent"),
                None => unknown(topic, names.into_iter()),
            },
            Schema::Unknown => unreachable!("returned above"),
        }
    }
}

/// A command's arguments as an indented tree: each member with
/// required/optional and its type, enum values listed, a union's
/// branches after its common members (only the branch `typed` picks,
/// when it picks one).
fn render(help: &CommandHelp, typed: &BTreeMap<String, String>) -> String {
    let mut out = help.name.clone();
    if help.allow_oob {
        out.push_str(" (may run out of band)");
    }
    out.push('\n');
    match &help.arguments {
        TypeHelp::Object {
            members, branches, ..
        } if members.is_empty() && branches.is_empty() => out.push_str("  (no arguments)"),
        TypeHelp::Object { .. } => render_members(&mut out, &help.arguments, typed, "", 1),
        other => {
            out.push_str("  ");
            render_type(&mut out, other, typed, "", 2);
        }
    }
    out.trim_end().to_owned()
}

/// The members of object type `ty` (its path `prefix`), at `depth`.
fn render_members(
    out: &mut String,
    ty: &TypeHelp,
    typed: &BTreeMap<String, String>,
    prefix: &str,
    depth: usize,
) {
    let TypeHelp::Object {
        members,
        tag,
        branches,
    } = ty
    else {
        return;
    };
    let member = |out: &mut String, m: &ArgHelp, depth: usize| {
        let need = if m.required { "required" } else { "optional" };
        let _ = write!(out, "{:1$}{2}: {need} ", "", depth * 2, m.name);
        render_type(
            out,
            &m.ty,
            typed,
            &format!("{prefix}{}.", m.name),
            depth + 1,
        );
    };
    for m in members {
        member(out, m, depth);
    }
    let tag = tag.as_deref().unwrap_or("?");
    let chosen = typed.get(&format!("{prefix}{tag}"));
    for (case, more) in branches {
        if chosen.is_none_or(|c| c == case) {
            let _ = writeln!(out, "{:1$}when {tag} = {case}:", "", depth * 2);
            for m in more {
                member(out, m, depth + 1);
            }
        }
    }
}

/// A type on the rest of the line, and its members on the lines below.
fn render_type(
    out: &mut String,
    ty: &TypeHelp,
    typed: &BTreeMap<String, String>,
    prefix: &str,
    depth: usize,
) {
    match ty {
        TypeHelp::Builtin(b) => {
            let _ = writeln!(out, "{b}");
        }
        TypeHelp::Enum(values) => {
            let _ = writeln!(out, "one of {}", values.join(", "));
        }
        TypeHelp::Array(t) => {
            out.push_str("list of ");
            render_type(out, t, typed, prefix, depth);
        }
        TypeHelp::Object { .. } => {
            out.push_str("object\n");
            render_members(out, ty, typed, prefix, depth);
        }
        TypeHelp::Alternate(forms) => {
            let _ = writeln!(out, "one of {} forms:", forms.len());
            for f in forms {
                let _ = write!(out, "{:1$}- ", "", depth * 2);
                render_type(out, f, typed, prefix, depth + 1);
            }
        }
        TypeHelp::Recursive => out.push_str("(the type described above)\n"),
        other => {
            let _ = writeln!(out, "{other:?}");
        }
    }
}

/// "the server has no command `x` (did you mean `y`?)".
fn unknown<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> String {
    match nearest(name, names) {
        Some(near) => format!("the server has no command `{name}` (did you mean `{near}`?)"),
        None => format!("the server has no command `{name}`"),
    }
}

/// The name nearest to `word` when it is near enough to be a typo: the
/// fewest edits (a swap of neighbours is one), then the closest length,
/// so `query-stauts` is `query-status`, not `query-stats`.
fn nearest<'a>(word: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let len = word.chars().count();
    let limit = (len / 3).max(2);
    names
        .map(|n| (edit_distance(word, n), n.chars().count().abs_diff(len), n))
        .filter(|(d, _, _)| *d <= limit)
        .min()
        .map(|(_, _, n)| n)
}

/// `names` in columns filling at most `width` characters a line.
fn columns(names: &[&str], width: usize) -> String {
    let col = names.iter().map(|n| n.chars().count()).max().unwrap_or(0) + 2;
    let per_line = (width / col).max(1);
    let rows = names.len().div_ceil(per_line);
    let mut out = String::new();
    for row in 0..rows {
        let mut line = String::new();
        for name in names.iter().skip(row).step_by(rows.max(1)) {
            let _ = write!(line, "{name:col$}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim_end().to_owned()
}

/// Names seen in earlier results, offered as values.
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// Block node names (`node-name` members).
    nodes: BTreeSet<String>,
    /// Device ids (`qdev_id`, a block backend's `device`, `id`).
    devices: BTreeSet<String>,
}

/// How many names of each kind are kept.
const MAX_KNOWN: usize = 1000;

impl Known {
    /// Takes the names from the result of `command`, when it is a
    /// `query-*` command (whose results describe what exists).
    pub(crate) fn learn(&mut self, command: &str, result: &Value) {
        if command.starts_with("query-") {
            self.walk(result, 0);
        }
    }

    fn walk(&mut self, value: &Value, depth: usize) {
        if depth > 8 {
            return;
        }
        match value {
            Value::Array(items) => items.iter().for_each(|v| self.walk(v, depth + 1)),
            Value::Object(members) => {
                for (key, v) in members {
                    match (key.as_str(), v) {
                        ("node-name", Value::String(s)) => add(&mut self.nodes, s),
                        ("qdev_id" | "device" | "id", Value::String(s)) => {
                            add(&mut self.devices, s);
                        }
                        _ => self.walk(v, depth + 1),
                    }
                }
            }
            _ => {}
        }
    }

    /// The names that fit an argument called `member`.
    fn for_member(&self, member: &str) -> Vec<&str> {
        let nodes = self.nodes.iter().map(String::as_str);
        let devices = self.devices.iter().map(String::as_str);
        if member == "node" || member.ends_with("node-name") || member.ends_with("-node") {
            nodes.collect()
        } else if matches!(member, "device" | "id") {
            devices.chain(nodes).collect()
        } else {
            Vec::new()
        }
    }
}

fn add(set: &mut BTreeSet<String>, name: &str) {
    if !name.is_empty() && set.len() < MAX_KNOWN {
        set.insert(name.to_owned());
    }
}

/// The arguments already typed on the line, `dotted.key` to raw value
/// text (quotes removed): they pick union branches.
pub(crate) fn typed_arguments<'a>(
    words: impl Iterator<Item = &'a str>,
) -> BTreeMap<String, String> {
    words
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches(['"', '\'']).to_owned()))
        .collect()
}

/// The members visible in an object of type `ty` whose own path is
/// `prefix` (empty or ending with `.`): the common ones, plus the branch
/// the typed discriminator picks (every branch while none is typed).
fn level<'a>(ty: &'a TypeHelp, typed: &BTreeMap<String, String>, prefix: &str) -> Vec<&'a ArgHelp> {
    match ty {
        TypeHelp::Object {
            members,
            tag,
            branches,
        } => {
            let mut out: Vec<&ArgHelp> = members.iter().collect();
            let chosen = tag
                .as_ref()
                .and_then(|t| typed.get(&format!("{prefix}{t}")));
            for (case, more) in branches {
                if chosen.is_none_or(|c| c == case) {
                    for m in more {
                        if !out.iter().any(|o| o.name == m.name) {
                            out.push(m);
                        }
                    }
                }
            }
            out
        }
        TypeHelp::Alternate(forms) => forms
            .iter()
            .find(|f| matches!(f, TypeHelp::Object { .. }))
            .map(|f| level(f, typed, prefix))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Whether a value of `ty` can hold members (`a.b=` can follow `a`).
fn has_members(ty: &TypeHelp) -> bool {
    match ty {
        TypeHelp::Object { .. } => true,
        TypeHelp::Alternate(forms) => forms.iter().any(has_members),
        _ => false,
    }
}

/// The type of the member at dotted `path` of `command`'s arguments.
fn member_type<'a>(
    root: &'a TypeHelp,
    path: &[&str],
    typed: &BTreeMap<String, String>,
) -> Option<&'a ArgHelp> {
    let (last, parents) = path.split_last()?;
    let mut ty = root;
    let mut prefix = String::new();
    for part in parents {
        ty = &level(ty, typed, &prefix)
            .into_iter()
            .find(|m| m.name == *part)?
            .ty;
        prefix = format!("{prefix}{part}.");
    }
    level(ty, typed, &prefix)
        .into_iter()
        .find(|m| m.name == *last)
}

/// One completion: what the list shows and what replaces the word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Shown in the list of candidates.
    pub(crate) display: String,
    /// Replaces the text being completed.
    pub(crate) replacement: String,
}

/// The type of a transaction action's `data`: `transaction`'s
/// `actions` are a union whose `type` picks the action.
pub(crate) fn action_type(index: &SchemaIndex, action: &str) -> Option<TypeHelp> {
    let TypeHelp::Object { members, .. } = index.help("transaction")?.arguments else {
        return None;
    };
    let actions = members.into_iter().find(|m| m.name == "actions")?;
    let TypeHelp::Array(element) = actions.ty else {
        return None;
    };
    let TypeHelp::Object { branches, .. } = *element else {
        return None;
    };
    let (_, members) = branches.into_iter().find(|(case, _)| case == action)?;
    Some(members.into_iter().find(|m| m.name == "data")?.ty)
}

/// Argument names in the object type `root` that `word` (`a.b.c`
/// completes `c` inside `a.b`) may start, given the arguments already
/// typed; `None` when `word`'s path leads nowhere.
pub(crate) fn argument_names(
    root: &TypeHelp,
    word: &str,
    typed: &BTreeMap<String, String>,
) -> Option<Vec<Candidate>> {
    let (path, last) = match word.rfind('.') {
        Some(i) => (&word[..=i], &word[i + 1..]),
        None => ("", word),
    };
    let mut ty = root;
    let mut prefix = String::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        ty = &level(ty, typed, &prefix)
            .into_iter()
            .find(|m| m.name == part)?
            .ty;
        prefix = format!("{prefix}{part}.");
    }
    let names = level(ty, typed, &prefix)
        .into_iter()
        .filter(|m| m.name.starts_with(last) && !typed.contains_key(&format!("{prefix}{}", m.name)))
        .map(|m| Candidate {
            display: m.name.clone(),
            replacement: if has_members(&m.ty) && !matches!(m.ty, TypeHelp::Alternate(_)) {
                format!("{path}{}.", m.name)
            } else {
                format!("{path}{}=", m.name)
            },
        });
    let mut names: Vec<Candidate> = names.collect();
    names.sort_by(|a, b| a.display.cmp(&b.display));
    Some(names)
}

/// Values for `key=` (`value` typed so far) in the object type `root`:
/// enum members, `true` and `false`, and names from earlier results for
/// node and device arguments.
pub(crate) fn values(
    root: &TypeHelp,
    known: &Known,
    key: &str,
    value: &str,
    typed: &BTreeMap<String, String>,
) -> Vec<Candidate> {
    let path: Vec<&str> = key.split('.').collect();
    let Some(member) = member_type(root, &path, typed) else {
        return Vec::new();
    };
    let mut out = BTreeSet::new();
    scalar_values(&member.ty, &mut out);
    if accepts_string(&member.ty) {
        out.extend(
            known
                .for_member(&member.name)
                .into_iter()
                .map(str::to_owned),
        );
    }
    out.into_iter()
        .filter(|v| v.starts_with(value))
        .map(|v| Candidate {
            replacement: format!("{v} "),
            display: v,
        })
        .collect()
}

fn scalar_values(ty: &TypeHelp, out: &mut BTreeSet<String>) {
    match ty {
        TypeHelp::Enum(values) => out.extend(values.iter().cloned()),
        TypeHelp::Builtin(b) if b == "boolean" => {
            out.extend(["true".to_owned(), "false".to_owned()]);
        }
        TypeHelp::Alternate(forms) => forms.iter().for_each(|f| scalar_values(f, out)),
        _ => {}
    }
}

fn accepts_string(ty: &TypeHelp) -> bool {
    match ty {
        TypeHelp::Builtin(b) => b == "string",
        TypeHelp::Alternate(forms) => forms.iter().any(accepts_string),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_std::serde_json::json;

    fn index() -> SchemaIndex {
        SchemaIndex::from_value(&json!([
            {"name": "blockdev-add", "meta-type": "command", "arg-type": "1", "ret-type": "0"},
            {"name": "block-set", "meta-type": "command", "arg-type": "6", "ret-type": "0"},
            {"name": "0", "meta-type": "object", "members": []},
            {"name": "1", "meta-type": "object", "tag": "driver",
             "members": [{"name": "driver", "type": "2"},
                         {"name": "node-name", "type": "str", "default": null},
                         {"name": "cache", "type": "5", "default": null}],
             "variants": [{"case": "file", "type": "3"}, {"case": "null-co", "type": "4"}]},
            {"name": "2", "meta-type": "enum", "values": ["file", "null-co"]},
            {"name": "3", "meta-type": "object", "members": [{"name": "filename", "type": "str"}]},
            {"name": "4", "meta-type": "object", "members": [{"name": "size", "type": "int", "default": null}]},
            {"name": "5", "meta-type": "object", "members": [{"name": "direct", "type": "bool", "default": null}]},
            {"name": "6", "meta-type": "object", "members": [{"name": "node", "type": "str"}]},
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
            {"name": "int", "meta-type": "builtin", "json-type": "int"},
            {"name": "bool", "meta-type": "builtin", "json-type": "boolean"},
        ]))
        .unwrap()
    }

    fn shown(c: Vec<Candidate>) -> Vec<String> {
        c.into_iter().map(|c| c.replacement).collect()
    }

    #[test]
    fn values_of_enums_booleans_and_known_names() {
        let (i, mut known) = (index(), Known::default());
        let none = BTreeMap::new();
        let add = i.help("blockdev-add").unwrap().arguments;
        let v = |root: &TypeHelp, known: &Known, key: &str, value: &str| {
            shown(values(root, known, key, value, &none))
        };
        assert_eq!(v(&add, &known, "driver", ""), ["file ", "null-co "]);
        assert_eq!(v(&add, &known, "cache.direct", "t"), ["true "]);
        known.learn("query-named-block-nodes", &json!([{"node-name": "disk0"}]));
        known.learn("blockdev-add", &json!([{"node-name": "ignored"}]));
        let set = i.help("block-set").unwrap().arguments;
        assert_eq!(v(&set, &known, "node", ""), ["disk0 "]);
    }

    #[test]
    fn the_discriminator_picks_the_branch() {
        let add = index().help("blockdev-add").unwrap().arguments;
        let typed = typed_arguments(["driver=null-co"].into_iter());
        let names = shown(argument_names(&add, "", &typed).unwrap());
        assert_eq!(names, ["cache.", "node-name=", "size="]);
        let all = shown(argument_names(&add, "", &BTreeMap::new()).unwrap());
        assert_eq!(
            all,
            ["cache.", "driver=", "filename=", "node-name=", "size="]
        );
        assert!(argument_names(&add, "nope.", &typed).is_none());
    }

    #[test]
    fn help_and_check_name_the_closest_command() {
        let s = Schema::Qmp(Box::new(index()));
        assert!(s.help(None).contains("blockdev-add"));
        let help = s.help(Some("blockdev-add"));
        assert!(help.contains("when driver = file:"), "{help}");
        assert!(
            help.contains("  driver: required one of file, null-co"),
            "{help}"
        );
        assert!(help.contains("    direct: optional boolean"), "{help}");
        let one = s.help(Some("blockdev-add driver=null-co"));
        assert!(
            one.contains("when driver = null-co:") && !one.contains("filename"),
            "{one}"
        );
        assert_eq!(
            s.help(Some("block-set")),
            "block-set\n  node: required string"
        );
        assert!(
            s.help(Some("blockdev-ad"))
                .contains("did you mean `blockdev-add`?")
        );
        assert_eq!(
            nearest("query-stauts", ["query-stats", "query-status"].into_iter()),
            Some("query-status")
        );
        assert_eq!(nearest("xyzzy", ["query-status"].into_iter()), None);
        let e = s.check(&json!({"execute": "blockdev-ad"})).unwrap_err();
        assert!(e.contains("did you mean `blockdev-add`?"), "{e}");
        let e = s
            .check(&json!({"execute": "blockdev-add", "arguments": {"driver": "file"}}))
            .unwrap_err();
        assert!(e.contains("filename"), "{e}");
        assert!(Schema::Unknown.check(&json!({"execute": "x"})).is_ok());
        let agent = Schema::from_guest_info(&json!({"supported_commands": [
            {"name": "guest-ping", "enabled": true}]}));
        assert!(
            agent
                .check(&json!({"execute": "guest-pin"}))
                .unwrap_err()
                .contains("guest-ping")
        );
    }
}
