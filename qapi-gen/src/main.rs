//! `qapi-gen [--check] [SCHEMA_DIR]`: regenerates qmp-qapi from QEMU's QAPI
//! schemas (fetched by `scripts/fetch-schemas.sh`), or with `--check` only
//! reports whether the committed files are up to date.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = None;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!("usage: qapi-gen [--check] [SCHEMA_DIR]");
                return ExitCode::SUCCESS;
            }
            d => dir = Some(PathBuf::from(d)),
        }
    }
    let dir = dir.unwrap_or_else(qapi_gen::schema_dir);
    if !qapi_gen::schemas_present(&dir) {
        eprintln!(
            "no schemas under {}: run scripts/fetch-schemas.sh",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    let out = match qapi_gen::generate(&dir) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut stale = false;
    for (path, text) in &out.files {
        let full = root.join(path);
        let same = std::fs::read_to_string(&full).is_ok_and(|old| &old == text);
        if same {
            continue;
        }
        stale = true;
        if check {
            eprintln!("out of date: {}", path.display());
        } else if let Err(e) = std::fs::write(&full, text) {
            eprintln!("cannot write {}: {e}", full.display());
            return ExitCode::FAILURE;
        } else {
            println!("wrote {}", path.display());
        }
    }
    for n in &out.notes {
        println!("note: {n}");
    }
    for (m, c, e, t) in &out.counts {
        println!("{m}: {c} commands, {e} events, {t} types");
    }
    if check && stale {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
