// sluicectl: the operator's view of redirection on this node, from the node agent.
//
//   sluicectl status                              programs, attach points, pinned maps, tunnel link
//   sluicectl pods                                every enrolled pod with its counters
//   sluicectl pod NAMESPACE/NAME                  one pod in detail
//   sluicectl trace [--pod NAMESPACE/NAME]        live redirect decisions (Ctrl-C to stop)
//   sluicectl explain --pod NS/NAME --to IP:PORT  would a connect be redirected, and why
//   sluicectl destinations                        the node tunnel's view of each service: load
//                                                 balancing, locality, ejected endpoints, circuit
//                                                 breakers, mirrors (from its loopback admin endpoint)
// Tables for people by default; -o json for scripts. Exit 0 ok, 1 refused/failed, 2 no agent
// (or, for destinations, no tunnel).
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <civetweb.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>

#include "sluice/common/socket_address.h"
#include "sluice/common/unix_socket.h"

namespace {

using namespace sluice;
using nlohmann::json;

constexpr int kExitRefused = 1;
constexpr int kExitNoAgent = 2;

struct Session {
  UniqueFd conn;
  std::string buffer;
};

std::optional<Session> connect(const std::string& socket) {
  auto conn = connectUnix(socket, SOCK_STREAM);
  if (!conn) {
    fmt::print(stderr, "sluicectl: cannot reach the node agent at {}: {}\n  is sluice-agent running on this node? "
                       "(--socket selects another agent)\n", socket, conn.error().message());
    return std::nullopt;
  }
  return Session{std::move(*conn), {}};
}

std::optional<json> call(Session& s, const json& request) {
  auto sent = writeAll(s.conn.get(), request.dump() + "\n");
  auto line = sent ? readLineFrom(s.conn.get(), s.buffer, 64 << 20, std::chrono::seconds(30))
                   : Result<std::string>(fail(sent.error()));
  if (!line) {
    fmt::print(stderr, "sluicectl: no answer from the node agent: {}\n", line.error().message());
    return std::nullopt;
  }
  json answer = json::parse(*line, nullptr, false);
  if (answer.is_discarded() || !answer.is_object()) {
    fmt::print(stderr, "sluicectl: the node agent answered something unreadable\n");
    return std::nullopt;
  }
  return answer;
}

std::string str(const json& j, const char* key) {
  if (!j.contains(key)) return "-";
  if (j[key].is_string()) return j[key].get<std::string>();
  return j[key].dump();
}

uint64_t counter(const json& pod, const char* name) {
  if (!pod.contains("counters") || !pod["counters"].contains(name)) return 0;
  return pod["counters"][name].get<uint64_t>();
}

// `j`'s `key` (an object or array; `empty` when absent), kept alive by the caller.
json part(const json& j, const char* key, json empty = json::object()) { return j.contains(key) ? j[key] : empty; }

void printStatus(const json& s) {
  fmt::print("node            {}\n", str(s, "node"));
  fmt::print("tunnel          {}\n", s.value("tunnelConnected", false) ? "connected" : "NOT CONNECTED (new pods cannot start)");
  fmt::print("tunnel replays  {}\n", str(s, "tunnelReplays"));
  fmt::print("pods            {}\n", str(s, "pods"));
  fmt::print("tunnel mark     0x{:x}\n", s.value("tunnelMark", 0u));
  fmt::print("pins            {} ({})\n", str(s, "pinDir"), s.value("adoptedPins", false) ? "adopted at start" : "created at start");
  fmt::print("\n{:<22} {:<48} {}\n", "PROGRAM", "ATTACHED TO", "PIN");
  for (const auto& a : s["attachPoints"]) fmt::print("{:<22} {:<48} {}\n", str(a, "program"), str(a, "target"), str(a, "pin"));
  fmt::print("\n{:<20} {:>9} {:>9}\n", "MAP", "ENTRIES", "MAX");
  for (const auto& m : s["maps"]) fmt::print("{:<20} {:>9} {:>9}\n", str(m, "name"), str(m, "entries"), str(m, "maxEntries"));
}

void printPods(const json& pods) {
  // BYPASSED: connects left alone (loopback, own address, excluded port/CIDR, the tunnel's own).
  fmt::print("{:<32} {:<9} {:<21} {:<32} {:>10} {:>9} {:>9}\n", "POD", "CAPTURE", "NETNS COOKIE", "ADDRESSES",
             "REDIRECTED", "BYPASSED", "INBOUND");
  for (const auto& p : pods) {
    std::string capture = p.value("optedOut", false) ? "opted-out" : p.value("redirect", false) ? "on" : "OFF";
    std::vector<std::string> addrs = p.value("addresses", std::vector<std::string>{});
    uint64_t excluded = counter(p, "excluded_loopback") + counter(p, "excluded_self") + counter(p, "excluded_port") +
                        counter(p, "excluded_cidr") + counter(p, "bypass_mark");
    fmt::print("{:<32} {:<9} {:<21} {:<32} {:>10} {:>9} {:>9}\n", str(p, "namespace") + "/" + str(p, "name"), capture,
               str(p, "netnsCookie"), fmt::format("{}", fmt::join(addrs, ",")), counter(p, "redirected"), excluded,
               counter(p, "inbound_captured"));
  }
}

void printPod(const json& p) {
  for (const char* key : {"namespace", "name", "uid", "serviceAccount", "containerId", "netnsPath", "netnsCookie"}) {
    fmt::print("{:<16} {}\n", key, str(p, key));
  }
  std::vector<std::string> addrs = p.value("addresses", std::vector<std::string>{});
  fmt::print("{:<16} {}\n", "addresses", fmt::join(addrs, ", "));
  if (p.value("optedOut", false)) {
    fmt::print("{:<16} opted out: {}\n", "capture", str(p, "optOutReason"));
    return;
  }
  fmt::print("{:<16} {}\n", "capture", p.value("redirect", false) ? "on" : "OFF");
  // (The objects are kept in locals: a range-for over a temporary's items() would outlive it.)
  const json annotations = part(p, "annotations"), counters = part(p, "counters");
  for (const auto& [k, v] : annotations.items()) fmt::print("{:<16} {}={}\n", "annotation", k, v.get<std::string>());
  fmt::print("counters:\n");
  for (const auto& [k, v] : counters.items()) fmt::print("  {:<24} {}\n", k, v.get<uint64_t>());
}

// The node tunnel's /config_dump, from its admin endpoint (loopback on the node) with
// civetweb's client; null (and a message) when it cannot be read.
std::optional<json> tunnelDump(const std::string& admin) {
  auto address = SocketAddress::parse(admin);
  if (!address || address->port() == 0) {
    fmt::print(stderr, "sluicectl: --admin '{}' is not HOST:PORT (an IP address and a port)\n", admin);
    return std::nullopt;
  }
  std::string host = address->ip();
  mg_init_library(0);
  char error[256] = "";
  mg_connection* conn = mg_download(host.c_str(), address->port(), 0, error, sizeof(error),
                                    "GET /config_dump HTTP/1.0\r\nHost: %s\r\n\r\n", host.c_str());
  if (conn == nullptr) {
    fmt::print(stderr, "sluicectl: cannot reach the tunnel's admin endpoint at {}: {}\n  is ztunnel running on this node? "
                       "(--admin selects another address)\n", admin, error);
    return std::nullopt;
  }
  const mg_response_info* info = mg_get_response_info(conn);
  int status = info != nullptr ? info->status_code : 0;
  std::string body;
  char buf[65536];
  for (int n; body.size() < (64u << 20) && (n = mg_read(conn, buf, sizeof(buf))) > 0;) body.append(buf, static_cast<size_t>(n));
  mg_close_connection(conn);
  json dump = json::parse(body, nullptr, false);
  if (status != 200 || !dump.is_object()) {
    fmt::print(stderr, "sluicectl: the tunnel's admin endpoint answered {} with {} bytes that are not its dump\n", status, body.size());
    return std::nullopt;
  }
  return dump;
}

void printDestinations(const json& dump) {
  fmt::print("{:<28} {:<24} {:>9} {:<16} {}\n", "SERVICE", "ADDRESS", "ENDPOINTS", "LB", "LOCALITY");
  const json services = part(dump, "services");
  for (const auto& [address, s] : services.items()) {
    fmt::print("{:<28} {:<24} {:>9} {:<16} {}\n", str(s, "service"), address, str(s, "endpoints"), str(s, "loadBalancer"),
               s.value("locality", "-"));
  }
  const json endpoints = part(part(dump, "outliers"), "endpoints", json::array());
  fmt::print("\n{:<28} {:<28} {:<9} {:>10} {:>9} {:>12}\n", "OUTLIER DETECTION", "HOST", "EJECTED", "FOR (MS)", "EJECTIONS",
             "5XX STREAK");
  for (const auto& e : endpoints) {
    fmt::print("{:<28} {:<28} {:<9} {:>10} {:>9} {:>12}\n", str(e, "service"), str(e, "host"), e.value("ejected", false) ? "yes" : "no",
               str(e, "ejectedForMs"), str(e, "ejections"), str(e, "consecutive5xx"));
  }
  fmt::print("\n{:<28} {:>11} {:>8} {:>8} {:>8} {:>10}\n", "CIRCUIT BREAKER", "CONNECTIONS", "PENDING", "REQUESTS", "RETRIES",
             "OVERFLOWS");
  const json breakers = part(dump, "circuitBreakers");
  for (const auto& [destination, b] : breakers.items()) {
    const json open = part(b, "open"), overflowsBy = part(b, "overflows");
    uint64_t overflows = 0;
    for (const auto& [_, n] : overflowsBy.items()) overflows += n.get<uint64_t>();
    fmt::print("{:<28} {:>11} {:>8} {:>8} {:>8} {:>10}\n", destination, str(open, "connections"), str(open, "pending_requests"),
               str(open, "requests"), str(open, "retries"), overflows);
  }
  fmt::print("\n{:<28} {:>8} {:>8} {:>8} {:>8}\n", "MIRROR", "SENT", "DROPPED", "FAILED", "ACTIVE");
  const json mirrors = part(dump, "mirrors");
  for (const auto& [destination, m] : mirrors.items()) {
    fmt::print("{:<28} {:>8} {:>8} {:>8} {:>8}\n", destination, str(m, "sent"), str(m, "dropped"), str(m, "failed"), str(m, "active"));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Inspect Sluice's traffic redirection on this node"};
  app.require_subcommand(1);
  std::string socket = "/run/sluice/agent.sock", output = "table", podKey, to, admin = "127.0.0.1:15000";
  app.add_option("--socket", socket, "the node agent's control socket")->capture_default_str();
  app.add_option("-o,--output", output, "table or json")->check(CLI::IsMember({"table", "json"}))->capture_default_str();
  auto* status = app.add_subcommand("status", "programs, attach points, maps, tunnel link");
  auto* pods = app.add_subcommand("pods", "enrolled pods and their counters");
  auto* pod = app.add_subcommand("pod", "one pod in detail");
  pod->add_option("pod", podKey, "NAMESPACE/NAME")->required();
  auto* trace = app.add_subcommand("trace", "live redirect decisions");
  trace->add_option("--pod", podKey, "only this pod (NAMESPACE/NAME)");
  auto* explain = app.add_subcommand("explain", "would a connect from a pod be redirected, and why");
  explain->add_option("--pod", podKey, "NAMESPACE/NAME")->required();
  explain->add_option("--to", to, "destination IP:PORT ([IPv6]:PORT)")->required();
  auto* destinations = app.add_subcommand("destinations", "the node tunnel's destinations: locality, ejections, breakers, mirrors");
  destinations->add_option("--admin", admin, "the tunnel's admin endpoint (loopback)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  bool asJson = output == "json";

  if (destinations->parsed()) {
    auto dump = tunnelDump(admin);
    if (!dump) return kExitNoAgent;
    if (asJson) {
      json view{{"services", part(*dump, "services")}, {"outliers", part(*dump, "outliers")},
                {"circuitBreakers", part(*dump, "circuitBreakers")}, {"mirrors", part(*dump, "mirrors")}};
      std::cout << view.dump(2) << std::endl;
    } else {
      printDestinations(*dump);
    }
    return 0;
  }

  auto session = connect(socket);
  if (!session) return kExitNoAgent;

  json request;
  if (status->parsed()) request = {{"op", "status"}};
  if (pods->parsed()) request = {{"op", "pods"}};
  if (pod->parsed()) request = {{"op", "pod"}, {"pod", podKey}};
  if (explain->parsed()) request = {{"op", "explain"}, {"pod", podKey}, {"to", to}};
  if (trace->parsed()) {
    request = {{"op", "trace"}};
    if (!podKey.empty()) request["pod"] = podKey;
  }
  auto answer = call(*session, request);
  if (!answer) return kExitNoAgent;
  if (!answer->value("ok", false)) {
    fmt::print(stderr, "sluicectl: {}\n", answer->value("error", "the agent refused the request"));
    return kExitRefused;
  }
  if (trace->parsed()) {
    if (!asJson) fmt::print(stderr, "tracing {} (Ctrl-C to stop)\n", str(*answer, "tracing"));
    for (;;) {
      auto line = readLineFrom(session->conn.get(), session->buffer, 1 << 20, std::chrono::milliseconds(-1));
      if (!line) return 0;
      json e = json::parse(*line, nullptr, false);
      if (e.is_discarded() || !e.contains("event")) continue;
      if (asJson) {
        std::cout << e["event"].dump() << std::endl;
        continue;
      }
      const json& ev = e["event"];
      std::string pid = str(ev, "pid"), comm = str(ev, "comm");
      fmt::print("{:<10} {:<28} {:<22} {:<28} {}\n", str(ev, "hook"), str(ev, "pod"), str(ev, "decision"),
                 (ev.contains("src") ? str(ev, "src") + " -> " : std::string()) + str(ev, "dst"),
                 pid + "/" + comm);
      std::fflush(stdout);
    }
  }
  if (asJson) {
    json body = *answer;
    body.erase("ok");
    std::cout << (body.size() == 1 ? body.begin().value() : body).dump(2) << std::endl;
    return 0;
  }
  if (status->parsed()) printStatus((*answer)["status"]);
  if (pods->parsed()) printPods((*answer)["pods"]);
  if (pod->parsed()) printPod((*answer)["pod"]);
  if (explain->parsed()) {
    const json& v = (*answer)["explain"];
    fmt::print("{} -> {}: {}\n  reason: {}\n  why: {}\n", str(v, "pod"), str(v, "to"),
               v.value("redirected", false) ? "REDIRECTED to the tunnel" : "not redirected", str(v, "reason"), str(v, "why"));
  }
  return 0;
}
