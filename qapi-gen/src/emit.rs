//! Writes the Rust for one namespace (QMP or the guest agent) of the merged
//! schema.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::merge::{Avail, UData, UDef, UItem, UMember, VERSIONS};
use crate::model::TypeRef;
use crate::names::{camel, snake, type_name, unique};

/// The built-in QAPI types and their Rust spelling.
pub fn builtin(name: &str) -> Option<&'static str> {
    Some(match name {
        "str" => "String",
        "int" | "int64" => "i64",
        "int8" => "i8",
        "int16" => "i16",
        "int32" => "i32",
        "uint8" => "u8",
        "uint16" => "u16",
        "uint32" => "u32",
        "uint64" | "size" => "u64",
        "number" => "f64",
        "bool" => "bool",
        "null" => "()",
        "any" => "serde_json::Value",
        _ => return None,
    })
}

/// Which protocol a module is for.
#[derive(Clone, Copy, Debug)]
pub struct Flavor {
    /// Module name (`qmp`, `qga`).
    pub module: &'static str,
    /// QAPI documentation namespace (`QMP`, `QGA`).
    pub namespace: &'static str,
    /// The reference page.
    pub page: &'static str,
    /// Words for the module doc.
    pub title: &'static str,
}

/// A namespace ready to emit.
pub struct Ns<'a> {
    flavor: Flavor,
    items: &'a BTreeMap<String, UItem>,
    idents: BTreeMap<String, String>,
    branch_idents: BTreeMap<String, String>,
    boxed: BTreeSet<(String, String)>,
    /// Commands and events, in name order, with their Rust names.
    pub commands: Vec<(&'a UItem, String)>,
    /// Events, in name order, with their Rust names.
    pub events: Vec<(&'a UItem, String)>,
}

fn is_type(d: &UDef) -> bool {
    !matches!(d, UDef::Command { .. } | UDef::Event(_))
}

impl<'a> Ns<'a> {
    /// Names everything and finds the members that must be boxed.
    pub fn new(flavor: Flavor, items: &'a BTreeMap<String, UItem>) -> Ns<'a> {
        let types: Vec<&UItem> = items.values().filter(|i| is_type(&i.def)).collect();
        let unions: Vec<&UItem> = types
            .iter()
            .copied()
            .filter(|i| matches!(i.def, UDef::Union { .. }))
            .collect();
        let mut wanted: Vec<String> = types.iter().map(|i| type_name(&i.name)).collect();
        wanted.extend(
            unions
                .iter()
                .map(|i| format!("{}Branch", type_name(&i.name))),
        );
        let got = unique(
            wanted,
            &["Availability", "CommandSpec", "EventSpec", "QType"],
        );
        let (type_ids, branch_ids) = got.split_at(types.len());
        let mut idents: BTreeMap<String, String> = types
            .iter()
            .zip(type_ids)
            .map(|(i, n)| (i.name.clone(), n.clone()))
            .collect();
        let branch_idents = unions
            .iter()
            .zip(branch_ids)
            .map(|(i, n)| (i.name.clone(), n.clone()))
            .collect();
        let mut taken: Vec<String> = got.clone();
        taken.extend(["Availability", "CommandSpec", "EventSpec", "QType"].map(String::from));
        let mut named = |kind: fn(&UDef) -> bool, suffix: &str| -> Vec<(&'a UItem, String)> {
            let list: Vec<&UItem> = items.values().filter(|i| kind(&i.def)).collect();
            let wanted: Vec<String> = list
                .iter()
                .map(|i| {
                    let c = camel(&i.name);
                    if taken.contains(&c) {
                        format!("{c}{suffix}")
                    } else {
                        c
                    }
                })
                .collect();
            let refs: Vec<&str> = taken.iter().map(String::as_str).collect();
            let got = unique(wanted, &refs);
            taken.extend(got.iter().cloned());
            list.into_iter().zip(got).collect()
        };
        let commands = named(|d| matches!(d, UDef::Command { .. }), "Command");
        let events = named(|d| matches!(d, UDef::Event(_)), "Event");
        for (i, n) in commands.iter().chain(&events) {
            idents.insert(i.name.clone(), n.clone());
        }
        let boxed = recursive_edges(items);
        Ns {
            flavor,
            items,
            idents,
            branch_idents,
            boxed,
            commands,
            events,
        }
    }

    /// The Rust name of a definition, if it has one.
    pub fn rust_name(&self, qapi: &str) -> Option<&str> {
        self.idents.get(qapi).map(String::as_str)
    }

    fn ident(&self, qapi: &str) -> String {
        if qapi == "QType" {
            return "QType".into();
        }
        self.idents
            .get(qapi)
            .cloned()
            .unwrap_or_else(|| panic!("unknown type {qapi}"))
    }

    /// The Rust type of `t` as a member of `owner`.
    fn ty(&self, owner: &str, t: &TypeRef) -> String {
        match t {
            TypeRef::List(inner) => format!("Vec<{}>", self.ty("", inner)),
            TypeRef::Named(n) => {
                let base = builtin(n)
                    .map(String::from)
                    .unwrap_or_else(|| self.ident(n));
                if self.boxed.contains(&(owner.to_string(), n.clone())) {
                    format!("Box<{base}>")
                } else {
                    base
                }
            }
        }
    }

    fn url(&self, kind: &str, item: &UItem) -> String {
        format!(
            "https://www.qemu.org/docs/master/interop/{}#{kind}-{}-{}.{}",
            self.flavor.page, self.flavor.namespace, item.module, item.name
        )
    }

    fn doc(&self, word: &str, anchor: &str, item: &UItem) -> String {
        let mut s = format!("{word} `{}`: {}", item.name, avail_words(item.avail));
        if let Some(v) = &item.since {
            let _ = write!(s, ", since {v}");
        }
        if let Some(c) = &item.cond {
            let _ = write!(s, ", only in builds with `{c}`");
        }
        for f in ["deprecated", "unstable"] {
            if item.features.iter().any(|x| x == f) {
                let _ = write!(s, ", {f}");
            }
        }
        format!("/// {s}. [QEMU reference]({})\n", self.url(anchor, item))
    }

    /// The whole module.
    pub fn emit(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "//! {} (generated by `qapi-gen` from QEMU {}; do not edit).\n",
            self.flavor.title,
            VERSIONS.join(" and ")
        );
        let mut body = String::new();
        let mut need_qtype = false;
        for item in self.items.values() {
            match &item.def {
                UDef::Enum(vals) => self.emit_enum(&mut body, item, vals),
                UDef::Struct(members) => self.emit_struct(&mut body, item, "Struct", members),
                UDef::Union { .. } => self.emit_union(&mut body, item),
                UDef::Alternate(b) => {
                    need_qtype |= b.iter().any(|(_, t)| t.leaf() == "QType");
                    self.emit_alternate(&mut body, item, b)
                }
                UDef::Command { .. } => self.emit_command(&mut body, item),
                UDef::Event(d) => self.emit_event(&mut body, item, d),
            }
        }
        need_qtype |= self.items.values().any(|i| mentions(&i.def, "QType"));
        if need_qtype {
            body.push_str(QTYPE);
        }
        self.emit_tables(&mut body);
        if body.contains("Box<") {
            out.push_str("use alloc::boxed::Box;\n");
        }
        out.push_str("use alloc::string::String;\nuse alloc::vec::Vec;\n");
        out.push_str("use serde::{Deserialize, Serialize};\n\nuse crate::Availability;\n\n");
        out.push_str(&body);
        out
    }

    fn emit_enum(&self, out: &mut String, item: &UItem, vals: &[(String, Avail)]) {
        let names = unique(vals.iter().map(|(v, _)| camel(v)).collect(), &["Other"]);
        out.push_str("open_enum! {\n");
        out.push_str(&self.doc("Enum", "enum", item));
        let _ = writeln!(out, "{} {{", self.ident(&item.name));
        for ((wire, a), n) in vals.iter().zip(names) {
            let _ = writeln!(out, "/// `{wire}`{}.\n{n} = \"{wire}\",", avail_note(*a));
        }
        out.push_str("}\n}\n\n");
    }

    fn fields(&self, out: &mut String, owner: &str, members: &[UMember]) {
        let names = unique(members.iter().map(|m| snake(&m.name)).collect(), &[]);
        for (m, n) in members.iter().zip(names) {
            let _ = writeln!(out, "/// `{}`{}.", m.name, avail_note(m.avail));
            let mut attrs = Vec::new();
            if n != m.name {
                attrs.push(format!("rename = \"{}\"", m.name));
            }
            let mut ty = self.ty(owner, &m.ty);
            if m.optional {
                attrs.push("default, skip_serializing_if = \"Option::is_none\"".into());
                ty = format!("Option<{ty}>");
            }
            if !attrs.is_empty() {
                let _ = writeln!(out, "#[serde({})]", attrs.join(", "));
            }
            let _ = writeln!(out, "pub {n}: {ty},");
        }
    }

    fn derive(out: &mut String, members: &[UMember]) {
        let default = if members.iter().all(|m| m.optional) {
            "Default, "
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "#[derive(Clone, Debug, {default}PartialEq, Serialize, Deserialize)]"
        );
    }

    fn emit_struct(&self, out: &mut String, item: &UItem, word: &str, members: &[UMember]) {
        out.push_str(&self.doc(word, if word == "Event" { "event" } else { "object" }, item));
        Self::derive(out, members);
        let _ = writeln!(out, "pub struct {} {{", self.ident(&item.name));
        self.fields(out, &item.name, members);
        out.push_str("}\n\n");
    }

    fn emit_union(&self, out: &mut String, item: &UItem) {
        let UDef::Union {
            base,
            discriminator,
            tag_enum,
            branches,
        } = &item.def
        else {
            return;
        };
        let id = self.ident(&item.name);
        let branch_id = &self.branch_idents[&item.name];
        out.push_str(&self.doc("Union", "object", item));
        let _ = writeln!(
            out,
            "#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]\npub struct {id} {{"
        );
        self.fields(out, &item.name, base);
        let field = unique(
            vec![snake(discriminator)],
            &base
                .iter()
                .map(|m| snake(&m.name))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .remove(0);
        let _ = writeln!(
            out,
            "/// The branch `{discriminator}` selects, with its own members.\n#[serde(flatten)]\npub {field}: {branch_id},\n}}\n"
        );
        let tags: Vec<String> = match self.items.get(tag_enum).map(|i| &i.def) {
            Some(UDef::Enum(v)) => v.iter().map(|(t, _)| t.clone()).collect(),
            _ => branches.iter().map(|(t, _)| t.clone()).collect(),
        };
        let names = unique(tags.iter().map(|t| camel(t)).collect(), &["Other"]);
        let (mut data, mut unit) = (String::new(), String::new());
        for (tag, n) in tags.iter().zip(names) {
            match branches.iter().find(|(t, _)| t == tag) {
                Some((_, ty)) => {
                    let rt = self.ty(&item.name, &TypeRef::Named(ty.clone()));
                    let _ = writeln!(
                        data,
                        "/// `{discriminator}` is `{tag}`.\n{n}({rt}) = \"{tag}\","
                    );
                }
                None => {
                    let _ = writeln!(
                        unit,
                        "/// `{discriminator}` is `{tag}`, with no further members.\n{n} = \"{tag}\","
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "flat_branches! {{\n/// The branches of [`{id}`], by the value of `{discriminator}`.\n{branch_id} = \"{discriminator}\";\ndata {{\n{data}}}\nunit {{\n{unit}}}\n}}\n"
        );
    }

    fn emit_alternate(&self, out: &mut String, item: &UItem, branches: &[(String, TypeRef)]) {
        let names = unique(branches.iter().map(|(b, _)| camel(b)).collect(), &["Other"]);
        out.push_str(&self.doc("Alternate", "alternate", item));
        out.push_str("#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]\n#[serde(untagged)]\n#[non_exhaustive]\n");
        let _ = writeln!(out, "pub enum {} {{", self.ident(&item.name));
        for ((b, t), n) in branches.iter().zip(names) {
            let _ = writeln!(out, "/// Branch `{b}`.\n{n}({}),", self.ty(&item.name, t));
        }
        out.push_str("/// Any other JSON value, as sent.\nOther(serde_json::Value),\n}\n\n");
    }

    fn emit_command(&self, out: &mut String, item: &UItem) {
        let UDef::Command {
            args,
            returns,
            allow_oob,
            no_reply,
        } = &item.def
        else {
            return;
        };
        let id = self.ident(&item.name);
        let doc = self.doc("Command", "command", item);
        match args {
            UData::Members(m) if m.is_empty() => {
                let _ = writeln!(
                    out,
                    "{doc}#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]\npub struct {id};\n"
                );
            }
            UData::Members(m) => {
                out.push_str(&doc);
                Self::derive(out, m);
                let _ = writeln!(out, "pub struct {id} {{");
                self.fields(out, &item.name, m);
                out.push_str("}\n\n");
            }
            UData::Union(u) => {
                let _ = writeln!(
                    out,
                    "{doc}#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]\n#[serde(transparent)]\npub struct {id}(\n/// The arguments.\npub {},\n);\n",
                    self.ident(u)
                );
            }
        }
        let ret = match returns {
            None => "qmp_core::Empty".to_string(),
            Some(t) => self.ty("", t),
        };
        let _ = writeln!(
            out,
            "command!({id} = \"{}\" -> {ret}; oob: {allow_oob}, no_reply: {no_reply}, {});\n",
            item.name,
            avail_expr(item)
        );
    }

    fn emit_event(&self, out: &mut String, item: &UItem, data: &UData) {
        let id = self.ident(&item.name);
        match data {
            UData::Members(m) => self.emit_struct(out, item, "Event", m),
            UData::Union(u) => {
                let _ = writeln!(
                    out,
                    "{}#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]\n#[serde(transparent)]\npub struct {id}(\n/// The data.\npub {},\n);\n",
                    self.doc("Event", "event", item),
                    self.ident(u)
                );
            }
        }
        let _ = writeln!(
            out,
            "event!({id} = \"{}\", {});\n",
            item.name,
            avail_expr(item)
        );
    }

    fn emit_tables(&self, out: &mut String) {
        out.push_str("/// Every command of this protocol, in name order.\npub const COMMANDS: &[crate::CommandSpec] = &[\n");
        for (item, id) in &self.commands {
            let UDef::Command {
                allow_oob,
                no_reply,
                args,
                ..
            } = &item.def
            else {
                continue;
            };
            let no_args = matches!(args, UData::Members(m) if m.iter().all(|m| m.optional));
            let _ = writeln!(
                out,
                "crate::CommandSpec {{ name: <{id} as qmp_core::Command>::NAME, allow_oob: {allow_oob}, no_reply: {no_reply}, needs_arguments: {}, availability: {id}::AVAILABILITY }},",
                !no_args
            );
        }
        out.push_str("];\n\n/// Every event of this protocol, in name order.\npub const EVENTS: &[crate::EventSpec] = &[\n");
        for (_, id) in &self.events {
            let _ = writeln!(
                out,
                "crate::EventSpec {{ name: <{id} as qmp_core::EventData>::NAME, availability: {id}::AVAILABILITY, check: crate::support::check_event::<{id}> }},"
            );
        }
        out.push_str("];\n\n");
        // Callers of every argument-free command, in chunks so no function
        // grows long.
        let free: Vec<(usize, &String)> = self
            .commands
            .iter()
            .enumerate()
            .filter(|(_, (i, _))| matches!(&i.def, UDef::Command { args: UData::Members(m), .. } if m.iter().all(|m| m.optional)))
            .map(|(k, (_, id))| (k, id))
            .collect();
        let chunks: Vec<_> = free.chunks(60).collect();
        out.push_str("/// Hands every command that can be sent without arguments (its\n/// arguments type is `Default`) to `visitor`, typed.\n");
        out.push_str(
            "pub fn visit_commands_without_arguments(visitor: &mut impl crate::CommandVisitor) {\n",
        );
        for k in 0..chunks.len() {
            let _ = writeln!(out, "visit_part_{k}(visitor);");
        }
        out.push_str("}\n\n");
        for (k, chunk) in chunks.iter().enumerate() {
            let _ = writeln!(
                out,
                "fn visit_part_{k}(visitor: &mut impl crate::CommandVisitor) {{"
            );
            for (idx, id) in chunk.iter() {
                let _ = writeln!(out, "visitor.visit::<{id}>(&COMMANDS[{idx}]);");
            }
            out.push_str("}\n\n");
        }
    }
}

fn mentions(d: &UDef, name: &str) -> bool {
    let m = |ms: &[UMember]| ms.iter().any(|m| m.ty.leaf() == name);
    match d {
        UDef::Struct(ms) => m(ms),
        UDef::Union { base, .. } => m(base),
        UDef::Command {
            args: UData::Members(ms),
            ..
        }
        | UDef::Event(UData::Members(ms)) => m(ms),
        _ => false,
    }
}

fn avail_words(a: Avail) -> String {
    match a {
        [true, true] => format!("in QEMU {} and {}", VERSIONS[0], VERSIONS[1]),
        [true, false] => format!("in QEMU {} only", VERSIONS[0]),
        _ => format!("in QEMU {} only", VERSIONS[1]),
    }
}

fn avail_note(a: Avail) -> String {
    match a {
        [true, true] => String::new(),
        [true, false] => format!(" (QEMU {} only)", VERSIONS[0]),
        _ => format!(" (QEMU {} only)", VERSIONS[1]),
    }
}

fn avail_expr(item: &UItem) -> String {
    let since = match &item.since {
        Some(s) => format!("Some(\"{s}\")"),
        None => "None".into(),
    };
    format!(
        "Availability::new({}, {}, {since})",
        item.avail[0], item.avail[1]
    )
}

/// `(owner, member type)` pairs that close a cycle of by-value containment
/// and so must be boxed.
fn recursive_edges(items: &BTreeMap<String, UItem>) -> BTreeSet<(String, String)> {
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, item) in items {
        let mut to: Vec<&str> = Vec::new();
        let mut by_value = |t: &'_ TypeRef| {
            if let TypeRef::Named(n) = t
                && let Some((k, _)) = items.get_key_value(n)
            {
                to.push(k.as_str());
            }
        };
        match &item.def {
            UDef::Struct(ms) => ms.iter().for_each(|m| by_value(&m.ty)),
            UDef::Union { base, branches, .. } => {
                base.iter().for_each(|m| by_value(&m.ty));
                branches
                    .iter()
                    .for_each(|(_, b)| by_value(&TypeRef::Named(b.clone())));
            }
            UDef::Alternate(b) => b.iter().for_each(|(_, t)| by_value(t)),
            _ => {}
        }
        edges.insert(name.as_str(), to);
    }
    let reaches = |from: &str, target: &str| -> bool {
        let mut stack = vec![from];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if n == target {
                return true;
            }
            if seen.insert(n) {
                stack.extend(edges.get(n).into_iter().flatten().copied());
            }
        }
        false
    };
    let mut out = BTreeSet::new();
    for (from, tos) in &edges {
        for to in tos {
            if reaches(to, from) {
                out.insert((from.to_string(), to.to_string()));
            }
        }
    }
    out
}

const QTYPE: &str = "open_enum! {\n/// QAPI's built-in enum of JSON value kinds.\nQType {\n/// `none`.\nNone = \"none\",\n/// `qnull`.\nQnull = \"qnull\",\n/// `qnum`.\nQnum = \"qnum\",\n/// `qstring`.\nQstring = \"qstring\",\n/// `qdict`.\nQdict = \"qdict\",\n/// `qlist`.\nQlist = \"qlist\",\n/// `qbool`.\nQbool = \"qbool\",\n}\n}\n\n";
