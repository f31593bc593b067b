//! QAPI names to Rust identifiers, deterministically: keywords get a `_`
//! suffix, names starting with a digit a letter prefix, and names that
//! collide after conversion a numeric suffix in definition order.

const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

fn parts(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
}

fn capitalize(p: &str) -> String {
    let mut c = p.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// `virtio-blk-pci` -> `VirtioBlkPci`; `BLOCK_JOB_COMPLETED` ->
/// `BlockJobCompleted` (all-capital names are lowered first); a leading
/// digit gets a `V` prefix.
pub fn camel(s: &str) -> String {
    let shout =
        s.chars().any(|c| c.is_ascii_uppercase()) && !s.chars().any(|c| c.is_ascii_lowercase());
    let mut out: String = parts(s)
        .map(|p| {
            if shout {
                capitalize(&p.to_ascii_lowercase())
            } else {
                capitalize(p)
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    out
}

/// Names the generated code uses unqualified; a QAPI type called one of
/// these gets a `Value` suffix (`String` -> `StringValue`).
const PRELUDE: &[&str] = &["Box", "Option", "Result", "String", "Vec", "Value"];

/// A type's Rust name: QAPI's own where it is already one identifier.
pub fn type_name(s: &str) -> String {
    if PRELUDE.contains(&s) {
        format!("{s}Value")
    } else if s.chars().all(|c| c.is_ascii_alphanumeric())
        && s.starts_with(|c: char| c.is_ascii_uppercase())
    {
        s.to_string()
    } else {
        camel(s)
    }
}

/// `node-name` -> `node_name`; `type` -> `type_`; `0` -> `n0`.
pub fn snake(s: &str) -> String {
    let mut out: String = parts(s)
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("_");
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'n');
    }
    if KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// Makes `names` unique in order: a repeat gets `2`, `3`, ... appended
/// (with `_` before it for snake-case names).
pub fn unique(names: Vec<String>, reserved: &[&str]) -> Vec<String> {
    let mut taken: Vec<String> = reserved.iter().map(|s| s.to_string()).collect();
    names
        .into_iter()
        .map(|n| {
            let sep = if n.starts_with(|c: char| c.is_ascii_lowercase()) {
                "_"
            } else {
                ""
            };
            let mut candidate = n.clone();
            let mut k = 2;
            while taken.contains(&candidate) {
                candidate = format!("{}{sep}{k}", n.trim_end_matches('_'));
                k += 1;
            }
            taken.push(candidate.clone());
            candidate
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(camel("virtio-blk-pci"), "VirtioBlkPci");
        assert_eq!(camel("BLOCK_JOB_COMPLETED"), "BlockJobCompleted");
        assert_eq!(camel("query-status"), "QueryStatus");
        assert_eq!(camel("0"), "V0");
        assert_eq!(camel("EAX"), "Eax");
        assert_eq!(type_name("X86CPURegister32"), "X86CPURegister32");
        assert_eq!(snake("node-name"), "node_name");
        assert_eq!(snake("type"), "type_");
        assert_eq!(snake("2"), "n2");
        assert_eq!(unique(vec!["a".into(), "a".into()], &[]), ["a", "a_2"]);
        assert_eq!(unique(vec!["Other".into()], &["Other"]), ["Other2"]);
    }
}
