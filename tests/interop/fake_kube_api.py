#!/usr/bin/python3
"""A fake Kubernetes API server for the controller's list/watch client tests.

It follows the documented protocol per resource path: list (paged with `continue`) and watch
(`watch=1`, JSON events one per line over chunked encoding), and plays a scenario:

  {"resources": {"/api/v1/pods": {
     "lists":   [{"status": 200, "resourceVersion": "10", "items": [...], "continue": ""}, ...],
     "watches": [{"status": 200, "lines": ["<event json or garbage>", ...], "end": "close"|"hold"},
                 {"status": 410}, {"status": 500}, ...]}, ...}}
  (or one resource: {"path": "/api/v1/pods", "lists": [...], "watches": [...]})
  and single objects: {"objects": {"/api/v1/namespaces/shop/pods/web-1": {...}}} (GET returns it)

Each list or watch request of a path takes the next entry of its list (the last one repeats
for lists; after the last watch every watch holds until the client goes). A path the scenario
does not name is 404, as for a CustomResourceDefinition that is not installed. A request without
`Authorization: Bearer <token>` gets 401. Every request is appended to --log as a JSON line
(path, query, time). Prints "listening <port>" when ready. HTTPS with --cert/--key.
"""
import argparse
import json
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--scenario", required=True)
parser.add_argument("--log", required=True)
parser.add_argument("--cert", required=True)
parser.add_argument("--key", required=True)
parser.add_argument("--token", required=True)
args = parser.parse_args()

with open(args.scenario) as f:
    scenario = json.load(f)
resources = scenario.get("resources") or ({scenario["path"]: scenario} if "path" in scenario else {})
objects = scenario.get("objects", {})
lock = threading.Lock()
state = {path: {"lists": 0, "watches": 0} for path in resources}


def status_body(code, reason, message):
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                       "reason": reason, "message": message}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_whole(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        with lock, open(args.log, "a") as log:
            log.write(json.dumps({"path": url.path, "query": {k: v[0] for k, v in query.items()},
                                  "time": time.monotonic()}) + "\n")
        if self.headers.get("Authorization") != "Bearer " + args.token:
            return self.send_whole(401, status_body(401, "Unauthorized", "Unauthorized"))
        if url.path in objects:
            return self.send_whole(200, json.dumps(objects[url.path]).encode())
        if url.path not in resources:
            return self.send_whole(404, status_body(404, "NotFound", "the server could not find the requested resource"))
        resource, counts = resources[url.path], state[url.path]
        if query.get("watch", ["0"])[0] in ("1", "true"):
            return self.watch(resource, counts)
        with lock:
            entry = resource["lists"][min(counts["lists"], len(resource["lists"]) - 1)]
            counts["lists"] += 1
        if entry.get("status", 200) != 200:
            return self.send_whole(entry["status"], status_body(entry["status"], "Failure", "scripted"))
        body = {"kind": "List", "apiVersion": "v1",
                "metadata": {"resourceVersion": entry["resourceVersion"], "continue": entry.get("continue", "")},
                "items": entry["items"]}
        self.send_whole(200, json.dumps(body).encode())

    def watch(self, resource, counts):
        with lock:
            index = counts["watches"]
            counts["watches"] += 1
        watches = resource.get("watches", [])
        entry = watches[index] if index < len(watches) else {"status": 200, "lines": [], "end": "hold"}
        if entry.get("status", 200) != 200:
            code = entry["status"]
            return self.send_whole(code, status_body(code, "Expired" if code == 410 else "Failure", "scripted"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in entry.get("lines", []):
                self.chunk(line.encode() + b"\n")
            if entry.get("end", "close") == "hold":
                while True:  # until the client goes
                    time.sleep(0.2)
                    self.chunk(b"\n")  # a keep-alive byte, as an idle stream would not send;
                    # it lets the server notice a closed connection
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        self.close_connection = True


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(args.cert, args.key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("listening", server.server_address[1], flush=True)
server.serve_forever()
