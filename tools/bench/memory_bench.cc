#include "memory_bench.h"

#include <fmt/format.h>

#include <thread>

#include "process_usage.h"
#include "sluice/common/process.h"
#include "sluice/common/socket_address.h"

namespace sluice::bench {
namespace {

using namespace std::chrono_literals;

size_t enrolledPods(const sim::MeshNode& node) {
  auto dump = node.configDump();
  if (!dump) return 0;
  auto pods = dump->find("pods");
  return pods != dump->end() && pods->is_array() ? pods->size() : 0;
}

// Waits for `count` pods in the tunnel's configuration.
Status waitForEnrolled(const sim::MeshNode& node, size_t count, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (enrolledPods(node) < count) {
    if (std::chrono::steady_clock::now() > deadline) {
      return fail(fmt::format("only {} of {} pods enrolled", enrolledPods(node), count));
    }
    std::this_thread::sleep_for(200ms);
  }
  return {};
}

// Holds `count` connections from `pod` to `to` (sluice-tcpcheck hold) until the child is dropped.
Result<ChildProcess> holdConnections(const sim::Cluster& cluster, const std::string& pod, const std::string& to, int count) {
  SLUICE_TRY_ASSIGN(child, cluster.runInPod(pod, {.argv = {siblingProgram("sluice-tcpcheck"), "hold", "--to", to, "--count",
                                                           std::to_string(count)},
                                                  .captureOutput = true,
                                                  .feedStdin = true}));
  SLUICE_TRY_ASSIGN(line, readLine(child.stdoutPipe(), std::chrono::seconds(120)));
  if (line != fmt::format("held {}", count)) return fail(fmt::format("hold to {}: {}", to, line));
  return child;
}

void release(ChildProcess& held) {
  held.stdinPipe().reset();  // tcpcheck hold closes its connections at end of input
  (void)held.wait(std::chrono::seconds(60));
}

}  // namespace

Result<std::vector<Row>> runMemoryRows(sim::Cluster& cluster, std::vector<std::unique_ptr<sim::MeshNode>>& mesh,
                                       int enrolledPodCount, int connections) {
  std::vector<Row> rows;
  sim::MeshNode& client = *mesh.at(0);
  sim::MeshNode& server = *mesh.at(1);

  // Idle with 100 enrolled pods on node0 (its tunnel already has c-mesh).
  size_t before = enrolledPods(client);
  uint64_t anonBefore = anonymousRssKiB(client.tunnelPid());
  std::vector<std::string> added;
  for (size_t i = before; i < static_cast<size_t>(enrolledPodCount); ++i) {
    std::string name = fmt::format("idle-{}", i);
    SLUICE_TRY(cluster.addPod(0, name), "an idle pod");
    added.push_back(name);
  }
  SLUICE_TRY(waitForEnrolled(client, static_cast<size_t>(enrolledPodCount), 120s), "enrolment");
  std::this_thread::sleep_for(2s);  // settled: the pods' listeners and state are in place
  uint64_t idleKiB = rssKiB(client.tunnelPid()), anonKiB = anonymousRssKiB(client.tunnelPid());
  rows.push_back({.metric = fmt::format("tunnel RSS idle, {} pods", enrolledPodCount), .unit = "MiB", .path = "node0 tunnel",
                  .value = double(idleKiB) / 1024});
  // Most of RSS is the text of shared libraries (gRPC, libcrypto, libstdc++), shared with every
  // process that maps them; the anonymous part is the tunnel's own.
  rows.push_back({.metric = fmt::format("tunnel anon RSS idle, {} pods", enrolledPodCount), .unit = "MiB",
                  .path = "node0 tunnel", .value = double(anonKiB) / 1024});
  if (!added.empty() && anonKiB > anonBefore) {
    rows.push_back({.metric = "anon RSS per enrolled pod", .unit = "KiB", .path = "node0 tunnel",
                    .value = double(anonKiB - anonBefore) / double(added.size())});
  }
  for (const auto& name : added) (void)cluster.removePod(name);

  struct Target {
    const char* name;
    const char* server;
  };
  for (Target target : {Target{"plain", "s-mesh"}, Target{"HBONE", "s-mtls"}}) {
    std::string to = sim::withPort(cluster.pod(target.server)->ipv4, 8080);
    {
      // Warm-up: slot tables, pools and allocator arenas reach their working size.
      SLUICE_TRY_ASSIGN(warm, holdConnections(cluster, "c-mesh", to, connections));
      release(warm);
    }
    std::this_thread::sleep_for(1s);
    uint64_t clientBefore = rssKiB(client.tunnelPid()), serverBefore = rssKiB(server.tunnelPid());
    SLUICE_TRY_ASSIGN(held, holdConnections(cluster, "c-mesh", to, connections));
    std::this_thread::sleep_for(1s);
    uint64_t clientHeld = rssKiB(client.tunnelPid()), serverHeld = rssKiB(server.tunnelPid());
    release(held);
    auto perConnection = [&](uint64_t heldKiB, uint64_t beforeKiB) {
      return heldKiB > beforeKiB ? double(heldKiB - beforeKiB) * 1024 / connections : 0.0;
    };
    rows.push_back({.metric = "RSS per idle connection", .unit = "bytes", .path = fmt::format("{}, client tunnel", target.name),
                    .value = perConnection(clientHeld, clientBefore)});
    rows.push_back({.metric = "RSS per idle connection", .unit = "bytes", .path = fmt::format("{}, server tunnel", target.name),
                    .value = perConnection(serverHeld, serverBefore)});
  }
  return rows;
}

}  // namespace sluice::bench
