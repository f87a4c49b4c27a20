#include "proxy/http_outbound.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "engine/socket_endpoint.h"
#include "proxy/http_request_routing.h"
#include "proxy/upstream.h"
#include "sluice/common/assert.h"

namespace sluice::ztunnel {

namespace {

const char* reasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
  }
}

// Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection, not the message: each hop sets
// its own. Transfer-Encoding stays: the body is forwarded with the framing it arrived in.
bool informationalStatus(int status) { return status >= 100 && status < 200; }

void stripHopByHop(l7::HttpHead& head) {
  for (const char* name : {"connection", "keep-alive", "proxy-connection", "te", "upgrade"}) head.remove(name);
}

}  // namespace

void HttpOutbound::start(UniqueFd fd) {
  adoptClient(std::move(fd));
  pump();
}

void HttpOutbound::upstreamConnectFailed(int slot) {
  bool waiting = &upstreams_[slot] == current_ && request_ == Request::kConnecting;
  closeUpstream(slot, false);
  if (waiting) {
    current_ = nullptr;
    record_.pending.reset();
    noteOutcome(outlierTarget_, Outcome::kLocalOriginFailure);
    if (retryAfter({l7::AttemptResult::Kind::kConnectFailure})) return;
    respondLocally(503, "UF", "upstream connect error or disconnect/reset before headers", false);
  }
}

void HttpOutbound::pump() {
  if (pumping_ || retired_) return;
  pumping_ = true;
  while (!finishing_) {
    bool progress = request_ == Request::kTunnel ? pumpTunnel() : (pumpRequest() | pumpResponse());
    progress |= pumpIdleUpstreams();
    if (!progress) break;
  }
  pumping_ = false;
  reapClosedUpstreams();
  maybeRetire();
}

bool HttpOutbound::readInto(Input& in, Endpoint& from, bool& eof, bool& failed, bool fromClient) {
  if (!in.rest().empty()) return true;
  IoResult r = from.read();
  switch (r.kind) {
    case IoResult::Kind::kPending: return false;
    case IoResult::Kind::kEof: eof = true; return false;
    case IoResult::Kind::kDone: break;
    default: failed = true; return false;
  }
  in.chunk = r.chunk;
  in.offset = 0;
  touch();
  if (fromClient) countFromClient(r.chunk.length);
  return true;
}

void HttpOutbound::releaseIfConsumed(Input& in, Endpoint& from, const Output& pending) {
  if (in.chunk && in.offset == in.chunk->length && pending.body.empty()) {
    from.release(*in.chunk);
    in.chunk.reset();
    in.offset = 0;
  }
}

bool HttpOutbound::flush(Output& out, Endpoint& to, bool& failed, bool toClient) {
  auto written = [&](size_t n) {
    touch();
    if (toClient) countToClient(n);
    if (toClient) {
      record_.responseBytes += n;
      return;
    }
    // A retry's head and replayed body were counted with the first try: only what the
    // request adds from here on counts (request_bytes is the request's size, not the tries').
    size_t again = std::min(n, resentUncounted_);
    resentUncounted_ -= again;
    record_.requestBytes += n - again;
  };
  while (out.headOffset < out.head.size()) {
    IoResult w = to.write({reinterpret_cast<const uint8_t*>(out.head.data()) + out.headOffset, out.head.size() - out.headOffset});
    if (w.kind == IoResult::Kind::kPending) return false;
    if (w.kind != IoResult::Kind::kDone) {
      failed = true;
      return false;
    }
    out.headOffset += w.bytes;
    written(w.bytes);
  }
  while (!out.body.empty()) {
    IoResult w = to.write(out.body);
    if (w.kind == IoResult::Kind::kPending) return false;
    if (w.kind != IoResult::Kind::kDone) {
      failed = true;
      return false;
    }
    out.body = out.body.subspan(w.bytes);
    written(w.bytes);
  }
  out.head.clear();
  out.headOffset = 0;
  return true;
}

