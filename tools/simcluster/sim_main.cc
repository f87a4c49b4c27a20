// sluice-sim: the simulated cluster as a command, for the demo and for benchmarks.
//
//   sluice-sim demo [--nodes N] [--bytes B]   build a cluster with the mesh (agent + ztunnel on
//                                             every node), send traffic between pods on two
//                                             nodes through both tunnels over IPv4 and IPv6,
//                                             show what the mesh saw, tear it all down
//   sluice-sim up [--nodes N] [--pods M]      build a cluster and keep it until Ctrl-C / SIGTERM
//   sluice-sim list                           every run on this machine and its objects
//   sluice-sim reap                           remove the objects of runs whose owner is gone
#include <signal.h>
#include <cstdlib>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <optional>
#include <sstream>
#include <thread>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "simcluster/canary_config.h"
#include "simcluster/cluster.h"
#include "simcluster/mesh_controller.h"
#include "simcluster/mesh_node.h"
#include "simcluster/mesh_run.h"
#include "simcluster/playground.h"
#include "sluice/common/log.h"

namespace {

using namespace sluice;
using namespace sluice::sim;

// SIGINT/SIGTERM are blocked and polled between steps, so an interrupted run still unwinds
// through the Cluster destructor and removes everything it made.
sigset_t stopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}
bool stopRequested() {
  sigset_t set = stopSignals();
  timespec zero{0, 0};
  return ::sigtimedwait(&set, nullptr, &zero) > 0;
}

Result<std::unique_ptr<Cluster>> buildCluster(int nodes, int podsPerNode,
                                              const std::vector<std::string>& podNames = {}) {
  auto cluster = Cluster::create({.nodes = nodes});
  if (!cluster) return cluster;
  for (int n = 0; n < nodes; ++n) {
    for (int p = 0; p < podsPerNode; ++p) {
      size_t slot = static_cast<size_t>(n * podsPerNode + p);
      std::string name = slot < podNames.size() ? podNames[slot] : fmt::format("pod{}-{}", n, p);
      auto pod = (*cluster)->addPod(n, name);
      if (!pod) return fail(std::move(pod.error()));
      if (stopRequested()) return fail("interrupted");
    }
  }
  return cluster;
}

// Prints one tunnel's view of its pods: connections and bytes each way, from /config_dump.
void printTunnelCounters(const MeshNode& node, const std::string& nodeName) {
  auto dump = node.configDump();
  if (!dump) {
    fmt::print("  {}: config_dump unavailable: {}\n", nodeName, dump.error().message());
    return;
  }
  for (const auto& pod : (*dump)["pods"]) {
    const auto& c = pod["counters"];
    fmt::print("  ztunnel on {}: pod {}/{}: outbound {} conns {} B up {} B down; inbound {} conns {} B up {} B down\n",
               nodeName, pod["namespace"].get<std::string>(), pod["name"].get<std::string>(),
               c["outbound"]["opened"].get<uint64_t>(), c["outbound"]["bytesFromClient"].get<uint64_t>(),
               c["outbound"]["bytesToClient"].get<uint64_t>(), c["inbound"]["opened"].get<uint64_t>(),
               c["inbound"]["bytesFromClient"].get<uint64_t>(), c["inbound"]["bytesToClient"].get<uint64_t>());
  }
}

// Inbound connections node1's tunnel accepted for web-v1 and web-v2 so far.
std::pair<uint64_t, uint64_t> canaryCounts(const MeshNode& node) {
  uint64_t v1 = 0, v2 = 0;
  if (auto dump = node.configDump()) {
    for (const auto& p : (*dump)["pods"]) {
      uint64_t opened = p["counters"]["inbound"]["opened"].get<uint64_t>();
      if (p["name"] == "web-v1") v1 = opened;
      if (p["name"] == "web-v2") v2 = opened;
    }
  }
  return {v1, v2};
}

// Waits until `node`'s tunnel holds the canary VIP with weights v1/v2.
bool waitForSplit(const MeshNode& node, int v1, int v2) {
  std::string key = std::string(kCanaryVip) + ":80";
  nlohmann::json want = nlohmann::json::array({{{"subset", "v1"}, {"weight", v1}}, {{"subset", "v2"}, {"weight", v2}}});
  for (int i = 0; i < 150; ++i) {
    auto dump = node.configDump();
    if (dump && (*dump)["services"].contains(key) && (*dump)["services"][key]["splits"] == want) return true;
    ::usleep(100000);
  }
  return false;
}

