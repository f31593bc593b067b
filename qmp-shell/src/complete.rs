//! Tab completion of command names and argument names, built from what
//! the server says it has: `query-qmp-schema` for QMP (so it fits the
//! QEMU version on the other end), `guest-info` for the guest agent,
//! `help` for HMP.

use std::collections::{BTreeMap, HashMap};

use qmp_std::qmp_core::introspect::SchemaInfo;
use qmp_std::serde_json::{self, Value};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use crate::output;
use crate::schema::{self, Candidate, Known, Schema};

/// Argument names, each with the names nested under it (for objects).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Members(BTreeMap<String, Members>);

/// How deep nested objects are followed (the schema has recursive types).
const MAX_DEPTH: usize = 4;

/// The names completion offers.
#[derive(Debug, Default)]
pub(crate) struct Words {
    /// Command names and their arguments.
    pub(crate) commands: BTreeMap<String, Members>,
    /// `transaction` action types and the members of their `data`.
    pub(crate) actions: BTreeMap<String, Members>,
    /// The server's schema: values and union branches (QMP), `help`, and
    /// the check before sending.
    pub(crate) schema: Schema,
}

impl Words {
    /// From the entries of `query-qmp-schema`.
    pub(crate) fn from_schema(entries: &[SchemaInfo]) -> Words {
        let types: HashMap<&str, &SchemaInfo> =
            entries.iter().map(|e| (e.name.as_str(), e)).collect();
        let mut words = Words::default();
        for entry in entries.iter().filter(|e| e.meta_type == "command") {
            let args = entry
                .rest
                .get("arg-type")
                .and_then(Value::as_str)
                .map(|t| members(&types, t, MAX_DEPTH))
                .unwrap_or_default();
            if entry.name == "transaction" {
                words.actions = transaction_actions(&types, entry);
            }
            words.commands.insert(entry.name.clone(), args);
        }
        words
    }

    /// From `query-qmp-schema`'s reply: names, and the indexed schema.
    pub(crate) fn from_schema_reply(reply: Value) -> Words {
        let schema = Schema::from_qmp(&reply);
        Words {
            schema,
            ..Words::from_schema(&schema_entries(reply))
        }
    }

    /// Command names only (the guest agent's `guest-info`, HMP's `help`).
    pub(crate) fn from_names(names: impl IntoIterator<Item = String>) -> Words {
        Words {
            commands: names.into_iter().map(|n| (n, Members::default())).collect(),
            ..Words::default()
        }
    }

    /// From `guest-info`'s list of supported commands.
    pub(crate) fn from_guest_info(info: &Value) -> Words {
        let names = info["supported_commands"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["enabled"] != false)
            .filter_map(|c| c["name"].as_str().map(str::to_owned));
        Words {
            schema: Schema::from_guest_info(info),
            ..Words::from_names(names)
        }
    }

    /// From HMP's `help` text (the first word of each line, aliases
    /// `name|alias` included) and `help info` (the word after `info`).
    pub(crate) fn from_hmp_help(help: &str, info_help: &str) -> Words {
        let mut words = Words::from_names(hmp_names(help, 0));
        if let Some(info) = words.commands.get_mut("info") {
            info.0 = hmp_names(info_help, 1)
                .map(|n| (n, Members::default()))
                .collect();
        }
        words
    }
}

/// The `word`-th word of each line of an HMP help text, split at `|`.
fn hmp_names(text: &str, word: usize) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .filter_map(move |l| l.split_whitespace().nth(word))
        .flat_map(|w| w.split('|'))
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_alphanumeric() || "_-".contains(c)))
        .map(str::to_owned)
}

/// The members of object type `name` (variants' members included), each
/// with its own members when it is an object too.
fn members(types: &HashMap<&str, &SchemaInfo>, name: &str, depth: usize) -> Members {
    let mut out = Members::default();
    let Some(ty) = types.get(name) else {
        return out;
    };
    if ty.meta_type != "object" || depth == 0 {
        return out;
    }
    for m in ty
        .rest
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(member) = m["name"].as_str() else {
            continue;
        };
        let nested = m["type"]
            .as_str()
            .map(|t| members(types, t, depth - 1))
            .unwrap_or_default();
        out.0.entry(member.to_owned()).or_insert(nested);
    }
    for v in ty
        .rest
        .get("variants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = v["type"].as_str() {
            for (k, nested) in members(types, t, depth).0 {
                out.0.entry(k).or_insert(nested);
            }
        }
    }
    out
}

