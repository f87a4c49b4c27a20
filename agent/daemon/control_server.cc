#include "daemon/control_server.h"

#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <poll.h>

#include <fmt/format.h>

#include "daemon/explain.h"
#include "sluice/common/unix_socket.h"
#include "sluice_capture.h"

namespace sluice::agent {
using nlohmann::json;

namespace {

json error(std::string message) { return json{{"ok", false}, {"error", std::move(message)}}; }

// The string field `name`, or nullopt when absent or not a string.
std::optional<std::string> stringField(const json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_string()) return std::nullopt;
  return j[name].get<std::string>();
}

Result<CniPodRequest> cniRequest(const json& j) {
  CniPodRequest r;
  auto command = stringField(j, "command");
  if (!command || (*command != "ADD" && *command != "DEL" && *command != "CHECK")) {
    return fail("\"command\" must be ADD, DEL or CHECK");
  }
  r.command = *command;
  auto containerId = stringField(j, "containerId");
  if (!containerId || containerId->empty()) return fail("\"containerId\" is required");
  r.containerId = *containerId;
  r.netnsPath = stringField(j, "netns").value_or("");
  r.ns = stringField(j, "namespace").value_or("");
  r.name = stringField(j, "name").value_or("");
  r.uid = stringField(j, "uid").value_or("");
  if (j.contains("addresses")) {
    if (!j["addresses"].is_array()) return fail("\"addresses\" must be a list");
    for (const auto& a : j["addresses"]) {
      if (!a.is_string()) return fail("\"addresses\" must hold strings");
      r.addresses.push_back(a.get<std::string>());
    }
  }
  if (r.command == "ADD" && r.netnsPath.empty()) return fail("\"netns\" is required for ADD");
  return r;
}

// "10.0.0.1:80" or "[fd00::1]:80" from the 16-byte (v4-mapped) form the BPF side reports.
std::string endpointText(const uint8_t* a, uint16_t family, uint16_t port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET) {
    ::inet_ntop(AF_INET, a + 12, text, sizeof(text));
    return fmt::format("{}:{}", text, port);
  }
  ::inet_ntop(AF_INET6, a, text, sizeof(text));
  return fmt::format("[{}]:{}", text, port);
}

const char* hookName(uint16_t hook) {
  switch (hook) {
    case SLUICE_HOOK_CONNECT4: return "connect4";
    case SLUICE_HOOK_CONNECT6: return "connect6";
    case SLUICE_HOOK_SK_LOOKUP: return "sk_lookup";
    default: return "unknown";
  }
}

struct TraceContext {
  Agent* agent;
  int connection;
  std::string podFilter;
  bool clientGone = false;
};

int onTraceEvent(void* raw, void* data, size_t size) {
  auto* ctx = static_cast<TraceContext*>(raw);
  if (size < sizeof(sluice_trace_event)) return 0;
  sluice_trace_event e;
  std::memcpy(&e, data, sizeof(e));
  std::string pod = ctx->agent->podKeyByCookie(e.netns_cookie);
  if (!ctx->podFilter.empty() && pod != ctx->podFilter) return 0;
  json event{{"timeNs", e.timestamp_ns},
             {"pod", pod},
             {"netnsCookie", e.netns_cookie},
             {"hook", hookName(e.hook)},
             {"decision", reasonName(e.reason)},
             {"pid", e.pid},
             {"comm", std::string(e.comm, strnlen(e.comm, sizeof(e.comm)))},
             {"dst", endpointText(e.dst, e.family, e.dst_port)}};
  if (e.hook == SLUICE_HOOK_SK_LOOKUP) {
    event["src"] = endpointText(e.src, e.family, e.src_port);
  }
  if (!writeAll(ctx->connection, json{{"event", event}}.dump() + "\n")) ctx->clientGone = true;
  return 0;
}

void streamTrace(Agent& agent, int connection, const std::string& podFilter, const std::atomic<bool>& stopping) {
  TraceContext ctx{&agent, connection, podFilter};
  ring_buffer* rb = ring_buffer__new(agent.traceRingFd(), onTraceEvent, &ctx, nullptr);
  if (rb == nullptr) {
    (void)writeAll(connection, error("cannot open the trace ring buffer").dump() + "\n");
    return;
  }
  agent.traceSubscribe();
  (void)writeAll(connection, json{{"ok", true}, {"tracing", podFilter.empty() ? "all pods" : podFilter}}.dump() + "\n");
  while (!stopping && !ctx.clientGone) {
    ring_buffer__poll(rb, 100);
    pollfd pfd{connection, POLLRDHUP, 0};
    if (::poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) break;
  }
  agent.traceUnsubscribe();
  ring_buffer__free(rb);
}

}  // namespace

json handleRequest(Agent& agent, const json& request) {
  auto op = stringField(request, "op");
  if (!op) return error("request has no \"op\"");
  if (*op == "cni") {
    auto r = cniRequest(request);
    if (!r) return error(r.error().message());
    Status done = r->command == "ADD" ? agent.addPod(*r) : r->command == "DEL" ? agent.delPod(*r) : agent.checkPod(*r);
    if (!done) return error(done.error().message());
    return json{{"ok", true}};
  }
  if (*op == "status") return json{{"ok", true}, {"status", agent.status()}};
  if (*op == "pods") return json{{"ok", true}, {"pods", agent.pods()}};
  if (*op == "pod" || *op == "explain") {
    auto key = stringField(request, "pod");
    if (!key || key->find('/') == std::string::npos) return error("\"pod\" must be NAMESPACE/NAME");
    if (*op == "pod") {
      auto pod = agent.pod(*key);
      if (!pod) return error(pod.error().message());
      return json{{"ok", true}, {"pod", *pod}};
    }
    auto toText = stringField(request, "to");
    if (!toText) return error("\"to\" must be ADDRESS:PORT");
    auto to = SocketAddress::parse(*toText);
    if (!to) return error("\"to\": " + to.error().message());
    auto verdict = agent.explain(*key, *to);
    if (!verdict) return error(verdict.error().message());
    return json{{"ok", true}, {"explain", *verdict}};
  }
  return error(fmt::format("unknown op \"{}\"", *op));
}

void serveControlConnection(Agent& agent, int connection, const std::atomic<bool>& stopping) {
  std::string buffer;
  auto line = readLineFrom(connection, buffer, kMaxRequestBytes, std::chrono::seconds(10));
  if (!line) {
    (void)writeAll(connection, error(line.error().message()).dump() + "\n");
    return;
  }
  json request = json::parse(*line, nullptr, false);
  if (request.is_discarded() || !request.is_object()) {
    (void)writeAll(connection, error("request is not a JSON object").dump() + "\n");
    return;
  }
  if (stringField(request, "op") == "trace") {
    std::string pod = stringField(request, "pod").value_or("");
    streamTrace(agent, connection, pod, stopping);
    return;
  }
  (void)writeAll(connection, handleRequest(agent, request).dump() + "\n");
}

}  // namespace sluice::agent
