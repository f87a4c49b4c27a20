// sluice-bench: the mesh's data path against the direct path, in one run, as ratios.
//
//   sluice-bench [--seconds 3] [--repeat 3]
//
// One simulated 2-node cluster with the mesh running; four pods:
//   c-direct (node0), s-direct (node1)   opted out: the baseline path, no tunnel
//   c-mesh   (node0), s-mesh   (node1)   enrolled; s-mesh is not a mesh Workload: plaintext
//   s-mtls   (node1)                     enrolled and a Workload: reached over HBONE (mTLS)
// The controller (with its CA) runs on node0; c-mesh and s-mtls get SPIFFE certificates.
// Paths: direct (c-direct -> s-direct), one tunnel (c-mesh -> s-direct: node0's ztunnel only),
// two tunnels plaintext (c-mesh -> s-mesh), two tunnels mTLS (c-mesh -> s-mtls: HBONE, TLS 1.3
// + HTTP/2 CONNECT between the tunnels), and the peer of ../shared/PERF.md in the same run:
// haproxy, two L4 proxies speaking TLS 1.3 mTLS between the direct pods (c-direct's haproxy on
// 127.0.0.1:2<port> originates to s-direct's haproxy on 1<port>, which forwards to the app;
// a full handshake per connection, as peerbench runs it). Metrics (median of --repeat runs):
// single-stream and 4-stream throughput (iperf3), 1-byte ping-pong p50/p99 (sluice-tcpcheck),
// new connections per second with a 1-byte echo each (TCP_CRR), and the CPU both ztunnels
// used per second of the run; then HTTP/1.1 rows (runHttpRows: wrk against a static answer,
// direct vs the mesh's L7 vs haproxy in mode http with mTLS). Absolute numbers on shared VMs
// move; the ratios are the result.
#include <signal.h>
#include <cstdlib>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "simcluster/canary_config.h"
#include "simcluster/mesh_controller.h"
#include "simcluster/mesh_node.h"
#include "simcluster/mesh_run.h"
#include "sluice/common/log.h"

using namespace sluice;
using namespace sluice::sim;
using nlohmann::json;

namespace {

// utime + stime of a process in seconds.
double cpuSeconds(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return double(utime + stime) / double(::sysconf(_SC_CLK_TCK));
}

struct Sample {
  double value = 0;
  double tunnelCpu = 0;  // cores used by both ztunnels during the run
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

class Bench {
 public:
  Bench(Cluster& cluster, std::vector<std::unique_ptr<MeshNode>>& mesh) : cluster_(cluster), mesh_(mesh) {}

  // Runs `argv` in `pod`, returns its stdout's JSON (the last JSON line) and the tunnels' CPU.
  std::optional<std::pair<json, double>> runJson(const std::string& pod, std::vector<std::string> argv,
                                                 std::chrono::seconds timeout) {
    auto res = runText(pod, std::move(argv), timeout);
    if (!res) return std::nullopt;
    const std::string& text = res->first;
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) {
      size_t last = text.rfind("\n{");
      j = json::parse(last == std::string::npos ? text : text.substr(last + 1), nullptr, false);
    }
    if (j.is_discarded()) return std::nullopt;
    return std::make_pair(j, res->second);
  }

  // Runs `argv` in `pod`, returns its stdout and the cores both tunnels used meanwhile.
  std::optional<std::pair<std::string, double>> runText(const std::string& pod, std::vector<std::string> argv,
                                                        std::chrono::seconds timeout) {
    double cpuBefore = 0;
    for (auto& m : mesh_) cpuBefore += cpuSeconds(m->tunnelPid());
    auto wallStart = std::chrono::steady_clock::now();
    auto out = cluster_.runInPod(pod, {.argv = argv, .captureOutput = true});
    if (!out) return std::nullopt;
    std::string text;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(out->stdoutPipe().get(), buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
    auto code = out->wait(timeout);
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart).count();
    double cpuAfter = 0;
    for (auto& m : mesh_) cpuAfter += cpuSeconds(m->tunnelPid());
    if (!code || *code != 0) {
      fmt::print(stderr, "  {} in {} failed: {}\n", argv[0], pod, text.substr(0, 300));
      return std::nullopt;
    }
    return std::make_pair(text, (cpuAfter - cpuBefore) / wall);
  }

