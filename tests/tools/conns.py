#!/usr/bin/env python3
# conns.py PORT N: opens N TCP connections to 127.0.0.1:PORT, checks that
# each one echoes a byte end to end, prints "open N", then holds them all
# until its standard input closes. For the idle-connection memory test.
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
conns = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    conns.append(s)
for s in conns:
    s.sendall(b"x")
for s in conns:
    if s.recv(1) != b"x":
        sys.exit("connection %d: no echo" % conns.index(s))
print("open %d" % len(conns), flush=True)
sys.stdin.read()
