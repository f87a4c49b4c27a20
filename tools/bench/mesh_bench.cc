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
//
// Every row also says what its work cost the path's proxies (both ztunnels; both haproxies for
// the peer): cores, and CPU, context switches and system calls per MB, round trip, connection
// or request (process_usage.h). --memory adds the memory rows (memory_bench.h), --json FILE
// writes the machine-readable summary and --compare FILE prints this run next to an earlier one
// (bench_report.h).
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

#include "bench_report.h"
#include "memory_bench.h"
#include "process_usage.h"

using namespace sluice;
using namespace sluice::sim;
using nlohmann::json;

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One run of a load tool: its output, how long it took and what the path's proxies used.
struct Measured {
  std::string text;
  double wallSeconds = 0;
  bench::ProcessUsage proxies;
  std::optional<uint64_t> syscalls;
};

// The repetitions of one (metric, path): values and what each run's work cost the proxies.
struct Samples {
  std::vector<double> values, cores, cpuMs, contextSwitches, syscalls;
  bool syscallsKnown = true;
  // `work`: units of work the run did (MB, round trips, connections, requests).
  void add(double value, double work, const Measured& m) {
    values.push_back(value);
    cores.push_back(m.wallSeconds > 0 ? m.proxies.cpuSeconds / m.wallSeconds : 0);
    if (work <= 0) return;
    cpuMs.push_back(m.proxies.cpuSeconds * 1000 / work);
    contextSwitches.push_back(double(m.proxies.contextSwitches) / work);
    if (m.syscalls) {
      syscalls.push_back(double(*m.syscalls) / work);
    } else {
      syscallsKnown = false;
    }
  }
  bench::Row row(std::string metric, std::string unit, std::string path, std::string work, bool proxied) const {
    bench::Row r{.metric = std::move(metric), .unit = std::move(unit), .path = std::move(path), .value = median(values)};
    if (!proxied || values.empty()) return r;
    r.work = std::move(work);
    r.proxyCores = median(cores);
    if (!cpuMs.empty()) {
      r.cpuMsPerWork = median(cpuMs);
      r.contextSwitchesPerWork = median(contextSwitches);
      if (syscallsKnown && !syscalls.empty()) r.syscallsPerWork = median(syscalls);
    }
    return r;
  }
};

class Bench {
 public:
  Bench(Cluster& cluster, std::string scratchDir) : cluster_(cluster), scratchDir_(std::move(scratchDir)) {}

  // Runs `argv` in `pod` while watching `proxies`; returns its stdout and what they used.
  std::optional<Measured> run(const std::string& pod, std::vector<std::string> argv, std::chrono::seconds timeout,
                              const std::vector<pid_t>& proxies) {
    auto counter = bench::SyscallCounter::start(proxies, scratchDir_);
    bench::ProcessUsage before = bench::readUsage(proxies);
    auto wallStart = std::chrono::steady_clock::now();
    auto out = cluster_.runInPod(pod, {.argv = argv, .captureOutput = true});
    if (!out) return std::nullopt;
    Measured m;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(out->stdoutPipe().get(), buf, sizeof(buf))) > 0) m.text.append(buf, static_cast<size_t>(n));
    auto code = out->wait(timeout);
    m.wallSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart).count();
    m.proxies = bench::readUsage(proxies) - before;
    if (counter) m.syscalls = counter->stop();
    if (!code || *code != 0) {
      fmt::print(stderr, "  {} in {} failed: {}\n", argv[0], pod, m.text.substr(0, 300));
      return std::nullopt;
    }
    return m;
  }

  // run() for a tool printing JSON: the last JSON line of its output.
  std::optional<std::pair<json, Measured>> runJson(const std::string& pod, std::vector<std::string> argv,
                                                   std::chrono::seconds timeout, const std::vector<pid_t>& proxies) {
    auto m = run(pod, std::move(argv), timeout, proxies);
    if (!m) return std::nullopt;
    json j = json::parse(m->text, nullptr, false);
    if (j.is_discarded()) {
      size_t last = m->text.rfind("\n{");
      j = json::parse(last == std::string::npos ? m->text : m->text.substr(last + 1), nullptr, false);
    }
    if (j.is_discarded()) return std::nullopt;
    return std::make_pair(std::move(j), std::move(*m));
  }

 private:
  Cluster& cluster_;
  std::string scratchDir_;
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
  double perSecond = 0, p50Us = 0, p99Us = 0, requests = 0;
};