// Routes `connections` new connections from client to the canary VIP with weights v1/v2, and
// prints where they landed.
bool showCanary(const Cluster& cluster, const std::vector<std::unique_ptr<MeshNode>>& mesh, const std::string& configDir,
                int v1, int v2, int connections) {
  if (!writeConfigFile(configDir, "route.yaml", canaryRouteYaml(v1, v2))) return false;
  for (const auto& node : mesh) {
    if (!waitForSplit(*node, v1, v2)) {
      fmt::print(stderr, "sluice-sim demo: the nodes did not receive the {}/{} split\n", v1, v2);
      return false;
    }
  }
  auto [v1Before, v2Before] = canaryCounts(*mesh[1]);
  auto crr = cluster.runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "crr", "--to",
                                                  std::string(kCanaryVip) + ":80", "--count", std::to_string(connections)},
                                         .captureOutput = true});
  if (!crr || !readLine(crr->stdoutPipe(), std::chrono::seconds(120))) return false;
  auto [v1After, v2After] = canaryCounts(*mesh[1]);
  uint64_t a = v1After - v1Before, b = v2After - v2Before;
  fmt::print("  VirtualService web {:>3}/{:<3}: {} connections to {}:80 -> web-v1 {:>4} ({:.1f}%), web-v2 {:>4} ({:.1f}%)\n",
             v1, v2, connections, kCanaryVip, a, 100.0 * a / std::max<uint64_t>(a + b, 1), b,
             100.0 * b / std::max<uint64_t>(a + b, 1));
  return a + b == static_cast<uint64_t>(connections);
}

void printIdentities(const MeshNode& node, const std::string& name) {
  auto dump = node.configDump();
  if (!dump) return;
  fmt::print("{} ztunnel identities:\n", name);
  for (const auto& c : (*dump)["certificates"]) {
    fmt::print("  {}  serial {}  rotates in {} s\n", c["identity"].get<std::string>(), c["serial"].get<std::string>(),
               c["refreshAt"].get<int64_t>() - std::chrono::duration_cast<std::chrono::seconds>(
                                                   std::chrono::system_clock::now().time_since_epoch()).count());
  }
  for (const auto& h : (*dump)["hboneConnections"]) {
    fmt::print("  HBONE {} {} {} ({} streams)\n", h["role"].get<std::string>(), h["peer"].get<std::string>(),
               h["peerIdentity"].get<std::string>(), h["streams"].get<size_t>());
  }
}

// Runs `script` (tests/interop) in the client pod and returns the JSON line it prints, or null.
nlohmann::json clientRun(const Cluster& cluster, const std::string& script, std::vector<std::string> args) {
  std::vector<std::string> argv = {"/usr/bin/python3", std::string(SLUICE_SOURCE_DIR) + "/tests/interop/" + script};
  argv.insert(argv.end(), args.begin(), args.end());
  auto client = cluster.runInPod("client", {.argv = argv, .captureOutput = true});
  if (!client) return nullptr;
  auto line = readLine(client->stdoutPipe(), std::chrono::seconds(120));
  (void)client->wait(std::chrono::seconds(10));
  return nlohmann::json::parse(line.value_or("null"), nullptr, false);
}

// `count` requests from the client pod over one keep-alive connection (python's http.client)
// to the HTTP service; the JSON summary (tests/interop/http_keepalive_client.py), or null.
nlohmann::json keepAliveRequests(const Cluster& cluster, int count, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {kHttpService.vip, "80", std::to_string(count)};
  args.insert(args.end(), extra.begin(), extra.end());
  return clientRun(cluster, "http_keepalive_client.py", std::move(args));
}

// `count` gRPC calls on one channel (grpcio) to the gRPC service (tests/interop/grpc_client.py).
nlohmann::json grpcCalls(const Cluster& cluster, int count, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {std::string(kGrpcService.vip) + ":80", std::to_string(count)};
  args.insert(args.end(), extra.begin(), extra.end());
  return clientRun(cluster, "grpc_client.py", std::move(args));
}

// Starts `script NAME port` (tests/interop) in web-v1 and web-v2 and the L7 service in front
// of them; true once the tunnel routes `x-canary: always` to v2 (`probe` says whether it does).
bool startL7Service(const Cluster& cluster, const std::string& configDir, std::vector<ChildProcess>& apps,
                    const L7Service& service, const std::string& script, const std::function<bool()>& probe) {
  for (const char* pod : {"web-v1", "web-v2"}) {
    auto app = cluster.runInPod(pod, {.argv = {"/usr/bin/python3", "-u", std::string(SLUICE_SOURCE_DIR) + "/tests/interop/" + script,
                                               pod, std::to_string(service.targetPort)},
                                      .captureOutput = true});
    if (!app || !readLine(app->stdoutPipe(), std::chrono::seconds(20))) {
      fmt::print(stderr, "sluice-sim demo: {} in {} did not start\n", script, pod);
      return false;
    }
    apps.push_back(std::move(*app));
  }
  if (!writeConfigFile(configDir, std::string(service.name) + ".yaml", l7CanaryYaml(service, 90, 10))) return false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline && !stopRequested()) {
    if (probe()) return true;
    ::usleep(200000);
  }
  fmt::print(stderr, "sluice-sim demo: {} never routed x-canary to v2\n", service.name);
  return false;
}