bool HttpOutbound::pumpRequest() {
  bool progress = false;
  bool failed = false;
  while (!finishing_) {
    switch (request_) {
      case Request::kHead: {
        if (response_ != Response::kNone) return progress;
        if (closeAfterResponse_) {
          // Everything answered; the client asked to close (or can't be read further).
          IoResult s = down_->shutdownWrite();
          if (s.kind == IoResult::Kind::kPending) return progress;
          finish(false);
          return true;
        }
        if (fromClient_.rest().empty()) {
          releaseIfConsumed(fromClient_, *down_, toServer_);
          if (!readInto(fromClient_, *down_, clientEof_, failed, true)) {
            if (failed || clientEof_) {
              finish(failed || requestParser_.inMessage());  // an orderly close between requests
              return true;
            }
            return progress;
          }
        }
        auto step = requestParser_.feed(fromClient_.rest());
        fromClient_.offset += step.consumed;
        progress = true;
        if (step.event == l7::Http1Parser::Step::Event::kNeedMore) continue;
        if (step.event == l7::Http1Parser::Step::Event::kError) {
          request_ = Request::kSent;  // nothing more is read from this client
          requestEnded_ = true;
          respondLocally(step.status, "DPE", step.error, true);
          continue;
        }
        routeRequest();
        continue;
      }
      case Request::kConnecting:
        if (current_ == nullptr || !current_->connected) return progress;
        record_.pending.reset();  // its connection is made
        toServer_.head = requestParser_.head().serializeRequest();
        // A retry sends again what the first try sent of the body (kept: replayBody_).
        if (retries_ > 0) {
          toServer_.body = {reinterpret_cast<const uint8_t*>(replayBody_.data()), replayBody_.size()};
          resentUncounted_ = toServer_.head.size() + replayBody_.size();
        }
        request_ = Request::kSending;
        progress = true;
        continue;
      case Request::kSending:
      case Request::kDiscarding: {
        bool discard = request_ == Request::kDiscarding;
        if (!discard && !flush(toServer_, *current_->endpoint, failed, false)) {
          if (failed) upstreamBroke();
          return progress || failed;
        }
        if (requestEnded_) {
          request_ = Request::kSent;
          if (!discard) {
            startTimeouts();
            sendMirror();
          }
          progress = true;
          continue;
        }
        auto step = requestParser_.feed(fromClient_.rest());
        fromClient_.offset += step.consumed;
        if (step.event == l7::Http1Parser::Step::Event::kError) {
          finish(true);  // a malformed body half forwarded: both sides must learn it failed
          return true;
        }
        if (!discard) {
          toServer_.body = step.body;
          requestBodyBytes_ += step.body.size();
          keepForReplay(step.body);
        }
        if (step.event == l7::Http1Parser::Step::Event::kEnd) requestEnded_ = true;
        if (!toServer_.empty() || requestEnded_ || step.consumed > 0) {
          progress = true;
          continue;
        }
        releaseIfConsumed(fromClient_, *down_, toServer_);
        if (!readInto(fromClient_, *down_, clientEof_, failed, true)) {
          if (failed || clientEof_) {
            finish(true);  // the request body was cut short
            return true;
          }
          return progress;
        }
        progress = true;
        continue;
      }
      case Request::kSent:
      case Request::kTunnel:
      case Request::kDelayed:
        return progress;
    }
  }
  return progress;
}