/// `transaction`'s actions: `actions` is an array of a union whose tag
/// `type` names the action and whose variants carry a `data` member.
fn transaction_actions(
    types: &HashMap<&str, &SchemaInfo>,
    command: &SchemaInfo,
) -> BTreeMap<String, Members> {
    let mut out = BTreeMap::new();
    let find = |name: &str| types.get(name).copied();
    let Some(args) = command
        .rest
        .get("arg-type")
        .and_then(Value::as_str)
        .and_then(find)
    else {
        return out;
    };
    let element = args
        .rest
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|m| m["name"] == "actions")
        .and_then(|m| m["type"].as_str())
        .and_then(find)
        .and_then(|array| array.rest.get("element-type"))
        .and_then(Value::as_str)
        .and_then(find);
    let Some(element) = element else {
        return out;
    };
    for v in element
        .rest
        .get("variants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(case), Some(wrapper)) = (v["case"].as_str(), v["type"].as_str()) else {
            continue;
        };
        let data = members(types, wrapper, MAX_DEPTH)
            .0
            .remove("data")
            .unwrap_or_default();
        out.insert(case.to_owned(), data);
    }
    out
}

/// Parses `query-qmp-schema`'s reply.
pub(crate) fn schema_entries(value: Value) -> Vec<SchemaInfo> {
    serde_json::from_value(value).unwrap_or_default()
}

/// The line editor's helper: completion only (no hints, colours or
/// validation).
#[derive(Debug, Default)]
pub(crate) struct ShellHelper {
    pub(crate) words: Words,
    /// Whether a `transaction(` block is open: lines name actions then.
    pub(crate) in_transaction: bool,
    /// HMP mode: only the first word is completed.
    pub(crate) hmp: bool,
    /// Node names and device ids from earlier results.
    pub(crate) known: Known,
}

impl ShellHelper {
    /// Candidates for the word ending at `pos`: its start and the names.
    pub(crate) fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<Candidate>) {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        let mut prior: Vec<&str> = before[..start].split_whitespace().collect();
        let in_block = self.in_transaction || prior.first() == Some(&"transaction(");
        // `help COMMAND`: the shell's own, in QMP and agent modes.
        if !in_block && !self.hmp && prior == ["help"] {
            return (start, word_pairs(self.words.commands.keys(), word));
        }
        if let Some(found) = self.schema_candidates(&prior, in_block, word, start) {
            return found;
        }
        let Some(table) = self.table(&mut prior) else {
            return (start, Vec::new());
        };
        let names = match prior.first() {
            None => self.command_names(table, word),
            Some(command) if self.hmp => hmp_subcommands(table, &prior, command, word),
            Some(command) => argument_names(table, command, word),
        };
        (start, names)
    }

    /// Names and values from the schema's argument tree, for the
    /// arguments of a command or of a transaction action; `None` when
    /// the schema does not know it (the names from [`Words`] are used).
    fn schema_candidates(
        &self,
        prior: &[&str],
        in_block: bool,
        word: &str,
        start: usize,
    ) -> Option<(usize, Vec<Candidate>)> {
        let index = self.words.schema.index().filter(|_| !self.hmp)?;
        let prior = match prior {
            ["transaction(", rest @ ..] => rest,
            _ => prior,
        };
        let (name, args) = prior.split_first()?;
        let root = if in_block {
            schema::action_type(index, name)?
        } else {
            index.help(name)?.arguments
        };
        let typed = schema::typed_arguments(args.iter().copied());
        if let Some((key, value)) = word.split_once('=') {
            let values = schema::values(&root, &self.known, key, value, &typed);
            return Some((start + key.len() + 1, values));
        }
        Some((start, schema::argument_names(&root, word, &typed)?))
    }

    /// The names that the first word of `prior` is one of: commands, or
    /// transaction actions (then `transaction(` is taken off `prior`).
    /// `None` after a block's `)`, where nothing is offered.
    fn table(&self, prior: &mut Vec<&str>) -> Option<&BTreeMap<String, Members>> {
        let opens_block = prior.first() == Some(&"transaction(");
        if !self.in_transaction && !opens_block {
            return Some(&self.words.commands);
        }
        if opens_block {
            prior.remove(0);
        }
        if prior.first() == Some(&")") {
            return None;
        }
        Some(&self.words.actions)
    }

    /// The first word: a command (or action) name, and `transaction(`.
    fn command_names(&self, table: &BTreeMap<String, Members>, word: &str) -> Vec<Candidate> {
        let mut names = word_pairs(table.keys(), word);
        if !self.hmp
            && !self.in_transaction
            && table.contains_key("transaction")
            && "transaction(".starts_with(word)
        {
            names.push(Candidate {
                display: "transaction(".into(),
                replacement: "transaction(".into(),
            });
        }
        names
    }
}

