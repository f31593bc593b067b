//! Writing to a Unix socket, with file descriptors when a request carries
//! them.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};

/// The most descriptors one message can carry (Linux's SCM_MAX_FD).
pub const MAX_FDS: usize = 253;

/// Writes a prefix of `bytes` to `socket`. A peer that went away is an
/// `EPIPE` error, never a SIGPIPE that kills the process.
pub fn send(socket: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(socket, bytes, SendFlags::NOSIGNAL) {
            Err(Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Writes a prefix of `bytes` to `socket` in one `sendmsg` that carries
/// `fds` (SCM_RIGHTS) with its first byte. The server gets copies; the
/// descriptors stay the caller's.
pub fn send_with_fds(socket: BorrowedFd<'_>, bytes: &[u8], fds: &[impl AsFd]) -> io::Result<usize> {
    if fds.len() > MAX_FDS {
        return Err(too_many(fds.len()));
    }
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(borrowed.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
        return Err(too_many(fds.len()));
    }
    let iov = [IoSlice::new(bytes)];
    loop {
        match sendmsg(socket, &iov, &mut control, SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) fn too_many(n: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{n} file descriptors for one command; at most {MAX_FDS} fit in a message"),
    )
}

/// Duplicates `fds`: the copies stay valid until the request is written
/// or ends, even if the caller closes the originals meanwhile.
pub(crate) fn duplicate(fds: &[BorrowedFd<'_>]) -> io::Result<Vec<OwnedFd>> {
    if fds.len() > MAX_FDS {
        return Err(too_many(fds.len()));
    }
    fds.iter().map(|fd| fd.try_clone_to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    #[test]
    fn descriptors_travel_and_limits_hold() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (extra, _keep) = UnixStream::pair().unwrap();
        let fds = duplicate(&[extra.as_fd()]).unwrap();
        assert_eq!(send_with_fds(a.as_fd(), b"x", &fds).unwrap(), 1);
        let mut byte = [0];
        b.read_exact(&mut byte).unwrap();
        let many: Vec<BorrowedFd<'_>> = (0..=MAX_FDS).map(|_| extra.as_fd()).collect();
        let e = duplicate(&many).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("at most 253"), "{e}");
        drop(b);
        let e = send(a.as_fd(), b"y").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
