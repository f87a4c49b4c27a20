// The CA's gRPC face (proto/sluice/ca/v1): served only on the controller's mTLS port. The
// caller is the node its client certificate names (spiffe://<td>/sluice/node/<name>); it gets a
// certificate only for an identity of a workload the current configuration places on that
// node. Refusals carry the reason: PERMISSION_DENIED for identities the node may not have,
// UNAUTHENTICATED without a node certificate, INVALID_ARGUMENT for a bad CSR.
#pragma once

#include <atomic>
#include <chrono>

#include "ca/certificate_authority.h"
#include "discovery/config_store.h"
#include "discovery/node_identity.h"
#include "sluice/ca/v1/ca.grpc.pb.h"

namespace sluice::controller {

struct CertificatePolicy {
  std::chrono::seconds defaultValidity{std::chrono::hours(24)};
  std::chrono::seconds maxValidity{std::chrono::hours(24)};
  std::chrono::seconds minValidity{std::chrono::minutes(1)};
};

class CertificateService final : public ca::v1::CertificateService::Service {
 public:
  CertificateService(const CertificateAuthority& ca, const ConfigStore& store, CertificatePolicy policy)
      : ca_(ca), store_(store), policy_(policy) {}
  grpc::Status CreateCertificate(grpc::ServerContext* context, const ca::v1::CertificateRequest* request,
                                 ca::v1::CertificateResponse* response) override;
  uint64_t issued() const { return issued_.load(); }
  uint64_t refused() const { return refused_.load(); }

 private:
  const CertificateAuthority& ca_;
  const ConfigStore& store_;
  CertificatePolicy policy_;
  std::atomic<uint64_t> issued_{0}, refused_{0};
};

}  // namespace sluice::controller
