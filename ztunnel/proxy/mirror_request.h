// A mirrored copy of one request (VirtualService `mirror`): fire and forget. The copy goes to
// an endpoint of the mirror destination over HBONE or TCP, as any request of the source pod
// would (its identity, its network namespace); whatever comes back is read and dropped, and
// the handler retires when the mirror has answered, failed, or its deadline passed.
//
// Nothing flows back to the primary exchange: a mirror that hangs or fails never slows or
// fails it. It only holds its own connection, and a worker has at most kMaxInFlight of them;
// a copy beyond that is dropped and counted (sluice_mirror_requests_total{outcome="dropped"}).
//
// The copy speaks what the primary's upstream speaks: HTTP/1.1 copies carry
// `Connection: close` (the server's close ends the exchange: no response parsing), HTTP/2 ones
// are one stream on a connection of their own.
//
// Invariants: bytes offered to the endpoint's write() are never changed until taken (frames
// are produced only into an emptied buffer); the endpoint is destroyed only when quiescent.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "engine/endpoint.h"
#include "engine/event_loop.h"
#include "http2/http2_session.h"
#include "proxy/mirror_stats.h"
#include "proxy/pod_runtime.h"
#include "proxy/upstream.h"
#include "proxy/worker_context.h"

namespace sluice::ztunnel {

struct MirrorCopy {
  UpstreamTarget upstream;
  std::string destination;  // the mirror's service ("namespace/name"), for metrics
  // HTTP/1.1: the head (Connection: close) and the framed body, as sent. HTTP/2 (`http2`):
  // the request's fields and its body (DATA payload).
  bool http2 = false;
  std::string http1;
  http2::Fields fields;
  std::string body;
  std::chrono::steady_clock::time_point deadline;
};

class MirrorRequest final : public IoHandler, public EndpointOwner {
 public:
  static constexpr size_t kMaxInFlight = 128;  // per worker
  static constexpr size_t kMaxBody = 64 << 10;  // a bigger body is not mirrored (the retry buffer's bound)
  // A copy's deadline when its route sets no timeout (Envoy's default route timeout).
  static constexpr std::chrono::seconds kDefaultTimeout{15};

  MirrorRequest(WorkerContext& context, std::shared_ptr<PodRuntime> pod, MirrorCopy copy);
  ~MirrorRequest() override;
  MirrorRequest(const MirrorRequest&) = delete;
  MirrorRequest& operator=(const MirrorRequest&) = delete;

  // After the loop added the handler: opens the connection (the handler retires on failure).
  void start();

  void onCompletion(uint8_t op, int res, uint32_t flags) override;
  void onTick(std::chrono::steady_clock::time_point now) override;
  void onBuffersAvailable() override;
  void onEndpointProgress() override { pump(); }
  void onEndpointConnected(Endpoint& endpoint, bool ok, FailReason reason) override;

 private:
  void pump();
  bool flush();           // writes what is produced; false while the endpoint takes no more
  bool readResponse();    // false while nothing more can be read now
  void handleSessionEvents();
  void finish(bool answered, bool reset);
  void maybeRetire();

  WorkerContext& context_;
  std::shared_ptr<PodRuntime> pod_;
  MirrorCopy copy_;
  std::unique_ptr<Endpoint> endpoint_;
  std::unique_ptr<http2::Http2Session> session_;  // HTTP/2 copies
  int32_t stream_ = 0;
  std::string sending_;  // offered to the endpoint from `offset_`; refilled only once all taken
  size_t offset_ = 0;
  bool connected_ = false, finishing_ = false, retired_ = false, pumping_ = false;
};

// Counts `outcome` for the mirror `destination` in the node's counts (none in tests).
void countMirror(WorkerContext& context, const std::string& destination, MirrorStats::Outcome outcome);

// Sends `copy` from `pod` unless the worker has kMaxInFlight mirrors in flight (then it is
// dropped and counted).
void launchMirror(WorkerContext& context, const std::shared_ptr<PodRuntime>& pod, MirrorCopy copy);

}  // namespace sluice::ztunnel
