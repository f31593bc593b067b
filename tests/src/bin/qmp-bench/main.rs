//! `qmp-bench`: how much the clients add to what QEMU itself costs.
//!
//! In the round-trip scenarios every client, the raw baseline among them
//! (a hand-written loop on a Unix socket with precomputed requests that
//! only counts message ends: the ceiling), talks to a
//! `qemu-system-x86_64 -machine none -nodefaults -display none -S` of its
//! own with one QMP monitor (QEMU serves each request later the more
//! monitors it polls), and the clients take turns in interleaved rounds
//! whose order rotates; the figures are medians over the rounds, and each
//! ratio is a client's rate divided by the raw rate of the same round.
//! Next to the async clients run their runtimes' floors: the raw loop
//! written on each runtime's socket, which tells what the runtime costs
//! from what the adapter adds.
//! Separate processes measure the event flood, the fan-out to many QEMUs,
//! the scale run (a thousand connections to scripted peers on one thread)
//! and, under `strace -f -c` when it is installed, the system calls per
//! call of each client.
//!
//! ```text
//! cargo run --release -p tests --bin qmp-bench [-- --quick] [-- --json]
//! ```

mod clients;
mod fanout;
mod flood;
mod measure;
mod pin;
mod qemu;
mod raw;
mod raw_async;
mod scale;
mod syscalls;

use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde_json::{Map, Value, json};

use crate::clients::{AsyncCalls, Flavor, Placement, SmolClient, StdClient, TokioClient};
use crate::measure::{Result, Sample, measure, measure_with, median};
use crate::qemu::Qemu;
use crate::raw::Raw;
use crate::raw_async::{RawSmol, RawTokio};

/// The command every round-trip scenario repeats.
const QUERY_STATUS: &str = "query-status";
/// The large reply.
const SCHEMA: &str = "query-qmp-schema";
/// Calls in flight in the pipelined scenario: QEMU's own queue limit with `oob`.
const WINDOW: u64 = 8;
/// Turns per round: how often the clients of a scenario alternate.
const BLOCKS: u64 = 20;

/// End-to-end figures against a real QEMU, each next to a raw-socket
/// baseline measured in the same run.
#[derive(Parser, Debug)]
#[command(name = "qmp-bench")]
struct Args {
    /// Print one JSON object with every figure on stdout (the table goes
    /// to stderr).
    #[arg(long)]
    json: bool,
    /// Every scenario, small enough to finish in under a minute.
    #[arg(long, conflicts_with = "smoke")]
    quick: bool,
    /// Trivial sizes (10 calls, 2 rounds, 2 instances): proves every
    /// scenario still runs, measures nothing worth reading.
    #[arg(long)]
    smoke: bool,
    /// Interleaved rounds per scenario [default: 7; --quick 3].
    #[arg(long)]
    rounds: Option<usize>,
    /// Serial calls per client per round [default: 4000; --quick 1000].
    #[arg(long)]
    serial: Option<u64>,
    /// Pipelined calls per client per round [default: 8000; --quick 2000].
    #[arg(long)]
    pipelined: Option<u64>,
    /// `query-qmp-schema` calls per client per round [default: 15; --quick 5].
    #[arg(long)]
    schema: Option<u64>,
    /// Events in the flood [default: 1000000; --quick 200000].
    #[arg(long)]
    events: Option<u64>,
    /// Fan-out: QEMU instances driven at once [default: 100; --quick 50].
    #[arg(long)]
    instances: Option<usize>,
    /// Fan-out: calls per instance [default: 1000; --quick 100].
    #[arg(long)]
    calls: Option<u64>,
    /// Scale: connections to scripted peers from one thread [default: 1000].
    #[arg(long)]
    conns: Option<usize>,
    /// Scale: calls per connection [default: 100].
    #[arg(long)]
    conn_calls: Option<u64>,
    /// Internal: where `--child serve-peers` binds its sockets.
    #[arg(long, hide = true)]
    peer_dir: Option<std::path::PathBuf>,
    /// Run only these scenarios (repeatable; default: all). The JSON then
    /// lacks the other scenarios' figures.
    #[arg(long, value_enum)]
    only: Vec<Scenario>,
    /// Run only this client's serial loop (`--serial` calls, `--rounds`
    /// times) and print its rate and CPU per call: a quiet process to put
    /// under perf or strace. No baseline, no ratios.
    #[arg(long, value_enum)]
    profile: Option<Profiled>,
    /// The command `--profile` repeats.
    #[arg(long, default_value = QUERY_STATUS)]
    command: String,
    /// `--profile` makes typed `query-status` calls (decoded into a
    /// struct) instead of untyped ones.
    #[arg(long, requires = "profile")]
    typed: bool,
    /// `--profile` keeps this many calls in flight instead of making
    /// them one after another (raw and the async clients).
    #[arg(long, requires = "profile")]
    window: Option<u64>,
    /// `--profile` talks to this QMP socket instead of starting a QEMU
    /// (so that `strace -f` sees only the client).
    #[arg(long, requires = "profile")]
    socket: Option<std::path::PathBuf>,
    /// Internal: run one isolated scenario and print its figures as JSON.
    #[arg(long, hide = true, value_enum)]
    child: Option<Child>,
}

/// The scenarios, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Serial,
    Pinned,
    Pipelined,
    Schema,
    Flood,
    Fanout,
    Scale,
    Syscalls,
}

/// The clients `--profile` can run alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Profiled {
    Raw,
    Std,
    Smol,
    SmolSpawned,
    Tokio,
    TokioMt,
    /// The raw loop on async-io, under `smol::block_on`: smol's floor.
    RawSmol,
    /// The raw loop on tokio's current-thread scheduler.
    RawTokio,
    /// The raw loop on tokio's multi-thread scheduler.
    RawTokioMt,
}

/// The scenarios that run in a process of their own.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Child {
    FloodStd,
    FloodSmol,
    Fanout,
    Scale,
    ServePeers,
}

/// How big each scenario is.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    rounds: usize,
    serial: u64,
    pipelined: u64,
    schema: u64,
    events: u64,
    instances: usize,
    calls: u64,
    conns: usize,
    conn_calls: u64,
}

