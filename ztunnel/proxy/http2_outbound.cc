#include "proxy/http2_outbound.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/socket_endpoint.h"
#include "l7/http2_fields.h"
#include "proxy/upstream.h"
#include "sluice/common/assert.h"

namespace sluice::ztunnel {

namespace {

using Kind = http2::SessionEvent::Kind;
constexpr uint32_t kCancel = 0x8, kRefusedStream = 0x7;

std::span<const uint8_t> bytesOf(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

}  // namespace

void Http2Outbound::start(UniqueFd fd) {
  adoptClient(std::move(fd));
  auto session = http2::Http2Session::create(http2::Http2Session::Role::kServer, context_.options.hboneLimits);
  if (!session) {
    spdlog::warn("{}: {}", pod_->key(), session.error().message());
    finish(true);
    maybeRetire();
    return;
  }
  downSession_ = std::move(*session);
  pump();
}

void Http2Outbound::pump() {
  if (pumping_ || retired_ || !downSession_) return;
  pumping_ = true;
  bool failed = false;
  for (bool progress = true; progress && !finishing_;) {
    progress = false;
    if (pod_->draining && !goingAway_) {
      // The pod is leaving: GOAWAY tells the app to open no more streams here; those open
      // finish (until the drain deadline), then the connection closes.
      downSession_->shutdown();
      goingAway_ = progress = true;
    }
    if (!clientEof_ && downOut_.size() < kMaxOutgoing) {
      progress |= readFrom(*down_, *downSession_, true, clientEof_, failed);
      if (failed) {
        // A protocol error: nothing more is read; the GOAWAY nghttp2 queued (RFC 9113 §5.4.1)
        // goes out below, then the connection is reset.
        clientEof_ = protocolError_ = true;
        failed = false;
      }
    }
    progress |= handleClientEvents();
    for (int slot = 0; slot < kMaxUpstreams && !finishing_; ++slot) {
      if (!usable(slot)) continue;
      UpstreamSession& u = sessions_[slot];
      bool eof = false, upFailed = false;
      if (u.out.size() < kMaxOutgoing) progress |= readFrom(*upstreams_[slot].endpoint, *u.session, false, eof, upFailed);
      progress |= handleUpstreamEvents(slot);
      if (eof || upFailed) {
        failUpstream(slot);
        progress = true;
      }
    }
    progress |= sendPendingRequests();
    progress |= moveBodies();
    for (int slot = 0; slot < kMaxUpstreams && !finishing_; ++slot) {
      if (!usable(slot)) continue;
      bool upFailed = false;
      progress |= flushTo(*upstreams_[slot].endpoint, *sessions_[slot].session, sessions_[slot].out, false, upFailed);
      if (upFailed) {
        failUpstream(slot);
        progress = true;
      }
    }
    if (!finishing_) progress |= flushTo(*down_, *downSession_, downOut_, true, failed);
    if (failed) {
      finish(true);
      break;
    }
    if (protocolError_ && downOut_.size() == 0) {
      finish(true);
      break;
    }
    // The app is gone or the connection ended (GOAWAY both ways), once nothing is in flight.
    bool ended = clientEof_ || downSession_->finished();
    if (ended && exchanges_.empty() && downOut_.size() == 0) finish(false);
  }
  // An upstream the server finished with (GOAWAY, no streams left) is let go.
  for (int slot = 0; slot < kMaxUpstreams; ++slot) {
    if (usable(slot) && sessions_[slot].streams.empty() && sessions_[slot].session->finished()) closeUpstream(slot, false);
  }
  pumping_ = false;
  reapClosedUpstreams();
  maybeRetire();
}

bool Http2Outbound::readFrom(Endpoint& from, http2::Http2Session& session, bool fromClient, bool& eof, bool& failed) {
  IoResult r = from.read();
  switch (r.kind) {
    case IoResult::Kind::kPending: return false;
    case IoResult::Kind::kEof: eof = true; return true;
    case IoResult::Kind::kDone: break;
    default: failed = true; return true;
  }
  touch();
  if (fromClient) countFromClient(r.chunk.length);
  // The session keeps what it needs (stream bodies in their inboxes, bounded by the windows
  // it advertised), so the chunk goes back at once.
  Status received = session.receive({r.chunk.data, r.chunk.length});
  from.release(r.chunk);
  if (!received) {
    spdlog::debug("{}: {} HTTP/2: {}", pod_->key(), fromClient ? "app" : "upstream", received.error().message());
    failed = true;
  }
  return true;
}

bool Http2Outbound::flushTo(Endpoint& to, http2::Http2Session& session, Outgoing& out, bool toClient, bool& failed) {
  bool progress = false;
  if (out.staging.size() < kMaxOutgoing) {
    auto produced = session.produce(out.staging, kMaxOutgoing);
    if (!produced) {
      failed = true;
      return true;
    }
  }
  while (true) {
    if (out.offset == out.sending.size()) {
      out.sending.clear();
      out.offset = 0;
      if (out.staging.empty()) return progress;
      std::swap(out.sending, out.staging);
    }
    IoResult w = to.write({reinterpret_cast<const uint8_t*>(out.sending.data()) + out.offset, out.sending.size() - out.offset});
    if (w.kind == IoResult::Kind::kPending) return progress;
    if (w.kind != IoResult::Kind::kDone) {
      failed = true;
      return true;
    }
    out.offset += w.bytes;
    progress = true;
    touch();
    if (toClient) countToClient(w.bytes);
  }
}

bool Http2Outbound::handleClientEvents() {
  if (!downSession_->hasEvents()) return false;
  for (const auto& e : downSession_->takeEvents()) {
    switch (e.kind) {
      case Kind::kRequest:
        routeRequest(e.stream);
        break;
      case Kind::kClosed: {
        // The app's stream is over (both ends done, or reset): its upstream stream goes too.
        auto it = exchanges_.find(e.stream);
        if (it != exchanges_.end()) {
          Exchange& x = it->second;
          if (!x.responseDone && x.record.labels.responseFlags == "-") x.record.labels.responseFlags = "DC";
          endRequest(*pod_, x.record, context_.loop.now());
          cancelUpstreamStream(x);
          exchanges_.erase(it);
        }
        downSession_->release(e.stream);
        break;
      }
      default:
        break;  // bodies and ends move in moveBodies(), whatever event announced them
    }
  }
  return true;
}

void Http2Outbound::routeRequest(int32_t stream) {
  Exchange& x = exchanges_[stream];
  auto config = context_.config.current();
  const http2::Fields& fields = downSession_->fields(stream);
  auto request = l7::requestFromFields(fields);
  const WorkloadEntry* self = podWorkload(*config, pod_->addresses);
  x.record = beginRecord(self, request ? request->head : l7::HttpHead{}, request && l7::isGrpc(request->head), "HTTP/2");
  for (const auto& f : fields) x.record.requestBytes += f.name.size() + f.value.size();
  if (!request) return respondLocally(stream, x, {400, "DPE", "a request without :method, :path or authority", {}});
  x.grpc = l7::isGrpc(request->head);
  if (request->head.method == "CONNECT") return respondLocally(stream, x, {405, "", "CONNECT is not routed on a service port", {}});
  HttpRouting routing = route(*config, self, request->head, x.record);
  x.config = config;  // the rule (and its response edits) live in it
  if (routing.delay.count() > 0) {
    // The route's fault delay: the stream waits (its body stays in the session, within the
    // window it was given) until onTimer carries the decision out.
    x.delayUntil = context_.loop.now() + routing.delay;
    x.delayed = Delayed{std::move(routing), std::move(*request)};
    wakeAt(x.delayUntil);
    return;
  }
  dispatch(stream, x, std::move(routing), std::move(*request));
}

void Http2Outbound::dispatch(int32_t stream, Exchange& x, HttpRouting routing, l7::Http2Request request) {
  if (routing.local) return respondLocally(stream, x, *routing.local);
  if (!admit(routing, PoolResource::kRequests, x.record.inFlight)) {
    return respondLocally(stream, x, {503, "UO", "upstream overflow: the destination has its maximum of requests in flight", {}});
  }
  decorateRequest(*routing.rule, request.head, context_.random);
  if (const std::string* id = request.head.find("x-request-id")) x.record.requestId = *id;
  x.timeout = routing.timeout;
  x.responseEdits = &routing.rule->responseHeaders;
  x.responseAdd = std::move(routing.responseAdd);
  x.request = l7::fieldsFromRequest(request);
  x.method = request.head.method;
  markOutstanding(x.record, context_.outstanding);
  sendTo(stream, x, std::move(routing));
}

void Http2Outbound::sendTo(int32_t stream, Exchange& x, HttpRouting routing) {
  int slot = acquireUpstream(routing, x.record);
  if (slot == kNoSlot) return respondLocally(stream, x, {503, "UO", "too many upstream connections for one client connection", {}});
  if (slot == kPendingOverflow) {
    return respondLocally(stream, x, {503, "UO", "upstream overflow: too many requests wait for a connection to the destination", {}});
  }
  if (slot == kConnectionOverflow) {
    return respondLocally(stream, x, {503, "UO", "upstream overflow: the destination has its maximum of connections open", {}});
  }
  x.outlier = outlierTarget(routing);
  if (x.retries > 0) {
    // The try that answers names the destination, and counts against its endpoint instead.
    releaseOutstanding(x.record);
    recordRouting(x.record, routing, context_.options.trustDomain);
    markOutstanding(x.record, context_.outstanding);
  }
  x.tried = std::move(routing);
  if (slot < 0) {
    noteOutcome(x.outlier, Outcome::kLocalOriginFailure);
    if (retry(x, {l7::AttemptResult::Kind::kConnectFailure})) return;
    return respondLocally(stream, x, {503, "UF", "upstream connect error", {}});
  }
  x.upstream = slot;
  x.pending = true;
  ++upstreams_[slot].requests;
}

void Http2Outbound::keepForReplay(Exchange& x, const std::string& body) {
  // Kept while the request can go again (its fields are kept), the route retries and the body
  // stays within the bound (Envoy's retry buffer); beyond, it streams and is not retried.
  // A mirrored request's copy is made from the same kept fields and body.
  if (x.request.empty()) return;
  if (!x.tried || !x.tried->keepsBody() || x.replayBody.size() + body.size() > kMaxReplayBody) {
    x.request.clear();
    x.replayBody = std::string();
    return;
  }
  x.replayBody += body;
}

bool Http2Outbound::retry(Exchange& x, const l7::AttemptResult& result) {
  if (!x.tried || x.responded) return false;
  // The request can go again while its fields are kept: all of its body sent so far is kept.
  bool replayable = !x.request.empty();
  HttpRouting next = *x.tried;
  std::chrono::milliseconds backoff{0};
  if (!planRetry(*x.config, next, result, x.retries, x.method, replayable, x.record, backoff)) return false;
  ++x.retries;
  x.tryTimeoutAt.reset();
  cancelUpstreamStream(x);
  x.upstream = -1;
  x.pending = false;
  x.requestDone = false;
  x.retryRouting = std::move(next);
  x.retryAt = context_.loop.now() + backoff;
  wakeAt(*x.retryAt);
  return true;
}

void Http2Outbound::onTimer(std::chrono::steady_clock::time_point now) {
  std::optional<std::chrono::steady_clock::time_point> next;
  auto later = [&next](std::chrono::steady_clock::time_point t) { next = next ? std::min(*next, t) : t; };
  for (auto& [stream, x] : exchanges_) {
    if (x.delayed) {
      if (now < x.delayUntil) {
        later(x.delayUntil);
        continue;
      }
      Delayed d = std::move(*x.delayed);
      x.delayed.reset();
      dispatch(stream, x, std::move(d.routing), std::move(d.request));
    }
    if (x.timeoutAt && now >= *x.timeoutAt) {
      // The route's time is over, whatever try (or backoff) the request is in.
      x.timeoutAt.reset();
      x.tryTimeoutAt.reset();
      x.retryAt.reset();
      x.retryRouting.reset();
      if (!x.responseDone) timeOut(stream, x);
    }
    if (x.retryAt && now >= *x.retryAt) {
      x.retryAt.reset();
      HttpRouting routing = std::move(*x.retryRouting);
      x.retryRouting.reset();
      sendTo(stream, x, std::move(routing));
    }
    if (x.tryTimeoutAt && now >= *x.tryTimeoutAt) {
      x.tryTimeoutAt.reset();
      // A try that took longer than perTryTimeout counts as a 504 for retryOn (Envoy's).
      if (!x.responseDone) {
        if (!x.responded) noteOutcome(x.outlier, Outcome::kLocalOriginFailure);
        if (x.responded || !retry(x, {l7::AttemptResult::Kind::kResponse, 504})) timeOut(stream, x);
      }
    }
    for (const auto& at : {x.timeoutAt, x.retryAt, x.tryTimeoutAt}) {
      if (at) later(*at);
    }
  }
  if (next) wakeAt(*next);
}

void Http2Outbound::sendMirror(Exchange& x) {
  if (x.mirrorSent || !x.tried || x.tried->mirrors.empty()) return;
  x.mirrorSent = true;  // once per request, whichever try sent it whole
  // Only a whole body can be copied (its fields are dropped once it outgrew the bound).
  sendMirrors(x.tried->mirrors, !x.request.empty(), x.timeout, [&](MirrorCopy& copy) {
    copy.http2 = true;
    copy.fields = x.request;
    for (auto& f : copy.fields) {
      if (f.name == ":authority" || f.name == "host") f.value = l7::shadowAuthority(f.value);
    }
    copy.body = x.replayBody;
  });
}

void Http2Outbound::startTimeout(Exchange& x) {
  // Both count from the request's end (Envoy's) until the response's: the route's once, over
  // every try; perTryTimeout anew for each try. The request is whole: its mirror's copy goes.
  sendMirror(x);
  if (x.responseDone) return;
  auto now = context_.loop.now();
  if (x.timeout.count() > 0 && !x.timeoutAt) {
    x.timeoutAt = now + x.timeout;
    wakeAt(*x.timeoutAt);
  }
  auto perTry = x.tried && x.tried->rule ? x.tried->rule->retries.perTryTimeout : std::chrono::milliseconds{0};
  if (perTry.count() > 0) {
    x.tryTimeoutAt = now + perTry;
    wakeAt(*x.tryTimeoutAt);
  }
}

void Http2Outbound::timeOut(int32_t stream, Exchange& x) {
  cancelUpstreamStream(x);
  if (!x.responded) {
    noteOutcome(x.outlier, Outcome::kLocalOriginFailure);
    return respondLocally(stream, x, {504, "UT", "upstream request timeout", {}});
  }
  x.upstream = -1;
  x.record.labels.responseFlags = "UT";
  downSession_->reset(stream, kCancel);
  x.responseDone = true;
}

int Http2Outbound::acquireUpstream(const HttpRouting& routing, RequestRecord& record) {
  std::string key = routing.endpoint.toString();
  for (int i = 0; i < kMaxUpstreams; ++i) {
    const UpstreamSlot& u = upstreams_[i];
    // connectionPool.http.maxConcurrentStreams: a connection carrying that many is passed over
    // (another one to the same endpoint is opened).
    bool full = u.maxStreams != 0 &&
                std::count_if(exchanges_.begin(), exchanges_.end(), [i](const auto& e) { return e.second.upstream == i; }) >= u.maxStreams;
    if (u.endpoint && !u.closing && !u.exhausted() && !full && u.key == key && sessions_[i].session->acceptsStreams()) {
      // Still being made, it keeps the request pending (http1MaxPendingRequests).
      if (!u.connected && !admit(routing, PoolResource::kPendingRequests, record.pending)) return kPendingOverflow;
      return i;
    }
  }
  int slot = freeSlot();
  if (slot < 0) {
    // Every slot holds a connection: one no request uses (none waiting for it either) makes
    // room for the next request (it is reaped when quiescent); this one fails rather than wait.
    for (int i = 0; i < kMaxUpstreams; ++i) {
      bool used = std::any_of(exchanges_.begin(), exchanges_.end(), [i](const auto& e) { return e.second.upstream == i; });
      if (!upstreams_[i].closing && !used) {
        closeUpstream(i, false);
        break;
      }
    }
    return kNoSlot;
  }
  if (!admit(routing, PoolResource::kPendingRequests, record.pending)) return kPendingOverflow;
  auto session = http2::Http2Session::create(http2::Http2Session::Role::kClient, context_.options.hboneLimits);
  if (!session) return kConnectFailed;
  auto opened = openUpstreamIn(slot, routing.endpoint, routing.workload, poolOf(routing));
  if (!opened) return opened.error().reason == FailReason::kOverflow ? kConnectionOverflow : kConnectFailed;
  sessions_[slot].session = std::move(*session);
  return slot;
}

bool Http2Outbound::sendPendingRequests() {
  bool progress = false;
  for (auto& [stream, x] : exchanges_) {
    if (x.upstream < 0 || !x.pending) continue;
    if (!upstreams_[x.upstream].connected) continue;
    UpstreamSession& u = sessions_[x.upstream];
    // No body follows when the app's request already ended with its head (and a retry has
    // none of it to send again).
    bool endStream = downSession_->peerEnded(stream) && downSession_->inbox(stream).empty() &&
                     downSession_->trailers(stream).empty() && x.replayBody.empty();
    auto id = u.session->submitRequest(x.request, endStream);
    if (!id) {
      respondLocally(stream, x, {503, "UO", "the upstream connection takes no more streams", {}});
      progress = true;
      continue;
    }
    x.upStream = *id;
    x.pending = false;
    x.record.pending.reset();  // its connection is made
    x.requestDone = endStream;
    // A retry sends again the body the first try sent (the rest follows from the app).
    if (!x.replayBody.empty()) u.session->write(*id, bytesOf(x.replayBody));
    if (endStream) startTimeout(x);
    u.streams[*id] = stream;
    progress = true;
  }
  return progress;
}

bool Http2Outbound::moveBodies() {
  bool progress = false;
  for (auto& [stream, x] : exchanges_) {
    std::string& fromApp = downSession_->inbox(stream);
    if (x.upstream < 0) {
      // Answered here: whatever the app still sends is dropped, its window given back.
      if (!fromApp.empty()) {
        downSession_->consumed(stream, fromApp.size());
        fromApp.clear();
      }
      continue;
    }
    if (x.upStream == 0) continue;
    http2::Http2Session& up = *sessions_[x.upstream].session;
    if (!x.requestDone) {
      if (!fromApp.empty() && up.queued(x.upStream) < http2::Http2Session::kHighWater) {
        keepForReplay(x, fromApp);
        up.write(x.upStream, bytesOf(fromApp));
        x.record.requestBytes += fromApp.size();
        downSession_->consumed(stream, fromApp.size());
        fromApp.clear();
        progress = true;
      }
      if (fromApp.empty() && downSession_->peerEnded(stream)) {
        up.finish(x.upStream, l7::forwardableTrailers(downSession_->trailers(stream)));
        x.requestDone = progress = true;
        startTimeout(x);
      }
    }
    if (x.responded && !x.responseDone) {
      std::string& fromUp = up.inbox(x.upStream);
      if (!fromUp.empty() && downSession_->queued(stream) < http2::Http2Session::kHighWater) {
        downSession_->write(stream, bytesOf(fromUp));
        x.record.responseBytes += fromUp.size();
        up.consumed(x.upStream, fromUp.size());
        fromUp.clear();
        progress = true;
      }
      if (fromUp.empty() && up.peerEnded(x.upStream)) {
        noteGrpcStatus(x, up.trailers(x.upStream));
        downSession_->finish(stream, l7::forwardableTrailers(up.trailers(x.upStream)));
        x.responseDone = progress = true;
      }
    }
    if (x.requestDone && x.responseDone) releaseUpstreamStream(x);
  }
  return progress;
}

void Http2Outbound::cancelUpstreamStream(Exchange& x) {
  if (x.upstream >= 0 && x.upStream != 0 && !x.responseDone && sessions_[x.upstream].session) {
    sessions_[x.upstream].session->reset(x.upStream, kCancel);
  }
  releaseUpstreamStream(x);
}

void Http2Outbound::releaseUpstreamStream(Exchange& x) {
  if (x.upstream < 0 || x.upStream == 0) return;
  UpstreamSession& u = sessions_[x.upstream];
  if (u.session) u.session->release(x.upStream);  // what it still queued goes out first
  u.streams.erase(x.upStream);
  x.upStream = 0;
  // maxRequestsPerConnection: a connection that carried its share closes once its last
  // stream is done and no request still waits to be sent on it.
  int slot = x.upstream;
  if (upstreams_[slot].exhausted() && u.streams.empty() &&
      std::none_of(exchanges_.begin(), exchanges_.end(), [slot](const auto& e) { return e.second.pending && e.second.upstream == slot; })) {
    closeUpstream(slot, false);
  }
}

bool Http2Outbound::handleUpstreamEvents(int slot) {
  UpstreamSession& u = sessions_[slot];
  if (!u.session->hasEvents()) return false;
  for (const auto& e : u.session->takeEvents()) {
    auto mapped = u.streams.find(e.stream);
    if (mapped == u.streams.end()) continue;
    int32_t stream = mapped->second;
    auto it = exchanges_.find(stream);
    if (it == exchanges_.end()) continue;
    Exchange& x = it->second;
    if (e.kind == Kind::kResponse && !x.responded) {
      l7::HttpHead head = l7::responseFromFields(u.session->fields(e.stream));
      if (x.responseEdits != nullptr) x.responseEdits->apply(head);
      for (const auto& h : x.responseAdd) head.add(h.name, h.value);
      // A head that ends the stream (gRPC's trailers-only answer) goes out as one.
      bool endStream = u.session->peerEnded(e.stream) && u.session->inbox(e.stream).empty();
      http2::Fields fields = l7::fieldsFromResponse(head);
      noteOutcome(x.outlier, outcomeOfStatus(head.status));
      std::optional<int> grpcStatus;
      if (endStream) {
        for (const auto& f : u.session->fields(e.stream)) {
          if (f.name == "grpc-status") grpcStatus = std::atoi(f.value.c_str());
        }
      }
      // A status (or trailers-only grpc-status) the route retries on: this answer goes nowhere.
      if (retry(x, {l7::AttemptResult::Kind::kResponse, head.status, grpcStatus})) continue;
      x.record.labels.responseCode = head.status;
      for (const auto& f : fields) x.record.responseBytes += f.name.size() + f.value.size();
      noteGrpcStatus(x, fields);
      downSession_->submitResponse(stream, fields, endStream);
      x.responded = true;
      x.responseDone = endStream;
    } else if (e.kind == Kind::kClosed) {
      // A stream closed after its whole response stays until moveBodies passed the rest on;
      // one closed before (a reset, a refused stream) fails the exchange now.
      uint32_t code = u.session->errorCode(e.stream);
      bool complete = x.responseDone || (x.responded && u.session->peerEnded(e.stream) && code == 0);
      if (!complete) {
        releaseUpstreamStream(x);
        upstreamStreamFailed(stream, x, code);
      }
    }
  }
  return true;
}

void Http2Outbound::upstreamStreamFailed(int32_t stream, Exchange& x, uint32_t errorCode, bool connectFailed) {
  if (!x.responded) {
    // Nothing of the response went out: the request may go again, else the app gets an
    // answer it can tell apart.
    bool refused = errorCode == kRefusedStream;
    noteOutcome(x.outlier, Outcome::kLocalOriginFailure);
    using AK = l7::AttemptResult::Kind;
    if (retry(x, {connectFailed ? AK::kConnectFailure : refused ? AK::kRefusedStream : AK::kReset})) return;
    x.upstream = -1;
    return respondLocally(stream, x, {503, refused ? "URX" : "UC", "upstream connect error or disconnect/reset before headers", {}});
  }
  x.upstream = -1;
  x.record.labels.responseFlags = "UC";
  if (!x.responseDone) downSession_->reset(stream, errorCode != 0 ? errorCode : 0x2 /* INTERNAL_ERROR */);
  x.responseDone = true;
}

void Http2Outbound::noteGrpcStatus(Exchange& x, const http2::Fields& fields) {
  if (!x.grpc) return;
  for (const auto& f : fields) {
    if (f.name == "grpc-status") x.record.labels.grpcResponseStatus = f.value;
  }
}

void Http2Outbound::respondLocally(int32_t stream, Exchange& x, const LocalAnswer& answer) {
  x.record.labels.responseCode = answer.status;
  if (!answer.flag.empty()) x.record.labels.responseFlags = answer.flag;
  int grpcStatus = answer.grpcStatus.value_or(l7::grpcStatusForHttp(answer.status));
  if (x.grpc) x.record.labels.grpcResponseStatus = std::to_string(grpcStatus);
  x.upstream = -1;
  x.upStream = 0;
  x.pending = false;
  x.request.clear();
  x.responded = x.responseDone = true;
  if (x.grpc) {
    // gRPC clients read the outcome from grpc-status, in a trailers-only answer.
    http2::Fields fields{{":status", "200"},
                         {"content-type", "application/grpc"},
                         {"grpc-status", std::to_string(grpcStatus)},
                         {"grpc-message", answer.body}};
    downSession_->submitResponse(stream, fields, true);
    return;
  }
  http2::Fields fields{{":status", std::to_string(answer.status)}, {"content-length", std::to_string(answer.body.size())}};
  if (!answer.body.empty()) fields.push_back({"content-type", "text/plain"});
  for (const auto& h : answer.extra) fields.push_back(h);
  downSession_->submitResponse(stream, fields, answer.body.empty());
  if (!answer.body.empty()) {
    downSession_->write(stream, bytesOf(answer.body));
    downSession_->finish(stream);
  }
}

void Http2Outbound::failUpstream(int slot) {
  if (!upstreams_[slot].endpoint || upstreams_[slot].closing) return;
  UpstreamSession& u = sessions_[slot];
  for (auto& [stream, x] : exchanges_) {
    if (x.upstream != slot) continue;
    if (x.upStream != 0 && x.responded && !x.responseDone && u.session->peerEnded(x.upStream)) {
      // Its whole response arrived before the connection went: pass the rest on, unbounded
      // (it is at most one stream window).
      std::string& rest = u.session->inbox(x.upStream);
      downSession_->write(stream, bytesOf(rest));
      downSession_->finish(stream, l7::forwardableTrailers(u.session->trailers(x.upStream)));
      x.responseDone = true;
    }
    x.upStream = 0;
    if (!x.responseDone) upstreamStreamFailed(stream, x, 0, !upstreams_[slot].connected);
    x.upstream = -1;
  }
  u.streams.clear();
  closeUpstream(slot, true);
}

void Http2Outbound::finish(bool reset) {
  if (finishing_) return;
  finishing_ = true;
  for (auto& [stream, x] : exchanges_) {
    if (x.record.labels.responseFlags == "-" && !x.responseDone) x.record.labels.responseFlags = "DC";
    endRequest(*pod_, x.record, context_.loop.now());
  }
  exchanges_.clear();
  abortAll(reset);
}

}  // namespace sluice::ztunnel
