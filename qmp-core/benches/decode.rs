//! Decoding speed of the engine next to its ceiling, `serde_json` parsing
//! the same messages already split apart.
//!
//! Three recorded workloads (a 200 KB `query-qmp-schema` reply, 10,000
//! events, 10,000 small replies), each fed whole, in 4 KiB chunks and one
//! byte at a time. Criterion reports each; a summary at the end measures
//! engine and ceiling side by side and prints their ratio (ceiling time /
//! engine time: 1.0 means "as fast as bare serde_json").
//!
//! A second set, `take schema` and `take replies`, decodes each reply as
//! its caller takes it: untyped (`Value`) next to typed (`Command::Returns`
//! straight from the received text).
//!
//! ```sh
//! cargo bench -p qmp-core --bench decode
//! QMP_BENCH_SUMMARY=1 cargo bench -p qmp-core --bench decode   # ratios only
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant as StdInstant};

use criterion::{BatchSize, Criterion, Throughput};
use qmp_core::serde_json::{self, Value};
use qmp_core::{Client, Command, Config, Instant, Output, Request};
use serde::{Deserialize, Serialize};

/// Server bytes of a recorded transcript.
fn recorded(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/transcripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let steps: Vec<serde_json::Map<String, Value>> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    steps
        .iter()
        .filter_map(|s| s.get("recv"))
        .flat_map(|v| {
            v.as_str()
                .unwrap()
                .chars()
                .map(|c| c as u32 as u8)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The messages of a stream, split with serde_json (for the ceiling).
fn split(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut it = serde_json::Deserializer::from_slice(stream).into_iter::<serde::de::IgnoredAny>();
    let mut start = 0;
    while let Some(r) = it.next() {
        r.unwrap();
        let end = it.byte_offset();
        out.push(stream[start..end].trim_ascii());
        start = end;
    }
    out
}

struct Workload {
    name: &'static str,
    stream: Vec<u8>,
    /// Requests the engine must have in flight for the replies to match.
    requests: usize,
}

fn workloads() -> Vec<Workload> {
    let schema_session = recorded("qemu-schema.json");
    let schema = split(&schema_session)
        .into_iter()
        .max_by_key(|m| m.len())
        .unwrap()
        .to_vec();
    let schema = String::from_utf8(schema)
        .unwrap()
        .replace("\"id\": 1}", "\"id\": 0}");
    assert!(schema.len() > 150_000);

    let session = recorded("qemu-session.json");
    let events: Vec<&[u8]> = split(&session)
        .into_iter()
        .filter(|m| m.starts_with(b"{\"timestamp\""))
        .collect();
    let mut event_stream = Vec::new();
    for i in 0..10_000 {
        event_stream.extend_from_slice(events[i % events.len()]);
        event_stream.extend_from_slice(b"\r\n");
    }
    let status = split(&session)
        .into_iter()
        .find(|m| m.windows(9).any(|w| w == b"prelaunch"))
        .unwrap();
    let status = String::from_utf8(status.to_vec()).unwrap();
    let mut replies = String::new();
    for id in 0..10_000 {
        replies.push_str(&status.replace("\"id\": 1}", &format!("\"id\": {id}}}")));
        replies.push_str("\r\n");
    }
    vec![
        Workload {
            name: "schema",
            stream: schema.into_bytes(),
            requests: 1,
        },
        Workload {
            name: "events",
            stream: event_stream,
            requests: 0,
        },
        Workload {
            name: "replies",
            stream: replies.into_bytes(),
            requests: 10_000,
        },
    ]
}

type Engine = Client;

/// A running client with `requests` requests in flight.
fn engine(requests: usize) -> Box<Engine> {
    let config = Config::qmp()
        .await_greeting(false)
        .negotiate(false)
        .max_in_flight(usize::MAX)
        .max_open_requests(10_240);
    let mut c = Box::new(Engine::new(Instant::ZERO, config));
    for _ in 0..requests {
        c.execute(Instant::ZERO, Request::new("query-status"))
            .unwrap();
    }
    while let Some(tx) = c.poll_transmit() {
        let n = tx.bytes.len();
        c.consume_transmit(n);
    }
    c
}

/// Feeds `stream` in chunks of `chunk` bytes, draining after each; returns
/// how many replies and events came out.
fn feed(c: &mut Engine, stream: &[u8], chunk: usize) -> usize {
    let mut n = 0;
    for part in stream.chunks(chunk) {
        c.handle_input(Instant::ZERO, part);
        while let Some(o) = c.poll_output() {
            black_box(o);
            n += 1;
        }
        while let Some(e) = c.poll_event() {
            black_box(e);
            n += 1;
        }
    }
    n
}

fn ceiling(messages: &[&[u8]]) {
    for m in messages {
        black_box(serde_json::from_slice::<Value>(m).unwrap());
    }
}

const CHUNKS: [(&str, usize); 3] = [("whole", usize::MAX), ("4KiB", 4096), ("1B", 1)];

fn bench(c: &mut Criterion) {
    for w in workloads() {
        let messages = split(&w.stream);
        let mut g = c.benchmark_group(w.name);
        g.throughput(Throughput::Bytes(w.stream.len() as u64));
        g.sample_size(20);
        g.bench_function("serde_json ceiling", |b| b.iter(|| ceiling(&messages)));
        for (label, chunk) in CHUNKS {
            g.bench_function(label, |b| {
                b.iter_batched(
                    || engine(w.requests),
                    |mut e| feed(&mut e, &w.stream, chunk),
                    BatchSize::LargeInput,
                )
            });
        }
        g.finish();
    }
}

/// `query-status`'s return, typed as a caller would.
#[derive(Deserialize)]
#[allow(dead_code)]
struct StatusInfo {
    running: bool,
    status: String,
}

/// One entry of `query-qmp-schema`'s return, typed as a caller would.
#[derive(Deserialize)]
#[allow(dead_code)]
struct SchemaInfo {
    name: String,
    #[serde(rename = "meta-type")]
    meta_type: String,
}

#[derive(Serialize)]
struct QueryStatus;

impl Command for QueryStatus {
    const NAME: &'static str = "query-status";
    type Returns = StatusInfo;
}

#[derive(Serialize)]
struct QueryQmpSchema;

impl Command for QueryQmpSchema {
    const NAME: &'static str = "query-qmp-schema";
    type Returns = Vec<SchemaInfo>;
}

/// Feeds `stream` whole and decodes every reply as a caller takes it:
/// untyped (a `Value`) or typed (`C::Returns`, straight from the text).
fn take_replies<C: Command>(c: &mut Engine, stream: &[u8], typed: bool) -> usize {
    c.handle_input(Instant::ZERO, stream);
    let mut n = 0;
    while let Some(o) = c.poll_output() {
        if let Output::Reply { result, .. } = o {
            let reply = result.unwrap();
            if typed {
                black_box(C::decode_reply(&reply).unwrap());
            } else {
                black_box(reply.value().unwrap());
            }
            n += 1;
        }
    }
    n
}

/// Reply decoding as a caller sees it: untyped next to typed, for the
/// schema (one 200 KB reply) and 10,000 `query-status` replies.
fn bench_typed(c: &mut Criterion) {
    for w in workloads().into_iter().filter(|w| w.requests > 0) {
        let mut g = c.benchmark_group(format!("take {}", w.name));
        g.throughput(Throughput::Bytes(w.stream.len() as u64));
        g.sample_size(20);
        for typed in [false, true] {
            let label = if typed { "typed" } else { "untyped" };
            g.bench_function(label, |b| {
                b.iter_batched(
                    || engine(w.requests),
                    |mut e| match w.name {
                        "schema" => take_replies::<QueryQmpSchema>(&mut e, &w.stream, typed),
                        _ => take_replies::<QueryStatus>(&mut e, &w.stream, typed),
                    },
                    BatchSize::LargeInput,
                )
            });
        }
        g.finish();
    }
}

/// Median of `runs` timings of `f`, interleaved by the caller.
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn summary() {
    println!("\nratio = serde_json ceiling time / engine time (higher is better; 1.0 = ceiling)");
    println!(
        "{:<8} {:>11} {:>10} {:>10} {:>10} {:>12}",
        "workload", "ceiling", "whole", "4KiB", "1B", "1B / whole"
    );
    for w in workloads() {
        let messages = split(&w.stream);
        let mut times: [Vec<Duration>; 4] = Default::default();
        for _ in 0..15 {
            let t = StdInstant::now();
            ceiling(&messages);
            times[0].push(t.elapsed());
            for (i, (_, chunk)) in CHUNKS.iter().enumerate() {
                let mut e = engine(w.requests);
                let t = StdInstant::now();
                black_box(feed(&mut e, &w.stream, *chunk));
                times[i + 1].push(t.elapsed());
            }
        }
        let [c, whole, k4, b1] = times.map(median);
        let ratio = |d: Duration| c.as_secs_f64() / d.as_secs_f64();
        println!(
            "{:<8} {:>9.2?} {:>10.2} {:>10.2} {:>10.2} {:>11.2}x",
            w.name,
            c,
            ratio(whole),
            ratio(k4),
            ratio(b1),
            b1.as_secs_f64() / whole.as_secs_f64()
        );
    }
}

fn main() {
    // `QMP_BENCH_SUMMARY=1` prints only the side-by-side ratios (quick).
    if std::env::var_os("QMP_BENCH_SUMMARY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        bench(&mut c);
        bench_typed(&mut c);
        c.final_summary();
    }
    summary();
}
