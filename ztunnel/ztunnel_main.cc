// ztunnel: Sluice's node tunnel. One per node, beside the node agent.
//
//   ztunnel --zds-socket /run/sluice/zds.sock --pin-dir /sys/fs/bpf/sluice [--workers N]
//
// Threads: N data-plane workers (one io_uring each), the control thread (agent protocol:
// per-pod listeners), and the admin thread (HTTP 15000 loopback, 15020 metrics, 15021 ready).
//
// Upgrades (docs/architecture.md "Upgrading the tunnel"): a new ztunnel starts beside this one;
// every port it needs is shared (SO_REUSEPORT). When the agent has replayed every pod to the new
// one, it tells this one it is Replaced: the pods are handed over, the admin ports closed, and
// on SIGTERM this one exits once its connections are done or at the drain deadline. A SIGTERM
// before any successor waits up to --handover-wait-ms for one (an orchestrator may stop the
// old tunnel as soon as the new one looks ready), then exits. A second signal exits at once.
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/async.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <poll.h>

#include <thread>

#include "admin/admin_views.h"
#include "sluice/common/http_server.h"
#include "capture/orig_dst_table.h"
#include "proxy/listener_migration.h"
#include "proxy/worker.h"
#include "inpod/workload_manager.h"
#include "identity/certificate_manager.h"
#include "identity/controller_link.h"
#include "xds/config_client.h"
#include "proxy/request_record.h"
#include "sluice/common/log.h"
#include "sluice/common/process.h"
#include "ztunnel_requirements.h"
#include "sluice_capture.h"

using namespace sluice;
using namespace sluice::ztunnel;

