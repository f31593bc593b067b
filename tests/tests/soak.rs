//! Soak: minutes of mixed traffic against a real QEMU from 20 smol tasks
//! sharing one `qmp-smol` connection, which is dropped and re-made
//! periodically. Ignored by default; `scripts/soak.sh [MINUTES]` runs it
//! (`SOAK_MINUTES`, default 10).
//!
//! The tasks: one drives `stop`/`cont` and waits for each STOP or RESUME;
//! two send out-of-band commands; two make calls with deadlines too short
//! to meet; two drop their calls' futures at random moments; the other
//! thirteen run queries whose answers name what was asked, so that a
//! reply delivered to the wrong call is caught. Per connection, one
//! subscriber that keeps up and one that is slow on purpose see the same
//! events: the slow one's lag must account for every event it missed.
//!
//! What must hold: no call hangs, no reply is wrong, no reply is unknown
//! except the one QEMU may hand a new client from the last one (see the
//! end of the test), no event is lost beyond the reported lag, and the
//! process's resident memory is flat from the first minute to the last.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::{StreamExt, future};
use qmp_core::{CloseReason, ErrorClass};
use qmp_smol::{CloseCause, Error, EventFilter, Options, Qmp};
use serde_json::{Value, json};
use tests::QemuServer;

/// The query options whose answers echo the option asked for.
const OPTIONS: &[&str] = &[
    "machine",
    "drive",
    "smp-opts",
    "boot-opts",
    "memory",
    "name",
    "rtc",
    "accel",
    "icount",
    "overcommit",
    "msg",
    "sandbox",
];

/// How long before a call counts as hung (far beyond any real latency).
const HUNG: Duration = Duration::from_secs(30);

/// VmRSS of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A tiny deterministic generator, one per task.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Tallies, by name.
#[derive(Default)]
struct Tally(BTreeMap<&'static str, u64>);

impl Tally {
    fn add(&mut self, what: &'static str, n: u64) {
        *self.0.entry(what).or_default() += n;
    }

    fn get(&self, what: &str) -> u64 {
        self.0.get(what).copied().unwrap_or(0)
    }
}

/// What every task shares: the current connection and the tallies.
struct Shared {
    qmp: RefCell<Qmp>,
    /// Bumped at each reconnect, so a task can tell that a failure came
    /// from one.
    generation: RefCell<u64>,
    tally: RefCell<Tally>,
    /// Problems found, described.
    problems: RefCell<Vec<String>>,
    until: Instant,
}

impl Shared {
    fn qmp(&self) -> Qmp {
        self.qmp.borrow().clone()
    }

    fn add(&self, what: &'static str) {
        self.tally.borrow_mut().add(what, 1);
    }

    fn problem(&self, what: String) {
        let mut p = self.problems.borrow_mut();
        if p.len() < 50 {
            p.push(what);
        }
        drop(p);
        self.add("problems");
    }

    fn running(&self) -> bool {
        Instant::now() < self.until
    }

    /// The connection for a task's next round, after letting the others
    /// run; `None` (after a short pause) while a reconnect is under way.
    async fn turn(&self) -> Option<(Qmp, u64)> {
        future::yield_now().await;
        let qmp = self.qmp();
        if qmp.is_closed() {
            Timer::after(Duration::from_millis(1)).await;
            return None;
        }
        Some((qmp, *self.generation.borrow()))
    }

    /// Sorts a failed call: a reconnect's doing, or a problem.
    fn failed(&self, what: &str, e: &Error, generation: u64) {
        let local = matches!(
            e,
            Error::Closed(CloseCause::Session(CloseReason::Local))
                | Error::Interrupted(CloseCause::Session(CloseReason::Local))
        );
        if local || *self.generation.borrow() != generation {
            self.add("cut by a reconnect");
        } else {
            self.problem(format!("{what}: {e}"));
        }
    }
}

/// Runs `call`, failing the soak if it does not end within [`HUNG`].
async fn guarded<T>(
    s: &Shared,
    what: &str,
    call: impl Future<Output = Result<T, Error>>,
) -> Option<Result<T, Error>> {
    let hung = async {
        Timer::after(HUNG).await;
        None
    };
    match future::or(async { Some(call.await) }, hung).await {
        Some(r) => Some(r),
        None => {
            s.problem(format!("{what} hung for {HUNG:?}"));
            s.add("hung");
            None
        }
    }
}

/// Tells a right answer from someone else's.
type Check = Box<dyn Fn(&Value) -> bool>;

/// Queries whose answers say what was asked.
async fn queries(s: Rc<Shared>, seed: u64) {
    let mut rng = Rng(seed);
    while s.running() {
        let Some((qmp, generation)) = s.turn().await else {
            continue;
        };
        let option = OPTIONS[rng.below(OPTIONS.len() as u64) as usize];
        let (what, args, check): (_, _, Check) = match rng.below(3) {
            0 => (
                "query-command-line-options",
                json!({"option": option}),
                Box::new(move |v: &Value| v[0]["option"] == option),
            ),
            1 => (
                "query-status",
                Value::Null,
                Box::new(|v: &Value| v["status"].is_string() && v["running"].is_boolean()),
            ),
            _ => (
                "query-version",
                Value::Null,
                Box::new(|v: &Value| v["qemu"]["major"].is_u64()),
            ),
        };
        match guarded(&s, what, qmp.execute(what, args)).await {
            Some(Ok(v)) if check(&v) => s.add("replies"),
            Some(Ok(v)) => s.problem(format!("{what} ({option}) got someone else's reply: {v}")),
            Some(Err(Error::Server(e))) => s.problem(format!("{what}: {e}")),
            Some(Err(e)) => s.failed(what, &e, generation),
            None => {}
        }
    }
}

/// `stop` and `cont` in turn; each must be followed by its event.
async fn run_control(s: Rc<Shared>) {
    while s.running() {
        let Some((qmp, generation)) = s.turn().await else {
            continue;
        };
        let status = match guarded(&s, "query-status", qmp.execute("query-status", None)).await {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                s.failed("query-status", &e, generation);
                continue;
            }
            None => continue,
        };
        let (cmd, event) = if status["running"] == true {
            ("stop", "STOP")
        } else {
            ("cont", "RESUME")
        };
        let seen = qmp.wait_event(event, Duration::from_secs(10));
        match guarded(&s, cmd, qmp.execute(cmd, None)).await {
            Some(Ok(_)) => s.add("replies"),
            Some(Err(e)) => {
                s.failed(cmd, &e, generation);
                continue;
            }
            None => continue,
        }
        s.add("run-state changes");
        match seen.await {
            Ok(_) => s.add("run-state events seen"),
            Err(e) if *s.generation.borrow() != generation || qmp.is_closed() => {
                let _ = e;
                s.add("cut by a reconnect");
            }
            Err(e) => s.problem(format!("{event} after {cmd} never came: {e}")),
        }
    }
}