impl Sizes {
    fn from(args: &Args) -> Sizes {
        let base = if args.smoke {
            Sizes {
                rounds: 2,
                serial: 10,
                pipelined: 10,
                schema: 2,
                events: 10_000,
                instances: 2,
                calls: 10,
                conns: 20,
                conn_calls: 10,
            }
        } else if args.quick {
            Sizes {
                rounds: 3,
                serial: 1000,
                pipelined: 2000,
                schema: 5,
                events: 200_000,
                instances: 50,
                calls: 100,
                conns: 1000,
                conn_calls: 100,
            }
        } else {
            Sizes {
                rounds: 7,
                serial: 4000,
                pipelined: 8000,
                schema: 15,
                events: 1_000_000,
                instances: 100,
                calls: 1000,
                conns: 1000,
                conn_calls: 100,
            }
        };
        Sizes {
            rounds: args.rounds.unwrap_or(base.rounds).max(1),
            serial: args.serial.unwrap_or(base.serial).max(1),
            pipelined: args.pipelined.unwrap_or(base.pipelined).max(1),
            schema: args.schema.unwrap_or(base.schema).max(1),
            events: args.events.unwrap_or(base.events),
            instances: args.instances.unwrap_or(base.instances).max(1),
            calls: args.calls.unwrap_or(base.calls).max(1),
            conns: args.conns.unwrap_or(base.conns).max(1),
            conn_calls: args.conn_calls.unwrap_or(base.conn_calls).max(1),
        }
    }
}

/// Every figure, and the table's rows.
#[derive(Default)]
struct Report {
    figures: Map<String, Value>,
    rows: Vec<Vec<String>>,
}

