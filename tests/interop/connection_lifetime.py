#!/usr/bin/python3
"""How long the mesh keeps one client connection, and what its requests reached, for the
connectionPool lifetime tests. Prints one JSON line.

  idle HOST PORT      connects and sends nothing: {"closed_after": seconds until EOF or reset}
  busy HOST PORT      an HTTP/1.1 request every 0.3 s on one connection until it is closed:
                      {"closed_after": seconds, "answered": requests answered}
  pause HOST PORT S   three GETs on one keep-alive connection (header x-user: same), the third
                      after S seconds: {"peers": [the upstream peer each answer names]}
usage: connection_lifetime.py MODE HOST PORT [SECONDS]
"""
import http.client
import json
import socket
import sys
import time


def closed_after(sock, began):
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass
    return time.monotonic() - began


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "pause":
        conn = http.client.HTTPConnection(host, port, timeout=30)
        peers = []
        for pause in (0, 0, float(sys.argv[4])):
            time.sleep(pause)
            conn.request("GET", "/", headers={"x-user": "same"})
            peers.append(json.loads(conn.getresponse().read())["peer"])
        print(json.dumps({"peers": peers}))
        return
    sock = socket.create_connection((host, port), timeout=60)
    began = time.monotonic()
    if mode == "idle":
        print(json.dumps({"closed_after": closed_after(sock, began)}))
        return
    answered = 0
    sock.settimeout(5)
    try:
        while time.monotonic() - began < 30:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = sock.recv(65536)
            if not data:
                break
            answered += 1
            time.sleep(0.3)
    except OSError:
        pass
    print(json.dumps({"closed_after": time.monotonic() - began, "answered": answered}))


if __name__ == "__main__":
    main()
