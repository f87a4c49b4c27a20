#!/usr/bin/python3
"""A gRPC client for the L7 tests (grpcio): makes calls on ONE channel (one HTTP/2
connection) and prints a JSON summary: {"pods": {pod: n}, "codes": {code: n},
"last": {reply of the last Who call}, "trailers": {trailing metadata of the last call},
"details": last error's details, "streamed": messages received by Stream}.

usage: grpc_client.py HOST:PORT COUNT [--method Who|Fail|Stream|Chat|/full/Name] [--payload N]
                      [--request TEXT] [--metadata key:value]...
"""
import argparse
import collections
import json
import queue

import grpc


def main():
    p = argparse.ArgumentParser()
    p.add_argument("target")
    p.add_argument("count", type=int)
    p.add_argument("--method", default="Who")
    p.add_argument("--payload", type=int, default=0)
    p.add_argument("--request", default="")
    p.add_argument("--metadata", action="append", default=[])
    a = p.parse_args()
    path = a.method if a.method.startswith("/") else "/sluice.test.Echo/" + a.method
    metadata = [tuple(m.split(":", 1)) for m in a.metadata]
    request = a.request.encode() if a.request else b"x" * a.payload
    # No proxy from the environment, one connection for every call.
    channel = grpc.insecure_channel(a.target, options=[("grpc.enable_http_proxy", 0),
                                                       ("grpc.max_receive_message_length", 8 << 20)])
    pods, codes = collections.Counter(), collections.Counter()
    out = {"last": {}, "trailers": {}, "details": "", "streamed": 0}
    for _ in range(a.count):
        try:
            if a.method == "Chat":
                # Bidirectional: one message out, its echo back, before the next goes out.
                outbox = queue.Queue()
                call = channel.stream_stream(path)(iter(outbox.get, None), metadata=metadata, timeout=20)
                for i in range(int(a.request or "10")):
                    sent = b"m%d-" % i + b"z" * a.payload
                    outbox.put(sent)
                    reply = next(call)
                    pod, _, echoed = reply.partition(b":")
                    if echoed != sent:
                        raise SystemExit(f"chat echo {i} differs")
                    out["streamed"] += 1
                    pods[pod.decode()] += 1
                outbox.put(None)
                for _ in call:
                    pass
                trailers = call.trailing_metadata()
            elif a.method == "Stream":
                call = channel.unary_stream(path)(request, metadata=metadata, timeout=20)
                for message in call:
                    out["streamed"] += 1
                    pods[json.loads(message)["pod"]] += 1
                trailers = call.trailing_metadata()
            else:
                reply, call = channel.unary_unary(path).with_call(request, metadata=metadata, timeout=20)
                out["last"] = json.loads(reply)
                pods[out["last"]["pod"]] += 1
                trailers = call.trailing_metadata()
            out["trailers"] = {k: v for k, v in trailers or () if isinstance(v, str)}
            codes["OK"] += 1
        except grpc.RpcError as e:
            codes[e.code().name] += 1
            out["details"] = e.details()
    out["pods"], out["codes"] = dict(pods), dict(codes)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