impl Report {
    fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.figures.insert(key.to_owned(), value.into());
    }

    fn get(&self, key: &str) -> f64 {
        self.figures
            .get(key)
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    }

    fn row(&mut self, cells: &[String]) {
        self.rows.push(cells.to_vec());
    }

    fn table(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        // A row of one cell is a note: it may run past the first column.
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter(|r| r.len() > 1)
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{s:<w$}", w = widths[i]))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

/// `{"execute":NAME,"id":1}`, as the raw baseline sends it every time.
fn raw_request(name: &str) -> Vec<u8> {
    format!("{{\"execute\":\"{name}\",\"id\":1}}").into_bytes()
}

fn progress(what: &str) {
    eprintln!("qmp-bench: {what}");
}

/// A number with thousands separators.
fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate_cell(rate: f64, ratio: Option<f64>) -> String {
    match ratio {
        Some(r) => format!("{}/s ({r:.2})", thousands(rate)),
        None => format!("{}/s", thousands(rate)),
    }
}

/// Samples of the clients of one scenario, one `Vec` per client, in rounds.
struct Rounds {
    samples: Vec<Vec<Sample>>,
}

impl Rounds {
    /// Runs `rounds` rounds of `calls` calls per client. A round is cut
    /// into up to [`BLOCKS`] blocks, and in each block every client makes
    /// its share of the calls, `run(client, calls)`, the order rotating
    /// from block to block: the clients take turns every few tens of
    /// milliseconds, so a burst of load from elsewhere on the machine hits
    /// them all alike. A round's figure for a client sums its blocks.
    fn run(
        clients: usize,
        rounds: usize,
        calls: u64,
        what: &str,
        mut run: impl FnMut(usize, u64) -> Result<Sample>,
    ) -> Result<Rounds> {
        let blocks = BLOCKS.min(calls).max(1);
        let mut samples = vec![Vec::with_capacity(rounds); clients];
        for round in 0..rounds {
            progress(&format!("{what}: round {}/{rounds}", round + 1));
            let mut sums = vec![Sample::default(); clients];
            for block in 0..blocks {
                let share = calls / blocks + u64::from(block < calls % blocks);
                for k in 0..clients {
                    let who = (round + block as usize + k) % clients;
                    sums[who] += run(who, share)?;
                }
            }
            for (who, sum) in sums.into_iter().enumerate() {
                samples[who].push(sum);
            }
        }
        Ok(Rounds { samples })
    }

    fn rate(&self, who: usize) -> f64 {
        median(self.samples[who].iter().map(Sample::rate))
    }

    fn ms(&self, who: usize) -> f64 {
        median(self.samples[who].iter().map(Sample::ms_per_call))
    }

    fn cpu_us(&self, who: usize) -> f64 {
        median(self.samples[who].iter().map(Sample::cpu_us_per_call))
    }

    fn user_us(&self, who: usize) -> f64 {
        median(self.samples[who].iter().map(Sample::user_us_per_call))
    }

    fn server_us(&self, who: usize) -> f64 {
        median(self.samples[who].iter().map(Sample::server_us_per_call))
    }

    /// `who`'s CPU per call over `base`'s (medians over the rounds).
    fn cpu_ratio(&self, who: usize, base: usize) -> f64 {
        self.cpu_us(who) / self.cpu_us(base).max(f64::MIN_POSITIVE)
    }

    /// "CPU µs (user µs)" per call.
    fn cpu_cell(&self, who: usize) -> String {
        format!("{:.1} µs (user {:.1})", self.cpu_us(who), self.user_us(who))
    }

    /// The median over rounds of `who`'s rate over the raw client's
    /// (client 0) in the same round.
    fn ratio(&self, who: usize) -> f64 {
        self.ratio_to(who, 0)
    }

    /// The median over rounds of `who`'s rate over `base`'s in the same
    /// round.
    fn ratio_to(&self, who: usize, base: usize) -> f64 {
        median(
            self.samples[who]
                .iter()
                .zip(&self.samples[base])
                .map(|(c, b)| c.rate() / b.rate()),
        )
    }
}

/// A client's loop: `run(n)` makes `n` calls.
type Loop = Box<dyn FnMut(u64) -> Result<()>>;

/// One client of a round-trip scenario, on a QEMU of its own: a QEMU
/// serves each request later the more monitors it has and the more bytes
/// a request has, so monitors shared between clients would measure the
/// monitors, not the clients.
struct Contender {
    /// Its name in the figures.
    name: &'static str,
    qemu: Qemu,
    /// The version its QEMU announced.
    version: String,
    run: Loop,
}

impl Contender {
    /// Starts a QEMU and connects `client` to it.
    fn start(
        name: &'static str,
        client: impl FnOnce(&std::path::Path) -> Result<Loop>,
    ) -> Result<Contender> {
        Contender::on(Qemu::start(1)?, name, client)
    }

    /// Connects `client` to `qemu`, once a first connection has read the
    /// version from its greeting (a monitor serves one client at a time).
    fn on(
        qemu: Qemu,
        name: &'static str,
        client: impl FnOnce(&std::path::Path) -> Result<Loop>,
    ) -> Result<Contender> {
        let version = Raw::connect(&qemu.sockets[0])?.version().to_owned();
        let run = client(&qemu.sockets[0])?;
        Ok(Contender {
            name,
            qemu,
            version,
            run,
        })
    }
}

/// Runs every contender in interleaved rounds of `n` calls (after a
/// warm-up of a tenth of that); the first one is the baseline.
fn contest(contenders: &mut [Contender], rounds: usize, n: u64, what: &str) -> Result<Rounds> {
    let warm = (n / 10).max(10);
    for c in contenders.iter_mut() {
        (c.run)(warm)?;
    }
    Rounds::run(contenders.len(), rounds, n, what, |who, n| {
        let c = &mut contenders[who];
        let qemu = &c.qemu;
        measure_with(|| qemu.cpu_time(), n, || (c.run)(n))
    })
}

/// A `qmp-smol` client's serial loop.
fn smol_serial(placement: Placement, typed: bool) -> impl FnOnce(&std::path::Path) -> Result<Loop> {
    move |path| {
        let c = SmolClient::connect(path, placement)?;
        Ok(Box::new(move |n| match typed {
            true => c.serial_typed(n),
            false => c.serial(QUERY_STATUS, n),
        }))
    }
}

/// A `qmp-tokio` client's serial loop.
fn tokio_serial(flavor: Flavor) -> impl FnOnce(&std::path::Path) -> Result<Loop> {
    move |path| {
        let c = TokioClient::connect(path, flavor)?;
        Ok(Box::new(move |n| c.serial(QUERY_STATUS, n)))
    }
}

/// A raw client's serial loop; with a read timeout, or decoding each
/// reply into a `Value`.
fn raw_serial(
    timeout: Option<Duration>,
    decode: bool,
) -> impl FnOnce(&std::path::Path) -> Result<Loop> {
    let request = raw_request(QUERY_STATUS);
    move |path| {
        let mut raw = Raw::connect(path)?;
        if let Some(t) = timeout {
            raw.set_read_timeout(t)?;
        }
        Ok(Box::new(move |n| match decode {
            true => raw.serial_decoding(&request, n),
            false => raw.serial(&request, n),
        }))
    }
}

/// A `qmp-std` client's serial loop.
fn std_serial(typed: bool) -> impl FnOnce(&std::path::Path) -> Result<Loop> {
    move |path| {
        let mut c = StdClient::connect(path)?;
        Ok(Box::new(move |n| match typed {
            true => c.serial_typed(n),
            false => c.serial(QUERY_STATUS, n),
        }))
    }
}

/// The six clients of the table's columns, each on a QEMU of its own.
fn columns() -> Result<Vec<Contender>> {
    Ok(vec![
        Contender::start("raw", raw_serial(None, false))?,
        Contender::start("std", std_serial(false))?,
        Contender::start("smol", smol_serial(Placement::SameThread, false))?,
        Contender::start("smol_spawned", smol_serial(Placement::Spawned, false))?,
        Contender::start("tokio", tokio_serial(Flavor::CurrentThread))?,
        Contender::start("tokio_mt", tokio_serial(Flavor::MultiThread))?,
    ])
}

/// Where each client stands in the serial contest: the six [`columns`]
/// first (so also in the pinned one), then the variants, then the
/// [`floors`] (which follow the columns directly in the pinned contest).
mod at {
    pub(super) const RAW: usize = 0;
    pub(super) const STD: usize = 1;
    pub(super) const SMOL: usize = 2;
    pub(super) const SMOL_SPAWNED: usize = 3;
    pub(super) const TOKIO: usize = 4;
    pub(super) const TOKIO_MT: usize = 5;
    /// How many columns there are: where the pinned contest's floors start.
    pub(super) const COLUMNS: usize = 6;
    pub(super) const STD_TYPED: usize = 6;
    pub(super) const SMOL_TYPED: usize = 7;
    pub(super) const RAW_TIMEOUT: usize = 8;
    pub(super) const RAW_DECODE: usize = 9;
    /// Where the serial contest's floors start.
    pub(super) const FLOORS: usize = 10;
}

/// The async runtimes' floors ([`raw_async`]): raw's loop on async-io
/// under `smol::block_on`, and on tokio's two schedulers.
fn floors() -> Result<Vec<Contender>> {
    let request = raw_request(QUERY_STATUS);
    let smol = {
        let request = request.clone();
        move |path: &std::path::Path| -> Result<Loop> {
            let mut raw = RawSmol::connect(path)?;
            Ok(Box::new(move |n| raw.serial(&request, n)))
        }
    };
    let tokio = |flavor| {
        let request = request.clone();
        move |path: &std::path::Path| -> Result<Loop> {
            let mut raw = RawTokio::connect(path, flavor)?;
            Ok(Box::new(move |n| raw.serial(&request, n)))
        }
    };
    Ok(vec![
        Contender::start("raw_smol", smol)?,
        Contender::start("raw_tokio", tokio(Flavor::CurrentThread))?,
        Contender::start("raw_tokio_mt", tokio(Flavor::MultiThread))?,
    ])
}

/// The floors' rows, `first` being the index of the first of [`floors`]
/// in `r`, and each async client's rate and CPU over its runtime's floor
/// (`{contest}_ratio_over_floor_` and `{contest}_cpu_ratio_over_floor_`
/// followed by its column's key).
fn floor_rows(r: &Rounds, first: usize, contest: &str, report: &mut Report) {
    for (k, what) in [
        "  raw loop on async-io, smol::block_on",
        "  raw loop on tokio, current-thread",
        "  raw loop on tokio, multi-thread",
    ]
    .into_iter()
    .enumerate()
    {
        let i = first + k;
        report.row(&[
            what.into(),
            format!(
                "{}; CPU {}",
                rate_cell(r.rate(i), Some(r.ratio(i))),
                r.cpu_cell(i)
            ),
        ]);
    }
    let mut cells = vec!["  each async client over its runtime's floor: rate, CPU".to_owned()];
    cells.extend(["-".to_owned(), "-".to_owned()]);
    for (client, floor, key) in [
        (at::SMOL, first, "smol_local"),
        (at::SMOL_SPAWNED, first, "smol_spawned"),
        (at::TOKIO, first + 1, "tokio"),
        (at::TOKIO_MT, first + 2, "tokio_mt"),
    ] {
        let ratio = r.ratio_to(client, floor);
        let cpu = r.cpu_ratio(client, floor);
        report.set(&format!("{contest}_ratio_over_floor_{key}"), ratio);
        report.set(&format!("{contest}_cpu_ratio_over_floor_{key}"), cpu);
        cells.push(format!("{ratio:.2}, CPU {cpu:.2}×"));
    }
    report.row(&cells);
}

/// Serial round trips: raw, qmp-std, qmp-smol (driver on the calling
/// thread and spawned), qmp-tokio (current-thread and multi-thread), typed
/// calls next to untyped ones; two variants of raw that tell where a
/// client's time goes (one whose reads have a timeout, one that decodes
/// each reply); and each async runtime's floor.
fn serial(s: &Sizes, report: &mut Report) -> Result<()> {
    let mut contenders = columns()?;
    contenders.extend([
        Contender::start("std_typed", std_serial(true))?,
        Contender::start("smol_typed", smol_serial(Placement::SameThread, true))?,
        Contender::start(
            "raw_timeout",
            raw_serial(Some(Duration::from_secs(30)), false),
        )?,
        Contender::start("raw_decode", raw_serial(None, true))?,
    ]);
    contenders.extend(floors()?);
    // The figures find the clients by position.
    assert_eq!(contenders[at::RAW_DECODE].name, "raw_decode");
    assert_eq!(contenders[at::FLOORS].name, "raw_smol");
    report.set("serial_qemu", contenders[0].version.clone());
    let r = contest(&mut contenders, s.rounds, s.serial, "serial")?;
    let names: Vec<&str> = contenders.iter().map(|c| c.name).collect();
    drop(contenders);
    report_serial(&r, &names, s.serial, report);
    Ok(())
}

/// Each client's figures from one contest: `{contest}_calls_per_s_`,
/// `{contest}_ratio_` (to raw, client 0), and `cpu_us_per_call{cpu}_`,
/// `user_us_per_call{cpu}_`, `qemu_cpu_us_per_call{cpu}_` followed by its
/// name; `(contest, cpu)` is e.g. `("serial", "")`.
fn report_clients(r: &Rounds, names: &[&str], (contest, cpu): (&str, &str), report: &mut Report) {
    for (i, name) in names.iter().enumerate() {
        report.set(&format!("{contest}_calls_per_s_{name}"), r.rate(i));
        report.set(&format!("cpu_us_per_call{cpu}_{name}"), r.cpu_us(i));
        report.set(&format!("user_us_per_call{cpu}_{name}"), r.user_us(i));
        report.set(&format!("qemu_cpu_us_per_call{cpu}_{name}"), r.server_us(i));
        if i > 0 {
            report.set(&format!("{contest}_ratio_{name}"), r.ratio(i));
        }
    }
}

/// The serial figures, and their rows of the table.
fn report_serial(r: &Rounds, names: &[&str], n: u64, report: &mut Report) {
    report.set("serial_calls", n);
    report_clients(r, names, ("serial", ""), report);
    // The names scripts comparing runs look for.
    report.set("serial_ratio_smol_local", r.ratio(at::SMOL));
    report.set("cpu_us_per_call_smol_local", r.cpu_us(at::SMOL));
    report.set("typed_cpu_ratio_std", r.cpu_ratio(at::STD_TYPED, at::STD));
    report.set(
        "typed_cpu_ratio_smol",
        r.cpu_ratio(at::SMOL_TYPED, at::SMOL),
    );
    // Each client's CPU over raw's; and next to raw decoding each reply
    // into a `Value` (a raw socket and bare serde_json), which does the
    // least work a client returning values can.
    for (i, key) in [
        (at::STD, "std"),
        (at::SMOL, "smol_local"),
        (at::SMOL_SPAWNED, "smol_spawned"),
        (at::TOKIO, "tokio"),
        (at::TOKIO_MT, "tokio_mt"),
        (at::STD_TYPED, "std_typed"),
        (at::SMOL_TYPED, "smol_typed"),
    ] {
        let decode = at::RAW_DECODE;
        report.set(&format!("cpu_ratio_{key}"), r.cpu_ratio(i, at::RAW));
        report.set(
            &format!("cpu_ratio_over_raw_decode_{key}"),
            r.cpu_ratio(i, decode),
        );
        report.set(
            &format!("serial_ratio_over_raw_decode_{key}"),
            r.ratio_to(i, decode),
        );
    }
    column_rows(r, &format!("serial {QUERY_STATUS}, {n} calls"), report);
    let cpu = |i| r.cpu_cell(i);
    let qemu_cpu = |i| format!("{:.1} µs", r.server_us(i));
    report.row(&[
        "  typed calls (QueryStatus), CPU per call".into(),
        "-".into(),
        cpu(at::STD_TYPED),
        cpu(at::SMOL_TYPED),
    ]);
    for (i, what) in [
        (at::RAW_TIMEOUT, "  raw with a read timeout (SO_RCVTIMEO)"),
        (at::RAW_DECODE, "  raw decoding each reply (serde_json)"),
    ] {
        report.row(&[what.into(), rate_cell(r.rate(i), Some(r.ratio(i)))]);
        report.row(&[
            "    its CPU, QEMU's CPU per call".into(),
            format!("{}; {}", cpu(i), qemu_cpu(i)),
        ]);
    }
    report.row(&[
        "  qmp-std over raw decoding each reply: rate, CPU".into(),
        format!(
            "{:.2}, {:.2}×",
            r.ratio_to(at::STD, at::RAW_DECODE),
            r.cpu_ratio(at::STD, at::RAW_DECODE)
        ),
    ]);
    floor_rows(r, at::FLOORS, "serial", report);
}

/// The rows of the six clients of [`columns`]: rate and ratio, the
/// client's CPU, QEMU's CPU.
fn column_rows(r: &Rounds, title: &str, report: &mut Report) {
    let mut rates = vec![title.to_owned(), rate_cell(r.rate(0), None)];
    rates.extend((1..at::COLUMNS).map(|i| rate_cell(r.rate(i), Some(r.ratio(i)))));
    report.row(&rates);
    let mut cpu = vec!["  client CPU per call".to_owned()];
    cpu.extend((0..at::COLUMNS).map(|i| r.cpu_cell(i)));
    report.row(&cpu);
    let mut qemu = vec!["  QEMU's CPU per call".to_owned()];
    qemu.extend((0..at::COLUMNS).map(|i| format!("{:.1} µs", r.server_us(i))));
    report.row(&qemu);
}

/// The keys of the pinned figures, by column.
const PINNED_KEYS: [&str; 9] = [
    "raw",
    "std",
    "smol_local",
    "smol_spawned",
    "tokio",
    "tokio_mt",
    "raw_smol",
    "raw_tokio",
    "raw_tokio_mt",
];

/// The serial round trips of the six columns and the runtimes' floors
/// again, with every thread of this process on one CPU and every thread of
/// each QEMU on another.
///
/// QEMU's monitor reads and parses a request on an I/O thread of its own
/// and runs it on its main thread, so a call passes three threads. On a
/// machine with two CPUs the scheduler then keeps them in place or moves
/// all three at every call, depending on when the client's thread
/// sleeps (see docs/performance.md): the unpinned figures measure that
/// too. Pinned, every client gets the same placement, and what is left is
/// its own cost.
///
/// The pipelined clients run pinned too: with three busy threads for two
/// CPUs, where they land decides as much as what the client costs.
fn pinned(s: &Sizes, report: &mut Report) -> Result<()> {
    let cpus = pin::allowed_cpus()?;
    if cpus.len() < 2 {
        progress("pinned: fewer than two CPUs, figures left null");
        for key in PINNED_KEYS {
            report.set(&format!("serial_pinned_ratio_{key}"), Value::Null);
        }
        for key in &PIPELINED_KEYS[1..] {
            report.set(&format!("pipelined_pinned_ratio_{key}"), Value::Null);
        }
        return Ok(());
    }
    let placement = format!("client on CPU {}, QEMU on CPU {}", cpus[0], cpus[1]);
    let serial = || {
        let mut contenders = columns()?;
        contenders.extend(floors()?);
        assert_eq!(contenders[at::COLUMNS].name, "raw_smol");
        Ok(contenders)
    };
    let (r, version) = pinned_rounds(&cpus, serial, s.rounds, s.serial, "serial, pinned")?;
    report.set("serial_pinned_qemu", version);
    report_clients(&r, &PINNED_KEYS, ("serial_pinned", "_pinned"), report);
    let title = format!("serial {QUERY_STATUS}, {} calls, {placement}", s.serial);
    column_rows(&r, &title, report);
    floor_rows(&r, at::COLUMNS, "serial_pinned", report);
    let what = "pipelined, pinned";
    let (r, _) = pinned_rounds(&cpus, pipelined_contenders, s.rounds, s.pipelined, what)?;
    let suffixes = ("pipelined_pinned", "_pipelined_pinned");
    report_clients(&r, &PIPELINED_KEYS, suffixes, report);
    let title = format!(
        "pipelined, {WINDOW} in flight, {} calls, {placement}",
        s.pipelined
    );
    pipelined_rows(&r, &title, report);
    Ok(())
}

/// With this process on `cpus[0]`, starts the contenders `start` makes
/// (their threads start on that CPU), moves their QEMUs to `cpus[1]` and
/// runs `rounds` rounds of `n` calls; then lets this process run on every
/// CPU again. Returns the rounds and raw's QEMU version.
fn pinned_rounds(
    cpus: &[usize],
    start: impl FnOnce() -> Result<Vec<Contender>>,
    rounds: usize,
    n: u64,
    what: &str,
) -> Result<(Rounds, String)> {
    let me = std::process::id();
    pin::pin_process(me, &cpus[..1])?;
    let result = (|| {
        let mut contenders = start()?;
        for c in &contenders {
            pin::pin_process(c.qemu.pid(), &cpus[1..2])?;
        }
        let r = contest(&mut contenders, rounds, n, what)?;
        Ok((r, contenders[0].version.clone()))
    })();
    pin::pin_process(me, cpus)?;
    result
}

/// The keys of the pipelined figures, by client.
const PIPELINED_KEYS: [&str; 4] = ["raw", "smol", "smol_spawned", "tokio"];

/// The pipelined clients: raw, qmp-smol (driver local and spawned) and
/// qmp-tokio (current-thread), each keeping `WINDOW` calls in flight.
fn pipelined_contenders() -> Result<Vec<Contender>> {
    let request = raw_request(QUERY_STATUS);
    let smol = |placement| {
        move |path: &std::path::Path| -> Result<Loop> {
            let c = SmolClient::connect(path, placement)?;
            Ok(Box::new(move |n| c.pipelined(QUERY_STATUS, n, WINDOW)))
        }
    };
    Ok(vec![
        Contender::start("raw", |path| {
            let mut raw = Raw::connect(path)?;
            Ok(Box::new(move |n| raw.pipelined(&request, n, WINDOW)))
        })?,
        Contender::start("smol", smol(Placement::SameThread))?,
        Contender::start("smol_spawned", smol(Placement::Spawned))?,
        Contender::start("tokio", |path| {
            let c = TokioClient::connect(path, Flavor::CurrentThread)?;
            Ok(Box::new(move |n| c.pipelined(QUERY_STATUS, n, WINDOW)))
        })?,
    ])
}

/// The rows of the pipelined clients: rate and ratio, the client's CPU,
/// QEMU's CPU.
fn pipelined_rows(r: &Rounds, title: &str, report: &mut Report) {
    let cells = |label: String, f: &dyn Fn(usize) -> String| {
        vec![label, f(0), "-".into(), f(1), f(2), f(3)]
    };
    report.row(&cells(title.to_owned(), &|i| {
        rate_cell(r.rate(i), (i > 0).then(|| r.ratio(i)))
    }));
    report.row(&cells("  client CPU per call".into(), &|i| r.cpu_cell(i)));
    report.row(&cells("  QEMU's CPU per call".into(), &|i| {
        format!("{:.1} µs", r.server_us(i))
    }));
}

/// `WINDOW` calls in flight: raw, qmp-smol (driver local and spawned) and
/// qmp-tokio (current-thread); qmp-std makes one call at a time by design.
fn pipelined(s: &Sizes, report: &mut Report) -> Result<()> {
    let mut contenders = pipelined_contenders()?;
    report.set("pipelined_qemu", contenders[0].version.clone());
    let n = s.pipelined;
    let r = contest(&mut contenders, s.rounds, n, "pipelined")?;
    drop(contenders);
    report.set("pipelined_calls", n);
    report.set("pipelined_window", WINDOW);
    report_clients(&r, &PIPELINED_KEYS, ("pipelined", "_pipelined"), report);
    let title = format!("pipelined, {WINDOW} in flight, {n} calls");
    pipelined_rows(&r, &title, report);
    Ok(())
}

/// The large reply: `query-qmp-schema`, one call at a time.
fn schema(s: &Sizes, report: &mut Report) -> Result<()> {
    let request = raw_request(SCHEMA);
    let raw = |decode: bool| {
        let request = request.clone();
        move |path: &std::path::Path| -> Result<Loop> {
            let mut raw = Raw::connect(path)?;
            Ok(Box::new(move |n| match decode {
                true => raw.serial_decoding(&request, n),
                false => raw.serial(&request, n),
            }))
        }
    };
    let qemu = Qemu::start(1)?;
    let reply_bytes = {
        let mut probe = Raw::connect(&qemu.sockets[0])?;
        report.set("schema_qemu", probe.version().to_owned());
        let before = probe.bytes_read();
        probe.serial(&request, 1)?;
        probe.bytes_read() - before
    };
    let mut contenders = vec![
        Contender::on(qemu, "raw", raw(false))?,
        Contender::start("std", |path| {
            let mut c = StdClient::connect(path)?;
            Ok(Box::new(move |n| c.serial(SCHEMA, n)))
        })?,
        Contender::start("smol", |path| {
            let c = SmolClient::connect(path, Placement::SameThread)?;
            Ok(Box::new(move |n| c.serial(SCHEMA, n)))
        })?,
        Contender::start("raw_decode", raw(true))?,
    ];
    let n = s.schema;
    let r = contest(&mut contenders, s.rounds, n, "schema")?;
    drop(contenders);

    report.set("schema_calls", n);
    report.set("schema_reply_bytes", reply_bytes);
    for (i, name) in ["raw", "std", "smol", "raw_decode"].iter().enumerate() {
        report.set(&format!("schema_ms_per_call_{name}"), r.ms(i));
        report.set(&format!("cpu_us_per_schema_{name}"), r.cpu_us(i));
        if i > 0 {
            report.set(&format!("schema_ratio_{name}"), r.ratio(i));
        }
    }
    let ms = |i: usize, ratio: bool| {
        if ratio {
            format!("{:.1} ms ({:.2})", r.ms(i), r.ratio(i))
        } else {
            format!("{:.1} ms", r.ms(i))
        }
    };
    report.row(&[
        format!(
            "{SCHEMA} ({} KB), {n} calls",
            thousands(reply_bytes as f64 / 1000.0)
        ),
        ms(0, false),
        ms(1, true),
        ms(2, true),
        "-".into(),
    ]);
    let cpu = |i| format!("{:.2} ms", r.cpu_us(i) / 1000.0);
    report.row(&[
        "  client CPU per call".into(),
        cpu(0),
        cpu(1),
        cpu(2),
        "-".into(),
    ]);
    report.row(&[
        "  raw decoding each reply (serde_json)".into(),
        format!("{}, CPU {}", ms(3, true), cpu(3)),
    ]);
    Ok(())
}

/// Runs one isolated scenario in a child process and returns its figures.
fn run_child(args: &[String]) -> Result<Map<String, Value>> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("qmp-bench {} failed ({})", args.join(" "), out.status).into());
    }
    match serde_json::from_slice(&out.stdout)? {
        Value::Object(m) => Ok(m),
        other => Err(format!("qmp-bench {}: not an object: {other}", args.join(" ")).into()),
    }
}