bool HttpOutbound::pumpResponse() {
  bool progress = false;
  bool failed = false;
  while (!finishing_) {
    switch (response_) {
      case Response::kNone:
      case Response::kTunnel:
        return progress;
      case Response::kLocal:
        if (!flush(toClient_, *down_, failed, true)) {
          if (failed) finish(true);
          return progress || failed;
        }
        if (request_ != Request::kSent) return progress;  // the request body is still being discarded
        responseEnded_ = true;
        completeExchange();
        return true;
      case Response::kHead:
      case Response::kBody: {
        if (current_ == nullptr || !current_->connected) return progress;
        Endpoint& server = *current_->endpoint;
        if (!flush(toClient_, *down_, failed, true)) {
          if (failed) finish(true);
          return progress || failed;
        }
        if (responseEnded_) {
          if (request_ != Request::kSent) {
            // Answered before the request was all sent: the rest of it can't follow on this
            // connection, nor can the client's.
            closeAfterResponse_ = true;
            closeUpstream(indexOf(*current_), true);
            request_ = Request::kSent;
          }
          completeExchange();
          return true;
        }
        if (informational_ && response_ == Response::kHead) {
          // A 1xx was forwarded; the final response follows on the same upstream.
          informational_ = false;
          responseParser_.next(requestParser_.head().method == "HEAD");
        }
        auto step = responseParser_.feed(fromServer_.rest());
        fromServer_.offset += step.consumed;
        using Event = l7::Http1Parser::Step::Event;
        if (step.event == Event::kError) {
          upstreamBroke();
          return true;
        }
        if (step.event == Event::kHead) {
          l7::HttpHead& head = responseParser_.head();
          bool switching = head.status == 101 && requestParser_.upgrade();
          if (!informationalStatus(head.status)) {
            noteOutcome(outlierTarget_, outcomeOfStatus(head.status));
            // A status the route retries on: this response goes nowhere, the request goes again.
            if (!switching && request_ == Request::kSent &&
                retryAfter({l7::AttemptResult::Kind::kResponse, head.status})) {
              return true;
            }
          }
          if (!switching) {
            stripHopByHop(head);
            if (responseEdits_ != nullptr) responseEdits_->apply(head);
            if (!informationalStatus(head.status)) {
              for (const auto& h : responseAdd_) head.add(h.name, h.value);
            }
            if (closeAfterResponse_) head.set("connection", "close");
          }
          toClient_.head = head.serializeResponse();
          if (switching) {
            record_.labels.responseCode = 101;
            request_ = Request::kTunnel;
            response_ = Response::kTunnel;
            return true;
          }
          informational_ = head.status >= 100 && head.status < 200;
          if (!informational_) record_.labels.responseCode = head.status;
          response_ = Response::kBody;
          progress = true;
          continue;
        }
        toClient_.body = step.body;
        if (step.event == Event::kEnd) {
          if (informational_) {
            response_ = Response::kHead;
          } else {
            responseEnded_ = true;
          }
        }
        if (!toClient_.empty() || step.event == Event::kEnd || step.consumed > 0) {
          progress = true;
          continue;
        }
        releaseIfConsumed(fromServer_, server, toClient_);
        if (!readInto(fromServer_, server, serverEof_, failed, false)) {
          if (serverEof_) {
            serverEof_ = false;
            auto end = responseParser_.finish();
            if (end.event == Event::kEnd && response_ == Response::kBody) {
              responseEnded_ = true;
              closeUpstream(indexOf(*current_), false);  // delimited by the close: not reusable
              progress = true;
              continue;
            }
            upstreamBroke();
            return true;
          }
          if (failed) {
            upstreamBroke();
            return true;
          }
          return progress;
        }
        progress = true;
        continue;
      }
    }
  }
  return progress;
}

// After a 101: both directions are opaque byte streams, first what was already buffered.
bool HttpOutbound::pumpTunnel() {
  bool progress = false;
  bool failed = false;
  Endpoint& server = *current_->endpoint;
  // Client to server.
  for (bool step = true; step && !finishing_;) {
    step = false;
    if (!flush(toServer_, server, failed, false)) break;
    releaseIfConsumed(fromClient_, *down_, toServer_);
    if (tunnelEofToServer_) break;
    if (fromClient_.rest().empty() && !readInto(fromClient_, *down_, clientEof_, failed, true)) {
      if (clientEof_ && server.shutdownWrite().kind != IoResult::Kind::kPending) {
        tunnelEofToServer_ = progress = true;
      }
      break;
    }
    toServer_.body = fromClient_.rest();
    fromClient_.offset = fromClient_.chunk->length;
    step = progress = true;
  }
  // Server to client.
  for (bool step = true; step && !failed && !finishing_;) {
    step = false;
    if (!flush(toClient_, *down_, failed, true)) break;
    releaseIfConsumed(fromServer_, server, toClient_);
    if (tunnelEofToClient_) break;
    if (fromServer_.rest().empty() && !readInto(fromServer_, server, serverEof_, failed, false)) {
      if (serverEof_ && down_->shutdownWrite().kind != IoResult::Kind::kPending) {
        tunnelEofToClient_ = progress = true;
      }
      break;
    }
    toClient_.body = fromServer_.rest();
    fromServer_.offset = fromServer_.chunk->length;
    step = progress = true;
  }
  if (failed) {
    finish(true);
    return true;
  }
  if (tunnelEofToServer_ && tunnelEofToClient_ && toClient_.empty() && toServer_.empty()) {
    finish(false);
    return true;
  }
  return progress;
}

