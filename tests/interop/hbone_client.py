#!/usr/bin/python3
"""An independent HBONE client: Python's ssl (TLS 1.3, ALPN h2) and the python3-h2 library.

Opens one HTTP/2 CONNECT stream to --authority through --connect (a pod's ip:15008), sends
--payload, half-closes, and reads the tunnelled reply until the stream ends. Prints one JSON
line: {"status": 200, "received": "...", "peer": "<server's URI SAN>"} or {"error": "..."}.
Exit 0 when a response arrived (whatever its status), 2 on a TLS or connection failure.
"""
import argparse
import json
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--connect", required=True, help="ip:port of the HBONE server")
    p.add_argument("--authority", required=True, help="CONNECT target ip:port")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca", required=True)
    p.add_argument("--payload", default="")
    p.add_argument("--timeout", type=float, default=10)
    a = p.parse_args()

    host, port = a.connect.rsplit(":", 1)
    host = host.strip("[]")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(a.ca)
    ctx.check_hostname = False  # SPIFFE: identities are URI SANs, checked below
    ctx.set_alpn_protocols(["h2"])
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    try:
        raw = socket.create_connection((host, int(port)), timeout=a.timeout)
        tls = ctx.wrap_socket(raw)  # no server_hostname: no SNI, as HBONE
        peer = tls.getpeercert()
        uris = [v for (k, v) in peer.get("subjectAltName", ()) if k == "URI"]
        if tls.selected_alpn_protocol() != "h2":
            raise ssl.SSLError("ALPN h2 not negotiated")
        # Plain CONNECT (RFC 9113 8.5) has no :scheme or :path, which h2 would otherwise insist on.
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, validate_outbound_headers=False))
        conn.initiate_connection()
        tls.sendall(conn.data_to_send())
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, [(":method", "CONNECT"), (":authority", a.authority)])
        tls.sendall(conn.data_to_send())
        status, received, sent, ended = None, b"", False, False
        while not ended:
            data = tls.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                    if status == 200 and not sent:
                        conn.send_data(stream, a.payload.encode(), end_stream=True)
                        sent = True
                elif isinstance(event, h2.events.DataReceived):
                    received += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended = True
            tls.sendall(conn.data_to_send())
        print(json.dumps({"status": status, "received": received.decode(errors="replace"), "peer": uris[0] if uris else ""}))
        return 0
    except (OSError, ssl.SSLError) as e:
        print(json.dumps({"error": str(e)}))
        return 2


if __name__ == "__main__":
    sys.exit(main())
