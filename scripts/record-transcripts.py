#!/usr/bin/env python3
"""Records real QEMU and qemu-ga sessions byte for byte, for the engine's
tests and benchmarks (qmp-core/tests/transcripts/).

Each transcript is a JSON file: a list of steps, each either
{"send": TEXT} (what the client wrote) or {"recv": TEXT} (bytes the server
sent, decoded as latin-1 so every byte survives), in the order they
happened. Request ids follow the engine's own numbering (0 for
qmp_capabilities, then 1, 2, ...) so a test can replay the server side
against the engine and expect the same ids.

Usage: scripts/record-transcripts.py   (needs qemu-system-x86_64, qemu-ga)
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

OUT = os.path.join(os.path.dirname(__file__), "..", "qmp-core", "tests", "transcripts")
QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
QGA = os.environ.get("QEMU_GA") or shutil.which("qemu-ga") or "/usr/bin/qemu-ga"


class Recorder:
    def __init__(self, sock):
        self.sock = sock
        self.steps = []

    def send(self, data: bytes):
        self.sock.sendall(data)
        self.steps.append({"send": data.decode("latin-1")})

    def recv_until(self, predicate, timeout=10.0):
        """Reads until predicate(all bytes received in this call) holds."""
        got = b""
        deadline = time.monotonic() + timeout
        while not predicate(got):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"waiting for server output; got {got!r}")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                self.steps.append({"recv": got.decode("latin-1")})
                return got, True
            got += chunk
        self.steps.append({"recv": got.decode("latin-1")})
        return got, False

    def save(self, name):
        path = os.path.join(OUT, name)
        with open(path, "w") as f:
            json.dump(self.steps, f, indent=0)
            f.write("\n")
        print(f"wrote {os.path.normpath(path)} ({len(self.steps)} steps)")


def has_id(i):
    return lambda b: f'"id": {i}'.encode() in b


def qemu(tmp, pretty=False):
    path = os.path.join(tmp, "qmp.sock")
    mon = ["-qmp", f"unix:{path},server=on,wait=off"]
    if pretty:
        mon = ["-chardev", f"socket,id=m,path={path},server=on,wait=off",
               "-mon", "chardev=m,mode=control,pretty=on"]
    proc = subprocess.Popen([QEMU, "-machine", "none", "-nodefaults", "-display", "none", "-S"] + mon,
                            stdin=subprocess.DEVNULL)
    for _ in range(2000):
        if os.path.exists(path):
            break
        time.sleep(0.005)
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return proc, s


def session(tmp, pretty, name):
    proc, s = qemu(tmp, pretty)
    r = Recorder(s)
    r.recv_until(lambda b: b"capabilities" in b and b.rstrip().endswith(b"}"))
    r.send(b'{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": 0}')
    r.recv_until(has_id(0))
    r.send(b'{"execute": "query-status", "id": 1}')
    r.recv_until(has_id(1))
    r.send(b'{"execute": "no-such-command", "id": 2}')
    r.recv_until(has_id(2))
    r.send(b'{"execute": "cont", "id": 3}')
    r.recv_until(lambda b: has_id(3)(b) and b"RESUME" in b)
    r.send(b'{"execute": "stop", "id": 4}')
    r.recv_until(lambda b: has_id(4)(b) and b"STOP" in b)
    r.send(b'{"execute": "quit", "id": 5}')
    r.recv_until(lambda b: False)
    s.close()
    proc.wait(10)
    r.save(name)


def schema(tmp):
    proc, s = qemu(tmp)
    r = Recorder(s)
    r.recv_until(lambda b: b"capabilities" in b)
    r.send(b'{"execute": "qmp_capabilities", "id": 0}')
    r.recv_until(has_id(0))
    r.send(b'{"execute": "query-qmp-schema", "id": 1}')
    r.recv_until(lambda b: b.endswith(b"\r\n") and has_id(1)(b[-40:]))
    r.send(b'{"execute": "quit", "id": 2}')
    r.recv_until(lambda b: False)
    s.close()
    proc.wait(10)
    r.save("qemu-schema.json")


def agent(tmp):
    path = os.path.join(tmp, "qga.sock")
    state = os.path.join(tmp, "state")
    os.makedirs(state)
    proc = subprocess.Popen([QGA, "-m", "unix-listen", "-p", path, "-t", state,
                             "-f", os.path.join(tmp, "qga.pid")], stdin=subprocess.DEVNULL)
    for _ in range(2000):
        if os.path.exists(path):
            break
        time.sleep(0.005)
    # A client that dies half-way through a request: the agent keeps it.
    dead = socket.socket(socket.AF_UNIX)
    dead.connect(path)
    dead.sendall(b'{"execute": "guest-ping", "arg')
    dead.close()
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    r = Recorder(s)
    r.send(b'\xff{"execute":"guest-sync-delimited","arguments":{"id":123456789}}')
    r.recv_until(lambda b: b"123456789" in b and b.endswith(b"\n"))
    r.send(b'{"execute":"guest-ping","id":0}')
    r.recv_until(has_id(0))
    r.send(b'{"execute":"guest-info","id":1}')
    r.recv_until(lambda b: b.endswith(b"\n") and has_id(1)(b[-20:]))
    r.send(b'{"execute":"guest-get-host-name","id":2}')
    r.recv_until(has_id(2))
    s.close()
    proc.terminate()
    proc.wait(10)
    r.save("qga-session.json")


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        session(tmp, False, "qemu-session.json")
    with tempfile.TemporaryDirectory() as tmp:
        session(tmp, True, "qemu-session-pretty.json")
    with tempfile.TemporaryDirectory() as tmp:
        schema(tmp)
    with tempfile.TemporaryDirectory() as tmp:
        agent(tmp)


if __name__ == "__main__":
    sys.exit(main())
