#!/usr/bin/python3
"""Sends COUNT requests over one HTTP/1.1 keep-alive connection (python's http.client, an
independent client) and prints one JSON line: how many went to each pod (from the echo
server's answer), the statuses, how many TCP connections it took (1 when keep-alive held), and
how many distinct peers the servers saw (the upstream connections the requests came over).

usage: http_keepalive_client.py HOST PORT COUNT [--header NAME:VALUE]... [--path PATH]
"""
import argparse
import collections
import http.client
import json


class CountingConnection(http.client.HTTPConnection):
    opened = 0

    def connect(self):
        CountingConnection.opened += 1
        super().connect()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--path", default="/")
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    conn = CountingConnection(args.host, args.port, timeout=30)
    pods = collections.Counter()
    statuses = collections.Counter()
    last = {}
    peers = set()
    for _ in range(args.count):
        conn.request("GET", args.path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        statuses[str(response.status)] += 1
        if response.status == 200:
            last = json.loads(body)
            pods[last["pod"]] += 1
            peers.add(last.get("peer"))
    print(json.dumps({"requests": args.count, "pods": pods, "statuses": statuses,
                      "connections": CountingConnection.opened, "upstream_peers": len(peers), "last": last}),
          flush=True)


if __name__ == "__main__":
    main()
