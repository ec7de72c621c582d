#!/usr/bin/env python3
"""dcswap - test tool: a dishonest DC front that relays clients' HTTPS
requests to the real DC, but swaps the device key of each POST /v1/login
for one of its own (what a DC that wants to hold a device's identity would
do). It serves with the DC's own TLS certificate and key.

    dcswap.py PORT CERT KEY CA UPSTREAM

Runs until killed; prints "swapped" to stdout each time it swapped a key.
"""
import base64
import http.server
import json
import os
import ssl
import sys
import urllib.request

port, cert, key, ca, upstream = sys.argv[1:6]
ctx_up = ssl.create_default_context(cafile=ca)


class Front(http.server.BaseHTTPRequestHandler):
    def relay(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if method == "POST" and self.path == "/v1/login" and body:
            m = json.loads(body)
            if "device_key" in m:
                k = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
                m["device_key"] = k
                body = json.dumps(m).encode()
                print("swapped", flush=True)
        req = urllib.request.Request(upstream + self.path, data=body, method=method)
        for h in ("Content-Type", "Authorization"):
            if self.headers.get(h):
                req.add_header(h, self.headers[h])
        try:
            with urllib.request.urlopen(req, context=ctx_up, timeout=10) as r:
                status, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.relay("GET")

    def do_POST(self):
        self.relay("POST")

    def log_message(self, *args):
        pass


srv = http.server.HTTPServer(("127.0.0.1", int(port)), Front)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening", flush=True)
srv.serve_forever()
