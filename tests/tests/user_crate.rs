//! The README examples, compiled the way a user's crate would compile
//! them: a fresh crate outside the workspace whose only dependencies are
//! the library crates (by path) and the runtimes a user adds (`smol`,
//! `tokio`, `embedded-io`), none of the workspace's dev-dependencies.
//!
//! Every `rust` code block of the root README and of each library crate's
//! README that is not marked `ignore` becomes one example of that crate,
//! with rustdoc's conventions: `# ` hides a line that still compiles, and
//! a block without `fn main` is the body of one. The same crate's
//! dependency tree must hold neither clap nor rustyline (the shell's).
#![allow(clippy::std_instead_of_core)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The READMEs whose examples a user copies.
const READMES: &[&str] = &[
    "README.md",
    "qmp-core/README.md",
    "qmp-os/README.md",
    "qmp-std/README.md",
    "qmp-async/README.md",
    "qmp-smol/README.md",
    "qmp-tokio/README.md",
    "qmp-qapi/README.md",
];

/// The crate's dependencies: what a user adds, nothing more.
fn manifest(root: &Path) -> String {
    let path = |name: &str| root.join(name).display().to_string();
    format!(
        r#"[package]
name = "user-crate"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
qmp-core = {{ path = "{core}", features = ["embedded-io"] }}
qmp-os = {{ path = "{os}" }}
qmp-std = {{ path = "{std}" }}
qmp-async = {{ path = "{asy}" }}
qmp-smol = {{ path = "{smol}" }}
qmp-tokio = {{ path = "{tokio}" }}
qmp-qapi = {{ path = "{qapi}" }}
smol = "2"
tokio = {{ version = "1", features = ["rt", "rt-multi-thread", "macros"] }}
embedded-io = "0.7"

[workspace]
"#,
        core = path("qmp-core"),
        os = path("qmp-os"),
        std = path("qmp-std"),
        asy = path("qmp-async"),
        smol = path("qmp-smol"),
        tokio = path("qmp-tokio"),
        qapi = path("qmp-qapi"),
    )
}

/// The `rust` code blocks of `text` that rustdoc would compile.
fn code_blocks(text: &str) -> Vec<String> {
    enum In {
        Prose,
        Rust(String),
        Other,
    }
    let mut blocks = Vec::new();
    let mut state = In::Prose;
    for line in text.lines() {
        let fence = line.trim_start().strip_prefix("```");
        state = match (state, fence) {
            (In::Prose, Some(info)) => {
                let tags: Vec<&str> = info.split(',').map(str::trim).collect();
                let skipped = tags.iter().any(|t| matches!(*t, "ignore" | "compile_fail"));
                if tags[0] == "rust" && !skipped {
                    In::Rust(String::new())
                } else {
                    In::Other
                }
            }
            (In::Rust(code), Some(_)) => {
                blocks.push(code);
                In::Prose
            }
            (In::Other, Some(_)) => In::Prose,
            (In::Rust(mut code), None) => {
                code.push_str(unhide(line));
                code.push('\n');
                In::Rust(code)
            }
            (state, None) => state,
        };
    }
    blocks
}

/// A doc-test line as it compiles: `# line` is `line`, `#` alone is empty.
fn unhide(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed == "#" {
        ""
    } else if let Some(rest) = trimmed.strip_prefix("# ") {
        rest
    } else {
        line
    }
}

/// The example file for one block: as written when it has its own `main`,
/// otherwise the body of one (as rustdoc does).
fn example_source(origin: &str, code: &str) -> String {
    let mut out = format!("// From {origin}.\n#![allow(unused, clippy::all)]\n");
    if code.contains("fn main") {
        out.push_str(code);
    } else {
        let _ = write!(out, "fn main() {{\n{code}}}\n");
    }
    out
}

fn cargo(dir: &Path, args: &[&str]) -> std::process::Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo")
}

/// Writes the user crate and its examples; returns how many examples.
fn write_crate(root: &Path, dir: &Path) -> usize {
    let examples = dir.join("examples");
    let _ = std::fs::remove_dir_all(&examples);
    std::fs::create_dir_all(&examples).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), manifest(root)).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "//! A user's crate.\n").unwrap();
    // The workspace's lock file pins the same versions the workspace is
    // tested with, and lets the build run without a registry.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let mut count = 0;
    for readme in READMES {
        let text = std::fs::read_to_string(root.join(readme)).unwrap();
        let stem = readme
            .trim_end_matches("/README.md")
            .trim_end_matches(".md")
            .replace(['-', '/', '.'], "_");
        for (i, code) in code_blocks(&text).iter().enumerate() {
            let name = format!("{}_{}.rs", stem.to_lowercase(), i + 1);
            std::fs::write(examples.join(name), example_source(readme, code)).unwrap();
            count += 1;
        }
    }
    count
}

#[test]
fn readme_examples_compile_in_a_user_crate() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("user-crate");
    let count = write_crate(&root, &dir);
    assert!(count >= 8, "only {count} README examples found");

    let build = cargo(
        &dir,
        &[
            "build",
            "--offline",
            "--examples",
            "--keep-going",
            "--quiet",
        ],
    );
    assert!(
        build.status.success(),
        "the README examples do not compile in a user's crate ({}):\n{}",
        dir.display(),
        String::from_utf8_lossy(&build.stderr)
    );

    let tree = cargo(
        &dir,
        &["tree", "--offline", "-e", "normal", "--prefix", "none"],
    );
    assert!(
        tree.status.success(),
        "{}",
        String::from_utf8_lossy(&tree.stderr)
    );
    let tree = String::from_utf8_lossy(&tree.stdout);
    for shell_only in ["clap ", "rustyline "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(shell_only)),
            "a library crate pulls in {shell_only}:\n{tree}"
        );
    }
    println!("{count} README examples compiled in {}", dir.display());
}

#[test]
fn code_blocks_follow_rustdoc() {
    let text = "x\n```rust\nlet a = 1;\n# let b = 2;\n#\n```\n```rust,ignore\nnope\n```\n```sh\nls\n```\n```rust,no_run\nfn main() {}\n```\n";
    let blocks = code_blocks(text);
    assert_eq!(blocks, ["let a = 1;\nlet b = 2;\n\n", "fn main() {}\n"]);
    assert!(example_source("R", &blocks[0]).contains("fn main() {\nlet a = 1;"));
}
