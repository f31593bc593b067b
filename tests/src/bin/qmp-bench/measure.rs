//! What the figures are made of: wall time, the process's own CPU time,
//! resident memory, and medians.

use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};

/// The error type of the whole benchmark: a message is all it needs.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Result with [`BoxError`].
pub(crate) type Result<T> = std::result::Result<T, BoxError>;

/// User and system CPU time of this process, all threads
/// (`getrusage(RUSAGE_SELF)`). Child processes, QEMU among them, are not
/// counted: they are in `RUSAGE_CHILDREN`.
pub(crate) fn cpu_times() -> (Duration, Duration) {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => (timeval(u.user_time()), timeval(u.system_time())),
        Err(_) => (Duration::ZERO, Duration::ZERO),
    }
}

fn timeval(tv: nix::sys::time::TimeVal) -> Duration {
    let secs = u64::try_from(tv.tv_sec()).unwrap_or(0);
    let micros = u64::try_from(tv.tv_usec()).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(micros)
}

/// One timed run of `calls` calls (or the sum of several).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sample {
    /// Wall-clock time of the run.
    pub(crate) wall: Duration,
    /// This process's CPU time during the run (user + system).
    pub(crate) cpu: Duration,
    /// The user part of it: the code's own work, without the kernel's.
    pub(crate) user: Duration,
    /// QEMU's CPU time during the run, when measured.
    pub(crate) server: Duration,
    /// How many calls it made.
    pub(crate) calls: u64,
}

impl std::ops::AddAssign for Sample {
    fn add_assign(&mut self, other: Sample) {
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.user += other.user;
        self.server += other.server;
        self.calls += other.calls;
    }
}

impl Sample {
    /// Calls per second.
    pub(crate) fn rate(&self) -> f64 {
        self.calls as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Microseconds of this process's CPU per call.
    pub(crate) fn cpu_us_per_call(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.calls.max(1) as f64
    }

    /// Microseconds of this process's user-mode CPU per call.
    pub(crate) fn user_us_per_call(&self) -> f64 {
        self.user.as_secs_f64() * 1e6 / self.calls.max(1) as f64
    }

    /// Microseconds of QEMU's CPU per call.
    pub(crate) fn server_us_per_call(&self) -> f64 {
        self.server.as_secs_f64() * 1e6 / self.calls.max(1) as f64
    }

    /// Milliseconds of wall time per call.
    pub(crate) fn ms_per_call(&self) -> f64 {
        self.wall.as_secs_f64() * 1e3 / self.calls.max(1) as f64
    }
}

/// Runs `f`, which makes `calls` calls, and times it.
pub(crate) fn measure(calls: u64, f: impl FnOnce() -> Result<()>) -> Result<Sample> {
    let (user, sys) = cpu_times();
    let start = Instant::now();
    f()?;
    let wall = start.elapsed();
    let (user_after, sys_after) = cpu_times();
    let user = user_after.saturating_sub(user);
    Ok(Sample {
        wall,
        cpu: user + sys_after.saturating_sub(sys),
        user,
        server: Duration::ZERO,
        calls,
    })
}

/// [`measure`], also taking the CPU time `server` spent meanwhile.
pub(crate) fn measure_with(
    server: impl Fn() -> Duration,
    calls: u64,
    f: impl FnOnce() -> Result<()>,
) -> Result<Sample> {
    let before = server();
    let mut sample = measure(calls, f)?;
    sample.server = server().saturating_sub(before);
    Ok(sample)
}

/// The median (the mean of the two middle values for an even count).
pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// A `/proc/self/status` field in KiB: `VmRSS` (resident now) or `VmHWM`
/// (the peak resident set since the process started).
pub(crate) fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// `VmRSS` in KiB, or an error saying it cannot be read.
pub(crate) fn rss_kib() -> Result<u64> {
    status_kib("VmRSS").ok_or_else(|| "cannot read VmRSS from /proc/self/status".into())
}

/// `VmHWM` in KiB, or an error saying it cannot be read.
pub(crate) fn peak_rss_kib() -> Result<u64> {
    status_kib("VmHWM").ok_or_else(|| "cannot read VmHWM from /proc/self/status".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median([]).is_nan());
    }

    #[test]
    fn reads_its_own_memory_and_cpu() {
        assert!(rss_kib().unwrap() > 0);
        assert!(peak_rss_kib().unwrap() >= rss_kib().unwrap() / 2);
        let cpu_time = || {
            let (user, sys) = cpu_times();
            user + sys
        };
        let before = cpu_time();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_time() >= before);
    }
}
