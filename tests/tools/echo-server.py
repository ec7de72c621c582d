#!/usr/bin/env python3
# echo-server.py PORT: a TCP echo server on 127.0.0.1 for many idle
# connections at once (selectors, one thread).
import selectors
import socket
import sys

sel = selectors.DefaultSelector()
lis = socket.socket()
lis.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lis.bind(("127.0.0.1", int(sys.argv[1])))
lis.listen(4096)
lis.setblocking(False)
sel.register(lis, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is lis:
            c, _ = lis.accept()
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ)
            continue
        try:
            d = key.fileobj.recv(65536)
        except OSError:
            d = b""
        if not d:
            sel.unregister(key.fileobj)
            key.fileobj.close()
        else:
            key.fileobj.sendall(d)
