//! The fault matrix (see `fault/mod.rs`) against the blocking `qmp-std`
//! client.

mod fault;

use std::path::Path;
use std::time::{Duration, Instant};

use fault::{Adapter, Got, Opts};
use qmp_core::Event;
use qmp_std::{Error, Options, Qmp};
use serde_json::Value;

/// `qmp_std::Qmp`, one call at a time.
struct StdClient {
    qmp: Qmp,
}

fn got(r: Result<Value, Error>) -> Got {
    Got::from_result(r)
}

impl Adapter for StdClient {
    const DEPTH: usize = 1;

    fn connect(path: &Path, opts: Opts) -> Result<Self, Got> {
        let options = Options::new()
            .connect_timeout(Duration::from_secs(5))
            .handshake_timeout(opts.handshake)
            .timeout(opts.call);
        Qmp::connect_unix(path, options)
            .map(|qmp| StdClient { qmp })
            .map_err(Got::from_error)
    }

    fn call(&mut self, name: &str, args: Value) -> Got {
        got(self.qmp.execute(name, args))
    }

    fn call_within(&mut self, name: &str, args: Value, timeout: Duration) -> Got {
        got(self.qmp.with_timeout(timeout).execute(name, args))
    }

    fn calls(&mut self, n: usize, name: &str) -> Vec<Got> {
        (0..n).map(|_| self.call(name, Value::Null)).collect()
    }

    fn burst(
        &mut self,
        n: usize,
        name: &str,
        window: Duration,
        first_reply: &mut dyn FnMut(),
    ) -> Vec<Got> {
        let started = Instant::now();
        let mut out = Vec::new();
        let mut first_reply = Some(first_reply);
        while out.len() < n && started.elapsed() < window {
            let got = self.call(name, Value::Null);
            if matches!(got, Got::Value(_))
                && let Some(f) = first_reply.take()
            {
                f();
            }
            out.push(got);
        }
        out
    }

    fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Event, Got> {
        self.qmp
            .with_timeout(timeout)
            .wait_event(name)
            .map_err(Got::from_error)
    }

    fn events(&mut self) -> Vec<Event> {
        self.qmp.drain_events()
    }

    fn queued_events(&mut self) -> usize {
        self.qmp.events().len()
    }

    fn event_capacity(&self) -> usize {
        Options::new().max_queued_events
    }

    fn lagged(&mut self) -> u64 {
        self.qmp.stats().events_lagged
    }

    fn close(self) {
        self.qmp.disconnect();
    }
}

fault::fault_matrix!(StdClient);
