#!/usr/bin/python3
"""Large HTTP/1.1 bodies through the mesh, streamed both ways and checked byte for byte against
a pattern (so nothing is held whole on either end): `up N` PUTs N bytes to /bulk and the
server (http_echo_server.py) verifies them; `down N` GETs /bulk?n=N and verifies what comes.
With --h2 the same over HTTP/2 with prior knowledge (h2c, python3-h2), one stream, sent as
the windows allow. Prints {"ok": bool, "bytes": N, "seconds": t, "pod": ..., "status": S (up)}.

usage: http_bulk.py HOST PORT up|down N [--h2]
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


def h2_transfer(host, port, mode, n):
    import socket
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings
    sock = socket.create_connection((host, port), timeout=120)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    conn.increment_flow_control_window(1 << 24)
    up = mode == "up"
    stream = conn.get_next_available_stream_id()
    headers = [(":method", "PUT" if up else "GET"), (":scheme", "http"), (":authority", host),
               (":path", "/bulk" if up else f"/bulk?n={n}")]
    if up:
        headers.append(("content-length", str(n)))
    conn.send_headers(stream, headers, end_stream=not up)
    sent, seen, ok, status, reply, ended = 0, 0, True, 0, b"", False
    while not ended:
        while up and sent < n:
            window = min(conn.local_flow_control_window(stream), conn.max_outbound_frame_size)
            if window <= 0:
                break
            k = min(window, n - sent)
            conn.send_data(stream, piece(sent, k), end_stream=sent + k == n)
            sent += k
        sock.sendall(conn.data_to_send())
        data = sock.recv(1 << 20)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers).get(":status", "0"))
            elif isinstance(event, h2.events.DataReceived):
                if up:
                    reply += event.data
                else:
                    ok = ok and matches(event.data, seen)
                    seen += len(event.data)
                conn.acknowledge_received_data(event.flow_controlled_length, stream)
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)) and event.stream_id == stream:
                ended = isinstance(event, h2.events.StreamEnded)
                if not ended:
                    break
    sock.close()
    if up:
        answer = json.loads(reply or b"{}")
        return {"ok": ended and status == 200 and answer.get("pattern_ok", False) and answer.get("body_length") == n,
                "bytes": answer.get("body_length"), "pod": answer.get("pod"), "status": status}
    return {"ok": ended and status == 200 and ok and seen == n, "bytes": seen}


def main():
    host, port, mode, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    if "--h2" in sys.argv[5:]:
        start = time.monotonic()
        result = h2_transfer(host, port, mode, n)
        result["seconds"] = round(time.monotonic() - start, 3)
        print(json.dumps(result))
        return
    conn = http.client.HTTPConnection(host, port, timeout=120)
    start = time.monotonic()
    result = {"ok": False, "bytes": 0}
    if mode == "up":
        conn.putrequest("PUT", "/bulk")
        conn.putheader("content-length", str(n))
        conn.endheaders()
        for offset in range(0, n, 1 << 20):
            conn.send(piece(offset, min(1 << 20, n - offset)))
        response = conn.getresponse()
        reply = json.loads(response.read() or b"{}")
        result = {"ok": response.status == 200 and reply.get("pattern_ok", False) and reply.get("body_length") == n,
                  "bytes": reply.get("body_length"), "pod": reply.get("pod"), "status": response.status}
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
