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

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "http2/http2_session.h"
#include "l7/http2_fields.h"
#include "proxy/http_request_routing.h"
#include "proxy/l7_connection.h"
#include "proxy/request_record.h"

namespace sluice::ztunnel {

class Http2Outbound final : public L7Connection {
 public:
  // Frames waiting for one side's socket; above it that side's peer is not read (a peer that
  // sends and never reads gets backpressure, not our memory).
  static constexpr size_t kMaxOutgoing = 1 << 20;

  using L7Connection::L7Connection;
  // After the loop has added the handler (its socket's operations name it).
  void start(UniqueFd fd);

 private:
  // Bytes towards an endpoint whose write() may keep a pointer to them until they are taken:
  // frames are produced into `staging`, the endpoint is offered `sending`, which does not
  // change while offered.
  struct Outgoing {
    std::string sending, staging;
    size_t offset = 0;
    size_t size() const { return sending.size() - offset + staging.size(); }
  };
  // The HTTP/2 connection carried by upstream slot i (beside upstreams_[i]).
  struct UpstreamSession {
    std::unique_ptr<http2::Http2Session> session;
    Outgoing out;
    std::map<int32_t, int32_t> streams;  // upstream stream -> the app's stream
  };
  // A request waiting out its route's fault delay: what it was routed to, and its head.
  struct Delayed {
    HttpRouting routing;
    l7::Http2Request request;
  };
  // One request of the app, by its stream.
  struct Exchange {
    int upstream = -1;       // slot; -1: answered locally (or not routed yet)
    int32_t upStream = 0;    // 0: not yet sent upstream
    // The routed head: kept after it was sent while the request can go again (all of its body
    // sent so far is in replayBody); `pending` while it waits to be submitted to `upstream`.
    http2::Fields request;
    std::string replayBody;  // what the tries sent of the body, at most kMaxReplayBody
    bool pending = false;
    bool grpc = false;
    bool requestDone = false;   // END_STREAM (with trailers) passed upstream
    bool responded = false;     // a response head went to the app
    bool responseDone = false;  // END_STREAM (with trailers) passed to the app
    std::shared_ptr<const ConfigSnapshot> config;  // keeps the route's response edits alive
    const l7::HeaderEdits* responseEdits = nullptr;
    std::vector<l7::HttpHeader> responseAdd;  // fields routing adds to the response
    RequestRecord record;  // for metrics and the access log, ended when the app's stream closes
    std::optional<Delayed> delayed;  // set: waiting until delayUntil
    std::chrono::steady_clock::time_point delayUntil;
    std::chrono::milliseconds timeout{0};  // the route's (0: none)
    std::optional<std::chrono::steady_clock::time_point> timeoutAt;  // set once the request ended
    std::optional<std::chrono::steady_clock::time_point> tryTimeoutAt;  // retries.perTryTimeout of the current try
    std::string method;
    std::optional<HttpRouting> tried;  // where the current try went (retries pick again from it)
    int retries = 0;
    bool mirrorSent = false;  // the copy went to the route's mirror (or was dropped)
    std::optional<HttpRouting> retryRouting;  // a retry waiting out its backoff, until retryAt
    std::optional<std::chrono::steady_clock::time_point> retryAt;
    OutlierTarget outlier;  // the endpoint, until its outcome is noted
  };

  void pump() override;
  void finish(bool reset) override;
  void upstreamConnectFailed(int slot) override { failUpstream(slot); }
  void clearUpstream(int slot) override { sessions_[slot] = UpstreamSession{}; }
  bool upstreamIdle(int slot) const override {
    return std::none_of(exchanges_.begin(), exchanges_.end(), [slot](const auto& e) { return e.second.upstream == slot; });
  }

  bool readFrom(Endpoint& from, http2::Http2Session& session, bool fromClient, bool& eof, bool& failed);
  bool flushTo(Endpoint& to, http2::Http2Session& session, Outgoing& out, bool toClient, bool& failed);
  bool handleClientEvents();
  bool handleUpstreamEvents(int slot);
  bool moveBodies();
  bool sendPendingRequests();
  void routeRequest(int32_t stream);
  // Carries out the routing decision for the app's stream: a local answer or an upstream.
  void dispatch(int32_t stream, Exchange& exchange, HttpRouting routing, l7::Http2Request request);
  // Sends the (decorated) request to `routing`'s endpoint: the first try or a retry.
  void sendTo(int32_t stream, Exchange& exchange, HttpRouting routing);
  // After a failed try whose response has not begun: true when the request goes again (after
  // a backoff, to another endpoint when there is one); the failed stream is reset.
  bool retry(Exchange& exchange, const l7::AttemptResult& result);
  // `body` goes upstream: kept for a retry while the whole body so far fits.
  static constexpr size_t kMaxReplayBody = 64 << 10;
  void keepForReplay(Exchange& exchange, const std::string& body);
  void onTimer(std::chrono::steady_clock::time_point now) override;
  // The request was sent whole: the route's timeout starts (once), and the try's.
  void startTimeout(Exchange& exchange);
  // The request was sent whole: a copy goes to the route's mirror, if it has one (once).
  void sendMirror(Exchange& exchange);
  // The route's timeout passed before the response ended: 504 UT, or a reset once it began.
  void timeOut(int32_t stream, Exchange& exchange);
  void respondLocally(int32_t stream, Exchange& exchange, const LocalAnswer& answer);
  // A gRPC request's grpc-status, from the response head (trailers-only) or its trailers.
  void noteGrpcStatus(Exchange& exchange, const http2::Fields& fields);
  // `connectFailed`: the upstream connection was never made (the request never left).
  void upstreamStreamFailed(int32_t stream, Exchange& exchange, uint32_t errorCode, bool connectFailed = false);
  // The exchange needs its upstream stream no more (both directions done, or it failed).
  void releaseUpstreamStream(Exchange& exchange);
  // The same when the app's side is over or the try is given up: a stream whose response has
  // not ended is reset (CANCEL) first.
  void cancelUpstreamStream(Exchange& exchange);
  void failUpstream(int slot);
  // The slot of a connection to `routing`'s endpoint that takes another stream (opening one if
  // needed; the request's pending count goes into `record` while it is being made), or
  // kNoSlot (all slots in use), kConnectFailed, or an overflow of the destination's
  // http1MaxPendingRequests or maxConnections.
  static constexpr int kNoSlot = -1, kConnectFailed = -2, kPendingOverflow = -3, kConnectionOverflow = -4;
  int acquireUpstream(const HttpRouting& routing, RequestRecord& record);
  bool usable(int slot) const { return upstreams_[slot].endpoint && !upstreams_[slot].closing && upstreams_[slot].connected; }

  std::unique_ptr<http2::Http2Session> downSession_;
  Outgoing downOut_;
  std::array<UpstreamSession, kMaxUpstreams> sessions_;
  std::map<int32_t, Exchange> exchanges_;
  bool clientEof_ = false;
  bool goingAway_ = false;      // GOAWAY sent to the app (its pod is draining)
  bool protocolError_ = false;  // the app broke HTTP/2: its GOAWAY is flushed, then a reset
};

}  // namespace sluice::ztunnel