fn flood(s: &Sizes, report: &mut Report) -> Result<()> {
    let mut cells = vec![
        format!(
            "event flood, {} events, peak RSS",
            thousands(s.events as f64)
        ),
        "-".into(),
    ];
    let mut peak = 0f64;
    for (client, name) in [("flood-std", "std"), ("flood-smol", "smol")] {
        progress(&format!("event flood: {name}"));
        let f = run_child(&[
            "--child".into(),
            client.into(),
            "--events".into(),
            s.events.to_string(),
        ])?;
        let kib = |k: &str| f.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let mib = kib("peak_rss_kib") / 1024.0;
        let increase = (kib("peak_rss_kib") - kib("baseline_rss_kib")) / 1024.0;
        peak = peak.max(mib);
        report.set(&format!("event_flood_peak_rss_mib_{name}"), mib);
        report.set(&format!("event_flood_rss_increase_mib_{name}"), increase);
        report.set(
            &format!("event_flood_events_per_s_{name}"),
            kib("events_per_s"),
        );
        report.set(&format!("event_flood_lost_{name}"), kib("events_lost"));
        cells.push(format!("{mib:.1} MiB (+{increase:.1})"));
    }
    report.set("event_flood_events", s.events);
    report.set("event_flood_peak_rss_mib", peak);
    cells.push("-".into());
    report.row(&cells);
    Ok(())
}