/// Names starting with `word`, each to be followed by a space.
fn word_pairs<'a>(names: impl Iterator<Item = &'a String>, word: &str) -> Vec<Candidate> {
    names
        .filter(|n| n.starts_with(word))
        .map(|n| Candidate {
            display: n.clone(),
            replacement: format!("{n} "),
        })
        .collect()
}

/// HMP: `info` subcommands; nothing else has named arguments.
fn hmp_subcommands(
    table: &BTreeMap<String, Members>,
    prior: &[&str],
    command: &str,
    word: &str,
) -> Vec<Candidate> {
    match (prior, table.get(command)) {
        ([_], Some(subs)) => word_pairs(subs.0.keys(), word),
        _ => Vec::new(),
    }
}

/// The argument names of `command` that `word` may start; `a.b.c`
/// follows `a` and `b` and completes `c`.
fn argument_names(table: &BTreeMap<String, Members>, command: &str, word: &str) -> Vec<Candidate> {
    if word.contains('=') {
        return Vec::new();
    }
    let Some(mut members) = table.get(command) else {
        return Vec::new();
    };
    let (path, last) = match word.rfind('.') {
        Some(i) => (&word[..=i], &word[i + 1..]),
        None => ("", word),
    };
    for part in path.split('.').filter(|p| !p.is_empty()) {
        match members.0.get(part) {
            Some(m) => members = m,
            None => return Vec::new(),
        }
    }
    members
        .0
        .iter()
        .filter(|(n, _)| n.starts_with(last))
        .map(|(n, nested)| Candidate {
            display: n.clone(),
            replacement: if nested.0.is_empty() {
                format!("{path}{n}=")
            } else {
                format!("{path}{n}.")
            },
        })
        .collect()
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, names) = self.candidates(line, pos);
        // The names come from the server and are shown as they are: leave
        // out any that could steer the terminal.
        let names = names
            .into_iter()
            .filter(|c| !c.replacement.chars().any(output::is_unsafe))
            .map(|c| Pair {
                display: c.display,
                replacement: c.replacement,
            });
        Ok((start, names.collect()))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_std::serde_json::json;

    /// A schema shaped like QEMU's (names masked as numbers).
    fn schema() -> Vec<SchemaInfo> {
        schema_entries(schema_json())
    }

    /// The same, as the server sends it.
    fn schema_json() -> Value {
        json!([
            {"name": "query-status", "meta-type": "command", "arg-type": "0", "ret-type": "1"},
            {"name": "query-stats", "meta-type": "command", "arg-type": "0", "ret-type": "1"},
            {"name": "0", "meta-type": "object", "members": []},
            {"name": "blockdev-add", "meta-type": "command", "arg-type": "2", "ret-type": "0"},
            {"name": "2", "meta-type": "object", "tag": "driver",
             "members": [
                {"name": "driver", "type": "str"},
                {"name": "node-name", "type": "str", "default": null},
                {"name": "cache", "type": "3", "default": null}],
             "variants": [{"case": "file", "type": "4"}]},
            {"name": "3", "meta-type": "object", "members": [
                {"name": "direct", "type": "bool"}, {"name": "no-flush", "type": "bool"}]},
            {"name": "4", "meta-type": "object", "members": [{"name": "filename", "type": "str"}]},
            {"name": "transaction", "meta-type": "command", "arg-type": "5", "ret-type": "0"},
            {"name": "5", "meta-type": "object", "members": [
                {"name": "actions", "type": "[6]"},
                {"name": "properties", "type": "3", "default": null}]},
            {"name": "[6]", "meta-type": "array", "element-type": "6"},
            {"name": "6", "meta-type": "object", "tag": "type",
             "members": [{"name": "type", "type": "7"}],
             "variants": [{"case": "abort", "type": "8"}, {"case": "block-dirty-bitmap-add", "type": "9"}]},
            {"name": "7", "meta-type": "enum", "values": ["abort", "block-dirty-bitmap-add"]},
            {"name": "8", "meta-type": "object", "members": [{"name": "data", "type": "0"}]},
            {"name": "9", "meta-type": "object", "members": [{"name": "data", "type": "10"}]},
            {"name": "10", "meta-type": "object", "members": [
                {"name": "node", "type": "str"}, {"name": "name", "type": "str"}]},
            {"name": "STOP", "meta-type": "event", "arg-type": "0"},
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
            {"name": "bool", "meta-type": "builtin", "json-type": "boolean"}
        ])
    }

    fn helper() -> ShellHelper {
        ShellHelper {
            words: Words::from_schema(&schema()),
            ..ShellHelper::default()
        }
    }

    fn complete(h: &ShellHelper, line: &str) -> (usize, Vec<String>) {
        let (start, pairs) = h.candidates(line, line.len());
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn command_names() {
        let h = helper();
        assert_eq!(
            complete(&h, "query-sta"),
            (0, vec!["query-stats ".into(), "query-status ".into()])
        );
        assert_eq!(complete(&h, "STOP").1, Vec::<String>::new());
        assert_eq!(complete(&h, "trans").1, ["transaction ", "transaction("]);
    }

    #[test]
    fn argument_names_nested_and_from_variants() {
        let h = helper();
        assert_eq!(
            complete(&h, "blockdev-add "),
            (
                13,
                vec![
                    "cache.".into(),
                    "driver=".into(),
                    "filename=".into(),
                    "node-name=".into()
                ]
            )
        );
        assert_eq!(
            complete(&h, "blockdev-add driver=file no").1,
            ["node-name="]
        );
        assert_eq!(
            complete(&h, "blockdev-add cache.").1,
            ["cache.direct=", "cache.no-flush="]
        );
        assert_eq!(complete(&h, "blockdev-add cache.di").1, ["cache.direct="]);
        assert!(complete(&h, "blockdev-add driver=fi").1.is_empty());
        assert!(complete(&h, "no-such-command a").1.is_empty());
    }

    #[test]
    fn transaction_actions_and_their_data() {
        let mut h = helper();
        assert_eq!(
            complete(&h, "transaction( block-dirty-bitmap-add n").1,
            ["name=", "node="]
        );
        h.in_transaction = true;
        assert_eq!(complete(&h, "ab").1, ["abort "]);
        assert_eq!(complete(&h, "block-dirty-bitmap-add na").1, ["name="]);
        assert!(complete(&h, ") ").1.is_empty());
    }

    #[test]
    fn with_the_schema_index_values_branches_and_actions() {
        let mut h = ShellHelper {
            words: Words::from_schema_reply(schema_json()),
            ..ShellHelper::default()
        };
        assert_eq!(
            complete(&h, "blockdev-add driver=file "),
            (
                25,
                vec!["cache.".into(), "filename=".into(), "node-name=".into()]
            )
        );
        assert_eq!(
            complete(&h, "blockdev-add cache.direct="),
            (26, vec!["false ".into(), "true ".into()])
        );
        assert_eq!(
            complete(&h, "transaction( block-dirty-bitmap-add n").1,
            ["name=", "node="]
        );
        h.known
            .learn("query-named-block-nodes", &json!([{"node-name": "n0"}]));
        assert_eq!(
            complete(&h, "help query-stat").1,
            ["query-stats ", "query-status "]
        );
        h.in_transaction = true;
        assert_eq!(complete(&h, "block-dirty-bitmap-add node=").1, ["n0 "]);
    }

    #[test]
    fn names_from_the_agent_and_hmp() {
        let w = Words::from_guest_info(&json!({"supported_commands": [
            {"name": "guest-ping", "enabled": true},
            {"name": "guest-exec", "enabled": false}]}));
        assert_eq!(w.commands.keys().collect::<Vec<_>>(), ["guest-ping"]);
        let w = Words::from_hmp_help(
            "announce_self [interfaces] [id] -- Trigger GARP/RARP announcements\r\n\
             c|cont  -- resume emulation\r\ninfo [subcommand] -- show various information\r\n",
            "info status  -- show the VM status\r\ninfo version  -- show the version\r\n",
        );
        assert_eq!(
            w.commands.keys().collect::<Vec<_>>(),
            ["announce_self", "c", "cont", "info"]
        );
        let h = ShellHelper {
            words: w,
            hmp: true,
            ..ShellHelper::default()
        };
        assert_eq!(complete(&h, "co").1, ["cont "]);
        assert_eq!(complete(&h, "info st").1, ["status "]);
        assert_eq!(complete(&h, "info ").1, ["status ", "version "]);
        assert!(complete(&h, "info status x").1.is_empty());
        assert!(complete(&h, "cont x").1.is_empty());
    }
}
