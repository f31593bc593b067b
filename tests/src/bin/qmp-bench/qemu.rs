//! The QEMU under test: `qemu-system-x86_64 -machine none -nodefaults
//! -display none -S` with one QMP monitor per client, so that the raw
//! baseline and each client talk to the same process, each on its own
//! socket, and take turns.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tests::{QEMU_ARGS, TempDir, qemu_binary};

use crate::measure::Result;

/// A running QEMU, killed and reaped on drop.
pub(crate) struct Qemu {
    child: Child,
    /// One listening QMP socket per monitor.
    pub(crate) sockets: Vec<PathBuf>,
    _dir: TempDir,
}

impl Qemu {
    /// Starts QEMU with `monitors` QMP monitors, each listening on a Unix
    /// socket of its own, and waits until every socket file exists.
    pub(crate) fn start(monitors: usize) -> Result<Qemu> {
        let mut qemu = Qemu::spawn(monitors)?;
        qemu.wait_ready(Duration::from_secs(60))?;
        Ok(qemu)
    }

    /// Starts QEMU without waiting for it (see [`Qemu::wait_ready`]).
    pub(crate) fn spawn(monitors: usize) -> Result<Qemu> {
        let dir = TempDir::new("bench");
        let sockets: Vec<PathBuf> = (0..monitors)
            .map(|i| dir.join(&format!("m{i}.sock")))
            .collect();
        // Killed by the kernel if this program dies first.
        let mut cmd = tests::command(qemu_binary());
        cmd.args(QEMU_ARGS);
        for (i, path) in sockets.iter().enumerate() {
            cmd.arg("-chardev")
                .arg(format!(
                    "socket,id=mon{i},path={},server=on,wait=off",
                    path.display()
                ))
                .arg("-mon")
                .arg(format!("chardev=mon{i},mode=control"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", qemu_binary()))?;
        Ok(Qemu {
            child,
            sockets,
            _dir: dir,
        })
    }

    /// Waits until every socket file exists; fails with QEMU's stderr if
    /// it exits first. Clients still retry a refused connection: the file
    /// appears at `bind`, a moment before `listen`.
    pub(crate) fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        while !self.sockets.iter().all(|s| s.exists()) {
            if let Some(status) = self.child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("QEMU exited ({status}) before serving QMP: {err}").into());
            }
            if Instant::now() > deadline {
                return Err(format!("QEMU did not create its sockets within {limit:?}").into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// CPU time QEMU has used so far, all its threads (the first field of
    /// `/proc/PID/task/*/schedstat`, in nanoseconds); zero if unreadable.
    pub(crate) fn cpu_time(&self) -> Duration {
        let tasks = format!("/proc/{}/task", self.child.id());
        let Ok(dir) = std::fs::read_dir(tasks) else {
            return Duration::ZERO;
        };
        let ns: u64 = dir
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Duration::from_nanos(ns)
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL without waiting (the drop reaps it).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
