#include "proxy/hbone_client.h"

#include "proxy/hbone_request.h"

namespace sluice::ztunnel {

Result<HboneClient*> HboneClient::dial(WorkerContext& context, std::shared_ptr<PodRuntime> pod,
                                       const WorkloadCertificate& certificate, const PoolKey& key,
                                       std::string expectedPeer) {
  SLUICE_TRY_ASSIGN(target, SocketAddress::parse(key.destination));
  SLUICE_TRY_ASSIGN(fd, context.sockets.upstream(*pod, target.family()));
  SLUICE_TRY_ASSIGN(connection, hbone::HboneConnection::create(hbone::HboneConnection::Role::kClient,
                                                               certificate.clientContext.get(), context.options.hboneLimits));
  auto& client = context.loop.add<HboneClient>(context, std::move(pod), std::move(fd), std::move(connection), key,
                                               std::move(expectedPeer), target);
  context.pool.add(key, &client);
  if (!client.socket_.connect(target, context.options.connectTimeout)) {
    client.abort(FailReason::kSocketError);
    return fail("no io_uring submission entry for the connect");
  }
  return &client;
}

HboneClient::HboneClient(WorkerContext& context, std::shared_ptr<PodRuntime> pod, UniqueFd fd,
                         std::unique_ptr<hbone::HboneConnection> connection, PoolKey key, std::string expectedPeer,
                         SocketAddress peer)
    : HboneLink(context, std::move(pod), std::move(fd), std::move(connection), std::move(peer)),
      key_(std::move(key)),
      expectedPeer_(std::move(expectedPeer)) {}

std::string HboneClient::checkPeer(const std::string& identity) const {
  return peerIdentityVerdict({PeerRole::kClientOfServer, identity, expectedPeer_, context_.options.trustDomain});
}

void HboneClient::onClosing() { context_.pool.remove(key_, this); }

bool HboneClient::idleExpired(std::chrono::steady_clock::time_point now) const { return context_.pool.idle(*this, now); }

PoolInfo HboneClient::describe() const {
  return {pod_->key(), peer_.toString(), expectedPeer_, "client", streams_.size(), verified_};
}

}  // namespace sluice::ztunnel