fn fanout(s: &Sizes, report: &mut Report) -> Result<()> {
    progress(&format!(
        "fan-out: {} instances × {} calls",
        s.instances, s.calls
    ));
    let f = run_child(&[
        "--child".into(),
        "fanout".into(),
        "--instances".into(),
        s.instances.to_string(),
        "--calls".into(),
        s.calls.to_string(),
    ])?;
    report.figures.extend(f);
    report.row(&[
        format!(
            "fan-out, {} QEMUs × {} calls, one thread",
            s.instances, s.calls
        ),
        "-".into(),
        "-".into(),
        format!(
            "{}/s, {} errors, {:.0} KiB RSS per connection",
            thousands(report.get("fanout_calls_per_s")),
            report.get("fanout_errors"),
            report.get("fanout_rss_kib_per_connection")
        ),
        "-".into(),
    ]);
    Ok(())
}

fn scale_scenario(s: &Sizes, report: &mut Report) -> Result<()> {
    progress(&format!(
        "scale: {} connections to scripted peers × {} calls",
        s.conns, s.conn_calls
    ));
    let f = run_child(&[
        "--child".into(),
        "scale".into(),
        "--conns".into(),
        s.conns.to_string(),
        "--conn-calls".into(),
        s.conn_calls.to_string(),
    ])?;
    report.figures.extend(f);
    report.row(&[
        format!(
            "scale, {} scripted peers × {} calls, one thread",
            s.conns, s.conn_calls
        ),
        "-".into(),
        "-".into(),
        format!(
            "{}/s, {} errors, {} misrouted, {:.1} KiB RSS per idle connection",
            thousands(report.get("scale_calls_per_s")),
            report.get("scale_errors"),
            report.get("scale_misrouted"),
            report.get("conn_rss_kib")
        ),
        "-".into(),
    ]);
    Ok(())
}