/// Out-of-band commands next to in-band ones.
async fn out_of_band(s: Rc<Shared>) {
    while s.running() {
        let Some((qmp, generation)) = s.turn().await else {
            continue;
        };
        if !qmp.oob_enabled() {
            s.problem("oob was not negotiated".into());
            return;
        }
        // Outside a postcopy migration QEMU refuses it: a known error that
        // proves the out-of-band round trip.
        match guarded(&s, "migrate-pause", qmp.execute_oob("migrate-pause", None)).await {
            Some(Err(Error::Server(e))) if e.class == ErrorClass::GenericError => {
                s.add("oob replies")
            }
            Some(Ok(v)) => s.problem(format!("migrate-pause succeeded: {v}")),
            Some(Err(e)) => s.failed("migrate-pause", &e, generation),
            None => {}
        }
        match guarded(&s, "query-status", qmp.execute("query-status", None)).await {
            Some(Ok(v)) if v["status"].is_string() => s.add("replies"),
            Some(Ok(v)) => s.problem(format!("query-status got {v}")),
            Some(Err(e)) => s.failed("query-status", &e, generation),
            None => {}
        }
    }
}

/// Calls whose deadline is too short to meet: they time out (or, now and
/// then, make it); the late replies must be dropped, not delivered.
async fn deadlines(s: Rc<Shared>, seed: u64) {
    let mut rng = Rng(seed);
    while s.running() {
        let Some((qmp, generation)) = s.turn().await else {
            continue;
        };
        let (what, limit) = if rng.below(4) == 0 {
            (
                "query-qmp-schema",
                Duration::from_micros(500 + rng.below(3000)),
            )
        } else {
            ("query-status", Duration::from_micros(20 + rng.below(300)))
        };
        match guarded(&s, what, qmp.with_timeout(limit).execute(what, None)).await {
            Some(Err(Error::Timeout { .. })) => s.add("deliberate timeouts"),
            Some(Ok(v)) if what == "query-status" && !v["status"].is_string() => {
                s.problem(format!("query-status got {v}"))
            }
            Some(Ok(v)) if what == "query-qmp-schema" && !v.is_array() => {
                s.problem(format!("query-qmp-schema got {v}"))
            }
            Some(Ok(_)) => s.add("replies"),
            Some(Err(e)) => s.failed(what, &e, generation),
            None => {}
        }
        Timer::after(Duration::from_millis(rng.below(5))).await;
    }
}