  Cluster& cluster_;
  std::vector<std::unique_ptr<MeshNode>>& mesh_;
};

struct Path {
  const char* name;
  const char* client;
  const char* server;
  bool viaLocalProxy = false;  // connect to 127.0.0.1:2<port> in the client pod (the haproxy peer)
};

constexpr int kHttpAppPort = 8090;  // the HTTP rows' app (haproxy answering itself)
constexpr const char* kBenchHttpVip = "10.96.0.20";

// The haproxy peer: configurations as ../shared/peerbench/03_proxies.sh writes them, with
// certificates from the mesh's CA (haproxy verifies the chain; SPIFFE names have no host name
// to check, so verifyhost is left out).
Result<std::vector<ChildProcess>> startHaproxyPeer(const Cluster& cluster, const MeshController& controller) {
  std::string dir = cluster.node(0).stateDir + "/haproxy";
  for (const char* who : {"client", "server"}) {
    SLUICE_TRY(controller.issueCertificate(fmt::format("spiffe://cluster.local/ns/bench/sa/haproxy-{}", who),
                                           dir + "/" + who),
               "haproxy certificate");
    std::ifstream cert(dir + "/" + who + "/cert.pem"), key(dir + "/" + who + "/key.pem");
    std::ofstream pem(dir + "/" + who + ".pem");
    pem << cert.rdbuf() << key.rdbuf();
  }
  std::string ca = dir + "/client/root-cert.pem";
  std::string common =
      "global\n  nbthread 1\n  maxconn 9000\ndefaults\n  mode tcp\n  timeout connect 5s\n"
      "  timeout client 300s\n  timeout server 300s\n";
  std::string a = common, b = common;
  std::string server = cluster.pod("s-direct")->ipv4;
  for (int port : {5201, 8080, kHttpAppPort}) {
    // The HTTP app's port is proxied in mode http (the peer of the L7 rows), the others in tcp.
    std::string mode = port == kHttpAppPort ? "  mode http\n" : "";
    a += fmt::format("frontend a{0}\n{4}  bind 127.0.0.1:2{0}\n  default_backend a{0}\nbackend a{0}\n{4}"
                     "  server b {1}:1{0} ssl crt {2}/client.pem ca-file {3} verify required ssl-min-ver TLSv1.3 no-ssl-reuse\n",
                     port, server, dir, ca, mode);
    b += fmt::format("frontend b{0}\n{4}  bind {1}:1{0} ssl crt {2}/server.pem ca-file {3} verify required ssl-min-ver TLSv1.3\n"
                     "  default_backend b{0}\nbackend b{0}\n{4}  server s 127.0.0.1:{0}\n",
                     port, server, dir, ca, mode);
  }
  std::ofstream(dir + "/a.cfg") << a;
  std::ofstream(dir + "/b.cfg") << b;
  std::vector<ChildProcess> out;
  for (auto [pod, cfg] : {std::pair{"s-direct", "/b.cfg"}, std::pair{"c-direct", "/a.cfg"}}) {
    SLUICE_TRY_ASSIGN(proxy, cluster.runInPod(pod, {.argv = {"haproxy", "-db", "-f", dir + cfg}}));
    out.push_back(std::move(proxy));
  }
  ::usleep(500000);  // haproxy binds asynchronously
  return out;
}

// HTTP/1.1 rows: wrk (keep-alive, 16 connections) against a static answer served by haproxy
// in the server pod, over three paths: direct (c-direct -> s-direct), the mesh's L7 (c-mesh ->
// Service bench-http's VIP, port named http: routed per request in node0's tunnel, HBONE mTLS
// to s-mtls) and the peer, two haproxies in mode http speaking TLS 1.3 mTLS (c-direct ->
// 127.0.0.1:28090 -> s-direct:18090 -> app). Requests per second, p50 and p99 latency.
std::string benchHttpYaml() {
  return fmt::format("apiVersion: v1\nkind: Service\nmetadata: {{name: bench-http, namespace: default}}\n"
                     "spec: {{clusterIP: {}, selector: {{app: bench-http}}, ports: [{{name: http, port: 80, targetPort: {}}}]}}\n",
                     kBenchHttpVip, kHttpAppPort);
}

// The app: haproxy answering every request itself (a server that costs next to nothing, so
// the paths are what is measured).
Result<ChildProcess> startHttpApp(const Cluster& cluster, const std::string& pod) {
  std::string dir = cluster.node(0).stateDir + "/http-app";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/app.cfg") << fmt::format(
      "global\n  nbthread 1\n  maxconn 9000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 300s\n"
      "  timeout server 300s\nfrontend app\n  bind [::]:{}\n"
      "  http-request return status 200 content-type text/plain string ok\n",
      kHttpAppPort);
  return cluster.runInPod(pod, {.argv = {"haproxy", "-db", "-f", dir + "/app.cfg"}});
}

