//! The command line: a contract that scripts rely on.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// A shell for QEMU's machine protocol (QMP) and guest agent (QGA).
///
/// Without -c and with a terminal on stdin it is interactive: line
/// editing, history, tab completion from the server's own schema, events
/// as they arrive. With -c (or commands on a non-terminal stdin) it runs
/// each command, prints each result as one line of JSON and exits: 0 when
/// all succeeded, 1 when QEMU returned an error, 2 when connecting, the
/// protocol or a timeout failed.
#[derive(Debug, Parser)]
#[command(name = "qmp-shell", version, max_term_width = 100)]
#[command(after_help = "\
COMMANDS:
  name key=value a.b=value ...   values are JSON when they parse as JSON,
                                 \"...\" is a JSON string, '...' literal text;
                                 dotted keys build nested objects
  {\"execute\": ..., \"arguments\": {...}}   a raw JSON request
  transaction(  ...  )           one action per line, `name key=value ...`

EXAMPLES:
  qmp-shell --launch -c query-status
  qmp-shell /tmp/qmp.sock -c stop -c cont --events --timeout 2
  qmp-shell --launch -- -S -m 256")]
pub(crate) struct Args {
    /// A Unix socket path, or HOST:PORT for TCP (default: $QMP_SOCKET).
    #[arg(conflicts_with = "launch")]
    pub(crate) address: Option<String>,

    /// Start QEMU (--qemu, $QEMU or qemu-system-x86_64, with QEMU_ARGS
    /// and -machine none -nodefaults -display none where they do not
    /// choose otherwise) on a private socket, and stop it on exit.
    #[arg(long)]
    pub(crate) launch: bool,

    /// Run CMD and print its result as one line of JSON (repeatable, in
    /// order); then exit.
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    pub(crate) commands: Vec<String>,

    /// Indent the JSON printed for results and events.
    #[arg(short = 'p', long)]
    pub(crate) pretty: bool,

    /// Bound of the connection and of each command, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub(crate) timeout: Duration,

    /// After the commands (or alone), print events, one JSON line each,
    /// until the connection closes or --timeout passes with none.
    #[arg(long)]
    pub(crate) events: bool,

    /// Speak the guest agent protocol (with resync) instead of QMP.
    #[arg(long, conflicts_with_all = ["launch", "hmp", "skip_negotiation", "events"])]
    pub(crate) agent: bool,

    /// Do not send qmp_capabilities (type it yourself).
    #[arg(short = 'N', long)]
    pub(crate) skip_negotiation: bool,

    /// Commands are HMP lines, sent with human-monitor-command; their
    /// output is printed as text.
    #[arg(short = 'H', long)]
    pub(crate) hmp: bool,

    /// Echo the JSON sent and received on stderr.
    #[arg(short = 'v', long)]
    pub(crate) verbose: bool,

    /// Full screen: every message both ways in a scrolling pane, a status
    /// bar, an input line with history and completion, a JSON editor
    /// (Ctrl-O; Alt-Enter sends), reconnecting when QEMU restarts.
    #[arg(long, conflicts_with_all = ["commands", "events", "listen"])]
    pub(crate) tui: bool,

    /// With --tui: connection attempts in a row, after the first, before
    /// giving up (0: never reconnect).
    #[arg(long, value_name = "N", default_value = "10", requires = "tui")]
    pub(crate) retries: u32,

    /// With --tui: the pause between two connection attempts, in seconds.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = seconds, requires = "tui")]
    pub(crate) retry_delay: Duration,

    /// With --tui: append every message sent and received to FILE, one
    /// JSON line each.
    #[arg(long, value_name = "FILE", requires = "tui")]
    pub(crate) tui_log: Option<PathBuf>,

    // Options shared with QEMU's own qmp-shell, and launching.
    /// Append each command and its response to FILE, one JSON line each.
    #[arg(short = 'l', long = "log", value_name = "FILE")]
    pub(crate) log: Option<PathBuf>,

    /// Print whole responses, {"return": ...} or {"error": ...}, not
    /// just the result.
    #[arg(short = 'w', long)]
    pub(crate) whole: bool,

    /// With --launch: the QEMU program to run (default $QEMU, else
    /// qemu-system-x86_64).
    #[arg(long, value_name = "PROGRAM")]
    pub(crate) qemu: Option<String>,

    /// Wait for a QEMU started elsewhere with
    /// `-qmp unix:PATH,server=off` to connect; interactively, wait again
    /// whenever it goes away.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["address", "launch", "agent"])]
    pub(crate) listen: Option<PathBuf>,

    /// Extra QEMU arguments, after `--` (with --launch).
    #[arg(last = true, value_name = "QEMU_ARGS")]
    pub(crate) qemu_args: Vec<String>,
}

impl Args {
    /// The command line, or the usage error clap prints (exit status 2).
    pub(crate) fn parse_checked() -> Args {
        Args::parse().check().unwrap_or_else(|e| e.exit())
    }

    /// What clap's attributes cannot say.
    fn check(mut self) -> Result<Args, clap::Error> {
        if self.address.is_none() && !self.launch && self.listen.is_none() {
            self.address = std::env::var("QMP_SOCKET").ok().filter(|a| !a.is_empty());
            if self.address.is_none() {
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "give an ADDRESS (or set $QMP_SOCKET), --launch or --listen PATH\n",
                )
                .with_cmd(&<Args as clap::CommandFactory>::command()));
            }
        }
        if self.tui && self.tui_log.is_none() {
            // The full-screen mode's log holds every message, not only
            // commands and their responses: `-l` asks for it there.
            self.tui_log = self.log.take();
        }
        if self.qemu.is_some() && !self.launch {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--qemu needs --launch\n",
            )
            .with_cmd(&<Args as clap::CommandFactory>::command()));
        }
        if !self.qemu_args.is_empty() && !self.launch {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::MissingRequiredArgument,
                "QEMU_ARGS after `--` need --launch\n",
            )
            .with_cmd(&<Args as clap::CommandFactory>::command()));
        }
        Ok(self)
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("`{text}`: give a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("qmp-shell").chain(args.iter().copied()))?.check()
    }

    #[test]
    fn the_contract() {
        let a = parse(&[
            "--launch",
            "-c",
            "stop",
            "-c",
            "cont",
            "--events",
            "--timeout",
            "2",
        ])
        .unwrap();
        assert!(a.launch && a.events);
        assert_eq!(a.commands, ["stop", "cont"]);
        assert_eq!(a.timeout, Duration::from_secs(2));
        let a = parse(&["--launch", "--", "-S", "-m", "256"]).unwrap();
        assert_eq!(a.qemu_args, ["-S", "-m", "256"]);
        let a = parse(&["/tmp/q.sock", "-NHv", "--timeout", "0.5"]).unwrap();
        assert_eq!(a.address.as_deref(), Some("/tmp/q.sock"));
        assert!(a.skip_negotiation && a.hmp && a.verbose);
        assert_eq!(a.timeout, Duration::from_millis(500));
        assert_eq!(parse(&["x"]).unwrap().timeout, Duration::from_secs(10));
    }

    #[test]
    fn the_full_screen_options() {
        let a = parse(&["x", "--tui", "--retries", "3", "--retry-delay", "0.25"]).unwrap();
        assert!(a.tui);
        assert_eq!(a.retries, 3);
        assert_eq!(a.retry_delay, Duration::from_millis(250));
        let a = parse(&["x", "--tui", "--tui-log", "/tmp/log"]).unwrap();
        assert_eq!(a.tui_log.as_deref(), Some(std::path::Path::new("/tmp/log")));
        assert_eq!((a.retries, a.retry_delay), (10, Duration::from_secs(1)));
        assert!(parse(&["x", "--retries", "3"]).is_err());
        assert!(parse(&["x", "--tui-log", "/tmp/log"]).is_err());
        assert!(parse(&["x", "--tui", "-c", "stop"]).is_err());
        let a = parse(&["x", "--tui", "-l", "/tmp/log"]).unwrap();
        assert_eq!(a.tui_log.as_deref(), Some(std::path::Path::new("/tmp/log")));
        assert!(a.log.is_none());
        assert!(parse(&["--listen", "/tmp/l", "--tui"]).is_err());
        assert!(parse(&["x", "--tui", "--retry-delay", "0"]).is_err());
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&["/tmp/q.sock", "--launch"]).is_err());
        assert!(parse(&["/tmp/q.sock", "--", "-S"]).is_err());
        assert!(parse(&["--launch", "--agent"]).is_err());
        assert!(parse(&["x", "--agent", "--events"]).is_err());
        assert!(parse(&["x", "--timeout", "0"]).is_err());
        assert!(parse(&["x", "--timeout", "soon"]).is_err());
        assert!(parse(&["x", "--qemu", "q"]).is_err());
        assert!(parse(&["x", "--listen", "/tmp/l.sock"]).is_err());
    }

    #[test]
    fn compatible_options() {
        let a = parse(&["--launch", "-p", "-l", "/tmp/log", "-w", "--qemu", "q"]).unwrap();
        assert!(a.pretty && a.whole);
        assert_eq!(a.log, Some(PathBuf::from("/tmp/log")));
        assert_eq!(a.qemu.as_deref(), Some("q"));
        let a = parse(&["--listen", "/tmp/l.sock", "-c", "stop"]).unwrap();
        assert_eq!(a.listen, Some(PathBuf::from("/tmp/l.sock")));
    }
}
