//! The fault matrix's client for the async adapters (see `fault/mod.rs`),
//! one source for every runtime: `AsyncClient<E>` is the adapter on the
//! runtime `E`, its driver spawned on that runtime, which it keeps.
//! `fault_smol.rs` and `fault_tokio.rs` expand the matrix with it.

use std::path::Path;
use std::time::Duration;

use futures_lite::{StreamExt, future};
use qmp_async::{CloseCause, Error, EventFilter, Options, Qmp, Subscription};
use qmp_core::Event;
use serde_json::Value;
use tests::exec::{Exec, Task};

use crate::fault::{Adapter, Got, Opts};

/// `qmp_async::Qmp` on the runtime `E`, with one subscription to every
/// event, taken before the driver first runs so that events from the
/// handshake are seen too.
pub(crate) struct AsyncClient<E: Exec> {
    exec: E,
    qmp: Qmp<E::R>,
    events: Subscription,
    /// Events read while waiting for another one.
    skipped: Vec<Event>,
    driver: Task<CloseCause>,
}

fn got(r: Result<Value, Error>) -> Got {
    Got::from_result(r)
}

impl<E: Exec> AsyncClient<E> {
    /// `n` calls from `n` tasks at once, submitted in order.
    /// `n` calls at once; `first_reply` runs once the first call sent has
    /// succeeded (replies come in order), the others still in flight.
    fn concurrent(&self, n: usize, name: &str, first_reply: &mut dyn FnMut()) -> Vec<Got> {
        self.exec.block_on(async {
            let mut tasks = Vec::with_capacity(n);
            for _ in 0..n {
                let qmp = self.qmp.clone();
                let name = name.to_owned();
                let mut call = Box::pin(async move { got(qmp.execute(&name, Value::Null).await) });
                // Polled once here, the call is submitted now: ids follow
                // the order of the calls, whichever thread runs the rest.
                tasks.push(match future::poll_once(&mut call).await {
                    Some(done) => Box::pin(future::ready(done)),
                    None => E::spawn(call),
                });
            }
            let mut out = Vec::with_capacity(n);
            let mut first = Some(first_reply);
            for t in tasks {
                let result = t.await;
                if matches!(result, Got::Value(_))
                    && let Some(f) = first.take()
                {
                    f();
                }
                out.push(result);
            }
            out
        })
    }
}

impl<E: Exec> Adapter for AsyncClient<E> {
    const DEPTH: usize = 8;

    fn connect(path: &Path, opts: Opts) -> Result<Self, Got> {
        let options = Options::default()
            .connect_timeout(Duration::from_secs(5))
            .handshake_timeout(opts.handshake)
            .timeout(opts.call);
        let exec = E::new();
        let (qmp, driver) = exec
            .block_on(Qmp::<E::R>::connect_unix(path, options))
            .map_err(Got::from_error)?;
        let events = qmp.subscribe(EventFilter::all());
        let driver = exec.spawn_here(driver);
        Ok(AsyncClient {
            exec,
            qmp,
            events,
            skipped: Vec::new(),
            driver,
        })
    }

    fn call(&mut self, name: &str, args: Value) -> Got {
        got(self.exec.block_on(self.qmp.execute(name, args)))
    }

    fn call_within(&mut self, name: &str, args: Value, timeout: Duration) -> Got {
        let call = self.qmp.with_timeout(timeout);
        got(self.exec.block_on(call.execute(name, args)))
    }

    fn calls(&mut self, n: usize, name: &str) -> Vec<Got> {
        self.concurrent(n, name, &mut || {})
    }

    fn burst(
        &mut self,
        n: usize,
        name: &str,
        _window: Duration,
        first_reply: &mut dyn FnMut(),
    ) -> Vec<Got> {
        self.concurrent(n, name, first_reply)
    }

    fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Event, Got> {
        let events = &mut self.events;
        let skipped = &mut self.skipped;
        let found = async {
            while let Some(e) = events.next().await {
                if e.name == name {
                    return Ok(e);
                }
                skipped.push(e);
            }
            Err(Got::Other("the event stream ended".into()))
        };
        let expire = async {
            E::sleep(timeout).await;
            Err(Got::Timeout)
        };
        self.exec.block_on(future::or(found, expire))
    }

    fn events(&mut self) -> Vec<Event> {
        let mut out = std::mem::take(&mut self.skipped);
        out.extend(std::iter::from_fn(|| self.events.try_next()));
        out
    }

    fn queued_events(&mut self) -> usize {
        self.events.len()
    }

    fn event_capacity(&self) -> usize {
        qmp_async::DEFAULT_SUBSCRIPTION_CAPACITY
    }

    fn lagged(&mut self) -> u64 {
        self.events.lagged()
    }

    fn close(self) {
        self.qmp.disconnect();
        drop(self.qmp);
        self.exec.block_on(self.driver);
    }
}
