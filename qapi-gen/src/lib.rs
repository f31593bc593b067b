//! Generates `qmp-qapi`, the typed QMP and guest-agent surface, from
//! QEMU's QAPI schemas of several versions (see `scripts/fetch-schemas.sh`).
//!
//! The output is the union of the versions: anything one version lacks, or
//! makes optional, is an `Option`; enums and union tags stay open. The
//! generated files are committed, so building never needs a schema.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub mod emit;
pub mod merge;
pub mod model;
pub mod names;
pub mod parse;
pub mod samples;

use emit::{Flavor, Ns};

/// The QMP flavor.
pub const QMP: Flavor = Flavor {
    module: "qmp",
    namespace: "QMP",
    page: "qemu-qmp-ref.html",
    title: "Every QMP command, event and type",
};

/// The guest agent flavor.
pub const QGA: Flavor = Flavor {
    module: "qga",
    namespace: "QGA",
    page: "qemu-ga-ref.html",
    title: "Every guest-agent command and type",
};

/// Where the schemas are: `$QAPI_SCHEMA_DIR`, else
/// `$HOME/.cache/qmp-rs/qapi` (what `scripts/fetch-schemas.sh` fills).
pub fn schema_dir() -> PathBuf {
    if let Ok(d) = std::env::var("QAPI_SCHEMA_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    Path::new(&home).join(".cache/qmp-rs/qapi")
}

/// Whether every version's schemas are present under `dir`.
pub fn schemas_present(dir: &Path) -> bool {
    merge::VERSIONS.iter().all(|v| {
        dir.join(v).join("qapi/qapi-schema.json").exists()
            && dir.join(v).join("qga/qapi-schema.json").exists()
    })
}

/// A generated file: path relative to the workspace root, and contents.
pub struct Output {
    /// Files to write.
    pub files: Vec<(PathBuf, String)>,
    /// Disagreements between versions and how each was resolved.
    pub notes: Vec<String>,
    /// `(module, commands, events, types)` counts.
    pub counts: Vec<(&'static str, usize, usize, usize)>,
}

/// Generates every file from the schemas under `dir`.
pub fn generate(dir: &Path) -> Result<Output, String> {
    let mut out = Output {
        files: Vec::new(),
        notes: Vec::new(),
        counts: Vec::new(),
    };
    let mut samples = String::new();
    for (flavor, file) in [
        (QMP, "qapi/qapi-schema.json"),
        (QGA, "qga/qapi-schema.json"),
    ] {
        let mut schemas = [model::Schema::default(), model::Schema::default()];
        for (k, v) in merge::VERSIONS.iter().enumerate() {
            let exprs = parse::load(&dir.join(v).join(file))?;
            schemas[k] = model::build(&exprs)?;
        }
        let merged = merge::merge(&schemas, &mut out.notes);
        let ns = Ns::new(flavor, &merged);
        let code = rustfmt(&ns.emit())?;
        let types = merged.len() - ns.commands.len() - ns.events.len();
        out.counts
            .push((flavor.module, ns.commands.len(), ns.events.len(), types));
        out.files.push((
            PathBuf::from(format!("qmp-qapi/src/{}.rs", flavor.module)),
            code,
        ));
        samples.push_str(&samples::emit(flavor, &merged, &ns));
    }
    let test = format!("{}{samples}", samples::HEADER);
    out.files.push((
        PathBuf::from("qmp-qapi/tests/roundtrip.rs"),
        rustfmt(&test)?,
    ));
    Ok(out)
}

/// Formats Rust source with `rustfmt` (edition 2024).
pub fn rustfmt(src: &str) -> Result<String, String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run rustfmt: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let src = src.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(src.as_bytes()));
    let done = child
        .wait_with_output()
        .map_err(|e| format!("rustfmt: {e}"))?;
    writer
        .join()
        .map_err(|_| "rustfmt writer panicked")?
        .map_err(|e| format!("rustfmt: {e}"))?;
    if !done.status.success() {
        return Err(format!(
            "rustfmt failed: {}",
            String::from_utf8_lossy(&done.stderr)
        ));
    }
    String::from_utf8(done.stdout).map_err(|e| format!("rustfmt output: {e}"))
}
