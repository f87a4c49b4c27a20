#!/usr/bin/python3
"""Large HTTP/1.1 bodies through the mesh, streamed both ways and checked byte for byte against
a pattern (so nothing is held whole on either end): `up N` PUTs N bytes to /bulk and the
server (http_echo_server.py) verifies them; `down N` GETs /bulk?n=N and verifies what comes.
Prints {"ok": bool, "bytes": N, "seconds": t, "pod": ...}.

usage: http_bulk.py HOST PORT up|down N
"""
import http.client
import json
import sys
import time

BLOCK = bytes((i * 131 + 7) & 0xFF for i in range(1 << 20))
DOUBLE = BLOCK + BLOCK


def piece(offset, length):
    """`length` (<= 1 MiB) bytes of the pattern starting at stream offset `offset`."""
    start = offset % len(BLOCK)
    return DOUBLE[start:start + length]


def matches(data, offset):
    i = 0
    while i < len(data):
        n = min(1 << 20, len(data) - i)
        if data[i:i + n] != piece(offset + i, n):
            return False
        i += n
    return True


def main():
    host, port, mode, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    conn = http.client.HTTPConnection(host, port, timeout=120)
    start = time.monotonic()
    result = {"ok": False, "bytes": 0}
    if mode == "up":
        conn.putrequest("PUT", "/bulk")
        conn.putheader("content-length", str(n))
        conn.endheaders()
        for offset in range(0, n, 1 << 20):
            conn.send(piece(offset, min(1 << 20, n - offset)))
        reply = json.loads(conn.getresponse().read())
        result = {"ok": reply.get("pattern_ok", False) and reply.get("body_length") == n, "bytes": reply.get("body_length"),
                  "pod": reply.get("pod")}
    else:
        conn.request("GET", f"/bulk?n={n}")
        response = conn.getresponse()
        seen, ok = 0, response.status == 200
        while True:
            data = response.read(1 << 20)
            if not data:
                break
            ok = ok and matches(data, seen)
            seen += len(data)
        result = {"ok": ok and seen == n, "bytes": seen}
    result["seconds"] = round(time.monotonic() - start, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
