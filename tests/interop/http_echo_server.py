#!/usr/bin/python3
"""An HTTP/1.1 app for the L7 tests: answers every request with JSON naming itself (the pod),
the method, path and headers it received, and the length of the body it read; a websocket
upgrade is answered 101 (with x-pod: NAME) and every frame echoed back. Keep-alive
(HTTP/1.1) so one client connection can carry many requests. A connection that opens with the
HTTP/2 preface (h2c with prior knowledge, as curl --http2-prior-knowledge and h2load send) is
served by python3-h2 with the same JSON answer ("protocol": "HTTP/2"). Prints "listening"
when ready.

/slow?ms=N answers after N ms. HTTP/1.1 answers also carry the connection's peer address
("peer") and the most requests the server ever answered at once ("max_in_flight"); every
answer carries how many distinct peers (connections) the server has seen ("peers_seen"). With
--fail-percent P that share of HTTP/1.1 answers is a 503.
With --status N every answer (the same JSON) carries status N instead of 200: an upstream
that fails on purpose (outlier detection tests).

With --delay-ms N every answer waits N ms more (a slow endpoint: perTryTimeout tests).

With --request-log PATH every request is appended to PATH as one JSON line (authority, method,
path, body_length) as soon as it has been read, before any delay: what a mirror received.

usage: http_echo_server.py NAME PORT [--status N] [--fail-percent P] [--delay-ms N] [--request-log PATH]
"""
import base64
import hashlib
import json
import random
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import os
import socket

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_bulk  # noqa: E402  (the shared byte pattern)


DELAY_S = 0.0  # --delay-ms: every answer waits this long (a slow endpoint)
REQUEST_LOG = None  # --request-log: (path, lock)
PEERS = set()  # every connection's peer address so far
PEERS_LOCK = threading.Lock()


def note_peer(sock):
    with PEERS_LOCK:
        PEERS.add(sock.getpeername()[:2])
        return len(PEERS)


def log_request(authority, method, path, body_length):
    if REQUEST_LOG is None:
        return
    line = json.dumps({"authority": authority, "method": method, "path": path, "body_length": body_length})
    with REQUEST_LOG[1]:
        with open(REQUEST_LOG[0], "a") as f:
            f.write(line + "\n")


def slow_ms(path):
    """/slow?ms=N: the answer waits N ms (route timeout tests)."""
    return int(path.split("ms=", 1)[1].split("&")[0]) if "ms=" in path else 1000


def wait_before_answering(path):
    time.sleep(DELAY_S + (slow_ms(path) / 1000.0 if path.startswith("/slow") else 0))


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def opens_with_h2_preface(sock):
    """Peeks (consumes nothing) until the first bytes tell HTTP/2's preface from anything else."""
    while True:
        first = sock.recv(len(H2_PREFACE), socket.MSG_PEEK)
        if not first or not H2_PREFACE.startswith(first):
            return False
        if len(first) == len(H2_PREFACE):
            return True


