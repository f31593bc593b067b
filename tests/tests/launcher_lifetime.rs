//! A launched QEMU lives exactly as long as its owner: it outlives the
//! thread that launched it, it dies with the process that launched it
//! however that process ends, and whatever QEMU writes to stderr costs
//! its owner a bounded amount of memory.
//!
//! The cases where the owner dies run this test binary again as the
//! owner (`probe_*` tests, ignored unless asked for by name, with the
//! case in an environment variable): it launches QEMU, prints QEMU's pid
//! and dies in the chosen way; the test waits until that pid is gone.
#![allow(clippy::std_instead_of_core)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qmp_qapi::qmp::QueryStatus;
use qmp_std::{Error, Options, Qemu};
use rustix::process::{Pid, Signal, kill_process};
use tests::{TempDir, qemu_binary, within};

const LIMIT: Duration = Duration::from_secs(120);

/// Which way the owner dies (`probe_owner`).
const DIES: &str = "QMP_TEST_OWNER_DIES";
/// The fake QEMU's path and what to expect of it (`probe_stderr_flood`).
const FLOOD: &str = "QMP_TEST_STDERR_FLOOD";
/// What `probe_owner` prints before QEMU's pid.
const PID_LINE: &str = "QEMU_PID ";
/// What `probe_stderr_flood` prints before its peak resident size.
const PEAK_LINE: &str = "VMHWM_KIB ";
/// The adapters' default message cap.
const MESSAGE_CAP: u64 = 10 * 1024 * 1024;

fn builder() -> qmp_std::QemuBuilder {
    Qemu::builder()
        .program(qemu_binary())
        .options(Options::new().timeout(Duration::from_secs(20)))
}

/// Waits for `done`, failing the test after `limit`: never a fixed sleep.
#[track_caller]
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Fields of `/proc/PID/stat` after the command name: state is `[0]`,
/// the parent `[1]`, the process group `[2]`, the start time `[19]`.
fn stat(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(") ")?;
    Some(rest.split(' ').map(str::to_owned).collect())
}

/// The process that started at `start` is no longer running: gone, or a
/// zombie nobody reaped yet (this container's init may never reap).
fn not_running(pid: u32, start: &str) -> bool {
    match stat(pid) {
        None => true,
        Some(f) => f[19] != start || matches!(f[0].as_str(), "Z" | "X"),
    }
}

/// Live (not zombie) processes in process group `pgid`.
fn live_in_group(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat(pid)
                .is_some_and(|f| f[2] == pgid.to_string() && !matches!(f[0].as_str(), "Z" | "X"))
        })
        .collect()
}

/// Runs this binary's ignored test `name` as a child, with `env` set.
fn probe(name: &str, env: (&str, &str)) -> Child {
    Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(env.0, env.1)
        // The panicking owner's backtrace is expected noise.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run this test binary again")
}

/// Reads the child's stdout until a line with `prefix` (the test harness
/// may have begun the line); the rest of that line.
fn line_after(child: &mut Child, prefix: &str) -> String {
    let out = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(out).lines();
    let found = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest.to_owned()));
    // Keep reading so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    found.unwrap_or_else(|| panic!("the probe printed no `{prefix}` line"))
}

// ----- the owner outlives the launching thread ----------------------------

#[test]
fn qemu_outlives_the_thread_that_launched_it() {
    within(LIMIT, "launch from a thread that ends", || {
        let (mut qemu, tid) = std::thread::spawn(|| {
            let qemu = builder().launch().unwrap();
            // "PID/task/TID"
            let me = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
            (qemu, me.file_name().unwrap().to_owned())
        })
        .join()
        .unwrap();
        // Once the thread's /proc entry is gone, the kernel has sent any
        // parent-death signal it was going to send for it.
        let task = Path::new("/proc/self/task").join(&tid);
        wait_until(LIMIT, "the launching thread to be gone", || !task.exists());
        qemu.call(&QueryStatus).expect("QEMU still answers");
        let state = stat(qemu.pid()).expect("QEMU still exists");
        assert!(
            matches!(state[0].as_str(), "S" | "R"),
            "QEMU's state: {state:?}"
        );
        qemu.call(&QueryStatus).expect("QEMU still answers");
        qemu.shutdown().unwrap();
    });
}

// ----- no QEMU outlives its owner ------------------------------------------

