//! The union of several schema versions: every definition any of them has,
//! with members made optional wherever the versions disagree.

use std::collections::BTreeMap;

use crate::model::{Data, Def, Item, Member, Schema, TypeRef};

/// The versions merged, oldest first; `Avail` is indexed the same way.
pub const VERSIONS: [&str; 2] = ["7.2", "10.0"];

/// Which of [`VERSIONS`] have something.
pub type Avail = [bool; 2];

/// A member of the merged object.
#[derive(Clone, Debug, PartialEq)]
pub struct UMember {
    /// The wire name.
    pub name: String,
    /// Its type (`any` where the versions disagree).
    pub ty: TypeRef,
    /// Optional in the merged type.
    pub optional: bool,
    /// Versions that have it.
    pub avail: Avail,
}

/// Merged command arguments or event data.
#[derive(Clone, Debug, PartialEq)]
pub enum UData {
    /// An object with these members.
    Members(Vec<UMember>),
    /// A union type, by name.
    Union(String),
}

/// A merged definition.
#[derive(Clone, Debug, PartialEq)]
pub enum UDef {
    /// Enum values and the versions that have each.
    Enum(Vec<(String, Avail)>),
    /// Object members.
    Struct(Vec<UMember>),
    /// A flat union.
    Union {
        /// Common members other than the discriminator.
        base: Vec<UMember>,
        /// The discriminator's wire name.
        discriminator: String,
        /// The discriminator's enum type.
        tag_enum: String,
        /// Tag to branch type.
        branches: Vec<(String, String)>,
    },
    /// Branches by name.
    Alternate(Vec<(String, TypeRef)>),
    /// A command.
    Command {
        /// Arguments.
        args: UData,
        /// Return type; `None` is an empty object.
        returns: Option<TypeRef>,
        /// May run out of band (in any version).
        allow_oob: bool,
        /// The server never answers it.
        no_reply: bool,
    },
    /// An event.
    Event(UData),
}

/// A merged definition with metadata.
#[derive(Clone, Debug)]
pub struct UItem {
    /// QAPI name.
    pub name: String,
    /// Body.
    pub def: UDef,
    /// Versions that have it.
    pub avail: Avail,
    /// `Since:` (newest version that has it).
    pub since: Option<String>,
    /// QEMU module (newest version that has it).
    pub module: String,
    /// `if` condition (newest version that has it).
    pub cond: Option<String>,
    /// Features (newest version that has it).
    pub features: Vec<String>,
}

/// Merges the versions; `notes` collects every disagreement resolved by a
/// fallback, for the generator's report.
pub fn merge(schemas: &[Schema; 2], notes: &mut Vec<String>) -> BTreeMap<String, UItem> {
    let kinds = Kinds { schemas };
    let mut names: Vec<&String> = schemas.iter().flat_map(|s| s.items.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let items: [Option<&Item>; 2] =
                [schemas[0].items.get(name), schemas[1].items.get(name)];
            (name.clone(), merge_item(items, &kinds, notes))
        })
        .collect()
}

fn avail_of<T>(x: &[Option<T>; 2]) -> Avail {
    [x[0].is_some(), x[1].is_some()]
}

fn merge_item(items: [Option<&Item>; 2], kinds: &Kinds<'_>, notes: &mut Vec<String>) -> UItem {
    let newest = items[1].or(items[0]).expect("present in some version");
    let avail = avail_of(&items);
    let kind = |d: &Def| std::mem::discriminant(d);
    let same_kind = items
        .iter()
        .flatten()
        .all(|i| kind(&i.def) == kind(&newest.def));
    let mut converted: [Option<Def>; 2] = [None, None];
    if !same_kind {
        for (k, i) in items.iter().enumerate() {
            let Some(i) = i else { continue };
            converted[k] = match (&newest.def, &i.def) {
                (a, b) if kind(a) == kind(b) => Some(b.clone()),
                // A struct that became a union: its members are the base.
                (
                    Def::Union {
                        discriminator,
                        tag_enum,
                        ..
                    },
                    Def::Struct(ms),
                ) => {
                    notes.push(format!(
                        "{}: a struct before it became a union; its members join the base",
                        i.name
                    ));
                    Some(Def::Union {
                        base: ms.clone(),
                        discriminator: discriminator.clone(),
                        branches: Vec::new(),
                        tag_enum: tag_enum.clone(),
                    })
                }
                _ => {
                    notes.push(format!(
                        "{}: changed kind between versions; the newest is used",
                        i.name
                    ));
                    None
                }
            };
        }
    }
    let defs: [Option<&Def>; 2] = if same_kind {
        [items[0].map(|i| &i.def), items[1].map(|i| &i.def)]
    } else {
        [converted[0].as_ref(), converted[1].as_ref()]
    };
    UItem {
        name: newest.name.clone(),
        def: merge_def(&newest.name, defs, kinds, notes),
        avail,
        since: items.iter().rev().flatten().find_map(|i| i.since.clone()),
        module: newest.module.clone(),
        cond: newest.cond.clone(),
        features: newest.features.clone(),
    }
}

