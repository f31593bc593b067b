//! Finding the `qmp-shell` binary and running it with a time limit.
//!
//! The binary lives in another package (`qmp-shell`), so Cargo does not
//! hand this package its path (`CARGO_BIN_EXE_*` is only for a package's
//! own binaries, and depending on another package's binary is not stable
//! Cargo). The first test that needs it runs `cargo build -p qmp-shell`
//! once, with the same profile as the tests, and takes the executable's
//! path from Cargo's JSON messages, so it is found wherever
//! `CARGO_TARGET_DIR` puts it. After `cargo test` has built everything
//! this is a no-op that takes a moment.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tests::ChildGuard;

pub(crate) mod pty;

/// The path of the built `qmp-shell`, building it first if needed.
pub(crate) fn qmp_shell() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "-p", "qmp-shell", "--bin", "qmp-shell"])
            .arg("--message-format=json-render-diagnostics")
            .stderr(Stdio::inherit());
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("run cargo build for qmp-shell");
        assert!(out.status.success(), "cargo build of qmp-shell failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "qmp-shell")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no qmp-shell executable")
    })
}

/// A `qmp-shell` command with `args`, and the history file pointed at
/// a path that is never a user's. It dies with the test
/// ([`tests::command`]).
pub(crate) fn shell(args: &[&str]) -> Command {
    let mut cmd = tests::command(qmp_shell());
    cmd.args(args)
        .env("QMP_SHELL_HISTFILE", "/dev/null")
        .env_remove("RUST_LOG");
    cmd
}

/// What a finished run printed, and how it exited.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) took: Duration,
}

impl Run {
    /// The exit code (a signal is a test failure).
    #[track_caller]
    pub(crate) fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("qmp-shell died of a signal: {self:#?}"))
    }

    /// stdout's lines.
    pub(crate) fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// stdout's lines, each parsed as JSON.
    #[track_caller]
    pub(crate) fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not JSON: {l:?} ({e}): {self:#?}"))
            })
            .collect()
    }
}

/// Runs `cmd` with `stdin` (nothing when `None`) and fails the test when
/// it takes longer than `limit` (killing it).
#[track_caller]
pub(crate) fn run_with(mut cmd: Command, stdin: Option<&str>, limit: Duration) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = ChildGuard::spawn(&mut cmd).expect("start qmp-shell");
    if let Some(text) = stdin {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    let stdout = reader(&mut child, true);
    let stderr = reader(&mut child, false);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for qmp-shell") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "qmp-shell {:?} ran longer than {limit:?}",
                cmd.get_args().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = started.elapsed();
    Run {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        took,
    }
}

/// Runs `qmp-shell args` with no stdin, within 15 s.
#[track_caller]
pub(crate) fn run(args: &[&str]) -> Run {
    run_with(shell(args), None, Duration::from_secs(15))
}

fn reader(child: &mut Child, stdout: bool) -> std::thread::JoinHandle<String> {
    let mut pipe: Box<dyn Read + Send> = if stdout {
        Box::new(child.stdout.take().expect("stdout"))
    } else {
        Box::new(child.stderr.take().expect("stderr"))
    };
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}
