//! The ceiling: a minimal hand-written client on a blocking Unix socket.
//!
//! It writes precomputed request bytes and counts message ends (QEMU ends
//! every message with CRLF and, without `pretty=on`, puts no newline
//! inside one) in what it reads. It parses no JSON and allocates nothing
//! per call: whatever a real client costs beyond it is the client's own.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::measure::Result;

/// The negotiation every client does: `oob`, as the clients enable it.
const CAPABILITIES: &[u8] =
    b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}";

/// How many messages end in `bytes`: QEMU ends each with CRLF and puts
/// no newline inside one.
pub(crate) fn message_ends(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// A raw QMP connection past negotiation.
pub(crate) struct Raw {
    sock: UnixStream,
    buf: Box<[u8]>,
    /// Bytes read since the handshake.
    read: u64,
    /// Bytes the last read put at the start of `buf`.
    last: usize,
    /// The version in QEMU's greeting, `major.minor.micro`.
    version: String,
}

impl Raw {
    /// Connects (retrying while the socket is not listening yet), reads the
    /// greeting and negotiates `oob`.
    pub(crate) fn connect(path: &Path) -> Result<Raw> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let sock = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                    ) && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    return Err(format!("raw: cannot connect to {}: {e}", path.display()).into());
                }
            }
        };
        let mut raw = Raw {
            sock,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            read: 0,
            last: 0,
            version: String::new(),
        };
        let greeting = raw.read_message()?;
        let first = greeting.lines().next().unwrap_or_default();
        let parsed: serde_json::Value = serde_json::from_str(first)?;
        let v = &parsed["QMP"]["version"]["qemu"];
        raw.version = format!("{}.{}.{}", v["major"], v["minor"], v["micro"]);
        if !greeting.contains("\"oob\"") {
            return Err(format!("raw: QEMU does not offer oob: {greeting}").into());
        }
        raw.sock.write_all(CAPABILITIES)?;
        // QEMU greets a client twice when it connects while the monitor is
        // still setting up (the previous client just left): skip that.
        loop {
            let reply = raw.read_message()?;
            let mut lines = reply.lines().filter(|l| !l.starts_with("{\"QMP\""));
            match lines.next() {
                None => continue,
                Some(l) if l.starts_with("{\"return\"") => break,
                Some(_) => return Err(format!("raw: qmp_capabilities failed: {reply}").into()),
            }
        }
        Ok(raw)
    }

    /// Reads one whole message (only used during the handshake, where
    /// nothing else can arrive).
    fn read_message(&mut self) -> Result<String> {
        let mut msg = Vec::new();
        while !msg.ends_with(b"\n") {
            let n = self.sock.read(&mut self.buf)?;
            if n == 0 {
                return Err("raw: QEMU closed the connection".into());
            }
            msg.extend_from_slice(&self.buf[..n]);
        }
        Ok(String::from_utf8_lossy(&msg).into_owned())
    }

    /// One read; returns how many messages ended in it.
    fn read_ends(&mut self) -> Result<u64> {
        let n = self.sock.read(&mut self.buf)?;
        if n == 0 {
            return Err("raw: QEMU closed the connection".into());
        }
        self.read += n as u64;
        self.last = n;
        Ok(message_ends(&self.buf[..n]))
    }

    /// Bounds every read from now on by `timeout` (`SO_RCVTIMEO`), as a
    /// client that enforces deadlines with blocking reads must.
    pub(crate) fn set_read_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.sock.set_read_timeout(Some(timeout))?;
        Ok(())
    }

    /// The version in QEMU's greeting, `major.minor.micro`.
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// The socket, past negotiation, for a loop of another kind.
    pub(crate) fn into_socket(self) -> UnixStream {
        self.sock
    }

    /// Bytes read since the handshake.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read
    }

    /// `n` round trips of `request`, one after another.
    pub(crate) fn serial(&mut self, request: &[u8], n: u64) -> Result<()> {
        for _ in 0..n {
            self.sock.write_all(request)?;
            let mut ends = 0;
            while ends == 0 {
                ends = self.read_ends()?;
            }
            if ends != 1 {
                return Err(format!("raw: {ends} messages for one request").into());
            }
        }
        Ok(())
    }

    /// [`serial`](Self::serial), but each reply is also decoded into a
    /// `serde_json::Value` and dropped: the least any client that returns
    /// values must do, so that its cost can be told from the library's.
    pub(crate) fn serial_decoding(&mut self, request: &[u8], n: u64) -> Result<()> {
        let mut reply = Vec::new();
        for _ in 0..n {
            self.sock.write_all(request)?;
            let mut ends = 0;
            while ends == 0 {
                ends = self.read_ends()?;
                reply.extend_from_slice(&self.buf[..self.last]);
            }
            if ends != 1 {
                return Err(format!("raw: {ends} messages for one request").into());
            }
            let value: serde_json::Value = serde_json::from_slice(&reply)?;
            std::hint::black_box(value);
            reply.clear();
        }
        Ok(())
    }

    /// `n` round trips of `request` with up to `window` in flight: a new
    /// request goes out as soon as a reply comes back.
    pub(crate) fn pipelined(&mut self, request: &[u8], n: u64, window: u64) -> Result<()> {
        let batch = request.repeat(window as usize);
        let len = request.len();
        let first = window.min(n);
        self.sock.write_all(&batch[..first as usize * len])?;
        let (mut sent, mut done) = (first, 0);
        while done < n {
            let ends = self.read_ends()?;
            done += ends;
            let more = ends.min(n - sent);
            if more > 0 {
                self.sock.write_all(&batch[..more as usize * len])?;
                sent += more;
            }
        }
        if done != n {
            return Err(format!("raw: {done} replies for {n} requests").into());
        }
        Ok(())
    }
}
