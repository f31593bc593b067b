//! The connection the shell talks over: a QMP socket, a QEMU it launched,
//! or a guest agent.

use std::fmt;
use std::net::TcpStream;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use qmp_std::serde_json::Value;
use qmp_std::{
    Agent, CloseCause, CloseReason, Error, Event, Options, Qemu, Qmp, Request, Socket, TrafficHook,
    UnixAcceptor,
};

use crate::cli::Args;
use crate::output;

/// Where the shell sends its commands.
#[derive(Debug)]
pub(crate) enum Peer {
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
    /// The connection has closed.
    Closed(Ended),
}

/// Why the session ended.
#[derive(Clone, Debug)]
pub(crate) enum Ended {
    /// The engine closed it, for this reason.
    Closed(CloseReason),
    /// The connection failed without the engine closing it (a socket
    /// error, for one); the error, when a call or wait met it.
    Failed(Option<Arc<Error>>),
}

impl Ended {
    /// Why a call or wait that failed with `e` shows the session over.
    fn from_error(e: Error) -> Ended {
        match e.close_reason() {
            Some(reason) => Ended::Closed(reason.clone()),
            None => Ended::Failed(Some(Arc::new(e))),
        }
    }
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Closed(reason) => reason.fmt(f),
            Ended::Failed(Some(e)) => e.fmt(f),
            Ended::Failed(None) => f.write_str("the connection failed"),
        }
    }
}

impl Peer {
    /// Connects as the command line says, every wait bounded by `--timeout`.
    pub(crate) fn open(args: &Args) -> Result<Peer, Error> {
        Peer::open_with(args, None)
    }

    /// Connects as [`Peer::open`] does, with `traffic` (instead of `-v`'s
    /// echo) seeing every message.
    pub(crate) fn open_with(args: &Args, traffic: Option<TrafficHook>) -> Result<Peer, Error> {
        let mut options = options(args);
        if let Some(hook) = traffic {
            options.on_traffic = Some(hook);
        }
        if args.launch {
            let mut builder = Qemu::builder()
                .no_default_args()
                .args(default_args(&args.qemu_args))
                .args(&args.qemu_args)
                .options(options)
                .stop_timeout(args.timeout.min(Duration::from_secs(5)));
            if let Some(program) = &args.qemu {
                builder = builder.program(program);
            }
            return Ok(Peer::Launched(Box::new(builder.launch()?)));
        }
        let address = args.address.as_deref().unwrap_or_default();
        match (is_tcp(address), args.agent) {
            (true, true) => {
                let stream = connect_tcp(address, args.timeout)?;
                Ok(Peer::Agent(Agent::from_stream(
                    Socket::Tcp(stream),
                    options,
                )?))
            }
            (true, false) => Ok(Peer::Qmp(Qmp::connect_tcp(address, options)?)),
            (false, true) => Ok(Peer::Agent(Agent::connect_unix(address, options)?)),
            (false, false) => Ok(Peer::Qmp(Qmp::connect_unix(address, options)?)),
        }
    }

    /// The QMP client, unless this is a guest agent.
    fn qmp(&mut self) -> Option<&mut Qmp> {
        match self {
            Peer::Qmp(q) => Some(q),
            Peer::Launched(q) => Some(q.qmp()),
            Peer::Agent(_) => None,
        }
    }

    pub(crate) fn is_agent(&self) -> bool {
        matches!(self, Peer::Agent(_))
    }

    /// "QEMU 7.2.0 (Debian ...)", or "guest agent".
    pub(crate) fn describe(&mut self) -> String {
        match self.qmp() {
            Some(q) => match q.greeting() {
                Some(g) if !g.package.trim().is_empty() => {
                    format!("QEMU {} ({})", g.version, g.package.trim())
                }
                Some(g) => format!("QEMU {}", g.version),
                None => "QEMU".into(),
            },
            None => "the guest agent".into(),
        }
    }

    /// Runs a request, waiting at most `timeout` for its reply.
    pub(crate) fn execute(&mut self, request: Request, timeout: Duration) -> Result<Value, Error> {
        match self {
            Peer::Qmp(q) => q.with_timeout(timeout).execute_with(request),
            Peer::Launched(q) => q.with_timeout(timeout).execute_with(request),
            Peer::Agent(a) => a.with_timeout(timeout).execute_with(request),
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
            Err(e) => Waited::Closed(Ended::from_error(e)),
        }
    }

    /// Whether the session has ended, and why.
    pub(crate) fn ended(&self) -> Option<Ended> {
        let cause = match self {
            Peer::Qmp(q) => q.close_cause(),
            Peer::Launched(q) => q.close_cause(),
            Peer::Agent(a) => a.close_cause(),
        };
        match cause {
            Some(CloseCause::Session(reason)) => Some(Ended::Closed(reason)),
            Some(other) => Some(Ended::Failed(Some(Arc::new(Error::Closed(other))))),
            None => self.is_closed().then_some(Ended::Failed(None)),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Peer::Qmp(q) => q.is_closed(),
            Peer::Launched(q) => q.is_closed(),
            Peer::Agent(a) => a.is_closed(),
        }
    }

