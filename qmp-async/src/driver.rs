//! The one task that owns the engine's connection and the socket.
//!
//! Its loop: take the handles' instructions → read → write → fire the
//! engine's deadline → hand replies and events out, until nothing moves;
//! then sleep on the socket, the instruction channel and one timer, which
//! is re-armed only when the engine's deadline changes. Every protocol
//! decision is the engine's: this file only moves bytes and results.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::{Receiver, Sender};
use futures_core::Stream as _;
use qmp_core::{CloseReason, Event, Output, Reply, RequestId, SessionState};
use qmp_os::{CloseCause, Conn, Error};

use crate::events::Hub;
use crate::link::{Handshake, Instruction};
use crate::runtime::Runtime;
use crate::transport::{Alarm, Pipe, Transport};

/// Loop turns per poll before yielding to other tasks.
const BUDGET: usize = 64;

/// Drives one connection: the engine, the socket, the timer, every call's
/// reply and every subscriber's events. Nothing moves unless it is polled;
/// a call whose deadline passes ends with a timeout all the same.
///
/// It is a future: spawn it on the runtime's executor (`smol::spawn`,
/// `tokio::spawn`), or poll it yourself next to your own work, in the same
/// task. It completes when the connection closes and returns why.
///
/// ```
/// use futures_lite::future;
/// use qmp_async::{Driver, Qmp, Runtime};
///
/// async fn status<R: Runtime>(qmp: Qmp<R>, driver: Driver<R>) -> Result<(), qmp_async::Error> {
///     // Polled alongside the work, in the same task.
///     let work = async {
///         let status = qmp.execute("query-status", None).await;
///         qmp.disconnect();
///         status
///     };
///     let (status, cause) = future::zip(work, driver).await;
///     println!("{} then {cause}", status?);
///     Ok(())
/// }
/// ```
///
/// Dropping the driver closes the connection: pending calls end with
/// [`CloseCause::DriverDropped`].
#[must_use = "the connection makes no progress unless its driver is polled"]
pub struct Driver<R: Runtime> {
    inner: Box<Inner<R>>,
}

struct Inner<R: Runtime> {
    conn: Conn,
    pipe: Pipe<R>,
    alarm: Alarm<R>,
    hub: Arc<Hub>,
    /// Boxed: a receiver that is waiting is pinned.
    instructions: Pin<Box<Receiver<Instruction>>>,
    waiters: HashMap<RequestId, (u64, Sender<Result<Reply, Error>>)>,
    tokens: HashMap<u64, RequestId>,
    events: Vec<Event>,
    done: Option<CloseCause>,
    /// Dropped when the driver finishes; handles wait on its receiver.
    _closed: Option<Sender<()>>,
}

impl<R: Runtime> Driver<R> {
    /// Runs the handshake over `io`, then returns the driver.
    pub(crate) async fn establish(
        conn: Conn,
        io: Transport<R>,
        hub: Arc<Hub>,
        instructions: Receiver<Instruction>,
        closed: Sender<()>,
    ) -> Result<(Driver<R>, Handshake), Error> {
        let mut inner = Box::new(Inner {
            conn,
            pipe: Pipe::new(io),
            alarm: Alarm::default(),
            hub,
            instructions: Box::pin(instructions),
            waiters: HashMap::new(),
            tokens: HashMap::new(),
            events: Vec::new(),
            done: None,
            _closed: Some(closed),
        });
        std::future::poll_fn(|cx| inner.poll_handshake(cx)).await?;
        let handshake = Handshake {
            greeting: inner.conn.greeting().cloned(),
            oob: inner.conn.engine().oob_enabled(),
            clock: inner.conn.clock(),
            name: inner.conn.name().into(),
        };
        Ok((Driver { inner }, handshake))
    }

    /// Whether the driver has finished.
    pub fn is_finished(&self) -> bool {
        self.inner.done.is_some()
    }
}

impl<R: Runtime> fmt::Debug for Driver<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("conn", &self.inner.conn)
            .field("waiting", &self.inner.waiters.len())
            .field("done", &self.inner.done)
            .finish()
    }
}

impl<R: Runtime> Future for Driver<R> {
    type Output = CloseCause;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CloseCause> {
        self.inner.poll(cx)
    }
}

impl<R: Runtime> Drop for Driver<R> {
    fn drop(&mut self) {
        if self.inner.done.is_none() {
            self.inner.finish(CloseCause::DriverDropped);
        }
    }
}