// What the app itself sees of a captured connection: getpeername() names the server, not the
// tunnel, and getsockname() its own pod address, not the loopback one the capture bound it to.
bool showAppView(const Cluster& cluster, const std::string& from, const std::string& serverIp, int port) {
  std::string script = "import socket\n"
                       "s=socket.create_connection(('" + serverIp + "', " + std::to_string(port) + "))\n"
                       "print('%s %d %s %d' % (s.getpeername()[:2] + s.getsockname()[:2]))\n";
  auto child = cluster.runInPod(from, {.argv = {"/usr/bin/python3", "-c", script}, .captureOutput = true});
  std::string peer, local;
  int peerPort = 0, localPort = 0;
  if (child) {
    if (auto line = readLine(child->stdoutPipe(), std::chrono::seconds(10))) {
      std::istringstream(*line) >> peer >> peerPort >> local >> localPort;
    }
  }
  const Pod* self = cluster.pod(from);
  bool invisible = peer == serverIp && peerPort == port && self != nullptr && local == self->ipv4;
  fmt::print("  the app in {} sees peer {}:{} and itself at {}:{}: {}\n", from, peer, peerPort, local, localPort,
             invisible ? "the capture is invisible to the app" : "NOT what it would see without the mesh");
  return invisible;
}

// L7: HTTP apps on the web pods behind Service web-http, routed per request by node0's tunnel.
bool showHttpRouting(const Cluster& cluster, const std::string& configDir, std::vector<ChildProcess>& apps) {
  fmt::print("\nL7: Service web-http ({}:80, port named http) routed per request in node0's tunnel: "
             "x-canary: always -> v2, the rest 90/10\n", kHttpService.vip);
  bool started = startL7Service(cluster, configDir, apps, kHttpService, "http_echo_server.py", [&] {
    auto probe = keepAliveRequests(cluster, 1, {"--header", "x-canary:always"});
    return probe.is_object() && probe["pods"].value("web-v2", 0) == 1;
  });
  if (!started) return false;
  nlohmann::json split = keepAliveRequests(cluster, 1000);
  nlohmann::json canary = keepAliveRequests(cluster, 20, {"--header", "x-canary:always"});
  if (!split.is_object() || !canary.is_object()) {
    fmt::print(stderr, "sluice-sim demo: the HTTP client failed\n");
    return false;
  }
  int v1 = split["pods"].value("web-v1", 0), v2 = split["pods"].value("web-v2", 0);
  fmt::print("  1000 requests on {} keep-alive connection(s): web-v1 {} ({:.1f}%), web-v2 {} ({:.1f}%)\n",
             split.value("connections", 0), v1, v1 / 10.0, v2, v2 / 10.0);
  fmt::print("  20 requests with x-canary: always: web-v2 {}\n", canary["pods"].value("web-v2", 0));
  fmt::print("  what the app saw: host {}, traceparent {}\n", split["last"]["headers"].value("host", "?"),
             split["last"]["headers"].value("traceparent", "?"));
  return v1 + v2 == 1000 && v2 >= 50 && v2 <= 150 && canary["pods"].value("web-v2", 0) == 20 && split.value("connections", 0) == 1;
}

// L7 gRPC: grpcio servers on the web pods behind Service web-grpc; the calls of one channel
// spread per call by node0's tunnel, which reports them as Istio request metrics.
bool showGrpcRouting(const Cluster& cluster, const MeshNode& node0, const std::string& configDir,
                     std::vector<ChildProcess>& apps) {
  fmt::print("\nL7 gRPC: Service web-grpc ({}:80, port named grpc): the calls of ONE channel routed per call, "
             "x-canary -> v2, the rest 90/10\n", kGrpcService.vip);
  bool started = startL7Service(cluster, configDir, apps, kGrpcService, "grpc_echo_server.py", [&] {
    auto probe = grpcCalls(cluster, 1, {"--metadata", "x-canary:always"});
    return probe.is_object() && probe["pods"].value("web-v2", 0) == 1;
  });
  if (!started) return false;
  nlohmann::json split = grpcCalls(cluster, 1000);
  if (!split.is_object()) {
    fmt::print(stderr, "sluice-sim demo: the gRPC client failed\n");
    return false;
  }
  int v1 = split["pods"].value("web-v1", 0), v2 = split["pods"].value("web-v2", 0);
  fmt::print("  1000 unary calls on one channel: web-v1 {} ({:.1f}%), web-v2 {} ({:.1f}%), OK {}\n", v1, v1 / 10.0, v2,
             v2 / 10.0, split["codes"].value("OK", 0));
  fmt::print("  node0's istio_requests_total (reporter=source, request_protocol=grpc, grpc_response_status=0):\n");
  for (const char* pod : {"web-v1", "web-v2"}) {
    auto n = node0.metricSum("istio_requests_total",
                             {{"request_protocol", "grpc"}, {"grpc_response_status", "0"}, {"destination_workload", pod}});
    fmt::print("    destination_workload={}  {}\n", pod, n ? fmt::format("{:.0f}", *n) : n.error().message());
  }
  return v1 + v2 == 1000 && v2 >= 50 && v2 <= 150;
}