bool HttpOutbound::pumpIdleUpstreams() {
  bool progress = false;
  for (auto& u : upstreams_) {
    if (!u.endpoint || &u == current_ || !u.connected || u.closing) continue;
    // An idle upstream keeps a read armed: anything it says (bytes nobody asked for, or its
    // close) means it can't carry another request.
    IoResult r = u.endpoint->read();
    if (r.kind == IoResult::Kind::kPending) continue;
    if (r.kind == IoResult::Kind::kDone) u.endpoint->release(r.chunk);
    closeUpstream(indexOf(u), r.kind != IoResult::Kind::kEof);
    progress = true;
  }
  return progress;
}

void HttpOutbound::routeRequest() {
  auto config = context_.config.current();
  l7::HttpHead& head = requestParser_.head();
  request_ = Request::kDiscarding;  // until an upstream is chosen
  const WorkloadEntry* self = podWorkload(*config, pod_->addresses);
  record_ = beginRecord(self, head, false, "HTTP/1.1");
  if (head.method == "CONNECT") return respondLocally(405, "", "CONNECT is not routed on a service port", true);
  HttpRouting routing = route(*config, self, head, record_);
  exchangeConfig_ = config;  // the rule (and its response edits) live in it
  if (routing.delay.count() > 0) {
    // The route's fault delay: nothing more is read or sent until it is over (onTimer).
    delayUntil_ = context_.loop.now() + routing.delay;
    delayed_ = std::move(routing);
    request_ = Request::kDelayed;
    wakeAt(delayUntil_);
    return;
  }
  dispatch(std::move(routing));
}

void HttpOutbound::dispatch(HttpRouting routing) {
  l7::HttpHead& head = requestParser_.head();
  if (routing.local) {
    const LocalAnswer& a = *routing.local;
    return respondLocally(a.status, a.flag, a.body, false, a.extra);
  }
  if (!admit(routing, PoolResource::kRequests, record_.inFlight)) {
    return respondLocally(503, "UO", "upstream overflow: the destination has its maximum of requests in flight", false);
  }
  std::string upgradeTo = requestParser_.upgrade() && head.find("upgrade") != nullptr ? *head.find("upgrade") : "";
  stripHopByHop(head);
  if (!upgradeTo.empty()) {
    head.set("connection", "upgrade");
    head.set("upgrade", upgradeTo);
  }
  decorateRequest(*routing.rule, head, context_.random);
  if (const std::string* id = head.find("x-request-id")) record_.requestId = *id;
  routeTimeout_ = routing.timeout;
  responseEdits_ = &routing.rule->responseHeaders;
  responseAdd_ = std::move(routing.responseAdd);
  markOutstanding(record_, context_.outstanding);
  sendTo(std::move(routing));
}

