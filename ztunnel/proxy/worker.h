// A data-plane worker: one thread running one EventLoop (engine/event_loop.h). It owns its
// pods' listeners and every connection they accept; a connection never leaves its worker, and
// both of its sides are served by the same ring (no cross-CPU hand-off per byte).
//
// What runs on a worker, one handler type per connection kind:
//   Listener + OutboundAcceptor            proxy/outbound.h            15001, app -> anywhere
//   Listener + InboundPassthroughAcceptor  proxy/inbound_passthrough.h 15006, plaintext -> app
//   Listener + HboneServerAcceptor         proxy/hbone_server.h        15008, HBONE -> app
//   HboneClient (pooled, HbonePool)        proxy/hbone_client.h        pod -> peer's 15008
//   Relay (two endpoints: sockets or HBONE streams)  engine/relay.h
//
// Other threads talk to a worker only through post(); nothing else is shared except the pods'
// atomic counters, the immutable configuration snapshot and the per-source caps.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/event_loop.h"
#include "engine/relay.h"
#include "proxy/hbone_client.h"
#include "proxy/hbone_link.h"
#include "proxy/node_traffic_state.h"
#include "proxy/pod_socket_factory.h"
#include "proxy/worker_context.h"

namespace sluice::ztunnel {

enum class ListenerKind { kOutbound, kInbound, kHbone };

class Worker {
 public:
  // `certificates` may be null: no identities on this node, so no HBONE (plaintext only).
  // `origDst` may be null (tests): outbound accepts are refused. The factory and the limits
  // must outlive the worker.
  Worker(WorkerOptions options, const SnapshotStore& config, const agent::OrigDstTable* origDst,
         const CertificateManager* certificates, const PodSocketFactory& sockets, SourceLimits& limits,
         NodeTrafficState* traffic = nullptr);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Sets up the loop and starts the thread; fails when the ring can't be created.
  Status start();
  void stop();
  std::string features() const { return features_; }

  // Runs `task` on the worker thread.
  void post(std::function<void()> task);

  // Worker-thread only (call through post()).
  void addListener(UniqueFd fd, ListenerKind kind, std::shared_ptr<PodRuntime> pod);
  // Stops the pod's listeners; its connections drain until the drain timeout, then are reset.
  void drainPod(const std::shared_ptr<PodRuntime>& pod);
  // A newer tunnel took the pod over: as drainPod (what waits in the listeners' queues moves to
  // the successor's listeners, see ListenerMigration), and HBONE peers get a GOAWAY so their next
  // streams go to the successor while the ones they open meanwhile are still served.
  void handOverPod(const std::shared_ptr<PodRuntime>& pod);

  // Snapshots for the admin thread (block until the worker answers).
  std::vector<ConnectionInfo> connections();
  std::vector<PoolInfo> hboneConnections();
  size_t liveConnections() const { return live_.load(); }
  // Open handlers of every kind (listeners, relays, HBONE connections): for leak checks.
  size_t handlers();

 private:
  template <typename View>
  auto ask(View view) -> decltype(view()) {
    std::promise<decltype(view())> promise;
    auto future = promise.get_future();
    post([&] { promise.set_value(view()); });
    return future.get();
  }

  WorkerOptions options_;
  const SnapshotStore& config_;
  const agent::OrigDstTable* origDst_;
  const CertificateManager* certificates_;
  const PodSocketFactory& sockets_;
  SourceLimits& limits_;
  NodeTrafficState* traffic_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<HbonePool<HboneClient>> pool_;
  std::unique_ptr<WorkerContext> context_;
  std::string features_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> live_{0};
};

}  // namespace sluice::ztunnel
