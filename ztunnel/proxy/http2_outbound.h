// Outbound HTTP/2 and gRPC (a connection an app opened to an HTTP2 or GRPC port of a service,
// speaking prior-knowledge HTTP/2): the tunnel terminates the app's HTTP/2 and routes every
// stream on its own (proxy/http_request_routing.h), so the calls of one long-lived gRPC
// channel spread over subsets and endpoints instead of sticking to the one its connection
// reached. Requests to the same endpoint are multiplexed over one upstream HTTP/2 connection
// (over HBONE or TCP), kept for the next requests.
//
//   app --h2--> [Http2Session server] --route per stream--> [Http2Session client per endpoint] --h2--> endpoint
//
// Bodies move between the two sessions' stream queues with end-to-end flow control: bytes the
// app sent are reported consumed (its window reopened) only once the upstream stream took
// them below its high water, and the same for responses. Trailers (grpc-status) are carried
// both ways. A gRPC request answered by the tunnel itself (no route, no endpoint, upstream
// failure) gets a trailers-only gRPC answer with the grpc-status the HTTP status maps to.
//
// Invariants: bytes handed to an endpoint's write() are never moved or changed until it took
// them (Outgoing); an upstream connection is closed only when none of its streams is in use;
// an endpoint is destroyed only when quiescent.
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "engine/endpoint.h"
#include "engine/event_loop.h"
#include "http2/http2_session.h"
#include "proxy/config_snapshot.h"
#include "proxy/http_request_routing.h"
#include "proxy/worker_context.h"
#include "sluice/common/socket_address.h"
#include "sluice/common/unique_fd.h"

namespace sluice::ztunnel {

class Http2Outbound final : public IoHandler, public EndpointOwner {
 public:
  static constexpr int kMaxUpstreams = 8;  // upstream connections one app connection keeps
  static constexpr uint8_t kOpStride = 8;  // op codes per endpoint (>= SocketEndpoint::kOpCount)
  // Frames waiting for one side's socket; above it that side's peer is not read (a peer that
  // sends and never reads gets backpressure, not our memory).
  static constexpr size_t kMaxOutgoing = 1 << 20;

  Http2Outbound(WorkerContext& context, std::shared_ptr<PodRuntime> pod, SocketAddress peer, SocketAddress service);
  ~Http2Outbound() override;
  // After the loop has added the handler (its socket's operations name it).
  void start(UniqueFd fd);

  void onCompletion(uint8_t op, int res, uint32_t flags) override;
  void onTick(std::chrono::steady_clock::time_point now) override;
  void onBuffersAvailable() override;
  void onEndpointProgress() override { pump(); }
  void onEndpointConnected(Endpoint& endpoint, bool ok, FailReason reason) override;

 private:
  // Bytes towards an endpoint whose write() may keep a pointer to them until they are taken:
  // frames are produced into `staging`, the endpoint is offered `sending`, which does not
  // change while offered.
  struct Outgoing {
    std::string sending, staging;
    size_t offset = 0;
    size_t size() const { return sending.size() - offset + staging.size(); }
  };
  struct Upstream {
    std::unique_ptr<Endpoint> endpoint;
    std::unique_ptr<http2::Http2Session> session;
    std::string key;  // the endpoint's address
    Outgoing out;
    std::map<int32_t, int32_t> streams;  // upstream stream -> the app's stream
    bool connected = false, closing = false;
  };
  // One request of the app, by its stream.
  struct Exchange {
    int upstream = -1;       // slot; -1: answered locally (or not routed yet)
    int32_t upStream = 0;    // 0: not yet sent upstream
    http2::Fields request;   // the routed head, until sent
    bool grpc = false;
    bool requestDone = false;   // END_STREAM (with trailers) passed upstream
    bool responded = false;     // a response head went to the app
    bool responseDone = false;  // END_STREAM (with trailers) passed to the app
    std::shared_ptr<const ConfigSnapshot> config;  // keeps the route's response edits alive
    const l7::HeaderEdits* responseEdits = nullptr;
  };

  void pump();
  bool readFrom(Endpoint& from, http2::Http2Session& session, bool fromClient, bool& eof, bool& failed);
  bool flushTo(Endpoint& to, http2::Http2Session& session, Outgoing& out, bool toClient, bool& failed);
  bool handleClientEvents();
  bool handleUpstreamEvents(int slot);
  bool moveBodies();
  bool sendPendingRequests();
  void routeRequest(int32_t stream);
  void respondLocally(int32_t stream, Exchange& exchange, const LocalAnswer& answer);
  void upstreamStreamFailed(int32_t stream, Exchange& exchange, uint32_t errorCode);
  // The exchange needs its upstream stream no more (both directions done, or it failed).
  void releaseUpstreamStream(Exchange& exchange);
  void failUpstream(int slot);
  int acquireUpstream(const SocketAddress& address, const std::shared_ptr<const WorkloadEntry>& workload);
  int slotOf(const Endpoint& endpoint) const;
  void closeUpstream(Upstream& u, bool reset);
  void reapClosedUpstreams();
  void finish(bool reset);
  void maybeRetire();

  WorkerContext& context_;
  std::shared_ptr<PodRuntime> pod_;
  SocketAddress peer_, service_;
  std::unique_ptr<Endpoint> down_;
  std::unique_ptr<http2::Http2Session> downSession_;
  Outgoing downOut_;
  std::array<Upstream, kMaxUpstreams> upstreams_;
  std::map<int32_t, Exchange> exchanges_;
  bool clientEof_ = false, finishing_ = false, retired_ = false, pumping_ = false;
  std::chrono::steady_clock::time_point lastActivity_;
};

}  // namespace sluice::ztunnel
