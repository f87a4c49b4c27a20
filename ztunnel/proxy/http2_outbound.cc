#include "proxy/http2_outbound.h"

#include <spdlog/spdlog.h>

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

Http2Outbound::Http2Outbound(WorkerContext& context, std::shared_ptr<PodRuntime> pod, SocketAddress peer, SocketAddress service)
    : context_(context), pod_(std::move(pod)), peer_(peer), service_(service), lastActivity_(context.loop.now()) {
  ++context_.live;
  pod_->counters.active++;
  pod_->counters.opened[static_cast<size_t>(Direction::kOutbound)]++;
}

Http2Outbound::~Http2Outbound() {
  if (!retired_) {
    pod_->counters.closed[static_cast<size_t>(Direction::kOutbound)]++;
    pod_->counters.active--;
    --context_.live;
  }
}

void Http2Outbound::start(UniqueFd fd) {
  (void)setNoDelay(fd.get());
  down_ = std::make_unique<SocketEndpoint>(context_.loop, *this, *this, 0, std::move(fd), &pod_->buffers);
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

void Http2Outbound::onCompletion(uint8_t op, int res, uint32_t flags) {
  int index = op / kOpStride;
  Endpoint* endpoint = index == 0 ? down_.get() : upstreams_[index - 1].endpoint.get();
  SLUICE_ASSERT(endpoint != nullptr, "completion for an endpoint that is gone");
  endpoint->onCompletion(op, res, flags);
  reapClosedUpstreams();
  maybeRetire();
}

void Http2Outbound::onBuffersAvailable() {
  if (down_) down_->onBuffersAvailable();
  for (auto& u : upstreams_) {
    if (u.endpoint) u.endpoint->onBuffersAvailable();
  }
  pump();
}

void Http2Outbound::onTick(std::chrono::steady_clock::time_point now) {
  if (finishing_) return;
  // Idle as a TCP connection is (Istio's idleTimeout): no bytes either way, whatever streams
  // are open, so a stream whose upstream never answers cannot hold the connection forever.
  bool idle = now - lastActivity_ > context_.options.idleTimeout;
  bool drained = pod_->drainDeadline && now >= *pod_->drainDeadline;
  if (idle || drained) {
    finish(true);
    maybeRetire();
  }
}

int Http2Outbound::slotOf(const Endpoint& endpoint) const {
  for (int i = 0; i < kMaxUpstreams; ++i) {
    if (upstreams_[i].endpoint.get() == &endpoint) return i;
  }
  return -1;
}

void Http2Outbound::onEndpointConnected(Endpoint& endpoint, bool ok, FailReason reason) {
  int slot = slotOf(endpoint);
  if (slot < 0 || finishing_) return;
  if (ok) {
    upstreams_[slot].connected = true;
  } else {
    if (reason != FailReason::kCount) pod_->counters.failed[static_cast<size_t>(reason)]++;
    failUpstream(slot);
  }
  pump();
}

void Http2Outbound::pump() {
  if (pumping_ || retired_ || !downSession_) return;
  pumping_ = true;
  bool failed = false;
  for (bool progress = true; progress && !finishing_;) {
    progress = false;
    if (!clientEof_ && downOut_.size() < kMaxOutgoing) {
      progress |= readFrom(*down_, *downSession_, true, clientEof_, failed);
      if (failed) {
        finish(true);
        break;
      }
    }
    progress |= handleClientEvents();
    for (int slot = 0; slot < kMaxUpstreams && !finishing_; ++slot) {
      Upstream& u = upstreams_[slot];
      if (!u.endpoint || u.closing || !u.connected) continue;
      bool eof = false, upFailed = false;
      if (u.out.size() < kMaxOutgoing) progress |= readFrom(*u.endpoint, *u.session, false, eof, upFailed);
      progress |= handleUpstreamEvents(slot);
      if (eof || upFailed) {
        failUpstream(slot);
        progress = true;
      }
    }
    progress |= sendPendingRequests();
    progress |= moveBodies();
    for (auto& u : upstreams_) {
      if (!u.endpoint || u.closing || !u.connected) continue;
      bool upFailed = false;
      progress |= flushTo(*u.endpoint, *u.session, u.out, false, upFailed);
      if (upFailed) {
        failUpstream(static_cast<int>(&u - upstreams_.data()));
        progress = true;
      }
    }
    if (!finishing_) progress |= flushTo(*down_, *downSession_, downOut_, true, failed);
    if (failed) {
      finish(true);
      break;
    }
    // The app is gone or the connection ended (GOAWAY both ways), once nothing is in flight.
    bool ended = clientEof_ || downSession_->finished();
    if (ended && exchanges_.empty() && downOut_.size() == 0) finish(false);
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
  lastActivity_ = context_.loop.now();
  if (fromClient) pod_->counters.bytesFromClient[static_cast<size_t>(Direction::kOutbound)] += r.chunk.length;
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
    lastActivity_ = context_.loop.now();
    if (toClient) pod_->counters.bytesToClient[static_cast<size_t>(Direction::kOutbound)] += w.bytes;
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
          if (x.upstream >= 0 && x.upStream != 0) {
            Upstream& u = upstreams_[x.upstream];
            if (!x.responseDone && u.session) u.session->reset(x.upStream, kCancel);
            if (u.session) u.session->release(x.upStream);
            u.streams.erase(x.upStream);
          }
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
  auto request = l7::requestFromFields(downSession_->fields(stream));
  if (!request) return respondLocally(stream, x, {400, "DPE", "a request without :method, :path or authority", {}});
  x.grpc = l7::isGrpc(request->head);
  if (request->head.method == "CONNECT") return respondLocally(stream, x, {405, "", "CONNECT is not routed on a service port", {}});
  auto config = context_.config.current();
  HttpRouting routing = routeHttpRequest(*config, service_, {service_.port(), pod_->ns, sourceLabelsOf(*config, pod_->addresses)},
                                         request->head, {context_.random(), context_.sequence++}, context_.random());
  if (routing.local) return respondLocally(stream, x, *routing.local);
  decorateRequest(*routing.rule, request->head, context_.random);
  x.config = config;
  x.responseEdits = &routing.rule->responseHeaders;
  x.upstream = acquireUpstream(routing.endpoint, routing.workload);
  if (x.upstream < 0) return respondLocally(stream, x, {503, "UO", "too many upstream connections for one client connection", {}});
  x.request = l7::fieldsFromRequest(*request);
}

int Http2Outbound::acquireUpstream(const SocketAddress& address, const std::shared_ptr<const WorkloadEntry>& workload) {
  std::string key = address.toString();
  int free = -1;
  for (int i = 0; i < kMaxUpstreams; ++i) {
    Upstream& u = upstreams_[i];
    if (u.endpoint && !u.closing && u.key == key && u.session->acceptsStreams()) return i;
    if (!u.endpoint && free < 0) free = i;
  }
  if (free < 0) {
    // Every slot holds a connection: one without streams makes room for the next request
    // (it is reaped when quiescent); this one fails rather than wait.
    for (auto& u : upstreams_) {
      if (u.endpoint && !u.closing && u.streams.empty()) {
        closeUpstream(u, false);
        break;
      }
    }
    return -1;
  }
  auto session = http2::Http2Session::create(http2::Http2Session::Role::kClient, context_.options.hboneLimits);
  if (!session) return -1;
  auto opened = openUpstream(context_, pod_, {peer_, address, workload}, *this, *this, static_cast<uint8_t>((free + 1) * kOpStride));
  if (!opened) {
    pod_->counters.failed[static_cast<size_t>(opened.error().reason)]++;
    spdlog::debug("{}: {}", pod_->key(), opened.error().message);
    return -1;
  }
  Upstream& u = upstreams_[free];
  u.endpoint = std::move(opened->endpoint);
  u.session = std::move(*session);
  u.key = key;
  return free;
}

bool Http2Outbound::sendPendingRequests() {
  bool progress = false;
  for (auto& [stream, x] : exchanges_) {
    if (x.upstream < 0 || x.upStream != 0 || x.request.empty()) continue;
    Upstream& u = upstreams_[x.upstream];
    if (!u.connected) continue;
    // No body follows when the app's request already ended with its head.
    bool endStream = downSession_->peerEnded(stream) && downSession_->inbox(stream).empty() &&
                     downSession_->trailers(stream).empty();
    auto id = u.session->submitRequest(x.request, endStream);
    if (!id) {
      respondLocally(stream, x, {503, "UO", "the upstream connection takes no more streams", {}});
      progress = true;
      continue;
    }
    x.upStream = *id;
    x.requestDone = endStream;
    x.request.clear();
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
    http2::Http2Session& up = *upstreams_[x.upstream].session;
    if (!x.requestDone) {
      if (!fromApp.empty() && up.queued(x.upStream) < http2::Http2Session::kHighWater) {
        up.write(x.upStream, bytesOf(fromApp));
        downSession_->consumed(stream, fromApp.size());
        fromApp.clear();
        progress = true;
      }
      if (fromApp.empty() && downSession_->peerEnded(stream)) {
        up.finish(x.upStream, l7::forwardableTrailers(downSession_->trailers(stream)));
        x.requestDone = progress = true;
      }
    }
    if (x.responded && !x.responseDone) {
      std::string& fromUp = up.inbox(x.upStream);
      if (!fromUp.empty() && downSession_->queued(stream) < http2::Http2Session::kHighWater) {
        downSession_->write(stream, bytesOf(fromUp));
        up.consumed(x.upStream, fromUp.size());
        fromUp.clear();
        progress = true;
      }
      if (fromUp.empty() && up.peerEnded(x.upStream)) {
        downSession_->finish(stream, l7::forwardableTrailers(up.trailers(x.upStream)));
        x.responseDone = progress = true;
      }
    }
    if (x.requestDone && x.responseDone) releaseUpstreamStream(x);
  }
  return progress;
}

void Http2Outbound::releaseUpstreamStream(Exchange& x) {
  if (x.upstream < 0 || x.upStream == 0) return;
  Upstream& u = upstreams_[x.upstream];
  if (u.session) u.session->release(x.upStream);  // what it still queued goes out first
  u.streams.erase(x.upStream);
  x.upStream = 0;
}

bool Http2Outbound::handleUpstreamEvents(int slot) {
  Upstream& u = upstreams_[slot];
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
      // A head that ends the stream (gRPC's trailers-only answer) goes out as one.
      bool endStream = u.session->peerEnded(e.stream) && u.session->inbox(e.stream).empty();
      downSession_->submitResponse(stream, l7::fieldsFromResponse(head), endStream);
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

void Http2Outbound::upstreamStreamFailed(int32_t stream, Exchange& x, uint32_t errorCode) {
  x.upstream = -1;
  if (!x.responded) {
    // Nothing of the response went out: the app gets an answer it can tell apart.
    bool refused = errorCode == kRefusedStream;
    return respondLocally(stream, x, {503, refused ? "URX" : "UC", "upstream connect error or disconnect/reset before headers", {}});
  }
  if (!x.responseDone) downSession_->reset(stream, errorCode != 0 ? errorCode : 0x2 /* INTERNAL_ERROR */);
  x.responseDone = true;
}

void Http2Outbound::respondLocally(int32_t stream, Exchange& x, const LocalAnswer& answer) {
  (void)answer.flag;  // the response flag goes to metrics and the access log (not yet wired)
  x.upstream = -1;
  x.upStream = 0;
  x.request.clear();
  x.responded = x.responseDone = true;
  if (x.grpc) {
    // gRPC clients read the outcome from grpc-status, in a trailers-only answer.
    http2::Fields fields{{":status", "200"},
                         {"content-type", "application/grpc"},
                         {"grpc-status", std::to_string(l7::grpcStatusForHttp(answer.status))},
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
  Upstream& u = upstreams_[slot];
  if (!u.endpoint || u.closing) return;
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
    if (!x.responseDone) upstreamStreamFailed(stream, x, 0);
    x.upstream = -1;
  }
  u.streams.clear();
  closeUpstream(u, true);
}

void Http2Outbound::closeUpstream(Upstream& u, bool reset) {
  if (!u.endpoint || u.closing) return;
  u.closing = true;
  u.endpoint->abort(reset);
}

void Http2Outbound::reapClosedUpstreams() {
  for (auto& u : upstreams_) {
    if (!u.endpoint) continue;
    // An upstream the server finished with (GOAWAY, no streams left) is let go.
    if (!u.closing && u.connected && u.streams.empty() && u.session->finished()) closeUpstream(u, false);
    if (u.closing && u.endpoint->quiescent()) {
      u.endpoint->close();
      u = Upstream{};
    }
  }
}

void Http2Outbound::finish(bool reset) {
  if (finishing_) return;
  finishing_ = true;
  exchanges_.clear();
  if (down_) down_->abort(reset);
  for (auto& u : upstreams_) closeUpstream(u, reset);
}

void Http2Outbound::maybeRetire() {
  if (!finishing_ || retired_ || pumping_) return;
  reapClosedUpstreams();
  for (const auto& u : upstreams_) {
    if (u.endpoint) return;
  }
  if (down_ && !down_->quiescent()) return;
  if (down_) down_->close();
  retired_ = true;
  pod_->counters.closed[static_cast<size_t>(Direction::kOutbound)]++;
  pod_->counters.active--;
  --context_.live;
  context_.loop.retire(*this);
}

}  // namespace sluice::ztunnel
