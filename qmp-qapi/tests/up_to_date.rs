//! The committed generated files are what `qapi-gen` makes from the
//! schemas, when the schemas are present (`scripts/fetch-schemas.sh`).
//! Without them (or without rustfmt, which formats the output) there is
//! nothing to compare with: the test says so and passes, since building
//! never needs the schemas.

use std::path::Path;

#[test]
fn generated_code_matches_the_schemas() {
    let dir = qapi_gen::schema_dir();
    if !qapi_gen::schemas_present(&dir) {
        eprintln!(
            "SKIPPED: no QAPI schemas under {} (run scripts/fetch-schemas.sh to check the generated code)",
            dir.display()
        );
        return;
    }
    let rustfmt = std::process::Command::new("rustfmt")
        .arg("--version")
        .output();
    if !rustfmt.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: rustfmt is not installed; the generated code is formatted with it");
        return;
    }
    let out = qapi_gen::generate(&dir).expect("generator runs on the fetched schemas");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let stale: Vec<String> = out
        .files
        .iter()
        .filter(|(path, text)| std::fs::read_to_string(root.join(path)).ok().as_ref() != Some(text))
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; run `cargo run -p qapi-gen` and commit the result"
    );
}