/// System calls per serial call of each client: under `strace` when it is
/// there, and untraced with `perf` when it can count them (`null` figures
/// otherwise).
fn syscalls_scenario(s: &Sizes, report: &mut Report) -> Result<()> {
    let qemu = Qemu::start(1)?;
    report.set(
        "syscalls_qemu",
        Raw::connect(&qemu.sockets[0])?.version().to_owned(),
    );
    let socket = &qemu.sockets[0];
    let traced = syscalls::available();
    let untraced = syscalls::perf_available();
    let mut cells = vec![format!(
        "system calls per serial call ({} calls; strace -f -c{})",
        s.serial,
        if untraced { ", perf stat" } else { "" }
    )];
    let mut rows = Vec::new();
    for (profile, key) in syscalls::COUNTED {
        progress(&format!("system calls: {profile}"));
        let mut cell = key.to_string();
        if traced {
            let (total, per) = syscalls::per_call(profile, socket, s.serial)?;
            report.set(&format!("syscalls_per_call_{key}"), total);
            cell.push_str(&format!(" {total:.1}"));
            rows.push(vec![format!("  {key}: {}", syscalls::breakdown(&per))]);
        }
        if untraced {
            let total = syscalls::per_call_untraced(profile, socket, s.serial)?;
            report.set(&format!("syscalls_per_call_untraced_{key}"), total);
            cell.push_str(&format!(", {total:.1} untraced"));
        }
        cells.push(cell);
    }
    if !traced {
        progress("system calls: strace is not installed, traced figures left null");
    }
    if !untraced {
        progress("system calls: perf cannot count them, untraced figures left null");
    }
    worst_syscalls(report);
    report.row(&cells);
    for r in rows {
        report.row(&r);
    }
    Ok(())
}

