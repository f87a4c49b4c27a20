#include "proxy/hbone_server.h"

#include <spdlog/spdlog.h>

#include "engine/relay.h"
#include "engine/socket_endpoint.h"
#include "proxy/hbone_request.h"
#include "proxy/inbound_decision.h"
#include "proxy/socket_relay.h"
#include "proxy/stream_endpoint.h"

namespace sluice::ztunnel {

void HboneServerAcceptor::onAccepted(UniqueFd fd) {
  PodRuntime& pod = *pod_;
  if (pod.refusesNewConnections()) return;
  SocketAddress peer = unmapped(peerAddress(fd.get()));
  auto lease = context_.limits.hbone.acquire(peer.ip());
  if (!lease) return refuse(pod, std::move(fd), FailReason::kSourceLimit);
  auto certificate = context_.certificates != nullptr ? context_.certificates->get(pod.identity) : nullptr;
  if (!certificate) return refuse(pod, std::move(fd), FailReason::kNoCertificate);
  auto connection = hbone::HboneConnection::create(hbone::HboneConnection::Role::kServer,
                                                   certificate->serverContext.get(), context_.options.hboneLimits);
  if (!connection) {
    spdlog::warn("{}: HBONE server connection: {}", pod.key(), connection.error().message());
    return refuse(pod, std::move(fd), FailReason::kHandshake);
  }
  (void)setNoDelay(fd.get());
  auto& server = context_.loop.add<HboneServer>(context_, pod_, std::move(fd), std::move(*connection), peer, std::move(lease));
  server.start();
}

HboneServer::HboneServer(WorkerContext& context, std::shared_ptr<PodRuntime> pod, UniqueFd fd,
                         std::unique_ptr<hbone::HboneConnection> connection, SocketAddress peer, std::shared_ptr<void> lease)
    : HboneLink(context, std::move(pod), std::move(fd), std::move(connection), std::move(peer)), lease_(std::move(lease)) {}

std::string HboneServer::checkPeer(const std::string& identity) const {
  return peerIdentityVerdict({PeerRole::kServerOfClient, identity, "", context_.options.trustDomain});
}

bool HboneServer::idleExpired(std::chrono::steady_clock::time_point now) const {
  return streams_.empty() && session().openStreams() == 0 && now - lastUsed() > context_.options.hboneIdleTimeout;
}

void HboneServer::answer(int32_t stream, int status, FailReason reason, const std::string& why) {
  spdlog::debug("{}: HBONE CONNECT from {} ({}) answered {}: {}", pod_->key(), peer_.toString(), peerIdentity_, status, why);
  count(reason);
  session().respond(stream, status);
  requestFlush();
}

void HboneServer::onRequest(int32_t stream) {
  auto& session = this->session();
  if (session.status(stream) == 400) return answer(stream, 400, FailReason::kMalformed, "not a CONNECT with an authority");
  auto config = context_.config.current();
  InboundDecision verdict = decideInbound({true, peerIdentity_, peer_.ip(), session.request(stream)->authority},
                                          {pod_->ns, pod_->addresses, pod_->labels}, *config);
  if (verdict.verdict != InboundDecision::Verdict::kAllow) {
    return answer(stream, verdict.httpStatus(),
                  verdict.verdict == InboundDecision::Verdict::kDenied ? FailReason::kDenied : FailReason::kMalformed,
                  verdict.reason);
  }
  // A pod handed over to a newer tunnel is still there: a stream the peer opened before our
  // GOAWAY reached it is served, not refused.
  if (pod_->refusesNewConnections()) return answer(stream, 503, FailReason::kConnectRefused, "the pod is leaving");
  // The app sees the client pod's address: the HBONE connection's source (the client's tunnel
  // dials from inside the client pod).
  auto up = context_.sockets.delivery(*pod_, verdict.target, peer_);
  if (!up) {
    spdlog::warn("{}: delivery to {}: {}", pod_->key(), verdict.target.toString(), up.error().message());
    return answer(stream, 503, FailReason::kSocketError, up.error().message());
  }
  auto series = pod_->tcp.series(inboundTcpLabels(*config, *pod_, peer_.ip(), peerIdentity_, true, context_.options.trustDomain));
  Relay& relay = newRelay(context_, {pod_, Direction::kInbound, peer_, verdict.target, "HBONE", peerIdentity_, std::move(series)});
  auto down = std::make_unique<StreamEndpoint>(*this, stream, StreamEndpoint::Side::kServer, relay, pod_->counters);
  auto upEndpoint = std::make_unique<SocketEndpoint>(context_.loop, relay, relay, Relay::kUpOps, std::move(up->fd), &pod_->buffers);
  if (up->registration) {
    upEndpoint->holdWhileOpen(std::move(up->registration));
    upEndpoint->rebindOnAddressInUse(redelivery(context_.sockets, pod_, verdict.target, peer_));
  }
  SocketEndpoint& connecting = *upEndpoint;
  relay.attach(std::move(down), std::move(upEndpoint));
  if (!connecting.connect(verdict.target, context_.options.connectTimeout)) {
    relay.onEndpointConnected(connecting, false, FailReason::kSocketError);
  }
}

void HboneServer::handOver() {
  if (closing()) return;
  session().shutdownNotice();
  requestFlush();
}

PoolInfo HboneServer::describe() const {
  return {pod_->key(), peer_.toString(), peerIdentity_, "server", streams_.size(), verified_};
}

}  // namespace sluice::ztunnel