fn merge_def(
    name: &str,
    defs: [Option<&Def>; 2],
    kinds: &Kinds<'_>,
    notes: &mut Vec<String>,
) -> UDef {
    let newest = defs[1].or(defs[0]).expect("present in some version");
    match newest {
        Def::Enum(_) => {
            let lists = defs.map(|d| match d {
                Some(Def::Enum(v)) => Some(v.clone()),
                _ => None,
            });
            UDef::Enum(merge_names(&lists))
        }
        Def::Struct(_) => {
            let lists = defs.map(|d| match d {
                Some(Def::Struct(m)) => Some(m.as_slice()),
                _ => None,
            });
            UDef::Struct(merge_members(name, lists, kinds, notes))
        }
        Def::Union {
            discriminator,
            tag_enum,
            ..
        } => merge_union(name, defs, kinds, discriminator, tag_enum, notes),
        Def::Alternate(_) => {
            let mut branches: Vec<(String, TypeRef)> = Vec::new();
            for d in defs.iter().rev().flatten() {
                if let Def::Alternate(b) = d {
                    for (k, t) in b {
                        if !branches.iter().any(|(n, _)| n == k) {
                            branches.push((k.clone(), t.clone()));
                        }
                    }
                }
            }
            UDef::Alternate(branches)
        }
        Def::Command { .. } => merge_command(name, defs, kinds, notes),
        Def::Event(_) => {
            let datas = defs.map(|d| match d {
                Some(Def::Event(x)) => Some(x),
                _ => None,
            });
            UDef::Event(merge_data(name, datas, kinds, notes))
        }
    }
}

fn merge_union(
    name: &str,
    defs: [Option<&Def>; 2],
    kinds: &Kinds<'_>,
    discriminator: &str,
    tag_enum: &str,
    notes: &mut Vec<String>,
) -> UDef {
    let mut bases: [Option<Vec<Member>>; 2] = [None, None];
    let mut branches: Vec<(String, String)> = Vec::new();
    for (k, d) in defs.iter().enumerate() {
        if let Some(Def::Union {
            base,
            discriminator: disc,
            branches: b,
            ..
        }) = d
        {
            if disc != discriminator {
                notes.push(format!("{name}: discriminator changed; the newest is used"));
                continue;
            }
            bases[k] = Some(
                base.iter()
                    .filter(|m| m.name != discriminator)
                    .cloned()
                    .collect(),
            );
            for (tag, ty) in b {
                match branches.iter_mut().find(|(t, _)| t == tag) {
                    // The newest version's branch type wins.
                    Some(existing) => existing.1 = ty.clone(),
                    None => branches.push((tag.clone(), ty.clone())),
                }
            }
        }
    }
    let lists = [bases[0].as_deref(), bases[1].as_deref()];
    let mut base = merge_members(name, lists, kinds, notes);
    // Members an older plain object had that now live in a branch belong
    // to the branch (a base member would take them first).
    base.retain(|m| {
        !branches.iter().any(|(_, b)| {
            matches!(kinds.def(b), Some(Def::Struct(ms)) if ms.iter().any(|x| x.name == m.name))
        })
    });
    UDef::Union {
        base,
        discriminator: discriminator.to_string(),
        tag_enum: tag_enum.to_string(),
        branches,
    }
}