void HttpOutbound::sendTo(HttpRouting routing) {
  const SocketAddress& address = routing.endpoint;
  current_ = acquireUpstream(address.toString());
  if (current_ == nullptr) return respondLocally(503, "UO", "too many upstream connections for one client connection", false);
  outlierTarget_ = outlierTarget(routing);
  if (retries_ > 0) {
    // The try that answers names the destination, and counts against its endpoint instead.
    releaseOutstanding(record_);
    recordRouting(record_, routing, context_.options.trustDomain);
    markOutstanding(record_, context_.outstanding);
  }
  exchangeRouting_ = std::move(routing);
  // Waiting for its connection to be made, it is a pending request (http1MaxPendingRequests).
  if (!current_->connected && !admit(*exchangeRouting_, PoolResource::kPendingRequests, record_.pending)) {
    current_ = nullptr;
    return respondLocally(503, "UO", "upstream overflow: too many requests wait for a connection to the destination", false);
  }
  std::expected<void, UpstreamFailure> opened;
  if (!current_->endpoint) {
    opened = openUpstreamIn(indexOf(*current_), address, exchangeRouting_->workload, poolOf(*exchangeRouting_));
  }
  if (!opened && opened.error().reason == FailReason::kOverflow) {
    current_ = nullptr;
    return respondLocally(503, "UO", "upstream overflow: the destination has its maximum of connections open", false);
  }
  if (!opened) {
    current_ = nullptr;
    noteOutcome(outlierTarget_, Outcome::kLocalOriginFailure);
    request_ = Request::kConnecting;  // nothing of the request was read past its head
    if (retryAfter({l7::AttemptResult::Kind::kConnectFailure})) return;
    return respondLocally(503, "UF", "upstream connect error", false);
  }
  ++current_->requests;
  request_ = Request::kConnecting;
  response_ = Response::kHead;
  // A retry may leave the parser in the failed try's response: it starts over.
  responseParser_.restart(requestParser_.head().method == "HEAD");
}

bool HttpOutbound::retryAfter(const l7::AttemptResult& result) {
  if (!exchangeRouting_ || requestParser_.upgrade()) return false;
  // The request can go again if none of its body was read yet, or it had none.
  // The request can go again if all of its body that was read is kept (none read, or at most
  // kMaxReplayBody), and it either ended or the rest of its body is still to be read.
  bool replayable = replayBody_.size() == requestBodyBytes_;
  HttpRouting next = *exchangeRouting_;
  std::chrono::milliseconds backoff{0};
  if (!planRetry(*exchangeConfig_, next, result, retries_, requestParser_.head().method, replayable, record_, backoff)) {
    return false;
  }
  ++retries_;
  tryTimeoutAt_.reset();
  dropCurrentUpstream();  // what the failed try sent back goes with its connection
  toServer_ = Output{};
  toClient_ = Output{};
  response_ = Response::kNone;
  delayed_ = std::move(next);
  delayedRetry_ = true;
  delayUntil_ = context_.loop.now() + backoff;
  request_ = Request::kDelayed;
  wakeAt(delayUntil_);
  return true;
}

void HttpOutbound::keepForReplay(std::span<const uint8_t> body) {
  // Only while every byte so far is kept, the route may retry, and it stays within the bound
  // (Envoy's retry buffer: a bigger body is streamed and not retried).
  // A mirrored request's copy carries the same body, from the same buffer.
  if (body.empty() || retries_ > 0 || replayBody_.size() + body.size() != requestBodyBytes_) return;
  if (!exchangeRouting_ || !exchangeRouting_->keepsBody() || requestBodyBytes_ > kMaxReplayBody) {
    replayBody_ = std::string();
    return;
  }
  replayBody_.append(reinterpret_cast<const char*>(body.data()), body.size());
}

void HttpOutbound::sendMirror() {
  // An upgrade (WebSocket) is not an exchange a copy could replay.
  if (mirrorSent_ || !exchangeRouting_ || exchangeRouting_->mirrors.empty() || requestParser_.upgrade()) return;
  mirrorSent_ = true;  // once per request, whichever try sent it whole
  std::string request;  // the copies' bytes, made once for all of them
  // Only a whole body can be copied (one over the bound was streamed, not kept).
  sendMirrors(exchangeRouting_->mirrors, replayBody_.size() == requestBodyBytes_, routeTimeout_, [&](MirrorCopy& copy) {
    if (request.empty()) {
      l7::HttpHead head = requestParser_.head();
      if (const std::string* host = head.find("host")) head.set("host", l7::shadowAuthority(*host));
      head.set("connection", "close");
      request = head.serializeRequest() + replayBody_;
    }
    copy.http1 = request;
  });
}

