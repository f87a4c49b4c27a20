#!/usr/bin/python3
"""A websocket client for the L7 tests (stdlib only, RFC 6455): upgrades GET / on HOST:PORT,
sends masked binary frames of 1 B, 125 B, 64 KiB and 1 MiB of random bytes, checks each echo
byte for byte, closes, and prints {"ok": bool, "pod": x-pod of the 101, "echoed": frames}.

usage: websocket_client.py HOST PORT
"""
import base64
import json
import os
import socket
import struct
import sys


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def send_frame(sock, opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(head + mask + masked)


def read_frame(sock):
    head = read_exact(sock, 2)
    n = head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", read_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", read_exact(sock, 8))[0]
    return head[0] & 0x0F, read_exact(sock, n)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.create_connection((host, port), timeout=20)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /chat HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += read_exact(sock, 1)
    lines = head.decode().split("\r\n")
    fields = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    result = {"ok": False, "pod": fields.get("x-pod", ""), "status": lines[0], "echoed": 0}
    if " 101 " not in lines[0] + " ":
        print(json.dumps(result))
        return
    ok = True
    for size in (1, 125, 65536, 1 << 20):
        payload = os.urandom(size)
        send_frame(sock, 0x2, payload)
        opcode, echo = read_frame(sock)
        ok = ok and opcode == 0x2 and echo == payload
        result["echoed"] += 1
    send_frame(sock, 0x8, b"\x03\xe8")
    opcode, _ = read_frame(sock)
    result["ok"] = ok and opcode == 0x8
    print(json.dumps(result))


if __name__ == "__main__":
    main()
