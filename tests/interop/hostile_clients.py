#!/usr/bin/python3
"""Hostile clients against one pod's HBONE (15008) and plaintext inbound (15006) ports, for the
tunnel's resource-bound test. Independent of Sluice's code (Python sockets, ssl and python3-h2).

  hostile_clients.py --target IP --app-port P [--idle N] [--slow-hello N] [--random N]
                     [--tls N --cert C --key K --ca A]

Opens, at once and then held until standard input closes:
  --idle N        TCP connections that send nothing (half to 15008, half to the app port, which
                  the node steers to the tunnel's 15006);
  --slow-hello N  connections to 15008 sending one byte of a TLS ClientHello every 2 s;
  --random N      connections sending random bytes, half to 15008, half to the app port;
  --tls N         mTLS HBONE clients (the mesh CA's certificate) that open a CONNECT stream to
                  the app port, send as much as the stream's window takes (the echo app answers
                  it) and then never read again.
Prints one JSON line when every connection was attempted ({"opened": n, "failed": n}), then
holds them until standard input closes, and closes them all.
"""
import argparse
import json
import os
import resource
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events

CLIENT_HELLO = bytes.fromhex("16030100c4010000c00303") + os.urandom(32)
stop = threading.Event()
held = []
held_lock = threading.Lock()
counts = {"opened": 0, "failed": 0}
tls_opened = [0]  # mTLS clients whose stream was answered


def connect(host, port):
    try:
        s = socket.create_connection((host, port), timeout=5)
    except OSError:
        with held_lock:
            counts["failed"] += 1
        return None
    with held_lock:
        counts["opened"] += 1
        held.append(s)
    return s


def slow_hello(socks):
    i = 0
    while not stop.wait(2):
        for s in socks:
            try:
                s.send(CLIENT_HELLO[i % len(CLIENT_HELLO):i % len(CLIENT_HELLO) + 1])
            except OSError:
                pass
        i += 1


def random_bytes(socks):
    while not stop.wait(0.1):
        for s in socks:
            try:
                s.setblocking(False)
                s.send(os.urandom(4096))
            except OSError:
                pass


def tls_client(a, opened):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(a.ca)
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["h2"])
    ctx.load_cert_chain(a.cert, a.key)
    try:
        raw = socket.create_connection((a.target, 15008), timeout=10)
        tls = ctx.wrap_socket(raw)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, validate_outbound_headers=False))
        conn.initiate_connection()
        tls.sendall(conn.data_to_send())
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, [(":method", "CONNECT"), (":authority", "%s:%d" % (a.target, a.app_port))])
        tls.sendall(conn.data_to_send())
        established = False
        while not established:
            data = tls.recv(65536)
            if not data:
                raise OSError("closed before the answer")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    established = True
            tls.sendall(conn.data_to_send())
        # Send what the window takes (the echo comes back and is never read).
        window = conn.local_flow_control_window(stream)
        chunk = os.urandom(16384)
        while window > 0:
            n = min(window, len(chunk), conn.max_outbound_frame_size)
            conn.send_data(stream, chunk[:n])
            window -= n
        tls.sendall(conn.data_to_send())
        with held_lock:
            counts["opened"] += 1
            tls_opened[0] += 1
            held.append(tls)
    except (OSError, ssl.SSLError, h2.exceptions.H2Error):
        with held_lock:
            counts["failed"] += 1
    opened.release()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True)
    p.add_argument("--app-port", type=int, required=True)
    p.add_argument("--idle", type=int, default=0)
    p.add_argument("--slow-hello", type=int, default=0)
    p.add_argument("--random", type=int, default=0)
    p.add_argument("--tls", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    a = p.parse_args()
    # Thousands of sockets: take every descriptor the hard limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    # The mTLS clients first: the per-source cap would refuse them once the idle ones hold it.
    opened = threading.Semaphore(0)
    for _ in range(a.tls):
        threading.Thread(target=tls_client, args=(a, opened), daemon=True).start()
    for _ in range(a.tls):
        opened.acquire()
    for i in range(a.idle):
        connect(a.target, 15008 if i % 2 == 0 else a.app_port)
    slow = [s for s in (connect(a.target, 15008) for _ in range(a.slow_hello)) if s]
    rnd = [s for s in (connect(a.target, 15008 if i % 2 == 0 else a.app_port) for i in range(a.random)) if s]
    threading.Thread(target=slow_hello, args=(slow,), daemon=True).start()
    threading.Thread(target=random_bytes, args=(rnd,), daemon=True).start()
    print(json.dumps(dict(counts, tls=tls_opened[0])), flush=True)
    sys.stdin.read()  # held until the test closes our standard input
    stop.set()
    for s in held:
        try:
            s.close()
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
