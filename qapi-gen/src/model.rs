//! One schema version as definitions: struct bases flattened, command and
//! event data resolved to member lists where the wire form is a plain
//! object.

use std::collections::BTreeMap;

use crate::parse::{Expr, J};

/// A type as a member, argument or return value names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TypeRef {
    /// A built-in or defined type, by its QAPI name.
    Named(String),
    /// A JSON array of it.
    List(Box<TypeRef>),
}

impl TypeRef {
    /// The element type's name.
    pub fn leaf(&self) -> &str {
        match self {
            TypeRef::Named(n) => n,
            TypeRef::List(t) => t.leaf(),
        }
    }
}

/// A member of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The wire name (without QAPI's `*`).
    pub name: String,
    /// Its type.
    pub ty: TypeRef,
    /// Whether it may be absent.
    pub optional: bool,
}

/// What the arguments of a command or the data of an event are.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// An object with these members (possibly none).
    Members(Vec<Member>),
    /// A union type, by name.
    Union(String),
}

/// A definition's body.
#[derive(Clone, Debug, PartialEq)]
pub enum Def {
    /// An enumeration of strings.
    Enum(Vec<String>),
    /// An object; any base's members come first.
    Struct(Vec<Member>),
    /// A flat union: common members, the discriminator, branches by tag.
    Union {
        /// Common members, the discriminator among them.
        base: Vec<Member>,
        /// The member whose value picks the branch.
        discriminator: String,
        /// Tag to branch type; tags without one carry no extra members.
        branches: Vec<(String, String)>,
        /// The discriminator's enum type.
        tag_enum: String,
    },
    /// One of several JSON types.
    Alternate(Vec<(String, TypeRef)>),
    /// A command.
    Command {
        /// Its arguments.
        args: Data,
        /// Its return type (`None`: an empty object).
        returns: Option<TypeRef>,
        /// Whether it may run out of band.
        allow_oob: bool,
        /// Whether the server never answers it.
        no_reply: bool,
    },
    /// An event and its data.
    Event(Data),
}

/// A definition with its metadata.
#[derive(Clone, Debug)]
pub struct Item {
    /// The QAPI name.
    pub name: String,
    /// The body.
    pub def: Def,
    /// The `Since:` version from its doc comment.
    pub since: Option<String>,
    /// The schema module (file stem) defining it.
    pub module: String,
    /// Its `if` condition, rendered, if any.
    pub cond: Option<String>,
    /// Its features (`deprecated`, `unstable`, ...).
    pub features: Vec<String>,
}

/// One version's definitions by name (commands, events and types share
/// QAPI's one namespace).
#[derive(Clone, Debug, Default)]
pub struct Schema {
    /// All definitions.
    pub items: BTreeMap<String, Item>,
}

/// Renders an `if` condition compactly.
fn cond(j: &J) -> String {
    match j {
        J::Str(s) => s.clone(),
        J::Obj(m) => {
            let (op, v) = &m[0];
            match (op.as_str(), v) {
                ("not", v) => format!("not({})", cond(v)),
                (op, J::List(l)) => {
                    let parts: Vec<String> = l.iter().map(cond).collect();
                    format!("{op}({})", parts.join(", "))
                }
                (op, v) => format!("{op}({})", cond(v)),
            }
        }
        J::List(l) => l.iter().map(cond).collect::<Vec<_>>().join(", "),
        J::Bool(b) => b.to_string(),
    }
}

fn type_ref(j: &J) -> Result<TypeRef, String> {
    match j {
        J::Str(s) => Ok(TypeRef::Named(s.clone())),
        J::List(l) if l.len() == 1 => Ok(TypeRef::List(Box::new(type_ref(&l[0])?))),
        J::Obj(_) => type_ref(j.get("type").ok_or("member without a type")?),
        _ => Err(format!("not a type: {j:?}")),
    }
}

fn members(j: &J) -> Result<Vec<Member>, String> {
    let J::Obj(m) = j else {
        return Err(format!("expected members, found {j:?}"));
    };
    m.iter()
        .map(|(k, v)| {
            let (name, optional) = match k.strip_prefix('*') {
                Some(n) => (n.to_string(), true),
                None => (k.clone(), false),
            };
            Ok(Member {
                name,
                ty: type_ref(v)?,
                optional,
            })
        })
        .collect()
}