// Waits (at most 20 s) until node0's /config_dump shows `field` on the service's port 80: the
// configuration just written is in force there.
void waitForServicePolicy(const MeshNode& node0, const L7Service& service, const char* field) {
  std::string key = std::string(service.vip) + ":80";
  auto applied = [&] {
    auto dump = node0.configDump();
    return dump && (*dump)["services"].contains(key) && (*dump)["services"][key].contains(field);
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!applied() && std::chrono::steady_clock::now() < deadline && !stopRequested()) ::usleep(200000);
}

// Outlier detection: web-v2's app on Service web-flaky answers 503 to everything; node0's
// tunnel retries each of those on web-v1 (Istio's default retries), ejects web-v2 after five,
// and every request succeeds.
bool showOutlierDetection(const Cluster& cluster, const MeshNode& node0, const std::string& configDir,
                          std::vector<ChildProcess>& apps) {
  fmt::print("\nOutlier detection: Service web-flaky ({}:80), web-v2's app answers 503 to everything; "
             "DestinationRule outlierDetection: consecutive5xxErrors 5, baseEjectionTime 30s\n", kFlakyService.vip);
  for (const char* pod : {"web-v1", "web-v2"}) {
    std::vector<std::string> argv = {"/usr/bin/python3", "-u", std::string(SLUICE_SOURCE_DIR) + "/tests/interop/http_echo_server.py",
                                     pod, std::to_string(kFlakyService.targetPort)};
    if (std::string(pod) == "web-v2") argv.insert(argv.end(), {"--status", "503"});
    auto app = cluster.runInPod(pod, {.argv = argv, .captureOutput = true});
    if (!app || !readLine(app->stdoutPipe(), std::chrono::seconds(20))) {
      fmt::print(stderr, "sluice-sim demo: the flaky app in {} did not start\n", pod);
      return false;
    }
    apps.push_back(std::move(*app));
  }
  if (!writeConfigFile(configDir, std::string(kFlakyService.name) + ".yaml", outlierDetectionYaml(kFlakyService))) return false;
  waitForServicePolicy(node0, kFlakyService, "outlierDetection");
  nlohmann::json result = clientRun(cluster, "http_keepalive_client.py", {kFlakyService.vip, "80", "1000"});
  if (!result.is_object()) {
    fmt::print(stderr, "sluice-sim demo: the HTTP client failed\n");
    return false;
  }
  int ok = result["statuses"].value("200", 0), failed = result["statuses"].value("503", 0);
  auto retried = node0.metricSum("sluice_retries_total", {{"destination_service", "shop/web-flaky"}});
  fmt::print("  1000 requests on one keep-alive connection: {} answered 200, {} answered 503; node0 retried {} "
             "(web-v2's 503s, on web-v1)\n", ok, failed, retried ? fmt::format("{:.0f}", *retried) : "?");
  auto dump = node0.configDump();
  if (dump && dump->contains("outliers")) {
    for (const auto& e : (*dump)["outliers"]["endpoints"]) {
      fmt::print("  node0 /config_dump: {} host {} ejected={} for {} ms more (ejected {} time(s))\n",
                 e.value("service", "?"), e.value("host", "?"), e.value("ejected", false), e.value("ejectedForMs", 0),
                 e.value("ejections", 0));
    }
  }
  return ok == 1000 && retried && *retried == 5;
}

// Circuit breaking: Service web-limited allows 2 requests in flight (connectionPool); 6 clients
// at once (h2load, HTTP/1.1) get what exceeds it answered 503 UO by node0's tunnel at once.
bool showCircuitBreaking(const Cluster& cluster, const MeshNode& node0, const std::string& configDir) {
  fmt::print("\nCircuit breaking: Service web-limited ({}:80), DestinationRule connectionPool http2MaxRequests 2; "
             "6 HTTP/1.1 clients at once, each request takes 100 ms\n", kLimitedService.vip);
  if (!writeConfigFile(configDir, std::string(kLimitedService.name) + ".yaml", connectionPoolYaml(kLimitedService, 2))) return false;
  waitForServicePolicy(node0, kLimitedService, "connectionPool");
  std::string key = std::string(kLimitedService.vip) + ":80";
  auto load = cluster.runInPod("client", {.argv = {"h2load", "--h1", "-n", "120", "-c", "6",
                                                   "http://" + key + "/slow?ms=100"},
                                          .captureOutput = true});
  std::string summary;
  for (int i = 0; load && i < 200; ++i) {
    auto line = readLine(load->stdoutPipe(), std::chrono::seconds(60));
    if (!line) break;
    if (line->starts_with("status codes:")) summary = *line;
  }
  if (load) (void)load->wait(std::chrono::seconds(10));
  auto overflows = node0.metricSum("sluice_circuit_breaker_overflow_total", {{"destination", "shop/web-limited/"}});
  fmt::print("  h2load, 120 requests: {}\n", summary.empty() ? "no summary" : summary);
  fmt::print("  node0 sluice_circuit_breaker_overflow_total{{destination=\"shop/web-limited/\"}} {}\n",
             overflows ? fmt::format("{:.0f}", *overflows) : overflows.error().message());
  return !summary.empty() && overflows && *overflows > 0;
}