    /// Ends the session; a launched QEMU is stopped (quit, then signals).
    pub(crate) fn close(self) -> Result<(), Error> {
        match self {
            Peer::Qmp(q) => q.disconnect(),
            Peer::Agent(a) => a.disconnect(),
            Peer::Launched(q) => {
                q.shutdown()?;
            }
        }
        Ok(())
    }
}

/// The connection's options, as the command line says: every wait
/// bounded by `--timeout`.
pub(crate) fn options(args: &Args) -> Options {
    let mut options = Options::new()
        .connect_timeout(args.timeout)
        .handshake_timeout(args.timeout)
        .timeout(args.timeout);
    if args.verbose {
        options = options.on_traffic(|_, traffic| output::wire(traffic));
    }
    if args.agent {
        // A socket that is not there yet is an error at once, as for QMP.
        options = options.socket_wait(Duration::ZERO);
    } else if args.skip_negotiation {
        options = options.negotiate(false);
    }
    options
}

/// What `--launch` adds before the user's QEMU arguments: `-machine none`
/// unless they name a machine type, `-display none` unless they choose a
/// display, `-nodefaults` unless they give it themselves.
fn default_args(user: &[String]) -> Vec<&'static str> {
    // `-opt value`, `--opt value` and `-opt=value` all name `opt`.
    let options: Vec<(&str, Option<&str>)> = user
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let name = a.strip_prefix("--").or_else(|| a.strip_prefix('-'))?;
            Some(match name.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (name, user.get(i + 1).map(String::as_str)),
            })
        })
        .collect();
    let gives = |names: &[&str]| options.iter().any(|(n, _)| names.contains(n));
    // `-machine accel=tcg` sets properties only; its first part names a
    // type when it has no `=`.
    let names_machine = options.iter().any(|(n, v)| {
        matches!(*n, "machine" | "M")
            && v.is_some_and(|v| !v.split(',').next().unwrap_or_default().contains('='))
    });
    let mut out = Vec::new();
    if !names_machine {
        out.extend(["-machine", "none"]);
    }
    if !gives(&["nodefaults"]) {
        out.push("-nodefaults");
    }
    if !gives(&["display", "nographic", "curses", "vnc", "spice"]) {
        out.extend(["-display", "none"]);
    }
    out
}

/// `--listen`: a Unix socket QEMU connects to (`-qmp unix:PATH,server=off`),
/// kept open to take QEMU again after it goes away. The socket file is
/// removed when the listener is dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    socket: UnixListener,
    path: PathBuf,
    options: Options,
}

impl Listener {
    /// Listens on `path` (replacing a socket file left there before).
    pub(crate) fn bind(path: &Path, options: Options) -> Result<Listener, Error> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(path);
        }
        let socket = UnixListener::bind(path).map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", path.display()),
            ))
        })?;
        Ok(Listener {
            socket,
            path: path.to_owned(),
            options,
        })
    }

    /// The socket's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Waits at most `wait` for QEMU to connect, then negotiates;
    /// `Ok(None)` when nothing connected in time.
    pub(crate) fn accept(&self, wait: Duration) -> Result<Option<Peer>, Error> {
        let options = self.options.clone().connect_timeout(wait);
        match Qmp::accept_unix(UnixAcceptor::Listener(&self.socket), options) {
            Ok(qmp) => Ok(Some(Peer::Qmp(qmp))),
            Err(e) if e.is_timeout() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for QEMU to connect: at most `limit`, or for ever.
    pub(crate) fn first(&self, limit: Option<Duration>) -> Result<Peer, Error> {
        if let Some(limit) = limit {
            return self.accept(limit)?.ok_or_else(|| {
                Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no QEMU connected to {} within {limit:?}",
                        self.path.display()
                    ),
                ))
            });
        }
        loop {
            if let Some(peer) = self.accept(Duration::from_secs(3600))? {
                return Ok(peer);
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
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

    #[test]
    fn launch_defaults_give_way_to_the_users_arguments() {
        let d = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            default_args(&args).join(" ")
        };
        assert_eq!(d(&[]), "-machine none -nodefaults -display none");
        assert_eq!(
            d(&["-S", "-m", "256"]),
            "-machine none -nodefaults -display none"
        );
        assert_eq!(d(&["-M", "pc"]), "-nodefaults -display none");
        assert_eq!(d(&["--machine=q35,accel=tcg"]), "-nodefaults -display none");
        assert_eq!(
            d(&["-machine", "accel=tcg"]),
            "-machine none -nodefaults -display none"
        );
        assert_eq!(d(&["-nographic"]), "-machine none -nodefaults");
        assert_eq!(d(&["-display", "gtk", "-nodefaults"]), "-machine none");
    }
}