struct WrkResult {
  double perSecond = 0, p50Us = 0, p99Us = 0;
};

// wrk's requests per second, p50 and p99 (us) from its --latency report.
std::optional<WrkResult> parseWrk(const std::string& text) {
  auto value = [&](const std::string& label) -> std::optional<std::string> {
    size_t at = text.find(label);
    if (at == std::string::npos) return std::nullopt;
    std::istringstream in(text.substr(at + label.size()));
    std::string v;
    in >> v;
    return v;
  };
  auto micros = [](const std::string& v) {
    double latency = std::strtod(v.c_str(), nullptr);
    if (v.ends_with("us")) return latency;
    if (v.ends_with("ms")) return latency * 1000;
    if (v.ends_with("s")) return latency * 1e6;
    return latency;
  };
  auto rps = value("Requests/sec:");
  auto p50 = value(" 50%");
  auto p99 = value(" 99%");
  if (!rps || !p50 || !p99) return std::nullopt;
  return WrkResult{std::strtod(rps->c_str(), nullptr), micros(*p50), micros(*p99)};
}

void runHttpRows(Bench& bench, const Cluster& cluster, int seconds, int repeat) {
  struct HttpPath {
    const char* name;
    const char* client;
    std::string url;
  };
  const HttpPath paths[] = {
      {"direct", "c-direct", fmt::format("http://{}:{}/", cluster.pod("s-direct")->ipv4, kHttpAppPort)},
      {"mesh L7 mTLS", "c-mesh", fmt::format("http://{}/", kBenchHttpVip)},
      {"haproxy http mTLS", "c-direct", fmt::format("http://127.0.0.1:2{}/", kHttpAppPort)},
  };
  double rps[3] = {}, p50[3] = {}, p99[3] = {}, cpu[3] = {};
  for (size_t p = 0; p < std::size(paths); ++p) {
    fmt::print(stderr, "measuring HTTP {} ...\n", paths[p].name);
    std::vector<double> r, m, l, c;
    for (int i = 0; i < repeat; ++i) {
      auto res = bench.runText(paths[p].client, {"wrk", "-t1", "-c16", fmt::format("-d{}s", seconds), "--latency", paths[p].url},
                               std::chrono::seconds(seconds + 30));
      auto parsed = res ? parseWrk(res->first) : std::nullopt;
      if (!parsed) continue;
      r.push_back(parsed->perSecond);
      m.push_back(parsed->p50Us);
      l.push_back(parsed->p99Us);
      c.push_back(res->second);
    }
    rps[p] = median(r);
    p50[p] = median(m);
    p99[p] = median(l);
    cpu[p] = median(c);
  }
  fmt::print("\nHTTP/1.1 keep-alive, wrk -c16 (median of {}; tunnel CPU = cores used by both ztunnels)\n", repeat);
  fmt::print("{:<20} {:>12} {:>12} {:>12} {:>26} {:>12}\n", "path", "req/s", "p50 [us]", "p99 [us]",
             "vs haproxy (req/s, p99)", "tunnel CPU");
  for (size_t p = 0; p < std::size(paths); ++p) {
    std::string ratio = rps[2] > 0 && p99[2] > 0 ? fmt::format("{:.2f}x, {:.2f}x", rps[p] / rps[2], p99[p] / p99[2]) : "-";
    fmt::print("{:<20} {:>12.0f} {:>12.0f} {:>12.0f} {:>26} {:>12.2f}\n", paths[p].name, rps[p], p50[p], p99[p], ratio, cpu[p]);
  }
}

}  // namespace

