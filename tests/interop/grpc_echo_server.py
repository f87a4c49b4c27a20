#!/usr/bin/python3
"""A gRPC app for the L7 tests (grpcio, no generated code: messages are raw bytes).
Service sluice.test.Echo:
  Who(bytes)        -> JSON naming this server (the pod), the metadata and the request's length;
                       trailing metadata x-served-by: NAME
  Fail(code name)   -> aborts with that status code (e.g. b"NOT_FOUND")
  Stream(count)     -> `count` JSON messages, server streaming
  Chat(stream)      -> each message back as NAME:message, as it arrives (bidirectional)
Prints "ready" once it listens.

usage: grpc_echo_server.py NAME PORT
"""
import json
import sys
from concurrent import futures

import grpc


def main():
    name, port = sys.argv[1], int(sys.argv[2])

    def who(request, context):
        context.set_trailing_metadata((("x-served-by", name),))
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        return json.dumps({"pod": name, "metadata": metadata, "request_length": len(request)}).encode()

    def fail(request, context):
        code = request.decode()
        context.abort(grpc.StatusCode[code], "asked to fail with " + code)

    def chat(requests, context):
        for message in requests:
            yield name.encode() + b":" + message

    def stream(request, context):
        for i in range(int(request.decode())):
            yield json.dumps({"pod": name, "i": i}).encode()

    handler = grpc.method_handlers_generic_handler("sluice.test.Echo", {
        "Who": grpc.unary_unary_rpc_method_handler(who),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_receive_message_length", 8 << 20)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"[::]:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