// Local rate limiting: a LocalRateLimit of 5 requests a minute on Service web-limited; node0's
// tunnel answers the rest 429.
bool showLocalRateLimit(const Cluster& cluster, const MeshNode& node0, const std::string& configDir) {
  fmt::print("\nLocal rate limit: LocalRateLimit on Service web-limited, a bucket of 5 tokens refilled each minute; "
             "20 requests on one connection\n");
  if (!writeConfigFile(configDir, "web-limited-rate.yaml", localRateLimitYaml(kLimitedService, 5))) return false;
  waitForServicePolicy(node0, kLimitedService, "localRateLimit");
  nlohmann::json result = clientRun(cluster, "http_keepalive_client.py", {kLimitedService.vip, "80", "20"});
  if (!result.is_object()) {
    fmt::print(stderr, "sluice-sim demo: the HTTP client failed\n");
    return false;
  }
  int ok = result["statuses"].value("200", 0), limited = result["statuses"].value("429", 0);
  fmt::print("  {} answered 200, {} answered 429 (response flag RL in node0's istio_requests_total: {})\n", ok, limited,
             [&] {
               auto n = node0.metricSum("istio_requests_total", {{"response_code", "429"}, {"response_flags", "RL"}});
               return n ? fmt::format("{:.0f}", *n) : n.error().message();
             }());
  return ok == 5 && limited == 15;
}

// Mirroring: Service web-mirrored routes every request to web-v1 and mirrors a quarter of them
// to web-v2; the client sees only web-v1's answers, node0 counts the copies it sent.
bool showMirroring(const Cluster& cluster, const MeshNode& node0, const std::string& configDir) {
  fmt::print("\nMirroring: Service web-mirrored ({}:80), VirtualService route -> v1, mirror -> v2 at 25%; "
             "1000 requests on one connection\n", kMirroredService.vip);
  if (!writeConfigFile(configDir, std::string(kMirroredService.name) + ".yaml", mirrorYaml(kMirroredService, 25))) return false;
  waitForServicePolicy(node0, kMirroredService, "httpRoutes");
  nlohmann::json result = clientRun(cluster, "http_keepalive_client.py", {kMirroredService.vip, "80", "1000"});
  if (!result.is_object()) {
    fmt::print(stderr, "sluice-sim demo: the HTTP client failed\n");
    return false;
  }
  int v1 = result["pods"].value("web-v1", 0);
  auto count = [&](const char* outcome) {
    auto n = node0.metricSum("sluice_mirror_requests_total", {{"destination_service", "shop/web-mirrored"}, {"outcome", outcome}});
    return n ? *n : -1.0;
  };
  // Counted as each copy leaves, before its primary is answered.
  double sent = count("sent");
  fmt::print("  answers from web-v1: {} of 1000; node0 sluice_mirror_requests_total{{destination_service=\"shop/web-mirrored\"}}: "
             "sent {:.0f} ({:.1f}%), dropped {:.0f}, failed {:.0f}\n", v1, sent, sent / 10.0, count("dropped"), count("failed"));
  return v1 == 1000 && sent >= 200 && sent <= 300;
}