int main(int argc, char** argv) {
  initLogging("sluice-bench");
  // The mesh daemons this starts log to this terminal: warnings only, unless SLUICE_LOG says.
  ::setenv("SLUICE_LOG", "warn", /*overwrite=*/0);
  CLI::App app{"Sluice data-path benchmark: direct vs one and two tunnels"};
  int seconds = 3, repeat = 3;
  app.add_option("--seconds", seconds, "length of each throughput and connection-rate run")->capture_default_str();
  app.add_option("--repeat", repeat, "runs per metric (the median is reported)")->capture_default_str();
  bool httpOnly = false;
  app.add_flag("--http-only", httpOnly, "only the HTTP/1.1 rows (L7 in the tunnel vs haproxy mode http)");
  CLI11_PARSE(app, argc, argv);
  if (::geteuid() != 0) {
    fmt::print(stderr, "sluice-bench: must run as root\n");
    return 1;
  }
  auto run = startMeshRun(2);
  if (!run) {
    fmt::print(stderr, "sluice-bench: {}\n", run.error().message());
    return 1;
  }
  Cluster& cluster = *run->cluster;
  MeshController* controller = &run->controller;
  std::vector<std::unique_ptr<MeshNode>>& mesh = run->nodes;
  PodSpec optOut{.labels = {{"istio.io/dataplane-mode", "none"}}};
  for (auto [node, name, spec] : {std::tuple{0, "c-direct", optOut}, std::tuple{0, "c-mesh", PodSpec{}},
                                  std::tuple{1, "s-direct", optOut}, std::tuple{1, "s-mesh", PodSpec{}},
                                  std::tuple{1, "s-mtls", PodSpec{.labels = {{"app", "bench-http"}}}}}) {
    if (auto pod = cluster.addPod(node, name, spec); !pod) {
      fmt::print(stderr, "sluice-bench: {}\n", pod.error().message());
      return 1;
    }
  }
  if (!writeConfigFile(controller->configDir(), "workloads.yaml", workloadsYaml(cluster, {"c-mesh", "s-mtls"})) ||
      !writeConfigFile(controller->configDir(), "bench-http.yaml", benchHttpYaml()) ||
      !waitForPodCertificates(cluster, mesh, {"c-mesh", "s-mtls"})) {
    fmt::print(stderr, "sluice-bench: the pods' certificates did not arrive\n");
    return 1;
  }
  // Connection-rate runs leave tens of thousands of TIME_WAIT sockets behind the client; without
  // reuse the direct path runs out of ephemeral ports within a run and measures that instead.
  for (const char* pod : {"c-direct", "c-mesh"}) {
    auto tw = cluster.runInPod(pod, {.argv = {"sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1"}});
    if (tw) (void)tw->wait(std::chrono::seconds(5));
  }
  std::vector<ChildProcess> servers;
  for (const char* pod : {"s-direct", "s-mesh", "s-mtls"}) {
    auto echo = cluster.runInPod(pod, {.argv = {siblingProgram("sluice-tcpcheck"), "serve", "--listen", "[::]:8080"},
                                       .captureOutput = true});
    auto iperf = cluster.runInPod(pod, {.argv = {"iperf3", "-s", "-p", "5201"}, .captureOutput = true});
    if (!echo || !iperf || !readLine(echo->stdoutPipe(), std::chrono::seconds(10))) {
      fmt::print(stderr, "sluice-bench: servers did not start\n");
      return 1;
    }
    servers.push_back(std::move(*echo));
    servers.push_back(std::move(*iperf));
  }
  for (const char* pod : {"s-direct", "s-mtls"}) {
    auto httpApp = startHttpApp(cluster, pod);
    if (!httpApp) {
      fmt::print(stderr, "sluice-bench: HTTP app: {}\n", httpApp.error().message());
      return 1;
    }
    servers.push_back(std::move(*httpApp));
  }
  ::usleep(300000);  // iperf3 -s binds asynchronously

  Bench bench(cluster, mesh);
  auto peer = startHaproxyPeer(cluster, *controller);
  if (!peer) {
    fmt::print(stderr, "sluice-bench: haproxy peer: {}\n", peer.error().message());
    return 1;
  }
  const Path paths[] = {{"direct", "c-direct", "s-direct"},
                        {"one tunnel", "c-mesh", "s-direct"},
                        {"two tunnels", "c-mesh", "s-mesh"},
                        {"two tunnels mTLS", "c-mesh", "s-mtls"},
                        {"haproxy mTLS (peer)", "c-direct", "s-direct", true}};
  constexpr size_t kPaths = std::size(paths);
  struct Metric {
    const char* name;
    const char* unit;
    bool higherIsBetter;
  };
  const Metric metrics[] = {{"throughput, 1 stream", "Gbit/s", true}, {"throughput, 4 streams", "Gbit/s", true},
                            {"ping-pong 1 B p50", "us", false},      {"ping-pong 1 B p99", "us", false},
                            {"new connections (CRR)", "conn/s", true}};
  // results[metric][path] = (median value, median tunnel CPU)
  std::vector<std::vector<std::pair<double, double>>> results(std::size(metrics),
                                                              std::vector<std::pair<double, double>>(kPaths));
  for (size_t p = 0; p < kPaths && !httpOnly; ++p) {
    std::string ip = paths[p].viaLocalProxy ? "127.0.0.1" : cluster.pod(paths[p].server)->ipv4;
    auto port = [&](int appPort) { return paths[p].viaLocalProxy ? 20000 + appPort : appPort; };
    fmt::print(stderr, "measuring {} ...\n", paths[p].name);
    std::vector<std::vector<double>> values(std::size(metrics)), cpu(std::size(metrics));
    for (int r = 0; r < repeat; ++r) {
      for (int streams : {1, 4}) {
        auto res = bench.runJson(paths[p].client, {"iperf3", "-c", ip, "-p", std::to_string(port(5201)), "-t", std::to_string(seconds),
                                                   "-P", std::to_string(streams), "-J"},
                                 std::chrono::seconds(seconds + 30));
        if (!res) continue;
        size_t m = streams == 1 ? 0 : 1;
        values[m].push_back(res->first["end"]["sum_received"]["bits_per_second"].get<double>() / 1e9);
        cpu[m].push_back(res->second);
      }
      if (auto res = bench.runJson(paths[p].client, {siblingProgram("sluice-tcpcheck"), "pingpong", "--to",
                                                     withPort(ip, port(8080)), "--count", "5000"},
                                   std::chrono::seconds(60))) {
        values[2].push_back(res->first["p50_us"].get<double>());
        values[3].push_back(res->first["p99_us"].get<double>());
        cpu[2].push_back(res->second);
        cpu[3].push_back(res->second);
      }
      if (auto res = bench.runJson(paths[p].client, {siblingProgram("sluice-tcpcheck"), "crr", "--to",
                                                     withPort(ip, port(8080)), "--seconds", std::to_string(seconds)},
                                   std::chrono::seconds(seconds + 30))) {
        values[4].push_back(res->first["per_second"].get<double>());
        cpu[4].push_back(res->second);
      }
    }
    for (size_t m = 0; m < std::size(metrics); ++m) results[m][p] = {median(values[m]), median(cpu[m])};
  }

  // Servers, peer and mesh stop before the cluster goes.
  auto finish = [&] {
    runHttpRows(bench, cluster, seconds, repeat);
    servers.clear();
    peer->clear();
    mesh.clear();
    (void)controller->stop();
    return cluster.destroy() ? 0 : 1;
  };
  if (httpOnly) return finish();
  fmt::print("\nSluice data path vs direct, same run (median of {}; tunnel CPU = cores used by both ztunnels)\n",
             repeat);
  fmt::print("{:<28} {:>10} {:>18} {:>18} {:>18} {:>18} {:>10}   {}\n", "metric", "direct", "one tunnel",
             "two tunnels", "two, mTLS", "haproxy mTLS", "mTLS/peer", "tunnel CPU 1/2/mTLS");
  for (size_t m = 0; m < std::size(metrics); ++m) {
    double base = results[m][0].first;
    auto cell = [&](size_t p) {
      double v = results[m][p].first;
      return fmt::format("{:.1f} ({:.2f}x)", v, base > 0 ? v / base : 0.0);
    };
    double peerValue = results[m][4].first;
    fmt::print("{:<28} {:>10} {:>18} {:>18} {:>18} {:>18} {:>10}   {:.2f} / {:.2f} / {:.2f}\n",
               fmt::format("{} [{}]", metrics[m].name, metrics[m].unit), fmt::format("{:.1f}", base), cell(1), cell(2),
               cell(3), cell(4), fmt::format("{:.2f}x", peerValue > 0 ? results[m][3].first / peerValue : 0.0),
               results[m][1].second, results[m][2].second, results[m][3].second);
  }
  return finish();
}
