#!/usr/bin/env python3
"""Edge probes: run the real meshgate binary behind hostile clients and check the pass bars of
docs/edge-hardening.md (HTTP/1.1 smuggling matrix, HTTP/2 malformed-request matrix, header limits, floods,
slow clients, and an sslyze scan of the HTTPS listener).

A recording upstream keeps every byte the gateway sends it; after the matrices run, those bytes are checked for
anything ambiguous (both framing headers, obs-fold, bare LF, whitespace before a colon, a non-digit
Content-Length, control characters, names the gateway had to drop) and the number of requests it parsed must equal
the number of 2xx answers the clients saw (no smuggled extra request).

usage: probe.py --meshgate PATH [--only GROUP ...] [--no-sslyze]
Exit status 0 when every check passes, 1 otherwise; one line per check on standard output.
"""

import argparse
import base64
import collections
import datetime
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

HEADER_TIMEOUT_MS = 1000
FAILURES = []
OK_RESPONSES = [0]  # 2xx answers the clients saw for requests that reached the upstream


def check(name, ok, detail=""):
    mark = "ok  " if ok else "FAIL"
    print(f"{mark} {name}" + (f"  ({detail})" if detail else ""), flush=True)
    if not ok:
        FAILURES.append(name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------------------------
# The recording upstream


class Recorder:
    """A threaded HTTP/1.1 server that records every byte it receives and answers `200 ok` to each request it can
    parse. Requests to /hold/<ms> are answered after that many milliseconds."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = []  # raw bytes per connection
        self.requests = []  # (head bytes, body bytes)
        self.unparsed = []  # bytes the recorder could not frame
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        raw = bytearray()
        with self.lock:
            self.connections.append(raw)
        buf = b""
        conn.settimeout(30)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        if buf:
                            with self.lock:
                                self.unparsed.append(buf)
                        return
                    raw += chunk
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                head += b"\r\n\r\n"
                body, buf, ok = self._body(conn, head, buf, raw)
                with self.lock:
                    self.requests.append((head, body))
                    if not ok:
                        self.unparsed.append(head)
                if not ok:
                    return
                target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
                m = re.match(rb"/hold/(\d+)", target)
                if m:
                    time.sleep(int(m.group(1)) / 1000)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok")
        except OSError:
            return
        finally:
            conn.close()

    @staticmethod
    def _headers(head):
        out = []
        for line in head.split(b"\r\n")[1:]:
            if b":" in line:
                name, value = line.split(b":", 1)
                out.append((name.strip().lower(), value.strip()))
        return out

    def _body(self, conn, head, buf, raw):
        """Reads the body the head announces; (body, rest, framed_ok)."""
        headers = self._headers(head)
        te = [v for n, v in headers if n == b"transfer-encoding"]
        cl = [v for n, v in headers if n == b"content-length"]
        if te:
            body = b""
            while True:
                while b"\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return body, b"", False
                    raw += chunk
                    buf += chunk
                line, buf = buf.split(b"\r\n", 1)
                try:
                    size = int(line.split(b";")[0], 16)
                except ValueError:
                    return body, b"", False
                while len(buf) < size + 2:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return body, b"", False
                    raw += chunk
                    buf += chunk
                body += buf[:size]
                buf = buf[size + 2 :]
                if size == 0:
                    return body, buf, True
        if cl:
            if not cl[0].isdigit():
                return b"", b"", False
            size = int(cl[0])
            while len(buf) < size:
                chunk = conn.recv(65536)
                if not chunk:
                    return buf, b"", False
                raw += chunk
                buf += chunk
            return buf[:size], buf[size:], True
        return b"", buf, True

    def snapshot(self):
        with self.lock:
            return list(self.requests), list(self.connections), list(self.unparsed)


# --------------------------------------------------------------------------------------------------------------
# The gateway


class Gateway:
    def __init__(self, binary, upstream_port, workdir):
        self.binary = binary
        self.dir = workdir
        self.http = free_port()
        self.https = free_port()
        self.admin = free_port()
        # A 90-day ECDSA certificate (Mozilla's intermediate profile allows at most 366 days; `meshgate generate`
        # issues kumactl's 10 years, which sslyze would flag).
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw.test")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=90))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("gw.test")]), critical=False)
                .sign(key, hashes.SHA256()))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        self.cert = os.path.join(workdir, "gw.crt")
        with open(self.cert, "wb") as f:
            f.write(cert_pem)
        bundle = base64.b64encode(key_pem + cert_pem).decode()
        config = f"""type: Dataplane
mesh: default
name: gw-1
networking:
  address: 127.0.0.1
  gateway:
    type: BUILTIN
    tags:
      kuma.io/service: gw
---
type: MeshGateway
mesh: default
name: gw
selectors:
- match:
    kuma.io/service: gw
conf:
  listeners:
  - port: {self.http}
    protocol: HTTP
  - port: {self.https}
    protocol: HTTPS
    hostname: gw.test
    tls:
      mode: TERMINATE
      certificates:
      - secret: gw-cert
---
type: Secret
mesh: default
name: gw-cert
data: {bundle}
---
type: Dataplane
mesh: default
name: recorder-1
networking:
  address: 127.0.0.1
  inbound:
  - port: {upstream_port}
    tags:
      kuma.io/service: recorder
---
type: MeshGatewayRoute
mesh: default
name: all
selectors:
- match:
    kuma.io/service: gw
conf:
  http:
    rules:
    - matches:
      - path:
          match: PREFIX
          value: /
      backends:
      - destination:
          kuma.io/service: recorder
"""
        os.makedirs(os.path.join(workdir, "config"))
        with open(os.path.join(workdir, "config", "gateway.yaml"), "w") as f:
            f.write(config)
        self.log = open(os.path.join(workdir, "gateway.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "run", "--config", os.path.join(workdir, "config"), "--admin", f"127.0.0.1:{self.admin}",
             "--workers", "2", "--header-timeout", str(HEADER_TIMEOUT_MS), "--drain-timeout", "1"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("meshgate exited at start:\n" + self.read_log())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("meshgate did not become ready:\n" + self.read_log())

    def read_log(self):
        with open(os.path.join(self.dir, "gateway.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        if self.proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def rss_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


# --------------------------------------------------------------------------------------------------------------
# HTTP/1.1


def h1_exchange(port, payload, wait_close=True, timeout=3.0):
    """Sends payload on a fresh connection; returns (status or None, raw answer, closed_after_answer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
    except OSError:
        pass
    data = b""
    closed = False
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            s.settimeout(max(0.05, deadline - time.time()))
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
            if not wait_close and b"\r\n\r\n" in data:
                break
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(m.group(1)) if m else None), data, closed


H1_ROWS = [
    # (row, name, payload, allowed statuses, must close after answering)
    # Rows 1-2: RFC 9112 §6.1 lets a server process CL+TE by TE alone if it closes after answering; hyper does that
    # (Content-Length dropped, chunked body forwarded, connection closed), Envoy answers 400. Either way the `X`
    # must never become a second request (checked by the upstream count) and no CL+TE pair goes upstream.
    (1, "CL+TE, body smuggles X",
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", {200, 400}, True),
    (1, "TE+CL, reversed order",
     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nX", {200, 400}, True),
    (1, "CL+TE with a tab before TE",
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", {400}, True),
    (2, "TE chunked + CL 0",
     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n", {200, 400}, True),
    (3, "two different Content-Length",
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", {400}, True),
    (4, "Content-Length: 3, 3", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", {400}, True),
    (5, "Content-Length: +3", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", {400}, True),
    (5, "Content-Length: 0x3", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc", {400}, True),
    (6, "Content-Length 2^64+3",
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551619\r\n\r\nabc", {400}, True),
    (7, "TE chunked, gzip (chunked not last)",
     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", {400, 501}, True),
    (8, "TE xchunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", {400, 501}, True),
    (9, "TE identity + TE chunked",
     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     {400, 501}, True),
    (10, "TE in HTTP/1.0", b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}, True),
    (11, "TE continued by obs-fold",
     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", {400}, True),
    (12, "obs-fold in a header", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", {400}, True),
    (13, "space before colon", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc", {400}, True),
    (14, "whitespace before the first header", b"GET / HTTP/1.1\r\n Host: a\r\nX: y\r\n\r\n", {400}, True),
    (15, "bare LF line ends", b"GET / HTTP/1.1\nHost: a\nX-Bare: 1\n\n", {200, 400}, False),
    (16, "bare CR in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", {400}, True),
    (17, "NUL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", {400}, True),
    (18, "control character in a name", b"GET / HTTP/1.1\r\nHost: a\r\nX-\x01A: b\r\n\r\n", {400}, True),
    (19, "no Host in HTTP/1.1", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", {400}, True),
    (20, "two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {400}, True),
    (21, "HTTP/1.01", b"GET / HTTP/1.01\r\nHost: a\r\n\r\n", {400, 505}, True),
    (22, "GE(T method", b"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", {400}, True),
    (23, "chunk size Z", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\nZZ\r\n0\r\n\r\n",
     {400}, True),
    (24, "chunk size overflow",
     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF1\r\nx\r\n0\r\n\r\n", {400}, True),
    (25, "chunk line ended by bare LF",
     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", {400}, True),
    (26, "one 70 KiB header", b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", {431}, True),
    (27, "200 header fields",
     b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n", {431}, True),
    (27, "101 header fields",
     b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n", {431}, True),
    (28, "underscore in a header name", b"GET / HTTP/1.1\r\nHost: a\r\nx_foo: 1\r\n\r\n", {400}, True),
    (0, "100 KiB request line", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", {414, 431}, True),
    (0, "CL shorter than the body: the rest is the next request, answered in the open, never hidden",
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nxGET /second HTTP/1.1\r\nHost: a\r\n"
     b"Connection: close\r\n\r\n", {200}, True),
]


def run_h1(gw):
    print("== HTTP/1.1 smuggling and header matrix (edge-hardening §2)")
    for row, name, payload, allowed, must_close in H1_ROWS:
        status, data, closed = h1_exchange(gw.http, payload, wait_close=must_close)
        if status is not None and 200 <= status < 300:
            OK_RESPONSES[0] += len(re.findall(rb"HTTP/1\.[01] 2\d\d", data))
        ok = status in allowed and (closed or not must_close)
        label = f"#{row} " if row else ""
        check(f"h1 {label}{name}", ok,
              f"status {status}, {'closed' if closed else 'open'}; want {sorted(allowed)}"
              + (" + close" if must_close else ""))

    # Hop-by-hop headers and the ones `Connection` names never reach the upstream (row 29).
    status, data, _ = h1_exchange(
        gw.http,
        b"GET /hop HTTP/1.1\r\nHost: a\r\nConnection: x-secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n"
        b"Proxy-Connection: keep-alive\r\nTE: trailers\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n", wait_close=False)
    if status == 200:
        OK_RESPONSES[0] += 1
    check("h1 #29 Connection-named header sent", status == 200, f"status {status}")

    # Row 15 accepted: the upstream must see only CRLF. Checked in the differential pass.
    # A valid keep-alive pair answers both.
    status, data, _ = h1_exchange(
        gw.http, b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    answers = len(re.findall(rb"HTTP/1\.1 200", data))
    OK_RESPONSES[0] += answers
    check("h1 pipelined pair answered twice", answers == 2, f"{answers} answers")


# --------------------------------------------------------------------------------------------------------------
# HTTP/2


def h2_client():
    return h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False,
        validate_inbound_headers=False, header_encoding=None))


def h2_open(port, tls_ctx=None, server_name=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if tls_ctx is not None:
        s = tls_ctx.wrap_socket(s, server_hostname=server_name)
    c = h2_client()
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c


def h2_events(s, c, until, timeout=5.0):
    """Reads events until `until(events)` holds, EOF or timeout; returns (events, eof)."""
    events = []
    deadline = time.time() + timeout
    while not until(events) and time.time() < deadline:
        s.settimeout(max(0.05, deadline - time.time()))
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, ssl.SSLError, OSError):
            return events, True
        if not data:
            return events, True
        try:
            events.extend(c.receive_data(data))
        except h2.exceptions.ProtocolError as e:
            events.append(e)
            return events, False
        out = c.data_to_send()
        if out:
            try:
                s.sendall(out)
            except OSError:
                return events, True
    return events, False


def h2_outcome(events, eof, stream=1):
    for ev in events:
        if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == stream:
            return "status=" + dict(ev.headers)[b":status"].decode()
        if isinstance(ev, h2.events.StreamReset) and ev.stream_id == stream:
            return f"RST_STREAM({h2.errors.ErrorCodes(ev.error_code).name})"
        if isinstance(ev, h2.events.ConnectionTerminated):
            return f"GOAWAY({h2.errors.ErrorCodes(ev.error_code).name})"
    return "EOF" if eof else "TIMEOUT"


def h2_request(port, headers, data=None, tls_ctx=None):
    s, c = h2_open(port, tls_ctx, "gw.test")
    try:
        c.send_headers(1, headers, end_stream=data is None)
        if data is not None:
            c.send_data(1, data, end_stream=True)
        s.sendall(c.data_to_send())
        events, eof = h2_events(s, c, lambda evs: any(
            isinstance(e, (h2.events.ResponseReceived, h2.events.StreamReset, h2.events.ConnectionTerminated))
            for e in evs))
        return h2_outcome(events, eof)
    finally:
        s.close()


BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/h2"), (b":authority", b"gw.test")]
POST = [(b":method", b"POST")] + BASE[1:]
MALFORMED = {"RST_STREAM(PROTOCOL_ERROR)", "status=400", "GOAWAY(PROTOCOL_ERROR)"}

H2_ROWS = [
    ("valid GET", BASE, None, {"status=200"}),
    ("uppercase header name", BASE + [(b"X-Upper", b"1")], None, MALFORMED),
    ("connection-specific header", BASE + [(b"connection", b"keep-alive")], None, MALFORMED),
    ("transfer-encoding header", BASE + [(b"transfer-encoding", b"chunked")], None, MALFORMED),
    ("te: gzip", BASE + [(b"te", b"gzip")], None, MALFORMED),
    ("missing :path", BASE[:2] + BASE[3:], None, MALFORMED),
    ("empty :path", BASE[:2] + [(b":path", b"")] + BASE[3:], None, MALFORMED),
    ("missing :method", BASE[1:], None, MALFORMED),
    ("unknown pseudo-header", BASE + [(b":foo", b"bar")], None, MALFORMED),
    ("pseudo-header after a regular one", BASE[:3] + [(b"x-a", b"1"), (b":authority", b"gw.test")], None, MALFORMED),
    ("duplicate :path", BASE + [(b":path", b"/other")], None, MALFORMED),
    ("content-length 10 with 3 bytes", POST + [(b"content-length", b"10")], b"abc", MALFORMED),
    ("content-length 1 with 3 bytes", POST + [(b"content-length", b"1")], b"abc", MALFORMED),
    ("CR/LF in a value", BASE + [(b"x-a", b"a\r\nb: c")], None, MALFORMED),
    ("NUL in a value", BASE + [(b"x-a", b"a\x00b")], None, MALFORMED),
    ("space in a name", BASE + [(b"x a", b"1")], None, MALFORMED),
    ("underscore in a name (Kuma rejects)", BASE + [(b"x_a", b"1")], None, MALFORMED),
    ("CONNECT without :authority", [(b":method", b"CONNECT")], None, MALFORMED),
]


def run_h2(gw):
    print("== HTTP/2 malformed-request matrix (edge-hardening §1)")
    for name, headers, data, allowed in H2_ROWS:
        outcome = h2_request(gw.http, headers, data)
        if outcome == "status=200":
            OK_RESPONSES[0] += 1
        check(f"h2 {name}", outcome in allowed, f"{outcome}; want one of {sorted(allowed)}")

    # Connection-level errors.
    def raw_frames(payload, preface=True):
        s = socket.create_connection(("127.0.0.1", gw.http), timeout=5)
        c = h2_client()
        if preface:
            c.initiate_connection()
            s.sendall(c.data_to_send())
        s.sendall(payload)
        events, eof = h2_events(s, c, lambda evs: any(isinstance(e, h2.events.ConnectionTerminated) for e in evs))
        s.close()
        return h2_outcome(events, eof, stream=0)

    # Frames hyperframe refuses to build are written by hand: length(3) type(1) flags(1) stream(4) payload.
    outcome = raw_frames(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
    check("h2 DATA on stream 0", outcome in {"GOAWAY(PROTOCOL_ERROR)", "EOF"}, outcome)
    big_window = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x04" + (2**31).to_bytes(4, "big")
    outcome = raw_frames(big_window)
    # RFC 9113 §6.5.2 names FLOW_CONTROL_ERROR; the h2 crate answers PROTOCOL_ERROR. Either ends the connection.
    check("h2 SETTINGS_INITIAL_WINDOW_SIZE 2^31",
          outcome in {"GOAWAY(FLOW_CONTROL_ERROR)", "GOAWAY(PROTOCOL_ERROR)", "EOF"}, outcome)
    zero_update = b"\x00\x00\x04\x08\x00\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
    outcome = raw_frames(zero_update)
    check("h2 WINDOW_UPDATE increment 0", outcome in {"GOAWAY(PROTOCOL_ERROR)", "EOF"}, outcome)
    outcome = raw_frames(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", preface=False)
    check("h2 bad preface closes", outcome in {"EOF", "GOAWAY(PROTOCOL_ERROR)"}, outcome)

    # Advertised settings and the connection window.
    s, c = h2_open(gw.http)
    events, _ = h2_events(s, c, lambda evs: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in evs)
                          and any(isinstance(e, h2.events.WindowUpdated) and e.stream_id == 0 for e in evs), 3)
    settings = {}
    window = 65535
    for ev in events:
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            settings.update({k: v.new_value for k, v in ev.changed_settings.items()})
        if isinstance(ev, h2.events.WindowUpdated) and ev.stream_id == 0:
            window += ev.delta
    check("h2 SETTINGS_MAX_CONCURRENT_STREAMS 100",
          settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS) == 100, str(settings))
    check("h2 SETTINGS_INITIAL_WINDOW_SIZE 65536",
          settings.get(h2.settings.SettingCodes.INITIAL_WINDOW_SIZE) == 65536, str(settings))
    check("h2 connection window 1 MiB", window == 1 << 20, f"window {window}")

    # The 101st concurrent stream is refused. The client library enforces the server's limit itself; lift it.
    c.remote_settings._settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = collections.deque([1000])
    streams = []
    for _ in range(101):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/hold/1500"),
                             (b":authority", b"gw.test")], end_stream=True)
        streams.append(sid)
    try:
        s.sendall(c.data_to_send())
    except h2.exceptions.TooManyStreamsError:
        pass
    events, _ = h2_events(s, c, lambda evs: sum(isinstance(e, h2.events.StreamEnded) for e in evs) >= 100, 10)
    refused = [e.stream_id for e in events if isinstance(e, h2.events.StreamReset)
               and e.error_code == h2.errors.ErrorCodes.REFUSED_STREAM]
    answered = sum(isinstance(e, h2.events.ResponseReceived) for e in events)
    OK_RESPONSES[0] += answered
    check("h2 101st concurrent stream refused", refused == [streams[-1]] and answered == 100,
          f"refused {refused}, answered {answered}")
    s.close()


def run_h2_floods(gw):
    print("== HTTP/2 floods")
    rss_before = gw.rss_kib()
    # Rapid reset: HEADERS + RST_STREAM(CANCEL), 5000 times, while another client keeps working.
    stop = threading.Event()
    side = {"ok": 0, "bad": 0}

    def bystander():
        while not stop.is_set() or side["ok"] + side["bad"] < 20:
            outcome = h2_request(gw.http, BASE)
            side["ok" if outcome == "status=200" else "bad"] += 1
            time.sleep(0.02)

    t = threading.Thread(target=bystander)
    t.start()
    s, c = h2_open(gw.http)
    sent = 0
    closed = False
    try:
        for _ in range(5000):
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/hold/200"),
                                 (b":authority", b"gw.test")], end_stream=True)
            c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            s.sendall(c.data_to_send())
            sent += 1
    except (OSError, h2.exceptions.ProtocolError):
        closed = True
    events, eof = h2_events(s, c, lambda evs: any(isinstance(e, h2.events.ConnectionTerminated) for e in evs), 5)
    goaway = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    s.close()
    stop.set()
    t.join()
    OK_RESPONSES[0] += side["ok"]
    what = f"GOAWAY({h2.errors.ErrorCodes(goaway[0].error_code).name})" if goaway else ("EOF" if eof or closed else "none")
    check("h2 rapid reset ends the connection", bool(goaway) or eof or closed, f"{what} after {sent} sent")
    check("h2 rapid reset: other clients unaffected", side["bad"] == 0 and side["ok"] > 0, str(side))

    # CONTINUATION flood: HEADERS without END_HEADERS then endless CONTINUATION frames.
    s, c = h2_open(gw.http)
    h2_events(s, c, lambda evs: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in evs), 2)
    headers = b"\x82\x86\x84\x41\x07gw.test"  # :method GET, :scheme http, :path /, :authority gw.test
    frame = len(headers).to_bytes(3, "big") + b"\x01\x00" + (1).to_bytes(4, "big") + headers  # HEADERS, END_STREAM
    piece = b"\x40\x05x-pad\x7f\x81\x7f" + b"a" * 16000  # a literal header, value of 16 000 bytes
    sent = 0
    closed = False
    try:
        s.sendall(frame)
        for _ in range(10_000):
            s.sendall(len(piece).to_bytes(3, "big") + b"\x09\x00" + (1).to_bytes(4, "big") + piece)
            sent += 1
    except OSError:
        closed = True
    events, eof = h2_events(s, c, lambda evs: any(isinstance(e, h2.events.ConnectionTerminated) for e in evs), 3)
    s.close()
    ended = closed or eof or any(isinstance(e, (h2.events.ConnectionTerminated, h2.exceptions.ProtocolError))
                                 for e in events)
    check("h2 CONTINUATION flood closed", ended and sent < 10_000, f"closed after {sent} CONTINUATION frames")

    # SETTINGS and PING floods: the gateway must not queue answers without bound.
    for kind, frame in (("PING", b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678"),
                        ("SETTINGS", b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x64")):
        s, c = h2_open(gw.http)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        blob = frame * 1000
        sent = 0
        try:
            s.settimeout(2)
            for _ in range(100):
                s.sendall(blob)
                sent += 1000
        except (OSError, socket.timeout):
            pass
        s.close()
        check(f"h2 {kind} flood (never read) leaves the gateway healthy", gw.alive(), f"{sent} frames sent")
    grown = (gw.rss_kib() - rss_before) / 1024
    check("h2 floods: RSS growth < 50 MiB", grown < 50, f"+{grown:.1f} MiB")


# --------------------------------------------------------------------------------------------------------------
# Slow clients


def run_slow(gw):
    print("== slow clients (edge-hardening §4)")
    conns = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", gw.http), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")
        conns.append(s)
    t0 = time.time()
    good = 0
    total = 0
    latencies = []
    closed = set()
    while time.time() - t0 < HEADER_TIMEOUT_MS / 1000 + 2:
        for i, s in enumerate(conns):
            if i in closed:
                continue
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed.add(i)
        start = time.time()
        status, _, _ = h1_exchange(gw.http, b"GET /normal HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        latencies.append(time.time() - start)
        total += 1
        if status == 200:
            good += 1
        time.sleep(0.2)
    OK_RESPONSES[0] += good
    # A connection counts as closed when the gateway answered 408 or closed it.
    for i, s in enumerate(conns):
        if i in closed:
            continue
        s.setblocking(False)
        try:
            data = s.recv(4096)
            if data == b"" or data.startswith(b"HTTP/1.1 408"):
                closed.add(i)
        except BlockingIOError:
            pass
        except OSError:
            closed.add(i)
        s.close()
    share = len(closed) / len(conns)
    check("slowloris: ≥95% closed by header timeout + 2 s", share >= 0.95, f"{share:.0%} of {len(conns)}")
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    check("slowloris: normal requests all succeed", good == total and p99 < 0.25,
          f"{good}/{total} ok, p99 {p99 * 1000:.0f} ms")


# --------------------------------------------------------------------------------------------------------------
# TLS


def run_tls(gw, sslyze):
    print("== TLS (edge-hardening §3)")
    ctx = ssl.create_default_context(cafile=gw.cert)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", gw.https), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="gw.test") as s:
            check("tls ALPN h2", s.selected_alpn_protocol() == "h2", str(s.selected_alpn_protocol()))
            check("tls version ≥ 1.2", s.version() in {"TLSv1.2", "TLSv1.3"}, s.version())
    ctx11 = ssl.create_default_context(cafile=gw.cert)
    ctx11.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", gw.https), timeout=5) as raw:
        with ctx11.wrap_socket(raw, server_hostname="gw.test") as s:
            check("tls ALPN http/1.1", s.selected_alpn_protocol() == "http/1.1", str(s.selected_alpn_protocol()))
    ctx_foo = ssl.create_default_context(cafile=gw.cert)
    ctx_foo.set_alpn_protocols(["foo"])
    try:
        with socket.create_connection(("127.0.0.1", gw.https), timeout=5) as raw:
            with ctx_foo.wrap_socket(raw, server_hostname="gw.test") as s:
                alpn = s.selected_alpn_protocol()
                check("tls ALPN foo: no protocol", alpn is None, str(alpn))
    except ssl.SSLError as e:
        check("tls ALPN foo: no_application_protocol", "NO APPLICATION PROTOCOL" in str(e).upper().replace("_", " "),
              str(e))
    for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        try:
            old.minimum_version = version
            old.maximum_version = version
            old.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            continue
        try:
            with socket.create_connection(("127.0.0.1", gw.https), timeout=5) as raw:
                with old.wrap_socket(raw, server_hostname="gw.test"):
                    accepted = True
        except (ssl.SSLError, OSError):
            accepted = False
        check(f"tls {version.name} refused", not accepted)
    try:
        with socket.create_connection(("127.0.0.1", gw.https), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="other.test"):
                unknown = "handshake completed"
    except ssl.SSLError as e:
        unknown = str(e)
    check("tls unknown SNI: alert unrecognized_name", "UNRECOGNIZED NAME" in unknown.upper().replace("_", " "),
          unknown[:80])

    # HTTPS over h2: the upstream answers and HSTS is on the response.
    tls = ssl.create_default_context(cafile=gw.cert)
    tls.set_alpn_protocols(["h2"])
    s, c = h2_open(gw.https, tls, "gw.test")
    c.send_headers(1, [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/tls"),
                       (b":authority", b"gw.test")], end_stream=True)
    s.sendall(c.data_to_send())
    events, _ = h2_events(s, c, lambda evs: any(isinstance(e, h2.events.ResponseReceived) for e in evs))
    s.close()
    resp = [dict(e.headers) for e in events if isinstance(e, h2.events.ResponseReceived)]
    ok = bool(resp) and resp[0].get(b":status") == b"200"
    if ok:
        OK_RESPONSES[0] += 1
    check("https h2 request answered with HSTS", ok and resp[0].get(b"strict-transport-security")
          == b"max-age=31536000; includeSubDomains", str(resp[:1]))

    if not sslyze:
        return
    out_json = os.path.join(gw.dir, "sslyze.json")
    proc = subprocess.run(
        [sys.executable, "-m", "sslyze", "--mozilla_config=intermediate", f"gw.test:{gw.https}{{127.0.0.1}}",
         f"--json_out={out_json}"], capture_output=True, text=True, timeout=300, check=False)
    heading = re.search(r"(?im)^\s*compliance against", proc.stdout)
    compliance = proc.stdout[heading.start():] if heading else proc.stdout
    failures = re.findall(r"^\s*\*\s*(\w+):", compliance, re.M)
    print("   sslyze:")
    for line in compliance.strip().splitlines():
        print("     " + line)
    scan_ok = False
    try:
        with open(out_json) as f:
            result = json.load(f)
        scan = result["server_scan_results"][0]
        scan_ok = scan["scan_status"] == "COMPLETED"
        commands = scan["scan_result"]
        heartbleed = commands["heartbleed"]["result"]["is_vulnerable_to_heartbleed"]
        robot = commands["robot"]["result"]["robot_result"]
        compression = commands["tls_compression"]["result"]["supports_compression"]
        reneg = commands["session_renegotiation"]["result"]["is_vulnerable_to_client_renegotiation_dos"]
        check("sslyze: no Heartbleed, ROBOT, compression, client renegotiation",
              not heartbleed and robot.startswith("NOT_VULNERABLE") and not compression and not reneg,
              f"heartbleed={heartbleed} robot={robot} compression={compression} renegotiation={reneg}")
        accepted = {name: len(commands[name]["result"]["accepted_cipher_suites"])
                    for name in ("ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites",
                                 "tls_1_1_cipher_suites", "tls_1_2_cipher_suites", "tls_1_3_cipher_suites")}
        check("sslyze: only TLS 1.2 and 1.3", accepted["tls_1_2_cipher_suites"] > 0
              and accepted["tls_1_3_cipher_suites"] > 0
              and all(accepted[k] == 0 for k in accepted if k not in ("tls_1_2_cipher_suites", "tls_1_3_cipher_suites")),
              str(accepted))
    except (OSError, KeyError, IndexError, TypeError, ValueError) as e:
        check("sslyze JSON readable", False, repr(e))
    check("sslyze scan completed", scan_ok, f"exit {proc.returncode}")
    check("sslyze Mozilla intermediate: only certificate trust fails",
          heading is not None and failures == ["certificate_path_validation"],
          f"failures: {failures}")


# --------------------------------------------------------------------------------------------------------------
# What the upstream saw


def run_differential(recorder, gw, with_h1):
    print("== differential: what reached the upstream")
    time.sleep(0.3)
    requests, connections, unparsed = recorder.snapshot()
    bad = []
    for head, _ in requests:
        lower = head.lower()
        names = [line.split(b":", 1)[0] for line in head.split(b"\r\n")[1:] if line]
        if b"\ncontent-length:" in lower and b"\ntransfer-encoding:" in lower:
            bad.append(("both framing headers", head))
        if re.search(rb"\r\n[ \t]", head):
            bad.append(("obs-fold", head))
        if re.search(rb"(?<!\r)\n", head):
            bad.append(("bare LF", head))
        if any(n != n.strip() or n == b"" for n in names):
            bad.append(("whitespace around a name", head))
        for m in re.finditer(rb"\ncontent-length:([^\r\n]*)", lower):
            if not m.group(1).strip().isdigit():
                bad.append(("non-digit Content-Length", head))
        if re.search(rb"[\x00\x01-\x08\x0b\x0c\x0e-\x1f\x7f]", head):
            bad.append(("control character", head))
        for hop in (b"x-secret", b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade", b"x_foo"):
            if hop in [n.lower() for n in names]:
                bad.append((f"{hop.decode()} forwarded", head))
        if b"gE(t" in lower or b"xchunked" in lower or b"\nx-bare" in lower and b"\r\nx-bare" not in lower:
            bad.append(("rejected request forwarded", head))
    for reason, head in bad[:10]:
        print(f"   {reason}: {head[:200]!r}")
    check("upstream never saw an ambiguous request", not bad, f"{len(bad)} bad of {len(requests)}")
    check("upstream framed every byte it got", not unparsed, f"{len(unparsed)} unframed: {unparsed[:2]!r}")
    if with_h1:
        hops = [h for h, _ in requests if h.startswith(b"GET /hop ")]
        xff = re.search(rb"\r\nx-forwarded-for: ([^\r]*)", hops[0].lower()) if hops else None
        check("XFF: the client's value kept, the peer appended", bool(xff) and xff.group(1) == b"6.6.6.6, 127.0.0.1",
              repr(xff.group(1) if xff else None))
        xfp = re.search(rb"\r\nx-forwarded-proto: ([^\r]*)", hops[0].lower()) if hops else None
        check("X-Forwarded-Proto from the connection", bool(xfp) and xfp.group(1) == b"http",
              repr(xfp.group(1) if xfp else None))
    seen = len(requests)
    check("upstream requests == 2xx answers (nothing smuggled)", seen == OK_RESPONSES[0],
          f"upstream parsed {seen}, clients saw {OK_RESPONSES[0]} 2xx")
    check("gateway healthy at the end", gw.alive())


def main():
    warnings.simplefilter("ignore", DeprecationWarning)  # the probes use TLS 1.0/1.1 on purpose
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--meshgate", required=True)
    parser.add_argument("--only", nargs="*", default=None,
                        choices=["h1", "h2", "floods", "slow", "tls"])
    parser.add_argument("--no-sslyze", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    groups = args.only or ["h1", "h2", "floods", "slow", "tls"]
    workdir = tempfile.mkdtemp(prefix="meshgate-edge-")
    recorder = Recorder()
    gw = Gateway(os.path.abspath(args.meshgate), recorder.port, workdir)
    try:
        if "h1" in groups:
            run_h1(gw)
        if "h2" in groups:
            run_h2(gw)
        if "floods" in groups:
            run_h2_floods(gw)
        if "slow" in groups:
            run_slow(gw)
        if "tls" in groups:
            run_tls(gw, sslyze=not args.no_sslyze)
        run_differential(recorder, gw, "h1" in groups)
    finally:
        gw.stop()
        if FAILURES:
            print("--- gateway log (tail) ---")
            print("\n".join(gw.read_log().splitlines()[-30:]))
        if args.keep or FAILURES:
            print(f"work directory: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"== {len(FAILURES)} failure(s)" + (": " + ", ".join(FAILURES) if FAILURES else ""))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
