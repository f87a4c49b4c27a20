// One relayed connection: bytes copied both ways between a downstream endpoint (the client's
// side) and an upstream endpoint (the server's side). Either may be a socket or an HBONE
// stream; the relay never asks which (ztunnel's copy.rs: one bidirectional copy over any two
// endpoints).
//
// Rules, per direction (a Flow):
//   - read chunks queue (up to kDepth) and are written strictly in order; the next read
//     overlaps the current write; with the queue full the relay stops reading, so a slow
//     reader stops the fast writer (backpressure; memory per connection is bounded by kDepth
//     chunks per direction and is zero while idle);
//   - EOF from one side becomes a half-close (shutdownWrite) of the other once every queued
//     byte is out; the other direction flows on;
//   - an error on either side aborts both with a reset;
//   - nothing flows before the upstream is established (connected, or CONNECT answered 200),
//     except the client's bytes towards an upstream that takes early writes (an HBONE stream:
//     the app's first bytes follow the CONNECT without waiting a round trip for its 200; the
//     server holds them until its own upstream connects, and drops them if it refuses).
// The relay finishes when both directions are done (or it aborted) and neither endpoint has
// an operation in flight; then it closes both and retires.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/endpoint.h"
#include "engine/event_loop.h"
#include "proxy/pod_runtime.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

// What /config_dump shows of a connection.
struct ConnectionInfo {
  std::string pod;
  std::string direction;
  std::string peer, target;
  std::string state;
  uint64_t bytesFromClient = 0, bytesToClient = 0;
  std::string protocol = "TCP";  // "HBONE" when one side is an HBONE stream
  std::string peerIdentity;      // HBONE: the verified identity of the other end
};

struct RelayInfo {
  std::shared_ptr<PodRuntime> pod;
  Direction direction = Direction::kOutbound;
  SocketAddress peer, target;
  std::string protocol = "TCP";
  std::string peerIdentity;
  std::shared_ptr<TcpSeries> series;  // Istio's TCP metrics by peer (may be null: not counted there)
  // Told once whether the upstream connected (outlier detection of TCP services); may be empty.
  std::function<void(bool connected)> connectOutcome;
  // The upstream must be established this soon after the relay starts, checked at the loop's
  // tick (a backstop for what has no timeout of its own: an HBONE CONNECT never answered;
  // socket connects have theirs); 0: no deadline.
  std::chrono::milliseconds connectTimeout{0};
  // The destination's idle timeout (no bytes either way), else the worker's (set by
  // newRelay); 0: none. Checked at the tick.
  std::optional<std::chrono::milliseconds> idleTimeout;
  // Closed this long after it started (DestinationRule tcp.maxConnectionDuration); 0: never.
  std::chrono::milliseconds maxDuration{0};
};

class Relay final : public IoHandler, public EndpointOwner {
 public:
  static constexpr int kDepth = 4;
  // io_uring op codes: the downstream endpoint's from kDownOps, the upstream's from kUpOps.
  static constexpr uint8_t kDownOps = 0, kUpOps = 16;

  // `live` counts the worker's relays (read by the admin thread); may be null. `idleTimeout`
  // applies unless `info` has one of its own (0: none).
  Relay(EventLoop& loop, RelayInfo info, std::chrono::milliseconds idleTimeout, std::atomic<size_t>* live);
  ~Relay() override;

  // Endpoints come after construction: a socket endpoint names the relay as its handler. With
  // an upstream that takes early writes, the client's bytes start flowing at once.
  void attach(std::unique_ptr<Endpoint> down, std::unique_ptr<Endpoint> up);
  // Keeps `resource` (e.g. a per-source connection lease) until the relay is destroyed.
  void hold(std::shared_ptr<void> resource) { held_ = std::move(resource); }
  void abort(bool reset);
  ConnectionInfo describe() const;
  const RelayInfo& info() const { return info_; }
  void setPeerIdentity(std::string identity) { info_.peerIdentity = std::move(identity); }
  bool connected() const { return connected_; }

  void onCompletion(uint8_t op, int res, uint32_t flags) override;
  void onTick(std::chrono::steady_clock::time_point now) override;
  void onBuffersAvailable() override;
  void onEndpointProgress() override;
  void onEndpointConnected(Endpoint& endpoint, bool ok, FailReason reason) override;

 private:
  void countClosed();  // pod counters and the peer series
  struct Flow {
    Endpoint* from = nullptr;
    Endpoint* to = nullptr;
    std::array<Chunk, kDepth> queue{};
    int head = 0, count = 0;
    size_t offset = 0;  // bytes of the head chunk already written
    bool eof = false, shutdownDone = false;
    uint64_t bytes = 0;
    bool done() const { return eof && shutdownDone; }
  };
  void pump();
  bool pumpFlow(Flow& flow, bool fromClient);
  void maybeFinish();
  void releaseQueued(Flow& flow);
  void endFlow(Flow& flow);

  EventLoop& loop_;
  RelayInfo info_;
  std::chrono::milliseconds idleTimeout_;
  std::atomic<size_t>* live_;
  std::unique_ptr<Endpoint> down_, up_;
  Flow toUp_, toDown_;
  std::chrono::steady_clock::time_point lastActivity_;
  std::chrono::steady_clock::time_point started_;
  std::shared_ptr<void> held_;
  bool connected_ = false, counted_ = false, aborting_ = false, finished_ = false, pumping_ = false;
};

}  // namespace sluice::ztunnel
