//! The connection the shell talks over: a QMP socket, a QEMU it launched,
//! or a guest agent.

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use qmp_std::serde_json::Value;
use qmp_std::{Agent, Config, Error, Event, Options, Qemu, Qmp, Request, Socket};

use crate::cli::Args;

/// Where the shell sends its commands.
#[derive(Debug)]
pub(crate) enum Link {
    /// A QMP server reached at an address.
    Qmp(Qmp),
    /// A QEMU this shell started; stopped when the shell ends.
    Launched(Box<Qemu>),
    /// A guest agent.
    Agent(Agent),
}

/// What an event wait ended with.
#[derive(Debug)]
pub(crate) enum Waited {
    Event(Event),
    /// Nothing came in time.
    Nothing,
    /// The connection has closed; the text says why.
    Closed(String),
}

impl Link {
    /// Connects as the command line says, every wait bounded by `--timeout`.
    pub(crate) fn open(args: &Args) -> Result<Link, Error> {
        let mut options = Options::new()
            .connect_timeout(args.timeout)
            .handshake_timeout(args.timeout)
            .timeout(args.timeout);
        if args.agent {
            // A socket that is not there yet is an error at once, as for QMP.
            options = options.socket_wait(Duration::ZERO);
        } else if args.skip_negotiation {
            options = options.config(Config::qmp().negotiate(false));
        }
        if args.launch {
            let qemu = Qemu::builder()
                .args(&args.qemu_args)
                .options(options)
                .stop_timeout(args.timeout.min(Duration::from_secs(5)))
                .launch()?;
            return Ok(Link::Launched(Box::new(qemu)));
        }
        let address = args.address.as_deref().unwrap_or_default();
        match (is_tcp(address), args.agent) {
            (true, true) => {
                let stream = connect_tcp(address, args.timeout)?;
                Ok(Link::Agent(Agent::from_stream(
                    Socket::Tcp(stream),
                    options,
                )?))
            }
            (true, false) => Ok(Link::Qmp(Qmp::connect_tcp(address, options)?)),
            (false, true) => Ok(Link::Agent(Agent::connect_unix(address, options)?)),
            (false, false) => Ok(Link::Qmp(Qmp::connect_unix(address, options)?)),
        }
    }

    /// The QMP client, unless this is a guest agent.
    fn qmp(&mut self) -> Option<&mut Qmp> {
        match self {
            Link::Qmp(q) => Some(q),
            Link::Launched(q) => Some(q.qmp()),
            Link::Agent(_) => None,
        }
    }

    pub(crate) fn is_agent(&self) -> bool {
        matches!(self, Link::Agent(_))
    }

    /// "QEMU 7.2.0 (Debian ...)", or "guest agent".
    pub(crate) fn describe(&mut self) -> String {
        match self.qmp() {
            Some(q) => {
                let g = q.greeting();
                let package = g.package.trim();
                if package.is_empty() {
                    format!("QEMU {}", g.version)
                } else {
                    format!("QEMU {} ({package})", g.version)
                }
            }
            None => "the guest agent".into(),
        }
    }

    /// Runs a request, waiting at most `timeout` for its reply.
    pub(crate) fn execute(&mut self, request: Request, timeout: Duration) -> Result<Value, Error> {
        match self {
            Link::Qmp(q) => q.with_timeout(timeout).execute_with(request),
            Link::Launched(q) => q.with_timeout(timeout).execute_with(request),
            Link::Agent(a) => a.with_timeout(timeout).execute_with(request),
        }
    }

    /// Waits at most `timeout` for the next event (a queued one first).
    pub(crate) fn next_event(&mut self, timeout: Duration) -> Waited {
        let Some(qmp) = self.qmp() else {
            std::thread::sleep(timeout);
            return Waited::Nothing;
        };
        match qmp.with_timeout(timeout).wait_event_where(|_| true) {
            Ok(event) => Waited::Event(event),
            Err(Error::Timeout { .. }) => Waited::Nothing,
            Err(e) => Waited::Closed(closed_text(&e)),
        }
    }

    /// Whether the session has ended, and why.
    pub(crate) fn closed(&mut self) -> Option<String> {
        match self {
            Link::Qmp(q) => q.close_reason().map(|r| r.to_string()),
            Link::Launched(q) => q.close_reason().map(|r| r.to_string()),
            Link::Agent(a) => a.close_reason().map(|r| r.to_string()),
        }
        .or_else(|| self.is_closed().then(|| "the connection failed".into()))
    }

    fn is_closed(&self) -> bool {
        match self {
            Link::Qmp(q) => q.is_closed(),
            Link::Launched(q) => q.is_closed(),
            Link::Agent(a) => a.is_closed(),
        }
    }

    /// Ends the session; a launched QEMU is stopped (quit, then signals).
    pub(crate) fn close(self) -> Result<(), Error> {
        match self {
            Link::Qmp(q) => q.disconnect(),
            Link::Agent(a) => a.disconnect(),
            Link::Launched(q) => {
                q.shutdown()?;
            }
        }
        Ok(())
    }
}

/// Why the session ended, from the error a wait or call met.
fn closed_text(e: &Error) -> String {
    match e.close_reason() {
        Some(r) => r.to_string(),
        None => e.to_string(),
    }
}

/// Connects over TCP, trying each address `address` resolves to.
fn connect_tcp(address: &str, timeout: Duration) -> Result<TcpStream, Error> {
    use std::net::ToSocketAddrs;
    let cannot = |e: std::io::Error| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot connect to {address}: {e}"),
        ))
    };
    let mut last = None;
    for addr in address.to_socket_addrs().map_err(cannot)? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(cannot(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "it resolves to no address")
    })))
}

/// `HOST:PORT` (a numeric port) that is not an existing file is TCP;
/// anything else is a Unix socket path.
fn is_tcp(address: &str) -> bool {
    if Path::new(address).exists() {
        return false;
    }
    match address.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(is_tcp("127.0.0.1:4444"));
        assert!(is_tcp("localhost:4444"));
        assert!(is_tcp("[::1]:4444"));
        assert!(!is_tcp("/tmp/qmp.sock"));
        assert!(!is_tcp("/tmp/a:1"));
        assert!(!is_tcp("qmp.sock"));
        assert!(!is_tcp("host:port"));
    }
}
