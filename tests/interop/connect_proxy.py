#!/usr/bin/python3
"""A minimal HTTP/1.1 CONNECT proxy: nghttpx's backend in the nghttpx interop test.

nghttpx in HTTP/2 proxy mode (-s) forwards each CONNECT to its backend as HTTP/1.1; this
answers 200, connects to the target and copies bytes both ways (half-close carried across).
Prints "listening" once bound.
"""
import socket
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(client):
    head = b""
    while b"\r\n\r\n" not in head:
        data = client.recv(4096)
        if not data or len(head) > 16384:
            client.close()
            return
        head += data
    line = head.split(b"\r\n", 1)[0].decode(errors="replace").split()
    if len(line) < 2 or line[0] != "CONNECT":
        client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
        client.close()
        return
    host, port = line[1].rsplit(":", 1)
    try:
        upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
    except OSError:
        client.sendall(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
        client.close()
        return
    client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
    rest = head.split(b"\r\n\r\n", 1)[1]
    if rest:
        upstream.sendall(rest)
    t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    t.start()
    pump(client, upstream)
    t.join()
    client.close()
    upstream.close()


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen(64)
    print("listening", flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client,), daemon=True).start()


if __name__ == "__main__":
    main()
