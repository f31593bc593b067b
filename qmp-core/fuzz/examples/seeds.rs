//! Writes the seed corpus of every target from the transcripts recorded
//! from a real QEMU 7.2 and qemu-ga (`qmp-core/tests/transcripts`) into
//! `seeds/<target>/`.

use std::path::{Path, PathBuf};

use qmp_core::serde_json::{self, Value};
use qmp_core_fuzz::{NAMES, Op, encode};

/// One side of a recorded exchange: `(true, bytes)` was sent by the client.
fn transcript(dir: &Path, name: &str) -> Vec<(bool, Vec<u8>)> {
    let text = std::fs::read_to_string(dir.join(name)).expect(name);
    let steps: Vec<serde_json::Map<String, Value>> = serde_json::from_str(&text).unwrap();
    // Transcripts store bytes as latin-1 text so that 0xFF survives.
    let bytes = |v: &Value| {
        v.as_str()
            .unwrap()
            .chars()
            .map(|c| c as u32 as u8)
            .collect()
    };
    steps
        .iter()
        .map(|s| match (s.get("send"), s.get("recv")) {
            (Some(v), None) => (true, bytes(v)),
            (None, Some(v)) => (false, bytes(v)),
            _ => panic!("bad step in {name}"),
        })
        .collect()
}

fn server_bytes(steps: &[(bool, Vec<u8>)]) -> Vec<u8> {
    steps
        .iter()
        .filter(|s| !s.0)
        .flat_map(|s| s.1.clone())
        .collect()
}

/// The command each request the client sent runs, as an index in NAMES
/// (or the first name when it is not there).
fn executes(steps: &[(bool, Vec<u8>)]) -> Vec<Op> {
    steps
        .iter()
        .filter(|s| s.0)
        .filter_map(|(_, b)| {
            let start = b.iter().position(|&c| c == b'{')?;
            let v: Value = serde_json::from_slice(&b[start..]).ok()?;
            let name = v["execute"].as_str()?;
            if name == "qmp_capabilities" || name == "guest-sync-delimited" {
                return None;
            }
            let idx = NAMES.iter().position(|n| *n == name).unwrap_or(0);
            Some(Op::Execute {
                name: idx as u8,
                timeout_ms: None,
                oob: false,
                no_reply: false,
                fds: false,
            })
        })
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A recorded session: (sent by the client?, bytes) per message.
type Steps = [(bool, Vec<u8>)];

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let transcripts = root.join("../tests/transcripts");
    let seeds = root.join("seeds");

    let qemu = transcript(&transcripts, "qemu-session.json");
    let pretty = transcript(&transcripts, "qemu-session-pretty.json");
    let schema = transcript(&transcripts, "qemu-schema.json");
    let qga = transcript(&transcripts, "qga-session.json");

    framer_seeds(&seeds.join("framer"), &qemu, &pretty, &schema, &qga);
    engine_seeds(&seeds.join("engine"), &qemu, &pretty);
    agent_seeds(&seeds.join("agent"), &qga);
    println!("seeds written under {}", seeds.display());
}

/// The framer: two bytes of chunking seed, then a server's stream.
fn framer_seeds(framer: &Path, qemu: &Steps, pretty: &Steps, schema: &Steps, qga: &Steps) {
    for (name, steps) in [("qemu-session", qemu), ("qemu-pretty", pretty)] {
        for seed in [[0u8, 0], [7, 1], [200, 99]] {
            let mut b = seed.to_vec();
            b.extend(server_bytes(steps));
            write(framer, &format!("{name}-{}", seed[0]), &b);
        }
    }
    let mut b = vec![3, 3];
    b.extend(server_bytes(schema).into_iter().take(8192));
    write(framer, "qemu-schema-head", &b);
    let mut b = vec![5, 5];
    b.extend(server_bytes(qga));
    write(framer, "qga-session", &b);
}

/// A request expecting a reply, without descriptors.
fn exec(name: u8, timeout_ms: Option<u16>, oob: bool) -> Op {
    Op::Execute {
        name,
        timeout_ms,
        oob,
        no_reply: false,
        fds: false,
    }
}

/// QMP sessions: the recorded requests, then the server's bytes as they
/// came (whole, and a byte at a time), then the end; and one structured
/// session.
fn engine_seeds(engine: &Path, qemu: &Steps, pretty: &Steps) {
    for (name, steps) in [("qemu-session", qemu), ("qemu-pretty", pretty)] {
        let mut ops = executes(steps);
        ops.extend(
            steps
                .iter()
                .filter(|s| !s.0)
                .map(|(_, b)| Op::Input(b.clone())),
        );
        ops.push(Op::Eof);
        write(engine, name, &encode(0, &ops));
        let mut ops = executes(steps);
        ops.push(Op::Chunked(server_bytes(steps), 1));
        write(engine, &format!("{name}-bytewise"), &encode(0, &ops));
    }
    // Structured: greeting, negotiation, pipelined calls with timeouts,
    // out of band, events, replies out of order, a stall.
    let mut ops = vec![exec(0, Some(100), false), exec(4, None, false)];
    ops.extend([Op::Greeting { oob: true }, Op::CapsReply { ok: true }]);
    ops.extend((0..10).map(|i| exec(i % 10, Some(50 * u16::from(i)), false)));
    ops.push(exec(7, None, true));
    ops.extend([
        Op::Event(1),
        Op::Reply {
            pick: 3,
            error: false,
            split: 9,
        },
        Op::Advance(120),
        Op::Reply {
            pick: 1,
            error: true,
            split: 0,
        },
        Op::Stall(true),
        exec(1, None, false),
        Op::Cancel(2),
        Op::PartialWrite(5),
        Op::Stall(false),
        Op::ReplyUnknown(5),
        Op::Advance(1000),
        Op::IdlessError,
    ]);
    write(engine, "structured", &encode(0b1000, &ops));
}

/// Guest agent sessions: the recorded requests, the stale bytes before
/// the agent's delimiter, an answer to our own sync, the rest; and one
/// structured session.
fn agent_seeds(agent: &Path, qga: &Steps) {
    let recv: Vec<Vec<u8>> = qga.iter().filter(|s| !s.0).map(|s| s.1.clone()).collect();
    let mut ops = executes(qga);
    ops.push(Op::Input(recv[0].clone()));
    ops.push(Op::SyncAnswer { stale: false });
    ops.extend(recv[1..].iter().cloned().map(Op::Input));
    ops.push(Op::Eof);
    write(agent, "qga-session", &encode(0, &ops));
    let ops = vec![
        exec(3, Some(100), false),
        Op::SyncAnswer { stale: true },
        Op::SyncAnswer { stale: false },
        exec(2, None, false),
        exec(6, Some(10), false),
        Op::Advance(20),
        Op::Reply {
            pick: 1,
            error: false,
            split: 3,
        },
        Op::SyncAnswer { stale: false },
        Op::Resync,
        Op::SyncAnswer { stale: false },
        Op::Advance(600),
    ];
    write(agent, "structured", &encode(0b1000, &ops));
}
