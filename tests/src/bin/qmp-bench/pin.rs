//! Pinning threads to CPUs (`sched_setaffinity`), for the pinned serial
//! scenario: with QEMU on one CPU and the client on another, where the
//! scheduler puts each thread no longer enters the figures.

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::measure::Result;

/// The CPUs this process may run on, in order.
pub(crate) fn allowed_cpus() -> Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0))?;
    Ok((0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect())
}

/// Restricts every thread of process `pid` to `cpus`. Threads it starts
/// later inherit the mask of the thread that starts them.
pub(crate) fn pin_process(pid: u32, cpus: &[usize]) -> Result<()> {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)?;
    }
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let name = task?.file_name();
        let Some(tid) = name.to_str().and_then(|t| t.parse::<i32>().ok()) else {
            continue;
        };
        match sched_setaffinity(Pid::from_raw(tid), &set) {
            // A thread that ended since the listing.
            Err(nix::errno::Errno::ESRCH) => {}
            other => other?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_and_restores_this_process() {
        let all = allowed_cpus().unwrap();
        assert!(!all.is_empty());
        pin_process(std::process::id(), &all[..1]).unwrap();
        let started = std::thread::spawn(|| allowed_cpus().unwrap())
            .join()
            .unwrap();
        assert_eq!(allowed_cpus().unwrap(), all[..1]);
        assert_eq!(started, all[..1], "a new thread inherits the mask");
        pin_process(std::process::id(), &all).unwrap();
        assert_eq!(allowed_cpus().unwrap(), all);
    }
}