fn features(j: &J) -> Vec<String> {
    match j.get("features") {
        Some(J::List(l)) => l
            .iter()
            .filter_map(|f| f.as_str().or_else(|| f.get("name").and_then(J::as_str)))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// The raw forms before bases are resolved.
enum Raw {
    Def(Def),
    Struct {
        base: Option<String>,
        own: Vec<Member>,
    },
    Union {
        base: J,
        discriminator: String,
        branches: Vec<(String, String)>,
    },
    Command {
        data: Option<J>,
        returns: Option<TypeRef>,
        allow_oob: bool,
        no_reply: bool,
    },
    Event(Option<J>),
}

fn raw(v: &J) -> Result<Option<(String, Raw)>, String> {
    let s = |k: &str| v.get(k).and_then(J::as_str).map(str::to_string);
    let flag = |k: &str| v.get(k) == Some(&J::Bool(true));
    if let Some(name) = s("enum") {
        let J::List(l) = v.get("data").ok_or("enum without data")? else {
            return Err(format!("enum {name}: data is not a list"));
        };
        let vals = l
            .iter()
            .filter_map(|m| m.as_str().or_else(|| m.get("name").and_then(J::as_str)))
            .map(str::to_string)
            .collect();
        return Ok(Some((name, Raw::Def(Def::Enum(vals)))));
    }
    if let Some(name) = s("struct") {
        let own = members(v.get("data").unwrap_or(&J::Obj(Vec::new())))?;
        return Ok(Some((
            name,
            Raw::Struct {
                base: s("base"),
                own,
            },
        )));
    }
    if let Some(name) = s("union") {
        let base = v
            .get("base")
            .cloned()
            .ok_or_else(|| format!("union {name} without base"))?;
        let discriminator =
            s("discriminator").ok_or_else(|| format!("union {name}: no discriminator"))?;
        let J::Obj(b) = v.get("data").ok_or("union without data")? else {
            return Err(format!("union {name}: data is not an object"));
        };
        let branches = b
            .iter()
            .map(|(k, t)| Ok((k.clone(), type_ref(t)?.leaf().to_string())))
            .collect::<Result<_, String>>()?;
        return Ok(Some((
            name,
            Raw::Union {
                base,
                discriminator,
                branches,
            },
        )));
    }
    if let Some(name) = s("alternate") {
        let J::Obj(b) = v.get("data").ok_or("alternate without data")? else {
            return Err(format!("alternate {name}: data is not an object"));
        };
        let branches = b
            .iter()
            .map(|(k, t)| Ok((k.clone(), type_ref(t)?)))
            .collect::<Result<_, String>>()?;
        return Ok(Some((name, Raw::Def(Def::Alternate(branches)))));
    }
    if let Some(name) = s("command") {
        let returns = v.get("returns").map(type_ref).transpose()?;
        let no_reply = v.get("success-response") == Some(&J::Bool(false));
        let data = v.get("data").cloned();
        return Ok(Some((
            name,
            Raw::Command {
                data,
                returns,
                allow_oob: flag("allow-oob"),
                no_reply,
            },
        )));
    }
    if let Some(name) = s("event") {
        return Ok(Some((name, Raw::Event(v.get("data").cloned()))));
    }
    Ok(None)
}

/// Builds one version's schema from its parsed definitions.
pub fn build(exprs: &[Expr]) -> Result<Schema, String> {
    let mut raws = BTreeMap::new();
    let mut meta = BTreeMap::new();
    for e in exprs {
        let Some((name, r)) = raw(&e.value)? else {
            continue;
        };
        let c = e.value.get("if").map(cond);
        meta.insert(
            name.clone(),
            (e.since.clone(), e.module.clone(), c, features(&e.value)),
        );
        raws.insert(name, r);
    }
    let mut schema = Schema::default();
    for (name, r) in &raws {
        let def = resolve(name, r, &raws)?;
        let (since, module, cond, features) = meta[name].clone();
        schema.items.insert(
            name.clone(),
            Item {
                name: name.clone(),
                def,
                since,
                module,
                cond,
                features,
            },
        );
    }
    Ok(schema)
}

fn struct_members(name: &str, raws: &BTreeMap<String, Raw>) -> Result<Vec<Member>, String> {
    match raws.get(name) {
        Some(Raw::Struct { base, own }) => {
            let mut all = match base {
                Some(b) => struct_members(b, raws)?,
                None => Vec::new(),
            };
            all.extend(own.iter().cloned());
            Ok(all)
        }
        _ => Err(format!("{name} is not a struct")),
    }
}

fn data(d: &Option<J>, raws: &BTreeMap<String, Raw>) -> Result<Data, String> {
    match d {
        None => Ok(Data::Members(Vec::new())),
        Some(J::Str(t)) => match raws.get(t.as_str()) {
            Some(Raw::Union { .. }) => Ok(Data::Union(t.clone())),
            _ => Ok(Data::Members(struct_members(t, raws)?)),
        },
        Some(j) => Ok(Data::Members(members(j)?)),
    }
}

fn resolve(name: &str, r: &Raw, raws: &BTreeMap<String, Raw>) -> Result<Def, String> {
    Ok(match r {
        Raw::Def(d) => d.clone(),
        Raw::Struct { .. } => Def::Struct(struct_members(name, raws)?),
        Raw::Union {
            base,
            discriminator,
            branches,
        } => {
            let base = match base {
                J::Str(b) => struct_members(b, raws)?,
                j => members(j)?,
            };
            let tag_enum = base
                .iter()
                .find(|m| &m.name == discriminator)
                .map(|m| m.ty.leaf().to_string())
                .ok_or_else(|| format!("union {name}: discriminator not among the base members"))?;
            Def::Union {
                base,
                discriminator: discriminator.clone(),
                branches: branches.clone(),
                tag_enum,
            }
        }
        Raw::Command {
            data: d,
            returns,
            allow_oob,
            no_reply,
        } => Def::Command {
            args: data(d, raws)?,
            returns: returns.clone(),
            allow_oob: *allow_oob,
            no_reply: *no_reply,
        },
        Raw::Event(d) => Def::Event(data(d, raws)?),
    })
}
