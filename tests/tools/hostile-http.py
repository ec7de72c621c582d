#!/usr/bin/env python3
# hostile-http.py: slow and oversized HTTPS clients against one server, for
# tests/bats/70-hostile-http.bats. Every loop is bounded in count and time.
#
#   hostile-http.py MODE PORT CA N SOURCES BOUND_S [PATH [LENGTH]]
#
# Opens N connections to 127.0.0.1:PORT, spread over the source addresses
# SOURCES ("127.0.0.10-29": the last octet's range), one thread each, and
# prints "ready N" once all are open (their handshakes done, for the modes
# that make one). MODE:
#   silent    TCP only; sends nothing.
#   slowhead  TLS, then a request head one line every 2 s, never ended.
#   slowbody  TLS, a full head (Content-Length 4000, within every route's
#             limit), then a body of 1 byte every 2 s.
#   bigbody   TLS, a head declaring a body of LENGTH bytes (default 100 MB),
#             then nothing: reads the answer (the body is never sent).
#   bigtail   as bigbody, but the head is followed, in the same write, by
#             body bytes that look like another request head (for a route
#             with a larger limit): they must not change the limit.
#   padlen    TLS, a head whose Content-Length (LENGTH) is padded past 1 KiB
#             with blanks, then the body: reads the answer.
#   bigsend   TLS, a head declaring LENGTH bytes, then the body as fast as
#             the server takes it; then reads the answer, if any.
#   bigput    as bigbody, but PUT (the CS's chunks), with the token of the
#             environment's BEARER in Authorization when it is set.
#   keepalive TLS, GET PATH and read the answer, then hold the connection.
#   pipeline  TLS, then LENGTH requests GET PATH, each its own TLS record,
#             sent at once in one TCP segment (corked; pipelined), and
#             reads the answers: "conn I answers K" (K of them came).
# bigsend also sends BEARER's token when it is set.
# Each connection waits until the server closes it, or BOUND_S passes.
# Output, one line per connection: "conn I closed SECONDS" or "conn I open"
# or "conn I status CODE CODE-FIELD" (bigbody, keepalive: the answer's
# status and JSON "code"), then "done". For keepalive, the connections stay
# until BOUND_S or stdin closes.
import json
import os
import socket
import ssl
import sys
import threading
import time

mode, port, ca, n, sources, bound = sys.argv[1:7]
port, n, bound = int(port), int(n), float(bound)
path = sys.argv[7] if len(sys.argv) > 7 else "/v1/login"
clen = int(sys.argv[8]) if len(sys.argv) > 8 else 100000000
auth = (b"Authorization: Bearer %s\r\n" % os.environ["BEARER"].encode()) \
    if os.environ.get("BEARER") else b""
pre, rng = sources.rsplit(".", 1)
lo, hi = (int(x) for x in rng.split("-"))
addrs = ["%s.%d" % (pre, i) for i in range(lo, hi + 1)]

ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False

lock = threading.Lock()
lines = []
opened = threading.Semaphore(0)
t0 = time.monotonic()


def out(s):
    with lock:
        lines.append(s)


def wait_closed(s, i, start, trickle=None):
    """Reads (and sends trickle() every 2 s) until EOF or the bound."""
    s.settimeout(2)
    while time.monotonic() - t0 < bound:
        try:
            if trickle:
                s.sendall(trickle())
            d = s.recv(4096)
            if not d:
                break
        except socket.timeout:
            continue
        except (OSError, ssl.SSLError):
            break
    else:
        out("conn %d open" % i)
        return
    out("conn %d closed %.1f" % (i, time.monotonic() - start))