// wrk's requests per second, p50 and p99 (us) and request count from its --latency report.
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
  size_t countEnd = text.find(" requests in ");
  if (!rps || !p50 || !p99 || countEnd == std::string::npos) return std::nullopt;
  size_t countStart = text.find_last_of(" \n", countEnd - 1);
  double requests = std::strtod(text.c_str() + (countStart == std::string::npos ? 0 : countStart + 1), nullptr);
  return WrkResult{std::strtod(rps->c_str(), nullptr), micros(*p50), micros(*p99), requests};
}

// Whose CPU a path's rows count: both tunnels, both haproxies of the peer, or nobody (direct).
struct Proxies {
  std::vector<pid_t> tunnels, peer;
};

void runHttpRows(Bench& bench, const Cluster& cluster, int seconds, int repeat, const Proxies& proxies,
                 std::vector<bench::Row>& rows) {
  struct HttpPath {
    const char* name;
    const char* client;
    std::string url;
    const std::vector<pid_t>* proxies;
  };
  const std::vector<pid_t> none;
  const HttpPath paths[] = {
      {"direct", "c-direct", fmt::format("http://{}:{}/", cluster.pod("s-direct")->ipv4, kHttpAppPort), &none},
      {"mesh L7 mTLS", "c-mesh", fmt::format("http://{}/", kBenchHttpVip), &proxies.tunnels},
      {"haproxy http mTLS", "c-direct", fmt::format("http://127.0.0.1:2{}/", kHttpAppPort), &proxies.peer},
  };
  Samples rps[3], p50[3], p99[3];
  for (size_t p = 0; p < std::size(paths); ++p) {
    fmt::print(stderr, "measuring HTTP {} ...\n", paths[p].name);
    for (int i = 0; i < repeat; ++i) {
      auto res = bench.run(paths[p].client, {"wrk", "-t1", "-c16", fmt::format("-d{}s", seconds), "--latency", paths[p].url},
                           std::chrono::seconds(seconds + 30), *paths[p].proxies);
      auto parsed = res ? parseWrk(res->text) : std::nullopt;
      if (!parsed) continue;
      rps[p].add(parsed->perSecond, parsed->requests, *res);
      p50[p].add(parsed->p50Us, parsed->requests, *res);
      p99[p].add(parsed->p99Us, parsed->requests, *res);
    }
  }
  double peerRps = median(rps[2].values), peerP99 = median(p99[2].values);
  fmt::print("\nHTTP/1.1 keep-alive, wrk -c16 (median of {}; proxy CPU = cores used by both ztunnels, or both haproxies)\n",
             repeat);
  fmt::print("{:<20} {:>12} {:>12} {:>12} {:>26} {:>12}\n", "path", "req/s", "p50 [us]", "p99 [us]",
             "vs haproxy (req/s, p99)", "proxy CPU");
  double directRps = median(rps[0].values), directP50 = median(p50[0].values), directP99 = median(p99[0].values);
  for (size_t p = 0; p < std::size(paths); ++p) {
    bool proxied = !paths[p].proxies->empty();
    bench::Row r = rps[p].row("HTTP keep-alive", "req/s", paths[p].name, "request", proxied);
    bench::Row l50 = p50[p].row("HTTP keep-alive p50", "us", paths[p].name, "request", false);
    bench::Row l99 = p99[p].row("HTTP keep-alive p99", "us", paths[p].name, "request", false);
    if (directRps > 0) r.ratioToDirect = r.value / directRps;
    if (directP50 > 0) l50.ratioToDirect = l50.value / directP50;
    if (directP99 > 0) l99.ratioToDirect = l99.value / directP99;
    if (peerRps > 0) r.ratioToPeer = r.value / peerRps;
    if (peerP99 > 0) l99.ratioToPeer = l99.value / peerP99;
    std::string ratio = r.ratioToPeer && l99.ratioToPeer ? fmt::format("{:.2f}x, {:.2f}x", *r.ratioToPeer, *l99.ratioToPeer) : "-";
    fmt::print("{:<20} {:>12.0f} {:>12.0f} {:>12.0f} {:>26} {:>12.2f}\n", paths[p].name, r.value, l50.value, l99.value, ratio,
               r.proxyCores);
    rows.push_back(std::move(r));
    rows.push_back(std::move(l50));
    rows.push_back(std::move(l99));
  }
}

