// The HBONE server on each pod's 15008: TLS with the pod's certificate, the client must prove
// an identity of the trust domain, then each CONNECT stream is judged (decideInbound: target
// is this pod, PeerAuthentication, AuthorizationPolicy) and answered: 400 malformed or not
// this pod, 401 denied, 503 app unreachable, 200 and a relay to the app.
//
// Answers other than 200 end the stream at once; DATA the client still sends on it is dropped
// (Http2Session), never held. A connection with no streams for hboneIdleTimeout is closed,
// and each source address may hold at most SourceLimits::hbone connections.
#pragma once

#include <memory>

#include "proxy/pod_acceptor.h"
#include "proxy/hbone_link.h"

namespace sluice::ztunnel {

class HboneServerAcceptor final : public PodAcceptor {
 public:
  using PodAcceptor::PodAcceptor;
  void onAccepted(UniqueFd fd) override;
};

class HboneServer final : public HboneLink {
 public:
  HboneServer(WorkerContext& context, std::shared_ptr<PodRuntime> pod, UniqueFd fd,
              std::unique_ptr<hbone::HboneConnection> connection, SocketAddress peer, std::shared_ptr<void> lease);
  void start() { connected(); }
  PoolInfo describe() const override;
  // GOAWAY (shutdown notice): the peer's pool dials again, reaching the successor's listener.
  void handOver() override;

 protected:
  std::string checkPeer(const std::string& identity) const override;
  void onRequest(int32_t stream) override;
  bool idleExpired(std::chrono::steady_clock::time_point now) const override;

 private:
  void answer(int32_t stream, int status, FailReason reason, const std::string& why);
  std::shared_ptr<void> lease_;
};

}  // namespace sluice::ztunnel
