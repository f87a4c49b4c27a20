// A pooled HBONE client connection: dialled from inside the source pod to a destination's
// 15008 with the pod's certificate, it must see exactly the destination workload's identity.
// Outbound connections open CONNECT streams on it (proxy/outbound.cc) while it takes more; it
// is in the pool (hbone_pool.h) from its dial until it starts closing, and is let go after
// poolIdleTimeout without streams.
#pragma once

#include <memory>
#include <string>

#include "identity/workload_certificate.h"
#include "proxy/hbone_link.h"
#include "proxy/hbone_pool.h"

namespace sluice::ztunnel {

class HboneClient final : public HboneLink {
 public:
  // Dials and adds the connection to the pool; streams may be opened on it at once (they wait
  // for the handshake).
  static Result<HboneClient*> dial(WorkerContext& context, std::shared_ptr<PodRuntime> pod,
                                   const WorkloadCertificate& certificate, const PoolKey& key, std::string expectedPeer);
  HboneClient(WorkerContext& context, std::shared_ptr<PodRuntime> pod, UniqueFd fd,
              std::unique_ptr<hbone::HboneConnection> connection, PoolKey key, std::string expectedPeer,
              SocketAddress peer);

  bool acceptsStreams() const { return !closing() && session().acceptsStreams(); }
  PoolInfo describe() const override;
  // What a stream refused on this connection needs to be opened on another of its pool.
  WorkerContext& context() { return context_; }
  const PoolKey& key() const { return key_; }
  const std::string& expectedPeer() const { return expectedPeer_; }

 protected:
  std::string checkPeer(const std::string& identity) const override;
  void onClosing() override;
  bool idleExpired(std::chrono::steady_clock::time_point now) const override;

 private:
  PoolKey key_;
  std::string expectedPeer_;
};

}  // namespace sluice::ztunnel