/// Each adapter's worse placement (the figure its target bounds):
/// `syscalls_per_call{_untraced}_{smol,tokio}`; `null` where a count is
/// missing.
fn worst_syscalls(report: &mut Report) {
    for kind in ["", "_untraced"] {
        for (adapter, a, b) in [
            ("smol", "smol_local", "smol_spawned"),
            ("tokio", "tokio_ct", "tokio_mt"),
        ] {
            let get = |k: &str| report.get(&format!("syscalls_per_call{kind}_{k}"));
            let worst = get(a).max(get(b));
            let value = match worst.is_nan() {
                true => Value::Null,
                false => worst.into(),
            };
            report.set(&format!("syscalls_per_call{kind}_{adapter}"), value);
        }
        for (_, key) in syscalls::COUNTED {
            let key = format!("syscalls_per_call{kind}_{key}");
            if !report.figures.contains_key(&key) {
                report.set(&key, Value::Null);
            }
        }
    }
}

/// A scenario's body.
type ScenarioFn = fn(&Sizes, &mut Report) -> Result<()>;

fn bench(args: &Args) -> Result<Report> {
    let s = Sizes::from(args);
    let mut report = Report::default();
    report.set("rounds", s.rounds);
    report.row(&[
        format!("scenario (medians of {} interleaved rounds)", s.rounds),
        "raw socket".into(),
        "qmp-std".into(),
        "qmp-smol".into(),
        "qmp-smol, spawned driver".into(),
        "qmp-tokio, current-thread".into(),
        "qmp-tokio, multi-thread".into(),
    ]);
    let wanted = |x| args.only.is_empty() || args.only.contains(&x);
    let scenarios: [(Scenario, ScenarioFn); 8] = [
        (Scenario::Serial, serial),
        (Scenario::Pinned, pinned),
        (Scenario::Pipelined, pipelined),
        (Scenario::Schema, schema),
        (Scenario::Flood, flood),
        (Scenario::Fanout, fanout),
        (Scenario::Scale, scale_scenario),
        (Scenario::Syscalls, syscalls_scenario),
    ];
    for (scenario, run) in scenarios {
        if wanted(scenario) {
            run(&s, &mut report)?;
        }
    }
    Ok(report)
}