/// Calls whose futures are dropped at a random moment.
async fn cancels(s: Rc<Shared>, seed: u64) {
    let mut rng = Rng(seed);
    while s.running() {
        let Some((qmp, generation)) = s.turn().await else {
            continue;
        };
        let option = OPTIONS[rng.below(OPTIONS.len() as u64) as usize];
        let call = qmp.execute("query-command-line-options", json!({"option": option}));
        let give_up = async {
            Timer::after(Duration::from_micros(rng.below(2000))).await;
            None
        };
        match future::or(async { Some(call.await) }, give_up).await {
            None => s.add("cancelled futures"),
            Some(Ok(v)) if v[0]["option"] == option => s.add("replies"),
            Some(Ok(v)) => s.problem(format!("{option} got someone else's reply: {v}")),
            Some(Err(e)) => s.failed("cancelled call", &e, generation),
        }
    }
}

/// One connection's two subscribers: one keeps up, one is slow. At the
/// end the slow one must have seen or counted as lagged every event the
/// fast one saw.
async fn watch_events(s: Rc<Shared>, qmp: Qmp) {
    let mut fast = qmp.subscribe(EventFilter::all());
    let mut slow = qmp.subscribe_with_capacity::<4>(EventFilter::all());
    drop(qmp);
    let slow_reader = async {
        let mut n = 0u64;
        while slow.next().await.is_some() {
            n += 1;
            Timer::after(Duration::from_millis(30)).await;
        }
        (n, slow.lagged())
    };
    let fast_reader = async {
        let mut n = 0u64;
        while fast.next().await.is_some() {
            n += 1;
        }
        (n, fast.lagged())
    };
    let ((seen_fast, lag_fast), (seen_slow, lag_slow)) =
        future::zip(fast_reader, slow_reader).await;
    let mut t = s.tally.borrow_mut();
    t.add("events (fast subscriber)", seen_fast);
    t.add("events (slow subscriber)", seen_slow);
    t.add("lagged (slow subscriber)", lag_slow);
    drop(t);
    if lag_fast != 0 {
        s.problem(format!("the fast subscriber lagged {lag_fast}"));
    }
    if seen_slow + lag_slow != seen_fast {
        s.problem(format!(
            "events lost: the slow subscriber saw {seen_slow} and lagged {lag_slow}, the fast one saw {seen_fast}"
        ));
    }
}

async fn connect(socket: &std::path::Path) -> (Qmp, qmp_smol::Driver) {
    let options = Options::default()
        .timeout(Duration::from_secs(10))
        .socket_wait(Duration::from_secs(5));
    Qmp::connect_unix(socket, options)
        .await
        .expect("connect to QEMU")
}

#[test]
#[ignore = "minutes long: run it with scripts/soak.sh"]
fn soak() {
    let minutes: f64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10.0);
    let length = Duration::from_secs_f64(minutes * 60.0);
    let reconnect_every = Duration::from_secs(20).min(length / 4);
    let qemu = QemuServer::start(&[]);
    let ex = smol::LocalExecutor::new();
    let started = Instant::now();

    smol::block_on(ex.run(async {
        let (qmp, driver) = connect(&qemu.socket).await;
        let mut driver = ex.spawn(driver);
        let s = Rc::new(Shared {
            qmp: RefCell::new(qmp.clone()),
            generation: RefCell::new(0),
            tally: RefCell::new(Tally::default()),
            problems: RefCell::new(Vec::new()),
            until: started + length,
        });
        let mut watcher = ex.spawn(watch_events(s.clone(), qmp));

        let tasks = spawn_tasks(&ex, &s);

        // Memory is measured once everything is warm: after the first
        // reconnect, when every kind of call has run.
        let mut rss_start = None;
        let mut rss_max = 0;
        let mut samples = Vec::new();
        while s.running() {
            Timer::after(reconnect_every.min(s.until.saturating_duration_since(Instant::now())))
                .await;
            let rss = rss_kib();
            rss_max = rss_max.max(rss);
            samples.push(rss);
            if !s.running() {
                break;
            }
            (driver, watcher) = reconnect(&ex, &s, &qemu.socket, driver, watcher).await;
            if rss_start.is_none() {
                rss_start = Some(rss_kib());
            }
        }
        for t in tasks {
            t.await;
        }
        let qmp = s.qmp();
        let stats = qmp.stats();
        s.tally
            .borrow_mut()
            .add("unknown replies", stats.unknown_replies);
        s.tally
            .borrow_mut()
            .add("late replies dropped", stats.late_replies);
        qmp.disconnect();
        driver.await;
        watcher.await;
        let rss_end = rss_kib();

        let memory = Memory {
            start: rss_start.unwrap_or(samples.first().copied().unwrap_or(0)),
            end: rss_end,
            max: rss_max,
            samples,
        };
        report(&s, started.elapsed(), &memory);
    }));
}