int main(int argc, char** argv) {
  // Before any thread exists (gRPC starts its own with the controller channel): every thread
  // inherits the mask, so SIGTERM reaches only the signalfd read at the end of main.
  UniqueFd signalFd = stopSignalFd();
  initLogging("ztunnel");
  CLI::App app{"Sluice node tunnel"};
  std::string zdsSocket = "/run/sluice/zds.sock", pinDir = "/sys/fs/bpf/sluice";
  std::string adminAddress = "127.0.0.1:15000", metricsAddress = "[::]:15020", readyAddress = "[::]:15021";
  unsigned workers = std::max(1u, std::thread::hardware_concurrency());
  WorkerOptions base;
  uint32_t mark = SLUICE_TUNNEL_MARK_DEFAULT;
  int connectTimeoutMs = 10000, idleTimeoutS = 3600, drainTimeoutMs = 30000, handoverWaitMs = 0;
  int handshakeTimeoutMs = 5000, hboneIdleTimeoutS = 120;
  size_t maxPerSourceHbone = 512, maxPerSourcePlaintext = 1024, maxQueuedCiphertextKiB = 1024;
  uint64_t podBufferShareKiB = 8192;
  app.add_option("--zds-socket", zdsSocket, "the node agent's tunnel socket")->capture_default_str();
  app.add_option("--pin-dir", pinDir, "the node agent's bpffs pin folder")->capture_default_str();
  app.add_option("--workers", workers, "data-plane threads")->check(CLI::Range(1u, 64u))->capture_default_str();
  unsigned busyPollUs = 0;
  app.add_option("--busy-poll-us", busyPollUs,
                 "before a worker sleeps, keep polling for completions this long (trades CPU for latency; 0: off)")
      ->check(CLI::Range(0u, 1000u))
      ->capture_default_str();
  app.add_option("--mark", mark, "SO_MARK of the tunnel's sockets")->capture_default_str();
  uint32_t deliveryMark = SLUICE_DELIVERY_MARK_DEFAULT;
  app.add_option("--delivery-mark", deliveryMark,
                 "SO_MARK of inbound deliveries, which reach the app from the client's own address (the agent routes "
                 "the pods' replies by it); 0: deliver from the pod's address")
      ->capture_default_str();
  app.add_option("--admin-address", adminAddress, "admin HTTP (keep it on loopback)")->capture_default_str();
  app.add_option("--metrics-address", metricsAddress, "Prometheus metrics")->capture_default_str();
  app.add_option("--readiness-address", readyAddress, "readiness probe")->capture_default_str();
  app.add_option("--connect-timeout-ms", connectTimeoutMs)->check(CLI::Range(1, 600000))->capture_default_str();
  app.add_option("--idle-timeout-s", idleTimeoutS)->check(CLI::Range(1, 86400 * 7))->capture_default_str();
  app.add_option("--drain-timeout-ms", drainTimeoutMs,
                 "how long the connections of a removed pod, or of every pod once a newer tunnel took over, may finish")
      ->check(CLI::Range(0, 3600000))->capture_default_str();
  app.add_option("--handover-wait-ms", handoverWaitMs,
                 "on SIGTERM before a newer tunnel took over, keep serving this long for one to take over")
      ->check(CLI::Range(0, 3600000))->capture_default_str();
  app.add_option("--handshake-timeout-ms", handshakeTimeoutMs,
                 "an HBONE connection must finish TLS and prove its identity this soon after accept/connect")
      ->check(CLI::Range(100, 600000))->capture_default_str();
  app.add_option("--hbone-idle-timeout-s", hboneIdleTimeoutS, "a server-side HBONE connection without streams is closed after")
      ->check(CLI::Range(1, 86400))->capture_default_str();
  app.add_option("--max-connections-per-source-hbone", maxPerSourceHbone,
                 "connections one source address may hold on the pods' 15008 (0: no cap)")->capture_default_str();
  app.add_option("--max-connections-per-source-plaintext", maxPerSourcePlaintext,
                 "connections one source address may hold on the pods' 15006 (0: no cap)")->capture_default_str();
  app.add_option("--max-queued-ciphertext-kib", maxQueuedCiphertextKiB,
                 "ciphertext waiting for one HBONE peer before the tunnel stops reading from it")
      ->check(CLI::Range(size_t(16), size_t(1) << 20))->capture_default_str();
  app.add_option("--pod-buffer-share-kib", podBufferShareKiB,
                 "receive buffers one pod's connections may hold per worker (0: no cap)")->capture_default_str();
  std::string controller, nodeName;
  app.add_option("--controller", controller, "sluice-controller address (host:port); none: no services, ALLOW_ANY");
  app.add_option("--node", nodeName, "this node's name, for the controller");
  std::string credentialDir, trustDomain = "cluster.local";
  int certificateValidityS = 0, poolIdleS = 30;
  app.add_option("--credential-dir", credentialDir,
                 "node credential (node-key.pem, node-cert.pem, root-cert.pem): mTLS to the controller, workload "
                 "certificates and HBONE; without it, plaintext only");
  app.add_option("--trust-domain", trustDomain)->capture_default_str();
  app.add_option("--certificate-validity-s", certificateValidityS, "requested workload certificate lifetime (0: the CA's)")
      ->check(CLI::Range(0, 86400 * 90))->capture_default_str();
  app.add_option("--pool-idle-timeout-s", poolIdleS, "how long an HBONE connection without streams stays pooled")
      ->check(CLI::Range(1, 3600))->capture_default_str();
  std::string accessLog;
  app.add_option("--access-log", accessLog,
                 "one JSON line per L7 request: a file path, or - for stdout (default: off)");
  // A callback that ends parsing (as --help does), so it needs none of the required options.
  app.add_flag_callback(
      "--print-requirements", [] { printRequirements(ztunnelRequirements()); throw CLI::Success(); },
      "print the capabilities and host folders this program needs (JSON) and exit");
  CLI11_PARSE(app, argc, argv);
  if (!startupCapabilitiesOk(ztunnelRequirements())) return 1;
  if (!accessLog.empty()) {
    // Asynchronous, dropping the oldest lines when the writer falls behind: a worker never
    // waits for the log.
    spdlog::init_thread_pool(8192, 1);
    std::shared_ptr<spdlog::logger> logger;
    try {
      logger = accessLog == "-" ? spdlog::create_async_nb<spdlog::sinks::stdout_sink_mt>("access")
                                : spdlog::create_async_nb<spdlog::sinks::basic_file_sink_mt>("access", accessLog);
    } catch (const spdlog::spdlog_ex& e) {
      spdlog::error("--access-log {}: {}", accessLog, e.what());
      return 1;
    }
    logger->set_pattern("%v");
    logger->flush_on(spdlog::level::info);
    setAccessLog(logger);
  }
  if (!controller.empty() && nodeName.empty()) {
    spdlog::error("--controller needs --node (the controller tells nodes apart by name)");
    return 1;
  }
  if (!credentialDir.empty() && controller.empty()) {
    spdlog::error("--credential-dir needs --controller (certificates come from its CA)");
    return 1;
  }
  base.trustDomain = trustDomain;
  base.poolIdleTimeout = std::chrono::seconds(poolIdleS);
  std::unique_ptr<ControllerLink> controllerLink;
  if (!controller.empty()) {
    auto made = ControllerLink::open(controller, credentialDir);
    if (!made) {
      spdlog::error("controller: {}", made.error().message());
      return 1;
    }
    controllerLink = std::move(*made);
  }
  std::unique_ptr<CertificateManager> certificates;
  if (!credentialDir.empty()) {
    CertificateManager::Options certOptions;
    certOptions.requestedValidity = std::chrono::seconds(certificateValidityS);
    certificates = std::make_unique<CertificateManager>(controllerLink->source(), certOptions);
  }
  base.connectTimeout = std::chrono::milliseconds(connectTimeoutMs);
  base.loop.busyPoll = std::chrono::microseconds(busyPollUs);
  base.idleTimeout = std::chrono::seconds(idleTimeoutS);
  base.drainTimeout = std::chrono::milliseconds(drainTimeoutMs);
  base.handshakeTimeout = std::chrono::milliseconds(handshakeTimeoutMs);
  base.hboneIdleTimeout = std::chrono::seconds(hboneIdleTimeoutS);
  base.maxQueuedCiphertext = maxQueuedCiphertextKiB * 1024;
  base.podBufferShareBytes = podBufferShareKiB * 1024;
  SourceLimits limits{SourceLimiter(maxPerSourcePlaintext), SourceLimiter(maxPerSourceHbone)};
  NodeTrafficState traffic;  // outlier detection, retry budgets, circuit breakers: per node
  auto migration = ListenerMigration::load();
  if (!migration) {
    spdlog::error("{}", migration.error().message());
    return 1;
  }
  // Transparent delivery needs the agent's delivery table (an agent older than this tunnel has
  // none: deliveries then come from the pod's address).
  std::shared_ptr<const agent::DeliveryTable> deliveries;
  if (deliveryMark != 0) {
    auto opened = agent::DeliveryTable::open(pinDir);
    if (opened) deliveries = std::move(*opened);
    else spdlog::warn("inbound deliveries come from the pod's address, not the client's: {}", opened.error().message());
  }
  NetnsSocketFactory sockets(mark, migration->programFd(), deliveryMark, deliveries);

  // Every relayed connection costs two descriptors; take as many as the system allows.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0) {
    rlimit wanted{1 << 20, 1 << 20};
    if (::setrlimit(RLIMIT_NOFILE, &wanted) != 0) {
      files.rlim_cur = files.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &files);
    }
  }


  auto origDst = agent::OrigDstTable::open(pinDir);
  if (!origDst) {
    spdlog::error("{}", origDst.error().message());
    return 1;
  }
  SnapshotStore config;
  std::vector<std::unique_ptr<Worker>> pool;
  for (unsigned i = 0; i < workers; ++i) {
    WorkerOptions options = base;
    options.index = static_cast<int>(i);
    pool.push_back(std::make_unique<Worker>(options, config, &*origDst, certificates.get(), sockets, limits, &traffic));
    if (auto started = pool.back()->start(); !started) {
      spdlog::error("worker {}: {}", i, started.error().message());
      return 1;
    }
  }
  spdlog::info("{} workers; {}", workers, pool.front()->features());

  WorkloadManager manager(zdsSocket, sockets, pool, certificates.get(), trustDomain);
  auto allConnections = [&pool] {
    std::vector<ConnectionInfo> out;
    for (auto& w : pool) {
      auto c = w->connections();
      out.insert(out.end(), c.begin(), c.end());
    }
    return out;
  };
  auto identityView = [&pool, &certificates, &controllerLink](bool withConnections) {
    IdentityView view;
    if (controllerLink) view.nodeCredential = controllerLink->credential();
    if (certificates) view.certificates = certificates->describe();
    if (!withConnections) return view;
    for (auto& w : pool) {
      auto c = w->hboneConnections();
      view.hboneConnections.insert(view.hboneConnections.end(), c.begin(), c.end());
    }
    return view;
  };
  HttpServer http(/*reusePort=*/true);  // a successor binds the same ports during an upgrade
  // Live connection count without building the connection list (cheap enough to poll).
  auto activeCount = [&pool] {
    size_t active = 0;
    for (auto& w : pool) active += w->liveConnections();
    return HttpResponse{200, "application/json", fmt::format("{{\"active\":{}}}\n", active)};
  };
  auto listened = http.listen(adminAddress, {{"/stats/connections", activeCount},
                                             {"/config_dump", [&] {
                                                return HttpResponse{200, "application/json",
                                                                    configDump(manager.pods(), *config.current(),
                                                                               allConnections(), pool.front()->features(),
                                                                               identityView(true), &traffic)
                                                                            .dump(2)};
                                              }}});
  auto metrics = [&] {
    return HttpResponse{200, "text/plain; version=0.0.4",
                        prometheusText(manager.pods(), identityView(false), &traffic)};
  };
  if (listened) listened = http.listen(metricsAddress, {{"/metrics", metrics}, {"/stats/prometheus", metrics}});
  if (listened) {
    listened = http.listen(readyAddress, {{"/healthz/ready", [&] {
                                             return manager.ready() ? HttpResponse{200, "text/plain", "ready\n"}
                                                                    : HttpResponse{503, "text/plain",
                                                                                   "waiting for the node agent's snapshot\n"};
                                           }}});
  }
  if (!listened) {
    spdlog::error("admin endpoints: {}", listened.error().message());
    return 1;
  }
  http.start();

  std::atomic<bool> stopping{false};
  manager.setOnReplaced([&] {
    http.stop();  // the successor answers 15000/15020/15021 from now on
  });
  if (!controller.empty()) {
    manager.setConnectCheck([&config] { return config.current()->version > 0 ? "" : "the controller's first configuration"; });
  }
  std::thread control([&] { manager.run(stopping); });
  std::unique_ptr<ConfigClient> configClient;
  std::thread xds, certificateThread, credentialThread;
  if (controllerLink) {
    configClient = std::make_unique<ConfigClient>(controllerLink->source(), nodeName, config, &traffic);
    xds = std::thread([&] { configClient->run(stopping); });
    credentialThread = std::thread([&] { controllerLink->run(stopping); });
  }
  if (certificates) certificateThread = std::thread([&] { certificates->run(stopping); });
  signalfd_siginfo info;
  while (::read(signalFd.get(), &info, sizeof(info)) < 0 && errno == EINTR) {
  }
  // Waits `timeout` for `done`; false when a second signal asked to stop at once.
  auto waitFor = [&](std::chrono::milliseconds timeout, auto done) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      pollfd p{signalFd.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) return false;
    }
    return true;
  };
  bool patient = true;
  if (!manager.replaced() && handoverWaitMs > 0) {
    spdlog::info("stopping: serving up to {} ms for a newer tunnel to take over", handoverWaitMs);
    patient = waitFor(std::chrono::milliseconds(handoverWaitMs), [&] { return manager.replaced(); });
  }
  if (patient && manager.replaced()) {
    // Drained: no connection left, and a second since the hand-over, so a stream a peer opened
    // before our GOAWAY reached it has arrived and counts.
    auto drained = [&] {
      size_t active = 0;
      for (auto& w : pool) active += w->liveConnections();
      return active == 0 && std::chrono::steady_clock::now() - manager.replacedAt() >= std::chrono::seconds(1);
    };
    auto left = manager.replacedAt() + std::chrono::milliseconds(drainTimeoutMs) + std::chrono::seconds(1) -
                std::chrono::steady_clock::now();
    spdlog::info("stopping: replaced, draining");
    waitFor(std::max(std::chrono::duration_cast<std::chrono::milliseconds>(left), std::chrono::milliseconds(0)), drained);
  }
  spdlog::info("stopping");
  stopping = true;
  control.join();
  if (xds.joinable()) xds.join();
  if (certificateThread.joinable()) certificateThread.join();
  if (credentialThread.joinable()) credentialThread.join();
  http.stop();
  for (auto& w : pool) w->stop();
  return 0;
}