impl<R: Runtime> Inner<R> {
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        for _ in 0..BUDGET {
            let progress = self.turn(cx);
            while let Some(out) = self.conn.poll_output() {
                match out {
                    Output::Ready => return Poll::Ready(Ok(())),
                    Output::Closed(reason) => {
                        let cause = self
                            .conn
                            .close_cause()
                            .unwrap_or(CloseCause::Session(reason));
                        return Poll::Ready(Err(Error::Closed(cause)));
                    }
                    _ => {}
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<CloseCause> {
        if let Some(cause) = &self.done {
            return Poll::Ready(cause.clone());
        }
        for _ in 0..BUDGET {
            let mut progress = self.take_instructions(cx);
            progress |= self.turn(cx);
            progress |= self.forward();
            if self.conn.state() == SessionState::Closed {
                let cause = self
                    .conn
                    .close_cause()
                    .unwrap_or(CloseCause::Session(CloseReason::Local));
                self.finish(cause.clone());
                return Poll::Ready(cause);
            }
            if !progress {
                self.hub
                    .set_view(self.conn.engine().stats(), self.conn.state());
                return Poll::Pending;
            }
        }
        self.hub
            .set_view(self.conn.engine().stats(), self.conn.state());
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One read, the writes, and the timer. Returns whether anything moved.
    fn turn(&mut self, cx: &mut Context<'_>) -> bool {
        let (pipe, conn) = (&mut self.pipe, &mut self.conn);
        let io = pipe
            .read(cx, conn)
            .and_then(|r| Ok(r | pipe.write(cx, conn)?));
        let progress = io.unwrap_or_else(|e| {
            self.conn.failed(e);
            true
        });
        progress | self.timers(cx)
    }

    /// Fires the engine's deadline when due and arms the alarm for the next.
    fn timers(&mut self, cx: &mut Context<'_>) -> bool {
        let fired = self.conn.tick();
        self.alarm.poll(cx, self.conn.next_deadline()) | fired
    }

    fn take_instructions(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            match self.instructions.as_mut().poll_next(cx) {
                Poll::Ready(Some(i)) => self.obey(i),
                // Every handle is gone: nobody can call or disconnect.
                Poll::Ready(None) if self.conn.state() == SessionState::Running => {
                    self.conn.close()
                }
                Poll::Ready(None) | Poll::Pending => return progress,
            }
            progress = true;
        }
    }

    fn obey(&mut self, instruction: Instruction) {
        match instruction {
            Instruction::Execute(s) => match self.conn.submit_owned(s.request, s.deadline, s.fds) {
                Ok(id) => {
                    self.tokens.insert(s.token, id);
                    self.waiters.insert(id, (s.token, s.reply));
                }
                Err(e) => {
                    let _ = s.reply.try_send(Err(e));
                }
            },
            Instruction::Cancel(token) => {
                if let Some(id) = self.tokens.remove(&token) {
                    self.waiters.remove(&id);
                    self.conn.cancel(id);
                }
            }
            Instruction::Close => self.conn.close(),
            Instruction::Resync => {
                let now = self.conn.now();
                self.conn.engine_mut().resync(now);
            }
        }
    }

    /// Hands events to the subscribers, then replies to their callers: one
    /// read's events came before or with its replies, so a caller finds
    /// the events that preceded its reply already in its subscriptions.
    fn forward(&mut self) -> bool {
        let missed = self.conn.engine_mut().events().take_lagged();
        self.events
            .extend(std::iter::from_fn(|| self.conn.poll_event()));
        let mut progress = !self.events.is_empty() || missed > 0;
        if progress {
            self.hub.publish(&self.events, missed);
            self.events.clear();
        }
        while let Some(out) = self.conn.poll_output() {
            progress = true;
            if let Output::Reply { id, result } = out
                && let Some((token, reply)) = self.waiters.remove(&id)
            {
                self.tokens.remove(&token);
                // The caller words a timeout with its own command and limit.
                let result = self.conn.result(result, String::new, Default::default());
                let _ = reply.try_send(result);
            }
        }
        progress
    }

    /// Ends everything: pending calls, queued instructions, subscriptions.
    fn finish(&mut self, cause: CloseCause) {
        if self.conn.state() != SessionState::Closed {
            self.conn.abort();
        }
        self.done = Some(cause.clone());
        self.hub
            .set_view(self.conn.engine().stats(), self.conn.state());
        self.hub.set_cause(cause.clone());
        self.hub.end_all();
        self.instructions.close();
        let err = || Err(Error::Interrupted(cause.clone()));
        while let Ok(i) = self.instructions.try_recv() {
            if let Instruction::Execute(s) = i {
                let _ = s.reply.try_send(err());
            }
        }
        for (_, (_, reply)) in self.waiters.drain() {
            let _ = reply.try_send(err());
        }
        self.tokens.clear();
        self._closed = None;
    }
}
