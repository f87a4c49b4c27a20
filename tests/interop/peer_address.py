#!/usr/bin/python3
"""What an app sees of its clients, and what a client sees of itself.

  peer_address.py serve PORT          answers every connection on [::]:PORT (dual stack) with
                                      the peer address getpeername() returns, one line
  peer_address.py ask HOST PORT       connects, prints {"self": <its own address>, "seen": <the
                                      line the server answered>} as JSON

Addresses are printed as Python's ipaddress module normalizes them, IPv4-mapped IPv6 as IPv4.
"""
import ipaddress
import json
import socket
import sys


def plain(address):
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def serve(port):
    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", port))
    server.listen(128)
    print("listening", flush=True)
    while True:
        conn, peer = server.accept()
        try:
            conn.sendall((plain(peer[0]) + "\n").encode())
        except OSError:
            pass
        conn.close()


def ask(host, port):
    conn = socket.create_connection((host, port), timeout=10)
    me = plain(conn.getsockname()[0])
    seen = b""
    while not seen.endswith(b"\n"):
        chunk = conn.recv(256)
        if not chunk:
            break
        seen += chunk
    print(json.dumps({"self": me, "seen": seen.decode().strip()}))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        ask(sys.argv[2], int(sys.argv[3]))