L7Connection::UpstreamSlot* HttpOutbound::acquireUpstream(const std::string& key) {
  UpstreamSlot* idle = nullptr;
  for (auto& u : upstreams_) {
    if (u.endpoint && !u.closing && !u.exhausted() && u.key == key) return &u;
    if (u.endpoint && !u.closing && idle == nullptr) idle = &u;
  }
  if (int free = freeSlot(); free >= 0) return &upstreams_[free];
  // Every slot holds a connection: the first idle one makes room (it is reaped when quiescent,
  // so this request waits for no slot: it fails rather than block).
  if (idle != nullptr) closeUpstream(indexOf(*idle), false);
  return nullptr;
}

void HttpOutbound::respondLocally(int status, std::string_view flag, std::string_view body, bool close,
                                  const std::vector<l7::HttpHeader>& extra) {
  if (!record_.active) {
    // Refused before routing (a malformed head): still one request in the metrics.
    record_ = beginRecord(podWorkload(*context_.config.current(), pod_->addresses), requestParser_.head(), false, "HTTP/1.1");
  }
  record_.labels.responseCode = status;
  if (!flag.empty()) record_.labels.responseFlags = std::string(flag);
  l7::HttpHead head;
  head.status = status;
  head.reason = reasonPhrase(status);
  head.add("content-length", std::to_string(body.size()));
  if (!body.empty()) head.add("content-type", "text/plain");
  for (const auto& h : extra) head.add(h.name, h.value);
  if (close) closeAfterResponse_ = true;
  if (closeAfterResponse_) head.add("connection", "close");
  toClient_.head = head.serializeResponse();
  toClient_.head.append(body);
  toClient_.headOffset = 0;
  toClient_.body = {};
  toServer_ = Output{};
  response_ = Response::kLocal;
  if (request_ != Request::kSent) request_ = requestEnded_ ? Request::kSent : Request::kDiscarding;
}

void HttpOutbound::upstreamBroke() {
  bool answered = response_ == Response::kBody || !toClient_.empty();
  if (!answered && request_ == Request::kSent) {
    noteOutcome(outlierTarget_, Outcome::kLocalOriginFailure);
    if (retryAfter({l7::AttemptResult::Kind::kReset})) return;
  }
  abandonUpstream(503, "UC", "upstream connect error or disconnect/reset before headers");
}

void HttpOutbound::onTimer(std::chrono::steady_clock::time_point now) {
  if (request_ == Request::kDelayed && now >= delayUntil_) {
    request_ = Request::kDiscarding;  // until an upstream is chosen
    HttpRouting routing = std::move(*delayed_);
    delayed_.reset();
    if (std::exchange(delayedRetry_, false)) {
      sendTo(std::move(routing));  // a retry: the head was decorated for the first try already
    } else {
      dispatch(std::move(routing));
    }
  }
  if (timeoutAt_ && now >= *timeoutAt_) {
    timeoutAt_.reset();
    tryTimeoutAt_.reset();
    if (current_ != nullptr && !responseEnded_) {
      abandonUpstream(504, "UT", "upstream request timeout");
    } else if (request_ == Request::kDelayed && delayedRetry_) {
      // The route's time ran out during a retry's backoff: no more tries.
      delayed_.reset();
      delayedRetry_ = false;
      respondLocally(504, "UT", "upstream request timeout", false);
    }
  }
  if (tryTimeoutAt_ && now >= *tryTimeoutAt_) {
    tryTimeoutAt_.reset();
    // A try that took longer than perTryTimeout counts as a 504 for retryOn (Envoy's), and
    // goes again while the route's timeout allows.
    if (current_ != nullptr && !responseEnded_) {
      bool answered = response_ == Response::kBody || !toClient_.empty();
      if (!answered) noteOutcome(outlierTarget_, Outcome::kLocalOriginFailure);
      if (answered || !retryAfter({l7::AttemptResult::Kind::kResponse, 504})) {
        abandonUpstream(504, "UT", "upstream request timeout");
      }
    }
  }
  if (request_ == Request::kDelayed) wakeAt(delayUntil_);
  for (const auto& at : {timeoutAt_, tryTimeoutAt_}) {
    if (at) wakeAt(*at);
  }
}

