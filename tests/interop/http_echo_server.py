#!/usr/bin/python3
"""An HTTP/1.1 app for the L7 tests: answers every request with JSON naming itself (the pod),
the method, path and headers it received, and the length of the body it read. Keep-alive
(HTTP/1.1) so one client connection can carry many requests. Prints "listening" when ready.

usage: http_echo_server.py NAME PORT
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import socket


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no wait for an ACK between them

    def handle_any(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = json.dumps({
            "pod": self.server.name,
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_length": len(body),
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.send_header("server", "echo")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


def main():
    server = Server(("::", int(sys.argv[2])), Handler)
    server.name = sys.argv[1]
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