// Locality: Service nearby has a pod on node0 (near, beside the client) and one on node1 (far),
// each node a zone; a DestinationRule with outlierDetection puts Istio's locality failover in
// force: everything goes to near until its app stops and it is ejected, then to far.
bool showLocality(const Cluster& cluster, const MeshNode& node0, const std::string& configDir, std::vector<ChildProcess>& apps) {
  fmt::print("\nLocality: Service nearby ({}:80), pods near (node0, zone-node0, beside the client) and far (node1, "
             "zone-node1); DestinationRule outlierDetection (Istio's locality failover)\n", kNearbyService.vip);
  std::optional<ChildProcess> nearApp;  // stopped below (the far one lives as long as the demo's apps)
  for (const char* pod : {"near", "far"}) {
    auto app = cluster.runInPod(pod, {.argv = {"/usr/bin/python3", "-u", std::string(SLUICE_SOURCE_DIR) + "/tests/interop/http_echo_server.py",
                                               pod, std::to_string(kNearbyService.targetPort)},
                                      .captureOutput = true});
    if (!app || !readLine(app->stdoutPipe(), std::chrono::seconds(20))) {
      fmt::print(stderr, "sluice-sim demo: the app in {} did not start\n", pod);
      return false;
    }
    if (std::string(pod) == "near") nearApp = std::move(*app);
    else apps.push_back(std::move(*app));
  }
  if (!writeConfigFile(configDir, std::string(kNearbyService.name) + ".yaml", localityYaml(kNearbyService))) return false;
  waitForServicePolicy(node0, kNearbyService, "locality");
  nlohmann::json before = clientRun(cluster, "http_keepalive_client.py", {kNearbyService.vip, "80", "200"});
  (void)nearApp->stop(std::chrono::seconds(2));
  nlohmann::json after = clientRun(cluster, "http_keepalive_client.py", {kNearbyService.vip, "80", "200"});
  if (!before.is_object() || !after.is_object()) {
    fmt::print(stderr, "sluice-sim demo: the HTTP client failed\n");
    return false;
  }
  fmt::print("  200 requests: near {}, far {}\n", before["pods"].value("near", 0), before["pods"].value("far", 0));
  fmt::print("  near's app stopped; 200 more: near {}, far {}, answered 200: {} (its failed tries retried on far, "
             "then it is ejected)\n", after["pods"].value("near", 0), after["pods"].value("far", 0),
             after["statuses"].value("200", 0));
  return before["pods"].value("near", 0) == 200 && after["pods"].value("far", 0) == 200;
}