/// Drops the connection under the tasks' feet and makes a new one; the
/// new connection's driver and event watcher.
async fn reconnect(
    ex: &smol::LocalExecutor<'_>,
    s: &Rc<Shared>,
    socket: &std::path::Path,
    driver: smol::Task<CloseCause>,
    watcher: smol::Task<()>,
) -> (smol::Task<CloseCause>, smol::Task<()>) {
    let old = s.qmp();
    *s.generation.borrow_mut() += 1;
    old.disconnect();
    let cause = driver.await;
    if !cause.is_local() {
        s.problem(format!("the connection ended by itself: {cause}"));
    }
    watcher.await;
    let (qmp, d) = connect(socket).await;
    *s.qmp.borrow_mut() = qmp.clone();
    let stats = old.stats();
    s.tally
        .borrow_mut()
        .add("unknown replies", stats.unknown_replies);
    s.tally
        .borrow_mut()
        .add("late replies dropped", stats.late_replies);
    let driver = ex.spawn(d);
    let watcher = ex.spawn(watch_events(s.clone(), qmp));
    s.add("reconnects");
    (driver, watcher)
}

/// The twenty tasks of the soak, sharing `s`.
fn spawn_tasks<'a>(ex: &smol::LocalExecutor<'a>, s: &Rc<Shared>) -> Vec<smol::Task<()>> {
    let mut tasks = vec![ex.spawn(run_control(s.clone()))];
    for _ in 0..2 {
        tasks.push(ex.spawn(out_of_band(s.clone())));
    }
    for i in 0..2 {
        tasks.push(ex.spawn(deadlines(s.clone(), 0x9e37_79b9 + i)));
    }
    for i in 0..2 {
        tasks.push(ex.spawn(cancels(s.clone(), 0x85eb_ca6b + i)));
    }
    for i in 0..13 {
        tasks.push(ex.spawn(queries(s.clone(), 0xc2b2_ae35 + i)));
    }
    assert_eq!(tasks.len(), 20);
    tasks
}

/// Resident memory over the soak, in KiB.
struct Memory {
    /// After the first reconnect (warm), or the first sample.
    start: u64,
    end: u64,
    max: u64,
    /// One at each reconnect.
    samples: Vec<u64>,
}

/// Prints the tally and checks it: no problem, no reply nobody asked for
/// beyond one per reconnect, no event lost, memory flat.
fn report(s: &Shared, elapsed: Duration, memory: &Memory) {
    let t = s.tally.borrow();
    let calls: u64 = [
        "replies",
        "oob replies",
        "deliberate timeouts",
        "cancelled futures",
    ]
    .iter()
    .map(|k| t.get(k))
    .sum();
    println!(
        "soak: {:.1} min against {}",
        elapsed.as_secs_f64() / 60.0,
        tests::qemu_binary()
    );
    for (k, v) in &t.0 {
        println!("soak: {k}: {v}");
    }
    println!(
        "soak: {calls} calls ended as planned, {:.0}/s",
        calls as f64 / elapsed.as_secs_f64()
    );
    let &Memory {
        start,
        end: rss_end,
        max: rss_max,
        ref samples,
    } = memory;
    println!(
        "soak: VmRSS {start} KiB after the first reconnect, {rss_end} KiB at the end, {rss_max} KiB at most; samples {samples:?}"
    );
    let problems = s.problems.borrow();
    for p in problems.iter() {
        println!("soak: PROBLEM {p}");
    }
    assert!(problems.is_empty(), "{} problems", t.get("problems"));
    // QEMU finishes the command it was running when a client left and
    // writes that reply to the next client, after the greeting and
    // before the reply to `qmp_capabilities`: at most one per
    // reconnect, never matched (every request of the new session
    // still waits for the negotiation then). Any other is a fault.
    assert!(
        t.get("unknown replies") <= t.get("reconnects"),
        "{} replies nobody asked for in {} reconnects",
        t.get("unknown replies"),
        t.get("reconnects")
    );
    assert!(t.get("replies") > 0 && t.get("run-state events seen") > 0);
    assert_eq!(
        t.get("events (slow subscriber)") + t.get("lagged (slow subscriber)"),
        t.get("events (fast subscriber)")
    );
    // Flat: within 8 MiB (allocator slack) of the warm figure.
    assert!(
        rss_end <= start + 8 * 1024,
        "resident memory grew from {start} KiB to {rss_end} KiB"
    );
}
