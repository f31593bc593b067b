//! The fault matrix (see `fault/mod.rs`) against the async `qmp-smol`
//! client, its driver on a thread of its own.

mod fault;

use std::cell::RefCell;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use async_io::Timer;
use fault::{Adapter, Got, Opts};
use futures_lite::{StreamExt, future};
use qmp_core::Event;
use qmp_smol::{CloseCause, Error, EventFilter, Options, Qmp, Subscription};
use serde_json::Value;

/// `qmp_smol::Qmp` with one subscription to every event, taken before the
/// driver first runs so that events from the handshake are seen too.
struct SmolClient {
    qmp: Qmp,
    events: Subscription,
    /// Events read while waiting for another one.
    skipped: Vec<Event>,
    driver: JoinHandle<CloseCause>,
}

fn got(r: Result<Value, Error>) -> Got {
    Got::from_result(r)
}

impl SmolClient {
    /// `n` calls from `n` tasks at once; `first_reply` runs as soon as
    /// one of them has succeeded.
    fn concurrent(&self, n: usize, name: &str, first_reply: &mut dyn FnMut()) -> Vec<Got> {
        let first_reply = RefCell::new(Some(first_reply));
        let ex = smol::LocalExecutor::new();
        smol::block_on(ex.run(async {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let qmp = self.qmp.clone();
                    let name = name.to_owned();
                    let first_reply = &first_reply;
                    ex.spawn(async move {
                        let result = got(qmp.execute(&name, Value::Null).await);
                        if matches!(result, Got::Value(_)) {
                            if let Some(f) = first_reply.borrow_mut().take() {
                                f();
                            }
                        }
                        result
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(n);
            for t in tasks {
                out.push(t.await);
            }
            out
        }))
    }
}

impl Adapter for SmolClient {
    const DEPTH: usize = 8;

    fn connect(path: &Path, opts: Opts) -> Result<Self, Got> {
        let options = Options::default()
            .connect_timeout(Duration::from_secs(5))
            .handshake_timeout(opts.handshake)
            .timeout(opts.call);
        let (qmp, driver) =
            smol::block_on(Qmp::connect_unix(path, options)).map_err(Got::from_error)?;
        let events = qmp.subscribe(EventFilter::all());
        let driver = std::thread::spawn(move || smol::block_on(driver));
        Ok(SmolClient {
            qmp,
            events,
            skipped: Vec::new(),
            driver,
        })
    }

    fn call(&mut self, name: &str, args: Value) -> Got {
        got(smol::block_on(self.qmp.execute(name, args)))
    }

    fn call_within(&mut self, name: &str, args: Value, timeout: Duration) -> Got {
        got(smol::block_on(
            self.qmp.with_timeout(timeout).execute(name, args),
        ))
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
            Timer::after(timeout).await;
            Err(Got::Timeout)
        };
        smol::block_on(future::or(found, expire))
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
        qmp_smol::DEFAULT_SUBSCRIPTION_CAPACITY
    }

    fn lagged(&mut self) -> u64 {
        self.events.lagged()
    }

    fn close(self) {
        self.qmp.disconnect();
        drop(self.qmp);
        let _ = self.driver.join();
    }
}

fault::fault_matrix!(SmolClient);