void HttpOutbound::startTimeouts() {
  // Both count from the request's end (Envoy's) until the response's: the route's once, over
  // every try; perTryTimeout anew for each try.
  auto now = context_.loop.now();
  if (routeTimeout_.count() > 0 && !timeoutAt_) {
    timeoutAt_ = now + routeTimeout_;
    wakeAt(*timeoutAt_);
  }
  auto perTry = exchangeRouting_ && exchangeRouting_->rule ? exchangeRouting_->rule->retries.perTryTimeout : std::chrono::milliseconds{0};
  if (perTry.count() > 0) {
    tryTimeoutAt_ = now + perTry;
    wakeAt(*tryTimeoutAt_);
  }
}

void HttpOutbound::dropCurrentUpstream() {
  if (current_ == nullptr) return;
  if (fromServer_.chunk) current_->endpoint->release(*fromServer_.chunk);
  fromServer_ = Input{};
  closeUpstream(indexOf(*current_), true);
  current_ = nullptr;
}

void HttpOutbound::abandonUpstream(int status, std::string_view flag, std::string_view message) {
  bool answered = response_ == Response::kBody || !toClient_.empty();
  dropCurrentUpstream();
  if (answered) {
    record_.labels.responseFlags = std::string(flag);
    return finish(true);  // part of a response went out: only a reset tells the client
  }
  noteOutcome(outlierTarget_, Outcome::kLocalOriginFailure);
  respondLocally(status, flag, message, false);
}

void HttpOutbound::completeExchange() {
  outlierTarget_ = {};  // noted already, or the exchange ended before the endpoint had a say
  timeoutAt_.reset();
  tryTimeoutAt_.reset();
  routeTimeout_ = {};
  exchangeRouting_.reset();
  mirrorSent_ = false;
  retries_ = 0;
  resentUncounted_ = 0;
  requestBodyBytes_ = 0;
  replayBody_ = std::string();  // not kept between requests (an idle connection holds no body)
  endRequest(*pod_, record_, context_.loop.now());
  bool reusable = current_ != nullptr && !current_->closing && !current_->exhausted() &&
                  response_ != Response::kLocal && responseParser_.keepAlive() && fromServer_.rest().empty();
  if (current_ != nullptr) {
    if (fromServer_.chunk) current_->endpoint->release(*fromServer_.chunk);
    if (!reusable) closeUpstream(indexOf(*current_), false);
  }
  fromServer_ = Input{};
  current_ = nullptr;
  if (requestParser_.inMessage() && !requestParser_.keepAlive()) closeAfterResponse_ = true;
  if (pod_->draining) closeAfterResponse_ = true;
  if (!closeAfterResponse_) {
    requestParser_.next();
  }
  responseParser_.next();
  request_ = Request::kHead;
  response_ = Response::kNone;
  requestEnded_ = responseEnded_ = informational_ = false;
  exchangeConfig_.reset();
  responseEdits_ = nullptr;
  responseAdd_.clear();
}

void HttpOutbound::finish(bool reset) {
  if (finishing_) return;
  finishing_ = true;
  if (record_.active) {
    // Cut short (or a tunnel after 101 ended): the client's side ended it unless marked.
    if (record_.labels.responseFlags == "-" && response_ != Response::kTunnel) record_.labels.responseFlags = "DC";
    endRequest(*pod_, record_, context_.loop.now());
  }
  if (fromClient_.chunk) down_->release(*fromClient_.chunk);
  fromClient_ = Input{};
  if (fromServer_.chunk && current_ != nullptr) current_->endpoint->release(*fromServer_.chunk);
  fromServer_ = Input{};
  toClient_ = Output{};
  toServer_ = Output{};
  abortAll(reset);
  current_ = nullptr;
}

}  // namespace sluice::ztunnel