/// The owner: launches QEMU from a thread that ends at once (as a test
/// framework or a worker would), says QEMU's pid, waits for a line on
/// stdin, then dies as `$DIES` says.
#[test]
#[ignore = "run by the owner_* tests, with QMP_TEST_OWNER_DIES set"]
fn probe_owner() {
    let how = std::env::var(DIES).expect("QMP_TEST_OWNER_DIES is set by the parent test");
    let mut qemu = std::thread::spawn(|| builder().launch().unwrap())
        .join()
        .unwrap();
    qemu.call(&QueryStatus).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{PID_LINE}{}", qemu.pid()).unwrap();
    out.flush().unwrap();
    drop(out);
    // The test looks at QEMU first, then says go (or kills us). Should
    // the test fail first, its end closes our stdin: no probe lingers.
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    // Every way below ends the process, or unwinds, with `qemu` held.
    match how.as_str() {
        "exit" => std::process::exit(1),
        "abort" => std::process::abort(),
        "panic" => panic!("the owner panics while it holds QEMU"),
        // The test kills us while we wait for the line; the line (or the
        // end of stdin) means the test itself is gone.
        "sigkill" => std::process::exit(2),
        other => panic!("unknown way to die: {other}"),
    }
}

/// Runs the owner, kills it when `kill`, and checks that QEMU was its
/// child, was running, and is gone once the owner is.
fn owner_dies(how: &str, kill: bool) {
    let mut owner = probe("probe_owner", (DIES, how));
    let pid: u32 = line_after(&mut owner, PID_LINE).trim().parse().unwrap();
    let qemu = stat(pid).expect("QEMU runs");
    assert_eq!(qemu[1], owner.id().to_string(), "QEMU is the owner's child");
    assert_eq!(qemu[2], pid.to_string(), "QEMU leads its own process group");
    let start = qemu[19].clone();
    if kill {
        let owner_pid = Pid::from_raw(owner.id() as i32).unwrap();
        kill_process(owner_pid, Signal::KILL).unwrap();
    } else {
        let mut stdin = owner.stdin.take().expect("piped stdin");
        stdin.write_all(b"go\n").unwrap();
    }
    let deadline = Instant::now() + LIMIT;
    while owner.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the owner did not die");
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = owner.wait().unwrap();
    assert!(!status.success(), "the owner died: {status:?}");
    let died = Instant::now();
    wait_until(LIMIT, "QEMU to be gone after its owner", || {
        not_running(pid, &start)
    });
    eprintln!(
        "owner {how}: QEMU gone {:?} after the owner",
        died.elapsed()
    );
}

#[test]
fn owner_exit_leaves_no_qemu() {
    owner_dies("exit", false);
}

#[test]
fn owner_abort_leaves_no_qemu() {
    owner_dies("abort", false);
}

#[test]
fn owner_panic_leaves_no_qemu() {
    owner_dies("panic", false);
}

#[test]
fn owner_sigkill_leaves_no_qemu() {
    owner_dies("sigkill", true);
}

// ----- stderr costs bounded memory -----------------------------------------

/// A fake QEMU that writes 300 MiB to stderr on one line (no newline),
/// then its reason, and exits 3.
const FLOOD_THEN_EXIT: &str = "#!/bin/sh
head -c 314572800 /dev/zero | tr '\\000' x >&2
printf '\\nfake-qemu: the reason it failed\\n' >&2
exit 3
";

/// A fake QEMU that floods stderr with lines, from two processes of its
/// group, and never serves QMP.
const FLOOD_FOREVER: &str = "#!/bin/sh
echo $$ > \"$0.pid\"
yes 'fake-qemu: flooding in the background' >&2 &
yes 'fake-qemu: flooding' >&2
";