def next_answer(s, buf):
    """One HTTP answer from buf and what s sends: (head, body, rest), or
    None if s ends first."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return None
        buf += d
    head, _, buf = buf.partition(b"\r\n\r\n")
    clen = 0
    for ln in head.split(b"\r\n")[1:]:
        k, _, v = ln.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v)
    while len(buf) < clen:
        d = s.recv(65536)
        if not d:
            return None
        buf += d
    return head, buf[:clen], buf[clen:]


def read_answer(s):
    """Status and JSON code of one HTTP answer, or (0, '')."""
    s.settimeout(10)
    try:
        head, body, _ = next_answer(s, b"")
        status = int(head.split(b" ")[1])
        try:
            code = json.loads(body).get("code", "-")
        except ValueError:
            code = "-"
        return status, code
    except (OSError, ssl.SSLError, ValueError, IndexError, TypeError):
        return 0, ""


def read_answers(s, k):
    """How many of k pipelined answers came (each head and its body)."""
    s.settimeout(10)
    buf = b""
    got = 0
    try:
        while got < k:
            a = next_answer(s, buf)
            if a is None:
                break
            buf = a[2]
            got += 1
    except (OSError, ssl.SSLError, ValueError):
        pass
    return got


def one(i):
    src = addrs[i % len(addrs)]
    start = time.monotonic()
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.bind((src, 0))
        raw.settimeout(10)
        raw.connect(("127.0.0.1", port))
    except OSError as e:
        out("conn %d error %s" % (i, e))
        opened.release()
        return
    if mode == "silent":
        opened.release()
        wait_closed(raw, i, start)
        return
    try:
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except (OSError, ssl.SSLError):
        # Refused at once (over a cap): closed during the handshake.
        opened.release()
        out("conn %d closed %.1f" % (i, time.monotonic() - start))
        return
    opened.release()
    try:
        if mode == "slowhead":
            s.sendall(b"POST /v1/login HTTP/1.1\r\n")
            k = [0]

            def line():
                k[0] += 1
                return b"X-Slow-%d: x\r\n" % k[0]
            wait_closed(s, i, start, line)
        elif mode == "slowbody":
            s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: 4000\r\n\r\n{"
                      % path.encode())
            wait_closed(s, i, start, lambda: b" ")
        elif mode in ("bigbody", "bigtail"):
            tail = b"PUT /v1/cs/upload HTTP/1.1\r\nHost: x\r\n\r\n" \
                if mode == "bigtail" else b""
            s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: %d\r\n\r\n%s"
                      % (path.encode(), clen, tail))
            st, code = read_answer(s)
            out("conn %d status %d %s" % (i, st, code))
        elif mode == "bigput":
            s.sendall(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/octet-stream\r\n%sContent-Length: %d\r\n\r\n"
                      % (path.encode(), auth, clen))
            st, code = read_answer(s)
            out("conn %d status %d %s" % (i, st, code))
        elif mode == "padlen":
            s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length:%s%d\r\n\r\n%s"
                      % (path.encode(), b" " * 1100, clen, b"x" * clen))
            st, code = read_answer(s)
            out("conn %d status %d %s" % (i, st, code))
        elif mode == "bigsend":
            s.sendall(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/octet-stream\r\n%sContent-Length: %d\r\n\r\n"
                      % (path.encode(), auth, clen))
            piece = b"x" * 65536
            sent = 0
            s.settimeout(10)
            try:
                while sent < clen and time.monotonic() - t0 < bound:
                    sent += s.send(piece[:min(len(piece), clen - sent)])
            except (OSError, ssl.SSLError):
                pass
            st, code = read_answer(s)
            out("conn %d status %d %s" % (i, st, code) if st else
                "conn %d closed %.1f" % (i, time.monotonic() - start))
        elif mode == "pipeline":
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            for _ in range(clen):
                s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            out("conn %d answers %d" % (i, read_answers(s, clen)))
        elif mode == "keepalive":
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            st, code = read_answer(s)
            out("conn %d status %d %s" % (i, st, code))
            hold.wait(bound)
    except (OSError, ssl.SSLError):
        out("conn %d closed %.1f" % (i, time.monotonic() - start))


hold = threading.Event()
threading.stack_size(256 * 1024)
threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
for t in threads:
    t.start()
for _ in range(n):
    opened.acquire(timeout=max(1.0, bound - (time.monotonic() - t0)))
print("ready %d" % n, flush=True)
if mode == "keepalive":
    # Answers first, then hold until stdin closes (or the bound).
    while time.monotonic() - t0 < bound and \
            sum(1 for ln in lines if " status " in ln or " closed " in ln) < n:
        time.sleep(0.1)
    with lock:
        for ln in sorted(lines):
            print(ln)
    print("answered", flush=True)
    sys.stdin.read()
    hold.set()
    sys.exit(0)
for t in threads:
    t.join(max(0.1, bound + 15 - (time.monotonic() - t0)))
with lock:
    for ln in sorted(lines):
        print(ln)
print("done", flush=True)
