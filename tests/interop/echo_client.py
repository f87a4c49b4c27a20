#!/usr/bin/python3
"""Echo client for the mesh tests, with Python's socket module (independent of Sluice's code).

  echo_client.py HOST PORT PAYLOAD [--half-close] [--rounds N --interval S] [--parallel N]

Each connection sends PAYLOAD (with its index and round appended when --parallel/--rounds ask
for it) and reads exactly that many bytes back; --half-close instead shuts the write side after
sending and reads to EOF. Prints, on one line, the echo itself for a single plain exchange,
otherwise the number of exchanges that came back intact. Mismatches go to stderr.
"""
import argparse
import socket
import sys
import threading
import time


def exchange(sock, msg, half_close):
    sock.sendall(msg)
    if half_close:
        sock.shutdown(socket.SHUT_WR)
    got = b""
    while half_close or len(got) < len(msg):
        data = sock.recv(65536)
        if not data:
            break
        got += data
    return got


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("payload")
    p.add_argument("--half-close", action="store_true")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--interval", type=float, default=0)
    p.add_argument("--parallel", type=int, default=1)
    a = p.parse_args()
    ok = []

    def connection(index):
        with socket.create_connection((a.host, a.port), timeout=10) as s:
            for r in range(a.rounds):
                msg = a.payload.encode()
                if a.parallel > 1 or a.rounds > 1:
                    msg += b"-%d-%d" % (index, r)
                got = exchange(s, msg, a.half_close)
                ok.append(got == msg)
                if got != msg:
                    sys.stderr.write("sent %r got %r\n" % (msg, got))
                if a.parallel == 1 and a.rounds == 1:
                    print(got.decode(errors="replace"))
                    return
                time.sleep(a.interval)

    threads = [threading.Thread(target=connection, args=(i,)) for i in range(a.parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if a.parallel > 1 or a.rounds > 1:
        print(sum(ok))


if __name__ == "__main__":
    main()