/// Writes `script` as an executable file in `dir`.
fn fake_qemu(dir: &TempDir, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-qemu");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// This process's peak resident size, in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Launches the fake QEMU `$FLOOD` names (`exit:PATH` or `forever:PATH`),
/// checks the launch error, prints the peak resident size.
#[test]
#[ignore = "run by the stderr_flood_* tests, with QMP_TEST_STDERR_FLOOD set"]
fn probe_stderr_flood() {
    let spec = std::env::var(FLOOD).expect("QMP_TEST_STDERR_FLOOD is set by the parent test");
    let (kind, program) = spec.split_once(':').unwrap();
    // Long enough for 300 MiB to pass, short for a peer that never serves.
    let handshake = if kind == "exit" {
        LIMIT
    } else {
        Duration::from_secs(3)
    };
    let e = Qemu::builder()
        .program(program)
        .no_default_args()
        .options(Options::new().handshake_timeout(handshake))
        .launch()
        .unwrap_err();
    let Error::Launch(launch) = &e else {
        panic!("expected a launch error, got {e:?}")
    };
    assert!(
        launch.stderr.len() <= qmp_std::DEFAULT_STDERR_TAIL,
        "{}",
        launch.stderr.len()
    );
    match kind {
        "exit" => {
            assert_eq!(launch.status.and_then(|s| s.code()), Some(3), "{e:?}");
            // The 300 MiB line was cut to the tail, and the tail starts
            // at the first whole line after it.
            assert_eq!(launch.stderr, "fake-qemu: the reason it failed\n", "{e:?}");
            assert!(
                e.to_string().ends_with("fake-qemu: the reason it failed"),
                "{e}"
            );
        }
        _ => {
            assert!(launch.status.is_none(), "{:?}", launch.status);
            // Cut after a line's end. The two flooders' writes are larger
            // than a pipe writes at once, so they can interleave within a
            // line: the first line kept may be a piece of one. (The "exit"
            // case, one writer, checks that the tail starts with a whole
            // line.)
            let end = &launch.stderr[launch.stderr.len().saturating_sub(200)..];
            assert!(launch.stderr.contains("fake-qemu: flooding"), "{end:?}");
            assert!(
                end.ends_with('\n') && end.contains("fake-qemu: flooding"),
                "{end:?}"
            );
        }
    }
    println!("{PEAK_LINE}{}", peak_kib());
}

/// Runs the flood probe on `script` and checks its peak resident size;
/// the directory of the fake QEMU.
fn stderr_flood(kind: &str, script: &str) -> TempDir {
    let dir = TempDir::new("stderr-flood");
    let program = fake_qemu(&dir, script);
    let mut child = probe(
        "probe_stderr_flood",
        (FLOOD, &format!("{kind}:{}", program.display())),
    );
    let peak: u64 = line_after(&mut child, PEAK_LINE).trim().parse().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the probe failed: {status:?}");
    let bound = (4 * MESSAGE_CAP + 16 * 1024 * 1024) / 1024;
    assert!(
        peak < bound,
        "peak resident size {peak} KiB, bound {bound} KiB"
    );
    eprintln!("stderr flood ({kind}): peak resident size {peak} KiB");
    dir
}

#[test]
fn stderr_flood_then_exit_keeps_memory_bounded_and_the_reason() {
    within(LIMIT * 2, "stderr flood", || {
        stderr_flood("exit", FLOOD_THEN_EXIT);
    });
}

#[test]
fn stderr_flood_that_never_serves_is_killed_with_its_group() {
    within(LIMIT, "endless stderr flood", || {
        let dir = stderr_flood("forever", FLOOD_FOREVER);
        // The fake QEMU led its group; both `yes` were in it and got its
        // SIGKILL.
        let pid = std::fs::read_to_string(dir.join("fake-qemu.pid")).unwrap();
        let pgid: u32 = pid.trim().parse().unwrap();
        wait_until(LIMIT, "the fake QEMU's group to be gone", || {
            live_in_group(pgid).is_empty()
        });
    });
}

// ----- QEMU's process group goes with it ------------------------------------

/// A wrapper that leaves a helper process in QEMU's group (its pid in
/// `$0.helper`), then becomes QEMU.
fn qemu_with_helper(dir: &TempDir) -> PathBuf {
    fake_qemu(
        dir,
        &format!(
            "#!/bin/sh\nsleep 1000 < /dev/null > /dev/null 2>&1 &\necho $! > \"$0.helper\"\nexec '{}' \"$@\"\n",
            qemu_binary()
        ),
    )
}

#[test]
fn stopping_qemu_stops_what_it_left_in_its_group() {
    within(LIMIT, "QEMU's group", || {
        for kill in [false, true] {
            let dir = TempDir::new("qemu-group");
            let program = qemu_with_helper(&dir);
            let mut qemu = builder().program(&program).launch().unwrap();
            qemu.call(&QueryStatus).unwrap();
            let helper: u32 = std::fs::read_to_string(dir.join("fake-qemu.helper"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let pid = qemu.pid();
            assert_eq!(stat(helper).expect("the helper runs")[2], pid.to_string());
            let status = if kill {
                qemu.kill().unwrap()
            } else {
                qemu.shutdown().unwrap()
            };
            // `quit` ends QEMU cleanly; the helper goes with the group.
            assert_eq!(status.success(), !kill, "{status:?}");
            wait_until(Duration::from_secs(30), "the helper to be gone", || {
                live_in_group(pid).is_empty()
            });
        }
    });
}