// The L4 rows: for each path, throughput (1 and 4 streams), ping-pong latency and connection
// rate; ratios to direct (the first path) and to the peer (the last).
void runL4Rows(Bench& bench, const Cluster& cluster, int seconds, int repeat, const Proxies& proxies,
               std::vector<bench::Row>& rows) {
  const Path paths[] = {{"direct", "c-direct", "s-direct"},
                        {"one tunnel", "c-mesh", "s-direct"},
                        {"two tunnels", "c-mesh", "s-mesh"},
                        {"two tunnels mTLS", "c-mesh", "s-mtls"},
                        {"haproxy mTLS (peer)", "c-direct", "s-direct", true}};
  constexpr size_t kPaths = std::size(paths);
  struct Metric {
    const char* name;
    const char* unit;
    const char* work;
  };
  const Metric metrics[] = {{"throughput, 1 stream", "Gbit/s", "MB"},    {"throughput, 4 streams", "Gbit/s", "MB"},
                            {"ping-pong 1 B p50", "us", "round trip"},   {"ping-pong 1 B p99", "us", "round trip"},
                            {"new connections (CRR)", "conn/s", "connection"}};
  constexpr size_t kMetrics = std::size(metrics);
  std::vector<std::vector<bench::Row>> table(kMetrics);  // [metric][path]
  const std::vector<pid_t> none;
  for (size_t p = 0; p < kPaths; ++p) {
    std::string ip = paths[p].viaLocalProxy ? "127.0.0.1" : cluster.pod(paths[p].server)->ipv4;
    auto port = [&](int appPort) { return paths[p].viaLocalProxy ? 20000 + appPort : appPort; };
    const std::vector<pid_t>& watched = p == 0 ? none : paths[p].viaLocalProxy ? proxies.peer : proxies.tunnels;
    fmt::print(stderr, "measuring {} ...\n", paths[p].name);
    std::vector<Samples> samples(kMetrics);
    for (int r = 0; r < repeat; ++r) {
      for (int streams : {1, 4}) {
        auto res = bench.runJson(paths[p].client, {"iperf3", "-c", ip, "-p", std::to_string(port(5201)), "-t", std::to_string(seconds),
                                                   "-P", std::to_string(streams), "-J"},
                                 std::chrono::seconds(seconds + 30), watched);
        if (!res) continue;
        const json& received = res->first["end"]["sum_received"];
        samples[streams == 1 ? 0 : 1].add(received["bits_per_second"].get<double>() / 1e9,
                                          received["bytes"].get<double>() / 1e6, res->second);
      }
      constexpr int kRoundTrips = 5000;
      if (auto res = bench.runJson(paths[p].client, {siblingProgram("sluice-tcpcheck"), "pingpong", "--to",
                                                     withPort(ip, port(8080)), "--count", std::to_string(kRoundTrips)},
                                   std::chrono::seconds(60), watched)) {
        samples[2].add(res->first["p50_us"].get<double>(), kRoundTrips, res->second);
        samples[3].add(res->first["p99_us"].get<double>(), kRoundTrips, res->second);
      }
      if (auto res = bench.runJson(paths[p].client, {siblingProgram("sluice-tcpcheck"), "crr", "--to",
                                                     withPort(ip, port(8080)), "--seconds", std::to_string(seconds)},
                                   std::chrono::seconds(seconds + 30), watched)) {
        samples[4].add(res->first["per_second"].get<double>(), res->first["connections"].get<double>(), res->second);
      }
    }
    for (size_t m = 0; m < kMetrics; ++m) {
      table[m].push_back(samples[m].row(metrics[m].name, metrics[m].unit, paths[p].name, metrics[m].work, p != 0));
    }
  }
  for (size_t m = 0; m < kMetrics; ++m) {
    double direct = table[m][0].value, peer = table[m][kPaths - 1].value;
    for (auto& r : table[m]) {
      if (direct > 0) r.ratioToDirect = r.value / direct;
      if (peer > 0) r.ratioToPeer = r.value / peer;
    }
  }
  fmt::print("\nSluice data path vs direct, same run (median of {}; tunnel CPU = cores used by both ztunnels)\n",
             repeat);
  fmt::print("{:<28} {:>10} {:>18} {:>18} {:>18} {:>18} {:>10}   {}\n", "metric", "direct", "one tunnel",
             "two tunnels", "two, mTLS", "haproxy mTLS", "mTLS/peer", "tunnel CPU 1/2/mTLS");
  for (size_t m = 0; m < kMetrics; ++m) {
    const auto& row = table[m];
    auto cell = [&](size_t p) { return fmt::format("{:.1f} ({:.2f}x)", row[p].value, row[p].ratioToDirect.value_or(0)); };
    fmt::print("{:<28} {:>10} {:>18} {:>18} {:>18} {:>18} {:>10}   {:.2f} / {:.2f} / {:.2f}\n",
               fmt::format("{} [{}]", metrics[m].name, metrics[m].unit), fmt::format("{:.1f}", row[0].value), cell(1),
               cell(2), cell(3), cell(4), fmt::format("{:.2f}x", row[3].ratioToPeer.value_or(0)), row[1].proxyCores,
               row[2].proxyCores, row[3].proxyCores);
  }
  for (auto& metricRows : table) {
    for (auto& r : metricRows) rows.push_back(std::move(r));
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
  bool httpOnly = false, memory = false;
  app.add_flag("--http-only", httpOnly, "only the HTTP/1.1 rows (L7 in the tunnel vs haproxy mode http)");
  app.add_flag("--memory", memory, "first, on fresh tunnels: RSS idle with 100 enrolled pods and per idle connection");
  unsigned busyPollUs = 0;
  app.add_option("--busy-poll-us", busyPollUs, "run the tunnels with ztunnel --busy-poll-us (0: as deployed, off)")
      ->check(CLI::Range(0u, 1000u))
      ->capture_default_str();
  std::string jsonPath, comparePath;
  app.add_option("--json", jsonPath, "write the machine-readable summary here");
  app.add_option("--compare", comparePath, "an earlier --json summary: print this run next to it")->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);
  if (::geteuid() != 0) {
    fmt::print(stderr, "sluice-bench: must run as root\n");
    return 1;
  }
  std::optional<std::vector<bench::Row>> earlier;
  if (!comparePath.empty()) {
    std::ifstream in(comparePath);
    earlier = bench::rowsFromJson(json::parse(in, nullptr, false));
    if (!earlier) {
      fmt::print(stderr, "sluice-bench: {} is not a sluice-bench --json summary\n", comparePath);
      return 1;
    }
  }
  auto run = startMeshRun(2, {}, [&](const Node&) {
    return busyPollUs == 0 ? std::vector<std::string>{} : std::vector<std::string>{"--busy-poll-us", std::to_string(busyPollUs)};
  });
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

  std::vector<bench::Row> rows;
  if (memory) {
    fmt::print(stderr, "measuring memory ...\n");
    auto memoryRows = bench::runMemoryRows(cluster, mesh);
    if (!memoryRows) {
      fmt::print(stderr, "sluice-bench: memory rows: {}\n", memoryRows.error().message());
      return 1;
    }
    fmt::print("\nMemory (fresh tunnels, before any other traffic)\n");
    for (const auto& r : *memoryRows) fmt::print("{:<28} {:<24} {:>10.1f} {}\n", r.metric, r.path, r.value, r.unit);
    rows.insert(rows.end(), memoryRows->begin(), memoryRows->end());
  }

  Bench bench(cluster, cluster.node(0).stateDir);
  auto peer = startHaproxyPeer(cluster, *controller);
  if (!peer) {
    fmt::print(stderr, "sluice-bench: haproxy peer: {}\n", peer.error().message());
    return 1;
  }
  Proxies proxies;
  for (auto& m : mesh) proxies.tunnels.push_back(m->tunnelPid());
  for (auto& p : *peer) proxies.peer.push_back(p.pid());
  if (!httpOnly) runL4Rows(bench, cluster, seconds, repeat, proxies, rows);
  runHttpRows(bench, cluster, seconds, repeat, proxies, rows);
  fmt::print("\nWhat the work cost the proxies (both ztunnels; both haproxies for the peer; median of {})\n", repeat);
  fmt::print("{}", bench::costTable(rows));
  if (earlier) fmt::print("\nThis run next to {}\n{}", comparePath, bench::comparison(*earlier, rows));
  if (!jsonPath.empty()) {
    std::ofstream out(jsonPath);
    out << bench::toJson(rows, seconds, repeat).dump(2) << "\n";
    if (!out) fmt::print(stderr, "sluice-bench: could not write {}\n", jsonPath);
  }

  // Servers, peer and mesh stop before the cluster goes.
  servers.clear();
  peer->clear();
  mesh.clear();
  (void)controller->stop();
  return cluster.destroy() ? 0 : 1;
}
