#!/usr/bin/env python3
# socks5-udp.py PROXY_HOST PROXY_PORT DEST_HOST DEST_PORT MESSAGE
# A SOCKS5 UDP ASSOCIATE client (RFC 1928 section 7) for the tests: sends
# MESSAGE to DEST_HOST:DEST_PORT (a name, sent as a domain) through the
# proxy, once a second for at most 20 s, and prints the first reply's
# payload and the source it came from. Exit 0 on a reply, 1 without.
import socket
import struct
import sys

proxy_host, proxy_port = sys.argv[1], int(sys.argv[2])
dst, dport, msg = sys.argv[3], int(sys.argv[4]), sys.argv[5]
t = socket.create_connection((proxy_host, proxy_port), timeout=10)
t.sendall(b"\x05\x01\x00")
if t.recv(2) != b"\x05\x00":
    sys.exit("no-auth method refused")
t.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
r = t.recv(10)
if len(r) < 10 or r[1] != 0:
    sys.exit("UDP ASSOCIATE refused: %r" % r)
relay = (socket.inet_ntoa(r[4:8]), struct.unpack(">H", r[8:10])[0])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(1)
hdr = b"\x00\x00\x00\x03" + bytes([len(dst)]) + dst.encode() + struct.pack(">H", dport)
for _ in range(20):
    u.sendto(hdr + msg.encode(), relay)
    try:
        data, _ = u.recvfrom(4096)
    except socket.timeout:
        continue
    if data[3] == 1:
        src, off = socket.inet_ntop(socket.AF_INET, data[4:8]), 8
    else:
        src, off = socket.inet_ntop(socket.AF_INET6, data[4:20]), 20
    print("%s from %s:%d" % (data[off + 2:].decode(), src, struct.unpack(">H", data[off:off + 2])[0]))
    sys.exit(0)
sys.exit(1)