def serve_h2(sock, name, status=200):
    """One h2c connection: every stream answered with the echo JSON once its request ended.
    /bulk as over HTTP/1.1: a request body is checked against http_bulk's pattern as it
    arrives; /bulk?n=N answers N bytes of the pattern, sent as the peer's windows allow."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    conn.increment_flow_control_window(1 << 24)
    sock.sendall(conn.data_to_send())
    heads, bodies, pattern_ok = {}, {}, {}
    sending = {}  # stream -> [offset, total]: /bulk?n=N answers in progress

    def pump_sends():
        for stream, state in list(sending.items()):
            while state[0] < state[1]:
                window = min(conn.local_flow_control_window(stream), conn.max_outbound_frame_size)
                if window <= 0:
                    break
                k = min(window, state[1] - state[0])
                conn.send_data(stream, http_bulk.piece(state[0], k), end_stream=state[0] + k == state[1])
                state[0] += k
            if state[0] == state[1]:
                del sending[stream]

    def answer(stream, head):
        path = head.get(":path", "")
        log_request(head.get(":authority"), head.get(":method"), path, bodies[stream])
        wait_before_answering(path)
        if path.startswith("/bulk") and "n=" in path:
            n = int(path.split("n=", 1)[1])
            conn.send_headers(stream, [(":status", "200"), ("content-length", str(n))], end_stream=n == 0)
            sending[stream] = [0, n]
            return
        if path.startswith("/bulk"):
            reply = {"pod": name, "body_length": bodies[stream], "pattern_ok": pattern_ok[stream]}
        else:
            reply = {
                "pod": name,
                "protocol": "HTTP/2",
                "method": head.get(":method"),
                "path": path,
                "headers": {k: v for k, v in head.items() if not k.startswith(":")},
                "authority": head.get(":authority"),
                "body_length": bodies[stream],
                "peers_seen": note_peer(sock),
            }
        data = json.dumps(reply).encode()
        conn.send_headers(stream, [(":status", str(status)), ("content-type", "application/json"),
                                   ("content-length", str(len(data))), ("server", "echo")])
        conn.send_data(stream, data, end_stream=True)

    while True:
        data = sock.recv(1 << 20)
        if not data:
            return
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                heads[event.stream_id] = dict(event.headers)
                bodies[event.stream_id], pattern_ok[event.stream_id] = 0, True
            elif isinstance(event, h2.events.DataReceived):
                stream = event.stream_id
                if heads.get(stream, {}).get(":path", "").startswith("/bulk"):
                    pattern_ok[stream] = pattern_ok[stream] and http_bulk.matches(event.data, bodies[stream])
                bodies[stream] += len(event.data)
                conn.acknowledge_received_data(event.flow_controlled_length, stream)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id in heads:
                answer(event.stream_id, heads.pop(event.stream_id))
                bodies.pop(event.stream_id)
                pattern_ok.pop(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                sending.pop(event.stream_id, None)
        pump_sends()
        sock.sendall(conn.data_to_send())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no wait for an ACK between them

    def handle(self):
        if opens_with_h2_preface(self.connection):
            return serve_h2(self.connection, self.server.name, self.server.status)
        return super().handle()

    def handle_any(self):
        with self.server.lock:
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        self.working = True
        try:
            self.answer()
        finally:
            self.done_working()

    def done_working(self):
        """The request no longer counts as in flight. Called before the answer is written: a
        client that got the answer may send its next request before this thread would have got
        here after writing, and the app must not count two where the client sees one."""
        if self.working:
            self.working = False
            with self.server.lock:
                self.server.in_flight -= 1

    def answer(self):
        if self.headers.get("upgrade", "").lower() == "websocket":
            wait_before_answering(self.path)
            return self.websocket_echo()
        if self.path.startswith("/bulk"):
            wait_before_answering(self.path)
            return self.bulk()
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        log_request(self.headers.get("host"), self.command, self.path, len(body))
        wait_before_answering(self.path)
        reply = json.dumps({
            "pod": self.server.name,
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_length": len(body),
            "peer": "%s:%s" % self.client_address[:2],
            "max_in_flight": self.server.max_in_flight,
            "peers_seen": note_peer(self.connection),
        }).encode()
        status = self.server.status
        if self.server.fail_percent and random.random() * 100 < self.server.fail_percent:
            status = 503
        self.done_working()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.send_header("server", "echo")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    def bulk(self):
        """Large bodies, streamed and checked against http_bulk's pattern: a request body is read
        in pieces and verified; GET /bulk?n=N answers N bytes of the pattern."""
        length = int(self.headers.get("content-length") or 0)
        seen, ok = 0, True
        while seen < length:
            piece = self.rfile.read(min(1 << 20, length - seen))
            if not piece:
                break
            ok = ok and http_bulk.matches(piece, seen)
            seen += len(piece)
        n = int(self.path.split("n=", 1)[1]) if "n=" in self.path else 0
        if n == 0:
            reply = json.dumps({"pod": self.server.name, "body_length": seen, "pattern_ok": ok and seen == length}).encode()
            self.send_response(self.server.status)
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            return
        self.send_response(200)
        self.send_header("content-length", str(n))
        self.end_headers()
        for offset in range(0, n, 1 << 20):
            self.wfile.write(http_bulk.piece(offset, min(1 << 20, n - offset)))

    def websocket_echo(self):
        """RFC 6455 handshake, then every data frame echoed back (unmasked) until a close."""
        key = self.headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept.decode())
        self.send_header("x-pod", self.server.name)
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            payload = bytearray(self.rfile.read(length))
            for i in range(len(payload)):
                payload[i] ^= mask[i % 4]
            if length < 126:
                out = bytes([0x80 | opcode, length])
            elif length < 65536:
                out = bytes([0x80 | opcode, 126]) + struct.pack("!H", length)
            else:
                out = bytes([0x80 | opcode, 127]) + struct.pack("!Q", length)
            self.wfile.write(out + bytes(payload))
            self.wfile.flush()
            if opcode == 0x8:  # close: echoed, done
                self.close_connection = True
                return

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


def main():
    server = Server(("::", int(sys.argv[2])), Handler)
    global DELAY_S
    DELAY_S = int(sys.argv[sys.argv.index("--delay-ms") + 1]) / 1000.0 if "--delay-ms" in sys.argv else 0.0
    global REQUEST_LOG
    if "--request-log" in sys.argv:
        REQUEST_LOG = (sys.argv[sys.argv.index("--request-log") + 1], threading.Lock())
    server.name = sys.argv[1]
    server.lock = threading.Lock()
    server.in_flight = server.max_in_flight = 0  # HTTP/1.1 requests being answered at once (and the most ever)
    server.status = int(sys.argv[sys.argv.index("--status") + 1]) if "--status" in sys.argv else 200
    server.fail_percent = float(sys.argv[sys.argv.index("--fail-percent") + 1]) if "--fail-percent" in sys.argv else 0
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