fn merge_command(
    name: &str,
    defs: [Option<&Def>; 2],
    kinds: &Kinds<'_>,
    notes: &mut Vec<String>,
) -> UDef {
    let mut args: [Option<&Data>; 2] = [None, None];
    let mut rets: Vec<Option<&TypeRef>> = Vec::new();
    let (mut allow_oob, mut no_reply) = (false, false);
    for (k, d) in defs.iter().enumerate() {
        if let Some(Def::Command {
            args: a,
            returns,
            allow_oob: o,
            no_reply: n,
        }) = d
        {
            args[k] = Some(a);
            rets.push(returns.as_ref());
            allow_oob |= *o;
            no_reply |= *n;
        }
    }
    let returns = if rets.windows(2).all(|w| w[0] == w[1]) {
        rets[0].cloned()
    } else {
        notes.push(format!(
            "{name}: return type changed; decoded as any JSON value"
        ));
        Some(TypeRef::Named("any".into()))
    };
    UDef::Command {
        args: merge_data(name, args, kinds, notes),
        returns,
        allow_oob,
        no_reply,
    }
}

fn merge_data(
    name: &str,
    datas: [Option<&Data>; 2],
    kinds: &Kinds<'_>,
    notes: &mut Vec<String>,
) -> UData {
    let newest = datas[1].or(datas[0]).expect("present in some version");
    match newest {
        Data::Union(u) => {
            if datas.iter().flatten().any(|d| *d != newest) {
                notes.push(format!("{name}: data changed form; the newest is used"));
            }
            UData::Union(u.clone())
        }
        Data::Members(_) => {
            let lists = datas.map(|d| match d {
                Some(Data::Members(m)) => Some(m.as_slice()),
                _ => None,
            });
            UData::Members(merge_members(name, lists, kinds, notes))
        }
    }
}

/// Names of every version, the newest's order first, then names only older
/// versions have.
fn merge_names(lists: &[Option<Vec<String>>; 2]) -> Vec<(String, Avail)> {
    let mut out: Vec<(String, Avail)> = Vec::new();
    for k in [1, 0] {
        for n in lists[k].iter().flatten() {
            match out.iter_mut().find(|(x, _)| x == n) {
                Some((_, a)) => a[k] = true,
                None => {
                    let mut a = [false; 2];
                    a[k] = true;
                    out.push((n.clone(), a));
                }
            }
        }
    }
    out
}

/// The type for a member whose type differs: the newest where every older
/// value still decodes as it (an enum for an enum, since enums are open;
/// an integer for an integer; an alternate with the older type as a
/// branch), else any JSON value.
fn reconcile(
    owner: &str,
    member: &str,
    newest: &TypeRef,
    older: &TypeRef,
    kinds: &Kinds<'_>,
    notes: &mut Vec<String>,
) -> TypeRef {
    const INTS: &[&str] = &[
        "int", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "size",
    ];
    let fits = match (newest, older) {
        (TypeRef::Named(a), TypeRef::Named(b)) => {
            (kinds.is_enum(a) && kinds.is_enum(b))
                || (INTS.contains(&a.as_str()) && INTS.contains(&b.as_str()))
                || kinds.alternate_has(a, older)
        }
        (TypeRef::List(a), TypeRef::List(b)) => {
            matches!((&**a, &**b), (TypeRef::Named(x), TypeRef::Named(y)) if kinds.is_enum(x) && kinds.is_enum(y))
        }
        _ => false,
    };
    if fits {
        notes.push(format!(
            "{owner}.{member}: type changed; the newest type also decodes the older values"
        ));
        newest.clone()
    } else {
        notes.push(format!(
            "{owner}.{member}: type changed; decoded as any JSON value"
        ));
        TypeRef::Named("any".into())
    }
}

/// What kind each name is, in any version.
pub struct Kinds<'a> {
    schemas: &'a [Schema; 2],
}

impl Kinds<'_> {
    fn def(&self, n: &str) -> Option<&Def> {
        self.schemas
            .iter()
            .rev()
            .find_map(|s| s.items.get(n))
            .map(|i| &i.def)
    }

    fn is_enum(&self, n: &str) -> bool {
        matches!(self.def(n), Some(Def::Enum(_)))
    }

    fn alternate_has(&self, n: &str, t: &TypeRef) -> bool {
        matches!(self.def(n), Some(Def::Alternate(b)) if b.iter().any(|(_, x)| x == t))
    }
}

