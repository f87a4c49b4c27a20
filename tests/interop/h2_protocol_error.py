#!/usr/bin/python3
"""Breaks HTTP/2 on purpose (stdlib only): sends the client preface, an empty SETTINGS, then a
HEADERS frame on stream 0 (a connection error, RFC 9113 §6.2), and reads until the peer closes.
Prints {"frames": [types received], "goaway_error": code of the GOAWAY or null}.

usage: h2_protocol_error.py HOST PORT
"""
import json
import socket
import struct
import sys


def main():
    sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + struct.pack("!I", 0)[1:] + b"\x04\x00" + struct.pack("!I", 0))
    # HEADERS (type 1), END_HEADERS, stream 0, a one-byte block.
    sock.sendall(struct.pack("!I", 1)[1:] + b"\x01\x04" + struct.pack("!I", 0) + b"\x82")
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    frames, goaway, i = [], None, 0
    while i + 9 <= len(data):
        length = int.from_bytes(data[i:i + 3], "big")
        kind = data[i + 3]
        frames.append(kind)
        if kind == 7 and i + 9 + 8 <= len(data):
            goaway = int.from_bytes(data[i + 13:i + 17], "big")
        i += 9 + length
    print(json.dumps({"frames": frames, "goaway_error": goaway}))


if __name__ == "__main__":
    main()