// Upgrades: node1's ztunnel is replaced twice (a new one beside it takes every pod over, the
// old one drains and exits) while the client opens new connections to the server without pause.
bool showUpgrade(const Cluster& cluster, MeshNode& node1, const std::string& to) {
  fmt::print("\nTunnel upgrade: node1's ztunnel replaced twice while the client opens new connections to {} "
             "(4 at a time, each echoing a byte)\n", to);
  auto churn = cluster.runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "crr", "--to", to, "--threads", "4",
                                                    "--seconds", "120"},
                                           .captureOutput = true});
  if (!churn) {
    fmt::print(stderr, "sluice-sim demo: {}\n", churn.error().message());
    return false;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  bool upgraded = true;
  for (int i = 0; i < 2 && upgraded; ++i) {
    pid_t before = node1.tunnelPid();
    auto done = node1.upgradeTunnel(std::chrono::seconds(35));
    upgraded = done.has_value();
    if (done) {
      fmt::print("  ztunnel pid {} handed every pod to pid {} and exited\n", before, node1.tunnelPid());
    } else {
      fmt::print(stderr, "sluice-sim demo: upgrade: {}\n", done.error().message());
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  (void)churn->signal(SIGTERM);
  auto line = readLine(churn->stdoutPipe(), std::chrono::seconds(30));
  (void)churn->wait(std::chrono::seconds(10));
  auto result = nlohmann::json::parse(line.value_or("{}"), nullptr, false);
  if (!result.is_object()) {
    fmt::print(stderr, "sluice-sim demo: the connection client printed no result\n");
    return false;
  }
  fmt::print("  {} new connections ({:.0f}/s), {} failed\n", result.value("connections", 0), result.value("per_second", 0.0),
             result.value("failed", -1));
  return upgraded && result.value("failed", -1) == 0 && result.value("connections", 0) > 0;
}

int demo(int nodeCount, uint64_t bytes) {
  // The controller (and CA) runs on node0 and serves every node over the underlay; each node
  // gets a node credential and talks to it over mTLS.
  auto run = startMeshRun(nodeCount);
  if (!run) {
    fmt::print(stderr, "sluice-sim demo: {}\n", run.error().message());
    return 1;
  }
  Cluster& cluster = *run->cluster;
  MeshController* controller = &run->controller;
  std::vector<std::unique_ptr<MeshNode>>& mesh = run->nodes;
  std::string configDir = controller->configDir();
  fmt::print("node0: sluice-controller serving {} on {} (mTLS, CA; no plaintext discovery)\n", configDir,
             controller->secureAddress());
  for (const auto& node : cluster.nodes()) fmt::print("{}: sluice-agent and ztunnel running\n", node->name);
  for (auto [node, name, version] : {std::tuple{0, "client", ""}, std::tuple{1, "server", ""}, std::tuple{1, "web-v1", "v1"},
                                     std::tuple{1, "web-v2", "v2"}, std::tuple{0, "near", ""}, std::tuple{1, "far", ""}}) {
    PodSpec spec{.ns = "shop"};
    if (*version != 0) spec.labels = {{"app", "web"}, {"version", version}};
    if (std::string(name) == "near" || std::string(name) == "far") spec.labels = {{"app", "nearby"}};
    auto pod = cluster.addPod(node, name, spec);
    if (!pod) {
      fmt::print(stderr, "sluice-sim demo: {}\n", pod.error().message());
      return 1;
    }
  }
  printTopology(cluster);
  // The pods as Workloads: the CA issues each its SPIFFE certificate, and mesh destinations are
  // reached over HBONE (mTLS + HTTP/2 CONNECT on 15008).
  if (!writeConfigFile(configDir, "cluster.yaml", canaryClusterYaml(cluster)) || !waitForPodCertificates(cluster, mesh)) {
    fmt::print(stderr, "sluice-sim demo: the pods' certificates did not arrive\n");
    return 1;
  }
  const Pod* server = cluster.pod("server");
  const Pod* client = cluster.pod("client");
  std::vector<ChildProcess> apps;
  for (const char* pod : {"server", "web-v1", "web-v2"}) {
    auto echo = cluster.runInPod(pod, {.argv = {siblingProgram("sluice-tcpcheck"), "serve", "--listen", "[::]:8080"},
                                       .captureOutput = true});
    if (!echo || !readLine(echo->stdoutPipe(), std::chrono::seconds(10))) {
      fmt::print(stderr, "sluice-sim demo: the echo server in {} did not start\n", pod);
      return 1;
    }
    apps.push_back(std::move(*echo));
  }
  fmt::print("\ntraffic: app in client -> eBPF capture -> ztunnel on {} =HBONE (mTLS)=> ztunnel on {} -> app in server\n",
             cluster.node(client->node).name, cluster.node(server->node).name);
  int failures = 0;
  for (const std::string& ip : {server->ipv4, server->ipv6}) {
    if (stopRequested()) return 1;
    std::string to = withPort(ip, 8080);
    auto check = cluster.runInPod("client", {.argv = {siblingProgram("sluice-tcpcheck"), "send", "--to", to,
                                                      "--bytes", std::to_string(bytes)},
                                             .captureOutput = true});
    if (!check) {
      fmt::print(stderr, "sluice-sim demo: {}\n", check.error().message());
      return 1;
    }
    auto line = readLine(check->stdoutPipe(), std::chrono::seconds(60));
    auto code = check->wait(std::chrono::seconds(10));
    auto result = nlohmann::json::parse(line.value_or("{}"), nullptr, false);
    bool ok = code && *code == 0 && result.is_object() && result.value("ok", false);
    failures += ok ? 0 : 1;
    fmt::print("  client -> {}: {} bytes echoed {} in {:.3f} s\n", to, bytes,
               ok ? "byte for byte" : "WITH ERRORS: " + line.value_or("no result"),
               result.is_object() ? result.value("seconds", 0.0) : 0.0);
  }
  if (!showAppView(cluster, "client", server->ipv4, 8080)) ++failures;
  fmt::print("\ncanary: Service web ({}:80) in front of web-v1 and web-v2, split by the controller's VirtualService\n",
             kCanaryVip);
  if (!showCanary(cluster, mesh, configDir, 90, 10, 1000) || !showCanary(cluster, mesh, configDir, 50, 50, 1000)) {
    ++failures;
  }
  if (!showHttpRouting(cluster, configDir, apps)) ++failures;
  if (!showGrpcRouting(cluster, *mesh[0], configDir, apps)) ++failures;
  if (!showOutlierDetection(cluster, *mesh[0], configDir, apps)) ++failures;
  if (!showCircuitBreaking(cluster, *mesh[0], configDir)) ++failures;
  if (!showLocalRateLimit(cluster, *mesh[0], configDir)) ++failures;
  if (!showMirroring(cluster, *mesh[0], configDir)) ++failures;
  if (!showLocality(cluster, *mesh[0], configDir, apps)) ++failures;
  if (!showUpgrade(cluster, *mesh[1], withPort(server->ipv4, 8080))) ++failures;
  fmt::print("\nsluicectl pods (node0):\n");
  if (auto pods = mesh[0]->sluicectl({"pods"})) fmt::print("{}", pods->out);
  fmt::print("\nsluicectl explain --pod shop/client --to {}:\n", withPort(server->ipv4, 8080));
  if (auto why = mesh[0]->sluicectl({"explain", "--pod", "shop/client", "--to", withPort(server->ipv4, 8080)})) {
    fmt::print("{}", why->out);
  }
  fmt::print("\nsluicectl destinations (node0):\n");
  if (auto view = mesh[0]->sluicectl({"destinations"})) fmt::print("{}", view->out);
  fmt::print("\n");
  for (int i = 0; i < nodeCount; ++i) printTunnelCounters(*mesh[static_cast<size_t>(i)], cluster.node(i).name);
  for (int i = 0; i < nodeCount; ++i) printIdentities(*mesh[static_cast<size_t>(i)], cluster.node(i).name);
  mesh.clear();
  apps.clear();
  (void)controller->stop();
  auto done = cluster.destroy();
  if (!done) {
    fmt::print(stderr, "sluice-sim demo: cleanup: {}\n", done.error().message());
    return 1;
  }
  fmt::print("\ncluster {} removed\n", cluster.prefix());
  return failures == 0 ? 0 : 1;
}

int up(int nodes, int pods) {
  auto built = buildCluster(nodes, pods);
  if (!built) {
    fmt::print(stderr, "sluice-sim up: {}\n", built.error().message());
    return 1;
  }
  printTopology(**built);
  fmt::print("running; Ctrl-C or SIGTERM removes it\n");
  std::fflush(stdout);
  sigset_t set = stopSignals();
  int sig = 0;
  ::sigwait(&set, &sig);
  auto done = (*built)->destroy();
  if (!done) {
    fmt::print(stderr, "sluice-sim up: cleanup: {}\n", done.error().message());
    return 1;
  }
  fmt::print("cluster {} removed\n", (*built)->prefix());
  return 0;
}

int list() {
  auto paths = detectSimPaths();
  if (!paths) {
    fmt::print(stderr, "sluice-sim list: {}\n", paths.error().message());
    return 1;
  }
  for (const auto& prefix : listRuns(*paths)) {
    fmt::print("{} {}\n", prefix, runIsLive(*paths, prefix) ? "live" : "dead");
    for (const auto& object : objectsOfRun(*paths, prefix)) fmt::print("  {}\n", object);
  }
  return 0;
}

int reap() {
  auto paths = detectSimPaths();
  if (!paths) {
    fmt::print(stderr, "sluice-sim reap: {}\n", paths.error().message());
    return 1;
  }
  auto reaped = reapStaleRuns(*paths);
  if (!reaped) {
    fmt::print(stderr, "sluice-sim reap: {}\n", reaped.error().message());
    return 1;
  }
  for (const auto& prefix : *reaped) fmt::print("removed {}\n", prefix);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  initLogging("sluice-sim");
  // The mesh daemons this starts log to this terminal: warnings only, unless SLUICE_LOG says.
  ::setenv("SLUICE_LOG", "warn", /*overwrite=*/0);
  sigset_t set = stopSignals();
  ::sigprocmask(SIG_BLOCK, &set, nullptr);

  CLI::App app{"Sluice's simulated multi-node cluster"};
  app.require_subcommand(1);
  int nodes = 2, pods = 2;
  uint64_t bytes = 8 << 20;
  auto* demoCmd = app.add_subcommand("demo", "show pods on different nodes talking, then clean up");
  demoCmd->add_option("--nodes", nodes, "number of nodes")->check(CLI::Range(2, kMaxNodes))->capture_default_str();
  demoCmd->add_option("--bytes", bytes, "bytes each transfer echoes")->capture_default_str();
  auto* upCmd = app.add_subcommand("up", "build a cluster and keep it until interrupted");
  upCmd->add_option("--nodes", nodes, "number of nodes")->check(CLI::Range(1, kMaxNodes))->capture_default_str();
  upCmd->add_option("--pods", pods, "pods per node")->check(CLI::Range(0, 250))->capture_default_str();
  bool withMesh = false;
  upCmd->add_flag("--mesh", withMesh, "the playground: controller, agents and tunnels, pods enrolled (see exec, apply)");
  auto* listCmd = app.add_subcommand("list", "list simulation runs and their objects");
  auto* reapCmd = app.add_subcommand("reap", "remove the objects of dead runs");
  std::optional<std::string> run;
  std::string podName, file;
  std::vector<std::string> command;
  auto* execCmd = app.add_subcommand("exec", "run a command inside a playground pod (its netns and cgroup: captured)");
  execCmd->add_option("--run", run, "the playground's run prefix (default: the newest live one)");
  execCmd->add_option("pod", podName, "the pod's name")->required();
  execCmd->add_option("command", command, "the command and its arguments (after --)")->required();
  auto* applyCmd = app.add_subcommand("apply", "write a configuration file into a playground's controller");
  applyCmd->add_option("--run", run, "the playground's run prefix (default: the newest live one)");
  applyCmd->add_option("file", file, "Istio or Sluice YAML")->required()->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);

  if (::geteuid() != 0) {
    fmt::print(stderr, "sluice-sim: must run as root (it creates network namespaces and cgroups)\n");
    return 1;
  }
  if (demoCmd->parsed()) return demo(nodes, bytes);
  if (upCmd->parsed()) return withMesh ? playgroundUp(nodes, pods) : up(nodes, pods);
  if (execCmd->parsed()) return playgroundExec(run, podName, command);
  if (applyCmd->parsed()) return playgroundApply(run, file);
  if (listCmd->parsed()) return list();
  if (reapCmd->parsed()) return reap();
  return 1;
}