fn merge_members(
    name: &str,
    lists: [Option<&[Member]>; 2],
    kinds: &Kinds<'_>,
    notes: &mut Vec<String>,
) -> Vec<UMember> {
    let present = avail_of(&lists);
    let mut out: Vec<UMember> = Vec::new();
    for k in [1, 0] {
        for m in lists[k].into_iter().flatten() {
            match out.iter_mut().find(|u| u.name == m.name) {
                Some(u) => {
                    u.avail[k] = true;
                    u.optional |= m.optional;
                    if u.ty != m.ty {
                        u.ty = reconcile(name, &m.name, &u.ty, &m.ty, kinds, notes);
                    }
                }
                None => {
                    let mut avail = [false; 2];
                    avail[k] = true;
                    out.push(UMember {
                        name: m.name.clone(),
                        ty: m.ty.clone(),
                        optional: m.optional,
                        avail,
                    });
                }
            }
        }
    }
    // Absent from a version that has the object: optional.
    for u in &mut out {
        if (0..2).any(|k| present[k] && !u.avail[k]) {
            u.optional = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model, parse};

    fn schema(text: &str) -> Schema {
        model::build(&parse::parse_str(text, "m").unwrap()).unwrap()
    }

    fn merged() -> BTreeMap<String, UItem> {
        let old = schema(
            "{ 'enum': 'E', 'data': ['a', 'b'] }
             { 'struct': 'S', 'data': { 'both': 'int', 'old-only': 'str', 'req-then-opt': 'str',
                                        'renamed-enum': 'E' } }
             { 'struct': 'Plain', 'data': { 'x': 'int', 'y': 'int' } }
             { 'command': 'gone', 'returns': 'S' }",
        );
        let new = schema(
            "{ 'enum': 'E', 'data': ['b', 'c'] }
             { 'enum': 'E2', 'data': ['a'] }
             { 'enum': 'K', 'data': ['k1'] }
             { 'struct': 'S', 'data': { 'both': 'int', '*req-then-opt': 'str', 'new-only': 'bool',
                                        'renamed-enum': 'E2' } }
             { 'struct': 'K1', 'data': { 'y': 'int' } }
             { 'union': 'Plain', 'base': { 'kind': 'K', 'x': 'int' }, 'discriminator': 'kind',
               'data': { 'k1': 'K1' } }
             { 'command': 'fresh', 'data': { 'arg': 'str' }, 'allow-oob': true }",
        );
        let mut notes = Vec::new();
        merge(&[old, new], &mut notes)
    }

    fn member<'a>(item: &'a UItem, name: &str) -> &'a UMember {
        let UDef::Struct(ms) = &item.def else {
            panic!("{} is not a struct", item.name)
        };
        ms.iter().find(|m| m.name == name).unwrap()
    }

    #[test]
    fn members_disagreeing_between_versions_are_optional() {
        let m = merged();
        let s = &m["S"];
        assert!(!member(s, "both").optional);
        assert!(member(s, "old-only").optional);
        assert_eq!(member(s, "old-only").avail, [true, false]);
        assert!(member(s, "new-only").optional);
        assert!(member(s, "req-then-opt").optional);
        // An enum for an enum: the newest type, which is open.
        assert_eq!(member(s, "renamed-enum").ty, TypeRef::Named("E2".into()));
    }

    #[test]
    fn enums_are_the_union_of_values_and_items_say_where_they_exist() {
        let m = merged();
        let UDef::Enum(vals) = &m["E"].def else {
            panic!()
        };
        let names: Vec<&str> = vals.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(names, ["b", "c", "a"]);
        assert_eq!(m["gone"].avail, [true, false]);
        assert_eq!(m["fresh"].avail, [false, true]);
        assert!(matches!(
            m["fresh"].def,
            UDef::Command {
                allow_oob: true,
                ..
            }
        ));
    }

    #[test]
    fn a_struct_that_became_a_union_keeps_its_members_outside_the_branches() {
        let m = merged();
        let UDef::Union {
            base,
            branches,
            discriminator,
            ..
        } = &m["Plain"].def
        else {
            panic!()
        };
        assert_eq!(discriminator, "kind");
        let names: Vec<&str> = base.iter().map(|b| b.name.as_str()).collect();
        // `y` moved into the k1 branch; `kind` is the discriminator.
        assert_eq!(names, ["x"]);
        assert_eq!(branches, &[("k1".to_string(), "K1".to_string())]);
    }
}