/// `--profile`: one client's serial loop, alone.
fn profile(who: Profiled, args: &Args) -> Result<()> {
    let s = Sizes::from(args);
    let qemu = match &args.socket {
        Some(_) => None,
        None => Some(Qemu::start(1)?),
    };
    let path = match (&args.socket, &qemu) {
        (Some(p), _) => p.clone(),
        (None, Some(q)) => q.sockets[0].clone(),
        (None, None) => unreachable!("a QEMU was started"),
    };
    let n = s.serial;
    let mode = match (args.typed, args.window) {
        (true, Some(_)) => return Err("--typed calls are made one at a time".into()),
        (true, None) => Mode::Typed,
        (false, Some(w)) => Mode::Pipelined(w.max(1)),
        (false, None) => Mode::Serial,
    };
    let mut run = profiled_loop(who, &path, args.command.clone(), mode, n)?;
    for _ in 0..s.rounds {
        let sample = measure(n, &mut run)?;
        println!(
            "{who:?}: {}/s, {:.1} µs CPU per call (user {:.1})",
            thousands(sample.rate()),
            sample.cpu_us_per_call(),
            sample.user_us_per_call()
        );
    }
    Ok(())
}

/// What a `--profile` loop does with each call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Untyped calls, one after another.
    Serial,
    /// Typed `query-status` calls, one after another.
    Typed,
    /// Untyped calls, this many in flight.
    Pipelined(u64),
}

/// A loop of `n` calls of `command` by `who` over `path`.
fn profiled_loop(
    who: Profiled,
    path: &std::path::Path,
    command: String,
    mode: Mode,
    n: u64,
) -> Result<Box<dyn FnMut() -> Result<()>>> {
    if mode == Mode::Typed && command != QUERY_STATUS {
        return Err(format!("--typed calls {QUERY_STATUS}, not {command}").into());
    }
    let request = raw_request(&command);
    let unsupported = |what: &str| Err(format!("--profile {who:?} {what}").into());
    Ok(match (who, mode) {
        (Profiled::Raw, Mode::Pipelined(w)) => {
            let mut raw = Raw::connect(path)?;
            Box::new(move || raw.pipelined(&request, n, w))
        }
        (Profiled::Raw, _) => {
            let mut raw = Raw::connect(path)?;
            Box::new(move || raw.serial(&request, n))
        }
        (Profiled::Std, Mode::Pipelined(_)) => return unsupported("makes one call at a time"),
        (Profiled::Std, _) => {
            let mut c = StdClient::connect(path)?;
            Box::new(move || match mode {
                Mode::Typed => c.serial_typed(n),
                _ => c.serial(&command, n),
            })
        }
        (Profiled::RawSmol | Profiled::RawTokio | Profiled::RawTokioMt, Mode::Pipelined(_)) => {
            return unsupported("has no pipelined loop");
        }
        (Profiled::RawSmol, _) => {
            let mut raw = RawSmol::connect(path)?;
            Box::new(move || raw.serial(&request, n))
        }
        (Profiled::RawTokio | Profiled::RawTokioMt, _) => {
            let flavor = match who {
                Profiled::RawTokio => Flavor::CurrentThread,
                _ => Flavor::MultiThread,
            };
            let mut raw = RawTokio::connect(path, flavor)?;
            Box::new(move || raw.serial(&request, n))
        }
        (Profiled::Smol | Profiled::SmolSpawned | Profiled::Tokio | Profiled::TokioMt, _) => {
            async_loop(who, path, command, mode, n)?
        }
    })
}

/// [`profiled_loop`] for the async clients.
fn async_loop(
    who: Profiled,
    path: &std::path::Path,
    command: String,
    mode: Mode,
    n: u64,
) -> Result<Box<dyn FnMut() -> Result<()>>> {
    Ok(match who {
        Profiled::Smol => mode_loop(
            SmolClient::connect(path, Placement::SameThread)?,
            command,
            mode,
            n,
        ),
        Profiled::SmolSpawned => mode_loop(
            SmolClient::connect(path, Placement::Spawned)?,
            command,
            mode,
            n,
        ),
        Profiled::Tokio => mode_loop(
            TokioClient::connect(path, Flavor::CurrentThread)?,
            command,
            mode,
            n,
        ),
        _ => mode_loop(
            TokioClient::connect(path, Flavor::MultiThread)?,
            command,
            mode,
            n,
        ),
    })
}

/// A loop of `n` calls of `command` by the async client `c`, as `mode`
/// says.
fn mode_loop(
    c: impl AsyncCalls + 'static,
    command: String,
    mode: Mode,
    n: u64,
) -> Box<dyn FnMut() -> Result<()>> {
    Box::new(move || match mode {
        Mode::Serial => c.serial(&command, n),
        Mode::Typed => c.serial_typed(n),
        Mode::Pipelined(w) => c.pipelined(&command, n, w),
    })
}

fn child(kind: Child, args: &Args) -> Result<Value> {
    let s = Sizes::from(args);
    match kind {
        Child::FloodStd => flood::child(flood::Client::Std, s.events),
        Child::FloodSmol => flood::child(flood::Client::Smol, s.events),
        Child::Fanout => fanout::child(s.instances, s.calls),
        Child::Scale => scale::child(s.conns, s.conn_calls),
        Child::ServePeers => {
            let dir = args.peer_dir.as_deref().ok_or("--peer-dir is needed")?;
            scale::serve(s.instances, dir)
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(kind) = args.child {
        return match child(kind, &args) {
            Ok(v) => {
                println!("{v}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("qmp-bench --child {kind:?}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(who) = args.profile {
        return match profile(who, &args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("qmp-bench --profile: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match bench(&args) {
        Ok(report) => {
            let table = report.table();
            if args.json {
                eprint!("{table}");
                println!("{}", json!(report.figures));
            } else {
                print!("{table}");
                println!(
                    "ratio = the client's rate / the raw socket's in the same round; CPU = this process's user+sys time (getrusage), QEMU excluded"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qmp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
