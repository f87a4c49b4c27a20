// Outbound HTTP/1.1 (a connection an app opened to an HTTP port of a service): the tunnel
// terminates the app's HTTP, routes every request on its own (l7/http_route.h: the
// VirtualService's http routes, the weighted choice and the endpoint are decided per request,
// so one keep-alive connection spreads over subsets), and sends it to the chosen endpoint over
// HBONE or TCP, keeping upstream connections alive for the next request to the same endpoint.
//
// One exchange at a time (pipelined requests wait in the receive buffer, as RFC 9112 allows):
//   request:  head parsed -> routed -> upstream ready -> head (edited) written -> raw body
//   response: head parsed -> edited -> written -> raw body -> exchange complete
// Bodies are forwarded as the raw bytes that frame them, from the receive buffer, with
// backpressure: a chunk is released only once written, and the next read waits for that.
// A response with `Upgrade` (101) turns the connection into an opaque two-way copy.
//
// Invariants: at most one upstream is busy (the current exchange's); idle upstreams keep a
// read armed so a server that closes one is noticed and it is dropped, never reused; an
// endpoint is destroyed only when quiescent (no io_uring operation can still name it).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "l7/http1_parser.h"
#include "proxy/l7_connection.h"
#include "proxy/request_record.h"

namespace sluice::ztunnel {

class HttpOutbound final : public L7Connection {
 public:
  using L7Connection::L7Connection;
  // After the loop has added the handler (its socket's operations name it).
  void start(UniqueFd fd);

 private:
  enum class Request { kHead, kDelayed, kConnecting, kSending, kSent, kDiscarding, kTunnel };
  enum class Response { kNone, kHead, kBody, kLocal, kTunnel };
  // Bytes read from an endpoint, parsed from `offset` on.
  struct Input {
    std::optional<Chunk> chunk;
    size_t offset = 0;
    std::span<const uint8_t> rest() const {
      return chunk ? std::span<const uint8_t>(chunk->data + offset, chunk->length - offset) : std::span<const uint8_t>{};
    }
  };
  // What is being written towards one side: an owned head, then body bytes inside an Input.
  struct Output {
    std::string head;
    size_t headOffset = 0;
    std::span<const uint8_t> body;
    bool empty() const { return headOffset == head.size() && body.empty(); }
  };

  void pump() override;
  void finish(bool reset) override;
  void upstreamConnectFailed(int slot) override;
  bool upstreamIdle(int slot) const override {
    return &upstreams_[slot] != current_ && upstreams_[slot].connected;
  }
  bool pumpRequest();
  bool pumpResponse();
  bool pumpIdleUpstreams();
  // Writes what `out` holds to `to`; false while the endpoint takes no more (or it failed:
  // `failed` set).
  bool flush(Output& out, Endpoint& to, bool& failed, bool toClient);
  bool readInto(Input& in, Endpoint& from, bool& eof, bool& failed, bool fromClient);
  void releaseIfConsumed(Input& in, Endpoint& from, const Output& pending);
  void routeRequest();
  // Carries out the routing decision: the local answer, or the upstream it chose.
  void dispatch(HttpRouting routing);
  // Sends the (decorated) request to `routing`'s endpoint: the first try or a retry.
  void sendTo(HttpRouting routing);
  // After a failed try: true when the request goes again (after a backoff, to another
  // endpoint when there is one); the failed upstream is dropped.
  bool retryAfter(const l7::AttemptResult& result);
  // The first try forwarded `body`: kept for a retry while the whole body so far fits.
  void keepForReplay(std::span<const uint8_t> body);
  // The request was sent whole: a copy goes to the route's mirror, if it has one (once).
  void sendMirror();
  void onTimer(std::chrono::steady_clock::time_point now) override;
  // The request was sent whole: the route's timeout starts (once), and the try's.
  void startTimeouts();
  // The current upstream is given up (reset): the client gets `status` with `flag` if nothing
  // of the response went out yet, else a reset.
  void abandonUpstream(int status, std::string_view flag, std::string_view message);
  // Resets the current exchange's upstream connection; what it sent back and was not read is
  // let go with it.
  void dropCurrentUpstream();
  void respondLocally(int status, std::string_view flag, std::string_view body, bool close,
                      const std::vector<l7::HttpHeader>& extra = {});
  void completeExchange();
  void upstreamBroke();
  UpstreamSlot* acquireUpstream(const std::string& key);
  int indexOf(const UpstreamSlot& u) const { return static_cast<int>(&u - upstreams_.data()); }
  bool pumpTunnel();

  UpstreamSlot* current_ = nullptr;
  l7::Http1Parser requestParser_{l7::Http1Parser::Kind::kRequest};
  l7::Http1Parser responseParser_{l7::Http1Parser::Kind::kResponse};
  Input fromClient_, fromServer_;
  Output toServer_, toClient_;
  Request request_ = Request::kHead;
  Response response_ = Response::kNone;
  bool requestEnded_ = false, responseEnded_ = false;
  bool closeAfterResponse_ = false, clientEof_ = false, serverEof_ = false;
  bool informational_ = false;
  bool tunnelEofToServer_ = false, tunnelEofToClient_ = false;
  // The configuration the current exchange was routed with (the rule's response edits live in it).
  std::shared_ptr<const ConfigSnapshot> exchangeConfig_;
  const l7::HeaderEdits* responseEdits_ = nullptr;
  RequestRecord record_;  // the current exchange, for metrics and the access log
  OutlierTarget outlierTarget_;  // the current exchange's endpoint, until its outcome is noted
  std::vector<l7::HttpHeader> responseAdd_;  // the exchange's fields added to the response (routing)
  std::optional<HttpRouting> delayed_;       // kDelayed: the decision carried out when the delay is over
  bool delayedRetry_ = false;                // kDelayed is a retry's backoff (sendTo, not dispatch)
  std::optional<HttpRouting> exchangeRouting_;  // where the current try went (retries pick again from it)
  int retries_ = 0;                          // of the current exchange
  bool mirrorSent_ = false;                  // the current exchange's copy went to its mirror (or was dropped)
  uint64_t requestBodyBytes_ = 0;            // of the current request, forwarded so far
  size_t resentUncounted_ = 0;               // bytes a retry sends again, not counted again in request_bytes
  // The body bytes (as framed) the first try sent, while they fit in kMaxReplayBody and the
  // route retries: what a retry sends again. Read only when all of the body read so far is
  // in it (size == requestBodyBytes_); never changed while a retry sends it.
  static constexpr size_t kMaxReplayBody = 64 << 10;
  std::string replayBody_;
  std::chrono::steady_clock::time_point delayUntil_;
  std::chrono::milliseconds routeTimeout_{0};  // the current exchange's route timeout (0: none)
  std::optional<std::chrono::steady_clock::time_point> timeoutAt_;
  std::optional<std::chrono::steady_clock::time_point> tryTimeoutAt_;  // retries.perTryTimeout of the current try
};

}  // namespace sluice::ztunnel
