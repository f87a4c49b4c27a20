// sluicectl: the operator's view of redirection on this node, from the node agent.
//
//   sluicectl status                              programs, attach points, pinned maps, tunnel link
//   sluicectl pods                                every enrolled pod with its counters
//   sluicectl pod NAMESPACE/NAME                  one pod in detail
//   sluicectl trace [--pod NAMESPACE/NAME]        live redirect decisions (Ctrl-C to stop)
//   sluicectl explain --pod NS/NAME --to IP:PORT  would a connect be redirected, and why
// Tables for people by default; -o json for scripts. Exit 0 ok, 1 refused/failed, 2 no agent.
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>

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
  for (const auto& [k, v] : p.value("annotations", json::object()).items()) fmt::print("{:<16} {}={}\n", "annotation", k, v.get<std::string>());
  fmt::print("counters:\n");
  for (const auto& [k, v] : p.value("counters", json::object()).items()) fmt::print("  {:<24} {}\n", k, v.get<uint64_t>());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Inspect Sluice's traffic redirection on this node"};
  app.require_subcommand(1);
  std::string socket = "/run/sluice/agent.sock", output = "table", podKey, to;
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
  CLI11_PARSE(app, argc, argv);
  bool asJson = output == "json";

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
